"""One source of truth: code a lesson shows is the code in gan_helpers, character for character.

A lesson cell that starts with `# From gan_helpers/<module>.py` defines classes and functions; each
must equal the definition of the same name in that module. Edit one, and this test says which
other to edit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.notebooks import definitions, package_definitions, shown_cells, source

ROOT = Path(__file__).resolve().parents[2]

# What each lesson must show (so a lesson cannot quietly stop showing it).
REQUIRED = {
    "02_mlp_gan.ipynb": {"MLPGenerator", "MLPDiscriminator"},  # its loop: test_lesson_loop.py
    "03_dcgan.ipynb": {"DCGANGenerator", "DCGANDiscriminator", "norm_layer", "weights_init"},
    "06_conditional_gan.ipynb": {"ConditionalGenerator", "ProjectionDiscriminator"},
    "08_failure_modes.ipynb": {"gradient_penalty", "WGANGPObjective"},
    "09_gans_and_flow_matching.ipynb": {"straight_path", "flow_matching_loss", "VelocityNet",
                                        "euler_sample", "FlowGenerator", "flow_step"},
}


def all_shown_cells() -> list[tuple[str, str, str]]:
    """`(notebook, module, code)` for every cell of every lesson that shows package code."""
    return [(path.name, module, source(cell))
            for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
            for cell, module in shown_cells(json.loads(path.read_text()))]


@pytest.mark.parametrize("notebook,module,shown_code", all_shown_cells(),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_lesson_code_equals_package_code(notebook, module, shown_code):
    package = package_definitions(module)
    shown = definitions(shown_code)
    assert shown, f"{notebook}: a cell marked as from gan_helpers/{module}.py defines nothing"
    for name, code in shown.items():
        assert name in package, f"{notebook} shows {name}, which gan_helpers/{module}.py lacks"
        assert code == package[name], (
            f"{notebook} and gan_helpers/{module}.py disagree about {name}: make them equal")


@pytest.mark.parametrize("notebook", sorted(REQUIRED))
def test_lessons_show_their_models_and_step(notebook):
    shown = set()
    for name, _, shown_code in all_shown_cells():
        if name == notebook:
            shown |= set(definitions(shown_code))
    assert REQUIRED[notebook] <= shown, f"{notebook} no longer shows {REQUIRED[notebook] - shown}"


def test_drift_is_detected():
    """The comparison itself fails on a one-character change."""
    package = package_definitions("models")
    edited = package["weights_init"].replace("0.02", "0.03", 1)
    assert definitions(edited)["weights_init"] != package["weights_init"]
