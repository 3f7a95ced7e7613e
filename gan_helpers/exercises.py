"""The check of lesson 02's exercise 1, where the learner writes the training step from blanks.

`check_step(step)` runs the learner's `step(G, D, opt_g, opt_d, real, z) -> (loss_d, loss_g)` and
`reference_step`, the step of lesson 02's loop, each from the same small networks, optimizers,
batch and noise, and compares them in the order the step runs: D's loss, D's weights after its
update, G's loss, G's weights after its update (`PARTS`). The networks and optimizers have
already taken one step, as in the middle of training: Adam has a history and the previous step's
gradients are still there, so a forgotten `zero_grad()` shows. The result names the first part
that differs and, where it recognises a common mistake, which one. A step whose blanks (`...`)
are not filled in yet gets a sentence saying so, and an error in the step two lines, not a
traceback. It runs on the CPU in about a second and leaves the caller's random state as it was.
"""

from __future__ import annotations

import ast
import copy
import inspect
import linecache
import re
import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from . import checks, models
from .errors import UsageTypeError
from .training import adam

Step = Callable[..., Any]
"""A training step: `step(G, D, opt_g, opt_d, real, z)` returning `(loss_d, loss_g)`."""

PARTS = ("D loss", "D update", "G loss", "G update")
"""The parts of a step, in the order it runs them and the check compares them."""

SHOULD_BE = {
    "D loss": "bce(D(real), ones) + bce(D(fake.detach()), zeros): the real images labelled 1, "
              "the fakes 0, the two losses added.",
    "D update": "opt_d.zero_grad(), then loss_d.backward(), then opt_d.step(), once.",
    "G loss": "bce(D(fake), ones): the updated D on the same fakes (not detached), labelled 1, "
              "\"real\".",
    "G update": "opt_g.zero_grad(), then loss_g.backward(), then opt_g.step(); D stays as its "
                "own update left it (frozen here: only opt_g steps).",
}
"""What each part of the step should be, said when it differs."""

SEED = 0
BATCH = 16        # images the check uses: the first 16 of `real`
LATENT_DIM = 16   # small networks: the check is about the step, not the models
RTOL, ATOL = 1e-5, 1e-6


def reference_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
                   opt_d: torch.optim.Optimizer, real: torch.Tensor,
                   z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of lesson 02's loop: update D on `real` (label 1) and `G(z)` detached (label 0),
    then G, with the non-saturating loss, through the updated D. Returns `(loss_d, loss_g)`."""
    return _step(G, D, opt_g, opt_d, real, z)


def _step(G, D, opt_g, opt_d, real, z, forget_zero_grad: str = ""):
    """`reference_step`, or with `forget_zero_grad` "D" or "G" the same step without that
    network's `zero_grad()`: the check runs it to recognise that mistake."""
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
    fake = G(z)
    if forget_zero_grad != "D":
        opt_d.zero_grad()
    loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    loss_d.backward()
    opt_d.step()
    if forget_zero_grad != "G":
        opt_g.zero_grad()
    loss_g = bce(D(fake), ones)
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


@dataclass
class StepCheck:
    """What `check_step` found. `status` is "match", "differs", "unfilled" (blanks left where
    the check needs a value) or "error" (the step raised, or did not return two losses); `part`
    names the part (one of `PARTS`) that differs first, is blank, or (for the errors it
    recognises) holds the mistake, else None; `parts` says for each part compared "matches",
    "differs", "blank" or "not compared"; `blanks` lists the lines of the step's cell that still
    hold `...`. Printed, or shown as a cell's value, it is `message`."""

    status: str
    message: str
    part: str | None = None
    parts: dict[str, str] = field(default_factory=dict)
    blanks: list[int] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.status == "match"

    def __str__(self) -> str:
        return self.message

    __repr__ = __str__


