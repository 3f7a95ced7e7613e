"""The tests' fixtures. The plain helpers they and the tests share (a small IDX dataset, small
networks, a small loader, `StopAt`, `cli`, `FakeEvaluator`) are in tests/helpers.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import BASE, cli, write_dataset


class _FakeKernelShell:
    kernel = object()  # no do_one_iteration: the ipykernel 7 path


@pytest.fixture
def widgets_mode(monkeypatch):
    """Pretend to run in a Jupyter kernel, so widgets are built (and displayed nowhere)."""
    from gan_helpers import display

    monkeypatch.setattr(display, "_kernel_shell", lambda: _FakeKernelShell())
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)


@pytest.fixture
def tiny_data(tmp_path, monkeypatch) -> dict:
    """A 256-image Fashion-MNIST stand-in in `tmp_path/data`, selected through the environment."""
    root = tmp_path / "data"
    arrays = write_dataset(root / "FashionMNIST" / "raw")
    monkeypatch.setenv("GAN_DATA_DIR", str(root))
    monkeypatch.setenv("GAN_DATASET", "fashion-mnist")
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(tmp_path / "no-system-copy"))
    return {"root": root, **arrays}


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory) -> Path:
    """The run `trained` copies: trained once a session, from the command line, on the data
    `tiny_data` writes (the same images, in a folder of its own)."""
    base = tmp_path_factory.mktemp("trained-once")
    write_dataset(base / "data" / "FashionMNIST" / "raw")
    result = cli("train", *BASE, "--epochs", "1", "--out", str(base / "run"),
                 env={"GAN_DATA_DIR": str(base / "data"), "GAN_DATASET": "fashion-mnist",
                      "GAN_SYSTEM_DATASETS": str(base / "no-system-copy")})
    assert result.returncode == 0, result.stderr
    return base / "run"


@pytest.fixture
def trained(tiny_data, tmp_path, trained_once) -> Path:
    """A run folder with one finished epoch (8 steps) of the MLP GAN, from the command line: a
    copy of `trained_once` (the run records no path), the test's own to change."""
    out = tmp_path / "run"
    shutil.copytree(trained_once, out)
    return out
