"""The process around a run: which device, denormal flushing on the CPU, and where messages go.

Nothing here knows about models or data; every layer above may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """auto: a CUDA GPU, else an Apple GPU (MPS), else the CPU; a named device must exist.

    On MPS, operators PyTorch lacks there run on the CPU when PYTORCH_ENABLE_MPS_FALLBACK=1, which
    torch reads once at import: rnnkit's __init__ sets it on macOS (before torch is imported)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not mps_available():
        raise ConfigError("--device mps was asked for, but PyTorch sees no Apple GPU (MPS needs Apple silicon, "
                          "macOS 12.3 or later and a PyTorch built with MPS); use --device cpu or auto")
    return torch.device(name)


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _denormals_flushed() -> bool:
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextmanager
def flush_denormals():
    """Within the block, flush denormal floats to zero on the CPU (then restore the setting).

    As a model fits its text, softmax tails and saturated gates produce denormal numbers, and
    x86 arithmetic on them is ~100x slower: a toy LSTM's step went from 12 ms to 1.3 s. Flushing
    them changes results only below 1e-38 and keeps runs deterministic. The setting is global to
    the thread, so it is undone on the way out rather than left for the caller's other code.
    """
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
