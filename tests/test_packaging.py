"""Packaging: pyproject.toml and environment.yml name the same packages with the same lower bounds
(so the two cannot drift apart), conda takes everything from conda-forge, the version lives in
one place, and pyproject.toml names no file that does not exist."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

import gan_helpers
from gan_helpers import _requirements

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge's name -> PyPI's name
IMPORT_NAMES = {"pil": "pillow", "jupyter_ui_poll": "jupyter-ui-poll"}  # import -> distribution


def _split(requirement: str) -> tuple[str, str]:
    """`"torch>=2.1"` -> `("torch", ">=2.1")`: the name (lower case) and the version specifier."""
    parsed = Requirement(requirement)
    return parsed.name.lower(), str(parsed.specifier)


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def pyproject_packages() -> dict[str, str]:
    project = pyproject()["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def environment_yml() -> tuple[list[str], dict[str, str]]:
    """environment.yml's channels, and its packages (conda and pip) with their specifiers."""
    text = (ROOT / "environment.yml").read_text()
    head, deps = text.split("\ndependencies:", 1)
    channels = re.findall(r"^\s+-\s+(\S+)", head.split("\nchannels:", 1)[1], re.M)
    packages = {}
    for line in deps.splitlines():
        m = re.match(r"\s+-\s+([A-Za-z][^:#]*?)\s*(?:#.*)?$", line)  # not "- pip:" itself
        if m:
            name, spec = _split(m.group(1))
            if name != "pip":
                packages[CONDA_NAMES.get(name, name)] = spec
    return channels, packages


def test_environment_yml_matches_pyproject():
    _, packages = environment_yml()
    python = packages.pop("python")
    assert packages == pyproject_packages()  # the same names, the same lower bounds
    assert python == pyproject()["project"]["requires-python"]


def test_conda_takes_pytorch_from_conda_forge_only():
    channels, packages = environment_yml()
    assert channels == ["conda-forge"]
    text = (ROOT / "environment.yml").read_text()
    assert "pytorch::" not in text and "nvidia" not in text  # no channel named per package
    assert {"torch", "torchvision"} <= set(packages)  # conda-forge's pytorch and torchvision


def _imported_top_level(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _lesson_and_package_imports() -> set[str]:
    """Top-level modules imported by gan_helpers and by the lessons' code cells."""
    imported = set()
    for path in (ROOT / "gan_helpers").glob("*.py"):
        imported |= _imported_top_level(path.read_text())
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                imported |= _imported_top_level("\n".join(
                    line for line in lines if not line.lstrip().startswith(("!", "%"))))
    return imported


def _requirement_names(distribution: str) -> set[str]:
    """The (non-extra) requirements of an installed distribution."""
    return {name.lower() for name in _requirements.requirements(distribution)}


def test_every_library_the_lessons_import_is_a_runtime_dependency():
    """Derived from the imports of gan_helpers and the notebooks, not from a copy of the list. A
    library may also come with a declared one (IPython comes with ipywidgets)."""
    third_party = {n for n in _lesson_and_package_imports()
                   if n not in sys.stdlib_module_names and n != "gan_helpers"
                   and n != "google"}  # google.colab: imported on Colab only, where it exists
    distributions = {IMPORT_NAMES.get(n.lower(), n.lower()) for n in third_party}
    project = pyproject()["project"]
    runtime = set(dict(_split(r) for r in project["dependencies"]))
    # Optional helpers, imported inside a try (the code works without them).
    runtime |= set(dict(_split(r) for r in project["optional-dependencies"]["widgets"]))
    provided = runtime.union(*(_requirement_names(d) for d in runtime))
    assert distributions <= provided, f"imported but not declared: {distributions - provided}"
    assert {"torch", "torchvision", "matplotlib", "ipywidgets"} <= distributions  # sees imports


def test_a_missing_requirement_is_named_with_the_command_that_installs_it(monkeypatch):
    """gan_helpers/_requirements.py, what `import gan_helpers` raises when a requirement is
    missing: the installed metadata's requirements (parsed by `packaging`), less the extras and
    those whose marker does not hold here; the message names what to install."""
    assert {"torch", "numpy", "matplotlib"} <= set(_requirements.requirements())
    assert "jupyterlab" not in _requirements.requirements()  # an extra (dev)
    assert _requirements.missing() == []
    declared = ["torch>=2.11.0", "Pillow[extra1] >= 11.3", 'tomli>=1; python_version < "3.0"',
                'jupyter-ui-poll>=1.0; extra == "widgets"']
    monkeypatch.setattr(_requirements.metadata, "requires", lambda distribution: declared)
    assert _requirements.requirements() == ["torch", "Pillow"]

    def version(name: str) -> str:
        if name == "torch":
            raise importlib.metadata.PackageNotFoundError(name)
        return "99"

    monkeypatch.setattr(_requirements.metadata, "version", version)
    err = _requirements.missing_requirements_error(ModuleNotFoundError("torch", name="torch"))
    assert str(err).startswith("gan_helpers needs torch, which this Python environment lacks. "
                               "Install it with `pip install torch`")
    assert err.name == "torch"
    monkeypatch.setitem(sys.modules, "packaging.requirements", None)  # packaging is missing
    assert _requirements.requirements() == ["packaging"]


def test_version_lives_in_the_package_only():
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    dynamic = pyproject()["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "gan_helpers.__version__"}
    # The installed metadata comes from it (an editable install re-reads it when reinstalled).
    assert importlib.metadata.version("gan-helpers") == gan_helpers.__version__


def test_pyproject_names_only_files_that_exist():
    text = (ROOT / "pyproject.toml").read_text()
    paths = set(re.findall(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.(?:py|yml|yaml|md|ipynb|toml))",
                           text))
    assert "tests/test_packaging.py" in paths  # the pattern finds the paths the comments give
    paths.add(pyproject()["project"]["readme"])
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == [], f"pyproject.toml names files that do not exist: {missing}"


def test_lower_bounds_are_colabs_versions():
    """Each runtime dependency's lower bound is the oldest version of it in Colab's runtimes,
    which the Colab-like test runs every lesson with: a bound the tests have passed with."""
    from packaging.version import Version

    from tools.colab_runtime import RUNTIMES

    bounds = dict(_split(r) for r in pyproject()["project"]["dependencies"])
    oldest = {name: str(min(Version(spec.packages[name]) for spec in RUNTIMES.values()))
              for name in bounds}
    assert {name: spec.removeprefix(">=") for name, spec in bounds.items()} == oldest
