"""The app in a real browser (Chromium through Playwright), used as a person would: pick a
model, watch a grid being drawn, stop one, draw the top of a digit and complete it.
Screenshots go to test-artifacts/."""
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_fixtures import CHROMIUM
from helpers import REPO

ARTIFACTS = REPO / "test-artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")]
sync_api = pytest.importorskip("playwright.sync_api")


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def choose_model(page, label):
    """Pick the model whose option reads `label` (dataset · model), whatever word follows it."""
    page.locator("#model").get_by_role("combobox").click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(label)}( — .*)?$")).click()


def src(page, elem_id):
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else None


def watch(page, elem_id, until, timeout=30):
    """The distinct pictures shown in an output until `until(seen)` holds."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = src(page, elem_id)
        if s and (not seen or seen[-1] != s):
            seen.append(s)
        if until(seen):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"#{elem_id} showed {len(seen)} pictures in {timeout} s")


def finished(page, elem_id):
    """True once the output is idle (no progress tracker) and its picture fully loaded."""
    return page.evaluate("""id => {
        const el = document.getElementById(id);
        const tracker = el.querySelector('[data-testid=status-tracker]');
        const img = el.querySelector('img');
        return (!tracker || tracker.classList.contains('hide')) && !!img && img.complete && img.naturalWidth > 0;
    }""", elem_id)


def wait_finished(page, elem_id, timeout=30):
    deadline = time.monotonic() + timeout
    while not finished(page, elem_id):
        assert time.monotonic() < deadline, f"#{elem_id} did not finish in {timeout} s"
        time.sleep(0.05)
    return src(page, elem_id)


def picture(page, url):
    return np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("RGB")).astype(int)


def test_sample_fills_in_while_you_watch(page):
    choose_model(page, "Shapes · PixelCNN")
    page.locator("#start").click()
    seen = watch(page, "samples", lambda seen: len(seen) >= 4)
    shot(page, "sample_forming.png")
    final = wait_finished(page, "samples")
    shot(page, "sample_done.png")
    assert len(set(seen + [final])) >= 5, "the grid should change many times as it forms"
    img = picture(page, final)
    assert img.shape == (425, 425, 3)  # 4x4 images of 20x20, 5x
    assert not ((img[..., 0] == 255) & (img[..., 1] == 0)).any(), "no red marker once finished"


def test_stop_stops_drawing_here_and_on_the_server(page, sampler_spy):
    state = sampler_spy
    page.locator("#start").click()
    watch(page, "samples", lambda seen: len(seen) >= 3)
    page.locator("#stop").click()
    deadline = time.monotonic() + 10
    while not state["closed"]:
        assert time.monotonic() < deadline, "the server kept sampling after Stop"
        time.sleep(0.05)
    time.sleep(0.5)
    shown, steps = src(page, "samples"), state["steps"]
    time.sleep(1.0)
    assert src(page, "samples") == shown and state["steps"] == steps and not state["finished"]
    shot(page, "sample_stopped.png")


def test_draw_the_top_of_a_digit_and_complete_it(page):
    page.get_by_role("tab", name="Complete").click()
    box = page.locator("#sketch .pixi-target canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # the 280x280 canvas is centred

    def at(x, y):  # canvas coordinates to the screen (the canvas shows at about 100%)
        return cx + 0.95 * (x - 140), cy + 0.95 * (y - 140)

    page.mouse.move(*at(70, 60))  # the top of a 7: a bar, and the start of its stem
    page.mouse.down()
    page.mouse.move(*at(210, 60), steps=6)
    page.mouse.move(*at(180, 130), steps=4)
    page.mouse.up()
    page.locator("#keep-rows input[type=number]").fill("11")  # the rows drawn on: 5 to 10
    page.locator("#keep-rows input[type=number]").press("Enter")
    page.locator("#complete").click()
    seen = watch(page, "completions", lambda seen: len(seen) >= 3)
    final = wait_finished(page, "completions")
    shot(page, "complete_done.png")
    assert len(set(seen + [final])) >= 3
    img = picture(page, final)  # four 28x28 completions two by two, a 1-pixel grey border around each
    scale = img.shape[1] // (2 * 29 + 1)
    assert img.shape == ((2 * 29 + 1) * scale, (2 * 29 + 1) * scale, 3)
    tinted = (img[..., 2] - img[..., 0] > 40).mean(axis=1) > 0.5  # rows of the picture tinted blue
    assert tinted[scale: 7 * scale].all() and not tinted[-8 * scale:].any()  # the top kept, the bottom drawn
    ink_kept = (img.mean(axis=2) < 80) & (img[..., 2] > img[..., 0])  # dark blue: kept ink
    assert ink_kept.sum() > 100, "the drawn bar should be kept, tinted"


def complete_an_example(page):
    """Complete the first example image; the address of the completions' picture."""
    page.get_by_role("tab", name="Complete").click()
    page.locator("#source").get_by_label("Image").check()
    page.locator("#examples img").first.click()
    page.locator("#image img").wait_for()
    page.locator("#complete").click()
    return wait_finished(page, "completions")


