"""`rnnkit bench`: the shape of what it reports (never its speed), the rnnkit row's code path,
and bad options as one line with exit code 2."""

import json
import math

import pytest

from rnnkit.cli import main
from rnnkit.errors import ConfigError
from rnnkit.studies.bench import IMPLS, BenchOptions, format_table, resolve_configs, run_bench

FIELDS = {
    "config",
    "impl",
    "model",
    "precision",
    "vocab",
    "layers",
    "hidden",
    "embed",
    "batch",
    "seq_len",
    "tokens_per_s",
    "ms_per_step",
    "ms_per_step_min",
    "ms_per_step_max",
    "steps_per_repeat",
    "repeats",
    "peak_mem_mib",
    "ratio_to_plain",
    "ratio_paired",
    "round_seconds",
    "device",
    "device_name",
    "torch",
    "threads",
    "date",
}


def check_rows(rows: list[dict], configs: set[str], repeats: int) -> None:
    assert {row["config"] for row in rows} == configs
    for config in configs:
        assert sorted(row["impl"] for row in rows if row["config"] == config) == sorted(IMPLS)
    for row in rows:
        assert set(row) == FIELDS
        assert row["device"] == "cpu" and row["precision"] == "fp32" and row["repeats"] == repeats
        assert row["tokens_per_s"] > 0 and math.isfinite(row["tokens_per_s"])
        assert row["ms_per_step_min"] <= row["ms_per_step"] <= row["ms_per_step_max"]
        assert row["ratio_to_plain"] > 0 and row["ratio_paired"] > 0
        assert len(row["round_seconds"]) == repeats and all(s > 0 for s in row["round_seconds"])
        assert row["peak_mem_mib"] is None or row["peak_mem_mib"] >= 0
        # the ratio is computed from the same run's plain row
        plain = next(r for r in rows if r["config"] == row["config"] and r["impl"] == "plain")
        assert row["ratio_to_plain"] == pytest.approx(row["tokens_per_s"] / plain["tokens_per_s"], rel=1e-3)


def test_quick_api_rows():
    rows = run_bench(BenchOptions(device="cpu", quick=True, repeats=2))
    check_rows(rows, {"tiny-rnn", "tiny-gru", "tiny-lstm"}, repeats=2)
    table = format_table(rows)
    assert "tiny-lstm" in table and "cell-loop" in table and "vs plain" in table


def test_quick_cli_json(capsys):
    assert main(["bench", "--quick", "--device", "cpu", "--configs", "tiny-lstm", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = json.loads(out[-1])
    check_rows(rows, {"tiny-lstm"}, repeats=3)
    assert any(line.startswith("tiny-lstm") and "rnnkit" in line for line in out[:-1])  # the table


def test_rnnkit_row_runs_the_trainer(monkeypatch):
    """The `rnnkit` implementation must time Trainer.train_step, the path `rnnkit train` takes."""
    from rnnkit.train import Trainer

    calls = []
    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: (calls.append(self.step), original(self))[1])
    rows = run_bench(
        BenchOptions(
            device="cpu", configs=("tiny-gru",), impls=("rnnkit", "plain"), repeats=2, warmup=1, seconds_per_repeat=0.0
        )
    )
    assert [row["impl"] for row in rows] == ["rnnkit", "plain"]
    assert len(calls) >= 1 + 1 + 2  # warm-up, calibration, two repeats


def test_group_names_expand():
    names = [spec.name for spec in resolve_configs(["char-2x512", "word-2x650", "char-2x512-lstm"])]
    assert names == ["char-2x512-rnn", "char-2x512-gru", "char-2x512-lstm", "word-2x650"]


@pytest.mark.parametrize(
    "options", [{"configs": ("char-9x9",)}, {"impls": ("jax",)}, {"repeats": 0}, {"device": "tpu"}, {"configs": ()}]
)
def test_bad_options_raise(options):
    with pytest.raises(ConfigError):
        BenchOptions(**options)


@pytest.mark.parametrize(
    "argv", [["--configs", "nonsense"], ["--configs", "tiny-lstm,bogus"], ["--impls", "plain,jax"], ["--repeats", "0"]]
)
def test_bad_cli_options_exit_2_with_one_line(argv, capsys):
    assert main(["bench", "--device", "cpu", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit bench: error:")


def test_cuda_without_gpu_exits_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["bench", "--device", "cuda", "--quick"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_scan_models_and_the_cho_gru_have_no_plain_pytorch_row_and_get_cross_ratios():
    import torch

    from rnnkit.studies.bench import cross_ratios, impls_for, spec_named

    options, cpu = BenchOptions(device="cpu"), torch.device("cpu")
    assert impls_for(options, cpu, False, spec_named("long-512-mingru")) == ("rnnkit", "numpy")
    assert impls_for(options, cpu, False, spec_named("char-2x512-gru-cho")) == ("rnnkit", "numpy")
    assert impls_for(options, cpu, False, spec_named("long-512-gru")) == IMPLS
    assert spec_named("long-512-minlstm").seq_len == 512
    rows = [
        {"config": c, "impl": i, "precision": "fp32", "tokens_per_s": t}
        for c, i, t in (
            ("long-512-mingru", "rnnkit", 300.0),
            ("long-512-gru", "rnnkit", 100.0),
            ("long-512-lstm", "rnnkit", 150.0),
            ("long-512-gru", "plain", 120.0),
        )
    ]
    assert {(r["config"], r["against"], r["speed_ratio"]) for r in cross_ratios(rows)} == {
        ("long-512-mingru", "long-512-gru", 3.0),
        ("long-512-mingru", "long-512-lstm", 2.0),
    }


@pytest.mark.slow
def test_long_sequence_group_times_the_scan_models_beside_gru_and_lstm():
    from rnnkit.studies.bench import cross_ratios

    rows = run_bench(
        BenchOptions(
            device="cpu",
            quick=True,
            repeats=1,
            configs=("tiny-long", "tiny-gru-cho", "tiny-gru"),
            impls=("rnnkit", "plain", "numpy"),
        )
    )
    impls = {(row["config"], row["impl"]) for row in rows}
    assert ("tiny-long-mingru", "rnnkit") in impls and ("tiny-long-minlstm", "numpy") in impls
    assert ("tiny-long-mingru", "plain") not in impls  # PyTorch has no minGRU module to compare with
    assert ("tiny-long-gru", "plain") in impls and ("tiny-gru-cho", "plain") not in impls
    assert all(row["seq_len"] == 64 for row in rows if row["config"].startswith("tiny-long"))
    ratios = {(r["config"], r["against"], r["impl"]): r["speed_ratio"] for r in cross_ratios(rows)}
    speed = {(row["config"], row["impl"]): row["tokens_per_s"] for row in rows}
    assert ratios[("tiny-long-mingru", "tiny-long-gru", "rnnkit")] == pytest.approx(
        speed[("tiny-long-mingru", "rnnkit")] / speed[("tiny-long-gru", "rnnkit")], rel=1e-3
    )
    assert ("tiny-gru-cho", "tiny-gru", "numpy") in ratios
    assert "tiny-gru-cho / tiny-gru (rnnkit, fp32)" in format_table(rows)
