"""What the app does, without the page: each of its actions is one call here that takes the
page's raw inputs and gives back pictures and text. No gradio, so it is tested without a
server; app.py lays out the page and wires its events to these calls:

    sample(name, n, temperature, seed, klass, show_probs)   yields (Grid, next-pixel probabilities)
    complete(name, source, drawing, image, keep_rows, keep, temperature, seed, klass, marks)  yields Grids
    score(name, source, drawing, image, klass)              (heat map, text)
    see(name, i, j)                                         (picture, two models' maps, text, their titles)

`name` is "model/dataset", e.g. "pixelcnn/mnist". A Grid is a picture drawn when it is
shown, by its image(): a stream's frames are mostly dropped unseen in a crowd. Input that
cannot be used raises `Refused` (a ValueError) with a message for the person; asides for
them go to `tell(level, message)`, level "info" or "warning". Randomness comes from the seed
given, never the global state. A server passes `uploads`, the folder its uploads land in: a
picture is then opened only from there or from the examples, never from a path a client
names elsewhere.
"""
import math
import reprlib
from contextlib import closing, suppress
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

import pixelcnn
from pixelcnn import analysis, convert, datasets, evaluate, files, images, weights
from pixelcnn.models import GatedPixelCNN

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # test images as PNGs, beside the package
FRAMES = 36  # pictures streamed while a whole image is drawn
FRAME_SECONDS = 0.08  # the app shows at most one every this long (the sampler does not wait for it)
WIDTH = 480  # about how wide the grid of samples is drawn, in pixels: crisp, not rescaled by the browser
MAX_SAMPLES = 16
COMPLETIONS = 4
COMPLETIONS_ROW = 2  # to a row: 2x2, as wide as the samples (four in a row were 70 px each on a phone)
SEE_SCALE = 10  # the heat map and the pictures of "What the model sees": pixels of the image, times this
# torch's CPU generator seeds its Mersenne Twister with the seed's low 32 bits only, so seeds
# 2**32 apart draw the same images: every seed up to this one draws its own (and a browser sends it exactly)
MAX_SEED = 2**32 - 1
EXACT_FLOATS = 2**53  # a float this far from 0, or further, may stand for any of several whole numbers
DRAW, IMAGE = "Draw", "Image"  # where the picture to complete or score comes from
# what a completion keeps of the picture: its top rows (the raster sampler, exact); the drawing's
# ink; or all but what is painted over in the marking canvas (both: model.inpaint)
ROWS, DRAWN, MARKED = "The top rows", "What I drew", "All but what I paint over"
PARTICLES = 8  # model.inpaint's proposals per completion: four within 1.2 s (docs/models.md#inpainting)
MARKING_SIDE = 280  # the marking canvas, in screen pixels: the whole picture, scaled to fill it


class Refused(ValueError):
    """Input the app cannot use: the message is for the person who sent it, under `title`."""

    def __init__(self, message, title="Error"):
        super().__init__(message)
        self.title = title

    def __reduce__(self):  # pickled with its title: the app's engine sends it from its worker processes
        return type(self), (str(self), self.title)


def ignore(level, message):
    """The default `tell`: asides go nowhere."""


# ---------------------------------------------------------------- models and inputs

def split(name):
    """"pixelcnn/mnist" -> ("pixelcnn", "mnist")."""
    model, _, dataset = str(name or "").partition("/")
    if model not in pixelcnn.MODELS or dataset not in pixelcnn.DATASETS:
        raise Refused(f"Pick a model first: {name!r} is not a model/dataset pair such as pixelcnn/mnist.")
    return model, dataset


@cache
def loaded(model, dataset):
    """The trained model, loaded once for the life of the process."""
    return pixelcnn.load(model, dataset)


def get_model(name):
    model, dataset = split(name)
    try:
        return loaded(model, dataset)
    except (FileNotFoundError, ValueError) as e:
        raise Refused(str(e), title="No weights") from None


