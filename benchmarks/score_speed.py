"""Scoring a long text token by token against evaluating it: seconds for each on the same token
stream (the text after a newline, the stream `score` reads), best of REPEATS, interleaved, in one
process, and their ratio. `score` keeps every token's log-probability; `evaluate` only sums.

    PYTHONPATH=src python benchmarks/score_speed.py RUN --megabytes 1 [--engine numpy]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import rnnkit
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import rnnkit
from rnnkit.data import TokenSplit
from rnnkit.evaluate import eval_settings, evaluate_split
from rnnkit.runtime import flush_denormals, tune_allocator
from rnnkit.text.corpora import bundled_text


def main() -> None:
    tune_allocator()  # as the CLI runs; without it evaluate's speed depended on what ran before
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory or checkpoint")
    parser.add_argument("--megabytes", type=float, default=1.0, help="text length (a bundled corpus, repeated)")
    parser.add_argument("--corpus", default="timemachine")
    parser.add_argument("--engine", default=None, choices=("torch", "numpy"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lm = rnnkit.load(args.run, device="cpu", engine=args.engine)
    base = bundled_text(args.corpus)
    text = (base * (int(args.megabytes * 1e6) // len(base) + 1))[: int(args.megabytes * 1e6)]
    stream = np.concatenate([[lm.tokenizer.start_id()], lm.tokenizer.encode(text)])
    settings = eval_settings(lm.config.data)
    times: dict[str, list[float]] = {"score": [], "evaluate": []}

    def run_score():
        return lm.score(text)

    def run_evaluate():
        with flush_denormals():
            return evaluate_split(lm.scorer, TokenSplit(stream, len(text)), settings)

    results = {}
    for repeat in range(args.repeats):  # alternate which runs first: a shared machine drifts
        order = [("score", run_score), ("evaluate", run_evaluate)]
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    scored, evaluated = results["score"], results["evaluate"]
    best = {name: min(values) for name, values in times.items()}
    pairs = sorted(a / b for a, b in zip(times["score"], times["evaluate"], strict=True))
    print(f"{len(text):,} chars, {len(scored.ids):,} tokens, scorer {type(lm.scorer).__name__}")
    print(
        f"score    {best['score']:.3f} s  ({len(scored.ids) / best['score']:,.0f} tokens/s), "
        f"loss {scored.loss:.6f} over {len(scored.ids):,} tokens"
    )
    print(
        f"evaluate {best['evaluate']:.3f} s  ({evaluated.tokens / best['evaluate']:,.0f} tokens/s), "
        f"loss {evaluated.loss:.6f} over {evaluated.tokens:,} tokens"
    )
    print(
        f"score / evaluate time: {best['score'] / best['evaluate']:.2f} (best of each), "
        f"{pairs[len(pairs) // 2]:.2f} (median of {len(pairs)} back-to-back pairs)"
    )


if __name__ == "__main__":
    main()
