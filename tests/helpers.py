"""What the tests share besides fixtures: a small dataset written in the real IDX format (so no
test needs a network), small networks and a small loader, a callback that stops `fit`, the
command line in a subprocess, and a stand-in evaluator.

Tests import it as `from tests.helpers import ...` (tests/ is a package; pytest's
`pythonpath = ["."]` puts the repository on the path); the fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import gzip
import os
import resource
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_helpers import data, models
from gan_helpers.callbacks import Callback
from gan_helpers.metrics import Scores

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ data and networks

def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write `array` (uint8) as an IDX file, the format MNIST is published in."""
    magic = 0x0800 | array.ndim  # 0x08: unsigned bytes
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` 28x28 images of a bright square whose position depends on the label, and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for img, label in zip(images, labels):
        r, c = 2 + (label // 5) * 12, 2 + (label % 5) * 5
        img[r:r + 10, c:c + 5] = 255
    return images, labels


def write_dataset(folder: Path, n_train: int = 256, n_test: int = 64,
                  compress: bool = False) -> dict[str, np.ndarray]:
    """Write the four MNIST files into `folder`; return the arrays written."""
    arrays = {}
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = make_images(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, compress)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def small_gan(kind: str = "mlp", seed: int = 0):
    """A small unconditional `(G, D)` pair, latent size 16: `"mlp"` or `"dcgan"` (width 8)."""
    torch.manual_seed(seed)
    if kind == "mlp":
        return models.MLPGenerator(latent_dim=16, hidden=(32, 64)), models.MLPDiscriminator(
            hidden=(64, 32))
    G, D = models.DCGANGenerator(latent_dim=16, width=8), models.DCGANDiscriminator(width=8)
    G.apply(models.weights_init)
    D.apply(models.weights_init)
    return G, D


def small_conditional_g():
    """A small conditional MLP generator: latent size 8, 10 classes."""
    torch.manual_seed(0)
    return models.ConditionalGenerator("mlp", latent_dim=8, num_classes=10, hidden=(16,))


def tiny_loader(n: int = 256, batch_size: int = 32, seed: int = 0) -> data.TensorLoader:
    """`n` images of `make_images` in a `TensorLoader` (8 batches of 32 by default)."""
    images, labels = make_images(n)
    return data.TensorLoader(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long(),
                             batch_size=batch_size, drop_last=True, seed=seed)


def weight_sum(G: torch.nn.Module) -> float:
    """The sum of a network's weights: tells one generator (or one state of it) from another."""
    return sum(p.detach().double().sum().item() for p in G.parameters())


# ------------------------------------------------------------------------------ stand-ins

class StopAt(Callback):
    """Stops `fit` after step `step`: with the Stop button (`how="button"`), a signal the process
    sends itself (`"sigint"`, Jupyter's interrupt; `"sigterm"`, `kill PID`), or a raised
    `KeyboardInterrupt`."""

    def __init__(self, step: int, how: str = "button") -> None:
        self.step, self.how = step, how

    def on_step_end(self, state) -> None:
        if state.step != self.step:
            return
        if self.how == "button":
            state.request_stop("stopped by the Stop button")
        elif self.how in ("sigint", "sigterm"):
            os.kill(os.getpid(), signal.SIGINT if self.how == "sigint" else signal.SIGTERM)
        else:
            raise KeyboardInterrupt


class FakeEvaluator:
    """Stands in for `evaluation.Evaluator`, without a classifier, and notes what it is given.

    - `score_generator(G, n)` (what `EvaluateEvery` and `run_recipe` call) returns real `Scores`
      for `n` samples whose FID is the next of `fids` when they are given, else the sum of G's
      weights (so a test can tell which generator was scored). `scored` keeps each generator it
      scored with a copy of its weights as they were then.
    - `outputs(images)` (how `latent` labels samples) says the class of an image is the index of
      its largest value; `seen` notes the number of images of each call.
    - `score(images)` (what `latent.scores_along` calls) gives the number of images as `fid` and
      their mean value as `confidence`.
    """

    classes = [str(c) for c in range(10)]

    def __init__(self, fids: list[float] | None = None) -> None:
        self.fids = None if fids is None else iter(fids)
        self.scored: list[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = []
        self.seen: list[int] = []

    def test_stats(self) -> None:
        pass

    def score_generator(self, G: torch.nn.Module, n: int, **kwargs) -> Scores:
        self.scored.append((G, {k: v.clone() for k, v in G.state_dict().items()}))
        fid = weight_sum(G) if self.fids is None else next(self.fids)
        return Scores(fid=fid, inception_score=1.0, coverage=10, classes=10, confidence=1.0,
                      histogram=[0.1] * 10, n=n)

    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(len(images))
        flat = images.flatten(1)
        return flat, (20 * flat).softmax(1)

    def score(self, images: torch.Tensor) -> Scores:
        return Scores(fid=len(images), inception_score=1.0, coverage=10, classes=10,
                      confidence=images.mean().item(), histogram=[0.1] * 10, n=len(images))


# ------------------------------------------------------------------------------ CI and the browser

def in_ci() -> bool:
    """True when `CI` is set to anything but empty, 0 or false (.ci/run exports CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_browser(test: str) -> None:
    """Skip when Chromium or Playwright is missing; under CI fail instead: CI must run `test`
    (e.g. "the browser test")."""
    from tools.browser import missing_browser_parts

    missing = missing_browser_parts()
    if not missing:
        return
    if in_ci():
        pytest.fail(f"CI must run {test}, but these are missing: {', '.join(missing)}")
    pytest.skip(f"needs {', '.join(missing)}")


# ------------------------------------------------------------------------------ the command line

BASE = ["--model", "mlp", "--batch-size", "32"]
"""The fault tests' small run: the MLP GAN in batches of 32 (8 steps an epoch on `tiny_data`)."""


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
        file_limit: int | None = None) -> subprocess.CompletedProcess:
    """`python -m gan_helpers ARGS` in a subprocess from the repository, with `env` added to the
    environment (`tiny_data`'s variables are there already) and `file_limit`, `ulimit -f` in
    bytes, when given."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "-m", "gan_helpers", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})},
                          preexec_fn=limit if file_limit is not None else None)
