"""Measured quality: a small classifier for the dataset, and the scores built on it.

Judging a GAN by its samples is judging by eye. This module measures instead, with a small CNN
trained on the dataset's training split (by this module, the first time it is needed, cached under
`data/classifiers/`):

- **classifier FID**: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate-layer features of generated images and of the real test split (lower is better;
  0 means the two feature distributions have the same mean and covariance);
- **classifier IS**: exp(E_x KL(p(y|x) || p(y))), high when every sample is clearly one class and
  the classes are evenly used (at most the number of classes, 10);
- **coverage**: how many classes receive a fair share of the samples (at least half of 1/10), and
  the histogram of predicted classes, which makes mode collapse visible;
- **confidence**: the share of samples whose top class probability is at least 0.9.

These are the Inception Score and FID of the GAN literature with the ImageNet Inception network
replaced by a classifier of the small grayscale dataset itself: the numbers are comparable within
this project (same classifier, same number of samples), not with published FIDs.

    evaluator = Evaluator()                    # loads (or trains once) the classifier
    print(evaluator.table(evaluator.references()))
    scores = evaluator.score_generator(G)      # 5,000 samples, generated in chunks
    fit(G, D, loader, epochs=5, callbacks=[EvaluateEvery(evaluator)])
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from . import config, data
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .models import eval_mode
from .training import Callback, TrainState

VERSION = 1
"""Bump when the classifier or its training changes: cached classifiers of other versions are
retrained, not trusted."""

CLASSIFIER_FORMAT = "gan-helpers-classifier/1"
FEATURE_DIM = 128
"""The width of the penultimate layer, whose activations FID compares."""
EPOCHS = 10
"""The classifier's default training schedule: epochs over the whole training split."""
N_SAMPLES = 5000
"""Generated images per evaluation. FID is biased upwards for small samples: compare only figures
computed with the same number of samples."""
CONFIDENT = 0.9
"""A sample is *confident* when the classifier's top class probability is at least this."""
FAIR_SHARE = 0.5
"""A class is *covered* when it receives at least this fraction of a uniform share (1/10)."""


