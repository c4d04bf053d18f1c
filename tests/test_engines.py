"""The two engines behind one trainer: NumPy-trained checkpoints run in torch and back, exactly."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.config import RunConfig
from rnnkit.errors import ConfigError
from rnnkit.train import train


def numpy_config(config: RunConfig, **model) -> RunConfig:
    return RunConfig(dataclasses.replace(config.model, engine="numpy", **model), config.data, config.train)


def losses(run_dir):
    return [json.loads(line)["train_loss"] for line in open(Path(run_dir) / "metrics.jsonl")]


@pytest.mark.parametrize("trained_by, other", [("numpy", "torch"), ("torch", "numpy")])
@pytest.mark.parametrize("model", ["gru", "lstm"])
def test_checkpoint_runs_in_the_other_engine(tiny, trained_by, other, model):
    config = tiny(f"{trained_by}-{model}", model=model, steps=20)
    if trained_by == "numpy":
        config = numpy_config(config)
    result = train(config)
    mine, theirs = rnnkit.load(result.checkpoint, device="cpu"), rnnkit.load(result.checkpoint, "cpu", engine=other)
    idx = np.array([[1, 2, 3, 4, 5, 1, 2]])
    a, _ = mine.scorer.next_logprobs(idx, mine.scorer.initial_state(1))
    b, _ = theirs.scorer.next_logprobs(idx, theirs.scorer.initial_state(1))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 in both engines
    assert mine.evaluate().loss == pytest.approx(theirs.evaluate().loss, rel=1e-5)


def test_numpy_engine_learns_and_resumes_exactly(tiny):
    def config(name, steps):
        base = tiny(name, steps=steps, schedule="cosine", warmup_steps=3, decay_steps=30)
        return numpy_config(base, dropout=0.1, layers=2)

    whole = train(config("whole", 30))
    part = train(config("part", 20))
    resumed = train(resume=part.checkpoint, steps=30, quiet=True)
    assert losses(resumed.checkpoint) == losses(whole.checkpoint)
    assert whole.val_loss < 1.0


def test_numpy_engine_refuses_torch_only_options(tiny):
    with pytest.raises(ConfigError, match="torch-engine option"):
        numpy_config(RunConfig(train=dataclasses.replace(tiny().train, amp=True)))
    with pytest.raises(ConfigError, match="CPU"):
        numpy_config(RunConfig(train=dataclasses.replace(tiny().train, device="cuda")))


@pytest.mark.parametrize(
    "section, option, value",
    [
        ("model", "embed_dropout", 0.1),
        ("model", "dropout_input", 0.1),
        ("model", "dropout_hidden", 0.1),
        ("model", "dropout_output", 0.1),
        ("model", "weight_drop", 0.1),
        ("train", "ar_alpha", 2.0),
        ("train", "tar_beta", 1.0),
        ("train", "optimizer", "ntasgd"),
    ],
)
def test_numpy_engine_refuses_awd_lstm_options(tiny, section, option, value):
    config = tiny()
    model = dataclasses.replace(config.model, engine="numpy", **({option: value} if section == "model" else {}))
    train_config = dataclasses.replace(config.train, **({option: value} if section == "train" else {}))
    with pytest.raises(ConfigError, match="--" + option.replace("_", "-") + r".*torch-engine option"):
        RunConfig(model, config.data, train_config)
    RunConfig(dataclasses.replace(model, engine="torch"), config.data, train_config)  # fine in torch


def test_weight_averaging_is_a_declared_torch_only_capability():
    import torch

    from rnnkit.config import ModelConfig, TrainConfig
    from rnnkit.engines import NumpyEngine, TorchEngine, make_engine

    model, train_config = ModelConfig(model="gru", layers=1, hidden=8, embed=4, vocab_size=7), TrainConfig()
    torch_engine = make_engine(model, train_config, torch.device("cpu"), amp=False)
    numpy_engine = make_engine(dataclasses.replace(model, engine="numpy"), train_config, torch.device("cpu"), False)
    assert isinstance(torch_engine, TorchEngine) and isinstance(numpy_engine, NumpyEngine)
    assert torch_engine.supports_averaging and not torch_engine.averaging
    torch_engine.start_averaging()
    assert torch_engine.averaging
    assert not numpy_engine.supports_averaging and not numpy_engine.averaging
    with pytest.raises(ConfigError, match="torch-engine"):
        numpy_engine.start_averaging()
