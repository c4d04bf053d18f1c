"""Take the README's screenshots of `rnnkit serve`'s page (docs/img/serve.png, serve-units.png).

    python docs/screenshot_serve.py RUN [BASELINE]    # e.g. runs/default runs/ngram5

Starts `rnnkit serve RUN BASELINE` on a free port of 127.0.0.1, drives the page in headless
Chromium (Debian's `chromium`, through Playwright): a generation side by side with the baseline,
coloured by surprisal with one token's tooltip showing, then the hidden-unit view.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "img"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz") as response:
                if json.loads(response.read())["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit("the server did not start")


def shoot(url: str, baseline: bool) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        page = browser.new_page(viewport={"width": 1280, "height": 820}, device_scale_factor=1)
        page.goto(url + "/")
        page.wait_for_selector("#model option", state="attached")
        if baseline:
            page.select_option("#compare", index=2)
        page.fill("#prompt", "The Time Traveller")
        page.fill("#max_new_tokens", "240")
        page.fill("#seed", "3")
        page.click("#generate")
        page.wait_for_function(
            "[...document.querySelectorAll('#generate-out .sample')].every(s => s.querySelector('.tok'))"
            f" && document.querySelectorAll('#generate-out .sample').length === {2 if baseline else 1}",
            timeout=60_000,
        )
        page.locator("#generate-out .sample").first.locator(".tok").nth(30).hover()
        page.screenshot(path=str(IMAGES / "serve.png"))
        page.click("#tab-units")
        page.select_option("#signal", "c")
        page.click("#units")
        page.wait_for_selector("#units-out .tok")
        page.mouse.move(0, 0)
        page.screenshot(path=str(IMAGES / "serve-units.png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("baseline", nargs="?")
    args = parser.parse_args()
    port = free_port()
    runs = [args.run] + ([args.baseline] if args.baseline else [])
    command = [sys.executable, "-m", "rnnkit", "serve", *runs, "--port", str(port), "--quiet"]
    server = subprocess.Popen(command)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server)
        shoot(url, args.baseline is not None)
    finally:
        server.terminate()
        server.wait(30)
    print(f"wrote {IMAGES / 'serve.png'} and {IMAGES / 'serve-units.png'}")


if __name__ == "__main__":
    main()