def number(value):
    """A float from what the page sent, NaN if it is none."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def exact_whole(value):
    """The whole number the page sent, exactly, or None: an int (not a bool), a string of
    digits, or a float (or its string) that is whole and below EXACT_FLOATS, where no two
    whole numbers share a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdecimal():
        try:
            return int(value)
        except ValueError:  # more digits than Python converts
            return None
    v = number(value)
    return int(v) if math.isfinite(v) and v.is_integer() and abs(v) < EXACT_FLOATS else None


def whole_number(value, low, high, what):
    n = exact_whole(value)
    if n is not None and low <= n <= high:
        return n
    wanted = f"The {what} must be a whole number from {low} to {high}"
    if value is None or isinstance(value, str) and not value.strip():
        raise Refused(f"The {what} is empty: give a whole number from {low} to {high}.")
    if n is not None:  # (the browser rounds what it cannot hold: 99999999999999999999 comes as 1e20)
        raise Refused(f"{wanted}: {reprlib.repr(n)} is too {'large' if n > high else 'small'}.")
    raise Refused(f"{wanted}, not {reprlib.repr(value)}.")  # what was sent, cut short if long


def temperature_of(value):
    t = number(value)
    if not (math.isfinite(t) and 0 < t <= 10):
        raise Refused("The temperature must be a number above 0 (1 samples the model as trained).")
    return t


def label_of(name, klass):
    """The class the conditional model `name` is asked for (None for the others); no model loaded."""
    model, dataset = split(name)
    return whole_number(klass, 0, datasets.classes_of(dataset) - 1, "class") if pixelcnn.is_conditional(model) else None


def given(dataset, source, drawing, image, tell=ignore, uploads=None):
    """The picture to complete or score as levels (C, H, W) of `dataset`'s images, from the
    drawing or the image; a file only from the folder `uploads` or the examples (None: from
    anywhere). A drawing stays where and as large as it was drawn (the canvas is the image's
    central box, where a test digit lies): what a person draws at the top is the top of what
    is completed and scored."""
    c, h, w, levels = datasets.shape_of(dataset)
    folders = None if uploads is None else (uploads, EXAMPLES)
    try:
        if source == DRAW:
            drawn = np.asarray(convert.uploaded(drawing, "drawing", folders))
            if c != 1:
                x = convert.colour_drawing_to_levels(drawn, c, h, w, levels)
                if len(convert.ink_colours(convert.on_white(Image.fromarray(drawn)), levels, share=0.05)) > 1:
                    tell("info", "This model draws in one colour on a background: your drawing is taken in its "
                                 "commonest colour.")
                return x
            return convert.drawing_to_levels(drawn, h, w, whole=False)
        img = convert.uploaded(image, "image", folders)
        if c == 1 and convert.is_colour(img):
            tell("info", "This model draws black and white: your colour image was turned into black and white.")
        return convert.image_to_levels(img, c, h, w, levels)
    except ValueError as e:
        raise Refused(str(e), title="Cannot use that picture") from None


def opened(image, uploads=None):
    """The image the page sent, opened (an RGB PIL image) to check that it is one: Refused if not."""
    try:
        return convert.uploaded(image, "image", None if uploads is None else (uploads, EXAMPLES))
    except ValueError as e:
        raise Refused(str(e), title="Cannot use that picture") from None


# ---------------------------------------------------------------- the models offered

MODEL_NAMES = {"pixelcnn": "PixelCNN", "pixelrcnn": "PixelRCNN", "pixelrcnn_ar": "PixelRCNN, R→G→B",
               "gated": "Gated PixelCNN", "gated_cond": "Gated PixelCNN, class-conditional"}
