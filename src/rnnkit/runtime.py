"""The process around a run: which device, denormal flushing on the CPU, and where messages go.

Nothing here knows about models or data; every layer above may use it. torch is imported only
where a device or the denormal flag is asked of it, so a NumPy-only command (generate and score
on the CPU) never waits for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

# what a machine with a GPU driver has: NVIDIA's control device and driver file, AMD ROCm's
# kernel driver (torch.cuda on ROCm), WSL2's GPU bridge
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def gpu_may_be_present() -> bool:
    """False when this process certainly has no GPU for torch, decided without importing torch:
    CUDA_VISIBLE_DEVICES hides every device ("" or "-1"), or no GPU driver's device file exists
    (GPU_DEVICE_FILES). True means "ask torch" (torch.cuda.is_available() then decides)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(os.path.exists(path) for path in GPU_DEVICE_FILES)


def torch_loaded() -> bool:
    """Whether this process has imported torch already (asking it anything is then free)."""
    return "torch" in sys.modules


def runs_on_cpu(name: str) -> bool:
    """Whether device `name` (auto, cpu or cuda) means the CPU, as resolve_device decides it, but
    without importing torch where that can be avoided: `auto` asks torch only when torch is
    already loaded or a GPU may be present (gpu_may_be_present)."""
    if name == "auto" and (torch_loaded() or gpu_may_be_present()):
        return resolve_device("auto").type == "cpu"
    return name in ("auto", "cpu")


def _denormals_flushed() -> bool:
    import torch
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextmanager
def flush_denormals():
    """Within the block, flush denormal floats to zero on the CPU (then restore the setting).

    As a model fits its text, softmax tails and saturated gates produce denormal numbers, and
    x86 arithmetic on them is ~100x slower: a toy LSTM's step went from 12 ms to 1.3 s. Flushing
    them changes results only below 1e-38 and keeps runs deterministic. The setting is global to
    the thread, so it is undone on the way out rather than left for the caller's other code.

    When torch has not been imported (a NumPy model on the CPU), this does nothing: the flag is
    torch's, NumPy has none, and importing torch for it would cost more than it saves in
    generation (NumPy sampled as fast with the flag as without it on two trained LSTMs:
    benchmarks/cold_start.py, figures in the README's Generation section).
    """
    if not torch_loaded():
        yield
        return
    import torch

    previous = _denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def stderr_logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            from tqdm import tqdm
            tqdm.write(message, file=sys.stderr)
    return log
