"""rnnkit.studies.cloze: a masked character from one side or both; `train --bidirectional` refused."""

import json
import random

import pytest
import torch

from rnnkit.cli import main
from rnnkit.errors import ConfigError, DataError
from rnnkit.studies.cloze import ClozeModel, ClozeOptions, cloze, masked_windows, report_lines

TINY = [
    "--data",
    "toy",
    "--budget-seconds",
    "30",
    "--steps",
    "15",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--context",
    "4",
    "--eval-windows",
    "200",
    "--device",
    "cpu",
    "--quiet",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def doubled_letters(count: int = 10_000, seed: int = 0) -> str:
    """Random letters from eight, each written twice ("ccaahh..."): a masked letter is named by
    its twin, which is on the right half the time, where only the bidirectional model looks."""
    rng = random.Random(seed)
    return "".join(2 * rng.choice("abcdefgh") for _ in range(count))


def test_reading_both_sides_fills_gaps_the_left_side_cannot(text_file, capsys):
    # left side only: the first letter of a pair is a blind guess among 8, so its accuracy is at
    # most 1/2 + 1/2 * 1/8 = 56%; both sides: every gap has its twin in view (92% here, 60 steps)
    doubled = str(text_file(doubled_letters()))
    args = [
        "cloze",
        "--data",
        doubled,
        "--bidirectional",
        "--steps",
        "60",
        "--budget-seconds",
        "60",
        "--context",
        "2",
        "--hidden",
        "16",
        "--embed",
        "8",
        "--lr",
        "0.03",
        "--eval-windows",
        "500",
        "--device",
        "cpu",
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {row["direction"]: row for row in report["results"]}
    assert set(rows) == {"unidirectional", "bidirectional"}
    assert all(row["steps"] == 60 and row["gaps"] == 500 for row in rows.values())
    assert rows["unidirectional"]["accuracy"] < 0.65  # the bound above, with room for sampling noise
    assert rows["bidirectional"]["accuracy"] > 0.85
    assert rows["bidirectional"]["parameters"] > rows["unidirectional"]["parameters"]  # H per direction
    assert 0.05 < report["majority"]["accuracy"] < 0.25  # one letter of eight
    out = "\n".join(report_lines(report))  # what the command prints without --json
    assert "unidirectional (left side only):" in out and "bidirectional (both sides):" in out
    gain = 100 * (rows["bidirectional"]["accuracy"] - rows["unidirectional"]["accuracy"])
    assert f"reading the right-hand side too: {gain:+.1f} points of accuracy" in out


def test_without_the_flag_only_the_unidirectional_model(capsys):
    assert main(["cloze", *TINY, "--model", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "unidirectional" in out and "bidirectional (both sides)" not in out and "--bidirectional" in out


def test_only_the_bidirectional_model_reads_the_right_side():
    torch.manual_seed(0)
    options = ClozeOptions(context=3, embed=4, hidden=5)
    windows = torch.randint(0, 9, (2, 7))
    changed = windows.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 9  # everything right of the gap
    for bidirectional, sees_right in ((False, False), (True, True)):
        model = ClozeModel(9, options, bidirectional).eval()
        with torch.no_grad():
            same = torch.allclose(model(windows), model(changed))
        assert same is not sees_right


def test_masked_windows():
    ids = torch.arange(10, 20)
    windows, targets = masked_windows(ids, torch.tensor([2, 7]), 2, mask_id=99)
    assert windows.tolist() == [[10, 11, 99, 13, 14], [15, 16, 99, 18, 19]]
    assert targets.tolist() == [12, 17]


def test_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="gru, lstm"):
        cloze("toy", ClozeOptions(model="rnn"))
    with pytest.raises(ConfigError, match="budget_seconds"):
        cloze("toy", ClozeOptions(budget_seconds=0))
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 3)
    with pytest.raises(DataError, match="lower --context"):
        cloze(str(short), ClozeOptions(context=16), log=lambda _m: None)


@pytest.mark.parametrize(
    "args, message",
    [
        (["cloze", "--model", "rnn"], "must be one of gru, lstm"),
        (["cloze", "--context", "0"], "context must be"),
        (["train", "--bidirectional"], "cannot be bidirectional"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_train_bidirectional_points_to_cloze(tmp_path, capsys):
    assert main(["train", "--bidirectional", "--data", "toy", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "rnnkit cloze" in err and "predict" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_both_sides_beat_one_side_on_real_text():
    report = cloze(
        "timemachine", ClozeOptions(budget_seconds=60, steps=400, device="cpu", eval_windows=2000), log=lambda _m: None
    )
    rows = {row["direction"]: row["accuracy"] for row in report["results"]}
    assert rows["bidirectional"] > rows["unidirectional"] + 0.05
