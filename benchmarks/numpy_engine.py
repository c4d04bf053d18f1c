"""Training throughput of the NumPy engine against plain PyTorch on the CPU, and against min-char-rnn.

One training step = forward + backward + gradient clipping + AdamW update, on a window of
N sequences x T tokens; throughput is N*T / (seconds per step). Both engines train the same
model (Embedding -> 1-layer LSTM -> Linear) from the same weights on the same batches.
Rounds alternate between the engines and the best round of each is kept, so a busy machine
slows both alike and a momentary hiccup does not decide the result.

The "classic" row is the min-char-rnn recipe (batch 1, hidden 100, 25-step windows, one-hot
column vectors built per step, Adagrad), timed in characters per second, next to the engine
training the same vanilla RNN.

    python benchmarks/numpy_engine.py [--threads K] [--rounds R] [--steps S] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for torch and for NumPy's BLAS (default: torch's default)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per engine")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a shorter sweep")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads is not None:
    # BLAS reads its thread count once, when NumPy loads it: set it before the import below
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from rnnkit.config import ModelConfig  # noqa: E402
from rnnkit.models.numpy_lm import NumpyRNNLM  # noqa: E402
from rnnkit.models.numpy_optim import AdamW, clip_grad_norm  # noqa: E402
from rnnkit.runtime import tune_allocator  # noqa: E402

tune_allocator()  # as the CLI runs (runtime.tune_allocator): both engines' temporaries stay in the heap

VOCAB, EMBED, BATCH, STEPS = 65, 64, 32, 35
CORPUS = Path(__file__).resolve().parents[1] / "src" / "rnnkit" / "text" / "bundled" / "tinyshakespeare.txt"


def token_stream(size: int, vocab: int, seed: int = 0) -> np.ndarray:
    """Character ids from Tiny Shakespeare (65 symbols) when present, else random ids."""
    if CORPUS.exists() and vocab == VOCAB:
        text = CORPUS.read_text(encoding="utf-8")[: size + 1]
        chars = sorted(set(CORPUS.read_text(encoding="utf-8")))
        if len(chars) == vocab:
            lookup = {c: i for i, c in enumerate(chars)}
            return np.array([lookup[c] for c in text], dtype=np.int64)
    return np.random.default_rng(seed).integers(0, vocab, size + 1)


def batches(stream: np.ndarray, batch: int, steps: int):
    """Endless sequential windows: the stream cut into `batch` rows, read `steps` at a time."""
    cols = (len(stream) - 1) // batch
    x = stream[: batch * cols].reshape(batch, cols)
    y = stream[1 : batch * cols + 1].reshape(batch, cols)
    while True:
        for start in range(0, cols - steps + 1, steps):
            yield x[:, start : start + steps], y[:, start : start + steps]


class TorchLM(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.rnn = nn.LSTM(EMBED, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, idx, state):
        out, state = self.rnn(self.embed(idx), state)
        return self.head(out), state


def numpy_trainer(hidden: int, data):
    model = NumpyRNNLM(
        ModelConfig(model="lstm", layers=1, hidden=hidden, embed=EMBED, dropout=0.0, vocab_size=VOCAB), seed=0
    )
    opt, state = AdamW(weight_decay=0.01), None

    def step() -> float:
        nonlocal state
        x, y = next(data)
        loss, grads, state = model.loss_and_grads(x, y, state)
        clip_grad_norm(grads, 1.0)
        opt.step(model.params, grads, 2e-3)
        return loss

    return model, step


def torch_trainer(hidden: int, data, weights: dict[str, np.ndarray]):
    model = TorchLM(hidden)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(weights[name]))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    state = None

    def step() -> float:
        nonlocal state
        x, y = next(data)
        logits, state = model(torch.from_numpy(x), state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(y).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


def best_seconds(steps: dict[str, callable], rounds: int, per_round: int) -> dict[str, float]:
    """Seconds per step of each function: the best of `rounds` rounds, rounds interleaved."""
    for fn in steps.values():  # warm up: first-touch allocations, BLAS thread pools
        for _ in range(3):
            fn()
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / per_round)
    return best


def compare(hidden: int, stream: np.ndarray, rounds: int, per_round: int) -> dict:
    model, np_step = numpy_trainer(hidden, batches(stream, BATCH, STEPS))
    t_step = torch_trainer(hidden, batches(stream, BATCH, STEPS), model.state_dict())
    sec = best_seconds({"numpy": np_step, "torch": t_step}, rounds, per_round)
    tokens = BATCH * STEPS
    # both took the same steps on the same batches from the same weights: same loss expected
    return {
        "hidden": hidden,
        "numpy_tok_s": tokens / sec["numpy"],
        "torch_tok_s": tokens / sec["torch"],
        "ratio": sec["torch"] / sec["numpy"],
        "loss_numpy": np_step(),
        "loss_torch": t_step(),
    }


# ----------------------------------------------------------------------------- min-char-rnn


def classic_char_rnn(stream: np.ndarray, vocab: int, hidden: int = 100, seq: int = 25):
    """The min-char-rnn training step: batch 1, per-step one-hot columns, Adagrad, float64."""
    rng = np.random.default_rng(0)
    wxh, whh = rng.standard_normal((hidden, vocab)) * 0.01, rng.standard_normal((hidden, hidden)) * 0.01
    why = rng.standard_normal((vocab, hidden)) * 0.01
    bh, by = np.zeros((hidden, 1)), np.zeros((vocab, 1))
    params = [wxh, whh, why, bh, by]
    mem = [np.zeros_like(p) for p in params]
    hprev, pos = np.zeros((hidden, 1)), 0

    def step() -> float:
        nonlocal hprev, pos
        if pos + seq + 1 >= len(stream):
            pos, hprev = 0, np.zeros((hidden, 1))
        inputs, targets = stream[pos : pos + seq], stream[pos + 1 : pos + seq + 1]
        xs, hs, ps = {}, {-1: hprev}, {}
        loss = 0.0
        for t in range(seq):
            xs[t] = np.zeros((vocab, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(wxh @ xs[t] + whh @ hs[t - 1] + bh)
            ys = why @ hs[t] + by
            ps[t] = np.exp(ys - ys.max()) / np.sum(np.exp(ys - ys.max()))
            loss += -np.log(ps[t][targets[t], 0])
        grads = [np.zeros_like(p) for p in params]
        dwxh, dwhh, dwhy, dbh, dby = grads
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(seq)):
            dy = ps[t].copy()
            dy[targets[t]] -= 1
            dwhy += dy @ hs[t].T
            dby += dy
            dh = why.T @ dy + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dwxh += dhraw @ xs[t].T
            dwhh += dhraw @ hs[t - 1].T
            dhnext = whh.T @ dhraw
        for p, g, m in zip(params, grads, mem, strict=True):
            np.clip(g, -5, 5, out=g)
            m += g * g
            p += -0.1 * g / np.sqrt(m + 1e-8)
        hprev, pos = hs[seq - 1], pos + seq
        return loss / seq

    return step


def classic_rows(stream: np.ndarray, rounds: int, per_round: int) -> list[dict]:
    """min-char-rnn against the engine's vanilla RNN (hidden 100, one-hot input, T=25)."""
    steps = {"min-char-rnn (N=1, float64, Adagrad)": (classic_char_rnn(stream, VOCAB), 25)}
    for batch in (1, BATCH):
        model = NumpyRNNLM(ModelConfig(model="rnn", layers=1, hidden=100, embed=0, dropout=0.0, vocab_size=VOCAB))
        opt, data, holder = AdamW(), batches(stream, batch, 25), {"state": None}

        def step(model=model, opt=opt, data=data, holder=holder) -> float:
            x, y = next(data)
            loss, grads, holder["state"] = model.loss_and_grads(x, y, holder["state"])
            clip_grad_norm(grads, 5.0)
            opt.step(model.params, grads, 1e-2)
            return loss

        steps[f"NumPy engine rnn (N={batch}, float32, AdamW)"] = (step, batch * 25)
    sec = best_seconds({name: fn for name, (fn, _) in steps.items()}, rounds, per_round * 3)
    base = 25 / sec["min-char-rnn (N=1, float64, Adagrad)"]
    return [
        {"name": name, "chars_s": chars / sec[name], "speedup": chars / sec[name] / base}
        for name, (_, chars) in steps.items()
    ]


