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
from .runtime import tune_allocator

AWD_HELP = " (AWD-LSTM, Merity et al. 2017; torch engine, training only)"

# CLI flag -> (config section, field, type, help). Defaults live in the dataclasses (the help shows
# them, see option_default); the CLI passes only the options the user gave, so `--resume` and
# `--preset` can tell what was asked for. A help text that ends in "(default ...)" describes a
# default the dataclass cannot show (None standing for "derived" or "no limit").
TRAIN_OPTIONS: dict[str, tuple[str, str, Any, str]] = {
    "data": ("data", "data", str, "bundled corpus name (see rnnkit corpora), UTF-8 text file, or directory"),
    "tokenizer": ("data", "tokenizer", str, "characters, words, or byte-level BPE subwords"),
    "bpe_vocab": ("data", "bpe_vocab", int, "bpe: subword vocabulary size"),
    "min_freq": ("data", "min_freq", int, "drop tokens seen fewer times (they become <unk>)"),
    "max_size": ("data", "max_size", int, "largest vocabulary, <unk> included (default: no limit)"),
    "batch_size": ("data", "batch_size", int, "N parallel streams per batch"),
    "seq_len": ("data", "seq_len", int, "T tokens per window, the TBPTT length"),
    "batching": ("data", "batching", str, "sequential (TBPTT, state carried) or random windows"),
    "normalize": (
        "data",
        "normalize",
        str,
        (
            "letters: ASCII letters only, lowercased, every run of other "
            "characters one space (d2l's Time Machine cleaning)"
        ),
    ),
    "engine": ("model", "engine", str, "torch (autograd, cuDNN) or numpy (hand-written BPTT, CPU)"),
    "model": (
        "model",
        "model",
        str,
        (
            "rnn, rnn_relu, gru, lstm, mingru, minlstm (Feng et al. 2024: parallel "
            "scan), mlp (feed-forward over --context tokens), or the baselines ngram and "
            "hmm"
        ),
    ),
    "context": ("model", "context", int, "mlp: the previous K tokens each prediction reads (required, K >= 1)"),
    "gru_form": (
        "model",
        "gru_form",
        str,
        (
            "gru: cudnn (reset gate after the recurrent product, as PyTorch) or "
            "cho (before it, as Cho et al. 2014 and d2l; no cuDNN)"
        ),
    ),
    "embed_from": (
        "model",
        "embed_from",
        str,
        (
            "start the embedding from word vectors (GloVe or word2vec text, "
            "word2vec binary .bin); --embed follows their size"
        ),
    ),
    "layers": ("model", "layers", int, "recurrent layers"),
    "hidden": ("model", "hidden", int, "hidden size H"),
    "embed": ("model", "embed", int, "embedding size D; 0 = one-hot input"),
    "dropout": (
        "model",
        "dropout",
        float,
        (
            "standard dropout (a new mask at every time step) on embeddings, "
            "between layers and on outputs (default 0.25; 0 when a locked "
            "dropout is set)"
        ),
    ),
    "embed_dropout": (
        "model",
        "embed_dropout",
        float,
        "drop whole word types (embedding rows), scaled by 1/(1-p)" + AWD_HELP,
    ),
    "dropout_input": (
        "model",
        "dropout_input",
        float,
        "locked dropout (one mask per sequence) on the first layer's " + "inputs" + AWD_HELP,
    ),
    "dropout_hidden": (
        "model",
        "dropout_hidden",
        float,
        "locked dropout between recurrent layers (none with one " + "layer)" + AWD_HELP,
    ),
    "dropout_output": ("model", "dropout_output", float, "locked dropout on the last layer's outputs" + AWD_HELP),
    "weight_drop": (
        "model",
        "weight_drop",
        float,
        "DropConnect on the hidden-to-hidden weights, a new mask per " + "forward pass" + AWD_HELP,
    ),
    "cutoffs": (
        "model",
        "cutoffs",
        lambda text: parse_ints(text),
        ("adaptive softmax cluster bounds, e.g. 2000,6000 (default V/5,V/2)"),
    ),
    "order": ("model", "order", int, "ngram: longest n-gram, contexts of order-1 tokens"),
    "states": ("model", "states", int, "hmm: hidden states"),
    "hmm_iter": ("model", "hmm_iter", int, "hmm: Baum-Welch iterations at most"),
    "hmm_max_tokens": ("model", "hmm_max_tokens", int, "hmm: training tokens used at most"),
    "optimizer": (
        "train",
        "optimizer",
        str,
        (
            "adamw, sgd, or ntasgd: SGD, then the average of the weights once "
            "validation stalls (Merity et al. 2017 use --schedule constant "
            "--momentum 0)"
        ),
    ),
    "nonmono": (
        "train",
        "nonmono",
        int,
        ("ntasgd: start averaging once the val loss is worse than the best from before the last this many evaluations"),
    ),
    "ar_alpha": (
        "train",
        "ar_alpha",
        float,
        "AR: the training loss gets + alpha * mean(h_t^2) of the dropped " + "last-layer output" + AWD_HELP,
    ),
    "tar_beta": (
        "train",
        "tar_beta",
        float,
        "TAR: the training loss gets + beta * mean((h_t - h_t-1)^2) of the " + "raw last-layer output" + AWD_HELP,
    ),
    "lr": ("train", "lr", float, "peak learning rate"),
    "weight_decay": ("train", "weight_decay", float, "decoupled weight decay"),
    "momentum": ("train", "momentum", float, "SGD momentum (sgd and ntasgd only)"),
    "schedule": (
        "train",
        "schedule",
        str,
        (
            "constant; cosine: linear warmup, then cosine decay; or plateau: "
            "constant, divided by --plateau-factor when the val loss stalls"
        ),
    ),
    "warmup_steps": ("train", "warmup_steps", int, "cosine: linear warmup steps"),
    "min_lr_ratio": ("train", "min_lr_ratio", float, "cosine: ends at lr * this"),
    "decay_steps": ("train", "decay_steps", int, "cosine: horizon in steps (default: --steps)"),
    "plateau_factor": (
        "train",
        "plateau_factor",
        float,
        "plateau: divide the learning rate by this when the val loss stalls",
    ),
    "plateau_patience": (
        "train",
        "plateau_patience",
        int,
        ("plateau: ... after this many evaluations without a new best val loss"),
    ),
    "plateau_min_lr": (
        "train",
        "plateau_min_lr",
        float,
        ("plateau: the learning rate never goes below this (default lr * --min-lr-ratio)"),
    ),
    "patience": (
        "train",
        "patience",
        int,
        ("stop after this many evaluations without a new best val loss (best/ keeps the best; default: never)"),
    ),
    "target_loss": ("train", "target_loss", float, "stop once the val loss is at or below this (nats/token)"),
    "steps": ("train", "steps", int, "optimizer steps to train (default 1000)"),
    "epochs": ("train", "epochs", int, "train for this many passes over the training split instead of --steps"),
    "max_seconds": (
        "train",
        "max_seconds",
        float,
        "stop after this many seconds of training (evaluate and save first) (default: no limit)",
    ),
    "eval_interval": ("train", "eval_interval", int, "evaluate (and keep the best checkpoint) every this many steps"),
    "log_interval": ("train", "log_interval", int, "write a metrics.jsonl line every this many steps"),
    "save_interval": (
        "train",
        "save_interval",
        int,
        "write last/ every this many steps (default: at every evaluation)",
    ),
    "eval_max_tokens": (
        "train",
        "eval_max_tokens",
        int,
        "score at most this many validation tokens per evaluation (default: all)",
    ),
    "on_nan": (
        "train",
        "on_nan",
        str,
        (
            "when the loss or a gradient turns NaN/inf: stop, skip the update, or "
            "rollback to the last checkpoint and halve the learning rate"
        ),
    ),
    "device": ("train", "device", str, "where to train; auto: cuda, then mps (Apple GPUs), then cpu"),
    "seed": ("train", "seed", int, "random seed"),
    "out": ("train", "out", str, "run directory (default runs/DATA-MODEL-TIME)"),
    "sample_tokens": ("train", "sample_tokens", int, "tokens to sample at the end; 0 = none"),
    "report_to": (
        "train",
        "report_to",
        str,
        (
            "where metrics go besides metrics.jsonl (always written): jsonl, "
            "or tensorboard for event files in RUN/tensorboard"
        ),
    ),
}
TRAIN_FLAGS = {
    "lowercase": ("data", "lowercase", "lowercase text before word/char splitting"),
    "tie": ("model", "tie", "tie input embedding and output weights (needs --embed == --hidden)"),
    "adaptive_softmax": (
        "model",
        "adaptive_softmax",
        (
            "adaptive softmax head for large word vocabularies "
            "(frequent words in a full softmax, rare ones in smaller clusters)"
        ),
    ),
    "freeze_embed": ("model", "freeze_embed", "keep the --embed-from vectors fixed during training"),
    "amp": ("train", "amp", "bf16 autocast on CUDA"),
    "overwrite": ("train", "overwrite", "replace an existing run directory"),
    "quiet": ("train", "quiet", "no progress bar or log lines on stderr"),
}
# `train --help` in these groups, in this order (every option of TRAIN_OPTIONS/TRAIN_FLAGS once,
# plus the options add_train_options adds itself)
TRAIN_GROUPS = {
    "data": (
        "data",
        "tokenizer",
        "bpe_vocab",
        "min_freq",
        "max_size",
        "lowercase",
        "normalize",
        "fractions",
        "batch_size",
        "seq_len",
        "batching",
    ),
    "model": (
        "model",
        "engine",
        "layers",
        "hidden",
        "embed",
        "embed_from",
        "freeze_embed",
        "tie",
        "adaptive_softmax",
        "cutoffs",
        "gru_form",
        "context",
        "order",
        "states",
        "hmm_iter",
        "hmm_max_tokens",
    ),
    "regularisation": (
        "dropout",
        "embed_dropout",
        "dropout_input",
        "dropout_hidden",
        "dropout_output",
        "weight_drop",
        "ar_alpha",
        "tar_beta",
        "weight_decay",
    ),
    "optimisation": (
        "optimizer",
        "lr",
        "momentum",
        "nonmono",
        "schedule",
        "warmup_steps",
        "min_lr_ratio",
        "decay_steps",
        "plateau_factor",
        "plateau_patience",
        "plateau_min_lr",
        "clip",
        "amp",
    ),
    "run control": (
        "steps",
        "epochs",
        "max_seconds",
        "patience",
        "target_loss",
        "eval_interval",
        "eval_max_tokens",
        "on_nan",
        "device",
        "threads",
        "seed",
        "preset",
    ),
    "output": ("out", "overwrite", "log_interval", "save_interval", "sample_tokens", "report_to", "quiet"),
}
TRAIN_EPILOG = """examples:
  rnnkit train                                        the default: a char LSTM on The Time Machine
  rnnkit train --steps 200 --out runs/quick           a short run into a named directory
  rnnkit train --data my_book.txt --tokenizer word --min-freq 2
  rnnkit train --model gru --layers 2 --hidden 512 --data tinyshakespeare --steps 3000
  rnnkit train --preset shakespeare-char-cpu          a named configuration (see rnnkit presets)
  rnnkit train --resume runs/quick --steps 400        continue a run where it stopped
  rnnkit train --model ngram --order 5                the n-gram baseline, fitted in seconds
"""


