"""rnnkit.studies.plot: metrics of several runs on one figure; bad runs and metrics refused."""

import json

import pytest
from conftest import tiny_config

from rnnkit.cli import main
from rnnkit.errors import ConfigError, DataError
from rnnkit.studies.plot import plot_runs, run_labels
from rnnkit.train import train

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs that differ only in clipping (as in the README's clipping recipe)."""
    base = tmp_path_factory.mktemp("plot")
    runs = []
    for name, clip in (("noclip", None), ("clip1", 1.0)):
        config = tiny_config(base / name, steps=10, eval_interval=5, log_interval=2, clip=clip, lr=0.05)
        runs.append(train(config).checkpoint)
    return runs


def test_plot_two_runs_through_the_cli(two_runs, tmp_path, capsys):
    out = tmp_path / "grad.png"
    args = ["plot", *two_runs, "--metric", "grad_norm", "--log-y", "--out", str(out), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.read_bytes()[:8] == PNG
    assert [run["run"] for run in result["runs"]] == ["noclip", "clip1"]
    assert all(run["points"] == 6 and run["max"] >= run["min"] > 0 for run in result["runs"])
    assert main(["plot", *two_runs, "--x", "elapsed_s", "--out", str(tmp_path / "val.svg")]) == 0
    assert "noclip: 2 points" in capsys.readouterr().out  # evaluations at steps 5 and 10


def test_the_metric_against_the_step_as_logged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"step": 1, "train_loss": 3.0, "lr": 0.1, "grad_norm": 5.0},
        {"step": 2, "train_loss": 2.0, "lr": 0.1, "grad_norm": None, "val_loss": 2.5},
        {"step": 3, "train_loss": 1.5, "lr": 0.1, "grad_norm": 2.0},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = plot_runs([run], "grad_norm", out=tmp_path / "g.png")
    assert result["runs"][0] == {
        "run": "run",
        "points": 2,
        "min": 2.0,
        "max": 5.0,
        "first": 5.0,
        "last": 2.0,
        "last_x": 3.0,
    }
    with pytest.raises(DataError, match="no val_loss values against elapsed_s"):
        plot_runs([run], "val_loss", x="elapsed_s", out=tmp_path / "v.png")
    assert not (tmp_path / "v.png").exists()


def test_labels_stay_apart_when_names_collide(tmp_path):
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == [
        str(tmp_path / "a" / "run"),
        str(tmp_path / "b" / "run"),
    ]
    assert run_labels([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]


def test_refusals(two_runs, tmp_path):
    with pytest.raises(ConfigError, match="--metric must be one of"):
        plot_runs(two_runs, "accuracy", out=tmp_path / "a.png")
    with pytest.raises(ConfigError, match="--x must be one of"):
        plot_runs(two_runs, x="epoch", out=tmp_path / "a.png")
    with pytest.raises(DataError, match="no such run directory"):
        plot_runs([two_runs[0], tmp_path / "missing"], out=tmp_path / "a.png")
    with pytest.raises(DataError, match="no metrics.jsonl"):
        plot_runs([tmp_path], out=tmp_path / "a.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(ConfigError, match="--out must name"):
        plot_runs(two_runs, out=notes)
    assert notes.read_text() == "keep me" and not (tmp_path / "a.png").exists()


@pytest.mark.parametrize(
    "extra, message", [(["--metric", "nope"], "--metric must be one of"), (["--out", "x.jsonl"], "--out must name")]
)
def test_cli_errors_are_one_line(two_runs, capsys, extra, message):
    assert main(["plot", *two_runs, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_run_directory_is_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such run directory" in err and len(err.splitlines()) == 1


def test_reference_lines(two_runs, tmp_path, capsys):
    from rnnkit.studies.plot import parse_reference

    assert parse_reference("1.886:nanoGPT CPU, 2 min") == (1.886, "nanoGPT CPU, 2 min")
    assert parse_reference("2") == (2.0, "")
    for bad in ("abc:label", "nan", "inf:x", ""):
        with pytest.raises(ConfigError, match="--reference"):
            parse_reference(bad)
    plain, marked = tmp_path / "plain.svg", tmp_path / "marked.svg"
    assert main(["plot", *two_runs, "--out", str(plain)]) == 0
    assert main(["plot", *two_runs, "--out", str(marked), "--reference", "3.5:target"]) == 0
    dashes = [path.read_text().count("stroke-dasharray") for path in (plain, marked)]
    assert dashes[0] == 0 and dashes[1] >= 1  # the dashed line (and its legend entry)
    assert main(["plot", *two_runs, "--out", str(tmp_path / "x.png"), "--reference", "x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_plot_returns_the_figure_and_draws_into_given_axes(tmp_path):
    from matplotlib.figure import Figure

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": s, "train_loss": 3.0 / s, "val_loss": 3.5 / s} for s in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = plot_runs([run], "train_loss", out=tmp_path / "own.png")
    assert isinstance(result.figure, Figure) and result.figure.axes[0].lines[0].get_ydata().tolist() == [3.0, 1.5, 1.0]
    assert json.loads(json.dumps(result)) == dict(result)  # still plain JSON data for --json
    assert result._repr_png_()[:8] == PNG  # what a notebook shows when the result is a cell's value
    mine = Figure()
    left, right = mine.subplots(1, 2)
    drawn = plot_runs([run], "val_loss", out=tmp_path / "mine.png", ax=right)
    assert drawn.figure is mine and len(right.lines) == 1 and not left.lines
    assert (tmp_path / "mine.png").read_bytes()[:8] == PNG


def test_gradient_plot_returns_the_figure(tmp_path):
    from rnnkit.studies.diagnostics import GradientProfile, plot_gradients

    profile = GradientProfile(
        label="lstm",
        model="lstm",
        layers=1,
        hidden=4,
        source="fresh",
        data="toy",
        norms=[1.0, 0.5, 0.25, 0.0],
        sequences=2,
        singular_values=[{"stacked": 1.2}],
    )
    figure = plot_gradients([profile], tmp_path / "g.png", "title")
    assert figure.axes[0].get_yscale() == "log" and (tmp_path / "g.png").read_bytes()[:8] == PNG
