"""Hugging Face-style save and load, tokenizer files `tokenizers` can read, and push_to_hub with a
mocked HfApi (nothing here touches the network)."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.errors import CheckpointError, OutputExistsError
from rnnkit.hub import HUB_FILES, HubError, write_hf_tokenizer
from rnnkit.text.corpora import load_corpus
from rnnkit.text.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    from conftest import tiny_config

    return rnnkit.train(tiny_config(tmp_path_factory.mktemp("hub") / "word", tokenizer="word", steps=20))


def test_save_pretrained_of_a_tied_mingru_stores_the_shared_matrix_once(tmp_path):
    import dataclasses

    from conftest import tiny_config

    config = tiny_config(tmp_path / "run", model="mingru", steps=2)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, tie=True, embed=config.model.hidden))
    lm = rnnkit.load(rnnkit.train(config).checkpoint, device="cpu")
    saved = lm.save_pretrained(tmp_path / "saved")
    assert rnnkit.load(saved, device="cpu").evaluate().loss == pytest.approx(lm.evaluate().loss)


def test_save_pretrained_round_trip(word_run, tmp_path):
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    saved = lm.save_pretrained(tmp_path / "saved")
    for name in HUB_FILES:
        assert (saved / name).is_file(), name
    document = json.loads((saved / "config.json").read_text())
    assert document["kind"] == "pretrained" and document["provenance"]["command"]
    assert document["step"] == json.loads((Path(word_run.best_checkpoint) / "config.json").read_text())["step"]
    again = rnnkit.LanguageModel.from_pretrained(saved, device="cpu")
    assert again.generate("the", max_new_tokens=20, seed=3) == lm.generate("the", max_new_tokens=20, seed=3)
    assert rnnkit.load(saved, device="cpu").evaluate().loss == pytest.approx(lm.evaluate().loss)
    card = (saved / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: rnnkit") and "word-level LSTM" in card
    assert main(["evaluate", str(saved), "--json"]) == 0  # a saved model is an ordinary checkpoint


def test_save_pretrained_replaces_only_a_saved_model(word_run, tmp_path):
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    lm.save_pretrained(tmp_path / "saved")
    lm.save_pretrained(tmp_path / "saved")  # like Hugging Face: a saved model is replaced
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        lm.save_pretrained(tmp_path / "saved", overwrite=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not an rnnkit checkpoint"):
        lm.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_baseline_and_numpy_models_save_too(tmp_path, tiny):
    for name, overrides in (("ngram", {"model": "ngram"}), ("numpy", {"engine": "numpy", "model": "gru", "steps": 5})):
        result = rnnkit.train(tiny(name, tokenizer="char"), **overrides)
        lm = rnnkit.load(result.checkpoint, device="cpu")
        again = rnnkit.load(lm.save_pretrained(tmp_path / f"{name}-saved"), device="cpu")
        assert again.evaluate().loss == pytest.approx(lm.evaluate().loss, rel=1e-9)


@pytest.mark.parametrize("kind,lowercase", [("word", False), ("word", True), ("bpe", False), ("char", False)])
def test_hf_tokenizer_encodes_the_same_ids(tmp_path, kind, lowercase):
    from tokenizers import Tokenizer as HFTokenizer

    corpus = load_corpus("timemachine")
    tokenizer = build_tokenizer(kind, corpus.train, (corpus.val, corpus.test), lowercase=lowercase, bpe_vocab=400)
    assert write_hf_tokenizer(tokenizer, tmp_path / "hf_tokenizer.json")
    hf = HFTokenizer.from_file(str(tmp_path / "hf_tokenizer.json"))
    samples = [corpus.val, corpus.test[:3000]]
    if kind != "char":  # the char vocabulary has no <unk>, so unseen characters are refused
        samples.append("Don't stop:  the  Time-Traveller's machine, 1895!\n\nIt was   odd.\t(Quite.)\n")
    for text in samples:
        ids = hf.encode(text, add_special_tokens=False).ids
        assert np.array_equal(np.asarray(ids), tokenizer.encode(text)), text[:60]


def foreign_directory(path: Path) -> Path:
    """What a transformers model directory looks like: config.json of another kind."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 12}))
    (path / "model.safetensors").write_bytes(b"\x00" * 64)
    (path / "tokenizer.json").write_text("{}")
    return path


def test_foreign_or_corrupt_directory_is_refused(word_run, tmp_path, capsys):
    foreign = foreign_directory(tmp_path / "gpt2")
    with pytest.raises(CheckpointError, match="not an rnnkit checkpoint config"):
        rnnkit.LanguageModel.from_pretrained(foreign)
    assert main(["generate", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not an rnnkit checkpoint" in err
    saved = rnnkit.load(word_run.checkpoint, device="cpu").save_pretrained(tmp_path / "saved")
    (saved / "model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(CheckpointError, match="corrupt"):
        rnnkit.LanguageModel.from_pretrained(saved)


def test_repo_id_downloads_through_snapshot_download(word_run, tmp_path, monkeypatch):
    saved = rnnkit.load(word_run.checkpoint, device="cpu").save_pretrained(tmp_path / "cache" / "snapshot")
    calls = []

    def fake_snapshot_download(repo_id, revision=None, cache_dir=None, allow_patterns=None):
        calls.append((repo_id, revision, allow_patterns))
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.chdir(tmp_path)  # no local directory called someone/tiny-word here
    lm = rnnkit.LanguageModel.from_pretrained("someone/tiny-word", revision="v1", device="cpu")
    assert calls == [("someone/tiny-word", "v1", HUB_FILES)] and lm.tokenizer.kind == "word"


def test_unreachable_repo_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot reach the Hub\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HubError, match="no such checkpoint: someone/missing"):
        rnnkit.load("someone/missing")
    assert main(["evaluate", "someone/missing"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot reach the Hub" in err


def test_push_to_hub_needs_a_token(word_run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    with pytest.raises(HubError, match="needs a Hugging Face token"):
        lm.push_to_hub("someone/tiny-word")
    with pytest.raises(rnnkit.ConfigError, match="owner/name"):
        lm.push_to_hub("not a repo id", token="x")


def test_push_to_hub_uploads_the_saved_directory(word_run, monkeypatch):
    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, private=False, repo_type="model", exist_ok=False):
            uploads.append(("create", repo_id, private, self.token))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, repo_type="model", commit_message=""):
            uploads.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), commit_message))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    url = lm.push_to_hub("someone/tiny-word", token="hf_test", private=True)
    assert url == "https://huggingface.co/someone/tiny-word"
    assert uploads[0] == ("create", "someone/tiny-word", True, "hf_test")
    assert uploads[1][0] == "upload" and set(HUB_FILES) <= set(uploads[1][2])

    class FailingApi(FakeApi):
        def upload_folder(self, **kwargs):
            raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "HfApi", FailingApi)
    with pytest.raises(HubError, match="network is unreachable"):
        lm.push_to_hub("someone/tiny-word", token="hf_test")
