"""Masked convolutions.

A k x k masked convolution sees the rows above the centre (all k columns) and, on the
centre row, the pixels to the left: type A stops before the centre, type B includes it.
Instead of multiplying half the kernel by zeros we compute it as two shifted
convolutions, the way PixelCNN++ does (down-shifted and down-right-shifted convs):

    rows above : a (k//2) x k kernel over the input shifted down by one row
    same row   : a 1 x (k//2 [+1 for B]) kernel over the input shifted right

`plain_forward` builds the equivalent full k x k masked kernel from the same parameters;
the tests check the two agree and the training benchmark compares their speed.
"""
import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, mask: str, split: bool = True):
        super().__init__()
        if kernel % 2 != 1 or kernel < 1:
            raise ValueError(f"kernel size must be odd and positive, got {kernel}")
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' or 'B', got {mask!r}")
        if mask == "A" and kernel == 1:
            raise ValueError("a 1x1 type-A convolution sees nothing")
        self.cin, self.cout, self.kernel, self.mask, self.split = cin, cout, kernel, mask, split
        p = kernel // 2
        self.above = nn.Conv2d(cin, cout, (p, kernel), bias=False) if p else None
        self.left = nn.Conv2d(cin, cout, (1, p + (mask == "B")))

    def forward(self, x):
        return self.split_forward(x) if self.split else self.plain_forward(x)

    def split_forward(self, x):
        p = self.kernel // 2
        # F.pad with -1 crops: the last column (type A) or the last row is never seen.
        out = self.left(F.pad(x, (p, -1 if self.mask == "A" else 0, 0, 0)))
        if self.above is not None:
            out = out + self.above(F.pad(x, (p, p, p, -1)))
        return out

    def masked_weight(self):
        """The full (cout, cin, k, k) kernel with zeros where the mask hides pixels."""
        k, p = self.kernel, self.kernel // 2
        w = self.left.weight.new_zeros(self.cout, self.cin, k, k)
        if self.above is not None:
            w[:, :, :p, :] = self.above.weight
        w[:, :, p, : self.left.weight.shape[-1]] = self.left.weight[:, :, 0, :]
        return w

    def plain_forward(self, x):
        return F.conv2d(x, self.masked_weight(), self.left.bias, padding=self.kernel // 2)

    def extra_repr(self):
        return f"{self.cin}, {self.cout}, kernel={self.kernel}, mask={self.mask}, split={self.split}"
