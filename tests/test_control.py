"""Training control: the plateau schedule, early stopping (--patience), --target-loss; all resume exactly."""

import dataclasses
import json
from pathlib import Path

import pytest

from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main
from rnnkit.config import RunConfig, TrainConfig
from rnnkit.errors import ConfigError
from rnnkit.train import Trainer, train


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def evals(run_dir):
    return [(m["step"], m["lr"], m["val_loss"]) for m in metrics(run_dir) if m.get("val_loss") is not None]


def plateau_config(tiny, name, steps, **train):
    # lr 1 on the toy text overshoots within a few evaluations, so the schedule acts in 40 steps
    options = dict(
        steps=steps,
        schedule="plateau",
        plateau_factor=2.0,
        plateau_patience=1,
        plateau_min_lr=0.01,
        lr=1.0,
        eval_interval=4,
        log_interval=2,
    )
    options.update(train)
    return tiny(name, **options)


def test_plateau_divides_the_rate_after_a_stall_and_never_below_the_floor(tiny):
    result = train(plateau_config(tiny, "p", 40))
    rows = evals(result.checkpoint)
    rates = [lr for _, lr, _ in rows]
    assert rates[0] == 1.0 and min(rates) >= 0.01
    assert len(set(rates)) > 1, rows  # it did divide
    best = float("inf")
    for (_, lr, val), (_, next_lr, _) in zip(rows, rows[1:], strict=False):
        # each evaluation without a new best (patience 1) halves the rate of the updates that follow
        assert next_lr == (lr if val < best else max(lr / 2, 0.01)), rows
        best = min(best, val)


def test_plateau_floor_defaults_to_lr_times_min_lr_ratio():
    assert TrainConfig(lr=0.2, min_lr_ratio=0.25).lr_floor == 0.05
    assert TrainConfig(lr=0.2, plateau_min_lr=0.001).lr_floor == 0.001


@pytest.mark.parametrize("split", [12, 24])
def test_plateau_and_patience_resume_exactly(tiny, split):
    whole = train(plateau_config(tiny, "whole", 40, patience=6))
    part = train(plateau_config(tiny, "part", split, patience=6))
    control = load_checkpoint(part.checkpoint, prefer="last").trainer_state()["control"]
    assert set(control) == {"plateau_scale", "plateau_wait", "stale_evals"}
    resumed = train(resume=part.checkpoint, steps=40, quiet=True)
    assert metrics(resumed.checkpoint) == [
        m | {"elapsed_s": n["elapsed_s"], "tokens_per_s": n["tokens_per_s"]}
        for m, n in zip(metrics(whole.checkpoint), metrics(resumed.checkpoint), strict=True)
    ]
    assert resumed.steps == whole.steps and resumed.val_loss == whole.val_loss


def test_patience_stops_and_keeps_the_best(tiny):
    # a rate far too high: validation stops improving soon, then 2 evaluations without a new best end it
    result = train(tiny("stop", steps=200, lr=1.0, eval_interval=4, patience=2))
    assert result.steps < 200
    rows = evals(result.checkpoint)
    best_at = min(range(len(rows)), key=lambda i: rows[i][2])
    assert len(rows) - 1 - best_at == 2  # stopped at the second evaluation after the best
    assert result.best_val_loss == rows[best_at][2]
    best = load_checkpoint(Path(result.checkpoint) / "best")
    assert best.info["step"] == rows[best_at][0]
    last = load_checkpoint(Path(result.checkpoint) / "last", prefer="last")
    assert last.info["step"] == result.steps  # the stopping point is saved too


def test_target_loss_stops_when_reached(tiny):
    first = evals(train(tiny("free", steps=30, eval_interval=5)).checkpoint)
    target = first[2][2]  # the third evaluation's loss: reached at step 15 (or earlier)
    result = train(tiny("target", steps=30, eval_interval=5, target_loss=target))
    assert result.steps <= 15 and result.val_loss <= target
    assert [row[2] for row in evals(result.checkpoint)] == [row[2] for row in first[: len(evals(result.checkpoint))]]


def test_target_loss_and_patience_may_change_on_resume_but_not_the_schedule(tiny):
    part = train(tiny("part", steps=10, eval_interval=5))
    resumed = train(resume=part.checkpoint, steps=20, patience=5, target_loss=0.1, quiet=True)
    assert resumed.steps == 20
    with pytest.raises(ConfigError, match="cannot change schedule"):
        train(resume=part.checkpoint, steps=30, schedule="plateau")


@pytest.mark.parametrize(
    "option, value",
    [
        ("plateau_factor", 1.0),
        ("plateau_patience", 0),
        ("patience", 0),
        ("target_loss", -1.0),
        ("plateau_min_lr", -0.1),
    ],
)
def test_bad_control_options_are_refused(option, value):
    with pytest.raises(ConfigError, match=option):
        TrainConfig(**{option: value})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--patience", "0"], "patience must be"),
        (["--schedule", "step"], "schedule must be one of"),
        (["--plateau-factor", "0.5"], "plateau_factor must be"),
    ],
)
def test_cli_refuses_bad_control_options_in_one_line(args, message, capsys, tmp_path):
    assert main(["train", "--data", "toy", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_patience_stops_early(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            "toy",
            "--tokenizer",
            "word",
            "--model",
            "rnn",
            "--layers",
            "1",
            "--hidden",
            "16",
            "--embed",
            "8",
            "--batch-size",
            "4",
            "--seq-len",
            "8",
            "--lr",
            "1",
            "--steps",
            "300",
            "--eval-interval",
            "5",
            "--patience",
            "1",
            "--schedule",
            "constant",
            "--device",
            "cpu",
            "--sample-tokens",
            "0",
            "--quiet",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["steps"] < 300


def test_trainer_note_progress_counts_stale_evaluations(tiny):
    config = plateau_config(tiny, "n", 10, patience=3, plateau_patience=2)
    trainer = Trainer(config, log=lambda _m: None)
    assert trainer.note_progress(1.0, True) is None
    assert trainer.note_progress(1.1, False) is None and trainer.plateau_scale == 1.0
    assert trainer.note_progress(1.2, False) is None and trainer.plateau_scale == 0.5  # 2 stale: halved
    assert trainer.note_progress(1.3, False).startswith("no new best val loss in 3 evaluations")
    config = RunConfig(config.model, config.data, dataclasses.replace(config.train, target_loss=0.5))
    assert "reached the target" in Trainer(config, log=lambda _m: None).note_progress(0.5, True)
