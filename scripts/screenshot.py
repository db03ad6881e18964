"""Take the README's pictures of the app with the weights in weights/, in Chromium:
docs/app.png (Sample), docs/complete.png (Complete), docs/class.png (a class-conditional
model asked for a 3, with the next-pixel probabilities), docs/score.png (How likely is it?),
docs/repaint.png and docs/keep_drawn.png (Complete given all
that is kept: an example's middle painted over, the bottom of a digit drawn), docs/see.png
(What the model sees), docs/colour.png (a colour model stopped half way, with
its next-pixel probabilities), docs/colour_drawn.png (the top of a 7 drawn in colour, completed
by it), all 1280x1000, and docs/phone.png, docs/phone_complete.png
(Sample and Complete on a 390x844 phone).

    python scripts/screenshot.py        # needs Chromium at /usr/bin/chromium and playwright

The app runs as `python app.py --port 0` (app_server.py), offline, with the weights in weights/.
"""
import re
import time
from pathlib import Path

from app_server import running_app
from playwright.sync_api import sync_playwright

import pixelcnn

ROOT = Path(__file__).resolve().parents[1]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def settle(page, elem_id, before=None):
    """Wait until the output `elem_id` shows its final, fully loaded picture (another than the
    one whose address was `before`)."""
    time.sleep(1)
    page.wait_for_function("""([id, before]) => {
        const el = document.getElementById(id), img = el.querySelector('img');
        const tracker = el.querySelector('[data-testid=status-tracker]');
        return (!tracker || tracker.classList.contains('hide')) && img && img.complete && img.naturalWidth > 0
            && img.src !== before;
    }""", arg=[elem_id, before], timeout=60_000)


def shown(page, elem_id):
    """The address of the picture the output `elem_id` shows, if any."""
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else None


def choose(page, elem_id, option):
    """Pick the option that reads `option`, whatever word follows it after a dash."""
    page.locator(f"#{elem_id}").get_by_role("combobox").click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(option)}( — .*)?$")).click()


def draw(page, canvas, *strokes):
    """Drag the mouse along each stroke, points in the 280x280 canvas's pixels."""
    box = page.locator(f"{canvas} .pixi-target canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # centred, at about 100%
    for stroke in strokes:
        page.mouse.move(cx + 0.95 * (stroke[0][0] - 140), cy + 0.95 * (stroke[0][1] - 140))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(cx + 0.95 * (x - 140), cy + 0.95 * (y - 140), steps=8)
        page.mouse.up()


def complete_example(page, example):
    """On the Complete tab, the top half of the example `example` completed."""
    page.get_by_role("tab", name="Complete").click()
    page.locator("#source").get_by_label("Image").check()
    page.locator("#examples img").nth(example).click()
    page.locator("#image img").wait_for()
    page.locator("#complete").click()
    settle(page, "completions")


def main(out=ROOT / "docs" / "app.png", model="MNIST · PixelCNN", seed=1, example=3):
    with running_app() as (_, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        choose(page, "model", model)
        page.locator("#seed input").fill(str(seed))
        page.locator("#start").click()
        settle(page, "samples")
        page.screenshot(path=str(out))
        # the Complete tab, finishing the top half of a test digit
        complete_example(page, example)
        page.screenshot(path=str(out.parent / "complete.png"), full_page=True)
        # How likely is it? The same example, whole
        page.locator("#score").click()
        settle(page, "surprise")
        page.screenshot(path=str(out.parent / "score.png"), full_page=True)
        # the same example, its middle painted over and repainted
        page.locator("#keep").get_by_label("All but what I paint over").check()
        page.locator("#marks .pixi-target canvas").first.wait_for()
        time.sleep(1.0)  # the picture, loaded as the canvas's background
        draw(page, "#marks", [(30, 120), (250, 120)], [(30, 150), (250, 150)])
        before = shown(page, "completions")
        page.locator("#complete").click()
        settle(page, "completions", before)
        page.screenshot(path=str(out.parent / "repaint.png"), full_page=True)
        # the bottom of a digit, drawn, and completed given all of it
        page.locator("#source").get_by_label("Draw").check()
        draw(page, "#sketch", [(200, 120), (110, 250)])
        page.locator("#keep").get_by_label("What I drew").check()
        before = shown(page, "completions")
        page.locator("#complete").click()
        settle(page, "completions", before)
        page.screenshot(path=str(out.parent / "keep_drawn.png"), full_page=True)
        # What the model sees: the pixel in row 16, column 15
        page.get_by_role("tab", name="What the model sees").click()
        settle(page, "see-gated")
        box = page.locator("#see-image img").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 15.5 / 28, box["y"] + box["height"] * 16.5 / 28)
        page.get_by_text("Predicting pixel (16, 15)").wait_for()
        settle(page, "see-gated")
        page.screenshot(path=str(out.parent / "see.png"), full_page=True)
        if ("gated_cond", "mnist") not in pixelcnn.available():
            print("no gated_cond weights: docs/class.png not retaken")
            return browser.close()
        # a class-conditional model asked for a 3, with the next-pixel probabilities
        page.get_by_role("tab", name="Sample").click()
        choose(page, "model", "MNIST · Gated PixelCNN, class-conditional")
        choose(page, "class", "3")
        page.locator("#show-probs input").check()
        page.locator("#start").click()
        settle(page, "samples")
        page.screenshot(path=str(out.parent / "class.png"), full_page=True)
        # a colour model half way, with what it expected of the next pixel
        choose(page, "model", "Colour MNIST · Gated PixelCNN")
        page.locator("#start").click()
        page.wait_for_function("() => document.querySelectorAll('#probs .level').length > 0 && "
                               "document.querySelector('#probs').textContent.includes('Drawn')")
        time.sleep(1.0)
        page.locator("#stop").click()
        time.sleep(1.0)
        page.screenshot(path=str(out.parent / "colour.png"), full_page=True)
        # the same model completing the top of a 7 drawn in its first ink, given all of it (a new page:
        # a cleared canvas loses its white paper and asks for the brush to be picked again)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        choose(page, "model", "Colour MNIST · Gated PixelCNN")
        page.get_by_role("tab", name="Complete").click()
        draw(page, "#sketch", [(50, 40), (230, 40), (170, 150)])
        page.locator("#keep").get_by_label("What I drew").check()
        before = shown(page, "completions")
        page.locator("#complete").click()
        settle(page, "completions", before)
        page.screenshot(path=str(out.parent / "colour_drawn.png"), full_page=True)
        # a phone: Start scrolls to the grid; Complete's completions, two by two
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url)
        page.locator("#start").click()
        settle(page, "samples")
        page.screenshot(path=str(out.parent / "phone.png"))
        complete_example(page, example)
        page.screenshot(path=str(out.parent / "phone_complete.png"))
        browser.close()
    print("wrote", out)


if __name__ == "__main__":
    main()
