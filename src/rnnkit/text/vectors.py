"""Pretrained word vectors (word2vec, GloVe) for `--embed-from`: read them, match them to a vocabulary.

Formats, told apart by the file itself:

* **text** (GloVe; word2vec's text output): one vector a line, `word v_1 ... v_D`, separated by
  spaces; word2vec's text output starts with a header line `COUNT D`, GloVe's has none.
* **word2vec binary** (a `.bin` file): the header line `COUNT D`, then for each vector the word,
  a space, and D little-endian float32 values (and, in most writers, a newline).

A file that contradicts itself is refused with one line: vectors of different sizes, a header
whose count or size the vectors do not have, a value that is not a number, a truncated binary.
Nothing is downloaded: the file is given.

Matching: a vocabulary token takes the vector of the same string, or else (GloVe is lowercase)
of its lowercased form; the rest keep the model's own random initialisation. `coverage` says how
much of the vocabulary, and of the training text, got a vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Vectors:
    words: list[str]
    matrix: np.ndarray  # (count, D) float32
    kind: str  # "text" or "word2vec-binary"

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def read_vectors(path: str | Path) -> Vectors:
    """Read a vectors file (format from its content and a `.bin` suffix); DataError if it lies."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--embed-from: {path} is not a file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"--embed-from: {path} is empty")
    if path.suffix == ".bin":
        return _read_binary(path, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--embed-from: {path} is not UTF-8 text; a word2vec binary file must end in .bin") from None
    return _read_text(path, text)


def _header(line: str) -> tuple[int, int] | None:
    """(count, dim) if the line is a word2vec header `COUNT D`, else None."""
    parts = line.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _read_text(path: Path, text: str) -> Vectors:
    lines = [line for line in text.splitlines() if line.strip()]
    header = _header(lines[0])
    if header is not None:
        lines = lines[1:]
    words, rows, dim = [], [], None
    for number, line in enumerate(lines, 2 if header else 1):
        word, *values = line.split()
        if dim is None:
            dim = len(values)
            if dim == 0:
                raise DataError(f"--embed-from: {path} line {number} holds a word and no vector")
        if len(values) != dim:
            raise DataError(
                f"--embed-from: {path} line {number} has a vector of {len(values)} values, the "
                f"ones before have {dim}: every vector must have the same size"
            )
        try:
            rows.append([float(value) for value in values])
        except ValueError:
            raise DataError(f"--embed-from: {path} line {number} holds a value that is not a number") from None
        words.append(word)
    if header is not None and header != (len(words), dim):
        raise DataError(
            f"--embed-from: {path}'s header says {header[0]} vectors of {header[1]} values, but the "
            f"file holds {len(words)} of {dim}"
        )
    if not words:
        raise DataError(f"--embed-from: {path} holds no vectors")
    return Vectors(words, np.asarray(rows, dtype=np.float32), "text")


def _read_binary(path: Path, raw: bytes) -> Vectors:
    newline = raw.find(b"\n")
    header = _header(raw[:newline].decode("ascii", "replace")) if newline > 0 else None
    if header is None:
        raise DataError(f"--embed-from: {path} (.bin) does not start with a word2vec header line 'COUNT DIM'")
    count, dim = header
    if count < 1 or dim < 1:
        raise DataError(f"--embed-from: {path}'s header says {count} vectors of {dim} values")
    position, words, matrix = newline + 1, [], np.empty((count, dim), dtype=np.float32)
    for index in range(count):
        while position < len(raw) and raw[position : position + 1] in (b"\n", b" "):
            position += 1  # the newline most writers put after each vector
        space = raw.find(b" ", position)
        end = space + 1 + 4 * dim
        if space < 0 or end > len(raw):
            raise DataError(
                f"--embed-from: {path}'s header says {count} vectors of {dim} values, but the file ends after {index}"
            )
        words.append(raw[position:space].decode("utf-8", "replace"))
        matrix[index] = np.frombuffer(raw, dtype="<f4", count=dim, offset=space + 1)
        position = end
    if raw[position:].strip():
        raise DataError(f"--embed-from: {path} holds more than the {count} vectors of {dim} values its header says")
    return Vectors(words, matrix, "word2vec-binary")


@dataclass(frozen=True)
class Match:
    """Which vocabulary ids got a vector: `ids` (k,) and their vectors `matrix` (k, D)."""

    ids: np.ndarray
    matrix: np.ndarray
    vocab_size: int
    token_coverage: float  # the share of the training tokens whose id got a vector

    def summary(self, path: str) -> str:
        share = len(self.ids) / max(1, self.vocab_size)
        return (
            f"embed-from {path}: {len(self.ids):,} of {self.vocab_size:,} vocabulary tokens have a vector "
            f"({share:.1%}; {self.token_coverage:.1%} of the training tokens); the others keep their "
            f"random initialisation"
        )


def match_vocabulary(vectors: Vectors, tokens: Sequence[str], train_ids: np.ndarray) -> Match:
    """The vector of each vocabulary token (exact string first, then lowercased), and the coverage."""
    index: dict[str, int] = {}
    for row, word in enumerate(vectors.words):
        index.setdefault(word, row)  # a repeated word: the first vector counts
    ids, rows = [], []
    for token_id, token in enumerate(tokens):
        position = index.get(token, index.get(token.lower()))
        if position is not None:
            ids.append(token_id)
            rows.append(position)
    ids_array = np.asarray(ids, dtype=np.int64)
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=len(tokens))
    covered = counts[ids_array].sum() / max(1, counts.sum())
    return Match(
        ids_array,
        vectors.matrix[np.asarray(rows, dtype=np.int64)].reshape(len(ids), vectors.dim),
        len(tokens),
        float(covered),
    )
