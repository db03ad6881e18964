"""Sampling: the streaming front end, the raster loop and the reference stepper.

Pixels are drawn in raster order, all channels of a pixel at once when they are
independent given the pixels before, else (model.ar) R, then G given R, then B. Every
sub-pixel's uniform random number is drawn up front from the seed, and a level is chosen
by inverting the CDF of its softmax, so any sampler that computes the same logits returns
the same images for the same seed.

Prefixes: `prefix_mask` (H, W), (n, H, W) or (n, 1, H, W), True where a pixel is known,
fixes those pixels to `prefix` and samples the rest. Known pixels are written, never
sampled, and cost no network evaluation. A mask that is not a raster-order prefix (say
the left half of the image) is allowed: every unknown pixel is conditioned on the known
pixels before it in raster order, and known pixels after it are kept in the output but
cannot influence it, because a PixelCNN only sees the past.

The loop asks a `Stepper` for one pixel's logits at a time: `ReferenceStepper` (here) runs
the whole model per pixel; the fast cached steppers live in pixelcnn/cached.py.
"""
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple, Protocol

import numpy as np
import torch

from . import kernels
from .cached import one_blas_thread, splits, stepper_for


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
    """model.sample_stream(n, ...) as a function: draw n images, yielding Progress every
    `every` pixels (None: only at the end). The arguments, shapes and dtypes are those of
    AutoregressiveModel.sample and .sample_stream (pixelcnn/models.py)."""
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


class Stepper(Protocol):
    """What the raster loop asks of a sampler: the logits of one pixel at a time.

    The loop owns the images x, int64 levels (n, C, H, W) in a NumPy array that it writes
    in place (a part of the batch, with split=True, where the loop draws the batch in parts
    on threads). It builds a stepper as Stepper(model, x, start, label, split, ahead), with
    the model in eval mode and gradients off: the pixels before raster index `start` are
    known in every image and already in x (the stepper may fill its buffers from them);
    label is None or a long tensor (n,); ahead is None or an executor with a thread to
    spare, on which the stepper may work ahead (the next row's rows above, while the loop
    draws this row). Then it visits the pixels (i, j) from `start` to the last, in
    raster order and in runs within a row (`pixels`), calling `start_row` at the first pixel
    it visits in a row. For a pixel known in every image it calls `write`, then `skip`;
    else `logits` (once per channel group drawn: all channels, or R, G, B in turn), each
    followed by `write`. A stepper whose `compiled` is true (pixelcnn/kernels.py) does a
    whole run in one call of its `run` method instead, as `pixels` does. Any stepper that
    computes the same logits draws the same images for the same seed (see `draw`); the
    tests hold every stepper to the reference.
    """

    def start_row(self, i):
        """Row i begins: from here on, every pixel of the rows above is in x."""

    def logits(self, i, j, g=None):
        """(n, K, C) float NumPy: the logits of pixel (i, j) given x as it stands (the
        pixels before (i, j) and, with autoregressive colour, its channels already drawn).
        With g, the channel about to be drawn (autoregressive colour), only channel g's
        logits need be right, and only what they depend on brought up to date."""

    def skip(self, i, j):
        """Pixel (i, j) is known in every image and written, so no logits are asked for it;
        bring any state that the logits of later pixels need up to date."""

    def write(self, i, j):
        """x[:, :, i, j] holds new levels (drawn, or known): take them into the stepper's
        buffers (a stepper that reads x directly does nothing)."""


class ReferenceStepper(Stepper):
    """One full forward pass per pixel drawn: slow, obviously right."""

    def __init__(self, model, x, start, label, split=False, ahead=None):
        self.model, self.x, self.label = model, x, label

    def logits(self, i, j, g=None):
        x = torch.from_numpy(self.x).to(self.model.device)
        return self.model(x, self.label)[:, :, :, i, j].float().cpu().numpy()


class GraphStepper(Stepper):
    """The reference's forward pass per pixel, on a GPU replayed from a CUDA graph captured once
    per batch: a pixel costs one launch and two small copies, not a launch per layer. The model
    reads its input from a buffer on the device, kept equal to x pixel by pixel (`write`);
    elsewhere (the tests, on the CPU) the same bookkeeping runs the model directly."""

    def __init__(self, model, x, start, label, split=False, ahead=None):
        self.x = x
        self.on = torch.from_numpy(x).to(model.device, copy=True)  # a copy on the CPU too: kept by `write`
        label = None if label is None else label.to(model.device)

        @torch.no_grad()  # (on any thread)
        def forward():
            return model(self.on, label)
        self.forward = graphed(forward, model.device)

    def write(self, i, j):
        self.on[:, :, i, j] = torch.from_numpy(self.x[:, :, i, j]).to(self.on.device)

    def logits(self, i, j, g=None):
        return self.forward()[:, :, :, i, j].float().cpu().numpy()