def _choice_metavar(choices: tuple[str, ...]) -> str:
    return "{" + ",".join(choices) + "}"


def train_metavars() -> dict[str, str]:
    """What each train option takes: its choices, or its type (the config module validates)."""
    from .config import BASELINES, BATCHINGS, DEVICES, ENGINES, MODELS, ON_NAN, OPTIMIZERS, SCHEDULES, TOKENIZERS

    return {
        "data": "NAME|PATH",
        "tokenizer": _choice_metavar(TOKENIZERS),
        "batching": _choice_metavar(BATCHINGS),
        "engine": _choice_metavar(ENGINES),
        "model": _choice_metavar(MODELS + BASELINES),
        "optimizer": _choice_metavar(OPTIMIZERS),
        "schedule": _choice_metavar(SCHEDULES),
        "on_nan": _choice_metavar(ON_NAN),
        "device": _choice_metavar(DEVICES),
        "cutoffs": "INT,INT,...",
        "out": "DIR",
    }


def option_default(section: str, field: str) -> Any:
    """The dataclass default of a config field (None where it is derived or unlimited)."""
    from .config import DataConfig, ModelConfig, TrainConfig

    return getattr({"model": ModelConfig, "data": DataConfig, "train": TrainConfig}[section](), field)


def with_default(help_text: str, default: Any) -> str:
    """Append "(default X)" unless the text already describes its default, or there is none."""
    if default is None or "(default" in help_text:
        return help_text
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, float):
        shown = f"{default:g}"
    elif isinstance(default, (list, tuple)):
        shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    else:
        shown = str(default)
    return f"{help_text} (default {shown})"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not usage plus error, and a
    misspelt option or choice gets a "did you mean" (difflib; Python 3.14's argparse does the
    choices itself with suggest_on_error, then only options are ours)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # name -> subcommand parser (build_parser)
        if hasattr(self, "suggest_on_error"):
            self.suggest_on_error = True

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = self.suggestion(message)
        self.exit(2, one_line(f"{self.prog}: error: {message}{hint} (see {self.prog} --help)") + "\n")

    def suggestion(self, message: str) -> str:
        """ "; did you mean --hidden?" for the first unrecognised option or invalid choice, or ""."""
        import re

        if message.startswith("unrecognized arguments: "):
            known = [option for action in self._actions for option in action.option_strings]
            for word in message.removeprefix("unrecognized arguments: ").split():
                if word.startswith("--"):
                    match = close_match(word.split("=")[0], known)
                    if match:
                        return f"; did you mean {match}?"
            return ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice and "maybe you meant" not in message and "did you mean" not in message:
            options = [item.strip(" '") for item in choice.group(2).split(",")]
            match = close_match(choice.group(1), options)
            return f"; did you mean {match}?" if match else ""
        return ""


