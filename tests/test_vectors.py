"""--embed-from: word vectors (GloVe/word2vec text, word2vec binary) into the embedding, coverage,
--freeze-embed, and files that contradict themselves refused in one line."""

import dataclasses
import struct

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import ModelConfig, RunConfig
from rnnkit.errors import ConfigError, DataError
from rnnkit.text.vectors import match_vocabulary, read_vectors
from rnnkit.train import Trainer, train

WORDS = {
    "you": [0.1, 0.2, 0.3],
    "say": [-1.0, 0.5, 2.0],
    "hello": [3.0, -3.0, 0.25],
    "Goodbye": [1.0, 1.0, 1.0],
    "zebra": [9.0, 9.0, 9.0],
}  # toy has you, say, hello; not Goodbye (only goodbye) or zebra


def glove(path, words=WORDS, header=None):
    lines = ([header] if header else []) + [f"{w} " + " ".join(map(str, v)) for w, v in words.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def word2vec_binary(path, words=WORDS, count=None, dim=3, newline=True):
    out = f"{count if count is not None else len(words)} {dim}\n".encode()
    for word, vector in words.items():
        out += word.encode() + b" " + struct.pack(f"<{len(vector)}f", *vector) + (b"\n" if newline else b"")
    path.write_bytes(out)
    return path


def vector_config(tiny, name, path, steps=10, engine="torch", **model):
    config = tiny(name, steps=steps)
    options = dict(model="lstm", layers=1, hidden=16, embed=8, engine=engine, embed_from=str(path)) | model
    return RunConfig(ModelConfig(**options), config.data, config.train)


@pytest.mark.parametrize("writer", ["glove", "word2vec-text", "word2vec-binary", "binary-no-newlines"])
def test_every_format_reads_the_same_vectors(tmp_path, writer):
    if writer == "glove":
        path = glove(tmp_path / "v.txt")
    elif writer == "word2vec-text":
        path = glove(tmp_path / "v.txt", header=f"{len(WORDS)} 3")
    else:
        path = word2vec_binary(tmp_path / "v.bin", newline=writer == "word2vec-binary")
    vectors = read_vectors(path)
    assert vectors.words == list(WORDS) and vectors.dim == 3
    np.testing.assert_array_equal(vectors.matrix, np.array(list(WORDS.values()), dtype=np.float32))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_matched_rows_start_from_the_vectors_and_the_size_follows_the_file(tiny, tmp_path, engine):
    lines = []
    trainer = Trainer(vector_config(tiny, "t", glove(tmp_path / "v.txt"), engine=engine), log=lines.append)
    assert trainer.config.model.embed == 3  # not the 8 asked for
    embed = trainer.engine.weights()["embed.weight"].numpy()
    itos = trainer.tokenizer.vocab.itos
    for word in ("you", "say", "hello"):
        np.testing.assert_array_equal(embed[itos.index(word)], np.float32(WORDS[word]))
    assert not np.array_equal(embed[itos.index("and")], np.zeros(3))  # a miss keeps its random init
    report = next(line for line in lines if line.startswith("embed-from"))
    assert "3 of" in report and "of the training tokens" in report


def test_lowercase_fallback_and_coverage():
    from rnnkit.text.vectors import Vectors

    vectors = Vectors(["the", "cat"], np.eye(2, dtype=np.float32), "text")
    match = match_vocabulary(vectors, ["<unk>", "The", "cat", "dog"], np.array([1, 1, 2, 3, 0, 1]))
    assert match.ids.tolist() == [1, 2]  # 'The' takes the vector of 'the'
    assert match.token_coverage == pytest.approx(4 / 6)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_freeze_embed_keeps_the_vectors_while_the_rest_trains(tiny, tmp_path, engine):
    from safetensors.torch import load_file

    result = train(vector_config(tiny, "f", glove(tmp_path / "v.txt"), engine=engine, freeze_embed=True))
    trained = load_file(str(tmp_path / "f" / "last" / "model.safetensors"))
    start = Trainer(
        vector_config(tiny, "g", tmp_path / "v.txt", engine=engine, freeze_embed=True), log=lambda _m: None
    ).engine.weights()
    assert torch.equal(trained["embed.weight"], start["embed.weight"])
    assert not torch.equal(trained["rnn.weight_hh_l0"], start["rnn.weight_hh_l0"])
    assert result.steps == 10


def test_resume_needs_no_vectors_file_and_is_exact(tiny, tmp_path):
    whole = train(vector_config(tiny, "whole", glove(tmp_path / "v.txt"), steps=20))
    part = train(vector_config(tiny, "part", tmp_path / "v.txt", steps=10))
    (tmp_path / "v.txt").unlink()  # the vectors are in the checkpoint's weights now
    resumed = train(resume=part.checkpoint, steps=20, quiet=True)
    assert resumed.val_loss == whole.val_loss


@pytest.mark.parametrize(
    "content, message",
    [
        ("you 0.1 0.2 0.3\nsay 1.0 2.0\n", "line 2 has a vector of 2 values, the ones before have 3"),
        ("7 3\nyou 0.1 0.2 0.3\nsay 1.0 2.0 3.0\n", "header says 7 vectors of 3 values, but the file holds 2 of 3"),
        ("2 4\nyou 0.1 0.2 0.3\nsay 1.0 2.0 3.0\n", "header says 2 vectors of 4 values"),
        ("you 0.1 zero 0.3\n", "not a number"),
        ("you\n", "no vector"),
        ("", "is empty"),
    ],
)
def test_self_contradicting_text_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_vectors(path)


def test_lying_binary_headers_are_refused(tmp_path):
    with pytest.raises(DataError, match="header says 9 vectors of 3 values, but the file ends after 5"):
        read_vectors(word2vec_binary(tmp_path / "a.bin", count=9))
    with pytest.raises(DataError, match="more than the 2 vectors"):
        read_vectors(word2vec_binary(tmp_path / "b.bin", count=2))
    (tmp_path / "c.bin").write_bytes(b"you \x00\x00")
    with pytest.raises(DataError, match="header line"):
        read_vectors(tmp_path / "c.bin")


def test_cli_refuses_a_lying_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("3 2\nyou 0.1 0.2\n", encoding="utf-8")
    code = main(
        [
            "train",
            "--data",
            "toy",
            "--tokenizer",
            "word",
            "--embed-from",
            str(bad),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "header says 3 vectors of 2 values" in err
    assert not (tmp_path / "run").exists()


def test_refusals(tiny, tmp_path):
    with pytest.raises(ConfigError, match="--freeze-embed keeps pretrained vectors fixed"):
        ModelConfig(freeze_embed=True)
    with pytest.raises(ConfigError, match="--tie would freeze"):
        ModelConfig(embed_from="v.txt", freeze_embed=True, tie=True, embed=256)
    config = vector_config(tiny, "bpe", glove(tmp_path / "v.txt"))
    config = RunConfig(config.model, dataclasses.replace(config.data, tokenizer="bpe", bpe_vocab=300), config.train)
    with pytest.raises(ConfigError, match="bpe vocabulary holds word pieces"):
        Trainer(config, log=lambda _m: None)
    unrelated = glove(tmp_path / "u.txt", {"zebra": [1.0, 2.0]})
    with pytest.raises(DataError, match="none of the"):
        Trainer(vector_config(tiny, "none", unrelated), log=lambda _m: None)
