"""Model cards (RUN/README.md) and the provenance recorded in config.json."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

import rnnkit
from rnnkit import modelcard
from rnnkit.text.corpora import load_corpus


@pytest.fixture(scope="module")
def card_run(tmp_path_factory):
    from conftest import tiny_config

    config = tiny_config(tmp_path_factory.mktemp("card") / "run", tokenizer="char", steps=20, sample_tokens=30)
    return rnnkit.train(config)


def test_config_records_provenance(card_run):
    for where in ("", "best", "last"):
        document = json.loads((Path(card_run.checkpoint) / where / "config.json").read_text())
        provenance = document["provenance"]
        assert provenance["versions"]["rnnkit"] == rnnkit.__version__
        assert provenance["versions"]["torch"] and provenance["versions"]["python"].count(".") == 2
        assert provenance["versions"]["device"] == "cpu" and provenance["created"].endswith("+00:00")
        assert provenance["command"] and provenance["parameters"] == card_run.parameters
        expected = hashlib.sha256(load_corpus("toy", (0.9, 0.05, 0.05)).train.encode("utf-8")).hexdigest()
        assert provenance["data"]["sha256"] == expected
        assert provenance["data"]["tokens"] == card_run.sizes


def test_card_describes_the_run(card_run):
    card = (Path(card_run.checkpoint) / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: rnnkit\n")
    assert "a character-level LSTM language model" in card and "at the end of training" in card
    assert f"{card_run.parameters:,}" in card and f"{card_run.best_val_loss:.4f} nats/token" in card
    assert f"| perplexity | {card_run.val_ppl:.2f} |" in card and f"{card_run.val_bpc:.4f}" in card
    assert card_run.sample.strip() in card
    for command in ("rnnkit generate", "rnnkit evaluate", "rnnkit score", "rnnkit plot", "--resume", "rnnkit export"):
        assert command in card
    document = json.loads((Path(card_run.checkpoint) / "config.json").read_text())
    assert document["provenance"]["data"]["sha256"] in card and document["provenance"]["command"] in card


def test_card_written_at_every_checkpoint_save_and_at_the_end(tmp_path, tiny, monkeypatch):
    import importlib

    train_module = importlib.import_module("rnnkit.train")  # the module (rnnkit.train is the function)
    calls = []

    def recording(run_dir, final=None):
        calls.append(final)
        path = modelcard.write_run_card(run_dir, final)
        assert "## Results" in path.read_text()
        return path

    monkeypatch.setattr(train_module, "write_run_card", recording)
    rnnkit.train(tiny(steps=20, eval_interval=10))
    saves = 2 * 2  # best/ and last/ at steps 10 and 20 (the loss falls on the toy text)
    assert len(calls) >= saves + 1 and all(c is None for c in calls[:-1]) and calls[-1]["steps"] == 20


def test_command_line_of_the_cli_and_of_a_script(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/rnnkit", "train", "--data", "my file.txt"])
    assert modelcard.command_line() == "rnnkit train --data 'my file.txt'"
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="rnnkit.__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/x/rnnkit/__main__.py", "generate", "runs/a"])
    assert modelcard.command_line() == "rnnkit generate runs/a"
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setattr(sys, "argv", ["train_my_model.py", "--fast"])
    assert modelcard.command_line() == "python train_my_model.py --fast  (through the Python API)"


def test_old_checkpoint_without_provenance_loads_and_gets_a_card(card_run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(Path(card_run.checkpoint) / "best", old)
    document = json.loads((old / "config.json").read_text())
    del document["provenance"]
    (old / "config.json").write_text(json.dumps(document))
    lm = rnnkit.load(old, device="cpu")
    assert lm.evaluate().loss == pytest.approx(card_run.best_val_loss)
    card = modelcard.write_checkpoint_card(old).read_text()
    assert "| SHA-256 | not recorded |" in card and "not recorded" in card.split("Command line:")[1].split("```")[1]


def test_baseline_run_gets_a_card(tiny):
    result = rnnkit.train(tiny("ngram", model="ngram", tokenizer="char"))
    card = (Path(result.checkpoint) / "README.md").read_text()
    assert "order-5 Kneser-Ney n-gram" in card and "stored entries" in card
    assert "--resume" not in card and "rnnkit export" not in card
