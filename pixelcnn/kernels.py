"""The cached steppers' per-pixel work compiled with numba: a run of pixels of one row in one call.

At batch 1 the pure NumPy steppers (pixelcnn/cached.py) spend their time in per-pixel call
overhead, dozens of tiny NumPy calls per pixel, not in arithmetic. Here the same steps run
as plain loops, compiled once (and cached on disk): every layer's same-row part, the draw
(`sampling.draw`'s arithmetic, in the same order) and the write of the levels drawn into
the input buffer, for every pixel of the run. The rows-above parts stay one matmul per row
in cached.py. With autoregressive colour, the step for channel g computes only the
features of colour g (`spans`): those of earlier colours are already final and those of
later ones see channels not yet drawn, so a pixel costs one pass, not three.

Sums run in the weights' dtype, in another order than BLAS's: the logits agree with the
pure steppers' to rounding, so the images are the same but for a uniform within rounding of
a CDF boundary (tests/test_sampling_exact.py holds both to the reference). Indexing is
flat in the inner loops (a NumPy view made there, w[r], costs more than the arithmetic) and
unsigned (a signed index is checked for wraparound, which keeps the loop from vectorizing).

`AVAILABLE` is False where numba is not installed (or $PIXELCNN_PURE is set): the cached
steppers then run their pure NumPy path. They do from a batch of `BATCH` images on, too:
there, NumPy's per-call overhead is shared by the batch, and its BLAS matmuls outrun
these loops (measured in docs/speed.md).
"""
import os

import numpy as np

try:
    if os.environ.get("PIXELCNN_PURE"):
        raise ImportError("PIXELCNN_PURE is set")
    from numba import njit
    from numba.typed import List  # noqa: F401 (the steppers' lists of buffers and weights)
    AVAILABLE = True
except ImportError:  # the pure NumPy steppers
    AVAILABLE = False

    def njit(*args, **kwargs):
        return lambda f: f

BATCH = 8
# From 2 to SPLIT images, with more than one thread (torch.set_num_threads), the raster loop
# splits the batch into a part per thread, each drawn compiled on its own thread (the kernels
# let go of the GIL; NumPy's many small calls would not), for the models where that beats one
# thread's NumPy path at batch 16 and 32 on two cores (cached.splits; docs/speed.md)
SPLIT = 32


def used(n, split=False):
    """Whether the cached steppers run compiled for a batch of n images (split: a part of a
    batch that the raster loop splits across threads)."""
    return AVAILABLE and (n < BATCH or split)


def bound(kernel, args):
    """`kernel` compiled for the types of `args` (from the disk cache, or now), to be called
    with arguments of the same types, bypassing numba's dispatch: it types every argument
    on every call, about 150 µs with a stepper's state, a tenth of a row's work at batch 1."""
    return kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))


def parts(n, threads):
    """The slices of a batch of n that the raster loop draws on threads of their own."""
    k = min(n, threads) if AVAILABLE and n <= SPLIT else 1
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def spans(colours, groups):
    """(groups, 3) ints: for each channel group g drawn in turn, the outputs of colour g as
    range(lo, hi, step) (a block, or every C-th for logits laid out (K, C)); one group: all."""
    colours = np.asarray(colours)
    if groups == 1:
        return np.array([[0, len(colours), 1]], np.int64)
    out = []
    for g in range(groups):
        idx = np.flatnonzero(colours == g)
        step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
        assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1, step))
        out.append([idx[0], idx[-1] + 1, step])
    return np.array(out, np.int64)


@njit(cache=True, nogil=True)
def _window_times(buf, b, r, j, width, w, acc, lo, hi, step):
    """acc[o] += the window buf[b, r, j:j + width] (flattened, channels last) times w[:, o],
    for o in range(lo, hi, step); zeros (one-hot inputs, ReLU outputs) are skipped."""
    cin = buf.shape[3]
    for t in range(width):
        for c in range(cin):
            s = buf[b, r, j + t, c]
            if s != 0:
                _add_row(s, w, t * cin + c, acc, lo, hi, step)


