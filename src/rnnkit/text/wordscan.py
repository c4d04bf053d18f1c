"""Word tokens of text found with array operations: WORD_PATTERN's tokens, token for token, at
3-6x the regex's speed (see README, "More measured figures"). Word encoding,
counting and `rnnkit prepare --tokenizer word` are built on it.

WORD_PATTERN is  \\w+(?:['’]\\w+)*  |  [^\\w\\s]  |  \\n.  Its rules only look at one character
and its neighbours: a word character is what the regex calls \\w (str.isalnum, or "_"); an
apostrophe (' or ’) is part of a word when word characters stand on both sides of it; every other
character that is not whitespace (\\s, str.isspace) is a token of its own, as is a newline; the
rest of whitespace only separates tokens. So each character gets a class from a table (ASCII
text: one per byte; other text: one per code point), and token bounds come from comparing each
class with its neighbours'.

Distinct tokens are found without sorting, from the UTF-8 bytes: a token of at most 8 bytes *is*
a uint64 (its bytes, zero-padded; exact, so nothing can collide) and those numbers go through a
NumPy hash table; a longer token is keyed by the pair (number of its first 8 bytes, number of
the rest), numbered the same way.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

# A word is a run of word characters, joined across an apostrophe between two of them; any other
# visible character is a token by itself; a newline is a token (it carries layout); spaces separate.
WORD_PATTERN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]|\n")

SPACE, WORD, SYMBOL, NEWLINE, APOSTROPHE = range(5)
KEY_BYTES = 8  # a uint64
LONGEST_KEYED = 8 * KEY_BYTES  # longer tokens are numbered by a dict (number_spans nests 8 deep at most)
# KEY_MASK[n] keeps the first n bytes of a little-endian uint64 read at a token's start
KEY_MASK = np.array([(1 << (8 * n)) - 1 for n in range(KEY_BYTES + 1)], dtype=np.uint64)
FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: spreads keys over the table
BMP = 0x10000  # code points below this get their class from one table; the rest one by one
WORD_CHARACTER = re.compile(r"\w")
CHUNK_CHARS = 1 << 21  # the piece size at which the array pass ran fastest here (2 MB of English)


def character_class(char: str) -> int:
    """The class of one character under WORD_PATTERN (the regex's own \\w decides words)."""
    if char == "\n":
        return NEWLINE
    if char in "'’":
        return APOSTROPHE
    if char.isspace():  # the regex's \s
        return SPACE
    return WORD if WORD_CHARACTER.fullmatch(char) else SYMBOL


class FirstSeen(dict):
    """key -> its index in order of first appearance (a missing key gets the next index)."""

    def __missing__(self, key: str) -> int:
        value = self[key] = len(self)
        return value


def index_pieces(pieces: list[str]) -> tuple[list[str], np.ndarray]:
    """(distinct pieces in order of first appearance, the index of every piece among them)."""
    index = FirstSeen()
    positions = np.fromiter(map(index.__getitem__, pieces), dtype=np.int64, count=len(pieces))
    return list(index), positions


@cache
def class_table() -> np.ndarray:
    """The class of every code point of the Basic Multilingual Plane (built once, about 50 ms)."""
    return np.array([character_class(chr(c)) for c in range(BMP)], dtype=np.uint8)


def word_types(text: str) -> tuple[list[str], np.ndarray]:
    """(distinct word tokens of `text`, the index among them of every token in order). The order
    of the distinct tokens is arbitrary but deterministic. Long text goes in pieces of about
    CHUNK_CHARS cut after whitespace (no token crosses whitespace): the working arrays are sized
    by the piece, not the text (33.5 MB of Shakespeare: peak memory of building a vocabulary and
    encoding 696 -> 318 MB, time 2.4 -> 1.7 s)."""
    if len(text) <= CHUNK_CHARS:
        return _chunk_types(text)
    index, parts = FirstSeen(), []
    for piece in whitespace_pieces(text, CHUNK_CHARS):
        distinct, ids = _chunk_types(piece)
        parts.append(np.fromiter(map(index.__getitem__, distinct), dtype=np.int64, count=len(distinct))[ids])
    return list(index), np.concatenate(parts)


def whitespace_pieces(text: str, size: int):
    """`text` in consecutive pieces of about `size` characters, each ending just after a space or
    newline (or at the end of the text)."""
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut < 0:  # no break in a whole piece: go on to the next one
                found = [i for i in (text.find(" ", end), text.find("\n", end)) if i >= 0]
                cut = min(found) if found else len(text) - 1
            end = cut + 1
        yield text[start:end]
        start = end


def _chunk_types(text: str) -> tuple[list[str], np.ndarray]:
    if "\x00" in text:  # a NUL token's key would be 0, the hash table's empty slot
        return index_pieces(WORD_PATTERN.findall(text))
    raw = text.encode("utf-8", "surrogatepass")
    if raw.isascii():  # a byte is a character
        starts, ends = _token_bounds(class_table().take(np.frombuffer(raw, dtype=np.uint8)))
    else:
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts, ends = _token_bounds(_point_classes(points))
        offsets = _byte_offsets(points)
        starts, ends = offsets[starts], offsets[ends]
    ids, count = _number_tokens(raw, starts, ends)
    where = np.empty(count, dtype=np.int64)
    where[ids] = np.arange(ids.size)  # one occurrence of each distinct token (any will do)
    spans = zip(starts[where].tolist(), ends[where].tolist(), strict=True)
    distinct = [raw[s:e].decode("utf-8", "surrogatepass") for s, e in spans]
    return distinct, ids


def _number_tokens(raw: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, int]:
    """(the index of each token among the distinct ones, how many are distinct). Tokens up to
    LONGEST_KEYED bytes are numbered by their bytes in arrays (number_spans); longer ones (a URL,
    a base64 blob, a long run of one letter: rare) by a dict, so the key pairs nest only so deep."""
    lengths = ends - starts
    keyed = lengths <= LONGEST_KEYED
    if keyed.all():
        return number_spans(_windows(raw), starts, lengths)
    ids = np.empty(starts.size, dtype=np.int64)
    keyed_ids, count = number_spans(_windows(raw), starts[keyed], lengths[keyed])
    ids[keyed] = keyed_ids
    spelled = FirstSeen()
    rest = zip(starts[~keyed].tolist(), ends[~keyed].tolist(), strict=True)
    ids[~keyed] = count + np.fromiter((spelled[raw[s:e]] for s, e in rest), dtype=np.int64, count=int((~keyed).sum()))
    return ids, count + len(spelled)


def _point_classes(points: np.ndarray) -> np.ndarray:
    """The class of every code point: a table lookup, and one call per distinct point past the
    BMP (emoji, historic scripts: rare)."""
    classes = class_table().take(np.minimum(points, BMP - 1))
    beyond = np.flatnonzero(points >= BMP)
    if beyond.size:
        distinct, where = np.unique(points[beyond], return_inverse=True)
        own = np.array([character_class(chr(p)) for p in distinct.tolist()], dtype=np.uint8)
        classes[beyond] = own[where]
    return classes


def _byte_offsets(points: np.ndarray) -> np.ndarray:
    """Where each code point's UTF-8 bytes begin, and the total at the end (1 to 4 bytes each;
    a lone surrogate takes 3, as "surrogatepass" writes it)."""
    sizes = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= BMP)
    offsets = np.zeros(points.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _windows(raw: bytes) -> np.ndarray:
    """A little-endian uint64 starting at every byte of `raw` (zero-padded past its end): one
    read gives the first 8 bytes of a token."""
    padded = np.frombuffer(raw + bytes(KEY_BYTES), dtype=np.uint8)
    return np.ndarray(shape=(len(raw),), dtype="<u8", buffer=padded, strides=(1,))


def number_spans(windows: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """(the index of each byte span among the distinct spans, how many are distinct). A span's
    first 8 bytes are its key; a longer span is keyed by (index of its first 8 bytes, index of
    the rest), numbered the same way among the longer spans only (spans are under 4 GiB, so an
    index fits in 32 bits)."""
    heads, ids = number_keys(windows[starts] & KEY_MASK[np.minimum(lengths, KEY_BYTES)])
    longer = np.flatnonzero(lengths > KEY_BYTES)
    if not longer.size:
        return ids, heads.size
    rest, _ = number_spans(windows, starts[longer] + KEY_BYTES, lengths[longer] - KEY_BYTES)
    pairs = ((ids[longer].astype(np.uint64) + np.uint64(1)) << np.uint64(32)) | (rest.astype(np.uint64) + np.uint64(1))
    combined, pair_ids = number_keys(pairs)  # 0 is an empty slot: hence the + 1s
    ids[longer] = heads.size + pair_ids  # a short span keeps its head's index
    used = np.zeros(heads.size + combined.size, dtype=bool)
    used[ids] = True  # heads seen only at the start of longer spans are left unused: close the gaps
    dense = np.cumsum(used) - 1
    return dense[ids], int(dense[-1]) + 1


def _token_bounds(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every token, in characters, from the class of each character."""
    word = classes == WORD
    apostrophe = classes == APOSTROPHE
    joined = np.zeros_like(word)
    # \w+(?:['’]\w+)*: an apostrophe between word characters joins them
    joined[1:-1] = apostrophe[1:-1] & word[:-2] & word[2:]
    word |= joined
    alone = (classes == SYMBOL) | (classes == NEWLINE) | (apostrophe & ~joined)
    before, after = np.zeros_like(word), np.zeros_like(word)
    before[1:], after[:-1] = word[:-1], word[1:]
    starts = np.flatnonzero(alone | (word & ~before))
    ends = np.flatnonzero(alone | (word & ~after)) + 1
    return starts, ends


def number_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct nonzero uint64 keys, the index of each key among them): np.unique's answer in
    hash order, about 10x faster (no sort). Open addressing with linear probing, all keys of a
    round at once; the table starts small and grows if the probes run long."""
    most = max(10, (2 * keys.size).bit_length())  # over 2x the keys: probing must end
    bits = min(most, max(10, keys.size.bit_length() - 2))
    while True:
        numbered = _hash_table(keys, bits, max_rounds=None if bits >= most else 32)
        if numbered is not None:
            return numbered
        bits = min(most, bits + 2)


def _hash_table(keys: np.ndarray, bits: int, max_rounds: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    size = 1 << bits
    table = np.zeros(size, dtype=np.uint64)
    slots = ((keys * FIBONACCI) >> np.uint64(64 - bits)).astype(np.intp)
    table[slots] = keys  # the first round writes every key: the table is empty
    pending = np.flatnonzero(table[slots] != keys)  # lost its slot to another key: probe on
    rounds = 0
    while pending.size:
        rounds += 1
        if max_rounds is not None and rounds > max_rounds:
            return None
        # all copies of a key probe together, so a key settles in one slot
        probe = (slots[pending] + 1) & (size - 1)
        slots[pending] = probe
        waiting = keys[pending]
        free = table[probe] == 0
        table[probe[free]] = waiting[free]
        pending = pending[table[probe] != waiting]
    occupied = np.flatnonzero(table)
    index = np.zeros(size, dtype=np.int64)
    index[occupied] = np.arange(occupied.size)
    return table[occupied], index[slots]
