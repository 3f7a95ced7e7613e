"""Sampling a conditional generator: per-class samples, the class grid and the class picker;
and lesson 06's written-out conditional step, which must be the package's step."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from gan_helpers import conditional, models, objectives, training  # noqa: E402
from tests.helpers import small_conditional_g  # noqa: E402
from tools.notebooks import source  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

CLASSES = [f"class {i}" for i in range(10)]


def test_class_samples_share_the_noise_across_classes_and_keep_train_mode():
    G = small_conditional_g().train()
    images = conditional.class_samples(G, per_class=3, classes=[2, 5], seed=1)
    assert images.shape == (6, 1, 28, 28)
    assert G.training
    # Same seed, same images; the label changes them.
    again = conditional.class_samples(G, per_class=3, classes=[2, 5], seed=1)
    assert torch.equal(images, again)
    assert not torch.allclose(images[:3], images[3:])
    # Each column has the same z: with the label embedding zeroed, rows become equal.
    with torch.no_grad():
        G.embed.weight.zero_()
    flat = conditional.class_samples(G, per_class=3, classes=[2, 5], seed=1)
    assert torch.allclose(flat[:3], flat[3:], atol=1e-6)


def test_class_samples_reject_unconditional_generators_and_unknown_classes():
    with pytest.raises(ValueError, match="conditional generator"):
        conditional.class_samples(models.MLPGenerator())
    with pytest.raises(ValueError, match=r"Classes \[10\] do not exist"):
        conditional.class_samples(small_conditional_g(), classes=[10])


def test_class_grid_labels_every_row():
    ax = conditional.show_class_grid(small_conditional_g(), CLASSES, per_class=4)
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES


def test_class_picker_redraws_on_click_and_on_a_new_class(widgets_mode):
    picker = conditional.ClassPicker(small_conditional_g(), CLASSES, n=4)
    assert picker.show() is None  # a returned widget would be displayed a second time
    first = bytes(picker.image.value)
    assert first.startswith(b"\x89PNG")
    picker.button.click()  # new noise
    second = bytes(picker.image.value)
    assert second != first
    picker.dropdown.value = 3  # another class
    assert bytes(picker.image.value) != second
    assert picker.draws == 3


def test_class_picker_falls_back_to_a_static_grid(monkeypatch):
    shown = []
    monkeypatch.setattr(conditional.plt, "show", lambda: shown.append(1))
    assert conditional.ClassPicker(small_conditional_g(), CLASSES).show() is None
    assert shown == [1]


def test_lesson_06s_written_out_step_gives_the_losses_of_the_packages_step():
    """The step lesson 06 writes out and the `train_step` that `fit` runs: same networks, batch
    and noise give the same losses, step after step (so the updates agree too)."""
    nb = json.loads((ROOT / "notebooks" / "06_conditional_gan.ipynb").read_text())
    cell = next(source(c) for c in nb["cells"] if "def conditional_step(" in source(c))
    lesson: dict = {"torch": torch, "nn": torch.nn}
    exec(cell, lesson)  # noqa: S102 - the lesson's own cell

    def package_step(G, D, opt_g, opt_d, real, z, labels):
        stats = training.train_step(G, D, opt_g, opt_d, real, z, objectives.BCEObjective(),
                                    labels)
        return tuple(stats[:2].tolist())

    torch.manual_seed(0)
    G, D, _ = models.build_gan("cdcgan", latent_dim=8, g_kwargs={"width": 8},
                               d_kwargs={"width": 8})
    real, labels = torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10
    z = torch.randn(16, 8)
    results = []
    for step in (lesson["conditional_step"], package_step):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        opt_g, opt_d = training.adam(g), training.adam(d)
        results.append([step(g, d, opt_g, opt_d, real, z, labels) for _ in range(3)])
    lesson_losses, package_losses = (torch.tensor(r) for r in results)
    torch.testing.assert_close(lesson_losses, package_losses, atol=1e-6, rtol=0)
    assert (lesson_losses[0] - lesson_losses[2]).abs().min() > 1e-3  # the updates changed them
