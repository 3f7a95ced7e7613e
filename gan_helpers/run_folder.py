"""A run folder: the names of its files, a check that it can be written, and a lock so that only
one training run at a time writes into it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import GanHelpersError


class RunFolderError(GanHelpersError, OSError):
    """A run folder cannot be created or written, or another run is using it."""


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

    def grid(self, epoch: int) -> Path:
        """The grid of samples after `epoch` (counted from 1)."""
        return self.grids / f"epoch_{epoch:03d}.png"


def prepare(root: str | os.PathLike[str]) -> RunFiles:
    """Create the run folder `root` if needed and check a file can be written in it, before any
    work is done; `RunFolderError` says what is wrong otherwise."""
    files = RunFiles(root)
    probe = files.root / ".write-test"
    try:
        files.root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise RunFolderError(
            f"Cannot write into the run folder {files.root}: {err.strerror or err}. Choose a "
            "folder you can write to (--out or run_dir).") from None
    return files


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        return True
    return True


class RunLock:
    """`with RunLock(folder):` marks `folder` as in use by this process (its `.lock` file holds
    the process id and host) and frees it afterwards.

    A second run into the same folder is refused with a `RunFolderError` naming the process that
    holds it. A lock left by a process that no longer exists (killed, machine restarted) is stale
    and taken over. Nested locks of one process on one folder are allowed (the command line locks
    before loading data, `fit` again while training).
    """

    _held: dict[Path, int] = {}

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = RunFiles(root).lock

    def __enter__(self) -> RunLock:
        key = self.path.resolve()
        if RunLock._held.get(key):
            RunLock._held[key] += 1
            return self
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):  # a second try after removing a stale lock
            try:
                with open(self.path, "x") as f:
                    f.write(mine)
                RunLock._held[key] = 1
                return self
            except FileExistsError:
                self._refuse_or_clear()
        raise RunFolderError(f"Could not lock {self.path.parent}: try again.")

    def _refuse_or_clear(self) -> None:
        try:
            pid_text, _, host = self.path.read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            pid, host = -1, ""  # unreadable or half written: treat as stale
        here = host.strip() in ("", socket.gethostname())
        mine_but_not_held = here and pid == os.getpid()  # a lock this process did not take
        if pid > 0 and not mine_but_not_held and (_alive(pid) or not here):
            raise RunFolderError(
                f"{self.path.parent} is in use by another training run (process {pid} on "
                f"{host.strip() or 'this machine'}). Wait for it to end, or train into another "
                f"folder. If no such run exists, delete {self.path}.")
        self.path.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        key = self.path.resolve()
        RunLock._held[key] -= 1
        if RunLock._held[key] == 0:
            del RunLock._held[key]
            self.path.unlink(missing_ok=True)
