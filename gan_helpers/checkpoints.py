"""Checkpoints: written atomically, read safely (`weights_only=True`), with clear errors; the
names of a run folder's files; and what a checkpoint records about the run that made it.

A training checkpoint (`training.TrainState.checkpoint`) holds a `run` record: the dataset, each
network's class and constructor arguments (`models.describe`), the objective and the settings.
`check_same_run` refuses to continue or reload a run under another record, and `load_generator`
rebuilds a run's generator from it, with nothing guessed (the moving average of its weights, when
the run kept one: `fit(ema=...)`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import signal
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checks, models
from .errors import GanHelpersError
from .run_folder import RunFiles, replace_atomically

CHECKPOINT_FORMAT = "gan-helpers-checkpoint/2"
"""Training checkpoints of this version: they carry a `run` record (format 1 did not)."""


AVERAGE_KEY = "AverageGenerator"
"""Where a training checkpoint of a run with a moving average of G's weights (`fit(ema=...)`)
keeps it: `checkpoint["callbacks"][AVERAGE_KEY]`, with its `weights`, `updates` and `decay`."""


class CheckpointError(GanHelpersError, RuntimeError):
    """A checkpoint is missing, truncated, or does not fit the models it is loaded into."""


class RunMismatchError(CheckpointError):
    """A run folder holds a run of another dataset, model or settings than the one asked for."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (a full disk, a folder that went away)."""


def checksum(state: Any) -> str:
    """A SHA-256 digest of everything in `state` (tensors by their bytes, other values by their
    `repr`), in a fixed order: saved inside the checkpoint, so damaged bytes are found on load."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        else:
            digest.update(repr(value).encode())

    feed(state)
    return digest.hexdigest()


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (in the main thread, where Python runs
    signal handlers): they are noted meanwhile and raised again afterwards, so an interruption
    never falls between writing a checkpoint and putting it in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in caught:
            signal.raise_signal(s)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save `state` to `path` atomically, with its `checksum`: serialised in memory, written to a
    temporary file and flushed to disk, then renamed over `path`, with Ctrl-C and SIGTERM held
    back meanwhile.

    An interruption or a failure while saving leaves the previous checkpoint whole; a failure
    to write (a full disk, a file size limit, a read-only or forbidden folder, torch's own
    writer failing) raises `CheckpointWriteError` naming the reason. `state` must hold only what
    `torch.load(weights_only=True)` accepts: tensors, numbers, strings, lists, dicts.
    """
    path = Path(path)
    try:
        with _signals_held():
            buffer = io.BytesIO()  # serialised first: the disk's errors then come as OSErrors
            torch.save({**state, "checksum": checksum(state)}, buffer)
            replace_atomically(path, buffer.getbuffer())
    except OSError as err:
        raise _not_written(path, err.strerror or str(err)) from err
    except RuntimeError as err:  # torch's zip writer: "[enforce fail at inline_container.cc..."
        if not any(sign in str(err) for sign in TORCH_WRITER_ERRORS):
            raise
        raise _not_written(path, f"the file could not be written whole "
                                 f"({str(err).splitlines()[0][:120]})") from err
    return path


TORCH_WRITER_ERRORS = ("inline_container", "PytorchStreamWriter", "unexpected pos",
                       "file write failed")
"""Signs of torch's own checkpoint writer failing on the file (its errors carry no errno)."""


def _not_written(path: Path, reason: str) -> CheckpointWriteError:
    """The error for a checkpoint that could not be written; its `brief` names only the file and
    the reason (for a caller that says itself what is kept, as `fit` does)."""
    brief = f"Could not write the checkpoint {path}: {reason}"
    err = CheckpointWriteError(f"{brief}. The previous checkpoint there, if any, is whole: free "
                               "some space (or fix the folder) and resume.")
    err.brief = brief
    return err


