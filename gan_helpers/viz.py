"""Plots with matplotlib: image grids inline, loss and gradient curves, quality curves and
class histograms, and `save_figure` to write any figure as a PNG. Image files without pyplot
(grids, PNG bytes, GIFs) are in `images`."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from PIL import Image

from .images import grid_image, make_gif, save_grid  # noqa: F401 - re-exported for the lessons
from .metrics import FAIR_SHARE, Scores
from .run_folder import replace_atomically


def save_figure(fig: plt.Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save `fig` as an image file at `path` (folders created; the format from its suffix),
    atomically (`run_folder.replace_atomically`: a failure leaves the old file whole), close it;
    return the path."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    replace_atomically(path, buffer.getbuffer())
    return path


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None,
              size: float = 5.0, ax: plt.Axes | None = None) -> plt.Axes:
    """Show a grid of `images` in [-1, 1] inline with matplotlib."""
    img = grid_image(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size * img.height / img.width))
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def running_mean(values: Sequence[float] | torch.Tensor, smooth: int) -> torch.Tensor:
    """The mean of each window of `smooth` consecutive values (fewer for short series: at most a
    fifth of their length), in float64; `len(values) - k + 1` values for a window of k. A
    missing value (None: NaN or infinity as history.json keeps them) counts as NaN."""
    if not isinstance(values, torch.Tensor):
        values = [math.nan if v is None else v for v in values]
    t = torch.as_tensor(values, dtype=torch.float64)
    k = max(1, min(smooth, len(t) // 5 or 1))
    return t.unfold(0, k, 1).mean(1) if len(t) >= k else t[:0]


def plot_history(history: Mapping[str, Sequence[float]], smooth: int = 20,
                 axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Plot the losses and D(x) / D(G(z)) of a training history, per step (smoothed)."""
    own_figure = axes is None
    if own_figure:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    else:
        fig = axes[0].figure

    def draw(ax: plt.Axes, keys: Sequence[tuple[str, str]], title: str) -> None:
        ax.clear()
        for key, label in keys:
            values = history.get(key) or []
            if len(values):
                y = running_mean(values, smooth)
                x = torch.arange(len(values) - len(y), len(values)).numpy()
                ax.plot(x, y.numpy(), label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()

    draw(axes[0], [("loss_d", "discriminator"), ("loss_g", "generator")], "losses")
    draw(axes[1], [("d_real", "D(x), real"), ("d_fake", "D(G(z)), fake")],
         "discriminator's outputs (probabilities)")
    axes[1].set_ylim(0, 1)
    if own_figure:
        fig.tight_layout()
    return fig


def plot_grad_norms(histories: Mapping[str, Mapping[str, Sequence[float]]], smooth: int = 25,
                    axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Each network's gradient norm per step, one line per run (log scale, a running mean of
    `smooth` steps; steps where a network was not updated, NaN in the history, are skipped, and
    a mean of exactly 0, a generator stuck where its tanh is flat, is drawn at the floor 1e-8)."""
    own_figure = axes is None
    if own_figure:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    else:
        fig = axes[0].figure
    for ax, key, title in zip(axes, ("grad_d", "grad_g"), ("discriminator", "generator")):
        for name, history in histories.items():
            values = torch.tensor([math.nan if v is None else v for v in history.get(key) or []],
                                  dtype=torch.float64)
            steps = torch.arange(1, len(values) + 1)
            keep = torch.isfinite(values)
            values, steps = values[keep], steps[keep]
            mean = running_mean(values, smooth).clamp(min=1e-8)
            if len(mean):
                ax.plot(steps[len(steps) - len(mean):].numpy(), mean.numpy(), label=name)
        ax.set_yscale("log")
        ax.set_title(f"{title}: gradient norm")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    if own_figure:
        fig.tight_layout()
    return fig


def save_history_plot(history: Mapping[str, Sequence[float]],
                      path: str | os.PathLike[str]) -> Path:
    """Save the loss and D(x) / D(G(z)) curves as a PNG; return the path."""
    return save_figure(plot_history(history), path)


def plot_quality(runs: Mapping[str, Sequence[Mapping[str, Any]]],
                 references: Mapping[str, Scores] | None = None, x: str = "seconds",
                 axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """FID (log scale), IS and coverage against training time (`x="seconds"`; `"time"` for
    `evaluation.score_snapshots`' curves), `"epoch"` or `"step"`.

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
        ax.set_xlabel("training time (s)" if x in ("seconds", "time") else x)
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
    return save_figure(plot_quality({name: entries}, references), path)


def show_images(paths: Sequence[str | os.PathLike[str]], titles: Sequence[str] | None = None,
                ncols: int = 4, size: float = 3.0) -> plt.Figure:
    """Show saved PNGs (e.g. the per-epoch grids of a run) side by side, with titles."""
    paths = list(paths)
    if not paths:
        raise ValueError("No images to show: has the training cell run?")
    ncols = min(ncols, len(paths))
    nrows = -(-len(paths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (ax, path) in enumerate(zip(axes.flat, paths)):
        ax.imshow(Image.open(path), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(titles[i] if titles else Path(path).stem.replace("_", " "))
    fig.tight_layout()
    return fig


def plot_gan_game() -> plt.Figure:
    """Draw one step of the GAN game: noise z -> G -> fakes; real images and fakes -> D -> the
    two losses (solid arrows: the forward pass); and which loss updates which network (dashed:
    D's loss updates D alone, the fakes detached; G's loss flows back through D, frozen, into G).
    Returns the figure."""
    from matplotlib.patches import FancyBboxPatch

    ink, d_colour, g_colour = "#333333", "#c0392b", "#1f5fa8"
    fig, ax = plt.subplots(figsize=(11, 4.6))
    ax.set(xlim=(0, 11), ylim=(0.55, 5.15), aspect="equal")
    ax.set_axis_off()

    def box(x, y, text, face, edge=ink, width=1.5, bold=False):
        ax.add_patch(FancyBboxPatch((x - width / 2, y - 0.4), width, 0.8,
                                    boxstyle="round,pad=0.06", facecolor=face, edgecolor=edge,
                                    linewidth=1.6))
        ax.text(x, y, text, ha="center", va="center", fontsize=11, color=ink,
                fontweight="bold" if bold else "normal")

    def arrow(points, colour=ink, dashed=False):
        style = dict(color=colour, linewidth=1.8, linestyle=(0, (5, 3)) if dashed else "-")
        for start, end in zip(points[:-2], points[1:-1]):
            ax.plot(*zip(start, end), **style)
        ax.annotate("", xy=points[-1], xytext=points[-2], arrowprops=dict(
            arrowstyle="-|>", mutation_scale=18, shrinkA=0, shrinkB=0, **style))

    def note(x, y, text, colour, va, size=10):
        ax.text(x, y, text, color=colour, fontsize=size, ha="center", va=va)

    box(1.0, 2.6, "noise z\n~ N(0, I)", "#eeeeee")
    box(3.2, 2.6, "G\ngenerator", "#dbe7f5", g_colour, bold=True)
    box(5.4, 2.6, "fake images\nG(z)", "#eeeeee")
    box(5.4, 4.0, "real images\nx", "#eeeeee")
    box(7.6, 3.3, "D\ndiscriminator", "#f6dcd8", d_colour, bold=True)
    box(9.9, 4.0, "D's loss\nreal → 1, fake → 0", "#fbefed", d_colour, width=1.7)
    box(9.9, 2.6, "G's loss\nfake → 1", "#edf3fa", g_colour, width=1.7)
    arrow([(1.81, 2.6), (2.39, 2.6)])                             # z -> G
    arrow([(4.01, 2.6), (4.59, 2.6)])                             # G -> fakes
    arrow([(6.21, 4.0), (6.5, 4.0), (6.5, 3.45), (6.79, 3.45)])   # real -> D
    arrow([(6.21, 2.6), (6.5, 2.6), (6.5, 3.15), (6.79, 3.15)])   # fakes -> D
    arrow([(8.41, 3.45), (8.7, 3.45), (8.7, 4.0), (8.99, 4.0)])   # D -> D's loss
    arrow([(8.41, 3.15), (8.7, 3.15), (8.7, 2.6), (8.99, 2.6)])   # D -> G's loss
    # D's loss goes back into D alone; G's loss through D, which does not step, into G.
    arrow([(9.9, 4.46), (9.9, 4.85), (7.6, 4.85), (7.6, 3.76)], d_colour, dashed=True)
    note(8.75, 4.93, "D's loss updates D only (opt_d): the fakes reach it detached",
         d_colour, "bottom")
    arrow([(9.9, 2.14), (9.9, 1.45), (3.2, 1.45), (3.2, 2.14)], g_colour, dashed=True)
    note(6.55, 1.35, "G's loss updates G only (opt_g): it flows back through D and the fakes",
         g_colour, "top")
    note(7.6, 2.7, "frozen for G's loss:\nopt_d does not step", g_colour, "top", 9)
    ax.plot([], [], color=ink, linewidth=1.8, label="forward pass")
    ax.plot([], [], color="#777777", linewidth=1.8, linestyle=(0, (5, 3)),
            label="a loss's gradient, back to the network it updates")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02), frameon=False, fontsize=10,
              ncols=2)
    fig.tight_layout()
    return fig
