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
import re
import shlex
import shutil
import statistics
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
WALL_SECONDS = "wall_seconds.json"  # run_figure writes each command's wall-clock seconds here
USAGE = "usage.json"  # ... and each command's CPU seconds and peak memory (where the OS reports them)
SCRIPT_FOLDERS = ("benchmarks/", "tests/")  # `python benchmarks/x.py`: a path in this checkout
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
        values[f"tm-{kind}.parameters"] = float(find_key(read_json(work / f"runs/tm-{kind}/config.json"), "parameters"))
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
    sizes = last_json(out[0])["sizes"]
    values.update({f"{split}_tokens": float(sizes[split]) for split in ("train", "val", "test")})
    values["vocab_size"] = float(find_key(read_json(work / "runs/ngram2/config.json"), "vocab_size"))
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


def extract_default_train(work: Path, out: list[str]) -> dict[str, float]:
    default, test, ngram, ngram_test = (last_json(stdout) for stdout in out)
    return {
        "tokens_per_s": default["tokens_per_s"],
        "wall_seconds": wall_seconds(work)[0],
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
    accuracy = {row["direction"]: 100 * row["accuracy"] for row in report["results"]}
    if {"bidirectional", "unidirectional"} <= set(accuracy):
        values["gain"] = accuracy["bidirectional"] - accuracy["unidirectional"]
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
        rows = read_json(work / run / "compare.json")
        for row in rows:
            for key in ("parameters", "train_seconds", "val_loss", "val_ppl", "val_bpc", "test_bpc", "steps"):
                if row.get(key) is not None:
                    values[f"{row['model']}.{key}"] = float(row[key])
        trigram = values.get("ngram:3.val_loss")
        for row in rows:
            if trigram is None or row.get("steps") is None or not row.get("checkpoint"):
                continue
            curve = evaluations(work, str(Path(row["checkpoint"]).parent))
            beaten = [r["elapsed_s"] for r in curve if r["val_loss"] < trigram]
            if beaten:
                values[f"{row['model']}.seconds_to_beat_ngram:3"] = beaten[0]
        return values

    return extract


def extract_gradcheck(_work: Path, out: list[str]) -> dict[str, float]:
    verdict = [line for line in out[0].splitlines() if line.startswith(("PASS", "FAIL"))][-1]
    return {"worst_below_1e-6": float(verdict.startswith("PASS"))}


def extract_preset(run: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        evals = evaluations(work, run)
        best = min(evals, key=lambda row: row["val_loss"])
        rows = metrics(work, run)
        by_step = {row["step"]: row for row in evals}
        return {
            **{f"val_ppl@{step}": row["val_ppl"] for step, row in by_step.items()},
            **{f"val_loss@{row['elapsed_s']:.1f}s": row["val_loss"] for row in evals},
            "val_loss_near_112s": min(evals, key=lambda row: abs(row["elapsed_s"] - 112.5))["val_loss"],
            "val_loss_near_150s": min(evals, key=lambda row: abs(row["elapsed_s"] - 150))["val_loss"],
            "best_seconds": best["elapsed_s"],
            "best_unk_percent": 100 * best.get("val_unk_rate", 0.0),
            "steps": float(rows[-1]["step"]),
            "tokens_per_s": rows[-1]["tokens_per_s"],
            "vocab_size": float(find_key(read_json(work / run / "config.json"), "vocab_size")),
            "best_val_loss": best["val_loss"],
            "best_val_ppl": best["val_ppl"],
            "best_val_bpc": best["val_bpc"],
            "best_step": float(best["step"]),
            "seconds": metrics(work, run)[-1]["elapsed_s"],
        }

    return extract


def number(pattern: str, text: str, group: int = 1) -> float:
    """The number a regex group captures in a command's text output (thousands separators removed)."""
    found = re.search(pattern, text)
    if found is None:
        raise ValueError(f"no match for {pattern!r} in the output")
    return float(found.group(group).replace(",", ""))


def json_lines(stdout: str) -> list[Any]:
    """Every line of a command's output that is a JSON object or list (benchmarks print one per row)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith(("{", "["))]


def wall_seconds(work: Path) -> list[float]:
    """Wall-clock seconds of each command of the entry that ran last in `work` (see run_figure)."""
    return read_json(work / WALL_SECONDS)


def usage(work: Path) -> list[dict[str, float]]:
    """CPU seconds and peak memory of each command of the entry that ran last in `work` (see run_command)."""
    return read_json(work / USAGE)


def contains(text: str, output: str) -> float:
    """1.0 when a documented piece of text (a generated line, a verdict) is in the output, else 0.0."""
    return float(text in output)


def find_key(document: Any, key: str) -> Any:
    """The first value stored under `key` anywhere in a nested JSON document."""
    if isinstance(document, dict):
        if key in document:
            return document[key]
        document = list(document.values())
    if isinstance(document, list):
        for item in document:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def train_summary(stdout: str) -> dict[str, float]:
    """The two summary lines `rnnkit train` prints without --json."""
    return {
        "steps": number(r"trained (\d+) steps in", stdout),
        "seconds": number(r"steps in ([\d.]+) s", stdout),
        "tokens_per_s": number(r"\(([\d,]+) tokens/s on average\)", stdout),
        "val_loss": number(r"val loss ([\d.]+) nats/token", stdout),
        "val_ppl": number(r"nats/token, ppl ([\d.]+)", stdout),
        "val_bpc": number(r"ppl [\d.]+, bpc ([\d.]+)", stdout),
    }


QUICK_SAMPLE = "you say goodbye and I say hello. you say goodbye and I say hello. you say g"


def extract_quick_train(_work: Path, out: list[str]) -> dict[str, float]:
    return {**train_summary(out[0]), "sample": contains(QUICK_SAMPLE, out[0])}


def extract_finetune(work: Path, out: list[str]) -> dict[str, float]:
    return {
        "before": find_key(read_json(work / "runs/tm-finetuned/config.json"), "new_val_loss_before"),
        "finetuned": train_summary(out[1])["val_loss"],
        "scratch": train_summary(out[2])["val_loss"],
    }


def extract_score_speed(_work: Path, out: list[str]) -> dict[str, float]:
    pattern = r"score / evaluate time: ([\d.]+) \(best of each\), ([\d.]+) \(median"
    return {
        f"{engine}.{which}": number(pattern, stdout, group)
        for engine, stdout in zip(("numpy", "torch"), out[1:], strict=True)
        for which, group in (("best", 1), ("median", 2))
    }


def extract_serve_load(work: Path, _out: list[str]) -> dict[str, float]:
    """benchmarks/serve_load.py's JSON: the default model's batched and one-at-a-time servers, and
    the tiny model's tokens/s."""
    default, tiny = read_json(work / "serve-load.json"), read_json(work / "serve-tiny.json")
    values = {"gain": default["batching_gain"], "tiny.gain": tiny["batching_gain"]}
    for name in ("batched", "unbatched"):
        server = default[name]
        values[f"{name}.tokens_per_s"] = server["tokens_per_s"]
        values[f"{name}.errors"] = server["errors"]
        values[f"{name}.rss_growth_mb"] = server["rss_growth_mb"]
        values[f"tiny.{name}.tokens_per_s"] = tiny[name]["tokens_per_s"]
    values["batched.start_rss_mb"] = default["batched"]["start_rss_mb"]
    values.update({f"alone.{k}": v for k, v in default["decoding_alone_tokens_per_s"].items()})
    return values


def extract_score_engines(work: Path, out: list[str]) -> dict[str, float]:
    seconds = wall_seconds(work)
    return {
        "2x256.numpy": seconds[2],
        "2x256.torch": seconds[3],
        "2x256.numpy_again": seconds[4],
        "2x256.torch_again": seconds[5],
        "2x512.numpy": seconds[6],
        "2x512.torch": seconds[7],
        "evaluate.numpy": seconds[8],
        "evaluate.torch": seconds[9],
        "evaluate.numpy_again": seconds[10],
        "evaluate.torch_again": seconds[11],
        "evaluate.tokens": float(last_json(out[8])["tokens"]),
    }


def extract_score_example(_work: Path, out: list[str]) -> dict[str, float]:
    totals = r"(\d+) tokens, (\d+) chars: ([\d.]+) nats \| ([\d.]+) nats/token \| ([\d.]+) bits/char \| ppl ([\d.]+)"
    return {
        "tokens": number(totals, out[0], 1),
        "nats": number(totals, out[0], 3),
        "nats_per_token": number(totals, out[0], 4),
        "bits_per_char": number(totals, out[0], 5),
        "ppl": number(totals, out[0], 6),
        "first_logprob": number(r"'I'\s+0-1\s+(-[\d.]+)", out[0]),
        "rows_as_documented": float(sum(row in out[0].splitlines() for row in documented_score_rows())),
    }


def documented_score_rows() -> list[str]:
    """The per-token rows of the README's `rnnkit score` example, as printed."""
    page = PAGES["README"].read_text(encoding="utf-8")
    block = page[page.index("$ rnnkit score runs/tm-finetuned") :].split("```")[0]
    return [line for line in block.splitlines() if re.match(r"'.'\s+\d+-\d+\s", line)]


def export_report(stdout: str, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}.bytes": number(r"\(([\d,]+) bytes\)", stdout),
        f"{prefix}.diff_logits": number(r"max abs diff ([\d.e+-]+) \(logits\)", stdout),
        f"{prefix}.diff_state": number(r"\(logits\), ([\d.e+-]+) \(state\)", stdout),
    }


def extract_export(work: Path, out: list[str]) -> dict[str, float]:
    best = work / "runs/tm-lstm/best/model.safetensors"
    return {
        **{f"train.{k}": v for k, v in train_summary(out[0]).items()},
        **export_report(out[1], "step"),
        **export_report(out[2], "window"),
        **export_report(out[3], "torchscript"),
        **export_report(out[4], "pt2"),
        "safetensors.bytes": float(best.stat().st_size),
    }


def extract_export_parity(_work: Path, out: list[str]) -> dict[str, float]:
    rows = last_json(out[0])
    untied = [row for row in rows if not row["tie"]]
    # a tied model's safetensors file stores the shared matrix once, its ONNX file twice
    tied_extra = [row["onnx_bytes"] - row["safetensors_bytes"] for row in rows if row["tie"]]
    return {
        "max_diff_logits": max(row["max_abs_diff_logits"] for row in rows),
        "max_diff_state": max(row["max_abs_diff_state"] for row in rows),
        "onnx_mb_min": min(row["onnx_bytes"] for row in rows) / 1e6,
        "onnx_mb_max": max(row["onnx_bytes"] for row in rows) / 1e6,
        "untied_size_excess_percent": max(
            100 * abs(row["onnx_bytes"] / row["safetensors_bytes"] - 1) for row in untied
        ),
        "tied_extra_kb": statistics.median(tied_extra) / 1e3,
    }


def extract_gru_forms(work: Path, _out: list[str]) -> dict[str, float]:
    values = {}
    for form in ("cudnn", "cho"):
        for row in evaluations(work, f"runs/gru-{form}"):
            values[f"{form}.val@{row['step']}"] = row["val_loss"]
    return values


def extract_d2l(work: Path, _out: list[str]) -> dict[str, float]:
    values = {}
    for index, kind in enumerate(("rnn", "gru")):
        rows, evals = metrics(work, f"runs/d2l-{kind}"), evaluations(work, f"runs/d2l-{kind}")
        values[f"{kind}.val_ppl"] = evals[-1]["val_ppl"]
        values[f"{kind}.train_ppl"] = rows[-1]["train_ppl"]
        values[f"{kind}.steps"] = float(rows[-1]["step"])
        values[f"{kind}.wall_seconds"] = wall_seconds(work)[index]
        for row in evals:
            values[f"{kind}.val_ppl@{row['step']}"] = row["val_ppl"]
    return values


def extract_threads(_work: Path, out: list[str]) -> dict[str, float]:
    """Per thread count, each round's tokens/s in order, and 1-thread / 2-thread ratios per round."""
    rows = json_lines(out[0])
    speeds = {count: [row["tokens_per_s"] for row in rows if row["threads"] == count] for count in (1, 2)}
    values: dict[str, float] = {}
    for count, series in speeds.items():
        for index, speed in enumerate(series):
            values[f"threads{count}.round{index}"] = float(speed)
    ratios = [one / two for one, two in zip(speeds[1], speeds[2], strict=True)]
    values.update({"one_over_two.min": min(ratios), "one_over_two.max": max(ratios)})
    values.update({"two_over_one.min": 1 / max(ratios), "two_over_one.max": 1 / min(ratios)})
    return values


def extract_bench(_work: Path, out: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for row in last_json(out[-1]):
        name = f"{row['config']}.{row['impl']}"
        values[f"{name}.tokens_per_s"] = row["tokens_per_s"]
        values[f"{name}.ms_per_step"] = row["ms_per_step"]
        for key in ("ratio_to_plain", "ratio_paired", "peak_mib"):
            if row.get(key) is not None:
                values[f"{name}.{key}"] = float(row[key])
    return values


def speed_ratios(values: dict[str, float], pairs: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Named ratios of two benchmark rows' tokens/s (what the bench prints under its table)."""
    return {name: values[f"{a}.tokens_per_s"] / values[f"{b}.tokens_per_s"] for name, (a, b) in pairs.items()}


def extract_bench_long(work: Path, out: list[str]) -> dict[str, float]:
    values = extract_bench(work, out)
    pairs = {
        f"{engine}.{kind}_over_{other}": (f"long-512-{kind}.{engine}", f"long-512-{other}.{engine}")
        for engine in ("rnnkit", "numpy")
        for kind in ("mingru", "minlstm")
        for other in ("lstm", "gru")
    }
    return {**values, **speed_ratios(values, pairs)}


def extract_bench_gru_forms(work: Path, out: list[str]) -> dict[str, float]:
    values = extract_bench(work, out)
    rows = [key.rsplit(".", 1)[0] for key in values if key.endswith(".tokens_per_s")]
    cho = {row.split(".")[1]: row for row in rows if "cho" in row.split(".")[0]}
    cudnn = {row.split(".")[1]: row for row in rows if "cho" not in row.split(".")[0]}
    pairs = {f"{impl}.cho_over_cudnn": (cho[impl], cudnn[impl]) for impl in ("rnnkit", "numpy")}
    values.update({f"{impl}.cho": values[f"{cho[impl]}.tokens_per_s"] for impl in ("rnnkit", "numpy")})
    values.update({f"{impl}.cudnn": values[f"{cudnn[impl]}.tokens_per_s"] for impl in ("rnnkit", "numpy")})
    return {**values, **speed_ratios(values, pairs)}


def extract_numpy_engine(_work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    values: dict[str, float] = {}
    for row in result["sweep"]:
        for key in ("numpy_tok_s", "torch_tok_s", "ratio"):
            values[f"H{row['hidden']}.{key}"] = row[key]
    for row, label in zip(result["classic"], ("min-char-rnn", "N1", "N32"), strict=True):
        values[f"{label}.chars_s"] = row["chars_s"]
        values[f"{label}.speedup"] = row["speedup"]
    return values


def extract_prepare_speed(_work: Path, out: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for row in json_lines(out[0]):
        what = row["what"].replace("prepare --tokenizer ", "prepare.").replace("word scanner, ", "scan.")
        for key in ("MB/s", "regex MB/s", "speedup", "whole command s"):
            if key in row:
                values[f"{what}.{key}"] = float(row[key])
    return values


def extract_prepare_commands(work: Path, out: list[str]) -> dict[str, float]:
    seconds = wall_seconds(work)
    size = (work / "big.txt").stat().st_size / 1e6
    return {
        "megabytes": size,
        "word.wall_seconds": seconds[1],
        "char.wall_seconds": seconds[2],
        "bpe.megabytes_per_s": size / last_json(out[4])["seconds"],
    }


def extract_adaptive_softmax(_work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    return {"full_ms": result["full"], "adaptive_ms": result["adaptive"], "speedup": result["speedup"]}


def extract_data_parallel(_work: Path, out: list[str]) -> dict[str, float]:
    return {
        f"{label}.tokens_per_s": last_json(stdout)["tokens_per_s"]
        for label, stdout in zip(("two_processes", "one_process_2_threads", "one_process_1_thread"), out, strict=True)
    }


def extract_ngram_speed(_work: Path, out: list[str]) -> dict[str, float]:
    row = json_lines(out[0])[0]
    keys = ("train_chars", "fit_s", "score_tok_per_s", "val_bits_per_char")
    # the script's val_chars counts the scored tokens, one fewer than the split's characters
    return {**{key: float(row[key]) for key in keys}, "val_chars": float(row["val_chars"] + 1)}


def extract_fuzz(work: Path, out: list[str]) -> dict[str, float]:
    return {"examples": number(r"thorough fuzz: (\d+) examples", out[0]), "seconds": wall_seconds(work)[0]}


def extract_cold_start(_work: Path, out: list[str]) -> dict[str, float]:
    """The timing lines and the greedy comparison of benchmarks/cold_start.py (one RUN per command)."""
    values: dict[str, float] = {}
    for label, stdout in zip(("2x256", "2x512"), out, strict=True):
        if "medians:" in stdout:
            values.update(
                {
                    "python_s": number(r"python -c pass ([\d.]+) s", stdout),
                    "import_torch_s": number(r"'import torch' ([\d.]+) s", stdout),
                    "generate_s": number(r"--max-new-tokens \d+ ([\d.]+) s", stdout),
                    "ratio_of_medians": number(r"generate / import torch: ([\d.]+) \(medians\)", stdout),
                    "median_ratio": number(r"\(medians\), ([\d.]+) \(median of per-round", stdout),
                    "generate_imported_torch": float("generate imported torch: yes" in stdout),
                }
            )
        values[f"{label}.continuations_differing"] = number(r"= [\d,]+ tokens: (\d+) continuation", stdout)
        values[f"{label}.argmax_differing"] = number(r"likeliest token differs at (\d+) of", stdout)
        values[f"{label}.max_logprob_difference"] = number(r"difference ([\d.e+-]+) nats", stdout)
        values[f"{label}.numpy_ms"] = number(r"NumPy ([\d.]+) ms/token", stdout)
        values[f"{label}.numpy_flushed_ms"] = number(r"\(([\d.]+) with denormals flushed\)", stdout)
        values[f"{label}.torch_ms"] = number(r"torch ([\d.]+) ms/token", stdout)
    return values


def extract_prompt_context(_work: Path, out: list[str]) -> dict[str, float]:
    return {
        "zero_state": number(r"from a zero state ([\d.]+) nats/token", out[0]),
        "after_newline": number(r"after a newline ([\d.]+)", out[0]),
    }


GENERATED = {  # the first line of each continuation in the README's generation table
    "beam1": "I will not shall be the sentence to the sentence.",
    "beam5": "And thou art thou art to the world, and thou art,",
    "sampled": "Yes, I mean you have like once upon our brother",
}


def extract_generation(_work: Path, out: list[str]) -> dict[str, float]:
    return {name: contains(GENERATED[name], stdout) for name, stdout in zip(GENERATED, out, strict=True)}


def extract_shakespeare_400(work: Path, out: list[str]) -> dict[str, float]:
    result = last_json(out[0])
    return {"val_loss": result["val_loss"], "seconds": result["seconds"], "steps": float(result["steps"])}


def extract_d2l_data(work: Path, out: list[str]) -> dict[str, float]:
    sizes = last_json(out[0])["sizes"]
    return {
        "vocab_size": float(find_key(read_json(work / "runs/d2l-data/config.json"), "vocab_size")),
        "train_chars": float(sizes["train"]),
        "val_chars": float(sizes["val"]),
    }


# ---- rnnkit inspect -------------------------------------------------------------------------


def inspect_findings(document: dict[str, Any]) -> dict[str, float]:
    """What the README's inspect section reads from one inspect.json: the best unit of each feature (as
    `FEATURE.best=UNIT` = 1), its r on both halves, the fresh model's held-out r, every listed unit's held-out
    r, and gate saturation as counts of units saturated more than half the time."""
    values: dict[str, float] = {
        "tokens": float(document["tokens"]),
        "characters": float(document["characters"]),
        "mean_nll_nats": document["mean_nll_nats"],
        "mean_surprisal_bits": document["mean_surprisal_bits"],
        "seconds": document["seconds"],
        "streams": float(document["streams"]),
    }
    if document.get("fresh_seconds") is not None:
        values["fresh_seconds"] = document["fresh_seconds"]
    for row in document["features"]:
        name, best, fresh = row["feature"], row["best"], row.get("fresh_best")
        if best is not None:
            values[f"{name}.best={best['unit']}"] = 1.0
            values[f"{name}.r_discovery"] = best["r_discovery"]
            values[f"{name}.r_heldout"] = best["r_heldout"]
        if fresh is not None:
            values[f"{name}.fresh_r_heldout"] = fresh["r_heldout"]
        for unit in row["top_units"]:
            values[f"{name}.{unit['unit']}.r_heldout"] = unit["r_heldout"]
    for layer, gates in document["saturation"]["trained"].items():
        for gate, fractions in gates.items():
            for side in ("left", "right"):
                values[f"{layer}.{gate}.mostly_{side}"] = float(sum(f > 0.5 for f in fractions[side]))
    fresh_fractions = [
        f for gates in document["saturation"]["fresh"].values() for sides in gates.values() for f in sides.values()
    ]
    values["fresh_saturated_max"] = max((max(f) for f in fresh_fractions), default=float("nan"))
    return values


def extract_inspect(run: str) -> Callable[[Path, list[str]], dict[str, float]]:
    def extract(work: Path, _out: list[str]) -> dict[str, float]:
        return inspect_findings(read_json(work / run / "inspect.json"))

    return extract


def extract_inspect_streams(work: Path, out: list[str]) -> dict[str, float]:
    """One stream against 8 on the same 30,000 tokens: how far the per-token values of the two runs differ."""
    import numpy as np

    one, eight = (work / "runs/inspect-1stream", work / "runs/inspect-8streams")
    documents = [last_json(stdout) for stdout in out]
    values = {"one.seconds": documents[0]["seconds"], "eight.seconds": documents[1]["seconds"]}
    values.update(
        {"one.mean_nll_nats": documents[0]["mean_nll_nats"], "eight.mean_nll_nats": documents[1]["mean_nll_nats"]}
    )
    surprisal = [np.load(run / "tokens/surprisal_bits.npy") for run in (one, eight)]
    values["max_surprisal_difference_bits"] = float(np.abs(surprisal[0] - surprisal[1]).max())
    same = all(
        a["best"] == b["best"] and a.get("fresh_best") == b.get("fresh_best")
        for a, b in zip(documents[0]["features"], documents[1]["features"], strict=True)
    )
    values["features_identical"] = float(same)
    for signal in ("h", "c"):
        differences = np.concatenate(
            [
                np.abs(np.load(path, mmap_mode="r") - np.load(eight / "activations" / path.name, mmap_mode="r")).ravel()
                for path in sorted((one / "activations").glob(f"layer*_{signal}.npy"))
            ]
        )
        values[f"{signal}.max_difference"] = float(differences.max())
        values[f"{signal}.percent_below_2e-5"] = 100 * float((differences < 2e-5).mean())
    return values


# the README's Python text: "the first 80 files of the standard library, in name order (__future__.py ..
# mailbox.py)", built from the running Python's standard library. Its byte count (2,256,456 with the
# Python 3.11.7 it was measured on) tells whether this Python's files are the same text.
PYTHON_STDLIB = (
    "python -c \"import pathlib, sysconfig; files = sorted(pathlib.Path(sysconfig.get_paths()['stdlib']).glob('*.py'))"
    "[:80]; open('python_stdlib.txt', 'wb').write(b''.join(f.read_bytes() for f in files)); "
    'print(files[0].name, files[-1].name, len(files))"'
)


def extract_python_model(work: Path, out: list[str]) -> dict[str, float]:
    first, last, count = out[0].split()
    trained = last_json(out[1])
    return {
        "bytes": float((work / "python_stdlib.txt").stat().st_size),
        "megabytes": (work / "python_stdlib.txt").stat().st_size / 1e6,
        "files_as_documented": float((first, last, int(count)) == ("__future__.py", "mailbox.py", 80)),
        "val_loss": trained["val_loss"],
        "steps": float(trained["steps"]),
        "seconds": trained["seconds"],
        **inspect_findings(read_json(work / "runs/inspect-python/inspect.json")),
    }


def extract_inspect_1mb(work: Path, out: list[str]) -> dict[str, float]:
    big, small = last_json(out[3]), last_json(out[5])
    use = usage(work)
    written = sorted((work / "runs/inspect-1mb/activations").glob("layer1_*.npy"))
    return {
        "characters": float(big["characters"]),
        "streams": float(big["streams"]),
        "seconds": big["seconds"],
        "fresh_seconds": big["fresh_seconds"],
        "user_s": use[3].get("user_s", float("nan")),
        "system_s": use[3].get("system_s", float("nan")),
        "peak_gb": use[3].get("peak_rss_bytes", float("nan")) / 1e9,
        "small.streams": float(small["streams"]),
        "small.peak_gb": use[5].get("peak_rss_bytes", float("nan")) / 1e9,
        "files": float(len(written)),
        "file_gb": max(path.stat().st_size for path in written) / 1e9,
    }


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

R = 0.001  # a correlation as the page writes it (3 decimals) against inspect.json's 4


def r_value(text: str) -> float:
    return float(text.replace("\u2212", "-"))


# the README's table of the Python model: feature, best unit, r first half, r held out, fresh model held out
PYTHON_FINDINGS = (
    ("line_position", "layer 0 c[103]", "+0.689", "+0.721", "−0.404"),
    ("inside_brackets", "layer 1 c[166]", "−0.657", "−0.523", "+0.229"),
    ("bracket_depth", "layer 1 c[166]", "−0.598", "−0.453", "+0.219"),
    ("inside_quotes", "layer 0 c[217]", "+0.434", "+0.576", "+0.210"),
    ("indent", "layer 1 c[78]", "+0.475", "+0.480", "−0.185"),
    ("uppercase", "layer 1 o[102]", "−0.673", "−0.655", "−0.272"),
    ("digit", "layer 1 i[232]", "+0.583", "+0.404", "−0.296"),
    ("inside_single_quotes", "layer 1 f[44]", "+0.636", "+0.371", "+0.333"),
    ("after_newline", "layer 1 f[130]", "−0.499", "−0.475", "−0.347"),
    ("inside_word", "layer 0 o[245]", "+0.871", "+0.905", "+0.768"),
    ("to_line_end", "layer 0 c[88]", "−0.382", "−0.395", "−0.388"),
)

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
            V("train_tokens", 160999, "160,999", 0),
            V("val_tokens", 8947, "8,947", 0),
            V("test_tokens", 8941, "8,941", 0),
            V("vocab_size", 69, "69 distinct symbols", 0),
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
            V("tm-rnn.parameters", 31845, "31,845", 0),
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
            V("8.seconds", 6.2, "6.2", TIMED),
            V("32.seconds", 4.1, "4.1", TIMED),
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
            V("8.steps", 679, "679", TIMED),
            V("32.steps", 267, "267", TIMED),
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
            V("noclip.final_val", 6.03, "6.03. With", 0.005),
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
            V("2.seconds", 34.4, "34.4", TIMED),
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
            V("gain", 21.3, "+21.3 points", 0.1),
            V("unidirectional.steps", 600, "after 600 steps", 0),
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
            V("gain", 10.4, "+10.4 points", TIMED),
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
            V("wall_seconds", 122.4, "122.4 s", TIMED),
            V("seconds", 119.1, "119.1 s", TIMED),
            V("tokens_per_s", 17195, "17,195", TIMED),
        ),
        threads=None,
        note="the README's opening paragraph: `rnnkit train` with no options against the 5-gram "
        "(torch's default threads; about 2 minutes on a quiet 2-core CPU)",
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
            V("ngram:3.val_bpc", 2.7092, "2.7092"),
            V("hmm:32.val_bpc", 3.6495, "3.6495"),
            V("rnn.parameters", 104581, "104,581", 0),
            V("gru.parameters", 269445, "269,445", 0),
            V("lstm.parameters", 351877, "351,877", 0),
            V("gru.steps", 681, "681", TIMED),
            V("lstm.steps", 832, "832", TIMED),
            V("rnn.val_loss", 1.4512, "1.4512", TIMED),
            V("gru.val_loss", 1.4556, "1.4556", TIMED),
            V("lstm.val_loss", 1.5972, "1.5972", TIMED),
            V("rnn.test_bpc", 2.1906, "2.1906", TIMED),
            V("hmm:32.train_seconds", 18.2, "18.2", TIMED),
            V("ngram:3.val_ppl", 6.54, "| 6.54 |", 0.005),
            V("ngram:5.val_ppl", 4.08, "| 4.08 |", 0.005),
            V("hmm:32.val_ppl", 12.55, "| 12.55 |", 0.005),
            V("ngram:3.train_seconds", 0.1, "| ngram:3 | 6,561 | 0.1 |", TIMED),
            V("ngram:5.train_seconds", 0.1, "fitted in 0.1 s", TIMED),
            V("rnn.train_seconds", 60.2, "| 60.2 |", TIMED),
            V("gru.train_seconds", 60.4, "| 60.4 |", TIMED),
            V("lstm.train_seconds", 60.1, "| 60.1 |", TIMED),
            V("rnn.val_ppl", 4.27, "| 4.27 |", TIMED),
            V("gru.val_ppl", 4.29, "| 4.29 |", TIMED),
            V("lstm.val_ppl", 4.94, "| 4.94 |", TIMED),
            V("gru.test_bpc", 2.1929, "2.1929", TIMED),
            V("lstm.test_bpc", 2.4053, "2.4053", TIMED),
            V("rnn.seconds_to_beat_ngram:3", 6, "after about 6 s", TIMED),
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
            V("hmm:32.train_seconds", 21.8, "fitted in 21.8 s", TIMED),
            V("ngram:5.train_seconds", 0.1, "each fitted in 0.1 s", TIMED),
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
            V("steps", 1500, "1,500 steps", 0),
            V("seconds", 560, "560 s", TIMED),
            V("val_loss_near_112s", 1.7885, "1.7885 after 112.5 s", TIMED),
            V("val_loss_near_150s", 1.7163, "1.7163 after 150 s", TIMED),
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
            V("tm.best_step", 800, "800 steps", 0),
            V("tm.vocab_size", 2040, "V=2,040", 0),
            V("shakespeare.vocab_size", 5126, "V=5,126", 0),
            V("tm.best_unk_percent", 12.3, "12.3%", 0.05),
            V("shakespeare.best_unk_percent", 6.7, "6.7%", 0.05),
            V("shakespeare.val_ppl@1400", 58.0, "ppl 58.0 at step 1,400", 0.05),
            V("shakespeare.val_ppl@1600", 56.5, "56.5 at 1,600", 0.05),
            V("shakespeare.steps", 2000, "2,000 steps", 0),
            V("tm.best_seconds", 114, "114 s to best", TIMED),
            V("tm.seconds", 133, "800 steps in 133 s", TIMED),
            V("shakespeare.seconds", 551, "551 s", TIMED),
            V("shakespeare.tokens_per_s", 4300, "about 4,300 words/s", TIMED),
        ),
        cost="heavy",
        threads=None,
        images={"runs/preset-word.png": "preset-word.png"},
        note="12 CPU minutes",
    ),
    Figure(
        "quick-train",
        ("README",),
        (
            "rnnkit train --data toy --layers 1 --hidden 64 --steps 200 --dropout 0 --lr 3e-3 --sample-tokens 60 "
            "--threads 1 --out runs/quick",
        ),
        extract_quick_train,
        (
            V("val_loss", 0.0213, "val loss 0.0213 nats/token"),
            V("val_ppl", 1.02, "ppl 1.02", 0.005),
            V("val_bpc", 0.0308, "bpc 0.0308"),
            V("sample", 1, QUICK_SAMPLE, 0),
            V("seconds", 31.2, "31.2 s", TIMED),
            V("tokens_per_s", 13144, "13,144 tokens/s", TIMED),
        ),
        cost="tiny",
        note="the output shown under 'A run ends with a sample' (a toy LSTM, 200 steps)",
    ),
    Figure(
        "finetune",
        ("README",),
        (
            "rnnkit train --data tinyshakespeare --model lstm --layers 1 --hidden 256 --embed 64 --steps 600 --seed 1 "
            "--dropout 0 --lr 3e-3 --out runs/shakespeare-1x256",
            "rnnkit train --init-from runs/shakespeare-1x256 --data timemachine --steps 200 --seed 1 --grow-vocab "
            "--dropout 0 --lr 3e-3 --out runs/tm-finetuned",
            "rnnkit train --data timemachine --model lstm --layers 1 --hidden 256 --embed 64 --steps 200 --seed 1 "
            "--dropout 0 --lr 3e-3 --out runs/tm-scratch",
        ),
        extract_finetune,
        (
            V("before", 2.0233, "2.0233"),
            V("finetuned", 1.5706, "1.5706"),
            V("scratch", 1.9137, "1.9137"),
        ),
        note="Fine-tuning: 600 steps on Tiny Shakespeare, then 200 on The Time Machine, against 200 from scratch "
        "(the source without its new rows, 2.0199, is not a command's output)",
    ),
    Figure(
        "score-example",
        ("README",),
        ('rnnkit score runs/tm-finetuned --text "It is raining" --top-k 3',),
        extract_score_example,
        (
            V("nats", 20.8888, "20.8888 nats"),
            V("nats_per_token", 1.6068, "1.6068 nats/token"),
            V("bits_per_char", 2.3182, "2.3182 bits/char"),
            V("ppl", 4.987, "ppl 4.987", 0.002),
            V("first_logprob", -2.9047, "-2.9047"),
            V("rows_as_documented", 13, "13 tokens, 13 chars", 0),
        ),
        cost="tiny",
        needs=("finetune",),
        note="Scoring text: the fine-tuned model's per-token table",
    ),
    Figure(
        "export",
        ("README",),
        (
            "rnnkit train --data timemachine --model lstm --layers 2 --hidden 128 --embed 64 --steps 300 "
            "--dropout 0 --lr 3e-3 --eval-interval 100 --out runs/tm-lstm --report-to tensorboard --device cpu",
            "rnnkit export runs/tm-lstm --format onnx --graph step",
            "rnnkit export runs/tm-lstm --format onnx",
            "rnnkit export runs/tm-lstm --format torchscript",
            "rnnkit export runs/tm-lstm --format pt2 --graph step",
        ),
        extract_export,
        (
            V("train.val_loss", 2.0181, "2.0181"),
            V("train.val_ppl", 7.52, "ppl 7.52", 0.005),
            V("train.val_bpc", 2.9115, "bpc 2.9115"),
            V("safetensors.bytes", 979876, "979,876 bytes", 0),
            # the sizes of the exported files depend on the exporters' versions (torch, onnx)
            V("step.bytes", 982728, "982,728 bytes", 0.01, True),
            V("window.bytes", 982417, "982,417 bytes", 0.01, True),
            V("torchscript.bytes", 990884, "990,884 bytes", 0.01, True),
            V("pt2.bytes", 1008231, "1,008,231 bytes", 0.01, True),
            # parity is float32 rounding: the claim is agreement to about 1e-6, not these exact digits
            V("step.diff_logits", 1.19e-6, "1.19e-06 (logits)", 5e-6),
            V("step.diff_state", 3.58e-7, "3.58e-07 (state)", 5e-6),
            V("window.diff_logits", 2.15e-6, "2.15e-06 (logits)", 5e-6),
            V("window.diff_state", 1.43e-6, "1.43e-06 (state)", 5e-6),
            V("torchscript.diff_logits", 0, "difference 0", 0),
            V("pt2.diff_logits", 0, "difference 0", 0),
        ),
        note="Export: the 2x128 LSTM, its ONNX step and window graphs, TorchScript and torch.export (needs the "
        "export and tensorboard extras)",
    ),
    Figure(
        "export-parity",
        ("README",),
        ("python benchmarks/export_parity.py --json",),
        extract_export_parity,
        (
            V("max_diff_logits", 6.2e-6, "6.2e-06 (logits)", 5e-6),
            V("max_diff_state", 4.2e-7, "4.2e-07 (state)", 5e-6),
            V("onnx_mb_min", 0.2, "0.2-1.1 MB", 0.05),
            V("onnx_mb_max", 1.1, "0.2-1.1 MB", 0.05),
            V("untied_size_excess_percent", 0.5, "within 0.5%", 0.05),
            V("tied_extra_kb", 35, "about 35 KB more", 5),
        ),
        cost="tiny",
        note="every kind, 1-2 layers, tied and untied, freshly initialised, exported to ONNX",
    ),
    Figure(
        "gru-forms",
        ("concepts", "README"),
        tuple(
            f"rnnkit train --data timemachine --model gru --gru-form {form} --layers 1 --hidden 64 --embed 16 "
            "--batch-size 16 --seq-len 64 --steps 150 --eval-interval 50 --eval-max-tokens 4000 --lr 3e-3 "
            f"--dropout 0 --device cpu --sample-tokens 0 --quiet --out runs/gru-{form}"
            for form in ("cudnn", "cho")
        ),
        extract_gru_forms,
        (
            V("cudnn.val@50", 2.8416, "2.8416"),
            V("cudnn.val@100", 2.5128, "2.5128"),
            V("cudnn.val@150", 2.4414, "2.4414"),
            V("cho.val@50", 2.8859, "2.8859"),
            V("cho.val@100", 2.5168, "2.5168"),
            V("cho.val@150", 2.4303, "2.4303"),
        ),
        cost="tiny",
        note="section 11: the two GRU forms, same model, data and seed, 150 steps",
    ),
    Figure(
        "d2l-presets",
        ("README",),
        (
            "rnnkit train --preset d2l-rnn --out runs/d2l-rnn --quiet",
            "rnnkit train --preset d2l-gru --out runs/d2l-gru --quiet",
        ),
        extract_d2l,
        (
            V("rnn.val_ppl", 7.19, "validation perplexity 7.19", 0.005),
            V("rnn.train_ppl", 5.85, "training 5.85", 0.005),
            V("rnn.steps", 1000, "1,000 steps", 0),
            V("gru.val_ppl", 8.23, "validation 8.23", 0.005),
            V("gru.train_ppl", 8.06, "training 8.06", 0.005),
            V("gru.steps", 500, "500 steps", 0),
            V("gru.val_ppl@180", 10.31, "val 10.31 at step 180", 0.005),
            V("rnn.wall_seconds", 29, "29 s", TIMED),
            V("gru.wall_seconds", 65, "65 s", TIMED),
        ),
        # one thread: the losses of a step budget do not depend on it, and two threads on a shared 2-core
        # machine are many times slower (README, Threads); the documented seconds were torch's two threads
        note="The d2l recipe: both presets (1,000 and 500 SGD steps)",
    ),
    Figure(
        "compare-40s-shakespeare",
        ("README", "concepts"),
        (
            "rnnkit compare --data tinyshakespeare --models minlstm,mingru,lstm,gru --budget-seconds 40 "
            "--out runs/cmp-ts40",
        ),
        extract_compare("runs/cmp-ts40"),
        (
            V("lstm.parameters", 350593, "350,593", 0),
            V("gru.parameters", 268161, "268,161", 0),
            V("mingru.parameters", 54145, "54,145", 0),
            V("minlstm.parameters", 70785, "70,785", 0),
            # a 40-second budget: the steps, and so every loss, depend on the machine's speed and load
            V("lstm.val_bpc", 2.3165, "2.3165", TIMED),
            V("gru.val_bpc", 2.4124, "2.4124", TIMED),
            V("mingru.val_bpc", 2.6663, "2.6663", TIMED),
            V("minlstm.val_bpc", 2.6696, "2.6696", TIMED),
            V("lstm.val_loss", 1.6057, "1.6057", TIMED),
            V("lstm.test_bpc", 2.4549, "2.4549", TIMED),
            V("lstm.steps", 1013, "1,013", TIMED),
            V("gru.steps", 541, "541", TIMED),
            V("mingru.steps", 2380, "2,380", TIMED),
            V("minlstm.steps", 1649, "1,649", TIMED),
            V("gru.val_loss", 1.6722, "1.6722", TIMED),
            V("mingru.val_loss", 1.8481, "1.8481", TIMED),
            V("minlstm.val_loss", 1.8505, "1.8505", TIMED),
            V("gru.test_bpc", 2.5196, "2.5196", TIMED),
            V("mingru.test_bpc", 2.8060, "2.8060", TIMED),
            V("minlstm.test_bpc", 2.7719, "2.7719", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="minGRU and minLSTM against the LSTM and GRU, 40 s each (README and concepts section 15)",
    ),
    Figure(
        "compare-40s-timemachine",
        ("README", "concepts"),
        (
            "rnnkit compare --data timemachine --models ngram:3,ngram:5,mlp:8,rnn,lstm --budget-seconds 40 "
            "--out runs/cmp-tm40",
        ),
        extract_compare("runs/cmp-tm40"),
        (
            V("ngram:3.val_bpc", 2.7092, "2.7092"),
            V("ngram:5.val_bpc", 2.0277, "2.0277"),
            V("ngram:5.test_bpc", 2.1056, "2.1056"),
            V("mlp:8.parameters", 153541, "153,541", 0),
            V("rnn.parameters", 104581, "104,581", 0),
            V("lstm.parameters", 351877, "351,877", 0),
            # a 40-second budget: the steps, and so every loss, depend on the machine's speed and load
            V("mlp:8.val_bpc", 2.2345, "2.2345", TIMED),
            V("rnn.val_bpc", 2.0952, "2.0952", TIMED),
            V("lstm.val_bpc", 2.2118, "2.2118", TIMED),
            V("mlp:8.steps", 1783, "1,783", TIMED),
            V("rnn.steps", 1543, "1,543", TIMED),
            V("lstm.steps", 1066, "1,066", TIMED),
            V("ngram:3.train_seconds", 0.0, "(fitted, 0.0 s)", TIMED),
            V("ngram:5.train_seconds", 0.1, "(fitted, 0.1 s)", TIMED),
            V("mlp:8.val_loss", 1.5488, "1.5488", TIMED),
            V("rnn.val_loss", 1.4523, "1.4523", TIMED),
            V("lstm.val_loss", 1.5331, "1.5331", TIMED),
            V("mlp:8.test_bpc", 2.3837, "2.3837", TIMED),
            V("rnn.test_bpc", 2.1889, "2.1889", TIMED),
            V("lstm.test_bpc", 2.3086, "2.3086", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="the MLP against the n-grams and RNNs, 40 s each (README and concepts section 14)",
    ),
    Figure(
        "threads-quiet",
        ("README",),
        ('python benchmarks/threads.py --threads 1,2 --rounds 2 --steps 20 --extra "--layers 2 --seq-len 128"',),
        extract_threads,
        (
            V("threads1.round0", 3215, "3,215", TIMED),
            V("threads1.round1", 3494, "3,494", TIMED),
            V("threads2.round0", 5927, "5,927", TIMED),
            V("threads2.round1", 5910, "5,910", TIMED),
            V("two_over_one.min", 1.7, "1.7-1.8x", TIMED),
            V("two_over_one.max", 1.8, "1.7-1.8x", TIMED),
        ),
        threads=None,
        note="Threads on a shared CPU: one thread against two, 2x512 LSTM at 32x128, on a quiet machine",
    ),
    Figure(
        "threads-shared",
        ("README",),
        (
            'python benchmarks/threads.py --threads 1,2 --rounds 3 --steps 60 --extra "--layers 2 --hidden 256"',
            'python benchmarks/threads.py --threads 1,2 --rounds 2 --steps 30 --busy --extra "--layers 2 --hidden 256"',
        ),
        lambda work, out: {
            **{f"shared.{k}": v for k, v in extract_threads(work, out[:1]).items()},
            **{f"busy.{k}": v for k, v in extract_threads(work, out[1:]).items()},
        },
        (
            V("shared.one_over_two.min", 8.8, "8.8x to 13.7x", TIMED),
            V("shared.one_over_two.max", 13.7, "8.8x to 13.7x", TIMED),
            V("busy.one_over_two.min", 11.5, "11.5x to 11.7x", TIMED),
            V("busy.one_over_two.max", 11.7, "11.5x to 11.7x", TIMED),
            V("shared.threads1.round0", 5022, "5,022", TIMED),
            V("shared.threads2.round0", 455, "455", TIMED),
            V("shared.threads1.round1", 2706, "2,706", TIMED),
            V("shared.threads1.round2", 2853, "2,853", TIMED),
            V("shared.threads2.round1", 306, "306", TIMED),
            V("shared.threads2.round2", 209, "209", TIMED),
            V("busy.threads1.round1", 1697, "1,697", TIMED),
            V("busy.threads2.round1", 147, "147", TIMED),
            V("busy.threads1.round0", 1501, "1,501", TIMED),
            V("busy.threads2.round0", 128, "128", TIMED),
        ),
        threads=None,
        note="Threads on a shared CPU: the 2x256 LSTM at 32x64 while other jobs ran (the figures need that load)",
    ),
    Figure(
        "bench-char-2x512-lstm",
        ("README",),
        ("rnnkit bench --device cpu --configs char-2x512-lstm --repeats 7 --json",),
        extract_bench,
        (
            V("char-2x512-lstm.rnnkit.tokens_per_s", 5431, "5,431", TIMED),
            V("char-2x512-lstm.plain.tokens_per_s", 5268, "5,268", TIMED),
            V("char-2x512-lstm.cell-loop.tokens_per_s", 2850, "2,850", TIMED),
            V("char-2x512-lstm.numpy.tokens_per_s", 4289, "4,289", TIMED),
            V("char-2x512-lstm.rnnkit.ms_per_step", 1508, "1,508", TIMED),
            V("char-2x512-lstm.plain.ms_per_step", 1555, "1,555", TIMED),
            V("char-2x512-lstm.cell-loop.ms_per_step", 2874, "2,874", TIMED),
            V("char-2x512-lstm.numpy.ms_per_step", 1910, "1,910", TIMED),
            V("char-2x512-lstm.rnnkit.ratio_to_plain", 1.031, "1.031", TIMED),
            V("char-2x512-lstm.rnnkit.ratio_paired", 0.983, "0.983", TIMED),
            V("char-2x512-lstm.cell-loop.ratio_to_plain", 0.541, "0.541", TIMED),
            V("char-2x512-lstm.numpy.ratio_to_plain", 0.814, "0.814", TIMED),
            V("char-2x512-lstm.rnnkit.peak_mib", 470, "| 470 |", TIMED),
            V("char-2x512-lstm.plain.peak_mib", 466, "| 466 |", TIMED),
            V("char-2x512-lstm.cell-loop.peak_mib", 417, "| 417 |", TIMED),
            V("char-2x512-lstm.numpy.peak_mib", 487, "| 487 |", TIMED),
            V("char-2x512-lstm.cell-loop.ratio_paired", 0.577, "0.577", TIMED),
            V("char-2x512-lstm.numpy.ratio_paired", 0.802, "0.802", TIMED),
            # "other runs gave": the same command, another run
            V("char-2x512-lstm.rnnkit.ratio_to_plain", 1.067, "1.067/1.046", TIMED),
            V("char-2x512-lstm.rnnkit.ratio_paired", 1.046, "1.067/1.046", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="Speed: rnnkit's training step against plain PyTorch, a cell loop and the NumPy engine",
    ),
    Figure(
        "bench-word-2x650",
        ("README",),
        ("rnnkit bench --device cpu --configs word-2x650 --repeats 7 --json",),
        extract_bench,
        (
            V("word-2x650.rnnkit.ratio_to_plain", 0.997, "0.997", TIMED),
            V("word-2x650.rnnkit.ratio_paired", 0.980, "0.980", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="Speed: the same comparison on the word-level configuration",
    ),
    Figure(
        "bench-long-512",
        ("README", "concepts"),
        ("rnnkit bench --device cpu --configs long-512 --impls rnnkit,plain,numpy --repeats 2 --json",),
        extract_bench_long,
        (
            V("long-512-mingru.rnnkit.tokens_per_s", 14847, "14,847", TIMED),
            V("long-512-minlstm.rnnkit.tokens_per_s", 14688, "14,688", TIMED),
            V("long-512-gru.rnnkit.tokens_per_s", 1133, "1,133", TIMED),
            V("long-512-lstm.rnnkit.tokens_per_s", 8959, "8,959", TIMED),
            V("long-512-gru.plain.tokens_per_s", 432, "432", TIMED),
            V("long-512-lstm.plain.tokens_per_s", 8257, "8,257", TIMED),
            V("long-512-mingru.numpy.tokens_per_s", 23370, "23,370", TIMED),
            V("long-512-minlstm.numpy.tokens_per_s", 20819, "20,819", TIMED),
            V("long-512-gru.numpy.tokens_per_s", 2661, "2,661", TIMED),
            V("long-512-lstm.numpy.tokens_per_s", 5474, "5,474", TIMED),
            V("rnnkit.mingru_over_lstm", 1.66, "1.66x", TIMED),
            V("rnnkit.mingru_over_gru", 13.1, "13.1x", TIMED),
            V("rnnkit.minlstm_over_lstm", 1.64, "1.64x", TIMED),
            V("rnnkit.minlstm_over_gru", 13.0, "13.0x", TIMED),
            V("numpy.mingru_over_lstm", 4.3, "4.3x", TIMED),
            V("numpy.mingru_over_gru", 8.8, "8.8x", TIMED),
            V("numpy.minlstm_over_lstm", 3.8, "3.8x", TIMED),
            V("numpy.minlstm_over_gru", 7.8, "7.8x", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="minGRU, minLSTM, GRU and LSTM at T = 512 (README 'The seeds' remaining models', concepts section 15)",
    ),
    Figure(
        "bench-gru-forms",
        ("README", "concepts"),
        ("rnnkit bench --device cpu --configs gru-forms-small --impls rnnkit,plain,numpy --repeats 3 --json",),
        extract_bench_gru_forms,
        (
            V("rnnkit.cho", 9145, "9,145", TIMED),
            V("rnnkit.cudnn", 19233, "19,233", TIMED),
            V("rnnkit.cho_over_cudnn", 0.48, "0.48x", TIMED),
            V("numpy.cho", 2687, "2,687", TIMED),
            V("numpy.cudnn", 6906, "6,906", TIMED),
            V("numpy.cho_over_cudnn", 0.39, "0.39x", TIMED),
        ),
        threads=None,
        note="what the Cho-form GRU costs (1x128, batch 32 x 64)",
    ),
    Figure(
        "numpy-engine",
        ("README",),
        ("python benchmarks/numpy_engine.py --json",),
        extract_numpy_engine,
        (
            V("H64.numpy_tok_s", 185537, "185,537", TIMED),
            V("H64.torch_tok_s", 110935, "110,935", TIMED),
            V("H64.ratio", 1.67, "(1.67x", TIMED),
            V("H128.numpy_tok_s", 92026, "92,026", TIMED),
            V("H128.torch_tok_s", 78470, "78,470", TIMED),
            V("H128.ratio", 1.17, "(1.17x", TIMED),
            V("H256.numpy_tok_s", 35969, "35,969", TIMED),
            V("H256.torch_tok_s", 30550, "30,550", TIMED),
            V("H256.ratio", 1.18, "(1.18x", TIMED),
            V("H512.numpy_tok_s", 13374, "13,374", TIMED),
            V("H512.torch_tok_s", 13414, "13,414", TIMED),
            V("H512.ratio", 1.00, "(1.00x", TIMED),
            V("min-char-rnn.chars_s", 15856, "15,856", TIMED),
            V("N1.chars_s", 69111, "69,111 chars/s", TIMED),
            V("N1.speedup", 4.4, "(4.4x", TIMED),
            V("N32.chars_s", 352270, "352,270 chars/s", TIMED),
            V("N32.speedup", 22.2, "(22.2x", TIMED),
        ),
        threads=None,
        note="More measured figures: the NumPy engine against torch and against min-char-rnn",
    ),
    Figure(
        "prepare-speed",
        ("README",),
        ("python benchmarks/prepare_speed.py --json",),
        extract_prepare_speed,
        (
            V("prepare.char.MB/s", 52.7, "char 52.7 MB/s", TIMED),
            V("prepare.word.MB/s", 44.8, "word 44.8 MB/s", TIMED),
            V("prepare.char.whole command s", 0.82, "0.82 s", TIMED),
            V("prepare.word.whole command s", 0.95, "0.95 s", TIMED),
            V("scan.english (ASCII).MB/s", 75.5, "English 75.5", TIMED),
            V("scan.english (ASCII).regex MB/s", 11.7, "vs 11.7 MB/s", TIMED),
            V("scan.english (ASCII).speedup", 6.5, "(6.5x)", TIMED),
            V("scan.curly apostrophes.MB/s", 38.4, "curly apostrophes 38.4", TIMED),
            V("scan.curly apostrophes.speedup", 4.0, "(4.0x)", TIMED),
            V("scan.accented e.MB/s", 41.7, "accented e 41.7", TIMED),
            V("scan.accented e.speedup", 3.6, "(3.6x)", TIMED),
            V("scan.Cyrillic letters.MB/s", 61.7, "Cyrillic 61.7", TIMED),
            V("scan.Cyrillic letters.speedup", 3.5, "(3.5x)", TIMED),
            V("scan.curly apostrophes.regex MB/s", 9.6, "vs 9.6", TIMED),
            V("scan.accented e.regex MB/s", 11.6, "vs 11.6", TIMED),
            V("scan.Cyrillic letters.regex MB/s", 17.7, "vs 17.7", TIMED),
        ),
        threads=None,
        note="More measured figures: prepare's throughput on 33.5 MB and the word scanner against the regex",
    ),
    Figure(
        "prepare-commands",
        ("README",),
        (
            "python -c \"import rnnkit.text.corpora as c; open('big.txt', 'w', encoding='utf-8')"
            ".write(c.bundled_text('tinyshakespeare') * 30)\"",
            "rnnkit prepare --data big.txt --tokenizer word --out prepared/big --overwrite --quiet",
            "rnnkit prepare --data big.txt --tokenizer char --out prepared/big --overwrite --quiet",
            "rnnkit prepare --data big.txt --tokenizer bpe --bpe-vocab 2000 --out prepared/big-bpe --overwrite --quiet",
            "rnnkit prepare --data big.txt --tokenizer-from prepared/big-bpe --out prepared/big-bpe2 --overwrite "
            "--quiet --json",
        ),
        extract_prepare_commands,
        (
            V("megabytes", 33.5, "33.5 MB", 0.05),
            V("word.wall_seconds", 1.48, "1.48 s", TIMED),
            V("char.wall_seconds", 1.31, "1.31 s", TIMED),
            V("bpe.megabytes_per_s", 5.0, "4.6-5.3 MB/s", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="More measured figures: whole prepare commands (this version's side; the comparison with commit "
        "39a399c needs that commit) and BPE encoding with a reused tokenizer (training it first takes minutes)",
    ),
    Figure(
        "adaptive-softmax",
        ("README",),
        ("python benchmarks/adaptive_softmax.py --steps 4 --json",),
        extract_adaptive_softmax,
        (
            V("adaptive_ms", 422.8, "422.8 ms", TIMED),
            V("full_ms", 715.7, "715.7 ms", TIMED),
            V("speedup", 1.69, "1.69x faster", TIMED),
        ),
        cost="tiny",
        threads=None,
        note="More measured figures: adaptive against full softmax, 2x650 LSTM, V=10,000",
    ),
    Figure(
        "data-parallel",
        ("README",),
        tuple(
            f"{launcher} --data tinyshakespeare --layers 1 --hidden 256 --seq-len 64 --lr 3e-3 --dropout 0 "
            f"--steps 150 --device cpu{threads} --sample-tokens 0 --quiet --json --out runs/{name}"
            for launcher, threads, name in (
                ("torchrun --nproc_per_node 2 -m rnnkit train", " --threads 1", "ddp"),
                ("rnnkit train", " --threads 2", "one-process-2-threads"),
                ("rnnkit train", " --threads 1", "one-process-1-thread"),
            )
        ),
        extract_data_parallel,
        (
            V("two_processes.tokens_per_s", 40976, "37,858-44,093", TIMED),
            V("one_process_2_threads.tokens_per_s", 41667, "40,655-42,678", TIMED),
            V("one_process_1_thread.tokens_per_s", 25334, "24,448-26,219", TIMED),
        ),
        threads=None,
        note="More measured figures and Threads: two gloo processes against one process with 2 or 1 threads "
        "(documented: ranges over several runs; the middle of each range is shown)",
    ),
    Figure(
        "ngram-speed",
        ("README",),
        ("python benchmarks/ngram_speed.py --json",),
        extract_ngram_speed,
        (
            V("train_chars", 1003854, "1,003,854", 0),
            V("val_chars", 111540, "111,540", 0),
            V("val_bits_per_char", 2.2523, "2.2523"),
            V("fit_s", 0.844, "0.844 s", TIMED),
            V("score_tok_per_s", 1137481, "1,137,481", TIMED),
        ),
        cost="tiny",
        note="the n-gram's own speed: order 5 on tinyshakespeare",
    ),
    Figure(
        "fuzz",
        ("README",),
        ("python -m pytest -m slow tests/test_fuzz.py -s",),
        extract_fuzz,
        (
            V("examples", 1800, "1,800 generated cases", 0),
            V("seconds", 17, "17 s", TIMED),
        ),
        note="More measured figures: the thorough fuzzing of bad input (hypothesis)",
    ),
    Figure(
        "shakespeare-400",
        ("README",),
        (
            "rnnkit train --preset shakespeare-char-cpu --steps 400 --max-seconds 1200 --eval-max-tokens 30000 "
            "--out runs/shakespeare --quiet --json",
        ),
        extract_shakespeare_400,
        (
            V("val_loss", 1.7906, "1.7906"),
            V("steps", 400, "400 steps", 0),
            V("seconds", 1122, "1,122 s", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="the 2x256 Tiny Shakespeare model that inspect and cold_start.py use (400 steps; 1,122 s under load)",
    ),
    Figure(
        "cold-start",
        ("README",),
        (
            "python benchmarks/cold_start.py runs/shakespeare --rounds 10",
            "python benchmarks/cold_start.py runs/lstm-2x512 --rounds 0",
        ),
        extract_cold_start,
        (
            V("generate_imported_torch", 0, "Neither generate process imported torch", 0),
            V("2x256.continuations_differing", 0, "no continuation differed", 0),
            V("2x256.argmax_differing", 0, "the likeliest token never differed", 0),
            V("2x512.continuations_differing", 0, "no continuation differed", 0),
            V("2x512.argmax_differing", 0, "the likeliest token never differed", 0),
            # float32 rounding of two engines: the claim is agreement to a few 1e-6 nats
            V("2x256.max_logprob_difference", 4.65e-6, "4.65e-06 nats", 1e-5),
            V("2x512.max_logprob_difference", 5.48e-6, "5.48e-06 nats", 1e-5),
            V("median_ratio", 0.17, "**0.17**", TIMED),
            V("ratio_of_medians", 0.17, "(0.17)", TIMED),
            V("import_torch_s", 3.411, "3.411 s", TIMED),
            V("generate_s", 0.579, "0.579 s", TIMED),
            V("python_s", 0.023, "0.023 s", TIMED),
            V("2x256.numpy_ms", 0.19, "0.35 / 0.19 ms", TIMED),
            V("2x256.numpy_flushed_ms", 0.245, "0.245", TIMED),
            V("2x512.numpy_ms", 0.74, "0.52 / 0.74 ms", TIMED),
            V("2x512.torch_ms", 5.4, "4.9-5.9 ms", TIMED),
            V("2x256.torch_ms", 0.64, "1.1-1.4 / 0.63-0.65 ms", TIMED),
            V("2x256.numpy_ms", 0.248, "0.248", TIMED),
            V("2x512.numpy_flushed_ms", 0.85, "0.56 / 0.90 / 0.79 / 1.07", TIMED),
            V("2x512.numpy_ms", 0.86, "0.45 / 0.91 / 0.81 / 1.18", TIMED),
            # the first run's column (load about 11): the same command, another run
            V("python_s", 0.046, "0.046 s", TIMED),
            V("import_torch_s", 6.790, "6.790 s", TIMED),
            V("generate_s", 1.071, "1.071 s", TIMED),
            V("median_ratio", 0.16, "**0.16**", TIMED),
            V("ratio_of_medians", 0.18, "(0.18)", TIMED),
        ),
        cost="heavy",
        needs=("shakespeare-400", "default-2x512"),
        note="Start-up on the CPU: generate's cold start against import torch, and NumPy against torch on greedy "
        "tokens (10,000 per model)",
    ),
    Figure(
        "prompt-context",
        ("README",),
        ("python benchmarks/prompt_context.py runs/preset-shakespeare-char-cpu",),
        extract_prompt_context,
        (
            V("zero_state", 2.04, "2.04 nats/char", 0.005),
            V("after_newline", 1.66, "1.66 after a", 0.005),
        ),
        cost="heavy",
        needs=("preset-shakespeare-char-cpu",),
        note="Generation: what reading a prompt from a zero state costs the CPU preset's model",
    ),
    Figure(
        "generation-table",
        ("README",),
        tuple(
            f'rnnkit generate runs/preset-shakespeare-char-cpu --prompt "ROMEO:" --max-new-tokens 150 {options}'
            for options in ("--beam 1", "--beam 5", "--temperature 0.8 --seed 1")
        ),
        extract_generation,
        tuple(V(name, 1, text, 0) for name, text in GENERATED.items()),
        cost="heavy",
        needs=("preset-shakespeare-char-cpu",),
        note="Generation: greedy, beam 5 and sampled text from the CPU preset's model (1 = the documented first "
        "line is in the output)",
    ),
    Figure(
        "d2l-data",
        ("README",),
        ("rnnkit train --preset d2l-rnn --steps 1 --sample-tokens 0 --out runs/d2l-data --quiet --json",),
        extract_d2l_data,
        (
            V("vocab_size", 27, "27 symbols here", 0),
            V("train_chars", 10027, "10,027", 0),
            V("val_chars", 5019, "5,019", 0),
        ),
        cost="tiny",
        note="The d2l recipe: the presets' data (one step of d2l-rnn prints its split sizes and vocabulary)",
    ),
    Figure(
        "inspect-streams",
        ("README",),
        tuple(
            f"rnnkit inspect runs/shakespeare --data tinyshakespeare --max-tokens 30000 --streams {streams} "
            f"--out runs/inspect-{name} --quiet --json"
            for streams, name in ((1, "1stream"), (8, "8streams"))
        ),
        extract_inspect_streams,
        (
            V("one.mean_nll_nats", 1.78907, "(1.78907 nats)", 0.000005),
            V("eight.mean_nll_nats", 1.78907, "(1.78907 nats)", 0.000005),
            V("max_surprisal_difference_bits", 0.0002, "0.0002 bits", 0.0001),
            V("features_identical", 1, "identical for every", 0),
            V("h.max_difference", 0.0008, "0.0008 in h", 0.0002),
            V("c.percent_below_2e-5", 99.9, "99.9% of values", 0.05),
            V("c.max_difference", 1.56, "difference, 1.56", 0.05, True),
            V("eight.seconds", 13.3, "13.3 s", TIMED),
            V("one.seconds", 43.4, "43.4 s", TIMED),
        ),
        cost="heavy",
        needs=("shakespeare-400",),
        threads=None,
        note="Inside a trained network: 8 streams against one on the first 30,000 validation characters",
    ),
    Figure(
        "inspect-shakespeare",
        ("README", "concepts"),
        ("rnnkit inspect runs/shakespeare --data tinyshakespeare --out runs/inspect-shakespeare --quiet --json",),
        extract_inspect("runs/inspect-shakespeare"),
        (
            V("characters", 111539, "111,539", 0),
            V("mean_nll_nats", 1.7955, "1.7955 nats"),
            V("mean_surprisal_bits", 2.590, "(2.590 bits)"),
            V("line_position.best=layer 0 c[146]", 1, "c[146]", 0),
            V("line_position.r_discovery", -0.886, "\u22120.886", R),
            V("line_position.r_heldout", -0.890, "\u22120.890", R),
            V("line_position.fresh_r_heldout", -0.350, "\u22120.350", R),
            V("to_line_end.layer 0 c[146].r_heldout", 0.562, "+0.562", R),
            V("inside_single_quotes.r_heldout", 0.200, "+0.200", R),
            V("inside_single_quotes.fresh_r_heldout", -0.180, "\u22120.180", R),
            V("uppercase.r_heldout", -0.815, "(\u22120.815 held out", R),
            V("uppercase.fresh_r_heldout", -0.549, "\u22120.549)", R),
            V("inside_word.r_heldout", 0.815, "(+0.815, fresh", R),
            V("inside_word.fresh_r_heldout", 0.686, "+0.686", R),
            V("after_newline.r_heldout", 0.656, "+0.656", R),
            V("after_newline.fresh_r_heldout", 0.456, "+0.456", R),
            V("layer1.i.mostly_right", 177, "177 of 256 input-gate units", 0),
            V("layer1.f.mostly_right", 148, "148 forget-gate units", 0),
            V("layer0.f.mostly_right", 21, "21 units mostly right-saturated", 0),
            V("layer0.f.mostly_left", 24, "and 24 mostly", 0),
            V("fresh_saturated_max", 0, "ever went below 0.1 or above 0.9", 0),
        ),
        cost="heavy",
        needs=("shakespeare-400",),
        threads=None,
        note="What it found on two char models: Tiny Shakespeare (README and concepts section 16; 'mostly' = "
        "saturated more than half the time)",
    ),
    Figure(
        "inspect-python",
        ("README", "concepts"),
        (
            PYTHON_STDLIB,
            "rnnkit train --preset shakespeare-char-cpu --data python_stdlib.txt --steps 400 --max-seconds 1200 "
            "--eval-max-tokens 30000 --out runs/python --quiet --json",
            "rnnkit inspect runs/python --data python_stdlib.txt --out runs/inspect-python --show-from 156299 "
            "--quiet --json",
        ),
        extract_python_model,
        (
            V("bytes", 2256456, "2,256,456 bytes", 0),
            V("megabytes", 2.26, "2.26 MB", 0.005),
            V("files_as_documented", 1, "(__future__.py .. mailbox.py)", 0),
            V("val_loss", 1.6319, "1.6319 nats/char"),
            V("steps", 400, "400 steps", 0),
            V("characters", 225645, "225,645", 0),
            V("mean_nll_nats", 1.7213, "1.7213 nats"),
            V("mean_surprisal_bits", 2.483, "(2.483 bits)"),
            *(
                value
                for feature, unit, first, held, fresh in PYTHON_FINDINGS
                for value in (
                    V(f"{feature}.best={unit}", 1, unit, 0),
                    V(f"{feature}.r_discovery", r_value(first), first, R),
                    V(f"{feature}.r_heldout", r_value(held), held, R),
                    V(f"{feature}.fresh_r_heldout", r_value(fresh), fresh, R),
                )
            ),
            V("layer1.i.mostly_right", 151, "on Python, 151 and 110", 0),
            V("layer1.f.mostly_right", 110, "on Python, 151 and 110", 0),
            V("seconds", 1161, "1,161 s", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="What it found on two char models: the Python model (its text is built from this Python's standard "
        "library; the byte count says whether it is the same text)",
    ),
    Figure(
        "inspect-1mb",
        ("README",),
        (
            PYTHON_STDLIB,
            "python -c \"open('python_1mb.txt', 'w', encoding='utf-8').write(open('python_stdlib.txt', "
            "encoding='utf-8').read(1_000_000))\"",
            "rnnkit train --data python_stdlib.txt --layers 2 --hidden 512 --embed 64 --steps 1 --lr 1e-9 "
            "--sample-tokens 0 --out runs/lstm-2x512-untrained --quiet",
            "rnnkit inspect runs/lstm-2x512-untrained --file python_1mb.txt --layer 1 --dtype float16 "
            "--out runs/inspect-1mb --quiet --json",
            "python -c \"open('python_100k.txt', 'w', encoding='utf-8').write(open('python_stdlib.txt', "
            "encoding='utf-8').read(100_000))\"",
            "rnnkit inspect runs/lstm-2x512-untrained --file python_100k.txt --layer 1 --dtype float16 --streams 128 "
            "--out runs/inspect-100k --quiet --json",
        ),
        extract_inspect_1mb,
        (
            V("characters", 1000000, "1,000,000 characters", 0),
            V("files", 5, "5 files of 1.02 GB", 0),
            V("file_gb", 1.02, "5 files of 1.02 GB", 0.005),
            V("streams", 128, "in 128 streams", 0),
            V("small.streams", 128, "also in 128 streams", 0),
            # memory depends on the allocator and the libraries' versions, not on the machine's load
            V("peak_gb", 1.44, "1.44 GB", 0.1, True),
            V("small.peak_gb", 1.36, "peaked at 1.36", 0.1, True),
            V("seconds", 711, "711 s wall clock", TIMED),
            V("fresh_seconds", 56, "another 56 s", TIMED),
            V("user_s", 205, "205 s of user CPU time", TIMED),
            V("system_s", 10, "10 s of system time", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="Speed and memory on 1 MB: an untrained 2x512 LSTM (one step at lr 1e-9: train needs a step) "
        "records layer 1 in float16 (CPU time and peak memory as /usr/bin/time -v reports them)",
    ),
    Figure(
        "serve-load",
        ("README",),
        (
            "python benchmarks/serve_load.py --run runs/default --json serve-load.json",
            "python benchmarks/serve_load.py --hidden 32 --json serve-tiny.json",
        ),
        extract_serve_load,
        (
            V("batched.errors", 0, "192 / 0", 0),
            V("unbatched.errors", 0, "192 / 0", 0),
            V("batched.rss_growth_mb", 0.1, "under 10 MB", 9.9),
            V("batched.tokens_per_s", 4260, "**4,260**", TIMED),
            V("unbatched.tokens_per_s", 2268, "| 2,268 |", TIMED),
            V("gain", 1.88, "throughput 1.88x", TIMED),
            V("alone.batched", 7060, "7,060 tokens/s", TIMED),
            V("alone.unbatched", 3482, "3,482 tokens/s", TIMED),
            V("batched.start_rss_mb", 84.9, "RSS 85 MB at start", TIMED),
            V("tiny.batched.tokens_per_s", 8751, "reached 8,751", TIMED),
            V("tiny.unbatched.tokens_per_s", 4928, "against 4,928 tokens/s", TIMED),
            V("tiny.gain", 1.78, "HTTP (1.78x)", TIMED),
        ),
        needs=("default-train",),
        threads=None,
        note="rnnkit serve under load: 32 clients streaming and scoring, batched against --max-batch 1",
    ),
    Figure(
        "score-speed",
        ("README",),
        (
            "rnnkit train --data timemachine --layers 1 --hidden 64 --steps 200 --dropout 0 --lr 3e-3 "
            "--sample-tokens 0 --out runs/score-1x64 --quiet",
            "python benchmarks/score_speed.py runs/score-1x64 --repeats 6 --engine numpy",
            "python benchmarks/score_speed.py runs/score-1x64 --repeats 6 --engine torch",
        ),
        extract_score_speed,
        (
            V("numpy.best", 1.02, "1.02x evaluate's time", TIMED),
            V("numpy.median", 1.01, "1.01x median of pairs", TIMED),
            V("torch.best", 1.05, "torch engine 1.05x", TIMED),
            V("torch.median", 1.05, "(1.05x median)", TIMED),
        ),
        note="Scoring text: score against evaluate on the same 1,000,000 tokens, one thread",
    ),
    Figure(
        "default-2x512",
        ("README",),
        (
            "rnnkit train --layers 2 --seq-len 128 --steps 400 --out runs/lstm-2x512 --quiet --json",
            "rnnkit train --layers 2 --seq-len 128 --hidden 384 --steps 340 --out runs/lstm-2x384 --quiet --json",
        ),
        lambda work, out: {
            "2x512.val_bpc": last_json(out[0])["val_bpc"],
            "2x512.val_loss": last_json(out[0])["val_loss"],
            "2x512.wall_seconds": wall_seconds(work)[0],
            "2x384.val_bpc": last_json(out[1])["val_bpc"],
        },
        (
            V("2x512.val_bpc", 1.977, "1.977 but took", 0.002),
            V("2x512.val_loss", 1.37, "1.37 nats/char", 0.005),
            V("2x384.val_bpc", 2.252, "340 steps 2.252", 0.002),
            V("2x512.wall_seconds", 304, "5 min 4 s", TIMED),
        ),
        cost="heavy",
        threads=None,
        note="the earlier default (2x512 LSTM at 32x128, 400 steps; the 2x512 model of the cold-start figures) "
        "and a 2x384 given 340 steps, from the search for the default",
    ),
    Figure(
        "score-engines",
        ("README",),
        (
            "python -c \"import rnnkit.text.corpora as c; open('shakespeare_100k.txt', 'w', encoding='utf-8')"
            ".write(c.bundled_text('tinyshakespeare')[:100_000])\"",
            "python -c \"import rnnkit.text.corpora as c; open('timemachine_100k.txt', 'w', encoding='utf-8')"
            ".write(c.bundled_text('timemachine')[:100_000])\"",
            *(
                f"rnnkit score runs/shakespeare --file shakespeare_100k.txt --engine {engine}"
                for engine in ("numpy", "torch", "numpy", "torch")
            ),
            "rnnkit score runs/lstm-2x512 --file timemachine_100k.txt --engine numpy",
            "rnnkit score runs/lstm-2x512 --file timemachine_100k.txt --engine torch",
            *(
                f"rnnkit evaluate runs/lstm-2x512 --max-tokens 20000 --engine {engine} --json"
                for engine in ("numpy", "torch", "numpy", "torch")
            ),
        ),
        extract_score_engines,
        (
            V("evaluate.tokens", 8944, "8,944-token", 0),
            V("2x256.numpy", 4.0, "4.0 / 4.4 s on NumPy", TIMED),
            V("2x256.torch", 3.7, "3.7 / 4.4 s on torch", TIMED),
            V("2x512.numpy", 10.7, "10.7 s on NumPy", TIMED),
            V("2x512.torch", 6.5, "6.5 s on torch", TIMED),
            V("evaluate.numpy", 4.9, "4.9 / 5.1 s", TIMED),
            V("evaluate.torch", 2.6, "2.6 / 2.5 s", TIMED),
        ),
        cost="heavy",
        needs=("shakespeare-400", "default-2x512"),
        threads=None,
        note="Start-up on the CPU: whole score and evaluate commands on each engine (100 kB of each model's corpus)",
    ),
)
BY_NAME = {figure.name: figure for figure in REGISTRY}


@dataclass(frozen=True)
class NotReproduced:
    """A figure on the pages that no command of this checkout produces, and why (`--list` prints them)."""

    text: str  # the figure exactly as the page writes it (a fast test checks that it is there)
    page: str  # key of PAGES
    reason: str


OLD_CODE = "measured on code this checkout no longer has: "
NOT_REPRODUCED: tuple[NotReproduced, ...] = (
    NotReproduced(
        "260 steps 2.081",
        "README",
        "one run of the search for the default configuration (a 2x512 LSTM without dropout); its other options "
        "(sequence length, learning rate) were not written down",
    ),
    NotReproduced(
        "1.21x the time of `import torch`",
        "README",
        OLD_CODE + "generate on the torch path, the parent commit of the NumPy engine's start-up change",
    ),
    NotReproduced("2.64x in a 10-round run", "README", OLD_CODE + "the same comparison, a second run"),
    NotReproduced(
        "0.54 / 0.31 ms",
        "README",
        OLD_CODE + "the NumPy LSTM before it stopped copying a scaled W_hh at every call (2x256 model)",
    ),
    NotReproduced("2.41 / 2.27 ms", "README", OLD_CODE + "the same, 2x512 model"),
    NotReproduced(
        "3.12 s wall (median ratio 0.46)",
        "README",
        OLD_CODE + "rnnkit prepare at commit 39a399c (this version's side is the prepare-commands entry)",
    ),
    NotReproduced("1.72 s (0.75)", "README", OLD_CODE + "rnnkit prepare at commit 39a399c, char tokenizer"),
    NotReproduced("was 1.36 MB/s", "README", OLD_CODE + "BPE encoding before its rewrite"),
    NotReproduced(
        "39.1-51.9 and 34.4-35.8", "README", OLD_CODE + "prepare_speed.py's earlier runs on older code of that session"
    ),
    NotReproduced(
        "585 tokens/s for minGRU against 672",
        "README",
        OLD_CODE + "CPU training through the parallel log-space scan, since replaced by the loop (the scan runs "
        "on CUDA only)",
    ),
    NotReproduced("585 tokens/s against the GRU's 672", "concepts", OLD_CODE + "the same CPU scan run"),
    NotReproduced(
        "the loop took 0.24-0.31 s",
        "README",
        "the loop and the scan timed on tensors directly; no command or script was recorded, and the CPU path "
        "no longer runs the scan",
    ),
    NotReproduced("the scan 1.2-1.4 s", "README", "the same timing of the scan on tensors"),
    NotReproduced(
        "has 2.0199 there",
        "README",
        "the source model without the added rows, scored through the API: no command prints it (evaluate "
        "refuses the new text's characters; train --init-from records 2.0233, the grown model's loss)",
    ),
    NotReproduced(
        "went on with `w' the sentence,`",
        "README",
        "generate always reads a newline before a prompt that lacks one, so no command reads a prompt from a "
        "zero state; the text came from the API",
    ),
    NotReproduced(
        "12 alternating rounds gave rnnkit/plain = 1.02",
        "README",
        "thread CPU time with one thread: no command or script of the checkout measures it",
    ),
    NotReproduced(
        "0.86 and 0.99", "README", "single steps while other jobs shared the cores: the load cannot be recreated"
    ),
    NotReproduced(
        "about 4,700 words/s",
        "README",
        "150-step trials of the shakespeare-word model with and without its regularisers: their commands were not "
        "written down",
    ),
    NotReproduced("3,200-4,300 with all of them", "README", "the same 150-step trials"),
    NotReproduced("4,000-4,100 with weight-drop alone", "README", "the same 150-step trials"),
    NotReproduced(
        "a trial with a 3,000-step schedule was best",
        "README",
        "a trial of timemachine-word whose options were not recorded",
    ),
    NotReproduced(
        "worst seen 3.1e-7",
        "README",
        "the worst over every configuration the row names (cells, depths, one-hot, tied); only one of those "
        "gradcheck commands is written (the gradcheck entry checks its verdict)",
    ),
    NotReproduced(
        "reached 390%", "README", "the bench's spread column in one of the session's runs, not recorded which"
    ),
)


# ---- running ----------------------------------------------------------------------------------


def command_argv(command: str) -> list[str]:
    """The documented command as an argv for this interpreter: `rnnkit ...` -> python -m rnnkit ...,
    `torchrun ...` -> python -m torch.distributed.run ..., and `python benchmarks/x.py` (or tests/)
    names the script in this checkout, since commands run in a scratch directory."""
    argv = shlex.split(command)
    if argv[0] == "rnnkit":
        return [sys.executable, "-m", "rnnkit", *argv[1:]]
    if argv[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *(str(ROOT / arg) if arg.startswith(SCRIPT_FOLDERS) else arg for arg in argv[1:])]
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


# Runs a command as its child and writes [exit status, user s, system s, peak RSS] to argv[1]. A small
# process in between, because Linux keeps a process's peak memory across exec: a command forked straight
# from this one would report at least this process's memory.
MEASURE = (
    "import json, os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, use = os.wait4(child.pid, 0)\n"
    "record = [os.waitstatus_to_exitcode(status), use.ru_utime, use.ru_stime, use.ru_maxrss]\n"
    "open(sys.argv[1], 'w').write(json.dumps(record))\n"
)


def run_command(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str, dict[str, float]]:
    """Run one command; (exit status, stdout, stderr, usage). Usage is the command's (and its waited-for
    children's) user and system CPU seconds and peak resident memory, what `/usr/bin/time -v` reports;
    empty where the OS lacks os.wait4."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-command-") as scratch:
        record = Path(scratch) / "usage.json"
        measured = hasattr(os, "wait4")
        full = [sys.executable, "-c", MEASURE, str(record), *argv] if measured else argv
        with open(Path(scratch) / "out", "w+b") as out, open(Path(scratch) / "err", "w+b") as err:
            returncode = subprocess.run(full, cwd=cwd, env=env, stdout=out, stderr=err).returncode
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8"), err.read().decode("utf-8", "replace")
        if not measured or not record.exists():
            return returncode, stdout, stderr, {}
        returncode, user, system, peak = read_json(record)
        # ru_maxrss is in KiB on Linux and in bytes on macOS
        peak_bytes = peak * (1 if sys.platform == "darwin" else 1024)
        return returncode, stdout, stderr, {"user_s": user, "system_s": system, "peak_rss_bytes": peak_bytes}


def run_figure(figure: Figure, work: Path, log: Callable[[str], None]) -> dict[str, float]:
    (work / "img").mkdir(parents=True, exist_ok=True)
    outputs, seconds, usages = [], [], []
    for command in figure.commands:
        clear_outputs(command, work)
        log(f"  $ {command}")
        started = time.perf_counter()
        returncode, stdout, stderr, usage = run_command(command_argv(command), work, environment(figure.threads))
        seconds.append(time.perf_counter() - started)
        usages.append(usage)
        log(f"    ({seconds[-1]:.1f} s)")
        if returncode != 0:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            raise CommandFailed(f"{command!r} exited with {returncode}: {' / '.join(tail)}")
        outputs.append(stdout)
    (work / WALL_SECONDS).write_text(json.dumps(seconds), encoding="utf-8")
    (work / USAGE).write_text(json.dumps(usages), encoding="utf-8")
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
    print(f"\nNot reproduced ({len(NOT_REPRODUCED)} figures no command of this checkout produces):")
    for item in NOT_REPRODUCED:
        print(f"  {item.text!r} ({item.page}): {item.reason}")


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