@njit(cache=True, nogil=True)
def _vec_times(v, w, acc, lo, hi, step, relu):
    """acc[o] += v (or relu(v)) times w[:, o], for o in range(lo, hi, step)."""
    for t in range(v.shape[0]):
        s = v[t]
        if s != 0 and not (relu and s < 0):
            _add_row(s, w, t, acc, lo, hi, step)


@njit(cache=True, nogil=True, inline="always")
def _add_row(s, w, row, acc, lo, hi, step):
    """acc[o] += s * w[row, o], for o in range(lo, hi, step)."""
    if step == 1:  # unsigned indices, which need no wraparound: the loop vectorizes
        urow = np.uint64(row)
        for o in range(np.uint64(lo), np.uint64(hi)):
            acc[o] += s * w[urow, o]
    else:
        for o in range(lo, hi, step):
            acc[o] += s * w[row, o]


@njit(cache=True, nogil=True)
def _draw(logits, b, c, C, u, temperature, probs, report, z):
    """sampling.draw for channel c of image b: logits (n, K * C), laid out (K, C); z: scratch (K,)."""
    K = z.shape[0]
    top = -np.inf
    for k in range(K):
        z[k] = np.float64(logits[b, k * C + c]) / temperature
        top = max(top, z[k])
    total = 0.0
    for k in range(K):
        z[k] = np.exp(z[k] - top)
        total += z[k]
    level, cdf = 0, 0.0
    for k in range(K):
        cdf += z[k]
        if u * total > cdf:
            level += 1
        if report:
            probs[b, k, c] = z[k] / total
    return min(level, K - 1)


@njit(cache=True, nogil=True)
def _write(x, xbuf, b, i, j, pad, inp):
    """The levels x[b, :, i, j] into the input buffer as model.inputs lays them out, inp =
    (inp): per channel, one-hot (one_hot = K) or times scale, then (first)
    whether it is pixel (0, 0)'s."""
    one_hot, scale, first = inp
    w = max(one_hot, 1) + first
    for c in range(x.shape[1]):
        v = x[b, c, i, j]
        if one_hot:
            for k in range(one_hot):
                xbuf[b, i + pad, j + pad, c * w + k] = k == v
        else:
            xbuf[b, i + pad, j + pad, c * w] = v * scale
        if first:
            xbuf[b, i + pad, j + pad, c * w + w - 1] = v == x[b, c, 0, 0]


@njit(cache=True, nogil=True)
def _drawn(x, u, mask, temperature, probs, report, i, j, g, ar, inp, xbuf, pad, out, z):
    """Draw channel group g of pixel (i, j) (ar: channel g, else all) from the logits in out
    (n, K * C) where mask is False, and write the pixel into the input buffer."""
    C = x.shape[1]
    for b in range(x.shape[0]):
        for c in range(g if ar else 0, g + 1 if ar else C):
            v = _draw(out, b, c, C, u[b, c, i, j], temperature, probs, report, z)
            if not mask[b, i, j]:
                x[b, c, i, j] = v
        _write(x, xbuf, b, i, j, pad, inp)


@njit(cache=True, nogil=True)
def _known(x, mask, i, j, inp, xbuf, pad):
    """Whether pixel (i, j) is known in every image; if so, written into the input buffer
    (with ar, so that the later colours of (i, j) see the earlier)."""
    for b in range(mask.shape[0]):
        if not mask[b, i, j]:
            return False
    for b in range(mask.shape[0]):
        _write(x, xbuf, b, i, j, pad, inp)
    return True


@njit(cache=True, nogil=True)
def conv_step(state, i, j, g):
    """ConvStepper: every unit's outputs of colour group g at (i, j), each into the next unit's
    buffer, the last into out."""
    bufs, pads, widths, w_left, vert, residual, relu, spans, acc, out = state
    last = len(bufs) - 1
    for k in range(len(bufs)):
        p, w, v, buf = pads[k], w_left[k], vert[k], bufs[k]
        lo, hi, st = spans[k, g, 0], spans[k, g, 1], spans[k, g, 2]
        r = residual[k]
        for b in range(out.shape[0]):
            for o in range(lo, hi, st):
                acc[o] = v[b, j, o]
            _window_times(buf, b, i + p, j, widths[k], w, acc, lo, hi, st)
            if r >= 0:
                rbuf, q = bufs[r], pads[r]
                for o in range(lo, hi, st):
                    acc[o] += rbuf[b, i + q, j + q, o]
            if relu[k]:
                for o in range(lo, hi, st):
                    acc[o] = max(acc[o], 0)
            if k == last:
                for o in range(lo, hi, st):
                    out[b, o] = acc[o]
            else:
                nxt, q = bufs[k + 1], pads[k + 1]
                for o in range(lo, hi, st):
                    nxt[b, i + q, j + q, o] = acc[o]


