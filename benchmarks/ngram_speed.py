"""Speed and quality of the Kneser-Ney n-gram baseline on a character corpus.

Characters become ids by their rank in the sorted set of the corpus' characters; the first 90%
is training text and the last 10% validation (contiguous split). For each order it reports the
fit time, the scoring speed over the validation split (one stream, every character after the
first predicted from its history), fit+eval time, and validation nats/char and bits/char.

    PYTHONPATH=src python benchmarks/ngram_speed.py                 # order 5, tinyshakespeare
    PYTHONPATH=src python benchmarks/ngram_speed.py --orders 1-6    # a sweep
    PYTHONPATH=src python benchmarks/ngram_speed.py --json          # one JSON line per order
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import rnnkit
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import rnnkit
from rnnkit.models.ngram import KneserNeyLM


def char_ids(path: Path) -> tuple[np.ndarray, int]:
    """Vectorized: code points -> rank in the sorted set of distinct characters."""
    codes = np.frombuffer(path.read_text(encoding="utf-8").encode("utf-32-le"), dtype=np.uint32)
    chars, ids = np.unique(codes, return_inverse=True)
    return ids.astype(np.int64), chars.size


def parse_orders(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def run(order: int, train: np.ndarray, val: np.ndarray, vocab: int) -> dict:
    t0 = time.perf_counter()
    model = KneserNeyLM(order, vocab).fit(train)
    t1 = time.perf_counter()
    nll, _ = model.score(val[None, :-1], val[None, 1:], model.initial_state(1))
    t2 = time.perf_counter()
    n = val.size - 1
    return {
        "order": order,
        "vocab": vocab,
        "train_chars": int(train.size),
        "val_chars": n,
        "fit_s": t1 - t0,
        "eval_s": t2 - t1,
        "total_s": t2 - t0,
        "score_tok_per_s": n / (t2 - t1),
        "val_nats_per_char": nll / n,
        "val_bits_per_char": nll / n / math.log(2),
        "num_parameters": model.num_parameters,
    }


def main(argv: list[str] | None = None) -> None:
    default_corpus = Path(rnnkit.__file__).parent / "text" / "bundled" / "tinyshakespeare.txt"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", default="5", help="orders to run, e.g. 5 or 1-6 or 2,4,6 (default 5)")
    ap.add_argument("--corpus", type=Path, default=default_corpus)
    ap.add_argument("--train-fraction", type=float, default=0.9)
    ap.add_argument("--json", action="store_true", help="print one JSON line per order instead of a table")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    ids, vocab = char_ids(args.corpus)
    split = int(args.train_fraction * ids.size)
    load_s = time.perf_counter() - t0
    rows = [
        dict(run(k, ids[:split], ids[split:], vocab), corpus=args.corpus.name, load_s=load_s)
        for k in parse_orders(args.orders)
    ]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(
        f"{args.corpus.name}: {ids.size} chars, vocab {vocab}, train {split} / val {ids.size - split}, "
        f"read+encode {load_s:.3f} s"
    )
    print(
        f"{'order':>5} {'fit s':>7} {'eval s':>7} {'fit+eval s':>10} {'score tok/s':>12} "
        f"{'nats/char':>9} {'bits/char':>9} {'entries':>9}"
    )
    for r in rows:
        print(
            f"{r['order']:>5} {r['fit_s']:>7.3f} {r['eval_s']:>7.3f} {r['total_s']:>10.3f} "
            f"{r['score_tok_per_s']:>12,.0f} {r['val_nats_per_char']:>9.4f} {r['val_bits_per_char']:>9.4f} "
            f"{r['num_parameters']:>9,}"
        )


if __name__ == "__main__":
    main()
