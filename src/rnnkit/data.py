"""Token streams and the two ways of cutting them into (x, y) batches.

Sequential (TBPTT) batching lays the training stream out as N parallel streams, each a contiguous
piece of the text, and walks them in windows of T tokens; window i+1 of a row continues window i
exactly, so the trainer can carry the hidden state across windows (detached: truncated BPTT).
Random batching draws N windows at random offsets; every batch starts from a zero state.

`load_splits` is the one way from `--data` (a text, a directory, a bundled corpus, or a prepared
directory) to token splits: it returns what it learned (tokenizer, vocabulary size, the kind of
tokens) and leaves the config it was given as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import DataConfig, RunConfig
from .errors import ConfigError, DataError
from .text.corpora import Corpus, load_corpus
from .text.normalize import normalize_text
from .text.prepare import is_prepared, load_prepared
from .text.tokenizer import Tokenizer, build_tokenizer

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TokenSplit:
    """One split's token ids and the length of the text they came from (for bits per character)."""

    ids: np.ndarray  # int64 (n,)
    chars: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(1, len(self.ids))


@dataclass(frozen=True)
class LoadedData:
    """What loading `--data` learned: the tokenizer, the encoded splits asked for, and where from."""

    tokenizer: Tokenizer
    splits: dict[str, TokenSplit]
    name: str  # the corpus name, or "DIR (prepared)"
    tokenizer_kind: str  # char, word or bpe: what the tokens are (a prepared directory decides it)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def sized(self, config: RunConfig) -> RunConfig:
        """`config` with the vocabulary size and tokenizer kind these tokens have (a copy)."""
        return dataclasses.replace(
            config,
            model=dataclasses.replace(config.model, vocab_size=self.vocab_size),
            data=dataclasses.replace(config.data, tokenizer=self.tokenizer_kind),
        )

    def summary(self) -> str:
        """One line for the log: source, tokenizer, vocabulary and split sizes."""
        sizes = ", ".join(f"{name} {len(s.ids):,} tokens ({s.chars:,} chars)" for name, s in self.splits.items())
        return f"data: {self.name} ({self.tokenizer_kind}, vocabulary {self.vocab_size:,}): {sizes}"


def load_splits(
    data: DataConfig,
    tokenizer: Tokenizer | None = None,
    names: Sequence[str] = SPLITS,
    fractions: tuple[float, float, float] | None = None,
    require_val: bool = True,
) -> LoadedData:
    """Token splits `names` of `data.data`.

    A text is read and cut by `fractions` (default data.fractions); its vocabulary is built from the
    training split with the options of `data`, unless `tokenizer` (a model's) is given, and only
    the splits asked for are encoded (a token the tokenizer lacks raises PromptError). A prepared
    directory (`rnnkit prepare`) is memory-mapped: its own tokenizer decides, and a given one must
    be the same. `require_val`: refuse a validation split too short to evaluate (training needs one).
    """
    if is_prepared(data.data):
        if data.normalize is not None:
            raise ConfigError(
                f"--normalize acts on text as it is read; {data.data} is prepared (tokenized) "
                "already: normalise the text before `rnnkit prepare`"
            )
        loaded = _load_prepared(data.data, tokenizer, names)
    else:
        corpus = normalized(load_corpus(data.data, fractions or data.fractions), data.normalize)
        if tokenizer is None:
            tokenizer = build_tokenizer(
                data.tokenizer,
                corpus.train,
                (corpus.val, corpus.test),
                data.lowercase,
                data.min_freq,
                data.max_size,
                data.bpe_vocab,
            )
        texts = {name: getattr(corpus, name) for name in names}
        splits = {name: TokenSplit(tokenizer.encode(text), len(text)) for name, text in texts.items()}
        loaded = LoadedData(tokenizer, splits, corpus.name, data.tokenizer)
    if require_val and len(loaded.splits["val"].ids) < 2:
        raise DataError(
            "the validation split is empty: give --split with a validation fraction (e.g. 0.9,0.1,0), or a longer text"
        )
    return loaded


def normalized(corpus: Corpus, how: str | None) -> Corpus:
    """Each split normalised (text/normalize.py); a run of non-letters cut by a split boundary
    becomes a space on each side, the only difference from normalising before splitting."""
    if how is None:
        return corpus
    return dataclasses.replace(
        corpus,
        train=normalize_text(corpus.train, how),
        val=normalize_text(corpus.val, how),
        test=normalize_text(corpus.test, how),
    )


def _load_prepared(directory: str, tokenizer: Tokenizer | None, names: Sequence[str]) -> LoadedData:
    prepared, arrays, meta = load_prepared(directory)
    if tokenizer is not None and tokenizer.to_dict() != prepared.to_dict():
        raise DataError(f"{directory} was prepared with another tokenizer than this model's")
    splits = {name: TokenSplit(arrays[name], int(meta["chars"][name])) for name in names}
    return LoadedData(prepared, splits, f"{directory} (prepared)", prepared.kind)


