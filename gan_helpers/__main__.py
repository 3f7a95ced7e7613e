"""The command line: train a GAN, draw samples from a run, and measure a run's quality.

    python -m gan_helpers train --model dcgan --epochs 5 --out runs/dcgan
    python -m gan_helpers sample runs/dcgan --n 64 --out samples.png
    python -m gan_helpers evaluate runs/dcgan --n 5000

`train` fills the run folder: a grid of samples per epoch (`grids/`), `checkpoint.pt`, the
history (`history.json`), the final grid (`final.png`) and the loss curves (`losses.png`).
`--resume` continues the run exactly, under the settings it was made with; training into a
folder that holds a run needs `--resume` or `--overwrite`. `--eval-every N` scores the generator
every N epochs: `metrics.json`, `quality.png` and `best.pt` (the best checkpoint by classifier
FID) join them; `--early-stop K` stops when the FID has not improved for K evaluations.

`--model cdcgan` (or `cmlp`) trains a conditional GAN (lesson 06); `--loss` picks the objective and
`--spectral-norm`, `--label-smoothing` and `--instance-noise` the stabilisers of lesson 08.
`--recipe` picks the DCGAN's defaults: `tuned` (on a CPU, the default: 32 channels, batches of 64,
lr 8e-4, bf16 autocast where the CPU has it natively: the most quality per second measured) or
`paper` (the DCGAN paper's).
`--ema DECAY` keeps a moving average of the generator's weights, which the grids, the scores,
`best.pt`, `sample` and `evaluate` then use (`--raw` asks them for the generator's own weights).
`sample` and `evaluate` rebuild the generator from what its checkpoint records (the best one when
there is one), so they need no model options.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from . import checks, config, run_config
from .checkpoints import CheckpointWriteError, load_checkpoint, load_generator
from .data import make_loader
from .errors import GanHelpersError, NonFiniteLossError
from .images import enlarge, grid_image
from .models import generate
from .run_config import NON_NEGATIVE, POSITIVE, SEED, RunConfig
from .run_folder import RunFiles, RunLock, RunWriteError
from .state import Stop
from .training import LR_SCHEDULES, FitOptions, SpeedOptions, fit

SAMPLES = run_config.number(int, 1, high=100_000)  # sample --n; a PNG grid is limited further
EVAL_SAMPLES = run_config.number(int, 2, high=100_000)
MIN_FID_SAMPLES = 1000
"""Below this many samples `evaluate` warns that its FID is not to be trusted (the classifier's
features have 128 dimensions: fewer samples give a noisy, strongly biased estimate)."""


# ----------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gan_helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_options(sub.add_parser("train", help="train a GAN headlessly"))
    s = sub.add_parser("sample", help="a grid (PNG) or tensor (.pt) of samples from a run")
    _run_options(s)
    s.add_argument("--n", type=SAMPLES, default=64, help="how many samples (default 64)")
    s.add_argument("--class", dest="label", type=NON_NEGATIVE, default=None, metavar="K",
                   help="only class K (conditional models)")
    s.add_argument("--seed", type=SEED, default=0, help="the noise's seed (default 0)")
    s.add_argument("--out", type=Path, default=None,
                   help="a .png grid or a .pt tensor (default: RUN_DIR/samples.png)")
    e = sub.add_parser("evaluate", help="classifier FID, IS, coverage and confidence of a run")
    _run_options(e)
    e.add_argument("--n", type=EVAL_SAMPLES, default=5000,
                   help="generated images to score (default 5000; FID needs 1000 or more)")
    e.add_argument("--seed", type=SEED, default=0, help="the noise's seed (default 0)")
    return parser


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder made by train")
    p.add_argument("--checkpoint", choices=["best", "last"], default=None,
                   help="best.pt or checkpoint.pt (default: best.pt if there is one)")
    p.add_argument("--device", type=run_config.device, default=None, help="cpu, cuda, mps")
    p.add_argument("--raw", action="store_true",
                   help="the generator's own weights, not their moving average (runs trained "
                        "with --ema)")


def _train_options(t: argparse.ArgumentParser) -> None:
    run_config.add_recipe_flags(t)
    t.add_argument("--epochs", type=POSITIVE, default=5)
    t.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/DATASET/MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT")
    t.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    t.add_argument("--lr-schedule", choices=[*LR_SCHEDULES, "none"], default=None,
                   help="linear: decay the learning rates linearly to 0 over the run; "
                        "late-linear: over its second half; none: constant (default: the "
                        "recipe's)")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--limit", type=POSITIVE, default=None, help="train on the first N images")
    t.add_argument("--max-steps", type=POSITIVE, default=None, help="stop after N steps in all")
    run_config.add_data_flags(t)
    fast = t.add_argument_group("speed (see the README's 'Training speed')")
    fast.add_argument("--amp", choices=["bf16", "auto", "off"], default=None,
                      help="bfloat16 autocast (auto: only where bf16 is native, never where "
                           "it is emulated; default: off, auto with --recipe tuned)")
    fast.add_argument("--compile", action="store_true", help="torch.compile both networks")
    fast.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    fast.add_argument("--sync-every", type=POSITIVE, default=None,
                      help="read the losses back from the device every N steps")
    ev = t.add_argument_group("evaluation (see the README's 'Measuring quality')")
    ev.add_argument("--eval-every", type=NON_NEGATIVE, default=0, metavar="N",
                    help="score the generator every N epochs (classifier FID, IS, coverage); "
                         "writes metrics.json, quality.png and best.pt")
    ev.add_argument("--eval-samples", type=EVAL_SAMPLES, default=5000, metavar="N",
                    help="generated images per evaluation (default 5000)")
    ev.add_argument("--early-stop", type=POSITIVE, default=None, metavar="K",
                    help="stop when the FID has not improved for K evaluations "
                         "(implies --eval-every 1 unless given)")


# ----------------------------------------------------------------------------- the commands


def train(cfg: RunConfig, argv: list[str]) -> int:
    """Train the run `cfg` describes into `cfg.out`; the exit status (0, or 130/143 for a run
    stopped by a signal, with the command that continues it)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    parts = cfg.recipe.build(cfg.device, seed=cfg.seed)
    loader = make_loader(cfg.dataset, batch_size=cfg.batch_size, device=cfg.device,
                         seed=cfg.seed, limit=cfg.limit,
                         image_size=None if parts.image_size == 28 else parts.image_size)
    callbacks = list(parts.callbacks)
    if cfg.eval_every:
        from .evaluation import quality_callbacks

        callbacks += quality_callbacks(every=cfg.eval_every, n=cfg.eval_samples,
                                       patience=cfg.early_stop)
    speed = SpeedOptions(amp=cfg.amp, compile=cfg.compile, channels_last=cfg.channels_last)
    _announce(cfg, loader, speed)
    start = time.perf_counter()
    # --overwrite: fit deletes the old run only when the new one writes its first file
    history = fit(parts.G, parts.D, loader, epochs=cfg.epochs, objective=parts.objective,
                  opt_g=parts.opt_g, opt_d=parts.opt_d, device=cfg.device, run_dir=cfg.out,
                  seed=cfg.seed, resume=cfg.resume, overwrite=cfg.overwrite,
                  max_steps=cfg.max_steps, callbacks=callbacks, ema=cfg.recipe.ema,
                  options=FitOptions(lr_schedule=cfg.lr_schedule, settings=cfg.settings(),
                                     speed=speed, sync_every=cfg.sync_every))
    final = f" Final grid: {history.final_grid}" if history.final_grid else ""
    print(f"{history.stop_reason} after {len(history['loss_d'])} steps in "
          f"{time.perf_counter() - start:.0f} s.{final}")
    status = EXIT_STATUS.get(history.stop, 0)
    if status:
        if history.checkpoint_step is None:
            print(f"No checkpoint was written, so there is nothing to resume: train again."
                  f"{_old_run_note(cfg)}", file=sys.stderr)
        else:
            print(f"The checkpoint of step {history.checkpoint_step} is saved. To continue: "
                  f"python -m gan_helpers {' '.join(_resume_args(argv))}", file=sys.stderr)
    return status


