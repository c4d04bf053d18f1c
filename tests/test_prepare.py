"""rnnkit prepare: chunked tokenization into memory-mapped token files, and training from them."""

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data import SequentialBatches
from rnnkit.errors import DataError, OutputExistsError
from rnnkit.text.corpora import bundled_text
from rnnkit.text.prepare import load_prepared, plan_sources, prepare, read_chunks
from rnnkit.text.tokenizer import Tokenizer, Vocab
from rnnkit.text.wordscan import WORD_PATTERN


def test_char_streams_decode_back_to_the_text(tmp_path):
    meta = prepare(["timemachine"], "char", tmp_path / "p", fractions=(0.8, 0.1, 0.1))
    tokenizer, arrays, _ = load_prepared(tmp_path / "p")
    assert isinstance(arrays["train"], np.memmap) and arrays["train"].dtype == np.uint16
    text = "".join(tokenizer.decode(arrays[name]) for name in ("train", "val", "test"))
    assert text == bundled_text("timemachine")
    assert sum(meta["chars"].values()) == len(text)
    assert abs(meta["tokens"]["train"] / len(text) - 0.8) < 0.01


def test_chunks_are_whole_lines_and_cover_everything(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("".join(f"line {i} ünïcode\n" for i in range(5000)))
    plan = plan_sources([str(path)], (1.0, 0.0, 0.0))
    chunks = list(read_chunks(plan["train"][0], chunk_bytes=1000))
    assert len(chunks) > 10 and all(c.endswith("\n") for c in chunks)
    assert "".join(chunks) == path.read_text()


@pytest.mark.parametrize("kind", ["word", "char"])
def test_tokenization_in_parallel_equals_serial(tmp_path, monkeypatch, kind):
    import rnnkit.text.prepare as prepare_module

    monkeypatch.setattr(prepare_module, "JOB_BYTES", 50_000)  # many jobs, several in flight
    data = tmp_path / "words.txt"
    data.write_text(bundled_text("timemachine") * 3)
    prepare([str(data)], kind, tmp_path / "one", workers=1)
    prepare([str(data)], kind, tmp_path / "two", workers=2)
    for name in ("train.bin", "val.bin", "test.bin", "tokenizer.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_word_streams_equal_in_memory_tokenization_across_chunks(tmp_path, monkeypatch):
    """The one-reading word path (token types spilled, vocabulary from their counts, ids mapped in
    blocks) gives exactly the vocabulary and ids of build_tokenizer + encode on each split."""
    import rnnkit.text.prepare as prepare_module

    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(prepare_module, "TYPE_BLOCK", 1000)
    data = tmp_path / "words.txt"
    cyrillic = str.maketrans("abcdefghijklmnopqrstuvwxyz", "абвгдежзийклмнопрстуфхцчшщ")
    extra = "Zoë's “quoted”\u2028 line\x85 end\n" + bundled_text("timemachine")[:5_000].translate(cyrillic)
    data.write_text(bundled_text("timemachine")[:60_000] + extra * 4)
    meta = prepare(
        [str(data)], "word", tmp_path / "p", fractions=(0.8, 0.1, 0.1), lowercase=True, min_freq=2, workers=2
    )
    tokenizer, arrays, _ = load_prepared(tmp_path / "p")
    texts = {
        name: "".join(c for s in sources for c in read_chunks(s))
        for name, sources in plan_sources([str(data)], (0.8, 0.1, 0.1)).items()
    }
    # the reference runs the word regex itself: nothing of the array scanner or of prepare
    reference = Vocab.build(WORD_PATTERN.findall(texts["train"].lower()), min_freq=2)
    assert tokenizer.vocab.itos == reference.itos
    for name, text in texts.items():
        expected = [reference.stoi.get(t, reference.unk_id) for t in WORD_PATTERN.findall(text.lower())]
        assert arrays[name].tolist() == expected
        assert meta["chars"][name] == len(text) and meta["bytes"][name] == len(text.encode())
    assert not list((tmp_path / "p").glob("*.types"))  # the spill files are gone


def test_given_splits_and_tokenizer_reuse(tmp_path):
    corpus = tmp_path / "ptb"
    corpus.mkdir()
    for name, text in (("train.txt", "a b c a b\n" * 50), ("valid.txt", "a b d\n"), ("test.txt", "c a\n")):
        (corpus / name).write_text(text)
    meta = prepare([str(corpus)], "word", tmp_path / "ptb-prep")
    assert meta["tokens"] == {"train": 300, "val": 4, "test": 3}  # words plus newlines
    again = prepare([str(corpus)], "word", tmp_path / "reuse", tokenizer_from=str(tmp_path / "ptb-prep"))
    assert (tmp_path / "reuse" / "tokenizer.json").read_text() == (tmp_path / "ptb-prep" / "tokenizer.json").read_text()
    assert again["tokens"] == meta["tokens"]


def test_reused_word_tokenizer_without_unk_refuses_unknown_words(tmp_path):
    """A hand-made word tokenizer without <unk> must not turn a missing word into a wrapped-around
    id: prepare names the words and writes nothing."""
    (tmp_path / "text.txt").write_text("a b c a b zebra\n" * 20)
    tok = Tokenizer("word", Vocab(["a", "b", "c", "\n"], unk=False))
    (tmp_path / "tokenizer.json").write_text(tok.to_json())
    with pytest.raises(DataError, match="1 word.*'zebra'"):
        prepare([str(tmp_path / "text.txt")], "word", tmp_path / "out", tokenizer_from=str(tmp_path / "tokenizer.json"))
    assert not (tmp_path / "out").exists()
    earlier = prepare([str(tmp_path / "text.txt")], "word", tmp_path / "out")
    with pytest.raises(DataError):  # a failed --overwrite leaves the earlier output whole
        prepare(
            [str(tmp_path / "text.txt")],
            "word",
            tmp_path / "out",
            overwrite=True,
            tokenizer_from=str(tmp_path / "tokenizer.json"),
        )
    assert load_prepared(tmp_path / "out")[2] == earlier


def test_memmap_windows_equal_in_memory_windows(tmp_path):
    prepare(["timemachine"], "char", tmp_path / "p")
    _, arrays, _ = load_prepared(tmp_path / "p")
    lazy = SequentialBatches(arrays["train"], 4, 16)
    eager = SequentialBatches(np.asarray(arrays["train"], dtype=np.int64), 4, 16)
    for i in (0, 1, len(lazy) - 1):
        for a, b in zip(lazy.window(i), eager.window(i), strict=True):
            assert torch.equal(a, b)


def test_train_evaluate_and_resume_from_a_prepared_directory(tmp_path, tiny):
    prepare(["toy"], "word", tmp_path / "p", fractions=(0.8, 0.1, 0.1))
    config = rnnkit.RunConfig(
        tiny().model, rnnkit.DataConfig(data=str(tmp_path / "p"), batch_size=4, seq_len=8), tiny("run", steps=20).train
    )
    result = rnnkit.train(config)
    assert result.val_loss < 1.0
    lm = rnnkit.load(result.checkpoint, device="cpu")
    assert lm.tokenizer.kind == "word"
    assert lm.evaluate().loss == pytest.approx(result.best_val_loss)
    assert rnnkit.train(resume=result.checkpoint, steps=25, quiet=True).steps == 25


def test_bad_input_and_existing_output(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n" * 10 + b"\xff\xfe broken\n")
    assert main(["prepare", "--data", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "UTF-8" in capsys.readouterr().err and not (tmp_path / "out").exists()
    prepare(["toy"], "char", tmp_path / "done")
    with pytest.raises(OutputExistsError):
        prepare(["toy"], "char", tmp_path / "done")
    assert main(["prepare", "--data", "toy", "--out", str(tmp_path / "done"), "--overwrite", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["tokens"]["train"] > 0
    (tmp_path / "done" / "train.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match="does not match"):
        load_prepared(tmp_path / "done")
