"""End to end through the command line: --json outputs, and bad input as one line and exit code 2."""

import json
import os
import subprocess
import sys

import pytest

from rnnkit.cli import main

TINY = ["--data", "toy", "--tokenizer", "word", "--layers", "1", "--hidden", "32", "--embed", "16",
        "--batch-size", "4", "--seq-len", "8", "--steps", "20", "--eval-interval", "10", "--lr", "0.02",
        "--schedule", "constant", "--device", "cpu", "--quiet"]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(run), "--sample-tokens", "5"]) == 0
    return run


def test_train_json(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path / "r"), "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    for key in ("steps", "train_loss", "val_loss", "val_ppl", "val_bpc", "tokens_per_s", "seconds", "checkpoint"):
        assert key in result
    assert result["steps"] == 20 and result["val_loss"] < 1.5


def test_evaluate_json_matches_api(trained, capsys):
    import rnnkit
    assert main(["evaluate", str(trained), "--split", "test", "--json", "--device", "cpu"]) == 0
    result = last_json(capsys.readouterr().out)
    assert set(result) >= {"loss", "ppl", "bits_per_token", "bpc", "tokens"}
    api = rnnkit.evaluate(trained, split="test", device="cpu", engine="auto")  # the CLI's default engine
    assert result["loss"] == pytest.approx(api.loss)
    assert result["ppl"] == pytest.approx(2.718281828 ** result["loss"])
    assert result["bpc"] < result["bits_per_token"]  # a word covers several characters


