"""The latent space of a trained generator: interpolation, averages, arithmetic, an explorer.

    G, source = find_generator()                      # lesson 03's or 04's DCGAN, if trained
    rows = interpolate(G, z0, z1, steps=10, method="slerp")
    viz.show_grid(rows.flatten(0, 1), nrow=10)        # one interpolation strip per row
    labelled = label_samples(G, evaluator, n=20_000)  # what the classifier calls each sample
    means, counts = class_means(labelled)             # the average z of every class
    Explorer(G, z, {"→ trousers": means[1] - means[0]}).show()   # sliders, or a static grid

Latent vectors are tensors `(..., latent_dim)`; images are floats in [-1, 1], `(N, C, H, W)`,
on the CPU. The generator always runs in eval mode, without gradients (`models.generate`, also
importable from here as `latent.generate`).

Lesson 07 writes its real counts (5,000 samples per score, 20,000 labelled samples, 12 frames per
leg of a walk); in smoke mode (`config.SMOKE`) the functions that take them shrink them with
`config.smoke_cap` to the `SMOKE_*` values below, so a smoke run takes the same code paths.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from PIL import Image
from torch import nn

from . import checks, config, dashboard
from .checkpoints import RunMismatchError, load_generator
from .errors import UsageError, UsageTypeError
from .images import enlarge, grid_image, grid_png
from .models import generate
from .run_folder import RunFiles
from .viz import show_grid

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


def strip_image(rows: torch.Tensor, scale: int = 1) -> Image.Image:
    """Interpolation strips `(R, S, C, H, W)` (or one strip `(S, C, H, W)`) as one PIL image,
    one strip per row, enlarged `scale` times."""
    rows = rows if rows.dim() == 5 else rows.unsqueeze(0)
    return enlarge(grid_image(rows.flatten(0, 1), nrow=rows.shape[1]), scale)


def gif_frames(G: nn.Module, zs: torch.Tensor, nrow: int = 4) -> list[Image.Image]:
    """One grid image per point of a path of batches `zs` `(T, N, d)` (from `path` or `walk`):
    the frames of an animation, for `images.make_gif`."""
    images = generate(G, zs)
    return [grid_image(frame, nrow=nrow) for frame in images]


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


# ----------------------------------------------------------------------------- measures, plots


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


def plot_norms(norms: Mapping[str, torch.Tensor], latent_dim: int,
               ax: plt.Axes | None = None) -> plt.Axes:
    """Histograms of vector lengths, one per name, with the prior's mean length marked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    for name, r in norms.items():
        ax.hist(r.numpy(), bins=60, alpha=0.55, density=True, label=name)
    ax.axvline(prior_norm(latent_dim), color="k", linestyle="--", linewidth=1,
               label=f"prior's mean length ≈ √{latent_dim}")
    ax.set_xlabel("length |z|")
    ax.set_yticks([])
    ax.legend(fontsize=8)
    return ax


