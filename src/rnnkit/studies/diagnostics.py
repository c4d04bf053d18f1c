"""Gradients through time: how strongly the loss at the end of a window still depends on the
hidden state k steps earlier, and the recurrent matrices that decide it (`rnnkit gradients`).

For a window x_1..x_T and the loss at its LAST step only, L_T = -log p(x_{T+1} | h_T), the chain
rule through the recurrence gives, for the hidden state k steps before the end,

    dL_T/dh_{T-k} = dL_T/dh_T · (dh_T/dh_{T-1}) (dh_{T-1}/dh_{T-2}) ··· (dh_{T-k+1}/dh_{T-k})

For a vanilla tanh RNN each factor is dh_j/dh_{j-1} = diag(1 - h_j²) W_hh, so

    ||dL_T/dh_{T-k}|| <= ||dL_T/dh_T|| · sigma_max(W_hh)^k

and with sigma_max(W_hh) < 1 the gradient must shrink geometrically: the RNN gets (almost) no
signal to learn from what it read k steps back (vanishing gradients; Bengio, Simard and Frasconi
1994). Above 1 the product may instead grow without bound (exploding gradients, which clipping
tames). An LSTM carries its memory on a second path, c_j = f_j * c_{j-1} + i_j * g_j, whose
factor is the forget gate f_j itself, elementwise: training can hold it near 1, and then the
gradient survives many steps. A GRU's update gate z_j plays the same part: h_j = (1-z_j) n_j + z_j h_{j-1}.

How it is measured (`hidden_gradient_norms`): the model runs in float64, in eval mode (no dropout),
ONE step at a time from a zero state, so that every top-layer state h_0..h_T is a tensor of its
own in the autograd graph; `torch.autograd.grad(L_T, [h_0..h_T])` then gives every dL_T/dh_t in a
single backward pass. The norm is taken per sequence (L_T summed over the batch, so each row's
gradient is that sequence's own) and averaged over the sequences of several windows of real text
(the training split). For the LSTM h_t is the output state (the cell state c_t is not reported).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MODELS, DataConfig, ModelConfig, check_int
from ..errors import ConfigError, DataError, PromptError
from ..files import fresh_run_dir, json_safe, write_json
from ..runtime import require, stderr_logger
from .plot import finish_figure, new_axes

GATES = {"rnn": ("h",), "rnn_relu": ("h",), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}
QUANTITY = (
    "mean over sequences of ||dL_T/dh_{T-k}||_2, top layer, L_T = loss at the last step "
    "of the window, k = distance in steps (k = T is the initial zero state)"
)

Log = Callable[[str], None]


@dataclass
class GradientProfile:
    """One model's gradient norms by distance, and the largest singular values of its W_hh."""

    label: str
    model: str
    layers: int
    hidden: int
    source: str  # "fresh" or the checkpoint directory
    data: str  # the text the windows came from
    norms: list[float]  # norms[k] = mean ||dL_T/dh_{T-k}|| (top layer), k = 0..T
    sequences: int  # how many sequences the mean is over
    singular_values: list[dict[str, Any]] = field(default_factory=list)

    @property
    def relative(self) -> list[float]:
        """norms[k] / norms[0]: the fraction of the last step's gradient left k steps back."""
        first = self.norms[0] or math.nan
        return [value / first for value in self.norms]

    def decay_per_step(self) -> float:
        """exp(slope) of a least-squares line through log(norm) against distance: the factor by
        which the gradient shrinks per step on average (0.5: halved every step; near 1: kept)."""
        k = np.arange(len(self.norms), dtype=float)
        norms = np.asarray(self.norms, dtype=float)
        keep = norms > 0
        if keep.sum() < 2:
            return math.nan
        slope = np.polyfit(k[keep], np.log(norms[keep]), 1)[0]
        return float(math.exp(slope))

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model,
            "layers": self.layers,
            "hidden": self.hidden,
            "source": self.source,
            "data": self.data,
            "sequences": self.sequences,
            "distance": list(range(len(self.norms))),
            "grad_norm": self.norms,
            "relative": json_safe(self.relative),
            "decay_per_step": json_safe(self.decay_per_step()),
            "singular_values": self.singular_values,
        }


