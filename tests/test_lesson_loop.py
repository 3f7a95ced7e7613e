"""Lesson 02 writes the training loop out (`train`), then says `fit` is the same loop with the
chores done. These tests run the lesson's own cells, taken from the notebook, against `fit` and
`train_step`: same starting weights and seed, the same losses and weights step for step. Edit
the lesson's loop (or the package's step) so they differ, and this fails.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
import torch

from gan_helpers import config
from gan_helpers.training import FitOptions, fit, train_step
from tests.helpers import small_gan, tiny_loader
from tools.notebooks import definitions, source

ROOT = Path(__file__).resolve().parent.parent

LESSON = ROOT / "notebooks" / "02_mlp_gan.ipynb"


def code_cells() -> list[str]:
    cells = json.loads(LESSON.read_text())["cells"]
    return [source(c) for c in cells[2:] if c["cell_type"] == "code"]  # after the set-up cell


def cell_defining(name: str) -> str:
    """The lesson's code cell that defines the function `name`."""
    found = [code for code in code_cells() if name in definitions(code)]
    assert len(found) == 1, f"02_mlp_gan.ipynb should define {name} in one cell, not {len(found)}"
    return found[0]


class Shown:
    """Stands in for the notebook's `display`: keeps what the lesson shows, and its updates."""

    def __init__(self) -> None:
        self.images: list = []

    def __call__(self, image, display_id=None):
        self.images.append(image)
        return self

    def update(self, image) -> None:
        self.images.append(image)


def lesson_namespace(G, D, latent_dim: int) -> dict:
    """The lesson's imports, then its optimizer cell (`adam`, `bce`, `fixed_z`, built for `G`
    and `D`) and its loop cell (`train`), executed as the lesson executes them."""
    ns: dict = {"G": G, "D": D, "LATENT_DIM": latent_dim, "DEVICE": torch.device("cpu")}
    for code in code_cells():  # every import of the lesson, nothing else
        tree = ast.parse(code)
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(body=imports, type_ignores=[]), str(LESSON), "exec"), ns)
    ns["display"] = Shown()
    exec(cell_defining("adam"), ns)
    exec(cell_defining("train"), ns)
    return ns


def both_ways(kind: str, epochs: int = 2, seed: int = 0, grids_dir: Path | None = None):
    """Train one pair of networks with the lesson's `train` and a copy with `fit`, from the same
    weights and seed; return both histories and both generators."""
    G1, D1 = small_gan(kind)
    G2, D2 = copy.deepcopy(G1), copy.deepcopy(D1)
    ns = lesson_namespace(G1, D1, G1.latent_dim)
    loader = tiny_loader(n=96)  # 3 batches of 32 an epoch
    config.seed_everything(seed)
    ours = ns["train"](G1, D1, ns["opt_g"], ns["opt_d"], loader, epochs, grids_dir=grids_dir)
    theirs = fit(G2, D2, loader, epochs, opt_g=ns["adam"](G2), opt_d=ns["adam"](D2), seed=0,
                 progress=False, options=FitOptions(step_fn=train_step))
    return ours, theirs, (G1, G2), ns["display"]


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])  # dropout in the MLP's D, BatchNorm in the DCGAN
def test_lesson_loop_gives_fits_losses(kind):
    ours, theirs, (G1, G2), _ = both_ways(kind)
    assert set(ours) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert len(ours["loss_d"]) == 6
    for key, values in ours.items():
        torch.testing.assert_close(torch.tensor(values), torch.tensor(theirs[key]), rtol=1e-6,
                                   atol=1e-7, msg=f"lesson 02's loop and fit disagree on {key}")
    for p1, p2 in zip(G1.parameters(), G2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-6, atol=1e-7)


def test_the_comparison_notices_a_difference():
    """Another seed gives other losses: the agreement above is not a tautology."""
    ours = both_ways("mlp")[0]
    other = both_ways("mlp", seed=1)[0]
    assert all(a != b for a, b in zip(ours["loss_d"], other["loss_d"]))


def test_lesson_loop_saves_and_shows_a_grid_every_epoch(tmp_path, capsys):
    ours, theirs, _, shown = both_ways("mlp", grids_dir=tmp_path / "grids")
    assert ours["loss_g"] == pytest.approx(theirs["loss_g"], rel=1e-6)  # grids change nothing
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["epoch_001.png",
                                                                      "epoch_002.png"]
    assert "epoch 2/2: loss_d" in capsys.readouterr().out
    assert len(shown.images) == 3  # the untrained generator's samples, then one grid an epoch
