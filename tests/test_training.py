"""The adversarial step, the fit loop, checkpoints and exact resume, and the moving average of
the generator's weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.baseline import ClassicBCE, classic_step
from gan_helpers import training
from gan_helpers.callbacks import AverageGenerator, Callback, ema_decay
from gan_helpers.checkpoints import (
    CheckpointError,
    RunMismatchError,
    load_checkpoint,
)
from gan_helpers.errors import NonFiniteLossError, UsageError
from gan_helpers.models import generate
from gan_helpers.objectives import BCEObjective, WGANGPObjective
from gan_helpers.run_folder import RunFiles
from gan_helpers.stats import STATS
from gan_helpers.training import FitOptions, SpeedOptions, fit, lr_factor, train_step
from tests.helpers import StopAt, small_gan, tiny_loader


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_one_step_updates_d_with_d_loss_and_g_with_g_loss(kind):
    G, D = small_gan(kind)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    real, _ = next(iter(tiny_loader()))
    z = torch.randn(32, 16)

    # D's update alone: a G optimizer that never steps shows G is untouched by the D loss.
    g0, d0 = params(G), params(D)
    frozen_g = torch.optim.SGD(G.parameters(), lr=0.0)
    train_step(G, D, frozen_g, opt_d, real, z, BCEObjective())
    assert changed(g0, G) == set()
    assert changed(d0, D) == set(d0)

    # G's update alone: likewise, D stays as it was.
    g0, d0 = params(G), params(D)
    frozen_d = torch.optim.SGD(D.parameters(), lr=0.0)
    train_step(G, D, opt_g, frozen_d, real, z, BCEObjective())
    assert changed(d0, D) == set()
    assert changed(g0, G) == set(g0)
    assert all(p.requires_grad for p in D.parameters())  # unfrozen after the G pass


def test_discriminator_learns_to_tell_a_fixed_batch_from_fakes():
    G, D = small_gan("mlp")
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real, _ = next(iter(tiny_loader(batch_size=64)))

    def accuracy() -> float:
        D.eval()
        with torch.no_grad():
            fake = G(torch.randn(256, 16))
            acc = ((D(real) > 0).float().mean() + (D(fake) < 0).float().mean()) / 2
        D.train()
        return acc.item()

    before = accuracy()
    for _ in range(300):
        stats = train_step(G, D, opt_g, opt_d, real, torch.randn(64, 16), BCEObjective())
    assert before < 0.75
    assert accuracy() > 0.9
    assert stats[2] > stats[3]  # D(x) above D(G(z))


def test_bce_with_logits_is_exact_where_sigmoid_then_bce_clamps():
    """The lessons' loss (BCE on logits) against the classic one (BCELoss on sigmoid outputs):
    equal for moderate logits; far out, sigmoid rounds to exactly 0 or 1, BCELoss clamps its log
    at -100, and the classic loss is stuck at 100 with no gradient, while BCE on logits gives
    the exact value, -log sigmoid(-200) = 200, and a gradient of full size."""
    stable, classic = BCEObjective(), ClassicBCE()
    moderate = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(stable.g_loss(moderate), classic.g_loss(torch.sigmoid(moderate)),
                          rtol=1e-6)
    assert torch.allclose(stable.d_loss(moderate, -moderate),
                          classic.d_loss(torch.sigmoid(moderate), torch.sigmoid(-moderate)),
                          rtol=1e-6)

    far = torch.tensor([-200.0, -200.0], requires_grad=True)  # D is sure the fakes are fake
    assert torch.sigmoid(far).tolist() == [0.0, 0.0]  # rounded to 0: log(0) = -inf
    loss = stable.g_loss(far)
    assert loss.item() == 200.0  # exact: softplus(200)
    (grad,) = torch.autograd.grad(loss, far)
    assert grad.tolist() == [-0.5, -0.5]  # d/dx of mean(softplus(-x)) = -sigmoid(-x) / 2
    clamped = classic.g_loss(torch.sigmoid(far))
    assert clamped.item() == 100.0  # log clamped at -100
    (grad,) = torch.autograd.grad(clamped, far)
    assert grad.abs().max().item() == 0.0  # and no gradient reaches G at all

    # D's loss with both verdicts wrong by 200: each term exact, against 100 + 100 clamped.
    real, fake = torch.tensor([-200.0]), torch.tensor([200.0])
    assert stable.d_loss(real, fake).item() == 400.0
    assert classic.d_loss(torch.sigmoid(real), torch.sigmoid(fake)).item() == 200.0


def test_fit_writes_grids_checkpoint_and_history(tmp_path):
    G, D = small_gan("dcgan")
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False)
    assert history.stop_reason == "finished"
    assert {k: len(history[k]) for k in STATS} == dict.fromkeys(STATS, 16)
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["epoch_001.png",
                                                                     "epoch_002.png"]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 16 and len(ckpt["history"]["loss_g"]) == 16
    assert history.samples.shape == (64, 1, 28, 28)


def test_linear_schedule_decays_to_zero(tmp_path):
    G, D = small_gan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    fit(G, D, tiny_loader(), epochs=1, opt_g=opt_g, options=FitOptions(lr_schedule="linear"),
        progress=False)
    assert opt_g.param_groups[0]["lr"] == 0.0


def test_lr_factor_gives_each_schedule_over_the_run():
    assert [lr_factor("linear", p) for p in (0.0, 0.25, 1.0, 1.5)] == [1.0, 0.75, 0.0, 0.0]
    assert [lr_factor("late-linear", p) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    assert lr_factor(None, 0.9) == 1.0
    with pytest.raises(UsageError, match="Unknown lr_schedule 'cosine'.*'late-linear'"):
        lr_factor("cosine", 0.5)


def test_late_linear_schedule_holds_the_first_half_then_decays_to_zero():
    record = RecordLR()
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=2, options=FitOptions(lr_schedule="late-linear"),
        progress=False, callbacks=[record])
    lrs = [g for g, _ in record.lrs]
    assert lrs[:8] == [2e-4] * 8  # steps 1 to 8 of 16: the first half, untouched
    assert lrs[8:] == pytest.approx([2e-4 * 2 * (16 - s) / 16 for s in range(9, 17)])
    assert lrs[-1] == 0.0


def test_an_unknown_schedule_is_refused_before_training():
    G, D = small_gan()
    with pytest.raises(UsageError, match="Unknown lr_schedule 'cosine'"):
        fit(G, D, tiny_loader(), options=FitOptions(lr_schedule="cosine"), progress=False)


def run_pieces(kind, tmp_path, stops, **kwargs):
    """Train 3 epochs of 8 steps, stopping (and resuming in new objects) after each of `stops`;
    `kwargs` go to every `fit`."""
    run = tmp_path / f"{kind}-{'-'.join(map(str, stops)) or 'straight'}"
    for i, stop in enumerate([*stops, None]):
        G, D = small_gan(kind, seed=100 + i)  # fresh weights: the checkpoint must restore them
        history = fit(G, D, tiny_loader(), epochs=3, run_dir=run, max_steps=stop, resume=i > 0,
                      progress=False, **kwargs)
    return G, D, history, load_checkpoint(run / "checkpoint.pt")


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_resume_continues_bitwise_exactly(kind, tmp_path):
    G1, D1, h1, c1 = run_pieces(kind, tmp_path, [])
    G2, D2, h2, c2 = run_pieces(kind, tmp_path, [5, 13])  # mid-epoch and mid-epoch again
    for a, b in ((G1, G2), (D1, D2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert dict(h1) == dict(h2)
    assert c1["step"] == c2["step"] == 24
    for k, v in c1["opt_d"]["state"].items():
        assert torch.equal(v["exp_avg"], c2["opt_d"]["state"][k]["exp_avg"])


@pytest.mark.parametrize("how", ["button", "sigint", "keyboardinterrupt"])
def test_stopping_returns_history_and_leaves_a_resumable_checkpoint(how, tmp_path):
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, progress=False,
                  callbacks=[StopAt(6, how)])
    assert len(history["loss_d"]) == 6
    assert ("Stop button" if how == "button" else "interrupted") in history.stop_reason
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    G, D = small_gan(seed=5)
    resumed = fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, resume=True, progress=False)
    assert len(resumed["loss_d"]) == 24


def test_exception_in_a_step_is_raised_and_no_half_step_is_saved(tmp_path):
    """An exception inside step 4, before any epoch ended: raised again; no checkpoint (none
    was of a whole step), and history.json says so, with the 3 steps done."""
    calls = []

    def flaky_step(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("CUDA out of memory (simulated)")
        return train_step(*args)

    G, D = small_gan()
    with pytest.raises(RuntimeError, match="simulated"):
        fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path,
            options=FitOptions(step_fn=flaky_step), progress=False)
    files = RunFiles(tmp_path)
    assert not files.checkpoint.exists()
    saved = json.loads(files.history.read_text())
    assert len(saved["loss_d"]) == 3
    assert saved["stop_reason"] == ("error: RuntimeError: CUDA out of memory (simulated) "
                                    "(no checkpoint was written)")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint(tmp_path):
    def poisoned_step(G, D, opt_g, opt_d, real, z, objective):
        stats = train_step(G, D, opt_g, opt_d, real, z, objective)
        poisoned_step.n += 1
        return stats if poisoned_step.n < 11 else stats * float("nan")  # from step 11 on
    poisoned_step.n = 0

    G, D = small_gan()
    with pytest.raises(NonFiniteLossError, match=r"discriminator's loss became nan at step 11 "):
        fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path,
            options=FitOptions(step_fn=poisoned_step),
            progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 8  # the end of epoch 1, not the poisoned state
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values())


def test_truncated_checkpoint_gets_a_clear_error(tmp_path):
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt cannot be used: it is truncated"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_of_another_architecture_gets_a_clear_error(tmp_path):
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    G, D = small_gan("dcgan")
    with pytest.raises(RunMismatchError, match="holds another run .* G was MLPGenerator"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_optimised_step_matches_the_classic_step(kind):
    """One fake batch, D frozen for G's pass, set_to_none: same losses and weights as the
    classic step that runs G twice (on logits, as benchmarks/bench_speed.py times it)."""

    results = []
    for step in (train_step, classic_step):
        G, D = small_gan(kind)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
        torch.manual_seed(7)
        losses = [step(G, D, opt_g, opt_d, real, torch.randn(32, 16), BCEObjective())
                  for real, _ in tiny_loader().batches(0)]
        results.append((torch.stack(losses), G.state_dict(), D.state_dict()))
    (la, ga, da), (lb, gb, db) = results
    assert lb.shape == (8, 4)  # the classic step reports no gradient norms
    assert torch.allclose(la[:, :4], lb, atol=1e-6)
    for a, b in ((ga, gb), (da, db)):
        for name in a:
            if "running" not in name and "num_batches" not in name:  # G ran twice: BN stats
                assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_speed_options_keep_training_correct():

    runs = []
    for speed in (SpeedOptions(), SpeedOptions(channels_last=True)):
        G, D = small_gan("dcgan")
        history = fit(G, D, tiny_loader(), epochs=1, progress=False,
                      options=FitOptions(speed=speed))
        runs.append((history, G.state_dict()))
    (h1, g1), (h2, g2) = runs
    assert torch.allclose(torch.tensor(h1["loss_d"]), torch.tensor(h2["loss_d"]), atol=1e-4)
    for name in g1:
        assert torch.allclose(g1[name].float(), g2[name].float(), atol=1e-4), name
    with pytest.raises(ValueError, match="bf16"):
        SpeedOptions(amp="fp8")


def test_amp_auto_uses_bf16_only_where_it_is_native(monkeypatch):
    for native in (False, True):
        monkeypatch.setattr(training, "native_bf16", lambda device, native=native: native)
        with SpeedOptions(amp="auto").autocast(torch.device("cpu")):
            assert torch.is_autocast_enabled("cpu") == native
            if native:
                assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with SpeedOptions(amp="bf16").autocast(torch.device("cpu")):  # asked for: always
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads Linux's /proc/cpuinfo")
def test_native_bf16_agrees_with_the_cpu_flags():
    uncached = training.native_bf16.__wrapped__
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert uncached("cpu") == bool(flags & {"avx512_bf16", "amx_tile"})
    assert uncached("meta") is False


def test_a_failing_callback_at_the_end_does_not_cost_the_checkpoint(tmp_path):
    class Broken(Callback):
        def on_fit_end(self, state):
            raise OSError("disk full (simulated)")

    G, D = small_gan()
    with pytest.raises(OSError, match="simulated"):
        fit(G, D, tiny_loader(), epochs=1, max_steps=3, run_dir=tmp_path, progress=False,
            callbacks=[Broken()])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


# ----------------------------------------------------------------------------- paths of fit that
# the tests above do not take: deferred read-back, bf16, a plain DataLoader, the LR schedule and
# the evaluation callback across a resume


def poisoned_at(k: int):
    """A step function that returns NaN losses at step `k` (counting from 1, as `fit` does) and
    counts its calls."""
    def step(*args, **kwargs):
        step.calls += 1
        stats = train_step(*args, **kwargs)
        return stats * float("nan") if step.calls == k else stats
    step.calls = 0
    return step


def test_nan_with_deferred_read_back_names_the_step_it_happened_at(tmp_path):
    """sync_every=4: losses come back from the device every 4 steps, yet the error names the step
    of the NaN (11), not the step of the read-back (12) or the first of the window (9)."""
    step = poisoned_at(11)
    G, D = small_gan()
    with pytest.raises(NonFiniteLossError, match=r"discriminator's loss became nan at step 11 "
                                                 r"\(epoch 2\)"):
        fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, options=FitOptions(step_fn=step,
            sync_every=4),
            progress=False)
    assert step.calls == 12  # it was noticed at the read-back after step 12, not before
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 8  # the end of epoch 1, not the poisoned state
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values())


def test_resume_with_deferred_read_back_is_exact(tmp_path):
    """Stops at steps that are not multiples of sync_every: the pending losses are read back
    and saved, and the resumed run ends as one uninterrupted run does."""
    def run(stops):
        folder = tmp_path / ("straight" if not stops else "pieces")
        for i, stop in enumerate([*stops, None]):
            G, D = small_gan(seed=100 + i)
            history = fit(G, D, tiny_loader(), epochs=3, run_dir=folder, max_steps=stop,
                          resume=i > 0, options=FitOptions(sync_every=4), progress=False)
        return G, D, history

    G1, D1, h1 = run([])
    G2, D2, h2 = run([5, 14])
    for a, b in ((G1, G2), (D1, D2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert {k: h2[k] for k in STATS} == {k: h1[k] for k in STATS}
    assert len(h2["loss_d"]) == 24


def test_bf16_autocast_on_the_cpu_runs_the_forward_passes_in_bf16():
    G, D = small_gan()
    seen = set()
    # in training mode only: fit's check of the networks (checks.gan_networks) runs them once
    # in eval mode, outside autocast, before training
    D.register_forward_hook(lambda module, args, out: seen.add(out.dtype) if module.training
                            else None)
    history = fit(G, D, tiny_loader(), epochs=1, max_steps=3,
                  options=FitOptions(speed=SpeedOptions(amp="bf16")),
                  progress=False)
    assert seen == {torch.bfloat16}  # every forward pass of D during training
    assert len(history["loss_d"]) == 3
    assert all(torch.isfinite(torch.tensor(history[k])).all() for k in ("loss_d", "loss_g"))
    assert {p.dtype for p in [*G.parameters(), *D.parameters()]} == {torch.float32}


def test_without_amp_no_autocast_context_is_entered(monkeypatch):
    """The default (amp off) must not enter `torch.autocast` at all, not even a disabled one."""
    def no_autocast(*args, **kwargs):
        raise AssertionError(f"torch.autocast{args} entered with amp off")

    monkeypatch.setattr(torch, "autocast", no_autocast)
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=1, max_steps=2, progress=False)
    assert len(history["loss_d"]) == 2


def plain_dataloader(n: int = 256, batch_size: int = 32) -> torch.utils.data.DataLoader:
    """A torch DataLoader (not a TensorLoader) of images in [-1, 1] with labels; image i is
    filled with the value i / n, so a batch says where it comes from."""
    index = torch.arange(n, dtype=torch.float32)
    images = (index / n).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous() * 2 - 1
    labels = torch.arange(n) % 10
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                       batch_size=batch_size, shuffle=False)


def first_images_seen():
    """A step function recording the index of each batch's first image."""
    def step(G, D, opt_g, opt_d, real, z, objective, **kwargs):
        step.seen.append(round((real[0, 0, 0, 0].item() + 1) / 2 * 256))
        return train_step(G, D, opt_g, opt_d, real, z, objective, **kwargs)
    step.seen = []
    return step


