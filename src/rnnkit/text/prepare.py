"""`rnnkit prepare`: tokenize a corpus once into memory-mapped token streams.

    OUT/meta.json        format, dtype, token and character counts per split, checksum
    OUT/tokenizer.json   the tokenizer (trained on the training split, or reused)
    OUT/train.bin ...    raw little-endian uint16 (vocabulary <= 65,536) or uint32 token ids

Text is read in chunks of whole lines, so a corpus larger than memory is fine; training reads
the .bin files through np.memmap (`train --data OUT`) and never loads them whole. Char and word
text is tokenized in worker processes, 2 MB at a time (word tokens: see rnnkit.wordscan); BPE
runs the library's own threads. An existing OUT is replaced only once the new one is complete.
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError
from .corpora import BUNDLED, SPLIT_FILES, bundled_text
from .tokenizer import Tokenizer, Vocab, name_tokens
from .wordscan import FirstSeen, word_types

FORMAT = "rnnkit-prepared"
FORMAT_VERSION = 1
CHUNK_BYTES = 8 << 20
JOB_BYTES = 2 << 20  # text per worker job: small jobs keep every worker busy to the end
TYPE_BLOCK = 1 << 22  # type ids mapped to vocabulary ids at a time (word pass 2)
SPLITS = ("train", "val", "test")
WHITESPACE = re.compile(rb"[ \t\n]")


@dataclass(frozen=True)
class Source:
    """A byte range of one file (or a bundled corpus's text) that belongs to one split."""

    path: Path | None  # None: bundled text held in `text`
    start: int
    end: int
    text: str | None = None


def plan_sources(data: list[str], split: tuple[float, float, float]) -> dict[str, list[Source]]:
    """Which bytes go to which split: a directory with train/valid/test files as given; otherwise
    every input joined and cut at the split fractions (moved forward to the next whitespace)."""
    if len(data) == 1 and Path(data[0]).is_dir():
        given = _given_splits(Path(data[0]))
        if given:
            return given
    files = _input_files(data)
    total = sum(size for _, size, _ in files)
    if total == 0:
        raise DataError("the input is empty")
    cuts = [0, round(total * split[0]), round(total * (split[0] + split[1])), total]
    plan: dict[str, list[Source]] = {name: [] for name in SPLITS}
    offset = 0
    for path, size, text in files:
        for name, low, high in zip(SPLITS, cuts, cuts[1:], strict=False):  # consecutive cuts: (0,1), (1,2), (2,3)
            start, end = max(low, offset) - offset, min(high, offset + size) - offset
            if end > start:
                plan[name].append(Source(path, _next_newline(path, text, start), _next_newline(path, text, end), text))
        offset += size
    return plan


def _given_splits(directory: Path) -> dict[str, list[Source]] | None:
    train, val_names, test = SPLIT_FILES
    val = next((directory / n for n in val_names if (directory / n).is_file()), None)
    if not ((directory / train).is_file() and val is not None and (directory / test).is_file()):
        return None
    return {
        name: [Source(path, 0, path.stat().st_size)]
        for name, path in zip(SPLITS, (directory / train, val, directory / test), strict=True)
    }


def _input_files(data: list[str]) -> list[tuple[Path | None, int, str | None]]:
    files: list[tuple[Path | None, int, str | None]] = []
    for item in data:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.glob("*.txt") if p.is_file())
            if not found:
                raise DataError(f"directory {path} holds no .txt files")
            files += [(p, p.stat().st_size, None) for p in found]
        elif path.is_file():
            files.append((path, path.stat().st_size, None))
        elif item in BUNDLED:
            text = bundled_text(item)
            files.append((None, len(text.encode("utf-8")), text))
        else:
            raise DataError(f"no such corpus, file or directory: {item!r}")
    return files


def _next_newline(path: Path | None, text: str | None, position: int) -> int:
    """The byte just after the next whitespace at or after `position`: a split never cuts a word
    (or a character: whitespace bytes never occur inside a UTF-8 sequence)."""
    if position == 0:
        return 0
    if text is not None:
        raw = text.encode("utf-8")
        found = WHITESPACE.search(raw, position) if position < len(raw) else None
        return found.end() if found else len(raw)
    assert path is not None, "a source without text is a file"
    size = path.stat().st_size
    if position >= size:
        return size
    with open(path, "rb") as handle:
        handle.seek(position)
        while block := handle.read(1 << 16):
            found = WHITESPACE.search(block)
            if found:
                return position + found.end()
            position += len(block)
    return size


