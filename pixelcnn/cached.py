"""The fast cached samplers (Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models"), in NumPy, for the CPU.

Each is a stepper for the raster loop in pixelcnn/sampling.py (the protocol is written
down there, `sampling.Stepper`): it keeps every layer's input as a buffer, computes what a
layer sees of the rows above once per row, and per pixel only what it sees of the current
row. `ConvStepper` steps nets of Blocks and Residuals (PixelCNN, PixelRCNN),
`GatedStepper` Gated PixelCNN. Both draw exactly the reference loop's images; the tests
check that for every model. The weights are folded (BatchNorm into the convs, colour masks
applied) once per set of weights and cached on the model (`folded_weights`).
With numba (pixelcnn/kernels.py), the per-pixel work of a run of pixels, the draws
included, is one compiled call (`run`); without it, it runs on NumPy views of the
buffers, whose per-call overhead is a fraction of PyTorch's. The rows-above part is
computed in two: that of the row just drawn when a row starts, that of the older rows on a
thread to spare (`ahead`), while the row before is drawn.
"""
import itertools
import threading

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from . import kernels
from .layers import Block, GatedLayer, Residual, colour_groups

_blas = []  # the threadpoolctl controller, made on first use (it looks through the loaded libraries)


def one_blas_thread():
    """A context in which NumPy's BLAS runs on one thread. The steppers' matmuls are small
    (a row at a time); OpenBLAS's threads, on a machine busy with other work, spend far
    longer waiting for each other than the matmul takes (docs/speed.md)."""
    if not _blas:
        _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")


def stepper_for(model):
    """The cached stepper for the model's layers: GatedStepper for GatedLayers, else
    ConvStepper (which raises NotImplementedError for layers it does not know)."""
    return GatedStepper if any(isinstance(m, GatedLayer) for m in model.modules()) else ConvStepper


def splits(model):
    """Whether the raster loop draws a batch in parts on threads (kernels.parts) for this model:
    it pays, measured (docs/speed.md), for the nets of Blocks and Residuals and for Gated
    PixelCNN with autoregressive colour, not for plain Gated PixelCNN, whose horizontal stack
    runs faster in NumPy's BLAS on one thread at batch 16 than in two threads' compiled loops."""
    return stepper_for(model) is ConvStepper or model.ar


class _Buffered:
    """What the cached steppers share: the image x (NumPy, written in place by the loop),
    copied pixel by pixel into `xbuf`, their zero-padded channels-last input buffer (pad
    `xpad`), one-hot or scaled to [0, 1] as model.inputs does."""

    def __init__(self, model, x):
        self.npdt = _check_cpu(model)
        self.x, self.scale = x, 1.0 / (model.levels - 1)
        self.one_hot = np.eye(model.levels, dtype=self.npdt) if model.config.one_hot else None
        self.first = model.config.same_as_first
        self.levels, self.C, self.ar = model.levels, model.image_shape[0], model.ar

    def skip(self, i, j):  # a known pixel, once written: the buffers past the input still need its values
        self.logits(i, j)

    def start_row(self, i):
        """The rows-above part of row i: that of its rows but the last (computed on `ahead`
        while row i - 1 was drawn, if there is one) plus the last's; then row i + 1's older
        rows are started on `ahead`, to run on another core while this row is drawn."""
        older = self._next.result() if self._next is not None and self._next_row == i else self.older(i)
        self.newest(i, older)
        if self.ahead is not None and i + 1 < self.x.shape[2]:
            self._next, self._next_row = self.ahead.submit(self.older, i + 1), i + 1

    ahead = _next = None  # an executor to compute ahead on (sampling: one that is idle), and its future
    compiled = False  # whether `run` is there: kernels.used(n), and then the state for it is built
    bound = None  # the kernel compiled for the types of run's arguments

    def run(self, i, j0, j1, u, mask, temperature, probs):
        """Pixels (i, j0) .. (i, j1 - 1) drawn by the compiled kernel (the raster loop's
        `sampling.pixels`, in one call); whether the last was drawn. Only if self.compiled."""
        inp = (0 if self.one_hot is None else self.levels, self.scale, self.first)
        args = (self.x, u, mask, float(temperature), probs, i, j0, j1, inp, self.ar, self.state)
        if self.bound is None:  # the run's arguments keep their types: typed once
            self.bound = kernels.bound(self.kernel, args)
        return self.bound(*args)

    def write(self, i, j):
        v = self.x[:, :, i, j]  # (n, C) -> (n, C, per channel) -> (n, C * per channel)
        out = self.one_hot[v] if self.one_hot is not None else v[:, :, None] * self.scale
        if self.first:
            out = np.concatenate([out, (v == self.x[:, :, 0, 0])[:, :, None]], axis=2)
        self.xbuf[:, i + self.xpad, j + self.xpad] = out.reshape(len(v), -1)


