import errno
import json
import os
import pickle
import shutil
import stat

import pytest
import torch

from rnnkit.api import load
from rnnkit.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.errors import CheckpointError
from rnnkit.files import (
    check_output_dir,
    prepare_run_dir,
    resolve_checkpoint,
    write_json,
)
from rnnkit.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from conftest import tiny_config

    result = train(tiny_config(tmp_path_factory.mktemp("ckpt") / "run", steps=10, model="gru"))
    return result.checkpoint


def copy_run(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


def test_layout_and_round_trip(run_dir):
    from pathlib import Path

    run = Path(run_dir)
    for kind in ("best", "last"):
        names = {p.name for p in (run / kind).iterdir()}
        assert names == {"config.json", "model.safetensors", "tokenizer.json", "trainer_state.pt", "metrics.jsonl"}
    checkpoint = load_checkpoint(run)
    assert checkpoint.path.name == "best" and checkpoint.config.model.model == "gru"
    assert checkpoint.trainer_state()["step"] == 10
    lm = load(run, device="cpu")
    again = load(run / "last", device="cpu")
    for a, b in zip(lm.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)  # best == last here: the last evaluation was the best so far


def test_corrupt_weights(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    (run / "best" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load(run / "best")
    data = (run / "last" / "model.safetensors").read_bytes()
    (run / "last" / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError):
        load(run / "last")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda doc: doc.update(format_version=99), "upgrade rnnkit"),
        (lambda doc: doc.update(format="something-else"), "not an rnnkit"),
        (lambda doc: doc["config"]["model"].update(colour="red"), "unknown ModelConfig"),
        (lambda doc: doc["config"]["model"].update(layers="two"), "layers must be an integer"),
        (lambda doc: doc["config"]["model"].update(vocab_size=3), "do not belong together"),
    ],
)
def test_hand_edited_config(run_dir, tmp_path, edit, message):
    run = copy_run(run_dir, tmp_path)
    path = run / "best" / "config.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=message):
        load(run / "best")


def test_missing_and_foreign_directories(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load(tmp_path / "nothing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="not an rnnkit checkpoint"):
        load(tmp_path / "folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError):
        load(tmp_path / "file")


class _CreatesFile:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_malicious_trainer_state_is_never_executed(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    marker = tmp_path / "pwned"
    payload = _CreatesFile()
    payload.target = str(marker)
    with open(run / "last" / "trainer_state.pt", "wb") as handle:
        pickle.dump({"step": payload}, handle)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(run, prefer="last").trainer_state()
    with pytest.raises(CheckpointError):
        train(resume=run, steps=20, quiet=True)
    assert not marker.exists()


def test_failed_save_leaves_previous_checkpoint_intact(run_dir, tmp_path, monkeypatch):
    run = copy_run(run_dir, tmp_path)
    before = (run / "last" / "model.safetensors").read_bytes()
    checkpoint = load_checkpoint(run, prefer="last")

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(run / "last", checkpoint.config, checkpoint.weights, checkpoint.tokenizer, {"step": 1})
    assert (run / "last" / "model.safetensors").read_bytes() == before
    assert not list(run.glob(".last.tmp-*"))  # the half-written temporary directory is gone


def test_a_crash_between_renames_falls_back_to_the_old_copy(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    (run / "last").rename(run / ".last.old-deadbeef")
    assert resolve_checkpoint(run, prefer="last").name == ".last.old-deadbeef"


def test_json_files_are_replaced_whole_and_killed_writes_are_swept(tmp_path, monkeypatch):
    """write_json renames a finished file into place: a failure mid-write keeps the old content;
    what a killed write leaves (.NAME.tmp-*) counts as nothing and is removed on the next start."""
    target = tmp_path / "config.json"
    write_json(target, {"v": 1})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr("rnnkit.files.json.dumps", broken)
        with pytest.raises(OSError):
            write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]

    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.tmp-0a1b2c3d").write_text('{"trunc')  # as a SIGKILL mid-write leaves it
    assert check_output_dir(run, overwrite=False, marker="config.json") is False
    prepare_run_dir(run, overwrite=False)
    assert list(run.iterdir()) == []


def _refuse_read_only_fsync(monkeypatch, refusal=errno.EBADF):
    """os.fsync as Windows behaves: refused (OSError `refusal`) for a file opened read-only."""
    fcntl = pytest.importorskip("fcntl")  # reads a descriptor's access mode (POSIX)
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(refusal, os.strerror(refusal))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_checkpoint_saves_where_fsync_of_a_read_only_handle_is_refused(run_dir, tmp_path, monkeypatch):
    run = copy_run(run_dir, tmp_path)
    checkpoint = load_checkpoint(run, prefer="last")
    _refuse_read_only_fsync(monkeypatch)
    save_checkpoint(run / "again", checkpoint.config, checkpoint.weights, checkpoint.tokenizer, {"step": 3})
    assert load_checkpoint(run / "again").trainer_state()["step"] == 3


@pytest.mark.parametrize("refusal", [errno.EBADF, errno.EINVAL, errno.EPERM])
def test_a_file_we_cannot_open_for_writing_is_synced_read_only_and_the_refusal_tolerated(
    tmp_path, monkeypatch, refusal
):
    from rnnkit.files import write_atomically

    real_open = os.open

    def open_no_write(path, flags, *args, **kwargs):  # e.g. a file another program holds open
        if flags & os.O_ACCMODE != os.O_RDONLY and os.path.isfile(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_no_write)
    _refuse_read_only_fsync(monkeypatch, refusal)
    write_atomically(tmp_path / "out", lambda tmp: (tmp / "a.txt").write_text("kept"))
    assert (tmp_path / "out" / "a.txt").read_text() == "kept"


def test_a_real_fsync_failure_still_fails_the_save(tmp_path, monkeypatch):
    """Only the read-only refusal is tolerated: a disk error (EIO) must not pass as a safe save."""
    from rnnkit.files import write_atomically

    def failing_fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_atomically(tmp_path / "out", lambda tmp: (tmp / "a.txt").write_text("lost"))
    assert not (tmp_path / "out").exists()
