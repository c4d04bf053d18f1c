"""rnnkit.studies.sweep: one run per value of a numeric option, a table, JSON and a plot; bad --set refused."""

import importlib
import json

import pytest
from conftest import tiny_config

from rnnkit.cli import main
from rnnkit.errors import ConfigError, TrainingDiverged
from rnnkit.studies.sweep import markdown_table, numeric_options, parse_set, sweep

TINY = [
    "--data",
    "toy",
    "--tokenizer",
    "word",
    "--layers",
    "1",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--steps",
    "12",
    "--eval-interval",
    "6",
    "--lr",
    "0.02",
    "--schedule",
    "constant",
    "--device",
    "cpu",
    "--quiet",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_sweep_two_values_through_the_cli(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--set", "hidden=8,16", *TINY, "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(row["option"], row["value"], row["status"]) for row in rows] == [("hidden", 8, "ok"), ("hidden", 16, "ok")]
    assert all(row["steps"] == 12 and row["val_loss"] > 0 for row in rows)  # the same budget for both
    assert rows[0]["parameters"] < rows[1]["parameters"]
    table = (out / "sweep.md").read_text().splitlines()
    assert table[0].startswith("| hidden |") and len(table) == 4
    assert table[2].startswith("| 8 |") and table[3].startswith("| 16 |")
    assert json.loads((out / "sweep.json").read_text()) == rows
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "hidden-8" / "best").is_dir() and (out / "hidden-16" / "metrics.jsonl").is_file()
    assert main(["sweep", "--set", "hidden=8,16", *TINY, "--out", str(out)]) == 2  # kept without --overwrite


def test_parse_set_names_and_values():
    assert parse_set("seq-len=4,8") == ("seq_len", [4, 8])
    assert parse_set("lr=1e-3, 3e-3") == ("lr", [1e-3, 3e-3])
    assert parse_set("clip=none,1") == ("clip", [None, 1.0])
    assert parse_set("steps=1e3,2000") == ("steps", [1000, 2000])
    assert {"hidden", "layers", "lr", "seq_len", "dropout", "batch_size", "embed"} <= set(numeric_options())
    assert not {"model", "data", "tie", "vocab_size"} & set(numeric_options())


@pytest.mark.parametrize(
    "text, message",
    [
        ("model=rnn,gru", "'model' is not a numeric option"),
        ("tie=0,1", "'tie' is not a numeric option"),
        ("hiden=8,16", "'hiden' is not an option"),
        ("hidden=8", "at least two values"),
        ("hidden=8,8", "listed twice"),
        ("hidden=8.5,16", "takes integers"),
        ("lr=fast,slow", "is not a number"),
        ("hidden=none,8", "'none' is not allowed"),
        ("hidden", "NAME=v1,v2"),
    ],
)
def test_bad_set_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_set(text)


@pytest.mark.parametrize(
    "setting, message",
    [("model=a,b", "not a numeric option"), ("colour=1,2", "not an option"), ("dropout=0.1,1.5", "dropout must be in")],
)
def test_cli_refuses_before_training_anything(tmp_path, capsys, setting, message):
    out = tmp_path / "sweep"
    assert main(["sweep", "--set", setting, *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_diverged_run_is_a_row_not_a_crash(tmp_path, monkeypatch):
    module = importlib.import_module("rnnkit.train")  # `rnnkit.train` is also the function
    real_train = module.train

    def train(config, **options):
        if config.model.hidden == 8:
            raise TrainingDiverged("non-finite loss or gradient at step 3")
        return real_train(config, **options)

    monkeypatch.setattr(module, "train", train)
    rows = sweep(tiny_config(None, steps=6, eval_interval=6), "hidden", [8, 16], tmp_path / "s", log=lambda _m: None)
    assert rows[0]["status"].startswith("diverged") and rows[0]["val_loss"] is None
    assert rows[1]["status"] == "ok"
    assert "| 8 | diverged |" in markdown_table(rows)
    assert (tmp_path / "s" / "sweep.png").is_file()
