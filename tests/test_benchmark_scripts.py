"""The benchmark scripts still run (a tiny configuration; their figures are not checked here)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import rnnkit

ROOT = Path(__file__).resolve().parents[1]


def test_prepare_speed_reports_every_row():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prepare_speed.py"), "--copies", "1",
                           "--runs", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["what"] for row in rows] == [
        "word scanner, english (ASCII)", "word scanner, curly apostrophes", "word scanner, accented e",
        "word scanner, Cyrillic letters", "prepare --tokenizer char", "prepare --tokenizer word"]
    assert all(row["MB/s"] > 0 for row in rows)


def test_prompt_context_scores_both_ways(tiny):
    """Timemachine has newlines to start lines from; the script reads the run's own split."""
    run = rnnkit.train(tiny(tokenizer="char", data="timemachine", steps=5)).checkpoint
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prompt_context.py"), str(run), "--lines", "5"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"5 lines, 150 tokens scored: from a zero state \d+\.\d{4} nats/token; "
                        r"after a newline \d+\.\d{4}\n", done.stdout)


def test_threads_script_reports_each_thread_count():
    extra = "--data toy --tokenizer word --layers 1 --hidden 8 --embed 4 --batch-size 4 --seq-len 8 --device cpu"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "threads.py"), "--threads", "1", "--rounds", "1",
                           "--steps", "2", "--extra", extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["threads"], row["steps"]) for row in rows] == [(1, 2)] and rows[0]["tokens_per_s"] > 0