def test_complete_a_colour_example(page):
    choose_model(page, "Colour shapes · PixelRCNN")
    final = complete_an_example(page)
    shot(page, "complete_colour.png")
    assert picture(page, final).shape[:2] == ((2 * 21 + 1) * 11,) * 2  # 4 images of 20x20, two by two, 11x


def test_what_only_changes_the_page_asks_the_server_nothing(page):
    """Showing the probabilities, switching between drawing and an image (and the ways to keep
    part of each): done in the browser, without a request (a crowd clicking them costs the
    server nothing)."""
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/run/" in r.url or "/queue/" in r.url else None)
    page.locator("#show-probs input").check()
    sync_api.expect(page.locator("#probs")).to_be_visible()
    page.get_by_role("tab", name="Complete").click()
    page.locator("#source").get_by_label("Image").check()
    sync_api.expect(page.locator("#examples")).to_be_visible()
    sync_api.expect(page.locator("#sketch")).to_be_hidden()
    page.locator("#source").get_by_label("Draw").check()
    sync_api.expect(page.locator("#sketch")).to_be_visible()
    sync_api.expect(page.locator("#examples")).to_be_hidden()
    page.locator("#source").get_by_label("Image").check()
    sync_api.expect(page.locator("#keep").get_by_label("What I drew")).to_have_count(0)  # an image is not drawn
    assert asked == []


# ---------------------------------------------------------------- beyond the reference

def test_the_next_pixel_probabilities_show_while_sampling(page):
    sync_api.expect(page.locator("#probs")).to_be_hidden()
    page.locator("#show-probs input").check()
    page.locator("#start").click()
    watch(page, "samples", lambda seen: len(seen) >= 3)
    probs = page.locator("#probs")
    sync_api.expect(probs).to_contain_text("ink")
    sync_api.expect(probs).to_contain_text("paper")
    shot(page, "sample_probs.png")
    wait_finished(page, "samples")


def test_ask_a_conditional_model_for_a_class(page):
    sync_api.expect(page.locator("#class")).to_be_hidden()  # PixelCNN is not conditional
    choose_model(page, "MNIST · Gated PixelCNN, class-conditional")
    picker = page.locator("#class")
    sync_api.expect(picker).to_be_visible()
    picker.get_by_role("combobox").click()
    page.get_by_role("option", name="3", exact=True).click()
    page.locator("#start").click()
    final = wait_finished(page, "samples")
    shot(page, "sample_class.png")
    assert picture(page, final).shape == (468, 468, 3)  # 4x4 images of 28x28 and their borders, 4x


def test_what_the_model_sees_follows_a_click(page):
    page.get_by_role("tab", name="What the model sees").click()
    text = page.locator("#see-text")
    sync_api.expect(text).to_contain_text("Predicting pixel (14, 14)", timeout=20_000)
    wait_finished(page, "see-gated")
    before = src(page, "see-pixelcnn")
    box = page.locator("#see-image img").bounding_box()
    # the pixel in row 20, column 5 of the 28x28 picture, shown at box width
    page.mouse.click(box["x"] + box["width"] * 5.5 / 28, box["y"] + box["height"] * 20.5 / 28)
    sync_api.expect(text).to_contain_text("Predicting pixel (20, 5)", timeout=20_000)
    assert src(page, "see-pixelcnn") != before
    shot(page, "see.png")


def test_how_likely_is_a_drawing(page):
    page.get_by_role("tab", name="Complete").click()
    box = page.locator("#sketch .pixi-target canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x0 - 60, y0 - 70)  # a 1: one stroke down the middle
    page.mouse.down()
    page.mouse.move(x0, y0 + 80, steps=6)
    page.mouse.up()
    page.locator("#score").click()
    sync_api.expect(page.locator("#likelihood")).to_contain_text("bits/dim", timeout=30_000)
    sync_api.expect(page.locator("#likelihood")).to_contain_text("Test images")
    final = wait_finished(page, "surprise")
    shot(page, "score.png")
    assert picture(page, final).shape == (140, 288, 3)  # the picture, then its heat map


def test_closing_the_tab_stops_the_sampler_on_the_server(browser, app_url, sampler_spy):
    """An abandoned stream (the person closes the tab mid-drawing) frees its work too."""
    state = sampler_spy
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    page.locator("#start").click()
    watch(page, "samples", lambda seen: len(seen) >= 2)
    page.close()
    deadline = time.monotonic() + 10
    while not state["closed"]:
        assert time.monotonic() < deadline, "the server kept sampling for a closed tab"
        time.sleep(0.05)
    assert not state["finished"]
