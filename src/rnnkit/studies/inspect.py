"""See inside a trained network (`rnnkit inspect RUN --text/--file/--data ...`): per token, the
surprisal and the top predictions, and every hidden unit (for LSTMs also the cell state and the
input, forget and output gates; for GRUs the update and reset gates); which units track simple
features of the text, checked on held-out text; and how often each gate saturates, against a
freshly initialised model (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding
Recurrent Networks").

One pass over the text. The gates are recomputed step by step from the weights (recurrence.py).
Nothing grows with the text but what is asked for: per-token values stream into .npy files
(read them memory-mapped) under DIR (only the --layer and --units asked for), while correlations and gate
saturation over every unit are running sums (constant memory).

The model reads a newline first (as `generate` does), then the text: token t's surprisal is
-log2 p(x_t | newline, x_<t), and its unit values are the state after reading x_t.

Long texts run as parallel streams: the text is cut into S contiguous slices, and each stream
first reads the `warmup` tokens before its slice (outputs discarded) to build up its state.
That is exact for the first slice; later slices start from the state of those `warmup` tokens
instead of the whole text before them. --streams 1 reads the text as one stream (exact, slow).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError, PromptError
from ..files import fresh_run_dir, prepare_run_dir, write_json
from .features import describe, token_features, token_text
from .recurrence import GATES, SIGNAL_NAMES, SIGNALS, layer_weights, run_layer, zero_state

Log = Callable[[str], None]
MARKER = "inspect.json"
LEFT, RIGHT = 0.1, 0.9  # a gate is left-saturated below LEFT, right-saturated above RIGHT (Karpathy et al. 2015)
SLICE_TOKENS = 4096  # auto --streams: about this many tokens per stream
MAX_STREAMS = 128


@dataclass(frozen=True)
class InspectOptions:
    layers: tuple[int, ...] | None = None  # layers whose per-token values are written (None: all)
    units: tuple[int, ...] | None = None  # units written of each (None: all)
    max_tokens: int | None = None  # read at most this many tokens of the text
    streams: int | None = None  # None: 1 up to 2 x SLICE_TOKENS tokens, else about SLICE_TOKENS per stream
    warmup: int = 256  # tokens each later stream reads before its slice
    chunk: int = 64  # steps computed at once
    top_k: int = 5
    dtype: str = "float32"  # of the per-token .npy files
    threshold: float = 0.3  # |r| on the held-out slice that makes a correlation a finding
    show: int = 1500  # tokens drawn in the report
    show_from: int | None = None  # first token drawn (None: the start of the held-out half, or 0 for short texts)
    fresh_tokens: int = 200_000  # tokens the freshly initialised model reads (saturation, control)
    pngs: bool = True  # saturation.png and features.png beside the report (needs matplotlib)

    def validate(self, layers: int, hidden: int) -> None:
        if self.layers is not None:
            bad = [layer for layer in self.layers if not 0 <= layer < layers]
            if bad or not self.layers:
                raise ConfigError(
                    f"--layer {bad[0] if bad else ''} is out of range: this model has layers 0..{layers - 1}"
                )
        if self.units is not None:
            bad = [unit for unit in self.units if not 0 <= unit < hidden]
            if bad or not self.units:
                raise ConfigError(
                    f"unit {bad[0] if bad else '(none)'} is out of range: this model has units "
                    f"0..{hidden - 1} per layer"
                )
        for name, low in (
            ("max_tokens", 1),
            ("streams", 1),
            ("chunk", 1),
            ("top_k", 1),
            ("show", 1),
            ("show_from", 0),
            ("fresh_tokens", 0),
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"--warmup must be an integer >= 0, got {self.warmup!r}")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"--dtype must be float32 or float16, got {self.dtype!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"the finding threshold must be between 0 and 1, got {self.threshold!r}")


# ---------------------------------------------------------------------------------------------
# the model and the text


def load_inspectable(run: str | Path):
    """(LanguageModel, RNNLM) for a neural checkpoint, in the torch engine on the CPU; baselines
    have no hidden units and are refused in one line."""
    from ..api import load
    from ..checkpoint import read_config_document
    from ..files import resolve_checkpoint

    config, _ = read_config_document(resolve_checkpoint(run))
    if config.model.is_baseline:
        what = "n-gram counts" if config.model.model == "ngram" else "discrete HMM states, not a vector of units"
        raise ConfigError(
            f"{run} is a {config.model.model} model: it has no hidden units to inspect ({what}); "
            "inspect an rnn, gru or lstm run"
        )
    lm = load(run, device="cpu", engine="torch")
    return lm, lm.model


def read_source(
    text: str | None = None,
    file: str | None = None,
    data: str | None = None,
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
) -> tuple[str, str]:
    """(text, where it came from) from exactly one of: a string, a UTF-8 file, or a corpus (its
    validation split under the run's fractions: text the model did not train on)."""
    from ..text.corpora import load_corpus, read_text_file

    given = [name for name, value in (("--text", text), ("--file", file), ("--data", data)) if value is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --text, --file or --data")
    if text is not None:
        source, label = text, "--text"
    elif file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise DataError(f"no such file: {file}")
        source, label = read_text_file(path), str(path)
    elif data is not None:
        source, label = load_corpus(data, split_fractions).val, f"{data} (validation split)"
    if not source:
        raise DataError(f"the text to inspect ({label}) is empty")
    return source, label


def run_split(run: str | Path) -> tuple[float, float, float]:
    """The train/val/test fractions a run was trained with (where --data takes its validation split)."""
    from ..checkpoint import read_config_document
    from ..files import resolve_checkpoint

    config, _ = read_config_document(resolve_checkpoint(run))
    return config.data.fractions


def encode_text(tokenizer, text: str) -> np.ndarray:
    try:
        ids = tokenizer.encode(text)
    except PromptError as error:
        raise DataError(f"cannot inspect this text with this model: {error}") from None
    if ids.size == 0:
        raise DataError("the text holds no tokens for this model's tokenizer")
    return ids


def token_string(tokenizer, index: int) -> str:
    vocab = getattr(tokenizer, "vocab", None)
    return vocab.itos[index] if vocab is not None else tokenizer.decode([index])


# ---------------------------------------------------------------------------------------------
# one pass over the text


@dataclass(frozen=True)
class StreamLayout:
    """Positions 0..P-1 of the input (a newline, then the text) cut into `streams` windows. Stream
    k reads positions [k*L, k*L + warmup + L) and keeps the outputs of all of them (k = 0) or of
    the last L (k > 0): the kept parts tile 0..P-1 without gaps or overlap."""

    positions: int
    streams: int
    warmup: int

    @classmethod
    def choose(cls, positions: int, streams: int | None, warmup: int) -> StreamLayout:
        if streams is None:
            streams = 1 if positions <= 2 * SLICE_TOKENS else math.ceil((positions - warmup) / SLICE_TOKENS)
        streams = max(1, min(streams, MAX_STREAMS, positions))
        return cls(positions, streams, warmup if streams > 1 else 0)

    @property
    def slice_length(self) -> int:
        return max(1, math.ceil((self.positions - self.warmup) / self.streams))

    @property
    def steps(self) -> int:
        return self.warmup + self.slice_length

    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions (N, steps), kept (N, steps)): which input position each stream reads at each
        step, and whether its output there is kept (not warmup, not past the end)."""
        L, steps = self.slice_length, self.steps
        position = np.arange(self.streams)[:, None] * L + np.arange(steps)[None, :]
        kept = (position < self.positions) & (
            (np.arange(steps)[None, :] >= self.warmup) | (np.arange(self.streams)[:, None] == 0)
        )
        return position, kept


@dataclass
class Chunk:
    positions: np.ndarray  # (M,) input positions of the kept outputs, M = kept steps of this chunk
    signals: dict[tuple[int, str], torch.Tensor]  # (layer, signal) -> (M, H)
    top: torch.Tensor  # (M, H) the last layer's output, which the head reads


@torch.no_grad()
def trace(model, inputs: np.ndarray, layout: StreamLayout, chunk: int) -> Iterator[Chunk]:
    """Run `model` (an RNNLM) over `inputs` laid out in streams; yield the kept outputs chunk by chunk."""
    kind, layers, H = model.config.model, model.config.layers, model.config.hidden
    weights = [layer_weights(model.rnn, layer) for layer in range(layers)]
    position, kept = layout.window()
    padded = np.concatenate([inputs, np.zeros(max(0, int(position.max()) + 1 - inputs.size), dtype=inputs.dtype)])
    states = [zero_state(kind, layout.streams, H) for _ in range(layers)]
    for start in range(0, layout.steps, chunk):
        cols = slice(start, min(start + chunk, layout.steps))
        keep = torch.from_numpy(kept[:, cols].reshape(-1))
        if not keep.any():
            break  # the rest is padding
        x = model.inputs(torch.from_numpy(padded[position[:, cols]]))
        signals = {}
        for layer in range(layers):
            values, states[layer] = run_layer(kind, weights[layer], x.float(), states[layer])
            x = values["h"]
            for name, value in values.items():
                signals[(layer, name)] = value.reshape(-1, H)[keep]
        yield Chunk(position[:, cols].reshape(-1)[keep.numpy()], signals, signals[(layers - 1, "h")])


def log_probs(model, top: torch.Tensor) -> torch.Tensor:
    """log p(next token) (M, V) from the last layer's outputs, for a linear or an adaptive head."""
    if model.config.adaptive_softmax:
        return model.head.log_prob(top.float())
    return torch.log_softmax(model.head(top).float(), dim=-1)


# ---------------------------------------------------------------------------------------------
# what is kept of each chunk


class NpyRows:
    """A (rows, columns) .npy file written block by block with positioned writes: readable with
    np.load(path, mmap_mode="r") like a memmap, but the writer keeps no pages of it mapped, so
    its memory stays flat however long the text (a writable memmap's touched pages count
    towards the process's resident memory until the end)."""

    def __init__(self, path: Path, dtype: Any, shape: tuple[int, ...]):
        import os

        header = np.lib.format.open_memmap(path, "w+", dtype, shape)  # writes the header, sizes the file
        self.offset, self.dtype = header.offset, np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        del header
        self.fd = os.open(path, os.O_WRONLY)

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """values[k] into row rows[k]; each run of consecutive rows is one write."""
        import os

        if rows.size == 0:
            return
        values = np.ascontiguousarray(values, dtype=self.dtype)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [rows.size])), strict=True):
            os.pwrite(self.fd, values[first:last].tobytes(), self.offset + int(rows[first]) * self.row_bytes)

    def close(self) -> None:
        import os

        os.close(self.fd)