def read_chunks(source: Source, chunk_bytes: int | None = None) -> Iterator[str]:
    """The source's text in pieces of whole lines where possible, else cut at a space (a chunk
    never ends inside a word or a character)."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    if source.text is not None:
        opened: BinaryIO = io.BytesIO(source.text.encode("utf-8"))
    else:
        assert source.path is not None, "a source without text is a file"
        opened = open(source.path, "rb")
    with opened as handle:
        handle.seek(source.start)
        left, carry = source.end - source.start, b""
        while left > 0:
            block = handle.read(min(chunk_bytes, left))
            if not block:
                break
            left -= len(block)
            block = carry + block
            cut = _last_whitespace(block) if left > 0 else len(block)
            if cut == 0:  # no whitespace in a whole chunk: keep reading
                carry = block
                continue
            carry = block[cut:]
            yield _decode(block[:cut], source)
        if carry:
            yield _decode(carry, source)


def _last_whitespace(block: bytes) -> int:
    """Position just after the block's last newline (else its last space or tab); 0 if none."""
    for separator in (b"\n", b" ", b"\t"):
        cut = block.rfind(separator) + 1
        if cut:
            return cut
    return 0


def _decode(raw: bytes, source: Source) -> str:
    if b"\x00" in raw:
        raise DataError(f"{source.path} looks binary (it contains NUL bytes); give UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{source.path} is not valid UTF-8 (bad byte near offset {source.start + error.start}); convert it first"
        ) from None


def _chunk_tokens(job: tuple[str, str, bool]) -> tuple[str, list[str], np.ndarray, int]:
    """(split, distinct word tokens, each token's index among them, characters) of one chunk: a
    worker's job (see word_types)."""
    name, text, lowercase = job
    types, positions = word_types(text.lower() if lowercase else text)
    return name, types, positions.astype(stream_dtype(len(types))), len(text)


def build_vocabulary(
    plan: dict[str, list[Source]],
    kind: str,
    lowercase: bool,
    min_freq: int,
    max_size: int | None,
    bpe_vocab: int,
    pool: ProcessPoolExecutor | None = None,
) -> Tokenizer:
    """A char or BPE tokenizer from the training split (same rules as build_tokenizer); word
    vocabularies are built while encoding (see _encode_words)."""
    if kind == "bpe":
        from .tokenizer import BPETokenizer

        text = "".join(chunk for source in plan["train"] for chunk in read_chunks(source))
        return BPETokenizer.train(text, bpe_vocab, lowercase)  # type: ignore[return-value]
    train = _char_counts(plan["train"], lowercase, pool)
    if not train:
        raise DataError("the training split holds no tokens")
    others = set(_char_counts(plan["val"] + plan["test"], lowercase, pool))
    dropped = any(count < min_freq for count in train.values())
    unk = dropped or (max_size is not None and len(train) > max_size) or bool(others - set(train))
    return Tokenizer(kind, Vocab.from_counts(train, min_freq, max_size, unk), lowercase)


def _char_counts(sources: list[Source], lowercase: bool, pool: ProcessPoolExecutor | None) -> Counter:
    counts: Counter = Counter()
    jobs = ((chunk, lowercase) for source in sources for chunk in read_chunks(source, JOB_BYTES))
    for histogram in _ordered_map(_code_point_histogram, jobs, pool):
        present = np.flatnonzero(histogram)
        counts.update(dict(zip(map(chr, present.tolist()), histogram[present].tolist(), strict=True)))
    return counts


def _code_point_histogram(job: tuple[str, bool]) -> np.ndarray:
    """How often each code point occurs in a chunk: linear time, no sort (a worker's job)."""
    text, lowercase = job
    return np.bincount(np.frombuffer((text.lower() if lowercase else text).encode("utf-32-le"), dtype=np.uint32))


def _encode_chunk(job: tuple[Any, str]) -> tuple[np.ndarray, int]:
    """(ids in the stream's dtype, characters) of one chunk (a worker's job; the narrow dtype
    also sends a quarter of the bytes back)."""
    tok, text = job
    return tok.encode(text).astype(stream_dtype(len(tok))), len(text)


