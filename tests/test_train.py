import dataclasses
import json
import math
from pathlib import Path

import pytest

from rnnkit.checkpoint import load_checkpoint
from rnnkit.config import ModelConfig, RunConfig, TrainConfig
from rnnkit.errors import ConfigError, DataError, OutputExistsError
from rnnkit.train import learning_rate, train


def metrics(run_dir):
    with open(Path(run_dir) / "metrics.jsonl") as handle:
        return [json.loads(line) for line in handle]


def losses(run_dir):
    return [(m["step"], m["train_loss"]) for m in metrics(run_dir)]


def with_model(config, **model):
    return RunConfig(dataclasses.replace(config.model, **model), config.data, config.train)


def test_same_seed_same_losses_and_other_seed_differs(tiny):
    a, b = train(tiny("a")), train(tiny("b"))
    c = train(tiny("c", seed=8))
    assert losses(a.checkpoint) == losses(b.checkpoint)
    assert losses(a.checkpoint) != losses(c.checkpoint)
    assert len(losses(a.checkpoint)) == 6


@pytest.mark.parametrize("batching", ["sequential", "random"])
def test_resume_equals_uninterrupted(tiny, batching):
    def config(name, steps):
        base = tiny(name, steps=steps, schedule="cosine", warmup_steps=5, decay_steps=30, eval_interval=10)
        base = with_model(base, dropout=0.2, layers=2)  # dropout: the RNG state must resume too
        return RunConfig(base.model, dataclasses.replace(base.data, batching=batching), base.train)

    whole = train(config("whole", 30))
    part = train(config("part", 20))
    resumed = train(resume=part.checkpoint, steps=30, quiet=True)
    assert resumed.steps == 30
    assert losses(resumed.checkpoint) == losses(whole.checkpoint)  # exact, not approximate
    assert resumed.val_loss == whole.val_loss


def test_resume_without_more_steps_is_refused(tiny):
    done = train(tiny("done", steps=10))
    with pytest.raises(ConfigError, match="step 10 already"):
        train(resume=done.checkpoint, quiet=True)
    with pytest.raises(ConfigError, match="cannot change lr"):
        train(resume=done.checkpoint, steps=20, lr=0.5)


def test_best_checkpoint_holds_the_lowest_validation_loss(tiny):
    result = train(tiny("best", steps=40, lr=0.05))
    val = [m["val_loss"] for m in metrics(result.checkpoint) if "val_loss" in m]
    best = load_checkpoint(result.checkpoint, prefer="best")
    assert best.info["val_loss"] == min(val) == result.best_val_loss
    last = load_checkpoint(result.checkpoint, prefer="last")
    assert last.info["step"] == 40 and last.path.name == "last"


def test_metrics_have_the_promised_fields(tiny):
    result = train(tiny("fields", steps=10, clip=None, optimizer="sgd", lr=0.5))
    rows = metrics(result.checkpoint)
    assert [r["step"] for r in rows] == [5, 10]
    for key in ("step", "train_loss", "lr", "grad_norm", "grad_norm_max", "tokens_per_s"):
        assert all(math.isfinite(r[key]) for r in rows) and key in rows[-1]
    assert "val_loss" in rows[-1] and "val_loss" not in rows[0]
    assert result.tokens_per_s > 0 and result.seconds > 0


def test_clipping_bounds_the_update_norm(tiny):
    # with a huge lr and no clipping the loss blows up; clipping keeps the run finite
    clipped = train(tiny("clip", steps=10, lr=1.0, clip=0.01))
    assert all(math.isfinite(loss) for _, loss in losses(clipped.checkpoint))


def test_epochs_count_passes_over_the_training_split(tiny):
    result = train(tiny("epochs", steps=None, epochs=2))
    windows = (result.sizes["train"] - 1) // 4 // 8
    assert result.steps == 2 * windows


def test_existing_output_is_never_overwritten_without_permission(tiny, tmp_path):
    train(tiny("same", steps=5))
    with pytest.raises(OutputExistsError):
        train(tiny("same", steps=5))
    train(tiny("same", steps=5, overwrite=True))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(OutputExistsError, match="not an rnnkit output directory"):
        train(tiny("precious", steps=5, overwrite=True))
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_resume_on_changed_data_is_refused(tiny, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("one two three four five six seven " * 40)
    config = tiny("changing", steps=5, )
    config = RunConfig(config.model, dataclasses.replace(config.data, data=str(data)), config.train)
    result = train(config)
    data.write_text("seven six five four three two one " * 40)
    with pytest.raises(DataError, match="differs"):
        train(resume=result.checkpoint, steps=10, quiet=True)


def test_corpus_shorter_than_one_batch_is_a_data_error(tiny, text_file):
    config = tiny("short")
    config = RunConfig(config.model, dataclasses.replace(config.data, data=str(text_file("a b c d e f " * 20)),
                                                       batch_size=16),
                       config.train)
    with pytest.raises(DataError, match="too short"):
        train(config)


def test_learning_rate_schedule():
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    assert learning_rate(config, 0, 100) == pytest.approx(0.1)
    assert learning_rate(config, 9, 100) == pytest.approx(1.0)
    assert learning_rate(config, 55, 100) == pytest.approx(0.55)
    assert learning_rate(config, 100, 100) == pytest.approx(0.1)
    assert learning_rate(TrainConfig(lr=0.3, schedule="constant"), 77, 100) == 0.3


@pytest.mark.parametrize("model", ["rnn", "rnn_relu", "gru", "lstm"])
def test_each_model_trains_on_toy_words(tiny, model):
    result = train(tiny(f"fit-{model}", model=model, steps=60, lr=0.02))
    assert result.val_loss < 0.3  # the toy text is one repeated sentence


def test_untied_one_hot_and_tied_models_train(tiny):
    one_hot = with_model(tiny("onehot", steps=20), embed=0)
    tied = with_model(tiny("tied", steps=20), embed=32, tie=True)
    for config in (one_hot, tied):
        result = train(config)
        assert result.val_loss < 2.0
    assert isinstance(ModelConfig(), ModelConfig)


def test_time_budget_stops_early_and_saves(tiny):
    result = train(tiny("budget", steps=100_000, max_seconds=1.0, eval_interval=100_000))
    assert 0 < result.steps < 100_000
    assert metrics(result.checkpoint)[-1]["step"] == result.steps
    assert load_checkpoint(result.checkpoint, prefer="last").info["step"] == result.steps


def test_resume_accepts_the_original_options_repeated(tiny):
    config = tiny("repeat", steps=10)
    done = train(config)
    result = train(resume=done.checkpoint, steps=15, quiet=True, lr=config.train.lr,
                   hidden=config.model.hidden, data=config.data.data, split=list(config.data.split))
    assert result.steps == 15


def test_grad_norm_max_is_the_largest_single_step(tiny):
    result = train(tiny("spikes", steps=10, log_interval=10, eval_interval=10, clip=None))
    row = metrics(result.checkpoint)[-1]
    assert row["grad_norm_max"] >= row["grad_norm"] > 0


def test_epochs_override_replaces_steps(tiny):
    result = train(tiny("ep", steps=5), epochs=1)
    assert result.steps == (result.sizes["train"] - 1) // 4 // 8