def close_match(word: str, candidates: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


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


def build_parser(only: str | None = None) -> OneLineParser:
    """The whole command line; with `only`, just that command gets its options (the others keep
    their one-line help). main() passes the command it was given, so `rnnkit prepare` or `rnnkit
    --help` never imports the torch-backed modules where other commands keep their defaults."""
    parser = OneLineParser(prog="rnnkit", description="Recurrent language models: train, evaluate, generate.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (help_text, add_options, _) in SUBCOMMANDS.items():
        sub = parser.commands[name] = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOGS.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or only == name:
            add_options(sub)
            if name in COMPUTING and name not in ("train", "sweep", "serve"):  # those have their own
                add_threads_option(sub)
    return parser


def _add_json_only(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print a JSON list")


def add_train_options(sub: argparse.ArgumentParser, out_help: str | None = None) -> dict[str, Any]:
    """Every model/data/train option, as `train` takes them (also used by `sweep`), in the groups
    of TRAIN_GROUPS; returns the groups so that a command can add its own options to them."""
    groups = {title: sub.add_argument_group(title) for title in TRAIN_GROUPS}
    group_of = {name: groups[title] for title, names in TRAIN_GROUPS.items() for name in names}
    metavars = train_metavars()
    for name, (section, field, kind, help_text) in TRAIN_OPTIONS.items():
        if name == "out" and out_help:
            help_text = out_help
        metavar = metavars.get(name, {int: "INT", float: "FLOAT"}.get(kind, "TEXT"))
        group_of[name].add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=None,
            metavar=metavar,
            help=with_default(help_text, option_default(section, field)),
        )
    group_of["fractions"].add_argument(
        "--fractions",
        type=parse_split,
        default=None,
        metavar="TRAIN,VAL,TEST",
        help=with_default("train,val,test shares of the text", option_default("data", "fractions")),
    )
    add_renamed_options(sub)
    group_of["clip"].add_argument(
        "--clip",
        type=parse_clip,
        default=argparse.SUPPRESS,
        metavar="FLOAT|none",
        help=with_default("max global gradient norm, or 'none'", option_default("train", "clip")),
    )
    for name, (section, field, help_text) in TRAIN_FLAGS.items():  # --no-NAME turns off what a preset turned on
        group_of[name].add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=with_default(help_text, option_default(section, field)),
        )
    group_of["preset"].add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="start from a named configuration (see rnnkit presets); options given here override it",
    )
    add_threads_option(group_of["threads"])
    return groups


def add_threads_option(container: Any) -> None:
    """--threads, on every command that computes (see runtime.set_threads)."""
    from .runtime import DEFAULT_THREADS

    container.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="INT",
        help="CPU threads for torch and NumPy; 1 is fastest for small models and when another "
        "program is busy on the machine (see README, Threads)"
        + (" (default: torch's, one per core)" if DEFAULT_THREADS is None else f" (default {DEFAULT_THREADS})"),
    )


RENAMED = {
    "--split": "--fractions (the train,val,test shares; --split names one split, in evaluate)",
    "--vocab-size": "--bpe-vocab",
}


def add_renamed_options(sub: argparse.ArgumentParser, names: tuple[str, ...] = tuple(RENAMED)) -> None:
    """Old spellings: accepted by the parser only to be refused with the new name (refuse_renamed)."""
    for name in names:
        sub.add_argument(name, dest="renamed_" + name[2:].replace("-", "_"), default=None, help=argparse.SUPPRESS)


def refuse_renamed(args: argparse.Namespace) -> None:
    from .errors import ConfigError

    for name, new in RENAMED.items():
        if getattr(args, "renamed_" + name[2:].replace("-", "_"), None) is not None:
            raise ConfigError(f"{name} is now {new}")


def add_defaulted_options(
    sub: argparse.ArgumentParser, defaults: Any, options: tuple[tuple[str, Any], ...], help_prefix: str = ""
) -> None:
    """`--name` options whose defaults come from an options dataclass instance (compare, cloze)."""
    for name, kind in options:
        default = getattr(defaults, name)
        sub.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=default,
            help=help_prefix.format(name=name) + f"(default {default})",
        )


def _add_train(sub: argparse.ArgumentParser) -> None:
    groups = add_train_options(sub)
    groups["model"].add_argument(
        "--bidirectional", action="store_true", help="refused: a next-token model cannot read ahead (see rnnkit cloze)"
    )
    groups["run control"].add_argument(
        "--resume", metavar="RUN", help="continue a run (its last/ checkpoint) to --steps"
    )
    groups["output"].add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    groups["run control"].add_argument(
        "--init-from",
        metavar="RUN",
        default=None,
        help="fine-tune: a new run on --data starting from RUN's weights and tokenizer (fresh optimizer and "
        "schedule; the model options must match RUN's)",
    )
    groups["run control"].add_argument(
        "--grow-vocab",
        action="store_true",
        help="with --init-from: give characters or words the source vocabulary lacks new ids "
        "(default: refuse and list them)",
    )


def _add_evaluate(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", help="checkpoint or run directory (a run directory means its best/)")
    sub.add_argument(
        "--data",
        metavar="NAME|PATH",
        help="evaluate all of this file, directory or bundled corpus, every token scored "
        "after a newline as `rnnkit score` does (default: the text it was trained on)",
    )
    sub.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default=None,
        help="score only this split (default: val of the training text; all of --data)",
    )
    sub.add_argument(
        "--fractions",
        type=parse_split,
        default=None,
        help="train,val,test shares that cut --data for --split (default: as trained)",
    )
    sub.add_argument(
        "--max-tokens", type=int, default=None, metavar="INT", help="score at most this many tokens (default: all)"
    )
    add_runtime_engine(sub)
    sub.add_argument("--json", action="store_true", help="print the result as one JSON line")


def _add_generate(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", help="checkpoint or run directory (a run directory means its best/)")
    prompt = sub.add_mutually_exclusive_group()
    prompt.add_argument(
        "--prompt", default="", help="text to start from (default: a new line); - reads it from standard input"
    )
    prompt.add_argument("--prompt-file", type=Path, metavar="PATH", help="read the prompt from a UTF-8 file")
    prompt.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="a prompt loop: each line read is a prompt, its continuation streamed; lines "
        "starting with ':' change settings (:help lists them); the model stays loaded "
        "(default off)",
    )
    sub.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        metavar="INT",
        help="tokens to generate after the prompt (default 200)",
    )
    sub.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        metavar="FLOAT",
        help="divide the logits by this before sampling: below 1 is safer and more repetitive, "
        "above 1 more varied (default 1.0)",
    )
    sub.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="INT",
        help="sample only among the K most likely tokens (default: all)",
    )
    sub.add_argument(
        "--top-p",
        type=float,
        default=None,
        metavar="FLOAT",
        help="nucleus sampling: only among the most likely tokens that together hold probability P (default: all)",
    )
    sub.add_argument(
        "--greedy",
        action="store_true",
        help="always take the most likely token (the API's do_sample=False; default off)",
    )
    sub.add_argument(
        "--beam",
        type=int,
        default=None,
        metavar="K",
        help="beam search: keep the K most likely continuations at each step, print the best "
        "(the API's num_beams=K; default off)",
    )
    sub.add_argument(
        "--num-samples",
        type=int,
        default=1,
        metavar="N",
        help="N continuations, sampled side by side (with --beam: the N best beams); the API's "
        "num_return_sequences (default 1)",
    )
    sub.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="STR",
        help="end a continuation at this string, which is not printed (repeatable; default none)",
    )
    sub.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="INT",
        help="same seed, same text (default: a new random seed each time)",
    )
    add_runtime_engine(sub)
    sub.add_argument("--json", action="store_true", help='print {"text": first, "texts": [all]} as one JSON line')


