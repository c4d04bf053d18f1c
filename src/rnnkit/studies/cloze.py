"""Bidirectional context, measured: fill in a masked character from one side or from both
(`rnnkit cloze --bidirectional`).

A language model factorises p(x_1..x_T) = prod_t p(x_t | x_<t): at step t it may read only the
past, which is why `rnnkit train --bidirectional` is refused. A cloze task asks something else:
given a window of 2C+1 characters with the centre one replaced by a mask symbol, name the centre
character. Both sides are fair game, and a bidirectional RNN reads them both:

    forward:   h→_t = cell→(x_t, h→_{t-1})     t = 1 .. C+1     (left context, then the mask)
    backward:  h←_t = cell←(x_t, h←_{t+1})     t = 2C+1 .. C+1  (right context, then the mask)
    p(x_centre | window) = softmax(W [h→_{C+1}; h←_{C+1}] + b)

The unidirectional model is the same network with the forward direction only, so it reads the
left context and the mask — exactly what a language model knows when it must predict that
character. Both get the same data, hidden size, optimizer and wall-clock budget; the gap between
their accuracies is what the right-hand context is worth. (The bidirectional model has about
twice the recurrent parameters: H per direction, as in torch's nn.GRU(bidirectional=True).)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import DEVICES, DataConfig, check_choice, check_float, check_int
from ..errors import DataError

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
Log = Callable[[str], None]


@dataclass(frozen=True)
class ClozeOptions:
    """Sizes and budget of the two cloze models (shared by both, so they are compared fairly)."""

    model: str = "gru"
    context: int = 16  # C characters on each side of the gap
    embed: int = 32
    hidden: int = 128
    batch_size: int = 64
    lr: float = 3e-3
    budget_seconds: float = 30.0  # wall-clock training time of EACH model
    steps: int | None = None  # stop after this many steps even if time is left
    eval_windows: int = 4000  # validation gaps scored (evenly spaced over the split)
    seed: int = 1337
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("model", self.model, tuple(CELLS))
        for name, low, high in (
            ("context", 1, 4096),
            ("embed", 1, 1 << 14),
            ("hidden", 1, 1 << 14),
            ("batch_size", 1, 1 << 16),
            ("eval_windows", 1, 1 << 24),
            ("seed", 0, (1 << 63) - 1),
        ):
            check_int(name, getattr(self, name), low, high)
        check_int("steps", self.steps, 1, 1 << 40, allow_none=True)
        for name in ("lr", "budget_seconds"):
            check_float(name, getattr(self, name), 0.0, low_open=True)
        check_choice("device", self.device, DEVICES)


class ClozeModel(nn.Module):
    """Embedding (+1 id for the mask) -> GRU/LSTM (one or two directions) -> linear head read at
    the gap. The unidirectional model is given only the left context and the mask (the rest of
    the window could not reach its output at the gap anyway, and feeding it would waste its budget)."""

    def __init__(self, vocab_size: int, options: ClozeOptions, bidirectional: bool):
        super().__init__()
        self.context, self.bidirectional = options.context, bidirectional
        self.embed = nn.Embedding(vocab_size + 1, options.embed)  # id vocab_size = the mask
        self.rnn = CELLS[options.model](options.embed, options.hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(options.hidden * (2 if bidirectional else 1), vocab_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (N, 2C+1) ids, centre = mask -> logits (N, V) for the centre character."""
        if not self.bidirectional:
            windows = windows[:, : self.context + 1]  # left context and the mask
        hidden, _ = self.rnn(self.embed(windows))  # (N, W, H * directions)
        return self.head(hidden[:, self.context])