def plot_scores_along(results: Mapping[str, Mapping[float, Any]]) -> plt.Figure:
    """FID and confidence against t, one line per interpolation (`results`: name -> `{t: Scores}`,
    from `scores_along`)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, scores in results.items():
        ts = list(scores)
        axes[0].plot(ts, [s.fid for s in scores.values()], "o-", label=name)
        axes[1].plot(ts, [100 * s.confidence for s in scores.values()], "o-", label=name)
    for ax, title in zip(axes, ["classifier FID (lower is better)", "confident samples (%)"]):
        ax.set_title(title)
        ax.set_xlabel("t: 0 and 1 are prior draws")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return fig


def plot_transfer(matrix: torch.Tensor, classes: Sequence[str],
                  ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """A `transfer_matrix` as a heat map with the shares written in."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix.numpy(), vmin=0, vmax=1, cmap="viridis")
    for (a, c), value in zip(torch.cartesian_prod(*map(torch.arange, matrix.shape)).tolist(),
                             matrix.flatten().tolist()):
        if not math.isnan(value):
            ax.text(c, a, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                    color="k" if value > 0.6 else "w")
    ax.set_xticks(range(len(classes)), classes, rotation=60, fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("moved towards (class c)")
    ax.set_ylabel("sample of (class a)")
    ax.set_title(title, fontsize=10)
    return ax


# ----------------------------------------------------------------------------- the explorer


class Explorer:
    """Move one sample `z` along chosen latent `directions` with one slider each.

    In Jupyter (the same test as `gan_helpers.dashboard`: a kernel is running) `show()` displays
    ipywidgets sliders that redraw the image as they move, and below them the static version:
    a grid with one row per direction, from `-span` to `span` in `steps` steps, which is all that
    a viewer without a widget front end (a saved notebook, GitHub) will see. Outside Jupyter
    `show()` only returns that figure. With an `evaluator` the classifier's verdict is shown.
    """

    def __init__(self, G: nn.Module, z: torch.Tensor, directions: Mapping[str, torch.Tensor],
                 span: float = 2.0, steps: int = 7, evaluator: Any = None,
                 size: int = 196) -> None:
        if not directions:
            raise UsageError("The explorer needs at least one direction.")
        latent_dim = getattr(checks.generator("G", G), "latent_dim", None)
        z = checks.latent("z", z, latent_dim)
        for name, d in directions.items():
            if checks.tensor(f"direction {name!r}", d).numel() != z.numel():
                raise UsageError(f"direction {name!r} has {d.numel()} numbers, but z has "
                                 f"{z.numel()}: each direction must be a latent vector like z.")
        span = checks.finite_float("span", span, 0, low_ok=False)
        steps = checks.positive_int("steps", steps)
        size = checks.positive_int("size", size)
        self.G, self.z, self.evaluator = G, z.reshape(-1).cpu(), evaluator
        self.directions = {name: d.reshape(-1).cpu() for name, d in directions.items()}
        self.span, self.steps, self.size = span, steps, size
        self.values = dict.fromkeys(self.directions, 0.0)
        self.mode = "static"
        self.widget: Any = None

    def point(self, values: Mapping[str, float] | None = None) -> torch.Tensor:
        """The latent vector `z + sum of value * direction`, `(d,)`."""
        values = self.values if values is None else values
        return self.z + sum(values.get(k, 0.0) * d for k, d in self.directions.items())

    def image(self, values: Mapping[str, float] | None = None) -> torch.Tensor:
        """The generator's image at `point(values)`, `(C, H, W)`."""
        return generate(self.G, self.point(values).unsqueeze(0))[0]

    def verdict(self, image: torch.Tensor) -> str:
        """The classifier's label for `image`, e.g. 'Sneaker (97%)', or '' without one."""
        if self.evaluator is None:
            return ""
        label, conf = predict(self.evaluator, image.unsqueeze(0))
        return f"{self.evaluator.classes[label.item()]} ({conf.item():.0%})"

    def grid(self) -> torch.Tensor:
        """The static version: `(directions, steps, C, H, W)`, each row from -span to span."""
        alphas = torch.linspace(-self.span, self.span, self.steps)
        zs = torch.stack([along(self.z, d, alphas) for d in self.directions.values()])
        return generate(self.G, zs)

    def static_image(self, scale: int = 1) -> Image.Image:
        """The static grid as one PIL image (rows: directions; columns: -span to span)."""
        return strip_image(self.grid(), scale)

    def static_figure(self) -> plt.Figure:
        """The static grid as a figure, every row titled with its direction."""
        rows = self.grid()
        fig, axes = plt.subplots(len(rows), 1, figsize=(1.1 * self.steps, 1.45 * len(rows)),
                                 squeeze=False)
        for ax, name, row in zip(axes[:, 0], self.directions, rows):
            show_grid(row, nrow=self.steps, ax=ax)
            ax.set_title(f"{name}: {-self.span:g} … {self.span:g}", fontsize=9, loc="left")
        fig.tight_layout()
        return fig

    def _png(self, image: torch.Tensor) -> bytes:
        return grid_png(image.unsqueeze(0), padding=0, size=(self.size, self.size))

    def build_widget(self) -> Any:
        """The ipywidgets explorer: an image, a slider per direction, a reset button."""
        import ipywidgets as w

        image = self.image()
        picture = w.Image(value=self._png(image), format="png",
                          layout=w.Layout(width=f"{self.size}px", height=f"{self.size}px"))
        status = w.HTML(self.verdict(image))
        sliders = {name: w.FloatSlider(value=0.0, min=-self.span, max=self.span,
                                       step=self.span / 20, description=name,
                                       continuous_update=True, readout_format=".2f",
                                       style={"description_width": "150px"},
                                       layout=w.Layout(width="420px"))
                   for name in self.directions}
        reset = w.Button(description="Reset", icon="undo")

        def redraw(_: Any = None) -> None:
            self.values = {name: s.value for name, s in sliders.items()}
            image = self.image()  # generated once per move, for the picture and the verdict
            picture.value = self._png(image)
            status.value = self.verdict(image)

        def on_reset(_: Any) -> None:
            for s in sliders.values():
                s.value = 0.0

        for s in sliders.values():
            s.observe(redraw, names="value")
        reset.on_click(on_reset)
        self.sliders, self.picture, self.status = sliders, picture, status
        self.widget = w.HBox([w.VBox([picture, status]),
                              w.VBox([*sliders.values(), reset])])
        return self.widget

    def show(self) -> plt.Figure:
        """Display the widget (in Jupyter) and the static grid; return the grid's figure.

        The grid is displayed as PNG bytes, not as a matplotlib figure: every kernel renders an
        image, while `display(figure)` shows only its text form where the inline backend has not
        registered its formatter (IPython 7 with ipykernel 6, as on Colab-like runtimes)."""
        fig = self.static_figure()
        shown = dashboard.show_widget(self.build_widget, lambda: _png_image(fig), static_too=True)
        self.mode = "widgets" if shown else "static"
        plt.close(fig)
        return fig


def _png_image(fig: plt.Figure) -> Any:
    """`fig` as an `IPython.display.Image` (PNG), for `display`."""
    from IPython.display import Image as PNG

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return PNG(data=buffer.getvalue(), format="png")
