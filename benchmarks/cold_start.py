"""Cold start of `rnnkit generate` against importing torch, and how often the NumPy and torch paths
choose different greedy tokens (issue 16, item 5).

1. Timing, in one run: ROUNDS rounds, each starting three fresh processes in an order that turns
   every round (a shared machine drifts): `python -c "pass"` (the interpreter alone), `python -c
   "import torch"` and `python -m rnnkit generate RUN --max-new-tokens TOKENS --seed 1` (the CLI's
   default engine: NumPy on the CPU). Prints the median wall time of each, the ratio of the
   medians (generate / import torch) and the median of the per-round ratios, and whether the
   generate process imported torch at all (one extra run under `python -X importtime`).
2. Greedy divergence: PROMPTS prompts cut from the run's validation text, TOKENS greedy tokens
   after each on the NumPy path and on the torch path (in this process). Counts the prompts whose
   continuations differ (and the first step where they do), and, reading the torch path's
   continuation with both models (teacher forcing), the steps where the two models' likeliest
   next token differs and the largest difference of their log-probabilities; and the time per
   sampled token of each path in this process (model loaded, no start-up), NumPy's also with
   denormal numbers flushed to zero (the flag torch sets; the CLI's NumPy path runs without it).

    PYTHONPATH=src python benchmarks/cold_start.py RUN [--rounds 10] [--tokens 200] [--prompts 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import rnnkit
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import rnnkit
from rnnkit.generate import SamplingConfig, generate_ids, start_ids
from rnnkit.models.base import Scorer
from rnnkit.runtime import flush_denormals
from rnnkit.text.corpora import load_corpus

SRC = Path(__file__).resolve().parents[1] / "src"  # the timed processes run this checkout's rnnkit


def child_env() -> dict[str, str]:
    """The environment of the timed processes: this checkout's rnnkit, whatever else is set."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def time_commands(commands: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each command per round, fresh processes, the order rotating every round."""
    names, times = list(commands), {name: [] for name in commands}
    env = child_env()
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            subprocess.run(commands[name], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - started)
    return times


