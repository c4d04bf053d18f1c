"""Checkpoint directories: written atomically, loaded safely, on any device.

A run directory holds:

    RUN/config.json      the run's configuration (also marks the directory as an rnnkit run)
    RUN/metrics.jsonl    one JSON line per logging step
    RUN/last/            the newest checkpoint (what --resume continues from)
    RUN/best/            the checkpoint with the lowest validation loss so far

and each checkpoint directory holds `config.json`, `model.safetensors`, `tokenizer.json`,
`trainer_state.pt` and a copy of `metrics.jsonl` up to its step. A checkpoint is written to a
temporary directory and renamed into place, so a crash leaves either the old or the new one.
Weights are read only from safetensors and trainer state only with `weights_only=True`: loading
someone else's checkpoint never runs their code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written, not on import
    import torch

from . import __version__
from .config import RunConfig
from .errors import CheckpointError, ConfigError, OutputExistsError
from .tokenize import Tokenizer

FORMAT = "rnnkit-checkpoint"
FORMAT_VERSION = 1
FILES = ("config.json", "model.safetensors", "tokenizer.json")


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    tokenizer: Tokenizer
    weights: dict[str, torch.Tensor]
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
            raise CheckpointError(f"{path} is corrupt or not a plain-tensor file "
                                  f"({type(error).__name__}); refusing to load it") from None
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"{path} is not an rnnkit trainer state")
        return state


def config_document(config: RunConfig, **info: Any) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "rnnkit_version": __version__,
            **info, "config": config.to_dict()}


def write_json(path: Path, document: Any) -> None:
    """Written beside `path`, then renamed over it: a kill mid-write leaves the old file whole."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(target: Path, config: RunConfig, weights: dict[str, torch.Tensor], tokenizer: Tokenizer,
                    trainer_state: dict[str, Any] | None = None, metrics: Path | None = None,
                    **info: Any) -> None:
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


def prepare_run_dir(path: Path, overwrite: bool, marker: str = "config.json") -> None:
    """Create the output directory, emptied (see check_output_dir)."""
    if check_output_dir(path, overwrite, marker):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    clean_stale(path)


def check_output_dir(path: Path, overwrite: bool, marker: str) -> bool:
    """Whether `path` holds an earlier output to replace. Never touch an existing directory unless
    asked, and then only one of ours (recognised by its `marker` file)."""
    if not path.exists() or (path.is_dir() and all(_is_temporary(p) for p in path.iterdir())):
        return False
    if not overwrite:
        raise OutputExistsError(f"{path} exists already; choose another output directory, or pass "
                                "--overwrite to replace it")
    if not path.is_dir() or not (path / marker).is_file():
        raise OutputExistsError(f"{path} exists and is not an rnnkit output directory; refusing to overwrite it")
    return True


def _is_temporary(path: Path) -> bool:
    """What a killed write of ours leaves behind (write_json, write_atomically): never user data."""
    return path.name.startswith(".") and ".tmp-" in path.name


def fresh_run_dir(name: str) -> Path:
    """runs/NAME-TIMESTAMP, with -2, -3... if that exists already: a default output directory
    never lands on an earlier run."""
    from datetime import datetime

    base = Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Build the directory beside `target`, fsync it, then swap it in with renames."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)  # between these two renames only `old` exists; loaders look there
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the renames are still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_checkpoint(path: Path) -> bool:
    return all((path / name).is_file() for name in FILES)


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint directory from what the user gave: a checkpoint itself or a run directory.

    A run directory means its `best/` (for evaluate and generate) or its `last/` (for resume);
    if a crash stopped a save between its two renames, the surviving old copy is used.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    if is_checkpoint(path):
        return path
    order = ("best", "last") if prefer == "best" else ("last", "best")
    for name in order:
        candidates = [path / name] + sorted(path.glob(f".{name}.old-*"))
        for candidate in candidates:
            if candidate.is_dir() and is_checkpoint(candidate):
                return candidate
    raise CheckpointError(f"{path} is not an rnnkit checkpoint (no config.json, model.safetensors "
                          "and tokenizer.json here, nor in best/ or last/)")


def read_config_document(path: Path) -> tuple[RunConfig, dict[str, Any]]:
    try:
        document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path / 'config.json'} is unreadable or not JSON ({type(error).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'config.json'} is not an rnnkit checkpoint config")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}; this rnnkit "
                              f"({__version__}) reads up to {FORMAT_VERSION}: upgrade rnnkit")
    try:
        config = RunConfig.from_dict(document.get("config"))
    except ConfigError as error:
        raise CheckpointError(f"{path / 'config.json'}: {error}") from None
    info = {k: v for k, v in document.items() if k != "config"}
    return config, info


def load_checkpoint(path: str | Path, prefer: str = "best") -> Checkpoint:
    """Read a checkpoint onto the CPU (move the model where it should run afterwards)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = resolve_checkpoint(path, prefer)
    config, info = read_config_document(directory)
    try:
        tokenizer = Tokenizer.from_json((directory / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{directory / 'tokenizer.json'} is unreadable") from None
    try:
        weights = load_file(str(directory / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{directory / 'model.safetensors'} is corrupt ({error})") from None
    if config.model.vocab_size != len(tokenizer):
        raise CheckpointError(f"{directory}: the model has {config.model.vocab_size} output ids but "
                              f"tokenizer.json has {len(tokenizer)}; they do not belong together")
    return Checkpoint(directory, config, tokenizer, weights, info)


def clean_stale(run_dir: Path) -> None:
    """Remove what a killed save left behind: temporary directories, and old copies whose
    replacement is complete (an old copy is kept when it is the only complete one)."""
    for tmp in filter(_is_temporary, run_dir.iterdir()):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # a JSON file whose write was cut short (see write_json)
            tmp.unlink(missing_ok=True)
    for old in run_dir.glob(".*.old-*"):
        name = old.name[1:].split(".old-")[0]
        if is_checkpoint(run_dir / name):
            shutil.rmtree(old, ignore_errors=True)
