"""The latent space of a trained generator, in numbers: the prior, interpolation, paths and walks,
what the classifier calls samples, class means, directions and the scores along a path.

    G, source = find_generator()                      # lesson 03's or 04's DCGAN, if trained
    rows = interpolate(G, z0, z1, steps=10, method="slerp")
    viz.show_grid(rows.flatten(0, 1), nrow=10)        # one interpolation strip per row
    labelled = label_samples(G, evaluator, n=20_000)  # what the classifier calls each sample
    means, counts = class_means(labelled)             # the average z of every class

The pictures of these (histograms, heat maps, strips, GIF frames) and the `Explorer` widget are in
`gan_helpers.latent_views`; this module draws nothing and needs neither matplotlib nor widgets.

Latent vectors are tensors `(..., latent_dim)`; images are floats in [-1, 1], `(N, C, H, W)`,
on the CPU. The generator always runs in eval mode, without gradients (`models.generate`, also
importable from here as `latent.generate`).

Lesson 07 writes its real counts (5,000 samples per score, 20,000 labelled samples, 12 frames per
leg of a walk); in smoke mode (`config.SMOKE`) the functions that take them shrink them with
`config.smoke_cap` to the `SMOKE_*` values below, so a smoke run takes the same code paths.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checks, config
from .checkpoints import RunMismatchError, load_generator
from .errors import UsageError, UsageTypeError
from .models import generate
from .run_folder import RunFiles

CANDIDATES = ("03_dcgan", "04_live_training", "07_latent_space")
"""Run folders (under `config.runs_dir()`) searched, in order, for a trained generator: lessons
03 and 04, then the stand-in lesson 07 trains when neither exists."""

SMOKE_SAMPLES = 256
"""Smoke mode: the most prior draws `sample_prior` returns (so also `label_samples`)."""
SMOKE_PER_CLASS = 4
"""Smoke mode: the most samples per class `transfer_matrix` moves."""
SMOKE_T_VALUES = 3
"""Smoke mode: the most points along a path `scores_along` scores."""
SMOKE_STEPS = 2
"""Smoke mode: the most points per leg of a `walk` (the frames of the animated walk)."""


# ----------------------------------------------------------------------------- the prior


def sample_prior(n: int, latent_dim: int = 100, seed: int = 0) -> torch.Tensor:
    """`n` draws from the prior N(0, I), `(n, latent_dim)`, from a generator seeded by `seed`
    (the global random state is untouched). Smoke mode: at most `SMOKE_SAMPLES` draws."""
    n = config.smoke_cap(checks.positive_int("n", n), SMOKE_SAMPLES)
    latent_dim, seed = checks.positive_int("latent_dim", latent_dim), checks.seed("seed", seed)
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def prior_norm(latent_dim: int = 100) -> float:
    """The mean length of a prior draw, E|z| = √2 Γ((d+1)/2) / Γ(d/2) ≈ √(d - 1/2)."""
    d = checks.positive_int("latent_dim", latent_dim)
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def to_radius(z: torch.Tensor, radius: float) -> torch.Tensor:
    """`z` rescaled to length `radius` along its last dimension (a zero vector stays zero)."""
    checks.latent("z", z)
    radius = checks.finite_float("radius", radius, 0)
    return z * (radius / z.norm(dim=-1, keepdim=True).clamp_min(1e-12))


# ----------------------------------------------------------------------------- interpolation


def _weights(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`t` as a tensor with a trailing axis, to broadcast against vectors `(..., d)`; `t` must be
    finite numbers (a number, a sequence or a tensor)."""
    if isinstance(t, torch.Tensor):
        w = t.to(dtype=like.dtype, device=like.device)
    else:
        try:
            w = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        except (TypeError, ValueError, RuntimeError):
            raise UsageTypeError(f"t must be a number, or numbers (a list or a tensor), got "
                                 f"{t!r}.") from None
    if not torch.isfinite(w).all():
        raise UsageError(f"t must be finite numbers (0 is z0, 1 is z1), got {t!r}.")
    return w.unsqueeze(-1)


