"""Data parallelism: torchrun with 2 CPU processes (gloo) matches one process with the same global
batch, and a run resumes with another number of processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.distributed import World, world_from_env
from rnnkit.errors import ConfigError

ARGS = [
    "--data",
    "toy",
    "--tokenizer",
    "word",
    "--layers",
    "2",
    "--hidden",
    "32",
    "--embed",
    "16",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--log-interval",
    "5",
    "--eval-interval",
    "10",
    "--lr",
    "0.01",
    "--dropout",
    "0",
    "--schedule",
    "constant",
    "--device",
    "cpu",
    "--sample-tokens",
    "0",
    "--quiet",
]


def run(args, processes=1, port=29533):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(port)]
        if processes > 1
        else [sys.executable]
    )
    proc = subprocess.run(
        launcher + ["-m", "rnnkit", "train", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def losses(run_dir: Path):
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in map(json.loads, open(run_dir / "metrics.jsonl"))]


def assert_close(a, b):
    assert [row[0] for row in a] == [row[0] for row in b]
    for (_, la, va), (_, lb, vb) in zip(a, b, strict=True):
        assert la == pytest.approx(lb, rel=1e-5)
        assert (va is None) == (vb is None) and (va is None or va == pytest.approx(vb, rel=1e-5))


def test_two_processes_match_one_and_resume_with_one(tmp_path):
    single = tmp_path / "single"
    run(ARGS + ["--steps", "30", "--out", str(single)])
    pair = tmp_path / "pair"
    proc = run(ARGS + ["--steps", "20", "--out", str(pair)], processes=2)
    assert proc.stdout.count("trained 20 steps") == 1  # only rank 0 reports
    assert_close(losses(pair), losses(single)[:4])
    run(["--resume", str(pair), "--steps", "30", "--quiet"])  # one process continues the two-process run
    assert_close(losses(pair), losses(single))


def test_each_rank_takes_its_share_of_the_global_batch(monkeypatch):
    # the cheap variant of the torchrun test below: the same check, without starting processes
    assert [World(rank, 2).rows(8) for rank in (0, 1)] == [slice(0, 4), slice(4, 8)]
    assert World().rows(3) == slice(0, 3)
    with pytest.raises(ConfigError, match="--batch-size 3 must divide evenly among 2 processes"):
        World(1, 2).rows(3)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_env() == World(1, 2, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert world_from_env() == World() and not World().active


@pytest.mark.slow  # torchrun starts three processes (about 15 s on 2 busy cores)
def test_batch_must_divide_among_processes(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29534",
            "-m",
            "rnnkit",
            "train",
            *ARGS,
            "--batch-size",
            "3",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "odd"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "must divide evenly among 2 processes" in proc.stderr
