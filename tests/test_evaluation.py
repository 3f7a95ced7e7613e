"""The evaluation module: the metrics on known inputs, the classifier's cache and the callback.
(The time-to-quality benchmark end to end: tests/test_bench_time_to_quality.py.)"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_helpers import classifier, config, evaluation, metrics, models
from gan_helpers.checkpoints import load_checkpoint
from gan_helpers.data import make_loader
from gan_helpers.state import Stop
from gan_helpers.training import fit
from tests.helpers import small_conditional_g, small_gan

TINY = {"epochs": 1, "limit": 256}  # a classifier trained in well under a second


# ----------------------------------------------------------------------------- metrics


def test_identical_feature_sets_give_fid_zero():
    feats = torch.randn(2000, 32, generator=torch.Generator().manual_seed(0)) * 3 + 1
    assert metrics.fid_from_features(feats, feats.clone()) == pytest.approx(0.0, abs=1e-6)


def test_singular_covariances_are_handled():
    # A collapsed generator: every sample the same, a covariance of rank 0.
    a = torch.ones(100, 16)
    b = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    value = metrics.fid_from_features(a, b)
    assert math.isfinite(value) and value > 0


def test_two_gaussians_give_the_closed_form_value():
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 4 + (1 + 1 + 4)
    assert metrics.frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == \
        pytest.approx(expected, rel=1e-9)
    # A general case: the same covariance rotated, so only the means differ.
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(2)))
    sigma = q @ torch.diag(torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)) @ q.T
    assert metrics.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(5.0, rel=1e-9)
    # And from samples: two large sets drawn from those Gaussians come close to the value.
    gen = torch.Generator().manual_seed(3)
    a = mu1 + torch.randn(200_000, 3, generator=gen) * s1.sqrt()
    b = mu2 + torch.randn(200_000, 3, generator=gen) * s2.sqrt()
    assert metrics.fid_from_features(a, b) == pytest.approx(expected, rel=0.02)


def test_one_class_gives_coverage_one_and_a_one_class_histogram():
    probs = torch.full((300, 10), 0.01)
    probs[:, 7] = 0.91
    hist = metrics.class_histogram(probs)
    assert hist == [0.0] * 7 + [1.0] + [0.0] * 2
    assert metrics.coverage(hist) == 1
    assert metrics.confidence(probs) == 1.0
    assert metrics.inception_score(probs) == pytest.approx(1.0)


def test_uniform_confident_classes_give_full_coverage_and_the_top_score():
    probs = torch.eye(10).repeat(50, 1)
    hist = metrics.class_histogram(probs)
    assert metrics.coverage(hist) == 10 and hist == pytest.approx([0.1] * 10)
    assert metrics.inception_score(probs) == pytest.approx(10.0, rel=1e-6)
    assert metrics.confidence(torch.full((4, 10), 0.1)) == 0.0


# ----------------------------------------------------------------------------- the classifier


def test_classifier_is_trained_once_then_loaded(tiny_data, capsys, monkeypatch):
    model = classifier.load_classifier(**TINY, device="cpu")
    assert "test accuracy" in capsys.readouterr().out and 0 <= model.test_accuracy <= 1
    path = classifier.classifier_path(**TINY)
    assert path.exists() and path.parent == tiny_data["root"] / "classifiers"
    assert path != classifier.classifier_path()  # a short schedule never replaces the real one

    def no_training(*args, **kwargs):
        raise AssertionError("a current cached classifier must be loaded, not retrained")
    monkeypatch.setattr(classifier, "train_classifier", no_training)
    again = classifier.load_classifier(**TINY, device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    assert "cached" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["version", "key", "corrupt", "not a classifier"])
def test_a_stale_or_corrupt_cached_classifier_is_retrained(tiny_data, capsys, damage):
    classifier.load_classifier(**TINY, device="cpu", verbose=False)
    path = classifier.classifier_path(**TINY)
    saved = torch.load(path, weights_only=True)
    if damage == "version":
        saved["version"] = classifier.VERSION - 1
        torch.save(saved, path)
    elif damage == "key":
        saved["key"] = "mnist/v1/epochs=1/limit=256/seed=0"
        torch.save(saved, path)
    elif damage == "corrupt":
        path.write_bytes(path.read_bytes()[:200])
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    capsys.readouterr()
    model = classifier.load_classifier(**TINY, device="cpu")
    out = capsys.readouterr().out
    assert "Retraining" in out and "test accuracy" in out
    fresh = torch.load(path, weights_only=True)
    assert fresh["version"] == classifier.VERSION
    assert fresh["key"] == classifier.classifier_key(**TINY) == model.key


def test_smoke_mode_shrinks_the_classifier_and_says_why_it_trains(tiny_data, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(config, "SMOKE", True)
    monkeypatch.setattr(classifier, "SMOKE_SCHEDULE", {"epochs": 1, "limit": 200})
    model = classifier.load_classifier(device="cpu")  # the default schedule, as lessons ask
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("No evaluation classifier cached yet: training one")
    assert "200 fashion-mnist images for 1 epoch (about" in first and "laptop CPU" in first
    assert model.key == classifier.classifier_key(epochs=1, limit=200)
    assert classifier.classifier_path(epochs=1, limit=200).exists()  # under its own name
    assert not classifier.classifier_path().exists()  # the real one is left alone
    monkeypatch.setattr(config, "SMOKE", False)
    assert classifier._schedule(classifier.EPOCHS, None) == (classifier.EPOCHS, None)


def test_the_training_notice_estimates_from_the_measured_cpu_speed(monkeypatch):
    monkeypatch.setattr(classifier, "CPU_IMAGES_PER_S", 1000)
    assert classifier._cpu_estimate(4_000) == "about 4 s"
    assert classifier._cpu_estimate(60_000) == "about 60 s"
    assert classifier._cpu_estimate(600_000) == "about 10 minutes"


def test_training_the_classifier_leaves_the_global_random_state_alone(tiny_data):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    classifier.train_classifier(**TINY, device="cpu", verbose=False)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- evaluator


@pytest.fixture
def evaluator(tiny_data):
    return evaluation.Evaluator(classifier.load_classifier(**TINY, device="cpu", verbose=False),
                                device="cpu")


def test_evaluator_scores_real_images_far_better_than_noise(evaluator):
    refs = evaluator.references(n=200)
    real, noise = refs["real (training split)"], refs["noise (uniform)"]
    assert real.n == noise.n == 200
    assert 0 <= real.fid < noise.fid
    assert sum(real.histogram) == pytest.approx(1.0)
    table = evaluator.table(refs)
    assert "FID" in table and "noise (uniform)" in table


def test_generator_is_scored_in_chunks_with_its_own_noise(evaluator):
    G = models.MLPGenerator(latent_dim=8, hidden=(16,))
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    a = evaluator.score_generator(G, n=130, chunk=50)
    b = evaluator.score_generator(G, n=130, chunk=130)
    assert torch.equal(torch.rand(2), expected)  # the global random state is untouched
    assert a.n == 130 and a.fid == pytest.approx(b.fid, rel=1e-6)
    assert G.training  # back in training mode


def test_smoke_mode_caps_the_samples_of_every_evaluation(evaluator, monkeypatch):
    G = models.MLPGenerator(latent_dim=8, hidden=(16,))
    monkeypatch.setattr(evaluation, "SMOKE_SAMPLES", 60)
    monkeypatch.setattr(config, "SMOKE", True)
    assert evaluator.score_generator(G, n=5000).n == 60
    assert {s.n for s in evaluator.references(n=5000).values()} == {60}
    assert evaluation.EvaluateEvery(evaluator, n=5000).n == 60
    assert evaluator.score_generator(G, n=40).n == 40  # fewer than the cap: as asked
    monkeypatch.setattr(config, "SMOKE", False)
    assert evaluation.EvaluateEvery(evaluator, n=5000).n == 5000
    assert evaluator.score_generator(G, n=70).n == 70


def test_callback_adds_evaluations_to_the_history_and_keeps_the_best(evaluator, tmp_path):
    G, D = small_gan()
    loader = make_loader(batch_size=64, device="cpu")
    callback = evaluation.EvaluateEvery(evaluator, every=1, n=100, verbose=False)
    history = fit(G, D, loader, epochs=2, run_dir=tmp_path / "run",
                  callbacks=[callback, evaluation.KeepBest()], progress=False)
    entries = history["eval"]
    assert [e["epoch"] for e in entries] == [1, 2] and [e["step"] for e in entries] == [4, 8]
    assert all(e["seconds"] > 0 and e["n"] == 100 and len(e["histogram"]) == 10
               for e in entries)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best"]["fid"] == min(e["fid"] for e in entries)
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["callbacks"]["EvaluateEvery"]
    assert saved["records"] == entries  # the callback's own state, in a safe checkpoint
    assert saved["seconds"] >= entries[-1]["seconds"]


def test_early_stop_when_the_fid_stops_improving(evaluator, monkeypatch):
    fids = iter([5.0, 4.0, 4.5, 4.2, 3.0])

    def fake_score(G, n, **kwargs):
        return metrics.Scores(next(fids), 1.0, 1, 10, 0.5, [0.1] * 10, n)
    monkeypatch.setattr(evaluator, "score_generator", fake_score)
    G, D = small_gan()
    callback = evaluation.EvaluateEvery(evaluator, n=10, verbose=False)
    history = fit(G, D, make_loader(batch_size=64, device="cpu"), epochs=5,
                  callbacks=[callback, evaluation.EarlyStopping(patience=2)], progress=False)
    assert [e["fid"] for e in history["eval"]] == [5.0, 4.0, 4.5, 4.2]
    assert history.stop is Stop.EARLY_STOPPED
    assert history.stop_reason.startswith("early stop: the FID has not improved for 2")


def test_evaluations_every_n_steps(evaluator):
    G, D = small_gan()
    callback = evaluation.EvaluateEvery(evaluator, n=50, every_steps=3, verbose=False)
    history = fit(G, D, make_loader(batch_size=64, device="cpu"), epochs=2,
                  callbacks=[callback], progress=False)
    assert [e["step"] for e in history["eval"]] == [3, 6]
    with pytest.raises(ValueError, match="at least 1"):
        evaluation.EvaluateEvery(evaluator, every_steps=0)


def test_raw_scores_beside_the_moving_average_on_the_same_noise(evaluator):
    G, D = small_gan()
    callback = evaluation.EvaluateEvery(evaluator, n=50, every_steps=4, verbose=False, raw=True)
    history = fit(G, D, make_loader(batch_size=64, device="cpu"), epochs=2, callbacks=[callback],
                  progress=False, ema=0.9)
    entries = history["eval"]
    assert [e["step"] for e in entries] == [4, 8]
    assert entries[-1]["fid"] == evaluator.score_generator(history.G_ema, n=50).fid
    assert entries[-1]["raw"] == evaluator.score_generator(G, n=50).as_dict()
    assert entries[-1]["raw"]["fid"] != entries[-1]["fid"]
    raws = evaluation.raw_records(entries)
    assert [(r["step"], r["fid"]) for r in raws] == [(e["step"], e["raw"]["fid"]) for e in entries]
    assert all("raw" not in r and r["seconds"] == e["seconds"] for r, e in zip(raws, entries))
    # Without a moving average there is nothing else to score.
    G, D = small_gan()
    callback = evaluation.EvaluateEvery(evaluator, n=50, every_steps=4, verbose=False, raw=True)
    history = fit(G, D, make_loader(batch_size=64, device="cpu"), epochs=1, callbacks=[callback],
                  progress=False)
    assert "raw" not in history["eval"][0] and evaluation.raw_records(history["eval"]) == []


def test_conditional_accuracy_asks_for_every_class(evaluator):
    G = small_conditional_g()
    accuracy, per_class = evaluator.conditional_accuracy(G, n=100)
    assert len(per_class) == 10 and 0 <= accuracy <= 1
    assert accuracy == pytest.approx(sum(per_class) / 10)  # 10 images of each class
    scores = evaluator.score_generator(G, n=100)
    assert scores.n == 100
    with pytest.raises(ValueError, match="conditional generator"):
        evaluator.conditional_accuracy(models.MLPGenerator(latent_dim=8, hidden=(16,)), n=10)


# ----------------------------------------------------------------------------- the command line


def test_cli_evaluates_writes_metrics_and_keeps_the_best(tiny_data, tmp_path, capsys):
    from gan_helpers.__main__ import main

    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out), "--eval-every", "1", "--eval-samples", "100"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["eval"]] == [1, 2]
    assert metrics["best"]["fid"] == min(e["fid"] for e in metrics["eval"])
    assert set(metrics["references"]) == {"real (training split)", "noise (uniform)"}
    assert {"quality.png", "best.pt", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
    assert load_checkpoint(out / "best.pt")["best"]["fid"] == metrics["best"]["fid"]
    assert "Best classifier FID" in capsys.readouterr().out


# ----------------------------------------------------------------------------- module boundaries

PLOTTING = ("matplotlib", "ipywidgets")
PACKAGE = Path(__file__).resolve().parent.parent / "gan_helpers"


def test_images_metrics_and_the_classifier_load_no_plotting_library():
    """Training and scoring never pay for pyplot or widgets: these modules import neither."""
    code = ("import sys, gan_helpers.images, gan_helpers.metrics, gan_helpers.classifier; "
            f"print([m for m in {PLOTTING} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["images", "metrics", "classifier", "evaluation"])
def test_measuring_modules_import_no_plotting_library(module):
    """Their own imports, wherever they are in the file (the plots live in viz)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in PLOTTING}
    assert "viz" not in imported and "dashboard" not in imported
