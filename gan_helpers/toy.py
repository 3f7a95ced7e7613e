"""The one-dimensional toy GAN of lesson 00, and the pure functions behind its theory plots.

p_data is a mixture of two Gaussians on the real line. A tiny generator learns to map noise onto
it, while a tiny discriminator tells the two apart. Everything runs on the CPU in seconds, and
every density lives on one fixed grid of x values, so p_data, p_g and D(x) can be drawn together:

    result = train_toy(steps=3000, every=500, callback=print)
    plot_snapshots(result.snapshots)

The training step is `gan_helpers.training.train_step`, the same one the image lessons use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch
from torch import nn

from . import config
from .objectives import BCEObjective
from .stats import STATS
from .training import train_step

MEANS: tuple[float, float] = (-2.0, 2.0)
"""The two modes of p_data."""
STD: float = 0.5
"""The standard deviation of each mode."""
X_RANGE: tuple[float, float] = (-5.0, 5.0)
"""The part of the real line that is plotted (and binned for p_g's histogram)."""
SMOKE_STEPS: int = 300
"""The most steps `train_toy` trains in smoke mode."""


# ----------------------------------------------------------------------------- densities

def x_grid(n: int = 200, x_range: tuple[float, float] = X_RANGE) -> torch.Tensor:
    """`n` evenly spaced x values: the centres of `n` equal bins covering `x_range`."""
    lo, hi = x_range
    dx = (hi - lo) / n
    return torch.linspace(lo + dx / 2, hi - dx / 2, n, dtype=torch.float64)


def gaussian_pdf(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """The density of N(mean, std²) at `x`."""
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def mixture_pdf(x: torch.Tensor, weights: Sequence[float] = (0.5, 0.5),
                means: Sequence[float] = MEANS, std: float = STD) -> torch.Tensor:
    """The density of a mixture of Gaussians (weights normalised to sum to 1) at `x`."""
    total = sum(weights)
    return sum(w / total * gaussian_pdf(x, m, std) for w, m in zip(weights, means))


def sample_mixture(n: int, weights: Sequence[float] = (0.5, 0.5),
                   means: Sequence[float] = MEANS, std: float = STD,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` samples of the mixture, shaped `(n, 1)` like a batch of one-number "images"."""
    probs = torch.tensor(weights, dtype=torch.float32)
    component = torch.multinomial(probs, n, replacement=True, generator=generator)
    centres = torch.tensor(means, dtype=torch.float32)[component]
    return (centres + std * torch.randn(n, generator=generator)).unsqueeze(1)


def histogram_density(samples: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A density estimate of `samples` on the grid `x` (bin centres from `x_grid`).

    Counts per bin divided by (number of samples × bin width); mass outside the grid is dropped.
    """
    dx = float(x[1] - x[0])
    lo, hi = float(x[0]) - dx / 2, float(x[-1]) + dx / 2
    counts = torch.histc(samples.detach().double().flatten(), bins=len(x), min=lo, max=hi)
    return counts / (samples.numel() * dx)


def mode_masses(samples: torch.Tensor, means: Sequence[float] = MEANS,
                radius: float = 1.0) -> list[float]:
    """The fraction of `samples` within `radius` of each mode (2·STD by default)."""
    s = samples.detach().flatten()
    return [((s - m).abs() < radius).float().mean().item() for m in means]


# ----------------------------------------------------------------------------- theory

def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), the best discriminator against a fixed G.

    Where both densities are 0 the ratio is undefined and nothing is at stake; we return 0.5.
    """
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300), torch.full_like(total, 0.5))


def minimax_value(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor,
                  x: torch.Tensor) -> float:
    """V(D, G) = ∫ p_data log D + p_g log(1 - D) dx, integrated numerically on the grid `x`.

    Terms where a density is 0 contribute 0 (the convention 0·log 0 = 0); D and 1 - D are
    clamped to 1e-300 so that a D rounded to exactly 0 or 1 costs a finite (tiny) amount.
    """
    real = torch.xlogy(p_data, d.clamp_min(1e-300))
    fake = torch.xlogy(p_g, (1 - d).clamp_min(1e-300))
    return torch.trapezoid(real + fake, x).item()


def js_divergence(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    """The Jensen–Shannon divergence of two densities on the grid `x` (natural log: 0 to log 2)."""
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * torch.log(a / m.clamp_min(1e-300)), torch.zeros_like(a))

    return torch.trapezoid((kl(p) + kl(q)) / 2, x).item()


def generator_gradients(d: torch.Tensor, wrt: str = "logit") -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of the two generator losses at D(G(z)) = `d`, in (0, 1).

    Returns `(saturating, non_saturating)`: the derivative of `log(1 - D)` (the minimax loss)
    and of `-log D` (the non-saturating loss), both of which the generator minimises.
    `wrt="logit"`: with respect to the discriminator's logit a (D = sigmoid(a)), which is what
    flows back into G: `-D` and `-(1 - D)`. `wrt="prob"`: with respect to D itself:
    `-1 / (1 - D)` and `-1 / D`. Either way, when D(G(z)) is near 0 (early in training, when D
    easily spots the fakes) the saturating gradient is tiny compared with the non-saturating one.
    """
    if wrt == "logit":
        return -d, -(1 - d)
    if wrt == "prob":
        return -1 / (1 - d), -1 / d
    raise ValueError(f"wrt must be 'logit' or 'prob', not {wrt!r}.")


# ----------------------------------------------------------------------------- models

class ToyGenerator(nn.Module):
    """Noise `(N, latent_dim)` -> `hidden` -> `hidden` -> one number `(N, 1)`."""

    def __init__(self, latent_dim: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """One number `(N, 1)` -> `hidden` -> `hidden` -> one logit `(N,)`."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(1, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


# ----------------------------------------------------------------------------- training

@dataclass
class Snapshot:
    """What training looks like at one step, on the fixed grid `x`."""

    step: int
    x: torch.Tensor
    p_data: torch.Tensor
    p_g: torch.Tensor
    """Histogram density of the generator's samples for a fixed batch of noise."""
    d: torch.Tensor
    """D(x): the discriminator's probability that x is real."""
    mode_mass: list[float]
    """The fraction of p_g's samples near each mode of p_data (see `mode_masses`)."""

    def __str__(self) -> str:
        masses = ", ".join(f"{m:.0%}" for m in self.mode_mass)
        d = self.d[self.p_data > 0.01]  # where the data are
        return (f"step {self.step:5d}: p_g's mass near the modes {masses}; "
                f"D(x) from {d.min():.2f} to {d.max():.2f} where p_data > 0.01")


@dataclass
class ToyResult:
    """What `train_toy` returns: the trained models, the snapshots and the per-step stats."""

    G: ToyGenerator
    D: ToyDiscriminator
    snapshots: list[Snapshot] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)


@torch.no_grad()
def snapshot(G: nn.Module, D: nn.Module, step: int, noise: torch.Tensor, x: torch.Tensor,
             p_data: torch.Tensor, means: Sequence[float] = MEANS) -> Snapshot:
    """Measure G and D on the grid: p_g from the samples G(noise), and D(x)."""
    samples = G(noise)
    d = torch.sigmoid(D(x.float().unsqueeze(1))).double()
    return Snapshot(step, x, p_data, histogram_density(samples, x), d,
                    mode_masses(samples, means))


def train_toy(
    steps: int = 3000,
    *,
    every: int = 500,
    callback: Callable[[Snapshot], object] | None = None,
    weights: Sequence[float] = (0.5, 0.5),
    means: Sequence[float] = MEANS,
    std: float = STD,
    latent_dim: int = 2,
    hidden: int = 32,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    objective: BCEObjective | None = None,
    seed: int = 0,
    n_samples: int = 20_000,
    grid_points: int = 200,
) -> ToyResult:
    """Train the toy GAN on the two-Gaussian mixture for `steps` steps; return a `ToyResult`.

    Every `every` steps (and before the first and after the last) a `Snapshot` is taken, kept in
    the result and passed to `callback`. The loss is `objective` (default: non-saturating BCE),
    the step `gan_helpers.training.train_step`, the optimiser Adam(`lr`, `betas`). The same
    `seed` gives the same run. Smoke mode trains at most `SMOKE_STEPS` steps.
    """
    steps = config.smoke_cap(steps, SMOKE_STEPS)
    config.seed_everything(seed)
    G, D = ToyGenerator(latent_dim, hidden), ToyDiscriminator(hidden)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    objective = objective if objective is not None else BCEObjective()

    x = x_grid(grid_points)
    p_data = mixture_pdf(x, weights, means, std)
    # Snapshots measure G on one fixed batch of noise, drawn from their own generator, so that
    # taking them does not change the training run.
    noise = torch.randn(n_samples, latent_dim, generator=torch.Generator().manual_seed(seed + 1))
    result = ToyResult(G, D, history={k: [] for k in STATS})

    def take(step: int) -> None:
        snap = snapshot(G, D, step, noise, x, p_data, means)
        result.snapshots.append(snap)
        if callback is not None:
            callback(snap)

    take(0)
    stats = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # layers this small run fastest on one thread (several: 10x slower)
    try:
        for step in range(1, steps + 1):
            real = sample_mixture(batch_size, weights, means, std)
            z = torch.randn(batch_size, latent_dim)
            stats.append(train_step(G, D, opt_g, opt_d, real, z, objective))
            if step % every == 0 or step == steps:
                take(step)
    finally:
        torch.set_num_threads(threads)
    if stats:
        for key, column in zip(STATS, torch.stack(stats).T.tolist()):
            result.history[key] = column
    return result


# ----------------------------------------------------------------------------- plots

def plot_densities(x: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, d: torch.Tensor,
                   ax: plt.Axes | None = None, title: str | None = None,
                   d_label: str = "D(x)", legend: bool = True) -> plt.Axes:
    """Draw p_data (filled), p_g (steps) and a discriminator `d` (dashed) on one pair of axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    x = x.numpy()
    ax.fill_between(x, p_data.numpy(), color="C0", alpha=0.25, label="p_data")
    ax.step(x, p_g.numpy(), where="mid", color="C1", lw=1.5, label="p_g")
    ax.plot(x, d.numpy(), color="C2", ls="--", lw=1.5, label=d_label)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("x")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_snapshot(snap: Snapshot, ax: plt.Axes | None = None, legend: bool = True) -> plt.Axes:
    """Draw p_data, p_g (histogram of G's samples) and D(x) of one snapshot."""
    return plot_densities(snap.x, snap.p_data, snap.p_g, snap.d, ax, f"step {snap.step}",
                          legend=legend)


def plot_snapshots(snapshots: Sequence[Snapshot], ncols: int = 3,
                   size: tuple[float, float] = (3.4, 2.4)) -> plt.Figure:
    """Small multiples: one panel per snapshot, the legend on the first."""
    nrows = math.ceil(len(snapshots) / ncols)
    ncols = min(ncols, len(snapshots))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             sharex=True, sharey=True, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(snapshots):
            plot_snapshot(snapshots[i], ax, legend=(i == 0))
            ax.set_xlabel("")
        else:
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_generator_gradients(n: int = 500, ax: plt.Axes | None = None) -> plt.Axes:
    """Plot the size of both generator gradients (w.r.t. the logit) against D(G(z)) in (0, 1)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    d = torch.linspace(0.001, 0.999, n, dtype=torch.float64)
    saturating, non_saturating = generator_gradients(d)
    ax.plot(d.numpy(), saturating.abs().numpy(), label="saturating: log(1 - D(G(z)))")
    ax.plot(d.numpy(), non_saturating.abs().numpy(), label="non-saturating: -log D(G(z))")
    ax.axvspan(0, 0.1, color="gray", alpha=0.15, label="early training: D spots the fakes")
    ax.set_xlabel("D(G(z))")
    ax.set_ylabel("|gradient w.r.t. D's logit|")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize="small")
    return ax