def masked_windows(
    ids: torch.Tensor, centres: torch.Tensor, context: int, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets): windows ids[c-C .. c+C] with the centre set to `mask_id`; targets ids[c]."""
    offsets = torch.arange(-context, context + 1, device=ids.device)
    windows = ids[centres[:, None] + offsets]
    targets = windows[:, context].clone()
    windows[:, context] = mask_id
    return windows, targets


def load_cloze_data(data: str, context: int, log: Log) -> tuple[Any, dict[str, torch.Tensor]]:
    """Character ids of the train and validation splits (vocabulary from the training split)."""
    from ..data import load_splits

    loaded = load_splits(DataConfig(data=data, tokenizer="char"))
    log(f"cloze: {loaded.summary()}")
    tokenizer, splits = loaded.tokenizer, loaded.splits
    tensors = {name: torch.as_tensor(splits[name].ids, dtype=torch.long) for name in ("train", "val")}
    for name, ids in tensors.items():
        if len(ids) < 2 * context + 1:
            raise DataError(
                f"cloze: the {name} split has {len(ids)} characters, fewer than one window of "
                f"{2 * context + 1}; lower --context or give more text"
            )
    return tokenizer, tensors


def train_cloze(model: ClozeModel, ids: torch.Tensor, options: ClozeOptions, device: torch.device) -> dict[str, Any]:
    """AdamW on random gaps of the training split until the budget (or `steps`) is spent.

    Loss: cross-entropy of the centre character, -log softmax(logits)[x_centre], mean over the batch.
    """
    generator = torch.Generator().manual_seed(options.seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr)
    mask_id, context = model.embed.num_embeddings - 1, options.context
    ids = ids.to(device)
    model.train()
    steps, started, loss = 0, time.perf_counter(), torch.zeros(())
    while time.perf_counter() - started < options.budget_seconds and (options.steps is None or steps < options.steps):
        centres = torch.randint(context, len(ids) - context, (options.batch_size,), generator=generator)
        windows, targets = masked_windows(ids, centres.to(device), context, mask_id)
        loss = F.cross_entropy(model(windows), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps += 1
    return {"steps": steps, "seconds": time.perf_counter() - started, "train_loss": float(loss.detach())}


@torch.no_grad()
def evaluate_cloze(
    model: ClozeModel, ids: torch.Tensor, options: ClozeOptions, device: torch.device
) -> dict[str, float]:
    """Accuracy (argmax = the masked character) and mean loss over evenly spaced validation gaps."""
    model.eval()
    context, mask_id = options.context, model.embed.num_embeddings - 1
    count = min(options.eval_windows, len(ids) - 2 * context)
    centres = torch.as_tensor(np.linspace(context, len(ids) - context - 1, count).round().astype(np.int64))
    ids, correct, nats = ids.to(device), 0, 0.0
    for start in range(0, count, 1024):
        windows, targets = masked_windows(ids, centres[start : start + 1024].to(device), context, mask_id)
        logits = model(windows).float()
        correct += int((logits.argmax(dim=-1) == targets).sum())
        nats += float(F.cross_entropy(logits, targets, reduction="sum"))
    return {"accuracy": correct / count, "loss": nats / count, "gaps": count}


def _gap_centres(length: int, options: ClozeOptions) -> torch.Tensor:
    count = min(options.eval_windows, length - 2 * options.context)
    return torch.as_tensor(np.linspace(options.context, length - options.context - 1, count).round().astype(np.int64))


def majority_accuracy(train_ids: torch.Tensor, val_ids: torch.Tensor, options: ClozeOptions) -> tuple[int, float]:
    """The most frequent training character and how often it is the answer at the scored gaps:
    the accuracy of a 'model' that ignores the context altogether."""
    most = int(torch.bincount(train_ids).argmax())
    answers = val_ids[_gap_centres(len(val_ids), options)]
    return most, float((answers == most).float().mean())


def cloze(
    data: str = "timemachine", options: ClozeOptions | None = None, bidirectional: bool = True, log: Log | None = None
) -> dict[str, Any]:
    """Train the unidirectional cloze model (and, with `bidirectional`, the bidirectional one on
    the same data, sizes, seed and budget), score both on the same validation gaps, return a report."""
    from ..runtime import flush_denormals, resolve_device, stderr_logger

    options = options or ClozeOptions()
    device = resolve_device(options.device)
    log = log or stderr_logger(False)
    tokenizer, ids = load_cloze_data(data, options.context, log)
    rows = []
    with flush_denormals():
        for both in [False, True] if bidirectional else [False]:
            torch.manual_seed(options.seed)  # the same initial embedding and head draws for both
            model = ClozeModel(len(tokenizer), options, both).to(device)
            trained = train_cloze(model, ids["train"], options, device)
            scores = evaluate_cloze(model, ids["val"], options, device)
            rows.append(
                {
                    "direction": "bidirectional" if both else "unidirectional",
                    "parameters": sum(p.numel() for p in model.parameters()),
                    **trained,
                    **scores,
                }
            )
            log(f"cloze: {_row_line(rows[-1])}")
    most, share = majority_accuracy(ids["train"], ids["val"], options)
    return {
        "format": "rnnkit-cloze",
        "data": data,
        "device": str(device),
        "options": asdict(options),
        "results": rows,
        "majority": {"char": tokenizer.decode([most]), "accuracy": share},
    }


def _row_line(row: dict[str, Any]) -> str:
    sides = "both sides" if row["direction"] == "bidirectional" else "left side only"
    label = f"{row['direction']} ({sides}):"
    return (
        f"{label:<32} accuracy {100 * row['accuracy']:.1f}% "
        f"(loss {row['loss']:.3f} nats) after {row['steps']} steps in {row['seconds']:.1f} s, "
        f"{row['parameters']:,} parameters"
    )


def report_lines(report: dict[str, Any]) -> list[str]:
    """What `rnnkit cloze` prints: one line per model, the majority baseline, and the gain."""
    options = report["options"]
    budget = f"{options['budget_seconds']:g} s"
    if options["steps"] is not None:
        budget = f"{options['steps']} steps (at most {budget})"
    head = (
        f"cloze on {report['data']}: {options['model']}, hidden {options['hidden']}, "
        f"{options['context']} characters each side of the gap, {budget} per model, "
        f"{report['results'][0]['gaps']} validation gaps"
    )
    lines = [head]
    lines += [_row_line(row) for row in report["results"]]
    lines.append(
        f"always {report['majority']['char']!r} (most frequent): accuracy {100 * report['majority']['accuracy']:.1f}%"
    )
    by_direction = {row["direction"]: row["accuracy"] for row in report["results"]}
    if "bidirectional" in by_direction:
        gain = by_direction["bidirectional"] - by_direction["unidirectional"]
        lines.append(f"reading the right-hand side too: {100 * gain:+.1f} points of accuracy")
    else:
        lines.append("add --bidirectional to train the model that reads both sides on the same budget")
    return lines