def _announce(cfg: RunConfig, loader, speed: SpeedOptions) -> None:
    """One line: what trains, on what, where to."""
    ema = cfg.recipe.ema
    average = "" if ema is None else f", moving average of G's weights (decay {ema:g})"
    bf16 = ", bf16 autocast" if speed.uses_bf16(cfg.device) else ""
    print(f"Training {cfg.recipe.model} (recipe {cfg.recipe_name}) on {cfg.dataset} "
          f"({len(loader.images):,} images, batches of {cfg.batch_size}, {len(loader)} steps per "
          f"epoch{average}) on {cfg.device}{bf16} -> {cfg.out}")


EXIT_STATUS = {Stop.INTERRUPTED: 130, Stop.TERMINATED: 143}
"""Exit statuses of a run stopped by a signal (Ctrl-C, SIGTERM), as shells report them."""


def _resume_args(argv: list[str]) -> list[str]:
    """The command line that continues the run: the arguments given, with --resume."""
    given = [a for a in argv[1:] if a not in ("--resume", "--overwrite")]  # [0]: train
    return ["train", *given, "--resume"]


def _old_run_note(cfg: RunConfig) -> str:
    """With --overwrite, when the new run saved nothing: the old run is still there."""
    if cfg.overwrite and RunFiles(cfg.out).holds_run():
        return f" {cfg.out} still holds the run it was to replace, as it was."
    return ""