# ----------------------------------------------------------------------------- the classifier


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
                     verbose: bool = True) -> Classifier:
    """Train a `Classifier` on the training split of `name`; report its test accuracy.

    Seeded and deterministic for a given device; the global random state is left untouched,
    so training it in the middle of a GAN's run changes nothing there.
    """
    dataset = config.dataset_name(name)
    device = config.pick_device(device)
    images, labels = data.load_tensors(dataset, root, train=True, limit=limit)
    test_images, test_labels = data.load_tensors(dataset, root, train=False)
    loader = data.TensorLoader(images, labels, batch_size=128, seed=seed, device=device)
    if verbose:
        print(f"Training the evaluation classifier on {len(images):,} {dataset} images "
              f"({epochs} epoch{'s' * (epochs != 1)}, once; cached afterwards)...", flush=True)
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
    trained now (a minute or two on a CPU) and cached.

    The cache file records the dataset, `VERSION` and the schedule (`epochs`, `limit`, `seed`);
    a file that does not match, or cannot be read, is retrained and replaced, never trusted.
    Shortened schedules (smoke mode) are cached under their own names.
    """
    dataset = config.dataset_name(name)
    device = config.pick_device(device)
    key = classifier_key(dataset, epochs, limit, seed)
    path = classifier_path(dataset, epochs, limit, seed, root)
    if not retrain:
        model, why = _load_cached(path, key, device)
        if model is not None:
            if verbose:
                print(f"Evaluation classifier for {dataset}: test accuracy "
                      f"{model.test_accuracy:.2%} (cached in {path}).")
            return model
        if verbose and path.exists():
            print(f"Retraining the evaluation classifier: {why}.")
    model = train_classifier(dataset, epochs=epochs, limit=limit, seed=seed, device=device,
                             root=root, verbose=verbose)
    save_checkpoint({"format": CLASSIFIER_FORMAT, "version": VERSION, "key": key,
                     "dataset": dataset, "epochs": epochs, "limit": limit, "seed": seed,
                     "test_accuracy": model.test_accuracy,
                     "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, path)
    return model


# ----------------------------------------------------------------------------- the metrics


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the (unbiased) covariance of `features` `(N, d)`, in float64."""
    f = features.detach().to("cpu", torch.float64)
    if len(f) < 2:
        raise ValueError("Fitting a Gaussian needs at least two feature vectors.")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                     sigma2: torch.Tensor) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):

        |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))

    The trace of the square root is computed as tr((s1^(1/2) sigma2 s1^(1/2))^(1/2)), a symmetric
    matrix with the same eigenvalues, by eigen-decomposition in float64: stable also for the
    singular covariances of collapsed generators (no complex parts to throw away).
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    root1 = _sqrt_psd(s1)
    cross = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp(min=0)
    value = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum()
    return max(0.0, value.item())


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussian fits of two feature sets `(N, d)` and `(M, d)`."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def inception_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over all of `probs` `(N, classes)` (one split, no averaging
    over splits): between 1 (all samples alike, or all uncertain) and the number of classes."""
    p = probs.detach().to("cpu", torch.float64).clamp(min=1e-12)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return math.exp(kl.mean().item())


def class_histogram(probs: torch.Tensor) -> list[float]:
    """The share of samples predicted as each class (the argmax of `probs`)."""
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=probs.shape[1]).double()
    return (counts / max(1, len(probs))).tolist()


def coverage(histogram: Sequence[float], fair_share: float = FAIR_SHARE) -> int:
    """How many classes receive at least `fair_share` of a uniform share (1 / classes)."""
    threshold = fair_share / len(histogram)
    return sum(1 for share in histogram if share >= threshold - 1e-12)


def confidence(probs: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """The share of samples whose top class probability is at least `threshold`."""
    return (probs.max(1).values >= threshold).double().mean().item()


@dataclass
class Scores:
    """The quality figures of one set of images (see the module's docstring)."""

    fid: float
    inception_score: float
    coverage: int
    classes: int
    confidence: float
    histogram: list[float]
    n: int

    def as_dict(self) -> dict[str, Any]:
        """Numbers and a list of numbers: fits a training history, JSON and a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Scores:
        """The `Scores` in `values` (e.g. an entry of `history["eval"]`; other keys ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    def __str__(self) -> str:
        return (f"FID {self.fid:.2f} · IS {self.inception_score:.2f} · coverage "
                f"{self.coverage}/{self.classes} · confident {self.confidence:.0%}")


# ----------------------------------------------------------------------------- the evaluator


class Evaluator:
    """Scores images and generators against the real test split with the evaluation classifier.

    `classifier` defaults to `load_classifier(dataset)` (trained once, then cached). The test
    split's features are computed once, on first use.
    """

    def __init__(self, classifier: Classifier | None = None, dataset: str | None = None, *,
                 device: torch.device | str | None = None, batch_size: int = 500,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.dataset = config.dataset_name(dataset or getattr(classifier, "dataset", None))
        self.device = config.pick_device(device)
        self.root = root
        self.classifier = (classifier or load_classifier(self.dataset, root=root,
                                                         device=self.device)).to(self.device)
        self.classifier.eval()
        self.batch_size = batch_size
        self.classes = data.dataset_info(self.dataset).classes
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's features `(N, FEATURE_DIM)` and class probabilities `(N, classes)`.

        `images`: uint8 pixels, or floats in [-1, 1]; processed in batches; other sizes than
        28x28 are resized to it.
        """
        feats, probs = [], []
        for i in range(0, len(images), self.batch_size):
            x = images[i:i + self.batch_size].to(self.device)
            x = data.normalize(x) if x.dtype == torch.uint8 else x.float()
            if x.shape[-2:] != (28, 28):  # e.g. the 64x64 DCGAN's images
                x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True,
                                  align_corners=False)
            f = self.classifier.features(x)
            feats.append(f.double().cpu())
            probs.append(self.classifier.head(f).softmax(1).double().cpu())
        return torch.cat(feats), torch.cat(probs)

    def test_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of the test split's features (computed once)."""
        if self._test is None:
            images, _ = data.load_tensors(self.dataset, self.root, train=False)
            self._test = gaussian_stats(self.outputs(images)[0])
        return self._test

    def score_outputs(self, features: torch.Tensor, probs: torch.Tensor) -> Scores:
        """`Scores` from features and probabilities (as `outputs` returns them)."""
        hist = class_histogram(probs)
        return Scores(fid=frechet_distance(*gaussian_stats(features), *self.test_stats()),
                      inception_score=inception_score(probs), coverage=coverage(hist),
                      classes=len(hist), confidence=confidence(probs), histogram=hist,
                      n=len(features))

    def score(self, images: torch.Tensor) -> Scores:
        """`Scores` of a batch of images (uint8, or floats in [-1, 1]) against the test split."""
        return self.score_outputs(*self.outputs(images))

    def generator_outputs(self, G: nn.Module, n: int = N_SAMPLES, seed: int = 0,
                          chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, class probabilities and the requested labels of `n` images from `G`.

        `G` runs in eval mode, `chunk` images at a time (memory stays flat); the noise comes from
        its own seeded generator, so every call sees the same noise and the global random state
        is untouched. A conditional `G` (with `num_classes`) is asked for every class in turn;
        for others the labels are -1.
        """
        gen = torch.Generator().manual_seed(seed)
        latent_dim = getattr(G, "latent_dim", 100)
        num_classes = getattr(G, "num_classes", None)
        labels = torch.arange(n) % num_classes if num_classes else torch.full((n,), -1)
        device = next(G.parameters()).device
        feats, probs = [], []
        with eval_mode(G):
            for i in range(0, n, chunk):
                z = torch.randn(min(chunk, n - i), latent_dim, generator=gen).to(device)
                cond = (labels[i:i + len(z)].to(device),) if num_classes else ()
                f, p = self.outputs(G(z, *cond).clamp(-1, 1))
                feats.append(f)
                probs.append(p)
        return torch.cat(feats), torch.cat(probs), labels

    def score_generator(self, G: nn.Module, n: int = N_SAMPLES, seed: int = 0,
                        chunk: int = 500) -> Scores:
        """`Scores` of `n` images from `G` (a conditional `G` is asked for all classes equally)."""
        features, probs, _ = self.generator_outputs(G, n, seed, chunk)
        return self.score_outputs(features, probs)

    def conditional_accuracy(self, G: nn.Module, n: int = N_SAMPLES,
                             seed: int = 0) -> tuple[float, list[float]]:
        """How often the classifier sees the class a conditional `G` was asked for: overall, and
        per class. `n` images, the classes in turn."""
        if not getattr(G, "num_classes", None):
            raise ValueError("conditional_accuracy needs a conditional generator (G(z, labels)).")
        _, probs, labels = self.generator_outputs(G, n, seed)
        hits = (probs.argmax(1) == labels).double()
        per_class = [hits[labels == c].mean().item() for c in range(G.num_classes)]
        return hits.mean().item(), per_class

    def references(self, n: int = N_SAMPLES, seed: int = 0) -> dict[str, Scores]:
        """The scale for any result, at the same sample size `n`:

        - `real`: `n` real training images against the test split: the best a generator can hope
          for (the floor of FID);
        - `noise`: `n` images of uniform noise in [-1, 1]: the ceiling.
        """
        images, _ = data.load_tensors(self.dataset, self.root, train=True)
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(images), generator=gen)[:n]
        noise = torch.rand(len(pick), 1, 28, 28, generator=gen) * 2 - 1
        return {"real (training split)": self.score(images[pick]),
                "noise (uniform)": self.score(noise)}

    def table(self, rows: Mapping[str, Scores | Mapping[str, Any]]) -> str:
        """The rows as an aligned text table: FID, IS, coverage and confidence."""
        w = max([22, *(len(name) for name in rows)])
        lines = [f"{'':<{w}} {'FID':>8} {'IS':>6} {'coverage':>9} {'confident':>10}"]
        for name, s in rows.items():
            s = s if isinstance(s, Mapping) else s.as_dict()
            lines.append(f"{name:<{w}} {s['fid']:>8.2f} {s['inception_score']:>6.2f} "
                         f"{s['coverage']:>6}/{s['classes']:<2} {s['confidence']:>10.0%}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- during training


class EvaluateEvery(Callback):
    """Scores the generator every `every` epochs during `fit`; the results go to
    `history["eval"]`, one dict per evaluation (`Scores.as_dict()` plus `epoch`, `step` and
    `seconds`, the training time so far without the time spent evaluating).

    - `every_steps=N`: score every N steps instead (to see what happens within an epoch);
    - `patience=K`: stop early when the FID has not improved for K evaluations in a row;
    - `keep_best=True`: with a run folder, save the best checkpoint by FID as `best.pt`.
    """

    def __init__(self, evaluator: Evaluator | None = None, every: int = 1, n: int = N_SAMPLES,
                 patience: int | None = None, keep_best: bool = False, verbose: bool = True,
                 best_name: str = "best.pt", every_steps: int | None = None) -> None:
        if every < 1 or (every_steps is not None and every_steps < 1):
            raise ValueError(f"every and every_steps must be at least 1, got {every} and "
                             f"{every_steps}.")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}.")
        self.evaluator, self.every, self.n = evaluator, every, n
        self.patience, self.keep_best, self.verbose = patience, keep_best, verbose
        self.best_name = best_name
        self.every_steps = every_steps
        self._start = 0.0
        self._paused = 0.0
        self._offset = 0.0

    def on_fit_start(self, state: TrainState) -> None:
        if self.evaluator is None:
            self.evaluator = Evaluator(dataset=state.meta.get("dataset"), device=state.device)
        self.evaluator.test_stats()  # before the clock starts
        done = state.history.setdefault("eval", [])
        self._offset = done[-1]["seconds"] if done else 0.0  # resumed: roughly where it was
        self._paused, self._start = 0.0, time.perf_counter()

    def train_seconds(self) -> float:
        """Training time so far in this `fit` call (plus a resumed run's), evaluation excluded."""
        return self._offset + time.perf_counter() - self._start - self._paused

    def on_step_end(self, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0:
            self.evaluate(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if not self.every_steps and (state.epoch + 1) % self.every == 0:
            self.evaluate(state)

    def evaluate(self, state: TrainState) -> dict[str, Any]:
        """Score the generator now and add the result to `state.history["eval"]`."""
        seconds, tick = self.train_seconds(), time.perf_counter()
        scores = self.evaluator.score_generator(state.G, n=self.n)
        entry = {"epoch": state.step // state.steps_per_epoch, "step": state.step,
                 "seconds": seconds, **scores.as_dict()}
        done = state.history.setdefault("eval", [])
        best = min((e["fid"] for e in done), default=math.inf)
        done.append(entry)
        if self.verbose:
            print(f"epoch {entry['epoch']}, step {entry['step']} · {seconds:.0f} s of training · "
                  f"{scores}", flush=True)
        if scores.fid < best and self.keep_best and state.run_dir is not None:
            ckpt = state.checkpoint()
            ckpt["meta"] = {**ckpt["meta"], "fid": scores.fid, "best_epoch": entry["epoch"]}
            save_checkpoint(ckpt, state.run_dir / self.best_name)
        if self.patience is not None:
            fids = [e["fid"] for e in done]
            best_at = fids.index(min(fids))
            if len(fids) - 1 - best_at >= self.patience:
                state.request_stop(f"early stop: the FID has not improved for {self.patience} "
                                   f"evaluations (best {fids[best_at]:.2f} at epoch "
                                   f"{done[best_at]['epoch']})")
        self._paused += time.perf_counter() - tick
        return entry


# ----------------------------------------------------------------------------- plots


def plot_quality(runs: Mapping[str, Sequence[Mapping[str, Any]]],
                 references: Mapping[str, Scores] | None = None, x: str = "seconds",
                 axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """FID (log scale), IS and coverage against training time (`x="seconds"`), `"epoch"` or
    `"step"`.

    `runs` maps a name to its `history["eval"]`; `references` (from `Evaluator.references`) are
    drawn as dashed lines.
    """
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    else:
        fig = axes[0].figure
    panels = [("fid", "classifier FID (lower is better)"),
              ("inception_score", "classifier IS (higher is better)"),
              ("coverage", "classes covered")]
    for ax, (key, title) in zip(axes, panels):
        for name, entries in runs.items():
            if entries:
                ax.plot([e[x] for e in entries], [e[key] for e in entries], "o-", label=name)
        for (name, ref), style in zip((references or {}).items(), ("--", ":")):
            ax.axhline(getattr(ref, key), color="gray", linestyle=style, label=name)
        ax.set_title(title)
        ax.set_xlabel("training time (s)" if x == "seconds" else x)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].set_ylim(0, 10.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_histograms(histograms: Mapping[str, Sequence[float]],
                    classes: Sequence[str] | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped bars: the share of samples predicted as each class, one colour per name."""
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.6))
    names = list(histograms)
    k = len(next(iter(histograms.values())))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ax.bar([c + (i - (len(names) - 1) / 2) * width for c in range(k)], histograms[name],
               width, label=name)
    ax.axhline(1 / k, color="gray", linestyle="--", label="uniform share")
    ax.axhline(FAIR_SHARE / k, color="gray", linestyle=":", label="covered above")
    ax.set_xticks(range(k))
    ax.set_xticklabels(classes or [str(c) for c in range(k)], rotation=20)
    ax.set_ylabel("share of samples")
    ax.set_title("predicted classes of the samples")
    ax.set_ylim(0, 1.3 * max(max(h) for h in histograms.values()))
    ax.legend(fontsize=8, ncol=3, loc="upper left")
    return ax


def save_quality_plot(entries: Sequence[Mapping[str, Any]], path: str | os.PathLike[str],
                      references: Mapping[str, Scores] | None = None,
                      name: str = "this run") -> Path:
    """Save `plot_quality` of one run's `history["eval"]` as a PNG; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_quality({name: entries}, references)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
