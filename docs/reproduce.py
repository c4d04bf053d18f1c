"""Re-run the commands behind the figures in README.md and docs/concepts.md and compare.

Every figure on those two pages that a command produces is an entry of REGISTRY below: the
command(s), as documented; how to read the number(s) from what they write (JSON files, or the
`--json` line); the value the page states, exactly as it is written there; and a tolerance.

    python docs/reproduce.py --list                  # every entry, its cost and its values
    python docs/reproduce.py clipping one-step       # run entries, print documented vs measured
    python docs/reproduce.py --all                   # every entry that is not heavy
    python docs/reproduce.py --all --heavy           # every entry (presets take 10 minutes each)
    python docs/reproduce.py clipping --update       # ... and rewrite the PNGs they draw in docs/img

Commands run in a scratch directory (`--workdir` keeps it), with this checkout's `src/` first on
PYTHONPATH, on the CPU and, unless an entry says otherwise, with OMP_NUM_THREADS=1 (what
docs/concepts.md states). Figures from step budgets are deterministic on the CPU, so they get a
tight tolerance; figures that depend on wall-clock time (seconds, steps within a time budget) are
printed beside the documented value but never fail a check (`tolerance None`). `--update`
copies the plots an entry draws into docs/img and prints the measured values; the prose is
rewritten by hand (a sentence around a number usually says what the number means).

Exit status: 0 when every checked value is within its tolerance, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PAGES = {"README": ROOT / "README.md", "concepts": DOCS / "concepts.md"}
COSTS = ("tiny", "cheap", "heavy")  # tiny: seconds; cheap: up to a few minutes; heavy: longer


@dataclass(frozen=True)
class Value:
    """One documented number: `key` in what the extractor returns, the value, and how it is written."""

    key: str
    documented: float
    text: str  # the figure exactly as the page writes it (a fast test checks that it is there)
    tolerance: float | None = 0.0005  # absolute; None = time-dependent, shown but not checked
    relative: bool = False  # tolerance is a fraction of the documented value

    def matches(self, measured: float | None) -> bool | None:
        if self.tolerance is None:
            return None
        if measured is None or not math.isfinite(measured):
            return False
        allowed = self.tolerance * abs(self.documented) if self.relative else self.tolerance
        return abs(measured - self.documented) <= allowed


@dataclass(frozen=True)
class Figure:
    """A set of figures that one group of commands produces."""

    name: str
    pages: tuple[str, ...]  # keys of PAGES where the values are written
    commands: tuple[str, ...]
    extract: Callable[[Path, list[str]], dict[str, float]]  # (workdir, stdout of each command) -> values
    values: tuple[Value, ...]
    cost: str = "cheap"
    needs: tuple[str, ...] = ()  # entries whose commands must run first (their run directories are used)
    images: dict[str, str] = field(default_factory=dict)  # file in the workdir -> file under docs/img
    threads: int | None = 1  # OMP_NUM_THREADS; None = torch's default
    note: str = ""


# ---- reading what the commands wrote -------------------------------------------------------


def metrics(work: Path, run: str) -> list[dict[str, Any]]:
    with open(work / run / "metrics.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluations(work: Path, run: str) -> list[dict[str, Any]]:
    return [row for row in metrics(work, run) if "val_loss" in row]


def last_json(stdout: str) -> Any:
    """The JSON object or list a `--json` command prints as its last line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the command printed nothing")
    return json.loads(lines[-1])


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def final_eval(work: Path, run: str, prefix: str) -> dict[str, float]:
    last = evaluations(work, run)[-1]
    return {
        f"{prefix}.val_loss": last["val_loss"],
        f"{prefix}.val_bpc": last["val_bpc"],
        f"{prefix}.seconds": last["elapsed_s"],
    }