def _load(args: argparse.Namespace):
    """The generator `sample` and `evaluate` use, and its checkpoint, after checking the
    environment; says on stderr when `best.pt` is older than the run's last checkpoint."""
    args.device = config.check_environment(device=args.device, check_dataset=False)
    best = {"best": True, "last": False, None: None}[args.checkpoint]
    G, ckpt = load_generator(args.run, best=best, device=args.device, averaged=not args.raw)
    _note_older_best(ckpt)
    return G, ckpt


def _note_older_best(ckpt: dict) -> None:
    """A note on stderr when the checkpoint used is `best.pt` and the run's last checkpoint is
    later: the scores and samples are then not those of the end of training."""
    path = Path(ckpt["path"])
    last = path.with_name("checkpoint.pt")
    if path.name != "best.pt" or not last.exists():
        return
    try:
        last_step = load_checkpoint(last)["step"]
    except (GanHelpersError, KeyError):
        return  # a damaged last checkpoint is not this command's business
    if isinstance(last_step, int) and last_step > ckpt["step"]:
        fid = (ckpt.get("best") or {}).get("fid")
        why = f" (its FID {fid:.2f} was the best)" if isinstance(fid, float) else ""
        print(f"note: using best.pt, from step {ckpt['step']:,}{why}; the last checkpoint is "
              f"from step {last_step:,}, {last_step - ckpt['step']:,} steps later: add "
              "--checkpoint last to use that one.", file=sys.stderr)


def _weights_label(ckpt: dict) -> str:
    """Which weights were loaded, for the messages: ', moving average' or nothing."""
    return ", moving average" if ckpt["averaged"] else ""


OUT_SUFFIXES = (".png", ".pt")
"""What `sample --out` writes: a PNG grid or a tensor file (any case: `.PNG`, `.PT`)."""


def _grid_pixels(n: int, nrow: int, shape: tuple[int, ...], scale: int = 2) -> int:
    """The pixels of `save_grid`'s PNG of `n` images of `shape` (C, H, W), `nrow` a row."""
    pad = 2  # make_grid's padding
    cols, rows = min(nrow, n), math.ceil(n / min(nrow, n))
    return (cols * (shape[2] + pad) + pad) * (rows * (shape[1] + pad) + pad) * scale**2


def _check_grid_size(n: int, nrow: int, shape: tuple[int, ...]) -> None:
    """Refuse a grid too large for Pillow to open again (its decompression-bomb limit)."""
    limit = Image.MAX_IMAGE_PIXELS or math.inf
    if _grid_pixels(n, nrow, shape) <= limit:
        return
    most = nrow
    while _grid_pixels(most + nrow, nrow, shape) <= limit:
        most += nrow
    raise GanHelpersError(
        f"--n {n:,}: a grid of {n:,} images would have {_grid_pixels(n, nrow, shape):,} pixels, "
        f"more than image viewers (and Pillow) open ({limit:,}): use --n {most:,} or fewer, or "
        "--out FILE.pt for a tensor of the samples.")


def _write(out: Path, write) -> None:
    """`write(tmp)` into a temporary file beside `out`, then moved over it: `out` is either the
    new file, whole, or what it was before. A failure is one line naming `out`."""
    tmp = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, out)
    except (OSError, RuntimeError) as err:  # RuntimeError: torch's writer on a full disk
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
        raise GanHelpersError(f"Could not write the samples to {out}: {reason}. Nothing there "
                              "was changed: free some space or choose another --out.") from err