def main(args: argparse.Namespace) -> dict:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rounds = 3 if args.quick else args.rounds
    stream = token_stream(200_000, VOCAB)
    main_row = compare(128, stream, rounds, args.steps)
    sizes = (64, 128, 256) if args.quick else (64, 128, 256, 512)
    sweep = [main_row if h == 128 else compare(h, stream, rounds, max(2, args.steps * 64 // h)) for h in sizes]
    classic = classic_rows(stream, rounds, args.steps)
    print(
        f"threads={threads} (torch {torch.__version__}, numpy {np.__version__}); LSTM 1 layer, "
        f"V={VOCAB}, D={EMBED}, N={BATCH}, T={STEPS}; train step = fwd+bwd+clip+AdamW; "
        f"best of {rounds} interleaved rounds"
    )
    print(f"{'H':>5} {'numpy tok/s':>12} {'torch tok/s':>12} {'numpy/torch':>12} {'loss np / torch':>18}")
    for row in sweep:
        print(
            f"{row['hidden']:>5} {row['numpy_tok_s']:>12.0f} {row['torch_tok_s']:>12.0f} {row['ratio']:>12.2f}"
            f" {row['loss_numpy']:>8.4f} / {row['loss_torch']:.4f}"
        )
    print(f"\n{'classic baseline: char RNN, hidden 100, T=25':<46} {'chars/s':>10} {'speedup':>8}")
    for row in classic:
        print(f"{row['name']:<46} {row['chars_s']:>10.0f} {row['speedup']:>7.1f}x")
    result = {"threads": threads, "main": main_row, "sweep": sweep, "classic": classic}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(ARGS)
