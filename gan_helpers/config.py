"""The few settings read from the environment, and the device and seed helpers.

Every lesson reads its settings through this module, so one environment variable changes
all of them at once and no notebook needs editing:

| variable        | meaning                                             | default          |
|-----------------|-----------------------------------------------------|------------------|
| `GAN_DATASET`   | `mnist` or `fashion-mnist`                          | `mnist`          |
| `GAN_DATA_DIR`  | where datasets are downloaded to                    | `<repo>/data`    |
| `GAN_RUNS_DIR`  | where training runs (grids, checkpoints) are saved  | `<repo>/runs`    |
| `GAN_SMOKE`     | `1`: tiny step counts, for CI (same code paths)     | off              |
| `GAN_SMOKE_IMAGES` | training images per loader in smoke mode         | 512              |
| `GAN_DEVICE`    | force a device (`cpu`, `cuda`, `cuda:1`, `mps`)     | best available   |
| `GAN_DRIVE_MOUNT` | where Google Drive is mounted on Colab            | `/content/drive` |

Smoke mode is the package's business: lessons write their real settings (`EPOCHS = 15`) and the
package shrinks the work under `GAN_SMOKE` (the loader's images, the evaluator's samples, the
classifier's training, a lesson helper's step counts, a wall-clock budget) with `smoke_cap` and
`smoke_times`, so a smoke run takes the
same code paths with fewer steps and no lesson has to mention it.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path
from typing import TypeVar

import torch

from . import checks
from .errors import DeviceUnavailableError as DeviceUnavailableError  # it used to live here
from .errors import UsageError

T = TypeVar("T")

DATASETS = ("mnist", "fashion-mnist")
"""The datasets the lessons train on, by the names every setting uses (`data.DATASET_INFO` says
what each one is)."""

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


SMOKE: bool = _flag("GAN_SMOKE")
"""True in smoke mode (`GAN_SMOKE=1`): every lesson runs its code paths with tiny step counts."""


def _env_smoke_images() -> tuple[int, UsageError | None]:
    try:
        return checks.env_int("GAN_SMOKE_IMAGES", 512), None
    except UsageError as err:  # raised when used (`smoke_images`): never breaks an import
        return 512, err


SMOKE_IMAGES, _SMOKE_IMAGES_ERROR = _env_smoke_images()
"""Training images a loader serves in smoke mode (`make_loader`; use `smoke_images()`, which
refuses a `GAN_SMOKE_IMAGES` that is not a whole number of at least 1)."""


def smoke_images() -> int:
    """`SMOKE_IMAGES`, the images a loader keeps in smoke mode; a bad `GAN_SMOKE_IMAGES` (`abc`,
    `-5`) is a `UsageError` here, when it would be used, not when the package is imported (so
    `--help` and everything outside smoke mode still work)."""
    if _SMOKE_IMAGES_ERROR is not None and SMOKE:
        raise _SMOKE_IMAGES_ERROR
    return SMOKE_IMAGES


def pick(full: T, smoke: T) -> T:
    """Return `full` normally and `smoke` in smoke mode (for the package and scripts; the lessons
    never call it: they write their real settings and the package shrinks the work)."""
    return smoke if SMOKE else full


def smoke_cap(value: int | None, cap: int) -> int | None:
    """`value` normally; in smoke mode at most `cap` (`None`, meaning "all", becomes `cap`)."""
    if not SMOKE:
        return value
    return cap if value is None else min(value, cap)


SMOKE_SECONDS = 2.0
"""The longest wall-clock training budget in smoke mode (`smoke_times`)."""


def smoke_times(times: list[float]) -> list[float]:
    """`times` (seconds of training) normally; in smoke mode scaled down together, so the last
    is at most `SMOKE_SECONDS` (a lesson's 60-s race takes 2 s)."""
    scale = SMOKE_SECONDS / max(times) if SMOKE and times and max(times) > SMOKE_SECONDS else 1.0
    return [t * scale for t in times]


def in_colab() -> bool:
    """True inside Google Colab."""
    import sys

    return "google.colab" in sys.modules


def dataset_name(name: str | None = None, default: str = "mnist") -> str:
    """The dataset to use: `name` if given, else `$GAN_DATASET`, else `default` (MNIST).

    A lesson's settings cell says `DATASET = config.dataset_name(default="mnist")`: the learner
    edits the default to switch that lesson, and `GAN_DATASET`, when set, switches every lesson.
    """
    chosen = (name or os.environ.get("GAN_DATASET") or default).strip().lower()
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


def runs_dir(root: str | os.PathLike[str] | None = None, dataset: str | None = None,
             drive: bool = False) -> Path:
    """Where training runs are written: `root` if given; else `$GAN_RUNS_DIR` (or the repo's
    `runs/`, or `./runs` beside the notebook when installed) / the dataset (`dataset`, else
    `$GAN_DATASET`, else mnist).

    With `drive=True` on Colab, Google Drive is mounted and runs go to `MyDrive/gan-lessons/runs`
    there instead, so a disconnected runtime loses nothing: run the lesson again and it resumes
    or reloads what it had (outside Colab the switch is ignored, with a note).

    Runs of different datasets never share a folder, so switching the dataset never picks up the
    other dataset's run. In smoke mode the default is `runs/smoke/DATASET`, so a smoke run never
    overwrites a real one.
    """
    if root is not None:
        return Path(root).expanduser()
    base = _drive_runs() if drive else None
    if base is None:
        base = _default_dir("GAN_RUNS_DIR", "runs")
    return (base / "smoke" if SMOKE else base) / dataset_name(dataset)


def _drive_runs() -> Path | None:
    """Mount Google Drive (Colab only) and return the runs folder on it; None elsewhere."""
    if not in_colab():
        print("note: keeping runs on Google Drive works on Colab only; runs stay on this machine.")
        return None
    from google.colab import drive  # type: ignore[import-not-found]

    mount = Path(os.environ.get("GAN_DRIVE_MOUNT") or "/content/drive")
    if not (mount / "MyDrive").is_dir():
        drive.mount(str(mount))
    return mount / "MyDrive" / "gan-lessons" / "runs"


def device_hint(device: torch.device) -> str:
    """`device` as text, with a one-line hint when it is the CPU on Colab (a GPU runtime is
    many times faster and free)."""
    if device.type == "cpu" and in_colab():
        return ("cpu (this Colab runtime has no GPU: Runtime > Change runtime type > T4 GPU, "
                "then run the lesson again, trains many times faster)")
    return str(device)


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """The device to train on: `name` (a name or a `torch.device`) or `$GAN_DEVICE` if set, else
    CUDA, then MPS, then CPU. A device that is not available here is a clear error
    (`DeviceUnavailableError`, naming `GAN_DEVICE` when the value came from there); the name's
    case does not matter (`CPU` is cpu)."""
    if name is not None and not (isinstance(name, str) and not name.strip()):
        return checks.device(name)
    wanted = os.environ.get("GAN_DEVICE", "").strip()
    if wanted:
        return checks.device(wanted, source="GAN_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_environment(dataset: str | None = None, device: str | torch.device | None = None, *,
                      check_dataset: bool = True) -> torch.device:
    """Check the `GAN_*` variables that could stop a command later now: `GAN_DATASET` (unless
    `dataset` is given, or `check_dataset` is False), `GAN_DEVICE` (unless `device` is given),
    `GAN_SMOKE_IMAGES` in smoke mode and `GAN_DATA_DIR`; a bad one is a `GanHelpersError`
    naming it. Returns the device to use (`pick_device(device)`)."""
    if check_dataset:
        dataset_name(dataset)
    chosen = pick_device(device)
    smoke_images()
    folder = os.environ.get("GAN_DATA_DIR", "").strip()
    if folder and Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
        raise UsageError(f"GAN_DATA_DIR is {folder}, which is a file: point it at a folder (the "
                         "datasets go into its MNIST/ and FashionMNIST/), or unset it.")
    return chosen


@functools.cache
def native_bf16(device: torch.device | str) -> bool:
    """True where bfloat16 arithmetic is native, so bf16 autocast can pay off: a CUDA GPU with
    bf16 (Ampere or later), or a CPU with AVX512-BF16 or AMX. False where it would be emulated
    (older GPUs, CPUs with AVX2 or plain AVX-512: slower than float32) and on other devices."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
    if device.type == "cpu":
        flags = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, private
        return any(getattr(torch.cpu, name, lambda: False)() for name in flags)
    return False


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (if installed) and PyTorch's random number generators."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency, but stay usable without it
        pass
    torch.manual_seed(seed)


def deterministic(on: bool = True) -> None:
    """Make training on CUDA repeatable bit for bit (on the CPU it already is): deterministic
    kernels only, and no cuDNN autotuning (`fit` then leaves `cudnn.benchmark` off). Slower on a
    GPU; call it before training, e.g. to check that a resumed run matches an uninterrupted one."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = on