DATASET_NAMES = {"mnist": "MNIST", "shapes": "Shapes", "color_mnist": "Colour MNIST", "color_shapes": "Colour shapes"}
REFERENCE = ("pixelcnn", "pixelrcnn")  # the designs the others improve on: binary, and colour
ABOUT = {
    "pixelcnn": "the reference design (van den Oord et al., 2016): masked convolutions, with a blind spot "
                "above and to the right of each pixel (see *What the model sees*).",
    "pixelrcnn": "the reference colour design: a residual PixelCNN that draws each pixel's red, green and blue "
                 "on their own, none knowing the others, so its colours mix.",
    "pixelrcnn_ar": "an improved colour design: red first, then green given the red, then blue given both, so a "
                    "pixel's colour holds together.",
    "gated": "an improved design: gated layers in two stacks, a vertical and a horizontal one, so no blind spot.",
    "gated_cond": "Gated PixelCNN told what to draw: the class you pick (Class, above).",
}


def test_nll(name):
    """The test NLL (nats/image) train.py recorded beside the weights of `name`, or None."""
    return files.read_facts(weights.weights_path(*split(name))).get("test_nats_per_image")


def reference_for(dataset):
    """The reference design for a dataset's images: PixelCNN in black and white, PixelRCNN in colour."""
    return REFERENCE[datasets.shape_of(dataset)[0] > 1]


def display_name(name):
    model, dataset = split(name)
    return f"{DATASET_NAMES[dataset]} · {MODEL_NAMES[model]}"


def ranked(names):
    """(label, name) of each model for the picker: by dataset, the best (the lowest test NLL)
    first, the class-conditional ones last (told the class, their NLL is not comparable), each
    called in a word the reference design, the best or improved."""
    def order(name):
        nll = test_nll(name)
        return pixelcnn.is_conditional(split(name)[0]), nll is None, nll or 0

    out = []
    for dataset in pixelcnn.DATASETS:
        here = sorted((n for n in names if split(n)[1] == dataset), key=order)
        for k, name in enumerate(here):
            model = split(name)[0]
            word = ("reference design" if model in REFERENCE else
                    "best" if k == 0 and test_nll(name) is not None else "improved")
            out.append((f"{display_name(name)} — {word}", name))
    return out


MIXES = "It draws each pixel's red, green and blue on its own, none knowing what the others drew: so its colours mix."


def samples_note(name):
    """The line under the samples: why a model whose colour channels are independent mixes
    colours; "" for the others."""
    if not name:
        return ""
    model, dataset = split(name)
    independent = not pixelcnn.ARCHITECTURES[model][1].get("ar_channels")
    return f"{MODEL_NAMES[model]}, the reference design: {MIXES[0].lower()}{MIXES[1:]}" \
        if independent and datasets.shape_of(dataset)[0] > 1 else ""


def about(name):
    """A line on the model `name`: what it is, and how good (its test NLL beside the reference's)."""
    if not name:
        return ""
    model, dataset = split(name)
    text = f"**{MODEL_NAMES[model]}** — {ABOUT[model]}"
    config = files.read_facts(weights.weights_path(model, dataset)).get("config")
    config = config if isinstance(config, dict) else {}
    if config.get("same_as_first") is True:
        text += (" It is also told, for every pixel before, whether its colour is the first pixel's (mostly the "
                 "background's).")
    if config.get("summary") is True:
        text += (" Each layer also keeps a summary of every row above, however far, so a stroke keeps the colour "
                 "it began in even where its start is beyond the convolutions' reach.")
    nll = test_nll(name)
    if nll is not None:
        given = ", given its class" if pixelcnn.is_conditional(model) else ""
        text += f" On {DATASET_NAMES[dataset]}, **{nll:.1f} nats** per test image{given} (lower is better"
        reference = reference_for(dataset)
        ref_nll = None if model == reference else test_nll(f"{reference}/{dataset}")
        text += f"; {MODEL_NAMES[reference]}, the reference: {ref_nll:.1f})." if ref_nll is not None else ")."
    return text


# ---------------------------------------------------------------- the page's controls

def examples(dataset):
    """The example pictures offered for a dataset's models (paths)."""
    return sorted(str(p) for p in EXAMPLES.glob(f"{dataset}_*.png"))


