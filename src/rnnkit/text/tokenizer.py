"""Tokenizers (characters, words, BPE subwords) and the Vocab that maps tokens to ids; saved as
`tokenizer.json`.

Every tokenizer offers the same small interface: `encode(text) -> int64 ids`, `decode(ids)`,
`len()`, `to_dict()`, `start_id()` (where generation begins without a prompt), `unk_id` (the id
of `<unk>`, None where there is none) and `stream_decoder()` (text piece by piece as ids arrive,
for streaming generation).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, PromptError
from .wordscan import WORD_PATTERN, index_pieces, word_types

UNK = "<unk>"
FORMAT = "rnnkit-tokenizer"
FORMAT_VERSION = 1
# Word tokens follow wordscan.WORD_PATTERN; these say where detokenizing puts no space.
NO_SPACE_BEFORE = set(".,;:!?)]}'’\"\n")
NO_SPACE_AFTER = set("([{\n")
# A byte-level BPE unit: a whitespace run (within a line) and the non-space run after it, or a
# line's trailing whitespace. The library's pre-tokenizer never joins text across such a boundary
# (no pre-token holds non-space, then space, then non-space; its one look-ahead, \s+(?!\S), sees
# the same next character inside the unit), so encoding units one by one equals encoding lines.
BPE_UNIT = re.compile(r"[^\S\n]*\S+|[^\S\n]*\n|[^\S\n]+")
# Line breaks other than "\n" that str.splitlines honours (text holding one takes the line path)
LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class Vocab:
    """Ids for tokens, most frequent first; `<unk>` (id 0) stands for every token left out."""

    def __init__(self, tokens: Sequence[str], unk: bool):
        self.has_unk = unk
        self.itos: list[str] = ([UNK] if unk else []) + [t for t in tokens if t != UNK]
        if len(set(self.itos)) != len(self.itos):
            raise CheckpointError("vocabulary lists a token twice")
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_freq: int = 1, max_size: int | None = None, unk: bool = True) -> Vocab:
        """Count tokens and keep those seen `min_freq` times, at most `max_size` ids in all."""
        return cls.from_counts(Counter(tokens), min_freq, max_size, unk)

    @classmethod
    def from_counts(cls, counts: Counter, min_freq: int = 1, max_size: int | None = None, unk: bool = True) -> Vocab:
        # frequency first, then the token itself, so the same text always gives the same ids
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [token for token, count in ordered if count >= min_freq]
        if max_size is not None:
            kept = kept[: max_size - (1 if unk else 0)]
        return cls(kept, unk)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int | None:
        return 0 if self.has_unk else None


class Tokenizer:
    """Splits text into char or word tokens and maps them through a Vocab."""

    def __init__(self, kind: str, vocab: Vocab, lowercase: bool = False):
        if kind not in ("char", "word"):
            raise ConfigError(f"tokenizer must be char or word, got {kind!r}")
        self.kind, self.vocab, self.lowercase = kind, vocab, lowercase

    def split(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return list(text) if self.kind == "char" else WORD_PATTERN.findall(text)

    def count(self, text: str) -> Counter:
        """How often each token occurs in `text` (what a vocabulary is built from)."""
        if self.lowercase:
            text = text.lower()
        if self.kind == "char":
            return Counter(text)
        types, positions = word_types(text)
        return Counter(dict(zip(types, np.bincount(positions, minlength=len(types)).tolist(), strict=True)))

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def unk_id(self) -> int | None:
        return self.vocab.unk_id

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64). Unknown tokens become `<unk>`, or raise PromptError naming them."""
        if self.lowercase:
            text = text.lower()
        if self.kind == "char":
            return self._encode_chars(text)
        types, positions = word_types(text)  # each distinct token is looked up once
        self._refuse_missing(set(types))
        return self.lookup(types)[positions]

    def lookup(self, tokens: Sequence[str]) -> np.ndarray:
        """The id of each token, <unk> (or -1 without one) where the vocabulary lacks it."""
        stoi = self.vocab.stoi
        unk = self.vocab.unk_id if self.vocab.unk_id is not None else -1
        return np.fromiter((stoi.get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def _refuse_missing(self, tokens: set[str]) -> None:
        """Without <unk>, name the tokens the vocabulary lacks instead of encoding them."""
        if self.vocab.unk_id is not None:
            return
        missing = sorted(t for t in tokens if t not in self.vocab.stoi)
        if missing:
            raise PromptError(f"text contains {len(missing)} symbol(s) the vocabulary lacks: {name_tokens(missing)}")

    def _encode_chars(self, text: str) -> np.ndarray:
        """Characters to ids with one table lookup over code points (about 100x a Python loop)."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = self._char_table()
        encoded = table.take(np.minimum(points, table.size - 1))
        if (encoded < 0).any():
            self._refuse_missing({chr(p) for p in np.unique(points[encoded < 0]).tolist()})
            encoded[encoded < 0] = self.vocab.unk_id
        return encoded

    def _char_table(self) -> np.ndarray:
        """Code point -> id, -1 where the vocabulary has no such character; the last entry (-1)
        stands for every code point past the vocabulary's highest. Built once."""
        if getattr(self, "_table", None) is None:
            chars = [c for c in self.vocab.itos if len(c) == 1]
            table = np.full(max((ord(c) for c in chars), default=0) + 2, -1, dtype=np.int64)
            for c in chars:
                table[ord(c)] = self.vocab.stoi[c]
            self._table = table
        return self._table

    def start_id(self) -> int:
        """Where generation starts without a prompt: a newline, else the most frequent token."""
        return self.vocab.stoi.get("\n", 1 if self.vocab.has_unk and len(self) > 1 else 0)

    def stream_decoder(self) -> WordStream:
        return WordStream(self)

    def unknown(self, text: str) -> list[str]:
        """The distinct tokens of `text` that the vocabulary lacks (mapped to <unk> by encode)."""
        return sorted(t for t in self.count(text) if t not in self.vocab.stoi)

    def decode(self, ids: Iterable[int]) -> str:
        pieces: list[str] = []
        previous = None
        for index in ids:
            token = self.vocab.itos[int(index)]
            pieces.append(self.joiner(previous, token) + token)
            previous = token
        return "".join(pieces)

    def joiner(self, previous: str | None, token: str) -> str:
        """What goes between two tokens when decoding: nothing for chars; a space between words
        except around punctuation and newlines (word tokens lose their original spacing)."""
        if self.kind == "char" or previous is None:
            return ""
        if token[0] in NO_SPACE_BEFORE or previous[-1] in NO_SPACE_AFTER:
            return ""
        return " "

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "lowercase": self.lowercase,
            "unk": self.vocab.has_unk,
            "tokens": self.vocab.itos[1:] if self.vocab.has_unk else self.vocab.itos,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: Any) -> Tokenizer:
        _check_header(raw)
        if raw.get("kind") == "bpe":
            return BPETokenizer.from_dict(raw)  # type: ignore[return-value]
        tokens, unk = raw.get("tokens"), raw.get("unk")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise CheckpointError("tokenizer.json: tokens must be a list of non-empty strings")
        if not isinstance(unk, bool) or not isinstance(raw.get("lowercase"), bool):
            raise CheckpointError("tokenizer.json: unk and lowercase must be true or false")
        if raw.get("kind") not in ("char", "word"):
            raise CheckpointError(f"tokenizer.json: unknown kind {raw.get('kind')!r}")
        return cls(raw["kind"], Vocab(tokens, unk), raw["lowercase"])

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError("tokenizer.json is not valid JSON") from None
        return cls.from_dict(raw)


def name_tokens(tokens: Sequence[str], shown: int = 10) -> str:
    """The first `shown` tokens, quoted, and how many more: for messages about missing tokens."""
    more = f" and {len(tokens) - shown} more" if len(tokens) > shown else ""
    return ", ".join(repr(t) for t in tokens[:shown]) + more


class PieceIds:
    """The token ids of each distinct piece, flattened so that a sequence of piece indices turns
    into token ids with array operations: piece p's ids are flat[start[p] : start[p] + length[p]]."""

    def __init__(self, ids: list[list[int]]):
        self.lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.flat = np.fromiter((i for piece in ids for i in piece), dtype=np.int64, count=int(self.lengths.sum()))
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.one_each = bool((self.lengths == 1).all())

    def spread(self, positions: np.ndarray) -> np.ndarray:
        """Token ids of the pieces at `positions`, concatenated."""
        if self.one_each:
            return self.flat[positions]  # the usual case: every piece is one token
        counts = self.lengths[positions]
        first_out = np.cumsum(counts) - counts  # where each occurrence begins in the output
        return self.flat[np.repeat(self.starts[positions] - first_out, counts) + np.arange(int(counts.sum()))]


def _check_header(raw: Any) -> None:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError("tokenizer.json is not an rnnkit tokenizer")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"tokenizer.json has format version {version!r}; this rnnkit reads up to {FORMAT_VERSION} (upgrade rnnkit)"
        )


