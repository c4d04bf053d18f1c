"""Bundled corpora and the user's own text: one place that turns `--data` into train/val/test text.

`--data` is a bundled corpus name, a UTF-8 text file, or a directory. A directory holding
`train.txt`, `valid.txt` (or `val.txt`) and `test.txt` (the Penn Treebank / WikiText layout) is
used as those three splits; any other directory's `.txt` files are joined in sorted order.
Everything else is split contiguously (no shuffling: text is a sequence, and shuffled splits
would leak the validation text into training through overlapping context).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import DataError

TOY_SENTENCE = "you say goodbye and I say hello."
TOY_REPEATS = 200
BUNDLED = {
    "timemachine": "The Time Machine by H. G. Wells (1898), Project Gutenberg",
    "tinyshakespeare": "Tiny Shakespeare: 40,000 lines of Shakespeare plays (char-rnn's corpus)",
    "toy": f"the sentence '{TOY_SENTENCE}' repeated {TOY_REPEATS} times",
}
SPLIT_FILES = ("train.txt", ("valid.txt", "val.txt"), "test.txt")


@dataclass(frozen=True)
class Corpus:
    """Three contiguous pieces of one text (or three given files) and where they came from."""

    name: str
    train: str
    val: str
    test: str
    given_splits: bool = False  # True when the splits came as three files, not by --split

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def bundled_text(name: str) -> str:
    """The full text of a bundled corpus."""
    if name == "toy":
        return " ".join([TOY_SENTENCE] * TOY_REPEATS)
    if name not in BUNDLED:
        raise DataError(f"no bundled corpus named {name!r}; bundled: {', '.join(BUNDLED)}")
    # one name per joinpath: Traversable.joinpath takes a single child before Python 3.11
    return resources.files("rnnkit.text").joinpath("bundled").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file, refusing what is not text with a message that says what it is."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if b"\x00" in raw:
        raise DataError(f"{path} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not valid UTF-8 (bad byte at offset {error.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if not text.strip():
        raise DataError(f"{path} is empty (or only whitespace)")
    return text


def load_corpus(data: str, split: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> Corpus:
    """Resolve `--data` (bundled name, file or directory) into a Corpus."""
    path = Path(data).expanduser()
    if path.is_dir():
        return _load_directory(path, split)
    if path.is_file():
        return split_corpus(path.name, read_text_file(path), split)
    if data in BUNDLED:
        return split_corpus(data, bundled_text(data), split)
    raise DataError(f"no such corpus, file or directory: {data!r} (bundled corpora: {', '.join(BUNDLED)})")


def _load_directory(path: Path, split: tuple[float, float, float]) -> Corpus:
    train, val_names, test = SPLIT_FILES
    val = next((path / name for name in val_names if (path / name).is_file()), None)
    if (path / train).is_file() and val is not None and (path / test).is_file():
        return Corpus(
            path.name, read_text_file(path / train), read_text_file(val), read_text_file(path / test), given_splits=True
        )
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"directory {path} holds no .txt files")
    return split_corpus(path.name, "\n".join(read_text_file(f) for f in files), split)


def split_corpus(name: str, text: str, split: tuple[float, float, float]) -> Corpus:
    """Cut `text` into contiguous train/val/test pieces of the given fractions.

    A cut point moves forward to the next whitespace (within 200 characters) so that a word is
    never cut in two, which would put half-words into a word-level vocabulary.
    """
    n = len(text)
    first = _cut_point(text, round(n * split[0]))
    second = _cut_point(text, max(first, round(n * (split[0] + split[1]))))
    if split[2] == 0:
        second = n
    if split[1] == 0:
        second = first if split[2] > 0 else n
    return Corpus(name, text[:first], text[first:second], text[second:])


def _cut_point(text: str, index: int) -> int:
    for position in range(index, min(len(text), index + 200)):
        if text[position].isspace():
            return position
    return min(index, len(text))


def describe_bundled() -> list[dict[str, object]]:
    """Name, size and character vocabulary of each bundled corpus (for `rnnkit corpora`), and for
    char and word tokens: the training split's tokens (default split) and the batch shape that
    fits them (the default one, or the largest batch size at the default sequence length)."""
    from ..config import DataConfig
    from .wordscan import word_types

    defaults = DataConfig()
    rows = []
    for name, description in BUNDLED.items():
        text = bundled_text(name)
        train = split_corpus(name, text, defaults.fractions).train
        tokens = {"char": len(train), "word": len(word_types(train)[1])}
        rows.append(
            {
                "name": name,
                "chars": len(text),
                "words": len(text.split()),
                "char_vocab": len(set(text)),
                "description": description,
                "train_tokens": tokens,
                "batch_fits": {
                    kind: fitting_batch(n, defaults.batch_size, defaults.seq_len) for kind, n in tokens.items()
                },
            }
        )
    return rows


def fitting_batch(tokens: int, batch_size: int, seq_len: int) -> dict[str, int]:
    """The batch shape {batch_size, seq_len} that `tokens` training tokens can fill: the one given
    if it fits, else the largest batch size at this sequence length, else a shorter sequence
    length at batch size 1. Sequential batching cuts the tokens into batch_size streams of
    (tokens - 1) // batch_size positions, and needs at least one window of seq_len in each
    (data.SequentialBatches)."""
    per_stream = (tokens - 1) // batch_size
    if per_stream >= seq_len:
        return {"batch_size": batch_size, "seq_len": seq_len}
    if (tokens - 1) // seq_len >= 1:
        return {"batch_size": (tokens - 1) // seq_len, "seq_len": seq_len}
    return {"batch_size": 1, "seq_len": max(1, tokens - 1)}
