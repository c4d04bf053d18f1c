"""Fine-tuning: a new run that starts from a trained model's weights and tokenizer.

`rnnkit train --init-from RUN --data NEW` (train(init_from=RUN, data=NEW)) builds the new run's
configuration from the source's model and tokenizer settings, the new `--data`, and fresh
training options (the defaults plus what is given): a new optimizer, a new schedule, a new run
directory. The source is recorded in the new run's config.json (`init_from`).

The architecture is the source's: an option that would change it (model kind, layers, hidden,
embed, tie, adaptive softmax) is refused when it differs; dropout and the other regularisers,
the engine, and every data-batching and training option may change.

New tokens. Characters (or words) of the new text that the source's vocabulary lacks are
refused, with the list of them, unless `grow_vocab` is given. Then they get new ids after the
old ones (old ids keep their meaning) and the matrices indexed by token grow by a row each:

    embedding row (or one-hot input column)  = the mean of the existing rows (columns):
                                               a "typical token" the first layer already reads
    output row                               = the mean of the existing output rows
    output bias                              = the smallest existing bias

so on old tokens the grown model computes exactly what the source did (their logits are
unchanged), and a new token starts with a typical logit lowered to the least likely token's
bias rather than taking much probability from the text the model knows; training on the new
text then moves it where it belongs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .config import RunConfig
from .errors import ConfigError, DataError
from .text.tokenizer import Tokenizer, Vocab, name_tokens

if TYPE_CHECKING:
    import torch

ARCHITECTURE = ("model", "layers", "hidden", "embed", "tie", "adaptive_softmax", "cutoffs")
TOKENIZER = ("tokenizer", "lowercase", "min_freq", "max_size", "bpe_vocab")


def finetune_config(source: RunConfig, given: dict[str, Any]) -> RunConfig:
    """The new run's configuration: the source's model and tokenizer settings, the given data and
    training options (defaults for the rest). `given` holds flat field names, as train() takes."""
    if source.model.is_baseline:
        raise ConfigError(
            f"the source is a {source.model.model} model, fitted in one pass: there are no "
            "trained weights to start from; fit a new one on the new text"
        )
    differs = [
        name
        for name in ARCHITECTURE + TOKENIZER
        if name in given
        and _value(given[name]) != _value(getattr(source.model if name in ARCHITECTURE else source.data, name))
    ]
    if differs:
        described = ", ".join(
            f"--{name.replace('_', '-')} {given[name]} (source: "
            f"{getattr(source.model if name in ARCHITECTURE else source.data, name)})"
            for name in differs
        )
        raise ConfigError(
            f"fine-tuning keeps the source's model and tokenizer; {described} differ. Leave them "
            "out, or train a new model without --init-from"
        )
    model = _asdict(source.model)
    data = {**_asdict(source.data), "data": given.get("data")}
    if data["data"] is None:
        raise ConfigError("--init-from needs --data: the new text to fine-tune on")
    train: dict[str, Any] = {}
    sections = {"model": model, "data": data, "train": train}
    from .config import TrainConfig

    train_fields = set(_asdict(TrainConfig()))
    for name, value in given.items():
        if name in train_fields:
            train[name] = value
        elif name in model:
            model[name] = value
        elif name in data:
            data[name] = value
        else:
            raise ConfigError(f"unknown option {name!r}")
    model["vocab_size"] = 0  # set from the tokenizer (it may grow)
    return RunConfig.from_dict(sections)


def _asdict(section: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(section)


def _value(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def new_tokens(tokenizer: Any, texts: list[str]) -> list[str]:
    """The distinct tokens of the texts that the vocabulary lacks, in order of first appearance
    (none for byte-level BPE, which spells any text)."""
    seen: dict[str, None] = {}
    for text in texts:
        for token in tokenizer.unknown(text):
            seen.setdefault(token, None)
    return list(seen)


def check_new_tokens(tokenizer: Any, texts: list[str], grow: bool) -> list[str]:
    """Refuse new tokens (naming them) unless `grow`; return them."""
    missing = new_tokens(tokenizer, texts)
    if missing and not grow:
        what = "characters" if tokenizer.kind == "char" else "words"
        raise DataError(
            f"the new text has {len(missing)} {what} the source model's vocabulary lacks: "
            f"{name_tokens(missing)}; add --grow-vocab to give them new ids (see rnnkit.finetune)"
        )
    if missing and tokenizer.kind == "bpe":  # cannot happen: byte-level BPE has every byte
        raise DataError("a BPE vocabulary cannot grow")
    return missing


def grown_tokenizer(tokenizer: Tokenizer, added: list[str]) -> Tokenizer:
    """The same tokenizer with `added` given the next ids (old ids unchanged)."""
    return Tokenizer(tokenizer.kind, Vocab(tokenizer.vocab.itos + added, tokenizer.vocab.has_unk), tokenizer.lowercase)


def grown_weights(weights: dict[str, torch.Tensor], config: RunConfig, added: int) -> dict[str, torch.Tensor]:
    """Weights with `added` new tokens (see the module docstring for how they are initialised)."""
    import torch

    if added == 0:
        return weights
    if config.model.adaptive_softmax:
        raise ConfigError(
            "--grow-vocab cannot grow an adaptive softmax head (its clusters are cut by token "
            "frequency); fine-tune without new tokens"
        )
    grown = dict(weights)

    def add_rows(name: str, fill: torch.Tensor) -> None:
        grown[name] = torch.cat([weights[name], fill.expand(added, *fill.shape).to(weights[name].dtype)])

    if "embed.weight" in weights:
        add_rows("embed.weight", weights["embed.weight"].mean(dim=0))
    else:  # one-hot input: the first layer's input columns are the token rows
        for name in [n for n in weights if n.startswith("rnn.weight_ih_l0")]:
            w = weights[name]
            grown[name] = torch.cat([w, w.mean(dim=1, keepdim=True).expand(-1, added)], dim=1)
    if "head.weight" in weights:  # absent when tied: the grown embedding is the output matrix
        add_rows("head.weight", weights["head.weight"].mean(dim=0))
    add_rows("head.bias", weights["head.bias"].min().reshape(()))
    return grown


def source_info(checkpoint: Any, added: list[str]) -> dict[str, Any]:
    """What config.json records about the source of a fine-tuned run."""
    return {
        "path": str(checkpoint.path),
        "step": checkpoint.info.get("step"),
        "val_loss": checkpoint.info.get("val_loss"),
        "data": checkpoint.config.data.data,
        "added_tokens": added,
    }


def check_vocab_fits(tokenizer: Any, weights: dict[str, Any]) -> None:
    """A grown tokenizer and its weights must agree on the number of ids."""
    rows = int(np.asarray(weights["head.bias"].shape)[0])
    if rows != len(tokenizer):
        raise RuntimeError(f"{len(tokenizer)} tokens but {rows} output rows")  # a bug, not bad input
