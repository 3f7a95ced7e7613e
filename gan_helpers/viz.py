"""Pictures: image grids (built on `torchvision.utils.make_grid`), loss curves and GIFs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from PIL import Image
from torchvision.utils import make_grid

from .data import denormalize


def grid_image(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> Image.Image:
    """A PIL image of a grid of `images` in [-1, 1] (shape `(N, C, H, W)`)."""
    grid = make_grid(denormalize(images.detach().float().cpu()), nrow=nrow, padding=padding,
                     pad_value=1.0)
    array = grid.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1 or (array[..., 0] == array[..., 1]).all():
        return Image.fromarray(array[..., 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int = 8,
              scale: int = 1) -> Path:
    """Save a grid of `images` in [-1, 1] as a PNG (enlarged `scale` times); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = grid_image(images, nrow=nrow)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
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
    fifth of their length), in float64; `len(values) - k + 1` values for a window of k."""
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
            values = torch.tensor(history.get(key) or [], dtype=torch.float64)
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_history(history)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def make_gif(frames: Sequence[str | os.PathLike[str] | Image.Image], path: str | os.PathLike[str],
             duration_ms: int = 400, scale: int = 2, hold_last_ms: int = 1500) -> Path:
    """Turn PNG frames (paths or PIL images) into an animated GIF with Pillow; return the path."""
    if not frames:
        raise ValueError("make_gif needs at least one frame.")
    images = [f if isinstance(f, Image.Image) else Image.open(f) for f in frames]
    images = [im.convert("L").resize((im.width * scale, im.height * scale), Image.NEAREST)
              for im in images]
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


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
