"""Shared fixtures: tiny configurations that train in a second on 2 CPU cores."""

from __future__ import annotations

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
