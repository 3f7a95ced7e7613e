"""The pictures of the latent space (lesson 07): interpolation strips, the frames of an animated
walk, histograms of vector lengths, scores along a path, transfer heat maps, and the `Explorer`
widget that moves one sample along chosen directions.

    rows = latent.interpolate(G, z0, z1, steps=10)
    strip_image(rows, scale=2).save("strips.png")      # one interpolation strip per row
    plot_transfer(latent.transfer_matrix(G, evaluator, labelled, means), evaluator.classes)
    Explorer(G, z, {"→ trousers": means[1] - means[0]}).show()   # sliders, or a static grid

The numbers behind them (paths, class means, directions, scores) come from `gan_helpers.latent`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from PIL import Image
from torch import nn

from . import checks
from .display import show_widget
from .errors import UsageError
from .images import enlarge, grid_image, grid_png
from .latent import along, predict, prior_norm
from .models import generate
from .viz import show_grid

# ----------------------------------------------------------------------------- strips and frames


def strip_image(rows: torch.Tensor, scale: int = 1) -> Image.Image:
    """Interpolation strips `(R, S, C, H, W)` (or one strip `(S, C, H, W)`) as one PIL image,
    one strip per row, enlarged `scale` times."""
    rows = rows if rows.dim() == 5 else rows.unsqueeze(0)
    return enlarge(grid_image(rows.flatten(0, 1), nrow=rows.shape[1]), scale)


def gif_frames(G: nn.Module, zs: torch.Tensor, nrow: int = 4) -> list[Image.Image]:
    """One grid image per point of a path of batches `zs` `(T, N, d)` (from `latent.path` or
    `latent.walk`): the frames of an animation, for `images.make_gif`."""
    images = generate(G, zs)
    return [grid_image(frame, nrow=nrow) for frame in images]


# ----------------------------------------------------------------------------- plots


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
    from `latent.scores_along`)."""
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
    """A `latent.transfer_matrix` as a heat map with the shares written in."""
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

    In Jupyter (`display.in_kernel`: a kernel is running) `show()` displays
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
        shown = show_widget(self.build_widget, lambda: _png_image(fig), static_too=True)
        self.mode = "widgets" if shown else "static"
        plt.close(fig)
        return fig


def _png_image(fig: plt.Figure) -> Any:
    """`fig` as an `IPython.display.Image` (PNG), for `display`."""
    from IPython.display import Image as PNG

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return PNG(data=buffer.getvalue(), format="png")
