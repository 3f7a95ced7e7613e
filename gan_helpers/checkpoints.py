"""The checkpoint, in one place: what goes in (`build`), how it is written (`save_checkpoint`:
atomically) and read (`load_checkpoint`: safely, with `weights_only=True`, its bytes checked),
how a run resumes from it (`resume_source`, `restore`: only the same run), and how a trained
generator is rebuilt from it (`load_generator`, the moving average of its weights included).

A training checkpoint holds a `run` record: the dataset, each network's class and constructor
arguments (`models.describe`), the objective and the settings. `check_same_run` refuses to
continue or reload a run under another record, and `load_generator` rebuilds a run's generator
from it, with nothing guessed.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checks, interrupts, models
from .errors import GanHelpersError
from .run_folder import RunExistsError, RunFiles, replace_atomically
from .state import TrainState
from .stats import STATS

CHECKPOINT_FORMAT = "gan-helpers-checkpoint/2"
"""Training checkpoints of this version: they carry a `run` record (format 1 did not)."""


class CheckpointError(GanHelpersError, RuntimeError):
    """A checkpoint is missing, truncated, or does not fit the models it is loaded into."""


class RunMismatchError(CheckpointError):
    """A run folder holds a run of another dataset, model or settings than the one asked for."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (a full disk, a folder that went away)."""


# ----------------------------------------------------------------------------- what goes in


def build(state: TrainState) -> dict[str, Any]:
    """What a training checkpoint holds: what built the run, and all it needs to resume exactly
    (`total_steps`, the length the run was asked for, tells a finished run from a stopped one:
    `step < total_steps` was stopped early). Each callback's state is kept under its
    `state_key`; `average` names the one that keeps the moving average of G's weights (None:
    no average)."""
    if state.stats is not None:
        state.stats.flush(state.step)  # a checkpoint taken mid-epoch holds every step's stats
    return {
        "format": CHECKPOINT_FORMAT,
        "run": state.record,
        "total_steps": state.total_steps,
        "G": state.G.state_dict(),
        "D": state.D.state_dict() if state.D is not None else None,  # None: G trained alone
        "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict() if state.opt_d is not None else None,
        "schedulers": [s.state_dict() for s in state.schedulers],
        "callbacks": {cb.state_key: saved for cb in state.callbacks
                      if (saved := cb.state_dict())},
        "average": next((cb.state_key for cb in state.callbacks if state.G_ema is not None
                         and getattr(cb, "G_ema", None) is state.G_ema), None),
        "step": state.step,
        "history": {k: list(state.history[k]) for k in STATS},
        "fixed_noise": state.fixed_noise.cpu(),
        "fixed_labels": None if state.fixed_labels is None else state.fixed_labels.cpu(),
        "rng": rng_state(),
    }


def write(state: TrainState, path: Path | None = None, **extra: Any) -> Path:
    """Save `state`'s checkpoint (`build`, plus `extra` entries) to `path`, by default the run
    folder's `checkpoint.pt` (then `history.checkpoint_step` says its step). A run replacing
    another (`fit(overwrite=True)`) claims the folder first (`claim_folder`)."""
    files = state.files
    assert files is not None, "write() needs a run folder"
    if state.replacing:
        claim_folder(state)
    save_checkpoint({**build(state), **extra}, path or files.checkpoint)
    if path is None or path == files.checkpoint:
        state.history.checkpoint_step = state.step
    return path or files.checkpoint


def claim_folder(state: TrainState) -> None:
    """Before a run writes its first file into a run folder that holds the run it replaces
    (`fit(overwrite=True)`): write this run's checkpoint over the old one (atomically: if that
    fails, the old run is still whole), then delete the rest of the old run (its grids, history,
    metrics, plots, best checkpoint). Does nothing otherwise."""
    if not state.replacing or state.files is None:
        return
    save_checkpoint(build(state), state.files.checkpoint)
    state.history.checkpoint_step = state.step
    state.files.clear(keep_checkpoint=True)
    state.replacing = False


