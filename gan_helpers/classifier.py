"""The evaluation classifier: a small CNN for the dataset, whose features and class
probabilities the metrics (`metrics`) are computed from.

It is trained on the dataset's training split the first time it is needed (one line says so, and
about how long it takes on a laptop CPU; seeded, the global random state untouched) and cached
under `data/classifiers/`; a cached file is used only if it records the same dataset, `VERSION`
and training schedule, and is retrained otherwise. In smoke mode the schedule shrinks to
`SMOKE_SCHEDULE` (`config.smoke_cap`); shortened schedules (smoke mode, tests) are cached under
their own names, so they never replace the real one.

    classifier = load_classifier()             # cached, or trained once
    print(f"{classifier.test_accuracy:.1%}")   # on the real test split
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import config, data
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint

VERSION = 1
"""Bump when the classifier or its training changes: cached classifiers of other versions are
retrained, not trusted."""

CLASSIFIER_FORMAT = "gan-helpers-classifier/1"
FEATURE_DIM = 128
"""The width of the penultimate layer, whose activations FID compares."""
EPOCHS = 10
"""The classifier's default training schedule: epochs over the whole training split."""
SMOKE_SCHEDULE = {"epochs": 1, "limit": 2048}
"""The most a smoke run trains it: one epoch over the first 2,048 training images."""
CPU_IMAGES_PER_S = 6000
"""Training images per second on a 2-core laptop CPU, from which the notice before training
estimates its duration: measured one epoch of 60,000 Fashion-MNIST images in 10 s, loading and
the test accuracy included (other work on the same CPU makes it slower)."""


class Classifier(nn.Module):
    """A small CNN: two conv blocks (28 -> 14 -> 7), one hidden layer of `FEATURE_DIM` units.

    `features(x)` returns the hidden layer's activations (what FID compares), `forward(x)` the
    class logits. Images are floats in [-1, 1], shape `(N, 1, 28, 28)`.
    """

    def __init__(self, n_classes: int = 10, widths: tuple[int, int] = (32, 64),
                 feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        w1, w2 = widths
        self.body = nn.Sequential(  # strided convolutions: many times faster than pooling on a CPU
            nn.Conv2d(1, w1, 5, stride=2, padding=2), nn.ReLU(inplace=True),  # -> (w1, 14, 14)
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),  # -> (w2, 7, 7)
            nn.Flatten(),
            nn.Linear(w2 * 7 * 7, feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, n_classes))
        self.dataset: str | None = None
        self.key: str | None = None
        self.test_accuracy: float | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer's activations, `(N, FEATURE_DIM)`."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def classifier_key(name: str | None = None, epochs: int = EPOCHS, limit: int | None = None,
                   seed: int = 0) -> str:
    """What a cached classifier must match to be used: dataset, version and training schedule."""
    return (f"{config.dataset_name(name)}/v{VERSION}/epochs={epochs}/limit={limit}/seed={seed}")


