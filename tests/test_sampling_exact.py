"""The cached sampler draws exactly the images of the reference loop, for every model.

In float64 the two compute the same logits to ~1e-15, so for the same seed (the same
uniforms) every level drawn must be identical; in float32 they agree too, barring a
uniform within ~1e-7 of a CDF boundary. The cached sampler is held to the reference both
compiled (pixelcnn/kernels.py, with numba) and pure NumPy (without it)."""
import copy
from contextlib import contextmanager, nullcontext

import numpy as np
import pytest
import torch

from helpers import labels_for, make_tiny
from pixelcnn import kernels
from pixelcnn.cached import splits


@contextmanager
def pure():
    """The cached steppers' pure NumPy path, as on a machine without numba."""
    was = kernels.AVAILABLE
    kernels.AVAILABLE = False
    try:
        yield
    finally:
        kernels.AVAILABLE = was


@contextmanager
def threads(k):
    """k torch threads: a batch is drawn in parts, one per thread, where kernels.parts says so."""
    was = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(was)

CASES = [("pixelcnn", "shapes"), ("pixelcnn", "color_shapes"), ("pixelrcnn", "shapes"), ("pixelrcnn", "color_shapes"),
         ("pixelrcnn_ar", "color_shapes"), ("gated", "shapes"), ("gated", "color_shapes"),
         ("gated_cond", "shapes"), ("gated_cond", "color_shapes"),
         # the input that says which levels equal the first pixel's, one-hot and scaled
         ("gated", "color_shapes", "same_as_first"), ("pixelrcnn_ar", "color_shapes", "same_as_first"),
         ("pixelcnn", "shapes", "same_as_first"),
         # each layer also sees a running max over the rows above
         ("gated", "color_shapes", "summary"), ("gated_cond", "shapes", "summary")]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def net(request):
    model, dataset, *switches = request.param
    return make_tiny(model, dataset, kernel=5, **dict.fromkeys(switches, True)).double()


def both(net, n, **kw):
    """The reference loop's images and the cached sampler's, the same in both of its paths."""
    if net.config.classes:  # a different class for each image
        kw["label"] = torch.arange(n) % net.config.classes
    fast = net.sample(n, cached=True, **kw)
    with pure():
        assert torch.equal(net.sample(n, cached=True, **kw), fast), "compiled and pure differ"
    with threads(2):  # the batch drawn in parts, each on a thread of its own (kernels.parts)
        assert torch.equal(net.sample(n, cached=True, **kw), fast), "drawn in parts, it differs"
    return net.sample(n, cached=False, **kw), fast


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_cached_equals_reference(net, temperature):
    ref, fast = both(net, 3, seed=11, temperature=temperature)
    assert torch.equal(ref, fast)
    assert len(torch.unique(ref)) > 1  # not a degenerate all-zero image


def test_one_image_with_a_thread_to_spare_too(net):
    """One image, two threads: drawn whole, with the next row's older rows above computed on the
    spare thread while a row is drawn (sampling._loop's `ahead`), the same images."""
    ref, fast = both(net, 1, seed=12)
    assert torch.equal(ref, fast)
    kw = dict(seed=12, every=5, label=labels_for(net, 1))
    alone = list(net.sample_stream(1, **kw))
    with threads(2):
        spare = list(net.sample_stream(1, **kw))
    assert len(alone) == len(spare)
    for a, b in zip(alone, spare):  # the same arithmetic: the same distributions, to the last bit
        assert torch.equal(a.images, b.images)
        assert (a.probs is None and b.probs is None) or np.array_equal(a.probs, b.probs)