class ConvStepper(_Buffered):
    """The cached stepper for nets of Blocks and Residuals (model.net).

    Each masked conv ("unit") keeps its whole input as a padded channels-last buffer.
    At the start of a row, the rows-above part of every unit is computed for the whole
    row in one matmul over its patches; then, per pixel, only the same-row part: a tiny
    matmul over the last few columns of the unit's input.
    """

    def __init__(self, model, x, start, label=None, split=False, ahead=None):
        super().__init__(model, x)
        npdt = self.npdt
        n, (H, W) = x.shape[0], model.image_shape[1:]
        self.units = units = folded_weights(model, lambda: _coloured(list(_units(model.net)), model))
        self.ahead = _worth_it(ahead, [u.w_above for u in units if u.p])
        # bufs[k]: the input of unit k, (n, H + p, W + 2p, cin), zero padded; the rest scratch
        self.bufs = [np.zeros((n, H + u.p, W + 2 * u.p, u.cin), npdt) for u in units]
        self.tmp = [np.zeros((n, u.cout), npdt) for u in units]
        # vert[k]: what the rows above add to unit k's outputs in this row, bias included
        self.vert = [np.zeros((n, W, u.cout), npdt) + u.bias for u in units]
        # per unit: the patches of the rows above but the last, of the last, and the older rows' part
        self.patches = [[np.zeros((n, W, r, u.kernel, u.cin), npdt) for r in (max(u.p - 1, 0), 1)] for u in units]
        self.olds = [np.zeros((n, W, u.cout), npdt) for u in units]
        self.windows = [windows(buf, u.kernel) if u.p else None for u, buf in zip(units, self.bufs)]
        self.out = np.zeros((n, units[-1].cout), npdt)
        self.xbuf, self.xpad = self.bufs[0], units[0].p
        if start:  # the buffers at the known pixels: every unit's input in one forward pass
            seen = _forward_seeing(model, x, label, [u.conv for u in units])
            for u, buf, (args, _) in zip(units, self.bufs, seen):
                _fill(buf, args[0], start, u.p)
        spans = np.stack([u.spans for u in units])
        # per colour g drawn (autoregressive colour), the outputs of colour g of every unit: (slice, the
        # weight's columns for them, a place for them): a step computes a third of every unit
        self.by_colour = [[(slice(lo, hi, step), np.ascontiguousarray(u.w_left[:, lo:hi:step]),
                            np.zeros((n, len(range(lo, hi, step))), npdt)) for lo, hi, step in spans[k]]
                          for k, u in enumerate(units)] if self.ar else None
        if kernels.used(n, split):
            ints = lambda vs: np.array(vs, np.int64)  # noqa: E731
            self.kernel, self.compiled = kernels.conv_run, True
            self.state = (kernels.List(self.bufs), ints([u.p for u in units]), ints([u.width for u in units]),
                          kernels.List([u.w_left for u in units]), kernels.List(self.vert),
                          ints([-1 if u.residual is None else u.residual for u in units]),
                          ints([u.relu for u in units]), spans, np.stack([u.pushes for u in units]),
                          np.zeros((n, len(units), max(u.cout for u in units)), npdt), self.out)

    def older(self, i):  # rows i-p .. i-1 of the input are rows i .. i+p-1 of the padded buffer
        for u, win, (patches, _), old in zip(self.units, self.windows, self.patches, self.olds):
            if u.p > 1:
                _rows_times(win[:, i:i + u.p - 1], patches, u.w_above[0], old)
        return self.olds

    def newest(self, i, olds):
        for u, win, (_, patches), vert, old in zip(self.units, self.windows, self.patches, self.vert, olds):
            if u.p:
                _rows_times(win[:, i + u.p - 1:i + u.p], patches, u.w_above[1], vert)
                if u.p > 1:
                    vert += old
                vert += u.bias

    def logits(self, i, j, g=None):
        units, bufs = self.units, self.bufs
        last = len(units) - 1
        for k, u in enumerate(units):
            p = u.p
            src = bufs[k][:, i + p, j:j + u.width]  # same-row window: columns j-p .. j(-1)
            # colour g's outputs only, where g is given: those of earlier colours are final, and at this
            # pixel those of later ones see channels not drawn yet (and what reads them, colour g of the
            # next unit, weighs them by zero)
            cols, w, tmp = (slice(None), u.w_left, self.tmp[k]) if g is None else self.by_colour[k][g]
            np.dot(src.reshape(src.shape[0], -1), w, out=tmp)
            if k == last:
                dst = self.out[:, cols]
            else:
                q = units[k + 1].p
                dst = bufs[k + 1][:, i + q, j + q, cols]
            np.add(tmp, self.vert[k][:, j, cols], out=dst)
            if u.residual is not None:
                r = units[u.residual]
                np.add(dst, bufs[u.residual][:, i + r.p, j + r.p, cols], out=dst)
            if u.relu:
                np.maximum(dst, 0, out=dst)
        return self.out.reshape(-1, self.levels, self.C)


