"""Compare recurrent models with the classic baselines on one text, on equal terms.

Every model is trained (or fitted) through `rnnkit.train.train` on the same split with the same
vocabulary; every neural model gets the same wall-clock budget; every model is then loaded back
from its checkpoint and scored on the same validation and test tokens. The result is one row per
model, `OUT/compare.json`, and `OUT/compare.png` (validation loss against wall-clock time).

    OUT/config.json        what was compared and how (also marks OUT as ours, for --overwrite)
    OUT/compare.json       the rows (a JSON list)
    OUT/compare.png        validation loss vs time: neural curves, baselines as horizontal lines
    OUT/<model>/           each model's run directory (best/, last/, metrics.jsonl)

A budgeted run does not know its number of steps in advance, so each neural model is first timed
for a few optimizer steps; that estimate sets the cosine horizon (so the learning rate has decayed
when the time runs out) and the evaluation interval (so the curve has ~25 points). The estimate
depends on the machine, so the step at which a budget ends is not reproducible bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    BASELINES,
    DEVICES,
    NEURAL_MODELS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_choice,
    check_float,
    check_int,
)
from ..errors import ConfigError, DataError
from ..files import figure_text, fresh_run_dir, json_safe, write_json
from ..runtime import has_module, require
from ..text.tokenizer import Tokenizer

DEFAULT_MODELS = "ngram:3,ngram:5,hmm:32,rnn,gru,lstm"
UNBOUNDED_STEPS = 10_000_000  # neural runs stop at the time budget, not at a step count
CURVE_POINTS = 25  # evaluations aimed for within a budget (>= 10 even if the timing is 2x off)
EVAL_MAX_TOKENS = 50_000  # cap on validation tokens per evaluation *during* training
ROW_FIELDS = (
    "model",
    "parameters",
    "train_seconds",
    "val_loss",
    "val_ppl",
    "val_bpc",
    "test_loss",
    "test_bpc",
    "steps",
    "checkpoint",
)
TABLE_COLUMNS = ("model", "parameters", "train s", "val loss", "val ppl", "val bpc", "test bpc")

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelSpec:
    """One entry of `--models`: a neural kind, or a baseline with its size (n-gram order, HMM states)."""

    kind: str
    size: int | None = None

    @property
    def name(self) -> str:
        return self.kind if self.size is None else f"{self.kind}:{self.size}"

    @property
    def dirname(self) -> str:
        """The run directory's name under OUT (no ':' so that it is a portable file name)."""
        return self.name.replace(":", "-")

    @property
    def is_neural(self) -> bool:
        return self.kind in NEURAL_MODELS

    def model_config(self, layers: int, hidden: int, embed: int, dropout: float) -> ModelConfig:
        """The ModelConfig this entry stands for; the neural options apply to neural kinds only."""
        if self.kind in BASELINES:
            assert self.size is not None, "_parse_one gives every baseline its size"
            if self.kind == "ngram":
                return ModelConfig(model="ngram", order=self.size)
            return ModelConfig(model="hmm", states=self.size)
        if self.kind == "mlp":  # the neural n-gram: mlp:K reads the previous K tokens
            return ModelConfig(
                model="mlp", context=self.size, layers=layers, hidden=hidden, embed=embed, dropout=dropout
            )
        return ModelConfig(model=self.kind, layers=layers, hidden=hidden, embed=embed, dropout=dropout)


@dataclass(frozen=True)
class NeuralOptions:
    """What every neural model shares: architecture size, batching, optimisation, device."""

    layers: int = 1
    hidden: int = 256
    embed: int = 64
    dropout: float = 0.0
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    device: str = "auto"

    def __post_init__(self) -> None:
        """The bounds of the ModelConfig, DataConfig and TrainConfig fields these become."""
        check_int("layers", self.layers, 1, 64)
        check_int("hidden", self.hidden, 1, 1 << 16)
        check_int("embed", self.embed, 0, 1 << 16)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_int("batch_size", self.batch_size, 1, 1 << 20)
        check_int("seq_len", self.seq_len, 1, 1 << 20)
        check_float("lr", self.lr, 0.0, 1e3, low_open=True)
        check_choice("device", self.device, DEVICES)


