"""PixelCNN Studio: watch a PixelCNN draw, pixel by pixel, or let it finish your drawing.

    python app.py          # then open http://127.0.0.1:7860

Weights come from weights/ (or $PIXELCNN_WEIGHTS); a file missing there is fetched from
the Hugging Face Hub repo $PIXELCNN_HUB_REPO. Everything about models lives in pixelcnn/:
this file only lays out the page and turns its inputs into calls to the package.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: offline, no threads

import ctypes
import json
import math
import time
from contextlib import closing
from functools import lru_cache
from pathlib import Path

import gradio as gr
import numpy as np
import torch

import pixelcnn
from pixelcnn import analysis, convert, datasets, evaluate, images, weights

EXAMPLES = Path(__file__).resolve().parent / "examples"
FRAMES = 36  # pictures streamed while a whole image is drawn
FRAME_SECONDS = 0.08  # at least this long between them: the sampler draws a grid in well under a second
WIDTH = 480  # about how wide the grid of samples is drawn, in pixels: crisp, not rescaled by the browser
COMPLETIONS_WIDTH = 720  # and the row of completions
MAX_SAMPLES = 16
COMPLETIONS = 4
DRAW, IMAGE = "Draw", "Image"
QUEUE = dict(default_concurrency_limit=2, max_size=20)  # beyond 20 waiting, Gradio says the queue is full

INTRO = """# PixelCNN Studio
An autoregressive model draws an image one pixel at a time, each pixel chosen given all the
pixels above it and to its left. **Sample** watches it draw from nothing; **Complete** gives it
the top of a picture (drawn by you, uploaded, or an example) and lets it finish it four ways, or
says how likely the model finds your picture; **What the model sees** shows which pixels each
prediction depends on."""
MODEL_NAMES = {"pixelcnn": "PixelCNN", "pixelrcnn": "PixelRCNN", "pixelrcnn_ar": "PixelRCNN, R→G→B",
               "gated": "Gated PixelCNN", "gated_cond": "Gated PixelCNN, class-conditional"}
DATASET_NAMES = {"mnist": "MNIST", "shapes": "Shapes", "color_mnist": "Colour MNIST", "color_shapes": "Colour shapes"}
SEE_SCALE = 10  # the pictures of the "What the model sees" tab: pixels of the image, times this


# ---------------------------------------------------------------- calls into the package

def split(name):
    """"pixelcnn/mnist" -> ("pixelcnn", "mnist"), or a message for the person who sent it."""
    model, _, dataset = str(name or "").partition("/")
    if model not in pixelcnn.MODELS or dataset not in pixelcnn.DATASETS:
        raise gr.Error(f"Pick a model first: {name!r} is not a model/dataset pair such as pixelcnn/mnist.",
                       print_exception=False)
    return model, dataset


@lru_cache(maxsize=None)
def _load(model, dataset):
    return pixelcnn.load(model, dataset)


def get_model(name):
    try:
        return _load(*split(name))
    except (FileNotFoundError, ValueError) as e:
        raise gr.Error(str(e), title="No weights", print_exception=False) from None


def display_name(name):
    model, _, dataset = name.partition("/")
    return f"{MODEL_NAMES.get(model, model)} · {DATASET_NAMES.get(dataset, dataset)}"


def label_of(net, klass):
    """The class a conditional model is asked for (None for the others)."""
    classes = net.config.classes
    return whole_number(klass, 0, classes - 1, "class") if classes else None


def whole_number(value, low, high, what):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v == int(v) and low <= v <= high):
        raise gr.Error(f"The {what} must be a whole number from {low} to {high}, not {value!r}.",
                       print_exception=False)
    return int(v)


def check_temperature(t):
    try:
        t = float(t)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and 0 < t <= 10):
        raise gr.Error("The temperature must be a number above 0 (1 samples the model as trained).",
                       print_exception=False)
    return t


def picture(x, levels, nrow, mark=None, known=None, width=WIDTH):
    """A crisp grid of levels, about `width` pixels wide."""
    w = x.shape[-1]
    scale = max(3, width // (nrow * (w + 1) + 1))
    return images.grid(x, levels, nrow=nrow, scale=scale, mark=mark, known=known)


def frames(stream, levels, nrow, known=None, width=WIDTH):
    """(picture, progress) of a sampler's progress, paced at most one every FRAME_SECONDS so
    that even a fast sampler is seen at work, and the finished grid. Closing this generator
    (Stop, or the browser going away) closes the sampler with it."""
    with closing(stream):
        due = time.monotonic()
        for p in stream:
            time.sleep(max(0.0, due - time.monotonic()))
            yield picture(p.images, levels, nrow, None if p.done == p.total else p.position, known, width), p
            due = time.monotonic() + FRAME_SECONDS


def every(net):
    """Pixels per progress report: FRAMES pictures for a whole image."""
    _, h, w = net.image_shape
    return max(1, h * w // FRAMES)


def sample(model: str, n: float, temperature: float, seed: float, klass: float = 0, show_probs: bool = False):
    """Stream a grid of n samples as it fills in, pixel by pixel (all of class `klass` for a
    class-conditional model), and, if show_probs, what the model expected at the pixel
    being drawn in the first image."""
    net = get_model(model)
    n = whole_number(n, 1, MAX_SAMPLES, "number of samples")
    seed = whole_number(seed, 0, 2**63 - 1, "seed")
    stream = net.sample_stream(n, seed=seed, temperature=check_temperature(temperature), every=every(net),
                               label=label_of(net, klass))
    with closing(frames(stream, net.levels, nrow=math.ceil(math.sqrt(n)))) as pictures:
        for pic, p in pictures:
            yield pic, next_pixel(p.probs, net) if show_probs and p.probs is not None else None


def next_pixel(probs, net):
    """The first image's distribution for the pixel just drawn, as gr.Label confidences."""
    p = probs[0]  # (K, C)
    if net.image_shape[0] == 1:
        return {"ink": float(p[1, 0]), "paper": float(p[0, 0])}
    return {f"{'RGB'[c]} = {k}": float(p[k, c]) for c in range(p.shape[1]) for k in range(p.shape[0])}


