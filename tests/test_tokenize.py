from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.errors import CheckpointError, PromptError
from rnnkit.text.tokenizer import UNK, Tokenizer, Vocab, build_tokenizer
from rnnkit.text.wordscan import WORD_PATTERN

TEXT = "The Time Traveller (for so it will be convenient to speak of him) was expounding.\nIt's late, isn't it?"


def test_char_round_trip_is_exact():
    tok = build_tokenizer("char", TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert not tok.vocab.has_unk  # nothing was dropped, so no <unk> is needed


def test_word_round_trip_keeps_tokens_and_normalises_spacing():
    tok = build_tokenizer("word", TEXT)
    ids = tok.encode(TEXT)
    decoded = tok.decode(ids)
    assert np.array_equal(tok.encode(decoded), ids)
    assert "It's late, isn't it?" in decoded
    assert tok.split("don't stop.") == ["don't", "stop", "."]


def test_lowercase_option():
    tok = build_tokenizer("word", "The the THE", lowercase=True)
    assert len(tok) == 2  # <unk> and "the"
    assert tok.decode(tok.encode("THE")) == "the"


def test_vocab_min_freq_max_size_and_unk():
    vocab = Vocab.build("a a a b b c".split(), min_freq=2)
    assert vocab.itos == [UNK, "a", "b"]
    vocab = Vocab.build("a a a b b c".split(), max_size=2)
    assert vocab.itos == [UNK, "a"]
    tok = Tokenizer("word", vocab)
    assert tok.encode("a c b").tolist() == [1, 0, 0]


def test_char_vocab_gets_unk_only_when_needed():
    assert build_tokenizer("char", "abc", ("abd",)).vocab.has_unk  # 'd' only in validation text
    assert build_tokenizer("char", "aab", min_freq=2).vocab.has_unk
    assert not build_tokenizer("char", "abc", ("cab",)).vocab.has_unk


def test_unknown_char_without_unk_is_named():
    tok = build_tokenizer("char", "hello")
    with pytest.raises(PromptError, match="'z'"):
        tok.encode("hez")


def test_json_round_trip_and_corrupt_json():
    tok = build_tokenizer("word", TEXT, min_freq=1, lowercase=True)
    again = Tokenizer.from_json(tok.to_json())
    assert again.vocab.itos == tok.vocab.itos and again.lowercase and again.kind == "word"
    for bad in (
        "{",
        "[]",
        '{"format": "other"}',
        '{"format": "rnnkit-tokenizer", "format_version": 99, "kind": "char", "tokens": [], '
        '"unk": false, "lowercase": false}',
        '{"format": "rnnkit-tokenizer", "format_version": 1, "kind": "char", "tokens": ["a", "a"], '
        '"unk": false, "lowercase": false}',
    ):
        with pytest.raises(CheckpointError):
            Tokenizer.from_json(bad)


def test_ids_are_deterministic_frequency_order():
    tok = build_tokenizer("char", "bbbaac")
    assert tok.vocab.itos == ["b", "a", "c"]


def test_bpe_round_trip_is_exact_and_never_unknown():
    from rnnkit.text.tokenizer import BPETokenizer

    tok = build_tokenizer("bpe", TEXT * 20, bpe_vocab=300)
    assert isinstance(tok, BPETokenizer) and len(tok) <= 300
    for text in (TEXT, "naïve café — 東京 🚀\nnew line", ""):
        assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(TEXT)) < len(TEXT)  # merges make tokens longer than one byte
    again = Tokenizer.from_json(tok.to_json())
    assert again.encode(TEXT).tolist() == tok.encode(TEXT).tolist()


def test_stream_decoders_rebuild_the_decoded_text():
    for kind in ("char", "word", "bpe"):
        tok = build_tokenizer(kind, TEXT * 5 + "東京 🚀", bpe_vocab=300)
        ids = tok.encode("It's late, isn't it? 東京 🚀")
        stream = tok.stream_decoder()
        assert "".join(stream.push(i) for i in ids) == tok.decode(ids)


def test_char_encoding_is_vectorised_but_equal_to_the_plain_lookup():
    tok = build_tokenizer("char", TEXT, ("€",))
    text = TEXT + "€ and ☃"
    plain = [tok.vocab.stoi.get(c, tok.vocab.unk_id) for c in text]
    assert tok.encode(text).tolist() == plain


# Characters chosen to stress the fast word path: every kind of Unicode whitespace, apostrophes,
# underscores, digits, combining marks, punctuation, NUL and a non-BMP symbol.
TRICKY = list("ab Z9_'’.,!-\n\t\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\u0301é\x00😀") + ["don't", "x’y", "__", "\n\n"]


@given(st.lists(st.sampled_from(TRICKY), max_size=60), st.booleans())
@settings(max_examples=300, deadline=None)
def test_fast_word_path_matches_the_regex(parts, lowercase):
    """count/encode find tokens with array operations over bytes (rnnkit.text.wordscan); they must
    agree with running WORD_PATTERN over the whole text, token for token."""
    text = "".join(parts)
    vocab_text = "ab don't . , \n Z9 é"
    tok = build_tokenizer("word", vocab_text, lowercase=lowercase)
    reference = WORD_PATTERN.findall(text.lower() if lowercase else text)
    assert tok.count(text) == Counter(reference)
    expected = [tok.vocab.stoi.get(t, tok.vocab.unk_id) for t in reference]
    assert tok.encode(text).tolist() == expected


def test_word_encode_without_unk_names_the_missing_tokens():
    tok = Tokenizer("word", Vocab(["a", "b", "\n"], unk=False))
    assert tok.encode("a b\na  b").tolist() == [0, 1, 2, 0, 1]
    with pytest.raises(PromptError, match="'c'"):
        tok.encode("a c b")


BPE_PARTS = list("ab Zé9'’.,!-\n\t \x1f\xa0\u2000\u202f\u3000\u0301😀\r\x85\u2028") + [
    "  ",
    " \n",
    "'s",
    "don't",
    "\n\n",
]


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer("bpe", (TEXT + "  indented line \n\tand tabs\u3000ok\n\n") * 30, bpe_vocab=320)


@given(st.lists(st.sampled_from(BPE_PARTS), max_size=40))
@settings(max_examples=300, deadline=None)
def test_bpe_unit_cache_matches_line_by_line_encoding(bpe, parts):
    """encode() runs the library once per distinct unit; it must give the ids of encoding the
    text line by line, as the tokenizer was trained."""
    text = "".join(parts)
    lines = text.splitlines(keepends=True) or [""]
    reference = [i for e in bpe.hf.encode_batch(lines, add_special_tokens=False) for i in e.ids]
    assert bpe.encode(text).tolist() == reference
