"""--report-to tensorboard, train(callback=...), and the progress bar under a notebook kernel."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.reporting import in_notebook, progress_bar


def read_events(directory: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_scalars_and_samples_match_metrics(tiny):
    pytest.importorskip("tensorboard")
    records = []
    result = rnnkit.train(
        tiny(steps=20, eval_interval=10, sample_tokens=15), report_to="tensorboard", callback=records.append
    )
    run = Path(result.checkpoint)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records == lines  # the callback saw every logged record, as written (jsonl stays on)
    events = read_events(run / "tensorboard")
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/train",
        "loss/val",
        "perplexity/train",
        "perplexity/val",
        "bpc/val",
        "learning_rate",
        "grad_norm/mean",
        "grad_norm/max",
        "tokens_per_s",
    } <= tags
    val = [(e.step, e.value) for e in events.Scalars("loss/val")]
    assert val == [(r["step"], pytest.approx(r["val_loss"])) for r in lines if r.get("val_loss") is not None]
    lr = [e.value for e in events.Scalars("learning_rate")]
    assert lr == [pytest.approx(r["lr"]) for r in lines]
    samples = events.Tensors("sample/text_summary")
    assert [e.step for e in samples] == [10, 20, 20]  # at each evaluation, and the final sample
    assert result.sample.strip().splitlines()[0] in samples[-1].tensor_proto.string_val[0].decode()


def test_callback_without_tensorboard_and_for_baselines(tiny):
    seen = []
    rnnkit.train(tiny(steps=10), callback=lambda record: seen.append(record["step"]))
    assert seen == [5, 10]
    fitted = []
    rnnkit.train(tiny("ngram", model="ngram"), callback=fitted.append)
    assert len(fitted) == 1 and fitted[0]["val_loss"] > 0


def test_missing_tensorboard_is_one_line_before_any_work(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(rnnkit.ConfigError, match=r"pip install 'rnnkit\[tensorboard\]'"):
        rnnkit.train(tiny(), report_to="tensorboard")
    assert (
        main(["train", "--data", "toy", "--steps", "2", "--report-to", "tensorboard", "--out", str(tmp_path / "tb")])
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rnnkit[tensorboard]" in err
    assert not (tmp_path / "tb").exists() and not (tmp_path / "run").exists()


def test_report_to_is_validated():
    with pytest.raises(rnnkit.ConfigError, match="jsonl, tensorboard"):
        rnnkit.TrainConfig(report_to="wandb")
    assert rnnkit.TrainConfig(report_to="tensorboard,jsonl").report_to == "tensorboard,jsonl"


class FakeShell:
    """What IPython's kernel shell looks like to in_notebook: its config names IPKernelApp."""

    config = {"IPKernelApp": {"connection_file": "kernel.json"}}


def test_progress_bar_shows_under_a_kernel_even_without_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a TTY
    bar = progress_bar(10, 0, quiet=False)
    assert bar.disable and not in_notebook()  # a pipe or log file: no bar
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: FakeShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert in_notebook()
    bar = progress_bar(10, 0, quiet=False)
    assert not bar.disable  # tqdm.auto's bar (notebook widget when ipywidgets is there)
    bar.close()
    assert progress_bar(10, 0, quiet=True).disable
    fake.get_ipython = lambda: None  # IPython imported, but no kernel running (a plain script)
    assert not in_notebook()
