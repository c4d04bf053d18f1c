"""Simple features of a text, one value per token, computed from the text alone: what an
interpretable unit might track (Karpathy, Johnson & Fei-Fei 2015 found LSTM cells for quotes,
line length and bracket depth).

Each feature is first computed per character of the text, then read at the LAST character of each
token (a char model: the character itself), because a unit's value after reading a token is what
is compared with it. Word and subword models also get `sentence_position`, counted in tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..text.wordscan import WORD_PATTERN

# feature name -> what it measures (shown in the report)
CHAR_FEATURES = {
    "inside_quotes": 'inside double quotes ("..." or \u201c...\u201d)',
    "inside_single_quotes": "inside single quotes on this line ('...')",
    "inside_brackets": "inside (), [] or {}",
    "bracket_depth": "how many (, [, { are open",
    "line_position": "characters since the last newline",
    "to_line_end": "characters to the next newline",
    "indent": "leading spaces of this line",
    "inside_word": "a letter, digit or _",
    "after_newline": "the first character of a line",
    "uppercase": "an uppercase letter",
    "digit": "a digit",
}
WORD_FEATURES = {"sentence_position": "tokens since the last . ! or ?"}
SENTENCE_ENDS = {".", "!", "?"}


@dataclass
class TokenText:
    """A text as the model reads it: the token pieces, and where each one ends in `text`."""

    text: str  # what the features are computed on (lowercased when the tokenizer lowercases)
    pieces: list[str]  # each token's text (a word with the spaces before it), for display
    ends: np.ndarray  # (T,) index in `text` of each token's last character


def token_text(tokenizer, text: str, count: int) -> TokenText:
    """Pieces and character positions of the `count` tokens that `tokenizer.encode(text)` gave."""
    if getattr(tokenizer, "lowercase", False):
        text = text.lower()
    kind = getattr(tokenizer, "kind", "")
    if kind == "char":
        pieces = list(text)
        ends = np.arange(len(pieces), dtype=np.int64)
    elif kind == "word":
        ends = np.fromiter((m.end() - 1 for m in WORD_PATTERN.finditer(text)), dtype=np.int64)
        # each word with the spaces before it, so that the pieces laid end to end are the text
        starts = np.concatenate(([0], ends[:-1] + 1))
        pieces = [text[a : b + 1] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    else:  # subwords: the decoded pieces laid end to end (byte-level BPE decodes to the text itself)
        return _joined_pieces(tokenizer, text, count)
    if len(pieces) < count:  # the tokenizer split differently: fall back on decoded pieces
        return _joined_pieces(tokenizer, text, count)
    return TokenText(text, pieces[:count], ends[:count])  # `count` < all: --max-tokens


def _joined_pieces(tokenizer, text: str, count: int) -> TokenText:
    ids = tokenizer.encode(text)[:count]
    pieces = [tokenizer.decode([int(i)]) or " " for i in ids]
    ends = np.cumsum([len(p) for p in pieces]) - 1
    return TokenText("".join(pieces), pieces, ends.astype(np.int64))


def feature_names(word_level: bool) -> list[str]:
    return list(CHAR_FEATURES) + (list(WORD_FEATURES) if word_level else [])


def describe(name: str) -> str:
    return {**CHAR_FEATURES, **WORD_FEATURES}[name]


def token_features(tokens: TokenText, word_level: bool) -> tuple[list[str], np.ndarray]:
    """(names, (T, F) float32): every feature, per token."""
    per_char = char_features(tokens.text)
    names = list(per_char)
    columns = [per_char[name][tokens.ends] for name in names]
    if word_level:
        names.append("sentence_position")
        columns.append(sentence_position(tokens.pieces))
    return names, np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((0, 0), np.float32)


def char_features(text: str) -> dict[str, np.ndarray]:
    """Each feature of CHAR_FEATURES per character of `text` (vectorised: 1 MB in about a second)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    n = codes.size
    index = np.arange(n, dtype=np.int64)
    newline = codes == ord("\n")
    # last newline strictly before each character (-1: none), next newline at or after it (n: none)
    last_at_or_before = np.maximum.accumulate(np.where(newline, index, -1)) if n else index
    last_before = np.concatenate(([-1], last_at_or_before[:-1])) if n else index
    next_at_or_after = np.minimum.accumulate(np.where(newline, index, n)[::-1])[::-1] if n else index
    letters, digits, upper = _char_classes(codes)
    return {
        "inside_quotes": _inside_double_quotes(codes),
        "inside_single_quotes": _inside_single_quotes(codes, last_before),
        "inside_brackets": (_bracket_depth(codes) > 0).astype(np.float32),
        "bracket_depth": _bracket_depth(codes).astype(np.float32),
        "line_position": (index - last_before - 1).astype(np.float32),
        "to_line_end": (next_at_or_after - index).astype(np.float32),
        "indent": _indent(text),
        "inside_word": (letters | digits | (codes == ord("_"))).astype(np.float32),
        # the model reads a newline before the text, so the first character starts a line too
        "after_newline": np.concatenate(([True], newline[:-1])).astype(np.float32) if n else newline.astype(np.float32),
        "uppercase": upper.astype(np.float32),
        "digit": digits.astype(np.float32),
    }


