"""The models: a config dataclass and the models built from the blocks in layers.py.

Every model maps integer levels (B, C, H, W) to logits (B, K, C, H, W): for each
sub-pixel, K unnormalised log-probabilities given the pixels before it in raster order.
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import inpainting, sampling
from .layers import Block, GatedLayer, MaskedConv2d, Residual, colour_groups


@dataclass
class Config:
    model: str
    dataset: str
    channels: int  # C
    height: int
    width: int
    levels: int  # K
    filters: int = 64
    layers: int = 5  # hidden 7x7 type-B convs (PixelCNN), residual blocks (PixelRCNN), gated layers
    kernel: int = 7
    split: bool = True  # split masked convolutions (fast) or plain masked kernels
    one_hot: bool = False  # feed levels one-hot (C * K input channels) instead of scaled to [0, 1]
    ar_channels: bool = False  # colour channels in order R, G, B within a pixel (else independent)
    same_as_first: bool = False  # also feed, per channel, whether a pixel's level is the first pixel's
    classes: int = 0  # class-conditional on a label in [0, classes) (0: unconditional)
    summary: bool = False  # Gated PixelCNN: each layer also sees a running max over all rows above

    def to_dict(self):
        return asdict(self)


class AutoregressiveModel(nn.Module):
    """What every model shares: input checks, likelihoods and sampling."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.image_shape = (config.channels, config.height, config.width)
        self.levels = config.levels
        self.ar = config.ar_channels and config.channels > 1  # channels drawn one after another

    def groups(self, cin, cout, logits=False):
        """Colour groups for a masked conv from cin to cout channels (None unless self.ar).
        Inputs and features are in contiguous blocks; logits (K, C) are interleaved."""
        if not self.ar:
            return None
        c = self.config.channels
        return colour_groups(cin, c), colour_groups(cout, c, interleaved=logits)

    @property
    def per_channel(self):
        """Input channels per colour channel: K one-hot or 1 scaled, and 1 more if same_as_first."""
        return (self.levels if self.config.one_hot else 1) + self.config.same_as_first

    @property
    def cin(self):
        """Channels of the network's input: C blocks of per_channel."""
        return self.config.channels * self.per_channel

    def check_levels(self, x, name="x"):
        """Raise ValueError unless x is an integer tensor (B, C, H, W) of levels in [0, K)."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch tensor of integer levels, got {type(x).__name__}")
        if x.dtype == torch.bool:
            x = x.long()
        if x.is_floating_point() or x.is_complex():
            raise ValueError(f"{name} must hold integer levels in [0, {self.levels}), got dtype {x.dtype}; "
                             "convert images with e.g. (img * (K - 1)).round().long()")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.levels):
            raise ValueError(f"{name} levels must lie in [0, {self.levels}), "
                             f"got values from {int(x.min())} to {int(x.max())}")
        return x.long()

    def check_label(self, label, n):
        """None for an unconditional model; else the labels as a long tensor (n,) in [0, classes)."""
        classes = self.config.classes
        if not classes:
            if label is not None:
                raise ValueError(f"{self.config.model} is not class-conditional: give no label")
            return None
        if label is None:
            raise ValueError(f"{self.config.model} is class-conditional: give a label in [0, {classes})")
        if isinstance(label, bool) or not isinstance(label, (int, torch.Tensor)):
            raise ValueError(f"label must be an int or an integer tensor, got {type(label).__name__}")
        label = torch.as_tensor(label)
        if label.is_floating_point() or label.dim() > 1 or label.dim() == 1 and len(label) not in (1, n):
            raise ValueError(f"label must be an int or an integer tensor of shape ({n},), got {label!r}")
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= classes):
            raise ValueError(f"labels must lie in [0, {classes}), got {label.tolist()}")
        return label.long().reshape(-1).expand(n).to(self.device)

    def inputs(self, x, first=None):
        """Levels (B, C, H, W) to the network's input (B, C * per_channel, H, W), a block per
        channel c: its level one-hot (channel c * K + k), which makes copying an exact colour
        linear, or scaled to [0, 1]; then, if same_as_first, 1 where the level equals the first
        pixel's (`first`, (B, C, 1, 1); by default x's own pixel (0, 0)), which makes "the
        background's colour" easy to see. Each block depends on channel c of its pixel only."""
        b, c, h, w = x.shape
        if self.config.one_hot:
            out = F.one_hot(x, self.levels).permute(0, 1, 4, 2, 3)
        else:
            out = x.unsqueeze(2) / (self.levels - 1)
        if self.config.same_as_first:
            first = x[:, :, :1, :1] if first is None else first
            out = torch.cat([out.to(self.dtype), (x == first).unsqueeze(2).to(self.dtype)], dim=2)
        return out.reshape(b, c * self.per_channel, h, w).to(self.dtype)

    @contextmanager
    def evaluating(self):
        """Eval mode for the `with` block, then the mode it was in (training or not); a model
        already in eval mode is left alone (setting a mode walks every module)."""
        was = self.training
        changed = any(m.training for m in self.modules())
        if changed:
            self.eval()
        try:
            yield self
        finally:
            if changed:
                self.train(was)

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def forward(self, x, label=None):
        """Logits of every sub-pixel given the pixels before it; no input checks (log_prob checks).

        Args:
            x: integer levels (B, C, H, W) in [0, K), on the model's device.
            label: None, or the classes as a long tensor (B,) for a class-conditional model.

        Returns:
            logits (B, K, C, H, W) in the model's dtype: unnormalised log-probabilities over
            the K levels of sub-pixel (c, i, j).
        """
        out = self.net_forward(self.inputs(x), label)
        b, _, h, w = out.shape
        return out.view(b, self.levels, self.config.channels, h, w)

    def net_forward(self, h, label=None):
        """The network on real-valued inputs (B, cin, H, W) -> logits (B, K * C, H, W)."""
        return self.net(h)

    def log_prob(self, x, label=None):
        """Natural-log probability of each sub-pixel given what the model conditions on
        (the pixels before it, and the label for a class-conditional model).

        Args:
            x: an integer tensor of levels (B, C, H, W) in [0, K) (bool is taken as 0/1).
            label: for a class-conditional model, the class: an int for every image or an
                integer tensor (B,); else None.

        Returns:
            float32 (B, C, H, W) on the model's device: log p(x[b, c, i, j] | the past), in nats;
            sum over (1, 2, 3) for an image's log-likelihood.

        Raises:
            ValueError: x or label is not what is expected (the message says what is).
        """
        x = self.check_levels(x).to(self.device)
        label = self.check_label(label, len(x))
        logp = torch.log_softmax(self(x, label).float(), dim=1)
        return logp.gather(1, x.unsqueeze(1)).squeeze(1)

    def stack(self, body):
        """The body between a k x k type-A stem and a head of two 1x1 type-B convs to C*K logits."""
        c, f, k, s, g = self.config.channels, self.config.filters, self.config.kernel, self.config.split, self.groups
        if self.config.classes:
            raise ValueError(f"{self.config.model} cannot be class-conditional: use gated_cond")
        out = c * self.levels
        return nn.Sequential(Block(self.cin, f, k, "A", s, groups=g(self.cin, f)), *body,
                             Block(f, f, 1, "B", s, groups=g(f, f)),
                             Block(f, out, 1, "B", s, norm=False, relu=False, groups=g(f, out, logits=True)))

    @property
    def device(self):
        return next(self.parameters()).device

    def sample(self, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None, cached=True,
               label=None):
        """Draw n images, pixel by pixel in raster order (see pixelcnn.sampling).

        Args:
            n: how many images (a positive int).
            seed: int; the same seed draws the same images, whichever sampler (None: a random one).
            temperature: > 0; the logits are divided by it (below 1: surer, above: wilder).
            prefix: integer levels (1 or n, C, H, W), or (C, H, W): the known pixels' values.
            prefix_mask: bool (H, W), (n, H, W) or (n, 1, H, W), True where a pixel is known;
                known pixels are kept, the rest drawn given the known pixels before them.
                prefix and prefix_mask go together.
            cached: step with the fast cached sampler on the CPU (same images as the
                reference loop, one forward pass per pixel, which cached=False uses).
            label: the class for a class-conditional model: an int or an integer tensor (n,).

        Returns:
            int64 levels (n, C, H, W) in [0, K), on the CPU.

        Raises:
            ValueError: an argument is not what is expected (the message says what is).
        """
        *_, last = sampling.sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                                          prefix_mask=prefix_mask, cached=cached, every=None, label=label)
        return last.images

    def sample_stream(self, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None,
                      cached=True, every=28, label=None):
        """Draw n images as `sample` does, yielding the partial images as they form.

        Args:
            every: yield after every `every` pixels in raster order (None: only at the end);
                the other arguments as in `sample`.

        Yields:
            pixelcnn.sampling.Progress(images, done, total, position, probs): images int64
            (n, C, H, W), pixels not yet drawn 0 (or the prefix); done of total = H * W pixels;
            position (row, col) of the last pixel done; probs float64 (n, K, C), the
            distribution that pixel was drawn from (None where it was known). The last
            Progress holds the finished images, those `sample` returns.
        """
        return sampling.sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                                      prefix_mask=prefix_mask, cached=cached, every=every, label=label)

    def inpaint(self, image, known, n=1, *, seed=None, temperature=1.0, label=None, particles=16, sweeps=0):
        """Draw n completions of `image` given every known pixel, before and after each unknown
        one in raster order (see pixelcnn.inpainting), where `sample`'s prefix sees only those
        before.

        Args:
            image: integer levels (C, H, W) or (n, C, H, W): the known pixels' values.
            known: bool (H, W) or (n, H, W), True where a pixel is known.
            particles: proposals drawn per completion, one kept by its weight (more: closer to
                the model's distribution given the known pixels, slower).
            sweeps: Gibbs sweeps over the unknown pixels after that (each as exact; slow).
            n, seed, temperature, label: as in `sample`.

        Returns:
            int64 levels (n, C, H, W), every known pixel as given.

        Raises:
            ValueError: an argument is not what is expected (the message says what is).
        """
        return inpainting.inpaint(self, image, known, n, seed=seed, temperature=temperature, label=label,
                                  particles=particles, sweeps=sweeps)

    def inpaint_stream(self, image, known, n=1, *, seed=None, temperature=1.0, label=None, particles=16, sweeps=0,
                       every=28):
        """`inpaint`, yielding pixelcnn.sampling.Progress as the completions form (see
        pixelcnn.inpainting.inpaint_stream); the last holds what `inpaint` returns."""
        return inpainting.inpaint_stream(self, image, known, n, seed=seed, temperature=temperature, label=label,
                                         particles=particles, sweeps=sweeps, every=every)


