"""Device selection: auto prefers CUDA, then Apple's MPS, then the CPU (availability faked here;
real Apple hardware is untested)."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit import _mps_fallback
from rnnkit.runtime import resolve_device


@pytest.fixture
def gpus(monkeypatch):
    def fake(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return fake


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(gpus, cuda, mps, expected):
    gpus(cuda, mps)
    assert resolve_device("auto") == torch.device(expected)


def test_named_devices_must_exist(gpus):
    gpus(False, True)
    assert resolve_device("mps") == torch.device("mps") and resolve_device("cpu") == torch.device("cpu")
    gpus(False, False)
    with pytest.raises(rnnkit.ConfigError, match="--device mps .* no Apple GPU"):
        resolve_device("mps")
    with pytest.raises(rnnkit.ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_mps_is_a_device_option_everywhere():
    from rnnkit.cli import build_parser

    assert rnnkit.TrainConfig(device="mps").device == "mps"
    for command in ("train", "evaluate", "generate"):
        args = build_parser(command).parse_args([command, *(["RUN"] if command != "train" else []), "--device", "mps"])
        assert args.device == "mps"


def test_cpu_fallback_is_switched_on_for_macos_only():
    environ: dict[str, str] = {}
    _mps_fallback(environ, "linux")
    assert environ == {}
    _mps_fallback(environ, "darwin")
    assert environ == {"PYTORCH_ENABLE_MPS_FALLBACK": "1"}
    environ["PYTORCH_ENABLE_MPS_FALLBACK"] = "0"  # the user's own choice is kept
    _mps_fallback(environ, "darwin")
    assert environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "0"
