"""What a model pays for reading a prompt from a zero state: the mean loss of the first CHARS
tokens of LINES random lines of the validation split, read from a zero state and read after a
newline (what `rnnkit generate` does before a prompt).

    PYTHONPATH=src python benchmarks/prompt_context.py runs/preset-shakespeare-char-cpu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import rnnkit
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import rnnkit
from rnnkit.text.corpora import load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory or checkpoint (a run directory means its best/)")
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--chars", type=int, default=30, help="tokens scored at the start of each line")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lm = rnnkit.load(args.run, device="cpu")
    val = load_corpus(lm.config.data.data, lm.config.data.fractions).val
    starts = [i + 1 for i in range(len(val) - 4 * args.chars) if val[i] == "\n" and not val[i + 1].isspace()]
    picked = np.random.default_rng(args.seed).choice(starts, min(args.lines, len(starts)), replace=False)
    newline = lm.tokenizer.encode("\n")
    zero = after = tokens = 0.0
    for start in picked.tolist():
        ids = lm.tokenizer.encode(val[start : start + 4 * args.chars])[: args.chars + 1]
        x, y = ids[None, :-1], ids[None, 1:]
        zero += lm.scorer.score(x, y, lm.scorer.initial_state(1))[0]
        _, state = lm.scorer.next_logprobs(newline[None, :], lm.scorer.initial_state(1))
        after += lm.scorer.score(x, y, state)[0]
        tokens += y.size
    print(
        f"{len(picked)} lines, {int(tokens)} tokens scored: from a zero state {zero / tokens:.4f} nats/token; "
        f"after a newline {after / tokens:.4f}"
    )


if __name__ == "__main__":
    main()
