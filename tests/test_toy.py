"""Tests of the 1-D toy GAN and the theory functions of lesson 00 (`gan_helpers.toy`)."""

import math

import pytest
import torch

from gan_helpers import config, toy
from gan_helpers.objectives import BCEObjective


def test_mixture_pdf_integrates_to_one_and_peaks_at_the_means() -> None:
    x = toy.x_grid(1000, (-8.0, 8.0))
    p = toy.mixture_pdf(x, weights=(0.3, 0.7))
    assert torch.trapezoid(p, x).item() == pytest.approx(1.0, abs=1e-6)
    left, right = toy.mixture_pdf(torch.tensor([-2.0, 2.0], dtype=torch.float64), (0.3, 0.7))
    assert right / left == pytest.approx(0.7 / 0.3, rel=1e-6)


def test_sample_mixture_follows_the_weights() -> None:
    samples = toy.sample_mixture(20_000, weights=(0.8, 0.2),
                                 generator=torch.Generator().manual_seed(0))
    assert samples.shape == (20_000, 1)
    left, right = toy.mode_masses(samples)
    # within 2 std of a mode: 95.4% of that mode's mass
    assert left == pytest.approx(0.8 * 0.954, abs=0.02)
    assert right == pytest.approx(0.2 * 0.954, abs=0.02)


def test_histogram_density_matches_the_true_density() -> None:
    x = toy.x_grid(100)
    samples = toy.sample_mixture(200_000, generator=torch.Generator().manual_seed(1))
    estimate = toy.histogram_density(samples, x)
    assert torch.trapezoid(estimate, x).item() == pytest.approx(1.0, abs=0.02)
    assert (estimate - toy.mixture_pdf(x)).abs().max().item() < 0.03


def test_optimal_discriminator_on_known_densities() -> None:
    p = torch.tensor([0.1, 0.3, 0.0, 0.2, 0.0], dtype=torch.float64)
    q = torch.tensor([0.1, 0.1, 0.4, 0.0, 0.0], dtype=torch.float64)
    d = toy.optimal_discriminator(p, q)
    # equal densities: 0.5; three times as much data: 0.75; only fakes: 0; only data: 1;
    # neither: 0.5 by convention
    assert d.tolist() == pytest.approx([0.5, 0.75, 0.0, 1.0, 0.5])
    assert torch.equal(toy.optimal_discriminator(p[:2], p[:2]), torch.full((2,), 0.5,
                                                                           dtype=torch.float64))


def test_optimal_discriminator_beats_any_other_discriminator() -> None:
    x = toy.x_grid()
    p_data, p_g = toy.mixture_pdf(x), toy.gaussian_pdf(x, 0.0, 1.0)
    best = toy.minimax_value(toy.optimal_discriminator(p_data, p_g), p_data, p_g, x)
    for d in (torch.full_like(x, 0.5), torch.sigmoid(x), 0.9 * toy.optimal_discriminator(
            p_data, p_g) + 0.05):
        assert toy.minimax_value(d, p_data, p_g, x) < best


def test_value_at_the_optimal_discriminator_is_minus_log4_plus_2_jsd() -> None:
    x = toy.x_grid()
    p_data = toy.mixture_pdf(x)
    for p_g in (toy.gaussian_pdf(x, 0.0, 1.0), toy.gaussian_pdf(x, 3.0, 0.3), p_data):
        c = toy.minimax_value(toy.optimal_discriminator(p_data, p_g), p_data, p_g, x)
        # equal up to the grid's integration error (the identity uses that each density has mass 1)
        assert c == pytest.approx(-math.log(4) + 2 * toy.js_divergence(p_data, p_g, x), abs=1e-5)
    assert toy.js_divergence(p_data, p_data, x) == pytest.approx(0.0, abs=1e-12)
    # disjoint supports: the largest possible value, log 2
    far = toy.gaussian_pdf(x, 4.5, 0.05)
    assert toy.js_divergence(toy.gaussian_pdf(x, -4.5, 0.05), far, x) == pytest.approx(
        math.log(2), rel=1e-3)


