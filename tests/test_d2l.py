"""The d2l recipe: --normalize letters, the d2l-rnn / d2l-gru presets, training perplexity logged
and plotted beside validation perplexity."""

import json
import math
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.config import DataConfig
from rnnkit.data import load_splits
from rnnkit.errors import ConfigError
from rnnkit.presets import preset_config
from rnnkit.text.normalize import normalize_text
from rnnkit.train import train


def test_letters_keeps_lowercase_letters_and_one_space_per_run():
    text = "The Time Machine, by H. G. Wells [1898]\n\n\nI\nThe Time Traveller (for so it will be convenient"
    assert normalize_text(text, "letters") == (
        "the time machine by h g wells i the time traveller for so it will be convenient"
    )
    assert normalize_text("Café--naïve 42!", "letters") == "caf na ve "  # ASCII letters only, as d2l's regex
    assert normalize_text("x", None) == "x"


def test_the_time_machine_has_27_symbols_after_normalising():
    # d2l counts 28: the same 26 letters and the space, plus an <unk> that never occurs; a char
    # vocabulary here has <unk> only when some character of the text is left out of it
    loaded = load_splits(DataConfig(data="timemachine", normalize="letters"))
    assert loaded.vocab_size == 27
    assert set(loaded.tokenizer.vocab.itos) == set("abcdefghijklmnopqrstuvwxyz ")
    plain = load_splits(DataConfig(data="timemachine"))
    assert plain.vocab_size > 28


def test_normalize_is_validated_and_refused_for_prepared_data(tmp_path):
    with pytest.raises(ConfigError, match="normalize must be one of letters"):
        DataConfig(normalize="ascii")
    assert main(["prepare", "--data", "toy", "--out", str(tmp_path / "prep"), "--quiet"]) == 0
    with pytest.raises(ConfigError, match="prepared"):
        load_splits(DataConfig(data=str(tmp_path / "prep"), normalize="letters"))


@pytest.mark.parametrize("name, model", [("d2l-rnn", "rnn"), ("d2l-gru", "gru")])
def test_presets_spell_the_d2l_setup(name, model):
    config = preset_config(name)
    assert (config.model.model, config.model.embed, config.model.hidden, config.model.layers) == (model, 0, 32, 1)
    assert config.model.gru_form == ("cho" if model == "gru" else None)
    assert (config.train.optimizer, config.train.lr, config.train.clip, config.train.momentum) == ("sgd", 1.0, 1.0, 0.0)
    assert (config.data.normalize, config.data.batching, config.data.seq_len) == ("letters", "random", 32)
    sizes = load_splits(config.data).splits
    assert abs(len(sizes["train"].ids) - 10_032) < 30 and abs(len(sizes["val"].ids) - 5_032) < 30


def test_short_d2l_run_logs_training_perplexity_and_plots_it_beside_validation(tmp_path, capsys):
    result = train(preset="d2l-rnn", steps=20, out=str(tmp_path / "run"), batch_size=64, quiet=True, sample_tokens=0)
    rows = [json.loads(line) for line in (Path(result.checkpoint) / "metrics.jsonl").read_text().splitlines()]
    assert all(row["train_ppl"] == pytest.approx(math.exp(row["train_loss"])) for row in rows)
    assert rows[-1]["train_ppl"] < 27  # below the uniform guess over 27 symbols
    out = tmp_path / "ppl.png"
    assert main(["plot", result.checkpoint, "--metric", "train_ppl,val_ppl", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [run["run"].split()[-1] for run in document["runs"]] == ["train_ppl", "val_ppl"]
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", result.checkpoint, "--metric", "train_ppl,bogus"]) == 2
