"""One source of truth: code a lesson shows is the code in gan_helpers, character for character.

A lesson cell that starts with `# From gan_helpers/<module>.py` defines classes and functions; each
must equal the definition of the same name in that module. Edit one, and this test says which
other to edit.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"# From gan_helpers/(\w+)\.py")

# What each lesson must show (so a lesson cannot quietly stop showing it).
REQUIRED = {
    "02_mlp_gan.ipynb": {"MLPGenerator", "MLPDiscriminator", "Objective", "BCEObjective",
                         "grad_norm", "train_step"},
    "03_dcgan.ipynb": {"DCGANGenerator", "DCGANDiscriminator", "norm_layer", "weights_init"},
    "06_conditional_gan.ipynb": {"ConditionalGenerator", "ProjectionDiscriminator"},
    "08_failure_modes.ipynb": {"gradient_penalty", "WGANGPObjective"},
}


def definitions(source: str) -> dict[str, str]:
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def shown_cells() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            match = MARK.match(src)
            if cell["cell_type"] == "code" and match:
                found.append((path.name, match.group(1), src))
    return found


@pytest.mark.parametrize("notebook,module,source", shown_cells(),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_lesson_code_equals_package_code(notebook, module, source):
    package = definitions((ROOT / "gan_helpers" / f"{module}.py").read_text())
    shown = definitions(source)
    assert shown, f"{notebook}: a cell marked as from gan_helpers/{module}.py defines nothing"
    for name, code in shown.items():
        assert name in package, f"{notebook} shows {name}, which gan_helpers/{module}.py lacks"
        assert code == package[name], (
            f"{notebook} and gan_helpers/{module}.py disagree about {name}: make them equal")


@pytest.mark.parametrize("notebook", sorted(REQUIRED))
def test_lessons_show_their_models_and_step(notebook):
    shown = set()
    for name, _, source in shown_cells():
        if name == notebook:
            shown |= set(definitions(source))
    assert REQUIRED[notebook] <= shown, f"{notebook} no longer shows {REQUIRED[notebook] - shown}"


def test_drift_is_detected():
    """The comparison itself fails on a one-character change."""
    package = definitions((ROOT / "gan_helpers" / "models.py").read_text())
    edited = package["weights_init"].replace("0.02", "0.03", 1)
    assert definitions(edited)["weights_init"] != package["weights_init"]
