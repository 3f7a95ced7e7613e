"""Lesson 02's exercise 1: the learner writes the training step from blanks, and
`exercises.check_step` says whether it matches the lesson's step, or which part differs. These
tests run the lesson's own exercise and solution cells, and the solution with one mistake each.
Also: the diagram of the game (`viz.plot_gan_game`) draws, saves, and its labels do not overlap.
"""

from __future__ import annotations

import itertools
import json
import linecache
import time
from pathlib import Path

import matplotlib
import pytest
import torch
from torch import nn

from gan_helpers import exercises, viz
from gan_helpers.errors import UsageTypeError
from tools.notebooks import definitions, source

matplotlib.use("Agg")

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "02_mlp_gan.ipynb"


def cell(start: str) -> str:
    """The lesson's one code cell that starts with `start`."""
    cells = [source(c) for c in json.loads(LESSON.read_text())["cells"]
             if c["cell_type"] == "code" and source(c).startswith(start)]
    assert len(cells) == 1, f"02_mlp_gan.ipynb should have one cell starting {start!r}"
    return cells[0]


EXERCISE = cell("# Exercise 1")
SOLUTION = cell("# @title Solution 1")


def define(code: str, name: str = "my_step"):
    """Run `code` as the lesson runs a cell (with `torch` and the lesson's `bce`) and return the
    function `name` it defines; its source stays readable, as a notebook cell's is."""
    filename = f"<cell {abs(hash(code))}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace = {"torch": torch, "bce": nn.BCEWithLogitsLoss()}
    exec(compile(code, filename, "exec"), namespace)
    return namespace[name]


def solution_with(old: str, new: str):
    """The lesson's solution with one change: `old` (which must be there once) becomes `new`."""
    code = definitions(SOLUTION)["my_step"]
    assert code.count(old) == 1, f"the solution should hold {old!r} once"
    return define(code.replace(old, new))


def test_the_solution_matches():
    result = exercises.check_step(define(SOLUTION.split("\n\n\n")[0]))
    assert result.matches and result.part is None, result.message
    assert result.parts == dict.fromkeys(exercises.PARTS, "matches")
    assert "It matches the reference" in str(result) and result.blanks == []


def test_the_solution_cell_ends_with_the_check():
    assert SOLUTION.rstrip().endswith("exercises.check_step(my_step, real)")
    assert cell("exercises.check_step(my_step, real)")  # the learner's check cell


def test_the_blanks_say_they_are_not_filled_in():
    result = exercises.check_step(define(EXERCISE))
    assert result.status == "unfilled" and not result.matches
    assert result.message.startswith("Not filled in yet: my_step still has 10 blanks")
    assert "Traceback" not in result.message
    assert result.blanks == [n for n, line in enumerate(EXERCISE.splitlines(), 1)
                             if line.lstrip().startswith(("...", "loss_d = ...", "loss_g = ..."))]


def test_a_filled_discriminator_part_is_checked_before_the_generators():
    code = EXERCISE
    for comment, line in [
            ("ones, zeros: the labels",
             "ones, zeros = torch.ones(len(real)), torch.zeros(len(real))"),
            ("the fakes: what G makes", "fake = G(z)"),
            ("clear D's gradients", "opt_d.zero_grad()"),
            ("bce of D's logits for the real",
             "loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)"),
            ("backpropagate loss_d", "loss_d.backward()"),
            ("update D's weights", "opt_d.step()")]:
        blank = next(line for line in code.splitlines() if comment in line)
        code = code.replace(blank, "    " + line)
    result = exercises.check_step(define(code))
    assert result.status == "unfilled" and result.part == "G loss"
    assert result.parts["D loss"] == result.parts["D update"] == "matches"
    assert "G's part is not filled in yet" in result.message and len(result.blanks) == 4