class PixelCNN(AutoregressiveModel):
    """van den Oord et al. 2016: 7x7 type A, five 7x7 type B, two 1x1 type B."""

    def __init__(self, config: Config):
        super().__init__(config)
        f, k, s = config.filters, config.kernel, config.split
        self.net = self.stack([Block(f, f, k, "B", s) for _ in range(config.layers)])


class PixelRCNN(AutoregressiveModel):
    """Residual PixelCNN for colour: 7x7 type A, residual blocks of 3x3 type B, 1x1 head.
    The channels of a pixel are independent given the pixels before it, unless
    ar_channels (the model pixelrcnn_ar): then R, G and B in turn."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.net = self.stack([Residual(config.filters, 3, config.split, self.groups) for _ in range(config.layers)])


class GatedPixelCNN(AutoregressiveModel):
    """van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders":
    stacked vertical and horizontal stacks, so no blind spot; a 1x1 head to C*K logits.
    Optionally class-conditional (config.classes)."""

    def __init__(self, config: Config):
        super().__init__(config)
        f, k, g = config.filters, config.kernel, self.groups
        if k < 3:
            raise ValueError(f"Gated PixelCNN needs a kernel of at least 3, got {k}")
        self.layers = nn.ModuleList(
            GatedLayer(self.cin if i == 0 else f, f, k, i == 0,
                       g(self.cin if i == 0 else f, f), config.classes, config.summary) for i in range(config.layers))
        out = config.channels * self.levels
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(f, f, 1, "B", groups=g(f, f)), nn.ReLU(),
                                  MaskedConv2d(f, out, 1, "B", groups=g(f, out, logits=True)))

    def net_forward(self, h, label=None):
        v = h
        for layer in self.layers:
            v, h = layer(v, h, label)
        return self.head(h)


ARCHITECTURES = {
    "pixelcnn": (PixelCNN, dict(filters=64, layers=5, kernel=7)),
    "pixelrcnn": (PixelRCNN, dict(filters=128, layers=8, kernel=7, one_hot=True)),
    "pixelrcnn_ar": (PixelRCNN, dict(filters=128, layers=8, kernel=7, one_hot=True, ar_channels=True)),
    "gated": (GatedPixelCNN, dict(filters=48, layers=8, kernel=5, one_hot=True, ar_channels=True)),
    # classes=None: as many as the dataset's labels
    "gated_cond": (GatedPixelCNN, dict(filters=48, layers=8, kernel=5, one_hot=True, ar_channels=True,
                                       classes=None)),
}