class _Unit:
    """One masked conv with its BatchNorm folded in, ready for per-pixel steps."""

    def __init__(self, block, relu, residual=None):
        conv, norm = block.conv, block.norm
        scale = torch.ones(conv.cout, dtype=conv.left.weight.dtype)
        bias = conv.left.bias.detach().clone()
        if norm is not None:
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = (bias - norm.running_mean) * scale + norm.bias
        self.conv = conv  # whose input this unit's buffer holds
        self.cin, self.cout, self.kernel, self.p = conv.cin, conv.cout, conv.kernel, conv.kernel // 2
        self.width = conv.left.weight.shape[-1]
        # (cout, cin, 1, w) -> (w * cin, cout), matching a channels-last window
        w = conv.left_weight().detach() * scale[:, None, None, None]
        self.w_left = _row_weight(w)
        if self.p:  # (cout, cin, p, k) -> (p * k * cin, cout), matching the row patches
            w = conv.above.weight.detach() * scale[:, None, None, None]
            self.w_above = _older_newest(w.permute(2, 3, 1, 0).reshape(-1, conv.cout).contiguous().numpy(), self.p)
        self.bias = bias.detach().numpy()
        self.relu, self.residual = relu, residual


def _coloured(units, model):
    """The units, each given the outputs of each colour group drawn in turn (`spans`) and what
    is pushed at each (`pushes`), see pixelcnn/kernels.py."""
    C, last = model.image_shape[0], units[-1]
    G = C if model.ar else 1
    for u in units:
        outputs = colour_groups(u.cout, C, u is last)
        u.spans = kernels.spans(outputs, G)
        u.pushes = kernels.pushes(colour_groups(u.cin, C), outputs, G, u.conv.mask == "A", u.width > u.p)
    return units