class SequentialBatches:
    """N contiguous streams over the tokens, cut into windows of T: the TBPTT layout.

    With n tokens, each stream has L = (n - 1) // N positions; stream r holds inputs
    tokens[r*L : (r+1)*L] and targets shifted by one. Window i is columns [i*T, (i+1)*T).
    `drop_last` drops a final shorter window (training keeps one fixed shape; evaluation keeps all).
    In-memory ids are laid out once on the device (a window is then a view, not a copy per step);
    a memory-mapped array (a prepared dataset) is read one window at a time instead.
    """

    def __init__(
        self,
        ids: np.ndarray | torch.Tensor,
        batch_size: int,
        seq_len: int,
        device: torch.device | str = "cpu",
        drop_last: bool = True,
        rows: slice | None = None,
    ):
        length = (len(ids) - 1) // batch_size
        if length < (seq_len if drop_last else 1):
            need = batch_size * (seq_len if drop_last else 1) + 1
            raise DataError(
                f"the text is too short for one batch: {len(ids)} tokens, need at least "
                f"{need} for batch size {batch_size} x sequence length {seq_len}; "
                "lower --batch-size or --seq-len, or give more text"
            )
        # `rows`: this process's share of the streams under data parallelism (all of them otherwise)
        self.streams = np.arange(batch_size)[rows or slice(None)]
        self.num_streams, self.length, self.seq_len = len(self.streams), length, seq_len
        self.device = torch.device(device)
        self.num_windows = length // seq_len if drop_last else -(-length // seq_len)
        self.mapped = ids if isinstance(ids, np.memmap) else None
        if self.mapped is None:
            ids = torch.as_tensor(ids, dtype=torch.long)
            used = batch_size * length
            self.x = ids[:used].view(batch_size, length)[rows or slice(None)].to(device)
            self.y = ids[1 : used + 1].view(batch_size, length)[rows or slice(None)].to(device)

    def __len__(self) -> int:
        return self.num_windows

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = (index % self.num_windows) * self.seq_len
        if self.mapped is None:
            return self.x[:, start : start + self.seq_len], self.y[:, start : start + self.seq_len]
        width = min(self.seq_len, self.length - start)
        rows = self.streams[:, None] * self.length + start + np.arange(width + 1)
        block = torch.from_numpy(self.mapped[rows].astype(np.int64))
        if self.device.type == "cuda":
            block = block.pin_memory().to(self.device, non_blocking=True)
        return block[:, :-1], block[:, 1:]

    def __iter__(self):
        return (self.window(i) for i in range(self.num_windows))

    @property
    def tokens(self) -> int:
        """Target tokens covered by one pass."""
        return self.num_streams * min(self.length, self.num_windows * self.seq_len)


class RandomBatches:
    """N windows of T tokens at uniformly random offsets; an epoch is as many tokens as the stream."""

    def __init__(
        self,
        ids: np.ndarray | torch.Tensor,
        batch_size: int,
        seq_len: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        rows: slice | None = None,
    ):
        if len(ids) < seq_len + 1:
            raise DataError(
                f"the text is too short for one window: {len(ids)} tokens, need at "
                f"least {seq_len + 1} for sequence length {seq_len}"
            )
        self.mapped = ids if isinstance(ids, np.memmap) else None
        self.ids = None if self.mapped is not None else torch.as_tensor(ids, dtype=torch.long).to(device)
        self.size, self.device = len(ids), torch.device(device)
        self.batch_size, self.seq_len, self.generator = batch_size, seq_len, generator
        self.rows = rows or slice(None)  # every process draws the global batch and keeps its share
        self.num_windows = max(1, (len(ids) - 1) // (batch_size * seq_len))

    def __len__(self) -> int:
        return self.num_windows

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # offsets drawn on the CPU generator (its state is saved for exact resume)
        offsets = torch.randint(0, self.size - self.seq_len, (self.batch_size,), generator=self.generator)[self.rows]
        rows = offsets[:, None] + torch.arange(self.seq_len + 1)
        if self.mapped is not None:
            block = torch.from_numpy(self.mapped[rows.numpy()].astype(np.int64)).to(self.device)
        else:
            assert self.ids is not None, "held in memory whenever the stream is not memory-mapped"
            block = self.ids[rows.to(self.device)]
        return block[:, :-1], block[:, 1:]


def eval_batches(
    ids: np.ndarray, seq_len: int, max_streams: int, min_stream: int = 2048, max_tokens: int | None = None
) -> SequentialBatches:
    """Streams for evaluation: as few as keeps each stream >= `min_stream` tokens long.

    Every stream starts from a zero state and its first tokens are scored with little context, so
    fewer, longer streams give a truer loss; more streams are only for speed on big splits.
    """
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    if len(ids) < 2:
        raise DataError("the evaluation text has fewer than 2 tokens; nothing to predict")
    streams = int(min(max_streams, max(1, (len(ids) - 1) // min_stream)))
    return SequentialBatches(ids, streams, max(seq_len, 1), drop_last=False)
