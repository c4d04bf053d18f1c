"""One option, several values, everything else equal: `rnnkit sweep --set NAME=v1,v2,...`.

Each value gets its own run through `rnnkit.train.train` with the same data, seed and budget
(the same --steps, or the same --max-seconds of wall-clock time), so the validation losses differ
only by the swept option. The results:

    OUT/config.json    what was swept and the shared configuration (marks OUT as ours)
    OUT/sweep.md       the markdown table also printed on stdout
    OUT/sweep.json     one row per value
    OUT/sweep.png      validation loss against the swept value
    OUT/NAME-VALUE/    each value's run directory (best/, last/, metrics.jsonl)

A time budget (--max-seconds without --steps) is planned as `rnnkit compare` plans one: the
step time is measured first and sets the cosine horizon, so every run's learning rate has decayed
when its time runs out, whether the swept value makes the model fast or slow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import DEFAULT_STEPS, DataConfig, ModelConfig, RunConfig, TrainConfig, with_overrides
from ..errors import ConfigError, TrainingDiverged
from ..files import figure_text

NUMERIC_TYPES = {"int": int, "float": float, "int | None": int, "float | None": float}
NOT_SWEPT = {"vocab_size", "preset_version"}  # set from the tokenizer / the preset, not chosen
TABLE = ("parameters", "steps", "train s", "train loss", "val loss", "best val loss", "val bpc")

Log = Callable[[str], None]
Value = int | float | None


def numeric_options() -> dict[str, type]:
    """Every int or float option of the three config sections, by name: what a sweep may vary."""
    options = {}
    for kind in (ModelConfig, DataConfig, TrainConfig):
        for spec in dataclasses.fields(kind):
            kind_name = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", "")
            if kind_name in NUMERIC_TYPES and spec.name not in NOT_SWEPT:
                options[spec.name] = NUMERIC_TYPES[kind_name]
    return options


def _all_options() -> set[str]:
    return {spec.name for kind in (ModelConfig, DataConfig, TrainConfig) for spec in dataclasses.fields(kind)}


def parse_set(text: str) -> tuple[str, list[Value]]:
    """`hidden=64,128` -> ("hidden", [64, 128]); ConfigError naming what is wrong otherwise.

    Names may use dashes (seq-len); integer options take integers (1e3 is fine), optional ones
    (clip, max_seconds, ...) also take `none`.
    """
    name, equals, values_text = text.partition("=") if isinstance(text, str) else ("", "", "")
    name = name.strip().lower().replace("-", "_")
    if not equals or not name or not values_text.strip():
        raise ConfigError(f"--set must look like NAME=v1,v2,... (e.g. hidden=64,128), got {text!r}")
    numeric = numeric_options()
    if name not in numeric:
        what = "is not a numeric option" if name in _all_options() else "is not an option"
        raise ConfigError(f"--set: {name!r} {what}; a sweep varies one of {', '.join(sorted(numeric))}")
    values = [_parse_value(name, item.strip(), numeric[name]) for item in values_text.split(",")]
    if len(values) < 2:
        raise ConfigError(f"--set {name}: give at least two values to compare, got {values_text!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"--set {name}: a value is listed twice in {values_text!r}")
    return name, values


def _parse_value(name: str, item: str, kind: type) -> Value:
    if item.lower() == "none":
        types = {spec.name: spec.type for k in (ModelConfig, DataConfig, TrainConfig) for spec in dataclasses.fields(k)}
        if "None" in str(types[name]):
            return None
        raise ConfigError(f"--set {name}: 'none' is not allowed here; {name} needs a number")
    try:
        number = float(item)
    except ValueError:
        raise ConfigError(f"--set {name}: {item!r} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise ConfigError(f"--set {name}: {name} takes integers, got {item!r}")
        return int(number)
    return number


def run_name(name: str, value: Value) -> str:
    """The run directory's name under OUT: hidden-64, lr-0.003, clip-none."""
    return f"{name}-{'none' if value is None else f'{value:g}'}"


def sweep_configs(base: RunConfig, name: str, values: Sequence[Value], out_dir: Path) -> list[RunConfig]:
    """One RunConfig per value (validated now, before any training), each into OUT/NAME-VALUE."""
    configs = []
    for value in values:
        overrides = {
            name: value,
            "out": str(out_dir / run_name(name, value)),
            "quiet": True,
            "sample_tokens": 0,
            "overwrite": False,
        }
        try:
            configs.append(with_overrides(base, overrides))
        except ConfigError as error:
            raise ConfigError(f"--set {name}={value}: {error}") from None
    return configs


def _budgeted(config: RunConfig) -> RunConfig:
    """A --max-seconds run without --steps: plan its schedule from a measured step time."""
    from ..data import load_splits
    from .compare import budgeted_train_config

    if config.model.is_baseline or config.train.max_seconds is None:
        return config
    if config.train.steps is not None or config.train.epochs is not None:
        return config
    sized = load_splits(config.data).sized(config)  # the timing needs the vocabulary size
    return RunConfig(sized.model, sized.data, budgeted_train_config(sized, config.train.max_seconds))