def _units(net):
    """The masked convs of a Sequential of Blocks and Residuals, in order."""
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
    """The cached stepper for Gated PixelCNN. The vertical stack sees only rows above, so
    at the start of row i it is computed for the whole row, layer by layer, one matmul
    each; per pixel only the horizontal stack (whose convs see only the current row) and
    the head are stepped. Buffers are channels-last."""

    def __init__(self, model, x, start, label=None, split=False, ahead=None):
        super().__init__(model, x)
        npdt = self.npdt
        n, (H, W) = x.shape[0], model.image_shape[1:]
        cfg = model.config
        f, k, p, L = cfg.filters, cfg.kernel, cfg.kernel // 2, cfg.layers
        self.f, self.p, self.xpad = f, p, p
        self.layers, self.head = folded_weights(model, lambda: _gated_units(model))
        self.ahead = _worth_it(ahead, [u.wv for u in self.layers])
        z = lambda *shape: np.zeros(shape, npdt)  # noqa: E731
        self.xbuf = z(n, H + p, W + 2 * p, model.cin)  # the input, zero padded
        self.vbuf = [z(n, H + p, W + 2 * p, f) for _ in range(L - 1)]  # gated vertical outputs
        self.hbuf = [z(n, W + p, f) for _ in range(L)]  # horizontal outputs, this row, left padded
        self.vh = [z(n, W, 2 * f) for _ in range(L)]  # per row: what v adds to h before the gate
        self.vp = z(n, W, 2 * f)
        # per layer: the patches of its rows but the last (p + 1 rows of v below, p of the image), of the last
        self.patches = [[z(n, W, r, k, model.cin if i == 0 else f) for r in (p - (i == 0), 1)] for i in range(L)]
        self.olds = [z(n, W, 2 * f) for _ in range(L)]
        self.windows = [windows(buf, k) for buf in [self.xbuf, *self.vbuf]]  # each layer's vertical input
        # per layer with a summary: the max so far over the rows of v of its features (GatedLayer)
        self.summaries = [np.full((n, f), -np.inf, npdt) for _ in range(L)]
        lab = None if label is None else label.cpu().numpy()
        self.embed = [(None, None) if u.embed is None else np.split(u.embed[lab].astype(npdt), 2, axis=1)
                      for u in self.layers]
        if start:  # the buffers at the known pixels: every layer's input and outputs in one forward pass
            seen = _forward_seeing(model, x, label, list(model.layers))
            _fill(self.xbuf, seen[0][0][0], start, p)
            rows, cols = divmod(start, W)
            for i, (_, (v, h)) in enumerate(seen):
                if i < len(self.vbuf):
                    _fill(self.vbuf[i], v, start, p)
                if self.layers[i].summary is not None:  # the rows before the first row drawn, row by row
                    for row in v[:, :, :rows].permute(2, 0, 3, 1).numpy():
                        self._summarise(i, np.ascontiguousarray(row))
                if cols:  # the row buffer holds only the current row
                    self.hbuf[i][:, p:p + cols] = h[:, :, rows, :cols].permute(0, 2, 1).numpy()
        self.by_colour = self._by_colour(n) if self.ar else None
        if kernels.used(n, split):
            (w1, b1), (w2, b2) = self.head
            C, G = self.C, self.C if self.ar else 1
            lists = lambda name: kernels.List([getattr(u, name) for u in self.layers])  # noqa: E731
            self.kernel, self.compiled = kernels.gated_run, True
            self.state = (self.xbuf, p, kernels.List([h[:, None] for h in self.hbuf]), kernels.List(self.vh),
                          np.array([u.width for u in self.layers], np.int64), lists("wh"), lists("bh"),
                          lists("wout"), lists("bout"), w1, b1, w2, b2, kernels.spans(colour_groups(f, C), G),
                          kernels.pushes(colour_groups(model.cin, C), colour_groups(2 * f, C), G, True,
                                         self.layers[0].width > p), z(n, L, 2 * f), z(n, L, f), z(f), z(n, f),
                          z(n, len(b2)))

    def older(self, i):  # strict: rows i-p .. i-2 of the image; else rows i-p .. i-1 of the layer below's v
        for k, (u, (patches, _), old) in enumerate(zip(self.layers, self.patches, self.olds)):
            if patches.shape[2]:
                _rows_times(self.windows[k][:, i:i + patches.shape[2]], patches, u.wv[0], old)
        return self.olds

    def newest(self, i, olds):  # strict: row i-1 of the image; else row i of the layer below's v
        p, f = self.p, self.f
        for k, (u, (_, patches), old) in enumerate(zip(self.layers, self.patches, olds)):
            vp, r = self.vp, p + (k > 0)
            _rows_times(self.windows[k][:, i + r - 1:i + r], patches, u.wv[1], vp)
            if r > 1:
                vp += old
            vp += u.bv
            ev, eh = self.embed[k]
            _times(vp, u.wv2h, self.vh[k])
            self.vh[k] += u.bv2h if eh is None else u.bv2h + eh[:, None]
            if ev is not None:
                vp += ev[:, None]
            if k < len(self.vbuf) or u.summary is not None:
                v = _gate(vp, f)
                if k < len(self.vbuf):
                    self.vbuf[k][:, i + p, p:-p] = v
                if u.summary is not None:  # the running max over the rows of v so far, into what v adds to h
                    self._summarise(k, v)
                    _times(np.ascontiguousarray(np.broadcast_to(self.summaries[k][:, None], v.shape)),
                           u.summary[1][0], self.vp)  # a matmul of n * W rows, as the rest: rounded alike for any n
                    self.vh[k] += self.vp
                    self.vh[k] += u.summary[1][1]

    def _summarise(self, k, v):
        """Layer k's summary, the running max, takes in a row of v (n, W, f)."""
        (wi, bi), _ = self.layers[k].summary
        np.maximum(self.summaries[k], (_rows_of(v) @ wi + bi).reshape(v.shape).max(axis=1), out=self.summaries[k])

    def _by_colour(self, n):
        """For each colour g drawn in turn, what its step computes: the columns of colour g of
        every layer's gate inputs (a and b alike), its outputs, the head's hidden layer and the
        logits, each with its weight's columns made contiguous; and the places the step's
        features go, where those of earlier colours stay (they are final)."""
        f, C, npdt = self.f, self.C, self.npdt
        (w1, b1), (w2, b2) = self.head
        features = kernels.spans(colour_groups(f, C), C)
        logits = kernels.spans(colour_groups(len(b2), C, True), C)
        steps = []
        for (lo, hi, _), (l0, l1, step) in zip(features, logits):
            both = np.r_[lo:hi, f + lo:f + hi]
            layers = [(np.ascontiguousarray(u.wh[:, both]), u.bh[both], both, np.ascontiguousarray(u.wout[:, lo:hi]),
                       u.bout[lo:hi]) for u in self.layers]
            steps.append((slice(lo, hi), layers, (np.ascontiguousarray(w1[:, lo:hi]), b1[lo:hi]),
                          (slice(l0, l1, step), np.ascontiguousarray(w2[:, l0:l1:step]), b2[l0:l1:step])))
        places = [np.zeros((n, f), npdt) for _ in self.layers], np.zeros((n, f), npdt), np.zeros((n, len(b2)), npdt)
        return steps, places

    def logits(self, i, j, g=None):
        if g is not None:
            return self._colour(i, j, g)
        p, f = self.p, self.f
        h = None
        for k, u in enumerate(self.layers):
            src = self.xbuf[:, i + p, j:j + u.width] if k == 0 else self.hbuf[k - 1][:, j:j + p + 1]
            hp = src.reshape(len(src), -1) @ u.wh
            hp += u.bh
            hp += self.vh[k][:, j]
            out = _gate(hp, f) @ u.wout
            out += u.bout
            if h is not None:
                out += h
            self.hbuf[k][:, j + p] = h = out
        (w1, b1), (w2, b2) = self.head
        t = np.maximum(h, 0) @ w1 + b1
        return (np.maximum(t, 0) @ w2 + b2).reshape(-1, self.levels, self.C)

    def _colour(self, i, j, g):
        """logits(i, j) right for channel g only (autoregressive colour): every layer computes its
        features of colour g alone. Those of earlier colours are final; at this pixel those of later
        ones see channels not drawn yet, and the features of colour g weigh them by zero."""
        p = self.p
        (cols, layers, (w1, b1), (lcols, w2, b2)), (gated, t, out) = self.by_colour[0][g], self.by_colour[1]
        for k, (u, (wh, bh, both, wout, bout)) in enumerate(zip(self.layers, layers)):
            src = self.xbuf[:, i + p, j:j + u.width] if k == 0 else self.hbuf[k - 1][:, j:j + p + 1]
            hp = src.reshape(len(src), -1) @ wh
            hp += bh
            hp += self.vh[k][:, j, both]
            gated[k][:, cols] = _gate(hp, len(hp[0]) // 2)
            h = gated[k] @ wout
            h += bout
            if k:
                h += self.hbuf[k - 1][:, j + p, cols]
            self.hbuf[k][:, j + p, cols] = h
        t[:, cols] = np.maximum(self.hbuf[-1][:, j + p], 0) @ w1 + b1
        out[:, lcols] = np.maximum(t, 0) @ w2 + b2
        return out.reshape(-1, self.levels, self.C)


def _gate(t, f):
    """layers.gate on channels-last NumPy: tanh(a) * sigmoid(b) of t's two halves."""
    a, b = t[..., :f], t[..., f:]
    return np.tanh(a) / (1 + np.exp(-b))


class _GatedUnit:
    """One gated layer's weights as NumPy matrices (in, out) for channels-last rows."""

    def __init__(self, layer):
        num = lambda t: t.detach().numpy()  # noqa: E731
        conv = lambda m: (num(m.weight[:, :, 0, 0].T).copy(), num(m.bias))  # noqa: E731 (a 1x1 conv: (in, out))
        vw = layer.v.conv.weight  # (2f, cin, rows, k)
        self.wv = _older_newest(vw.permute(2, 3, 1, 0).reshape(-1, vw.shape[0]).contiguous().numpy(), vw.shape[2])
        self.bv = num(layer.v.conv.bias)
        self.wv2h, self.bv2h = conv(layer.v2h)
        self.wh, self.bh = _row_weight(layer.h.left_weight()), num(layer.h.left.bias)
        self.width = layer.h.left.weight.shape[-1]
        self.wout, self.bout = _row_weight(layer.out.left_weight()), num(layer.out.left.bias)
        self.embed = None if layer.embed is None else num(layer.embed.weight)
        self.summary = None if layer.summary_in is None else (conv(layer.summary_in), conv(layer.summary_out))


def _gated_units(model):
    head = [(_row_weight(m.left_weight()), m.left.bias.detach().numpy()) for m in model.head[1::2]]
    return [_GatedUnit(layer) for layer in model.layers], head


def folded_weights(model, build):
    """build(): the model's weights folded and laid out for stepping, cached on the model and
    rebuilt only when its parameters or buffers have changed (an optimizer step or
    load_state_dict bumps a tensor's version)."""
    key = tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))
    cache = model.__dict__.get("_folded_weights")
    if cache is None or cache[0] != key:
        with torch.no_grad():
            cache = model.__dict__["_folded_weights"] = (key, build())
    return cache[1]