def _char_classes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(letter, digit, uppercase) per character, asking Python once per distinct character."""
    distinct, inverse = np.unique(codes, return_inverse=True)
    chars = [chr(c) for c in distinct.tolist()]
    letter = np.array([c.isalpha() for c in chars], dtype=bool)
    digit = np.array([c.isdigit() for c in chars], dtype=bool)
    upper = np.array([c.isupper() for c in chars], dtype=bool)
    return letter[inverse], digit[inverse], upper[inverse]


def _inside_double_quotes(codes: np.ndarray) -> np.ndarray:
    """1 from an opening quote up to (not including) its closing quote. A straight " toggles;
    curly quotes open and close. The opening quote counts as inside, the closing one as outside."""
    straight = np.cumsum(codes == ord('"')) % 2 == 1
    curly = np.cumsum((codes == 0x201C).astype(np.int64) - (codes == 0x201D)) > 0
    return (straight | curly).astype(np.float32)


def _inside_single_quotes(codes: np.ndarray, last_before: np.ndarray) -> np.ndarray:
    """Like double quotes with ', but counted within each line (an apostrophe in prose would
    otherwise flip the rest of the text)."""
    count = np.cumsum(codes == ord("'"))
    at_line_start = np.where(last_before >= 0, count[np.maximum(last_before, 0)], 0)
    return ((count - at_line_start) % 2 == 1).astype(np.float32)


def _bracket_depth(codes: np.ndarray) -> np.ndarray:
    """Open brackets minus closed ones so far, never below 0 (a stray closer starts over at 0)."""
    opens = np.isin(codes, [ord("("), ord("["), ord("{")])
    closes = np.isin(codes, [ord(")"), ord("]"), ord("}")])
    change = opens.astype(np.int64) - closes
    depth = np.cumsum(change)
    # a running minimum below 0 means more closers than openers: measure from that floor instead
    floor = np.minimum(np.minimum.accumulate(depth), 0) if depth.size else depth
    return depth - floor


def _indent(text: str) -> np.ndarray:
    """Leading spaces (a tab counts 4) of the line each character is on, the newline included."""
    lines = text.split("\n")
    widths = [
        len(line) - len(line.lstrip(" \t")) + 3 * line[: len(line) - len(line.lstrip(" \t"))].count("\t")
        for line in lines
    ]
    lengths = [len(line) + 1 for line in lines]  # + its newline
    lengths[-1] -= 1  # the last line has none
    return np.repeat(np.array(widths, dtype=np.float32), lengths)


def sentence_position(pieces: list[str]) -> np.ndarray:
    """Tokens since the last sentence end (. ! ?); the token after one is at position 0."""
    out = np.empty(len(pieces), dtype=np.float32)
    position = 0
    for k, piece in enumerate(pieces):
        out[k] = position
        position = 0 if piece.strip() in SENTENCE_ENDS or re.fullmatch(r"\s*[.!?]+\s*", piece) else position + 1
    return out
