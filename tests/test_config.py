import math

import pytest

from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnkit.errors import ConfigError


@pytest.mark.parametrize("options", [
    {"layers": 0}, {"layers": -1}, {"hidden": 0}, {"embed": -1}, {"dropout": 1.0}, {"dropout": -0.1},
    {"dropout": math.nan}, {"model": "transformer"}, {"layers": 2.5}, {"layers": True}, {"hidden": "64"},
    {"tie": True, "embed": 0}, {"tie": True, "embed": 32, "hidden": 64},
])
def test_model_config_rejects(options):
    with pytest.raises(ConfigError):
        ModelConfig(**options)


@pytest.mark.parametrize("options", [
    {"batch_size": 0}, {"seq_len": -3}, {"tokenizer": "bytes"}, {"batching": "shuffled"},
    {"split": (0.5, 0.5)}, {"split": (0.8, 0.1, 0.2)}, {"split": (0.0, 0.5, 0.5)}, {"min_freq": 0},
    {"data": ""}, {"max_size": 1},
])
def test_data_config_rejects(options):
    with pytest.raises(ConfigError):
        DataConfig(**options)


@pytest.mark.parametrize("options", [
    {"lr": 0}, {"lr": -1e-3}, {"lr": math.inf}, {"clip": 0}, {"clip": -1.0}, {"optimizer": "adam9"},
    {"steps": 0}, {"steps": 10, "epochs": 1}, {"device": "tpu"}, {"schedule": "step"}, {"momentum": 1.0},
])
def test_train_config_rejects(options):
    with pytest.raises(ConfigError):
        TrainConfig(**options)


def test_valid_configs_round_trip_through_dict():
    config = RunConfig(ModelConfig(model="gru", tie=True, embed=128, hidden=128),
                       DataConfig(split=(0.9, 0.1, 0.0)), TrainConfig(clip=None, steps=5))
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert again.data.split == (0.9, 0.1, 0.0)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown ModelConfig option"):
        RunConfig.from_dict({"model": {"hiden": 3}})
    with pytest.raises(ConfigError, match="unknown configuration section"):
        RunConfig.from_dict({"optim": {}})
