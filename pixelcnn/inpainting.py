"""Inpainting: the unknown pixels of an image drawn from the model's distribution given every
known pixel, before and after them in raster order (issue #18), where a prefix sampler sees
only the known pixels before each one.

Two steps, both exact in the limit:

1. Sampling importance resampling. For each image, `particles` proposals are drawn by the
   raster sampler with the known pixels fixed (model.sample_stream's prefix_mask): each
   unknown pixel given the pixels before it. A proposal's weight is the probability of the
   known pixels that it did not choose, each given the pixels before it (one forward pass):
   p(image) / q(proposal). One proposal per image is kept, with probability proportional to
   its weight. Where every known pixel comes before every unknown one, the weights are equal
   and this is the prefix sampler.
2. Gibbs sweeps (`sweeps`): each unknown pixel in raster order redrawn from its exact
   conditional given every other one, p(x) for each of its K^C colours (a forward pass of
   K^C images per image), which leaves the model's distribution given the known pixels as
   it is.

Seeded like `sample`: the same seed gives the same images. At temperature T the model's
conditionals are tempered, p_T(x_t | past) proportional to exp(logits / T), both in the
proposals and in what they are weighed and redrawn by.
"""
import torch

from .sampling import Progress


def check(model, image, known, n):
    """Validated (image (n, C, H, W) long, known (n, H, W) bool): one image and mask for all n
    inpaintings, or one each."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image.unsqueeze(0)
    image = model.check_levels(image, "image")
    if image.shape[0] not in (1, n):
        raise ValueError(f"image holds {image.shape[0]} images, expected 1 or n={n}")
    _, H, W = model.image_shape
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
        raise ValueError("known must be a boolean tensor, True where a pixel is known")
    if known.dim() == 2:
        known = known.unsqueeze(0)
    if known.dim() != 3 or known.shape[0] not in (1, n) or tuple(known.shape[1:]) != (H, W):
        raise ValueError(f"known must have shape ({H}, {W}) or (n, {H}, {W}), got {tuple(known.shape)}")
    return image.cpu().expand(n, -1, -1, -1).clone(), known.cpu().expand(n, -1, -1).clone()


def inpaint_stream(model, image, known, n=1, *, seed=None, temperature=1.0, label=None, particles=16, sweeps=0,
                   every=28):
    """Yield Progress(images (n, C, H, W), done, total, position) as n inpaintings of `image`
    form: the first proposal of each while they are drawn (every `every` pixels), then the
    images kept, after each row of each Gibbs sweep; the last holds the finished images, the
    known pixels as given. done of total counts pixels: H * W for the proposals, as many for
    each sweep."""
    image, known = check(model, image, known, n)
    if not isinstance(particles, int) or particles < 1 or not isinstance(sweeps, int) or sweeps < 0:
        raise ValueError(f"particles must be a positive integer and sweeps a whole number, got {particles}, {sweeps}")
    C, H, W = model.image_shape
    total = H * W * (1 + sweeps)
    seed = torch.seed() if seed is None else seed
    label = model.check_label(label, n)
    many = None if label is None else label.repeat_interleave(particles)
    proposals = model.sample_stream(n * particles, seed=seed, temperature=temperature,
                                    prefix=image.repeat_interleave(particles, 0),
                                    prefix_mask=known.repeat_interleave(particles, 0), every=every, label=many)
    for p in proposals:
        if p.done < p.total:
            yield Progress(p.images[::particles], p.done, total, p.position)
    drawn = p.images
    generator = torch.Generator().manual_seed(seed + 1)  # apart from the proposals' uniforms
    given = known.repeat_interleave(particles, 0)[:, None]  # (n * particles, 1, H, W)
    weight = (log_probs(model, drawn, many, temperature) * given).sum((1, 2, 3))
    kept = torch.multinomial(torch.softmax(weight.view(n, particles).double(), 1), 1, generator=generator)[:, 0]
    x = drawn.view(n, particles, C, H, W)[torch.arange(n), kept].clone()
    for sweep in range(sweeps):
        for i in range(H):
            for j in range(W):
                gibbs(model, x, ~known[:, i, j], i, j, label, temperature, generator)
            yield Progress(x.clone(), H * W * (1 + sweep) + (i + 1) * W, total, (i, W - 1))
    if sweeps == 0:
        yield Progress(x, total, total, (H - 1, W - 1))


@torch.no_grad()
def log_probs(model, x, label, temperature):
    """log p_T of each sub-pixel of x (B, C, H, W) given the pixels before it."""
    with model.evaluating():
        logits = model(x.to(model.device), label).float() / temperature
    return torch.log_softmax(logits, dim=1).gather(1, x.to(model.device).unsqueeze(1)).squeeze(1).cpu()


def gibbs(model, x, where, i, j, label, temperature, generator):
    """Redraw pixel (i, j) of the images `where` (n,) in x, all its channels at once, from its
    conditional given every other pixel: p_T(x) for each of its K^C colours, the rest as they
    are (channel by channel, a sweep barely moves colours whose channels go together)."""
    if not where.any():
        return
    rows, colours = where.nonzero()[:, 0], levels_of(model)
    m = len(colours)
    each = x[rows].repeat_interleave(m, 0)
    each[:, :, i, j] = colours.repeat(len(rows), 1)
    lab = None if label is None else label[rows].repeat_interleave(m)
    logp = log_probs(model, each, lab, temperature).sum((1, 2, 3))  # log p_T(x), up to what no colour changes
    x[rows, :, i, j] = colours[torch.multinomial(torch.softmax(logp.view(-1, m).double(), 1), 1,
                                                 generator=generator)[:, 0]]


def levels_of(model):
    """Every colour of a pixel: (K^C, C) levels."""
    C, K = model.image_shape[0], model.levels
    return torch.cartesian_prod(*[torch.arange(K)] * C).view(-1, C)


def inpaint(model, image, known, n=1, **kwargs):
    """The finished images of inpaint_stream: int64 levels (n, C, H, W)."""
    *_, last = inpaint_stream(model, image, known, n, every=None, **kwargs)
    return last.images


def exact_posterior(model, image, known, label=None, temperature=1.0):
    """(every completion of `image`'s unknown sub-pixels (M, C, H, W), its probability given the
    known ones (M,)): enumerated, for tests on images with a few unknown pixels."""
    image, known = check(model, image, known, 1)
    C, H, W = model.image_shape
    where = (~known[0]).nonzero().tolist()
    m = model.levels ** (C * len(where))
    if m > 1 << 16:
        raise ValueError(f"{m} completions are too many to enumerate")
    x = image.repeat(m, 1, 1, 1)
    code = torch.arange(m)
    for c in range(C):
        for i, j in where:
            x[:, c, i, j], code = code % model.levels, code // model.levels
    lab = None if label is None else model.check_label(label, m)
    return x, torch.softmax(log_probs(model, x, lab, temperature).sum((1, 2, 3)).double(), 0)

