"""The models: a config dataclass, two building blocks and the models built from them.

Every model maps integer levels (B, C, H, W) to logits (B, K, C, H, W): for each
sub-pixel, K unnormalised log-probabilities given the pixels before it in raster order.
"""
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MaskedConv2d


@dataclass
class Config:
    model: str
    dataset: str
    channels: int  # C
    height: int
    width: int
    levels: int  # K
    filters: int = 64
    layers: int = 5  # hidden 7x7 type-B convolutions (PixelCNN) or residual blocks (PixelRCNN)
    kernel: int = 7
    split: bool = True  # split masked convolutions (fast) or plain masked kernels
    one_hot: bool = False  # feed levels one-hot (C * K input channels) instead of scaled to [0, 1]

    def to_dict(self):
        return asdict(self)


class Block(nn.Module):
    """Masked conv, then BatchNorm and ReLU (either may be left out)."""

    def __init__(self, cin, cout, kernel, mask, split, norm=True, relu=True):
        super().__init__()
        self.conv = MaskedConv2d(cin, cout, kernel, mask, split)
        self.norm = nn.BatchNorm2d(cout) if norm else None
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


class Residual(nn.Module):
    """PixelRNN's residual block: 1x1 down to h/2, masked k x k, 1x1 up to h, add, ReLU."""

    def __init__(self, filters, kernel, split):
        super().__init__()
        h = filters // 2
        self.blocks = nn.Sequential(
            Block(filters, h, 1, "B", split),
            Block(h, h, kernel, "B", split),
            Block(h, filters, 1, "B", split, relu=False),
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

    def inputs(self, x):
        """Levels (B, C, H, W) to the network's input: one-hot (B, C * K, H, W), channel
        c * K + k, which makes copying an exact colour linear; or scaled to [0, 1]."""
        if self.config.one_hot:
            b, c, h, w = x.shape
            onehot = F.one_hot(x, self.levels).permute(0, 1, 4, 2, 3)
            return onehot.reshape(b, c * self.levels, h, w).to(self.dtype)
        return x.to(self.dtype) / (self.levels - 1)

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def forward(self, x):
        """Levels (B, C, H, W) -> logits (B, K, C, H, W). No input checks: see log_prob."""
        out = self.net(self.inputs(x))
        b, _, h, w = out.shape
        return out.view(b, self.levels, self.config.channels, h, w)

    def log_prob(self, x):
        """Natural-log probability of each sub-pixel given what the model conditions on."""
        x = self.check_levels(x).to(self.device)
        logp = torch.log_softmax(self(x).float(), dim=1)
        return logp.gather(1, x.unsqueeze(1)).squeeze(1)

    def stack(self, body):
        """The body between a k x k type-A stem and a head of two 1x1 type-B convs to C*K logits."""
        c, f, k, s = self.config.channels, self.config.filters, self.config.kernel, self.config.split
        cin = c * self.levels if self.config.one_hot else c
        return nn.Sequential(Block(cin, f, k, "A", s), *body, Block(f, f, 1, "B", s),
                             Block(f, c * self.levels, 1, "B", s, norm=False, relu=False))

    @property
    def device(self):
        return next(self.parameters()).device

    def sample(self, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None, cached=True):
        """n images (n, C, H, W) of integer levels; see pixelcnn.sampling.sample_stream."""
        from .sampling import sample_stream
        *_, last = sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                                 prefix_mask=prefix_mask, cached=cached, every=None)
        return last.images

    def sample_stream(self, n, *, seed=None, temperature=1.0, prefix=None, prefix_mask=None,
                      cached=True, every=28):
        """Yield Progress(images, done, total, position) every `every` pixels and at the end."""
        from .sampling import sample_stream
        return sample_stream(self, n, seed=seed, temperature=temperature, prefix=prefix,
                             prefix_mask=prefix_mask, cached=cached, every=every)


class PixelCNN(AutoregressiveModel):
    """van den Oord et al. 2016: 7x7 type A, five 7x7 type B, two 1x1 type B."""

    def __init__(self, config: Config):
        super().__init__(config)
        f, k, s = config.filters, config.kernel, config.split
        self.net = self.stack([Block(f, f, k, "B", s) for _ in range(config.layers)])


class PixelRCNN(AutoregressiveModel):
    """Residual PixelCNN for colour: 7x7 type A, residual blocks of 3x3 type B, 1x1 head.
    The channels of a pixel are independent given the pixels before it."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.net = self.stack([Residual(config.filters, 3, config.split) for _ in range(config.layers)])


ARCHITECTURES = {
    "pixelcnn": (PixelCNN, dict(filters=64, layers=5, kernel=7)),
    "pixelrcnn": (PixelRCNN, dict(filters=128, layers=8, kernel=7, one_hot=True)),
}
