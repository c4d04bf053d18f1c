"""Optional dependencies (pip extras): import one, or say in one line which extra installs it.

Same layer as runtime.py: imports nothing from rnnkit but errors.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """`module` imported, or ConfigError naming the extra that provides it (the CLI: one line, exit 2)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ConfigError(f"{purpose} needs {top}, which is not installed: pip install 'rnnkit[{extra}]'") from None