class Recorder:
    """Per-token values into .npy files under DIR/tokens and DIR/activations (see NpyRows)."""

    def __init__(
        self,
        out: Path,
        tokens: int,
        kind: str,
        layers: tuple[int, ...],
        units: np.ndarray | None,
        hidden: int,
        dtype: str,
        top_k: int,
    ):
        self.layers, self.units, self.kind = layers, units, kind  # units None: all of them
        (out / "tokens").mkdir(parents=True, exist_ok=True)
        (out / "activations").mkdir(parents=True, exist_ok=True)
        self.surprisal = NpyRows(out / "tokens" / "surprisal_bits.npy", np.float32, (tokens,))
        self.top_ids = NpyRows(out / "tokens" / "top_ids.npy", np.int32, (tokens, top_k))
        self.top_probs = NpyRows(out / "tokens" / "top_probs.npy", np.float32, (tokens, top_k))
        self.values = {
            (layer, name): NpyRows(
                out / "activations" / f"layer{layer}_{name}.npy",
                dtype,
                (tokens, hidden if units is None else units.size),
            )
            for layer in layers
            for name in SIGNALS[kind]
        }

    def add_tokens(self, rows: np.ndarray, surprisal: np.ndarray, top_ids: np.ndarray, top_probs: np.ndarray) -> None:
        self.surprisal.write(rows, surprisal)
        self.top_ids.write(rows, top_ids)
        self.top_probs.write(rows, top_probs)

    def add_units(self, rows: np.ndarray, signals: dict[tuple[int, str], np.ndarray]) -> None:
        for key, writer in self.values.items():
            writer.write(rows, signals[key] if self.units is None else signals[key][:, self.units])

    def close(self) -> None:
        for writer in (self.surprisal, self.top_ids, self.top_probs, *self.values.values()):
            writer.close()