def parse_models(spec: str) -> list[ModelSpec]:
    """`ngram:3,hmm:32,rnn,gru` -> ModelSpecs; ConfigError naming the bad entry for anything else.

    Neural kinds take no size; `ngram:K` (order K) and `hmm:K` (K states) need one. An entry may
    appear once: two identical models would be the same run twice.
    """
    items = [item.strip() for item in spec.split(",")] if isinstance(spec, str) else []
    if not items or not all(items):
        raise ConfigError(f"--models must be a comma-separated list like {DEFAULT_MODELS}, got {spec!r}")
    specs = [_parse_one(item) for item in items]
    seen: set[ModelSpec] = set()
    for model in specs:
        if model in seen:
            raise ConfigError(f"--models lists {model.name} twice; each model may appear once")
        seen.add(model)
    return specs


def _parse_one(item: str) -> ModelSpec:
    kind, colon, size_text = item.partition(":")
    kind = kind.strip().lower()
    sized = BASELINES + ("mlp",)
    unsized = tuple(kind for kind in NEURAL_MODELS if kind not in sized)
    allowed = f"use {', '.join(unsized)}, mlp:K, ngram:K or hmm:K"
    if kind not in unsized + sized:
        raise ConfigError(f"--models: unknown model {item!r}; {allowed}")
    if kind in unsized:
        if colon:
            raise ConfigError(f"--models: {item!r}: a {kind} model takes no ':' size (set --hidden, --layers)")
        return ModelSpec(kind)
    what = {"ngram": "order", "hmm": "states", "mlp": "context"}[kind]
    try:
        size = int(size_text.strip())
    except ValueError:
        raise ConfigError(
            f"--models: {item!r}: {kind} needs an integer {what}, as in {kind}:"
            f"{ {'ngram': 3, 'hmm': 32, 'mlp': 2}[kind] }"
        ) from None
    try:
        ModelSpec(kind, size).model_config(1, 1, 1, 0.0)  # the ModelConfig bounds, named for --models
    except ConfigError as error:
        raise ConfigError(f"--models: {item!r}: {error}") from None
    return ModelSpec(kind, size)