@njit(cache=True, nogil=True)
def gated_step(state, i, j, g):
    """GatedStepper: the horizontal stack's and the head's outputs of colour group g at (i, j),
    into hbuf[k][:, 0, j + p] and out."""
    xbuf, p, hbuf, vh, widths, wh, bh, wout, bout, w1, b1, w2, b2, spans, head_span, hp, gated, t, out = state
    f = wout[0].shape[0]
    lo, hi = spans[g, 0], spans[g, 1]
    hlo, hhi, hst = head_span[g, 0], head_span[g, 1], head_span[g, 2]
    for b in range(out.shape[0]):
        for k in range(len(hbuf)):
            bhk, vhk, below = bh[k], vh[k][b, j], hbuf[k - 1] if k else xbuf
            for half in (0, f):
                for o in range(half + lo, half + hi):
                    hp[o] = bhk[o] + vhk[o]
                _window_times(below, b, i + p if k == 0 else 0, j, widths[k], wh[k], hp, half + lo, half + hi, 1)
            gk, h, bk = gated[b, k], hbuf[k][b, 0, j + p], bout[k]  # gk: kept over the pixel's colour steps
            for o in range(lo, hi):
                gk[o] = np.tanh(hp[o]) / (1 + np.exp(-hp[f + o]))
            if k:
                hk = below[b, 0, j + p]
                for o in range(lo, hi):
                    h[o] = bk[o] + hk[o]
            else:
                for o in range(lo, hi):
                    h[o] = bk[o]
            _vec_times(gk, wout[k], h, lo, hi, 1, False)
        tb = t[b]
        for o in range(lo, hi):
            tb[o] = b1[o]
        _vec_times(hbuf[len(hbuf) - 1][b, 0, j + p], w1, tb, lo, hi, 1, True)
        ob = out[b]
        for o in range(hlo, hhi, hst):
            ob[o] = b2[o]
        _vec_times(tb, w2, ob, hlo, hhi, hst, True)


# conv_run and gated_run: the raster loop's `sampling.pixels` for pixels (i, j0) .. (i, j1 - 1),
# with the probs of the last; whether it was drawn (not known in every image). Two copies of
# one loop: numba does not cache a function that takes another as an argument.

@njit(cache=True, nogil=True)
def conv_run(x, u, mask, temperature, probs, i, j0, j1, inp, ar, state):
    xbuf, pad, out = state[0][0], state[1][0], state[-1]
    z, drawn = np.empty(out.shape[1] // x.shape[1]), False
    for j in range(j0, j1):
        drawn = not _known(x, mask, i, j, inp, xbuf, pad)
        for g in range(x.shape[1] if ar else 1):
            conv_step(state, i, j, g)
            if drawn:
                _drawn(x, u, mask, temperature, probs, j == j1 - 1, i, j, g, ar, inp, xbuf, pad, out, z)
    return drawn


@njit(cache=True, nogil=True)
def gated_run(x, u, mask, temperature, probs, i, j0, j1, inp, ar, state):
    xbuf, pad, out = state[0], state[1], state[-1]
    z, drawn = np.empty(out.shape[1] // x.shape[1]), False
    for j in range(j0, j1):
        drawn = not _known(x, mask, i, j, inp, xbuf, pad)
        for g in range(x.shape[1] if ar else 1):
            gated_step(state, i, j, g)
            if drawn:
                _drawn(x, u, mask, temperature, probs, j == j1 - 1, i, j, g, ar, inp, xbuf, pad, out, z)
    return drawn
