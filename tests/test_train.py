import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.checkpoint import load_checkpoint
from rnnkit.config import ModelConfig, RunConfig, TrainConfig
from rnnkit.engines import make_engine
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


def one_sgd_update(engine_name: str, clip: float | None, lr: float) -> tuple[float, float]:
    """(raw gradient norm, norm of the weight change) of one plain-SGD step from a fixed start."""
    torch.manual_seed(3)
    model = ModelConfig(model="lstm", layers=1, hidden=16, embed=8, vocab_size=11, engine=engine_name)
    train_config = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, clip=clip, lr=lr, seed=3)
    engine = make_engine(model, train_config, torch.device("cpu"), amp=False)
    before = {name: w.clone() for name, w in engine.weights().items()}
    x = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(6))
    _, grad_norm, _ = engine.step(x, y, None, lr)
    after = engine.weights()
    update = math.sqrt(sum(float(((after[name] - w).double() ** 2).sum()) for name, w in before.items()))
    return float(grad_norm), update


@pytest.mark.parametrize("engine_name", ["torch", "numpy"])
def test_clipping_bounds_the_update_norm(engine_name):
    # plain SGD moves the weights by lr * g, so the update's norm shows the clipping (AdamW would
    # move each weight by about lr whatever the gradient's size); the unclipped control, from the
    # same weights on the same batch, shows the gradient really was over the bound
    lr, clip = 0.5, 0.02
    raw, clipped_update = one_sgd_update(engine_name, clip, lr)
    control_raw, control_update = one_sgd_update(engine_name, None, lr)
    assert raw > 4 * clip and control_raw == pytest.approx(raw, rel=1e-5)  # the clip must bite
    assert clipped_update <= lr * clip * (1 + 1e-4)
    assert clipped_update == pytest.approx(lr * clip, rel=1e-3)  # scaled to the bound, not zeroed
    assert control_update > 4 * lr * clip
    assert control_update == pytest.approx(lr * control_raw, rel=1e-3)


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
    config = tiny(
        "changing",
        steps=5,
    )
    config = RunConfig(config.model, dataclasses.replace(config.data, data=str(data)), config.train)
    result = train(config)
    data.write_text("seven six five four three two one " * 40)
    with pytest.raises(DataError, match="differs"):
        train(resume=result.checkpoint, steps=10, quiet=True)


def test_corpus_shorter_than_one_batch_is_a_data_error(tiny, text_file):
    config = tiny("short")
    config = RunConfig(
        config.model,
        dataclasses.replace(config.data, data=str(text_file("a b c d e f " * 20)), batch_size=16),
        config.train,
    )
    with pytest.raises(DataError, match="too short"):
        train(config)


def test_learning_rate_schedule():
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    assert learning_rate(config, 0, 100) == pytest.approx(0.1)
    assert learning_rate(config, 9, 100) == pytest.approx(1.0)
    assert learning_rate(config, 55, 100) == pytest.approx(0.55)
    assert learning_rate(config, 100, 100) == pytest.approx(0.1)
    assert learning_rate(TrainConfig(lr=0.3, schedule="constant"), 77, 100) == 0.3


def test_learning_rate_scale_and_decay_horizon():
    """The rollback scale multiplies the schedule; decay_steps, not the run's length, sets the
    cosine horizon (after which the rate holds its floor)."""
    config = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    assert learning_rate(config, 55, 100, scale=0.25) == pytest.approx(0.55 * 0.25)
    assert learning_rate(TrainConfig(lr=0.3, schedule="constant"), 5, 10, scale=0.5) == pytest.approx(0.15)
    short = TrainConfig(lr=1.0, warmup_steps=0, min_lr_ratio=0.1, schedule="cosine", decay_steps=20)
    assert learning_rate(short, 10, 1000) == pytest.approx(0.55)
    assert learning_rate(short, 500, 1000) == pytest.approx(0.1)


