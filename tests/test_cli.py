"""End to end through the command line: --json outputs, and bad input as one line and exit code 2."""

import json
import os
import subprocess
import sys

import pytest

from rnnkit.cli import main

TINY = [
    "--data",
    "toy",
    "--tokenizer",
    "word",
    "--layers",
    "1",
    "--hidden",
    "32",
    "--embed",
    "16",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--steps",
    "20",
    "--eval-interval",
    "10",
    "--lr",
    "0.02",
    "--schedule",
    "constant",
    "--device",
    "cpu",
    "--quiet",
]


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


@pytest.mark.parametrize(
    "args, message",
    [
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
    ],
)
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
    for extra in (
        ["--temperature", "0"],
        ["--top-p", "2"],
        ["--top-k", "0"],
        ["--max-new-tokens", "-1"],
        ["--beam", "0"],
        ["--beam", "3", "--top-k", "2"],
    ):
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
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "train", "--data", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "binary" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("model, extra", [("ngram", ["--order", "3"]), ("hmm", ["--states", "4", "--hmm-iter", "3"])])
def test_baselines_through_train_evaluate_generate(tmp_path, capsys, model, extra):
    run = tmp_path / model
    assert (
        main(
            [
                "train",
                "--model",
                model,
                *extra,
                "--data",
                "toy",
                "--tokenizer",
                "word",
                "--quiet",
                "--out",
                str(run),
                "--json",
            ]
        )
        == 0
    )
    trained = last_json(capsys.readouterr().out)
    assert trained["train_loss"] is None and trained["val_loss"] < 2.0
    assert main(["evaluate", str(run), "--json"]) == 0
    assert last_json(capsys.readouterr().out)["loss"] == pytest.approx(trained["val_loss"])
    args = [
        "generate",
        str(run),
        "--prompt",
        "you say",
        "--max-new-tokens",
        "6",
        "--seed",
        "2",
        "--top-k",
        "3",
        "--json",
    ]
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
    assert (
        main(
            [
                "train",
                "--data",
                "toy",
                "--tokenizer",
                "bpe",
                "--bpe-vocab",
                "280",
                "--layers",
                "1",
                "--hidden",
                "32",
                "--embed",
                "16",
                "--batch-size",
                "4",
                "--seq-len",
                "8",
                "--steps",
                "30",
                "--lr",
                "0.02",
                "--quiet",
                "--out",
                str(run),
                "--json",
            ]
        )
        == 0
    )
    trained = last_json(capsys.readouterr().out)
    assert trained["val_bpc"] < trained["val_loss"] / 0.693  # a token covers several characters
    assert main(["generate", str(run), "--prompt", "you say", "--max-new-tokens", "5", "--seed", "1", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["text"].startswith("you say")


def test_adaptive_softmax_word_model_end_to_end(tmp_path, capsys):
    run = tmp_path / "adaptive"
    assert (
        main(
            [
                "train",
                "--data",
                "timemachine",
                "--tokenizer",
                "word",
                "--adaptive-softmax",
                "--cutoffs",
                "200,1000",
                "--layers",
                "1",
                "--hidden",
                "32",
                "--embed",
                "16",
                "--batch-size",
                "8",
                "--seq-len",
                "16",
                "--steps",
                "10",
                "--eval-interval",
                "10",
                "--eval-max-tokens",
                "2000",
                "--quiet",
                "--out",
                str(run),
                "--json",
            ]
        )
        == 0
    )
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
    awd = [
        "--layers",
        "2",
        "--embed-dropout",
        "0.1",
        "--dropout-input",
        "0.2",
        "--dropout-hidden",
        "0.2",
        "--dropout-output",
        "0.2",
        "--weight-drop",
        "0.3",
        "--ar-alpha",
        "2",
        "--tar-beta",
        "1",
        "--optimizer",
        "ntasgd",
        "--lr",
        "1",
        "--nonmono",
        "2",
    ]
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
    script = (
        "import sys, contextlib, io\nfrom rnnkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [main(['presets']), main(['corpora', '--json']),\n"
        f"             main(['prepare', '--data', {str(data)!r}, '--out', {str(tmp_path / 'p')!r}, '--quiet'])]\n"
        "print(codes, 'torch' in sys.modules)\n"
        "import rnnkit, rnnkit.train, rnnkit.evaluate\n"
        "print(callable(rnnkit.train) and callable(rnnkit.evaluate), rnnkit.train.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[0, 0, 0] False", "True rnnkit.train"]


# ---------------------------------------------------------------- help, typos, early checks


def _help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_train_help_is_grouped_with_types_choices_defaults_and_examples(capsys):
    from rnnkit.cli import TRAIN_GROUPS, TRAIN_OPTIONS, build_parser, option_default

    text = _help("train", capsys)
    positions = [text.index(f"\n{title}:\n") for title in TRAIN_GROUPS]
    assert positions == sorted(positions) and "\nexamples:\n  rnnkit train" in text
    assert "--model {rnn,rnn_relu,gru,lstm,ngram,hmm}" in text and "--hidden INT" in text and "--lr FLOAT" in text
    parser = build_parser(only="train")
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if not action.option_strings or action.dest == "help" or action.help == __import__("argparse").SUPPRESS:
            continue  # hidden: old spellings, accepted only to be refused with the new name
        assert action.help, action.dest
        takes_value = action.nargs != 0 and not isinstance(action, __import__("argparse").BooleanOptionalAction)
        if takes_value:
            assert action.metavar, f"--{action.dest} shows no type or choices"
        if action.dest in TRAIN_OPTIONS:
            section, field, *_ = TRAIN_OPTIONS[action.dest]
            if option_default(section, field) is not None:
                assert "(default" in action.help, action.dest
    grouped = {name for names in TRAIN_GROUPS.values() for name in names}
    assert set(TRAIN_OPTIONS) <= grouped


def test_generate_help_gives_every_option_a_help_and_a_default(capsys):
    from rnnkit.cli import build_parser

    assert "\nexamples:\n" in _help("generate", capsys)
    generate = build_parser(only="generate")._subparsers._group_actions[0].choices["generate"]
    for action in generate._actions:
        if action.option_strings and action.dest not in ("help", "json", "prompt_file"):
            assert action.help and "default" in action.help, action.dest


@pytest.mark.parametrize(
    "args, suggestion",
    [
        (["train", "--hiden", "3"], "did you mean --hidden?"),
        (["train", "--warmpu-steps", "3"], "did you mean --warmup-steps?"),
        (["generate", "run", "--temprature", "0.5"], "did you mean --temperature?"),
        (["trian"], "did you mean train?"),
        (["evaluate", "run", "--split", "tset"], "did you mean test?"),
    ],
)
def test_a_misspelt_option_or_choice_gets_did_you_mean(args, suggestion, capsys, monkeypatch):
    import rnnkit.cli

    def must_not_run(_args):  # a case that parsed (an abbreviation) must not start a real command
        raise AssertionError(f"{args} was accepted")

    for name, (help_text, add_options, _) in list(rnnkit.cli.SUBCOMMANDS.items()):
        monkeypatch.setitem(rnnkit.cli.SUBCOMMANDS, name, (help_text, add_options, must_not_run))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert suggestion in err and len(err.splitlines()) == 1


def test_an_existing_output_is_refused_before_the_data_is_read(trained, capsys):
    """--out is checked first: the missing --data would otherwise be the error (after loading)."""
    assert main(["train", "--data", "/no/such/text.txt", "--out", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "no such" not in err
    assert main(["train", "--model", "ngram", "--data", "/no/such/text.txt", "--out", str(trained)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_corpora_says_which_batch_shape_fits_the_toy_corpus(tmp_path, capsys):
    assert main(["corpora", "--json"]) == 0
    toy = next(row for row in last_json(capsys.readouterr().out) if row["name"] == "toy")
    shape = toy["batch_fits"]["word"]
    assert (shape["batch_size"], shape["seq_len"]) == (22, 64)  # 1,440 training words: 22 streams of 65
    assert toy["batch_fits"]["char"] == {"batch_size": 32, "seq_len": 64}  # the default fits
    assert main(["corpora"]) == 0
    listing = capsys.readouterr().out
    assert "toy with --tokenizer word" in listing and "--batch-size 22 --seq-len 64" in listing
    small = [
        "train",
        "--data",
        "toy",
        "--tokenizer",
        "word",
        "--layers",
        "1",
        "--hidden",
        "8",
        "--embed",
        "4",
        "--steps",
        "1",
        "--seq-len",
        "64",
        "--device",
        "cpu",
        "--quiet",
        "--sample-tokens",
        "0",
    ]
    assert main([*small, "--batch-size", "22", "--out", str(tmp_path / "fits")]) == 0
    assert main([*small, "--batch-size", "23", "--out", str(tmp_path / "too-big")]) == 2
    assert "too short" in capsys.readouterr().err


# ---------------------------------------------------------------- the end of a run, threads, encodings


def test_a_run_ends_with_a_labelled_sample_from_a_validation_prompt_and_next_commands(tmp_path, capsys):
    run = tmp_path / "first"
    args = ["train", *TINY, "--out", str(run), "--sample-tokens", "6"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    label = out[0]
    assert label.startswith("sample (temperature 0.8, prompt '") and "from the validation text" in label
    prompt = label.split("'")[1]
    assert out[1].startswith(prompt)
    from rnnkit.text.corpora import load_corpus

    assert prompt.split()[0] in load_corpus("toy").val
    tail = "\n".join(out[out.index("next:") :])
    for command in (
        f"rnnkit generate {run} --prompt",
        f"rnnkit evaluate {run}",
        f"rnnkit plot {run}",
        f"rnnkit train --resume {run} --steps 40",
    ):
        assert command in tail
    assert main(["train", *TINY, "--out", str(tmp_path / "json"), "--sample-tokens", "6", "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["sample_prompt"] == prompt and result["sample"].startswith(prompt)


def test_threads_option_sets_torch_threads_and_is_on_every_computing_command(tmp_path, capsys, monkeypatch):
    import torch

    from rnnkit.cli import COMPUTING
    from rnnkit.runtime import BLAS_THREAD_VARIABLES

    for name in BLAS_THREAD_VARIABLES:  # set_threads writes them; restored after the test
        monkeypatch.setenv(name, os.environ.get(name, ""))

    for command in COMPUTING:
        assert "--threads INT" in _help(command, capsys), command
    previous = torch.get_num_threads()
    try:
        assert main(["train", *TINY, "--out", str(tmp_path / "t"), "--threads", "1", "--steps", "2"]) == 0
        assert torch.get_num_threads() == 1 and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(previous)
    assert main(["train", *TINY, "--out", str(tmp_path / "bad"), "--threads", "0"]) == 2
    assert "--threads must be" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_text_the_console_cannot_encode_is_replaced_not_a_traceback(tmp_path, capsys):
    """cp1252 (Windows with redirected output) has no Cyrillic: the generated text is written
    with '?' in its place instead of raising UnicodeEncodeError."""
    text = tmp_path / "ru.txt"
    text.write_text("съешь же ещё этих мягких французских булок, да выпей чаю.\n" * 40, encoding="utf-8")
    run = tmp_path / "ru"
    assert (
        main(
            [
                "train",
                "--data",
                str(text),
                "--layers",
                "1",
                "--hidden",
                "16",
                "--embed",
                "8",
                "--batch-size",
                "4",
                "--seq-len",
                "16",
                "--steps",
                "2",
                "--device",
                "cpu",
                "--quiet",
                "--sample-tokens",
                "0",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONIOENCODING="cp1252")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnkit",
            "generate",
            str(run),
            "--prompt",
            "съешь",
            "--max-new-tokens",
            "20",
            "--seed",
            "1",
            "--threads",
            "1",
        ],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    assert b"Traceback" not in proc.stderr and proc.stdout.startswith(b"?????")


# ---------------------------------------------------------------- a plain install (no extras)

HIDE_EXTRAS = '''
"""Loaded by `site` at start-up: make the optional packages look uninstalled (a plain install)."""
import sys


class HideExtras:
    HIDDEN = ("matplotlib", "hmmlearn", "fastapi", "uvicorn")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HideExtras())
'''


def extras_hidden_env(tmp_path):
    """An environment whose Python cannot import matplotlib, hmmlearn, fastapi or uvicorn (see HIDE_EXTRAS)."""
    hide = tmp_path / "hide-extras"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(HIDE_EXTRAS)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(hide), *sys.path]), OMP_NUM_THREADS="1")


def run_without_extras(tmp_path, *args, timeout=300):
    """`python -m rnnkit ARGS` in a process where matplotlib and hmmlearn cannot be imported."""
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args],
        capture_output=True,
        text=True,
        env=extras_hidden_env(tmp_path),
        cwd=tmp_path,
        timeout=timeout,
    )


def test_without_the_extras_each_command_says_what_to_install_before_any_work(tmp_path, trained):
    """hmm, plot, gradients and serve without their extras: one line naming it, exit 2, nothing written;
    one process runs them all (a torch import per command would cost seconds each)."""
    out = tmp_path / "outputs"
    script = f"""
import contextlib, io, json, sys
from rnnkit.cli import main
results = []
for args in ({["train", "--model", "hmm", "--data", "toy", "--out", str(out / "hmm")]!r},
             {["gradients", "--model", "rnn", "--out", str(out / "grad")]!r},
             {["plot", str(trained), "--out", str(out / "plot.png")]!r},
             {["compare", "--models", "ngram:2,hmm:4", "--data", "toy", "--out", str(out / "cmp")]!r},
             {["serve", str(trained)]!r}):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=extras_hidden_env(tmp_path), timeout=300
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    expected = ["'rnnkit[hmm]'", "'rnnkit[plot]'", "'rnnkit[plot]'", "'rnnkit[hmm]'", "'rnnkit[serve]'"]
    for (code, err), extra in zip(json.loads(proc.stdout.splitlines()[-1]), expected, strict=True):
        assert code == 2 and extra in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # no run directory holding only config.json, no gradients.json, no PNG


def test_the_real_command_without_hmmlearn_exits_2_with_one_line(tmp_path):
    proc = run_without_extras(tmp_path, "train", "--model", "hmm", "--data", "toy", "--out", "hmm-run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "pip install 'rnnkit[hmm]'" in proc.stderr and not (tmp_path / "hmm-run").exists()


@pytest.mark.slow
def test_compare_with_its_default_models_runs_without_the_extras(tmp_path):
    """The default list includes hmm:32: without hmmlearn it is skipped with a note, and without
    matplotlib compare.png is skipped with a note; the table is still printed (exit 0)."""
    proc = run_without_extras(
        tmp_path,
        "compare",
        "--data",
        "toy",
        "--tokenizer",
        "word",
        "--budget-seconds",
        "0.5",
        "--hidden",
        "8",
        "--embed",
        "4",
        "--batch-size",
        "4",
        "--seq-len",
        "8",
        "--device",
        "cpu",
        "--out",
        "cmp",
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "skipped hmm:32" in proc.stderr and "skipped compare.png" in proc.stderr
    assert "| lstm |" in proc.stdout and "hmm" not in proc.stdout
    assert (tmp_path / "cmp" / "compare.json").is_file() and not (tmp_path / "cmp" / "compare.png").exists()
    assert not (tmp_path / "cmp" / "hmm-32").exists()
