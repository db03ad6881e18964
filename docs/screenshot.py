"""Take docs/app.png, the README's picture: the app with the weights in weights/, in Chromium.

    python docs/screenshot.py        # needs Chromium at /usr/bin/chromium and playwright
"""
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from playwright.sync_api import sync_playwright  # noqa: E402

import app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def settle(page, elem_id):
    """Wait until the output `elem_id` shows its final, fully loaded picture."""
    time.sleep(1)
    page.wait_for_function("""(id) => {
        const el = document.getElementById(id), img = el.querySelector('img');
        const tracker = el.querySelector('[data-testid=status-tracker]');
        return (!tracker || tracker.classList.contains('hide')) && img && img.complete && img.naturalWidth > 0;
    }""", arg=elem_id, timeout=60_000)


def main(out=ROOT / "docs" / "app.png", model="pixelcnn · mnist", seed=1, example=3):
    """docs/app.png (the Sample tab) and docs/complete.png (the Complete tab)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo()
    demo.queue(**app.QUEUE).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 765})
            page.goto(demo.local_url)
            page.locator("#model").get_by_role("combobox").click()
            page.get_by_role("option", name=model).click()
            page.locator("#seed input").fill(str(seed))
            page.locator("#start").click()
            settle(page, "samples")
            page.screenshot(path=str(out))
            # the Complete tab, finishing the top half of a test digit
            page.get_by_role("tab", name="Complete").click()
            page.locator("#source").get_by_label("Image").check()
            page.locator("#examples img").nth(example).click()
            page.locator("#image img").wait_for()
            page.locator("#complete").click()
            settle(page, "completions")
            page.screenshot(path=str(out.parent / "complete.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    print("wrote", out)


if __name__ == "__main__":
    main()
