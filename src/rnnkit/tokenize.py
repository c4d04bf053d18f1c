"""Tokenizers (characters, words) and the Vocab that maps tokens to ids; saved as `tokenizer.json`."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import CheckpointError, ConfigError, PromptError

UNK = "<unk>"
FORMAT = "rnnkit-tokenizer"
FORMAT_VERSION = 1
# A word is letters/digits with inner apostrophes ("don't"); every other visible symbol is a token
# of its own; newlines are kept as tokens so generated text keeps its line structure.
WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]|\n")
NO_SPACE_BEFORE = set(".,;:!?)]}'’\"\n")
NO_SPACE_AFTER = set("([{\n")


class Vocab:
    """Ids for tokens, most frequent first; `<unk>` (id 0) stands for every token left out."""

    def __init__(self, tokens: Sequence[str], unk: bool):
        self.has_unk = unk
        self.itos: list[str] = ([UNK] if unk else []) + [t for t in tokens if t != UNK]
        if len(set(self.itos)) != len(self.itos):
            raise CheckpointError("vocabulary lists a token twice")
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_freq: int = 1, max_size: int | None = None,
              unk: bool = True) -> "Vocab":
        """Count tokens and keep those seen `min_freq` times, at most `max_size` ids in all."""
        return cls.from_counts(Counter(tokens), min_freq, max_size, unk)

    @classmethod
    def from_counts(cls, counts: Counter, min_freq: int = 1, max_size: int | None = None,
                    unk: bool = True) -> "Vocab":
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

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64). Unknown tokens become `<unk>`, or raise PromptError naming them."""
        pieces = self.split(text)
        stoi = self.vocab.stoi
        unk = self.vocab.unk_id
        if unk is None:
            missing = sorted({p for p in pieces if p not in stoi})
            if missing:
                shown = ", ".join(repr(m) for m in missing[:10])
                more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
                raise PromptError(f"text contains {len(missing)} symbol(s) the vocabulary lacks: {shown}{more}")
        return np.fromiter((stoi.get(p, unk) for p in pieces), dtype=np.int64, count=len(pieces))

    def unknown(self, text: str) -> list[str]:
        """The distinct tokens of `text` that the vocabulary lacks (mapped to <unk> by encode)."""
        return sorted({p for p in self.split(text) if p not in self.vocab.stoi})

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
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                "lowercase": self.lowercase, "unk": self.vocab.has_unk,
                "tokens": self.vocab.itos[1:] if self.vocab.has_unk else self.vocab.itos}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: Any) -> "Tokenizer":
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CheckpointError("tokenizer.json is not an rnnkit tokenizer")
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"tokenizer.json has format version {version!r}; this rnnkit reads "
                                  f"up to {FORMAT_VERSION} (upgrade rnnkit)")
        tokens, unk = raw.get("tokens"), raw.get("unk")
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise CheckpointError("tokenizer.json: tokens must be a list of non-empty strings")
        if not isinstance(unk, bool) or not isinstance(raw.get("lowercase"), bool):
            raise CheckpointError("tokenizer.json: unk and lowercase must be true or false")
        if raw.get("kind") not in ("char", "word"):
            raise CheckpointError(f"tokenizer.json: unknown kind {raw.get('kind')!r}")
        return cls(raw["kind"], Vocab(tokens, unk), raw["lowercase"])

    @classmethod
    def from_json(cls, text: str) -> "Tokenizer":
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError("tokenizer.json is not valid JSON") from None
        return cls.from_dict(raw)


def build_tokenizer(kind: str, train_text: str, other_texts: Sequence[str] = (), lowercase: bool = False,
                    min_freq: int = 1, max_size: int | None = None) -> Tokenizer:
    """A tokenizer whose vocabulary comes from the training text alone.

    Word vocabularies always have `<unk>`. A char vocabulary gets one only when it needs it: when
    min_freq/max_size drop characters, or validation/test text holds characters unseen in training
    (otherwise a prompt with a foreign character is refused by name rather than silently replaced).
    """
    probe = Tokenizer(kind, Vocab([], unk=False), lowercase)
    counts = Counter(probe.split(train_text))
    if not counts:
        raise ConfigError("the training text holds no tokens")
    unk = kind == "word"
    if kind == "char":
        seen = set(counts)
        dropped = sum(1 for c in counts.values() if c < min_freq) > 0
        too_many = max_size is not None and len(counts) > max_size
        unseen = any(set(probe.split(text)) - seen for text in other_texts)
        unk = dropped or too_many or unseen
    vocab = Vocab.from_counts(counts, min_freq, max_size, unk)
    return Tokenizer(kind, vocab, lowercase)
