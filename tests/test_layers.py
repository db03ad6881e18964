"""MaskedConv2d: the split (two shifted convolutions) form is the masked k x k kernel."""
import pytest
import torch

from pixelcnn.layers import MaskedConv2d

CASES = [(mask, k) for k in (1, 3, 5, 7) for mask in ("A", "B") if not (mask == "A" and k == 1)]


def randomised(conv, seed):
    """Random weights everywhere (including the bias), in double precision."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return conv.double()


@pytest.mark.parametrize("mask,kernel", CASES)
@pytest.mark.parametrize("cin,cout", [(1, 1), (1, 4), (3, 5), (6, 2)])
def test_split_form_equals_plain_masked_kernel(mask, kernel, cin, cout):
    conv = randomised(MaskedConv2d(cin, cout, kernel, mask), seed=kernel * 100 + cin * 10 + cout)
    for h, w in ((9, 11), (1, 1), (2, 7)):
        x = torch.randn(3, cin, h, w, dtype=torch.float64)
        split, plain = conv.split_forward(x), conv.plain_forward(x)
        assert split.shape == plain.shape == (3, cout, h, w)
        torch.testing.assert_close(split, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("split", [True, False])
def test_forward_follows_the_split_flag(split):
    conv = randomised(MaskedConv2d(2, 3, 5, "B", split=split), seed=1)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    expected = conv.split_forward(x) if split else conv.plain_forward(x)
    assert torch.equal(conv(x), expected)


@pytest.mark.parametrize("mask,kernel", CASES)
def test_masked_weight_hides_the_centre_for_A_and_everything_after_it(mask, kernel):
    conv = randomised(MaskedConv2d(2, 3, kernel, mask), seed=7)
    w = conv.masked_weight()
    assert w.shape == (3, 2, kernel, kernel)
    p = kernel // 2
    # Zero: the centre for type A, everything right of the centre, every row below.
    assert (w[:, :, p, p + 1:] == 0).all()
    assert (w[:, :, p + 1:, :] == 0).all()
    if mask == "A":
        assert (w[:, :, p, p] == 0).all()
    else:
        assert (w[:, :, p, p] != 0).all()
    # Everything the mask lets through is a real (random, so non-zero) weight.
    visible = torch.zeros(kernel, kernel, dtype=torch.bool)
    visible[:p, :] = True
    visible[p, : p + (mask == "B")] = True
    assert (w[:, :, visible] != 0).all()


@pytest.mark.parametrize("mask,kernel", CASES)
def test_an_output_never_sees_its_own_future(mask, kernel):
    """Impulse response: output (i, j) changes only with input pixels before (i, j)
    in raster order, or at (i, j) itself for type B."""
    conv = randomised(MaskedConv2d(1, 1, kernel, mask), seed=3)
    h = w = 7
    i, j = 3, 3
    base = conv(torch.zeros(1, 1, h, w, dtype=torch.float64))
    for r in range(h):
        for c in range(w):
            x = torch.zeros(1, 1, h, w, dtype=torch.float64)
            x[0, 0, r, c] = 1.0
            changed = not torch.equal(conv(x)[0, 0, i, j], base[0, 0, i, j])
            if (r, c) > (i, j) or ((r, c) == (i, j) and mask == "A"):
                assert not changed, f"output {i, j} sees input {r, c}"


@pytest.mark.parametrize("kernel", [0, 2, 4, -1, -3])
def test_even_or_nonpositive_kernel_is_rejected(kernel):
    with pytest.raises(ValueError, match="odd and positive"):
        MaskedConv2d(1, 1, kernel, "B")


@pytest.mark.parametrize("mask", ["C", "a", "", None])
def test_unknown_mask_is_rejected(mask):
    with pytest.raises(ValueError, match="mask must be"):
        MaskedConv2d(1, 1, 3, mask)


def test_1x1_type_A_is_rejected():
    with pytest.raises(ValueError, match="sees nothing"):
        MaskedConv2d(1, 1, 1, "A")


# ---------------------------------------------------------------- colour groups and rows

@pytest.mark.parametrize("mask", ["A", "B"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("row_only", [False, True])
def test_colour_groups_split_equals_plain_and_mask_the_centre_by_colour(mask, kernel, row_only):
    from pixelcnn.layers import colour_groups
    cin, cout = 6, 7
    gin, gout = colour_groups(cin, 3), colour_groups(cout, 3, interleaved=True)
    assert gin.tolist() == [0, 0, 1, 1, 2, 2] and gout.tolist() == [0, 1, 2, 0, 1, 2, 0]
    conv = randomised(MaskedConv2d(cin, cout, kernel, mask, groups=(gin, gout), row_only=row_only), seed=kernel)
    x = torch.randn(2, cin, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(conv.split_forward(x), conv.plain_forward(x), rtol=1e-12, atol=1e-12)
    w, p = conv.masked_weight(), kernel // 2
    sees = gout[:, None] > gin[None, :] if mask == "A" else gout[:, None] >= gin[None, :]
    assert torch.equal(w[:, :, p, p] != 0, sees)  # the centre: earlier (A) or same-or-earlier (B) colours
    assert (w[:, :, p, p + 1:] == 0).all() and (w[:, :, p + 1:] == 0).all()
    assert (w[:, :, :p] != 0).all() != row_only or p == 0  # the rows above, unless row_only


def test_vertical_conv_sees_only_rows_above_or_up_to_its_own():
    from pixelcnn.layers import VerticalConv
    for strict in (True, False):
        conv = randomised(VerticalConv(1, 1, 3, strict), seed=1)
        x = torch.zeros(1, 1, 7, 7, dtype=torch.float64, requires_grad=True)
        conv(x)[0, 0, 4, 3].backward()
        seen = (x.grad[0, 0] != 0).nonzero().tolist()
        rows = {r for r, _ in seen}
        assert rows == ({3} if strict else {3, 4}) and {c for _, c in seen} == {2, 3, 4}
