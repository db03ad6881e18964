"""Re-scoring an image after a few pixels change, without a full forward pass (for Gibbs-style
inpainting, which changes one pixel at a time and asks for the likelihood each time).

A PixelCNN's layers see only rows above and the current row, so a change at row i reaches,
in a layer that sees p rows up, rows i .. i + p of its output, and p more at each layer
after. `Rescorer` keeps every layer's output from one forward pass; after a change it runs
each layer again on the rows it can have changed only (from p rows higher, so its zero
padding there falls on rows that are thrown away), with the model's own modules: nothing
about the architecture is repeated here. Its log-probabilities equal model.log_prob's.
A Gated PixelCNN with a summary of the rows above (GatedLayer) is run again whole: a change
reaches every row below it.
"""
import torch

from .layers import GatedLayer, MaskedConv2d


class Rescorer:
    """log p(x) of images x kept up to date as pixels change.

    Args:
        model: a model in eval mode (any of pixelcnn.MODELS).
        x: levels (n, C, H, W), as model.log_prob takes them.
        label: for a class-conditional model, its labels (n,), else None.
    """

    @torch.no_grad()
    def __init__(self, model, x, label=None):
        self.model, self.x = model, model.check_levels(x).clone()
        self.label = model.check_label(label, len(x))
        self.gated = any(isinstance(m, GatedLayer) for m in model.modules())
        self.stages = _gated_stages(model, self.label) if self.gated else _conv_stages(model)
        self._forward()

    def _forward(self):
        inp = self.model.inputs(self.x)
        self.acts = [(inp, inp) if self.gated else (inp,)]  # each stage's input: (v, h) for Gated PixelCNN
        for _, fn in self.stages:
            self.acts.append(fn(*self.acts[-1]))
        self.logp = self._log_prob(0, self.x.shape[2])

    @torch.no_grad()
    def set(self, i, j, levels):
        """Pixel (i, j) of every image becomes `levels` (n, C); the log-probabilities follow."""
        H = self.x.shape[2]
        self.x[:, :, i, j] = torch.as_tensor(levels)
        if (i, j) == (0, 0) and self.model.config.same_as_first:  # every pixel's input changes
            return self._forward()
        if self.model.config.summary:  # every later row's summary of the rows above may change
            return self._forward()
        row = self.model.inputs(self.x[:, :, i:i + 1], first=self.x[:, :, :1, :1])
        for a in set(self.acts[0]):  # v and h are one tensor for the first gated layer
            a[:, :, i:i + 1] = row
        hi = i + 1
        for k, (reach, fn) in enumerate(self.stages):
            hi, top = min(H, hi + reach), max(0, i - reach)
            for full, band in zip(self.acts[k + 1], fn(*(a[:, :, top:hi] for a in self.acts[k]))):
                full[:, :, i:hi] = band[:, :, i - top:]
        self.logp[:, :, i:hi] = self._log_prob(i, hi)

    def log_prob(self):
        """float32 (n, C, H, W): log p(x[b, c, i, j] | the past), as model.log_prob(x) gives it."""
        return self.logp.clone()

    def _log_prob(self, top, bottom):
        out = self.acts[-1][-1][:, :, top:bottom]
        n, _, h, w = out.shape
        logits = out.reshape(n, self.model.levels, -1, h, w).float()
        x = self.x[:, :, top:bottom]
        return torch.log_softmax(logits, dim=1).gather(1, x.unsqueeze(1)).squeeze(1)


# The stages: [(reach, fn)], the model's layers in order, each fn mapping its input
# activations (a tuple) to its outputs; reach: how many rows up it sees.

def _gated_stages(model, label):
    stages = [(layer.v.p, lambda v, h, m=layer: m(v, h, label)) for layer in model.layers]
    return stages + [(0, lambda v, h: (v, model.head(h)))]


def _conv_stages(model):
    reach = lambda module: sum(m.kernel // 2 for m in module.modules() if isinstance(m, MaskedConv2d))  # noqa: E731
    return [(reach(m), lambda a, m=m: (m(a),)) for m in model.net]
