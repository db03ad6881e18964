"""The cached steppers' per-pixel work compiled with numba: a run of pixels of one row in one call.

At batch 1 the pure NumPy steppers (pixelcnn/cached.py) spend their time in per-pixel call
overhead, dozens of tiny NumPy calls per pixel, not in arithmetic. Here the same steps run
as plain loops, compiled once (and cached on disk): every layer's same-row part, the draw
(`sampling.draw`'s arithmetic, in the same order) and the write of the levels drawn into
the input buffer, for every pixel of the run. The rows-above parts stay one matmul per row
in cached.py. With autoregressive colour, the step for channel g finishes only the
features of colour g (`spans`): those of earlier colours are already final and those of
later ones see channels not yet drawn, so a pixel costs one pass, not three. The steps
push rather than pull: each input, once known, is added to every output that may see it
(`pushes`), so each weight row is read once per pixel in a loop over all the outputs it
feeds, not three times in short loops over a third of them each.

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


def pushes(inputs, outputs, groups, shift, centre):
    """(groups, 4) ints: for each channel group g drawn in turn, the inputs at the pixel itself
    that are new (lo, hi: colour g, or g - 1 for a type-A mask, shift 1; none without a
    centre column) and the outputs that may see them (lo, hi: from the first of colour g on,
    a superset where the mask's zero weights add nothing), for colours `inputs`, `outputs`."""
    if groups == 1:
        return np.array([[0, len(inputs) if centre else 0, 0, len(outputs)]], np.int64)
    out = []
    for g in range(groups):
        idx = np.flatnonzero(np.asarray(inputs) == g - shift) if centre else []
        seen = np.flatnonzero(np.asarray(outputs) >= g)
        assert len(idx) == 0 or idx[-1] - idx[0] == len(idx) - 1
        out.append([idx[0], idx[-1] + 1, seen[0], seen[-1] + 1] if len(idx) else [0, 0, seen[0], seen[-1] + 1])
    return np.array(out, np.int64)


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
def _vec_times(v, vlo, vhi, w, acc, lo, hi, relu):
    """acc[lo:hi] += v[vlo:vhi] (or its relu) times w[vlo:vhi, lo:hi]."""
    for t in range(vlo, vhi):
        s = v[t]
        if s != 0 and not (relu and s < 0):
            _add_row(s, w, t, acc, lo, hi, 1)


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
def _centre_times(buf, b, r, col, t, lo, hi, w, acc, plo, phi):
    """acc[plo:phi] += the channels lo .. hi - 1 of buf[b, r, col], window position t, times w."""
    cin = buf.shape[3]
    for c in range(lo, hi):
        s = buf[b, r, col, c]
        if s != 0:
            _add_row(s, w, t * cin + c, acc, plo, phi, 1)


@njit(cache=True, nogil=True)
def conv_step(state, i, j, g):
    """ConvStepper: every unit's outputs of colour group g at (i, j), each into the next unit's
    buffer, the last into out. Pushed, not pulled: at g = 0, acc[b, k] starts as the rows
    above (vert) plus the pixels left of (i, j); at each g, the channels of (i, j) itself that
    are new (pushes[k, g]: inputs lo, hi) add to every output that may see them (outputs lo,
    hi: those of colours from g on), each input row once per pixel, not once per colour."""
    bufs, pads, widths, w_left, vert, residual, relu, spans, pushes, acc, out = state
    last = len(bufs) - 1
    for k in range(len(bufs)):
        p, w, buf = pads[k], w_left[k], bufs[k]
        past = min(widths[k], p)  # window positions left of the pixel; a wider window ends on it
        lo, hi, st = spans[k, g, 0], spans[k, g, 1], spans[k, g, 2]
        clo, chi, plo, phi = pushes[k, g, 0], pushes[k, g, 1], pushes[k, g, 2], pushes[k, g, 3]
        r, nxt = residual[k], bufs[min(k + 1, last)]
        rbuf, q, rq = bufs[max(r, 0)], pads[min(k + 1, last)], pads[max(r, 0)]
        for b in range(out.shape[0]):
            a = acc[b, k]
            if g == 0:
                v = vert[k][b, j]
                for o in range(v.shape[0]):
                    a[o] = v[o]
                _window_times(buf, b, i + p, j, past, w, a, 0, v.shape[0], 1)
            _centre_times(buf, b, i + p, j + p, past, clo, chi, w, a, plo, phi)
            for o in range(lo, hi, st):
                y = a[o]
                if r >= 0:
                    y += rbuf[b, i + rq, j + rq, o]
                if relu[k]:
                    y = max(y, 0)
                if k == last:
                    out[b, o] = y
                else:
                    nxt[b, i + q, j + q, o] = y


@njit(cache=True, nogil=True)
def gated_step(state, i, j, g):
    """GatedStepper: the horizontal stack's and the head's outputs of colour group g at (i, j),
    into hbuf[k][:, 0, j + p] and out; pushed as in conv_step: at g = 0 the accumulators start
    as the biases, the vertical stack and the pixels left of (i, j); at each g, the features
    of colour g (and of the image, colour g - 1: x_push[g]) add to those of colours from g on."""
    xbuf, p, hbuf, vh, widths, wh, bh, wout, bout, w1, b1, w2, b2, spans, x_push, hp, hacc, gk, t, out = state
    f = wout[0].shape[0]
    lo, hi = spans[g, 0], spans[g, 1]
    for b in range(out.shape[0]):
        for k in range(len(hbuf)):
            below, r = hbuf[k - 1] if k else xbuf, i + p if k == 0 else 0
            hpk, hk = hp[b, k], hacc[b, k]
            past = min(widths[k], p)
            if g == 0:
                bhk, vhk = bh[k], vh[k][b, j]
                for o in range(2 * f):
                    hpk[o] = bhk[o] + vhk[o]
                _window_times(below, b, r, j, past, wh[k], hpk, 0, 2 * f, 1)
                hk[:] = bout[k]
            clo, chi = (x_push[g, 0], x_push[g, 1]) if k == 0 else (lo, hi)
            for half in (0, f):  # the gate's a and b, each from colour g on
                _centre_times(below, b, r, j + p, past, clo, chi, wh[k], hpk, half + lo, half + f)
            for o in range(lo, hi):
                gk[o] = np.tanh(hpk[o]) / (1 + np.exp(-hpk[f + o]))
            _vec_times(gk, lo, hi, wout[k], hk, lo, f, False)
            h = hbuf[k][b, 0, j + p]
            for o in range(lo, hi):
                h[o] = hk[o] + (below[b, 0, j + p, o] if k else 0)
        tb, ob = t[b], out[b]
        if g == 0:
            tb[:] = b1
            ob[:] = b2
        _vec_times(hbuf[len(hbuf) - 1][b, 0, j + p], lo, hi, w1, tb, lo, f, True)
        _vec_times(tb, lo, hi, w2, ob, 0, ob.shape[0], True)


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