class WordStream:
    """Char/word ids to text, one piece per id (word tokens get their spacing from `joiner`)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.previous: str | None = None

    def push(self, index: int) -> str:
        token = self.tokenizer.vocab.itos[int(index)]
        piece = self.tokenizer.joiner(self.previous, token) + token
        self.previous = token
        return piece


class BPETokenizer:
    """Byte-level BPE subwords (Hugging Face `tokenizers`): every text encodes, nothing is <unk>.

    The trained model travels inside tokenizer.json as the library's own JSON, so a checkpoint
    decodes exactly as it was trained, with no file beside it.
    """

    kind = "bpe"
    unk_id = None  # byte-level: every text encodes, nothing is <unk>

    def __init__(self, hf: Any, lowercase: bool = False):
        self.hf, self.lowercase = hf, lowercase

    def __len__(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        """Line by line (as trained), but each distinct unit is encoded once: the library runs at
        about 0.5 MB/s per core here, and a corpus repeats its words (5x faster on Shakespeare)."""
        if self.lowercase:
            text = text.lower()
        if LINE_BREAKS.search(text):  # splitlines also breaks at these: encode every line
            lines = text.splitlines(keepends=True) or [""]
            batches = self.hf.encode_batch(lines, add_special_tokens=False)
            return np.fromiter((i for b in batches for i in b.ids), dtype=np.int64)
        distinct, positions = index_pieces(BPE_UNIT.findall(text))
        encoded = self.hf.encode_batch(distinct, add_special_tokens=False)
        return PieceIds([e.ids for e in encoded]).spread(positions)

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def unknown(self, text: str) -> list[str]:
        return []  # byte-level: every character is some sequence of byte tokens

    def start_id(self) -> int:
        newline = self.hf.encode("\n", add_special_tokens=False).ids
        return newline[0] if newline else 0

    def stream_decoder(self) -> BPEStream:
        return BPEStream(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": "bpe",
            "lowercase": self.lowercase,
            "hf": self.hf.to_str(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        if not isinstance(raw.get("hf"), str) or not isinstance(raw.get("lowercase"), bool):
            raise CheckpointError("tokenizer.json: a bpe tokenizer needs its 'hf' model and 'lowercase'")
        try:
            return cls(HFTokenizer.from_str(raw["hf"]), raw["lowercase"])
        except Exception as error:  # the library raises its own exception types
            raise CheckpointError(f"tokenizer.json: the BPE model does not load ({error})") from None

    @classmethod
    def train(cls, text: str, vocab_size: int, lowercase: bool = False) -> BPETokenizer:
        """Learn `vocab_size` byte-level BPE tokens (256 byte tokens plus merges) from `text`."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
        hf.train_from_iterator((text.lower() if lowercase else text).splitlines(keepends=True), trainer)
        return cls(hf, lowercase)