def _add_score(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", help="checkpoint or run directory (a run directory means its best/)")
    sub.add_argument("stdin", nargs="?", choices=("-",), help="- reads the text from standard input")
    sub.add_argument("--text", default=None, help="the text to score")
    sub.add_argument("--file", type=Path, default=None, help="score this UTF-8 file")
    sub.add_argument(
        "--top-k", type=int, default=None, metavar="K", help="also list the K likeliest tokens at each position"
    )
    output = sub.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document (totals and every token)")
    output.add_argument("--tsv", action="store_true", help="print tab-separated rows (totals go to stderr)")
    add_runtime_engine(sub)


def add_runtime_engine(sub: argparse.ArgumentParser) -> None:
    """--engine and --device of the commands that load a checkpoint (evaluate, generate, score): one
    rule for all three, so `score --file F` and `evaluate --data F` print the same figures."""
    sub.add_argument(
        "--engine",
        choices=("auto", "torch", "numpy"),
        default="auto",
        help="auto (default): NumPy when the model runs on the CPU and NumPy can run it (no "
        "adaptive softmax; generate and score then start without importing torch), else torch",
    )
    sub.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda", "mps"),
        help="auto (default): a GPU when torch sees one (torch is asked only if a GPU driver is "
        "installed), else the CPU",
    )


def _add_compare(sub: argparse.ArgumentParser) -> None:
    from .studies.compare import DEFAULT_MODELS, NeuralOptions

    defaults = NeuralOptions()
    sub.add_argument("--data", default="timemachine", help="bundled corpus name, UTF-8 text file, or directory")
    sub.add_argument("--tokenizer", default="char", help="char or word (default char)")
    sub.add_argument(
        "--models",
        default=None,
        help=(
            "comma-separated: rnn, rnn_relu, gru, lstm, mingru, minlstm, mlp:CONTEXT, ngram:ORDER, "
            f"hmm:STATES (default {DEFAULT_MODELS}; without hmmlearn, the default leaves out "
            "hmm:32)"
        ),
    )
    sub.add_argument(
        "--budget-seconds", type=float, default=60.0, help="wall-clock training time of each neural model (default 60)"
    )
    sub.add_argument("--out", default=None, help="output directory (default runs/compare-DATA-TIME)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing compare directory")
    sub.add_argument(
        "--fractions",
        type=parse_split,
        default=(0.9, 0.05, 0.05),
        help="train,val,test shares of the text (default 0.9,0.05,0.05)",
    )
    add_renamed_options(sub, ("--split",))
    sub.add_argument("--seed", type=int, default=1337, help="random seed for every model (default 1337)")
    add_defaulted_options(
        sub,
        defaults,
        (
            ("layers", int),
            ("hidden", int),
            ("embed", int),
            ("dropout", float),
            ("batch_size", int),
            ("seq_len", int),
            ("lr", float),
        ),
        "neural models: {name} ",
    )
    sub.add_argument("--device", default=defaults.device, help="auto, cpu or cuda (default auto)")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the rows as one JSON list (last line)")


