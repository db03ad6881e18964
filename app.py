"""PixelCNN Studio: watch a PixelCNN draw, pixel by pixel, or let it finish your drawing.

    python app.py              # then open http://127.0.0.1:7860
    python app.py --port 0     # on a free loopback port, its URL printed first

Weights come from weights/ (or $PIXELCNN_WEIGHTS); a file missing there is fetched from
the Hugging Face Hub repo $PIXELCNN_HUB_REPO. This file lays out the page and wires its
events: each handler is one call of pixelcnn/studio.py (what the app does, without the
page), whose refusals it shows as messages.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: offline, no threads
# One thread per sampler, torch's and OpenBLAS's (numpy's products in the cached sampler): the
# per-pixel products are too small to gain from two, and two samplers at once with two threads
# each fight over the cores. Measured with scripts/threads.py (docs/app.md): a 16-image grid
# 0.43 s alone and 0.69 s beside another with one thread, 1.59 s and 0.91 s with two.
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("PIXELCNN_THREADS", "1"))  # before numpy and torch load
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import argparse
import asyncio
import inspect
import re
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

import gradio as gr
import numpy
import torch
from PIL import Image

import pixelcnn
from pixelcnn import convert, engine, studio
from pixelcnn.studio import DRAW, DRAWN, IMAGE, MARKED, MAX_SAMPLES, ROWS

# Every sampler runs on the engine, a step at a time and round robin, one worker per core: the
# cores never sleep while there is work, and each of the CROWD requests served at once advances
# at once, a fair share each; what the page shows is paced apart, at no cost to the cores. The
# rest wait in the queue, told their place; beyond 64 waiting, Gradio says the queue is full.
# api_open=False: a queued event cannot be run by POST /gradio_api/run/<name> past the queue.
# Its workers are processes ($PIXELCNN_WORKERS=threads: threads of this one, as the tests have it,
# where a sampler patched in this process is the one that runs): two threads share one core's
# worth of the sampler's per-pixel Python code, two processes use both cores (docs/app.md)
ENGINE = engine.Engine(workers=os.cpu_count() or 1, shows=25,  # 25 pictures a second: a tenth of a core
                       processes=os.name == "posix" and os.environ.get("PIXELCNN_WORKERS") != "threads")
CROWD = 16
# A sampler draws faster than a person watches: the pictures it made and the page has not yet
# shown wait, the last KEPT of them (Grids of a few KB, of FRAMES a whole image), so that a
# lone visitor still sees the image form, over two seconds (KEPT * FRAME_SECONDS)
KEPT = 24
QUEUE = dict(default_concurrency_limit=2, max_size=64, api_open=False)
# Gradio's max_threads: how many events run at once (the queue's among them), and the threads
# that run handlers and turn their pictures into files: a burst of requests waits for one of
# these instead of starting a thread each
MAX_THREADS = CROWD + 4
# Every minute, the files the app wrote (every frame it streamed, the uploads) untouched for 10
# minutes ($PIXELCNN_CACHE_SECONDS) are deleted, with the folders they leave empty: sweep()
CACHE_SWEEP = (60, int(os.environ.get("PIXELCNN_CACHE_SECONDS", 600)))

# The canvas's white background: Gradio's Sketchpad selects its brush when its background is
# set, so a stroke draws at once (with none, it asks for a click on its brush icon first)
PAPER = numpy.full((280, 280, 3), 255, numpy.uint8)
# The marking canvas, the picture filling it, and its paint: a pink that no model's image holds
MARKING = (studio.MARKING_SIDE, studio.MARKING_SIDE)
# The drawing's brush: black for the binary models; for the colour ones, one of these colours
# (each a colour of the models' own, 0, 85, 170 or 255 a channel, and dark enough to be ink)
INKS = {False: ["#000000"], True: ["#aa00ff", "#0055ff", "#00aa00", "#ff5500", "#ff0000", "#000000"]}
MARKER = "#ff2d95"

# Gradio floats a picture's label and buttons over its top corners, where a grid's first rows
# and the red square drawing them are: here they sit above it
CSS = """
.picture > label[data-testid=block-label] { position: static; }
.picture > .image-container { position: static; }
.picture > .image-container > .icon-button-wrapper { top: 0; right: 0; }
#probs > label[data-testid=block-label] { position: static; }
/* an output keeps its empty size while its first picture loads: the page does not shrink for a
   frame, which would pull a phone's view, scrolled down to it, back up */
