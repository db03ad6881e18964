"""Sampling: the reference loop and the streaming front end.

Pixels are drawn in raster order, all channels of a pixel at once (the channels are
independent given the pixels before). Every sub-pixel's uniform random number is drawn
up front from the seed, and a level is chosen by inverting the CDF of its softmax, so
any sampler that computes the same logits returns the same images for the same seed.

Prefixes: `prefix_mask` (H, W), (n, H, W) or (n, 1, H, W), True where a pixel is known,
fixes those pixels to `prefix` and samples the rest. Known pixels are written, never
sampled, and cost no network evaluation. A mask that is not a raster-order prefix (say
the left half of the image) is allowed: every unknown pixel is conditioned on the known
pixels before it in raster order, and known pixels after it are kept in the output but
cannot influence it, because a PixelCNN only sees the past.
"""
from typing import NamedTuple

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view


class Progress(NamedTuple):
    images: torch.Tensor  # (n, C, H, W) levels; pixels not yet drawn are 0 or the prefix
    done: int  # pixels completed, in raster order
    total: int  # H * W
    position: tuple  # (row, col) of the last pixel completed


def draw(logits, u, temperature):
    """Levels (B, C) from logits (B, K, C) and uniforms u (B, C) by inverting the CDF."""
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    k = (u[:, None] * cdf[:, -1:] > cdf).sum(axis=1)
    return np.minimum(k, logits.shape[1] - 1)


def check_prefix(model, n, prefix, prefix_mask):
    """Validated (prefix (n, C, H, W) long, mask (n, H, W) bool), or (None, None)."""
    C, H, W = model.image_shape
    if prefix is None and prefix_mask is None:
        return None, None
    if prefix is None or prefix_mask is None:
        raise ValueError("prefix and prefix_mask go together: give both or neither")
    if isinstance(prefix, torch.Tensor) and prefix.dim() == 3:
        prefix = prefix.unsqueeze(0)
    prefix = model.check_levels(prefix, "prefix")
    if prefix.shape[0] not in (1, n):
        raise ValueError(f"prefix holds {prefix.shape[0]} images, expected 1 or n={n}")
    if not isinstance(prefix_mask, torch.Tensor) or prefix_mask.dtype != torch.bool:
        raise ValueError("prefix_mask must be a boolean tensor, True where a pixel is known")
    m = prefix_mask
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.dim() != 3 or tuple(m.shape[1:]) != (H, W) or m.shape[0] not in (1, n):
        raise ValueError(f"prefix_mask must have shape ({H}, {W}), (n, {H}, {W}) or (n, 1, {H}, {W}), "
                         f"got {tuple(prefix_mask.shape)}")
    return prefix.cpu().expand(n, C, H, W), m.cpu().expand(n, H, W)


