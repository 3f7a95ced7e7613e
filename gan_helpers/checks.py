"""The one place where values are checked as they enter the package.

The command line, the environment variables (`GAN_*`, read in `config`) and the library functions
a lesson calls (`make_loader`, `Evaluator.score*`, the latent-space helpers, ...) check what they
are given with these plain functions, so a mistake is caught where it is made and named in words
("batch_size must be a whole number, got the text '64'"), not deep inside torch as a matrix-shape
error. Each function returns the value it checked (normalised: `1e4` becomes `10000`, `"CPU"`
becomes `torch.device("cpu")`) or raises a `UsageError` (a `ValueError`), `UsageTypeError` (also
a `TypeError`) or `DeviceUnavailableError` whose message is one sentence that says what to do.

What is allowed, and why:

- whole numbers: Python and NumPy integers, 0-d integer tensors, and floats that are whole
  (`n=1e4` is how people write ten thousand); never `True`/`False`, never text (`"64"`), never 2.5;
- real numbers: any finite int or float; NaN and infinity are refused everywhere, since no
  setting of this package means anything at NaN;
- seeds: whole numbers from 0 to 2**32 - 1 (NumPy's range; the loader derives per-epoch seeds from
  it, so larger ones would overflow torch's generator);
- devices: `cpu`, `cuda`, `cuda:N`, `mps` in any case and with spaces around (`CPU` means cpu),
  or a `torch.device`; a device this machine lacks is refused, naming what it has.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DeviceUnavailableError, UsageError, UsageTypeError

SEED_MAX = 2**32 - 1
"""The largest seed accepted (NumPy's limit)."""


# ----------------------------------------------------------------------------- ranges


def range_text(low: float | None = None, high: float | None = None, *, low_ok: bool = True,
               high_ok: bool = True) -> str:
    """The allowed range in words: "at least 1", "above 0 and at most 1", ..."""
    def shown(v: float) -> str:
        return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"

    parts = []
    if low is not None:
        parts.append(f"{'at least' if low_ok else 'above'} {shown(low)}")
    if high is not None:
        parts.append(f"{'at most' if high_ok else 'below'} {shown(high)}")
    return " and ".join(parts) or "any number"


def out_of_range(value: float, low: float | None = None, high: float | None = None, *,
                 low_ok: bool = True, high_ok: bool = True) -> str | None:
    """None when `value` is finite and in the range; else what is wrong with it, in words
    ("it must be at least 1", "it is not a finite number")."""
    if not math.isfinite(value):
        return "it is not a finite number"
    too_low = low is not None and (value < low or (value == low and not low_ok))
    too_high = high is not None and (value > high or (value == high and not high_ok))
    if too_low or too_high:
        return f"it must be {range_text(low, high, low_ok=low_ok, high_ok=high_ok)}"
    return None


def _type_name(value: Any) -> str:
    return "text" if isinstance(value, str) else f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _not_a_number(name: str, value: Any, kind: str) -> UsageTypeError:
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = f": write {name}={value.strip()}, without quotes"
        except ValueError:
            pass
    return UsageTypeError(f"{name} must be {kind}, got {_type_name(value)}, "
                          f"{_shown(value)}{hint}.")


def _scalar(value: Any) -> Any:
    """A 0-d tensor or NumPy scalar as a Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a NumPy scalar
        return value.item()
    return value


# ----------------------------------------------------------------------------- numbers


def whole_number(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int, if it is a whole number within [low, high]; else a `UsageError`."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _not_a_number(name, value, "a whole number")
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif not (math.isfinite(value) and float(value).is_integer()):
        raise UsageError(f"{name} must be a whole number, got {value!r}.")
    else:
        value = int(value)
    problem = out_of_range(value, low, high)
    if problem:
        raise UsageError(f"{name} is {value}, but {problem}.")
    return value


def positive_int(name: str, value: Any, high: int | None = None) -> int:
    """A whole number of at least 1 (and at most `high`)."""
    return whole_number(name, value, 1, high)


def non_negative_int(name: str, value: Any, high: int | None = None) -> int:
    """A whole number of at least 0 (and at most `high`)."""
    return whole_number(name, value, 0, high)


def finite_float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_ok: bool = True, high_ok: bool = True) -> float:
    """`value` as a float, if it is a finite number in the range; else a `UsageError`."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _not_a_number(name, value, "a number")
    value = float(value)
    problem = out_of_range(value, low, high, low_ok=low_ok, high_ok=high_ok)
    if problem:
        raise UsageError(f"{name} is {value:g}, but {problem}.")
    return value


def seed(name: str, value: Any) -> int:
    """A seed: a whole number from 0 to `SEED_MAX`."""
    return whole_number(name, value, 0, SEED_MAX)


_check_seed = seed  # for functions with an argument called seed


def optional(check: Callable[..., Any], name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """None stays None; anything else goes through `check(name, value, ...)`."""
    return None if value is None else check(name, value, *args, **kwargs)


# ----------------------------------------------------------------------------- devices


def device(value: str | torch.device, *, source: str = "device") -> torch.device:
    """A device that exists on this machine: `cpu`, `cuda`, `cuda:N` or `mps` (any case) or a
    `torch.device`. `source` names where the value came from in the message (`"GAN_DEVICE"`,
    `"--device"`, `"device"`)."""
    if isinstance(value, torch.device):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        raise UsageTypeError(f"{source} must be a device name such as 'cpu' or 'cuda', got "
                             f"{_type_name(value)}, {_shown(value)}.")
    shown = f"{source} is {str(value)!r}"
    try:
        wanted = torch.device(text)
    except RuntimeError:
        raise DeviceUnavailableError(f"{shown}, which is not a device: use cpu, cuda, cuda:N or "
                                     "mps.") from None
    undo = ("unset GAN_DEVICE or set it to cpu" if source == "GAN_DEVICE"
            else "use cpu, or leave the device out to get the best one available")
    if wanted.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"{shown}, but CUDA is not available here (no NVIDIA GPU or driver): {undo} "
                "(on Colab: Runtime > Change runtime type > GPU).")
        count = torch.cuda.device_count()
        if (wanted.index or 0) >= count:
            raise DeviceUnavailableError(f"{shown}, but this machine has {count} CUDA "
                                         f"device(s), cuda:0 to cuda:{count - 1}: {undo}.")
        return wanted
    if wanted.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError(
                f"{shown}, but Apple MPS is not available here (it needs a Mac with Apple "
                f"silicon): {undo}.")
        return wanted
    if wanted.type != "cpu":
        raise DeviceUnavailableError(f"{shown}, which this package does not support: use cpu, "
                                     "cuda, cuda:N or mps.")
    return wanted


# ----------------------------------------------------------------------------- the environment


def env_int(var: str, default: int, low: int = 1) -> int:
    """The whole number in environment variable `var` (at least `low`), or `default` when it is
    unset or empty; anything else is a `UsageError` naming the variable."""
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{var} is {text!r}, not a whole number: set it to a number such as "
                         f"{default}, or unset it.") from None
    if value < low:
        raise UsageError(f"{var} is {value}, but it must be at least {low}: set it to a number "
                         f"such as {default}, or unset it.")
    return value


