"""rnnkit: train, evaluate, compare, inspect and sample recurrent language models.

The configs and errors load at once; what needs PyTorch (train, load, evaluate, ...) is imported
on first use, so commands that never touch a model (`prepare`, `presets`, `corpora`, `plot`,
`--help`) start in a tenth of a second instead of waiting seconds for torch.
"""

__version__ = "0.1.0"

import importlib
import os
import sys
import types
from typing import Any


def _mps_fallback(environ: Any, platform: str) -> None:
    """On macOS, operators the Apple GPU (MPS) lacks run on the CPU instead of failing. PyTorch
    reads PYTORCH_ENABLE_MPS_FALLBACK once, when it is imported, so it is set here, before any
    rnnkit module imports torch; a value the user set is kept."""
    if platform == "darwin":
        environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")


_mps_fallback(os.environ, sys.platform)

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    OutputExistsError,
    PromptError,
    RnnkitError,
)

# public name -> the submodule that defines it
_LAZY = {
    "LanguageModel": "api",
    "evaluate": "api",
    "load": "api",
    "EvalResult": "evaluate",
    "SamplingConfig": "generate",
    "TrainResult": "train",
    "train": "train",
}

__all__ = [
    "__version__",
    "train",
    "load",
    "evaluate",
    "LanguageModel",
    "RunConfig",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "SamplingConfig",
    "EvalResult",
    "TrainResult",
    "RnnkitError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "PromptError",
    "OutputExistsError",
]


def _load(name: str) -> Any:
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


class _Package(types.ModuleType):
    """`rnnkit.train` and `rnnkit.evaluate` are functions although submodules share their names:
    importing a submodule binds it on its package, so these two are properties whose setter
    ignores that binding (the modules stay importable: `from rnnkit.train import ...`)."""

    train = property(lambda self: _load("train"), lambda self, value: None)
    evaluate = property(lambda self: _load("evaluate"), lambda self, value: None)

    def __getattr__(self, name: str) -> Any:  # the other lazy names, on first use
        if name not in _LAZY:
            raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
        value = _load(name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_LAZY))


sys.modules[__name__].__class__ = _Package