@dataclass
class _Outcome:
    """What one step did: its losses (None for a blank), D's weights right after its first
    `opt_d.step()`, the final weights, how often each optimizer stepped, and any error."""

    returned: Any = None
    loss_d: float | None = None
    loss_g: float | None = None
    d_updated: list[torch.Tensor] = field(default_factory=list)
    d_final: list[torch.Tensor] = field(default_factory=list)
    g_final: list[torch.Tensor] = field(default_factory=list)
    d_steps: int = 0
    g_steps: int = 0
    error: BaseException | None = None
    bad_loss: str = ""


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _gap(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest difference between two lists of weights; 0 where all are within tolerance."""
    if all(torch.allclose(x, y, rtol=RTOL, atol=ATOL) for x, y in zip(a, b)):
        return 0.0
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= ATOL + RTOL * abs(b)


def _setup(real: torch.Tensor):
    """Small networks and Adam as lesson 02 builds them, one step into training (Adam's history,
    and the gradients that step left), and the noise for the step to check. D has no dropout, so
    the order in which a step calls D does not change the numbers."""
    torch.manual_seed(SEED)
    shape = tuple(real.shape[1:])
    G = models.MLPGenerator(latent_dim=LATENT_DIM, hidden=(32, 64), image_shape=shape)
    D = models.MLPDiscriminator(hidden=(64, 32), image_shape=shape, dropout=0.0)
    opt_g, opt_d = adam(G, lr=5e-4), adam(D, lr=5e-4)  # lesson 02's Adam
    _step(G, D, opt_g, opt_d, real.flip(0), torch.randn(len(real), LATENT_DIM))
    return G, D, opt_g, opt_d, torch.randn(len(real), LATENT_DIM)


def _loss_value(name: str, value: Any, out: _Outcome) -> float | None:
    """A returned loss as a float; None for a blank (`...` or None) or a value that is no loss
    (then `out.bad_loss` says why)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value is not ... and value is not None:
        out.bad_loss = out.bad_loss or (f"{name} must be a loss, a one-number tensor, not "
                                        f"{type(value).__name__}.")
    return None


def _run(step: Step, real: torch.Tensor, **options: Any) -> _Outcome:
    """Run `step` (with `options`) from `_setup`, watching the optimizers; never raises."""
    out = _Outcome()
    G, D, opt_g, opt_d, z = _setup(real)

    def d_stepped(*_: Any) -> None:
        out.d_steps += 1
        if out.d_steps == 1:
            out.d_updated = _weights(D)

    def g_stepped(*_: Any) -> None:
        out.g_steps += 1

    opt_d.register_step_post_hook(d_stepped)
    opt_g.register_step_post_hook(g_stepped)
    torch.manual_seed(SEED + 1)  # the same numbers for a step that draws its own
    try:
        out.returned = step(G, D, opt_g, opt_d, real.clone(), z.clone(), **options)
    except Exception as err:  # the learner's code: any error becomes two lines
        out.error = err
    if isinstance(out.returned, (tuple, list)) and len(out.returned) == 2:
        out.loss_d = _loss_value("loss_d", out.returned[0], out)
        out.loss_g = _loss_value("loss_g", out.returned[1], out)
    out.d_final, out.g_final = _weights(D), _weights(G)
    out.d_updated = out.d_updated or out.d_final
    return out


def blank_lines(step: Step) -> list[int]:
    """The lines of `step`'s cell (or file) that still hold a blank, `...`; [] where its source
    cannot be read."""
    try:
        lines, start = inspect.getsourcelines(step)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return []
    return sorted({node.lineno + max(start, 1) - 1 for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and node.value is ...})


def _where(lines: list[int]) -> str:
    """"line 8 of its cell", "lines 8, 9 and 10 of its cell"."""
    many = len(lines) > 1
    said = ", ".join(map(str, lines[:-1])) + (" and " if many else "") + str(lines[-1])
    return f"line{'s' if many else ''} {said} of its cell"


def _blanks_note(blanks: list[int]) -> str:
    """" (3 blanks still hold `...`: lines 8, 9 and 10 of its cell.)", or "" for none."""
    if not blanks:
        return ""
    many = len(blanks) > 1
    return (f" ({len(blanks)} blank{'s' if many else ''} still hold{'' if many else 's'} `...`: "
            f"{_where(blanks)}.)")


def _failing_line(step: Step, err: BaseException) -> str:
    """The line of `step` where `err` was raised (the last one of `step`'s on the way)."""
    found = ""
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        if frame.f_code is getattr(step, "__code__", None):
            found = linecache.getline(frame.f_code.co_filename, lineno).strip()
    return found


def _error_check(step: Step, you: _Outcome, blanks: list[int]) -> StepCheck:
    """Two lines on the error `step` raised: what and where, then what to do."""
    err = you.error
    said = str(err)
    first = re.split(r"\. |: \[", (said.strip().splitlines() or [""])[0])[0].rstrip(".!")
    text = f"Your step failed with {type(err).__name__}: {first[:160]}."
    where = _failing_line(step, err)
    text += f"\n  in: {where}" if where else ""
    part = None
    if "backward through the graph a second time" in said:
        part = "D loss"
        hint = ("D's loss reached back into G, so G's graph was used up before G's update. In "
                "D's part, give D the fakes detached: D(fake.detach()).")
    elif "modified by an inplace operation" in said:
        part = "G loss"
        hint = ("A loss was computed with weights that an optimizer's step() changed before its "
                "backward(): compute G's loss after opt_d.step(), with the updated D.")
    elif re.search(r"(same|expected) device", said):
        hint = ("The check runs on the CPU: make the labels on the device of the images, "
                "device=real.device, not DEVICE.")
    elif "ellipsis" in said:
        hint = "That line still holds a blank, `...`: replace it with the code its comment says."
    else:
        hint = (f"It happened in {'G' if you.d_steps else 'D'}'s part of the step: fix it, run "
                "that cell, then this one again.")
    return StepCheck("error", f"{text}\n{hint}{_blanks_note(blanks)}", part, blanks=blanks)


def _first_match(you: float, known: dict[str, torch.Tensor], whose: str) -> str:
    for name, value in known.items():
        if _close(you, value.item()):
            return f"Yours is {whose} loss with {name}."
    return ""


def _why(part: str, you: _Outcome, ref: _Outcome, real: torch.Tensor) -> str:
    """Why `part` differs, where a common mistake explains it; "" where none does."""
    G0, D0, _, _, z = _setup(real)
    with torch.no_grad():
        fake = G0(z)
        logits_real, logits_fake = D0(real), D0(fake)
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
    if part == "D loss":
        real_1, fake_0 = bce(logits_real, ones), bce(logits_fake, zeros)
        return _first_match(you.loss_d, {
            "the labels swapped (real -> 0, fake -> 1)":
                bce(logits_real, zeros) + bce(logits_fake, ones),
            "only the real images' half": real_1,
            "only the fakes' half": fake_0,
            "the mean of the two halves instead of their sum": (real_1 + fake_0) / 2}, "D's")
    if part == "G loss":
        D1 = copy.deepcopy(D0)
        with torch.no_grad():
            for p, w in zip(D1.parameters(), ref.d_updated):
                p.copy_(w)
            logits = D1(fake)
        return _first_match(you.loss_g, {
            "the label 0, \"fake\"; G wants D to call its fakes real, label 1": bce(logits, zeros),
            "the saturating loss -bce(D(fake), zeros) of lesson 00; lesson 02 uses the "
            "non-saturating bce(D(fake), ones)": -bce(logits, zeros),
            "D as it was before its update: compute G's loss after opt_d.step()":
                bce(logits_fake, ones)}, "G's")
    net, opt, weights, steps = (("D", "opt_d", you.d_updated, you.d_steps) if part == "D update"
                                else ("G", "opt_g", you.g_final, you.g_steps))
    if part == "G update" and (you.d_steps > 1 or _gap(you.d_final, ref.d_updated) > 0):
        ran = f"opt_d.step() ran {you.d_steps} times: " if you.d_steps > 1 else ""
        return (f"{ran}D changed again after its own update. In G's part only opt_g.step() "
                "belongs: loss_g.backward() also fills D's gradients, but D must not move.")
    if steps == 0:
        return f"{net}'s weights did not change: {opt}.step() was never called."
    if _gap(weights, _weights(D0 if net == "D" else G0)) == 0:
        detach = (", and give D the fakes as they are, D(fake), not D(fake.detach()), so that "
                  "loss_g reaches G" if net == "G" else "")
        return (f"{net}'s weights did not change: {opt}.step() found no gradients. Call "
                f"loss_{net.lower()}.backward() before it{detach}.")
    forgot = _run(_step, real, forget_zero_grad=net)
    if _gap(weights, forgot.d_updated if net == "D" else forgot.g_final) == 0:
        return (f"{net} was updated with the previous step's gradients added to this one's: call "
                f"{opt}.zero_grad() before loss_{net.lower()}.backward().")
    return ""


def _loss_row(name: str, you: float | None, ref: float | None) -> tuple[str, str]:
    if you is None:
        return "blank", "not filled in yet"
    if _close(you, ref):
        return "matches", f"{name} {you:.4f}, as the reference's"
    return "differs", f"{name} {you:.4f}, the reference's {ref:.4f}"


def _weights_row(name: str, you: list[torch.Tensor], ref: list[torch.Tensor]) -> tuple[str, str]:
    gap = _gap(you, ref)
    if gap == 0:
        return "matches", f"{name}'s weights after the step agree"
    return "differs", f"{name}'s weights after the step differ (by up to {gap:.2g})"


def check_step(step: Step, real: torch.Tensor | None = None) -> StepCheck:
    """Compare `step(G, D, opt_g, opt_d, real, z) -> (loss_d, loss_g)` with `reference_step`, on
    the first 16 images of `real` (default: fixed random images in [-1, 1]), from the same small
    networks, optimizers and noise; see the module's docstring. Returns a `StepCheck`."""
    if not callable(step):
        raise UsageTypeError(f"step must be a function step(G, D, opt_g, opt_d, real, z), got "
                             f"{type(step).__name__}.")
    with torch.random.fork_rng(devices=[]):  # the caller's random numbers stay as they were
        if real is None:
            torch.manual_seed(SEED)
            real = torch.rand(BATCH, 1, 28, 28) * 2 - 1
        real = checks.images("real", real, channels=None)[:BATCH].detach().float().cpu()
        return _compare(step, _run(step, real), _run(_step, real), real, blank_lines(step))


def _compare(step: Step, you: _Outcome, ref: _Outcome, real: torch.Tensor,
             blanks: list[int]) -> StepCheck:
    name = getattr(step, "__name__", "your step")
    if you.error is not None:
        return _error_check(step, you, blanks)
    pair = isinstance(you.returned, (tuple, list)) and len(you.returned) == 2
    blank = you.returned is None or you.returned is ...
    if you.bad_loss or not (pair or blank and blanks):
        got = "None" if you.returned is None else type(you.returned).__name__
        said = you.bad_loss or (f"{name} must return (loss_d, loss_g), the two losses; it "
                                f"returned {got}.")
        return StepCheck("error", said + _blanks_note(blanks), blanks=blanks)
    if you.loss_d is None:
        where = (f"{len(blanks)} blank{'s' if len(blanks) > 1 else ''}, `...`, on "
                 f"{_where(blanks)}" if blanks else "blanks: its loss_d is not filled in")
        return StepCheck("unfilled", f"Not filled in yet: {name} still has {where}. Replace "
                         "each blank with the code its comment describes, run that cell, then "
                         "this one again.", "D loss", blanks=blanks)
    d_moved = _gap(you.d_final, ref.d_updated) > 0
    rows = {
        "D loss": _loss_row("loss_d", you.loss_d, ref.loss_d),
        "D update": _weights_row("D", you.d_updated, ref.d_updated),
        "G loss": _loss_row("loss_g", you.loss_g, ref.loss_g),
        "G update": (("differs", "D's weights changed during G's update") if d_moved
                     else _weights_row("G", you.g_final, ref.g_final)),
    }
    parts: dict[str, str] = {}
    first = None
    lines = [f"Your step against lesson 02's, on {len(real)} images, from the same weights and "
             "noise:"]
    for part, (state, said) in rows.items():
        if first is None:
            parts[part] = state
            first = None if state == "matches" else part
            mark = {"matches": "✓", "differs": "✗", "blank": "…"}[state]
            lines.append(f"  {mark} {part:<9} {said}")
        else:
            parts[part] = "not compared"
            lines.append(f"  · {part:<9} not compared (it depends on the {first})")
    if first is None:
        lines.append("It matches the reference: D's loss, D's update, G's loss and G's update "
                     "all agree." + _blanks_note(blanks))
        return StepCheck("match", "\n".join(lines), None, parts, blanks)
    if parts[first] == "blank":
        lines.append("D's part matches; G's part is not filled in yet." + _blanks_note(blanks))
        return StepCheck("unfilled", "\n".join(lines), first, parts, blanks)
    lines.append(f"{first} differs. {_why(first, you, ref, real)}".rstrip())
    lines.append(f"What it should be: {SHOULD_BE[first]}{_blanks_note(blanks)}")
    return StepCheck("differs", "\n".join(lines), first, parts, blanks)