# ----------------------------------------------------------------------------- tensors


def tensor(name: str, value: Any, *, dims: int | tuple[int, ...] | None = None,
           what: str = "") -> torch.Tensor:
    """`value` if it is a tensor with `dims` dimensions (one count or several allowed); `what`
    describes the expected shape in the message, e.g. "(N, 1, H, W)"."""
    if not isinstance(value, torch.Tensor):
        raise UsageTypeError(f"{name} must be a torch tensor{' ' + what if what else ''}, got "
                             f"{_type_name(value)}.")
    allowed = (dims,) if isinstance(dims, int) else dims
    if allowed is not None and value.dim() not in allowed:
        raise UsageError(f"{name} has shape {tuple(value.shape)}, but it must have "
                         f"{' or '.join(map(str, allowed))} dimensions"
                         f"{' ' + what if what else ''}.")
    return value


def images(name: str, value: Any, channels: int | None = 1) -> torch.Tensor:
    """A batch of images `(N, C, H, W)` (uint8 pixels, or floats), with `channels` channels."""
    value = tensor(name, value, dims=4, what="(N, C, H, W)")
    if channels is not None and value.shape[1] != channels:
        kind = "grayscale" if channels == 1 else f"{channels}-channel"
        raise UsageError(f"{name} has {value.shape[1]} channels (shape {tuple(value.shape)}), but "
                         f"{kind} images ({channels} channel{'s' if channels > 1 else ''}) are "
                         f"expected: convert them first, e.g. images.mean(1, keepdim=True).")
    if not (value.dtype == torch.uint8 or value.is_floating_point()):
        raise UsageTypeError(f"{name} must hold uint8 pixels or floats in [-1, 1], not "
                             f"{value.dtype}.")
    return value