def test_fit_trains_on_a_plain_dataloader_and_resumes_at_the_right_batch(tmp_path):
    G, D = small_gan()
    first = first_images_seen()
    history = fit(G, D, plain_dataloader(), epochs=2, run_dir=tmp_path, max_steps=5,
                  options=FitOptions(step_fn=first), progress=False)
    assert first.seen == [0, 32, 64, 96, 128] and len(history["loss_d"]) == 5
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5

    G, D = small_gan(seed=1)
    rest = first_images_seen()
    history = fit(G, D, plain_dataloader(), epochs=2, run_dir=tmp_path, resume=True,
                  options=FitOptions(step_fn=rest), progress=False)
    # The rest of epoch 1 (batches 5 to 7), then all of epoch 2: 16 steps in all.
    assert rest.seen == [160, 192, 224] + [32 * i for i in range(8)]
    assert len(history["loss_d"]) == 16 and history.stop_reason == "finished"
    assert all(torch.isfinite(torch.tensor(history["loss_d"])))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 16


class RecordLR(Callback):
    def __init__(self) -> None:
        self.lrs: list[tuple[float, float]] = []

    def on_step_end(self, state) -> None:
        self.lrs.append((state.opt_g.param_groups[0]["lr"], state.opt_d.param_groups[0]["lr"]))


