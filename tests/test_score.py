"""Scoring text token by token (rnnkit.score, LanguageModel.score, `rnnkit score`)."""

import json
import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main, tsv_cell
from rnnkit.config import ModelConfig
from rnnkit.data import TokenSplit, eval_batches
from rnnkit.errors import ConfigError, DataError
from rnnkit.evaluate import EvalSettings, evaluate_split
from rnnkit.models.hmm import HMMLM
from rnnkit.models.ngram import KneserNeyLM
from rnnkit.models.numpy_lm import NumpyRNNLM
from rnnkit.models.torch_lm import RNNLM, TorchScorer
from rnnkit.score import score_texts, stream_rows, text_tokens
from rnnkit.text.corpora import bundled_text
from rnnkit.text.tokenizer import build_tokenizer

TEXT = bundled_text("timemachine")[:30000]


class Bigram:
    """A hand-made bigram model behind the scoring seam: p(b | a) = P[a, b], state = last token."""

    def __init__(self, probs: np.ndarray):
        self.probs, self.vocab_size = probs, probs.shape[0]

    def initial_state(self, batch_size):
        return np.zeros(batch_size, np.int64)  # never used: every stream starts with a token

    def token_logprobs(self, idx, targets, state, top_k=0):
        logprobs = np.log(self.probs[idx, targets])
        top = None
        if top_k:
            full = np.log(self.probs[idx])  # (N, T, V)
            order = np.argsort(-full, axis=-1, kind="stable")[..., :top_k]
            top = (order, np.take_along_axis(full, order, axis=-1))
        return logprobs, top, idx[:, -1]


@pytest.fixture(scope="module")
def char_tokenizer():
    return build_tokenizer("char", TEXT)


def scorers(tokenizer):
    """One untrained scorer of each kind over the same vocabulary (fast; the arithmetic is the same)."""
    torch.manual_seed(0)
    config = ModelConfig(model="gru", layers=1, hidden=16, embed=8, vocab_size=len(tokenizer))
    model = RNNLM(config)
    numpy_model = NumpyRNNLM(config)
    numpy_model.load_state_dict({name: t.detach().numpy() for name, t in model.state_dict().items()})
    ids = tokenizer.encode(TEXT)
    return {
        "torch": TorchScorer(model),
        "numpy": numpy_model,
        "ngram": KneserNeyLM(3, len(tokenizer)).fit(ids),
        "hmm": HMMLM(4, len(tokenizer), n_iter=2, seed=0).fit(ids[:5000]),
    }


def test_bigram_log_probabilities_by_hand(char_tokenizer):
    """Each token's log-probability is ln P[previous, token], the first after the newline."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(char_tokenizer)), size=len(char_tokenizer))
    text = "the time"
    scored = score_texts(Bigram(probs), char_tokenizer, [text], top_k=2)[0]
    previous = ["\n"] + list(text[:-1])
    expected = [
        math.log(probs[char_tokenizer.vocab.stoi[a], char_tokenizer.vocab.stoi[b]])
        for a, b in zip(previous, text, strict=True)
    ]
    assert np.allclose(scored.logprobs, expected, rtol=0, atol=1e-12)
    assert scored.total_nats == pytest.approx(-sum(expected), rel=1e-12)
    assert np.allclose(scored.surprisal, -np.array(expected) / math.log(2))
    assert scored.bits_per_char == pytest.approx(-sum(expected) / math.log(2) / len(text))
    assert scored.perplexity == pytest.approx(math.exp(-sum(expected) / len(text)))
    best = np.argsort(-probs[char_tokenizer.vocab.stoi["\n"]], kind="stable")[:2]
    assert scored.top_ids[0].tolist() == best.tolist()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", ["torch", "numpy", "ngram", "hmm"])
def test_equals_evaluate_on_the_same_stream(kind, char_tokenizer):
    """Up to 4095 tokens (one row) score's total is evaluate's on newline + text; longer texts
    are cut into evaluate's rows, and every token evaluate scores gets the same value."""
    scorer = scorers(char_tokenizer)[kind]
    for text, streams in ((TEXT[:3000], 1), (TEXT[: 2 * 2048 * 3 + 2], 3)):
        scored = score_texts(scorer, char_tokenizer, [text], seq_len=64, max_streams=3)[0]
        stream = np.concatenate([[char_tokenizer.start_id()], char_tokenizer.encode(text)])
        evaluated = evaluate_split(scorer, TokenSplit(stream, len(text)), EvalSettings(64, 3))
        assert eval_batches(stream, 64, 3).num_streams == len(stream_rows(len(stream), 3)) == streams
        covered = -evaluated.loss * evaluated.tokens
        rows = stream_rows(len(stream), 3)
        scored_by_evaluate = np.concatenate([scored.logprobs[start : start + rows[0][1]] for start, _ in rows])
        assert scored_by_evaluate.sum() == pytest.approx(covered, rel=1e-6)
        if streams == 1:
            assert scored.loss == pytest.approx(evaluated.loss, rel=1e-6)
            assert len(scored.ids) == evaluated.tokens == len(text)
        else:  # the last row goes on to the end: the (< 3) tokens evaluate leaves out are scored too
            assert len(scored.ids) == len(text) > evaluated.tokens


