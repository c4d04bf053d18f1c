"""docs/reproduce.py: the registry matches the pages, and the documented figures still come out of their commands."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "reproduce.py"


def load_reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


reproduce = load_reproduce()


def test_every_documented_value_is_written_on_its_pages():
    pages = {name: path.read_text(encoding="utf-8") for name, path in reproduce.PAGES.items()}
    missing = [
        f"{figure.name}: {value.text!r}"
        for figure in reproduce.REGISTRY
        for value in figure.values
        if not any(value.text in pages[page] for page in figure.pages)
    ]
    assert missing == []


def test_every_figure_listed_as_not_reproduced_is_on_its_page_and_is_no_entry():
    pages = {name: path.read_text(encoding="utf-8") for name, path in reproduce.PAGES.items()}
    assert reproduce.NOT_REPRODUCED
    missing = [item.text for item in reproduce.NOT_REPRODUCED if item.text not in pages[item.page]]
    assert missing == []
    assert all(item.reason for item in reproduce.NOT_REPRODUCED)
    entries = {value.text for figure in reproduce.REGISTRY for value in figure.values}
    assert not entries & {item.text for item in reproduce.NOT_REPRODUCED}


def test_list_prints_the_entries_and_what_is_not_reproduced(capsys):
    assert reproduce.main(["--list"]) == 0
    printed = capsys.readouterr().out
    assert all(figure.name in printed for figure in reproduce.REGISTRY)
    assert all(repr(item.text) in printed for item in reproduce.NOT_REPRODUCED)


def test_registry_is_well_formed():
    names = [figure.name for figure in reproduce.REGISTRY]
    assert len(names) == len(set(names))
    for figure in reproduce.REGISTRY:
        assert figure.cost in reproduce.COSTS
        assert all(need in reproduce.BY_NAME for need in figure.needs)
        assert all(command.split()[0] in ("rnnkit", "python", "torchrun") for command in figure.commands)
        assert all((reproduce.DOCS / "img" / target).exists() for target in figure.images.values())


def test_every_command_names_an_existing_cli_command_or_script():
    """`rnnkit X` (or `torchrun ... -m rnnkit X`) names a subcommand of the CLI, and `python PATH` a file of this
    checkout; the argv that runs it uses this interpreter and that file."""
    from rnnkit.cli import build_parser

    subcommands = set(build_parser().commands)
    wrong = []
    for figure in reproduce.REGISTRY:
        for command in figure.commands:
            argv = shlex.split(command)
            if argv[0] == "torchrun":
                argv = argv[argv.index("rnnkit") :]
            if argv[0] == "rnnkit" and argv[1] not in subcommands:
                wrong.append(f"{figure.name}: {command}")
            scripts = [arg for arg in argv[1:] if arg.startswith(reproduce.SCRIPT_FOLDERS)]
            if argv[0] == "python" and not all((reproduce.ROOT / script).is_file() for script in scripts):
                wrong.append(f"{figure.name}: {command}")
            runnable = reproduce.command_argv(command)
            assert runnable[0] == sys.executable
            assert all(not arg.startswith(reproduce.SCRIPT_FOLDERS) for arg in runnable)
    assert wrong == []


def test_every_python_command_is_a_script_or_a_module():
    commands = [c for figure in reproduce.REGISTRY for c in figure.commands if c.startswith("python ")]
    assert commands, "the registry has benchmark entries"
    for command in commands:
        first = shlex.split(command)[1]
        assert first in ("-m", "-c") or first.startswith(reproduce.SCRIPT_FOLDERS), command


def test_number_reads_a_figure_from_text_and_says_when_it_is_missing():
    assert reproduce.number(r"\(([\d,]+) bytes\)", "as step.onnx (982,728 bytes)") == 982728
    with pytest.raises(ValueError, match="no match"):
        reproduce.number(r"ppl ([\d.]+)", "nothing here")


def test_train_summary_reads_the_lines_train_prints():
    stdout = (
        "trained 200 steps in 31.2 s (13,144 tokens/s on average) on cpu\n"
        "val loss 0.0213 nats/token, ppl 1.02, bpc 0.0308 (best val loss 0.0213)\n"
    )
    assert reproduce.train_summary(stdout) == {
        "steps": 200,
        "seconds": 31.2,
        "tokens_per_s": 13144,
        "val_loss": 0.0213,
        "val_ppl": 1.02,
        "val_bpc": 0.0308,
    }


def test_threads_ratios_pair_the_rounds():
    rows = [
        {"threads": 1, "tokens_per_s": 3000},
        {"threads": 2, "tokens_per_s": 6000},
        {"threads": 2, "tokens_per_s": 5000},
        {"threads": 1, "tokens_per_s": 2500},
    ]
    values = reproduce.extract_threads(Path("."), ["\n".join(json.dumps(row) for row in rows)])
    assert values["threads1.round1"] == 2500 and values["threads2.round0"] == 6000
    assert values["one_over_two.min"] == 0.5 and values["two_over_one.max"] == 2.0


def test_wall_seconds_of_each_command_are_recorded(tmp_path):
    figure = reproduce.Figure(
        "echo", ("README",), ('python -c "print(1)"', 'python -c "print(2)"'), lambda work, out: {}, (), cost="tiny"
    )
    reproduce.run_figure(figure, tmp_path, log=lambda line: None)
    seconds = reproduce.wall_seconds(tmp_path)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


@pytest.mark.skipif(not hasattr(__import__("os"), "wait4"), reason="os.wait4 reports a process's resource usage")
def test_cpu_time_and_peak_memory_of_each_command_are_recorded(tmp_path):
    """The 50 MB the second command holds shows in its peak memory, and its busy loop in its user CPU time."""
    figure = reproduce.Figure(
        "usage",
        ("README",),
        (
            'python -c "pass"',
            'python -c "import time; b = bytearray(50_000_000); t = time.process_time(); '
            "exec('while time.process_time() - t < 0.3: pass')\"",
        ),
        lambda work, out: {},
        (),
        cost="tiny",
    )
    reproduce.run_figure(figure, tmp_path, log=lambda line: None)
    small, large = reproduce.usage(tmp_path)
    assert large["peak_rss_bytes"] - small["peak_rss_bytes"] > 40e6
    assert large["user_s"] + large["system_s"] >= 0.25 > small["user_s"] + small["system_s"]


def test_a_failing_command_is_reported_with_its_last_lines(tmp_path):
    figure = reproduce.Figure(
        "fails", ("README",), ("python -c \"import sys; sys.exit('no such run')\"",), lambda w, o: {}, (), cost="tiny"
    )
    with pytest.raises(reproduce.CommandFailed, match="exited with 1: no such run"):
        reproduce.run_figure(figure, tmp_path, log=lambda line: None)


def test_tolerances_accept_the_documented_value_and_reject_a_different_one():
    value = reproduce.Value("x", 2.4626, "2.4626", 0.0005)
    assert value.matches(2.4626) and value.matches(2.4630)
    assert not value.matches(2.4450) and not value.matches(None) and not value.matches(float("nan"))
    relative = reproduce.Value("x", 1.22e6, "1.22e6", 0.01, True)
    assert relative.matches(1.221e6) and not relative.matches(294.5)
    assert reproduce.Value("x", 13.0, "13.0 s", None).matches(99.0) is None  # timed: never fails


def test_needs_run_first_and_once():
    assert reproduce.order_with_needs(["gradients-trained", "evaluate-test"]) == [
        "tm-models",
        "gradients-trained",
        "evaluate-test",
    ]


def test_unknown_entry_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        reproduce.main(["no-such-figure"])
    assert stop.value.code == 2
    assert "unknown entry no-such-figure" in capsys.readouterr().err


def test_one_tiny_entry_runs_end_to_end(tmp_path):
    """The whole mechanism on the cheapest entry: the command runs, the JSON is read, the figures match."""
    lines: list[str] = []
    failures = reproduce.run_entries(["one-step"], tmp_path, update=False, log=lines.append)
    assert failures == 0, "\n".join(lines)
    assert sum(line.rstrip().endswith(" ok") for line in lines) == 3
    assert (tmp_path / "runs" / "one-step" / "metrics.jsonl").exists()


def test_a_changed_figure_is_reported(tmp_path):
    figure = reproduce.BY_NAME["one-step"]
    wrong = reproduce.Figure(
        figure.name,
        figure.pages,
        figure.commands,
        figure.extract,
        (reproduce.Value("val_loss", 4.0, "4.0"),),
        cost="tiny",
    )
    lines, failures = reproduce.compare_values(wrong, {"val_loss": 4.2134})
    assert failures == 1 and "DIFFERS" in lines[0]


# entries with at least one figure that does not depend on the machine's speed
CHECKED = [
    figure.name
    for figure in reproduce.REGISTRY
    if figure.cost != "heavy" and any(value.tolerance is not None for value in figure.values)
]


@pytest.fixture(scope="module")
def shared_workdir(tmp_path_factory):
    """One scratch directory for the slow tests, so the runs one entry needs are made once."""
    return tmp_path_factory.mktemp("reproduce"), set()


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKED)
def test_documented_figures_reproduce(name, shared_workdir):
    work, done = shared_workdir
    lines: list[str] = []
    failures = reproduce.run_entries([name], work, update=False, log=lines.append, done=done)
    assert failures == 0, "\n".join(lines)