def _add_gradcheck(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", choices=("rnn", "rnn_relu", "gru", "lstm", "mingru", "minlstm"), default="lstm")
    sub.add_argument(
        "--gru-form",
        choices=("cudnn", "cho"),
        default=None,
        help="gru: check the cuDNN form (default) or Cho et al.'s (reset gate before the product)",
    )
    sub.add_argument("--layers", type=int, default=1)
    sub.add_argument("--bidirectional", action="store_true")
    sub.add_argument("--embed", type=int, default=5, help="embedding size (0 = one-hot input)")
    sub.add_argument("--hidden", type=int, default=4)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--json", action="store_true", help="print {parameter: max relative error} as JSON")


def _add_bench(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sub.add_argument(
        "--configs",
        metavar="NAMES",
        default=None,
        help="comma-separated: char-2x512-rnn|gru|lstm (or char-2x512), word-2x650, big-3x1024, "
        "tiny-rnn|gru|lstm (or tiny), all (default: all; big-3x1024 only on CUDA; tiny with "
        "--quick); also char-2x512-gru-cho (or gru-forms: the Cho GRU beside cuDNN's; "
        "gru-forms-small at 1x128), "
        "long-512-mingru|minlstm|gru|lstm (or long-512: T=512 side by side), tiny-long, tiny-gru-cho",
    )
    sub.add_argument(
        "--impls",
        metavar="NAMES",
        default=None,
        help="comma-separated: rnnkit, plain, cell-loop, numpy (default: all; numpy on the CPU only)",
    )
    sub.add_argument("--amp", action="store_true", help="also measure bf16 autocast (CUDA only)")
    sub.add_argument("--quick", action="store_true", help="tiny configurations and few repeats (seconds, for CI)")
    sub.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per implementation (default 5; 3 with --quick)"
    )
    sub.add_argument("--json", action="store_true", help="also print the rows as one JSON list (last line)")


def _add_prepare(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, directories or bundled corpus names (joined in order)",
    )
    sub.add_argument("--tokenizer", default="char", help="char, word or bpe (default char)")
    sub.add_argument("--bpe-vocab", type=int, default=1000, help="bpe: subword vocabulary size")
    sub.add_argument(
        "--tokenizer-from", metavar="CKPT_OR_DIR", help="reuse this checkpoint's (or prepared dir's) tokenizer"
    )
    sub.add_argument("--min-freq", type=int, default=1)
    sub.add_argument("--max-size", type=int, default=None)
    sub.add_argument("--lowercase", action="store_true")
    sub.add_argument(
        "--fractions",
        type=parse_split,
        default=(0.9, 0.05, 0.05),
        help="train,val,test shares of the text (default 0.9,0.05,0.05)",
    )
    add_renamed_options(sub)
    sub.add_argument(
        "--workers", type=int, default=None, help="processes for char and word tokenization (default: CPUs, at most 4)"
    )
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
    refuse_renamed(args)
    if args.fractions is not None:
        given["data"]["fractions"], flat["fractions"] = args.fractions, args.fractions
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
    if args.init_from or args.grow_vocab:
        result = train(
            init_from=args.init_from, grow_vocab=args.grow_vocab, resume=args.resume, preset=args.preset, **given
        )
    elif args.resume:  # the run keeps its configuration; a --preset must be the one it started from
        result = train(resume=args.resume, preset=args.preset, **given)
    else:
        result = train(config)
    if not _main_process():
        return 0  # under torchrun, rank 0 reports
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print("\n".join(train_report(result)))
    return 0


def train_report(result: Any) -> list[str]:
    """What `rnnkit train` prints at the end: the sample (labelled), the figures, what to run next."""
    import shlex

    from .train import SAMPLE_TEMPERATURE

    lines = []
    if result.sample is not None:
        start = (
            f"prompt {result.sample_prompt!r} from the validation text"
            if result.sample_prompt
            else "no prompt (from a new line)"
        )
        lines += [f"sample (temperature {SAMPLE_TEMPERATURE:g}, {start}):", result.sample.rstrip("\n"), ""]
    what = f"trained {result.steps} steps" if result.steps else "fitted"
    lines.append(
        f"{what} in {result.seconds:.1f} s ({result.tokens_per_s:,.0f} tokens/s on average) on {result.device}"
    )
    lines.append(
        f"val loss {result.val_loss:.4f} nats/token, ppl {result.val_ppl:.2f}, bpc {result.val_bpc:.4f} "
        f"(best val loss {result.best_val_loss:.4f})"
    )
    lines.append(f"checkpoints: {result.best_checkpoint} (best), {result.checkpoint}/last")
    run = shlex.quote(result.checkpoint)
    prompt = f" --prompt {shlex.quote(result.sample_prompt)}" if result.sample_prompt else ""
    lines += [
        "next:",
        f"  rnnkit generate {run}{prompt} --temperature {SAMPLE_TEMPERATURE:g}   # more text",
        f"  rnnkit evaluate {run} --split test   # the test split, once",
        f"  rnnkit plot {run} --metric val_bpc   # the learning curve",
    ]
    if result.steps:
        lines.append(f"  rnnkit train --resume {run} --steps {2 * result.steps}   # train on where it stopped")
    return lines


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import load

    lm = load(args.checkpoint, args.device, args.engine)
    result = lm.evaluate(args.data, args.split, args.fractions, args.max_tokens)
    scored = scored_text(lm, args)
    if args.json:
        print(json.dumps({**result.to_dict(), "scored": scored}))
    else:
        print(
            f"{scored}: loss {result.loss:.4f} nats/token | ppl {result.ppl:.3f} | "
            f"{result.bits_per_token:.4f} bits/token | bpc {result.bpc:.4f} | {result.tokens:,} tokens"
        )
        if result.unk_rate > 0:
            print(
                f"{result.unk_rate:.1%} of the scored tokens are <unk>: their words are never spelled out, "
                "so bpc flatters this model against a char model"
            )
    return 0


def scored_text(lm: Any, args: argparse.Namespace) -> str:
    """Which text `evaluate` scored, in words."""
    if args.data is None or args.split is not None:
        split = args.split or "val"
        source = args.data or lm.config.data.data
        fractions = ",".join(f"{f:g}" for f in (args.fractions or lm.config.data.fractions))
        return f"the {split} split of {source} (fractions {fractions})"
    from .api import _is_prepared

    if _is_prepared(args.data):
        return f"the val split of the prepared {args.data}"
    limit = f"the first {args.max_tokens:,} tokens of " if args.max_tokens is not None else ""
    return f"{limit}all of {args.data}"


def sampling_from_args(args: argparse.Namespace) -> Any:
    """The CLI's generate options as a SamplingConfig (--greedy and --beam are the CLI's spellings
    of do_sample=False and num_beams); bad options are refused before a checkpoint is loaded."""
    from .errors import ConfigError
    from .generate import SamplingConfig

    if args.num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {args.num_samples}")
    if args.beam is not None and args.greedy:
        raise ConfigError("--beam and --greedy: beam search is already deterministic; give one of them")
    do_sample = False if args.greedy else None
    try:
        return SamplingConfig(
            args.max_new_tokens,
            args.temperature,
            args.top_k,
            args.top_p,
            do_sample,
            args.seed,
            args.beam if args.beam is not None else 1,
            args.num_samples,
            tuple(args.stop),
        )
    except ConfigError as error:
        if args.beam is not None and args.beam < 1:
            raise ConfigError(f"--beam must be an integer from 1 to 10000, got {args.beam}") from None
        raise error


def cmd_generate(args: argparse.Namespace) -> int:
    import warnings

    from .api import load
    from .text.corpora import read_text_file

    sampling = sampling_from_args(args)
    prompt = read_text_file(args.prompt_file) if args.prompt_file else args.prompt
    if prompt == "-" and not args.interactive:
        prompt = read_stdin_text().removesuffix("\n")  # `echo TEXT |` adds one newline, not part of it
    lm = load(args.checkpoint, args.device, args.engine)
    warnings.showwarning = lambda message, *_rest, **_options: print(
        one_line(f"rnnkit generate: warning: {message}"), file=sys.stderr
    )
    if args.interactive:
        from .interactive import prompt_loop

        return prompt_loop(lm, sampling, sys.stdin, _write_stdout, lambda line: print(line, file=sys.stderr))
    single = sampling.num_return_sequences == 1
    stream = None if args.json or not single else _write_stdout
    result = lm.generate(prompt, stream=stream, **generate_options(sampling))
    texts = [result] if isinstance(result, str) else [t for t in result if isinstance(t, str)]  # one prompt
    if args.json:
        print(json.dumps({"text": texts[0], "texts": texts}, ensure_ascii=False))
    elif single:
        print()
    else:
        _write_stdout(SAMPLE_SEPARATOR.join(texts) + "\n")
    return 0


SAMPLE_SEPARATOR = "\n----\n"  # between the samples of generate --num-samples


def generate_options(sampling: Any) -> dict[str, Any]:
    """A SamplingConfig as LanguageModel.generate's keyword arguments."""
    from dataclasses import asdict

    return asdict(sampling)


def read_stdin_text() -> str:
    """Standard input as UTF-8 text (a bad byte is refused by position, like a bad file)."""
    from .errors import DataError

    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise DataError(f"standard input is not valid UTF-8 (bad byte at offset {error.start})") from None


def score_input(args: argparse.Namespace) -> str:
    """The one text `score` was given: --text, --file or - (stdin)."""
    from .errors import ConfigError

    given = [
        name for name, value in (("--text", args.text), ("--file", args.file), ("-", args.stdin)) if value is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            "give the text to score one way: --text STR, --file PATH or - (standard input)"
            + (f"; got {' and '.join(given)}" if given else "")
        )
    if args.file is not None:
        from .text.corpora import read_text_file

        return read_text_file(args.file)
    return read_stdin_text() if args.stdin else args.text


def cmd_score(args: argparse.Namespace) -> int:
    from .api import load
    from .score import _check_top_k

    text = score_input(args)
    _check_top_k(args.top_k)  # refused before the checkpoint is loaded
    if not text:
        from .errors import DataError

        raise DataError("the text to score is empty")
    lm = load(args.checkpoint, args.device, args.engine)
    result = lm.score(text, top_k=args.top_k)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    totals = result.totals()
    summary = (
        f"{totals['tokens']:,} tokens, {totals['chars']:,} chars: {totals['total_nats']:.4f} nats | "
        f"{totals['loss']:.4f} nats/token | {totals['bits_per_char']:.4f} bits/char | "
        f"ppl {totals['perplexity']:.3f}"
    )
    rows = result.tokens
    if args.tsv:
        header = ["token", "start", "end", "logprob", "surprisal"] + (["top"] if args.top_k else [])
        lines = ["\t".join(header)]
        for row in rows:
            cells = [
                tsv_cell(row["token"]),
                str(row["start"]),
                str(row["end"]),
                f"{row['logprob']:.6f}",
                f"{row['surprisal']:.6f}",
            ]
            if args.top_k:
                cells.append(" ".join(f"{tsv_cell(alt['token'])}={alt['logprob']:.4f}" for alt in row["top"]))
            lines.append("\t".join(cells))
        _write_stdout("\n".join(lines) + "\n")
        print(summary, file=sys.stderr)
        return 0
    lines = [f"{'token':<12}{'span':>14}{'logprob':>10}{'bits':>8}" + ("  likeliest" if args.top_k else "")]
    for row in rows:
        line = (
            f"{shown_token(row['token']):<12}{row['start']:>7}-{row['end']:<6}{row['logprob']:>10.4f}"
            f"{row['surprisal']:>8.3f}"
        )
        if args.top_k:
            line += "  " + " ".join(f"{shown_token(alt['token'])} {alt['logprob']:.2f}" for alt in row["top"])
        lines.append(line)
    _write_stdout("\n".join(lines) + "\n")
    print(summary)
    return 0


def tsv_cell(token: str) -> str:
    """A token as one TSV cell: backslash, tab, newline and carriage return escaped."""
    return token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def shown_token(token: str) -> str:
    """A token quoted so that spaces and newlines show: 'the', ' ', '\\n'."""
    return repr(token)


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
    errors = gradcheck(
        args.model,
        layers=args.layers,
        bidirectional=args.bidirectional,
        embed=args.embed,
        hidden=args.hidden,
        seed=args.seed,
        gru_form=args.gru_form,
    )
    worst = max(errors.values())
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "layers": args.layers,
                    "bidirectional": args.bidirectional,
                    "max_rel_error": worst,
                    "errors": errors,
                }
            )
        )
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
    refuse_renamed(args)
    meta = prepare(
        args.data,
        args.tokenizer,
        args.out,
        tuple(args.fractions),
        args.lowercase,
        args.min_freq,
        args.max_size,
        args.bpe_vocab,
        args.tokenizer_from,
        args.overwrite,
        args.workers,
        log,
    )
    seconds = time.perf_counter() - started
    meta["seconds"] = round(seconds, 3)
    meta["out"] = str(args.out or "")
    total = sum(meta["chars"].values())
    if args.json:
        print(json.dumps(meta))
    else:
        rate = sum(meta["bytes"].values()) / 1e6 / max(seconds, 1e-9)
        print(
            f"prepared {sum(meta['tokens'].values()):,} tokens from {total:,} characters in {seconds:.1f} s "
            f"({rate:.1f} MB/s)"
        )
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
    print("\n".join(batch_notes(rows)))
    return 0