class BPEStream:
    """BPE ids to text: bytes of a character can be split across tokens, so a piece is emitted
    only once it decodes to whole characters."""

    def __init__(self, tokenizer: BPETokenizer):
        self.tokenizer = tokenizer
        self.pending: list[int] = []

    def push(self, index: int) -> str:
        self.pending.append(int(index))
        text = self.tokenizer.decode(self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 8:
            return ""  # an incomplete UTF-8 sequence: wait for the rest
        self.pending = []
        return text


def build_tokenizer(
    kind: str,
    train_text: str,
    other_texts: Sequence[str] = (),
    lowercase: bool = False,
    min_freq: int = 1,
    max_size: int | None = None,
    bpe_vocab: int = 1000,
) -> Tokenizer:
    """A tokenizer whose vocabulary comes from the training text alone.

    Word vocabularies always have `<unk>`. A char vocabulary gets one only when it needs it: when
    min_freq/max_size drop characters, or validation/test text holds characters unseen in training
    (otherwise a prompt with a foreign character is refused by name rather than silently replaced).
    """
    if kind == "bpe":
        return BPETokenizer.train(train_text, bpe_vocab, lowercase)  # type: ignore[return-value]
    probe = Tokenizer(kind, Vocab([], unk=False), lowercase)
    counts = probe.count(train_text)
    if not counts:
        raise ConfigError("the training text holds no tokens")
    unk = kind == "word"
    if kind == "char":
        seen = set(counts)
        dropped = sum(1 for c in counts.values() if c < min_freq) > 0
        too_many = max_size is not None and len(counts) > max_size
        unseen = any(set(probe.count(text)) - seen for text in other_texts)
        unk = dropped or too_many or unseen
    vocab = Vocab.from_counts(counts, min_freq, max_size, unk)
    return Tokenizer(kind, vocab, lowercase)
