"""Sampling a conditional generator `G(z, y)` (lesson 06): a grid with one row per class, and a
class picker widget that generates any class on demand.

    show_class_grid(G, classes)          # row c: class c; column j: the same noise z_j
    ClassPicker(G, classes).show()        # a dropdown, a "New samples" button and the images
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from .display import show_widget
from .images import grid_png
from .models import generate
from .viz import show_grid


def class_samples(G: nn.Module, per_class: int = 8, classes: Sequence[int] | None = None,
                  seed: int = 0) -> torch.Tensor:
    """`per_class` images of each class in `classes` (default: all), class after class.

    Every class gets the *same* `per_class` noise vectors, so in a grid with one row per class,
    each column shows what one z becomes under every label. `G` runs in eval mode.
    """
    num_classes = getattr(G, "num_classes", None)
    if not num_classes:
        raise ValueError("class_samples needs a conditional generator (one with num_classes).")
    classes = list(range(num_classes)) if classes is None else list(classes)
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"Classes {bad} do not exist: this generator knows 0..{num_classes - 1}.")
    z = torch.randn(per_class, G.latent_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.tensor(classes).repeat_interleave(per_class)
    return generate(G, z.repeat(len(classes), 1), labels)


def show_class_grid(G: nn.Module, class_names: Sequence[str], per_class: int = 10,
                    seed: int = 0, title: str | None = None,
                    ax: plt.Axes | None = None) -> plt.Axes:
    """Show one row per class, labelled with its name; each column shares one noise vector."""
    ax = show_grid(class_samples(G, per_class, seed=seed), nrow=per_class, title=title,
                   size=0.75 * per_class + 1.5, ax=ax)
    ax.set_axis_on()  # show_grid hides the axes; the row labels are y tick labels
    row = ax.images[0].get_array().shape[0] / len(class_names)
    ax.set_yticks([row * (i + 0.5) for i in range(len(class_names))], class_names)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax


class ClassPicker:
    """Pick a class, get `n` new images of it: a dropdown, a "New samples" button and the images.

    Each click draws fresh noise. Outside a Jupyter kernel (a script, a test) `show()` draws one
    static grid with a row per class instead. In a kernel without a widget front end (nbconvert,
    nbmake) only the widget's text form is saved: lesson 06 shows the class grid just above.
    """

    def __init__(self, G: nn.Module, class_names: Sequence[str], n: int = 8,
                 scale: int = 3) -> None:
        self.G, self.class_names, self.n, self.scale = G, list(class_names), n, scale
        self.draws = 0

    def png(self, label: int) -> bytes:
        """PNG bytes of `n` new images of class `label` (the next seed each call)."""
        self.draws += 1
        images = class_samples(self.G, self.n, [label], seed=self.draws)
        return grid_png(images, nrow=self.n, scale=self.scale)

    def show(self) -> None:
        """Display the widget in a Jupyter kernel; elsewhere, a static grid of all classes."""
        show_widget(self.build_widget, self.show_static)

    def show_static(self) -> None:
        """The static version: one row of samples per class."""
        show_class_grid(self.G, self.class_names, self.n, title="samples of every class")
        plt.show()

    def build_widget(self) -> Any:
        """The ipywidgets picker: a class dropdown, a "New samples" button and the images."""
        import ipywidgets as w

        self.dropdown = w.Dropdown(options=[(name, i) for i, name in
                                            enumerate(self.class_names)], description="class")
        self.button = w.Button(description="New samples", icon="refresh")
        self.image = w.Image(format="png", value=self.png(0))

        def redraw(*_) -> None:
            self.image.value = self.png(self.dropdown.value)

        self.dropdown.observe(redraw, names="value")
        self.button.on_click(redraw)
        self.widget = w.VBox([w.HBox([self.dropdown, self.button]), self.image])
        self.widget.add_class("gan-class-picker")
        return self.widget  # show() displays it once and returns None: the cell adds no copy