def test_linear_schedule_continues_across_a_resume(tmp_path):
    """The learning rates of a stopped and resumed run are those of an uninterrupted one, step
    by step, down to 0 at the end; so are the weights."""
    straight = RecordLR()
    G1, D1 = small_gan()
    fit(G1, D1, tiny_loader(), epochs=2, options=FitOptions(lr_schedule="linear"), progress=False,
        run_dir=tmp_path / "straight", callbacks=[straight])
    assert len(straight.lrs) == 16 and straight.lrs[-1] == (0.0, 0.0)
    assert straight.lrs[0][0] == pytest.approx(2e-4 * 15 / 16)

    first, second = RecordLR(), RecordLR()
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=2, options=FitOptions(lr_schedule="linear"),
                  progress=False,
                  run_dir=tmp_path / "pieces", callbacks=[first, StopAt(5)])
    assert len(history["loss_d"]) == 5
    G2, D2 = small_gan(seed=3)
    fit(G2, D2, tiny_loader(), epochs=2, options=FitOptions(lr_schedule="linear"), progress=False,
        run_dir=tmp_path / "pieces", resume=True, callbacks=[second])
    assert first.lrs + second.lrs == straight.lrs
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluations_and_the_best_checkpoint_continue_across_a_resume(tiny_data, tmp_path):
    """A real (small) evaluator scores every epoch of a run stopped mid-epoch 2 and resumed. Its
    FIDs are replaced by a script in which the first evaluation is the best, so a resumed
    callback that forgot the first part would wrongly replace best.pt."""
    from dataclasses import replace

    from gan_helpers.classifier import load_classifier
    from gan_helpers.evaluation import EvaluateEvery, Evaluator, KeepBest

    evaluator = Evaluator(load_classifier(epochs=1, limit=256, device="cpu", verbose=False),
                          device="cpu")
    scripted = iter([3.0, 5.0, 4.0])
    real_score = evaluator.score_generator

    def score_generator(G, n, **kwargs):
        return replace(real_score(G, n, **kwargs), fid=next(scripted))

    evaluator.score_generator = score_generator
    run = tmp_path / "run"

    def part(**kwargs):
        G, D = small_gan()
        callback = EvaluateEvery(evaluator, n=100, verbose=False)
        return fit(G, D, tiny_loader(), epochs=3, run_dir=run, progress=False,
                   callbacks=[callback, KeepBest()], **kwargs)

    assert [e["step"] for e in part(max_steps=12)["eval"]] == [8]
    entries = part(resume=True)["eval"]
    assert [e["step"] for e in entries] == [8, 16, 24]  # both parts, in order
    assert [e["epoch"] for e in entries] == [1, 2, 3]
    assert [e["fid"] for e in entries] == [3.0, 5.0, 4.0]
    assert all(e["n"] == 100 and sum(e["histogram"]) == pytest.approx(1.0) for e in entries)
    seconds = [e["seconds"] for e in entries]
    assert seconds == sorted(seconds) and seconds[0] > 0  # the clock went on, not from 0
    best = load_checkpoint(run / "best.pt")
    assert best["step"] == 8  # the best overall: the first part's, kept after the resume
    assert part(resume=True)["eval"] == entries  # the finished run's checkpoint keeps them all