class TokenTable:
    """Every distinct word token of the corpus, with its count in the training split: the text is
    read once into token-type ids (spilled to disk), and once the counts are complete the types
    are mapped to vocabulary ids (frequency order, <unk>) with one array lookup."""

    def __init__(self) -> None:
        self.index = FirstSeen()
        self.train_counts = np.zeros(0, dtype=np.int64)

    def add(self, distinct: list[str], positions: np.ndarray, is_train: bool) -> np.ndarray:
        """A chunk's type indices made global (uint32); training tokens are counted."""
        local_to_global = np.fromiter(map(self.index.__getitem__, distinct), dtype=np.uint32, count=len(distinct))
        types = local_to_global[positions]
        if is_train:
            counts = np.bincount(types, minlength=len(self.index))
            counts[: self.train_counts.size] += self.train_counts
            self.train_counts = counts
        return types

    def counts(self) -> Counter:
        # types first seen after the last training chunk (only in val/test) have no count: truncate
        return Counter({token: n for token, n in zip(self.index, self.train_counts.tolist(), strict=False) if n})

    def vocabulary_ids(self, tok: Tokenizer) -> np.ndarray:
        """Each type's id under `tok` (<unk> where the vocabulary lacks it; a reused vocabulary
        without <unk> refuses such text, naming the words)."""
        ids = tok.lookup(list(self.index))
        missing = [token for token, i in zip(self.index, ids.tolist(), strict=True) if i < 0]
        if missing:
            raise DataError(
                f"the text holds {len(missing)} word(s) the tokenizer lacks and it has no <unk>: {name_tokens(missing)}"
            )
        return ids


