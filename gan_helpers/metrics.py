"""The quality metrics, pure functions of a classifier's features and class probabilities.

Judging a GAN by its samples is judging by eye. These measure instead, from the outputs of the
evaluation classifier (`classifier`) on generated images and on the real test split:

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from . import checks
from .errors import UsageError

N_SAMPLES = 5000
"""Generated images per evaluation. FID is biased upwards for small samples: compare only figures
computed with the same number of samples."""
CONFIDENT = 0.9
"""A sample is *confident* when the classifier's top class probability is at least this."""
FAIR_SHARE = 0.5
"""A class is *covered* when it receives at least this fraction of a uniform share (1/10)."""


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the (unbiased) covariance of `features` `(N, d)`, in float64."""
    checks.tensor("features", features, dims=2, what="(N, d)")
    f = features.detach().to("cpu", torch.float64)
    if len(f) < 2:
        raise UsageError(f"Fitting a Gaussian needs at least two feature vectors, got {len(f)}.")
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
    d = checks.tensor("mu1", mu1, dims=1, what="(d,)").shape[0]
    for name, value, shape in (("mu2", mu2, (d,)), ("sigma1", sigma1, (d, d)),
                               ("sigma2", sigma2, (d, d))):
        if tuple(checks.tensor(name, value).shape) != shape:
            raise UsageError(f"{name} has shape {tuple(value.shape)}, but mu1 has {d} features, "
                             f"so it must be {shape}: compare statistics of the same features.")
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    root1 = _sqrt_psd(s1)
    cross = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp(min=0)
    value = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum()
    if not math.isfinite(value.item()):  # NaN features (a diverged generator): the worst score
        return math.inf
    return max(0.0, value.item())


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussian fits of two feature sets `(N, d)` and `(M, d)`."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def inception_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over all of `probs` `(N, classes)` (one split, no averaging
    over splits): between 1 (all samples alike, or all uncertain) and the number of classes."""
    _probabilities(probs)
    p = probs.detach().to("cpu", torch.float64).clamp(min=1e-12)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return math.exp(kl.mean().item())


def class_histogram(probs: torch.Tensor) -> list[float]:
    """The share of samples predicted as each class (the argmax of `probs`)."""
    _probabilities(probs)
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=probs.shape[1]).double()
    return (counts / max(1, len(probs))).tolist()


def coverage(histogram: Sequence[float], fair_share: float = FAIR_SHARE) -> int:
    """How many classes receive at least `fair_share` of a uniform share (1 / classes)."""
    if len(histogram) == 0:
        raise UsageError("coverage needs a histogram with at least one class.")
    fair_share = checks.finite_float("fair_share", fair_share, 0)
    threshold = fair_share / len(histogram)
    return sum(1 for share in histogram if share >= threshold - 1e-12)


def confidence(probs: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """The share of samples whose top class probability is at least `threshold`."""
    _probabilities(probs)
    threshold = checks.finite_float("threshold", threshold, 0, 1)
    return (probs.max(1).values >= threshold).double().mean().item()


def _probabilities(probs: torch.Tensor) -> None:
    """`probs` is at least one row of class probabilities `(N, classes)`."""
    checks.tensor("probs", probs, dims=2, what="(N, classes) of class probabilities")
    if len(probs) == 0:
        raise UsageError("probs is empty: the metrics need at least one sample.")


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