# --------------------------------------------------------------------------- the measurement


def _hidden(state: Any) -> torch.Tensor:
    """The h part of a recurrent state: (L, N, H) for RNN/GRU, the first of (h, c) for the LSTM."""
    return state[0] if isinstance(state, tuple) else state


def hidden_gradient_norms(model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||dL_T/dh_{T-k}|| of the top layer for k = 0..T and every sequence: a (T+1, N) tensor.

    L_T = sum_n CE(head(h_T[n]), y[n, T-1]): each sequence's own last-step loss, so row n of the
    gradient is that sequence's. The cell is stepped one token at a time (see the module
    docstring) so that the gradient with respect to every intermediate state can be asked for.
    `model` is an RNNLM; it is copied to float64 and eval mode, never changed.
    """
    return _last_step_gradients(_float64_copy(model), x, y)


def _float64_copy(model: Any) -> Any:
    """A float64 CPU copy in eval mode (no dropout): tiny gradients far back stay representable."""
    return copy.deepcopy(model).to(torch.float64).cpu().eval()


def _last_step_gradients(model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`hidden_gradient_norms` on a model that is already a float64 CPU copy in eval mode."""
    x, y = x.cpu(), y.cpu()
    with torch.enable_grad():
        state = model.initial_state(x.shape[0], torch.device("cpu"))
        _hidden(state).requires_grad_(True)  # h_0 (distance T) is a leaf we can differentiate by
        hiddens = [_hidden(state)]
        inputs = model.inputs(x)  # (N, T, D)
        for t in range(x.shape[1]):
            _, state = model.rnn(inputs[:, t : t + 1], state)
            hiddens.append(_hidden(state))  # h_t, all layers (L, N, H)
        logits = model.head(hiddens[-1][-1])  # top layer's h_T -> next-token logits (N, V)
        loss = F.cross_entropy(logits, y[:, -1], reduction="sum")
        grads = torch.autograd.grad(loss, hiddens)
    by_time = torch.stack([grad[-1].norm(dim=-1) for grad in grads])  # (T+1, N), t = 0..T
    return by_time.flip(0).detach()  # index k = distance T - t


def recurrent_singular_values(model: Any) -> list[dict[str, Any]]:
    """sigma_max of every layer's W_hh: of the full stacked matrix (G*H, H), and of each gate's
    (H, H) block in PyTorch's order (LSTM i, f, g, o; GRU r, z, n; RNN just h).

    For the vanilla RNN sigma_max(W_hh) bounds the per-step gradient factor (module docstring);
    for gated cells the blocks only enter through the gates, so they are a weaker guide.
    """
    kind, hidden = model.config.model, model.config.hidden
    rows = []
    for layer in range(model.config.layers):
        name = f"rnn.weight_hh_l{layer}"
        weight = getattr(model.rnn, f"weight_hh_l{layer}").detach().to(torch.float64).cpu()
        blocks = {gate: _sigma_max(weight[g * hidden : (g + 1) * hidden]) for g, gate in enumerate(GATES[kind])}
        rows.append({"layer": layer, "matrix": name, "stacked": _sigma_max(weight), "gates": blocks})
    return rows