#samples, #completions { min-height: 256px; }
.next-pixel p { margin: 0 0 6px; }
.next-pixel .swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #888;
                      vertical-align: middle; }
.next-pixel .channel { display: flex; align-items: center; gap: 6px; margin: 8px 0; }
.next-pixel .name { width: 8em; font-size: 0.85em; }
.next-pixel .level { display: flex; flex-direction: column; align-items: center; width: 3em; font-size: 0.8em; }
.next-pixel .bar { display: flex; align-items: flex-end; width: 100%; height: 48px; }
.next-pixel .bar > div { width: 100%; border: 1px solid #888; box-sizing: border-box; }
"""

INTRO = """# PixelCNN Studio
An autoregressive model draws an image one pixel at a time, each pixel chosen given all the
pixels above it and to its left. **Sample** watches it draw from nothing; **Complete** gives it
part of a picture (drawn by you, uploaded, or an example: its top, what you drew, or all but what
you paint over) and lets it finish it four ways, or says how likely the model finds your picture;
**What the model sees** shows which pixels each prediction depends on."""
@contextmanager
def told():
    """The package's refusals of bad input as a message on the page, not a server error."""
    try:
        yield
    except studio.Refused as e:
        # what it was raised from, and its traceback, hold the frames of the request with their
        # arrays (a huge image's, hundreds of MB): dropped, so they are freed now, not by the
        # garbage collector some time after the error that Gradio keeps
        e.__context__ = e.__cause__ = e.__traceback__ = None
        raise gr.Error(str(e), title=e.title, print_exception=False) from None


def screened(request_of, uploaded=True):
    """A request that checks the inputs of a piece of work with studio's `request_of` before the
    work is queued: what is wrong is said in a toast and the work does not run, so the outputs
    keep what they show (the work's own refusal, which the API gets, leaves them marked "Error",
    the picture gone and the reason with the toast)."""
    def screen(*args):
        with told():
            request_of(*args, **(dict(uploads=uploads()) if uploaded else {}))
    return screen


def tell(level, message):
    """The package's asides to the person, as a toast."""
    (gr.Warning if level == "warning" else gr.Info)(message)


def uploads():
    """Where Gradio puts the files this app receives (uploads, the sketchpad): the folder it
    checks a client's files against (gradio.processing_utils._check_allowed)."""
    return gr.utils.get_upload_folder()


# ---------------------------------------------------------------- handlers: one call each

async def computed(f, *args, keep=KEPT, named="picture", **kwargs):
    """The values of studio's generator f(*args, **kwargs), computed on the engine beside every
    other request's, as the page shows them: at most one every FRAME_SECONDS, and the last, their
    pictures as files `named` (what a download is called). Its asides (tell=True: f is given a
    `tell`) become toasts here, where Gradio knows the request; its refusals, messages. Leaving
    early (Stop, a closed tab) stops it."""
    job = ENGINE.submit(f, *args, keep=keep, **kwargs)
    with told():
        async for value in ENGINE.shown(job, studio.FRAME_SECONDS):
            while job.said:
                tell(*job.said.pop(0))
            yield await asyncio.to_thread(as_files, value, named)
    while job.said:
        tell(*job.said.pop(0))


def as_files(value, named="picture"):
    """`value` (a picture or Grid, or a tuple holding some) with each picture drawn and written
    to a PNG file `named` of its own in Gradio's folder, in a folder no other request uses, in one
    step, and given as its path. (Gradio writes a picture to a file named by its contents, in place: two requests
    showing the same picture at once, the first frames of two samples, say, could read a
    half-written file. And a quick compression here costs half of Gradio's.)"""
    if isinstance(value, tuple):
        return tuple(as_files(v, named) for v in value)
    if isinstance(value, studio.Grid):
        value = value.image()
    if not isinstance(value, Image.Image):
        return value
    folder = Path(uploads()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    value.save(folder / ".picture.png", format="png", compress_level=1)
    return str((folder / ".picture.png").replace(folder / f"{named}.png"))


def file_name(model, what, seed=None):
    """What a picture downloads as: pixelcnn-mnist-samples-seed-3, say (the seed where it is a
    whole number)."""
    seed = studio.exact_whole(seed)
    name = f"{model}-{what}" + ("" if seed is None else f"-seed-{seed}")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:100]


async def last(f, *args, **kwargs):
    """f(*args, **kwargs), computed on the engine as computed() computes a generator."""
    values = [value async for value in computed(engine.once, f, *args, keep=1, **kwargs)]
    return values[-1]


async def sample(model: str, n: float, temperature: float, seed: float, klass: float = 0, show_probs: bool = False):
    """Stream a grid of n samples as it fills in, pixel by pixel (all of class `klass` for a
    class-conditional model), and, if show_probs, what the model expected at the pixel
    being drawn in the first image."""
    async for out in computed(studio.sample, model, n, temperature, seed, klass, show_probs,
                              named=file_name(model, "samples", seed)):
        yield out


async def complete(model: str, source: str, drawing: dict | None, image: dict | None, keep_rows: float,
                   keep: str, temperature: float, seed: float, klass: float = 0, marks: dict | None = None):
    """Keep part of the picture (`keep`: the top `keep_rows` rows, what was drawn, or all but what
    is painted over in `marks`) and stream four completions of the rest, two by two, the kept
    part tinted blue."""
    async for pic in computed(studio.complete, model, source, drawing, image, keep_rows, keep, temperature, seed, klass,
                              marks, tell=True, uploads=uploads(), named=file_name(model, "completions", seed)):
        yield pic


async def score(model: str, source: str, drawing: dict | None, image: dict | None, klass: float = 0):
    """How likely the model finds the whole picture: bits/dim beside the range on test
    images, and a heat map of the bits each pixel costs."""
    return await last(studio.score, model, source, drawing, image, klass, tell=True, uploads=uploads(),
                      named=file_name(model, "bits-per-pixel"))


async def see_click(name, evt: gr.SelectData):
    return titled(*await last(studio.see_at, name, evt.index))


async def see_centre(name):
    return titled(*await last(studio.see, name))


def titled(source, left, right, text, titles):
    """What the model sees, each map under the name of its model."""
    return source, *(gr.Image(value=v, label=t) for v, t in zip((left, right), titles)), text


def seen(source):
    """A handler: the picture the model is given from `source`, the drawing or the image (None
    while there is none it can use); given the way to keep part of it, that part."""
    def show(name, picture, keep=None, keep_rows=None, marks=None):
        drawing, image = (picture, None) if source == DRAW else (None, picture)
        return as_files(studio.seen(name, source, drawing, image, uploads(), keep, keep_rows, marks))
    return show


def checked(image):
    """An uploaded image, or None (a toast saying why) where it is not one the app can read: no
    broken picture left in its place."""
    try:
        studio.opened(image, uploads())
    except studio.Refused as e:
        gr.Warning(str(e), title=e.title)
        return None
    return gr.skip()


def seen_both(name, drawing, image):
    """The picture the model is given from the drawing, and from the image."""
    return seen(DRAW)(name, drawing), seen(IMAGE)(name, image)


def seen_kept(name, source, drawing, image, keep, keep_rows, marks):
    """The picture the model is given to complete, from the source used: the part kept."""
    part = (keep, keep_rows, marks)
    return (seen(DRAW)(name, drawing, *(part if source == DRAW else ())),
            seen(IMAGE)(name, image, *(part if source == IMAGE else ())))


def choose_model(name, keep_rows, klass):
    """The controls for this model's images (rows, examples, classes, the brush), what was chosen
    kept where it still applies; a line about it and one under its samples; and the last model's
    outputs, emptied."""
    with told():
        offer, line = studio.controls(name), studio.about(name)
    rows = studio.exact_whole(keep_rows)
    rows = offer.rows // 2 if rows is None else min(max(rows, 0), offer.rows)
    classes = {**offer.classes, "value": klass if klass in range(len(offer.classes["choices"])) else 0}
    return (gr.Slider(maximum=offer.rows, value=rows), gr.Gallery(value=offer.examples), gr.Dropdown(**classes),
            gr.Sketchpad(brush=brush(offer.colour), label=drawing_label(offer.colour)), line,
            studio.samples_note(name), *OLD_OUTPUTS)


def brush(colour):
    """The drawing's brush: black, or (a colour model) a choice of colours."""
    return gr.Brush(default_size=12, colors=INKS[colour], color_mode="fixed")


def drawing_label(colour):
    return "Draw in one colour" if colour else "Draw in black"  # short: the canvas's tools share its line on a phone


OLD_OUTPUTS = (None, None, None, None, "")  # samples, next pixel, completions, heat map, text


def backdrop(name, source, drawing, image, keep):
    """The marking canvas, its background the picture to repaint part of (where it is shown:
    `keep` is MARKED), what was painted on it before wiped."""
    if keep != MARKED:
        return gr.skip()
    picture = studio.backdrop(name, source, drawing, image, uploads=uploads())
    return None if picture is None else {"background": as_files(picture, "backdrop"), "layers": [], "composite": None}


def pick_example(name, evt: gr.SelectData):
    with told():
        return studio.example(name, evt.index), IMAGE


# ---------------------------------------------------------------- Stop

# Stop ends a stream as if it had finished, so the picture drawn so far stays. (Gradio 6.31's
# cancels= does not: /cancel sends the browser an empty last message which, when it arrives
# before /cancel's own reply, its front end reads as data, fails on, and shows as a red "Error"
# badge over an emptied output, 3 Stops in 10.) A stream started, by session and name, and
# whether it is asked to stop:
STOPS = {}


class Run(asyncio.Event):
    """A stream started, set to stop it; as it ends, its first `clear` outputs are emptied (0:
    they keep the picture)."""
    clear, claimed = 0, False

    def __init__(self):
        super().__init__()
        self.made = time.monotonic()


UNCLAIMED = 600  # seconds after which a Run no stream took up (its request refused, say) is dropped


def arm(name):
    """A request, made before the stream `name` is queued, that makes it stoppable (and drops
    the Runs armed long ago for streams that never ran: a queue full, a tab closed first)."""
    async def ready(request: gr.Request):
        for key in [k for k, run in STOPS.items() if not run.claimed and time.monotonic() - run.made > UNCLAIMED]:
            del STOPS[key]
        STOPS[request.session_hash, name] = Run()
    return ready


def halt(name, clear=0):
    """A request that ends this session's stream `name` now, or as it starts if still queued;
    its `clear` outputs emptied as it ends (0: the picture stays)."""
    async def stop(request: gr.Request):
        if (request.session_hash, name) in STOPS:
            STOPS[request.session_hash, name].clear = clear
            STOPS[request.session_hash, name].set()
    return stop


def stoppable(handler, outputs):
    """The stream `handler`, ended at once by halt(its name): the value it was computing is
    dropped (cancelled, which stops its work on the engine) and the last one shown stays.
    Takes the request (for its session) before `handler`'s arguments, so that its parameters,
    and the API's, stay `handler`'s."""
    async def run(request: gr.Request, *args):
        key = (request.session_hash, handler.__name__)
        stopped = STOPS.setdefault(key, Run())
        stopped.claimed = True
        stop, values = asyncio.ensure_future(stopped.wait()), handler(*args)
        try:
            if stopped.is_set():  # stopped while queued: nothing changes
                yield as_outputs(stopped, outputs)
                return
            while True:
                step = asyncio.ensure_future(anext(values))
                try:
                    await asyncio.wait([step, stop], return_when=asyncio.FIRST_COMPLETED)
                finally:  # stopped, or this request cancelled (the tab closed): the step too
                    step.cancel()
                    await asyncio.wait([step])
                if step.cancelled():
                    if stopped.clear:
                        yield as_outputs(stopped, outputs)
                    return
                try:
                    value = step.result()
                except StopAsyncIteration:
                    return
                yield value
        finally:
            stop.cancel()
            await values.aclose()
            if STOPS.get(key) is stopped:
                del STOPS[key]

    def as_outputs(stopped, outputs):  # where stopped: left as they are, or emptied
        value = None if stopped.clear else gr.skip()
        return (value,) * outputs if outputs > 1 else value

    params = list(inspect.signature(handler).parameters.values())
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
    run.__signature__ = inspect.Signature([request, *params])
    run.__name__, run.__doc__ = handler.__name__, handler.__doc__
    return run


# ---------------------------------------------------------------- the page

def offered():
    """(the models with weights, as "model/dataset", the one the page starts with or None)."""
    names = [f"{m}/{d}" for m, d in pixelcnn.available()]
    return names, "pixelcnn/mnist" if "pixelcnn/mnist" in names else (names[0] if names else None)


def build_demo():
    """The page: a model picker and three tabs, then their events (longer than a screen: it is
    the declarative layout, one statement per component)."""
    names, default = offered()
    start_with = studio.controls(default)
    private = dict(api_visibility="private", queue=False, show_progress="hidden", preprocess=False)  # cheap: at once
    with gr.Blocks(title="PixelCNN Studio") as demo:
        gr.Markdown(INTRO)
        if not names:
            gr.Markdown("**No trained weights found** in weights/ (or `$PIXELCNN_WEIGHTS`), and no Hub repo "
                        "(`$PIXELCNN_HUB_REPO`) holding any. Train a model with `python train.py`.")
        with gr.Row():
            model = gr.Dropdown(studio.ranked(names), value=default, label="Model", elem_id="model",
                                interactive=True, scale=3,
                                info="By dataset, the best first (the fewest nats per test image). The reference "
                                     "design is the original one; the improved ones came after.")
            klass = gr.Dropdown(label="Class (draw me a…)", elem_id="class", interactive=True, scale=1,
                                **start_with.classes)
        about = gr.Markdown(studio.about(default), elem_id="about")
        with gr.Tabs():
            with gr.Tab("Sample", elem_id="sample-tab"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        n = gr.Slider(1, MAX_SAMPLES, value=MAX_SAMPLES, step=1, label="Samples", elem_id="n")
                        temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature",
                                         info="Below 1: bolder, more typical; above 1: wilder.", elem_id="temperature")
                        seed = gr.Number(0, precision=0, minimum=0, maximum=studio.MAX_SEED, label="Seed",
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
                                           buttons=["download", "fullscreen"], elem_id="samples",
                                           elem_classes="picture")
                        note = gr.Markdown(studio.samples_note(default), elem_id="samples-note")
                        probs = gr.HTML(label="Next pixel, first image", show_label=True, container=True,
                                        visible=False, elem_id="probs")
            with gr.Tab("Complete", elem_id="complete-tab"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        source = gr.Radio([DRAW, IMAGE], value=DRAW, label="Start from", elem_id="source")
                        with gr.Column() as draw_box:
                            drawing = gr.Sketchpad(
                                blank(), type="numpy",
                                image_mode="RGBA", canvas_size=(280, 280), fixed_canvas=True,
                                brush=brush(start_with.colour), layers=False, transforms=(), format="png",
                                label=drawing_label(start_with.colour), elem_id="sketch")
                            given_drawn = given_picture("given-drawn")
                        with gr.Column(visible=False) as image_box:
                            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                             format="png", label="Image", height=240, elem_id="image")
                            gallery = gr.Gallery(start_with.examples,
                                                 label="Examples from the test set (click one)", columns=4,
                                                 height=150, object_fit="contain", allow_preview=False, buttons=[],
                                                 elem_id="examples", elem_classes="picture")
                            given_image = given_picture("given-image")
                        keep = gr.Radio(keeps(DRAW), value=ROWS, label="Keep",
                                        info="The model completes the rest, given all that is kept.", elem_id="keep")
                        keep_rows = gr.Slider(0, start_with.rows, value=start_with.rows // 2, step=1,
                                              label="Rows to keep (from the top)", elem_id="keep-rows")
                        marks = gr.Sketchpad(None, type="numpy", image_mode="RGBA", canvas_size=MARKING,
                                             fixed_canvas=True, sources=(), layers=False, transforms=(), format="png",
                                             brush=gr.Brush(default_size=20, colors=[MARKER], color_mode="fixed"),
                                             label="Paint over to repaint", visible=False, elem_id="marks")
                        with gr.Accordion("Temperature and seed", open=False):
                            temp2 = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature",
                                              elem_id="temperature-complete")
                            seed2 = gr.Number(0, precision=0, minimum=0, maximum=studio.MAX_SEED, label="Seed",
                                              elem_id="seed-complete")
                        with gr.Row():
                            go = gr.Button("Complete", variant="primary", elem_id="complete")
                            stop2 = gr.Button("Stop", variant="stop", elem_id="stop-complete")
                            rate = gr.Button("How likely is it?", elem_id="score")
                    with gr.Column(scale=3):
                        completions = gr.Image(label="Completions (the kept part is tinted blue)",
                                               type="pil", format="png", interactive=False,
                                               buttons=["download", "fullscreen"], elem_id="completions",
                                               elem_classes="picture")
                        with gr.Row():
                            surprise = gr.Image(label="Bits per pixel of the whole picture", type="pil", format="png",
                                                interactive=False, buttons=["download"], height=340,
                                                elem_id="surprise", elem_classes="picture", min_width=280)
                            with gr.Column(min_width=240):  # on a phone, below the picture, not squeezed beside it
                                likelihood = gr.Markdown(elem_id="likelihood")
            with gr.Tab("What the model sees", elem_id="see-tab") as see_tab:
                gr.Markdown("Click a pixel of the picture: the maps show which pixels the prediction for it "
                            "depends on (a non-zero gradient), for the model picked and one of the other kind: "
                            "one with a blind spot (PixelCNN, PixelRCNN) beside Gated PixelCNN, which has none.")
                with gr.Row():
                    seen_image = gr.Image(label="Click a pixel", type="pil", format="png", interactive=False,
                                          buttons=[], elem_id="see-image", elem_classes="picture")
                    seen_ref = gr.Image(label="PixelCNN", type="pil", format="png", interactive=False,
                                        buttons=[], elem_id="see-pixelcnn", elem_classes="picture")
                    seen_gated = gr.Image(label="Gated PixelCNN", type="pil", format="png", interactive=False,
                                          buttons=[], elem_id="see-gated", elem_classes="picture")
                seen_text = gr.Markdown(elem_id="see-text")

        # CROWD requests at once share the engine, the rest wait in the queue. No event
        # preprocesses its inputs: studio checks each, and says which is wrong and why (where
        # Gradio's checks print a traceback to the log and do not name the field)
        busy = dict(concurrency_limit=CROWD, concurrency_id="sampler", preprocess=False)
        # a request's inputs checked before its work is queued: queued too (a refusal outside the
        # queue is no toast on the page), beside the work, not behind it
        screen = dict(api_visibility="private", show_progress="hidden", preprocess=False, concurrency_limit=CROWD,
                      concurrency_id="screen")
        asked = [model, n, temp, seed, klass, show_probs]
        start.click(screened(studio.sample_request, uploaded=False), asked, **screen).success(
            arm("sample"), **private).success(stoppable(sample, 2), asked, [samples, probs], api_name="sample", **busy)
        stop.click(halt("sample"), **private)
        shown = dict(fn=seen_both, inputs=[model, drawing, image], outputs=[given_drawn, given_image], **private)
        asked = [model, source, drawing, image, keep_rows, keep, temp2, seed2, klass, marks]
        go.click(seen_kept, [model, source, drawing, image, keep, keep_rows, marks], [given_drawn, given_image],
                 **private).then(screened(studio.complete_request), asked, **screen).success(
            arm("complete"), **private).success(stoppable(complete, 1), asked, completions, api_name="complete", **busy)
        stop2.click(halt("complete"), **private)
        asked = [model, source, drawing, image, klass]
        rate.click(**shown).then(screened(studio.score_request), asked, **screen).success(
            score, asked, [surprise, likelihood], api_name="score", **busy)
        # gradients through two models, on the engine: queued (so no POST runs them past it), one at a time
        looking = dict(api_visibility="private", show_progress="hidden", concurrency_limit=1, concurrency_id="see",
                       preprocess=False)
        looks = [seen_image, seen_ref, seen_gated, seen_text]
        see_tab.select(see_centre, model, looks, **looking)
        seen_image.select(see_click, model, looks, **looking)

        # a new model: the old one's streams stop, their pictures and its verdict cleared
        model.change(halt("sample", clear=2), **private)
        model.change(halt("complete", clear=1), **private)
        model.change(choose_model, [model, keep_rows, klass],
                     [keep_rows, gallery, klass, drawing, about, note, samples, probs, completions, surprise,
                      likelihood],
                     **private)
        # the picture the model is given, as it sees it, below the drawing and the image, as they are
        # used, and as the image or the model changes. (Not as the drawing changes: a Sketchpad with a
        # change listener sends its strokes apart, kept on the server for one preprocessing, which
        # these events skip, so that they read an empty canvas)
        image.change(seen(IMAGE), [model, image], given_image, **private)
        # queued: a toast reaches the page through the queue only
        image.upload(checked, image, image, api_visibility="private", show_progress="hidden", preprocess=False)
        drawing.clear(blank, None, drawing, **private)
        model.change(**shown)
        gallery.select(pick_example, model, [image, source], **private)
        # what only changes the page runs in the browser: no request
        for button, output in ((start, samples), (go, completions), (rate, surprise)):
            button.click(None, js=into_view(output.elem_id))
        show_probs.change(None, show_probs, probs, js=in_browser("[update({visible: on})]", "on"))
        source.change(None, [source, keep], [draw_box, image_box, keep, surprise, likelihood], js=in_browser(
            f"[update({{visible: s === '{DRAW}'}}), update({{visible: s === '{IMAGE}'}}), "
            f"update({{choices: s === '{DRAW}' ? {as_choices(keeps(DRAW))} : {as_choices(keeps(IMAGE))}, "
            f"value: k === '{MARKED}' || (s !== '{DRAW}' && k === '{DRAWN}') ? '{ROWS}' : k}}), null, '']",
            "s", "k"))  # the other picture's verdict, cleared
        keep.change(None, keep, [keep_rows, marks], js=in_browser(
            f"[update({{visible: k === '{ROWS}'}}), update({{visible: k === '{MARKED}'}})]", "k"))
        # the picture to paint on, as painting is chosen, or the image or the model changes (a new source
        # keeps the top rows: no request for what only changes the page)
        marking = dict(fn=backdrop, inputs=[model, source, drawing, image, keep], outputs=marks, **private)
        for changed in (keep, image, model):
            changed.change(**marking)
        marks.clear(**marking)  # Gradio's "Clear canvas" takes the picture with the paint: it is laid again
    return demo


