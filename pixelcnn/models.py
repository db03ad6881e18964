"""The models: a config dataclass, two building blocks and the models built from them.

Every model maps integer levels (B, C, H, W) to logits (B, K, C, H, W): for each
sub-pixel, K unnormalised log-probabilities given the pixels before it in raster order.
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MaskedConv2d, VerticalConv, colour_groups


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
    classes: int = 0  # class-conditional on a label in [0, classes) (0: unconditional)

    def to_dict(self):
        return asdict(self)


class Block(nn.Module):
    """Masked conv, then BatchNorm and ReLU (either may be left out)."""

    def __init__(self, cin, cout, kernel, mask, split, norm=True, relu=True, groups=None):
        super().__init__()
        self.conv = MaskedConv2d(cin, cout, kernel, mask, split, groups)
        self.norm = nn.BatchNorm2d(cout) if norm else None
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


class Residual(nn.Module):
    """PixelRNN's residual block: 1x1 down to h/2, masked k x k, 1x1 up to h, add, ReLU."""

    def __init__(self, filters, kernel, split, groups=lambda cin, cout: None):
        super().__init__()
        f, h = filters, filters // 2
        self.blocks = nn.Sequential(
            Block(f, h, 1, "B", split, groups=groups(f, h)),
            Block(h, h, kernel, "B", split, groups=groups(h, h)),
            Block(h, f, 1, "B", split, relu=False, groups=groups(h, f)),
        )

    def forward(self, x):
        return F.relu(x + self.blocks(x))


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
    def cin(self):
        """Channels of the network's input: C * K one-hot, or C scaled."""
        return self.config.channels * (self.levels if self.config.one_hot else 1)

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

    def inputs(self, x):
        """Levels (B, C, H, W) to the network's input: one-hot (B, C * K, H, W), channel
        c * K + k, which makes copying an exact colour linear; or scaled to [0, 1]."""
        if self.config.one_hot:
            b, c, h, w = x.shape
            onehot = F.one_hot(x, self.levels).permute(0, 1, 4, 2, 3)
            return onehot.reshape(b, c * self.levels, h, w).to(self.dtype)
        return x.to(self.dtype) / (self.levels - 1)

    @contextmanager
    def evaluating(self):
        """Eval mode for the `with` block, then the mode it was in (training or not)."""
        was = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was)

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def forward(self, x, label=None):
        """Levels (B, C, H, W) -> logits (B, K, C, H, W). No input checks: see log_prob."""
        out = self.net_forward(self.inputs(x), label)
        b, _, h, w = out.shape
        return out.view(b, self.levels, self.config.channels, h, w)

    def net_forward(self, h, label=None):
        """The network on real-valued inputs (B, cin, H, W) -> logits (B, K * C, H, W)."""
        return self.net(h)

    def log_prob(self, x, label=None):
        """Natural-log probability of each sub-pixel given what the model conditions on
        (the pixels before it, and the label for a class-conditional model)."""
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
        """n images (n, C, H, W) of integer levels; see pixelcnn.sampling.sample_stream."""
        from .sampling import sample_stream
        *_, last = sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                                 prefix_mask=prefix_mask, cached=cached, every=None, label=label)
        return last.images

    def sample_stream(self, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None,
                      cached=True, every=28, label=None):
        """Yield Progress(images, done, total, position) every `every` pixels and at the end."""
        from .sampling import sample_stream
        return sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                             prefix_mask=prefix_mask, cached=cached, every=every, label=label)


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


def gate(t):
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of Gated PixelCNN. The vertical stack v sees the rows above (k wide); the
    horizontal stack h sees the row so far, plus v through a 1x1 conv. Both are gated,
    tanh(a) * sigmoid(b), with the label's embedding added before the gate; h is residual."""

    def __init__(self, cin, f, kernel, first, groups, classes):
        super().__init__()
        gh = gout = None  # colour groups (with ar channels): a and b of the gate alike
        if groups is not None:
            gin, gf = groups
            gh, gout = (gin, gf.repeat(2)), (gf, gf)
        self.first = first
        self.v = VerticalConv(cin, 2 * f, kernel, strict=first)
        self.h = MaskedConv2d(cin, 2 * f, kernel, "A" if first else "B", row_only=True, groups=gh)
        self.v2h = nn.Conv2d(2 * f, 2 * f, 1)
        self.out = MaskedConv2d(f, f, 1, "B", groups=gout)
        self.embed = nn.Embedding(classes, 4 * f) if classes else None

    def forward(self, v, h, label=None):
        vp = self.v(v)
        hp = self.h(h) + self.v2h(vp)
        if self.embed is not None:
            # in vp's dtype: an fp32 embedding would lift the bf16 gates to fp32 under autocast
            ev, eh = self.embed(label)[:, :, None, None].to(vp.dtype).chunk(2, dim=1)
            vp, hp = vp + ev, hp + eh
        out = self.out(gate(hp))
        return gate(vp), out if self.first else h + out


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
                       g(self.cin if i == 0 else f, f), config.classes) for i in range(config.layers))
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
