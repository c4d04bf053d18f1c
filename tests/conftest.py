"""Shared fixtures: tiny configurations that train in a second on 2 CPU cores."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig


def tiny_config(out, model="lstm", tokenizer="word", data="toy", steps=30, **train) -> RunConfig:
    train_options = dict(
        steps=steps,
        lr=0.01,
        schedule="constant",
        eval_interval=10,
        log_interval=5,
        out=str(out),
        quiet=True,
        sample_tokens=0,
        device="cpu",
        seed=7,
    )
    train_options.update(train)
    # dropout 0: a plain model unless a test asks for a regulariser (the default run's dropout is 0.25)
    return RunConfig(
        model=ModelConfig(model=model, layers=1, hidden=32, embed=16, dropout=0.0),
        data=DataConfig(data=data, tokenizer=tokenizer, batch_size=4, seq_len=8),
        train=TrainConfig(**train_options),
    )


@pytest.fixture
def tiny(tmp_path):
    def make(name="run", **options):
        return tiny_config(tmp_path / name, **options)

    return make


@pytest.fixture
def text_file(tmp_path):
    def write(content: str | bytes, name="text.txt"):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (and do not fight other jobs for the cores);
    the previous thread count is restored afterwards. Use with pytest.mark.usefixtures."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rel(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


# headless Chromium for the tests that render a page (the inspect report, the serve page)
BROWSER_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_or_skip():
    """(playwright.sync_api, chromium path); skipped where either is missing, except under CI
    (RNNKIT_REQUIRE_BROWSER=1, set by .ci/run, which installs both), where that is a failure."""
    required = os.environ.get("RNNKIT_REQUIRE_BROWSER") == "1"
    try:
        from playwright import sync_api
    except ImportError:
        if required:
            raise
        pytest.skip("pip install playwright (in the dev extra)")
    executable = chromium_path()
    if executable is None:
        if required:
            pytest.fail("no chromium: apt-get install chromium")
        pytest.skip("no chromium here: apt-get install chromium (.ci/run installs it)")
    return sync_api, executable


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory):
    """{"lstm": run dir, "ngram": run dir}: a small char LSTM and a 3-gram on The Time Machine,
    for the server's tests."""
    from rnnkit.config import with_overrides
    from rnnkit.train import train

    root = tmp_path_factory.mktemp("serve-runs")
    lstm = with_overrides(tiny_config(root / "lstm", tokenizer="char", data="timemachine", steps=30), {"hidden": 48})
    ngram = with_overrides(tiny_config(root / "ngram", tokenizer="char", data="timemachine"), {"model": "ngram"})
    ngram = with_overrides(ngram, {"order": 3})
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(lstm)
        train(ngram)
    finally:
        torch.set_num_threads(previous)
    return {"lstm": root / "lstm", "ngram": root / "ngram"}