def _forward_seeing(model, x, label, modules):
    """(inputs, output) of each of `modules` in one ordinary forward pass of the model over
    the levels x (NumPy): what each layer saw, with no model logic repeated here."""
    me, seen = threading.get_ident(), {}

    def record(module, args, out):
        if threading.get_ident() == me:  # other threads (the app's workers) may run the model too
            seen[module] = (args, out)

    hooks = [m.register_forward_hook(record) for m in modules]
    try:
        model(torch.from_numpy(x), label)
    finally:
        for hook in hooks:
            hook.remove()
    return [seen[m] for m in modules]


def _fill(buf, a, start, p):
    """Copy the pixels of a (n, c, H, W) before raster index `start` into buf, its
    channels-last copy (n, H + p, W + 2p, c) zero padded by p above and at both sides."""
    a = a.permute(0, 2, 3, 1).numpy()
    rows, cols = divmod(start, a.shape[2])
    buf[:, p:p + rows, p:p + a.shape[2]] = a[:, :rows]
    if cols:
        buf[:, p + rows, p:p + cols] = a[:, rows, :cols]


def _check_cpu(model):
    """The NumPy dtype of the model's weights; the cached samplers run on the CPU only."""
    if model.device.type != "cpu":
        raise NotImplementedError("the cached sampler runs on the CPU: model.cpu() first")
    return np.float64 if model.dtype == torch.float64 else np.float32