@pytest.mark.usefixtures("one_thread")
def test_top_k_and_batched_texts_match_one_at_a_time(char_tokenizer):
    scorer = scorers(char_tokenizer)["torch"]
    texts = ["It is raining", "the Time Traveller", "x"]
    together = score_texts(scorer, char_tokenizer, texts, top_k=4, batch_rows=3)
    for text, batched in zip(texts, together, strict=True):
        alone = score_texts(scorer, char_tokenizer, [text], top_k=4)[0]
        assert np.allclose(batched.logprobs, alone.logprobs, atol=1e-5)
        assert batched.top_ids.tolist() == alone.top_ids.tolist()
    scored = together[1]
    assert np.all(np.diff(scored.top_logprobs, axis=1) <= 0)  # best first
    # the top-1 alternative is the argmax of the full next-token distribution
    ids = np.concatenate([[char_tokenizer.start_id()], char_tokenizer.encode(texts[1])])
    full, _ = scorer.next_logprobs(ids[None, :5], scorer.initial_state(1))
    assert scored.top_ids[4, 0] == int(np.argmax(full[0]))
    assert scored.top_logprobs[4, 0] == pytest.approx(full[0].max(), abs=1e-5)
    assert scored.logprobs[4] == pytest.approx(full[0][ids[5]], abs=1e-5)


@pytest.mark.parametrize("kind", ["ngram", "hmm", "numpy"])
def test_top_k_of_every_kind_is_the_full_distribution_sorted(kind, char_tokenizer):
    scorer = scorers(char_tokenizer)[kind]
    scored = score_texts(scorer, char_tokenizer, ["the Time"], top_k=3)[0]
    ids = np.concatenate([[char_tokenizer.start_id()], char_tokenizer.encode("the Time")])
    for t in (0, 5):
        full, _ = scorer.next_logprobs(ids[None, : t + 1], scorer.initial_state(1))
        assert np.allclose(scored.top_logprobs[t], np.sort(full[0])[::-1][:3], atol=1e-6)
        assert scored.logprobs[t] == pytest.approx(full[0][ids[t + 1]], abs=1e-6)


def test_ngram_log_probabilities_equal_its_own_prob(char_tokenizer):
    model = scorers(char_tokenizer)["ngram"]
    scored = score_texts(model, char_tokenizer, ["the Time"])[0]
    ids = [char_tokenizer.start_id()] + char_tokenizer.encode("the Time").tolist()
    expected = [math.log(model.prob(ids[max(0, t - 1) : t + 1], ids[t + 1])) for t in range(len(ids) - 1)]
    assert np.allclose(scored.logprobs, expected, atol=1e-12)


def test_spans_cover_the_text_for_every_tokenizer():
    text = "Hello,  world! It's the time\n\nof  day \u00e9t\u00e9\r\nend"
    for kind in ("char", "word", "bpe"):
        tokenizer = build_tokenizer(kind, TEXT + "\u00e9\r", bpe_vocab=300)
        ids, starts, ends = text_tokens(tokenizer, text)
        assert len(ids) == len(starts) == len(ends) and np.all(starts < ends) and np.all(ends[:-1] <= starts[1:] + 1)
        pieces = [text[a:b] for a, b in zip(starts, ends, strict=True)]
        if kind == "char":
            assert "".join(pieces) == text
        elif kind == "word":
            assert pieces[:4] == ["Hello", ",", "world", "!"] and "It's" in pieces and pieces[-1] == "end"
            assert pieces == [
                tokenizer.vocab.itos[i] if i != tokenizer.unk_id else p for i, p in zip(ids, pieces, strict=True)
            ]
        else:
            # a character split over byte tokens gives each of them its span: distinct spans tile the text
            assert "".join(text[a:b] for a, b in sorted(set(zip(starts.tolist(), ends.tolist(), strict=True)))) == text


def test_empty_and_untokenizable_text_refused(char_tokenizer):
    scorer = scorers(char_tokenizer)["ngram"]
    with pytest.raises(DataError, match="empty"):
        score_texts(scorer, char_tokenizer, [""])
    with pytest.raises(DataError, match="lacks"):
        score_texts(scorer, char_tokenizer, ["\u4e2d"])
    with pytest.raises(ConfigError, match="top_k"):
        score_texts(scorer, char_tokenizer, ["the"], top_k=0)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    from conftest import tiny_config

    return rnnkit.train(tiny_config(tmp_path_factory.mktemp("score") / "run", tokenizer="char", steps=20))


