"""Runs that die or diverge: SIGKILL at random moments, SIGINT/SIGTERM, NaN/inf guard."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.checkpoint import load_checkpoint
from rnnkit.errors import TrainingDiverged
from rnnkit.train import train

TRAIN = [
    sys.executable,
    "-m",
    "rnnkit",
    "train",
    "--data",
    "toy",
    "--tokenizer",
    "word",
    "--layers",
    "1",
    "--hidden",
    "32",
    "--embed",
    "16",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--lr",
    "0.01",
    "--dropout",
    "0.1",
    "--log-interval",
    "1",
    "--eval-interval",
    "25",
    "--save-interval",
    "2",
    "--device",
    "cpu",
    "--quiet",
    "--sample-tokens",
    "0",
]


def env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def losses(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.jsonl") as handle:
        return [(r["step"], r["train_loss"]) for r in map(json.loads, handle)]


def metric_lines(run: Path) -> int:
    try:
        return (run / "metrics.jsonl").read_text().count("\n")
    except FileNotFoundError:
        return 0


def start(run: Path, steps: int) -> subprocess.Popen:
    if (run / "last").is_dir() or list(run.glob(".last.old-*")):
        args = ["--resume", str(run), "--steps", str(steps)]
    else:  # killed before its first checkpoint: start again
        args = ["--steps", str(steps), "--out", str(run), "--overwrite"]
    return subprocess.Popen(TRAIN + args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_during_training(proc: subprocess.Popen, run: Path, rng: random.Random) -> bool:
    """SIGKILL once the run has logged 1-3 more steps, at a random moment within about a step
    (saves happen every 2 steps, so some kills land mid-save). Counting steps rather than time
    bounds the progress between kills: the kills end well before the last step on any machine."""
    target = metric_lines(run) + rng.randint(1, 3)
    deadline = time.monotonic() + 60
    while metric_lines(run) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.03))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def is_complete(run: Path, steps: int) -> bool:
    return (run / "last").is_dir() and load_checkpoint(run, prefer="last").info["step"] == steps


# each kill starts a fresh process (about 2 s of torch import on 2 cores): CI kills twice, the
# slow run twenty times over a longer run
@pytest.mark.parametrize("wanted, steps", [(2, 16), pytest.param(20, 200, marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path, wanted, steps):
    reference = tmp_path / "reference"
    subprocess.run(TRAIN + ["--steps", str(steps), "--out", str(reference)], env=env(), check=True)
    run, rng, kills = tmp_path / "killed", random.Random(1234), 0
    while kills < wanted:
        proc = start(run, steps)
        if not kill_during_training(proc, run, rng):
            assert proc.returncode == 0, proc.stderr.read()
            break  # it finished before the kill; compare what we have
        kills += 1
        if (run / "last").exists() or list(run.glob(".last.old-*")):  # once one was saved,
            newest = load_checkpoint(run, prefer="last")  # the newest complete checkpoint always loads
            assert newest.trainer_state()["step"] >= 2
    if not is_complete(run, steps):  # (the last kill can land after the final save, as the run exits)
        proc = start(run, steps)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills == wanted
    assert losses(run) == losses(reference)  # exactly, step by step
    assert load_checkpoint(run, prefer="last").info["step"] == steps
    assert not list(run.glob(".*.tmp-*"))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_graceful_stop_saves_and_says_how_to_resume(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        TRAIN + ["--steps", "100000", "--save-interval", "100000", "--out", str(run)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while metric_lines(run) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    message = proc.stderr.read()
    assert "--resume" in message and "Traceback" not in message and len(message.strip().splitlines()) == 1
    step = load_checkpoint(run, prefer="last").info["step"]
    assert step >= 3
    resumed = train(resume=run, steps=step + 4, quiet=True)
    assert resumed.steps == step + 4


def test_real_divergence_is_reported_with_step_and_lr(tiny):
    config = tiny("boom", model="rnn_relu", optimizer="sgd", lr=900.0, clip=None, momentum=0.0, steps=50)
    with pytest.raises(TrainingDiverged, match=r"step \d+ \(learning rate 900\)"):
        train(config)


def poison_step(monkeypatch, engine_class, bad_steps):
    """Make the engine's loss NaN at the given (1-based) steps, as a diverging model would."""
    original, calls = engine_class.step, {"n": 0}

    def step(self, x, y, state, lr, skip_nonfinite=False):
        calls["n"] += 1
        if calls["n"] in bad_steps:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return original(self, x, y, state, lr, skip_nonfinite)

    monkeypatch.setattr(engine_class, "step", step)


def test_on_nan_skip_skips_the_update(tiny, monkeypatch):
    from rnnkit.models.torch_lm import RNNLM

    original, calls = RNNLM.forward, {"train": 0}

    def forward(self, idx, targets=None, state=None):
        logits, loss, state = original(self, idx, targets, state)
        if self.training:
            calls["train"] += 1
            if calls["train"] == 7:  # a NaN loss (and NaN gradients) at step 7 only
                loss = loss * float("nan")
        return logits, loss, state

    monkeypatch.setattr(RNNLM, "forward", forward)
    messages = []
    result = train(tiny("skip", steps=20, on_nan="skip"), log=messages.append)
    assert result.steps == 20 and math_finite(result.val_loss)  # the weights never saw the NaN
    assert [m for m in messages if "non-finite" in m] == [
        next(m for m in messages if m.startswith("step 7: non-finite") and "skipped" in m)
    ]
    assert all(math_finite(loss) for _, loss in losses(Path(result.checkpoint)))


def test_on_nan_skip_with_a_real_nan_gradient(tiny):
    # lr so large that the relu RNN overflows; skip keeps the weights finite and the run alive
    messages = []
    result = train(
        tiny(
            "skip-real", model="rnn_relu", optimizer="sgd", lr=900.0, clip=None, momentum=0.0, steps=30, on_nan="skip"
        ),
        log=messages.append,
    )
    assert result.steps == 30
    assert any("skipped" in m for m in messages)


def test_on_nan_rollback_reloads_and_halves_the_lr(tiny, monkeypatch):
    from rnnkit.engines import TorchEngine

    poison_step(monkeypatch, TorchEngine, {13})
    messages = []
    result = train(tiny("rollback", steps=30, on_nan="rollback", save_interval=5), log=messages.append)
    assert result.steps == 30 and math_finite(result.val_loss)
    assert any("step 13" in m and "rolled back to step 10" in m for m in messages)
    rows = json.loads((Path(result.checkpoint) / "last" / "config.json").read_text())
    assert rows["step"] == 30
    state = load_checkpoint(result.checkpoint, prefer="last").trainer_state()
    assert state["scheduler"]["lr_scale"] == 0.5


def test_on_nan_rollback_without_a_checkpoint_stops(tiny, monkeypatch):
    from rnnkit.engines import TorchEngine

    poison_step(monkeypatch, TorchEngine, {2})
    with pytest.raises(TrainingDiverged, match="no checkpoint to roll back to"):
        train(tiny("early", steps=30, on_nan="rollback", save_interval=5))


def math_finite(value: float) -> bool:
    import math

    return math.isfinite(value)
