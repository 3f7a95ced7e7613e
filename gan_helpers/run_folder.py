"""A run folder: the names of its files, atomic writes into it, and a lock that also checks it
can be written, so that only one training run at a time writes into it."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import filelock

from .errors import GanHelpersError


class RunFolderError(GanHelpersError, OSError):
    """A run folder cannot be created or written, or another run is using it."""


class RunExistsError(RunFolderError, FileExistsError):
    """A run folder already holds a run, and the caller said neither to continue nor to replace
    it (`fit(resume=False)` without `overwrite=True`)."""


class RunWriteError(RunFolderError):
    """A file of a run (its history, a grid, its metrics) could not be written: a full disk, a
    file size limit, a read-only or forbidden folder. What was written before stays whole."""


def replace_atomically(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk and rename it over `path`:
    `path` then holds either its old contents or the new ones, never a part. A failure raises the
    `OSError`, with the temporary file removed and `path` as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a folder that went away, or became read-only
            pass


def write_atomic(path: str | os.PathLike[str], data: str | bytes, what: str = "file") -> Path:
    """Write `data` to `path` atomically (`replace_atomically`).

    A failure (a full disk, a file size limit, a read-only or forbidden folder) raises
    `RunWriteError` naming `what` and the reason; the old file, if any, is left as it was.
    """
    path = Path(path)
    try:
        replace_atomically(path, data.encode() if isinstance(data, str) else data)
    except OSError as err:
        raise RunWriteError(
            f"Could not write the {what} {path}: {err.strerror or err}") from err
    return path


class RunFiles:
    """The files of a run folder, named in one place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.checkpoint = self.root / "checkpoint.pt"
        """the latest state, for exact resume"""
        self.best = self.root / "best.pt"
        """the best state by classifier FID (written by `EvaluateEvery(keep_best=True)`)"""
        self.grids = self.root / "grids"
        """`epoch_NNN.png`: the fixed noise batch's samples after every epoch"""
        self.history = self.root / "history.json"
        self.final = self.root / "final.png"
        self.losses = self.root / "losses.png"
        self.metrics = self.root / "metrics.json"
        self.quality = self.root / "quality.png"
        self.lock = self.root / ".lock"
        """who is training into this folder now (see `RunLock`)"""

    def clear(self, keep_checkpoint: bool = False) -> None:
        """Delete what a run wrote here (checkpoints, grids, history, plots, metrics), so that
        nothing of an old run mixes with a new one (`fit(overwrite=True)`, `train --overwrite`).
        `keep_checkpoint`: leave `checkpoint.pt`, which the new run's is about to replace."""
        for path in (self.best, self.history, self.final, self.losses, self.metrics,
                     self.quality) + (() if keep_checkpoint else (self.checkpoint,)):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.grids, ignore_errors=True)

    def holds_run(self) -> bool:
        """Whether a run was saved here (its `checkpoint.pt`)."""
        return self.checkpoint.exists()

    def grid(self, epoch: int) -> Path:
        """The grid of samples after `epoch` (counted from 1)."""
        return self.grids / f"epoch_{epoch:03d}.png"


class RunLock:
    """`with RunLock(folder):` creates the run folder if needed, checks that it can be written
    (`RunFolderError` says what is wrong otherwise) and holds an exclusive lock on
    `folder/.lock` (`filelock`: flock on Unix, msvcrt on Windows) while a run trains into it;
    the file names the holder (process id and host) for the message a second run gets.

    A second run into the same folder is refused with a `RunFolderError` naming the process that
    holds it. The operating system releases the lock when its process ends, however it ends, so
    a lock is never stale. One process may nest locks on one folder (the command line locks
    before loading the data, `fit` again while training). Where file locks are not supported
    (some network file systems), runs are not locked.
    """

    _held: dict[Path, list] = {}  # lock file -> [depth, FileLock or None]

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.files = RunFiles(root)
        self.path = self.files.lock

    def __enter__(self) -> RunLock:
        try:
            self.files.root.mkdir(parents=True, exist_ok=True)
            holder = self.path.read_text().strip() if self.path.exists() else ""
        except OSError as err:
            raise self._unwritable(err) from None
        key = self.path.resolve()
        if key in RunLock._held:
            RunLock._held[key][0] += 1
            return self
        lock: filelock.FileLock | None = filelock.FileLock(self.path, timeout=0)
        try:
            lock.acquire()  # read the holder first: filelock 3 empties the file on each try
        except filelock.Timeout:
            raise RunFolderError(
                f"{self.files.root} is in use by another training run "
                f"({holder or 'another process'}). Wait for it to end, or train into another "
                "folder.") from None
        except NotImplementedError:  # no file locks on this file system: go on unlocked
            lock = None
        except OSError as err:
            raise self._unwritable(err) from None
        try:  # the holder's name, which also proves the folder can be written
            self.path.write_text(f"process {os.getpid()} on {socket.gethostname()}\n")
        except OSError as err:
            if lock is not None:
                lock.release()
            raise self._unwritable(err) from None
        RunLock._held[key] = [1, lock]
        return self

    def _unwritable(self, err: OSError) -> RunFolderError:
        return RunFolderError(
            f"Cannot write into the run folder {self.files.root}: {err.strerror or err}. Choose "
            "a folder you can write to (--out or run_dir).")

    def __exit__(self, *exc: object) -> None:
        key = self.path.resolve()
        held = RunLock._held[key]
        held[0] -= 1
        if held[0] == 0:
            del RunLock._held[key]
            try:
                self.path.write_text("")  # the file stays (removing it would race a new holder)
            except OSError:
                pass
            if held[1] is not None:
                held[1].release()