# ----------------------------------------------------------------------------- bytes on disk


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save `state` to `path` atomically: serialised in memory, written to a temporary file and
    flushed to disk, then renamed over `path`, with Ctrl-C and SIGTERM held back meanwhile
    (`interrupts.held`). The file is a zip archive whose records carry CRC-32 checksums of the
    bytes written, which `load_checkpoint` checks.

    An interruption or a failure while saving leaves the previous checkpoint whole; a failure
    to write (a full disk, a file size limit, a read-only or forbidden folder, torch's own
    writer failing) raises `CheckpointWriteError` naming the reason. `state` must hold only what
    `torch.load(weights_only=True)` accepts: tensors, numbers, strings, lists, dicts.
    """
    path = Path(path)
    try:
        with interrupts.held():
            buffer = io.BytesIO()  # serialised first: the disk's errors then come as OSErrors
            torch.save(state, buffer)
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
    file can run), after checking the CRC-32 checksum of every record in it (`zipfile`), so
    damaged bytes are found, not loaded.

    Raises `CheckpointError` naming the file if it is missing, truncated, damaged or not a
    checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Check the run folder's name.")
    damaged = (f"Checkpoint {path} cannot be used: it is truncated, damaged or not a checkpoint "
               "of gan_helpers. Delete it and train again (or train into another run folder)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise CheckpointError(f"{damaged} (the checksum of {bad} does not match its bytes).")
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:  # torch's own advice (weights_only=False) is not relayed
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{damaged} ({type(err).__name__}).") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{damaged} (no dict inside).")
    state.pop("checksum", None)  # written by earlier versions; the records' CRCs check the bytes
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


# ----------------------------------------------------------------------------- resuming


def resume_source(run_dir: str | os.PathLike[str] | None,
                  resume: bool | str | os.PathLike[str] | None, overwrite: bool) -> Path | None:
    """The checkpoint a run continues from, or None for a new run (see `fit`'s `resume`: None
    continues a run the folder holds, True insists on one, False refuses one, a path names
    one; `overwrite` starts anew)."""
    if isinstance(resume, (str, os.PathLike)):
        return Path(resume)
    if run_dir is None:
        return None
    files = RunFiles(run_dir)
    if resume is True:
        return files.checkpoint  # load_checkpoint says so if there is none
    if overwrite or not files.holds_run():
        return None
    if resume is None:
        return files.checkpoint
    raise RunExistsError(
        f"{files.root} already holds a run ({files.checkpoint}): pass resume=True (or leave "
        "resume out) to continue it, overwrite=True to replace it, or choose another run_dir.")


RESUME_PARTS = ("G", "D", "opt_g", "opt_d", "schedulers", "callbacks", "step", "history",
                "fixed_noise", "fixed_labels", "rng")
"""What a checkpoint must hold to resume a run exactly."""


def restore(state: TrainState, path: Path, automatic: bool = False) -> None:
    """Continue the run saved at `path` exactly where it stopped, if it is the same run
    (`automatic`: the caller did not ask, so one line says what happens)."""
    ckpt = load_checkpoint(path)
    run_record(ckpt, path)  # refuses old and foreign checkpoints
    require(ckpt, RESUME_PARTS, path)
    check_same_run(ckpt, state.record, path)
    if automatic:
        left = max(0, state.total_steps - ckpt["step"])
        then = (f"training {left:,} more" if left else "it is finished: nothing left to train")
        print(f"{path.parent} holds this run at step {ckpt['step']:,}: continuing it ({then}). "
              "To start it again, pass overwrite=True.", flush=True)
    load_module_state(state.G, ckpt["G"], "generator", path)
    state.opt_g.load_state_dict(ckpt["opt_g"])
    if state.D is not None:  # (the records match: a run of G alone saved no D)
        load_module_state(state.D, ckpt["D"], "discriminator", path)
        state.opt_d.load_state_dict(ckpt["opt_d"])
    for scheduler, saved in zip(state.schedulers, ckpt["schedulers"]):
        scheduler.load_state_dict(saved)
    for cb in state.callbacks:
        if cb.state_key in ckpt["callbacks"]:
            cb.load_state_dict(ckpt["callbacks"][cb.state_key])
    state.step = ckpt["step"]
    state.epoch = state.step // state.steps_per_epoch
    state.total_steps = max(state.total_steps, state.step)
    for key in STATS:
        state.history[key] = list(ckpt["history"][key])
    state.history.checkpoint_step = state.start_step = state.step
    state.fixed_noise = ckpt["fixed_noise"].to(state.device)
    if ckpt["fixed_labels"] is not None:
        state.fixed_labels = ckpt["fixed_labels"].to(state.device)
    set_rng_state(ckpt["rng"])


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


_WHY = {"lr_schedule_steps": " (the learning-rate schedule spans the run it was started as: a "
                              "longer or shorter run is another run)"}
"""Why a setting's difference makes another run, where its name alone does not say."""


def record_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Each way the run record `wanted` differs from `saved`, as `NAME was SAVED, now WANTED`.

    Compared: the dataset, both networks, the objective, and every setting present in both
    (a setting only one of them has is not a difference: old runs lack newer settings).
    """
    saved, wanted = _plain(saved), _plain(wanted)
    diffs = [f"{key} was {_show(saved.get(key))}, now {_show(wanted.get(key))}"
             for key in ("dataset", "G", "D", "objective") if saved.get(key) != wanted.get(key)]
    old, new = saved.get("settings", {}), wanted.get("settings", {})
    diffs += [f"{key} was {old[key]!r}, now {new[key]!r}{_WHY.get(key, '')}"
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
            f"{path} holds another run than this one asks for: {'; '.join(diffs)}. To "
            "continue that run, ask for what it was made with; to start a new one, use another "
            "run folder (a new --out or run_dir), or replace this one (--overwrite, or "
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
    trained with `fit(ema=...)`, or `train --ema`), as a state dict; None if it keeps none.

    It is the state of the callback the checkpoint names under `average`; a checkpoint written
    before that was recorded has at most one callback state with `weights`, the average's."""
    saved = checkpoint.get("callbacks") or {}
    if "average" in checkpoint:
        key = checkpoint["average"]
    else:
        key = next((k for k, v in saved.items() if isinstance(v, dict) and "weights" in v), None)
    return (saved.get(key) or {}).get("weights") if key is not None else None


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
