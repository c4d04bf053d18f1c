"""Export parity and file sizes: every recurrent kind, 1 and 2 layers, tied and untied, exported to
ONNX (window graph) and compared with the torch model on the same text, windows of 5, 4 and 1
tokens with the state carried (rnnkit.export.parity_check). Freshly initialised models of a
char vocabulary of the bundled timemachine text; trained weights give figures of the same order
(see README, "Share and deploy").

    python benchmarks/export_parity.py [--hidden 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from rnnkit.checkpoint import save_checkpoint
from rnnkit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnkit.export import export_model
from rnnkit.models.torch_lm import RNNLM, export_weights
from rnnkit.text.corpora import load_corpus
from rnnkit.text.tokenizer import build_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    corpus = load_corpus("timemachine")
    tokenizer = build_tokenizer("char", corpus.train, (corpus.val, corpus.test))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("rnn", "gru", "lstm"):
            for layers in (1, 2):
                for tie in (False, True):
                    model = ModelConfig(
                        model=kind,
                        layers=layers,
                        hidden=args.hidden,
                        embed=args.hidden,
                        tie=tie,
                        vocab_size=len(tokenizer),
                    )
                    config = RunConfig(model, DataConfig(data="timemachine"), TrainConfig(device="cpu"))
                    torch.manual_seed(0)
                    run = Path(folder) / f"{kind}-{layers}-{tie}"
                    save_checkpoint(run / "best", config, export_weights(RNNLM(model)), tokenizer, kind="best")
                    document = export_model(run, "onnx")
                    parity = document["parity"]
                    rows.append(
                        {
                            "model": kind,
                            "layers": layers,
                            "tie": tie,
                            "hidden": args.hidden,
                            "onnx_bytes": document["size_bytes"],
                            "safetensors_bytes": (run / "best" / "model.safetensors").stat().st_size,
                            "max_abs_diff_logits": parity["max_abs_diff_logits"],
                            "max_abs_diff_state": parity["max_abs_diff_state"],
                        }
                    )
    if args.json:
        print(json.dumps(rows))
        return
    print("| model | layers | tied | ONNX bytes | safetensors bytes | max abs diff logits | max abs diff state |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['layers']} | {'yes' if row['tie'] else 'no'} | {row['onnx_bytes']:,} | "
            f"{row['safetensors_bytes']:,} | {row['max_abs_diff_logits']:.2e} | {row['max_abs_diff_state']:.2e} |"
        )


if __name__ == "__main__":
    main()
