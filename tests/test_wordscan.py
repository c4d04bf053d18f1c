"""The array word scanner (rnnkit.text.wordscan) against the regex it replaces."""

import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.text.wordscan import (
    APOSTROPHE,
    BMP,
    FIBONACCI,
    NEWLINE,
    SPACE,
    SYMBOL,
    WORD,
    WORD_PATTERN,
    character_class,
    class_table,
    number_keys,
    whitespace_pieces,
    word_types,
)


def scanned(text: str) -> list[str]:
    distinct, ids = word_types(text)
    assert len(set(distinct)) == len(distinct), "a token is listed twice"
    assert ids.dtype == np.int64 and (ids.size == 0 or ids.max() < len(distinct))
    return [distinct[i] for i in ids.tolist()]


def test_character_classes_follow_the_regex_engine_for_every_code_point():
    table = class_table()
    for code in [*range(BMP), 0x1F600, 0x10400, 0x1D7CE, 0x20000, 0xE0020, 0x10FFFF]:
        char = chr(code)
        expected = (
            NEWLINE
            if char == "\n"
            else APOSTROPHE
            if char in "'’"
            else SPACE
            if re.fullmatch(r"\s", char)
            else WORD
            if re.fullmatch(r"\w", char)
            else SYMBOL
        )
        got = table[code] if code < BMP else character_class(char)
        assert got == expected, hex(code)


def test_every_ascii_character_next_to_words_and_apostrophes():
    text = " ".join(f"a{chr(c)}b 'x{chr(c)}' {chr(c)}{chr(c)}" for c in range(1, 128))
    assert scanned(text) == WORD_PATTERN.findall(text)


def test_apostrophes_join_only_between_word_characters():
    text = "don't rock'n'roll 'quoted' a''b x' 'y o'_ 9'9 it’s ’tis l'été\n'\n"
    assert scanned(text) == WORD_PATTERN.findall(text)
    assert "rock'n'roll" in scanned(text) and "it’s" in scanned(text)


def test_long_tokens_sharing_prefixes_stay_distinct():
    words = [
        "abcdefgh",
        "abcdefghi",
        "abcdefghij",
        "abcdefgh_x",
        "abcdefghabcdefgh",
        "abcdefghabcdefghX",
        "x" * 40,
        "x" * 41,
        "honorificabilitudinitatibus",
        "a_b'c_d'e_f'g_h'i",
        "x" * 64,
        "x" * 65,
        "x" * 20_000,
        "x" * 20_001,
        "é" * 40,
    ]  # past 64 bytes: the dict's
    text = " ".join(words * 3) + "\n" + ",".join(reversed(words))
    tokens = scanned(text)
    assert tokens == WORD_PATTERN.findall(text)
    assert set(words) <= set(tokens)


def test_non_ascii_text_and_a_shared_index_for_each_token():
    text = "“Hello,” she said , Hello . café’s\u00a0menu\u2028next\x85line 😀! naïve naïve e\u0301 𝟎𝟏 ,"
    tokens = scanned(text)
    assert tokens == WORD_PATTERN.findall(text)
    distinct, ids = word_types(text)
    assert (np.asarray(ids) == distinct.index(",")).sum() == 3
    assert "café’s" in distinct and "𝟎𝟏" in distinct  # ’ joins; mathematical digits are \w


def test_cyrillic_greek_and_cjk_text():
    text = "Мир, труд! Ελληνικά κείμενα. 東京は大きい。 Don't 그래요?\n" * 3
    assert scanned(text) == WORD_PATTERN.findall(text)


def test_nul_and_lone_surrogates():
    for text in ("a\x00b \x00\x00 c", "x\ud800y \udfff z", "\ud83d\ude00 ok"):
        assert scanned(text) == WORD_PATTERN.findall(text)


def test_empty_and_blank_text():
    assert scanned("") == []
    assert scanned(" \t\r\x0b\x0c  ") == []
    assert scanned("\n\n") == ["\n", "\n"]


ALPHABET = st.sampled_from(
    [chr(c) for c in range(128)]
    + list("é’“😀\u00a0\u2028\u0301ßЖ東\ud800𝟎")
    + ["don't", "abcdefghijk", "  ", "\n", "w" * 30, "é" * 20]
)  # runs of these pass 64 bytes


@given(st.lists(ALPHABET, max_size=200))
@settings(max_examples=400, deadline=None)
def test_matches_the_regex_token_for_token(parts):
    text = "".join(parts)
    assert scanned(text) == WORD_PATTERN.findall(text)


def test_number_keys_agrees_with_unique():
    rng = np.random.default_rng(0)
    pool = rng.integers(1, 2**63, size=70_000, dtype=np.uint64)
    keys = pool[rng.integers(0, pool.size, size=300_000)]
    distinct, ids = number_keys(keys)
    assert distinct.size == np.unique(keys).size
    assert (distinct[ids] == keys).all()


def test_number_keys_survives_keys_that_all_hash_to_one_slot():
    """Keys whose hashes share their top 40 bits land in one slot at every table size: the probe
    limit makes the table grow, and at its largest, probing still ends with every key placed."""
    inverse = pow(int(FIBONACCI), -1, 2**64)  # key * FIBONACCI = (1 << 62) + i for key i below
    keys = np.array([((1 << 62) + i) * inverse % 2**64 for i in range(1500)], dtype=np.uint64)
    keys = np.concatenate([keys, keys[::7]])
    distinct, ids = number_keys(keys)
    assert distinct.size == 1500
    assert (distinct[ids] == keys).all()


@given(st.lists(ALPHABET, max_size=120), st.integers(1, 12))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_long_text_goes_in_whitespace_pieces_with_the_same_tokens(monkeypatch, parts, size):
    """Pieces join back to the text and end after a space or newline, so tokenizing them one by
    one (with one index for a token seen in several) equals tokenizing the whole."""
    text = "".join(parts)
    pieces = list(whitespace_pieces(text, size))
    assert "".join(pieces) == text
    assert all(piece[-1] in " \n" for piece in pieces[:-1])
    with monkeypatch.context() as patch:  # (the context undoes it after every example)
        patch.setattr("rnnkit.text.wordscan.CHUNK_CHARS", size)
        assert scanned(text) == WORD_PATTERN.findall(text)
