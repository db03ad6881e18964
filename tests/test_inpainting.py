"""Inpainting (pixelcnn/inpainting.py, model.inpaint): completions drawn from the model's
distribution given every known pixel, shown by statistics. On a few-pixel canvas where every
completion can be enumerated, the completions of a tiny model with sharp conditionals match
the exact posterior in total variation; the prefix sampler, which ignores known pixels after
an unknown one, does not."""
import pytest
import torch

from helpers import make_tiny
from pixelcnn import inpainting

N = 2000  # completions drawn per distribution


def sharp(model, dataset, shape):
    """A tiny model on a canvas of `shape` (H, W) whose conditionals are far from uniform:
    its weights scaled up (a random tiny model predicts nearly 1/2 everywhere)."""
    net = make_tiny(model, dataset)
    net.image_shape = (net.image_shape[0], *shape)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(4)
    return net


def unknown(shape, pixels):
    known = torch.ones(shape, dtype=torch.bool)
    for i, j in pixels:
        known[i, j] = False
    return known


def tv(net, image, known, samples, label=None):
    """Total variation between the completions drawn and the exact posterior."""
    every, p = inpainting.exact_posterior(net, image, known, label)
    index = {tuple(x.flatten().tolist()): k for k, x in enumerate(every)}
    drawn = torch.tensor([index[tuple(x.flatten().tolist())] for x in samples])
    seen = torch.bincount(drawn, minlength=len(every)).double() / len(samples)
    return 0.5 * (seen - p).abs().sum().item()


SCATTERED = [(0, 1), (0, 3), (1, 2), (2, 0), (2, 4)]  # each with known pixels after it
PREFIX = [(2, 3), (2, 4), (3, 0), (3, 1), (3, 2)]  # the last five: every known pixel before them


@pytest.mark.parametrize("model,dataset,label", [("pixelcnn", "mnist", None), ("gated_cond", "mnist", 3)])
def test_completions_follow_the_posterior_given_every_known_pixel(model, dataset, label):
    net = sharp(model, dataset, (4, 5))
    image, known = net.sample(1, seed=3, label=label)[0], unknown((4, 5), SCATTERED)
    drawn = net.inpaint(image, known, N, seed=0, particles=16, sweeps=1, label=label)
    prefix = net.sample(N, seed=0, prefix=image, prefix_mask=known, label=label)
    assert tv(net, image, known, drawn, label) < 0.05 < 0.4 < tv(net, image, known, prefix, label)


def test_resampling_alone_and_gibbs_sweeps_alone_each_follow_the_posterior():
    net = sharp("pixelcnn", "mnist", (4, 5))
    image, known = net.sample(1, seed=3)[0], unknown((4, 5), SCATTERED)
    assert tv(net, image, known, net.inpaint(image, known, N, seed=0, particles=16)) < 0.05
    assert tv(net, image, known, net.inpaint(image, known, N, seed=0, particles=1, sweeps=2)) < 0.05


def test_with_a_raster_prefix_known_completions_follow_the_prefix_samplers_law():
    net = sharp("pixelcnn", "mnist", (4, 5))
    image, known = net.sample(1, seed=4)[0], unknown((4, 5), PREFIX)
    assert tv(net, image, known, net.inpaint(image, known, N, seed=1, particles=4)) < 0.05
    assert tv(net, image, known, net.sample(N, seed=1, prefix=image, prefix_mask=known)) < 0.05


def test_colour_completions_follow_the_posterior():
    """R, G and B of one unknown pixel (64 colours), known pixels after it: a sweep redraws the
    three channels together."""
    net = sharp("pixelrcnn_ar", "color_shapes", (3, 4))
    image, known = net.sample(1, seed=2)[0], unknown((3, 4), [(0, 2)])
    drawn = net.inpaint(image, known, N, seed=0, particles=1, sweeps=1)
    prefix = net.sample(N, seed=0, prefix=image, prefix_mask=known)
    assert tv(net, image, known, drawn) < 0.05 < 0.5 < tv(net, image, known, prefix)


def test_known_pixels_are_kept_and_a_seed_gives_the_same_images():
    net = make_tiny("gated", "mnist")
    image = net.sample(2, seed=0)
    known = torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.5
    first = net.inpaint(image, known, 2, seed=7, particles=3)
    assert first.shape == (2, 1, 28, 28) and first.dtype == torch.int64
    assert torch.equal(first[:, 0][known], image[:, 0][known])
    assert torch.equal(first, net.inpaint(image, known, 2, seed=7, particles=3))
    *frames, last = net.inpaint_stream(image, known, 2, seed=7, particles=3, every=100)
    assert torch.equal(last.images, first) and last.done == last.total == 28 * 28
    assert len(frames) == 7 and all(f.images.shape == (2, 1, 28, 28) for f in frames)


def test_bad_input_is_refused_with_a_message():
    net = make_tiny("pixelcnn", "mnist")
    image, known = torch.zeros(1, 28, 28, dtype=torch.long), torch.ones(28, 28, dtype=torch.bool)
    three = image[None].expand(3, -1, -1, -1)
    for args, kwargs, said in [((image, known.long()), {}, "boolean"), ((image, known[:5]), {}, "shape"),
                               ((image, known, 0), {}, "positive integer"), ((three, known, 2), {}, "n=2"),
                               ((image, known), {"particles": 0}, "particles"), ((image + 5, known), {}, "image")]:
        with pytest.raises(ValueError, match=said):
            net.inpaint(*args, **kwargs)