class Correlator:
    """Pearson r between every unit and every feature, on two slices of the text (discovery:
    the first half; held out: the second), from running sums:

        r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2) (n Syy - Sy^2))
    """

    def __init__(self, keys: list[tuple[int, str]], hidden: int, features: np.ndarray, split: int):
        self.keys, self.features, self.split = keys, features, split
        F = features.shape[1]
        self.n = np.zeros(2)
        self.sy, self.syy = np.zeros((2, F)), np.zeros((2, F))
        self.sx = {key: np.zeros((2, hidden)) for key in keys}
        self.sxx = {key: np.zeros((2, hidden)) for key in keys}
        self.sxy = {key: np.zeros((2, hidden, F)) for key in keys}

    def add(self, rows: np.ndarray, signals: dict[tuple[int, str], np.ndarray]) -> None:
        for part, mask in enumerate((rows < self.split, rows >= self.split)):
            if not mask.any():
                continue
            y = self.features[rows[mask]]
            self.n[part] += mask.sum()
            self.sy[part] += y.sum(0, dtype=np.float64)
            self.syy[part] += np.square(y, dtype=np.float64).sum(0)
            for key in self.keys:
                x = signals[key][mask]
                self.sx[key][part] += x.sum(0, dtype=np.float64)
                self.sxx[key][part] += np.square(x, dtype=np.float64).sum(0)
                self.sxy[key][part] += (x.T @ y).astype(np.float64)  # float32 within a chunk, float64 across

    def correlations(self) -> dict[tuple[int, str], np.ndarray]:
        """(layer, signal) -> (2, H, F) r on each slice; NaN where a unit or feature is constant."""
        out = {}
        n = self.n[:, None, None]
        var_y = n * self.syy[:, None, :] - self.sy[:, None, :] ** 2
        for key in self.keys:
            var_x = n * self.sxx[key][:, :, None] - self.sx[key][:, :, None] ** 2
            cov = n * self.sxy[key] - self.sx[key][:, :, None] * self.sy[:, None, :]
            denom = np.sqrt(np.clip(var_x, 0, None) * np.clip(var_y, 0, None))
            scale = np.maximum(np.abs(var_x) * np.abs(var_y), 1e-300) ** 0.5
            with np.errstate(invalid="ignore", divide="ignore"):
                out[key] = np.where(denom > 1e-9 * scale + 1e-12, cov / denom, np.nan)
        return out