def test_api_score_and_evaluate_of_a_whole_file_agree(char_run, tmp_path):
    lm = rnnkit.load(char_run.checkpoint, device="cpu")
    text = "you say hello and goodbye. " * 40
    path = tmp_path / "other.txt"
    path.write_text(text)
    scored = lm.score(text, top_k=2)
    assert scored.tokens[0]["token"] == "y" and len(scored.tokens[0]["top"]) == 2
    whole = lm.evaluate(str(path))
    assert whole.tokens == len(text) and whole.loss == pytest.approx(scored.loss, rel=1e-12)
    stream = np.concatenate([[lm.tokenizer.start_id()], lm.tokenizer.encode(text)])
    evaluated = evaluate_split(lm.scorer, TokenSplit(stream, len(text)), EvalSettings(256, 4))
    assert evaluated.loss == pytest.approx(scored.loss, rel=1e-6)
    assert lm.evaluate(str(path), split="val").tokens < whole.tokens  # told otherwise: the val slice
    assert [s.loss for s in lm.score([text, "hello"])] == pytest.approx([scored.loss, lm.score("hello").loss], rel=1e-5)
    with pytest.raises(ConfigError, match="'fractions'"):
        lm.evaluate(str(path), split="val", split_fractions=(0.5, 0.25, 0.25))
    with pytest.raises(ConfigError, match="give split"):
        lm.evaluate(str(path), fractions=(0.5, 0.25, 0.25))


def test_cli_score_outputs_and_bad_input(char_run, tmp_path, capsys, monkeypatch):
    assert main(["score", str(char_run.checkpoint), "--text", "you say", "--json", "--top-k", "3"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["tokens"] == 7 and [t["token"] for t in document["token_scores"]] == list("you say")
    assert all(len(t["top"]) == 3 for t in document["token_scores"])
    assert document["total_nats"] == pytest.approx(-sum(t["logprob"] for t in document["token_scores"]))
    assert main(["score", str(char_run.checkpoint), "--text", "you say", "--tsv"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split("\t") == ["token", "start", "end", "logprob", "surprisal"] and len(lines) == 8
    assert lines[4].split("\t")[0] == " " and "bits/char" in out.err
    assert tsv_cell("a\tb\n\\") == "a\\tb\\n\\\\"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9".encode("latin-1"))
    for argv in (
        ["--text", ""],
        ["--file", str(bad)],
        ["--text", "a", "--file", str(bad)],
        [],
        ["--text", "you", "--top-k", "0"],
    ):
        assert main(["score", str(char_run.checkpoint), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err


def test_cli_score_reads_stdin(char_run, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"you say")))
    assert main(["score", str(char_run.checkpoint), "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 7


def test_cli_evaluate_says_which_text_it_scored(char_run, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("you say hello and goodbye. " * 40)
    run = str(char_run.checkpoint)
    assert main(["evaluate", run, "--data", str(other), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["scored"] == f"all of {other}" and whole["tokens"] == len(other.read_text())
    assert main(["score", run, "--file", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(whole["loss"], rel=1e-12)
    assert main(["evaluate", run, "--data", str(other), "--split", "test", "--fractions", "0.5,0.25,0.25"]) == 0
    assert capsys.readouterr().out.startswith(f"the test split of {other} (fractions 0.5,0.25,0.25): loss")
    assert main(["evaluate", run]) == 0
    assert capsys.readouterr().out.startswith("the val split of toy (fractions 0.9,0.05,0.05): loss")


@pytest.mark.parametrize(
    "argv, new",
    [
        (["train", "--split", "0.8,0.1,0.1"], "--fractions"),
        (["train", "--vocab-size", "300"], "--bpe-vocab"),
        (["prepare", "--data", "toy", "--split", "0.8,0.1,0.1"], "--fractions"),
        (["compare", "--split", "0.8,0.1,0.1"], "--fractions"),
    ],
)
def test_old_spellings_refused_naming_the_new_one(argv, new, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is now {new}" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="'fractions'"):
        rnnkit.RunConfig.from_dict({"data": {"split": [0.8, 0.1, 0.1]}})


def test_a_checkpoint_from_a_future_format_is_refused_in_one_line(char_run, tmp_path, capsys):
    import shutil

    future = tmp_path / "future"
    shutil.copytree(char_run.best_checkpoint, future)
    document = json.loads((future / "config.json").read_text())
    document["format_version"] = 99
    (future / "config.json").write_text(json.dumps(document))
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv in (
        ["score", str(future), "--text", "you"],
        ["generate", str(future)],
        ["evaluate", str(future)],
        ["train", "--init-from", str(future), "--data", "toy", "--out", str(tmp_path / "tuned")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "format version 99" in err and "upgrade rnnkit" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