class Controls(NamedTuple):
    rows: int  # the image's height: the most rows a completion can keep
    examples: list  # paths of example pictures
    classes: dict  # the class picker: choices (name, label), value, visible (a class-conditional model)
    colour: bool  # whether its images are in colour (a drawing too, then)


def controls(name):
    """What the page offers for the model `name` (None: no model)."""
    model, dataset = split(name) if name else (None, "mnist")
    c, h, _, _ = datasets.shape_of(dataset)
    classes = dict(choices=[(n, k) for k, n in enumerate(datasets.class_names(dataset))], value=0,
                   visible=model is not None and pixelcnn.is_conditional(model))
    return Controls(h, examples(dataset) if name else [], classes, c > 1)


def example(name, index):
    """The path of the example picture `index` offered for the model `name`."""
    found = controls(name).examples
    return found[whole_number(index, 0, len(found) - 1, "example's number")]


def seen(name, source, drawing, image, uploads=None, keep=None, keep_rows=None, marks=None):
    """The picture the model `name` is given to complete or score, as the model sees it (at
    SEE_SCALE), or None while there is none it can use (nothing drawn yet, say). With `keep`
    (see complete), the part kept, tinted blue, the rest not given: to complete."""
    try:  # the dataset's shape, not the model: nothing loaded in the server for a preview
        dataset = split(name)[1]
        x = given(dataset, source, drawing, image, uploads=uploads)
        known = None
        if keep is not None:
            check_keep(keep, source)
            known = kept(x, keep, keep_rows, marks, uploads)
    except Refused:
        return None
    return images.grid(x[None], datasets.shape_of(dataset)[3], scale=SEE_SCALE // 2, known=known,
                       blank=None if known is None else ~known)


# ---------------------------------------------------------------- sampling and completing