def given(net, source, drawing, image, whole):
    """The picture to complete as levels (C, H, W), from the drawing or the image."""
    c, h, w = net.image_shape
    try:
        if source == DRAW:
            if c != 1:
                raise ValueError("This model completes colour images: upload one or pick an example.")
            return convert.drawing_to_levels(np.asarray(read_file(drawing, "drawing")), h, w, whole=whole)
        img = read_file(image, "image")
        if c == 1 and np.ptp(np.asarray(img, np.int16), axis=2).max() > 40:
            gr.Info("This model draws black and white: your colour image was turned into black and white.")
        return convert.image_to_levels(img, c, h, w, net.levels)
    except ValueError as e:
        raise gr.Error(str(e), title="Cannot use that picture", print_exception=False) from None


def read_file(value, what):
    """An RGB PIL image from a raw image or drawing payload (the events skip Gradio's
    preprocessing so that a bad file earns a clear message instead of a generic error)."""
    if isinstance(value, dict) and "layers" in value:  # a drawing: its composite, else its first layer
        value = value.get("composite") or next((x for x in value.get("layers") or [] if x), None)
        if value is None:
            raise ValueError("The canvas is empty: draw something first (black on white).")
    path = value.get("path") if isinstance(value, dict) else value
    if not path:
        raise ValueError("The canvas is empty: draw something first (black on white)." if what == "drawing"
                         else "No image yet: upload one or pick an example.")
    return convert.open_image(path)


def complete(model: str, source: str, drawing: dict | None, image: dict | None,
             keep_rows: float, keep_drawn: bool, temperature: float, seed: float, klass: float = 0):
    """Keep the top rows of the picture (or every row down to the last one with ink) and
    stream COMPLETIONS completions of the rest, side by side, the kept part tinted blue."""
    net = get_model(model)
    _, h, w = net.image_shape
    temperature = check_temperature(temperature)
    seed = whole_number(seed, 0, 2**63 - 1, "seed")
    x = given(net, source, drawing, image, whole=not keep_drawn)
    if keep_drawn:
        rows = convert.last_ink_row(x) + 1
        if rows == 0:
            raise gr.Error("There is nothing drawn to keep.", print_exception=False)
    else:
        rows = whole_number(keep_rows, 0, h, "number of rows to keep")
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:rows] = True
    prefix = torch.from_numpy(x).long()
    if rows == h:
        gr.Warning("Every row is kept, so there is nothing left to complete: keep fewer rows.")
        yield picture(prefix.expand(COMPLETIONS, -1, -1, -1), net.levels, COMPLETIONS, known=mask,
                      width=COMPLETIONS_WIDTH)
        return
    stream = net.sample_stream(COMPLETIONS, seed=seed, temperature=temperature, every=every(net),
                               prefix=prefix, prefix_mask=mask, label=label_of(net, klass))
    with closing(frames(stream, net.levels, COMPLETIONS, known=mask, width=COMPLETIONS_WIDTH)) as pictures:
        for pic, _ in pictures:
            yield pic


