"""Lessons 05 and 06: what their prose states about the package, and the conditional preset
they train with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from gan_helpers import callbacks, data, models, recipes, training
from tools.notebooks import source

ROOT = Path(__file__).resolve().parent.parent


def test_ema_warm_up_reaches_the_decay_after_about_9000_updates():
    # Lesson 05: "reaches 0.999 only after about 9,000 updates (t >= 8,990)" and "until then
    # 1/(1-d) = (10+t)/9".
    assert callbacks.ema_decay(0.999, 8989) < 0.999
    assert callbacks.ema_decay(0.999, 8990) == 0.999
    for t in (0, 100, 2811, 4684):
        d = callbacks.ema_decay(0.999, t)
        assert abs(1 / (1 - d) - (10 + t) / 9) < 1e-6 * (10 + t)


def test_the_conditional_preset_builds_lesson_06s_networks_and_trains(tiny_data):
    preset = recipes.default_preset("cpu")
    recipe = dataclasses.replace(preset.recipe, model="cdcgan")
    parts = recipe.build("cpu", num_classes=10, seed=0)
    assert isinstance(parts.G, models.ConditionalGenerator)
    assert isinstance(parts.D, models.ProjectionDiscriminator)
    if preset.recipe.width is not None:  # the preset's width reaches both conditional networks
        assert parts.G.net.model_args["width"] == preset.recipe.width
        assert parts.D.model_args["width"] == preset.recipe.width
    loader = data.make_loader(batch_size=preset.batch_size or 64, device="cpu")
    history = training.fit(parts.G, parts.D, loader, epochs=1, max_steps=2, opt_g=parts.opt_g,
                           opt_d=parts.opt_d, options=preset.options(), progress=False)
    assert len(history["loss_d"]) == 2
    assert all(torch.isfinite(torch.tensor(history["loss_d"])))


def test_lessons_05_and_06_take_the_dcgan_preset_by_name():
    for name in ("05_evaluating_gans", "06_conditional_gan"):
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
        assert "recipes.default_preset(DEVICE)" in code, name
        assert "PRESET.options()" in code, name