def graphed(fn, device):
    """fn (no arguments: it reads its inputs where they lie), or on CUDA a function that
    replays fn's kernels, captured once as a CUDA graph, and returns the same output tensor."""
    if device.type != "cuda":
        return fn
    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up runs, off the capture: cuDNN picks its algorithms
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()

    def replay():
        graph.replay()
        return out
    return replay


def stepper_class(model, cached):
    """The cached steppers run on the CPU (NumPy); on a GPU, the reference's forward pass per
    pixel, replayed from a CUDA graph (exact alike; see docs/speed.md, "On a GPU")."""
    if not cached:
        return ReferenceStepper
    return stepper_for(model) if model.device.type == "cpu" else GraphStepper


@torch.no_grad()
def _loop(model, x, u, mask, temperature, cached, every, label=None):
    """The raster loop: yield Progress while drawing x (n, C, H, W) in place from the
    uniforms u, leaving the pixels where mask (n, H, W) is True as they are. With more than
    one thread, a batch with the same pixels known in every image is drawn in parts, each
    by a stepper of its own on a thread of its own (kernels.parts): the same images."""
    n, C, H, W = x.shape
    # Pixels before the first one to draw are known in every image: no need to visit them.
    start = 0 if mask is None else int(np.argmin(mask.all(axis=0).reshape(-1)))
    if mask is not None and mask.all():
        start = H * W
    known = np.zeros((n, H, W), bool) if mask is None else mask
    alike = mask is None or (mask == mask[:1]).all()  # so every part draws, or skips, the same pixels
    split = cached and model.device.type == "cpu" and alike and splits(model)
    parts = kernels.parts(n, torch.get_num_threads()) if split else [slice(0, n)]
    with model.evaluating(), one_blas_thread(), ThreadPoolExecutor(len(parts)) as pool:
        # drawn whole with threads to spare, the pool's thread computes ahead (the next row's rows above)
        ahead = pool if len(parts) == 1 and torch.get_num_threads() > 1 else None
        steps = [_Part(model, x[s], u[s], known[s], temperature, cached, start, None if label is None else label[s],
                       len(parts) > 1, ahead) for s in parts]
        probs = lambda: np.concatenate([step.probs for step in steps])  # noqa: E731 (the last pixel's)
        drawn = False
        for first, end in _runs(start, H, W, every):
            i, j = divmod(first, W)
            run = partial(_Part.__call__, i=i, j0=j, j1=j + end - first, new_row=j == 0 or first == start)
            drawn = any(list(pool.map(run, steps)) if len(steps) > 1 else [run(steps[0])])
            if every and end % every == 0 and end < H * W:  # the last one is yielded below
                yield Progress(torch.from_numpy(x.copy()), end, H * W, divmod(end - 1, W),
                               probs() if drawn else None)
        yield Progress(torch.from_numpy(x), H * W, H * W, (H - 1, W - 1), probs() if drawn else None)


class _Part:
    """A stepper drawing the images x (a part of the batch, or all of it), a run at a time."""

    def __init__(self, model, x, u, known, temperature, cached, start, label, split, ahead):
        self.stepper = stepper_class(model, cached)(model, x, start, label, split=split, ahead=ahead)
        self.run = self.stepper.run if getattr(self.stepper, "compiled", False) else partial(pixels, self.stepper,
                                                                                              model.ar)
        self.given = (u, known, temperature)
        self.probs = np.empty((len(x), model.levels, model.image_shape[0]))  # the last pixel's

    def __call__(self, i, j0, j1, new_row):
        """Pixels (i, j0) .. (i, j1 - 1) drawn; whether the last was drawn."""
        if new_row:
            self.stepper.start_row(i)
        return self.run(i, j0, j1, *self.given, self.probs)


def _runs(start, H, W, every):
    """The raster indices from start to H * W as runs [first, end) within a row, each ending
    at a row's end or where a Progress is due (every `every` pixels)."""
    first = start
    while first < H * W:
        end = (first // W + 1) * W
        if every:
            end = min(end, (first // every + 1) * every)
        yield first, end
        first = end


def pixels(stepper, ar, i, j0, j1, u, mask, temperature, probs):
    """Draw pixels (i, j0) .. (i, j1 - 1) into stepper.x where mask (n, H, W) is False, all
    channels at once or (ar) one by one, with the distribution of the last written to probs
    (n, K, C); whether the last was drawn (not known in every image). A stepper's `run`, if
    it has one, does this in one call."""
    x = stepper.x
    C = x.shape[1]
    groups = [(c, slice(c, c + 1)) for c in range(C)] if ar else [(None, slice(0, C))]
    drawn = False
    for j in range(j0, j1):
        todo = ~mask[:, i, j]
        drawn = todo.any()
        if not drawn:  # written first: with ar colour, the features at (i, j) see its channels
            stepper.write(i, j)
            stepper.skip(i, j)
            continue
        for c, g in groups:
            v = draw(stepper.logits(i, j, c)[:, :, g], u[:, g, i, j], temperature,
                     probs[:, :, g] if j == j1 - 1 else None)
            x[todo, g, i, j] = v[todo]
            stepper.write(i, j)
    return drawn