@lru_cache(maxsize=None)
def test_range(model):
    """{percentile: bits/dim} over the first test images (with their true labels): from the
    dataset, else from the weights' facts file (a Space without MNIST); None if neither."""
    net = get_model(model)
    try:
        x, y = datasets.load(net.config.dataset, "test")
    except (FileNotFoundError, ValueError):
        facts = weights.weights_path(*split(model)).with_suffix(".json")
        known = json.loads(facts.read_text()) if facts.exists() else {}
        return known.get("test_bits_per_dim_percentiles")
    return evaluate.bits_range(net, x[:evaluate.RANGE_IMAGES], y[:evaluate.RANGE_IMAGES])


def score(model: str, source: str, drawing: dict | None, image: dict | None, klass: float = 0):
    """How likely the model finds the whole picture: bits/dim beside the range on test
    images, and a heat map of the bits each pixel costs."""
    net = get_model(model)
    label = label_of(net, klass)
    x = torch.from_numpy(given(net, source, drawing, image, whole=True)).long()[None]
    bits = analysis.surprise(net, x, label)[0]
    bpd = bits.sum().item() / math.prod(net.image_shape)
    text = f"**{bpd:.3f} bits/dim** ({bits.sum().item():.1f} bits for the whole image"
    text += f", given the class {datasets.class_names(net.config.dataset)[label]})." if label is not None else ")."
    q = test_range(model)
    if q is not None:
        text += (f"\n\nTest images: {q['5']:.3f} to {q['95']:.3f} bits/dim (5th to 95th percentile), "
                 f"median {q['50']:.3f}. " + (
                     "The model finds your picture unusual: it costs more bits than 95% of them." if bpd > q["95"]
                     else "Your picture is as likely as a typical test image." if bpd >= q["5"]
                     else "Your picture is more likely than 95% of them: a simple, clean figure."))
    base = images.to_rgb(x, net.levels)[0]
    heat = images.heatmap(bits.numpy(), scale=SEE_SCALE, base=base, from_white=True)
    text += f"\n\nThe heat map: each pixel's bits, from white (none) to dark red at {bits.max().item():.1f} bits."
    return heat, text


# ---------------------------------------------------------------- what the model sees

@lru_cache(maxsize=None)
def seeing_model(model, dataset):
    """The trained model if its weights exist, else a fresh one: which pixels a
    prediction can depend on is a property of the architecture."""
    try:
        return _load(model, dataset), True
    except (FileNotFoundError, ValueError):
        torch.manual_seed(0)
        return pixelcnn.build(model, dataset).eval(), False


def see_image(dataset):
    """The picture looked at: the first example of the dataset, or a blank one."""
    c, h, w, k = datasets.shape_of(dataset)
    found = examples_of(dataset)
    if not found:
        return np.zeros((c, h, w), np.int64)
    return convert.image_to_levels(convert.open_image(found[0]), c, h, w, k)


def see(name, i, j):
    """Which pixels the prediction at (i, j) depends on, for PixelCNN and Gated PixelCNN."""
    _, dataset = split(name)
    x = torch.from_numpy(see_image(dataset)).long()
    c, h, w = x.shape
    i, j = min(max(int(i), 0), h - 1), min(max(int(j), 0), w - 1)
    base = images.to_rgb(x[None], datasets.shape_of(dataset)[3])[0]
    maps, notes = [], []
    for model in ("pixelcnn", "gated"):
        net, trained = seeing_model(model, dataset)
        maps.append(analysis.influence(net, x, i, j, 0 if net.config.classes else None).numpy())
        notes.append("" if trained else " (untrained: what it can see depends on the architecture only)")
    ref, gated = (m > 0 for m in maps)
    blind = gated & ~ref  # before the pixel, within Gated PixelCNN's (smaller) reach, unseen by PixelCNN
    pics = [images.heatmap(np.where(g > 0, np.maximum(np.log10(np.maximum(g, 1e-30) / g.max()) + 4, 0.05), 0),
                           scale=SEE_SCALE, base=base, vmax=4, mark=(i, j), flag=blind if k == 0 else None)
            for k, g in enumerate(maps)]
    text = (f"Predicting pixel **({i}, {j})**: PixelCNN{notes[0]} looks at **{ref.sum()}** pixels, "
            f"Gated PixelCNN{notes[1]} at **{gated.sum()}**. ")
    if blind.any():
        text += (f"PixelCNN's blind spot, in light blue: **{blind.sum()}** pixels above and to the right that "
                 "come before the pixel and that Gated PixelCNN sees, but PixelCNN cannot.")
    text += " Darker means a larger gradient (log scale); the blue square is the pixel predicted."
    return images.grid(x[None], datasets.shape_of(dataset)[3], scale=SEE_SCALE, pad=0, mark=(i, j),
                       mark_colour=(0, 90, 255)), *pics, text


