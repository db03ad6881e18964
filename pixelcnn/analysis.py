"""What a model sees and how surprised it is: the figures behind the app's explanations.

    influence(net, x, i, j)   which input pixels the prediction at (i, j) depends on
    surprise(net, x)          bits each pixel costs, -log2 p(pixel | the pixels before it)
    bits_per_dim(net, x)      the image's negative log-likelihood in bits per sub-pixel
"""
import math

import torch


def influence(net, x, i, j, label=None):
    """(H, W) float: the gradient magnitude of every logit at pixel (i, j) with respect to
    the network's real-valued input at each pixel (summed over its channels). Exactly
    zero where the prediction cannot depend on a pixel: the future, and a blind spot."""
    C, H, W = net.image_shape
    if not (0 <= i < H and 0 <= j < W):
        raise ValueError(f"pixel ({i}, {j}) is outside the {H}x{W} image")
    x = net.check_levels(x if x.dim() == 4 else x.unsqueeze(0))[:1].to(net.device)
    label = net.check_label(label, 1)
    with net.evaluating(), torch.enable_grad():
        h = net.inputs(x).detach().requires_grad_(True)
        out = net.net_forward(h, label)
        # A fixed +-1 weighting of the logits: a plain sum could cancel (softmax shift).
        signs = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
        signs[1::2] = -1
        (out[0, :, i, j] * signs).sum().backward()
    return h.grad[0].abs().sum(dim=0).float().cpu()


@torch.no_grad()
def surprise(net, x, label=None):
    """(B, H, W): bits each pixel costs (all its channels) given the pixels before it."""
    return -net.log_prob(x, label).sum(dim=1).cpu() / math.log(2)


def bits_per_dim(net, x, label=None):
    """(B,): each image's negative log-likelihood in bits per sub-pixel."""
    return surprise(net, x, label).flatten(1).sum(dim=1) / math.prod(net.image_shape)