def test_trainer_rates_are_the_schedule_times_the_scale(tiny):
    """Trainer.lr_at (the rate logged, the rate of a NaN report and the rate used) is one function."""
    from rnnkit.train import Trainer

    config = tiny("rates", schedule="cosine", warmup_steps=4, steps=40)
    trainer = Trainer(config, log=lambda _message: None)
    trainer.lr_scale = 0.5
    assert trainer.lr_at(3) == pytest.approx(0.5 * learning_rate(config.train, 3, 40))
    assert trainer.lr() == trainer.lr_at(0)
    assert trainer.first_bad_step() == -1 and trainer.reads_divergence_every_step  # CPU: read every step
    assert trainer.config.model.vocab_size == len(trainer.tokenizer) and config.model.vocab_size == 0


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
    result = train(
        resume=done.checkpoint,
        steps=15,
        quiet=True,
        lr=config.train.lr,
        hidden=config.model.hidden,
        data=config.data.data,
        fractions=list(config.data.fractions),
    )
    assert result.steps == 15


def test_grad_norm_max_is_the_largest_single_step(tiny):
    result = train(tiny("spikes", steps=10, log_interval=10, eval_interval=10, clip=None))
    row = metrics(result.checkpoint)[-1]
    assert row["grad_norm_max"] >= row["grad_norm"] > 0


def test_epochs_override_replaces_steps(tiny):
    result = train(tiny("ep", steps=5), epochs=1)
    assert result.steps == (result.sizes["train"] - 1) // 4 // 8


# --- AWD-LSTM regularisation and NT-ASGD ---

AWD = {
    "layers": 2,
    "embed_dropout": 0.1,
    "dropout_input": 0.1,
    "dropout_hidden": 0.1,
    "dropout_output": 0.1,
    "weight_drop": 0.2,
}


def ntasgd_config(tiny, name, steps):
    """SGD at a high rate so that validation stalls (and averaging starts) by step 14 of 30."""
    base = tiny(name, steps=steps, optimizer="ntasgd", lr=2.0, eval_interval=2, nonmono=2, ar_alpha=1.0, tar_beta=1.0)
    return with_model(base, **AWD)  # every mask's RNG must resume too


def test_nonmonotone_trigger_follows_algorithm_1():
    from rnnkit.train import nonmonotone_trigger

    assert not nonmonotone_trigger([5.0, 4.0, 3.0, 2.0], nonmono=2)  # improving
    assert not nonmonotone_trigger([5.0, 4.0, 4.5], nonmono=2)  # t = 2 evaluations before: not > n
    assert nonmonotone_trigger([5.0, 4.0, 3.0, 3.5, 4.5], nonmono=2)  # 4.5 > min(5, 4)
    assert not nonmonotone_trigger([5.0, 4.0, 3.0, 3.5, 3.9], nonmono=2)  # 3.9 beats 4, the best before the last 2
    assert nonmonotone_trigger([5.0, 4.0, 3.0, 3.5, 3.9], nonmono=1)  # 3.9 > min(5, 4, 3)


@pytest.mark.parametrize("split", [10, 20])  # before the switch (history resumes), after (the average does)
def test_ntasgd_averages_after_the_trigger_and_resumes_exactly(tiny, split):
    from safetensors.torch import load_file

    whole = train(ntasgd_config(tiny, "whole", 30))
    part = train(ntasgd_config(tiny, "part", split))
    state = load_checkpoint(part.checkpoint, prefer="last").trainer_state()
    if split == 10:
        assert state["engine"]["average"] is None and len(state["val_history"]) == 5
    else:
        assert state["engine"]["average"]["count"] > 1  # switched, and averaging
        saved = load_file(str(Path(part.checkpoint) / "last" / "model.safetensors"))
        trained = state["engine"]["average"]["trained_weights"]
        assert saved.keys() == trained.keys()  # canonical names, the averaged weights in the checkpoint
        assert not torch.equal(saved["rnn.weight_hh_l1"], trained["rnn.weight_hh_l1"])
    resumed = train(resume=part.checkpoint, steps=30, quiet=True)
    assert losses(resumed.checkpoint) == losses(whole.checkpoint)  # exact, not approximate
    assert resumed.val_loss == whole.val_loss  # evaluated with the averaged weights, both times
    import rnnkit

    assert rnnkit.load(Path(resumed.checkpoint) / "last", device="cpu").evaluate().loss == pytest.approx(whole.val_loss)


