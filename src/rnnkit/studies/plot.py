"""Draw the metrics of one or more runs on one figure (`rnnkit plot RUN_DIR ... --metric M`).

Every run directory holds `metrics.jsonl`, one JSON line per logging step: step, train_loss, lr,
grad_norm, tokens_per_s, elapsed_s, and val_loss/val_ppl/val_bpc at evaluations. `grad_norm` is
the global gradient norm ||g||_2 = sqrt(sum_p ||dL/dp||²) BEFORE clipping, averaged over the
steps since the previous line; clipping rescales the update to g * min(1, c / ||g||), so a run
with `--clip 1` still records how large its gradients were — which is what makes the
"high learning rate, with and without clipping" experiment readable from two runs' files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..files import is_figure
from ..runtime import require, skip_note

METRICS = ("val_loss", "train_loss", "grad_norm", "lr", "tokens_per_s", "val_ppl", "val_bpc", "train_ppl")
X_AXES = ("step", "elapsed_s")
SUFFIXES = (".png", ".svg", ".pdf")
LABELS = {
    "val_loss": "validation loss (nats/token)",
    "train_loss": "training loss (nats/token)",
    "grad_norm": "global gradient norm before clipping",
    "lr": "learning rate",
    "tokens_per_s": "training tokens per second",
    "val_ppl": "validation perplexity",
    "val_bpc": "validation bits per character",
    "step": "optimizer step",
    "train_ppl": "training perplexity",
    "elapsed_s": "wall-clock training time (s)",
}


@dataclass
class Series:
    """One run's (x, y) points for a metric, and a summary of its values."""

    label: str
    x: list[float]
    y: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "run": self.label,
            "points": len(self.y),
            "min": min(self.y),
            "max": max(self.y),
            "first": self.y[0],
            "last": self.y[-1],
            "last_x": self.x[-1],
        }


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of RUN/metrics.jsonl (DataError if the directory or file is missing or bad)."""
    if not run_dir.is_dir():
        raise DataError(f"no such run directory: {run_dir}")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{run_dir} has no metrics.jsonl; is it an rnnkit run directory?")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}, line {number}: not JSON") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: not a JSON object")
        records.append(record)
    return records


def series(run_dir: Path, metric: str, x: str, label: str) -> Series:
    """The finite (x, metric) pairs of one run; DataError when the run has none (e.g. grad_norm
    of an n-gram run, or elapsed_s in metrics written before it was recorded)."""
    raw = [(record.get(x), record.get(metric)) for record in read_metrics(run_dir)]
    points = [(float(a), float(b)) for a, b in raw if is_figure(a) and is_figure(b)]
    if not points:
        raise DataError(
            f"{run_dir}/metrics.jsonl has no {metric} values against {x}; "
            f"choose another --metric ({', '.join(METRICS)}) or --x"
        )
    return Series(label, [a for a, _ in points], [b for _, b in points])


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Legend names: each directory's name, or its whole path where two names would collide."""
    names = [Path(run).resolve().name for run in run_dirs]
    return [name if names.count(name) == 1 else str(run) for name, run in zip(names, run_dirs, strict=True)]


def check_plot_options(run_dirs: Sequence[str | Path], metric: str, x: str, out: str | Path | None) -> None:
    if not run_dirs:
        raise ConfigError("plot needs at least one run directory")
    if not all(name in METRICS for name in metric.split(",")):
        raise ConfigError(
            f"--metric must be one of {', '.join(METRICS)}, or several joined by commas "
            f"(e.g. train_ppl,val_ppl); got {metric!r}"
        )
    if x not in X_AXES:
        raise ConfigError(f"--x must be one of {', '.join(X_AXES)}; got {x!r}")
    if out is not None and Path(out).suffix.lower() not in SUFFIXES:
        raise ConfigError(
            f"--out must name a {', '.join(SUFFIXES)} file (a plot never replaces other files), got {out}"
        )
    if out is not None and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name such as {Path(out) / 'plot.png'}")


class PlotResult(dict):
    """The file and per-run summaries (plain JSON data, as `rnnkit plot --json` prints them), with
    the drawn matplotlib Figure as `.figure` (a notebook shows it when it is the cell's value)."""

    figure: Any = None

    def _repr_png_(self) -> bytes | None:
        return _png(self.figure) if self.figure is not None else None


