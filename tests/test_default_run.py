"""The default `rnnkit train` configuration, and how its dropout gives way to the locked dropouts."""

from __future__ import annotations

import dataclasses

import pytest

from rnnkit.config import DEFAULT_DROPOUT, DEFAULT_STEPS, ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig


def test_the_default_run_is_the_documented_configuration():
    """README's opening paragraph: 1x512 LSTM, embed 64, dropout 0.25, 1,000 steps of 32x64, lr 5e-3."""
    config = RunConfig()
    assert (config.model.model, config.model.layers, config.model.hidden, config.model.embed) == ("lstm", 1, 512, 64)
    assert config.model.dropout == DEFAULT_DROPOUT == 0.25
    assert (config.data.batch_size, config.data.seq_len, config.data.data) == (32, 64, "timemachine")
    assert (config.train.lr, config.train.schedule, config.train.optimizer) == (5e-3, "cosine", "adamw")
    assert DEFAULT_STEPS == 1000


@pytest.mark.parametrize("locked", ["dropout_input", "dropout_hidden", "dropout_output"])
def test_a_locked_dropout_turns_the_default_dropout_off(locked):
    assert ModelConfig(**{locked: 0.3}).dropout == 0.0


def test_other_regularisers_keep_the_default_dropout():
    assert ModelConfig(weight_drop=0.3, embed_dropout=0.1).dropout == DEFAULT_DROPOUT


def test_an_explicit_dropout_is_kept_and_still_excludes_locked_dropout():
    assert ModelConfig(dropout=0.1).dropout == 0.1 and ModelConfig(dropout=0.0).dropout == 0.0
    with pytest.raises(ConfigError, match="set one kind"):
        ModelConfig(dropout=0.2, dropout_output=0.2)


def test_the_resolved_dropout_is_what_config_json_records():
    saved = RunConfig(ModelConfig(dropout_hidden=0.2), DataConfig(), TrainConfig()).to_dict()
    assert saved["model"]["dropout"] == 0.0
    assert RunConfig.from_dict(saved).model == ModelConfig(dropout_hidden=0.2)
    assert dataclasses.replace(ModelConfig(), hidden=64).dropout == DEFAULT_DROPOUT