def sweep(
    base: RunConfig,
    name: str,
    values: Sequence[Value],
    out: str | Path | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Train one model per value of option `name` (see the module docstring); return the rows.

    A run that diverges (NaN/inf loss) is a result, not a failure of the sweep: its row says so
    and the sweep goes on with the next value.
    """
    from ..data import load_splits
    from ..files import prepare_run_dir, write_json
    from ..runtime import stderr_logger
    from .diagnostics import default_out
    from .plot import has_matplotlib

    if name not in numeric_options():
        raise ConfigError(f"sweep: {name!r} is not a numeric option")
    out_dir = Path(out) if out is not None else default_out("sweep", base.data.data)
    configs = sweep_configs(base, name, values, out_dir)
    log = log or stderr_logger(False)
    load_splits(base.data)  # a missing or unreadable text fails before OUT is made
    draw = has_matplotlib("sweep.png")  # the table is the result; the figure is optional (said now)
    prepare_run_dir(out_dir, overwrite)
    write_json(
        out_dir / "config.json",
        {"format": "rnnkit-sweep", "option": name, "values": list(values), "config": base.to_dict()},
    )
    rows = []
    for index, (value, config) in enumerate(zip(values, configs, strict=True), 1):
        rows.append(_run_one(name, value, _budgeted(config)))
        log(f"sweep: [{index}/{len(values)}] {_progress(rows[-1])}")
    table = markdown_table(rows)
    (out_dir / "sweep.md").write_text(table + "\n", encoding="utf-8")
    write_json(out_dir / "sweep.json", rows)
    if draw:
        plot_sweep(
            rows,
            out_dir / "sweep.png",
            f"{base.model.model} on {Path(base.data.data).stem}: {name} ({_budget(configs[0], name)})",
        )
    return rows


def _run_one(name: str, value: Value, config: RunConfig) -> dict[str, Any]:
    from ..train import train

    row: dict[str, Any] = {"option": name, "value": value, "run": config.train.out}
    try:
        result = train(config, log=lambda _message: None)
    except TrainingDiverged as error:
        return {
            **row,
            "status": f"diverged: {error}",
            "val_loss": None,
            "best_val_loss": None,
            "val_bpc": None,
            "val_ppl": None,
            "train_loss": None,
            "steps": None,
            "seconds": None,
            "parameters": None,
        }
    figures = result.to_dict()
    keep = (
        "val_loss",
        "best_val_loss",
        "val_ppl",
        "val_bpc",
        "train_loss",
        "steps",
        "seconds",
        "parameters",
        "tokens_per_s",
    )
    return {**row, "status": "ok", **{key: figures[key] for key in keep}}


def _budget(config: RunConfig, name: str) -> str:
    """The budget every run shares, for the plot's title."""
    train = config.train
    if name in ("steps", "epochs", "max_seconds"):
        return "budget as swept"
    if train.max_seconds is not None and train.steps is None and train.epochs is None:
        return f"{train.max_seconds:g} s each"
    if train.epochs is not None:
        return f"{train.epochs} epoch{'s' if train.epochs != 1 else ''} each"
    cap = f", at most {train.max_seconds:g} s" if train.max_seconds else ""
    return f"{train.steps or DEFAULT_STEPS} steps each{cap}"


def _progress(row: dict[str, Any]) -> str:
    head = f"{row['option']}={_value(row['value'])}"
    if row["status"] != "ok":
        return f"{head}: {row['status']}"
    return (
        f"{head}: {row['steps']} steps in {row['seconds']:.1f} s, val loss {row['val_loss']:.4f} "
        f"(best {row['best_val_loss']:.4f})"
    )


def _value(value: Value) -> str:
    return "none" if value is None else f"{value:g}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per value; a diverged run shows 'diverged' in place of its figures."""
    name = rows[0]["option"] if rows else "value"
    lines = ["| " + " | ".join((name,) + TABLE) + " |", "|" + "|".join(["---:"] * (len(TABLE) + 1)) + "|"]
    for row in rows:
        if row["status"] != "ok":
            cells = [_value(row["value"])] + ["diverged"] + ["n/a"] * (len(TABLE) - 1)
        else:
            cells = [
                _value(row["value"]),
                f"{row['parameters']:,}",
                str(row["steps"]),
                f"{row['seconds']:.1f}",
                figure_text(row["train_loss"], 4),
                figure_text(row["val_loss"], 4),
                figure_text(row["best_val_loss"], 4),
                figure_text(row["val_bpc"], 4),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """sweep.png: final and best validation loss against the value (log x for wide ranges such
    as learning rates; evenly spaced labels when a value is `none`)."""
    from .plot import finish_figure, import_pyplot

    plt = import_pyplot(path.name)
    values = [row["value"] for row in rows]
    categorical = any(value is None for value in values)
    xs = list(range(len(rows))) if categorical else values
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for key, style in (("val_loss", "o-"), ("best_val_loss", "s--")):
            ys = [row[key] if row[key] is not None else math.nan for row in rows]
            axes.plot(xs, ys, style, markersize=5, label=key.replace("_", " "))
        if not categorical and min(values) > 0 and max(values) / min(values) >= 20:
            axes.set_xscale("log")
            axes.minorticks_off()
        axes.set_xticks(xs, [_value(value) for value in values])  # label exactly the values swept
        axes.set_xlabel(rows[0]["option"] if rows else "value")
        axes.set_ylabel("validation loss (nats/token)")
        finish_figure(figure, axes, title, path)
    finally:
        plt.close(figure)
    return path
