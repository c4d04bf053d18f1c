"""generate as people know it: --num-samples, --stop, --prompt -, -i, Hugging Face's API names."""

import io
import json
import warnings

import pytest

import rnnkit
from rnnkit.api import UnknownTokenWarning
from rnnkit.cli import main
from rnnkit.errors import ConfigError


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    from conftest import tiny_config

    return rnnkit.train(tiny_config(tmp_path_factory.mktemp("gen") / "run", tokenizer="word", steps=20))


def test_api_names_lists_of_prompts_and_renamed_options(word_run):
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    one = lm.generate("you say", max_new_tokens=5, seed=1)
    assert isinstance(one, str) and one.startswith("you say")
    many = lm.generate(["you say", "I say"], max_new_tokens=5, seed=1, num_return_sequences=2)
    assert [len(texts) for texts in many] == [2, 2] and many[0][0] == one
    assert lm.generate("you", max_new_tokens=4, num_beams=3) == lm.generate("you", max_new_tokens=4, num_beams=3)
    for old, new in (
        ({"beam": 3}, "'num_beams'"),
        ({"greedy": True}, "'do_sample=False'"),
        ({"num_samples": 2}, "'num_return_sequences'"),
    ):
        with pytest.raises(ConfigError, match=new):
            lm.generate("you", **old)
    with pytest.raises(ConfigError, match="empty"):
        lm.generate("you", stop=[""])


def test_unknown_prompt_words_are_named_in_one_warning(word_run, capsys):
    lm = rnnkit.load(word_run.checkpoint, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm.generate("you zebra say quokka", max_new_tokens=2)
    assert len(caught) == 1 and caught[0].category is UnknownTokenWarning
    assert "'quokka', 'zebra'" in str(caught[0].message)
    assert main(["generate", str(word_run.checkpoint), "--prompt", "you zebra", "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "'zebra'" in err


def test_num_samples_stop_and_stdin_prompt(word_run, capsys, monkeypatch):
    run = str(word_run.checkpoint)
    assert (
        main(
            [
                "generate",
                run,
                "--prompt",
                "you",
                "--num-samples",
                "3",
                "--seed",
                "2",
                "--max-new-tokens",
                "12",
                "--json",
            ]
        )
        == 0
    )
    texts = json.loads(capsys.readouterr().out)["texts"]
    assert len(texts) == 3 and all(t.startswith("you") for t in texts)
    assert (
        main(
            [
                "generate",
                run,
                "--prompt",
                "you",
                "--num-samples",
                "3",
                "--seed",
                "2",
                "--max-new-tokens",
                "12",
                "--stop",
                "hello",
                "--stop",
                "goodbye",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.rstrip("\n").split("\n----\n")
    assert len(printed) == 3 and all("hello" not in t and "goodbye" not in t for t in printed)
    for full, cut in zip(texts, printed, strict=True):
        assert full.startswith(cut)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"I say\n")))
    assert main(["generate", run, "--prompt", "-", "--max-new-tokens", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"].startswith("I say")  # the next word may be "." (no space)


def test_interactive_loop_in_a_pipe(word_run, capsys, monkeypatch):
    script = "you say\n:seed 3\n:temperature 0.5\nI say\n:seed 3\nI say\n:top-p 2\n:nonsense\n:quit\nnever\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["generate", str(word_run.checkpoint), "-i", "--max-new-tokens", "6"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("you say") and lines[1] == lines[2]  # same seed, same text
    assert "seed = 3" in err and "temperature = 0.5" in err and "top_p must be in (0, 1]" in err
    assert "unknown command :nonsense" in err and "never" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num-samples", "0"], "--num-samples"),
        (["--stop", ""], "empty"),
        (["--beam", "2", "--num-samples", "3"], "at most"),
        (["--greedy", "--num-samples", "2"], "one result"),
    ],
)
def test_bad_generate_options(word_run, capsys, argv, message):
    assert main(["generate", str(word_run.checkpoint), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
