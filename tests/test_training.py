"""The adversarial step, the fit loop, checkpoints and exact resume."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from conftest import make_images

from gan_helpers import data, models
from gan_helpers.baseline import plain_step
from gan_helpers.checkpoints import CheckpointError, load_checkpoint
from gan_helpers.objectives import BCEObjective
from gan_helpers.training import Callback, NonFiniteLossError, SpeedOptions, fit, train_step


def small_gan(kind: str = "mlp", seed: int = 0):
    torch.manual_seed(seed)
    if kind == "mlp":
        return models.MLPGenerator(latent_dim=16, hidden=(32, 64)), models.MLPDiscriminator(
            hidden=(64, 32))
    G, D = models.DCGANGenerator(latent_dim=16, width=8), models.DCGANDiscriminator(width=8)
    G.apply(models.weights_init)
    D.apply(models.weights_init)
    return G, D


def tiny_loader(n: int = 256, batch_size: int = 32, seed: int = 0) -> data.TensorLoader:
    images, labels = make_images(n)
    return data.TensorLoader(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long(),
                             batch_size=batch_size, drop_last=True, seed=seed)


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


def test_bce_with_logits_equals_sigmoid_then_bce():
    logits = torch.tensor([-30.0, -2.0, 0.0, 3.0])
    objective = BCEObjective()
    ref = torch.nn.BCELoss()(torch.sigmoid(logits), torch.ones(4))
    assert torch.allclose(objective.g_loss(logits[1:]),
                          torch.nn.BCELoss()(torch.sigmoid(logits[1:]), torch.ones(3)))
    assert torch.isfinite(objective.g_loss(logits))  # stable even where sigmoid rounds to 0
    assert ref.item() == pytest.approx(objective.g_loss(logits).item(), rel=0.2)


def test_fit_writes_grids_checkpoint_and_history(tmp_path):
    G, D = small_gan("dcgan")
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False)
    assert history.stop_reason == "finished"
    assert all(len(history[k]) == 16 for k in ("loss_d", "loss_g", "d_real", "d_fake"))
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["epoch_001.png",
                                                                     "epoch_002.png"]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 16 and len(ckpt["history"]["loss_g"]) == 16
    assert history.samples.shape == (64, 1, 28, 28)


def test_linear_schedule_decays_to_zero(tmp_path):
    G, D = small_gan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    fit(G, D, tiny_loader(), epochs=1, opt_g=opt_g, lr_schedule="linear", progress=False)
    assert opt_g.param_groups[0]["lr"] == 0.0


def run_pieces(kind, tmp_path, stops):
    """Train 3 epochs of 8 steps, stopping (and resuming in new objects) after each of `stops`."""
    run = tmp_path / f"{kind}-{'-'.join(map(str, stops)) or 'straight'}"
    for i, stop in enumerate([*stops, None]):
        G, D = small_gan(kind, seed=100 + i)  # fresh weights: the checkpoint must restore them
        history = fit(G, D, tiny_loader(), epochs=3, run_dir=run, max_steps=stop, resume=i > 0,
                      progress=False)
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


class StopAt(Callback):
    def __init__(self, step: int, how: str) -> None:
        self.step, self.how = step, how

    def on_step_end(self, state) -> None:
        if state.step != self.step:
            return
        if self.how == "button":
            state.request_stop("stopped by the Stop button")
        elif self.how == "sigint":
            os.kill(os.getpid(), signal.SIGINT)  # what Jupyter's interrupt sends the kernel
        else:
            raise KeyboardInterrupt


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


def test_exception_in_a_step_is_raised_after_writing_a_checkpoint(tmp_path):
    calls = []

    def flaky_step(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("CUDA out of memory (simulated)")
        return train_step(*args)

    G, D = small_gan()
    with pytest.raises(RuntimeError, match="simulated") as err:
        fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, step_fn=flaky_step, progress=False)
    assert len(err.value.history["loss_d"]) == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint(tmp_path):
    def poisoned_step(G, D, opt_g, opt_d, real, z, objective):
        stats = train_step(G, D, opt_g, opt_d, real, z, objective)
        poisoned_step.n += 1
        return stats if poisoned_step.n < 11 else stats * float("nan")
    poisoned_step.n = 0

    G, D = small_gan()
    with pytest.raises(NonFiniteLossError, match=r"discriminator's loss became nan at step 10 "):
        fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, step_fn=poisoned_step,
            progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 8  # the end of epoch 1, not the poisoned state
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values())


def test_truncated_checkpoint_gets_a_clear_error(tmp_path):
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt cannot be read: it is truncated"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_of_another_architecture_gets_a_clear_error(tmp_path):
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    G, D = small_gan("dcgan")
    with pytest.raises(CheckpointError, match="does not fit this generator"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_optimised_step_matches_the_plain_classic_step(kind):
    """One fake batch, D frozen for G's pass, set_to_none: same losses and weights as the
    classic step that runs G twice."""

    results = []
    for step in (train_step, plain_step):
        G, D = small_gan(kind)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
        torch.manual_seed(7)
        losses = [step(G, D, opt_g, opt_d, real, torch.randn(32, 16), BCEObjective())
                  for real, _ in tiny_loader().batches(0)]
        results.append((torch.stack(losses), G.state_dict(), D.state_dict()))
    (la, ga, da), (lb, gb, db) = results
    assert torch.allclose(la[:, :4], lb, atol=1e-6)  # the plain step has no gradient norms
    for a, b in ((ga, gb), (da, db)):
        for name in a:
            if "running" not in name and "num_batches" not in name:  # G ran twice: BN stats
                assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_speed_options_keep_training_correct():

    runs = []
    for speed in (SpeedOptions(), SpeedOptions(channels_last=True)):
        G, D = small_gan("dcgan")
        history = fit(G, D, tiny_loader(), epochs=1, progress=False, speed=speed)
        runs.append((history, G.state_dict()))
    (h1, g1), (h2, g2) = runs
    assert torch.allclose(torch.tensor(h1["loss_d"]), torch.tensor(h2["loss_d"]), atol=1e-4)
    for name in g1:
        assert torch.allclose(g1[name].float(), g2[name].float(), atol=1e-4), name
    with pytest.raises(ValueError, match="bf16"):
        SpeedOptions(amp="fp8")


def test_a_failing_callback_at_the_end_does_not_cost_the_checkpoint(tmp_path):
    class Broken(Callback):
        def on_fit_end(self, state):
            raise OSError("disk full (simulated)")

    G, D = small_gan()
    with pytest.raises(OSError, match="simulated"):
        fit(G, D, tiny_loader(), epochs=1, max_steps=3, run_dir=tmp_path, progress=False,
            callbacks=[Broken()])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
