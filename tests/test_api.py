"""The Python API mirrors the CLI: train -> load -> generate / evaluate."""

import pytest

import rnnkit
from rnnkit.cli import main


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    from conftest import tiny_config

    config = tiny_config(tmp_path_factory.mktemp("api") / "char", tokenizer="char", steps=40, lr=0.02)
    return rnnkit.train(config)


def test_train_result_and_load(char_run):
    assert char_run.steps == 40 and char_run.val_loss < 2.0
    assert char_run.val_bpc == pytest.approx(char_run.val_loss / 0.6931471805599453)  # char: bpc = bits/token
    lm = rnnkit.load(char_run.checkpoint, device="cpu")
    assert lm.tokenizer.kind == "char" and lm.config.train.steps == 40
    pieces = []
    text = lm.generate("you ", max_new_tokens=30, temperature=0.5, top_k=5, seed=1, stream=pieces.append)
    assert text == "".join(pieces) and text.startswith("you ") and len(text) == 34
    assert lm.generate("you ", max_new_tokens=30, temperature=0.5, top_k=5, seed=1) == text


def test_evaluate_function_and_method_agree(char_run):
    lm = rnnkit.load(char_run.checkpoint, device="cpu")
    by_method = lm.evaluate(split="val")
    assert by_method.loss == pytest.approx(char_run.best_val_loss)
    assert rnnkit.evaluate(char_run.checkpoint, split="val", device="cpu") == by_method
    test = lm.evaluate(split="test", max_tokens=50)
    assert test.tokens == 50


def test_evaluate_on_other_text_and_unknown_characters(char_run, tmp_path):
    lm = rnnkit.load(char_run.checkpoint, device="cpu")
    other = tmp_path / "other.txt"
    other.write_text("you say hello and goodbye. " * 30)
    assert lm.evaluate(str(other), split="train").tokens > 0
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("xyzzy " * 100)
    with pytest.raises(rnnkit.DataError, match="lacks"):
        lm.evaluate(str(foreign), split="train")


def test_prompt_with_foreign_characters_names_them(char_run, capsys):
    with pytest.raises(rnnkit.PromptError, match="'Q'"):
        rnnkit.load(char_run.checkpoint, device="cpu").generate("Quick")
    assert main(["generate", char_run.checkpoint, "--prompt", "Quiz"]) == 2
    err = capsys.readouterr().err
    assert "'Q'" in err and "'z'" in err and len(err.strip().splitlines()) == 1


def test_overrides_and_typed_errors(tmp_path):
    from conftest import tiny_config

    config = tiny_config(tmp_path / "o", steps=5)
    result = rnnkit.train(config, steps=7, lr=0.05)
    assert result.steps == 7
    with pytest.raises(rnnkit.ConfigError):
        rnnkit.train(config, steps=-1)
    with pytest.raises(rnnkit.CheckpointError):
        rnnkit.load(tmp_path / "missing")


def test_unk_rate_counts_the_scored_unknown_tokens(char_run, tmp_path, capsys):
    """A word model's bpc skips spelling out <unk> words, so evaluation says how many there are."""
    from conftest import tiny_config

    text = tmp_path / "words.txt"
    text.write_text("the cat sat on the mat . " * 40 + "zebra yak gnu " * 3 + "the cat sat . " * 10)
    config = tiny_config(tmp_path / "word", data=str(text), steps=5)
    config.data.min_freq, config.data.fractions, config.data.batch_size = 2, (0.8, 0.2, 0.0), 1  # one stream
    run = rnnkit.train(config)
    lm = rnnkit.load(run.checkpoint, device="cpu")
    other = tmp_path / "other.txt"
    other.write_text("the zebra sat on the yak . " * 20)
    result = lm.evaluate(str(other), split="train", fractions=(1.0, 0.0, 0.0))
    ids = lm.tokenizer.encode(other.read_text())
    scored = ids[1 : result.tokens + 1]  # one stream: the targets are the tokens after the first
    assert result.unk_rate == pytest.approx(float((scored == lm.tokenizer.vocab.unk_id).mean()))
    assert 0.2 < result.unk_rate < 0.4  # zebra and yak: 2 of 7 tokens
    assert rnnkit.load(char_run.checkpoint, device="cpu").evaluate().unk_rate == 0.0  # no <unk> at all
    assert main(["evaluate", run.checkpoint, "--data", str(other), "--split", "train", "--fractions", "1,0,0"]) == 0
    assert "are <unk>" in capsys.readouterr().out
