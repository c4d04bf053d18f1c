import pytest

from rnnkit.errors import DataError
from rnnkit.text.corpora import BUNDLED, TOY_SENTENCE, bundled_text, describe_bundled, load_corpus, split_corpus


def test_bundled_corpora_load_and_split_contiguously():
    for name in BUNDLED:
        text = bundled_text(name)
        corpus = load_corpus(name)
        assert corpus.train + corpus.val + corpus.test == text
        sizes = corpus.sizes()
        assert abs(sizes["train"] / len(text) - 0.9) < 0.01
    assert bundled_text("toy").startswith(TOY_SENTENCE + " " + TOY_SENTENCE)
    assert {row["name"] for row in describe_bundled()} == set(BUNDLED)


def test_split_never_cuts_a_word_and_is_deterministic():
    text = "alpha beta gamma delta " * 50
    corpus = split_corpus("x", text, (0.9, 0.1, 0.0))
    assert corpus.test == ""
    assert corpus.train + corpus.val == text
    assert corpus.val[0].isspace()
    assert split_corpus("x", text, (0.9, 0.1, 0.0)) == corpus


def test_directory_with_three_splits_is_used_as_given(tmp_path):
    (tmp_path / "train.txt").write_text("one two three\n")
    (tmp_path / "valid.txt").write_text("four\n")
    (tmp_path / "test.txt").write_text("five\n")
    corpus = load_corpus(str(tmp_path))
    assert (corpus.train, corpus.val, corpus.test) == ("one two three\n", "four\n", "five\n")
    assert corpus.given_splits


def test_other_directory_concatenates_txt_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "skip.md").write_text("not text")
    corpus = load_corpus(str(tmp_path), (0.5, 0.5, 0.0))
    assert corpus.train + corpus.val == "first\nsecond"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"caf\xe9 au lait", "UTF-8"),
    ],
)
def test_bad_files_raise_data_error(text_file, content, message):
    with pytest.raises(DataError, match=message):
        load_corpus(str(text_file(content)))


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(DataError, match="no such corpus"):
        load_corpus(str(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="no .txt files"):
        load_corpus(str(tmp_path))


def test_byte_order_mark_is_dropped(text_file):
    corpus = load_corpus(str(text_file("\ufeffhello world " * 20)), (1.0, 0.0, 0.0))
    assert not corpus.train.startswith("\ufeff")