def classifier_path(name: str | None = None, epochs: int = EPOCHS, limit: int | None = None,
                    seed: int = 0, root: str | os.PathLike[str] | None = None) -> Path:
    """Where the classifier for `name` is cached: `data/classifiers/DATASET-vVERSION.pt`.

    A shortened schedule (smoke mode, tests) gets its own file, so it never replaces the real one.
    """
    stem = f"{config.dataset_name(name)}-v{VERSION}"
    if (epochs, limit, seed) != (EPOCHS, None, 0):
        stem += f"-e{epochs}-n{limit or 'all'}-s{seed}"
    return config.data_dir(root) / "classifiers" / f"{stem}.pt"


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> float:
    """The share of `images` (uint8) that `model` labels correctly."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        x = data.normalize(images[i:i + batch_size].to(device))
        correct += (model(x).argmax(1).cpu() == labels[i:i + batch_size]).sum().item()
    return correct / max(1, len(images))


def train_classifier(name: str | None = None, *, epochs: int = EPOCHS, limit: int | None = None,
                     seed: int = 0, device: torch.device | str | None = None,
                     root: str | os.PathLike[str] | None = None,
                     verbose: bool = True, why: str | None = None) -> Classifier:
    """Train a `Classifier` on the training split of `name`; report its test accuracy.

    Seeded and deterministic for a given device; the global random state is left untouched,
    so training it in the middle of a GAN's run changes nothing there. With `verbose`, one line
    says what it trains and about how long that takes on a laptop CPU (`why` goes first:
    `load_classifier` says why it trains), and one line the result. Smoke mode shrinks the
    schedule to `SMOKE_SCHEDULE`.
    """
    dataset = config.dataset_name(name)
    device = config.pick_device(device)
    epochs, limit = _schedule(epochs, limit)
    images, labels = data.load_tensors(dataset, root, train=True, limit=limit)
    test_images, test_labels = data.load_tensors(dataset, root, train=False)
    loader = data.TensorLoader(images, labels, batch_size=128, seed=seed, device=device)
    if verbose:
        print(f"{why or 'Training the evaluation classifier'} on {len(images):,} {dataset} "
              f"images for {epochs} epoch{'s' * (epochs != 1)} "
              f"({_cpu_estimate(len(images) * epochs)} on a 2-core laptop CPU)...", flush=True)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        total = max(1, epochs * len(loader))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=total,
                                                    pct_start=0.15)
        model.train()
        for epoch in range(epochs):
            for x, y in loader.batches(epoch):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    model.dataset = dataset
    model.key = classifier_key(dataset, epochs, limit, seed)
    model.test_accuracy = accuracy(model, test_images, test_labels)
    if verbose:
        print(f"Classifier trained in {time.perf_counter() - start:.0f} s: test accuracy "
              f"{model.test_accuracy:.2%} on {len(test_images):,} test images.")
    return model


def _schedule(epochs: int, limit: int | None) -> tuple[int, int | None]:
    """The training schedule to use: as given, or at most `SMOKE_SCHEDULE` in smoke mode."""
    return (config.smoke_cap(epochs, SMOKE_SCHEDULE["epochs"]),
            config.smoke_cap(limit, SMOKE_SCHEDULE["limit"]))


def _cpu_estimate(images: int) -> str:
    """About how long training on `images` images (all epochs) takes on a 2-core laptop CPU."""
    seconds = images / CPU_IMAGES_PER_S
    if seconds < 90:
        return f"about {max(1, round(seconds, -1 if seconds > 20 else 0)):.0f} s"
    return f"about {seconds / 60:.0f} minutes"


def _load_cached(path: Path, key: str, device: torch.device) -> tuple[Classifier | None, str]:
    """The cached classifier at `path` if it is whole and was trained for `key`, else why not."""
    if not path.exists():
        return None, f"no cached classifier at {path}"
    try:
        saved = load_checkpoint(path)
    except CheckpointError as err:
        return None, f"{path} cannot be read ({type(err.__cause__ or err).__name__})"
    if saved.get("format") != CLASSIFIER_FORMAT:
        return None, f"{path} is not a classifier of gan_helpers"
    if saved.get("version") != VERSION or saved.get("key") != key:
        return None, (f"{path} is stale or foreign (it was trained for {saved.get('key')!r}, "
                      f"this needs {key!r})")
    model = Classifier()
    try:
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        return None, f"{path} does not fit the classifier ({type(err).__name__})"
    model.dataset, model.key = saved["dataset"], key
    model.test_accuracy = float(saved["test_accuracy"])
    return model.to(device).eval(), "loaded"


def load_classifier(name: str | None = None, *, epochs: int = EPOCHS, limit: int | None = None,
                    seed: int = 0, device: torch.device | str | None = None,
                    root: str | os.PathLike[str] | None = None, retrain: bool = False,
                    verbose: bool = True) -> Classifier:
    """The evaluation classifier for `name`: from the cache if it is there and current, else
    trained now and cached (one line says which, and how long training takes on a laptop CPU).

    The cache file records the dataset, `VERSION` and the schedule (`epochs`, `limit`, `seed`);
    a file that does not match, or cannot be read, is retrained and replaced, never trusted.
    Smoke mode shrinks the schedule to `SMOKE_SCHEDULE`; shortened schedules are cached under
    their own names.
    """
    dataset = config.dataset_name(name)
    device = config.pick_device(device)
    epochs, limit = _schedule(epochs, limit)
    key = classifier_key(dataset, epochs, limit, seed)
    path = classifier_path(dataset, epochs, limit, seed, root)
    why = "you asked for it"
    if not retrain:
        model, why = _load_cached(path, key, device)
        if model is not None:
            if verbose:
                print(f"Evaluation classifier for {dataset}: test accuracy "
                      f"{model.test_accuracy:.2%} (cached in {path}).")
            return model
    why = ("No evaluation classifier cached yet: training one, once,"
           if not path.exists() else f"Retraining the evaluation classifier, as {why},")
    model = train_classifier(dataset, epochs=epochs, limit=limit, seed=seed, device=device,
                             root=root, verbose=verbose, why=why)
    save_checkpoint({"format": CLASSIFIER_FORMAT, "version": VERSION, "key": key,
                     "dataset": dataset, "epochs": epochs, "limit": limit, "seed": seed,
                     "test_accuracy": model.test_accuracy,
                     "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, path)
    return model
