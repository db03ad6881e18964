"""Property-based tests (hypothesis) of the public functions that take user data: whatever
comes in, the answer is right or a clear ValueError, never a crash or a silently wrong size."""
import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from helpers import make_tiny
from pixelcnn import convert

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64, np.bool_])
NETS = {name: make_tiny(*name.split("/")) for name in ("pixelcnn/shapes", "pixelrcnn_ar/color_shapes", "gated/shapes")}


def arrays(max_dims=4, max_side=40):
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)
    return DTYPES.flatmap(lambda dt: hnp.arrays(dt, shapes, elements=hnp.from_dtype(np.dtype(dt), allow_nan=True,
                                                                                    allow_infinity=True)))


def pictures():
    """RGB(A) arrays of any size and dtype, values anywhere in their dtype's range."""
    shapes = st.tuples(st.integers(1, 60), st.integers(1, 60), st.sampled_from([3, 4]))
    return st.tuples(DTYPES, shapes).flatmap(lambda d: hnp.arrays(d[0], d[1], elements=hnp.from_dtype(
        np.dtype(d[0]), allow_nan=True, allow_infinity=True)))


@SETTINGS
@given(a=st.one_of(arrays(), pictures()), size=st.sampled_from([(28, 28), (20, 20)]), whole=st.booleans())
def test_drawing_to_levels_is_binary_of_the_asked_size_or_a_value_error(a, size, whole):
    try:
        x = convert.drawing_to_levels(a, *size, whole=whole)
    except ValueError:
        return event("ValueError")
    event("converted")
    assert x.shape == (1, *size) and x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I", "F", "I;16"]))
    w, h = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    seed = draw(st.integers(0, 2**32 - 1))
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    img = Image.fromarray(rgb, "RGBA")
    return img.convert(mode) if mode not in ("I;16",) else img.convert("L").convert("I;16")


@SETTINGS
@given(img=pil_images(), shape=st.sampled_from([(1, 28, 28, 2), (1, 20, 20, 2), (3, 20, 20, 4), (3, 28, 28, 4)]))
def test_image_to_levels_has_the_model_s_shape_and_levels_or_a_value_error(img, shape):
    c, h, w, k = shape
    try:
        x = convert.image_to_levels(img, c, h, w, k)
    except ValueError:
        return event("ValueError")
    event("converted")
    assert x.shape == (c, h, w) and x.dtype == np.uint8 and int(x.max()) < k


def tensors():
    """Tensors of any small shape and dtype, and values well outside the levels too."""
    return st.builds(lambda a: torch.from_numpy(np.array(a)), arrays(max_dims=5, max_side=21))


def images_for(net):
    """Tensors of the net's image shape, any dtype, levels mostly in range."""
    shape = st.tuples(st.integers(0, 3), *map(st.just, net.image_shape))
    def levels(dtype):
        kind = np.dtype(dtype).kind
        return st.integers(-1 if kind in "if" else 0, 1 if kind == "b" else net.levels).map(np.dtype(dtype).type)
    arrays = st.tuples(DTYPES, shape).flatmap(lambda d: hnp.arrays(d[0], d[1], elements=levels(d[0])))
    return arrays.map(torch.from_numpy)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(NETS)))
def test_log_prob_is_per_subpixel_and_a_log_probability_or_a_value_error(data, name):
    net = NETS[name]
    x = data.draw(st.one_of(tensors(), images_for(net)))
    try:
        logp = net.log_prob(x)
    except ValueError:
        assert x.dim() != 4 or tuple(x.shape[1:]) != net.image_shape or x.is_floating_point() \
            or (x.numel() and (x.min() < 0 or x.max() >= net.levels))
        return event("ValueError")
    event("scored")
    assert logp.shape == x.shape and torch.isfinite(logp).all() and (logp <= 0).all()


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(NETS)), n=st.integers(1, 3))
def test_sample_with_a_prefix_keeps_it_and_has_the_right_shape_or_a_value_error(data, name, n):
    net = NETS[name]
    C, H, W = net.image_shape
    good = data.draw(st.booleans())
    if good:  # well-formed: levels of the image shape, a boolean mask of one of the allowed shapes
        levels = st.integers(0, net.levels - 1)
        prefix = torch.from_numpy(data.draw(hnp.arrays(np.int64, (n, C, H, W), elements=levels)))
        mshape = data.draw(st.sampled_from([(H, W), (n, H, W), (n, 1, H, W)]))
        mask = torch.from_numpy(data.draw(hnp.arrays(np.bool_, mshape)))
    else:
        prefix, mask = data.draw(st.one_of(st.none(), tensors())), data.draw(st.one_of(st.none(), tensors()))
    try:
        x = net.sample(n, seed=0, prefix=prefix, prefix_mask=mask)
    except ValueError:
        assert not good
        return event("ValueError")
    event("sampled with a prefix" if prefix is not None else "sampled")
    assert x.shape == (n, C, H, W) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) < net.levels
    if prefix is not None:
        m = mask.reshape(-1, H, W).expand(n, H, W).unsqueeze(1).expand(n, C, H, W)
        assert torch.equal(x[m], prefix.expand(n, C, H, W)[m])