def batch_notes(rows: list[dict[str, Any]]) -> list[str]:
    """A line for each corpus and tokenizer whose training split is too short for the default
    batch shape, with the shape that fits (train would stop with an error otherwise)."""
    from .config import DataConfig

    default = DataConfig()
    notes = []
    for row in rows:
        for kind, shape in row["batch_fits"].items():
            if (shape["batch_size"], shape["seq_len"]) != (default.batch_size, default.seq_len):
                notes.append(
                    f"{row['name']} with --tokenizer {kind}: {row['train_tokens'][kind]:,} training tokens "
                    f"are too few for the default batch {default.batch_size} x {default.seq_len}; "
                    f"add --batch-size {shape['batch_size']} --seq-len {shape['seq_len']}"
                )
    return notes


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
    flags[("data", "fractions")] = "fractions"
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

    refuse_renamed(args)
    neural = NeuralOptions(**{f.name: getattr(args, f.name) for f in fields(NeuralOptions)})
    rows = compare(
        args.data,
        args.tokenizer,
        args.models,
        args.budget_seconds,
        args.out,
        seed=args.seed,
        fractions=args.fractions,
        neural=neural,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    print(json.dumps(rows) if args.json else markdown_table(rows))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .studies.bench import IMPLS, BenchOptions, format_table, run_bench, split_names

    options = BenchOptions(
        device=args.device,
        configs=split_names(args.configs),
        impls=split_names(args.impls) or IMPLS,
        amp=args.amp,
        quick=args.quick,
        repeats=args.repeats,
    )
    rows = run_bench(options, log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_table(rows))
    if args.json:
        print(json.dumps(rows))
    return 0


def _add_gradients(sub: argparse.ArgumentParser) -> None:
    from .studies.diagnostics import GradientOptions

    defaults = GradientOptions()
    sub.add_argument("checkpoints", nargs="*", metavar="CKPT", help="checkpoints or run directories to measure")
    sub.add_argument(
        "--model",
        default=None,
        help="freshly initialised models to measure too, comma-separated (default rnn,gru,lstm when no CKPT is given)",
    )
    sub.add_argument(
        "--data",
        default=None,
        help="text to take the windows from (default: each checkpoint's own, timemachine for fresh models)",
    )
    sub.add_argument("--tokenizer", default="char", help="fresh models: char or word (default char)")
    for name, help_text in (
        ("seq_len", "window length T: distances 0..T are measured"),
        ("batch_size", "sequences per window"),
        ("batches", "windows averaged over"),
        ("layers", "fresh models: recurrent layers"),
        ("hidden", "fresh models: hidden size"),
        ("embed", "fresh models: embedding size (0 = one-hot)"),
        ("seed", "fresh models: seed"),
    ):
        sub.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int,
            default=getattr(defaults, name),
            help=f"{help_text} (default {getattr(defaults, name)})",
        )
    sub.add_argument("--out", default=None, help="output directory (default runs/gradients-DATA-TIME)")
    sub.add_argument("--overwrite", action="store_true", help="replace gradients.json/png in --out")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the JSON document as one line")


def _add_plot(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (their metrics.jsonl)")
    sub.add_argument(
        "--metric",
        default="val_loss",
        help="val_loss, train_loss, grad_norm, lr, tokens_per_s, val_ppl or val_bpc (default val_loss)",
    )
    sub.add_argument("--x", default="step", help="step or elapsed_s (default step)")
    sub.add_argument("--out", default=None, help="image file: .png, .svg or .pdf (default plot-METRIC.png)")
    sub.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    sub.add_argument("--title", default=None, help="figure title")
    sub.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="VALUE[:LABEL]",
        help="a dashed horizontal line at VALUE, e.g. '1.886:nanoGPT CPU' (repeatable)",
    )
    sub.add_argument("--json", action="store_true", help="print the file and per-run summaries as one JSON line")


