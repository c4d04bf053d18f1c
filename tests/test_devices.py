"""Device selection: auto prefers CUDA, then Apple's MPS, then the CPU (availability faked here;
real Apple hardware is untested)."""

from __future__ import annotations

import subprocess
import sys

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


ALLOCATE = """
import resource, sys
import numpy as np
from rnnkit.runtime import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else None
from rnnkit.config import ModelConfig
from rnnkit.models.numpy_lm import NumpyRNNLM
model = NumpyRNNLM(ModelConfig(model="lstm", layers=1, hidden=64, embed=16, vocab_size=69, engine="numpy"))
idx = np.random.default_rng(0).integers(0, 69, (32, 256))
model.score(idx, idx, None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # ten windows of an evaluation
    model.score(idx, idx, None)
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_tuned_allocator_reuses_large_temporaries_instead_of_faulting_them_in(tmp_path):
    """With glibc's defaults the NumPy forward's temporaries are page-faulted in again at every
    window (38,000 faults in 10 windows of 32x256 through a 1x64 LSTM); tuned, the heap keeps
    them and the windows after the first fault (almost) nothing."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    counts = {}
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", ALLOCATE, mode], capture_output=True, text=True, check=True)
        tuned, faults = out.stdout.split()
        counts[mode] = int(faults)
        if mode == "tuned":
            assert tuned == "True"
    assert counts["default"] > 10 * 1000  # the problem: every window faults its pages in again
    assert counts["tuned"] < counts["default"] / 20