def _sigma_max(matrix: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def text_windows(
    ids: np.ndarray, batch_size: int, seq_len: int, batches: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` windows of N x T tokens spread evenly over the text (TBPTT layout, data.py)."""
    from ..data import SequentialBatches

    layout = SequentialBatches(ids, batch_size, seq_len)
    picks = np.unique(np.linspace(0, len(layout) - 1, batches).round().astype(int))
    return [layout.window(int(index)) for index in picks]


class Subject(NamedTuple):
    """A model to measure, where it came from, and the token ids of the text to measure it on."""

    model: Any  # an RNNLM
    label: str
    source: str
    data: str
    ids: np.ndarray


def gradient_profile(subject: Subject, windows: list[tuple[torch.Tensor, torch.Tensor]], label: str) -> GradientProfile:
    """Average `hidden_gradient_norms` over every sequence of every window; add sigma_max(W_hh)."""
    model = subject.model
    model64 = _float64_copy(model)  # once for all windows
    norms = torch.cat([_last_step_gradients(model64, x, y) for x, y in windows], dim=1)  # (T+1, all N)
    config = model.config
    return GradientProfile(
        label=label,
        model=config.model,
        layers=config.layers,
        hidden=config.hidden,
        source=subject.source,
        data=subject.data,
        norms=[float(v) for v in norms.mean(dim=1)],
        sequences=norms.shape[1],
        singular_values=recurrent_singular_values(model),
    )


# --------------------------------------------------------------------------- models and text


@dataclass(frozen=True)
class GradientOptions:
    """What `rnnkit gradients` measures on: window shape, how many windows, fresh model sizes."""

    seq_len: int = 64
    batch_size: int = 16
    batches: int = 4
    layers: int = 1
    hidden: int = 128
    embed: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (
            ("seq_len", 1, 10_000),
            ("batch_size", 1, 4096),
            ("batches", 1, 1000),
            ("layers", 1, 64),
            ("hidden", 1, 1 << 14),
            ("embed", 0, 1 << 14),
            ("seed", 0, (1 << 63) - 1),
        ):
            check_int(name, getattr(self, name), low, high)


def fresh_models(kinds: Sequence[str], data: str, tokenizer: str, options: GradientOptions, log: Log) -> list[Subject]:
    """Newly initialised RNNLMs (one per kind, each from `options.seed`) and the training text."""
    from ..data import load_splits
    from ..models.torch_lm import RNNLM

    loaded = load_splits(DataConfig(data=data, tokenizer=tokenizer))
    log(f"gradients: {loaded.summary()}")
    vocabulary, splits = loaded.tokenizer, loaded.splits
    models = []
    for kind in kinds:
        torch.manual_seed(options.seed)  # the same seed for every kind, as `train` would use
        model_config = ModelConfig(
            model=kind, layers=options.layers, hidden=options.hidden, embed=options.embed, vocab_size=len(vocabulary)
        )
        models.append(Subject(RNNLM(model_config), kind, "fresh", data, splits["train"].ids))
    return models


def checkpoint_model(path: str, data: str | None, log: Log) -> Subject:
    """A trained RNNLM from a checkpoint (either engine) and the training split of its own text
    (or of `data`), encoded with the checkpoint's vocabulary."""
    from ..api import load
    from ..data import load_splits

    lm = load(path, device="cpu", engine="torch")
    if lm.config.model.is_baseline:
        raise ConfigError(
            f"gradients: {path} holds a {lm.config.model.model} model, which has no hidden "
            "state to differentiate; give a checkpoint of rnn, rnn_relu, gru or lstm"
        )
    source = dataclasses.replace(lm.config.data, data=data or lm.config.data.data)
    try:
        loaded = load_splits(source, lm.tokenizer)
    except PromptError as error:
        raise DataError(f"gradients: cannot encode {source.data} with {path}'s vocabulary: {error}") from None
    log(f"gradients: {loaded.summary()}")
    checkpoint = Path(lm.path or path)
    run = checkpoint.parent if checkpoint.name in ("best", "last") else checkpoint
    return Subject(lm.model, run.name, str(checkpoint), source.data, loaded.splits["train"].ids)


def _unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result


def parse_kinds(text: str) -> list[str]:
    """`rnn,gru,lstm` -> kinds; ConfigError for anything that is not a recurrent model."""
    kinds = [item.strip().lower() for item in text.split(",")] if isinstance(text, str) else []
    if not kinds or not all(kinds):
        raise ConfigError(f"--model must be a comma-separated list like rnn,gru,lstm, got {text!r}")
    for kind in kinds:
        if kind not in MODELS:
            raise ConfigError(f"--model: {kind!r} is not a recurrent model; use {', '.join(MODELS)}")
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"--model lists a model twice: {text!r}")
    return kinds


# --------------------------------------------------------------------------- the command


def gradients(
    checkpoints: Sequence[str] = (),
    models: str | None = None,
    data: str | None = None,
    tokenizer: str = "char",
    out: str | Path | None = None,
    options: GradientOptions | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Measure every model (checkpoints, then fresh `models`), write OUT/gradients.json and
    OUT/gradients.png, and return the JSON document. Without checkpoints, `models` defaults to
    rnn,gru,lstm. Options and outputs are checked before any model is loaded."""
    options = options or GradientOptions()
    require("matplotlib", "plot", "rnnkit gradients (it draws gradients.png)")  # before any model is loaded
    kinds = parse_kinds(models) if models is not None else ([] if checkpoints else ["rnn", "gru", "lstm"])
    log = log or stderr_logger(False)
    out_dir = Path(out) if out is not None else default_out("gradients", data or "timemachine")
    outputs = [out_dir / "gradients.json", out_dir / "gradients.png"]
    check_outputs(outputs, overwrite)
    entries = [checkpoint_model(str(path), data, log) for path in checkpoints]
    if kinds:
        entries += fresh_models(kinds, data or "timemachine", tokenizer, options, log)
    profiles = []
    for subject, label in zip(entries, _unique_labels([subject.label for subject in entries]), strict=True):
        windows = text_windows(subject.ids, options.batch_size, options.seq_len, options.batches)
        profiles.append(gradient_profile(subject, windows, label))
        log(f"gradients: {label}: decay per step {profiles[-1].decay_per_step():.3f}")
    document = {
        "format": "rnnkit-gradients",
        "quantity": QUANTITY,
        "singular_values": "sigma_max of rnn.weight_hh_l{k}: 'stacked' = the full (G*H, H) matrix, "
        "'gates' = each gate's (H, H) block",
        "seq_len": options.seq_len,
        "batch_size": options.batch_size,
        "batches": options.batches,
        "models": [profile.to_dict() for profile in profiles],
        "files": {"json": str(outputs[0]), "png": str(outputs[1])},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(outputs[0], document)
    plot_gradients(profiles, outputs[1], f"dL_T/dh_(T-k), top layer, T = {options.seq_len}")
    return document


def check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace result files unless asked, and a file where a directory must go."""
    for path in paths:
        if path.parent.exists() and not path.parent.is_dir():
            raise ConfigError(f"--out {path.parent} exists and is not a directory")
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists already; choose another --out, or pass --overwrite to replace it")


def default_out(command: str, data: str) -> Path:
    """runs/COMMAND-DATA-TIMESTAMP, with -2, -3... if that exists already."""
    return fresh_run_dir(f"{command}-{Path(data).stem or 'data'}")


def summary_table(document: dict[str, Any]) -> str:
    """One markdown row per model: gradient left at T/4, T/2 and T steps back, decay, sigma_max."""
    steps = document["seq_len"]
    marks = sorted({max(1, steps // 4), max(1, steps // 2), steps})
    head = (
        ["model", "source", "sequences", "norm at k=0"]
        + [f"rel. k={k}" for k in marks]
        + ["decay/step", "sigma_max W_hh (stacked, per layer)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for row in document["models"]:
        sigmas = ", ".join(f"{s['stacked']:.3f}" for s in row["singular_values"])
        cells = (
            [
                row["label"],
                "fresh" if row["source"] == "fresh" else Path(row["source"]).name,
                str(row["sequences"]),
                _g(row["grad_norm"][0]),
            ]
            + [_g(row["relative"][k]) for k in marks]
            + [_g(row["decay_per_step"]), sigmas]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def plot_gradients(profiles: Sequence[GradientProfile], path: Path, title: str, ax: Any = None) -> Any:
    """gradients.png: ||dL_T/dh_{T-k}|| against k on a log scale, one line per model. Returns the
    matplotlib Figure (drawn into `ax` when given), or None without matplotlib."""
    figure, axes = new_axes(ax, (7, 4.5), "gradients.png")
    if figure is None:
        return None
    for profile in profiles:
        norms = np.asarray(profile.norms, dtype=float)
        norms[norms <= 0] = np.nan  # log scale: an exact zero has no place on it
        sigma = profile.singular_values[0]["stacked"] if profile.singular_values else math.nan
        axes.plot(
            np.arange(len(norms)),
            norms,
            marker="o",
            markersize=2,
            label=f"{profile.label} (x{profile.decay_per_step():.2f}/step, sigma_max W_hh_l0 {sigma:.2f})",
        )
    axes.set_yscale("log")
    axes.set_xlabel("distance k (steps back from the last step)")
    axes.set_ylabel("mean ||dL_T / dh_(T-k)||")
    finish_figure(figure, axes, title, path)
    return figure