def prepare(
    data: list[str],
    tokenizer: str = "char",
    out: str | Path | None = None,
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
    lowercase: bool = False,
    min_freq: int = 1,
    max_size: int | None = None,
    bpe_vocab: int = 1000,
    tokenizer_from: str | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Tokenize `data` into OUT (see the module docstring); returns the meta.json document."""
    from ..config import DataConfig
    from ..files import check_output_dir

    DataConfig(
        data=data[0] if data else "",
        tokenizer=tokenizer,
        lowercase=lowercase,
        min_freq=min_freq,
        max_size=max_size,
        bpe_vocab=bpe_vocab,
        fractions=fractions,
    )  # the same checks as training
    out = Path(out) if out else Path("prepared") / f"{Path(data[0]).stem}-{tokenizer}"
    plan = plan_sources(data, fractions)
    workers = workers or min(os.cpu_count() or 1, 4)
    tok = load_tokenizer(tokenizer_from) if tokenizer_from else None
    kind = tok.kind if tok is not None else tokenizer
    # worker processes for char and word; BPE runs the library's own threads (a fork after
    # they started would make the library disable them, with a warning)
    with ProcessPoolExecutor(workers) if workers > 1 and kind != "bpe" else nullcontext() as pool:
        if tok is None and kind != "word":
            tok = build_vocabulary(plan, tokenizer, lowercase, min_freq, max_size, bpe_vocab, pool)
        check_output_dir(out, overwrite, marker="meta.json")  # replaced only once the new one is complete
        rules = (tok.lowercase if tok is not None else lowercase, min_freq, max_size)
        return _write_prepared(out, data, plan, tok, rules, pool, log)


def _write_prepared(
    out: Path,
    data: list[str],
    plan: dict[str, list[Source]],
    tok: Any,
    rules: tuple[bool, int, int | None],
    pool: ProcessPoolExecutor | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Encode every split into OUT (written to a temporary directory, renamed into place)."""
    from ..files import write_atomically

    meta: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        nonlocal tok
        if tok is None or tok.kind == "word":
            tok, streams = _encode_words(plan, tok, rules, tmp, pool, log)
        else:
            log(f"vocabulary: {len(tok):,} {tok.kind} tokens")
            chunks = {name: _encoded_chunks(plan[name], tok, pool) for name in SPLITS}
            streams = _write_streams(tok, tmp, chunks, log)
        meta.update(streams)
        (tmp / "tokenizer.json").write_text(tok.to_json(), encoding="utf-8")
        meta.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            tokenizer=tok.kind,
            vocab_size=len(tok),
            sources=[str(d) for d in data],
            bytes={name: sum(s.end - s.start for s in plan[name]) for name in SPLITS},
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    write_atomically(out, write)
    return meta


def _write_streams(
    tok: Any, out: Path, chunks: dict[str, Iterator[tuple[np.ndarray, int]]], log: Callable[[str], None]
) -> dict[str, Any]:
    """Append each split's (ids, characters) chunks to SPLIT.bin; count tokens and characters;
    checksum the bytes."""
    dtype = stream_dtype(len(tok))
    tokens, chars, checksums = {}, {}, {}
    for name in SPLITS:
        n, c, crc = 0, 0, 0
        with open(out / f"{name}.bin", "wb") as handle:
            for ids, length in chunks[name]:
                raw = ids.astype(dtype, copy=False).tobytes()
                handle.write(raw)
                n, c, crc = n + len(ids), c + length, zlib.crc32(raw, crc)
        tokens[name], chars[name], checksums[name] = n, c, crc
        log(f"{name}: {n:,} tokens ({c:,} chars)")
    return {"dtype": np.dtype(dtype).name, "tokens": tokens, "chars": chars, "crc32": checksums}


def stream_dtype(vocab_size: int) -> type:
    """The narrowest unsigned integer that holds every id."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def _encoded_chunks(
    sources: list[Source], tok: Any, pool: ProcessPoolExecutor | None
) -> Iterator[tuple[np.ndarray, int]]:
    """(ids, characters) per chunk, in order."""
    jobs = ((tok, chunk) for source in sources for chunk in read_chunks(source, JOB_BYTES if pool else None))
    return _ordered_map(_encode_chunk, jobs, pool)


def _encode_words(
    plan: dict[str, list[Source]],
    tok: Tokenizer | None,
    rules: tuple[bool, int, int | None],
    out: Path,
    pool: ProcessPoolExecutor | None,
    log: Callable[[str], None],
) -> tuple[Tokenizer, dict[str, Any]]:
    """Word streams in one reading of the text: pass 1 (worker processes) turns each chunk into
    token-type ids, spilled to SPLIT.types; the vocabulary comes from the training split's counts
    (unless `tok` is given); pass 2 maps type ids to vocabulary ids with one array lookup."""
    lowercase, min_freq, max_size = rules
    table, chars = TokenTable(), dict.fromkeys(SPLITS, 0)
    jobs = (
        (name, chunk, lowercase) for name in SPLITS for source in plan[name] for chunk in read_chunks(source, JOB_BYTES)
    )
    with ExitStack() as files:
        spills = {name: files.enter_context(open(out / f"{name}.types", "wb")) for name in SPLITS}
        for name, distinct, positions, length in _ordered_map(_chunk_tokens, jobs, pool):
            spills[name].write(table.add(distinct, positions, name == "train").tobytes())
            chars[name] += length
    if tok is None:
        counts = table.counts()
        if not counts:
            raise DataError("the training split holds no tokens")
        tok = Tokenizer("word", Vocab.from_counts(counts, min_freq, max_size, unk=True), lowercase)
    log(f"vocabulary: {len(tok):,} word tokens")
    lookup: np.ndarray = table.vocabulary_ids(tok).astype(stream_dtype(len(tok)))  # pass 2 gathers the final dtype
    chunks = {name: _spilled_ids(out / f"{name}.types", lookup, chars[name]) for name in SPLITS}
    return tok, _write_streams(tok, out, chunks, log)


def _ordered_map(
    function: Callable[[Any], Any], jobs: Iterator[Any], pool: ProcessPoolExecutor | None
) -> Iterator[Any]:
    """function(job) for every job, in order; with a pool, two jobs per worker in flight, so the
    workers never wait for a whole batch and this process reads the next chunk meanwhile."""
    if pool is None:
        yield from map(function, jobs)
        return
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.submit(function, job))
        # the executor keeps its size only in this private attribute (stable since Python 3.2)
        if len(pending) >= 2 * pool._max_workers:  # type: ignore[attr-defined]
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _spilled_ids(path: Path, lookup: np.ndarray, chars: int) -> Iterator[tuple[np.ndarray, int]]:
    """Vocabulary ids from a spilled type-id file, a block at a time; the file is removed after.
    Characters were counted in pass 1, so they come with a last, empty block."""
    with open(path, "rb") as handle:
        while (types := np.fromfile(handle, dtype=np.uint32, count=TYPE_BLOCK)).size:
            yield lookup[types], 0
    yield np.zeros(0, dtype=np.int64), chars
    path.unlink()


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a checkpoint, run directory, prepared directory, or a tokenizer.json file."""
    from ..errors import CheckpointError
    from ..files import resolve_checkpoint

    path = Path(path).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    elif path.is_dir():
        path = resolve_checkpoint(path) / "tokenizer.json"
    try:
        return Tokenizer.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"cannot read a tokenizer from {path}") from None


def is_prepared(path: str | Path) -> bool:
    return (Path(path) / "meta.json").is_file()


def load_prepared(path: str | Path) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """(tokenizer, {split: read-only memmap of ids}, meta) of a prepared directory."""
    directory = Path(path)
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{directory / 'meta.json'} is unreadable") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version", 99) > FORMAT_VERSION:
        raise DataError(f"{directory} is not a prepared rnnkit dataset this version can read")
    tokenizer = load_tokenizer(directory)
    arrays = {}
    for name in SPLITS:
        count = int(meta["tokens"][name])
        file = directory / f"{name}.bin"
        if not file.is_file() or file.stat().st_size != count * np.dtype(meta["dtype"]).itemsize:
            raise DataError(f"{file} is missing or its size does not match meta.json")
        arrays[name] = (
            np.memmap(file, dtype=meta["dtype"], mode="r", shape=(count,))
            if count
            else np.zeros(0, dtype=meta["dtype"])
        )
    return tokenizer, arrays, meta
