"""Property-based bad input: whatever the bytes, options, prompts or checkpoint edits, the CLI ends
with exit code 0 or 2, and a failure is one line on stderr, no traceback, nothing left behind.

CI runs a few dozen examples per property; `pytest -m slow tests/test_fuzz.py` runs >= 1,000.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.cli import main

TINY = [
    "--layers",
    "1",
    "--hidden",
    "8",
    "--embed",
    "4",
    "--batch-size",
    "2",
    "--seq-len",
    "4",
    "--steps",
    "1",
    "--eval-interval",
    "1",
    "--sample-tokens",
    "0",
    "--device",
    "cpu",
    "--quiet",
    "--max-seconds",
    "20",
]  # a fuzzed huge --steps is valid: the time budget ends it
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run the CLI in-process; an uncaught exception (a traceback) fails the test by propagating."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as exit_info:  # argparse usage errors
            code = exit_info.code
    return code, err.getvalue()


def assert_clean_failure(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rnnkit"), err
        assert "Traceback" not in err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz") / "char"
    code, err = run_cli(["train", "--data", "toy", *TINY, "--steps", "3", "--out", str(run)])
    assert code == 0, err
    return run


# ----- the properties ------------------------------------------------------------------------


def random_bytes_as_data(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.txt", Path(tmp) / "out"
        data.write_bytes(content)
        code, err = run_cli(["train", "--data", str(data), *TINY, "--out", str(out)])
        assert_clean_failure(code, err)
        if code == 2:
            assert not out.exists()  # no partial run directory
        assert data.read_bytes() == content  # the user's file is untouched


INT_OPTIONS = [
    "--layers",
    "--hidden",
    "--embed",
    "--batch-size",
    "--seq-len",
    "--steps",
    "--epochs",
    "--eval-interval",
    "--log-interval",
    "--min-freq",
    "--max-size",
    "--order",
    "--states",
    "--warmup-steps",
    "--seed",
    "--sample-tokens",
    "--nonmono",
    "--max-new-tokens-not-an-option",
]
FLOAT_OPTIONS = [
    "--lr",
    "--dropout",
    "--weight-decay",
    "--momentum",
    "--clip",
    "--min-lr-ratio",
    "--max-seconds",
    "--embed-dropout",
    "--dropout-input",
    "--dropout-hidden",
    "--dropout-output",
    "--weight-drop",
    "--ar-alpha",
    "--tar-beta",
]
CHOICE_OPTIONS = [
    "--model",
    "--tokenizer",
    "--batching",
    "--optimizer",
    "--schedule",
    "--device",
    "--engine",
    "--on-nan",
    "--fractions",
    "--preset",
]
BAD_VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "-7",
            "nan",
            "inf",
            "-inf",
            "1e400",
            "",
            " ",
            "abc",
            "1.5",
            "10000000000000000000000",
            "0x10",
            "None",
            "true",
            "[]",
            "0,0,0",
            "1,1,1",
        ]
    ),
    st.text(max_size=12),
)


def invalid_option(option: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        args = ["train", "--data", "toy", *TINY, "--out", str(out), option, value]
        code, err = run_cli(args)
        assert_clean_failure(code, err)
        if code == 2:
            assert not out.exists()


def prompt_outside_vocabulary(checkpoint: Path, prompt: str) -> None:
    code, err = run_cli(["generate", str(checkpoint), f"--prompt={prompt}", "--max-new-tokens", "3", "--seed", "1"])
    assert_clean_failure(code, err)
    if code == 2 and prompt:
        assert "vocabulary lacks" in err or "no tokens" in err


GENERATE_OPTIONS = ["--temperature", "--top-k", "--top-p", "--beam", "--max-new-tokens", "--seed"]


def invalid_generate_option(checkpoint: Path, option: str, value: str, beam: bool) -> None:
    """A bad sampling value, alone or beside --beam (which refuses the sampling options)."""
    extra = ["--beam", "2"] if beam and option != "--beam" else []
    code, err = run_cli(["generate", str(checkpoint), "--max-new-tokens", "3", *extra, option, value])
    assert_clean_failure(code, err)


def corrupt_file(checkpoint: Path, name: str, cut: float, noise: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ckpt"
        shutil.copytree(checkpoint / "best", copy)
        target = copy / name
        data = target.read_bytes()
        target.write_bytes(data[: int(len(data) * cut)] + noise)
        for command in (
            ["evaluate", str(copy), "--max-tokens", "20"],
            ["generate", str(copy), "--max-new-tokens", "2"],
        ):
            assert_clean_failure(*run_cli(command))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def edited_config(checkpoint: Path, section: str, key: str, value) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ckpt"
        shutil.copytree(checkpoint / "best", copy)
        document = json.loads((copy / "config.json").read_text())
        if section == "top":
            document[key] = value
        else:
            document["config"][section][key] = value
        (copy / "config.json").write_text(json.dumps(document))
        assert_clean_failure(*run_cli(["evaluate", str(copy), "--max-tokens", "20"]))


CONFIG_KEYS = st.sampled_from(
    [
        ("model", "hidden"),
        ("model", "model"),
        ("model", "layers"),
        ("model", "vocab_size"),
        ("model", "tie"),
        ("model", "engine"),
        ("model", "unknown"),
        ("data", "tokenizer"),
        ("data", "fractions"),
        ("data", "seq_len"),
        ("train", "lr"),
        ("top", "format_version"),
        ("top", "format"),
        ("top", "config"),
    ]
)

# ----- CI-sized runs --------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_as_data(content):
    random_bytes_as_data(content)


@FAST
@given(st.sampled_from(INT_OPTIONS + FLOAT_OPTIONS + CHOICE_OPTIONS), BAD_VALUES)
def test_invalid_option_values(option, value):
    invalid_option(option, value)


@FAST
@given(prompt=st.text(max_size=20))
def test_prompts_outside_the_vocabulary(checkpoint, prompt):
    prompt_outside_vocabulary(checkpoint, prompt)


@FAST
@given(st.sampled_from(GENERATE_OPTIONS), BAD_VALUES, st.booleans())
def test_invalid_generate_options(checkpoint, option, value, beam):
    invalid_generate_option(checkpoint, option, value, beam)


@FAST
@given(st.sampled_from(["model.safetensors", "tokenizer.json", "config.json"]), st.floats(0, 1), st.binary(max_size=64))
def test_truncated_or_noisy_checkpoint_files(checkpoint, name, cut, noise):
    corrupt_file(checkpoint, name, cut, noise)


@FAST
@given(CONFIG_KEYS, JSON_VALUES)
def test_hand_edited_config_json(checkpoint, where, value):
    edited_config(checkpoint, *where, value)


def test_fixed_bad_files(tmp_path):
    for content in (b"", b" \n\t \n", "x" * 2_000_000, b"\xff\xfe\x00\x00bad", "\ufeff"):
        data = tmp_path / "data.txt"
        data.write_bytes(content.encode() if isinstance(content, str) else content)
        code, err = run_cli(["train", "--data", str(data), *TINY, "--out", str(tmp_path / "out")])
        assert_clean_failure(code, err)  # one enormous line of text trains (code 0) or fails cleanly
        shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_missing_checkpoint_files(checkpoint, tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        copy = tmp_path / name
        shutil.copytree(checkpoint / "best", copy)
        (copy / name).unlink()
        code, err = run_cli(["evaluate", str(copy)])
        assert code == 2 and "not an rnnkit checkpoint" in err


def test_vocabulary_mismatch_between_checkpoint_and_data(checkpoint, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Zebras quietly jump over wax. " * 50)
    code, err = run_cli(["evaluate", str(checkpoint), "--data", str(other)])
    assert code == 2 and "lacks" in err
    code, err = run_cli(["train", "--resume", str(checkpoint), "--data", str(other), "--steps", "5"])
    assert code == 2 and "cannot change data" in err


# ----- the thorough run: >= 1,000 examples in all ----------------------------------------------


@pytest.mark.slow
def test_thorough_fuzz(checkpoint):
    calls = []

    def counted(function):
        @functools.wraps(function)  # hypothesis reads the wrapped function's parameters
        def run(*args, **kwargs):
            calls.append(1)
            function(*args, **kwargs)

        return run

    THOROUGH(given(st.binary(max_size=300))(counted(random_bytes_as_data)))()
    every_option = st.sampled_from(INT_OPTIONS + FLOAT_OPTIONS + CHOICE_OPTIONS)
    THOROUGH(given(every_option, BAD_VALUES)(counted(invalid_option)))()
    THOROUGH(given(st.text(max_size=20))(counted(lambda prompt: prompt_outside_vocabulary(checkpoint, prompt))))()
    THOROUGH(
        given(st.sampled_from(GENERATE_OPTIONS), BAD_VALUES, st.booleans())(
            counted(lambda o, v, b: invalid_generate_option(checkpoint, o, v, b))
        )
    )()
    THOROUGH(
        given(
            st.sampled_from(["model.safetensors", "tokenizer.json", "config.json"]),
            st.floats(0, 1),
            st.binary(max_size=64),
        )(counted(lambda n, c, b: corrupt_file(checkpoint, n, c, b)))
    )()
    THOROUGH(given(CONFIG_KEYS, JSON_VALUES)(counted(lambda w, v: edited_config(checkpoint, *w, v))))()
    print(f"thorough fuzz: {len(calls)} examples")
    assert len(calls) >= 1000
