"""Masked convolutions.

A k x k masked convolution sees the rows above the centre (all k columns) and, on the
centre row, the pixels to the left: type A stops before the centre, type B includes it.
Instead of multiplying half the kernel by zeros we compute it as two shifted
convolutions, the way PixelCNN++ does (down-shifted and down-right-shifted convs):

    rows above : a (k//2) x k kernel over the input shifted down by one row
    same row   : a 1 x (k//2 [+1 for B]) kernel over the input shifted right

Autoregressive colour (PixelRNN's channel-group masks): with `groups`, every input and
output channel belongs to a colour (0 = R, 1 = G, 2 = B). At the centre pixel an output
of colour g sees inputs of colours < g (type A) or <= g (type B); the centre column is
then always in the same-row kernel and masked channel by channel.

`plain_forward` builds the equivalent full k x k masked kernel from the same parameters;
the tests check the two agree and the training benchmark compares their speed.
"""
import torch
import torch.nn.functional as F
from torch import nn


def colour_groups(n, colours, interleaved=False):
    """The colour of each of n channels: contiguous blocks (R..., G..., B...) or, for the
    logits laid out as (K, C), interleaved (R, G, B, R, G, B, ...)."""
    idx = torch.arange(n)
    return idx % colours if interleaved else idx * colours // n


class MaskedConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, mask: str, split: bool = True,
                 groups=None, row_only=False):
        """groups: None, or (colours of the cin inputs, colours of the cout outputs).
        row_only: only the same-row part (Gated PixelCNN's horizontal stack)."""
        super().__init__()
        if kernel % 2 != 1 or kernel < 1:
            raise ValueError(f"kernel size must be odd and positive, got {kernel}")
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' or 'B', got {mask!r}")
        if mask == "A" and kernel == 1 and groups is None:
            raise ValueError("a 1x1 type-A convolution sees nothing")
        self.cin, self.cout, self.kernel, self.mask, self.split = cin, cout, kernel, mask, split
        p = kernel // 2
        self.above = nn.Conv2d(cin, cout, (p, kernel), bias=False) if p and not row_only else None
        centre = None  # the channel mask of the centre column, if any
        if groups is not None:
            gin, gout = groups
            centre = (gout[:, None] > gin[None, :] if mask == "A" else gout[:, None] >= gin[None, :]).float()
        self.register_buffer("centre", centre, persistent=False)
        self.left = nn.Conv2d(cin, cout, (1, p + (mask == "B" or groups is not None)))

    def forward(self, x):
        return self.split_forward(x) if self.split else self.plain_forward(x)

    def left_weight(self):
        """The same-row kernel, its centre column masked by colour (with groups)."""
        w = self.left.weight
        if self.centre is None:
            return w
        return torch.cat([w[..., :-1], w[..., -1:] * self.centre[:, :, None, None].to(w.dtype)], dim=-1)

    def split_forward(self, x):
        p = self.kernel // 2
        # F.pad with -1 crops: the last column (narrow type A) or the last row is never seen.
        narrow = self.left.weight.shape[-1] == p
        out = F.conv2d(F.pad(x, (p, -1 if narrow else 0, 0, 0)), self.left_weight(), self.left.bias)
        if self.above is not None:
            out = out + self.above(F.pad(x, (p, p, p, -1)))
        return out

    def masked_weight(self):
        """The full (cout, cin, k, k) kernel with zeros where the mask hides pixels."""
        k, p = self.kernel, self.kernel // 2
        w = self.left.weight.new_zeros(self.cout, self.cin, k, k)
        if self.above is not None:
            w[:, :, :p, :] = self.above.weight
        w[:, :, p, : self.left.weight.shape[-1]] = self.left_weight()[:, :, 0, :]
        return w

    def plain_forward(self, x):
        return F.conv2d(x, self.masked_weight(), self.left.bias, padding=self.kernel // 2)

    def extra_repr(self):
        return (f"{self.cin}, {self.cout}, kernel={self.kernel}, mask={self.mask}, split={self.split}"
                + (", colour groups" if self.centre is not None else "") + (", row only" if self.above is None else ""))


class VerticalConv(nn.Module):
    """Gated PixelCNN's vertical stack: a conv over the rows above the output's row
    (`strict`, p x k, for the image) or up to and including it ((p+1) x k, for features
    that already see only rows above)."""

    def __init__(self, cin, cout, kernel, strict):
        super().__init__()
        self.p, self.strict = kernel // 2, strict
        self.conv = nn.Conv2d(cin, cout, (self.p + (not strict), kernel))

    def forward(self, x):
        p = self.p
        return self.conv(F.pad(x, (p, p, p, -1 if self.strict else 0)))