def test_ntasgd_evaluates_and_saves_the_average(tiny):
    from rnnkit.engines import TorchEngine, WeightAverage

    config = with_model(tiny("avg"), layers=2, weight_drop=0.2)
    engine = TorchEngine(
        dataclasses.replace(config.model, vocab_size=9),
        dataclasses.replace(config.train, optimizer="ntasgd"),
        torch.device("cpu"),
        amp=False,
    )
    x = torch.randint(0, 9, (4, 8))
    engine.start_averaging()
    start = {k: v.clone() for k, v in engine.model.state_dict().items()}
    engine.step(x, x, None, lr=0.5)
    now = engine.model.state_dict()
    expected = {k: (start[k] + now[k]) / 2 for k in start}  # the mean of the two iterates
    for name, tensor in engine.weights().items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-7)
    assert engine.scorer().model is engine.average.model and isinstance(engine.average, WeightAverage)
    assert not any(p.requires_grad for p in engine.average.model.parameters())


def test_ar_tar_change_the_update_but_train_loss_logs_the_cross_entropy(tiny):
    from rnnkit.engines import TorchEngine

    model = dataclasses.replace(tiny().model, vocab_size=9)
    x, y = torch.randint(0, 9, (4, 8)), torch.randint(0, 9, (4, 8))
    updated = {}
    for alpha, beta in ((0.0, 0.0), (5.0, 5.0)):
        torch.manual_seed(0)
        engine = TorchEngine(
            model, dataclasses.replace(tiny().train, ar_alpha=alpha, tar_beta=beta), torch.device("cpu"), amp=False
        )
        cross_entropy = engine.model(x, y)[1].item()
        loss, _, _ = engine.step(x, y, None, lr=0.1)
        assert loss.item() == pytest.approx(cross_entropy, rel=1e-6)  # the penalty is not logged
        updated[alpha] = engine.model.rnn.weight_hh_l0.detach().clone()
    assert not torch.allclose(updated[0.0], updated[5.0])  # but it is trained on


def test_regularised_run_evaluates_as_pure_cross_entropy_in_both_engines(tiny):
    import rnnkit

    config = with_model(tiny("awd", steps=10, ar_alpha=2.0, tar_beta=1.0), **AWD)
    result = train(config)
    torch_lm = rnnkit.load(result.checkpoint, device="cpu")
    numpy_lm = rnnkit.load(result.checkpoint, device="cpu", engine="numpy")
    assert torch_lm.evaluate().loss == pytest.approx(result.best_val_loss, rel=1e-9)
    assert numpy_lm.evaluate().loss == pytest.approx(result.best_val_loss, rel=1e-5)


def test_final_tokens_per_s_is_the_run_average(tiny):
    """tokens/s = tokens trained / training seconds, the same clock reading as `seconds`: equal up
    to float rounding (rel 1e-9). A window rate would not be: windows differ, and the last one
    leaves out the time of every earlier evaluation. The wall clock around train() also counts
    data loading and the final sample, so it can only give a lower bound."""
    import time

    started = time.perf_counter()
    result = train(tiny(steps=30, log_interval=5, eval_interval=10))
    wall = time.perf_counter() - started
    tokens = 30 * 4 * 8  # steps x batch size x sequence length (tiny_config)
    assert result.tokens_per_s == pytest.approx(tokens / result.seconds, rel=1e-9)
    assert result.tokens_per_s >= tokens / wall
    resumed = train(resume=result.checkpoint, steps=50, log=lambda _m: None)
    assert resumed.tokens_per_s == pytest.approx(20 * 4 * 8 / (resumed.seconds - result.seconds), rel=1e-9)


def test_options_that_cannot_do_what_was_meant_are_warned_about(tiny):
    from rnnkit.train import config_warnings

    assert config_warnings(RunConfig()) == []
    short = config_warnings(RunConfig(train=TrainConfig(steps=20)))
    assert len(short) == 1 and "fewer than the 50 warmup steps" in short[0] and "peaks at 0.002" in short[0]
    odd = config_warnings(
        RunConfig(
            model=ModelConfig(layers=1, dropout_hidden=0.2),
            train=TrainConfig(
                schedule="constant", warmup_steps=10, momentum=0.5, nonmono=3, steps=100, eval_interval=500
            ),
        )
    )
    assert [w.split()[0] for w in odd] == [
        "--warmup-steps",
        "--momentum",
        "--nonmono",
        "--dropout-hidden",
        "--eval-interval",
    ]
    messages = []
    train(tiny(steps=3, schedule="cosine", warmup_steps=5, quiet=False), log=messages.append)
    assert sum(m.startswith("warning: --steps 3 is fewer than the 5 warmup steps") for m in messages) == 1
