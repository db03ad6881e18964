"""Masked convolutions and the building blocks made of them.

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

The blocks: `Block` (masked conv, BatchNorm, ReLU; PixelCNN), `Residual` (PixelRNN's
residual block; PixelRCNN) and `GatedLayer` (a layer of Gated PixelCNN's two stacks).
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


def gate(t):
    """tanh(a) * sigmoid(b) of the two halves a, b of t's channels (dim 1)."""
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of Gated PixelCNN. The vertical stack v sees the rows above (k wide); the
    horizontal stack h sees the row so far, plus v through a 1x1 conv. Both are gated,
    tanh(a) * sigmoid(b), with the label's embedding added before the gate; h is residual.

    summary: h also sees, through a 1x1 conv, a running max over every row of v so far
    (features of v, maxed over the row and then over the rows down to h's own): what lies
    anywhere above, however far, where v's own reach grows by a few rows a layer. v at row i
    sees only rows above i, so the max down to row i does too. Its output conv starts at
    zero, so a layer given a summary starts as the layer without one."""

    def __init__(self, cin, f, kernel, first, groups, classes, summary=False):
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
        self.summary_in = nn.Conv2d(f, f, 1) if summary else None
        self.summary_out = nn.Conv2d(f, 2 * f, 1) if summary else None
        if summary:
            nn.init.zeros_(self.summary_out.weight)
            nn.init.zeros_(self.summary_out.bias)

    def forward(self, v, h, label=None):
        vp = self.v(v)
        hp = self.h(h) + self.v2h(vp)
        if self.embed is not None:
            # in vp's dtype: an fp32 embedding would lift the bf16 gates to fp32 under autocast
            ev, eh = self.embed(label)[:, :, None, None].to(vp.dtype).chunk(2, dim=1)
            vp, hp = vp + ev, hp + eh
        v = gate(vp)
        if self.summary_in is not None:  # (n, f, H, 1): row i's max over rows 0 .. i of v
            hp = hp + self.summary_out(self.summary_in(v).amax(dim=3, keepdim=True).cummax(dim=2).values)
        out = self.out(gate(hp))
        return v, out if self.first else h + out
