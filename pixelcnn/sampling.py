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

import torch


class Progress(NamedTuple):
    images: torch.Tensor  # (n, C, H, W) levels; pixels not yet drawn are 0 or the prefix
    done: int  # pixels completed, in raster order
    total: int  # H * W
    position: tuple  # (row, col) of the last pixel completed


def draw(logits, u, temperature):
    """Levels from logits (B, K, ...) and uniforms u (B, ...) by inverting the CDF."""
    probs = torch.softmax(logits.double() / temperature, dim=1)
    cdf = probs.cumsum(dim=1)
    k = (u.unsqueeze(1) > cdf).sum(dim=1)
    return k.clamp_(max=logits.shape[1] - 1)


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
    return prefix.expand(n, C, H, W), m.expand(n, H, W)


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
        x = torch.where(mask.unsqueeze(1), prefix.cpu(), x)
    return _loop(model, x, u, mask, temperature, cached, every)


@torch.no_grad()
def _loop(model, x, u, mask, temperature, cached, every):
    n, C, H, W = x.shape
    was_training = model.training
    model.eval()
    try:
        stepper = cached_stepper(model, n) if cached else ReferenceStepper(model, n)
        for i in range(H):
            stepper.start_row(x, i)
            for j in range(W):
                known = None if mask is None else mask[:, i, j]
                if known is None or not known.all():
                    v = draw(stepper.logits(i, j), u[:, :, i, j], temperature)
                    x[:, :, i, j] = v if known is None else torch.where(known[:, None], x[:, :, i, j], v)
                stepper.write(x, i, j)
                done = i * W + j + 1
                if every and done % every == 0 and done < H * W:
                    yield Progress(x.clone(), done, H * W, (i, j))
        yield Progress(x, H * W, H * W, (H - 1, W - 1))
    finally:
        model.train(was_training)


class ReferenceStepper:
    """One full forward pass per pixel: slow, obviously right."""

    def __init__(self, model, n):
        self.model = model

    def start_row(self, x, i):
        self.x = x

    def logits(self, i, j):
        return self.model(self.x.to(self.model.device))[:, :, :, i, j].cpu()

    def write(self, x, i, j):
        pass


def cached_stepper(model, n):
    # TEMPORARY until the cached sampler lands: the reference loop
    return ReferenceStepper(model, n)