def sample(args: argparse.Namespace) -> int:
    if args.out is not None:  # before the generator loads
        args.out = checks.output_file(args.out, OUT_SUFFIXES)
    G, ckpt = _load(args)
    out = args.out or checks.output_file(Path(ckpt["path"]).parent / "samples.png",
                                         OUT_SUFFIXES)
    classes = getattr(G, "num_classes", None)
    if args.label is not None and not classes:
        raise GanHelpersError(f"the generator in {args.run} is unconditional: --class needs a "
                              "conditional model (train one with --model cdcgan or cmlp)")
    if args.label is not None and args.label >= classes:
        raise GanHelpersError(f"--class {args.label}: this model has classes 0 to {classes - 1}")
    z = torch.randn(args.n, G.latent_dim, generator=torch.Generator().manual_seed(args.seed))
    labels = None
    if classes:  # one class per column of the grid, or only the asked-for class
        labels = torch.full((args.n,), args.label) if args.label is not None else (
            torch.arange(args.n) % classes)
    tensor_file = out.suffix.lower() == ".pt"
    if not tensor_file:  # one image tells the grid's size, before all are drawn
        probe = generate(G, z[:1], None if labels is None else labels[:1])
        _check_grid_size(args.n, classes or 8, tuple(probe.shape[1:]))
    images = generate(G, z, labels)
    if tensor_file:
        _write(out, lambda tmp: torch.save(images, tmp))
    else:
        grid = enlarge(grid_image(images, nrow=classes or 8), 2)
        _write(out, lambda tmp: grid.save(tmp, format="PNG"))
    print(f"{args.n} samples from {ckpt['path']} (step {ckpt['step']:,}{_weights_label(ckpt)}) -> "
          f"{out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from .evaluation import Evaluator, sample_count

    G, ckpt = _load(args)
    if ckpt["run"]["dataset"] is None:
        raise GanHelpersError(f"{ckpt['path']} does not record its dataset, so there is nothing "
                              "to compare its samples with.")
    n = sample_count(args.n)
    if n < args.n:
        print(f"note: GAN_SMOKE is set, so only {n:,} of the {args.n:,} images are scored, by a "
              "briefly trained classifier: these figures are a smoke test, not a measurement "
              "(unset GAN_SMOKE for real ones).", file=sys.stderr)
    if n < MIN_FID_SAMPLES:
        print(f"warning: an FID from {n:,} samples is noisy and biased upwards (the classifier's "
              f"features have 128 dimensions): use --n {MIN_FID_SAMPLES:,} or more (5,000 is "
              "the standard here), and compare only figures of the same --n.", file=sys.stderr)
    evaluator = Evaluator(dataset=ckpt["run"]["dataset"], device=args.device)
    scores = evaluator.score_generator(G, n=args.n, seed=args.seed)
    rows = {f"{Path(ckpt['path']).name} (step {ckpt['step']:,}{_weights_label(ckpt)})": scores,
            **evaluator.references(n=args.n, seed=args.seed)}
    print(f"{ckpt['run']['dataset']}, {scores.n:,} generated images from {ckpt['path']} against "
          "the test split:")
    print(evaluator.table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = None
    if args.command == "train":
        try:
            cfg = RunConfig.from_args(args)
        except GanHelpersError as err:
            parser.error(str(err))
    started = time.time()
    try:
        if cfg is not None:
            with RunLock(cfg.out):  # before the data loads: one run per folder
                return train(cfg, argv)  # --overwrite: fit replaces the old run, not before
        return sample(args) if args.command == "sample" else evaluate(args)
    except KeyboardInterrupt:  # before training, or a second Ctrl-C: what was saved is whole
        resume = _after_interrupt(cfg, argv, started) if cfg is not None else ""
        print(f"error: interrupted. Every file already written is whole{resume}.",
              file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except GanHelpersError as err:  # the user's to fix; anything else is a bug: traceback
        print(f"error: {err}", file=sys.stderr)
        if cfg is not None and isinstance(err, (CheckpointWriteError, RunWriteError)):
            files = RunFiles(cfg.out)
            if files.holds_run() and not (cfg.overwrite
                                          and files.checkpoint.stat().st_mtime < started):
                print(f"To continue: python -m gan_helpers {' '.join(_resume_args(argv))}",
                      file=sys.stderr)
        return 2


def _after_interrupt(cfg: RunConfig, argv: list[str], started: float) -> str:
    """What an interrupt of `train` outside the steps leaves (a Ctrl-C while the data loads, the
    networks are built or the evaluation classifier trains, or a second Ctrl-C): a checkpoint
    to continue, the old run (--overwrite that wrote nothing yet), or nothing to resume."""
    files = RunFiles(cfg.out)
    if not files.holds_run():
        return ": no checkpoint was written, so there is nothing to resume; train again"
    if cfg.overwrite and files.checkpoint.stat().st_mtime < started:
        return f"; nothing of the new run was saved, and {cfg.out} still holds the old run"
    return f"; to continue: python -m gan_helpers {' '.join(_resume_args(argv))}"


if __name__ == "__main__":
    sys.exit(main())
