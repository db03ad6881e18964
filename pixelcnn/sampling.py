"""Sampling: the reference loop and the streaming front end.

Pixels are drawn in raster order, all channels of a pixel at once when they are
independent given the pixels before, else (model.ar) R, then G given R, then B. Every sub-pixel's uniform random number is drawn
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
    probs: np.ndarray | None = None  # (n, K, C): what `position` was drawn from (None: it was known)


def draw(logits, u, temperature, probs=None):
    """Levels (B, C) from logits (B, K, C) and uniforms u (B, C) by inverting the CDF;
    with `probs` (B, K, C), the probabilities they were drawn from are written there."""
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    k = (u[:, None] * cdf[:, -1:] > cdf).sum(axis=1)
    if probs is not None:
        np.divide(p, cdf[:, -1:], out=probs)
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
                  cached=True, every=28, label=None):
    """Generate n images, yielding Progress every `every` pixels (None: only at the end).
    label: the class (int or (n,) tensor) for a class-conditional model."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    label = model.check_label(label, n)
    prefix, mask = check_prefix(model, n, prefix, prefix_mask)
    C, H, W = model.image_shape
    seed = torch.seed() if seed is None else seed
    u = torch.rand((n, C, H, W), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = torch.zeros((n, C, H, W), dtype=torch.long)
    if prefix is not None:
        x = torch.where(mask.unsqueeze(1), prefix, x)
        mask = mask.numpy()
    return _loop(model, x.numpy(), u.numpy(), mask, temperature, cached, every, label)


def stepper_class(model, cached):
    """The cached steppers run on the CPU (NumPy); on a GPU one batched forward pass per
    pixel is fast, and exact alike."""
    from .models import GatedPixelCNN
    if not cached or model.device.type != "cpu":
        return ReferenceStepper
    return GatedStepper if isinstance(model, GatedPixelCNN) else CachedStepper


@torch.no_grad()
def _loop(model, x, u, mask, temperature, cached, every, label=None):
    n, C, H, W = x.shape
    # Pixels before the first one to draw are known in every image: no need to visit them.
    start = 0 if mask is None else int(np.argmin(mask.all(axis=0).reshape(-1)))
    if mask is not None and mask.all():
        start = H * W
    was_training = model.training
    model.eval()
    try:
        stepper = stepper_class(model, cached)(model, x, start, label)
        # the channels drawn together: all at once, or one by one, each seeing those before
        groups = [slice(c, c + 1) for c in range(C)] if model.ar else [slice(0, C)]
        probs, drawn = np.empty((n, model.levels, C)), False  # at a reported pixel, if drawn
        for idx in range(start, H * W):
            i, j = divmod(idx, W)
            if j == 0 or idx == start:
                stepper.start_row(i)
            report = every and (idx + 1) % every == 0 or idx + 1 == H * W
            todo = slice(None) if mask is None else ~mask[:, i, j]
            drawn = mask is None or todo.any()
            if drawn:
                for g in groups:
                    v = draw(stepper.logits(i, j)[:, :, g], u[:, g, i, j], temperature,
                             probs[:, :, g] if report else None)
                    x[todo, g, i, j] = v[todo]
                    stepper.write(i, j)
            else:
                stepper.skip(i, j)
                stepper.write(i, j)
            if report and idx + 1 < H * W:  # the last one is yielded below
                yield Progress(torch.from_numpy(x.copy()), idx + 1, H * W, (i, j), probs.copy() if drawn else None)
        yield Progress(torch.from_numpy(x), H * W, H * W, (H - 1, W - 1), probs if drawn else None)
    finally:
        model.train(was_training)


class ReferenceStepper:
    """One full forward pass per pixel drawn: slow, obviously right."""

    def __init__(self, model, x, start, label):
        self.model, self.x, self.label = model, x, label

    def start_row(self, i):
        pass

    def logits(self, i, j):
        x = torch.from_numpy(self.x).to(self.model.device)
        return self.model(x, self.label)[:, :, :, i, j].float().cpu().numpy()

    def skip(self, i, j):
        pass

    def write(self, i, j):
        pass


class _Buffered:
    """What the cached steppers share: the image x (NumPy, written in place by the loop),
    copied pixel by pixel into `xbuf`, their zero-padded channels-last input buffer (pad
    `xpad`), one-hot or scaled to [0, 1] as model.inputs does."""

    def __init__(self, model, x):
        self.npdt = _check_cpu(model)
        self.x, self.scale = x, 1.0 / (model.levels - 1)
        self.one_hot = np.eye(model.levels, dtype=self.npdt) if model.config.one_hot else None
        self.levels, self.C = model.levels, model.image_shape[0]

    def skip(self, i, j):  # a known pixel: the buffers past the input still need its values
        self.logits(i, j)

    def write(self, i, j):
        v = self.x[:, :, i, j]
        if self.one_hot is not None:  # (n, C) -> (n, C * K)
            v = self.one_hot[v].reshape(len(v), -1)
        else:
            v = v * self.scale
        self.xbuf[:, i + self.xpad, j + self.xpad] = v


class CachedStepper(_Buffered):
    """Fast generation (Ramachandran et al. 2017) for nets of Blocks and Residuals.

    Each masked conv ("unit") keeps its whole input as a padded channels-last buffer.
    At the start of a row, the rows-above part of every unit is computed for the whole
    row in one matmul over its patches; then, per pixel, only the same-row part: a tiny
    matmul over the last few columns of the unit's input. BatchNorm is folded into the
    weights.
    The per-pixel work runs on NumPy views of the buffers, whose per-call overhead is a
    fraction of PyTorch's, which is what dominates at this size.
    """

    def __init__(self, model, x, start, label=None):
        super().__init__(model, x)
        npdt = self.npdt
        n, (C, H, W) = x.shape[0], model.image_shape
        self.units = units = _compiled(model, lambda: list(_units(model.net)))
        # bufs[k]: the input of unit k, (n, H + p, W + 2p, cin), zero padded; the rest scratch
        self.bufs = [np.zeros((n, H + u.p, W + 2 * u.p, u.cin), npdt) for u in units]
        self.tmp = [np.zeros((n, u.cout), npdt) for u in units]
        self.vert = [np.zeros((n, W, u.cout), npdt) if u.p else None for u in units]
        self.patches = [np.zeros((n, W, u.p, u.kernel, u.cin), npdt) if u.p else None for u in units]
        self.out = np.zeros((n, units[-1].cout), npdt)
        self.xbuf, self.xpad = self.bufs[0], units[0].p
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
                _rows_times(buf[:, i:i + u.p], patches, u.w_above, vert)
                vert += u.bias

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


def _check_cpu(model):
    """The NumPy dtype of the model's weights; the cached samplers run on the CPU only."""
    if model.device.type != "cpu":
        raise NotImplementedError("the cached sampler runs on the CPU: model.cpu() first")
    return np.float64 if model.dtype == torch.float64 else np.float32


def _rows_times(rows, patches, weight, out):
    """out (n, W, cout) = every k-wide window of rows (n, r, W + k - 1, cin), flattened in
    the order (r, k, cin) of a conv weight permuted (2, 3, 1, 0), times weight."""
    k = rows.shape[2] - patches.shape[1] + 1
    windows = sliding_window_view(rows, k, axis=2)  # (n, r, W, cin, k)
    np.copyto(patches, windows.transpose(0, 2, 1, 4, 3))  # (n, W, r, k, cin)
    n, W = out.shape[:2]
    np.dot(patches.reshape(n * W, -1), weight, out=out.reshape(n * W, -1))


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
        w = conv.left_weight().detach() * scale[:, None, None, None]
        self.w_left = _row_weight(w)
        if self.p:  # (cout, cin, p, k) -> (p * k * cin, cout), matching the row patches
            w = conv.above.weight.detach() * scale[:, None, None, None]
            self.w_above = w.permute(2, 3, 1, 0).reshape(-1, conv.cout).contiguous().numpy()
        self.bias = bias.detach().numpy()
        self.relu, self.residual = relu, residual


def _row_weight(w):
    """A same-row conv weight (cout, cin, 1, w) -> (w * cin, cout), matching a channels-last window."""
    return w[:, :, 0].permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous().numpy()


def _compiled(model, build):
    """build(): the model's weights ready for stepping, rebuilt only when its parameters
    or buffers have changed (an optimizer step or load_state_dict bumps a tensor's version)."""
    key = tuple((t.data_ptr(), t._version) for t in model.state_dict().values())
    cache = model.__dict__.get("_sampler_units")
    if cache is None or cache[0] != key:
        with torch.no_grad():
            cache = model.__dict__["_sampler_units"] = (key, build())
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


class GatedStepper(_Buffered):
    """The cached sampler for Gated PixelCNN. The vertical stack sees only rows above, so
    at the start of row i it is computed for the whole row, layer by layer, one matmul
    each; per pixel only the horizontal stack (whose convs see only the current row) and
    the head are stepped. Buffers are channels-last."""

    def __init__(self, model, x, start, label=None):
        super().__init__(model, x)
        npdt = self.npdt
        n, (C, H, W) = x.shape[0], model.image_shape
        cfg = model.config
        f, k, p, L = cfg.filters, cfg.kernel, cfg.kernel // 2, cfg.layers
        self.f, self.p, self.xpad = f, p, p
        self.layers, self.head = _compiled(model, lambda: _gated_units(model))
        z = lambda *shape: np.zeros(shape, npdt)  # noqa: E731
        self.xbuf = z(n, H + p, W + 2 * p, model.cin)  # the input, zero padded
        self.vbuf = [z(n, H + p, W + 2 * p, f) for _ in range(L - 1)]  # gated vertical outputs
        self.hbuf = [z(n, W + p, f) for _ in range(L)]  # horizontal outputs, this row, left padded
        self.vh = [z(n, W, 2 * f) for _ in range(L)]  # per row: what v adds to h before the gate
        self.vp = z(n, W, 2 * f)
        self.patches = [z(n, W, p + (l > 0), k, model.cin if l == 0 else f) for l in range(L)]
        lab = None if label is None else label.cpu().numpy()
        self.embed = [(None, None) if u.embed is None else np.split(u.embed[lab].astype(npdt), 2, axis=1)
                      for u in self.layers]
        self.prefill(model, start, label)

    def prefill(self, model, start, label):
        """The buffers at the pixels before `start`, known everywhere, from one forward pass."""
        if start == 0:
            return
        W, p = self.x.shape[3], self.p
        rows, cols = divmod(start, W)
        h = v = model.inputs(torch.from_numpy(self.x))
        last = lambda a: a.permute(0, 2, 3, 1).numpy()  # noqa: E731  channels-last
        self.xbuf[:, p:p + rows, p:p + W] = last(h)[:, :rows]
        if cols:
            self.xbuf[:, p + rows, p:p + cols] = last(h)[:, rows, :cols]
        for l, layer in enumerate(model.layers):
            v, h = layer(v, h, label)
            if l < len(self.vbuf):
                self.vbuf[l][:, p:p + rows, p:p + W] = last(v)[:, :rows]
            if cols:
                self.hbuf[l][:, p:p + cols] = last(h)[:, rows, :cols]

    def start_row(self, i):
        p, f = self.p, self.f
        for l, u in enumerate(self.layers):
            # strict: rows i-p .. i-1 of the image; else rows i-p .. i of the layer below's v
            src = self.xbuf[:, i:i + p] if l == 0 else self.vbuf[l - 1][:, i:i + p + 1]
            vp = self.vp
            _rows_times(src, self.patches[l], u.wv, vp)
            vp += u.bv
            ev, eh = self.embed[l]
            np.dot(vp, u.wv2h, out=self.vh[l])
            self.vh[l] += u.bv2h if eh is None else u.bv2h + eh[:, None]
            if l < len(self.vbuf):
                if ev is not None:
                    vp += ev[:, None]
                self.vbuf[l][:, i + p, p:-p] = _gate(vp, f)

    def logits(self, i, j):
        p, f = self.p, self.f
        h = None
        for l, u in enumerate(self.layers):
            src = self.xbuf[:, i + p, j:j + u.width] if l == 0 else self.hbuf[l - 1][:, j:j + p + 1]
            hp = src.reshape(len(src), -1) @ u.wh
            hp += u.bh
            hp += self.vh[l][:, j]
            out = _gate(hp, f) @ u.wout
            out += u.bout
            if h is not None:
                out += h
            self.hbuf[l][:, j + p] = h = out
        (w1, b1), (w2, b2) = self.head
        t = np.maximum(h, 0) @ w1 + b1
        return (np.maximum(t, 0) @ w2 + b2).reshape(-1, self.levels, self.C)


def _gate(t, f):
    a, b = t[..., :f], t[..., f:]
    return np.tanh(a) / (1 + np.exp(-b))


class _GatedUnit:
    """One gated layer's weights as NumPy matrices (in, out) for channels-last rows."""

    def __init__(self, layer):
        num = lambda t: t.detach().numpy()  # noqa: E731
        vw = layer.v.conv.weight  # (2f, cin, rows, k)
        self.wv, self.bv = vw.permute(2, 3, 1, 0).reshape(-1, vw.shape[0]).contiguous().numpy(), num(layer.v.conv.bias)
        self.wv2h, self.bv2h = num(layer.v2h.weight[:, :, 0, 0].T).copy(), num(layer.v2h.bias)
        self.wh, self.bh = _row_weight(layer.h.left_weight()), num(layer.h.left.bias)
        self.width = layer.h.left.weight.shape[-1]
        self.wout, self.bout = _row_weight(layer.out.left_weight()), num(layer.out.left.bias)
        self.embed = None if layer.embed is None else num(layer.embed.weight)


def _gated_units(model):
    head = [(_row_weight(m.left_weight()), m.left.bias.detach().numpy()) for m in model.head[1::2]]
    return [_GatedUnit(layer) for layer in model.layers], head
