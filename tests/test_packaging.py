"""pyproject.toml and environment.yml name the same packages, so the two cannot drift apart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda's name -> PyPI's name


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def pyproject_packages() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r) for r in reqs}


def environment_packages() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        m = re.match(r"\s+-\s+([A-Za-z][\w.-]*)", line)
        if m and m.group(1) not in ("python", "pip"):
            names.add(CONDA_NAMES.get(m.group(1).lower(), m.group(1).lower()))
    return names


def test_environment_yml_matches_pyproject():
    assert environment_packages() == pyproject_packages()


def test_the_lessons_libraries_are_runtime_dependencies():
    runtime = {"torch", "torchvision", "matplotlib", "ipywidgets", "tqdm", "pillow", "numpy"}
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = {_name(r) for r in tomllib.load(f)["project"]["dependencies"]}
    assert runtime <= deps
