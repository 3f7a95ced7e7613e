"""Checkpoints: written atomically, read safely (`weights_only=True`), with clear errors."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, or does not fit the models it is loaded into."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save `state` to `path` atomically: a temporary file first, then a rename.

    An interruption while saving leaves the previous checkpoint whole. `state` must hold only
    what `torch.load(weights_only=True)` accepts: tensors, numbers, strings, lists, dicts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike[str],
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by `save_checkpoint`, with `weights_only=True`.

    Raises `CheckpointError` naming the file if it is missing, truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Check the run folder's name.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"Checkpoint {path} cannot be read: it is truncated or damaged ({err}). Use an earlier "
            "checkpoint, or delete it and train again."
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project (no dict inside).")
    return state


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