def test_training_with_a_run_folder_loads_no_plotting_or_widget_library(tmp_path):
    """The loop runs headless: the steps, grids and checkpoints need no matplotlib (it is loaded
    only when the run ends, to draw losses.png), and ipywidgets is never loaded."""
    code = (
        "import sys\n"
        "from tests.helpers import small_gan, tiny_loader\n"
        "from gan_helpers.callbacks import Callback\n"
        "from gan_helpers.training import fit\n"
        "class Watch(Callback):\n"
        "    seen = set()\n"
        "    def on_epoch_end(self, state):\n"
        "        self.seen |= {m for m in ('matplotlib', 'ipywidgets') if m in sys.modules}\n"
        "G, D = small_gan('dcgan')\n"
        "watch = Watch()\n"
        f"fit(G, D, tiny_loader(64), epochs=1, run_dir={str(tmp_path)!r}, progress=True,\n"
        "    callbacks=[watch])\n"
        "print(sorted(watch.seen), 'ipywidgets' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip().splitlines()[-1] == "[] False"
    assert (tmp_path / "grids" / "epoch_001.png").exists()
    assert (tmp_path / "final.png").exists() and (tmp_path / "checkpoint.pt").exists()
    assert (tmp_path / "losses.png").exists()


# ----------------------------------------------------------------------------- moving average


class RecordG(Callback):
    """Records copies of G's parameters (first as they start, then after every step), and of
    the moving average's after every step."""

    def __init__(self) -> None:
        self.G: list[dict[str, torch.Tensor]] = []
        self.average: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self, state) -> None:
        self.G.append(params(state.G) | floats(state.G))

    def on_step_end(self, state) -> None:
        self.G.append(params(state.G) | floats(state.G))
        self.average.append(params(state.G_ema) | floats(state.G_ema))