def _pair(z0: torch.Tensor, z1: torch.Tensor, latent_dim: int | None = None) -> None:
    """`z0` and `z1` are latent vectors of the same length (that of `latent_dim` if given), whose
    shapes broadcast against each other."""
    checks.latent("z0", z0, latent_dim)
    checks.latent("z1", z1, latent_dim)
    if z0.shape[-1] != z1.shape[-1]:
        raise UsageError(f"z0 has {z0.shape[-1]} numbers per vector and z1 {z1.shape[-1]}: "
                         "interpolate between vectors of the same length.")
    try:
        torch.broadcast_shapes(z0.shape, z1.shape)
    except RuntimeError:
        raise UsageError(f"z0 {tuple(z0.shape)} and z1 {tuple(z1.shape)} do not pair up: give "
                         "two vectors (d,), two batches (N, d) of the same N, or one vector "
                         "and a batch.") from None


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1 - t) z0 + t z1, the straight line from `z0` to `z1`.

    `z0`, `z1`: `(..., d)`. `t` broadcasts against their leading dimensions: a number, or e.g.
    `(T,)` for single vectors `(d,)`, which gives `(T, d)`; `path` builds such a `t`.
    """
    _pair(z0, z1)
    w = _weights(t, z0)
    return (1 - w) * z0 + w * z1


def _perpendicular(u: torch.Tensor) -> torch.Tensor:
    """A unit vector perpendicular to each unit vector in `u` `(..., d)` (zero where d = 1)."""
    k = u.abs().argmin(dim=-1, keepdim=True)  # the axis most nearly perpendicular to u
    e = torch.zeros_like(u).scatter_(-1, k, 1.0)
    v = e - (e * u).sum(-1, keepdim=True) * u
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor,
          eps: float = 1e-5) -> torch.Tensor:
    """Spherical interpolation: the direction turns along the great circle from `z0` to `z1`
    at a constant angular speed, and the length goes linearly from |z0| to |z1|.

    For vectors of equal length this is the textbook slerp,
    (sin((1-t)ω) z0 + sin(tω) z1) / sin ω with ω the angle between them, and every point keeps
    that length. Shapes and `t` as in `lerp`. Parallel vectors (ω = 0) give the straight line;
    opposite ones (ω = π, where every great circle joins them) turn through a fixed perpendicular
    direction; neither gives NaN.
    """
    _pair(z0, z1)
    z0, z1 = torch.broadcast_tensors(z0, z1)
    w = _weights(t, z0)
    r0, r1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    u0, u1 = z0 / r0.clamp_min(1e-12), z1 / r1.clamp_min(1e-12)
    cos = (u0 * u1).sum(-1, keepdim=True)
    perp = u1 - cos * u0  # the part of u1 perpendicular to u0: length sin ω
    sin = perp.norm(dim=-1, keepdim=True)
    v = torch.where(sin > eps, perp / sin.clamp_min(eps), _perpendicular(u0))
    omega = torch.atan2(sin, cos)  # accurate near 0 and π, unlike acos
    direction = torch.cos(w * omega) * u0 + torch.sin(w * omega) * v
    return ((1 - w) * r0 + w * r1) * direction


METHODS: dict[str, Callable[..., torch.Tensor]] = {"lerp": lerp, "slerp": slerp}
"""Interpolations by name."""


def _method(method: str) -> Callable[..., torch.Tensor]:
    if method not in METHODS:
        raise ValueError(f"Unknown interpolation {method!r}: choose one of {', '.join(METHODS)}.")
    return METHODS[method]


def path(z0: torch.Tensor, z1: torch.Tensor, steps: int = 10,
         method: str = "slerp") -> torch.Tensor:
    """`steps` evenly spaced points from `z0` to `z1` (both ends included): `(steps, ..., d)`."""
    steps = checks.whole_number("steps", steps)
    if steps < 2:
        raise UsageError(f"A path needs at least 2 steps (its two ends), got {steps}.")
    _pair(z0, z1)
    t = torch.linspace(0, 1, steps).view(steps, *[1] * (z0.dim() - 1))
    return _method(method)(z0, z1, t)


def walk(keypoints: torch.Tensor, steps: int = 16, method: str = "slerp",
         closed: bool = True) -> torch.Tensor:
    """A path through `keypoints` `(K, ..., d)`, `steps` points per leg: `(K * steps, ..., d)`
    if `closed` (back to the first keypoint, without repeating it: a GIF that loops smoothly),
    else `((K - 1) * steps + 1, ..., d)`. Smoke mode: at most `SMOKE_STEPS` points per leg."""
    steps = config.smoke_cap(checks.positive_int("steps", steps), SMOKE_STEPS)
    checks.latent("keypoints", keypoints)
    if keypoints.dim() < 2 or len(keypoints) < (1 if closed else 2):
        raise UsageError(f"keypoints has shape {tuple(keypoints.shape)}: give a stack of "
                         f"{'one or more' if closed else 'at least two'} latent vectors "
                         "(K, ..., d).")
    stops = torch.cat([keypoints, keypoints[:1]]) if closed else keypoints
    legs = [path(a, b, steps + 1, method)[:-1] for a, b in zip(stops[:-1], stops[1:])]
    return torch.cat(legs if closed else legs + [stops[-1:]])


# ----------------------------------------------------------------------------- images


def interpolate(G: nn.Module, z0: torch.Tensor, z1: torch.Tensor, steps: int = 10,
                method: str = "slerp") -> torch.Tensor:
    """The images along the path from `z0` to `z1`: `(steps, C, H, W)` for single vectors `(d,)`,
    `(N, steps, C, H, W)` for batches `(N, d)`: one interpolation strip per pair."""
    checks.generator("G", G)
    _pair(z0, z1, getattr(G, "latent_dim", None))
    images = generate(G, path(z0, z1, steps, method))
    return images if z0.dim() == 1 else images.transpose(0, 1)


# ----------------------------------------------------------------------------- a trained generator


def find_generator(runs: str | os.PathLike[str] | None = None,
                   candidates: Sequence[str] = CANDIDATES,
                   device: torch.device | str | None = None, dataset: str | None = None,
                   verbose: bool = True) -> tuple[nn.Module, Path] | None:
    """The first trained generator among the run folders `runs/NAME` for NAME in `candidates`, as
    `(G, checkpoint path)` with `G` rebuilt from its checkpoint's record (the best checkpoint when
    there is one), in eval mode on `device`; None if there is none (train one then).

    `runs` defaults to `config.runs_dir(dataset=dataset)` (run folders are kept by dataset). A
    run of another dataset than `dataset` (default: `$GAN_DATASET`) is passed over. A damaged
    checkpoint raises `CheckpointError` naming it, rather than being passed over in silence.
    """
    wanted = config.dataset_name(dataset)
    root = config.runs_dir(runs, dataset=wanted)
    for name in candidates:
        if not RunFiles(root / name).checkpoint.exists():
            continue
        try:
            G, ckpt = load_generator(root / name, dataset=wanted,
                                     device=config.pick_device(device))
        except RunMismatchError as err:
            if verbose:
                print(f"Passing over {root / name}: {err}")
            continue
        if verbose:
            print(f"Loaded a trained {type(G).__name__} (latent dimension {G.latent_dim}, "
                  f"{ckpt['step']:,} training steps) from {ckpt['path']}.")
            planned = ckpt.get("total_steps")  # absent in checkpoints from before it was kept
            if planned and ckpt["step"] < planned and Path(ckpt["path"]).name == "checkpoint.pt":
                print(f"note: that run stopped at step {ckpt['step']:,} of {planned:,}; its "
                      f"images will be rougher than the lesson's (finish it with its own lesson "
                      f"or `python -m gan_helpers train --resume`).")
        return G, Path(ckpt["path"])
    return None


# ----------------------------------------------------------------------------- classes


@dataclass
class Labelled:
    """Latent vectors with the evaluation classifier's verdict on their images."""

    z: torch.Tensor
    """`(n, d)`"""
    labels: torch.Tensor
    """`(n,)`: the predicted class of each image"""
    confidence: torch.Tensor
    """`(n,)`: the classifier's probability for that class"""


