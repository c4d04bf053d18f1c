"""The `rnnkit serve` page driven in headless Chromium (Debian's package through Playwright; .ci/run
installs both): what a person does with it, checked against the CLI and the API."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest
from conftest import BROWSER_ARGS, browser_or_skip

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from rnnkit.cli import main  # noqa: E402
from rnnkit.serve.app import create_app  # noqa: E402
from rnnkit.serve.models import ServeOptions, load_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
LONG = 1_000_000  # a generation still running when the test clicks Stop (the tiny model is fast)


@pytest.fixture(scope="module")
def server(serve_runs):
    """A real uvicorn server on a free port of 127.0.0.1, on a thread of this process."""
    import uvicorn

    models = load_models([str(serve_runs["lstm"]), str(serve_runs["ngram"])], engine="auto")  # as the CLI loads
    app = create_app(models, ServeOptions(max_new_tokens=LONG))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uvicorn_server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    uvicorn_server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    playwright, executable = browser_or_skip()
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.requests = []
    page.errors = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(server + "/")
    page.wait_for_selector("#model option", state="attached")
    yield page
    assert not page.errors, page.errors  # no JavaScript error on the way
    assert all(url.startswith(server) or url.startswith("data:") for url in page.requests)  # nothing from elsewhere
    page.close()


def get(server: str, path: str) -> dict:
    with urllib.request.urlopen(server + path) as response:
        return json.loads(response.read())


def set_settings(page, prompt: str, **fields) -> None:
    page.fill("#prompt", prompt)
    for name, value in fields.items():
        page.fill(f"#{name}", str(value))


def test_streamed_text_is_what_rnnkit_generate_prints(page, serve_runs, capsys):
    set_settings(page, "The Time", temperature=0.7, top_k=12, max_new_tokens=80, seed=5)
    page.uncheck("#colour")
    page.click("#generate")
    sample = page.locator("#generate-out .sample")
    sample.first.wait_for()
    page.wait_for_function("document.querySelector('#generate-out .sample').dataset.state === 'done'")
    shown = page.locator("#generate-out .sample").first.inner_text()
    command = ["generate", str(serve_runs["lstm"]), "--prompt", "The Time", "--temperature", "0.7", "--top-k", "12"]
    assert main([*command, "--max-new-tokens", "80", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert printed.endswith("\n")
    assert shown == printed[:-1] == sample.first.get_attribute("data-text")
    assert "80 tokens" in page.locator("#generate-out .stats").inner_text()
    assert "seed 5" in page.locator("#generate-status").inner_text()


def test_stop_ends_a_generation_midway(page, server):
    set_settings(page, "It", max_new_tokens=LONG, seed=1)
    page.uncheck("#colour")
    page.click("#generate")
    page.wait_for_function("(document.querySelector('#generate-out .continuation') || {}).textContent?.length > 20")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#generate-out .sample').dataset.state === 'stopped'")
    text = page.locator("#generate-out .sample").first.inner_text()
    assert 20 < len(text) < LONG
    assert "stopped" in page.locator("#generate-out .stats").inner_text()
    assert page.locator("#generate").is_enabled()
    for _ in range(100):  # the server cancelled it: nothing left in flight
        if get(server, "/healthz")["in_flight"]["lstm"] == 0:
            break
        time.sleep(0.05)
    assert get(server, "/healthz")["in_flight"]["lstm"] == 0


def test_score_colouring_shows_the_apis_surprisal_and_top_predictions(page, server):
    text = "The Time Traveller (for so it will be convenient to speak of him)."
    page.click("#tab-score")
    page.fill("#score-text", text)
    page.click("#score")
    page.wait_for_selector("#score-out .tok")
    request = urllib.request.Request(
        server + "/v1/score",
        data=json.dumps({"text": text, "top_k": 5}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        expected = json.loads(response.read())
    tokens = page.locator("#score-out .tok")
    assert tokens.count() == len(expected["token_scores"]) == len(text)
    shown = [float(v) for v in tokens.evaluate_all("spans => spans.map(s => s.dataset.surprisal)")]
    assert shown == pytest.approx([t["surprisal"] for t in expected["token_scores"]], rel=1e-12)
    # the shading follows surprisal: the most surprising token is darker than the least
    colours = tokens.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)")
    most, least = shown.index(max(shown)), shown.index(min(shown))
    assert colours[most] != colours[least]
    assert page.locator("#score-out .tokens").inner_text() == text
    # hovering a token shows its surprisal and the model's top predictions there
    tokens.nth(most).hover()
    tip = page.locator("#tooltip")
    tip.wait_for(state="visible")
    assert f"{max(shown):.2f} bits" in tip.inner_text()
    best = expected["token_scores"][most]["top"][0]
    assert json.dumps(best["token"])[1:-1] in tip.inner_text()
    assert f"{100 * 2.718281828459045 ** best['logprob']:.1f}%" in tip.inner_text()
    assert f"{expected['bits_per_char']:.4f} bits/char" in page.locator("#score-out .stats").inner_text()


def test_switching_models_and_putting_two_side_by_side(page, serve_runs, capsys):
    assert "1×48 lstm" in page.locator("#model-info").inner_text()
    page.select_option("#model", "ngram")
    assert "3-gram" in page.locator("#model-info").inner_text()
    assert page.locator("#units").is_disabled()  # an n-gram has no hidden units
    page.select_option("#compare", "lstm")
    set_settings(page, "The ", max_new_tokens=40, seed=9, temperature=1)  # generate's default
    page.uncheck("#colour")
    page.click("#generate")
    page.wait_for_function(
        "[...document.querySelectorAll('#generate-out .sample')].filter(s => s.dataset.state === 'done').length === 2"
    )
    columns = page.locator("#generate-out .column")
    assert columns.evaluate_all("cs => cs.map(c => c.dataset.model)") == ["ngram", "lstm"]
    for index, name in enumerate(["ngram", "lstm"]):
        main(["generate", str(serve_runs[name]), "--prompt", "The ", "--max-new-tokens", "40", "--seed", "9"])
        assert columns.nth(index).locator(".sample").inner_text() == capsys.readouterr().out[:-1]


def test_hidden_unit_view(page, server):
    page.click("#tab-units")
    page.fill("#units-text", "abc def")
    page.select_option("#signal", "c")
    page.fill("#unit", "7")
    page.click("#units")
    page.wait_for_selector("#units-out .tok")
    values = [float(v) for v in page.locator("#units-out .tok").evaluate_all("s => s.map(x => x.dataset.value)")]
    request = urllib.request.Request(
        server + "/v1/inspect",
        data=json.dumps({"text": "abc def", "signal": "c", "unit": 7}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert values == json.loads(response.read())["values"]
    assert "unit 7 of 48" in page.locator("#units-status").inner_text()
    # the most varied units are offered; clicking one shows it
    chip = page.locator("#varied button").nth(1)
    unit = chip.inner_text().split()[0]
    chip.click()
    page.wait_for_function(f"document.querySelector('#units-status').textContent.includes('unit {unit} of')")
    assert page.locator("#unit").input_value() == unit


def test_colouring_a_finished_sample(page):
    set_settings(page, "The ", max_new_tokens=30, seed=2)
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#generate-out .sample .tok').length > 0")
    sample = page.locator("#generate-out .sample").first
    assert sample.locator(".tok").count() == len(sample.get_attribute("data-text"))
    assert "bits/char by lstm" in sample.get_attribute("title")


def test_a_finished_sample_goes_to_the_score_and_unit_views(page):
    set_settings(page, "The ", max_new_tokens=30, seed=4)
    page.uncheck("#colour")
    page.click("#generate")
    page.wait_for_selector("#generate-out .sample-actions button")
    text = page.locator("#generate-out .sample").first.get_attribute("data-text")
    page.click("#generate-out .sample-actions button >> text=score this text")
    page.wait_for_selector("#score-out .tok")
    assert page.locator("#view-score").is_visible() and page.locator("#score-text").input_value() == text
    assert page.locator("#score-out .tokens").first.inner_text() == text
    page.click("#tab-generate")
    page.click("#generate-out .sample-actions button >> text=see its hidden units")
    page.wait_for_selector("#units-out .tok")
    assert page.locator("#units-out .tokens").inner_text() == text