def _add_export(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("checkpoint", metavar="RUN", help="run or checkpoint directory (a run directory means its best/)")
    sub.add_argument(
        "--format",
        default="onnx",
        choices=("onnx", "torchscript", "pt2"),
        help="onnx (needs rnnkit[export]), torchscript, or pt2 (torch.export) (default onnx)",
    )
    sub.add_argument(
        "--graph",
        default="window",
        choices=("window", "step"),
        help="window: ids (batch, seq) per call; step: one token (batch,) per call (default window)",
    )
    sub.add_argument("--out", default=None, help="output directory (default RUN/export)")
    sub.add_argument("--opset", type=int, default=None, help="ONNX opset, 9 to 20 (default 17)")
    sub.add_argument("--overwrite", action="store_true", help="replace an earlier export of this format and graph")
    sub.add_argument("--json", action="store_true", help="print the export description as one JSON line")


def _add_sweep(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--set",
        dest="sweep",
        required=True,
        metavar="NAME=V1,V2,...",
        help="the numeric option to vary and its values, e.g. hidden=64,128,256 or lr=1e-3,3e-3",
    )
    add_train_options(sub, out_help="sweep directory (default runs/sweep-DATA-TIME); each value's run goes inside")
    sub.add_argument("--json", action="store_true", help="print the rows as one JSON list (last line)")


def _add_cloze(sub: argparse.ArgumentParser) -> None:
    from .studies.cloze import ClozeOptions

    defaults = ClozeOptions()
    sub.add_argument("--data", default="timemachine", help="bundled corpus name, UTF-8 text file, or directory")
    sub.add_argument("--model", default=defaults.model, help="gru or lstm (default gru)")
    sub.add_argument(
        "--bidirectional",
        action="store_true",
        help="also train the model that reads both sides of the gap, and compare the two",
    )
    sub.add_argument(
        "--budget-seconds",
        type=float,
        default=defaults.budget_seconds,
        help=f"training time of each model (default {defaults.budget_seconds:g})",
    )
    sub.add_argument("--steps", type=int, default=None, help="stop each model after this many steps")
    add_defaulted_options(
        sub,
        defaults,
        (
            ("context", int),
            ("hidden", int),
            ("embed", int),
            ("batch_size", int),
            ("lr", float),
            ("eval_windows", int),
            ("seed", int),
        ),
    )
    sub.add_argument("--device", default=defaults.device, help="auto, cpu or cuda (default auto)")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print the report as one JSON line")


def _refuse_bidirectional(args: argparse.Namespace) -> None:
    """`train --bidirectional`: a next-token model must not read ahead; say why in one line."""
    if getattr(args, "bidirectional", False):
        from .errors import ConfigError

        raise ConfigError(
            "a language model cannot be bidirectional: it predicts each next token from the "
            "tokens before it, and a backward pass over the window would already have read the "
            "token it must predict (a trivially low loss, and nothing to generate with); to see "
            "what context from both sides is worth, use `rnnkit cloze --bidirectional`"
        )


def cmd_gradients(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .studies.diagnostics import GradientOptions, gradients, summary_table

    options = GradientOptions(**{f.name: getattr(args, f.name) for f in fields(GradientOptions)})
    log = (lambda _message: None) if args.quiet else None
    document = gradients(
        args.checkpoints, args.model, args.data, args.tokenizer, args.out, options, args.overwrite, log
    )
    if args.json:
        print(json.dumps(document))
    else:
        print(summary_table(document))
        print(f"wrote {' and '.join(document['files'].values())}")
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export import describe_json, export_model

    document = export_model(args.checkpoint, args.format, args.out, args.opset, args.graph, args.overwrite)
    if args.json:
        print(describe_json(document))
        return 0
    out, parity = Path(document["directory"]), document["parity"]
    print(
        f"exported the {document['graph']} graph ({document['graph_meaning']}) as {out / document['file']} "
        f"({document['size_bytes']:,} bytes)"
    )
    inputs, outputs = (", ".join(item["name"] for item in document[side]) for side in ("inputs", "outputs"))
    print(f"inputs: {inputs}; outputs: {outputs}; described in {out / document['description']}")
    if parity is None:
        print("parity not checked: onnxruntime is not installed (pip install 'rnnkit[export]')")
    else:
        print(
            f"parity with the torch model over {parity['calls']} calls with the state carried: max abs diff "
            f"{parity['max_abs_diff_logits']:.2e} (logits), {parity['max_abs_diff_state']:.2e} (state)"
        )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .studies.sweep import markdown_table, parse_set, sweep

    name, values = parse_set(args.sweep)
    config, _ = run_config_from_args(args)
    quiet = bool(args.quiet)
    rows = sweep(
        config,
        name,
        values,
        config.train.out,
        overwrite=bool(args.overwrite),
        log=(lambda _message: None) if quiet else None,
    )
    print(json.dumps(rows) if args.json else markdown_table(rows))
    return 0


def cmd_cloze(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .studies.cloze import ClozeOptions, cloze, report_lines

    options = ClozeOptions(**{f.name: getattr(args, f.name) for f in fields(ClozeOptions)})
    report = cloze(args.data, options, args.bidirectional, (lambda _message: None) if args.quiet else None)
    print(json.dumps(report) if args.json else "\n".join(report_lines(report)))
    return 0


def _add_inspect(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("run", metavar="RUN", help="checkpoint or run directory of an rnn, gru or lstm model")
    text = sub.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to read")
    text.add_argument("--file", help="read this UTF-8 file")
    text.add_argument("--data", help="a corpus (bundled name, file or directory): its validation split")
    sub.add_argument(
        "--layer",
        default="all",
        help="layer(s) whose per-token values are written: all, or indices from 0, e.g. 1 or 0,1 (default all)",
    )
    sub.add_argument(
        "--units",
        default="all",
        help="units written of each layer: all, or indices like 0,5,17 "
        "(default all; the analysis always covers every unit)",
    )
    sub.add_argument("--max-tokens", type=int, default=None, help="read at most this many tokens of the text")
    sub.add_argument(
        "--streams",
        type=int,
        default=None,
        help="parallel streams (default: 1 up to 8,192 tokens, then about 4,096 tokens each)",
    )
    sub.add_argument(
        "--warmup", type=int, default=256, help="tokens each later stream reads before its slice (default 256)"
    )
    sub.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="of the per-token files")
    sub.add_argument("--show", type=int, default=1500, help="tokens drawn in report.html (default 1500)")
    sub.add_argument(
        "--show-from",
        type=int,
        default=None,
        metavar="TOKEN",
        help="first token drawn (default: the start of the held-out second half)",
    )
    sub.add_argument(
        "--no-png",
        dest="pngs",
        action="store_false",
        help="skip saturation.png and features.png (report.html has the same plots as SVG)",
    )
    sub.add_argument("--out", default=None, help="output directory (default runs/inspect-TIME)")
    sub.add_argument("--overwrite", action="store_true", help="replace an earlier inspect directory")
    sub.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_argument("--json", action="store_true", help="print inspect.json as one line")


def _index_list(text: str, flag: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        from .errors import ConfigError

        raise ConfigError(f"{flag} takes 'all' or comma-separated integers, got {text!r}") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    from .studies.inspect import InspectOptions, inspect, read_source, run_split, summary_lines

    options = InspectOptions(
        layers=_index_list(args.layer, "--layer"),
        units=_index_list(args.units, "--units"),
        max_tokens=args.max_tokens,
        streams=args.streams,
        warmup=args.warmup,
        dtype=args.dtype,
        show=args.show,
        show_from=args.show_from,
        pngs=args.pngs,
    )
    text, source = read_source(args.text, args.file, args.data, run_split(args.run))
    log = (lambda _message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    document = inspect(args.run, text, source, args.out, options, args.overwrite, log)
    if args.json:
        print(json.dumps(document))
    else:
        print("\n".join(summary_lines(document)))
        print(f"wrote {document['out']}/report.html")
    return 0


SERVE_LIMITS = {  # option -> help; defaults from ServeOptions
    "max_prompt_chars": "longest prompt, in characters (longer: 413)",
    "max_new_tokens": "most tokens one request may ask for",
    "max_samples": "most samples (num_return_sequences) per request",
    "max_beams": "widest beam (num_beams) per request",
    "max_concurrent": "generations in flight per model; one more is answered 503 with Retry-After",
    "max_batch": "requests decoded together in one forward pass (1: one at a time, no batching)",
    "max_score_chars": "longest text to score or inspect, in characters",
    "max_inspect_tokens": "tokens of a text the hidden-unit view reads",
}


def _add_serve(sub: argparse.ArgumentParser) -> None:
    from .serve.models import DEFAULT_HOST, ServeOptions

    defaults = ServeOptions()
    sub.add_argument("runs", nargs="+", metavar="RUN", help="run or checkpoint directories (or Hub ids) to serve")
    sub.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: every "
        "interface, with a warning: there is no authentication)",
    )
    sub.add_argument(
        "--port", type=int, default=defaults.port, metavar="INT", help=f"port to listen on (default {defaults.port})"
    )
    sub.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="INT",
        help="server processes, each with its own copy of the models (default 1: one process "
        "batches every client's requests together)",
    )
    limits = sub.add_argument_group("limits (each with a safe default)")
    for name, help_text in SERVE_LIMITS.items():
        field = "max_return_sequences" if name == "max_samples" else name
        default = getattr(defaults, field)
        limits.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=default,
            metavar="INT",
            help=f"{help_text} (default {default:,})",
        )
    sub.add_argument("--quiet", action="store_true", help="no request log on stderr")
    add_runtime_engine(sub)
    threads = serve_threads()
    sub.add_argument(
        "--threads",
        type=int,
        default=threads,
        metavar="INT",
        help="CPU threads for torch and NumPy (default: one fewer than the cores, "
        f"{threads} here, leaving a core to the HTTP side; see README, rnnkit serve)",
    )


def serve_threads() -> int:
    """One fewer than the CPU cores: a server's event loop (JSON, HTTP writes for every client at
    every step) needs a core of its own. On the 2-core development machine, with torch loaded,
    one compute thread served 32 clients at 4,831 tokens/s against 3,875-4,000 with two
    (benchmarks/serve_load.py; README, rnnkit serve)."""
    import os

    return max(1, (os.cpu_count() or 1) - 1)


def cmd_serve(args: argparse.Namespace) -> int:
    from .runtime import stderr_logger
    from .serve.models import ServeOptions
    from .serve.server import require_serve, run_server

    require_serve()  # before any model is loaded
    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_prompt_chars=args.max_prompt_chars,
        max_new_tokens=args.max_new_tokens,
        max_return_sequences=args.max_samples,
        max_beams=args.max_beams,
        max_concurrent=args.max_concurrent,
        max_batch=args.max_batch,
        max_score_chars=args.max_score_chars,
        max_inspect_tokens=args.max_inspect_tokens,
    )
    run_server(args.runs, options, args.device, args.engine, stderr_logger(args.quiet))
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
    "score": ("per-token log-probability and surprisal of a text, with totals", _add_score, cmd_score),
    "compare": ("train RNNs and fit n-gram/HMM baselines on one text; compare", _add_compare, cmd_compare),
    "gradcheck": ("check the NumPy engine's backward pass against finite differences", _add_gradcheck, cmd_gradcheck),
    "bench": ("training speed of rnnkit beside plain PyTorch, a cell loop and NumPy", _add_bench, cmd_bench),
    "prepare": ("tokenize a corpus once into memory-mapped token files", _add_prepare, cmd_prepare),
    "gradients": ("gradient norm through time, and sigma_max(W_hh)", _add_gradients, cmd_gradients),
    "plot": ("draw a metric of one or more runs on one figure", _add_plot, cmd_plot),
    "export": ("export a trained model as an ONNX, TorchScript or torch.export graph", _add_export, cmd_export),
    "sweep": ("train one model per value of a numeric option; table and plot", _add_sweep, cmd_sweep),
    "cloze": ("fill in a masked character: bidirectional vs unidirectional", _add_cloze, cmd_cloze),
    "inspect": (
        "see inside a trained network: surprisal, units that track the text, gate saturation",
        _add_inspect,
        cmd_inspect,
    ),
    "serve": ("a web page and HTTP API over trained models: generate, score, inspect", _add_serve, cmd_serve),
    "corpora": ("list the bundled corpora", _add_json_only, cmd_corpora),
    "presets": ("list the named configurations for train --preset", _add_json_only, cmd_presets),
}