def sample_stream(model, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None,
                  cached=True, every=28):
    """Generate n images, yielding Progress every `every` pixels (None: only at the end)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    prefix, mask = check_prefix(model, n, prefix, prefix_mask)
    C, H, W = model.image_shape
    seed = torch.seed() if seed is None else seed
    u = torch.rand((n, C, H, W), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = torch.zeros((n, C, H, W), dtype=torch.long)
    if prefix is not None:
        x = torch.where(mask.unsqueeze(1), prefix, x)
        mask = mask.numpy()
    return _loop(model, x.numpy(), u.numpy(), mask, temperature, cached, every)


@torch.no_grad()
def _loop(model, x, u, mask, temperature, cached, every):
    n, C, H, W = x.shape
    # Pixels before the first one to draw are known in every image: no need to visit them.
    start = 0 if mask is None else int(np.argmin(mask.all(axis=0).reshape(-1)))
    if mask is not None and mask.all():
        start = H * W
    was_training = model.training
    model.eval()
    try:
        stepper = (CachedStepper if cached else ReferenceStepper)(model, x, start)
        for idx in range(start, H * W):
            i, j = divmod(idx, W)
            if j == 0 or idx == start:
                stepper.start_row(i)
            todo = None if mask is None else ~mask[:, i, j]
            if todo is None or todo.any():
                v = draw(stepper.logits(i, j), u[:, :, i, j], temperature)
                if todo is None:
                    x[:, :, i, j] = v
                else:
                    x[todo, :, i, j] = v[todo]
            else:
                stepper.skip(i, j)
            stepper.write(i, j)
            if every and (idx + 1) % every == 0 and idx + 1 < H * W:
                yield Progress(torch.from_numpy(x.copy()), idx + 1, H * W, (i, j))
        yield Progress(torch.from_numpy(x), H * W, H * W, (H - 1, W - 1))
    finally:
        model.train(was_training)


class ReferenceStepper:
    """One full forward pass per pixel drawn: slow, obviously right."""

    def __init__(self, model, x, start):
        self.model, self.x = model, x

    def start_row(self, i):
        pass

    def logits(self, i, j):
        return self.model(torch.from_numpy(self.x).to(self.model.device))[:, :, :, i, j].float().cpu().numpy()

    def skip(self, i, j):
        pass

    def write(self, i, j):
        pass


class CachedStepper:
    """Fast generation (Ramachandran et al. 2017) for nets of Blocks and Residuals.

    Each masked conv ("unit") keeps its whole input as a padded channels-last buffer.
    At the start of a row, the rows-above part of every unit is computed for the whole
    row in one matmul over its patches; then, per pixel, only the same-row part: a tiny
    matmul over the last few columns of the unit's input. BatchNorm is folded into the
    weights.
    The per-pixel work runs on NumPy views of the buffers, whose per-call overhead is a
    fraction of PyTorch's, which is what dominates at this size.
    """

    def __init__(self, model, x, start):
        if model.device.type != "cpu":
            raise NotImplementedError("the cached sampler runs on the CPU: model.cpu() first")
        self.x, self.scale = x, 1.0 / (model.levels - 1)
        npdt = np.float64 if model.dtype == torch.float64 else np.float32
        n, (C, H, W) = x.shape[0], model.image_shape
        self.units = units = _compiled(model)
        # bufs[k]: the input of unit k, (n, H + p, W + 2p, cin), zero padded; the rest scratch
        self.bufs = [np.zeros((n, H + u.p, W + 2 * u.p, u.cin), npdt) for u in units]
        self.tmp = [np.zeros((n, u.cout), npdt) for u in units]
        self.vert = [np.zeros((n, W, u.cout), npdt) if u.p else None for u in units]
        self.patches = [np.zeros((n, W, u.p, u.kernel, u.cin), npdt) if u.p else None for u in units]
        self.out = np.zeros((n, units[-1].cout), npdt)
        self.levels, self.C = model.levels, C
        self.one_hot = np.eye(model.levels, dtype=npdt) if model.config.one_hot else None
        self.prefill(model, start)

    def prefill(self, model, start):
        """Fill every buffer at the pixels before `start`, known everywhere, with one
        ordinary forward pass over the known image."""
        if start == 0:
            return
        W = self.x.shape[3]
        inputs = _unit_inputs(model.net, model.inputs(torch.from_numpy(self.x)))
        rows, cols = divmod(start, W)
        for u, buf, a in zip(self.units, self.bufs, inputs):
            a = a.permute(0, 2, 3, 1).numpy()
            p = u.p
            buf[:, p:p + rows, p:p + W] = a[:, :rows]
            if cols:
                buf[:, p + rows, p:p + cols] = a[:, rows, :cols]

    def start_row(self, i):
        for u, buf, patches, vert in zip(self.units, self.bufs, self.patches, self.vert):
            if u.p:  # rows i-p .. i-1 of the input are rows i .. i+p-1 of the padded buffer
                windows = sliding_window_view(buf[:, i:i + u.p], u.kernel, axis=2)  # (n, p, W, cin, k)
                np.copyto(patches, windows.transpose(0, 2, 1, 4, 3))  # (n, W, p, k, cin)
                n, W = vert.shape[:2]
                np.dot(patches.reshape(n * W, -1), u.w_above, out=vert.reshape(n * W, -1))
                vert += u.bias

    def skip(self, i, j):
        self.logits(i, j)

    def logits(self, i, j):
        units, bufs = self.units, self.bufs
        last = len(units) - 1
        for k, u in enumerate(units):
            p, tmp = u.p, self.tmp[k]
            src = bufs[k][:, i + p, j:j + u.width]  # same-row window: columns j-p .. j(-1)
            np.dot(src.reshape(src.shape[0], -1), u.w_left, out=tmp)
            if k == last:
                dst = self.out
            else:
                q = units[k + 1].p
                dst = bufs[k + 1][:, i + q, j + q]
            np.add(tmp, self.vert[k][:, j] if p else u.bias, out=dst)
            if u.residual is not None:
                r = units[u.residual]
                np.add(dst, bufs[u.residual][:, i + r.p, j + r.p], out=dst)
            if u.relu:
                np.maximum(dst, 0, out=dst)
        return self.out.reshape(-1, self.levels, self.C)

    def write(self, i, j):
        p = self.units[0].p
        v = self.x[:, :, i, j]
        if self.one_hot is not None:  # (n, C) -> (n, C * K), as model.inputs does
            v = self.one_hot[v].reshape(len(v), -1)
        else:
            v = v * self.scale
        self.bufs[0][:, i + p, j + p] = v


class _Unit:
    """One masked conv with its BatchNorm folded in, ready for per-pixel steps."""

    def __init__(self, block, relu, residual=None):
        conv, norm = block.conv, block.norm
        scale = torch.ones(conv.cout, dtype=conv.left.weight.dtype)
        bias = conv.left.bias.detach().clone()
        if norm is not None:
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = (bias - norm.running_mean) * scale + norm.bias
        self.cin, self.cout, self.kernel, self.p = conv.cin, conv.cout, conv.kernel, conv.kernel // 2
        self.width = conv.left.weight.shape[-1]
        # (cout, cin, 1, w) -> (w * cin, cout), matching a channels-last window
        w = conv.left.weight.detach() * scale[:, None, None, None]
        self.w_left = w[:, :, 0].permute(2, 1, 0).reshape(-1, conv.cout).contiguous().numpy()
        if self.p:  # (cout, cin, p, k) -> (p * k * cin, cout), matching the row patches
            w = conv.above.weight.detach() * scale[:, None, None, None]
            self.w_above = w.permute(2, 3, 1, 0).reshape(-1, conv.cout).contiguous().numpy()
        self.bias = bias.detach().numpy()
        self.relu, self.residual = relu, residual


def _compiled(model):
    """The model's units, rebuilt only when its parameters or buffers have changed (an
    optimizer step or load_state_dict bumps a tensor's version)."""
    key = tuple((t.data_ptr(), t._version) for t in model.state_dict().values())
    cache = model.__dict__.get("_sampler_units")
    if cache is None or cache[0] != key:
        cache = model.__dict__["_sampler_units"] = (key, list(_units(model.net)))
    return cache[1]


def _unit_inputs(net, h):
    """The input of every masked conv, in order, in an ordinary forward pass of h."""
    from .models import Residual
    inputs = []
    for m in net:
        blocks = m.blocks if isinstance(m, Residual) else [m]
        x = h
        for b in blocks:
            inputs.append(h)
            h = b(h)
        if isinstance(m, Residual):
            h = torch.relu(x + h)
    return inputs


def _units(net):
    """The masked convs of a Sequential of Blocks and Residuals, in order."""
    from .models import Block, Residual
    k = 0
    for m in net:
        if isinstance(m, Block):
            yield _Unit(m, m.relu)
            k += 1
        elif isinstance(m, Residual):
            first = k
            for b in m.blocks[:-1]:
                yield _Unit(b, b.relu)
                k += 1
            yield _Unit(m.blocks[-1], relu=True, residual=first)  # relu(x + block(x))
            k += 1
        else:
            raise NotImplementedError(f"no cached sampler for {type(m).__name__}")
