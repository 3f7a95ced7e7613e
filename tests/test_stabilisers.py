"""Lesson 06 and 08's shared code: conditional models, the objectives, the gradient penalty,
spectral normalisation, instance noise, and the loop running them (n_critic, labels)."""

from __future__ import annotations

import math

import pytest
import torch

from gan_helpers import config, models, objectives, recipes
from gan_helpers.callbacks import AnnealNoise, Callback
from gan_helpers.checkpoints import RunMismatchError, load_checkpoint
from gan_helpers.metrics import Scores
from gan_helpers.recipes import Recipe, run_recipe
from gan_helpers.stats import STATS
from gan_helpers.training import fit, grad_norm, train_step
from tests.helpers import FakeEvaluator, tiny_loader, weight_sum


@pytest.mark.parametrize("kind", sorted(models.CONDITIONAL))
def test_conditional_models_make_the_requested_shapes_and_use_the_label(kind):
    torch.manual_seed(0)
    G, D, size = models.build_gan(kind, latent_dim=16, num_classes=10)
    G.eval()
    D.eval()
    z = torch.randn(12, 16)
    labels = torch.arange(12) % 10
    images = G(z, labels)
    assert images.shape == (12, 1, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert D(images, labels).shape == (12,)
    # The label changes the image for the same noise, and D's verdict for the same image.
    other = (labels + 1) % 10
    assert not torch.allclose(G(z, other), images)
    assert not torch.allclose(D(images, other), D(images, labels))
    assert G.num_classes == D.num_classes == 10


def test_projection_discriminator_is_the_unconditional_head_plus_a_projection():
    torch.manual_seed(0)
    D = models.ProjectionDiscriminator("dcgan", num_classes=3, width=8).eval()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 1])
    h = D.features(x).flatten(1)
    expected = D.head(D.features(x)).view(-1) + (D.embed.weight[y] * h).sum(1)
    assert torch.allclose(D(x, y), expected, atol=1e-6)


def test_gradient_penalty_matches_a_hand_computed_value():
    """A linear critic D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2."""
    w = torch.tensor([3.0, 4.0])  # |w| = 5

    def critic(x):
        return x @ w

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert objectives.gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)

    # A non-linear critic, D(x) = sum(x^2): gradient 2 x_hat at x_hat = eps real + (1-eps) fake.
    torch.manual_seed(3)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    torch.manual_seed(11)
    got = objectives.gradient_penalty(lambda x: (x ** 2).flatten(1).sum(1), real, fake)
    torch.manual_seed(11)
    eps = torch.rand(5, 1, 1, 1)  # the same uniform draws
    x_hat = eps * real + (1 - eps) * fake
    norms = (2 * x_hat).flatten(1).norm(dim=1)
    assert got.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-5)
    assert not ((eps == 0) | (eps == 1)).all()


def test_wgan_gp_objective_adds_ten_times_the_penalty_and_trains_d_through_it():
    obj = objectives.WGANGPObjective()
    assert (obj.gp_weight, obj.n_critic) == (10.0, 5)
    real_scores, fake_scores = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert obj.d_loss(real_scores, fake_scores).item() == pytest.approx(0.0 - 3.0)
    assert obj.g_loss(fake_scores).item() == pytest.approx(0.0)
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
    penalty = obj.penalty(lambda x: lin(x).view(-1), torch.randn(4, 2), torch.randn(4, 2))
    assert penalty.item() == pytest.approx(160.0)
    penalty.backward()  # d/dw 10 (|w| - 1)^2 = 20 (|w| - 1) w / |w| = 16 w
    assert torch.allclose(lin.weight.grad, 16 * lin.weight.detach())