def blank():
    """A fresh sheet of paper for the drawing: as the page starts, and after its "Clear canvas",
    which leaves none."""
    return {"background": PAPER, "layers": [], "composite": None}


def keeps(source):
    """The ways to keep part of a picture from `source`: a drawing's ink only where it is drawn."""
    return [ROWS, DRAWN, MARKED] if source == DRAW else [ROWS, MARKED]


def as_choices(options):
    """Radio choices as an update from the browser gives them: [[label, value], ...]."""
    return "[" + ", ".join(f"['{o}', '{o}']" for o in options) + "]"


def given_picture(elem_id):
    """Where the picture the model is given is shown, small."""
    return gr.Image(label="What the model is given", type="filepath", interactive=False, buttons=[], height=200,
                    elem_id=elem_id, elem_classes="picture")


def into_view(elem_id):
    """JavaScript that scrolls the output `elem_id` into view where it is out of it (on a phone,
    below the controls)."""
    return (f"() => {{ const out = document.getElementById('{elem_id}'); "
            "const box = out && out.getBoundingClientRect(); "
            "if (box && (box.top > 0.75 * window.innerHeight || box.bottom < 0)) "
            "out.scrollIntoView({behavior: 'smooth', block: 'start'}); return []; }")


def in_browser(outputs, *inputs):
    """An event's JavaScript: from its inputs, the list of its outputs' values, where
    update({...}) changes a component's properties as returning gr.Column(visible=...) would."""
    return (f"({', '.join(inputs)}) => {{ const update = (props) => ({{__type__: 'update', ...props}}); "
            f"return {outputs}; }}")