def imports_torch(command: list[str]) -> bool:
    """Whether `python -X importtime ...command` loads torch (importtime lists every module)."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], env=child_env(), check=True, capture_output=True, text=True
    )
    return any(line.rsplit("|", 1)[-1].strip().split(".")[0] == "torch" for line in done.stderr.splitlines())


def validation_prompts(lm: rnnkit.LanguageModel, count: int, chars: int = 40) -> list[str]:
    """`count` prompts of about `chars` characters, evenly spaced over the run's validation text
    (its test text, or its training text, when that split is empty), each starting at a word."""
    corpus = load_corpus(lm.config.data.data, lm.config.data.fractions)
    text = corpus.val or corpus.test or corpus.train
    prompts = []
    for start in np.linspace(0, max(0, len(text) - 2 * chars), count).astype(int).tolist():
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + chars else start
        prompts.append(text[start : start + chars])
    return prompts


def prompt_ids(lm: rnnkit.LanguageModel, prompts: list[str]) -> list[np.ndarray]:
    """The ids the model reads for each prompt (as `generate` does); a prompt with characters the
    vocabulary lacks (a char model's validation text may hold some) is left out."""
    ids = []
    for prompt in prompts:
        try:
            ids.append(start_ids(lm.tokenizer, prompt))
        except rnnkit.PromptError:
            continue
    return ids


def greedy_divergence(
    numpy_scorer: Scorer, torch_scorer: Scorer, prompt_ids: list[np.ndarray], tokens: int
) -> dict[str, float]:
    """Greedy continuations of each prompt on both paths, compared (see the module docstring)."""
    greedy = SamplingConfig(max_new_tokens=tokens, do_sample=False)
    first_steps, disagree, largest, steps = [], 0, 0.0, 0
    for ids in prompt_ids:
        paths = [generate_ids(scorer, ids, greedy) for scorer in (numpy_scorer, torch_scorer)]
        differing = [t for t, (a, b) in enumerate(zip(*paths, strict=True)) if a != b]
        if differing:
            first_steps.append(differing[0])
        # teacher forcing: both models read the prompt and the torch path's continuation
        stream = np.concatenate([ids, np.asarray(paths[1], dtype=np.int64)])[None, :]
        inputs, targets = stream[:, :-1], stream[:, 1:]
        read = [
            scorer.token_logprobs(inputs, targets, scorer.initial_state(1), top_k=1)
            for scorer in (numpy_scorer, torch_scorer)
        ]
        generated = slice(len(ids) - 1, None)  # the positions that predict a generated token
        tops = [top[0][0, generated, 0] for _, top, _ in read]
        disagree += int((tops[0] != tops[1]).sum())
        largest = max(largest, float(np.abs(read[0][0] - read[1][0]).max()))
        steps += len(tops[0])
    return {
        "prompts": len(prompt_ids),
        "tokens": steps,
        "paths_differing": len(first_steps),
        "first_difference_steps": first_steps,
        "argmax_disagreements": disagree,
        "max_abs_logprob_difference": largest,
    }


def per_token_ms(scorer: Scorer, ids: np.ndarray, tokens: int, repeats: int = 5) -> float:
    """Median milliseconds per sampled token (seed 1) over `repeats` continuations of `tokens`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        generate_ids(scorer, ids, SamplingConfig(max_new_tokens=tokens, seed=1))
        times.append((time.perf_counter() - started) / tokens * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory or checkpoint")
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds (0: skip the timing)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens generated per process and per prompt")
    parser.add_argument("--prompts", type=int, default=50, help="prompts for the greedy comparison (0: skip it)")
    args = parser.parse_args()
    python = sys.executable
    if args.rounds > 0:
        generate = [
            python,
            "-m",
            "rnnkit",
            "generate",
            str(args.run),
            "--max-new-tokens",
            str(args.tokens),
            "--seed",
            "1",
        ]
        times = time_commands(
            {"python": [python, "-c", "pass"], "import torch": [python, "-c", "import torch"], "generate": generate},
            args.rounds,
        )
        medians = {name: statistics.median(values) for name, values in times.items()}
        pairs = statistics.median(g / t for g, t in zip(times["generate"], times["import torch"], strict=True))
        print(
            f"{args.rounds} rounds, medians: python -c pass {medians['python']:.3f} s | python -c 'import torch' "
            f"{medians['import torch']:.3f} s | rnnkit generate --max-new-tokens {args.tokens} "
            f"{medians['generate']:.3f} s"
        )
        print(
            f"generate / import torch: {medians['generate'] / medians['import torch']:.2f} (medians), "
            f"{pairs:.2f} (median of per-round ratios); generate imported torch: "
            f"{'yes' if imports_torch(generate) else 'no'}"
        )
    if args.prompts > 0:
        numpy_lm = rnnkit.load(args.run, device="cpu", engine="numpy")
        torch_lm = rnnkit.load(args.run, device="cpu", engine="torch")
        prompts = validation_prompts(numpy_lm, args.prompts)
        found = greedy_divergence(numpy_lm.scorer, torch_lm.scorer, prompt_ids(numpy_lm, prompts), args.tokens)
        steps = found["first_difference_steps"]
        print(
            f"greedy, {found['prompts']} prompts x {args.tokens} tokens = {found['tokens']:,} tokens: "
            f"{found['paths_differing']} continuation(s) differ between NumPy and torch"
            + (f" (first at step {', '.join(map(str, steps))})" if steps else "")
        )
        start = start_ids(numpy_lm.tokenizer, "")
        plain = per_token_ms(numpy_lm.scorer, start, args.tokens)
        with flush_denormals():  # torch's flag (the thread's FTZ/DAZ bits) holds for NumPy's arithmetic too
            flushed = per_token_ms(numpy_lm.scorer, start, args.tokens)
            on_torch = per_token_ms(torch_lm.scorer, start, args.tokens)
        print(
            f"in this process, sampling {args.tokens} tokens (median of 5): NumPy {plain:.3f} ms/token "
            f"({flushed:.3f} with denormals flushed), torch {on_torch:.3f} ms/token "
            f"({os.environ.get('OMP_NUM_THREADS', 'default')} OMP threads)"
        )
        print(
            f"reading the torch continuations with both: the likeliest token differs at "
            f"{found['argmax_disagreements']} of {found['tokens']:,} steps; largest log-probability "
            f"difference {found['max_abs_logprob_difference']:.2e} nats"
        )


if __name__ == "__main__":
    main()
