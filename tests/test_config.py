import math

import pytest

from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnkit.errors import ConfigError


@pytest.mark.parametrize(
    "options",
    [
        {"layers": 0},
        {"layers": -1},
        {"hidden": 0},
        {"embed": -1},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"dropout": math.nan},
        {"model": "transformer"},
        {"layers": 2.5},
        {"layers": True},
        {"hidden": "64"},
        {"tie": True, "embed": 0},
        {"tie": True, "embed": 32, "hidden": 64},
    ],
)
def test_model_config_rejects(options):
    with pytest.raises(ConfigError):
        ModelConfig(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"seq_len": -3},
        {"tokenizer": "bytes"},
        {"batching": "shuffled"},
        {"fractions": (0.5, 0.5)},
        {"fractions": (0.8, 0.1, 0.2)},
        {"fractions": (0.0, 0.5, 0.5)},
        {"min_freq": 0},
        {"data": ""},
        {"max_size": 1},
    ],
)
def test_data_config_rejects(options):
    with pytest.raises(ConfigError):
        DataConfig(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"lr": 0},
        {"lr": -1e-3},
        {"lr": math.inf},
        {"clip": 0},
        {"clip": -1.0},
        {"optimizer": "adam9"},
        {"steps": 0},
        {"steps": 10, "epochs": 1},
        {"device": "tpu"},
        {"schedule": "step"},
        {"momentum": 1.0},
    ],
)
def test_train_config_rejects(options):
    with pytest.raises(ConfigError):
        TrainConfig(**options)


def test_valid_configs_round_trip_through_dict():
    config = RunConfig(
        ModelConfig(model="gru", tie=True, embed=128, hidden=128),
        DataConfig(fractions=(0.9, 0.1, 0.0)),
        TrainConfig(clip=None, steps=5),
    )
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert again.data.fractions == (0.9, 0.1, 0.0)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown ModelConfig option"):
        RunConfig.from_dict({"model": {"hiden": 3}})
    with pytest.raises(ConfigError, match="unknown configuration section"):
        RunConfig.from_dict({"optim": {}})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"embed_dropout": 1.0}, "embed_dropout must be in"),
        ({"weight_drop": -0.1}, "weight_drop must be in"),
        ({"dropout_input": math.nan}, "dropout_input must be a finite"),
        ({"dropout_hidden": "0.3"}, "dropout_hidden"),
        ({"dropout_output": 1.5}, "dropout_output must be in"),
        ({"dropout": 0.2, "dropout_hidden": 0.3}, "set one kind"),
    ],
)
def test_regularisers_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ar_alpha": -1.0}, "ar_alpha must be in"),
        ({"tar_beta": math.inf}, "tar_beta must be a finite"),
        ({"nonmono": 0}, "nonmono must be"),
        ({"optimizer": "asgd"}, "optimizer must be one of"),
        ({"preset": ""}, "preset must be"),
        ({"preset_version": 0}, "preset_version must be"),
    ],
)
def test_new_train_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)


def test_old_config_files_load_with_the_new_options_off():
    config = RunConfig(ModelConfig(dropout=0.3), DataConfig(), TrainConfig(optimizer="sgd")).to_dict()
    for name in ("embed_dropout", "dropout_input", "dropout_hidden", "dropout_output", "weight_drop"):
        del config["model"][name]
    for name in ("ar_alpha", "tar_beta", "nonmono", "preset", "preset_version"):
        del config["train"][name]
    old = RunConfig.from_dict(config)
    assert old.model.dropout == 0.3 and not old.model.regularized
    assert (old.train.ar_alpha, old.train.tar_beta, old.train.preset) == (0.0, 0.0, None)
    assert ModelConfig(dropout=0.3, weight_drop=0.5, embed_dropout=0.1).regularized  # standard dropout mixes with these


def test_public_validators_name_the_option_and_the_bound():
    from rnnkit.config import check_bool, check_choice, check_float, check_int

    check_int("n", None, 1, allow_none=True)
    check_float("x", 0.5, 0.0, 1.0)
    with pytest.raises(ConfigError, match=r"n must be between 1 and 9, got 10"):
        check_int("n", 10, 1, 9)
    with pytest.raises(ConfigError, match="n must be an integer"):
        check_int("n", True)
    with pytest.raises(ConfigError, match="budget must be a positive number, got 0"):
        check_float("budget", 0, 0.0, low_open=True)
    with pytest.raises(ConfigError, match=r"x must be in \[0.0, 1.0\), got 1.0"):
        check_float("x", 1.0, 0.0, 1.0, high_open=True)
    with pytest.raises(ConfigError, match="finite"):
        check_float("x", math.inf, 0.0)
    with pytest.raises(ConfigError, match="one of a, b"):
        check_choice("c", "z", ("a", "b"))
    with pytest.raises(ConfigError, match="true or false"):
        check_bool("flag", 1)


@pytest.mark.parametrize(
    "module, name, options, message",
    [
        ("compare", "NeuralOptions", {"hidden": 0}, "hidden must be between"),
        ("compare", "NeuralOptions", {"device": "tpu"}, "device must be one of"),
        ("cloze", "ClozeOptions", {"lr": 0.0}, "lr must be a positive number"),
        ("cloze", "ClozeOptions", {"steps": 0}, "steps must be between"),
        ("diagnostics", "GradientOptions", {"seq_len": 0}, "seq_len must be between"),
        ("bench", "BenchOptions", {"seconds_per_repeat": math.nan}, "seconds_per_repeat must be a finite"),
    ],
)
def test_every_options_dataclass_checks_itself_on_construction(module, name, options, message):
    import importlib

    kind = getattr(importlib.import_module(f"rnnkit.studies.{module}"), name)
    kind()  # the defaults are valid
    with pytest.raises(ConfigError, match=message):
        kind(**options)


def test_overrides_and_the_resume_policy_live_in_the_config_layer():
    from rnnkit.config import RESUME_OPTIONS, resume_config, with_overrides

    config = with_overrides(RunConfig(train=TrainConfig(epochs=3)), {"steps": 50, "hidden": 32})
    assert (config.train.steps, config.train.epochs, config.model.hidden) == (50, None, 32)
    with pytest.raises(ConfigError, match="unknown option 'hiden'"):
        with_overrides(config, {"hiden": 3})
    resumed = resume_config(config, {"steps": 80, "hidden": 32, "quiet": True})  # hidden unchanged: fine
    assert (resumed.train.steps, resumed.train.quiet) == (80, True) and "steps" in RESUME_OPTIONS
    with pytest.raises(ConfigError, match="cannot change hidden"):
        resume_config(config, {"hidden": 64})
