"""Checkpoint directories: written atomically, loaded safely, on any device.

A run directory holds:

    RUN/config.json      the run's configuration (also marks the directory as an rnnkit run)
    RUN/metrics.jsonl    one JSON line per logging step
    RUN/last/            the newest checkpoint (what --resume continues from)
    RUN/best/            the checkpoint with the lowest validation loss so far

and each checkpoint directory holds `config.json`, `model.safetensors`, `tokenizer.json`,
`trainer_state.pt` and a copy of `metrics.jsonl` up to its step. Weights load as torch tensors, or
with `arrays="numpy"` as NumPy arrays without importing torch (the NumPy model and the baselines
run on those; see api.LanguageModel.from_checkpoint). A checkpoint is written to a
temporary directory and renamed into place, so a crash leaves either the old or the new one.
Weights are read only from safetensors and trainer state only with `weights_only=True`: loading
someone else's checkpoint never runs their code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written, not on import
    import torch

from . import __version__
from .config import RunConfig
from .errors import CheckpointError, ConfigError
from .files import resolve_checkpoint, write_atomically, write_json
from .text.tokenizer import Tokenizer

FORMAT = "rnnkit-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    tokenizer: Tokenizer
    weights: dict[str, Any]  # name -> torch.Tensor, or np.ndarray when loaded with arrays="numpy"
    info: dict[str, Any] = field(default_factory=dict)  # step, val_loss, kind, versions

    def trainer_state(self) -> dict[str, Any]:
        """Optimizer, schedule, RNG and data position; plain tensors and containers only."""
        path = self.path / "trainer_state.pt"
        if not path.is_file():
            raise CheckpointError(f"{self.path} has no trainer_state.pt, so it cannot be resumed")
        try:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any unpickling failure means we will not trust it
            raise CheckpointError(
                f"{path} is corrupt or not a plain-tensor file ({type(error).__name__}); refusing to load it"
            ) from None
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"{path} is not an rnnkit trainer state")
        return state


def config_document(config: RunConfig, **info: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rnnkit_version": __version__,
        **info,
        "config": config.to_dict(),
    }


def save_checkpoint(
    target: Path,
    config: RunConfig,
    weights: dict[str, torch.Tensor],
    tokenizer: Tokenizer,
    trainer_state: dict[str, Any] | None = None,
    metrics: Path | None = None,
    **info: Any,
) -> None:
    """Write a complete checkpoint directory at `target`, replacing any old one atomically."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in weights.items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        (tmp / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
        if trainer_state is not None:
            import torch

            torch.save(trainer_state, tmp / "trainer_state.pt")
        if metrics is not None and metrics.is_file():
            shutil.copyfile(metrics, tmp / "metrics.jsonl")
        write_json(tmp / "config.json", config_document(config, **info))  # last: marks it complete

    write_atomically(target, write)


def read_config_document(path: Path) -> tuple[RunConfig, dict[str, Any]]:
    try:
        document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path / 'config.json'} is unreadable or not JSON ({type(error).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'config.json'} is not an rnnkit checkpoint config")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this rnnkit "
            f"({__version__}) reads up to {FORMAT_VERSION}: upgrade rnnkit"
        )
    _rename_saved_options(document.get("config"))
    try:
        config = RunConfig.from_dict(document.get("config"))
    except ConfigError as error:
        raise CheckpointError(f"{path / 'config.json'}: {error}") from None
    info = {k: v for k, v in document.items() if k != "config"}
    return config, info


def _rename_saved_options(config: Any) -> None:
    """Checkpoints saved before the data option `split` was renamed `fractions` still load."""
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict) and "split" in data and "fractions" not in data:
        data["fractions"] = data.pop("split")


ARRAY_KINDS = ("torch", "numpy")


def load_checkpoint(path: str | Path, prefer: str = "best", arrays: str = "torch") -> Checkpoint:
    """Read a checkpoint onto the CPU (move the model where it should run afterwards); the
    weights as torch tensors, or with `arrays="numpy"` as NumPy arrays (torch is not imported)."""
    from safetensors import SafetensorError

    if arrays not in ARRAY_KINDS:
        raise ConfigError(f"arrays must be one of {ARRAY_KINDS}, got {arrays!r}")
    directory = resolve_checkpoint(path, prefer)
    config, info = read_config_document(directory)
    try:
        tokenizer = Tokenizer.from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{directory / 'tokenizer.json'} is unreadable") from None
    try:
        weights = _load_weights(directory / "model.safetensors", arrays)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"{directory / 'model.safetensors'} is corrupt ({error})") from None
    if config.model.vocab_size != len(tokenizer):
        raise CheckpointError(
            f"{directory}: the model has {config.model.vocab_size} output ids but "
            f"tokenizer.json has {len(tokenizer)}; they do not belong together"
        )
    return Checkpoint(directory, config, tokenizer, weights, info)


def _load_weights(path: Path, arrays: str) -> dict[str, Any]:
    if arrays == "numpy":
        from safetensors.numpy import load_file as load_arrays

        return load_arrays(str(path))
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