def floats(module):
    """The floating-point buffers (BatchNorm's running statistics) of `module`, copied."""
    return {k: v.clone() for k, v in module.named_buffers() if v.is_floating_point()}


def test_ema_decay_warms_up_from_a_tenth_to_the_decay():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)  # the random start is mostly forgotten
    assert ema_decay(0.999, 8) == pytest.approx(0.5)
    assert ema_decay(0.999, 100) == pytest.approx(101 / 110)
    assert ema_decay(0.999, 10_000) == 0.999  # (1 + t) / (10 + t) is above the decay by now
    assert ema_decay(0.9, 100) == 0.9
    assert ema_decay(0.0, 0) == ema_decay(0.0, 50) == 0.0
    warm_up = [ema_decay(0.99, t) for t in range(2000)]
    assert warm_up == sorted(warm_up) and warm_up[-1] == 0.99


def test_ema_with_decay_0_is_the_generator_itself():
    G, D = small_gan("dcgan")  # BatchNorm: its running statistics are buffers
    history = fit(G, D, tiny_loader(), epochs=1, ema=0.0, progress=False)
    average = history.G_ema
    assert average is not G and not average.training and G.training
    assert not any(p.requires_grad for p in average.parameters())
    for (name, a), b in zip(average.state_dict().items(), G.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_ema_is_the_warmed_up_average_of_the_generators_steps(tmp_path):
    """The average after each step, recomputed in float64 from G's weights and BatchNorm
    statistics at every step: the formula, a convex combination (so within G's range over the
    run), and not G itself; the count of batches is G's."""
    G, D = small_gan("dcgan")
    record = RecordG()
    history = fit(G, D, tiny_loader(), epochs=1, ema=0.9, progress=False, run_dir=tmp_path,
                  callbacks=[record])
    expected = {k: v.double() for k, v in record.G[0].items()}
    for t, (after, average) in enumerate(zip(record.G[1:], record.average, strict=True)):
        d = min(0.9, (1 + t) / (10 + t))
        expected = {k: d * expected[k] + (1 - d) * after[k].double() for k in expected}
        for name, value in average.items():
            assert torch.allclose(value.double(), expected[name], atol=1e-6), (t, name)
    final = params(history.G_ema)
    assert changed(record.average[-1], history.G_ema) == set()  # the last step's average
    trajectory = {k: torch.stack([g[k] for g in record.G]) for k in final}
    for name, value in final.items():
        assert (value >= trajectory[name].amin(0) - 1e-7).all(), name
        assert (value <= trajectory[name].amax(0) + 1e-7).all(), name
    statistics = floats(G)
    assert statistics and changed(final, G) == set(final)  # averaged: every parameter differs
    for name, buffer in history.G_ema.named_buffers():
        if name in statistics:  # averaged too (the loop above checked the formula)
            assert not torch.equal(buffer, statistics[name]), name
        else:  # num_batches_tracked: copied
            assert torch.equal(buffer, dict(G.named_buffers())[name]), name

    # the samples and the final grid are the average's
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(history.samples, generate(history.G_ema, ckpt["fixed_noise"]))
    assert not torch.equal(history.samples, generate(G, ckpt["fixed_noise"]))
    saved = ckpt["callbacks"][ckpt["average"]]
    assert saved["updates"] == 8 and saved["decay"] == 0.9
    assert ckpt["run"]["settings"]["ema"] == 0.9
    for name, value in history.G_ema.state_dict().items():
        assert torch.equal(saved["weights"][name], value), name


def test_ema_updates_only_on_the_steps_that_update_the_generator():
    """WGAN-GP trains its critic n_critic times per G update: the average moves with G only."""
    G, D = small_gan("mlp")
    record = RecordG()
    fit(G, D, tiny_loader(), epochs=1, objective=WGANGPObjective(n_critic=3), ema=0.5,
        progress=False, callbacks=[record])
    def steps_that_moved(states):  # states[0]: before the first step
        return [i for i in range(1, len(states))
                if any(not torch.equal(states[i][k], states[i - 1][k]) for k in states[i])]

    assert steps_that_moved(record.G) == [3, 6]  # G learns on every third step
    assert steps_that_moved([record.G[0], *record.average]) == [3, 6]  # and so does the average


def test_without_ema_nothing_is_averaged_or_saved(tmp_path):
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=1, progress=False, run_dir=tmp_path)
    assert history.G_ema is None
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["average"] is None and ckpt["run"]["settings"]["ema"] is None
    assert torch.equal(history.samples, generate(G, ckpt["fixed_noise"]))


