"""Named configurations: listed by `rnnkit presets`, started from by `train --preset`, overridable."""

import json

import pytest

import rnnkit
from rnnkit.cli import build_parser, main, run_config_from_args
from rnnkit.config import RunConfig
from rnnkit.errors import ConfigError
from rnnkit.presets import PRESETS, get_preset, preset_config

TINY = [
    "--hidden",
    "16",
    "--embed",
    "16",
    "--layers",
    "2",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--steps",
    "4",
    "--eval-interval",
    "2",
    "--eval-max-tokens",
    "200",
    "--max-seconds",
    "60",
    "--sample-tokens",
    "0",
    "--quiet",
]


def config_from_command_line(*args: str) -> RunConfig:
    return run_config_from_args(build_parser().parse_args(["train", *args]))[0]


def test_presets_command_lists_each_preset_with_its_options(capsys):
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == list(PRESETS)
    assert {"shakespeare-char", "shakespeare-char-cpu", "timemachine-word", "shakespeare-word"} <= set(PRESETS)
    for row in rows:
        assert set(row) == {"name", "version", "description", "device", "expected", "options", "args"}
        assert isinstance(row["version"], int) and row["version"] >= 1
        assert row["description"] and row["device"] and row["expected"]
        assert set(row["options"]) <= {"model", "data", "train"} and row["options"]["data"]["data"]
        assert row["args"][0].startswith("--") and all(isinstance(arg, str) for arg in row["args"])
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    assert all(f"{name} (version" in text for name in PRESETS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_a_valid_config_that_records_it(name):
    preset = get_preset(name)
    config = preset_config(name)
    assert (config.train.preset, config.train.preset_version) == (name, preset.version)
    for section, values in preset.sections().items():
        for field, value in values.items():
            got = getattr(getattr(config, section), field)
            assert (tuple(got) == tuple(value)) if isinstance(value, list) else got == value, field
    assert RunConfig.from_dict(config.to_dict()) == config  # what config.json holds loads again


@pytest.mark.parametrize("name", list(PRESETS))
def test_listed_flags_rebuild_the_preset(name, capsys):
    assert main(["presets", "--json"]) == 0
    args = next(row["args"] for row in json.loads(capsys.readouterr().out) if row["name"] == name)
    from_flags = config_from_command_line(*args).to_dict()
    from_preset = preset_config(name).to_dict()
    from_preset["train"].update(preset=None, preset_version=None)
    assert from_flags == from_preset


def test_explicit_options_override_the_preset():
    preset = preset_config("timemachine-word")
    config = config_from_command_line(
        "--preset",
        "timemachine-word",
        "--hidden",
        "64",
        "--embed",
        "64",
        "--no-tie",
        "--dropout-input",
        "0",
        "--epochs",
        "2",
        "--fractions",
        "0.8,0.1,0.1",
    )
    assert (config.model.hidden, config.model.embed, config.model.tie) == (64, 64, False)
    assert config.model.dropout_input == 0.0 and config.data.fractions == (0.8, 0.1, 0.1)
    assert (config.train.epochs, config.train.steps) == (2, None)  # --epochs replaces the preset's steps
    assert config.model.dropout_hidden == preset.model.dropout_hidden  # the rest as the preset says
    assert config.data.tokenizer == "word" and config.data.lowercase and config.train.ar_alpha == preset.train.ar_alpha
    assert config.train.preset == "timemachine-word"


def test_train_with_a_preset_records_it_and_the_overrides(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "timemachine-word", *TINY, "--out", str(run), "--json"]) == 0
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["train"]["preset"] == "timemachine-word"
    assert saved["train"]["preset_version"] == get_preset("timemachine-word").version
    assert saved["model"]["hidden"] == 16 and saved["model"]["weight_drop"] == 0.3 and saved["data"]["lowercase"]
    assert main(["train", "--resume", str(run), "--preset", "shakespeare-word", "--steps", "6"]) == 2
    assert "cannot change preset" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--preset", "timemachine-word", "--steps", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 6


@pytest.mark.parametrize(
    "args", [["train", "--preset", "no-such-preset"], ["train", "--preset", "timemachine-word", "--hidden", "64"]]
)  # tie needs embed 64
def test_bad_preset_use_is_one_line_and_exit_2(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert ("unknown preset" in err and "shakespeare-char" in err) or "embed must equal hidden" in err


def test_python_api_takes_a_preset(tmp_path):
    result = rnnkit.train(
        preset="timemachine-word",
        hidden=16,
        embed=16,
        steps=2,
        eval_interval=2,
        eval_max_tokens=200,
        sample_tokens=0,
        quiet=True,
        out=str(tmp_path / "api"),
    )
    assert rnnkit.load(result.checkpoint, device="cpu").config.train.preset == "timemachine-word"
    with pytest.raises(ConfigError, match="not both"):
        rnnkit.train(preset_config("timemachine-word"), preset="timemachine-word")
    with pytest.raises(ConfigError, match="unknown preset"):
        rnnkit.train(preset="nope")
