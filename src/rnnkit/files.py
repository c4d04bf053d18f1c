"""Files and directories on disk: atomic writes, output directories that never overwrite the
user's data, and finding the checkpoint a user means by a path.

`json_safe` is the one NaN -> None conversion for every JSON document rnnkit writes.
Nothing here reads a model or a config; `checkpoint` (what a checkpoint holds) and `text.prepare`
(memory-mapped token files) both write through these functions.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

from .errors import CheckpointError, OutputExistsError

FILES = ("config.json", "model.safetensors", "tokenizer.json")  # a complete checkpoint directory


def is_figure(value: Any) -> TypeGuard[float]:
    """Whether `value` is a figure that exists: a finite int or float (not a bool, None or NaN), as
    metrics.jsonl lines hold them after json_safe."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def figure_text(value: Any, digits: int) -> str:
    """A figure for a table, `digits` after the point; "n/a" for one that does not exist."""
    return f"{value:.{digits}f}" if is_figure(value) else "n/a"


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float (a figure that does not exist, e.g. a baseline's
    train loss, or a diverged run's) replaced by None, through dicts, lists and tuples: JSON has
    no NaN, and json.dumps would write one that other readers reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(json_safe(item) for item in value)
    return value


def write_json(path: Path, document: Any) -> None:
    """Written beside `path`, then renamed over it: a kill mid-write leaves the old file whole."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
        raise OutputExistsError(
            f"{path} exists already; choose another output directory, or pass --overwrite to replace it"
        )
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


# what fsync of a read-only handle may raise where the platform refuses it (Windows' _commit
# needs write access: EBADF; some network filesystems: EINVAL or EPERM)
READ_ONLY_FSYNC_ERRORS = (errno.EBADF, errno.EINVAL, errno.EPERM)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        _fsync_file(path)
    _fsync_dir(directory)


def _fsync_file(path: Path) -> None:
    """Flush one file we have just written to the disk. It is opened for writing (without
    truncating), since fsync through a read-only handle is refused on some platforms; a file we
    cannot open for writing falls back to a read-only handle, where exactly that refusal is
    tolerated. Any other error (a full or failing disk) is raised: the checkpoint is not safe."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        read_only = False
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        read_only = True
    try:
        os.fsync(fd)
    except OSError as error:
        if not (read_only and error.errno in READ_ONLY_FSYNC_ERRORS):
            raise
    finally:
        os.close(fd)


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
    raise CheckpointError(
        f"{path} is not an rnnkit checkpoint (no config.json, model.safetensors "
        "and tokenizer.json here, nor in best/ or last/)"
    )


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
