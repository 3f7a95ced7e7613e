"""Notebook hygiene: numbering, title, goals, Colab badge and set-up cell, no outputs, README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[2]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_lessons_numbered_from_00_without_gaps():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_conventions(path):
    assert nbtools.problems(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_read_settings_through_gan_helpers(path):
    """Smoke mode and the dataset are read in gan_helpers.config, never in a notebook."""
    code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                   if c["cell_type"] == "code")
    for name in ("GAN_SMOKE", "os.environ", "getenv"):
        assert name not in code, f"{path.name} reads {name} itself"


def test_repository_address_lives_in_pyproject_only():
    url = nbtools.repo_url()
    assert url.startswith("https://github.com/")
    setup = nbtools.setup_cell()
    assert f'REPO = "{url}"' in setup and 'f"gan-helpers @ git+{REPO}"' in setup
    install = setup.split("subprocess.run")[1]
    assert "--no-deps" in install and "torch" not in install  # Colab's own packages are kept


def test_checker_catches_a_broken_notebook(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text())
    nb["cells"][1]["source"] = "import sys\n"
    next(c for c in nb["cells"][2:] if c["cell_type"] == "code")["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "hi"}]
    broken = tmp_path / NOTEBOOKS[0].name
    broken.write_text(json.dumps(nb))
    found = nbtools.problems(broken)
    assert any("set-up cell" in p for p in found) and any("outputs" in p for p in found)
    nbtools.fix(broken)
    assert nbtools.problems(broken) == nbtools.problems(NOTEBOOKS[0]) == []


def test_checker_catches_what_a_learner_would_trip_on():
    nb = json.loads(NOTEBOOKS[0].read_text())
    cells = nb["cells"]
    assert nbtools.lesson_problems(cells) == []
    code = next(c for c in cells[2:] if c["cell_type"] == "code")
    code["source"] = "\n".join(["x = 1"] * 31)
    cells[2]["source"] += "\nIn smoke mode this runs faster."
    ends = [c for c in cells if nbtools.source(c).startswith("## References")]
    ends[0]["source"] = "## Further reading"
    cells[2]["source"] += "\nWe measured FID_AFTER_5 after 5 epochs, with `N_SAMPLES` images."
    found = " | ".join(nbtools.lesson_problems(cells))
    assert "31 lines" in found and "'smoke'" in found and "## References" in found
    assert "'FID_AFTER_5'" in found and "N_SAMPLES" not in found  # code spans are not prose


def test_readme_lists_every_lesson():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README does not list {path.name}"

