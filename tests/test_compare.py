"""`rnnkit compare` end to end on the toy corpus: table, compare.json, compare.png, --json, errors."""

import contextlib
import io
import json
import math
import sys

import pytest

from rnnkit.cli import main
from rnnkit.errors import ConfigError, MissingExtraError
from rnnkit.studies.compare import ModelSpec, parse_models, plot_comparison

TINY = [
    "--data",
    "toy",
    "--tokenizer",
    "word",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--lr",
    "0.02",
    "--device",
    "cpu",
    "--seed",
    "3",
]
FIELDS = (
    "model",
    "parameters",
    "train_seconds",
    "val_loss",
    "val_ppl",
    "val_bpc",
    "test_loss",
    "test_bpc",
    "steps",
    "checkpoint",
)
NUMBERS = ("parameters", "train_seconds", "val_loss", "val_ppl", "val_bpc", "test_loss", "test_bpc", "steps")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One comparison of two baselines and two neural models, 1 s of training each."""
    out = tmp_path_factory.mktemp("compare") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "compare",
                *TINY,
                "--models",
                "ngram:2,hmm:4,rnn,lstm",
                "--budget-seconds",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
    assert code == 0
    return out, stdout.getvalue()


def test_markdown_table(compared):
    _, stdout = compared
    lines = stdout.strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["model", "parameters", "train s", "val loss", "val ppl", "val bpc", "test bpc"]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["ngram:2", "hmm:4", "rnn", "lstm"]


def test_compare_json_rows(compared):
    out, _ = compared
    rows = json.loads((out / "compare.json").read_text())
    assert [row["model"] for row in rows] == ["ngram:2", "hmm:4", "rnn", "lstm"]
    for row in rows:
        assert set(FIELDS) <= set(row)
        assert all(isinstance(row[key], (int, float)) and math.isfinite(row[key]) for key in NUMBERS), row
        assert row["val_ppl"] == pytest.approx(math.exp(row["val_loss"]))
        assert (out / row["model"].replace(":", "-") / "best").is_dir()
        assert row["checkpoint"].endswith("best")
    assert len({row["val_tokens"] for row in rows}) == 1 and len({row["test_tokens"] for row in rows}) == 1
    assert [row["steps"] > 0 for row in rows] == [False, False, True, True]
    assert rows[0]["val_loss"] < 0.5  # a bigram model all but knows the toy sentence


def test_compare_png(compared):
    out, _ = compared
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_neural_curves_have_points(compared):
    out, _ = compared
    for name in ("rnn", "lstm"):
        records = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert sum(r.get("val_loss") is not None for r in records) >= 1  # more unless the CPU is contended
        assert records[-1]["elapsed_s"] >= 1.0  # trained until the budget ran out


def test_json_output_no_test_split_and_existing_out(tmp_path, capsys):
    out = tmp_path / "json"
    args = [
        "compare",
        *TINY,
        "--models",
        "ngram:2,rnn",
        "--budget-seconds",
        "0.5",
        "--fractions",
        "0.9,0.1,0",
        "--out",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out.strip().splitlines()[-1])
    assert [row["model"] for row in rows] == ["ngram:2", "rnn"]
    assert all(row["test_loss"] is None and row["test_bpc"] is None for row in rows)
    assert len(captured.err.strip().splitlines()) == 3  # the data line and one line per model
    before = sorted(p.name for p in out.iterdir())
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize(
    "models, message",
    [
        ("ngram:0", "order must be between 1 and 32"),
        ("transformer", "unknown model 'transformer'"),
        ("hmm:x", "hmm needs an integer states"),
        ("rnn,rnn", "twice"),
        ("gru:4", "takes no ':' size"),
        ("ngram", "ngram needs an integer order"),
        ("lstm,,rnn", "comma-separated"),
    ],
)
def test_bad_model_specs_exit_2(tmp_path, capsys, models, message):
    out = tmp_path / "never"
    assert main(["compare", *TINY, "--models", models, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--budget-seconds", "0"], "budget_seconds must be a positive"),
        (["--hidden", "0"], "hidden must be"),
        (["--data", "/no/such/file.txt"], "no such corpus"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["compare", *TINY, "--models", "ngram:2,rnn", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_parse_models():
    assert parse_models(" ngram:3, ngram:5,hmm:32,rnn_relu ") == [
        ModelSpec("ngram", 3),
        ModelSpec("ngram", 5),
        ModelSpec("hmm", 32),
        ModelSpec("rnn_relu"),
    ]
    assert [spec.dirname for spec in parse_models("ngram:3,lstm")] == ["ngram-3", "lstm"]
    with pytest.raises(ConfigError):
        parse_models("hmm:4,hmm:4")


def test_plot_without_matplotlib(compared, tmp_path, monkeypatch):
    out, _ = compared
    rows = json.loads((out / "compare.json").read_text())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'rnnkit\[plot\]'"):
        plot_comparison(rows, tmp_path, "title")
    assert not (tmp_path / "compare.png").exists()


def test_default_models_skip_the_hmm_without_hmmlearn_and_say_so(monkeypatch):
    import rnnkit.studies.compare as compare_module

    monkeypatch.setattr(compare_module, "has_module", lambda name: name != "hmmlearn")
    notes = []
    specs = compare_module._installed_defaults(parse_models(compare_module.DEFAULT_MODELS), notes.append)
    assert [spec.name for spec in specs] == ["ngram:3", "ngram:5", "rnn", "gru", "lstm"]
    assert len(notes) == 1 and "hmm:32" in notes[0] and "rnnkit[hmm]" in notes[0]
    monkeypatch.setattr(compare_module, "has_module", lambda name: True)
    assert compare_module._installed_defaults(
        parse_models(compare_module.DEFAULT_MODELS), notes.append
    ) == parse_models(compare_module.DEFAULT_MODELS)


def test_an_hmm_asked_for_by_name_needs_hmmlearn(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "hmmlearn", None)
    out = tmp_path / "c"
    assert main(["compare", *TINY, "--models", "ngram:2,hmm:4", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "rnnkit[hmm]" in err and len(err.splitlines()) == 1 and not out.exists()