def see_click(name, evt: gr.SelectData):
    x, y = evt.index
    return see(name, y // SEE_SCALE, x // SEE_SCALE)


def see_default(name):
    _, dataset = split(name)
    _, h, w, _ = datasets.shape_of(dataset)
    return see(name, h // 2, w // 2)


# ---------------------------------------------------------------- the page

def examples_of(dataset):
    return sorted(str(p) for p in EXAMPLES.glob(f"{dataset}_*.png"))


def class_picker(name):
    """The class dropdown: shown for a class-conditional model, with its dataset's classes."""
    model, dataset = split(name) if name else ("", "mnist")
    conditional = pixelcnn.ARCHITECTURES.get(model, (None, {}))[1].get("classes", 0) is None
    names = datasets.class_names(dataset)
    return dict(choices=[(c, k) for k, c in enumerate(names)], value=0, visible=conditional)


def choose_model(name):
    """The controls for this model's images: rows, sources, examples, classes."""
    _, dataset = split(name)
    c, h, _, _ = datasets.shape_of(dataset)
    sources = [DRAW, IMAGE] if c == 1 else [IMAGE]
    return (gr.Slider(maximum=h, value=h // 2), gr.Radio(choices=sources, value=sources[0]),
            gr.Gallery(value=examples_of(dataset)), gr.Dropdown(**class_picker(name)))


def show_source(source):
    return gr.Column(visible=source == DRAW), gr.Column(visible=source == IMAGE)


def pick_example(model, evt: gr.SelectData):
    _, dataset = split(model)
    return examples_of(dataset)[evt.index], IMAGE


def build_demo():
    pairs = pixelcnn.available()
    names = [f"{m}/{d}" for m, d in pairs]
    default = "pixelcnn/mnist" if "pixelcnn/mnist" in names else (names[0] if names else None)
    c, h = datasets.shape_of(default.partition("/")[2])[:2] if default else (1, 28)
    private = dict(api_visibility="private", queue=False, show_progress="hidden")
    with gr.Blocks(title="PixelCNN Studio") as demo:
        gr.Markdown(INTRO)
        if not names:
            gr.Markdown("**No trained weights found** in weights/ (or `$PIXELCNN_WEIGHTS`), and no Hub repo "
                        "(`$PIXELCNN_HUB_REPO`) holding any. Train a model with `python train.py`.")
        with gr.Row():
            model = gr.Dropdown([(display_name(n), n) for n in names], value=default, label="Model",
                                elem_id="model", interactive=True, scale=3)
            klass = gr.Dropdown(label="Class (draw me a…)", elem_id="class", interactive=True, scale=1,
                                **class_picker(default))
        with gr.Tabs():
            with gr.Tab("Sample", elem_id="sample-tab"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        n = gr.Slider(1, MAX_SAMPLES, value=MAX_SAMPLES, step=1, label="Samples", elem_id="n")
                        temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature",
                                         info="Below 1: bolder, more typical; above 1: wilder.", elem_id="temperature")
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed",
                                         info="The same seed draws the same images.", elem_id="seed")
                        show_probs = gr.Checkbox(False, label="Show the next-pixel probabilities",
                                                 info="What the model expected at the red square of the first image.",
                                                 elem_id="show-probs")
                        with gr.Row():
                            start = gr.Button("Start", variant="primary", elem_id="start")
                            stop = gr.Button("Stop", variant="stop", elem_id="stop")
                    with gr.Column(scale=2):
                        samples = gr.Image(label="Samples (the red square is the pixel being drawn)",
                                           type="pil", format="png", interactive=False,
                                           buttons=["download", "fullscreen"], elem_id="samples")
                        probs = gr.Label(label="Next pixel, first image", num_top_classes=12, visible=False,
                                         elem_id="probs")
            with gr.Tab("Complete", elem_id="complete-tab"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        source = gr.Radio([DRAW, IMAGE] if c == 1 else [IMAGE], value=DRAW if c == 1 else IMAGE,
                                          label="Start from", elem_id="source")
                        with gr.Column(visible=c == 1) as draw_box:
                            drawing = gr.Sketchpad(
                                type="numpy", image_mode="RGBA", canvas_size=(280, 280), fixed_canvas=True,
                                brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                                layers=False, transforms=(), format="png", label="Draw (black on white)",
                                elem_id="sketch")
                        with gr.Column(visible=c != 1) as image_box:
                            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                             format="png", label="Image", height=240, elem_id="image")
                            gallery = gr.Gallery(examples_of(default.partition("/")[2]) if default else [],
                                                 label="Examples from the test set (click one)", columns=4,
                                                 height=150, object_fit="contain", allow_preview=False,
                                                 elem_id="examples")
                        keep_rows = gr.Slider(0, h, value=h // 2, step=1, label="Rows to keep (from the top)",
                                              elem_id="keep-rows")
                        keep_drawn = gr.Checkbox(False, label="Keep everything I drew",
                                                 info="Keeps every row down to the last one with ink, "
                                                      "the canvas standing for the middle of the image.",
                                                 elem_id="keep-drawn")
                        with gr.Accordion("Temperature and seed", open=False):
                            temp2 = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature",
                                              elem_id="temperature-complete")
                            seed2 = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id="seed-complete")
                        with gr.Row():
                            go = gr.Button("Complete", variant="primary", elem_id="complete")
                            stop2 = gr.Button("Stop", variant="stop", elem_id="stop-complete")
                            rate = gr.Button("How likely is it?", elem_id="score")
                    with gr.Column(scale=3):
                        completions = gr.Image(label="Completions (the kept part is tinted blue)",
                                               type="pil", format="png", interactive=False,
                                               buttons=["download", "fullscreen"], elem_id="completions")
                        with gr.Row():
                            surprise = gr.Image(label="Bits per pixel of the whole picture", type="pil", format="png",
                                                interactive=False, buttons=["download"], height=300,
                                                elem_id="surprise")
                            likelihood = gr.Markdown(elem_id="likelihood")
            with gr.Tab("What the model sees", elem_id="see-tab") as see_tab:
                gr.Markdown("Click a pixel of the picture: the maps show which pixels the model's prediction "
                            "for it depends on (non-zero gradient), for the original PixelCNN and for Gated "
                            "PixelCNN side by side.")
                with gr.Row():
                    seen_image = gr.Image(label="Click a pixel", type="pil", format="png", interactive=False,
                                          buttons=[], elem_id="see-image")
                    seen_ref = gr.Image(label="PixelCNN", type="pil", format="png", interactive=False,
                                        buttons=[], elem_id="see-pixelcnn")
                    seen_gated = gr.Image(label="Gated PixelCNN", type="pil", format="png", interactive=False,
                                          buttons=[], elem_id="see-gated")
                seen_text = gr.Markdown(elem_id="see-text")

        # sampling is CPU-bound: both endpoints share two workers, the rest wait in the queue
        busy = dict(concurrency_limit=2, concurrency_id="sampler")
        run = start.click(sample, [model, n, temp, seed, klass, show_probs], [samples, probs], api_name="sample",
                          **busy)
        stop.click(None, None, None, cancels=[run], **private)
        done = go.click(complete, [model, source, drawing, image, keep_rows, keep_drawn, temp2, seed2, klass],
                        completions, api_name="complete", preprocess=False, **busy)
        stop2.click(None, None, None, cancels=[done], **private)
        rate.click(score, [model, source, drawing, image, klass], [surprise, likelihood], api_name="score",
                   preprocess=False, **busy)
        show_probs.change(lambda on: gr.Label(visible=on), show_probs, probs, **private)
        looks = [seen_image, seen_ref, seen_gated, seen_text]
        see_tab.select(see_default, model, looks, **private)
        seen_image.select(see_click, model, looks, **private)

        model.change(choose_model, model, [keep_rows, source, gallery, klass], **private)
        source.change(show_source, source, [draw_box, image_box], **private)
        keep_drawn.change(lambda on: gr.Slider(interactive=not on), keep_drawn, keep_rows, **private)
        gallery.select(pick_example, model, [image, source], **private)
        image.upload(lambda: IMAGE, None, source, **private)
    return demo


def fewer_malloc_arenas(arenas=2):
    """glibc gives threads malloc arenas of their own, up to 8 per core, and the queue's
    worker threads keep memory in them: two arenas keep the server's memory bounded under
    load (scripts/loadtest.py: peak 545 MB at 16 users instead of 836). Elsewhere a no-op."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    fewer_malloc_arenas()
    demo = build_demo()
    demo.queue(**QUEUE).launch(max_file_size="20mb")