def plot_runs(
    run_dirs: Sequence[str | Path],
    metric: str = "val_loss",
    x: str = "step",
    out: str | Path | None = None,
    log_y: bool = False,
    title: str | None = None,
    references: Sequence[tuple[float, str]] = (),
    ax: Any = None,
) -> PlotResult:
    """Draw `metric` against `x` for every run on one figure; return the file and per-run summaries
    (a dict) with the Figure as `.figure`.

    `references` are (value, label) pairs drawn as dashed horizontal lines: a result to beat.
    The default file is `plot-METRIC.png` in the current directory. `ax`: draw into these
    matplotlib Axes (a subplot of your own figure, which is then the one saved). Every run is read
    before anything is drawn, so a bad directory or a missing metric leaves no file behind.
    """
    check_plot_options(run_dirs, metric, x, out)
    require("matplotlib", "plot", "rnnkit plot")  # before any run is read or directory made
    paths = [Path(run) for run in run_dirs]
    names = metric.split(",")  # several metrics: one line per run and metric, e.g. train_ppl,val_ppl
    lines = [
        series(path, name, x, label if len(names) == 1 else f"{label} {name}")
        for path, label in zip(paths, run_labels(paths), strict=True)
        for name in names
    ]
    if log_y and any(value <= 0 for line in lines for value in line.y):
        raise ConfigError(f"--log-y needs positive values, and {metric} has values <= 0")
    target = Path(out) if out is not None else Path(f"plot-{metric}.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    result = PlotResult(file=str(target), metric=metric, x=x, runs=[line.summary() for line in lines])
    result.figure = _draw(lines, target, metric, x, log_y, title, references, ax)
    return result


def _draw(
    lines: Sequence[Series],
    target: Path,
    metric: str,
    x: str,
    log_y: bool,
    title: str | None,
    references: Sequence[tuple[float, str]] = (),
    ax: Any = None,
) -> Any:
    figure, axes = new_axes(ax, (7, 4.2))
    if figure is None:
        raise ConfigError("rnnkit plot needs matplotlib: pip install 'rnnkit[plot]'")
    for line in lines:
        marker = "o" if len(line.y) < 40 else None
        axes.plot(line.x, line.y, marker=marker, markersize=3, label=line.label)
    for value, label in references:
        axes.axhline(value, color="gray", linestyle="--", linewidth=1, label=label or f"{value:g}")
    if log_y:
        axes.set_yscale("log")
    axes.set_xlabel(LABELS[x])
    axes.set_ylabel(" / ".join(LABELS[name] for name in metric.split(",")))
    finish_figure(figure, axes, title or f"{metric} against {x}", target)
    return figure


def new_axes(ax: Any, size: tuple[float, float], what: str = "") -> tuple[Any, Any]:
    """(figure, axes): the given Axes and their figure, or a new Figure of `size` inches. A bare
    matplotlib Figure, not pyplot: nothing is registered globally (no figure to close, no memory
    growing over many plots) and the notebook's own backend is left as it is. (None, None) with a
    note on stderr when matplotlib is missing and `what` names the skipped file."""
    if ax is not None:
        return ax.figure, ax
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if what:
            import sys

            print(f"rnnkit: matplotlib is not installed (pip install 'rnnkit[plot]'); skipped {what}", file=sys.stderr)
        return None, None
    figure = Figure(figsize=size, dpi=100)
    return figure, figure.subplots()


def _png(figure: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def parse_reference(text: str) -> tuple[float, str]:
    """`VALUE` or `VALUE:LABEL` (as given to --reference) -> (value, label)."""
    value, _, label = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"--reference takes VALUE or VALUE:LABEL with a finite number, got {text!r}")
    return number, label.strip()


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One line per run: how many points, min, max and last value of the metric."""
    metric = result["metric"]
    return [
        f"{run['run']}: {run['points']} points, {metric} min {run['min']:.4g}, max {run['max']:.4g}, "
        f"last {run['last']:.4g} (at {result['x']} {run['last_x']:g})"
        for run in result["runs"]
    ]


def finish_figure(figure: Any, axes: Any, title: str, path: Path) -> None:
    """Title, grid, legend, tight layout, save: how every rnnkit figure ends."""
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def import_pyplot(what: str) -> Any:
    """matplotlib.pyplot on the Agg backend, imported only when a figure is drawn.

    MissingExtraError (one line naming the `plot` extra) when matplotlib is missing; a command
    whose figure is optional checks `has_matplotlib` first and skips the figure with a note.
    """
    require("matplotlib", "plot", what)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def has_matplotlib(what: str) -> bool:
    """Whether an optional figure can be drawn; if not, a note on stderr says `what` is skipped."""
    return skip_note("matplotlib", "plot", what)