def windows(buf, k):
    """Every k-wide window of the rows of a buffer (n, rows, W + k - 1, cin), as a view
    (n, rows, W, cin, k), made once: a view made per row costs more than its matmul at batch 1."""
    return sliding_window_view(buf, k, axis=2)


def _rows_times(windows, patches, weight, out):
    """out (n, W, cout) = the windows (n, r, W, cin, k) of r rows (from `windows`), flattened
    in the order (r, k, cin) of a conv weight permuted (2, 3, 1, 0), times weight."""
    np.copyto(patches, windows.transpose(0, 2, 1, 4, 3))  # (n, W, r, k, cin)
    _times(patches, weight, out)


def _times(a, weight, out):
    """out (m..., cout) = a (m..., cin...) times weight (cin * ..., cout), all C-contiguous, as
    one 2-D matmul (NumPy's dot of a 3-D array does not use BLAS)."""
    m = out.size // out.shape[-1]
    np.dot(a.reshape(m, -1), weight, out=out.reshape(m, -1))


def _worth_it(ahead, weights):
    """`ahead` if the older rows above are half the rows-above work or more (weights: the (older,
    newest) pairs), else None: with 3x3 convs (PixelRCNN's), handing a sliver of each row's
    work to another thread cost more than it saved (docs/speed.md)."""
    older = sum(old.size for old, _ in weights)
    return ahead if older >= sum(new.size for _, new in weights) else None


def _older_newest(w, rows):
    """A rows-above weight (rows * k * cin, cout), rows in order, as (its rows but the last, the last)."""
    cut = len(w) // rows * (rows - 1)
    return w[:cut], w[cut:]


def _rows_of(a):
    """a (..., c) as a 2-D (m, c) view, rows for a matmul (NumPy's on a 3-D array does not use BLAS)."""
    return a.reshape(-1, a.shape[-1])


def _row_weight(w):
    """A same-row conv weight (cout, cin, 1, w) -> (w * cin, cout), matching a channels-last window."""
    return w[:, :, 0].permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous().numpy()