def test_generate_same_seed_same_text(trained, capsys):
    args = ["generate", str(trained), "--prompt", "you say", "--max-new-tokens", "8", "--seed", "4", "--json"]
    assert main(args) == 0
    first = last_json(capsys.readouterr().out)["text"]
    assert main(args) == 0
    assert last_json(capsys.readouterr().out)["text"] == first
    assert first.startswith("you say")
    assert main(["generate", str(trained), "--prompt", "you", "--greedy", "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.startswith("you say goodbye")


def test_prompt_file_with_newlines(trained, tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello.\nyou say")
    assert main(["generate", str(trained), "--prompt-file", str(prompt), "--max-new-tokens", "3", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["text"].startswith("hello.\nyou say")


def test_resume_through_the_cli(trained, tmp_path, capsys):
    import shutil
    run = tmp_path / "again"
    shutil.copytree(trained, run)
    assert main(["train", "--resume", str(run), "--steps", "30", "--quiet", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["steps"] == 30


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/file.txt"], "no such corpus"),
    (["train", "--layers", "0"], "layers must be"),
    (["train", "--dropout", "1.5"], "dropout must be"),
    (["train", "--model", "transformer"], "model must be one of"),
    (["train", "--hidden", "-4"], "hidden must be"),
    (["train", "--lr", "nan"], "lr must be a finite number"),
    (["train", "--fractions", "0.5,0.6,0"], "add up to 1"),
    (["train", "--layers", "two"], "invalid int value"),
    (["train", "--tie", "--embed", "8"], "embed must equal hidden"),
    (["train", "--weight-drop", "1.5"], "weight_drop must be in"),
    (["train", "--embed-dropout", "-0.1"], "embed_dropout must be in"),
    (["train", "--dropout", "0.2", "--dropout-output", "0.2"], "set one kind"),
    (["train", "--ar-alpha", "-2"], "ar_alpha must be in"),
    (["train", "--optimizer", "ntasgd", "--nonmono", "0"], "nonmono must be"),
    (["train", "--engine", "numpy", "--weight-drop", "0.2"], "torch-engine option"),
    (["evaluate", "/no/such/checkpoint"], "no such checkpoint"),
    (["generate", "/no/such/checkpoint"], "no such checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"\x00\xff\x00binary", b"caf\xe9", b"   \n "])
def test_bad_data_files(tmp_path, content, capsys):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing left behind
    assert data.read_bytes() == content  # the user's file is untouched


def test_beam_search_from_the_command_line(trained, capsys):
    args = ["generate", str(trained), "--prompt", "you", "--beam", "4", "--max-new-tokens", "6", "--json"]
    assert main(args) == 0
    text = last_json(capsys.readouterr().out)["text"]
    assert main([*args, "--seed", "9"]) == 0  # deterministic: the seed does not matter
    assert last_json(capsys.readouterr().out)["text"] == text and text.startswith("you")


def test_bad_generate_options(trained, capsys):
    for extra in (["--temperature", "0"], ["--top-p", "2"], ["--top-k", "0"], ["--max-new-tokens", "-1"],
                  ["--beam", "0"], ["--beam", "3", "--top-k", "2"]):
        assert main(["generate", str(trained), *extra]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_existing_output_directory_is_kept(trained, capsys):
    before = sorted(p.name for p in trained.iterdir())
    assert main(["train", *TINY, "--out", str(trained)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in trained.iterdir()) == before


def test_corpora_lists_bundled(capsys):
    assert main(["corpora", "--json"]) == 0
    names = {row["name"] for row in last_json(capsys.readouterr().out)}
    assert names == {"timemachine", "tinyshakespeare", "toy"}


def test_real_process_exit_code_and_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "train", "--data", str(bad)],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "binary" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("model, extra", [("ngram", ["--order", "3"]),
                                          ("hmm", ["--states", "4", "--hmm-iter", "3"])])
def test_baselines_through_train_evaluate_generate(tmp_path, capsys, model, extra):
    run = tmp_path / model
    assert main(["train", "--model", model, *extra, "--data", "toy", "--tokenizer", "word", "--quiet",
                 "--out", str(run), "--json"]) == 0
    trained = last_json(capsys.readouterr().out)
    assert trained["train_loss"] is None and trained["val_loss"] < 2.0
    assert main(["evaluate", str(run), "--json"]) == 0
    assert last_json(capsys.readouterr().out)["loss"] == pytest.approx(trained["val_loss"])
    args = ["generate", str(run), "--prompt", "you say", "--max-new-tokens", "6", "--seed", "2", "--top-k", "3",
            "--json"]
    assert main(args) == 0
    text = last_json(capsys.readouterr().out)["text"]
    assert main(args) == 0
    assert last_json(capsys.readouterr().out)["text"] == text and text.startswith("you say")
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["rnn", "rnn_relu", "gru", "lstm"])
def test_gradcheck_command(model, capsys):
    assert main(["gradcheck", "--model", model, "--layers", "2", "--bidirectional", "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["max_rel_error"] < 1e-6 and "rnn.weight_hh_l1_reverse" in result["errors"]


def test_bpe_subwords_train_evaluate_generate(tmp_path, capsys):
    run = tmp_path / "bpe"
    assert main(["train", "--data", "toy", "--tokenizer", "bpe", "--bpe-vocab", "280", "--layers", "1",
                 "--hidden", "32", "--embed", "16", "--batch-size", "4", "--seq-len", "8", "--steps", "30",
                 "--lr", "0.02", "--quiet", "--out", str(run), "--json"]) == 0
    trained = last_json(capsys.readouterr().out)
    assert trained["val_bpc"] < trained["val_loss"] / 0.693  # a token covers several characters
    assert main(["generate", str(run), "--prompt", "you say", "--max-new-tokens", "5", "--seed", "1", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["text"].startswith("you say")


def test_adaptive_softmax_word_model_end_to_end(tmp_path, capsys):
    run = tmp_path / "adaptive"
    assert main(["train", "--data", "timemachine", "--tokenizer", "word", "--adaptive-softmax", "--cutoffs", "200,1000",
                 "--layers", "1", "--hidden", "32", "--embed", "16", "--batch-size", "8", "--seq-len", "16",
                 "--steps", "10", "--eval-interval", "10", "--eval-max-tokens", "2000", "--quiet",
                 "--out", str(run), "--json"]) == 0
    trained = last_json(capsys.readouterr().out)
    assert 0 < trained["val_loss"] < 9.0
    assert main(["evaluate", str(run), "--max-tokens", "2000", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["loss"] == pytest.approx(trained["val_loss"], rel=1e-4)
    assert main(["generate", str(run), "--prompt", "The Time", "--max-new-tokens", "5", "--seed", "1"]) == 0
    assert main(["train", "--engine", "numpy", "--adaptive-softmax"]) == 2


def test_control_characters_in_input_are_escaped_in_the_one_line(capsys):
    assert main(["train", "--model", "ls\x1etm\n\x1b[31m"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err and "\\x1e" in err


def test_regularised_training_through_the_cli_evaluates_in_both_engines(tmp_path, capsys):
    run = tmp_path / "awd"
    awd = ["--layers", "2", "--embed-dropout", "0.1", "--dropout-input", "0.2", "--dropout-hidden", "0.2",
           "--dropout-output", "0.2", "--weight-drop", "0.3", "--ar-alpha", "2", "--tar-beta", "1",
           "--optimizer", "ntasgd", "--lr", "1", "--nonmono", "2"]
    assert main(["train", *TINY, *awd, "--out", str(run), "--json"]) == 0
    trained = last_json(capsys.readouterr().out)
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["model"]["weight_drop"] == 0.3 and saved["train"]["optimizer"] == "ntasgd"
    assert saved["train"]["tar_beta"] == 1.0 and saved["model"]["dropout"] == 0.0
    for engine in ("torch", "numpy"):
        assert main(["evaluate", str(run), "--engine", engine, "--json"]) == 0
        assert last_json(capsys.readouterr().out)["loss"] == pytest.approx(trained["best_val_loss"], rel=1e-5)


def test_commands_without_a_model_start_without_torch(tmp_path):
    """`prepare`, `presets`, `corpora` and `--help` never import torch (seconds of start-up), and
    the package still offers rnnkit.train / rnnkit.evaluate as functions once the modules load."""
    import subprocess
    import sys
    data = tmp_path / "t.txt"
    data.write_text("some text to prepare\n" * 50)
    script = ("import sys, contextlib, io\nfrom rnnkit.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    codes = [main(['presets']), main(['corpora', '--json']),\n"
              f"             main(['prepare', '--data', {str(data)!r}, '--out', {str(tmp_path / 'p')!r}, '--quiet'])]\n"
              "print(codes, 'torch' in sys.modules)\n"
              "import rnnkit, rnnkit.train, rnnkit.evaluate\n"
              "print(callable(rnnkit.train) and callable(rnnkit.evaluate), rnnkit.train.__module__)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[0, 0, 0] False", "True rnnkit.train"]