def test_cached_equals_reference_with_prefix(net):
    C, H, W = net.image_shape
    known = net.sample(3, seed=1, label=labels_for(net, 3))
    mask = torch.zeros(3, H, W, dtype=torch.bool)
    mask[:, : H // 2] = True           # the top half ...
    mask[0, H // 2, :5] = True         # ... and a few pixels more in one image
    mask[1, -4:, :W // 2] = True       # a block that is not a raster prefix
    ref, fast = both(net, 3, seed=2, prefix=known, prefix_mask=mask)
    assert torch.equal(ref, fast)
    m = mask.unsqueeze(1).expand_as(known)
    assert torch.equal(fast[m], known[m])  # known pixels kept exactly
    assert not torch.equal(fast, known)    # the rest was sampled anew


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pure"])
@pytest.mark.parametrize("rows", [1, 3])
def test_a_summary_of_the_rows_above_starts_from_the_known_rows(rows, compiled):
    """Known first rows: the steppers start each layer's running max (GatedLayer's summary)
    from them, every one: each pixel drawn after is drawn from the model's distribution."""
    net = make_tiny("gated", "color_shapes", summary=True).double()
    mask = torch.zeros(net.image_shape[1:], dtype=torch.bool)
    mask[:rows] = True
    mask[rows, :3] = True
    with (nullcontext() if compiled else pure()):
        steps = list(net.sample_stream(2, seed=6, every=1, prefix=net.sample(2, seed=1), prefix_mask=mask))
    with torch.no_grad():
        expected = torch.softmax(net(steps[-1].images), dim=1).numpy()  # (2, K, C, H, W)
    assert steps[0].position == (rows, 3)  # the first pixel drawn
    for p in steps:
        np.testing.assert_allclose(p.probs, expected[:, :, :, p.position[0], p.position[1]], rtol=0, atol=1e-12)


def test_a_known_pixel_after_an_unknown_first_pixel_sees_the_first_as_drawn(net):
    """same_as_first: the known pixels' inputs depend on pixel (0, 0), drawn after they are set."""
    C, H, W = net.image_shape
    known = net.sample(2, seed=3, label=labels_for(net, 2))
    mask = torch.zeros(2, H, W, dtype=torch.bool)
    mask[:, H // 2:, 2:] = True
    mask[1, 0, 1:] = True  # the first row but its first pixel
    ref, fast = both(net, 2, seed=4, prefix=known, prefix_mask=mask)
    assert torch.equal(ref, fast)


def test_everything_known_returns_the_prefix(net):
    label = labels_for(net, 2)
    x = net.sample(2, seed=5, label=label)
    mask = torch.ones(net.image_shape[1:], dtype=torch.bool)
    assert torch.equal(net.sample(2, seed=9, prefix=x, prefix_mask=mask, label=label), x)


def test_float32_matches_too():
    net = make_tiny("pixelrcnn", "color_shapes")
    ref, fast = both(net, 2, seed=3)
    assert torch.equal(ref, fast)


def test_stream_yields_progress_and_ends_with_the_sample():
    net = make_tiny("pixelcnn", "shapes")
    C, H, W = net.image_shape
    steps = list(net.sample_stream(2, seed=4, every=W))
    assert [s.done for s in steps] == [W * (r + 1) for r in range(H)]
    assert steps[0].position == (0, W - 1) and steps[-1].position == (H - 1, W - 1)
    assert all(s.images.shape == (2, C, H, W) and s.total == H * W for s in steps)
    assert torch.equal(steps[-1].images, net.sample(2, seed=4))
    # a row streamed is final: later frames never change it
    for a, b in zip(steps, steps[1:]):
        r = a.done // W
        assert torch.equal(a.images[:, :, :r], b.images[:, :, :r])


def test_sampling_keeps_train_mode_and_dtype():
    net = make_tiny("pixelcnn", "shapes").train()
    x = net.sample(1, seed=0)
    assert net.training and x.dtype == torch.long


def test_cached_sampler_follows_weight_changes():
    net = make_tiny("pixelcnn", "shapes").double()
    before = net.sample(2, seed=6)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)  # in place, as an optimizer step would
    ref, fast = both(net, 2, seed=6)
    assert torch.equal(ref, fast) and not torch.equal(fast, before)


def test_concurrent_samplers_do_not_mix():
    from concurrent.futures import ThreadPoolExecutor

    net = make_tiny("pixelrcnn", "color_shapes").double()
    known = net.sample(2, seed=7)
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[:10] = True
    jobs = [dict(seed=s, prefix=known, prefix_mask=mask) if s % 2 else dict(seed=s) for s in range(6)]
    alone = [net.sample(2, **kw) for kw in jobs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda kw: net.sample(2, **kw), jobs))
    assert all(torch.equal(a, b) for a, b in zip(alone, together))


def test_a_model_on_a_gpu_samples_with_batched_forward_passes(monkeypatch):
    """The cached steppers are NumPy, CPU only; on a GPU the sampler steps with one batched
    forward pass per pixel, replayed from a CUDA graph (exact alike). The dispatch, checked
    without a GPU:"""
    from pixelcnn import cached, sampling
    from pixelcnn.models import AutoregressiveModel

    net = make_tiny("gated", "shapes")
    assert sampling.stepper_class(net, cached=True) is cached.GatedStepper
    monkeypatch.setattr(AutoregressiveModel, "device", property(lambda self: torch.device("cuda", 0)))
    assert sampling.stepper_class(net, cached=True) is sampling.GraphStepper
    assert sampling.stepper_class(net, cached=False) is sampling.ReferenceStepper
    with pytest.raises(NotImplementedError, match="CPU"):
        cached.GatedStepper(net, None, 0)


def test_the_gpus_stepper_keeps_its_input_equal_to_the_images(net, monkeypatch):
    """GraphStepper runs the model on a copy of the images on the device, updated pixel by
    pixel. On the CPU it runs the model directly (no graph), so drawn with it the images must
    be the reference loop's, bit for bit: also after known pixels that are not a prefix."""
    from pixelcnn import sampling

    C, H, W = net.image_shape
    label = labels_for(net, 3)
    mask = torch.zeros(3, H, W, dtype=torch.bool)
    mask[:, :2] = True
    mask[:, :, 3] = True  # a column known in every image: written, never drawn
    mask[1, -3:, :W // 2] = True
    kw = dict(seed=4, label=label, prefix=net.sample(3, seed=1, label=label), prefix_mask=mask)
    reference = sampling.stepper_class
    monkeypatch.setattr(sampling, "stepper_class",
                        lambda model, cached: sampling.GraphStepper if cached else reference(model, cached))
    for args in ({"seed": 4, "label": label}, kw):
        ref = net.sample(3, cached=False, **args)
        assert torch.equal(net.sample(3, **args), ref)


@pytest.mark.parametrize("model,dataset", [("pixelcnn", "shapes"), ("gated", "color_shapes")])
def test_progress_carries_the_distribution_each_reported_pixel_was_drawn_from(model, dataset):
    net = make_tiny(model, dataset).double()
    C, H, W = net.image_shape
    steps = list(net.sample_stream(3, seed=2, every=7))
    for p in steps:
        assert p.probs.shape == (3, net.levels, C)
        np.testing.assert_allclose(p.probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        i, j = p.position
        drawn = p.images[:, :, i, j].numpy()  # (3, C)
        assert (np.take_along_axis(p.probs, drawn[:, None, :], axis=1) > 0).all()
    # the first pixel's distribution is the model's, the same in every image (for colour: R)
    first = next(iter(net.sample_stream(3, seed=2, every=1))).probs
    with torch.no_grad():
        expected = torch.softmax(net(torch.zeros(1, C, H, W, dtype=torch.long))[0, :, :, 0, 0], dim=0)
    np.testing.assert_allclose(first[:, :, 0], expected[:, 0].numpy()[None].repeat(3, 0), rtol=1e-9)
    # a reported pixel that was known, not drawn, carries no distribution
    x = steps[-1].images
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[0, 6] = True  # known in every image, though the pixels before it are not
    known = next(iter(net.sample_stream(3, seed=2, every=7, prefix=x, prefix_mask=mask)))
    assert known.position == (0, 6) and known.probs is None


@pytest.mark.parametrize("model,dataset", [("pixelrcnn", "shapes"), ("gated_cond", "shapes")])
def test_a_prefix_leaves_no_hooks_on_the_model(model, dataset):
    """The cached steppers fill their buffers at a known prefix from one forward pass that
    they watch through forward hooks; the hooks go when it is done."""
    net = make_tiny(model, dataset)
    label = labels_for(net, 2)
    mask = torch.zeros(net.image_shape[1:], dtype=torch.bool)
    mask[:3] = True
    net.sample(2, seed=1, prefix=net.sample(2, seed=0, label=label), prefix_mask=mask, label=label)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pure"])
@pytest.mark.parametrize("model,dataset", [("pixelrcnn_ar", "color_shapes"), ("gated", "color_shapes")])
def test_every_pixel_is_drawn_from_the_models_distribution_after_known_pixels(model, dataset, compiled):
    """Each pixel's distribution, as Progress reports it, is the model's given the finished
    image's past: also after pixels known in every image that are not a prefix (a column),
    whose colour features must see all their channels."""
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    net = make_tiny(model, dataset).double()
    C, H, W = net.image_shape
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[:, 2] = True
    with (nullcontext() if compiled else pure()):
        steps = list(net.sample_stream(2, seed=3, every=1, prefix=net.sample(2, seed=4), prefix_mask=mask))
    with torch.no_grad():
        expected = torch.softmax(net(steps[-1].images), dim=1).numpy()  # (2, K, C, H, W)
    for p in steps:
        i, j = p.position
        assert (p.probs is None) == (j == 2)
        if p.probs is not None:
            np.testing.assert_allclose(p.probs, expected[:, :, :, i, j], rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_a_model_on_a_gpu_draws_the_cpus_images(net):
    """On CUDA, the graph-replayed stepper and the plain reference loop draw the CPU's images,
    with and without known pixels."""
    label = labels_for(net, 3)
    mask = torch.zeros(net.image_shape[1:], dtype=torch.bool)
    mask[:3] = True
    mask[:, 2] = True
    gpu = copy.deepcopy(net).cuda()
    for kw in ({}, {"prefix": net.sample(3, seed=1, label=label), "prefix_mask": mask}):
        cpu = net.sample(3, seed=8, label=label, **kw)
        for cached in (True, False):
            drawn = gpu.sample(3, seed=8, label=label, cached=cached, **kw)
            assert drawn.device.type == "cpu" and torch.equal(drawn, cpu), f"cached={cached}, {list(kw)}"


def test_drawn_in_parts_it_streams_the_same_progress(net):
    """Each report, the images so far and what the last pixel was drawn from, is the same
    whether the batch is drawn whole or in parts on threads."""
    if not splits(net):
        pytest.skip("drawn whole on any number of threads (cached.splits)")
    assert len(kernels.parts(3, 2)) == 2
    kw = dict(seed=5, every=7, label=labels_for(net, 3))
    whole = list(net.sample_stream(3, **kw))
    with threads(2):
        parts = list(net.sample_stream(3, **kw))
    assert len(whole) == len(parts)
    for a, b in zip(whole, parts):
        assert torch.equal(a.images, b.images) and a.done == b.done and a.position == b.position
        assert a.probs is not None and np.array_equal(a.probs, b.probs)
