"""The `rnnkit` command: argparse subcommands, each a few lines over the Python API.

Errors the user can fix (bad files, bad options, bad checkpoints) become one line on stderr and
exit code 2; nothing else is caught, so a real bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import RnnkitError, TrainingStopped

AWD_HELP = " (AWD-LSTM, Merity et al. 2017; torch engine, training only; default 0)"

# CLI flag -> (config section, field). Defaults live in the dataclasses; the CLI passes only the
# options the user gave, so `--resume` and `--preset` can tell what was asked for.
TRAIN_OPTIONS: dict[str, tuple[str, str, Any, str]] = {
    "data": ("data", "data", str, "bundled corpus name, UTF-8 text file, or directory (default timemachine)"),
    "tokenizer": ("data", "tokenizer", str, "char, word or bpe (byte-level subwords) (default char)"),
    "vocab_size": ("data", "bpe_vocab", int, "bpe: subword vocabulary size (default 1000)"),
    "min_freq": ("data", "min_freq", int, "drop tokens seen fewer times (they become <unk>)"),
    "max_size": ("data", "max_size", int, "largest vocabulary, <unk> included"),
    "batch_size": ("data", "batch_size", int, "N parallel streams per batch (default 32)"),
    "seq_len": ("data", "seq_len", int, "T tokens per window, the TBPTT length (default 64)"),
    "batching": ("data", "batching", str, "sequential (TBPTT, state carried) or random (default sequential)"),
    "normalize": ("data", "normalize", str, ("letters: ASCII letters only, lowercased, every run of other "
                                            "characters one space (d2l's Time Machine cleaning)")),
    "engine": ("model", "engine", str, "torch (autograd, cuDNN) or numpy (hand-written BPTT, CPU) (default torch)"),
    "model": ("model", "model", str, ("rnn, rnn_relu, gru, lstm, mingru, minlstm (Feng et al. 2024: parallel "
                                     "scan), mlp (feed-forward over --context tokens), or the baselines ngram and "
                                     "hmm (default lstm)")),
    "context": ("model", "context", int, "mlp: the previous K tokens each prediction reads (required, K >= 1)"),
    "gru_form": ("model", "gru_form", str, ("gru: cudnn (reset gate after the recurrent product, as PyTorch) or "
                                           "cho (before it, as Cho et al. 2014 and d2l; no cuDNN) (default cudnn)")),
    "embed_from": ("model", "embed_from", str, ("start the embedding from word vectors (GloVe or word2vec text, "
                                               "word2vec binary .bin); --embed follows their size")),
    "layers": ("model", "layers", int, "recurrent layers (default 2)"),
    "hidden": ("model", "hidden", int, "hidden size H (default 256)"),
    "embed": ("model", "embed", int, "embedding size D; 0 = one-hot input (default 64)"),
    "dropout": ("model", "dropout", float, ("standard dropout (a new mask at every time step) on embeddings, "
                                           "between layers and on outputs (default 0)")),
    "embed_dropout": ("model", "embed_dropout", float, "drop whole word types (embedding rows), scaled by 1/(1-p)" + AWD_HELP),
    "dropout_input": ("model", "dropout_input", float, "locked dropout (one mask per sequence) on the first layer's "
                      + "inputs" + AWD_HELP),
    "dropout_hidden": ("model", "dropout_hidden", float, "locked dropout between recurrent layers (none with one "
                       + "layer)" + AWD_HELP),
    "dropout_output": ("model", "dropout_output", float, "locked dropout on the last layer's outputs" + AWD_HELP),
    "weight_drop": ("model", "weight_drop", float, "DropConnect on the hidden-to-hidden weights, a new mask per "
                    + "forward pass" + AWD_HELP),
    "cutoffs": ("model", "cutoffs", lambda text: parse_ints(text), ("adaptive softmax cluster bounds, e.g. 2000,6000 "
                                                                     "(default V/5,V/2)")),
    "order": ("model", "order", int, "ngram: longest n-gram, contexts of order-1 tokens (default 5)"),
    "states": ("model", "states", int, "hmm: hidden states (default 32)"),
    "hmm_iter": ("model", "hmm_iter", int, "hmm: Baum-Welch iterations at most (default 20)"),
    "hmm_max_tokens": ("model", "hmm_max_tokens", int, "hmm: training tokens used at most (default 200000)"),
    "optimizer": ("train", "optimizer", str, ("adamw, sgd, or ntasgd: SGD, then the average of the weights once "
                                             "validation stalls (Merity et al. 2017 use --schedule constant "
                                             "--momentum 0) (default adamw)")),
    "nonmono": ("train", "nonmono", int, ("ntasgd: start averaging once the val loss is worse than the best from "
                                         "before the last this many evaluations (default 5)")),
    "ar_alpha": ("train", "ar_alpha", float, "AR: the training loss gets + alpha * mean(h_t^2) of the dropped "
                 + "last-layer output" + AWD_HELP),
    "tar_beta": ("train", "tar_beta", float, "TAR: the training loss gets + beta * mean((h_t - h_t-1)^2) of the "
                 + "raw last-layer output" + AWD_HELP),
    "lr": ("train", "lr", float, "peak learning rate (default 3e-3)"),
    "weight_decay": ("train", "weight_decay", float, "decoupled weight decay (default 0.01)"),
    "momentum": ("train", "momentum", float, "SGD momentum (default 0.9)"),
    "schedule": ("train", "schedule", str, ("constant, cosine (warmup + cosine) or plateau (constant, divided by --plateau-factor "
                                          "when the val loss stalls) (default cosine)")),
    "warmup_steps": ("train", "warmup_steps", int, "linear warmup steps for cosine (default 50)"),
    "min_lr_ratio": ("train", "min_lr_ratio", float, "cosine ends at lr * this (default 0.1)"),
    "decay_steps": ("train", "decay_steps", int, "cosine horizon in steps (default: --steps)"),
    "plateau_factor": ("train", "plateau_factor", float, ("plateau: divide the learning rate by this when the "
                                                         "val loss stalls (default 4)")),
    "plateau_patience": ("train", "plateau_patience", int, ("plateau: ... after this many evaluations without a "
                                                           "new best val loss (default 1)")),
    "plateau_min_lr": ("train", "plateau_min_lr", float, ("plateau: the learning rate never goes below this "
                                                         "(default lr * --min-lr-ratio)")),
    "patience": ("train", "patience", int, ("stop after this many evaluations without a new best val loss "
                                           "(best/ keeps the best; default: never)")),
    "target_loss": ("train", "target_loss", float, "stop once the val loss is at or below this (nats/token)"),
    "steps": ("train", "steps", int, "optimizer steps to train (default 1000)"),
    "epochs": ("train", "epochs", int, "train for this many passes over the training split instead"),
    "max_seconds": ("train", "max_seconds", float, "stop after this many seconds of training (evaluate and save first)"),
    "eval_interval": ("train", "eval_interval", int, "evaluate and checkpoint every this many steps (default 200)"),
    "log_interval": ("train", "log_interval", int, "write metrics every this many steps (default 50)"),
    "save_interval": ("train", "save_interval", int, "write last/ every this many steps (default: every evaluation)"),
    "eval_max_tokens": ("train", "eval_max_tokens", int, "score at most this many validation tokens per evaluation"),
    "on_nan": ("train", "on_nan", str, ("when the loss or a gradient turns NaN/inf: stop, skip the update, or "
                                       "rollback to the last checkpoint and halve the learning rate (default stop)")),
    "device": ("train", "device", str, "auto, cpu or cuda (default auto)"),
    "seed": ("train", "seed", int, "random seed (default 1337)"),
    "out": ("train", "out", str, "run directory (default runs/DATA-MODEL-TIME)"),
    "sample_tokens": ("train", "sample_tokens", int, "tokens to sample at the end (default 200; 0 = none)"),
}
TRAIN_FLAGS = {"lowercase": ("data", "lowercase", "lowercase text before word/char splitting"),
               "tie": ("model", "tie", "tie input embedding and output weights (needs --embed == --hidden)"),
               "adaptive_softmax": ("model", "adaptive_softmax", ("adaptive softmax head for large word vocabularies "
                                                     "(frequent words in a full softmax, rare ones in smaller clusters)")),
               "freeze_embed": ("model", "freeze_embed", "keep the --embed-from vectors fixed during training"),
               "amp": ("train", "amp", "bf16 autocast on CUDA"),
               "overwrite": ("train", "overwrite", "replace an existing run directory"),
               "quiet": ("train", "quiet", "no progress bar or log lines on stderr")}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not usage plus error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def one_line(message: str) -> str:
    """The message with control characters (newlines too) escaped: user input echoed in an error
    must neither break the one-line rule nor send escape codes to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def parse_split(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.9,0.05,0.05, got {text!r}") from None


def parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2000,6000, got {text!r}") from None


def parse_clip(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that command gets its options (the others keep
    their one-line help). main() passes the command it was given, so `rnnkit prepare` or `rnnkit
    --help` never imports the torch-backed modules where other commands keep their defaults."""
    parser = OneLineParser(prog="rnnkit", description="Recurrent language models: train, evaluate, generate.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (help_text, add_options, _) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if only is None or only == name:
            add_options(sub)
    return parser


def _add_json_only(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print a JSON list")


def add_train_options(sub: argparse.ArgumentParser, out_help: str | None = None) -> None:
    """Every model/data/train option, as `train` takes them (also used by `sweep`)."""
    for name, (_, _, kind, help_text) in TRAIN_OPTIONS.items():
        if name == "out" and out_help:
            help_text = out_help
        sub.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=help_text)
    sub.add_argument("--split", type=parse_split, default=None, help="train,val,test fractions (default 0.9,0.05,0.05)")
    sub.add_argument("--clip", type=parse_clip, default=argparse.SUPPRESS,
                     help="max global gradient norm, or 'none' (default 1.0)")
    for name, (_, _, help_text) in TRAIN_FLAGS.items():  # --no-NAME turns off what a preset turned on
        sub.add_argument("--" + name.replace("_", "-"), dest=name, action=argparse.BooleanOptionalAction,
                         default=None, help=help_text)
    sub.add_argument("--preset", default=None, help="start from a named configuration (see rnnkit presets); "
                                                    "options given here override it")


def add_defaulted_options(sub: argparse.ArgumentParser, defaults: Any, options: tuple[tuple[str, Any], ...],
                          help_prefix: str = "") -> None:
    """`--name` options whose defaults come from an options dataclass instance (compare, cloze)."""
    for name, kind in options:
        default = getattr(defaults, name)
        sub.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=default,
                         help=help_prefix.format(name=name) + f"(default {default})")


def _add_train(sub: argparse.ArgumentParser) -> None:
    add_train_options(sub)
    sub.add_argument("--resume", metavar="RUN", help="continue a run (its last/ checkpoint) to --steps")
    sub.add_argument("--json", action="store_true", help="print the result as one JSON line")
    sub.add_argument("--bidirectional", action="store_true",
                     help="refused: a next-token model cannot read ahead (see rnnkit cloze)")


def _add_evaluate(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", help="checkpoint or run directory (a run directory means its best/)")
    sub.add_argument("--data", help="evaluate on other text (default: the text it was trained on)")
    sub.add_argument("--split", choices=("train", "val", "test"), default="val")
    sub.add_argument("--fractions", type=parse_split, default=None, help="how to split --data (default: as trained)")
    sub.add_argument("--max-tokens", type=int, default=None, help="score at most this many tokens")
    sub.add_argument("--engine", choices=("torch", "numpy"), default=None,
                     help="run a neural checkpoint in this engine (default: the one that trained it)")
    sub.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sub.add_argument("--json", action="store_true")


def _add_generate(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", help="checkpoint or run directory (a run directory means its best/)")
    prompt = sub.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="text to start from (default: a new line)")
    prompt.add_argument("--prompt-file", type=Path, help="read the prompt from a UTF-8 file")
    sub.add_argument("--max-new-tokens", type=int, default=200)
    sub.add_argument("--temperature", type=float, default=1.0)
    sub.add_argument("--top-k", type=int, default=None)
    sub.add_argument("--top-p", type=float, default=None)
    sub.add_argument("--greedy", action="store_true", help="always take the most likely token")
    sub.add_argument("--beam", type=int, default=None, metavar="K",
                     help="beam search: keep the K most likely continuations at each step, print the best")
    sub.add_argument("--seed", type=int, default=None, help="same seed, same text")
    sub.add_argument("--engine", choices=("torch", "numpy"), default=None,
                     help="run a neural checkpoint in this engine (default: the one that trained it)")
    sub.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sub.add_argument("--json", action="store_true", help="print {\"text\": ...} as one JSON line")


def _add_compare(sub: argparse.ArgumentParser) -> None:
    from .studies.compare import DEFAULT_MODELS, NeuralOptions

    defaults = NeuralOptions()
    sub.add_argument("--data", default="timemachine", help="bundled corpus name, UTF-8 text file, or directory")
    sub.add_argument("--tokenizer", default="char", help="char or word (default char)")
    sub.add_argument("--models", default=DEFAULT_MODELS,
                     help=("comma-separated: rnn, rnn_relu, gru, lstm, mingru, minlstm, mlp:CONTEXT, ngram:ORDER, "
                           f"hmm:STATES (default {DEFAULT_MODELS})"))
    sub.add_argument("--budget-seconds", type=float, default=60.0,
                     help="wall-clock training time of each neural model (default 60)")
    sub.add_argument("--out", default=None, help="output directory (default runs/compare-DATA-TIME)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing compare directory")
    sub.add_argument("--split", type=parse_split, default=(0.9, 0.05, 0.05),
                     help="train,val,test fractions (default 0.9,0.05,0.05)")
    sub.add_argument("--seed", type=int, default=1337, help="random seed for every model (default 1337)")
    add_defaulted_options(sub, defaults, (("layers", int), ("hidden", int), ("embed", int), ("dropout", float),
                                          ("batch_size", int), ("seq_len", int), ("lr", float)), "neural models: {name} ")
    sub.add_argument("--device", default=defaults.device, help="auto, cpu or cuda (default auto)")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the rows as one JSON list (last line)")


def _add_gradcheck(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", choices=("rnn", "rnn_relu", "gru", "lstm", "mingru", "minlstm"), default="lstm")
    sub.add_argument("--gru-form", choices=("cudnn", "cho"), default=None,
                     help="gru: check the cuDNN form (default) or Cho et al.'s (reset gate before the product)")
    sub.add_argument("--layers", type=int, default=1)
    sub.add_argument("--bidirectional", action="store_true")
    sub.add_argument("--embed", type=int, default=5, help="embedding size (0 = one-hot input)")
    sub.add_argument("--hidden", type=int, default=4)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--json", action="store_true", help="print {parameter: max relative error} as JSON")


def _add_bench(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sub.add_argument("--configs", metavar="NAMES", default=None,
                     help="comma-separated: char-2x512-rnn|gru|lstm (or char-2x512), word-2x650, big-3x1024, "
                          "tiny-rnn|gru|lstm (or tiny), all (default: all; big-3x1024 only on CUDA; tiny with --quick); "
                          "also char-2x512-gru-cho (or gru-forms: the Cho GRU beside cuDNN's; gru-forms-small at 1x128), "
                          "long-512-mingru|minlstm|gru|lstm (or long-512: T=512 side by side), tiny-long, tiny-gru-cho")
    sub.add_argument("--impls", metavar="NAMES", default=None,
                     help="comma-separated: rnnkit, plain, cell-loop, numpy (default: all; numpy on the CPU only)")
    sub.add_argument("--amp", action="store_true", help="also measure bf16 autocast (CUDA only)")
    sub.add_argument("--quick", action="store_true", help="tiny configurations and few repeats (seconds, for CI)")
    sub.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default 5; 3 with --quick)")
    sub.add_argument("--json", action="store_true", help="also print the rows as one JSON list (last line)")


def _add_prepare(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--data", nargs="+", required=True, metavar="PATH",
                     help="files, directories or bundled corpus names (joined in order)")
    sub.add_argument("--tokenizer", default="char", help="char, word or bpe (default char)")
    sub.add_argument("--vocab-size", type=int, default=1000, help="bpe: subword vocabulary size")
    sub.add_argument("--tokenizer-from", metavar="CKPT_OR_DIR", help="reuse this checkpoint's (or prepared dir's) tokenizer")
    sub.add_argument("--min-freq", type=int, default=1)
    sub.add_argument("--max-size", type=int, default=None)
    sub.add_argument("--lowercase", action="store_true")
    sub.add_argument("--split", type=parse_split, default=(0.9, 0.05, 0.05))
    sub.add_argument("--workers", type=int, default=None, help="processes for char and word tokenization (default: CPUs, at most 4)")
    sub.add_argument("--out", default=None, help="output directory (default prepared/NAME-TOKENIZER)")
    sub.add_argument("--overwrite", action="store_true")
    sub.add_argument("--quiet", action="store_true")
    sub.add_argument("--json", action="store_true")


def run_config_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Build a RunConfig from the options given (sections -> dataclasses); also return them flat."""
    from .config import RunConfig

    given: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    flat: dict[str, Any] = {}
    for name, (section, field, *_rest) in {**TRAIN_OPTIONS, **TRAIN_FLAGS}.items():
        value = getattr(args, name)
        if value is not None:
            given[section][field] = value
            flat[field] = value
    if args.split is not None:
        given["data"]["split"], flat["split"] = args.split, args.split
    if hasattr(args, "clip"):
        given["train"]["clip"], flat["clip"] = args.clip, args.clip
    if args.preset is not None:
        from .config import with_overrides
        from .presets import preset_config
        return with_overrides(preset_config(args.preset), flat), flat
    return RunConfig.from_dict(given), flat


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    _refuse_bidirectional(args)
    config, given = run_config_from_args(args)
    on_sample = None if args.json else _write_stdout
    if args.resume:  # the run keeps its configuration; a --preset must be the one it started from
        result = train(resume=args.resume, on_sample=on_sample, preset=args.preset, **given)
    else:
        result = train(config, on_sample=on_sample)
    if not _main_process():
        return 0  # under torchrun, rank 0 reports
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    if result.sample is not None:
        print()
    what = f"trained {result.steps} steps" if result.steps else "fitted"
    print(f"{what} in {result.seconds:.1f} s ({result.tokens_per_s:,.0f} tokens/s) on {result.device}")
    print(f"val loss {result.val_loss:.4f} nats/token, ppl {result.val_ppl:.2f}, bpc {result.val_bpc:.4f} "
          f"(best val loss {result.best_val_loss:.4f})")
    resume = f" (resume with --resume {result.checkpoint})" if result.steps else ""
    print(f"checkpoints: {result.best_checkpoint} (best), {result.checkpoint}/last{resume}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import load

    lm = load(args.checkpoint, args.device, args.engine)
    result = lm.evaluate(args.data, args.split, args.fractions, args.max_tokens)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{args.split}: loss {result.loss:.4f} nats/token | ppl {result.ppl:.3f} | "
              f"{result.bits_per_token:.4f} bits/token | bpc {result.bpc:.4f} | {result.tokens:,} tokens")
        if result.unk_rate > 0:
            print(f"{result.unk_rate:.1%} of the scored tokens are <unk>: their words are never spelled out, "
                  "so bpc flatters this model against a char model")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .api import load
    from .generate import SamplingConfig
    from .text.corpora import read_text_file

    prompt = read_text_file(args.prompt_file) if args.prompt_file else args.prompt
    SamplingConfig(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.greedy, args.seed,
                   args.beam)  # bad options are refused before the checkpoint is loaded
    lm = load(args.checkpoint, args.device, args.engine)
    stream = None if args.json else _write_stdout
    text = lm.generate(prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                       not args.greedy, args.seed, stream, args.beam)
    if args.json:
        print(json.dumps({"text": text}, ensure_ascii=False))
    else:
        print()
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    """Max relative error of every parameter's analytic gradient; exit 1 if any is >= 1e-6."""
    from .errors import ConfigError
    from .studies.gradcheck import gradcheck

    for name in ("layers", "hidden"):
        if not 1 <= getattr(args, name) <= 64:
            raise ConfigError(f"--{name} must be between 1 and 64 for a gradient check")
    if not 0 <= args.embed <= 64 or args.seed < 0:
        raise ConfigError("--embed must be between 0 and 64 and --seed >= 0")
    if args.gru_form is not None and args.model != "gru":
        raise ConfigError(f"--gru-form chooses between the two GRU forms; a {args.model} model is not a GRU")
    errors = gradcheck(args.model, layers=args.layers, bidirectional=args.bidirectional, embed=args.embed,
                       hidden=args.hidden, seed=args.seed, gru_form=args.gru_form)
    worst = max(errors.values())
    if args.json:
        print(json.dumps({"model": args.model, "layers": args.layers, "bidirectional": args.bidirectional,
                          "max_rel_error": worst, "errors": errors}))
    else:
        for name, error in errors.items():
            print(f"{name:<24} {error:.2e}")
        print(f"{'PASS' if worst < 1e-6 else 'FAIL'}: max relative error {worst:.2e} (tolerance 1e-6)")
    return 0 if worst < 1e-6 else 1


def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from .text.prepare import prepare

    if args.workers is not None and not 1 <= args.workers <= 256:
        from .errors import ConfigError
        raise ConfigError("--workers must be between 1 and 256")
    started = time.perf_counter()
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    meta = prepare(args.data, args.tokenizer, args.out, tuple(args.split), args.lowercase, args.min_freq,
                   args.max_size, args.vocab_size, args.tokenizer_from, args.overwrite, args.workers, log)
    seconds = time.perf_counter() - started
    meta["seconds"] = round(seconds, 3)
    meta["out"] = str(args.out or "")
    total = sum(meta["chars"].values())
    if args.json:
        print(json.dumps(meta))
    else:
        rate = sum(meta["bytes"].values()) / 1e6 / max(seconds, 1e-9)
        print(f"prepared {sum(meta['tokens'].values()):,} tokens from {total:,} characters in {seconds:.1f} s "
              f"({rate:.1f} MB/s)")
    return 0


def cmd_corpora(args: argparse.Namespace) -> int:
    from .text.corpora import describe_bundled

    rows = describe_bundled()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':<16}{'chars':>10}{'words':>9}{'char vocab':>12}  description")
    for row in rows:
        print(f"{row['name']:<16}{row['chars']:>10,}{row['words']:>9,}{row['char_vocab']:>12}  {row['description']}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS

    rows = [{**preset.to_dict(), "args": preset_args(preset.sections())} for preset in PRESETS.values()]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(f"{row['name']} (version {row['version']}, for {row['device']}): {row['description']}")
        print(f"  rnnkit train --preset {row['name']}  =  {' '.join(row['args'])}")
        print(f"  expected: {row['expected']}")
    return 0


def preset_args(sections: dict[str, dict[str, Any]]) -> list[str]:
    """A preset's options as the `rnnkit train` flags that would set them."""
    flags = {(section, field): name for name, (section, field, *_rest) in {**TRAIN_OPTIONS, **TRAIN_FLAGS}.items()}
    flags[("data", "split")] = "split"
    args = []
    for section, values in sections.items():
        for field, value in values.items():
            flag = "--" + flags.get((section, field), field).replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, (list, tuple)):
                args += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
            else:
                args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return args


def cmd_compare(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .studies.compare import NeuralOptions, compare, markdown_table

    neural = NeuralOptions(**{f.name: getattr(args, f.name) for f in fields(NeuralOptions)})
    rows = compare(args.data, args.tokenizer, args.models, args.budget_seconds, args.out, seed=args.seed,
                   split=args.split, neural=neural, overwrite=args.overwrite, quiet=args.quiet)
    print(json.dumps(rows) if args.json else markdown_table(rows))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .studies.bench import IMPLS, BenchOptions, format_table, run_bench, split_names

    options = BenchOptions(device=args.device, configs=split_names(args.configs),
                           impls=split_names(args.impls) or IMPLS, amp=args.amp, quick=args.quick,
                           repeats=args.repeats)
    rows = run_bench(options, log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_table(rows))
    if args.json:
        print(json.dumps(rows))
    return 0


def _add_gradients(sub: argparse.ArgumentParser) -> None:
    from .studies.diagnostics import GradientOptions

    defaults = GradientOptions()
    sub.add_argument("checkpoints", nargs="*", metavar="CKPT", help="checkpoints or run directories to measure")
    sub.add_argument("--model", default=None,
                     help="freshly initialised models to measure too, comma-separated (default rnn,gru,lstm "
                          "when no CKPT is given)")
    sub.add_argument("--data", default=None, help="text to take the windows from (default: each checkpoint's own, "
                                                  "timemachine for fresh models)")
    sub.add_argument("--tokenizer", default="char", help="fresh models: char or word (default char)")
    for name, help_text in (("seq_len", "window length T: distances 0..T are measured"),
                            ("batch_size", "sequences per window"), ("batches", "windows averaged over"),
                            ("layers", "fresh models: recurrent layers"), ("hidden", "fresh models: hidden size"),
                            ("embed", "fresh models: embedding size (0 = one-hot)"), ("seed", "fresh models: seed")):
        sub.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=getattr(defaults, name),
                         help=f"{help_text} (default {getattr(defaults, name)})")
    sub.add_argument("--out", default=None, help="output directory (default runs/gradients-DATA-TIME)")
    sub.add_argument("--overwrite", action="store_true", help="replace gradients.json/png in --out")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the JSON document as one line")


def _add_plot(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (their metrics.jsonl)")
    sub.add_argument("--metric", default="val_loss",
                     help="val_loss, train_loss, grad_norm, lr, tokens_per_s, val_ppl or val_bpc (default val_loss)")
    sub.add_argument("--x", default="step", help="step or elapsed_s (default step)")
    sub.add_argument("--out", default=None, help="image file: .png, .svg or .pdf (default plot-METRIC.png)")
    sub.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    sub.add_argument("--title", default=None, help="figure title")
    sub.add_argument("--reference", action="append", default=[], metavar="VALUE[:LABEL]",
                     help="a dashed horizontal line at VALUE, e.g. '1.886:nanoGPT CPU' (repeatable)")
    sub.add_argument("--json", action="store_true", help="print the file and per-run summaries as one JSON line")


def _add_sweep(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--set", dest="sweep", required=True, metavar="NAME=V1,V2,...",
                     help="the numeric option to vary and its values, e.g. hidden=64,128,256 or lr=1e-3,3e-3")
    add_train_options(sub, out_help="sweep directory (default runs/sweep-DATA-TIME); each value's run goes inside")
    sub.add_argument("--json", action="store_true", help="print the rows as one JSON list (last line)")


def _add_cloze(sub: argparse.ArgumentParser) -> None:
    from .studies.cloze import ClozeOptions

    defaults = ClozeOptions()
    sub.add_argument("--data", default="timemachine", help="bundled corpus name, UTF-8 text file, or directory")
    sub.add_argument("--model", default=defaults.model, help="gru or lstm (default gru)")
    sub.add_argument("--bidirectional", action="store_true",
                     help="also train the model that reads both sides of the gap, and compare the two")
    sub.add_argument("--budget-seconds", type=float, default=defaults.budget_seconds,
                     help=f"training time of each model (default {defaults.budget_seconds:g})")
    sub.add_argument("--steps", type=int, default=None, help="stop each model after this many steps")
    add_defaulted_options(sub, defaults, (("context", int), ("hidden", int), ("embed", int), ("batch_size", int),
                                          ("lr", float), ("eval_windows", int), ("seed", int)))
    sub.add_argument("--device", default=defaults.device, help="auto, cpu or cuda (default auto)")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the report as one JSON line")


def _refuse_bidirectional(args: argparse.Namespace) -> None:
    """`train --bidirectional`: a next-token model must not read ahead; say why in one line."""
    if getattr(args, "bidirectional", False):
        from .errors import ConfigError
        raise ConfigError("a language model cannot be bidirectional: it predicts each next token from the "
                          "tokens before it, and a backward pass over the window would already have read the "
                          "token it must predict (a trivially low loss, and nothing to generate with); to see "
                          "what context from both sides is worth, use `rnnkit cloze --bidirectional`")


def cmd_gradients(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .studies.diagnostics import GradientOptions, gradients, summary_table

    options = GradientOptions(**{f.name: getattr(args, f.name) for f in fields(GradientOptions)})
    log = (lambda _message: None) if args.quiet else None
    document = gradients(args.checkpoints, args.model, args.data, args.tokenizer, args.out, options,
                         args.overwrite, log)
    if args.json:
        print(json.dumps(document))
    else:
        print(summary_table(document))
        print(f"wrote {document['files']['json']} and {document['files']['png']}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .studies.plot import parse_reference, plot_runs, summary_lines

    references = [parse_reference(text) for text in args.reference]
    result = plot_runs(args.runs, args.metric, args.x, args.out, args.log_y, args.title, references)
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(summary_lines(result)))
        print(f"wrote {result['file']}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .studies.sweep import markdown_table, parse_set, sweep

    name, values = parse_set(args.sweep)
    config, _ = run_config_from_args(args)
    quiet = bool(args.quiet)
    rows = sweep(config, name, values, config.train.out, overwrite=bool(args.overwrite),
                 log=(lambda _message: None) if quiet else None)
    print(json.dumps(rows) if args.json else markdown_table(rows))
    return 0


def cmd_cloze(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .studies.cloze import ClozeOptions, cloze, report_lines

    options = ClozeOptions(**{f.name: getattr(args, f.name) for f in fields(ClozeOptions)})
    report = cloze(args.data, options, args.bidirectional, (lambda _message: None) if args.quiet else None)
    print(json.dumps(report) if args.json else "\n".join(report_lines(report)))
    return 0


def _main_process() -> bool:
    import os
    return os.environ.get("RANK", "0") == "0"


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# command -> (one-line help, adds its options to the parser, runs it)
SUBCOMMANDS = {
    "train": ("train a model (defaults: char LSTM on timemachine)", _add_train, cmd_train),
    "evaluate": ("loss, perplexity and bits per character of a checkpoint", _add_evaluate, cmd_evaluate),
    "generate": ("sample text from a checkpoint", _add_generate, cmd_generate),
    "compare": ("train RNNs and fit n-gram/HMM baselines on one text; compare", _add_compare, cmd_compare),
    "gradcheck": ("check the NumPy engine's backward pass against finite differences", _add_gradcheck,
                  cmd_gradcheck),
    "bench": ("training speed of rnnkit beside plain PyTorch, a cell loop and NumPy", _add_bench, cmd_bench),
    "prepare": ("tokenize a corpus once into memory-mapped token files", _add_prepare, cmd_prepare),
    "gradients": ("gradient norm through time, and sigma_max(W_hh)", _add_gradients, cmd_gradients),
    "plot": ("draw a metric of one or more runs on one figure", _add_plot, cmd_plot),
    "sweep": ("train one model per value of a numeric option; table and plot", _add_sweep, cmd_sweep),
    "cloze": ("fill in a masked character: bidirectional vs unidirectional", _add_cloze, cmd_cloze),
    "corpora": ("list the bundled corpora", _add_json_only, cmd_corpora),
    "presets": ("list the named configurations for train --preset", _add_json_only, cmd_presets),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), "")  # top-level options take no value
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _, _, run = SUBCOMMANDS[args.command]
        return run(args)
    except TrainingStopped as stopped:  # SIGINT/SIGTERM: a checkpoint was saved; say how to go on
        print(one_line(f"rnnkit {args.command}: {stopped}"), file=sys.stderr)
        return stopped.exit_code
    except RnnkitError as error:
        print(one_line(f"rnnkit {args.command}: error: {error}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rnnkit generate ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