def free_port():
    """A loopback port free at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port=None, quiet=False):
    """Build the page and serve it without blocking: on `port` (None: $GRADIO_SERVER_PORT,
    else 7860 or the next free one; 0: a free loopback port). Returns (demo, its URL)."""
    where = dict(server_name="127.0.0.1", server_port=free_port()) if port == 0 else dict(server_port=port)
    gr.set_static_paths([studio.EXAMPLES])  # served from examples/ as they are, never copied to the cache
    demo = build_demo().queue(**QUEUE)
    ENGINE.everywhere(studio.warm, offered()[1])  # on every worker: the first visitor waits for none
    demo.launch(css=CSS, max_file_size=convert.MAX_BYTES, max_threads=MAX_THREADS, prevent_thread_lock=True,
                quiet=quiet, **where)
    threading.Thread(target=sweep_forever, args=(demo, uploads(), *CACHE_SWEEP), daemon=True).start()
    return demo, demo.local_url


def sweep(demo, folder, age):
    """Delete the files under `folder` (Gradio's: every frame streamed, every upload) untouched
    for `age` seconds but those the page starts with, the folders left empty as long, and
    Gradio's note of the files gone. (Gradio's own delete_cache does not hold: its task stops at
    the first file added while it looks, "Set changed size during iteration", it never notes
    half the frames, and it leaves a folder per file. A folder is touched when a file is added
    or removed, so one being filled is never taken.)"""
    keep = set().union(*(getattr(block, "keep_in_cache", ()) for block in demo.blocks.values()))

    def untouched(path):
        try:
            return time.time() - os.stat(path).st_mtime > age
        except OSError:  # removed since
            return False

    for root, dirs, files in os.walk(folder, topdown=False):
        for path in (os.path.join(root, name) for name in files):
            if path not in keep and untouched(path):
                with suppress(OSError):
                    os.remove(path)
        if root != str(folder) and not dirs and not files and untouched(root):
            with suppress(OSError):  # filled since
                os.rmdir(root)
    for noted in demo.temp_file_sets:
        noted.difference_update([path for path in noted.copy() if not os.path.exists(path)])


def sweep_forever(demo, folder, every, age):
    while demo.is_running:
        time.sleep(every)
        sweep(demo, folder, age)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=None,
                   help="default $GRADIO_SERVER_PORT, else 7860 or the next free one; 0: a free loopback port, "
                        "the URL printed alone on the first line")
    args = p.parse_args(argv)
    engine.tame_malloc()  # here; the engine's worker processes do the same
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    where = f"{ENGINE.workers} sampler {'processes' if ENGINE.processes else 'threads'}"
    print(f"PixelCNN Studio: starting {where}, loading the default model in each and drawing one picture "
          "with it, then serving", file=sys.stderr, flush=True)  # stdout's first line, with --port 0, is the URL
    demo, url = serve(args.port, quiet=args.port == 0)
    if args.port == 0:
        print(url, flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