def compare(
    data: str = "timemachine",
    tokenizer: str = "char",
    models: str | Sequence[ModelSpec] | None = None,
    budget_seconds: float = 60.0,
    out: str | Path | None = None,
    *,
    seed: int = 1337,
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
    neural: NeuralOptions | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Train or fit each model into OUT/<model>/, score all on the same val/test tokens, write
    OUT/compare.json and OUT/compare.png, and return the rows (one dict per model, in order).

    Everything the user can get wrong (models, options, data, an existing OUT, a missing optional
    package) is checked before the first model starts, so a mistake costs no training time and
    leaves nothing behind. `models=None` means DEFAULT_MODELS, less the HMM when hmmlearn (the
    `hmm` extra) is missing; an HMM asked for by name needs it.
    """
    from ..data import load_splits
    from ..files import prepare_run_dir
    from ..runtime import resolve_device, stderr_logger
    from .plot import has_matplotlib

    log = log or stderr_logger(quiet)
    if models is None:
        specs = _installed_defaults(parse_models(DEFAULT_MODELS), log)
    else:
        specs = parse_models(models if isinstance(models, str) else ",".join(spec.name for spec in models))
        if any(spec.kind == "hmm" for spec in specs):
            require("hmmlearn", "hmm", "compare with an hmm model")
    neural = neural or NeuralOptions()
    check_float("budget_seconds", budget_seconds, 0.0, low_open=True)
    base = RunConfig(
        ModelConfig(),
        DataConfig(
            data=data, tokenizer=tokenizer, fractions=fractions, batch_size=neural.batch_size, seq_len=neural.seq_len
        ),
        TrainConfig(seed=seed, device=neural.device, quiet=True, sample_tokens=0, lr=neural.lr),
    )
    configs = {spec: _run_config(spec, base, neural) for spec in specs}  # validates every option
    if any(spec.is_neural for spec in specs):
        resolve_device(neural.device)  # --device cuda without a GPU fails here, not after the baselines
    draw = has_matplotlib("compare.png")  # said now, not after the training
    loaded = load_splits(base.data)
    log(f"compare: {loaded.summary()}")
    base, vocabulary, splits = loaded.sized(base), loaded.tokenizer, loaded.splits
    out_dir = Path(out) if out is not None else fresh_run_dir(f"compare-{Path(data).stem or 'data'}")
    prepare_run_dir(out_dir, overwrite)
    write_json(out_dir / "config.json", _compare_document(specs, base, neural, budget_seconds))
    has_test = len(splits["test"].ids) >= 2
    rows = []
    for index, spec in enumerate(specs, 1):
        row = _run_one(spec, configs[spec], out_dir, budget_seconds, vocabulary, has_test)
        rows.append(row)
        log(f"compare: [{index}/{len(specs)}] {_progress(row)}")
    _check_same_tokens(rows)
    write_json(out_dir / "compare.json", rows)
    if draw:
        plot_comparison(rows, out_dir, f"{Path(data).stem} ({tokenizer}), budget {budget_seconds:g} s per neural model")
    return rows


def _installed_defaults(specs: list[ModelSpec], log: Log) -> list[ModelSpec]:
    """The default models less the HMM when hmmlearn is missing (said in one line)."""
    if has_module("hmmlearn"):
        return specs
    skipped = [spec.name for spec in specs if spec.kind == "hmm"]
    log(
        f"compare: hmmlearn is not installed (pip install 'rnnkit[hmm]'); skipped {', '.join(skipped)} "
        "from the default models"
    )
    return [spec for spec in specs if spec.kind != "hmm"]


def _run_config(spec: ModelSpec, base: RunConfig, neural: NeuralOptions) -> RunConfig:
    """The model's own RunConfig: shared data and train settings (copies), its ModelConfig."""
    model = spec.model_config(neural.layers, neural.hidden, neural.embed, neural.dropout)
    return RunConfig(model, dataclasses.replace(base.data), dataclasses.replace(base.train))


def _compare_document(
    specs: list[ModelSpec], base: RunConfig, neural: NeuralOptions, budget_seconds: float
) -> dict[str, Any]:
    """OUT/config.json: what was compared, with which shared settings."""
    return {
        "format": "rnnkit-compare",
        "models": [spec.name for spec in specs],
        "budget_seconds": budget_seconds,
        "data": dataclasses.asdict(base.data),
        "neural": dataclasses.asdict(neural),
        "seed": base.train.seed,
    }


def _run_one(
    spec: ModelSpec, config: RunConfig, out_dir: Path, budget: float, vocabulary: Tokenizer, has_test: bool
) -> dict[str, Any]:
    """Train or fit one model into OUT/<model>/, load it back, and score it on val and test."""
    from ..api import load
    from ..train import train

    run_dir = out_dir / spec.dirname
    model_config = dataclasses.replace(config.model, vocab_size=len(vocabulary))
    config = RunConfig(model_config, config.data, dataclasses.replace(config.train, out=str(run_dir)))
    if spec.is_neural:
        config = RunConfig(config.model, config.data, budgeted_train_config(config, budget))
    result = train(config, log=lambda _message: None)
    lm = load(result.best_checkpoint, device=config.train.device)
    if lm.tokenizer.to_dict() != vocabulary.to_dict():
        raise DataError(
            f"compare: {spec.name} was trained with a different vocabulary from the other "
            "models, so their losses would not be comparable"
        )
    val = lm.evaluate(split="val")
    test = lm.evaluate(split="test") if has_test else None
    return json_safe(
        {
            "model": spec.name,
            "kind": "neural" if spec.is_neural else "baseline",
            "parameters": result.parameters,
            "train_seconds": result.seconds,
            "val_loss": val.loss,
            "val_ppl": val.ppl,
            "val_bpc": val.bpc,
            "val_tokens": val.tokens,
            "test_loss": test.loss if test else None,
            "test_ppl": test.ppl if test else None,
            "test_bpc": test.bpc if test else None,
            "test_tokens": test.tokens if test else None,
            "steps": result.steps,
            "checkpoint": result.best_checkpoint,
        }
    )


def budgeted_train_config(config: RunConfig, budget: float) -> TrainConfig:
    """Train settings for one neural model under a wall-clock budget.

    The step time, measured on this machine, gives the steps the budget holds; the cosine schedule
    decays over 90% of them (evaluation takes the rest) and holds its floor if there is time left,
    and the evaluation interval gives about CURVE_POINTS points on the curve. `last/` is written
    only at the end: each save costs time that would otherwise be training.
    """
    seconds_per_step = measure_step_seconds(config, max_seconds=0.05 * budget)
    horizon = max(1, int(0.9 * budget / seconds_per_step))
    interval = max(1, horizon // CURVE_POINTS)
    return dataclasses.replace(
        config.train,
        steps=UNBOUNDED_STEPS,
        max_seconds=float(budget),
        schedule="cosine",
        warmup_steps=min(50, horizon // 10),
        decay_steps=horizon,
        eval_interval=interval,
        log_interval=interval,
        save_interval=UNBOUNDED_STEPS,
        eval_max_tokens=EVAL_MAX_TOKENS,
    )


def measure_step_seconds(config: RunConfig, max_seconds: float = 3.0, steps: int = 5) -> float:
    """Seconds per optimizer step of this model (forward, backward, AdamW) on random tokens.

    Two warm-up steps first (allocator, kernels), then up to `steps` timed ones, fewer if they
    would take more than `max_seconds`; the median, so that one step stalled by another process
    on a shared machine does not shrink the plan. The global torch RNG is reseeded by the
    Trainer, so this does not change the training that follows.
    """
    import torch

    from ..models.registry import build_torch_model
    from ..runtime import resolve_device

    device = resolve_device(config.train.device)
    model = build_torch_model(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    shape = (config.data.batch_size, config.data.seq_len)
    x, y = (torch.randint(0, config.model.vocab_size, shape, device=device) for _ in range(2))

    def step() -> None:
        _, loss, _ = model(x, y, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        step()
    started = time.perf_counter()
    times: list[float] = []
    while len(times) < steps and (not times or time.perf_counter() - started < max_seconds):
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    return max(statistics.median(times), 1e-6)


def _check_same_tokens(rows: list[dict[str, Any]]) -> None:
    """Every model must have been scored on the same number of val (and test) tokens."""
    for key in ("val_tokens", "test_tokens"):
        counts = {row["model"]: row[key] for row in rows}
        if len(set(counts.values())) > 1:
            raise DataError(
                f"compare: the models were scored on different numbers of {key[:-7]} tokens "
                f"({counts}); their losses are not comparable"
            )


def _progress(row: dict[str, Any]) -> str:
    how = f"trained {row['steps']} steps" if row["kind"] == "neural" else "fitted"
    return (
        f"{row['model']}: {how} in {row['train_seconds']:.1f} s, {row['parameters']:,} parameters; "
        f"val loss {row['val_loss']:.4f}, val bpc {row['val_bpc']:.4f}"
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a GitHub markdown table (test bpc is 'n/a' when there is no test split)."""
    lines = [
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(TABLE_COLUMNS) - 1)) + "|",
    ]
    for row in rows:
        cells = [
            row["model"],
            f"{row['parameters']:,}",
            f"{row['train_seconds']:.1f}",
            figure_text(row["val_loss"], 4),
            figure_text(row["val_ppl"], 2),
            figure_text(row["val_bpc"], 4),
            figure_text(row["test_bpc"], 4),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_curve(run_dir: Path) -> tuple[list[float], list[float]]:
    """(elapsed seconds, validation loss) at each evaluation, from a run's metrics.jsonl."""
    times, losses = [], []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("val_loss") is not None:
            times.append(float(record["elapsed_s"]))
            losses.append(float(record["val_loss"]))
    return times, losses


def plot_comparison(rows: list[dict[str, Any]], out_dir: Path, title: str) -> Path:
    """Write OUT/compare.png (needs matplotlib, the `plot` extra)."""
    from .plot import import_pyplot

    plt = import_pyplot("compare.png")
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    try:
        _draw(axes, rows)
        axes.set_title(title)
        figure.tight_layout()
        path = out_dir / "compare.png"
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path


def _draw(axes: Any, rows: list[dict[str, Any]]) -> None:
    """Neural curves (val loss vs seconds) and baselines as dashed horizontal lines; the y range
    leaves out the first, untrained evaluations so that the differences that matter are visible."""
    colors = iter(f"C{i}" for i in range(10 * len(rows)))
    finals = []
    for row in rows:
        color = next(colors)
        if row["kind"] == "neural":
            times, losses = read_curve(Path(row["checkpoint"]).parent)
            axes.plot(
                times, losses, marker="o", markersize=3, color=color, label=f"{row['model']} ({row['steps']} steps)"
            )
            finals += losses[len(losses) // 3 :]
        else:
            axes.axhline(
                row["val_loss"],
                linestyle="--",
                color=color,
                label=f"{row['model']} (fitted in {row['train_seconds']:.1f} s)",
            )
        finals.append(row["val_loss"])
    low, high = min(finals), max(finals)
    margin = 0.08 * max(high - low, 1e-3)
    axes.set_ylim(low - margin, high + 3 * margin)
    axes.set_xlabel("wall-clock training time (s)")
    axes.set_ylabel("validation loss (nats/token)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