class Grid:
    """A crisp grid of images, about `width` pixels wide, drawn by image() when it is shown: till
    then a few KB of levels (copied as they are now), cheap to keep, to drop unseen and to send
    to another process, where the picture it draws is a few hundred KB. `drawn` pixels, in
    raster order (the sampler's), are drawn so far (None: all); the others, but those `known`,
    show as not drawn yet."""

    def __init__(self, x, levels, nrow, mark=None, known=None, width=WIDTH, drawn=None):
        self.x = torch.as_tensor(x).cpu().numpy().astype(np.uint8 if levels <= 256 else np.int64)  # a copy
        self.known = None if known is None else torch.as_tensor(known).bool().cpu().numpy().copy()
        self.levels, self.nrow, self.mark, self.width, self.drawn = levels, nrow, mark, width, drawn

    def image(self):
        scale = max(3, self.width // (self.nrow * (self.x.shape[-1] + 1) + 1))
        return images.grid(self.x, self.levels, nrow=self.nrow, scale=scale, mark=self.mark, known=self.known,
                           blank=self.blank())

    def blank(self):
        """The pixels not drawn yet (H, W), or None once all are."""
        if self.drawn is None:
            return None
        h, w = self.x.shape[-2:]
        after = np.arange(h * w).reshape(h, w) >= self.drawn
        return after if self.known is None else after & ~self.known


def picture(x, levels, nrow, mark=None, known=None, width=WIDTH, drawn=None):
    """The Grid of levels x (N, C, H, W), `nrow` to a row."""
    return Grid(x, levels, nrow, mark, known, width, drawn)


def frames(stream, levels, nrow, known=None, width=WIDTH):
    """(picture, progress) of each of a sampler's progress reports, the last the finished grid.
    Unpaced: the app's engine shows them at most one every FRAME_SECONDS. Closing this
    generator (Stop, the browser going away) closes the sampler with it."""
    with closing(stream):
        for p in stream:
            drawing = p.done < p.images.shape[-2] * p.images.shape[-1]  # (inpainting's Gibbs sweeps come after)
            yield picture(p.images, levels, nrow, p.position if p.done < p.total else None, known, width,
                          p.done if drawing else None), p


def warm(name):
    """Load the model `name` (if any) and draw one image with it, so that the first visitor's
    first picture comes as fast as a later one's (loading it once took a second)."""
    if name:
        with suppress(Refused):
            for _ in sample(name, 1, 1.0, 0):
                pass


def every(net):
    """Pixels per progress report: FRAMES pictures for a whole image."""
    _, h, w = net.image_shape
    return max(1, h * w // FRAMES)


CHANNELS = ("red", "green", "blue")


FINISHED = ('<div class="next-pixel"><p>Finished: every pixel is drawn. Stop a sample part way to see what '
            "the model expected at the pixel it stopped at.</p></div>")


def next_pixel(p, net):
    """What the model expected at the pixel just drawn in the first image, as HTML a person
    reads at a glance: the colour drawn, and for each channel a bar per level, in that level's
    colour, as high as its probability (also in the level's data-channel, data-level, data-p)."""
    probs, drawn = p.probs[0], p.images[0, :, p.position[0], p.position[1]]  # (K, C), (C,)
    levels, channels = probs.shape
    swatch = tuple(images.to_rgb(drawn[None, :, None, None], levels)[0, 0, 0].tolist())
    if channels == 1:
        said, rows = ("ink" if drawn[0] else "paper"), [("", [("paper", (255, 255, 255)), ("ink", (0, 0, 0))])]
    else:
        said = ", ".join(f"{CHANNELS[c]} {v}" for c, v in enumerate(drawn.tolist()))
        rows = [(CHANNELS[c] + (given_channels(c) if net.config.ar_channels else ""),
                 [(str(k), tuple(round(k * 255 / (levels - 1)) if i == c else 0 for i in range(3)))
                  for k in range(levels)]) for c in range(channels)]
    html = [f'<div class="next-pixel"><p>Drawn: <span class="swatch" style="background: rgb{swatch}"></span> '
            f"{said}</p>"]
    if channels > 1:
        html.append(f"<p>Each channel from 0 (none) to {levels - 1} (full):</p>")
    for c, (name, bars) in enumerate(rows):
        html.append(f'<div class="channel"><span class="name">{name}</span>')
        for k, (label, colour) in enumerate(bars):
            q, tip = float(probs[k, c]), f"{name} {label}".strip()
            html.append(f'<div class="level" data-channel="{c}" data-level="{label}" data-p="{q:.6f}" '
                        f'title="{tip}: {q:.1%}">'
                        f'<div class="bar"><div style="height: {max(q * 100, 1):.0f}%; background: rgb{colour}">'
                        f"</div></div><span>{label}</span><span>{percent(q)}</span></div>")
        html.append("</div>")
    if channels > 1 and not net.config.ar_channels:
        html.append(f"<p>{MIXES}</p>")
    return "".join(html) + "</div>"


def given_channels(c):
    """What an R→G→B model's channel c is drawn given, beyond the pixels before it."""
    return "" if c == 0 else f", given the {' and '.join(CHANNELS[:c])} drawn"


def percent(q):
    return "&lt;1%" if 0 < q < 0.005 else f"{q:.0%}"


def sample(name, n, temperature, seed, klass=0, show_probs=False):
    """Yield (grid, next-pixel probabilities or None) as n samples (of class `klass`, for a
    class-conditional model) are drawn; the probabilities, if show_probs, are the first
    image's at the pixel being drawn (once the grid is finished, FINISHED: no pixel is)."""
    n, temperature, seed, label = sample_request(name, n, temperature, seed, klass)
    net = get_model(name)
    stream = net.sample_stream(n, seed=seed, temperature=temperature, every=every(net), label=label)
    with closing(frames(stream, net.levels, nrow=math.ceil(math.sqrt(n)))) as pictures:
        for pic, p in pictures:
            if not show_probs or p.probs is None:
                yield pic, None
            else:
                yield pic, next_pixel(p, net) if p.done < p.total else FINISHED


def sample_request(name, n, temperature, seed, klass=0, show_probs=False):
    """A request to sample, checked (Refused where it cannot be drawn), before the model is
    loaded: (n, temperature, seed, label)."""
    split(name)
    return (whole_number(n, 1, MAX_SAMPLES, "number of samples"), temperature_of(temperature),
            whole_number(seed, 0, MAX_SEED, "seed"), label_of(name, klass))


def complete_request(name, source, drawing, image, keep_rows, keep, temperature, seed, klass=0, marks=None,
                     tell=ignore, uploads=None):
    """A request to complete, checked (Refused where it cannot be), before the model is loaded:
    (temperature, seed, label, the picture x, levels (C, H, W), and the pixels kept (H, W))."""
    dataset = split(name)[1]
    temperature, seed = temperature_of(temperature), whole_number(seed, 0, MAX_SEED, "seed")
    check_keep(keep, source)
    x = given(dataset, source, drawing, image, tell=tell, uploads=uploads)
    return temperature, seed, label_of(name, klass), x, kept(x, keep, keep_rows, marks, uploads)


def score_request(name, source, drawing, image, klass=0, tell=ignore, uploads=None):
    """A request to score, checked, before the model is loaded: (label, the picture's levels)."""
    return label_of(name, klass), given(split(name)[1], source, drawing, image, tell=tell, uploads=uploads)


def complete(name, source, drawing, image, keep_rows, keep, temperature, seed, klass=0, marks=None, tell=ignore,
             uploads=None):
    """Keep part of the picture and yield COMPLETIONS completions of the rest, two by two, as they
    form, the kept part tinted blue. `keep` says which part: ROWS, the top `keep_rows` rows;
    DRAWN, a drawing's ink; MARKED, all but what is painted over in `marks`, the marking canvas."""
    temperature, seed, label, x, mask = complete_request(name, source, drawing, image, keep_rows, keep, temperature,
                                                         seed, klass, marks, tell, uploads)
    net = get_model(name)
    prefix, mask = torch.from_numpy(x).long(), torch.from_numpy(mask)
    if mask.all():
        tell("warning", "Every row is kept, so there is nothing left to complete: keep fewer rows."
             if keep == ROWS else "Every pixel is kept, so there is nothing left to complete.")
        yield picture(prefix.expand(COMPLETIONS, -1, -1, -1), net.levels, COMPLETIONS_ROW, known=mask)
        return
    yield picture(prefix.expand(COMPLETIONS, -1, -1, -1), net.levels, COMPLETIONS_ROW, known=mask, drawn=0)
    if keep == ROWS:  # a raster prefix: the sampler itself is exact
        stream = net.sample_stream(COMPLETIONS, seed=seed, temperature=temperature, every=every(net),
                                   prefix=prefix, prefix_mask=mask, label=label)
    else:  # known pixels after unknown ones: given all of them
        stream = net.inpaint_stream(prefix, mask, COMPLETIONS, seed=seed, temperature=temperature, label=label,
                                    particles=PARTICLES, every=every(net))
    with closing(frames(stream, net.levels, COMPLETIONS_ROW, known=mask)) as pictures:
        for pic, _ in pictures:
            yield pic


def check_keep(keep, source):
    """Refused unless `keep` is a way to keep part of a picture from `source`."""
    if not isinstance(keep, str) or keep not in (ROWS, DRAWN, MARKED):
        raise Refused(f"What to keep must be one of {ROWS!r}, {DRAWN!r} or {MARKED!r}, not {reprlib.repr(keep)}.")
    if keep == DRAWN and source != DRAW:
        raise Refused("Only a drawing keeps what you drew: draw, or keep the top rows of the image.")


def kept(x, keep, keep_rows, marks, uploads=None):
    """The pixels of the picture x, levels (C, H, W), that `keep` keeps (bool (H, W)): the top
    `keep_rows` rows, the ink, or all but what is painted over in `marks`."""
    _, h, w = x.shape
    if keep == ROWS:
        mask = np.zeros((h, w), bool)
        mask[:whole_number(keep_rows, 0, h, "number of rows to keep")] = True
        return mask
    if keep == DRAWN:  # the ink: level 1 of a binary drawing, the colour other than white of a colour one
        ink = x[0] != 0 if len(x) == 1 else (x != x.max()).any(axis=0)
        if not ink.any():
            raise Refused("There is nothing drawn to keep.")
        return ink
    try:
        return ~convert.marked(marks, h, w, None if uploads is None else (uploads, EXAMPLES))
    except ValueError as e:
        raise Refused(str(e), title="Nothing to repaint") from None


def backdrop(name, source, drawing, image, uploads=None):
    """The picture to mark what to repaint on: the picture the model `name` is given, filling a
    MARKING_SIDE square canvas (None while there is none it can use)."""
    try:
        dataset = split(name)[1]
        x = given(dataset, source, drawing, image, uploads=uploads)
    except Refused:
        return None
    _, h, w = x.shape
    return images.grid(x[None], datasets.shape_of(dataset)[3], scale=MARKING_SIDE // max(h, w), pad=0).resize(
        (MARKING_SIDE, MARKING_SIDE), Image.Resampling.NEAREST)


# ---------------------------------------------------------------- how likely, and what the model sees

@cache
def range_on_test_images(name):
    """The bits/dim range of test images under the model `name`: as train.py (or evaluate
    --update-facts) recorded it beside the weights, else computed (evaluate.range_on_test_images,
    seconds), once for the life of the process."""
    model, dataset = split(name)
    recorded = files.read_facts(weights.weights_path(model, dataset)).get("test_bits_per_dim_percentiles")
    return recorded or evaluate.range_on_test_images(get_model(name))


def score(name, source, drawing, image, klass=0, tell=ignore, uploads=None):
    """(picture, Markdown): how likely the model finds the whole picture, in bits/dim beside the
    range on test images; the picture as the model sees it beside the bits each pixel costs."""
    label, x = score_request(name, source, drawing, image, klass, tell, uploads)
    net = get_model(name)
    x = torch.from_numpy(x).long()[None]
    bits = analysis.surprise(net, x, label)[0]
    bpd = analysis.bits_per_dim(net, x, label).item()
    text = f"**{bpd:.3f} bits/dim** ({bits.sum().item():.1f} bits for the whole image"
    text += f", given the class {datasets.class_names(net.config.dataset)[label]})." if label is not None else ")."
    q = range_on_test_images(name)
    if q is not None:
        text += (f"\n\nTest images: {q['5']:.3f} to {q['95']:.3f} bits/dim (5th to 95th percentile), "
                 f"median {q['50']:.3f}. " + (
                     "The model finds your picture unusual: it costs more bits than 95% of them." if bpd > q["95"]
                     else "Your picture is as likely as a typical test image." if bpd >= q["5"]
                     else "Your picture is more likely than 95% of them: a simple, clean figure."))
    # the picture as the model sees it, beside the bits each of its pixels costs: every pixel costs
    # some, so a heat map over the picture would hide it. On a square-root scale: a few pixels
    # cost most of the bits, and on a linear one the rest fade to white
    heat = images.beside(images.grid(x, net.levels, scale=SEE_SCALE // 2, pad=0),
                         images.heatmap(bits.sqrt().numpy(), scale=SEE_SCALE // 2, from_white=True))
    top = bits.max().item()
    text += (f"\n\nLeft, your picture as the model sees it; right, the bits each of its pixels costs, from white "
             f"(none) to dark red at {top:.1f} bits, on a square-root scale (half-way at {top / 4:.2g}).")
    return heat, text


@cache
def seeing_model(model, dataset):
    """(net, trained): the trained model if its weights exist, else a fresh one (seeded, the
    global random state left as it was): which pixels a prediction can depend on is a
    property of the architecture."""
    try:
        return loaded(model, dataset), True
    except (FileNotFoundError, ValueError):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return pixelcnn.build(model, dataset).eval(), False


def see_image(dataset):
    """The picture looked at, as levels (C, H, W): the dataset's first example, or a blank one."""
    c, h, w, k = datasets.shape_of(dataset)
    found = examples(dataset)
    if not found:
        return np.zeros((c, h, w), np.int64)
    return convert.image_to_levels(convert.open_image(found[0]), c, h, w, k)


def pixel(value, size):
    """A row or column from what the page sent, clipped to the image (None: the middle)."""
    v = size // 2 if value is None else number(value)
    if math.isnan(v):
        raise Refused("Click a pixel of the picture.")
    return int(min(max(v, 0), size - 1))


def see_at(name, index):
    """see() of the pixel clicked: `index` is (x, y) in the picture's pixels."""
    x, y = index if isinstance(index, (list, tuple)) and len(index) == 2 else (None, None)
    return see(name, number(y) // SEE_SCALE, number(x) // SEE_SCALE)


def count(n, what="pixel"):
    """**1** pixel, **2** pixels."""
    return f"**{n}** {what}{'' if n == 1 else 's'}"


def see(name, i=None, j=None):
    """(the picture with pixel (i, j) outlined, a blind-spot model's map, a Gated PixelCNN's map,
    Markdown, the two maps' titles): which pixels each one's prediction at (i, j) depends on,
    the blind spot in light blue. One of the two is the model `name`, the other the dataset's
    model of the other kind (PixelCNN or PixelRCNN, the reference; or Gated PixelCNN). (i, j)
    defaults to the centre and is clipped to the image."""
    picked, dataset = split(name)
    x = torch.from_numpy(see_image(dataset)).long()
    _, h, w = x.shape
    i, j = pixel(i, h), pixel(j, w)
    gated = issubclass(pixelcnn.ARCHITECTURES[picked][0], GatedPixelCNN)
    pair = (reference_for(dataset), picked) if gated else (picked, "gated")
    maps, named = [], []
    for model in pair:
        net, trained = seeing_model(model, dataset)
        maps.append(analysis.influence(net, x, i, j, 0 if net.config.classes else None).numpy())
        named.append(MODEL_NAMES[model] + (" (the model picked)" if model == picked else "") +
                     ("" if trained else " (untrained: what it can see depends on the architecture only)"))
    ref, sees = (m > 0 for m in maps)
    blind = sees & ~ref  # before the pixel, within Gated PixelCNN's (smaller) reach, unseen by the other
    blind[i, j] = False  # (a model that draws a pixel's colours in turn sees the pixel itself: not a blind spot)
    levels = datasets.shape_of(dataset)[3]
    base = images.to_rgb(x[None], levels)[0]
    pics = [images.log_heatmap(m, scale=SEE_SCALE, base=base, mark=(i, j), flag=flag)
            for m, flag in zip(maps, (blind, None))]
    text = (f"Predicting pixel **({i}, {j})** (row, column): {named[0]} looks at {count(ref.sum())}, "
            f"{named[1]} at {count(sees.sum())}. ")
    itself = [MODEL_NAMES[m] for m, looks in zip(pair, (ref, sees)) if looks[i, j]]
    if itself:
        text += (f"{' and '.join(itself)} {'sees' if len(itself) == 1 else 'see'} the pixel itself: drawing its "
                 "colours in turn, green given the red drawn, blue given both. ")
    if blind.any():
        rows, cols = np.nonzero(blind)
        where = "above and to the right" + ("" if ((rows < i) & (cols > j)).all() else ", and some beyond its reach")
        text += (f"In light blue, {count(blind.sum())} before it that {MODEL_NAMES[pair[1]]} sees and "
                 f"{MODEL_NAMES[pair[0]]} cannot: {MODEL_NAMES[pair[0]]}'s blind spot, {where}.")
    text += " Darker means a larger gradient (log scale); the blue square is the pixel predicted."
    source = images.grid(x[None], levels, scale=SEE_SCALE, pad=0, mark=(i, j), mark_colour=(0, 90, 255))
    return source, *pics, text, tuple(MODEL_NAMES[m] for m in pair)