def extract_tm_models(work: Path, _out: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for kind in ("rnn", "gru", "lstm"):
        values.update(final_eval(work, f"runs/tm-{kind}", f"tm-{kind}"))
    return values


def extract_train_json(prefix: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(_work: Path, out: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for index, stdout in enumerate(out):
            result = last_json(stdout)
            name = f"{prefix}{index}" if len(out) > 1 else prefix
            for key in ("val_loss", "val_bpc", "val_ppl", "train_loss", "parameters", "seconds", "steps"):
                if result.get(key) is not None:
                    values[f"{name}.{key}"] = float(result[key])
        return values

    return extract


def extract_ngram_orders(work: Path, out: list[str]) -> dict[str, float]:
    values = {}
    for order, stdout in zip((2, 3, 5), out[:3], strict=True):
        result = last_json(stdout)
        values.update(
            {
                f"ngram{order}.val_loss": result["val_loss"],
                f"ngram{order}.val_bpc": result["val_bpc"],
                f"ngram{order}.entries": float(result["parameters"]),
            }
        )
    for order, stdout in zip((3, 5), out[3:5], strict=True):
        evaluation = last_json(stdout)
        values[f"ngram{order}.test_bpc"] = evaluation["bpc"]
    return values


def extract_hmm(_work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    evaluation = last_json(out[1])
    return {
        "hmm32.val_loss": result["val_loss"],
        "hmm32.val_bpc": result["val_bpc"],
        "hmm32.parameters": float(result["parameters"]),
        "hmm32.seconds": result["seconds"],
        "hmm32.test_bpc": evaluation["bpc"],
    }


def extract_one_step(work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    return {"train_loss": result["train_loss"], "val_loss": result["val_loss"], "val_ppl": result["val_ppl"]}


def extract_evaluate(_work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    return {
        "loss": result["loss"],
        "ppl": result["ppl"],
        "bits_per_token": result["bits_per_token"],
        "bpc": result["bpc"],
        "tokens": float(result["tokens"]),
    }


def extract_sweep(run: str, columns: tuple[str, ...]) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for row in read_json(work / run / "sweep.json"):
            for column in columns:
                if row.get(column) is not None:
                    values[f"{row['value']}.{column}"] = float(row[column])
        return values

    return extract


def extract_gradients(run: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for model in read_json(work / run / "gradients.json")["models"]:
            label, relative = model["label"], model["relative"]
            values[f"{label}.norm0"] = model["grad_norm"][0]
            for k in (16, 64):
                values[f"{label}.rel{k}"] = relative[k]
            values[f"{label}.decay"] = model["decay_per_step"]
            values[f"{label}.sigma"] = model["singular_values"][0]["stacked"]
            for gate, sigma in model["singular_values"][0]["gates"].items():
                values[f"{label}.sigma_{gate}"] = sigma
        return values

    return extract


def extract_clipping(work: Path, _out: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for run, prefix in (("runs/rnn-sgd-noclip", "noclip"), ("runs/rnn-sgd-clip1", "clip1")):
        rows = metrics(work, run)
        peak = max(rows, key=lambda row: row["grad_norm"])
        evals = evaluations(work, run)
        values.update(
            {
                f"{prefix}.max_grad_norm": peak["grad_norm"],
                f"{prefix}.max_grad_norm_step": peak["step"],
                f"{prefix}.max_step_grad_norm": max(row["grad_norm_max"] for row in rows),
                f"{prefix}.val_high": max(row["val_loss"] for row in evals),
                f"{prefix}.final_val": evals[-1]["val_loss"],
                f"{prefix}.best_val": min(row["val_loss"] for row in evals),
            }
        )
        for row in evals:
            values[f"{prefix}.val@{row['step']}"] = row["val_loss"]
        for row in rows:
            values[f"{prefix}.grad_norm@{row['step']}"] = row["grad_norm"]
        after = [row["val_loss"] for row in evals if row["step"] >= 100]
        values[f"{prefix}.val_low_after_100"] = min(after)
        values[f"{prefix}.val_high_after_100"] = max(after)
    return values


def extract_default_train(_work: Path, out: list[str]) -> dict[str, float]:
    default, test, ngram, ngram_test = (last_json(stdout) for stdout in out)
    return {
        "val_loss": default["val_loss"],
        "val_bpc": default["val_bpc"],
        "test_bpc": test["bpc"],
        "test_margin_over_ngram5": ngram_test["bpc"] - test["bpc"],
        "seconds": default["seconds"],
        "ngram5_val_bpc": ngram["val_bpc"],
        "margin_over_ngram5": ngram["val_bpc"] - default["val_bpc"],
    }


def extract_cloze(_work: Path, out: list[str]) -> dict[str, float]:
    report = last_json(out[0])
    values = {"majority": 100 * report["majority"]["accuracy"]}
    for row in report["results"]:
        values[f"{row['direction']}.accuracy"] = 100 * row["accuracy"]
        values[f"{row['direction']}.loss"] = row["loss"]
        values[f"{row['direction']}.steps"] = float(row["steps"])
        values[f"{row['direction']}.parameters"] = float(row["parameters"])
        values[f"{row['direction']}.seconds"] = row["seconds"]
    return values


def extract_compare(run: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for row in read_json(work / run / "compare.json"):
            for key in ("parameters", "train_seconds", "val_loss", "val_ppl", "val_bpc", "test_bpc", "steps"):
                if row.get(key) is not None:
                    values[f"{row['model']}.{key}"] = float(row[key])
        return values

    return extract


def extract_gradcheck(_work: Path, out: list[str]) -> dict[str, float]:
    verdict = [line for line in out[0].splitlines() if line.startswith(("PASS", "FAIL"))][-1]
    return {"worst_below_1e-6": float(verdict.startswith("PASS"))}


def extract_preset(run: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        evals = evaluations(work, run)
        best = min(evals, key=lambda row: row["val_loss"])
        return {
            "best_val_loss": best["val_loss"],
            "best_val_ppl": best["val_ppl"],
            "best_val_bpc": best["val_bpc"],
            "best_step": float(best["step"]),
            "seconds": metrics(work, run)[-1]["elapsed_s"],
        }

    return extract


# ---- the registry -------------------------------------------------------------------------

V = Value
TIMED = None  # tolerance of a figure that depends on the machine's speed: shown, not checked

TM_MODELS = tuple(
    f"rnnkit train --model {m} --layers 1 --hidden 128 --embed 32 --steps 600 --seq-len 64 --lr 3e-3 "
    f"--dropout 0 --device cpu "
    f"--sample-tokens 0 --quiet --out runs/tm-{m}"
    for m in ("rnn", "gru", "lstm")
)
CLIP = (
    "--model rnn --layers 1 --hidden 128 --embed 32 --optimizer sgd --lr 0.5 --schedule constant "
    "--seq-len 64 --dropout 0 --steps 300 --eval-interval 25 --log-interval 10 --device cpu --sample-tokens 0 "
    "--quiet"
)
DEFAULT_TRAIN = "rnnkit train --out runs/default --quiet --json"

REGISTRY: tuple[Figure, ...] = (
    Figure(
        "one-step",
        ("concepts",),
        (
            "rnnkit train --model lstm --layers 1 --hidden 128 --embed 32 --steps 1 --seq-len 64 --lr 3e-3 --dropout 0 "
            "--log-interval 1 "
            "--eval-interval 1 --device cpu --sample-tokens 0 --quiet --json --out runs/one-step",
        ),
        extract_one_step,
        (V("train_loss", 4.2162, "4.2162"), V("val_loss", 4.2134, "4.2134"), V("val_ppl", 67.58, "67.58", 0.005)),
        cost="tiny",
        note="section 4: the loss of an untrained model is about ln V",
    ),
    Figure(
        "ngram-orders",
        ("concepts", "README"),
        (
            "rnnkit train --model ngram --order 2 --out runs/ngram2 --quiet --json --sample-tokens 0",
            "rnnkit train --model ngram --order 3 --out runs/ngram3 --quiet --json --sample-tokens 0",
            "rnnkit train --model ngram --order 5 --out runs/ngram5 --quiet --json --sample-tokens 0",
            "rnnkit evaluate runs/ngram3 --split test --json",
            "rnnkit evaluate runs/ngram5 --split test --json",
        ),
        extract_ngram_orders,
        (
            V("ngram2.val_loss", 2.3316, "2.3316"),
            V("ngram3.val_loss", 1.8779, "1.8779"),
            V("ngram5.val_loss", 1.4055, "1.4055"),
            V("ngram2.entries", 975, "975", 0),
            V("ngram3.entries", 6561, "6,561", 0),
            V("ngram5.entries", 64179, "64,179", 0),
            V("ngram3.val_bpc", 2.7092, "2.7092"),
            V("ngram5.val_bpc", 2.0277, "2.0277"),
            V("ngram3.test_bpc", 2.8123, "2.8123"),
            V("ngram5.test_bpc", 2.1056, "2.1056"),
            V("ngram5.val_bpc", 2.028, "2.028", 0.0005),
        ),
        cost="tiny",
        note="the n-gram rows of both compare tables, the orders of concepts section 1, and the "
        "5-gram the README's opening paragraph measures the default against",
    ),
    Figure(
        "hmm",
        ("README", "concepts"),
        (
            "rnnkit train --model hmm --states 32 --out runs/hmm32 --quiet --json --sample-tokens 0",
            "rnnkit evaluate runs/hmm32 --split test --json",
        ),
        extract_hmm,
        (
            V("hmm32.val_loss", 2.5296, "2.5296"),
            V("hmm32.val_bpc", 3.6495, "3.6495"),
            V("hmm32.test_bpc", 3.7911, "3.7911"),
            V("hmm32.parameters", 3264, "3,264", 0),
            V("hmm32.seconds", 18.2, "18.2", TIMED),
        ),
        note="the hmm:32 row of the compare tables (needs hmmlearn)",
    ),
    Figure(
        "tm-models",
        ("concepts",),
        TM_MODELS,
        extract_tm_models,
        (
            V("tm-rnn.val_loss", 1.7601, "1.7601"),
            V("tm-rnn.val_bpc", 2.5393, "2.5393"),
            V("tm-gru.val_loss", 1.6795, "1.6795"),
            V("tm-gru.val_bpc", 2.4231, "2.4231"),
            V("tm-lstm.val_loss", 1.8221, "1.8221"),
            V("tm-lstm.val_bpc", 2.6287, "2.6287"),
            V("tm-rnn.seconds", 13.0, "13.0 s", TIMED),
            V("tm-gru.seconds", 30.2, "30.2 s", TIMED),
            V("tm-lstm.seconds", 22.6, "22.6 s", TIMED),
        ),
        note="the three 600-step models of concepts.md's first table",
    ),
    Figure(
        "evaluate-test",
        ("concepts",),
        ("rnnkit evaluate runs/tm-gru --split test --device cpu --json",),
        extract_evaluate,
        (
            V("loss", 1.7664, "1.7664"),
            V("ppl", 5.850, "5.850", 0.002),
            V("bpc", 2.5483, "2.5483"),
            V("tokens", 8940, "8,940", 0),
        ),
        needs=("tm-models",),
        note="section 5",
    ),
    Figure(
        "sweep-embed",
        ("concepts",),
        (
            "rnnkit sweep --set embed=0,8,64 --model gru --layers 1 --hidden 128 --steps 300 --seq-len 64 --lr 3e-3 "
            "--dropout 0 --device cpu "
            "--quiet --out runs/sweep-embed",
        ),
        extract_sweep("runs/sweep-embed", ("parameters", "val_loss")),
        (
            V("0.parameters", 85317, "85,317", 0),
            V("8.parameters", 62445, "62,445", 0),
            V("64.parameters", 87813, "87,813", 0),
            V("0.val_loss", 2.1966, "2.1966"),
            V("8.val_loss", 2.1779, "2.1779"),
            V("64.val_loss", 1.8308, "1.8308"),
        ),
        note="section 3",
    ),
    Figure(
        "sweep-seqlen-epoch",
        ("concepts",),
        (
            "rnnkit sweep --set seq_len=2,8,32,128 --model gru --layers 1 --hidden 128 --embed 32 --epochs 1 "
            "--lr 3e-3 --dropout 0 --device cpu --quiet --out runs/sweep-seqlen-epoch",
        ),
        extract_sweep("runs/sweep-seqlen-epoch", ("steps", "seconds", "val_loss", "val_bpc")),
        (
            V("2.steps", 2515, "2,515", 0),
            V("8.steps", 628, "628", 0),
            V("32.steps", 157, "157", 0),
            V("128.steps", 39, "39", 0),
            V("2.val_loss", 1.6796, "1.6796"),
            V("8.val_loss", 1.8274, "1.8274"),
            V("32.val_loss", 2.1379, "2.1379"),
            V("128.val_loss", 2.7612, "2.7612"),
            V("2.val_bpc", 2.4231, "2.4231"),
            V("8.val_bpc", 2.6364, "2.6364"),
            V("32.val_bpc", 3.0843, "3.0843"),
            V("128.val_bpc", 3.9836, "3.9836"),
            V("2.seconds", 20.6, "20.6", TIMED),
            V("128.seconds", 5.8, "5.8", TIMED),
        ),
        images={"runs/sweep-seqlen-epoch/sweep.png": "sweep-seqlen.png"},
        note="section 6",
    ),
    Figure(
        "sweep-seqlen-time",
        ("concepts",),
        (
            "rnnkit sweep --set seq_len=2,8,32,128 --model gru --layers 1 --hidden 128 --embed 32 --max-seconds 20 "
            "--lr 3e-3 --dropout 0 --device cpu --quiet --out runs/sweep-seqlen",
        ),
        extract_sweep("runs/sweep-seqlen", ("steps", "val_loss")),
        (
            V("2.val_loss", 1.8605, "1.8605", TIMED),
            V("8.val_loss", 1.7485, "1.7485", TIMED),
            V("32.val_loss", 1.9944, "1.9944", TIMED),
            V("128.val_loss", 2.0075, "2.0075", TIMED),
            V("2.steps", 900, "900", TIMED),
            V("128.steps", 165, "165", TIMED),
        ),
        note="section 6, a 20-second budget per value: depends on the machine's load",
    ),
    Figure(
        "gradients-trained",
        ("concepts",),
        ("rnnkit gradients runs/tm-rnn runs/tm-gru runs/tm-lstm --out runs/gradients-trained --quiet",),
        extract_gradients("runs/gradients-trained"),
        (
            V("tm-rnn.norm0", 1.14, "1.14", 0.005),
            V("tm-gru.norm0", 1.13, "1.13", 0.005),
            V("tm-lstm.norm0", 1.38, "1.38", 0.005),
            V("tm-rnn.rel16", 3.32e-4, "3.32e-4", 0.002, True),
            V("tm-gru.rel16", 4.10e-2, "4.10e-2", 0.002, True),
            V("tm-lstm.rel16", 3.47e-4, "3.47e-4", 0.002, True),
            V("tm-rnn.rel64", 8.92e-14, "8.92e-14", 0.002, True),
            V("tm-gru.rel64", 1.36e-2, "1.36e-2", 0.004, True),
            V("tm-lstm.rel64", 9.09e-9, "9.09e-9", 0.002, True),
            V("tm-rnn.decay", 0.626, "0.626"),
            V("tm-gru.decay", 0.976, "0.976"),
            V("tm-lstm.decay", 0.765, "0.765"),
            V("tm-rnn.sigma", 3.839, "3.839"),
            V("tm-gru.sigma", 11.022, "11.022"),
            V("tm-lstm.sigma", 10.583, "10.583"),
            V("tm-lstm.sigma_f", 3.86, "3.86", 0.005),
        ),
        needs=("tm-models",),
        images={"runs/gradients-trained/gradients.png": "gradients.png"},
        note="sections 7 and 12",
    ),
    Figure(
        "gradients-fresh",
        ("concepts",),
        ("rnnkit gradients --model rnn,gru,lstm --hidden 128 --embed 32 --out runs/gradients-fresh --quiet",),
        extract_gradients("runs/gradients-fresh"),
        (
            V("rnn.rel64", 1.45e-17, "1.45e-17", 0.004, True),
            V("gru.rel64", 6.6e-14, "6.6e-14", 0.01, True),
            V("lstm.rel64", 1.52e-14, "1.52e-14", 0.004, True),
        ),
        cost="tiny",
        note="section 7, before training",
    ),
    Figure(
        "clipping",
        ("README", "concepts"),
        (
            f"rnnkit train {CLIP} --clip none --out runs/rnn-sgd-noclip",
            f"rnnkit train {CLIP} --clip 1 --out runs/rnn-sgd-clip1",
            "rnnkit plot runs/rnn-sgd-noclip runs/rnn-sgd-clip1 --metric grad_norm --log-y "
            "--out img/clipping-grad-norm.png",
            "rnnkit plot runs/rnn-sgd-noclip runs/rnn-sgd-clip1 --metric val_loss --out img/clipping-val-loss.png",
        ),
        extract_clipping,
        (
            V("noclip.max_grad_norm", 1.221e6, "1.22e6", 0.01, True),
            V("noclip.max_grad_norm_step", 70, "70", 0),
            V("noclip.max_step_grad_norm", 1.221e7, "1.22e7", 0.01, True),
            V("noclip.val@25", 2.6516, "2.6516"),
            V("noclip.val@50", 33.93, "33.93", 0.005),
            V("noclip.val_low_after_100", 3.84, "3.84", 0.005),
            V("noclip.val_high_after_100", 6.63, "6.63", 0.005),
            V("noclip.grad_norm@260", 3.15e3, "3.15e3", 0.01, True),
            V("noclip.final_val", 6.0299, "6.0299"),
            V("noclip.best_val", 2.6516, "2.6516"),
            V("clip1.max_grad_norm", 1.326, "1.326"),
            V("clip1.final_val", 2.4626, "2.4626"),
            V("clip1.best_val", 2.4380, "2.4380"),
            V("clip1.val_high", 2.603, "2.603"),
        ),
        images={
            "img/clipping-grad-norm.png": "clipping-grad-norm.png",
            "img/clipping-val-loss.png": "clipping-val-loss.png",
        },
        note="the clipping recipe (README) and section 8; the unclipped run is chaotic, so any change "
        "in rounding moves its figures",
    ),
    Figure(
        "sweep-layers",
        ("concepts",),
        (
            "rnnkit sweep --set layers=1,2,3 --model gru --layers 1 --hidden 128 --steps 300 --seq-len 64 --lr 3e-3 "
            "--dropout 0 --device cpu --quiet "
            "--embed 32 --out runs/sweep-layers",
        ),
        extract_sweep("runs/sweep-layers", ("parameters", "seconds", "val_loss")),
        (
            V("1.parameters", 73317, "73,317", 0),
            V("2.parameters", 172389, "172,389", 0),
            V("3.parameters", 271461, "271,461", 0),
            V("1.val_loss", 1.8907, "1.8907"),
            V("2.val_loss", 1.8296, "1.8296"),
            V("3.val_loss", 1.9870, "1.9870"),
            V("1.seconds", 16.4, "16.4", TIMED),
            V("3.seconds", 46.0, "46.0", TIMED),
        ),
        note="section 9",
    ),
    Figure(
        "cloze-steps",
        ("concepts",),
        ("rnnkit cloze --bidirectional --steps 600 --budget-seconds 600 --device cpu --quiet --json",),
        extract_cloze,
        (
            V("unidirectional.accuracy", 42.6, "42.6%", 0.05),
            V("unidirectional.loss", 1.947, "1.947", 0.0005),
            V("bidirectional.accuracy", 63.9, "63.9%", 0.05),
            V("bidirectional.loss", 1.235, "1.235", 0.0005),
            V("majority", 17.4, "17.4%", 0.05),
            V("unidirectional.parameters", 73349, "73,349", 0),
            V("bidirectional.parameters", 144389, "144,389", 0),
            V("unidirectional.seconds", 16.1, "16.1 s", TIMED),
            V("bidirectional.seconds", 57.0, "57.0 s", TIMED),
        ),
        note="section 10 (600 steps each)",
    ),
    Figure(
        "cloze-budget",
        ("concepts",),
        ("rnnkit cloze --bidirectional --budget-seconds 30 --device cpu --quiet --json",),
        extract_cloze,
        (
            V("bidirectional.accuracy", 57.0, "57.0%", TIMED),
            V("unidirectional.accuracy", 46.6, "46.6%", TIMED),
            V("bidirectional.steps", 327, "327", TIMED),
            V("unidirectional.steps", 1044, "1,044", TIMED),
        ),
        note="section 10, 30 s per model: depends on the machine's load",
    ),
    Figure(
        "gradcheck",
        ("README",),
        ("rnnkit gradcheck --model lstm --layers 2 --bidirectional",),
        extract_gradcheck,
        (V("worst_below_1e-6", 1.0, "1e-6", 0),),
        cost="tiny",
        note="More measured figures: gradient check below 1e-6",
    ),
    Figure(
        "default-train",
        ("README",),
        (
            DEFAULT_TRAIN,
            "rnnkit evaluate runs/default --split test --json",
            "rnnkit train --model ngram --order 5 --out runs/default-ngram5 --quiet --json --sample-tokens 0",
            "rnnkit evaluate runs/default-ngram5 --split test --json",
        ),
        extract_default_train,
        (
            V("val_loss", 1.3665, "1.3665", 0.0015),
            V("val_bpc", 1.971, "1.971", 0.002),
            V("margin_over_ngram5", 0.056, "0.056", 0.002),
            V("test_bpc", 2.049, "2.049", 0.002),
            V("test_margin_over_ngram5", 0.056, "0.056", 0.002),
        ),
        threads=None,
        note="the README's opening paragraph: `rnnkit train` with no options against the 5-gram "
        "(torch's default threads; 2.5 minutes on a quiet 2-core CPU)",
    ),
    Figure(
        "compare-60s",
        ("README",),
        (
            "rnnkit compare --data timemachine --models ngram:3,ngram:5,hmm:32,rnn,gru,lstm --budget-seconds 60 "
            "--out runs/cmp-tm",
        ),
        extract_compare("runs/cmp-tm"),
        (
            V("rnn.val_bpc", 2.0937, "2.0937", TIMED),
            V("gru.val_bpc", 2.1001, "2.1001", TIMED),
            V("lstm.val_bpc", 2.3043, "2.3043", TIMED),
            V("rnn.steps", 2040, "2,040", TIMED),
            V("ngram:5.val_bpc", 2.0277, "2.0277"),
            V("hmm:32.val_bpc", 3.6495, "3.6495"),
        ),
        cost="heavy",
        threads=None,
        note="the README's comparison table; the neural rows depend on the machine (60 s each)",
    ),
    Figure(
        "compare-30s",
        ("concepts",),
        (
            "rnnkit compare --models ngram:2,ngram:3,ngram:5,hmm:32,rnn,gru,lstm --budget-seconds 30 --layers 1 "
            "--hidden 128 --embed 32 --device cpu --out runs/compare",
        ),
        extract_compare("runs/compare"),
        (
            V("rnn.val_loss", 1.6552, "1.6552", TIMED),
            V("gru.val_loss", 1.8943, "1.8943", TIMED),
            V("lstm.val_loss", 1.8431, "1.8431", TIMED),
            V("rnn.steps", 671, "671", TIMED),
            V("gru.steps", 279, "279", TIMED),
            V("lstm.steps", 471, "471", TIMED),
            V("ngram:5.val_loss", 1.4055, "1.4055"),
            V("hmm:32.val_loss", 2.5296, "2.5296"),
        ),
        cost="heavy",
        images={"runs/compare/compare.png": "compare.png"},
        note="concepts section 1 and its plot; the neural rows depend on the machine (30 s each)",
    ),
    Figure(
        "preset-shakespeare-char-cpu",
        ("README",),
        (
            "rnnkit train --preset shakespeare-char-cpu --out runs/preset-shakespeare-char-cpu --quiet",
            "rnnkit plot runs/preset-shakespeare-char-cpu --x elapsed_s --reference "
            "'1.886:nanoGPT CPU config (reported), about 2 min' --out runs/preset-shakespeare-char-cpu.png",
        ),
        extract_preset("runs/preset-shakespeare-char-cpu"),
        (
            V("best_val_loss", 1.5207, "1.5207"),
            V("best_val_ppl", 4.58, "4.58", 0.005),
            V("best_val_bpc", 2.194, "2.194"),
            V("seconds", 560, "560 s", TIMED),
        ),
        cost="heavy",
        threads=None,
        images={"runs/preset-shakespeare-char-cpu.png": "preset-shakespeare-char-cpu.png"},
        note="10 CPU minutes",
    ),
    Figure(
        "preset-words",
        ("README",),
        (
            "rnnkit train --preset timemachine-word --out runs/preset-timemachine-word --quiet",
            "rnnkit train --preset shakespeare-word --out runs/preset-shakespeare-word --quiet",
            "rnnkit plot runs/preset-timemachine-word runs/preset-shakespeare-word --metric val_ppl --x elapsed_s "
            "--log-y --out runs/preset-word.png",
        ),
        lambda work, out: {
            **{f"tm.{k}": v for k, v in extract_preset("runs/preset-timemachine-word")(work, out).items()},
            **{f"shakespeare.{k}": v for k, v in extract_preset("runs/preset-shakespeare-word")(work, out).items()},
        },
        (
            V("tm.best_val_loss", 4.1561, "4.1561"),
            V("tm.best_val_ppl", 63.8, "63.8", 0.05),
            V("tm.best_val_bpc", 1.307, "1.307"),
            V("shakespeare.best_val_loss", 4.0266, "4.0266"),
            V("shakespeare.best_val_ppl", 56.1, "56.1", 0.05),
            V("shakespeare.best_val_bpc", 1.596, "1.596"),
        ),
        cost="heavy",
        threads=None,
        images={"runs/preset-word.png": "preset-word.png"},
        note="12 CPU minutes",
    ),
)
BY_NAME = {figure.name: figure for figure in REGISTRY}


# ---- running ----------------------------------------------------------------------------------


def command_argv(command: str) -> list[str]:
    """The documented command as an argv for this interpreter: `rnnkit ...` -> python -m rnnkit ..."""
    argv = shlex.split(command)
    if argv[0] == "rnnkit":
        return [sys.executable, "-m", "rnnkit", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


def environment(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    if threads is None:
        env.pop("OMP_NUM_THREADS", None)
    else:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


class CommandFailed(RuntimeError):
    pass


def clear_outputs(command: str, work: Path) -> None:
    """Remove what an earlier run of `command` left in the scratch directory (`--out` refuses to overwrite)."""
    argv = shlex.split(command)
    if "--out" in argv:
        target = work / argv[argv.index("--out") + 1]
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def run_figure(figure: Figure, work: Path, log: Callable[[str], None]) -> dict[str, float]:
    (work / "img").mkdir(parents=True, exist_ok=True)
    outputs = []
    for command in figure.commands:
        clear_outputs(command, work)
        log(f"  $ {command}")
        started = time.perf_counter()
        done = subprocess.run(
            command_argv(command),
            cwd=work,
            env=environment(figure.threads),
            capture_output=True,
            text=True,
            encoding="utf-8",
        )
        log(f"    ({time.perf_counter() - started:.1f} s)")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise CommandFailed(f"{command!r} exited with {done.returncode}: {' / '.join(tail)}")
        outputs.append(done.stdout)
    return figure.extract(work, outputs)


def order_with_needs(names: list[str]) -> list[str]:
    ordered: list[str] = []

    def visit(name: str) -> None:
        for need in BY_NAME[name].needs:
            visit(need)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def format_value(value: float | None) -> str:
    if value is None:
        return "missing"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3e}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def compare_values(figure: Figure, measured: dict[str, float]) -> tuple[list[str], int]:
    """Lines of documented vs measured, and how many checked values are off."""
    lines, failures = [], 0
    for value in figure.values:
        got = measured.get(value.key)
        verdict = value.matches(got)
        if verdict is None:
            status = "timed (not checked)"
        elif verdict:
            status = "ok"
        else:
            status, failures = "DIFFERS", failures + 1
        tolerance = (
            "-"
            if value.tolerance is None
            else (f"{value.tolerance:.1%}" if value.relative else f"±{value.tolerance:g}")
        )
        lines.append(
            f"  {value.key:<32} documented {value.text:>10}  measured {format_value(got):>12}  "
            f"tolerance {tolerance:>7}  {status}"
        )
    return lines, failures


def update_images(figure: Figure, work: Path, log: Callable[[str], None]) -> None:
    for produced, target in figure.images.items():
        source = work / produced
        if not source.exists():
            log(f"  (no {produced}: is matplotlib installed?)")
            continue
        shutil.copyfile(source, DOCS / "img" / target)
        log(f"  wrote docs/img/{target}")


def run_entries(
    names: list[str], work: Path, update: bool, log: Callable[[str], None] = print, done: set[str] | None = None
) -> int:
    """Run the named entries (and what they need) in `work`; returns the number of values that differ.

    `done` names entries whose commands already ran in `work`: needed again, they are not rerun."""
    failures = 0
    requested = set(names)
    done = set() if done is None else done
    for name in order_with_needs(names):
        figure = BY_NAME[name]
        if name not in requested and name in done:
            continue
        log(f"{name} ({figure.cost}): {figure.note}")
        try:
            measured = run_figure(figure, work, log)
        except (CommandFailed, OSError, ValueError, KeyError) as error:
            log(f"  FAILED: {error}")
            failures += 1
            continue
        done.add(name)
        if name not in requested:
            continue
        lines, off = compare_values(figure, measured)
        for line in lines:
            log(line)
        failures += off
        if update:
            update_images(figure, work, log)
            extra = sorted(set(measured) - {value.key for value in figure.values})
            if extra:
                log("  also measured: " + ", ".join(f"{key}={format_value(measured[key])}" for key in extra))
    return failures


def list_entries() -> None:
    for figure in REGISTRY:
        timed = sum(value.tolerance is None for value in figure.values)
        images = f"; draws {', '.join(figure.images.values())}" if figure.images else ""
        needs = f"; needs {', '.join(figure.needs)}" if figure.needs else ""
        print(
            f"{figure.name:<28} {figure.cost:<6} {'+'.join(figure.pages):<16} {len(figure.values)} values "
            f"({timed} timed){needs}{images}"
        )
        print(f"{'':<28} {figure.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="entries to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--all", action="store_true", help="run every entry that is not heavy")
    parser.add_argument("--heavy", action="store_true", help="with --all: the heavy entries too")
    parser.add_argument("--update", action="store_true", help="copy the plots the entries draw into docs/img")
    parser.add_argument("--workdir", help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.list:
        list_entries()
        return 0
    unknown = [name for name in args.names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} (see --list)")
    names = list(args.names)
    if args.all:
        names += [f.name for f in REGISTRY if (args.heavy or f.cost != "heavy") and f.name not in names]
    if not names:
        parser.error("name entries to run, or --all (see --list)")
    if args.workdir:
        work = Path(args.workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        return 1 if run_entries(names, work, args.update) else 0
    with tempfile.TemporaryDirectory(prefix="rnnkit-reproduce-") as scratch:
        return 1 if run_entries(names, Path(scratch), args.update) else 0


if __name__ == "__main__":
    sys.exit(main())