# commands that compute with torch or NumPy, and so take --threads
COMPUTING = (
    "train",
    "evaluate",
    "generate",
    "compare",
    "gradcheck",
    "bench",
    "gradients",
    "sweep",
    "cloze",
    "serve",
)
EPILOGS = {
    "train": TRAIN_EPILOG,
    "generate": """examples:
  rnnkit generate runs/quick --prompt "The Time Traveller" --temperature 0.8 --seed 1
  rnnkit generate runs/quick --prompt-file opening.txt --greedy --max-new-tokens 100
  rnnkit generate runs/quick --prompt "ROMEO:" --top-p 0.95 --json
""",
    "serve": """examples:
  rnnkit serve runs/quick                        # then open http://127.0.0.1:8000/
  rnnkit serve runs/lstm runs/ngram5 --port 8080  # two models, side by side on the page
  curl -s localhost:8000/v1/generate -H 'content-type: application/json' -d '{"prompt": "The", "seed": 1}'
""",
}


def safe_console_streams() -> None:
    """Make sys.stdout/sys.stderr unable to fail on text they cannot encode.

    A console or pipe in a legacy code page (cp1252 on Windows with redirected output, or
    PYTHONIOENCODING=ascii) cannot show Cyrillic or Chinese text; generated text and echoed input
    are then written with '?' in place of what it cannot show, instead of a UnicodeEncodeError.
    UTF-8 streams are left as they are.
    """
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        if encoding in ("utf-8", "utf8") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors="replace")
        except (ValueError, OSError):  # a closed or detached stream: nothing to write to anyway
            pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    safe_console_streams()
    tune_allocator()  # large temporaries reused, not page-faulted in again every window
    command = next((arg for arg in argv if not arg.startswith("-")), "")  # top-level options take no value
    parser = build_parser(only=command)
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the command's own parser, which knows the options to suggest
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        _, _, run = SUBCOMMANDS[args.command]
        if args.command in COMPUTING:
            from .runtime import set_threads

            # serve imports torch only if its engine needs it (the NumPy engine never does)
            set_threads(args.threads, load_torch=args.command != "serve")
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