def test_ema_is_asked_for_with_a_decay_below_1():
    G, D = small_gan()
    for decay in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="at least 0 and below 1"):
            fit(G, D, tiny_loader(), ema=decay, progress=False)
    with pytest.raises(UsageError, match=r"fit\(ema=DECAY\)"):
        fit(G, D, tiny_loader(), callbacks=[AverageGenerator(0.9)], progress=False)


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_ema_resume_continues_bitwise_exactly(kind, tmp_path):
    """A run stopped twice mid-epoch and resumed ends with the same averaged weights, bit for
    bit, as one run straight through; so does the count of updates."""
    G1, _, h1, c1 = run_pieces(kind, tmp_path, [], ema=0.9)
    G2, _, h2, c2 = run_pieces(kind, tmp_path, [5, 13], ema=0.9)
    for a, b in ((h1.G_ema, h2.G_ema), (G1, G2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
    updates = [c["callbacks"][c["average"]]["updates"] for c in (c1, c2)]
    assert updates == [24, 24]
    assert torch.equal(h1.samples, h2.samples)
    assert changed(params(h2.G_ema), G2)  # the average, not a copy of G


def test_resume_with_another_decay_is_refused(tmp_path):
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, ema=0.9, progress=False)
    for other, shown in ((0.99, "ema was 0.9, now 0.99"), (None, "ema was 0.9, now None")):
        with pytest.raises(RunMismatchError, match=shown):
            fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, ema=other, resume=True,
                progress=False)