def latent(name: str, value: Any, latent_dim: int | None = None) -> torch.Tensor:
    """Latent vectors `(..., d)`: a floating-point tensor whose last dimension is `latent_dim`."""
    value = tensor(name, value, what="of latent vectors (..., latent_dim)")
    if value.dim() == 0 or not value.is_floating_point():
        raise UsageError(f"{name} must be floating-point latent vectors (..., latent_dim), got "
                         f"shape {tuple(value.shape)} of {value.dtype}.")
    if latent_dim is not None and value.shape[-1] != latent_dim:
        raise UsageError(f"{name} has {value.shape[-1]} numbers per vector (shape "
                         f"{tuple(value.shape)}), but the generator takes {latent_dim} "
                         f"(its latent_dim).")
    return value


# ----------------------------------------------------------------------------- networks


def generator(name: str, G: Any) -> nn.Module:
    """`G` if it is a network (a `torch.nn.Module`); what it makes is checked by
    `generator_images`."""
    if not isinstance(G, nn.Module):
        raise UsageTypeError(f"{name} must be a generator network (a torch.nn.Module), got "
                             f"{_type_name(G)}.")
    return G


def gan_networks(G: Any, D: Any, image_shape: tuple[int, ...] | None = None) -> None:
    """Check that `G` and `D` are a generator and a discriminator in that order, that `D` takes
    `G`'s images, and that both fit the loader's images `image_shape` `(C, H, W)` (if known).

    Runs each network once on two samples in eval mode, without gradients (no running statistic,
    spectral-norm vector or random state is changed). For `fit`, before any training.
    """
    for label, net in (("G", G), ("D", D)):
        if not isinstance(net, nn.Module):
            raise UsageTypeError(f"{label} must be a network (a torch.nn.Module), got "
                                 f"{_type_name(net)}.")
    if G is D:
        raise UsageError("G and D are the same network: pass a generator and a discriminator.")
    if getattr(G, "latent_dim", None) is None and getattr(D, "latent_dim", None) is not None:
        raise UsageError(f"G and D look swapped: the second network ({type(D).__name__}) is a "
                         f"generator (it has a latent_dim): call fit(G, D, ...) with the "
                         "generator first.")
    latent_dim = getattr(G, "latent_dim", None)
    if latent_dim is None:
        return  # a network of the learner's own without latent_dim: nothing to probe with
    classes = getattr(G, "num_classes", None)
    fake = generator_images(G, latent_dim)
    cond = (torch.zeros(2, dtype=torch.long, device=fake.device),) if classes else ()
    made = tuple(fake.shape[1:])
    _same_images(made, image_shape)
    with _eval(D):
        try:
            verdict = D(fake, *cond) if classes else D(fake)
        except (RuntimeError, TypeError) as err:
            raise UsageError(f"D ({type(D).__name__}) cannot take G's images of shape "
                             f"{_shape(made)} ({_first_line(err)}): build D for {_shape(made)} "
                             "images.") from None
    if verdict.numel() != 2:
        raise UsageError(f"D ({type(D).__name__}) gives {tuple(verdict.shape)} for a batch of 2 "
                         "images, not one score per image: is it a discriminator? (G and D may "
                         "be swapped.)")


def _same_images(made: tuple[int, ...], image_shape: tuple[int, ...] | None) -> None:
    if image_shape is not None and made != tuple(image_shape):
        raise UsageError(
            f"G makes images of shape {_shape(made)}, but the loader serves "
            f"{_shape(image_shape)}: build G for {_shape(image_shape)} images (e.g. the "
            f"64x64 DCGAN for 64x64 ones) or make the loader with image_size={made[-1]}.")


def generator_alone(G: Any, image_shape: tuple[int, ...] | None = None) -> None:
    """Check that `G`, trained without a discriminator (a flow model), is a generator whose
    images fit the loader's `image_shape` `(C, H, W)` (if known)."""
    if not isinstance(G, nn.Module):
        raise UsageTypeError(f"G must be a network (a torch.nn.Module), got {_type_name(G)}.")
    _same_images(tuple(generator_images(G).shape[1:]), image_shape)