MISTAKES = {  # name: (what the solution holds, what the mistake writes, the part, a phrase said)
    "forgot detach for D": ("D(fake.detach())", "D(fake)", "D loss", "D(fake.detach())"),
    "labels swapped for D": ("bce(D(real), ones) + bce(D(fake.detach()), zeros)",
                             "bce(D(real), zeros) + bce(D(fake.detach()), ones)", "D loss",
                             "labels swapped"),
    "mean instead of sum": ("bce(D(real), ones) + bce(D(fake.detach()), zeros)",
                            "(bce(D(real), ones) + bce(D(fake.detach()), zeros)) / 2", "D loss",
                            "mean of the two halves"),
    "only real images for D": ("bce(D(real), ones) + bce(D(fake.detach()), zeros)",
                               "bce(D(real), ones)", "D loss", "only the real images"),
    "no D step": ("    opt_d.step()\n", "", "D update", "opt_d.step() was never called"),
    "no D zero_grad": ("    opt_d.zero_grad()\n", "", "D update", "call opt_d.zero_grad()"),
    "no D backward": ("    loss_d.backward()\n", "", "D update", "found no gradients"),
    "fake labels for G": ("bce(D(fake), ones)", "bce(D(fake), zeros)", "G loss", "label 0"),
    "saturating G loss": ("bce(D(fake), ones)", "-bce(D(fake), zeros)", "G loss", "saturating"),
    "G's loss before D's step": (
        "    opt_d.step()\n    # 2. The generator: make the updated D call the same fakes real.\n"
        "    opt_g.zero_grad()\n    loss_g = bce(D(fake), ones)\n",
        "    opt_g.zero_grad()\n    loss_g = bce(D(fake), ones)\n    opt_d.step()\n",
        "G loss", "compute G's loss after opt_d.step()"),
    "detached fakes for G": ("bce(D(fake), ones)", "bce(D(fake.detach()), ones)", "G update",
                             "not D(fake.detach())"),
    "no G step": ("    opt_g.step()\n", "", "G update", "opt_g.step() was never called"),
    "no G zero_grad": ("    opt_g.zero_grad()\n", "", "G update", "call opt_g.zero_grad()"),
    "D stepped for G": ("    opt_g.step()\n", "    opt_d.step()\n", "G update",
                        "opt_d.step() ran 2 times"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_is_named_by_its_part(mistake):
    old, new, part, phrase = MISTAKES[mistake]
    result = exercises.check_step(solution_with(old, new))
    assert not result.matches and result.part == part, result.message
    assert phrase in result.message, result.message
    assert "Traceback" not in result.message
    if result.status == "differs":
        assert result.parts[part] == "differs"
        before = exercises.PARTS[:exercises.PARTS.index(part)]
        assert all(result.parts[p] == "matches" for p in before)
        assert f"{part} differs" in result.message and "What it should be:" in result.message


def test_an_error_in_the_step_is_two_lines_naming_the_line():
    result = exercises.check_step(solution_with("loss_d = bce(", "loss_d = bec("))
    assert result.status == "error" and result.part is None
    assert "NameError: name 'bec' is not defined" in result.message
    assert "in: loss_d = bec(D(real)" in result.message and "D's part" in result.message

    half_filled = define(EXERCISE.replace("loss_d = ...", "loss_d = bce(D(real), ...)"))
    result = exercises.check_step(half_filled)
    assert result.status == "error" and "still holds a blank" in result.message

    on_another_device = solution_with("device=real.device), torch.zeros",
                                      "device='meta'), torch.zeros")
    result = exercises.check_step(on_another_device)
    assert result.status == "error" and "device=real.device" in result.message, result.message


def test_a_step_must_return_both_losses():
    result = exercises.check_step(solution_with("    return loss_d, loss_g", "    pass"))
    assert result.status == "error" and "must return (loss_d, loss_g)" in result.message
    result = exercises.check_step(solution_with("return loss_d, loss_g", "return loss_d, 'x'"))
    assert result.status == "error" and "loss_g must be a loss" in result.message
    with pytest.raises(UsageTypeError, match="step must be a function"):
        exercises.check_step("my_step")


def test_the_reference_is_one_step_of_the_lessons_loop():
    """`reference_step` against the lesson's own `train`, one batch, from the same weights."""
    namespace = {"torch": torch, "bce": nn.BCEWithLogitsLoss(), "DEVICE": torch.device("cpu"),
                 "LATENT_DIM": 16}
    exec(definitions(cell("def adam("))["adam"], namespace)
    exec(definitions(cell("def train("))["train"], namespace)
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        G, D = exercises.models.MLPGenerator(latent_dim=16, hidden=(32, 64)), \
            exercises.models.MLPDiscriminator(hidden=(64, 32))
        nets.append((G, D, namespace["adam"](G), namespace["adam"](D)))
    torch.manual_seed(1)
    history = namespace["train"](*nets[0][:2], nets[0][2], nets[0][3], [(real, None)], epochs=1)
    torch.manual_seed(1)
    z = torch.randn(8, 16)  # what the loop draws first; D's dropout then draws the same
    loss_d, loss_g = exercises.reference_step(*nets[1][:2], nets[1][2], nets[1][3], real, z)
    assert history["loss_d"] == pytest.approx([loss_d.item()], rel=1e-6)
    assert history["loss_g"] == pytest.approx([loss_g.item()], rel=1e-6)
    for ours, theirs in zip(nets[0][:2], nets[1][:2]):
        for p, q in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q)


def test_the_check_is_quick_and_leaves_the_random_state_alone():
    step, images = define(SOLUTION.split("\n\n\n")[0]), torch.rand(64, 1, 28, 28)
    state, start = torch.get_rng_state(), time.perf_counter()
    result = exercises.check_step(step, images)
    assert time.perf_counter() - start < 30  # about a second on a 2-core CPU
    assert torch.equal(torch.get_rng_state(), state) and result.matches


def test_the_diagram_draws_and_saves(tmp_path):
    fig = viz.plot_gan_game()
    assert isinstance(fig, matplotlib.figure.Figure)
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    said = " ".join(t.get_text() for t in texts)
    for label in ("G\ngenerator", "D\ndiscriminator", "D's loss", "G's loss", "updates D only",
                  "updates G only", "fake images", "real images"):
        assert label in said
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for (a, ta), (b, tb) in itertools.combinations(zip(boxes, texts), 2):
        assert not a.overlaps(b), f"{ta.get_text()!r} overlaps {tb.get_text()!r}"
    path = viz.save_figure(fig, tmp_path / "game.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