def test_hinge_and_saturating_losses():
    hinge = objectives.HingeObjective()
    assert hinge.d_loss(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])).item() == \
        pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    sat, ns = objectives.BCEObjective(saturating=True), objectives.BCEObjective()
    logit = torch.tensor([-6.0], requires_grad=True)  # D is sure the fake is fake
    (g_sat,) = torch.autograd.grad(sat.g_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(ns.g_loss(logit), logit)
    assert abs(g_sat.item()) < 0.01 < 0.99 < abs(g_ns.item())  # the saturating loss vanishes
    with pytest.raises(ValueError, match="choose one of"):
        objectives.make_objective("lsgan")


def test_spectral_norm_keeps_the_largest_singular_value_near_one():
    torch.manual_seed(0)
    D = models.DCGANDiscriminator(width=8, norm="none")
    with torch.no_grad():
        for m in D.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(25)  # far from 1 to start with
    models.add_spectral_norm(D)
    D.train()
    for _ in range(30):  # power iteration runs once per training forward pass
        D(torch.randn(4, 1, 28, 28))
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3
    for conv in convs:
        assert hasattr(conv, "parametrizations")
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        raw = torch.linalg.matrix_norm(
            conv.parametrizations.weight.original.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)
        assert raw > 5


def test_build_gan_options():
    G, D, _ = models.build_gan("dcgan", d_kwargs={"norm": "layer"}, spectral_norm=True)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in D.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert all(hasattr(m, "parametrizations") for m in D.modules()
               if isinstance(m, torch.nn.Conv2d))
    original = D.net[0].parametrizations.weight.original
    assert original.std().item() == pytest.approx(0.02, rel=0.1)  # weights_init ran first
    with pytest.raises(ValueError, match="norm"):
        models.DCGANDiscriminator(norm="spectral")
    with pytest.raises(ValueError, match="cdcgan"):
        models.build_gan("cgan")


def test_instance_noise_only_while_training_and_annealed_to_zero():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.flatten(1).sum(1)

    noisy = models.InstanceNoise(Spy(), sigma=0.5)
    x = torch.zeros(256, 1, 4, 4)
    noisy.train()(x)
    assert seen[-1].std().item() == pytest.approx(0.5, rel=0.1)
    noisy.eval()(x)
    assert torch.equal(seen[-1], x)

    class State:
        step, total_steps = 0, 100
    anneal = AnnealNoise(noisy)
    anneal.on_fit_start(State)
    assert noisy.sigma == 0.5
    State.step = 75
    anneal.on_step_end(State)
    assert noisy.sigma == pytest.approx(0.125)


def test_diff_augment_shifts_and_cuts_out_while_training_only_and_passes_gradients():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1).sum(1)

    torch.manual_seed(0)
    x = torch.linspace(-0.9, 0.9, 8 * 8).view(1, 1, 8, 8).repeat(64, 1, 1, 1).requires_grad_()
    augmented = models.DiffAugment(Spy(), translation=0.25, cutout=0.5)
    augmented.train()(x).sum().backward()
    out = seen[-1].detach()
    assert out.shape == x.shape and not torch.equal(out, x.detach())
    # Every pixel is the original at a shift of at most 2 pixels, the background (-1) or cut (0).
    shifted = {(dy, dx): torch.roll(x.detach()[0, 0], (dy, dx), (0, 1))
               for dy in range(-2, 3) for dx in range(-2, 3)}
    for image in out[:, 0]:
        kept = (image != -1) & (image != 0)
        assert any(torch.equal(image[kept], s[kept]) for s in shifted.values())
    assert (out == 0).any() and (out == -1).any()  # some cut out, some border filled
    assert x.grad is not None and 0 < x.grad.sum() < x.numel()  # what is kept gets gradient 1
    augmented.eval()(x)
    assert torch.equal(seen[-1], x)
    parts = Recipe(augment=True).build()
    assert isinstance(parts.D, models.DiffAugment)
    assert Recipe(augment=True).settings()["augment"] == "translation, cutout"
    assert "augment" not in Recipe().settings()  # runs recorded before it keep their settings


def test_grad_norm_is_the_norm_of_all_gradients():
    lin = torch.nn.Linear(2, 1)
    lin(torch.tensor([[3.0, 4.0]])).sum().backward()  # grads: w -> (3, 4), b -> 1
    assert grad_norm(lin).item() == pytest.approx(math.sqrt(26))