def generator_images(G: nn.Module, latent_dim: int | None = None) -> torch.Tensor:
    """Two images from `G` (eval mode, no gradients, its own seeded noise: nothing in `G` or the
    global random state changes), `(2, C, H, W)`; a `UsageError` in words when `G` cannot make
    images from latent vectors of `latent_dim` numbers (default: `G.latent_dim`)."""
    latent_dim = latent_dim or getattr(G, "latent_dim", None) or 100
    classes = getattr(G, "num_classes", None)
    device = next(iter(G.parameters()), torch.empty(0)).device
    z = torch.randn(2, latent_dim, generator=torch.Generator().manual_seed(0)).to(device)
    cond = (torch.zeros(2, dtype=torch.long, device=device),) if classes else ()
    with _eval(G):
        try:
            fake = G(z, *cond)
        except (RuntimeError, TypeError) as err:
            raise UsageError(f"G ({type(G).__name__}) cannot turn latent vectors of "
                             f"{latent_dim} numbers into images ({_first_line(err)}): is it a "
                             "generator, built with this latent_dim?") from None
    if not isinstance(fake, torch.Tensor) or fake.dim() != 4 or len(fake) != 2:
        shape = tuple(fake.shape) if isinstance(fake, torch.Tensor) else type(fake).__name__
        raise UsageError(f"G ({type(G).__name__}) gives {shape} for 2 latent vectors, not images "
                         "(2, C, H, W): is it a generator? (G and D may be swapped.)")
    return fake


class _eval:
    """Eval mode and no gradients inside the block, the training mode restored afterwards."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was = module, module.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> nn.Module:
        self.module.eval()
        self.no_grad.__enter__()
        return self.module

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        self.module.train(self.was)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def loader_image_shape(loader: Any) -> tuple[int, ...] | None:
    """The `(C, H, W)` of the images `loader` serves, when it can tell without loading a batch
    (a `TensorLoader`); else None."""
    images_ = getattr(loader, "images", None)
    if not isinstance(images_, torch.Tensor) or images_.dim() != 4:
        return None
    size = getattr(loader, "image_size", None)
    c, h, w = images_.shape[1:]
    return (c, size, size) if size else (c, h, w)


def fit_arguments(G: Any, D: Any, loader: Any, epochs: Any, *, max_steps: Any = None,
                  seed: Any = None, sync_every: Any = None) -> dict[str, Any]:
    """What `fit` is given, checked before any work: the two networks (in order, fitting each
    other and the loader's images; G alone, fitting them, when D is None), `epochs` (at least
    1), `max_steps` and `sync_every` (None or at least 1) and the seed (None or a seed). Returns
    the numbers, normalised."""
    checked = {"epochs": positive_int("epochs", epochs),
               "max_steps": optional(positive_int, "max_steps", max_steps),
               "sync_every": optional(positive_int, "sync_every", sync_every),
               "seed": optional(_check_seed, "seed", seed)}
    if not hasattr(loader, "__iter__"):
        raise UsageTypeError(f"loader must yield (images, labels) batches (a TensorLoader from "
                             f"make_loader, or a DataLoader), got {_type_name(loader)}.")
    if D is None:
        generator_alone(G, loader_image_shape(loader))
    else:
        gan_networks(G, D, loader_image_shape(loader))
    conditional_labels(G, getattr(loader, "labels", None))
    return checked


def conditional_labels(G: Any, labels: Any) -> None:
    """For a conditional `G` (one with `num_classes`): every label in `labels` (a tensor, e.g.
    a `TensorLoader`'s) is one of its classes, 0 to num_classes - 1."""
    classes = getattr(G, "num_classes", None)
    if not classes or not isinstance(labels, torch.Tensor) or labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise UsageError(f"The loader's labels include {bad}, but the conditional generator has "
                         f"classes 0 to {classes - 1}: build it with num_classes={high + 1} or "
                         "fix the labels.")


# ----------------------------------------------------------------------------- output files


def output_file(path: str | os.PathLike[str], suffixes: tuple[str, ...],
                option: str = "--out") -> Path:
    """A file that can be written: its name ends in one of `suffixes` (any case), it is not a
    folder nor a dangling link, and its folder exists or can be made and is writable. Returns the
    path (a link to an existing file: the file it points to)."""
    path = Path(path).expanduser()
    listed = " or ".join(suffixes)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name in it, e.g. "
                         f"{path / ('samples' + suffixes[0])}.")
    if path.suffix.lower() not in suffixes:
        what = f"ends in {path.suffix}" if path.suffix else "has no extension"
        raise UsageError(f"{option} {path} {what}: the name must end in {listed}.")
    if path.is_symlink():
        if not path.exists():
            raise UsageError(f"{option} {path} is a link to {os.readlink(path)}, which does not "
                             f"exist: remove the link or choose another {option}.")
        path = path.resolve()
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: cannot make the folder {folder}, because {existing} "
                         f"is a file: choose another {option}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {existing} cannot be written (permission "
                         f"denied): choose another {option}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} exists and cannot be overwritten (permission denied): "
                         f"choose another {option}.")
    return path
