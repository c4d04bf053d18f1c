"""Text normalisations applied before tokenizing (`--normalize`), for recipes that expect them.

`letters`: what d2l does to The Time Machine (`re.sub('[^A-Za-z]+', ' ', text).lower()`): ASCII
letters only, lowercased, every run of anything else (digits, punctuation, newlines, accents)
becomes one space. A character model of The Time Machine then has 27 symbols, 26 letters and the
space (d2l counts 28: it reserves an `<unk>` that never occurs).
"""

from __future__ import annotations

import re

from ..errors import ConfigError

NORMALIZATIONS = ("letters",)
_NOT_LETTERS = re.compile(r"[^A-Za-z]+")


def normalize_text(text: str, how: str | None) -> str:
    """`text` normalised the way `how` names (None: unchanged)."""
    if how is None:
        return text
    if how == "letters":
        return _NOT_LETTERS.sub(" ", text).lower()
    raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {how!r}")