def test_saturating_gradient_vanishes_when_the_discriminator_wins() -> None:
    d = torch.tensor([1e-3, 0.01, 0.05])
    saturating, non_saturating = toy.generator_gradients(d)
    assert (saturating.abs() * 10 < non_saturating.abs()).all()
    assert saturating.abs().max() < 0.06 and (non_saturating.abs() > 0.9).all()
    sat_p, non_sat_p = toy.generator_gradients(d, wrt="prob")
    assert (sat_p.abs() * 10 < non_sat_p.abs()).all()
    with pytest.raises(ValueError):
        toy.generator_gradients(d, wrt="z")


@pytest.mark.parametrize("saturating", [False, True])
def test_gradients_match_autograd_through_the_objective(saturating: bool) -> None:
    """The closed forms are the gradients of `BCEObjective.g_loss` (a mean: times N)."""
    d = torch.tensor([0.01, 0.2, 0.5, 0.9], dtype=torch.float64)
    logits = torch.logit(d).requires_grad_(True)
    BCEObjective(saturating=saturating).g_loss(logits).backward()
    expected = toy.generator_gradients(d)[0 if saturating else 1]
    assert (logits.grad * len(d)).tolist() == pytest.approx(expected.tolist())

    probs = d.clone().requires_grad_(True)
    loss = torch.log1p(-probs) if saturating else -torch.log(probs)
    loss.sum().backward()
    expected = toy.generator_gradients(d, wrt="prob")[0 if saturating else 1]
    assert probs.grad.tolist() == pytest.approx(expected.tolist())


def test_models_have_the_shapes_train_step_expects() -> None:
    G, D = toy.ToyGenerator(latent_dim=3), toy.ToyDiscriminator()
    fake = G(torch.randn(5, 3))
    assert fake.shape == (5, 1) and D(fake).shape == (5,)


def test_training_moves_p_g_onto_both_modes(monkeypatch) -> None:
    monkeypatch.setattr(config, "SMOKE", False)  # the full 600 steps, even in smoke mode
    seen = []
    result = toy.train_toy(600, every=200, callback=seen.append, seed=0)
    assert [s.step for s in result.snapshots] == [0, 200, 400, 600]
    assert seen == result.snapshots
    first, last = result.snapshots[0], result.snapshots[-1]
    # untrained: the samples sit between the modes; trained: ~47.7% near each, as for p_data
    assert sum(first.mode_mass) < 0.2
    assert min(last.mode_mass) > 0.35 and sum(last.mode_mass) > 0.85
    # the histogram says the same: p_g is far closer to p_data than at the start
    dx = float(last.x[1] - last.x[0])

    def total_variation(s: toy.Snapshot) -> float:
        return 0.5 * (s.p_g - s.p_data).abs().sum().item() * dx

    assert total_variation(last) < 0.5 < 0.9 < total_variation(first)
    assert len(result.history["loss_d"]) == 600
    assert all(math.isfinite(v) for v in result.history["loss_d"])


def test_training_is_reproducible_and_leaves_thread_count_alone() -> None:
    threads = torch.get_num_threads()
    a = toy.train_toy(50, every=50, seed=3)
    b = toy.train_toy(50, every=50, seed=3)
    assert torch.get_num_threads() == threads
    assert torch.equal(a.snapshots[-1].p_g, b.snapshots[-1].p_g)
    assert a.history == b.history


def test_smoke_mode_caps_the_steps_and_keeps_the_snapshots_at_both_ends(monkeypatch) -> None:
    monkeypatch.setattr(config, "SMOKE", True)
    monkeypatch.setattr(toy, "SMOKE_STEPS", 30)
    result = toy.train_toy(3000, every=20)
    assert [s.step for s in result.snapshots] == [0, 20, 30]
    assert len(result.history["loss_d"]) == 30
