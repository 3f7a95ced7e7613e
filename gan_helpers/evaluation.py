"""Measured quality: scoring images and generators, and scoring during training.

`Evaluator` runs the evaluation classifier (`gan_helpers.classifier`: what it is, how it is trained
and cached) on images or on a generator's samples, and turns its outputs into `Scores` against the
real test split (`gan_helpers.metrics`: what FID, IS, coverage and confidence mean). The
`EvaluateEvery` callback scores the generator during `fit`, and `KeepBest`, `EarlyStopping` and
`MetricsWriter` act on its scores (`quality_callbacks` gives all four); the plots of the results
are in `viz` (`plot_quality`, `plot_histograms`).

    evaluator = Evaluator()                    # loads (or trains once) the classifier
    print(evaluator.table(evaluator.references()))
    scores = evaluator.score_generator(G)      # 5,000 samples, generated in chunks
    fit(G, D, loader, epochs=5, callbacks=[EvaluateEvery(evaluator)])

In smoke mode the number of generated (and reference) images per evaluation is capped at
`SMOKE_SAMPLES` (`config.smoke_cap`), so callers write their real sample counts.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints, checks, config, data
from .callbacks import Callback
from .classifier import Classifier, load_classifier
from .errors import UsageError, UsageTypeError
from .metrics import (
    N_SAMPLES,
    Scores,
    class_histogram,
    confidence,
    coverage,
    frechet_distance,
    gaussian_stats,
    inception_score,
)
from .models import generate
from .run_folder import write_atomic
from .state import Stop, TrainState
from .timing import Snapshots, Stopwatch

SMOKE_SAMPLES = 256
"""The most images an evaluation generates (and `references` scores) in smoke mode."""


def sample_count(n: int) -> int:
    """`n`, or at most `SMOKE_SAMPLES` in smoke mode: how many images an evaluation uses.
    `n` must be a whole number of at least 2 (a Gaussian is fitted to the samples' features)."""
    return config.smoke_cap(checks.whole_number("n", n, 2), SMOKE_SAMPLES)

# ----------------------------------------------------------------------------- the evaluator


class Evaluator:
    """Scores images and generators against the real test split with the evaluation classifier.

    `classifier` defaults to `load_classifier(dataset)` (trained once, then cached). The test
    split's features are computed once, on first use.
    """

    def __init__(self, classifier: Classifier | None = None, dataset: str | None = None, *,
                 device: torch.device | str | None = None, batch_size: int = 500,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.dataset = config.dataset_name(dataset or getattr(classifier, "dataset", None))
        if classifier is not None and not (hasattr(classifier, "features")
                                           and hasattr(classifier, "head")):
            raise UsageTypeError(f"classifier must be a gan_helpers Classifier (or None: "
                                 f"load_classifier's), got a {type(classifier).__name__}.")
        self.device = config.pick_device(device)
        self.root = root
        self.classifier = (classifier or load_classifier(self.dataset, root=root,
                                                         device=self.device)).to(self.device)
        self.classifier.eval()
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self.classes = data.dataset_info(self.dataset).classes
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's features `(N, FEATURE_DIM)` and class probabilities `(N, classes)`.

        `images`: uint8 pixels, or floats in [-1, 1]; processed in batches; other sizes than
        28x28 are resized to it.
        """
        checks.images("images", images, channels=1)
        if len(images) == 0:
            raise UsageError("images is empty: give at least one image to score.")
        feats, probs = [], []
        for i in range(0, len(images), self.batch_size):
            x = images[i:i + self.batch_size].to(self.device)
            x = data.normalize(x) if x.dtype == torch.uint8 else x.float()
            if x.shape[-2:] != (28, 28):  # e.g. the 64x64 DCGAN's images
                x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True,
                                  align_corners=False)
            f = self.classifier.features(x)
            feats.append(f.double().cpu())
            probs.append(self.classifier.head(f).softmax(1).double().cpu())
        return torch.cat(feats), torch.cat(probs)

    def test_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of the test split's features (computed once)."""
        if self._test is None:
            images, _ = data.load_tensors(self.dataset, self.root, train=False)
            self._test = gaussian_stats(self.outputs(images)[0])
        return self._test

    def score_outputs(self, features: torch.Tensor, probs: torch.Tensor) -> Scores:
        """`Scores` from features and probabilities (as `outputs` returns them)."""
        hist = class_histogram(probs)
        return Scores(fid=frechet_distance(*gaussian_stats(features), *self.test_stats()),
                      inception_score=inception_score(probs), coverage=coverage(hist),
                      classes=len(hist), confidence=confidence(probs), histogram=hist,
                      n=len(features))

    def score(self, images: torch.Tensor) -> Scores:
        """`Scores` of a batch of images (uint8, or floats in [-1, 1]) against the test split:
        at least two images `(N, 1, H, W)`."""
        checks.images("images", images, channels=1)
        if len(images) < 2:
            raise UsageError(f"Scoring needs at least 2 images (an FID fits a Gaussian to them), "
                             f"got {len(images)}.")
        return self.score_outputs(*self.outputs(images))

    def generator_outputs(self, G: nn.Module, n: int = N_SAMPLES, seed: int = 0,
                          chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, class probabilities and the requested labels of `n` images from `G`.

        `G` runs in eval mode (`models.generate`), `chunk` images at a time (memory stays flat);
        the noise comes from its own seeded generator, so every call sees the same noise and the
        global random state is untouched. A conditional `G` (with `num_classes`) is asked for
        every class in turn; for others the labels are -1. Smoke mode caps `n` (`sample_count`).
        """
        n = sample_count(n)
        G = checks.generator("G", G)
        gen = torch.Generator().manual_seed(checks.seed("seed", seed))
        chunk = checks.positive_int("chunk", chunk)
        latent_dim = getattr(G, "latent_dim", 100)
        checks.images("G's images", checks.generator_images(G, latent_dim), channels=1)
        num_classes = getattr(G, "num_classes", None)
        labels = torch.arange(n) % num_classes if num_classes else torch.full((n,), -1)
        feats, probs = [], []
        for i in range(0, n, chunk):
            z = torch.randn(min(chunk, n - i), latent_dim, generator=gen)
            cond = labels[i:i + len(z)] if num_classes else None
            f, p = self.outputs(generate(G, z, cond, batch_size=chunk))
            feats.append(f)
            probs.append(p)
        return torch.cat(feats), torch.cat(probs), labels

    def score_generator(self, G: nn.Module, n: int = N_SAMPLES, seed: int = 0,
                        chunk: int = 500) -> Scores:
        """`Scores` of `n` images from `G` (a conditional `G` is asked for all classes equally)."""
        features, probs, _ = self.generator_outputs(G, n, seed, chunk)
        return self.score_outputs(features, probs)

    def conditional_accuracy(self, G: nn.Module, n: int = N_SAMPLES,
                             seed: int = 0) -> tuple[float, list[float]]:
        """How often the classifier sees the class a conditional `G` was asked for: overall, and
        per class. `n` images, the classes in turn."""
        if not getattr(G, "num_classes", None):
            raise ValueError("conditional_accuracy needs a conditional generator (G(z, labels)).")
        _, probs, labels = self.generator_outputs(G, n, seed)
        hits = (probs.argmax(1) == labels).double()
        per_class = [hits[labels == c].mean().item() for c in range(G.num_classes)]
        return hits.mean().item(), per_class

    def references(self, n: int = N_SAMPLES, seed: int = 0) -> dict[str, Scores]:
        """The scale for any result, at the same sample size `n`:

        - `real`: `n` real training images against the test split: the best a generator can hope
          for (the floor of FID);
        - `noise`: `n` images of uniform noise in [-1, 1]: the ceiling.

        Smoke mode caps `n` as it caps the generator's samples (`sample_count`).
        """
        n = sample_count(n)
        gen = torch.Generator().manual_seed(checks.seed("seed", seed))
        images, _ = data.load_tensors(self.dataset, self.root, train=True)
        pick = torch.randperm(len(images), generator=gen)[:n]
        noise = torch.rand(len(pick), 1, 28, 28, generator=gen) * 2 - 1
        return {"real (training split)": self.score(images[pick]),
                "noise (uniform)": self.score(noise)}

    def table(self, rows: Mapping[str, Scores | Mapping[str, Any]]) -> str:
        """The rows as an aligned text table: FID, IS, coverage and confidence."""
        w = max([22, *(len(name) for name in rows)])
        lines = [f"{'':<{w}} {'FID':>8} {'IS':>6} {'coverage':>9} {'confident':>10}"]
        for name, s in rows.items():
            s = s if isinstance(s, Mapping) else s.as_dict()
            lines.append(f"{name:<{w}} {s['fid']:>8.2f} {s['inception_score']:>6.2f} "
                         f"{s['coverage']:>6}/{s['classes']:<2} {s['confidence']:>10.0%}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- during training


def score_snapshots(G: nn.Module, snapshots: Snapshots, evaluator: Evaluator,
                    n: int = N_SAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """Each snapshot of a run on a wall-clock budget (`callbacks.WallClockBudget`) scored, in
    order: `{"time", "elapsed", "step", **scores}`. A copy of `G` is loaded with each snapshot's
    weights (`G` itself is left as it is); the noise is seeded by `seed`."""
    scored = copy.deepcopy(G)
    curve = []
    for snap in snapshots.taken:
        scored.load_state_dict(snap["weights"])
        scores = evaluator.score_generator(scored, n=n, seed=seed)
        curve.append({"time": snap["time"], "elapsed": snap["elapsed"], "step": snap["step"],
                      **scores.as_dict()})
    return curve


class EvaluateEvery(Callback):
    """Scores the generator every `every` epochs during `fit` (the moving average of its weights
    when the run keeps one: `fit(ema=...)`, `TrainState.sampling_G`). The results, one dict per
    evaluation (`Scores.as_dict()` plus `epoch`, `step` and `seconds`, the training time so far
    without the time spent evaluating), are this callback's `records`, also shown as
    `history["eval"]`; they and the training clock are kept in the checkpoint, so a resumed run
    continues both.

    - `every_steps=N`: score every N steps instead (to see what happens within an epoch);
    - `raw=True`: in a run with a moving average, also score G's own weights on the same noise;
      each record then has them under `"raw"` (`raw_records(records)` lists them as records).

    `KeepBest`, `EarlyStopping` and `MetricsWriter` act on its records (`quality_callbacks`
    gives all four, as the command line's `--eval-every` uses them).
    """

    def __init__(self, evaluator: Evaluator | None = None, every: int = 1, n: int = N_SAMPLES,
                 verbose: bool = True, every_steps: int | None = None, raw: bool = False) -> None:
        every = checks.positive_int("every", every)
        every_steps = checks.optional(checks.positive_int, "every_steps", every_steps)
        if evaluator is not None and not hasattr(evaluator, "score_generator"):
            raise UsageTypeError(f"evaluator must be an Evaluator (or None: one is made for the "
                                 f"loader's dataset), got a {type(evaluator).__name__}.")
        self.evaluator, self.every, self.n = evaluator, every, sample_count(n)
        self.verbose, self.every_steps, self.raw = verbose, every_steps, raw
        self.records: list[dict[str, Any]] = []
        self.clock = Stopwatch()
        self._resumed_seconds = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records, "seconds": self.clock.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = list(state["records"])
        self._resumed_seconds = state["seconds"]

    def on_fit_start(self, state: TrainState) -> None:
        if self.evaluator is None:
            if state.record["dataset"] is None:
                raise UsageError("EvaluateEvery needs an evaluator for a loader whose dataset it "
                                 "cannot tell: pass EvaluateEvery(Evaluator(dataset=...)).")
            self.evaluator = Evaluator(dataset=state.record["dataset"], device=state.device)
        self.evaluator.test_stats()  # before the clock starts
        state.history["eval"] = self.records
        self.clock.start(self._resumed_seconds)

    def on_step_end(self, state: TrainState) -> None:
        if self.every_steps and state.step % self.every_steps == 0:
            self.evaluate(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if not self.every_steps and (state.epoch + 1) % self.every == 0:
            self.evaluate(state)

    @property
    def best(self) -> dict[str, Any] | None:
        """The evaluation with the lowest FID so far (None before the first)."""
        return best_record(self.records)

    def evaluate(self, state: TrainState) -> dict[str, Any]:
        """Score the generator now and add the result to `records`."""
        with self.clock.paused():  # evaluating is not training: the clock stops meanwhile
            seconds = self.clock.elapsed()
            scores = self.evaluator.score_generator(state.sampling_G, n=self.n)
            entry = {"epoch": state.step // state.steps_per_epoch, "step": state.step,
                     "seconds": seconds, **scores.as_dict()}
            if self.raw and state.G_ema is not None:
                entry["raw"] = self.evaluator.score_generator(state.G, n=self.n).as_dict()
        self.records.append(entry)
        if self.verbose:
            print(f"epoch {entry['epoch']}, step {entry['step']} · {seconds:.0f} s of training · "
                  f"{scores}", flush=True)
        return entry


def best_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluation with the lowest FID (the first of equals); None if there is none."""
    return min(records, key=lambda e: e["fid"], default=None)


class _OnNewRecord(Callback):
    """A callback that acts once on each new evaluation in `history["eval"]` (put it after the
    `EvaluateEvery` that makes them: it sees each record in the same hook)."""

    seen = 0

    def on_fit_start(self, state: TrainState) -> None:
        self.seen = len(state.history.get("eval", ()))  # a resumed run's earlier records

    def _check(self, state: TrainState) -> None:
        records = state.history.get("eval", [])
        if len(records) > self.seen:
            self.seen = len(records)
            self.on_record(state, records)

    on_step_end = on_epoch_end = _check

    def on_record(self, state: TrainState, records: list[dict[str, Any]]) -> None:
        """Called with all the records when a new one (the last) has been added."""


class KeepBest(_OnNewRecord):
    """With a run folder, saves the checkpoint whose evaluation has the lowest FID so far as
    `best.pt` (its `best` entry says the FID, epoch and step; with a moving average, it holds
    the average that scored it)."""

    def on_record(self, state: TrainState, records: list[dict[str, Any]]) -> None:
        entry = records[-1]
        if state.files is not None and best_record(records) is entry:
            checkpoints.write(state, state.files.best,
                              best={"fid": entry["fid"], "epoch": entry["epoch"],
                                    "step": entry["step"]})


class EarlyStopping(_OnNewRecord):
    """Stops training (`Stop.EARLY_STOPPED`) when the FID has not improved for `patience`
    evaluations in a row."""

    def __init__(self, patience: int) -> None:
        self.patience = checks.positive_int("patience", patience)

    def on_record(self, state: TrainState, records: list[dict[str, Any]]) -> None:
        best = best_record(records)
        if len(records) - 1 - records.index(best) >= self.patience:
            state.request_stop(f"early stop: the FID has not improved for {self.patience} "
                               f"evaluations (best {best['fid']:.2f} at epoch {best['epoch']})",
                               Stop.EARLY_STOPPED)


class MetricsWriter(Callback):
    """With a run folder, writes the evaluations of `evaluating` when training ends:
    `metrics.json` (the dataset, the sample count, the decay of the moving average scored or
    null, the classifier's test accuracy, the real and noise references, the best evaluation
    and all of them; written atomically) and `quality.png`, and prints the best FID.

    After a run that ended well, a `metrics.json` that cannot be written is an error; after a
    failed one it is a warning, as a plot that cannot be drawn always is: neither hides what
    ended training."""

    def __init__(self, evaluating: EvaluateEvery) -> None:
        self.evaluating = evaluating

    def on_fit_end(self, state: TrainState) -> None:
        files, records = state.files, self.evaluating.records
        if files is None or not records or not state.trained_now or state.replacing:
            return
        evaluator, n = self.evaluating.evaluator, self.evaluating.n
        try:
            references = evaluator.references(n=n)
            best = best_record(records)
            write_atomic(files.metrics, json.dumps({
                "dataset": evaluator.dataset, "samples": n, "ema": state.record["settings"].get(
                    "ema"), "classifier_test_accuracy": evaluator.classifier.test_accuracy,
                "references": {k: v.as_dict() for k, v in references.items()},
                "best": best, "eval": records}, indent=1), "metrics")
        except Exception as err:
            if state.error is None:
                raise
            _warn(files.metrics, err)
            return
        try:
            from . import viz  # matplotlib, only now

            viz.save_quality_plot(records, files.quality, references)
        except Exception as err:  # noqa: BLE001 - a plot never hides the run's own outcome
            _warn(files.quality, err)
        print(f"Best classifier FID {best['fid']:.2f} at epoch {best['epoch']} "
              f"(real images: {references['real (training split)'].fid:.2f}, noise: "
              f"{references['noise (uniform)'].fid:.2f}) -> {files.best}")


def _warn(path: Any, err: BaseException) -> None:
    print(f"warning: {path} not written: {type(err).__name__}: {err}", file=sys.stderr)


def quality_callbacks(evaluator: Evaluator | None = None, *, every: int = 1,
                      n: int = N_SAMPLES, patience: int | None = None) -> list[Callback]:
    """Scoring during training with everything around it, as `train --eval-every` runs it:
    `EvaluateEvery`, `KeepBest` (`best.pt`), `EarlyStopping` when `patience` is given, and
    `MetricsWriter` (`metrics.json`, `quality.png`)."""
    evaluating = EvaluateEvery(evaluator, every=every, n=n)
    stopping = [EarlyStopping(patience)] if patience is not None else []
    return [evaluating, KeepBest(), *stopping, MetricsWriter(evaluating)]


def raw_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`EvaluateEvery(raw=True)`'s records (`history["eval"]`) with G's own scores in place of
    the moving average's (epoch, step and seconds kept), for `viz.plot_quality`; records without
    raw scores are left out."""
    return [{**{k: v for k, v in e.items() if k != "raw"}, **e["raw"]} for e in records
            if "raw" in e]
