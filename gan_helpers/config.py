"""The few settings read from the environment, and the device and seed helpers.

Every lesson reads its settings through this module, so one environment variable changes
all of them at once and no notebook needs editing:

| variable        | meaning                                             | default          |
|-----------------|-----------------------------------------------------|------------------|
| `GAN_DATASET`   | `mnist` or `fashion-mnist`                          | `mnist`          |
| `GAN_DATA_DIR`  | where datasets are downloaded to                    | `<repo>/data`    |
| `GAN_RUNS_DIR`  | where training runs (grids, checkpoints) are saved  | `<repo>/runs`    |
| `GAN_SMOKE`     | `1`: tiny step counts, for CI (same code paths)     | off              |
| `GAN_DEVICE`    | force a device (`cpu`, `cuda`, `cuda:1`, `mps`)     | best available   |
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TypeVar

import torch

from .errors import GanHelpersError, UsageError

T = TypeVar("T")

DATASETS = ("mnist", "fashion-mnist")

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


SMOKE: bool = _flag("GAN_SMOKE")
"""True in smoke mode (`GAN_SMOKE=1`): every lesson runs its code paths with tiny step counts."""


def pick(full: T, smoke: T) -> T:
    """Return `full` normally and `smoke` in smoke mode: the one way lessons scale their work."""
    return smoke if SMOKE else full


def in_colab() -> bool:
    """True inside Google Colab."""
    import sys

    return "google.colab" in sys.modules


def dataset_name(name: str | None = None) -> str:
    """The dataset to use: `name` if given, else `$GAN_DATASET`, else MNIST."""
    chosen = (name or os.environ.get("GAN_DATASET") or "mnist").strip().lower()
    chosen = chosen.replace("_", "-")
    if chosen == "fashionmnist":
        chosen = "fashion-mnist"
    if chosen not in DATASETS:
        raise UsageError(f"Unknown dataset {chosen!r}: choose one of {', '.join(DATASETS)}.")
    return chosen


def _default_dir(env: str, name: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    # Inside a checkout: <repo>/data. Installed elsewhere (Colab): ./data beside the notebook.
    if (_REPO_ROOT / "pyproject.toml").exists():
        return _REPO_ROOT / name
    return Path.cwd() / name


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets live: `root` if given, else `$GAN_DATA_DIR`, else the repository's `data/`."""
    return Path(root).expanduser() if root is not None else _default_dir("GAN_DATA_DIR", "data")


def runs_dir(root: str | os.PathLike[str] | None = None, dataset: str | None = None) -> Path:
    """Where training runs are written: `root` if given; else `$GAN_RUNS_DIR` (or the repo's
    `runs/`) / the dataset (`dataset`, else `$GAN_DATASET`, else mnist).

    Runs of different datasets never share a folder, so switching the dataset never picks up the
    other dataset's run. In smoke mode the default is `runs/smoke/DATASET`, so a smoke run never
    overwrites a real one.
    """
    if root is not None:
        return Path(root).expanduser()
    base = _default_dir("GAN_RUNS_DIR", "runs")
    return (base / "smoke" if SMOKE else base) / dataset_name(dataset)


class DeviceUnavailableError(GanHelpersError, RuntimeError):
    """The device asked for does not exist on this machine."""


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The device to train on: `name` (a name or a `torch.device`) or `$GAN_DEVICE` if set, else
    CUDA, then MPS, then CPU. A device that is not available here is a clear error."""
    wanted = name or os.environ.get("GAN_DEVICE")
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError:
            raise DeviceUnavailableError(
                f"Device {str(wanted)!r}: use cpu, cuda, cuda:N or mps.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"Device {wanted!r} was asked for but CUDA is not available here. "
                "On Colab choose Runtime > Change runtime type > GPU; elsewhere unset GAN_DEVICE."
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise DeviceUnavailableError(
                f"Device {wanted!r} was asked for but Apple MPS is not available.")
        if device.type not in ("cpu", "cuda", "mps"):
            raise DeviceUnavailableError(f"Device {wanted!r}: use cpu, cuda, cuda:N or mps.")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"Device {wanted!r}: this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s).")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (if installed) and PyTorch's random number generators."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency, but stay usable without it
        pass
    torch.manual_seed(seed)