class Saturation:
    """How often each gate unit is left- (< 0.1) or right-saturated (> 0.9) (Karpathy et al. 2015, fig. 3)."""

    def __init__(self, keys: list[tuple[int, str]], hidden: int):
        self.keys = keys
        self.n = 0
        self.left = {key: np.zeros(hidden, dtype=np.int64) for key in keys}
        self.right = {key: np.zeros(hidden, dtype=np.int64) for key in keys}

    def add(self, signals: dict[tuple[int, str], np.ndarray]) -> None:
        for key in self.keys:
            value = signals[key]
            self.left[key] += (value < LEFT).sum(0)
            self.right[key] += (value > RIGHT).sum(0)
        self.n += next(iter(signals.values())).shape[0] if self.keys else 0

    def fractions(self) -> dict[str, Any]:
        """{"layer{l}": {gate: {"left": [...], "right": [...]}}} over the tokens read."""
        out: dict[str, Any] = {}
        for layer, gate in self.keys:
            out.setdefault(f"layer{layer}", {})[gate] = {
                "left": (self.left[(layer, gate)] / max(self.n, 1)).round(5).tolist(),
                "right": (self.right[(layer, gate)] / max(self.n, 1)).round(5).tolist(),
            }
        return out


class Excerpt:
    """Every unit's values on rows [start, stop), kept in memory for the report."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop
        self.values: dict[tuple[int, str], np.ndarray] = {}

    def add(self, rows: np.ndarray, signals: dict[tuple[int, str], np.ndarray]) -> None:
        mask = (rows >= self.start) & (rows < self.stop)
        if not mask.any():
            return
        for key, value in signals.items():
            if key not in self.values:
                self.values[key] = np.zeros((self.stop - self.start, value.shape[1]), dtype=np.float32)
            self.values[key][rows[mask] - self.start] = value[mask]


@torch.no_grad()
def read_pass(
    model,
    ids: np.ndarray,
    start_id: int,
    options: InspectOptions,
    features: np.ndarray,
    recorder: Recorder | None = None,
    excerpt: Excerpt | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """One pass of `model` over `ids`: correlations, saturation, and (with a recorder) every
    per-token value. Returns {"correlator", "saturation", "layout", "seconds", "nll_nats"}."""
    kind, L, H = model.config.model, model.config.layers, model.config.hidden
    T = ids.size
    inputs = np.concatenate([[start_id], ids]).astype(np.int64)
    layout = StreamLayout.choose(T + 1, options.streams, options.warmup)
    keys = [(layer, name) for layer in range(L) for name in SIGNALS[kind]]
    correlator = Correlator(keys, H, features, T // 2)
    saturation = Saturation([(layer, gate) for layer in range(L) for gate in GATES[kind]], H)
    started, done, nll, next_report = time.perf_counter(), 0, 0.0, 0.1
    for chunk in trace(model, inputs, layout, options.chunk):
        unit_rows = chunk.positions - 1  # the state after reading token t sits at input position t + 1
        has_token = unit_rows >= 0
        signals = {key: value[torch.from_numpy(has_token)].numpy() for key, value in chunk.signals.items()}
        rows = unit_rows[has_token]
        correlator.add(rows, signals)
        saturation.add(signals)
        if excerpt is not None:
            excerpt.add(rows, signals)
        if recorder is not None:
            recorder.add_units(rows, signals)
        predicts = chunk.positions < T  # input position t predicts token t
        logp = log_probs(model, chunk.top[torch.from_numpy(predicts)])
        targets = torch.from_numpy(ids[chunk.positions[predicts]])
        target_logp = logp.gather(1, targets[:, None])[:, 0]
        nll -= float(target_logp.double().sum())
        if recorder is not None:
            top = logp.topk(min(options.top_k, logp.shape[1]), dim=1)
            k = top.values.shape[1]
            probs = np.zeros((targets.numel(), options.top_k), np.float32)  # k < top_k: a tiny vocabulary
            top_ids = np.zeros((targets.numel(), options.top_k), np.int32)
            probs[:, :k], top_ids[:, :k] = top.values.exp().numpy(), top.indices.numpy()
            recorder.add_tokens(chunk.positions[predicts], (-target_logp / math.log(2)).numpy(), top_ids, probs)
        done += int(chunk.positions.size)
        if log is not None and done / layout.positions >= next_report:
            log(f"inspect: {done / layout.positions:.0%} of {T:,} tokens, {time.perf_counter() - started:.0f} s")
            next_report += 0.1
    return {
        "correlator": correlator,
        "saturation": saturation,
        "layout": layout,
        "seconds": time.perf_counter() - started,
        "nll_nats": nll,
    }


def fresh_model(config):
    """A freshly initialised model of the same configuration, seeded as training seeds it."""
    from ..models.torch_lm import RNNLM

    torch.manual_seed(config.train.seed)
    return RNNLM(config.model).eval()


# ---------------------------------------------------------------------------------------------
# from running sums to findings


def unit_label(key: tuple[int, str], unit: int) -> str:
    return f"layer {key[0]} {key[1]}[{unit}]"


def rank_units(correlations: dict[tuple[int, str], np.ndarray], feature: int, count: int) -> list[dict[str, Any]]:
    """The `count` units with the largest |r| on the discovery slice, with r on both slices."""
    candidates = []
    for key, r in correlations.items():
        discovery = np.abs(np.nan_to_num(r[0, :, feature], nan=0.0))
        for unit in np.argsort(-discovery)[:count]:
            candidates.append((float(discovery[unit]), key, int(unit)))
    candidates.sort(key=lambda item: -item[0])
    out = []
    for _, key, unit in candidates[:count]:
        r_a, r_b = correlations[key][0, unit, feature], correlations[key][1, unit, feature]
        out.append(
            {
                "unit": unit_label(key, unit),
                "layer": key[0],
                "signal": key[1],
                "index": unit,
                "r_discovery": _round(r_a),
                "r_heldout": _round(r_b),
            }
        )
    return out


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def is_finding(best: dict[str, Any], threshold: float) -> bool:
    a, b = best.get("r_discovery"), best.get("r_heldout")
    return bool(a is not None and b is not None and abs(b) >= threshold and np.sign(a) == np.sign(b))


def feature_table(names: list[str], trained: dict, fresh: dict | None, threshold: float) -> list[dict[str, Any]]:
    rows = []
    for f, name in enumerate(names):
        top = rank_units(trained, f, 3)
        row: dict[str, Any] = {
            "feature": name,
            "description": describe(name),
            "top_units": top,
            "best": top[0] if top else None,
            "finding": bool(top) and is_finding(top[0], threshold),
        }
        if fresh is not None:
            control = rank_units(fresh, f, 1)
            row["fresh_best"] = control[0] if control else None
            # how much of the held-out correlation training added over what the input alone gives
            held, fresh_held = (top[0]["r_heldout"] if top else None), (control[0]["r_heldout"] if control else None)
            row["margin_over_fresh"] = (
                None if held is None or fresh_held is None else round(abs(held) - abs(fresh_held), 4)
            )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# the command


def inspect(
    run: str | Path,
    text: str,
    source: str = "--text",
    out: str | Path | None = None,
    options: InspectOptions = InspectOptions(),
    overwrite: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Inspect a trained run on `text`; write DIR/inspect.json, DIR/report.html, PNGs and the
    per-token .npy files; return the JSON document."""
    from .inspect_report import write_report

    lm, model = load_inspectable(run)
    config = lm.config.model
    options.validate(config.layers, config.hidden)
    ids = encode_text(lm.tokenizer, text)
    if options.max_tokens is not None:
        ids = ids[: options.max_tokens]
    T = ids.size
    tokens = token_text(lm.tokenizer, text, T)
    word_level = getattr(lm.tokenizer, "kind", "") != "char"
    names, features = token_features(tokens, word_level)
    layers = options.layers if options.layers is not None else tuple(range(config.layers))
    units = np.array(options.units if options.units is not None else range(config.hidden), dtype=np.int64)
    out = Path(out) if out is not None else fresh_run_dir("inspect")
    _check_space(out, T, len(layers) * len(SIGNALS[config.model]) * units.size, options)
    prepare_run_dir(out, overwrite, marker=MARKER)
    # marked as ours at once: a run cut short can be replaced with --overwrite, completed later
    write_json(out / MARKER, {"run": str(lm.path), "complete": False})

    recorder = Recorder(
        out,
        T,
        config.model,
        layers,
        None if options.units is None else units,
        config.hidden,
        options.dtype,
        options.top_k,
    )
    # the report draws the start of the held-out slice (units are chosen on the other half), or
    # the whole text when it is short
    shown_start = 0 if T <= options.show else T // 2
    if options.show_from is not None:
        if options.show_from >= T:
            raise ConfigError(f"--show-from {options.show_from} is past the end of the text ({T} tokens)")
        shown_start = options.show_from
    excerpt = Excerpt(shown_start, min(T, shown_start + options.show))
    trained = read_pass(model, ids, lm.tokenizer.start_id(), options, features, recorder, excerpt, log)
    recorder.close()

    fresh_ids = ids[: options.fresh_tokens]
    fresh = None
    if fresh_ids.size:
        fresh = read_pass(
            fresh_model(lm.config), fresh_ids, lm.tokenizer.start_id(), options, features[: fresh_ids.size]
        )
    trained_r = trained["correlator"].correlations()
    fresh_r = fresh["correlator"].correlations() if fresh is not None else None
    layout = trained["layout"]
    document = {
        "run": str(lm.path),
        "source": source,
        "model": {k: getattr(config, k) for k in ("model", "layers", "hidden", "embed", "vocab_size")},
        "tokenizer": getattr(lm.tokenizer, "kind", "bpe"),
        "tokens": T,
        "characters": int(tokens.ends[-1]) + 1,
        "mean_surprisal_bits": round(trained["nll_nats"] / T / math.log(2), 5),
        "mean_nll_nats": round(trained["nll_nats"] / T, 5),
        "streams": layout.streams,
        "warmup": layout.warmup,
        "seconds": round(trained["seconds"], 3),
        "fresh_seconds": round(fresh["seconds"], 3) if fresh else None,
        "slices": {"discovery": [0, T // 2], "heldout": [T // 2, T]},
        "threshold": options.threshold,
        "finding_rule": (
            f"the best unit on the discovery slice (first half) has |r| >= {options.threshold} "
            "on the held-out slice (second half), with the same sign"
        ),
        "features": feature_table(names, trained_r, fresh_r, options.threshold),
        "saturation": {
            "left_below": LEFT,
            "right_above": RIGHT,
            "trained": trained["saturation"].fractions(),
            "trained_tokens": T,
            "fresh": fresh["saturation"].fractions() if fresh else {},
            "fresh_tokens": int(fresh_ids.size),
        },
        "recorded": {
            "layers": list(layers),
            "units": "all" if options.units is None else units.tolist(),
            "signals": {name: SIGNAL_NAMES[name] for name in SIGNALS[config.model]},
            "dtype": options.dtype,
        },
        "excerpt": [excerpt.start, excerpt.stop],
        "options": {k: v for k, v in asdict(options).items() if k not in ("layers", "units", "pngs")},
        "out": str(out),
        "complete": True,
        "files": {},
    }
    excerpt_data = {
        "pieces": tokens.pieces[excerpt.start : excerpt.stop],
        "values": excerpt.values,
        "features": {name: features[excerpt.start : excerpt.stop, f] for f, name in enumerate(names)},
        **{
            name: np.array(np.load(out / "tokens" / f"{name}.npy", mmap_mode="r")[excerpt.start : excerpt.stop])
            for name in ("surprisal_bits", "top_ids", "top_probs")
        },
        "token": lambda index: token_string(lm.tokenizer, index),
    }
    document["files"] = write_report(out, document, excerpt_data, options.pngs)
    write_json(out / MARKER, document)
    return document


def _check_space(out: Path, tokens: int, columns: int, options: InspectOptions) -> None:
    """Refuse before starting when the per-token files would not fit on the disk."""
    need = tokens * (columns * np.dtype(options.dtype).itemsize + options.top_k * 8 + 4)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > 0.9 * free:
        raise DataError(
            f"recording would write {need / 1e9:.1f} GB under {out} but only {free / 1e9:.1f} GB "
            "are free; record fewer with --layer or --units, or use --dtype float16"
        )


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What `rnnkit inspect` prints: surprisal, the best unit per feature, saturation means."""
    lines = [
        f"{document['tokens']:,} tokens, mean surprisal {document['mean_surprisal_bits']:.3f} bits/token "
        f"({document['streams']} stream(s), {document['seconds']:.1f} s)",
        f"finding: {document['finding_rule']}",
        f"{'feature':<22}{'best unit':<22}{'r discovery':>12}{'r held-out':>12}  finding  fresh model best r",
    ]
    for row in document["features"]:
        best, control = row["best"], row.get("fresh_best")
        if best is None or best["r_discovery"] is None:
            lines.append(f"{row['feature']:<22}{'(constant in this text)':<22}")
            continue
        held = "-" if best["r_heldout"] is None else f"{best['r_heldout']:+.3f}"
        fresh = (
            "-"
            if not control or control["r_discovery"] is None
            else (
                f"{control['r_discovery']:+.3f} / {control['r_heldout']:+.3f}"
                if control["r_heldout"] is not None
                else f"{control['r_discovery']:+.3f}"
            )
        )
        lines.append(
            f"{row['feature']:<22}{best['unit']:<22}{best['r_discovery']:>+12.3f}{held:>12}  "
            f"{'yes' if row['finding'] else 'no':<7}  {fresh}"
        )
    for which in ("trained", "fresh"):
        for layer, gates in document["saturation"][which].items():
            parts = [f"{gate} {np.mean(v['left']):.2f}/{np.mean(v['right']):.2f}" for gate, v in gates.items()]
            if parts:
                lines.append(f"saturation ({which}, {layer}, mean left/right fraction): " + ", ".join(parts))
    return lines


def unit_values(model, tokenizer, text: str, layer: int, signal: str, max_tokens: int) -> tuple[list[str], np.ndarray]:
    """(the pieces of text each token covers, float32 (T, H) values of `signal` at `layer` after
    reading each token): one exact stream over at most `max_tokens` tokens, the newline first as
    `inspect` reads it. What a page needs to colour a short text by any unit."""
    kind, layers = model.config.model, model.config.layers
    if not 0 <= layer < layers:
        raise ConfigError(f"layer {layer} is out of range: this model has layers 0..{layers - 1}")
    if signal not in SIGNALS[kind]:
        raise ConfigError(f"a {kind} layer has no signal {signal!r}; it has {', '.join(SIGNALS[kind])}")
    ids = encode_text(tokenizer, text)[:max_tokens]
    inputs = np.concatenate([[tokenizer.start_id()], ids]).astype(np.int64)
    values = np.zeros((ids.size, model.config.hidden), np.float32)
    for chunk in trace(model, inputs, StreamLayout.choose(inputs.size, 1, 0), 64):
        rows = chunk.positions - 1  # the state after reading token t sits at input position t + 1
        has_token = rows >= 0
        values[rows[has_token]] = chunk.signals[(layer, signal)][torch.from_numpy(has_token)].numpy()
    return token_text(tokenizer, text, ids.size).pieces, values