def load_checkpoint(path: str | os.PathLike[str],
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint`, with `weights_only=True` (no code in the
    file can run), and check its checksum.

    Raises `CheckpointError` naming the file if it is missing, truncated, damaged or not a
    checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Check the run folder's name.")
    damaged = (f"Checkpoint {path} cannot be used: it is truncated, damaged or not a checkpoint "
               "of gan_helpers. Delete it and train again (or train into another run folder)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:  # torch's own advice (weights_only=False) is not relayed
        raise CheckpointError(f"{damaged} ({type(err).__name__}).") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{damaged} (no dict inside).")
    saved = state.pop("checksum", None)
    if saved is None and state.get("format") == CHECKPOINT_FORMAT:  # every one is written with it
        raise CheckpointError(f"{damaged} (its checksum is missing).")
    if saved is not None and saved != checksum(state):
        raise CheckpointError(f"{damaged} (its checksum does not match its contents).")
    return state


def require(checkpoint: dict[str, Any], parts: Sequence[str],
            path: str | os.PathLike[str]) -> None:
    """`CheckpointError` naming the parts of `parts` that `checkpoint` lacks."""
    missing = [p for p in parts if p not in checkpoint]
    if missing:
        raise CheckpointError(f"Checkpoint {path} lacks {', '.join(missing)}: it is incomplete. "
                              "Use an earlier checkpoint, or train again.")


def load_module_state(module: torch.nn.Module, state: dict[str, Any], what: str,
                      path: str | os.PathLike[str]) -> None:
    """`module.load_state_dict(state)`; a mismatch becomes a `CheckpointError` naming `path`."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"Checkpoint {path} does not fit this {what} ({type(module).__name__}): it was saved "
            f"from a different architecture or size. Details: {err}"
        ) from err


def rng_state() -> dict[str, Any]:
    """The random number generators' states (Python, PyTorch CPU and CUDA), for exact resume."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` saved."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- the run record


def _plain(value: Any) -> Any:
    """`value` with tuples as lists, so that a record compares equal after a save and a load."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict) and "class" in value:
        args = ", ".join(f"{k}={_show(v)}" for k, v in value.get("args", {}).items())
        return f"{value['class']}({args})" + (" + spectral norm" if value.get("spectral_norm")
                                               else "")
    return repr(value)


def record_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Each way the run record `wanted` differs from `saved`, as `NAME was SAVED, now WANTED`.

    Compared: the dataset, both networks, the objective, and every setting present in both
    (a setting only one of them has is not a difference: old runs lack newer settings).
    """
    saved, wanted = _plain(saved), _plain(wanted)
    diffs = [f"{key} was {_show(saved.get(key))}, now {_show(wanted.get(key))}"
             for key in ("dataset", "G", "D", "objective") if saved.get(key) != wanted.get(key)]
    old, new = saved.get("settings", {}), wanted.get("settings", {})
    diffs += [f"{key} was {old[key]!r}, now {new[key]!r}"
              for key in sorted(old.keys() & new.keys()) if old[key] != new[key]]
    return list(dict.fromkeys(diffs))  # a setting also recorded at the top level: once


def check_same_run(checkpoint: dict[str, Any], wanted: dict[str, Any],
                   path: str | os.PathLike[str]) -> None:
    """Refuse (`RunMismatchError`) to continue the run in `checkpoint` under the record `wanted`.

    The message names every difference, the saved value and the asked-for one, and what to do.
    """
    diffs = record_differences(run_record(checkpoint, path), wanted)
    if diffs:
        raise RunMismatchError(
            f"{path} holds another run than this one asks for: {'; '.join(diffs)}. To continue "
            "that run, ask for what it was made with; to start a new one, use another run folder "
            "(a new --out or run_dir), or replace this one (--overwrite, or "
            "fit(..., overwrite=True)).")


def run_record(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `run` record of a training checkpoint; `CheckpointError` for anything else."""
    fmt = checkpoint.get("format")
    if fmt == CHECKPOINT_FORMAT and isinstance(checkpoint.get("run"), dict):
        return checkpoint["run"]
    if fmt == "gan-helpers-checkpoint/1":
        raise CheckpointError(
            f"{path} was written by an earlier version of gan_helpers that did not record the "
            "dataset and the networks that made it, so it can be neither checked nor rebuilt. "
            "Train again into a new run folder (or delete this one).")
    raise CheckpointError(f"{path} is not a training checkpoint of gan_helpers.")


def checkpoint_path(run: str | os.PathLike[str], best: bool | None = None) -> Path:
    """The checkpoint of `run` (a run folder or a checkpoint file).

    For a folder: `best.pt` when there is one (and `best` is not False), else `checkpoint.pt`;
    `best=True` insists on `best.pt`.
    """
    run = Path(run)
    if run.is_file() or run.suffix == ".pt":
        return run
    files = RunFiles(run)
    if not run.is_dir():
        raise CheckpointError(f"No run folder at {run}. Check its name.")
    if best and not files.best.exists():
        raise CheckpointError(f"{run} has no best.pt (train --eval-every writes it): use its "
                              "last checkpoint instead.")
    if best or (best is None and files.best.exists()):
        return files.best
    return files.checkpoint


def averaged_weights(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The moving average of the generator's weights kept in a training checkpoint (a run
    trained with `fit(ema=...)`, or `train --ema`), as a state dict; None if it keeps none."""
    saved = (checkpoint.get("callbacks") or {}).get(AVERAGE_KEY) or {}
    return saved.get("weights")


def load_generator(run: str | os.PathLike[str], *, best: bool | None = None,
                   dataset: str | None = None, device: torch.device | str | None = "cpu",
                   averaged: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The trained generator of `run` (a run folder or checkpoint file) in eval mode on `device`,
    rebuilt from the checkpoint's record, and that checkpoint (its `run` record, `step`, ...,
    `path`, the file it was read from, and `averaged`, whether the weights loaded are the moving
    average).

    A run folder gives its best checkpoint when there is one (see `checkpoint_path`). A run that
    kept a moving average of the generator's weights (`fit(ema=...)`) gives the averaged
    generator, unless `averaged=False` asks for the generator's own weights; a checkpoint without
    one gives its generator either way. With `dataset`, a run trained on another dataset is
    refused (`RunMismatchError`). A device this machine lacks is refused before anything is read
    (`DeviceUnavailableError`).
    """
    device = None if device is None else checks.device(device)
    path = checkpoint_path(run, best)
    ckpt = load_checkpoint(path)
    record = run_record(ckpt, path)
    require(ckpt, ["G", "step"], path)
    if dataset is not None and record.get("dataset") != dataset:
        raise RunMismatchError(
            f"{path} was trained on {record.get('dataset')}, not {dataset}. Use that dataset, or "
            "a run folder of this one.")
    try:
        G = models.build_from_record(record["G"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    average = averaged_weights(ckpt) if averaged else None
    if average is not None:
        load_module_state(G, average, "averaged generator", path)
    else:
        load_module_state(G, ckpt["G"], "generator", path)
    ckpt["path"], ckpt["averaged"] = str(path), average is not None
    return G.to(device).eval(), ckpt