def predict(evaluator: Any, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's predicted class and its probability for each image: `(N,)`, `(N,)`."""
    top = evaluator.outputs(images)[1].max(1)
    return top.indices, top.values.float()


def label_samples(G: nn.Module, evaluator: Any, n: int = 10_000, seed: int = 0,
                  batch_size: int = 500) -> Labelled:
    """Draw `n` prior vectors (seeded), generate their images and let `evaluator`'s classifier
    (a `gan_helpers.evaluation.Evaluator`) label them. Smoke mode: `SMOKE_SAMPLES` at most."""
    checks.generator("G", G)
    batch_size = checks.positive_int("batch_size", batch_size)
    z = sample_prior(n, G.latent_dim, seed)
    labels, conf = [], []
    for i in range(0, len(z), batch_size):
        lab, c = predict(evaluator, generate(G, z[i:i + batch_size]))
        labels.append(lab)
        conf.append(c)
    return Labelled(z, torch.cat(labels), torch.cat(conf))


def class_means(labelled: Labelled, n_classes: int = 10,
                min_confidence: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean latent vector of each class, `(n_classes, d)`, and how many samples went into
    each, `(n_classes,)`: samples labelled with at least `min_confidence`. A class without
    samples gets the zero vector and a count of 0."""
    n_classes = checks.positive_int("n_classes", n_classes)
    min_confidence = checks.finite_float("min_confidence", min_confidence, 0, 1)
    if len(labelled.labels) and int(labelled.labels.max()) >= n_classes:
        raise UsageError(f"The samples are labelled up to {int(labelled.labels.max())}, but "
                         f"n_classes is {n_classes}: give the number of classes of the dataset.")
    keep = labelled.confidence >= min_confidence
    z, labels = labelled.z[keep], labelled.labels[keep]
    counts = torch.bincount(labels, minlength=n_classes)
    sums = torch.zeros(n_classes, z.shape[1]).index_add_(0, labels, z)
    return sums / counts.clamp_min(1).unsqueeze(1), counts


def principal_directions(vectors: torch.Tensor, k: int = 3) -> torch.Tensor:
    """The `k` directions along which `vectors` `(n, d)` (e.g. the class means) spread most,
    `(k, d)`, each as long as the standard deviation of the vectors along it."""
    centred = vectors - vectors.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(k, len(s))
    return vh[:k] * (s[:k] / math.sqrt(max(1, len(vectors) - 1))).unsqueeze(1)


def examples(labelled: Labelled, label: int, k: int = 1) -> torch.Tensor:
    """The `k` latent vectors that the classifier is surest show class `label`, `(k, d)` (fewer if
    there are fewer). If no sample has that label (a barely trained generator), the `k` surest
    samples of any class, with a printed note."""
    k = checks.positive_int("k", k)
    label = checks.non_negative_int("label", label)
    mine = labelled.labels == label
    if not mine.any():
        print(f"No sample was labelled {label}: using the surest samples of any class instead.")
        mine = torch.ones_like(mine)
    conf = torch.where(mine, labelled.confidence, torch.tensor(-1.0))
    order = conf.argsort(descending=True)[:min(k, int(mine.sum()))]
    return labelled.z[order]


def along(z: torch.Tensor, direction: torch.Tensor, alphas: Sequence[float] | torch.Tensor
          ) -> torch.Tensor:
    """`z + alpha * direction` for each alpha: `(len(alphas), ..., d)`."""
    a = torch.as_tensor(alphas, dtype=z.dtype).view(-1, *[1] * z.dim())
    return z + a * direction


def transfer_matrix(G: nn.Module, evaluator: Any, labelled: Labelled, means: torch.Tensor,
                    per_class: int = 50, scale: float = 1.0, random_directions: bool = False,
                    seed: int = 0) -> torch.Tensor:
    """Move samples of class a by `scale * (means[c] - means[a])`; the share that the classifier
    then calls c, for every pair: `(classes, classes)`, rows a, columns c (NaN for a class without
    samples). With `random_directions`, each move goes in a random direction of the same length
    instead: the control that tells whether the class-mean direction matters. Smoke mode:
    `per_class` is at most `SMOKE_PER_CLASS`."""
    per_class = config.smoke_cap(checks.positive_int("per_class", per_class), SMOKE_PER_CLASS)
    scale = checks.finite_float("scale", scale)
    checks.latent("means", means, getattr(G, "latent_dim", None))
    n_classes = len(means)
    gen = torch.Generator().manual_seed(seed)
    result = torch.full((n_classes, n_classes), float("nan"))
    for a in range(n_classes):
        z = labelled.z[labelled.labels == a][:per_class]
        if len(z) == 0:
            continue
        moves = scale * (means - means[a])  # (classes, d): one move per target class
        if random_directions:
            noise = torch.randn(moves.shape, generator=gen)
            moves = to_radius(noise, 1.0) * moves.norm(dim=1, keepdim=True)
        moved = z.unsqueeze(0) + moves.unsqueeze(1)  # (classes, n, d)
        labels, _ = predict(evaluator, generate(G, moved).flatten(0, 1))
        hits = labels.view(n_classes, len(z)) == torch.arange(n_classes).unsqueeze(1)
        result[a] = hits.float().mean(1)
    return result


# ----------------------------------------------------------------------------- measures


def scores_along(G: nn.Module, evaluator: Any, z0: torch.Tensor, z1: torch.Tensor,
                 ts: int | Sequence[float] = 9, method: str = "slerp") -> dict[float, Any]:
    """`evaluator.score` of the images at `method(z0, z1, t)` for each t, as `{t: Scores}`, for
    batches `z0`, `z1` `(N, d)` (e.g. N = 5,000 pairs of prior draws). `ts`: the values of t, or
    how many, evenly spaced from 0 to 1 (in smoke mode at most `SMOKE_T_VALUES`)."""
    if isinstance(ts, int):
        ts = checks.whole_number("ts", ts, 1)
        ts = torch.linspace(0, 1, config.smoke_cap(ts, SMOKE_T_VALUES)).tolist()
    else:
        ts = [checks.finite_float("each t in ts", t) for t in ts]
    _pair(z0, z1, getattr(G, "latent_dim", None))
    interp = _method(method)
    return {t: evaluator.score(generate(G, interp(z0, z1, t))) for t in ts}