def test_fit_trains_a_conditional_gan_with_labels_and_class_rows(tmp_path):
    torch.manual_seed(0)
    G = models.ConditionalGenerator("mlp", latent_dim=16, num_classes=10, hidden=(32,))
    D = models.ProjectionDiscriminator("mlp", num_classes=10, hidden=(32,))
    seen = []
    original = D.forward
    # the training steps' calls (fit's check of the networks runs D once in eval mode first)
    D.forward = lambda x, y: (D.training and seen.append(y.clone()), original(x, y))[1]
    history = fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    assert len(history["loss_d"]) == 8
    assert all(len(y) == 32 and y.dtype == torch.long for y in seen)
    assert len({int(v) for y in seen for v in y}) > 1  # real labels, not a constant
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["fixed_labels"].tolist() == [i // 8 for i in range(80)]  # a row of 8 per class
    assert history.samples.shape == (80, 1, 28, 28)


def test_wgan_gp_updates_g_every_n_critic_steps_and_resumes_exactly(tmp_path):
    def run(stop=None, resume=False):
        torch.manual_seed(0)
        G = models.MLPGenerator(latent_dim=16, hidden=(32,))
        D = models.MLPDiscriminator(hidden=(32,), dropout=0.0)
        opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.0, 0.9))
                        for m in (G, D))
        return G, fit(G, D, tiny_loader(), epochs=2, objective=objectives.WGANGPObjective(),
                      run_dir=tmp_path / ("a" if stop is None and not resume else "b"),
                      progress=False, max_steps=stop, resume=resume, opt_g=opt_g, opt_d=opt_d)

    G_full, full = run()
    assert set(STATS) <= set(full)
    updated = [math.isfinite(v) for v in full["grad_g"]]
    assert updated == [(i + 1) % 5 == 0 for i in range(16)]  # G learns on every 5th step
    run(stop=7)
    G_resumed, resumed = run(resume=True)
    for a, b in zip(G_full.state_dict().values(), G_resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed["loss_d"] == full["loss_d"]


def test_train_step_with_update_g_false_leaves_g_alone():
    torch.manual_seed(0)
    G, D = models.MLPGenerator(latent_dim=8, hidden=(16,)), models.MLPDiscriminator(hidden=(16,))
    before = [p.detach().clone() for p in G.parameters()]
    opt_g = torch.optim.Adam(G.parameters())
    opt_d = torch.optim.Adam(D.parameters())
    stats = train_step(G, D, opt_g, opt_d, torch.rand(4, 1, 28, 28) * 2 - 1, torch.randn(4, 8),
                       objectives.WGANGPObjective(), update_g=False)
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert math.isnan(stats[5].item()) and stats[4].item() > 0


def test_recipes_fill_in_each_loss_s_usual_settings():
    wgan = Recipe(loss="wgan-gp").settings()
    assert (wgan["lr_g"], wgan["betas"], wgan["d_kwargs"]) == (1e-4, (0.0, 0.9), {"norm": "layer"})
    plain = Recipe().settings()
    assert (plain["lr_d"], plain["betas"], plain["d_kwargs"]) == (2e-4, (0.5, 0.999),
                                                                   {"norm": "batch"})
    assert Recipe(spectral_norm=True).settings()["d_kwargs"] == {"norm": "none"}
    parts = Recipe(model="mlp", loss="saturating", lr_d=1e-3, label_smoothing=0.9,
                   instance_noise=0.2).build()
    assert parts.objective.saturating and parts.objective.real_label == 0.9
    assert isinstance(parts.D, models.InstanceNoise) and isinstance(parts.callbacks[0], AnnealNoise)
    assert parts.opt_d.param_groups[0]["lr"] == 1e-3 and parts.opt_g.param_groups[0]["lr"] == 2e-4
    with pytest.raises(ValueError, match="Label smoothing needs a BCE loss"):
        Recipe(loss="hinge", label_smoothing=0.9)
    with pytest.raises(ValueError, match="choose one of"):
        Recipe(loss="lsgan")
    with pytest.raises(ValueError, match="without BatchNorm"):
        Recipe(model="dcgan64", loss="wgan-gp")


class _CountSteps(Callback):
    steps = 0

    def on_step_end(self, state):
        self.steps += 1


def test_run_recipe_trains_once_and_then_loads_the_finished_run(tmp_path):
    recipe = Recipe(model="mlp", loss="wgan-gp")
    counted = _CountSteps()
    first = run_recipe("w", recipe, tiny_loader(), 6, FakeEvaluator(), n=7,
                       run_dir=tmp_path / "w", progress=False, extra_callbacks=[counted])
    assert len(first.history["loss_d"]) == 6
    assert isinstance(first.scores, Scores) and first.scores.n == 7
    assert first.scores.fid == weight_sum(first.G)  # the trained generator was scored
    assert counted.steps == 6
    again_counted = _CountSteps()
    again = run_recipe("w", recipe, tiny_loader(), 6, FakeEvaluator(), n=7,
                       run_dir=tmp_path / "w", progress=False, extra_callbacks=[again_counted])
    assert again_counted.steps == 0  # loaded, not retrained
    assert again.history["loss_d"] == first.history["loss_d"]
    assert again.scores == first.scores  # the loaded generator scores as the trained one did
    for a, b in zip(first.G.state_dict().values(), again.G.state_dict().values()):
        assert torch.equal(a, b)
    saved = load_checkpoint(tmp_path / "w" / "checkpoint.pt")["run"]["settings"]
    assert {k: saved[k] for k in recipe.settings()} == recipe.settings()  # the recipe, recorded
    # Another recipe or seed in the same folder is refused, not mixed with the saved run.
    with pytest.raises(RunMismatchError, match=r"lr_g was 0.0001, now 0.001"):
        run_recipe("w", Recipe(model="mlp", loss="wgan-gp", lr_g=1e-3), tiny_loader(), 6,
                   FakeEvaluator(), run_dir=tmp_path / "w", progress=False)
    with pytest.raises(RunMismatchError, match=r"seed was 0, now 1"):
        run_recipe("w", recipe, tiny_loader(), 6, FakeEvaluator(), seed=1,
                   run_dir=tmp_path / "w", progress=False)


def test_recipe_width_and_the_tuned_recipe():
    narrow = Recipe(width=32).settings()
    assert narrow["g_kwargs"] == {"width": 32}
    assert narrow["d_kwargs"] == {"norm": "batch", "width": 32}
    assert "g_kwargs" not in Recipe().settings()  # runs recorded before widths: settings kept
    parts = Recipe(width=16).build()
    assert parts.G.model_args["width"] == 16 and parts.D.model_args["width"] == 16
    with pytest.raises(ValueError, match="width applies to the DCGANs only"):
        Recipe(model="mlp", width=32)
    wide_g = Recipe(width=64, width_d=16)
    assert wide_g.settings()["d_kwargs"] == {"norm": "batch", "width": 16}
    parts = wide_g.build()
    assert parts.G.model_args["width"] == 64 and parts.D.model_args["width"] == 16
    assert Recipe(width_d=16).settings()["d_kwargs"]["width"] == 16
    with pytest.raises(ValueError, match="width applies to the DCGANs only"):
        Recipe(model="mlp", width_d=16)
    tuned = recipes.TUNED.settings()
    assert (tuned["g_kwargs"], tuned["lr_g"], tuned["lr_d"]) == ({"width": 32}, 8e-4, 8e-4)
    assert recipes.TUNED.ema is None and recipes.TUNED_BATCH_SIZE == 64
    assert recipes.PRESETS["tuned"].options().lr_schedule is None
    scheduled = recipes.PRESETS["tuned"]._replace(lr_schedule="late-linear")
    assert (scheduled.options().lr_schedule, scheduled.options().speed.amp) == ("late-linear",
                                                                              "auto")


def test_run_recipe_with_a_moving_average_returns_and_scores_the_average(tmp_path):
    result = run_recipe("e", Recipe(model="mlp", ema=0.9), tiny_loader(), 6, FakeEvaluator(),
                        n=7, run_dir=tmp_path / "e", progress=False)
    assert result.G is result.history.G_ema
    assert result.scores.fid == weight_sum(result.history.G_ema)
    saved = load_checkpoint(tmp_path / "e" / "checkpoint.pt")
    assert saved["run"]["settings"]["ema"] == 0.9
    raw = models.MLPGenerator()
    raw.load_state_dict(saved["G"])
    assert weight_sum(raw) != result.scores.fid  # G's own weights were not what was scored
    again = run_recipe("e", Recipe(model="mlp", ema=0.9), tiny_loader(), 6, FakeEvaluator(),
                       n=7, run_dir=tmp_path / "e", progress=False)
    assert again.scores == result.scores  # loaded: the average again


@pytest.mark.parametrize("smoke", [False, True])
def test_run_recipe_shrinks_steps_and_evaluation_interval_in_smoke_mode(monkeypatch, smoke):
    """A lesson writes its real step budget; smoke mode trains `SMOKE_STEPS` and scores at
    least every `SMOKE_EVERY` steps, through the same code."""
    monkeypatch.setattr(config, "SMOKE", smoke)
    steps, every = (100, 50) if smoke else (10, 5)
    result = run_recipe("s", Recipe(model="mlp"), tiny_loader(), steps, FakeEvaluator(),
                        every_steps=every, progress=False)
    trained = recipes.SMOKE_STEPS if smoke else steps
    every = recipes.SMOKE_EVERY if smoke else every
    assert len(result.history["loss_d"]) == trained
    assert [e["step"] for e in result.history["eval"]] == list(range(every, trained + 1, every))
    if smoke:
        assert trained < steps and every < 50


def test_gradient_norm_plot_skips_steps_without_an_update():
    import matplotlib

    matplotlib.use("Agg")
    from gan_helpers.viz import plot_grad_norms

    history = {"grad_d": [1.0] * 50, "grad_g": [float("nan"), 2.0] * 25}
    fig = plot_grad_norms({"run": history}, smooth=5)
    line_d, line_g = fig.axes[0].lines[0], fig.axes[1].lines[0]
    assert len(line_d.get_xdata()) == 46 and len(line_g.get_xdata()) == 21
    assert (line_g.get_ydata() == 2.0).all()
