"""The benchmark scripts still run (a tiny configuration; their figures are not checked here)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rnnkit

ROOT = Path(__file__).resolve().parents[1]


def test_prepare_speed_reports_every_row():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prepare_speed.py"), "--copies", "1", "--runs", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["what"] for row in rows] == [
        "word scanner, english (ASCII)",
        "word scanner, curly apostrophes",
        "word scanner, accented e",
        "word scanner, Cyrillic letters",
        "prepare --tokenizer char",
        "prepare --tokenizer word",
    ]
    assert all(row["MB/s"] > 0 for row in rows)


def test_prompt_context_scores_both_ways(tiny):
    """Timemachine has newlines to start lines from; the script reads the run's own split."""
    run = rnnkit.train(tiny(tokenizer="char", data="timemachine", steps=5)).checkpoint
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prompt_context.py"), str(run), "--lines", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"5 lines, 150 tokens scored: from a zero state \d+\.\d{4} nats/token; "
        r"after a newline \d+\.\d{4}\n",
        done.stdout,
    )


def test_threads_script_reports_each_thread_count():
    extra = "--data toy --tokenizer word --layers 1 --hidden 8 --embed 4 --batch-size 4 --seq-len 8 --device cpu"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "threads.py"),
            "--threads",
            "1",
            "--rounds",
            "1",
            "--steps",
            "2",
            "--extra",
            extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["threads"], row["steps"]) for row in rows] == [(1, 2)] and rows[0]["tokens_per_s"] > 0


def _cold_start_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cold_start", ROOT / "benchmarks" / "cold_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cold_start_compares_the_greedy_paths_in_process(tiny):
    """The greedy comparison itself (the script's own run starts torch in fresh processes: slow)."""
    cold_start = _cold_start_script()
    run = rnnkit.train(tiny(tokenizer="char", data="timemachine", steps=5)).checkpoint
    numpy_lm, torch_lm = rnnkit.load(run, engine="numpy"), rnnkit.load(run, engine="torch")
    prompts = cold_start.validation_prompts(numpy_lm, 3)
    assert len(prompts) == 3 and all(0 < len(p) <= 40 for p in prompts)
    found = cold_start.greedy_divergence(numpy_lm.scorer, torch_lm.scorer, cold_start.prompt_ids(numpy_lm, prompts), 7)
    assert found["prompts"] == 3 and found["tokens"] == 21
    assert found["paths_differing"] == len(found["first_difference_steps"]) <= 3
    assert 0 <= found["argmax_disagreements"] <= 21 and 0 <= found["max_abs_logprob_difference"] < 1e-3
    same = cold_start.greedy_divergence(numpy_lm.scorer, numpy_lm.scorer, cold_start.prompt_ids(numpy_lm, prompts), 7)
    assert same["paths_differing"] == same["argmax_disagreements"] == same["max_abs_logprob_difference"] == 0
    assert cold_start.per_token_ms(numpy_lm.scorer, cold_start.prompt_ids(numpy_lm, prompts)[0], 3, repeats=1) > 0


@pytest.mark.slow  # fresh processes, two of them importing torch (about 10 s on 2 busy cores)
def test_cold_start_reports_the_ratio_and_the_divergence(tiny):
    run = rnnkit.train(tiny(tokenizer="char", data="timemachine", steps=5)).checkpoint
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cold_start.py"),
            str(run),
            "--rounds",
            "1",
            "--tokens",
            "5",
            "--prompts",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"},
    )  # `auto` means the CPU here
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"1 rounds, medians: python -c pass \d+\.\d{3} s \| python -c 'import torch' \d+\.\d{3} s "
        r"\| rnnkit generate --max-new-tokens 5 \d+\.\d{3} s",
        lines[0],
    )
    assert re.fullmatch(
        r"generate / import torch: \d+\.\d\d \(medians\), \d+\.\d\d \(median of per-round ratios\); "
        r"generate imported torch: no",
        lines[1],
    )
    assert lines[2].startswith("greedy, 2 prompts x 5 tokens = 10 tokens: ")
    assert re.fullmatch(
        r"in this process, sampling 5 tokens \(median of 5\): NumPy \d+\.\d{3} ms/token "
        r"\(\d+\.\d{3} with denormals flushed\), torch "
        r"\d+\.\d{3} ms/token \(\w+ OMP threads\)",
        lines[3],
    )
    assert re.match(
        r"reading the torch continuations with both: the likeliest token differs at \d+ of 10 steps", lines[4]
    )
