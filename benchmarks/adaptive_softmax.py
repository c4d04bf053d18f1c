"""Adaptive softmax against the full softmax on the classic medium word-LM shape, in one run.

    python benchmarks/adaptive_softmax.py [--device cpu|cuda] [--steps 5] [--json]

Both models are rnnkit RNNLMs (2x650 LSTM, embed 650, V=10000, N=20, T=35), trained by the same
TorchEngine step on the same random batch; steps alternate between the two so machine noise
falls on both alike. Prints ms per training step (median) and the speedup.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.engines import TorchEngine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x, y = (torch.randint(0, args.vocab, (20, 35), device=device) for _ in range(2))
    engines = {
        name: TorchEngine(
            ModelConfig(
                model="lstm",
                layers=2,
                hidden=650,
                embed=650,
                vocab_size=args.vocab,
                dropout=0.0,
                adaptive_softmax=adaptive,
            ),
            TrainConfig(),
            device,
            amp=False,
        )
        for name, adaptive in (("full", False), ("adaptive", True))
    }
    times: dict[str, list[float]] = {name: [] for name in engines}
    for step in range(args.steps + 1):
        for name, engine in engines.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            loss, _, _ = engine.step(x, y, None, 1e-3)
            float(loss)  # wait for the step
            if step > 0:  # the first step of each is warm-up
                times[name].append(time.perf_counter() - started)
    result = {name: statistics.median(t) * 1000 for name, t in times.items()}
    result["speedup"] = result["full"] / result["adaptive"]
    result.update(device=str(device), torch=torch.__version__, steps=args.steps, vocab=args.vocab)
    print(
        f"full softmax {result['full']:.1f} ms/step, adaptive {result['adaptive']:.1f} ms/step: "
        f"{result['speedup']:.2f}x ({device}, torch {torch.__version__})"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
