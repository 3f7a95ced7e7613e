"""The command line: `python -m gan_helpers train --model dcgan --epochs 5 --out runs/dcgan`.

The run folder gets a grid of samples per epoch (`grids/`), the final grid (`final.png`), the
loss curves (`losses.png`), the history (`history.json`) and `checkpoint.pt`; `--resume`
continues from that checkpoint exactly. `--eval-every N` scores the generator every N epochs
(`gan_helpers.evaluation`): `metrics.json`, `quality.png` and `best.pt` (the best checkpoint by
classifier FID) join them; `--early-stop K` stops when the FID has not improved for K evaluations.

`--model cdcgan` (or `cmlp`) trains a conditional GAN (lesson 06); `--loss` picks the objective and
`--spectral-norm`, `--label-smoothing` and `--instance-noise` the stabilisers of lesson 08:

    python -m gan_helpers train --model dcgan --loss wgan-gp --epochs 5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from . import config
from .checkpoints import CheckpointError
from .data import DatasetCorruptError, DatasetUnavailableError, make_loader
from .models import CONDITIONAL, MODELS
from .objectives import OBJECTIVES
from .recipes import Recipe
from .training import NonFiniteLossError, SpeedOptions, fit
from .viz import save_grid, save_history_plot


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gan_helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a GAN headlessly")
    t.add_argument("--model", choices=[*MODELS, *CONDITIONAL], default="dcgan",
                   help="cmlp and cdcgan are conditional (lesson 06)")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: $GAN_DATASET,"
                   " else mnist)")
    t.add_argument("--out", type=Path, default=None, help="run folder (default: runs/MODEL)")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default 2e-4; 1e-4 with --loss wgan-gp)")
    t.add_argument("--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's betas (default 0.5 0.999; 0.0 0.9 with --loss wgan-gp)")
    t.add_argument("--lr-schedule", choices=["linear"], default=None,
                   help="decay the learning rates linearly to 0 over the run")
    t.add_argument("--latent-dim", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    t.add_argument("--max-steps", type=int, default=None, help="stop after N steps in total")
    st = t.add_argument_group("objective and stabilisers (lesson 08)")
    st.add_argument("--loss", choices=list(OBJECTIVES), default="bce",
                    help="bce: non-saturating (default); saturating: the minimax original; "
                         "hinge; wgan-gp: gradient penalty 10, 5 critic steps per G step")
    st.add_argument("--d-norm", choices=["batch", "layer", "none"], default=None,
                    help="the DCGAN discriminator's normalisation (default: batch; layer with "
                         "wgan-gp; none with --spectral-norm)")
    st.add_argument("--spectral-norm", action="store_true",
                    help="spectral normalisation on the discriminator's layers")
    st.add_argument("--label-smoothing", type=float, default=None, metavar="LABEL",
                    help="one-sided label smoothing: label real images LABEL (e.g. 0.9)")
    st.add_argument("--instance-noise", type=float, default=0.0, metavar="SIGMA",
                    help="add Gaussian noise of std SIGMA to D's inputs, annealed to 0")
    fast = t.add_argument_group("speed (see the README's 'Training speed')")
    fast.add_argument("--amp", choices=["bf16"], default=None, help="bfloat16 autocast")
    fast.add_argument("--compile", action="store_true", help="torch.compile both networks")
    fast.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    fast.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    fast.add_argument("--sync-every", type=int, default=None,
                      help="read the losses back from the device every N steps")
    ev = t.add_argument_group("evaluation (see the README's 'Measuring quality')")
    ev.add_argument("--eval-every", type=int, default=0, metavar="N",
                    help="score the generator every N epochs (classifier FID, IS, coverage); "
                         "writes metrics.json, quality.png and best.pt")
    ev.add_argument("--eval-samples", type=int, default=5000, metavar="N",
                    help="generated images per evaluation (default 5000)")
    ev.add_argument("--early-stop", type=int, default=None, metavar="K",
                    help="stop when the FID has not improved for K evaluations "
                         "(implies --eval-every 1 unless given)")
    return parser


def train(args: argparse.Namespace) -> int:
    dataset = config.dataset_name(args.dataset)
    device = config.pick_device(args.device)
    out = args.out or config.runs_dir() / args.model
    if args.resume and not (out / "checkpoint.pt").exists():
        print(f"error: --resume, but there is no checkpoint at {out / 'checkpoint.pt'}",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    speed = SpeedOptions(amp=args.amp, compile=args.compile, channels_last=args.channels_last)
    recipe = Recipe(model=args.model, loss=args.loss, lr_g=args.lr, lr_d=args.lr,
                    betas=tuple(args.betas) if args.betas else None, d_norm=args.d_norm,
                    spectral_norm=args.spectral_norm, label_smoothing=args.label_smoothing,
                    instance_noise=args.instance_noise, latent_dim=args.latent_dim)
    config.seed_everything(args.seed)  # the networks' initial weights too
    parts = recipe.build(device)
    size = MODELS[recipe.base_model][2]
    callbacks = list(parts.callbacks)
    loader = make_loader(dataset, batch_size=args.batch_size, device=device, seed=args.seed,
                         limit=args.limit, image_size=None if size == 28 else size)
    meta = {**recipe.settings(), "dataset": dataset, "batch_size": args.batch_size,
            "seed": args.seed}
    evaluating = None
    if args.eval_every or args.early_stop:
        from .evaluation import EvaluateEvery, Evaluator

        evaluator = Evaluator(dataset=dataset, device=device)
        evaluating = EvaluateEvery(evaluator, every=args.eval_every or 1, n=args.eval_samples,
                                   patience=args.early_stop, keep_best=True)
        callbacks.append(evaluating)
    print(f"Training {args.model} on {dataset} ({len(loader.images):,} images, "
          f"{len(loader)} steps per epoch) on {device} -> {out}")
    start = time.perf_counter()
    try:
        history = fit(parts.G, parts.D, loader, epochs=args.epochs, objective=parts.objective,
                      opt_g=parts.opt_g, opt_d=parts.opt_d, lr_schedule=args.lr_schedule,
                      device=device, run_dir=out, seed=args.seed, resume=args.resume,
                      max_steps=args.max_steps, meta=meta, speed=speed,
                      sync_every=args.sync_every, callbacks=callbacks)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        _write_outputs(out, err.history, evaluating)  # type: ignore[attr-defined]
        return 1
    _write_outputs(out, history, evaluating)
    print(f"{history.stop_reason} after {len(history['loss_d'])} steps in "
          f"{time.perf_counter() - start:.0f} s. Final grid: {out / 'final.png'}")
    return 0


def _write_outputs(out: Path, history, evaluating=None) -> None:
    """losses.png, history.json and final.png; with an `EvaluateEvery`, the metrics too."""
    save_history_plot(history, out / "losses.png")

    def finite(v):  # NaN (e.g. G's gradient on WGAN-GP's critic-only steps) is not JSON: null
        return None if isinstance(v, float) and not math.isfinite(v) else v

    (out / "history.json").write_text(json.dumps(
        {"stop_reason": history.stop_reason,
         **{k: [finite(x) for x in v] for k, v in history.items()}}, allow_nan=False))
    if history.samples is not None:
        save_grid(history.samples, out / "final.png", scale=2)
    if evaluating is not None:
        _write_metrics(out, history, evaluating)


def _write_metrics(out: Path, history, callback) -> None:
    """metrics.json (every evaluation, the reference values, the classifier) and quality.png."""
    from .evaluation import save_quality_plot

    evaluator, entries, n = callback.evaluator, history.get("eval", []), callback.n
    references = evaluator.references(n=n)
    (out / "metrics.json").write_text(json.dumps({
        "dataset": evaluator.dataset, "samples": n,
        "classifier_test_accuracy": evaluator.classifier.test_accuracy,
        "references": {k: v.as_dict() for k, v in references.items()},
        "best": min(entries, key=lambda e: e["fid"], default=None), "eval": entries,
    }, indent=1))
    if entries:
        save_quality_plot(entries, out / "quality.png", references)
        best = min(entries, key=lambda e: e["fid"])
        print(f"Best classifier FID {best['fid']:.2f} at epoch {best['epoch']} "
              f"(real images: {references['real (training split)'].fid:.2f}, noise: "
              f"{references['noise (uniform)'].fid:.2f}) -> {out / 'best.pt'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return train(args)
    except (DatasetUnavailableError, DatasetCorruptError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
