"""The latent-space helpers of lesson 07: interpolation, loading a trained generator, class
means and transfers (`latent`), and the pictures, the explorer's widget and its static fallback
(`latent_views`)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
import torch

from gan_helpers import config, latent, latent_views, models
from gan_helpers.checkpoints import CHECKPOINT_FORMAT, CheckpointError, save_checkpoint
from gan_helpers.training import fit
from tests.helpers import FakeEvaluator, StopAt, tiny_loader


def tiny_generator(seed: int = 0) -> models.DCGANGenerator:
    torch.manual_seed(seed)
    return models.DCGANGenerator(latent_dim=16, width=8).apply(models.weights_init)


@pytest.fixture
def full_size(monkeypatch):
    """Run a test at the sizes it asks for, also when the suite runs in smoke mode."""
    monkeypatch.setattr(config, "SMOKE", False)


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setattr(config, "SMOKE", True)


def pairs(n: int = 5, d: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)


# ----------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_paths_start_and_end_at_their_inputs(method):
    z0, z1 = pairs()
    z1 = 3 * z1  # different lengths too
    points = latent.path(z0, z1, 7, method)
    assert points.shape == (7, 5, 100)
    torch.testing.assert_close(points[0], z0, atol=1e-5, rtol=0)
    torch.testing.assert_close(points[-1], z1, atol=1e-5, rtol=0)


def test_shapes_follow_t(full_size):
    z0, z1 = pairs(4, 8)
    for fn in (latent.lerp, latent.slerp):
        assert fn(z0, z1, 0.5).shape == (4, 8)  # one t for every pair
        assert fn(z0, z1, torch.rand(4)).shape == (4, 8)  # one t per pair
        assert fn(z0[0], z1[0], torch.linspace(0, 1, 6)).shape == (6, 8)  # one vector, six t
        assert fn(z0, z1, torch.linspace(0, 1, 6).view(6, 1)).shape == (6, 4, 8)
    assert latent.walk(torch.randn(3, 4, 8), steps=5).shape == (15, 4, 8)
    assert latent.walk(torch.randn(3, 4, 8), steps=5, closed=False).shape == (11, 4, 8)
    with pytest.raises(ValueError, match="Unknown interpolation"):
        latent.path(z0, z1, 5, "cubic")


def test_slerp_keeps_the_length_of_equal_length_vectors_and_is_the_textbook_formula():
    z0, z1 = pairs(6)
    z1 = latent.to_radius(z1, 1.0) * z0.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 11).view(11, 1)
    points = latent.slerp(z0, z1, t)
    lengths = points.norm(dim=-1)
    torch.testing.assert_close(lengths, z0.norm(dim=1).expand(11, 6), rtol=1e-5, atol=0)
    omega = torch.arccos(torch.nn.functional.cosine_similarity(z0, z1)).unsqueeze(1)
    textbook = (torch.sin((1 - t.unsqueeze(-1)) * omega) * z0
                + torch.sin(t.unsqueeze(-1) * omega) * z1) / torch.sin(omega)
    torch.testing.assert_close(points, textbook, atol=1e-4, rtol=0)
    # Equal angles in equal steps: the angle to z0 grows linearly with t.
    angles = torch.arccos(torch.nn.functional.cosine_similarity(points, z0.expand_as(points),
                                                                dim=-1).clamp(-1, 1))
    torch.testing.assert_close(angles, t * omega.T, atol=1e-3, rtol=0)


def test_slerp_changes_the_length_linearly_when_the_lengths_differ():
    z0, z1 = pairs(3)
    z1 = 2.5 * latent.to_radius(z1, 1.0) * z0.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 5).view(5, 1)
    expected = z0.norm(dim=1) * (1 + 1.5 * t)
    torch.testing.assert_close(latent.slerp(z0, z1, t).norm(dim=-1), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("factor", [1.0, 2.0, 1 + 1e-7, -1.0, -3.0, -(1 + 1e-7)])
def test_parallel_and_opposite_vectors_give_no_nan(factor):
    z0 = torch.randn(2, 100, generator=torch.Generator().manual_seed(3))
    z1 = factor * z0
    points = latent.path(z0, z1, 9, "slerp")
    assert torch.isfinite(points).all()
    torch.testing.assert_close(points[-1], z1, atol=1e-4, rtol=0)
    if factor > 0:  # the same direction: the straight line
        torch.testing.assert_close(points, latent.path(z0, z1, 9, "lerp"), atol=1e-4, rtol=0)
    else:  # opposite: around the sphere, never through 0; at t = 1/2 perpendicular to both
        assert points.norm(dim=-1).min() >= z0.norm(dim=-1).min() * 0.999
        cos = torch.nn.functional.cosine_similarity(points[4], z0, dim=-1)
        assert cos.abs().max() < 1e-5


def test_zero_vectors_and_one_dimension_give_no_nan():
    z = torch.randn(4, 10)
    assert torch.isfinite(latent.slerp(torch.zeros(4, 10), z, torch.rand(4))).all()
    assert torch.isfinite(latent.slerp(torch.ones(3, 1), -torch.ones(3, 1), 0.5)).all()


def test_lerp_midpoints_of_prior_draws_fall_inside_the_shell_and_slerp_ones_do_not(full_size):
    d = 100
    z0, z1 = latent.sample_prior(4000, d, seed=1), latent.sample_prior(4000, d, seed=2)
    assert latent.prior_norm(d) == pytest.approx(math.sqrt(d - 0.5), rel=1e-3)
    assert z0.norm(dim=1).mean() == pytest.approx(latent.prior_norm(d), rel=0.01)
    assert latent.lerp(z0, z1, 0.5).norm(dim=1).mean() == pytest.approx(math.sqrt(d / 2), rel=0.02)
    assert latent.slerp(z0, z1, 0.5).norm(dim=1).mean() == pytest.approx(math.sqrt(d), rel=0.02)


# ----------------------------------------------------------------------------- images


def test_interpolate_returns_one_strip_per_pair_ending_at_the_two_samples(full_size):
    G = tiny_generator().train()
    z0, z1 = pairs(3, 16)
    strips = latent.interpolate(G, z0, z1, steps=6, method="slerp")
    assert strips.shape == (3, 6, 1, 28, 28)
    assert G.training  # restored after running in eval mode
    with torch.no_grad():
        G.eval()
        torch.testing.assert_close(strips[:, 0], G(z0), atol=1e-5, rtol=0)
        torch.testing.assert_close(strips[:, -1], G(z1), atol=1e-4, rtol=0)
    assert latent.interpolate(G, z0[0], z1[0], 4, "lerp").shape == (4, 1, 28, 28)
    img = latent_views.strip_image(strips, scale=2)
    assert img.size == (2 * (6 * 30 + 2), 2 * (3 * 30 + 2))
    frames = latent_views.gif_frames(G, latent.walk(torch.randn(2, 4, 16), steps=3), nrow=2)
    assert len(frames) == 6 and frames[0].size == (62, 62)


# ----------------------------------------------------------------------------- a trained generator


def write_run(runs, name: str, G: torch.nn.Module, dataset: str = "mnist"):
    return save_checkpoint({"format": CHECKPOINT_FORMAT, "G": G.state_dict(), "step": 7,
                            "run": {"dataset": dataset, "G": models.describe(G)}},
                           runs / name / "checkpoint.pt")


def test_find_generator_returns_none_for_an_empty_runs_folder(tmp_path):
    assert latent.find_generator(tmp_path, device="cpu") is None


def test_find_generator_loads_what_fit_saved(tmp_path):
    G = models.DCGANGenerator(latent_dim=16, width=8)
    D = models.DCGANDiscriminator(width=8)
    loader = tiny_loader(64)
    loader.dataset_name = "fashion-mnist"
    fit(G, D, loader, epochs=1, max_steps=1, run_dir=tmp_path / "04_live_training",
        progress=False)
    found = latent.find_generator(tmp_path, device="cpu", dataset="fashion-mnist", verbose=False)
    assert found is not None
    loaded, where = found
    assert where == tmp_path / "04_live_training" / "checkpoint.pt"
    assert isinstance(loaded, models.DCGANGenerator) and not loaded.training
    for key, value in G.state_dict().items():
        assert torch.equal(value.cpu(), loaded.state_dict()[key])


def test_find_generator_says_when_the_run_it_found_was_stopped_early(tmp_path, capsys):
    G, D = models.DCGANGenerator(latent_dim=16, width=8), models.DCGANDiscriminator(width=8)
    loader = tiny_loader(64)  # 2 steps an epoch
    loader.dataset_name = "fashion-mnist"
    run = tmp_path / "03_dcgan"
    fit(G, D, loader, epochs=3, run_dir=run, progress=False, callbacks=[StopAt(3)])
    latent.find_generator(tmp_path, device="cpu", dataset="fashion-mnist")
    said = capsys.readouterr().out
    assert "3 training steps" in said and "that run stopped at step 3 of 6" in said
    fit(G, D, loader, epochs=3, run_dir=run, progress=False)  # continued to its end: no note
    capsys.readouterr()
    latent.find_generator(tmp_path, device="cpu", dataset="fashion-mnist")
    assert "stopped" not in capsys.readouterr().out


def test_find_generator_prefers_lesson_03_and_passes_over_other_datasets(tmp_path):
    write_run(tmp_path, "03_dcgan", tiny_generator(0), "mnist")
    write_run(tmp_path, "04_live_training", tiny_generator(1), "fashion-mnist")
    _, where = latent.find_generator(tmp_path, device="cpu", dataset="mnist", verbose=False)
    assert where.parent.name == "03_dcgan"
    _, where = latent.find_generator(tmp_path, device="cpu", dataset="fashion-mnist",
                                     verbose=False)
    assert where.parent.name == "04_live_training"


def test_a_truncated_checkpoint_raises_a_clear_error(tmp_path):
    path = write_run(tmp_path, "03_dcgan", tiny_generator())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated, damaged or not a checkpoint") as err:
        latent.find_generator(tmp_path, device="cpu")
    assert str(path) in str(err.value)


def test_a_checkpoint_of_something_else_raises_a_clear_error(tmp_path):
    save_checkpoint({"weights": torch.zeros(3)}, tmp_path / "03_dcgan" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        latent.find_generator(tmp_path, device="cpu")


# ----------------------------------------------------------------------------- classes


class ArgmaxGenerator(torch.nn.Module):
    """A stand-in generator: its 'image' is z / 10, `(N, 1, 1, d)`."""

    def __init__(self, d: int = 10) -> None:
        super().__init__()
        self.latent_dim = d
        self.scale = torch.nn.Parameter(torch.tensor(0.1))  # keeps images inside [-1, 1]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.scale * z).view(len(z), 1, 1, -1)


def labelled_argmax(n: int = 3000) -> tuple[latent.Labelled, ArgmaxGenerator]:
    G = ArgmaxGenerator()
    return latent.label_samples(G, FakeEvaluator(), n, seed=0, batch_size=700), G


def test_class_means_average_the_vectors_of_each_label():
    z = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]])
    labelled = latent.Labelled(z, torch.tensor([0, 0, 2]), torch.tensor([0.95, 0.5, 0.99]))
    means, counts = latent.class_means(labelled, 3)
    torch.testing.assert_close(means, torch.tensor([[2.0, 1.0], [0.0, 0.0], [0.0, 5.0]]))
    assert counts.tolist() == [2, 0, 1]
    means, counts = latent.class_means(labelled, 3, min_confidence=0.9)
    assert counts.tolist() == [1, 0, 1] and means[0].tolist() == [1.0, 0.0]


def test_examples_are_the_surest_samples_of_a_class(capsys):
    z = torch.arange(8.0).view(4, 2)
    labelled = latent.Labelled(z, torch.tensor([1, 0, 1, 1]), torch.tensor([0.5, 0.9, 0.8, 0.7]))
    assert latent.examples(labelled, 1, 2).tolist() == [z[2].tolist(), z[3].tolist()]
    assert latent.examples(labelled, 0, 5).tolist() == [z[1].tolist()]
    assert latent.examples(labelled, 7, 1).tolist() == [z[1].tolist()]  # none: the surest
    assert "No sample was labelled 7" in capsys.readouterr().out


def test_moving_along_class_mean_differences_changes_the_class_and_random_moves_do_not(
        full_size):
    labelled, G = labelled_argmax()
    means, counts = latent.class_means(labelled, 10)
    assert counts.sum() == 3000 and (counts > 200).all()
    evaluator = FakeEvaluator()
    matrix = latent.transfer_matrix(G, evaluator, labelled, means, per_class=30, scale=1.5)
    control = latent.transfer_matrix(G, evaluator, labelled, means, per_class=30, scale=1.5,
                                     random_directions=True)
    other = ~torch.eye(10, dtype=torch.bool)
    assert torch.diagonal(matrix).tolist() == [1.0] * 10
    assert matrix[other].mean() > 0.5 > 0.2 > control[other].mean()


def test_scores_along_scores_evenly_spaced_points_of_the_path(full_size):
    G = ArgmaxGenerator()
    z0, z1 = torch.ones(6, 10), 3 * torch.ones(6, 10)
    scores = latent.scores_along(G, FakeEvaluator(), z0, z1, 5, "lerp")
    assert list(scores) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [s.fid for s in scores.values()] == [6] * 5
    assert scores[0.5].confidence == pytest.approx(0.2)  # images are z / 10, halfway from 1 to 3
    again = latent.scores_along(G, FakeEvaluator(), z0, z1, [0.0, 1.0], "slerp")
    assert list(again) == [0.0, 1.0] and again[1.0].confidence == pytest.approx(0.3)
    fig = latent_views.plot_scores_along({"lerp": scores, "slerp": again})
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [5, 2]
    plt.close(fig)


def test_smoke_mode_shrinks_the_lessons_counts(smoke):
    assert len(latent.sample_prior(5000, 8)) == latent.SMOKE_SAMPLES
    assert len(latent.sample_prior(10, 8)) == 10
    labelled, _ = labelled_argmax(20_000)
    assert len(labelled.z) == len(labelled.labels) == latent.SMOKE_SAMPLES
    assert len(latent.walk(torch.randn(3, 2, 8), steps=12)) == 3 * latent.SMOKE_STEPS
    scores = latent.scores_along(ArgmaxGenerator(), FakeEvaluator(), torch.ones(2, 10),
                                 torch.zeros(2, 10), 9, "lerp")
    assert list(scores) == [0.0, 0.5, 1.0]
    means, counts = latent.class_means(labelled, 10)
    assert (counts > latent.SMOKE_PER_CLASS).all()
    evaluator = FakeEvaluator()
    latent.transfer_matrix(ArgmaxGenerator(), evaluator, labelled, means, per_class=50)
    assert evaluator.seen == [10 * latent.SMOKE_PER_CLASS] * 10  # 10 targets x SMOKE_PER_CLASS


def test_principal_directions_find_the_direction_of_most_spread():
    gen = torch.Generator().manual_seed(0)
    vectors = torch.randn(500, 5, generator=gen) * torch.tensor([0.1, 3.0, 0.1, 1.0, 0.1])
    first, second = latent.principal_directions(vectors, k=2)
    assert abs(first[1]) / first.norm() > 0.99 and first.norm() == pytest.approx(3.0, rel=0.1)
    assert abs(second[3]) / second.norm() > 0.99
    z = torch.zeros(5)
    assert latent.along(z, first, [0.0, 1.0, -2.0]).tolist() == [
        [0.0] * 5, first.tolist(), (-2 * first).tolist()]


# ----------------------------------------------------------------------------- the explorer


def test_explorer_shows_a_static_grid_without_a_kernel():
    G = tiny_generator()
    explorer = latent_views.Explorer(G, torch.randn(16), {"a": torch.randn(16),
                                                        "b": torch.randn(16)}, span=1.5, steps=5)
    img = explorer.static_image()
    assert img.size == (5 * 30 + 2, 2 * 30 + 2)
    grid = explorer.grid()
    assert grid.shape == (2, 5, 1, 28, 28)
    torch.testing.assert_close(grid[0, 2], explorer.image(), atol=1e-5, rtol=0)  # alpha 0
    fig = explorer.show()
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    assert explorer.mode == "static" and explorer.widget is None


def test_explorer_sliders_redraw_the_image(widgets_mode):
    G = tiny_generator()
    direction = torch.randn(16) * 3
    explorer = latent_views.Explorer(G, torch.randn(16), {"a": direction}, evaluator=None)
    explorer.show()
    assert explorer.mode == "widgets" and explorer.widget is not None
    before = bytes(explorer.picture.value)
    assert before[:4] == b"\x89PNG"
    explorer.sliders["a"].value = 2.0
    assert explorer.values == {"a": 2.0} and bytes(explorer.picture.value) != before
    torch.testing.assert_close(explorer.point(), explorer.z + 2.0 * direction)
    explorer.widget.children[1].children[-1].click()  # Reset
    assert explorer.values == {"a": 0.0} and bytes(explorer.picture.value) == before


def test_explorer_displays_its_static_grid_as_a_png_below_the_widget(widgets_mode, monkeypatch):
    """A PNG renders in every kernel; `display(figure)` is only text where the inline backend
    registered no formatter (IPython 7 with ipykernel 6, Colab-like runtimes)."""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **_: shown.extend(objs))
    explorer = latent_views.Explorer(tiny_generator(), torch.randn(16), {"a": torch.randn(16)})
    explorer.show()
    assert len(shown) == 2 and shown[0] is explorer.widget
    assert shown[1].format == "png" and shown[1].data[:4] == b"\x89PNG"
