"""Lesson 09 writes the flow-matching loop out, then says `fit_flow` runs the same step. This
test runs the lesson's loop cell, taken from the notebook, against `fit_flow`: the same starting
weights and seed give the same losses and weights, step for step."""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path

import torch

from gan_helpers import flow
from gan_helpers.training import fit_flow
from tests.helpers import tiny_loader
from tools.notebooks import source

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "09_gans_and_flow_matching.ipynb"


def loop_cell() -> str:
    cells = json.loads(LESSON.read_text())["cells"]
    found = [source(c) for c in cells if c["cell_type"] == "code"
             and "flow.flow_matching_loss(velocity, real, noise, t)" in source(c)]
    assert len(found) == 1, "lesson 09 should write its training loop out in one cell"
    return found[0]


def test_the_lessons_loop_is_fit_flows_step():
    torch.manual_seed(3)
    G = flow.FlowGenerator(width=8)
    start = copy.deepcopy(G.velocity)
    loader = tiny_loader(n=96)  # 3 batches of 32: the loop ends with the loader
    shim = types.SimpleNamespace(VelocityNet=lambda width: copy.deepcopy(start),
                                 FLOW_WIDTH=8, FLOW_LR=flow.FLOW_LR,
                                 flow_matching_loss=flow.flow_matching_loss)
    ns = {"torch": torch, "flow": shim, "loader": loader, "DEVICE": torch.device("cpu")}
    exec(loop_cell(), ns)

    history = fit_flow(G, loader, epochs=1, seed=0, progress=False)
    assert ns["losses"] == history["loss_g"] and len(ns["losses"]) == 3
    for (name, a), b in zip(ns["velocity"].state_dict().items(),
                            G.velocity.state_dict().values()):
        assert torch.equal(a, b), name
