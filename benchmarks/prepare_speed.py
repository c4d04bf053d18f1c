"""Throughput of `rnnkit prepare` (char and word) and of the word scanner against the regex.

1. prepare: the bundled tinyshakespeare repeated COPIES times (30: 33.5 MB) is written to a
   temporary file and prepared RUNS times per tokenizer by `rnnkit prepare` in a fresh process;
   the figure is MB of text per second as the command prints it (from the call of prepare() to
   its return, worker processes included), median of the runs, and the whole command's median
   wall time (Python's start-up included).
2. word scanner: 2 MB of the same text, and three variants of it that are not ASCII (curly
   apostrophes, accented e, Cyrillic letters), turned into (distinct tokens, index of every
   token) by rnnkit.text.wordscan and by the plain way: WORD_PATTERN.findall, then one dict lookup
   per token. Median of RUNS, one core, ratio per variant in the same run.

    PYTHONPATH=src python benchmarks/prepare_speed.py
    PYTHONPATH=src python benchmarks/prepare_speed.py --copies 10 --runs 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import rnnkit
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import rnnkit
from rnnkit.text.corpora import bundled_text
from rnnkit.text.wordscan import WORD_PATTERN, FirstSeen, word_types

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
CYRILLIC = "абвгдежзийклмнопрстуфхцчшщАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩ"
VARIANTS = {
    "english (ASCII)": lambda text: text,
    "curly apostrophes": lambda text: text.replace("'", "’"),
    "accented e": lambda text: text.replace("e", "é"),
    "Cyrillic letters": lambda text: text.translate(str.maketrans(LATIN, CYRILLIC)),
}


def median_seconds(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def regex_types(text: str) -> tuple[list[str], np.ndarray]:
    """The plain way to the same answer: the regex, then a dict gives every token its index."""
    index = FirstSeen()
    tokens = WORD_PATTERN.findall(text)
    ids = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return list(index), ids


def prepare_rows(copies: int, runs: int, workers: int | None) -> list[dict]:
    """`rnnkit prepare` as a user runs it, in a fresh process each time."""
    text = bundled_text("tinyshakespeare") * copies
    source = str(Path(rnnkit.__file__).resolve().parents[1])  # this checkout's rnnkit, in the child too
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(text, encoding="utf-8")
        megabytes = corpus.stat().st_size / 1e6
        for kind in ("char", "word"):
            command = [
                sys.executable,
                "-m",
                "rnnkit",
                "prepare",
                "--data",
                str(corpus),
                "--tokenizer",
                kind,
                "--out",
                str(Path(tmp) / kind),
                "--overwrite",
                "--json",
                "--quiet",
            ]
            command += ["--workers", str(workers)] if workers else []
            inside, whole = [], []
            for _ in range(runs):
                start = time.perf_counter()
                done = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
                whole.append(time.perf_counter() - start)
                inside.append(json.loads(done.stdout)["seconds"])
            rows.append(
                {
                    "what": f"prepare --tokenizer {kind}",
                    "MB": round(megabytes, 1),
                    "MB/s": round(megabytes / statistics.median(inside), 1),
                    "seconds": statistics.median(inside),
                    "whole command s": round(statistics.median(whole), 3),
                }
            )
    return rows


def scanner_rows(runs: int) -> list[dict]:
    english = (bundled_text("tinyshakespeare") * 2)[: 2 << 20]  # prepare's job size
    rows = []
    for name, make in VARIANTS.items():
        text = make(english)
        scanned, plain = word_types(text), regex_types(text)
        assert [scanned[0][i] for i in scanned[1]] == [plain[0][i] for i in plain[1]], name
        megabytes = len(text.encode("utf-8")) / 1e6
        # the text is bound as a default: each timed call must scan this variant, not the loop's last
        fast = median_seconds(lambda text=text: word_types(text), runs)
        slow = median_seconds(lambda text=text: regex_types(text), runs)
        rows.append(
            {
                "what": f"word scanner, {name}",
                "MB": round(megabytes, 2),
                "MB/s": round(megabytes / fast, 1),
                "regex MB/s": round(megabytes / slow, 1),
                "speedup": round(slow / fast, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=30, help="tinyshakespeare repeated this often (30: 33.5 MB)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="prepare's worker processes (default: its own)")
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    args = parser.parse_args()
    word_types("warm up the class table")
    rows = scanner_rows(args.runs) + prepare_rows(args.copies, args.runs, args.workers)
    for row in rows:
        print(json.dumps(row) if args.json else "  ".join(f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
