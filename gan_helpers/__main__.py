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
lr 4e-4, bf16 autocast where the CPU has it natively: the most quality per second measured) or
`paper` (the DCGAN paper's).
`--ema DECAY` keeps a moving average of the generator's weights, which the grids, the scores,
`best.pt`, `sample` and `evaluate` then use (`--raw` asks them for the generator's own weights).
`sample` and `evaluate` rebuild the generator from what its checkpoint records (the best one when
there is one), so they need no model options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from . import checks, config
from .checkpoints import CheckpointWriteError, load_checkpoint, load_generator
from .data import make_loader
from .errors import GanHelpersError
from .images import enlarge, grid_image
from .models import CONDITIONAL, MODELS, generate
from .objectives import OBJECTIVES
from .recipes import PRESETS, Preset, Recipe
from .run_folder import RunFiles, RunFolderError, RunLock, RunWriteError, prepare, write_atomic
from .training import NonFiniteLossError, SpeedOptions, fit

TRAIN_IMAGES = 60_000
"""The size of the training split of MNIST and of Fashion-MNIST."""


# ----------------------------------------------------------------------------- argument types


def _number(kind: type, low: float, low_ok: bool = True, high: float | None = None):
    """An argparse type: a finite `kind` (int or float) at least `low` (above it if not
    `low_ok`), at most `high`; anything else (NaN and infinity too) is refused with the allowed
    range (`checks.out_of_range`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        problem = checks.out_of_range(value, low, high, low_ok=low_ok)
        if problem == "it is not a finite number":
            raise argparse.ArgumentTypeError(
                f"{text} is not a finite number: it must be "
                f"{checks.range_text(low, high, low_ok=low_ok)}")
        if problem:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {problem}")
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE = _number(int, 1)
NON_NEGATIVE = _number(int, 0)
RATE = _number(float, 0.0, low_ok=False, high=100.0)  # 100: lesson 08's divergence on purpose
BETA = _number(float, 0.0, high=0.9999)
DECAY = _number(float, 0.0, high=0.9999)
LABEL = _number(float, 0.5, low_ok=False, high=1.0)
SIGMA = _number(float, 0.0, high=10.0)  # 10x the images' range already drowns them
SEED = _number(int, 0, high=checks.SEED_MAX)
SAMPLES = _number(int, 1, high=100_000)  # sample --n; a PNG grid is limited further
EVAL_SAMPLES = _number(int, 2, high=100_000)
MIN_FID_SAMPLES = 1000
"""Below this many samples `evaluate` warns that its FID is not to be trusted (the classifier's
features have 128 dimensions: fewer samples give a noisy, strongly biased estimate)."""


def _device(text: str) -> torch.device:
    """An argparse type: a device that exists here (cpu, cuda, cuda:1, mps; any case)."""
    try:
        return config.pick_device(text)
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _environment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The `GAN_*` variables that matter to the command, checked before any work (a bad
    GAN_DEVICE, GAN_DATASET, GAN_DATA_DIR or, in smoke mode, GAN_SMOKE_IMAGES exits with
    status 2 naming it; --dataset and --device, when given, win over theirs); an unset
    --device becomes the best device available here."""
    try:
        args.device = config.check_environment(args.dataset, args.device)
    except GanHelpersError as err:
        parser.error(str(err))


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
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda, mps")
    p.add_argument("--raw", action="store_true",
                   help="the generator's own weights, not their moving average (runs trained "
                        "with --ema)")


def _train_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--model", choices=[*MODELS, *CONDITIONAL], default="dcgan",
                   help="cmlp and cdcgan are conditional (lesson 06)")
    t.add_argument("--epochs", type=POSITIVE, default=5)
    t.add_argument("--dataset", choices=config.DATASETS, default=None,
                   help="default: $GAN_DATASET, else mnist")
    t.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/DATASET/MODEL)")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT")
    t.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    t.add_argument("--recipe", choices=list(PRESETS), default=None,
                   help="the DCGAN's defaults. paper: the DCGAN paper's (64 channels, batches of "
                        "128, lr 2e-4); tuned: the most quality per second measured on a CPU (32 "
                        "channels, batches of 64, lr 4e-4, --amp auto). Default: tuned for "
                        "--model dcgan with --loss bce on a CPU, else paper; options given win")
    t.add_argument("--batch-size", type=POSITIVE, default=None,
                   help="default 128 (64 with --recipe tuned)")
    t.add_argument("--width", type=POSITIVE, default=None,
                   help="the DCGANs' base number of channels (default 64; 32 with --recipe tuned)")
    t.add_argument("--lr", type=RATE, default=None,
                   help="Adam's learning rate (default 2e-4; 1e-4 with --loss wgan-gp; 4e-4 with "
                        "--recipe tuned)")
    t.add_argument("--betas", type=BETA, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's betas (default 0.5 0.999; 0.0 0.9 with --loss wgan-gp)")
    t.add_argument("--lr-schedule", choices=["linear"], default=None,
                   help="decay the learning rates linearly to 0 over the run")
    t.add_argument("--latent-dim", type=POSITIVE, default=100)
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--device", type=_device, default=None,
                   help="cpu, cuda, mps (default: the best available)")
    t.add_argument("--limit", type=POSITIVE, default=None, help="train on the first N images")
    t.add_argument("--max-steps", type=POSITIVE, default=None, help="stop after N steps in all")
    t.add_argument("--ema", type=DECAY, default=None, metavar="DECAY",
                   help="keep a moving average of G's weights with this decay (e.g. 0.999) and "
                        "draw grids, scores and samples from it; 0: off (default)")
    st = t.add_argument_group("objective and stabilisers (lesson 08)")
    st.add_argument("--loss", choices=list(OBJECTIVES), default="bce",
                    help="bce: non-saturating (default); saturating: the minimax original; "
                         "hinge; wgan-gp: gradient penalty 10, 5 critic steps per G step")
    st.add_argument("--d-norm", choices=["batch", "layer", "none"], default=None,
                    help="the DCGAN discriminator's normalisation (default: batch; layer with "
                         "wgan-gp; none with --spectral-norm)")
    st.add_argument("--spectral-norm", action="store_true",
                    help="spectral normalisation on the discriminator's layers")
    st.add_argument("--label-smoothing", type=LABEL, default=None, metavar="LABEL",
                    help="one-sided label smoothing: label real images LABEL (0.5 < LABEL <= 1)")
    st.add_argument("--instance-noise", type=SIGMA, default=0.0, metavar="SIGMA",
                    help="add Gaussian noise of std SIGMA to D's inputs, annealed to 0")
    fast = t.add_argument_group("speed (see the README's 'Training speed')")
    fast.add_argument("--amp", choices=["bf16", "auto", "off"], default=None,
                      help="bfloat16 autocast (auto: only where bf16 is native, never where "
                           "it is emulated; default: off, auto with --recipe tuned)")
    fast.add_argument("--compile", action="store_true", help="torch.compile both networks")
    fast.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    fast.add_argument("--threads", type=POSITIVE, default=None, help="CPU threads for PyTorch")
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


def _checked_train_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Recipe:
    """What argparse cannot check alone, before any work: the options together, then the run
    folder (created and test-written). Returns the recipe; an error exits with status 2 and says
    what is allowed."""
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in OUT and --overwrite replaces it: pick one")
    _environment(parser, args)  # GAN_DEVICE, GAN_DATASET, ...; sets args.device
    base, batch_size, amp = _preset(parser, args)
    args.batch_size = args.batch_size or batch_size
    args.ema = base.ema if args.ema is None else args.ema or None  # 0: off
    args.amp = None if args.amp == "off" else args.amp or amp
    images = min(args.limit or TRAIN_IMAGES, TRAIN_IMAGES)
    if args.batch_size > images:
        parser.error(f"--batch-size {args.batch_size} is larger than the {images:,} training "
                     "images: use a smaller batch (or a larger --limit)")
    try:
        lr = args.lr or base.lr_g
        recipe = Recipe(model=args.model, loss=args.loss, lr_g=lr, lr_d=lr,
                        betas=tuple(args.betas) if args.betas else None, d_norm=args.d_norm,
                        spectral_norm=args.spectral_norm, label_smoothing=args.label_smoothing,
                        instance_noise=args.instance_noise, latent_dim=args.latent_dim,
                        width=args.width or base.width, ema=args.ema)
    except ValueError as err:
        parser.error(str(err))
    args.out = args.out or config.runs_dir(dataset=config.dataset_name(args.dataset)) / args.model
    files = RunFiles(args.out)
    if args.resume and not files.checkpoint.exists():
        parser.error(f"--resume, but there is no checkpoint at {files.checkpoint}")
    if files.checkpoint.exists() and not (args.resume or args.overwrite):
        parser.error(f"{args.out} already holds a run: add --resume to continue it, --overwrite "
                     "to replace it, or choose another --out")
    try:
        prepare(args.out)
    except RunFolderError as err:
        parser.error(str(err))
    return recipe


def _preset(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Preset:
    """The recipe, batch size and autocast whose values fill in the options not given:
    `--recipe`, or by default the tuned one where it was measured best (the DCGAN,
    non-saturating loss, on a CPU)."""
    if args.recipe is None:
        tuned = args.model == "dcgan" and args.loss == "bce" and args.device.type == "cpu"
        args.recipe = "tuned" if tuned else "paper"
    if args.recipe == "tuned" and args.model != "dcgan":
        parser.error(f"--recipe tuned is the dcgan model's; for --model {args.model} leave "
                     "--recipe out (or use paper)")
    return PRESETS[args.recipe]


# ----------------------------------------------------------------------------- the commands


def train(args: argparse.Namespace, recipe: Recipe) -> int:
    dataset = config.dataset_name(args.dataset)
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    config.seed_everything(args.seed)  # the networks' initial weights too
    parts = recipe.build(device)
    size = MODELS[recipe.base_model][2]
    loader = make_loader(dataset, batch_size=args.batch_size, device=device, seed=args.seed,
                         limit=args.limit, image_size=None if size == 28 else size)
    callbacks, evaluating = list(parts.callbacks), None
    if args.eval_every or args.early_stop:
        from .evaluation import EvaluateEvery

        evaluating = EvaluateEvery(every=args.eval_every or 1, n=args.eval_samples,
                                   patience=args.early_stop, keep_best=True)
        callbacks.append(evaluating)
    speed = SpeedOptions(amp=args.amp, compile=args.compile, channels_last=args.channels_last)
    average = "" if args.ema is None else f", moving average of G's weights (decay {args.ema:g})"
    bf16 = ", bf16 autocast" if speed.uses_bf16(device) else ""
    print(f"Training {args.model} (recipe {args.recipe}) on {dataset} ({len(loader.images):,} "
          f"images, batches of {args.batch_size}, {len(loader)} steps per epoch{average}) on "
          f"{device}{bf16} -> {args.out}")
    start = time.perf_counter()
    try:  # --overwrite: fit deletes the old run only when the new one writes its first file
        history = fit(parts.G, parts.D, loader, epochs=args.epochs, objective=parts.objective,
                      opt_g=parts.opt_g, opt_d=parts.opt_d, lr_schedule=args.lr_schedule,
                      device=device, run_dir=args.out, seed=args.seed, resume=args.resume,
                      overwrite=args.overwrite, max_steps=args.max_steps, speed=speed,
                      sync_every=args.sync_every, callbacks=callbacks, ema=args.ema,
                      settings={**recipe.settings(), "limit": args.limit})
    except BaseException:
        _write_plots(RunFiles(args.out), evaluating, args.ema, failing=True)  # hides nothing
        raise
    _write_plots(RunFiles(args.out), evaluating, args.ema)
    final = f" Final grid: {history.final_grid}" if history.final_grid else ""
    print(f"{history.stop_reason} after {len(history['loss_d'])} steps in "
          f"{time.perf_counter() - start:.0f} s.{final}")
    for start_of_reason, status in INTERRUPTED.items():
        if history.stop_reason.startswith(start_of_reason):
            if history.checkpoint_step is None:
                print(f"No checkpoint was written, so there is nothing to resume: train again."
                      f"{_old_run_note(args)}", file=sys.stderr)
            else:
                print(f"The checkpoint of step {history.checkpoint_step} is saved. To continue: "
                      f"python -m gan_helpers {' '.join(_resume_args(args))}", file=sys.stderr)
            return status
    return 0


INTERRUPTED = {"interrupted": 130, "terminated": 143}
"""Exit statuses of a run stopped by a signal (Ctrl-C, SIGTERM), as shells report them."""


def _resume_args(args: argparse.Namespace) -> list[str]:
    """The command line that continues the run: the arguments given, with --resume."""
    given = [a for a in args.argv[1:] if a not in ("--resume", "--overwrite")]  # [0]: train
    return ["train", *given, "--resume"]


def _old_run_note(args: argparse.Namespace) -> str:
    """With --overwrite, when the new run saved nothing: the old run is still there."""
    if args.overwrite and RunFiles(args.out).holds_run():
        return f" {args.out} still holds the run it was to replace, as it was."
    return ""


def _write_plots(files: RunFiles, evaluating=None, ema: float | None = None,
                 failing: bool = False) -> None:
    """After training (the loop itself draws nothing): losses.png from history.json, and with
    an evaluation callback metrics.json (`ema`: the decay of the moving average scored, or null:
    G's own weights; written atomically) and quality.png.

    A plot that cannot be drawn (a damaged history.json, a full disk) is one line of warning, so
    it never hides what ended training; so is metrics.json when training failed (`failing`),
    while after a run that ended well a metrics.json that cannot be written is an error."""
    def warn(what: str, err: BaseException) -> None:
        print(f"warning: {what} not written: {type(err).__name__}: {err}", file=sys.stderr)

    history = None
    if files.history.exists():
        try:
            history = json.loads(files.history.read_text())
            curves = {k: v for k, v in history.items() if k != "stop_reason"}
        except (OSError, ValueError, AttributeError) as err:  # damaged: not a JSON object
            warn(f"{files.losses} (history.json cannot be read)", err)
            history = None
    if history is None:
        return
    from . import viz  # matplotlib, only now

    try:
        viz.save_history_plot(curves, files.losses)
    except Exception as err:  # noqa: BLE001 - a plot never hides the run's own outcome
        warn(str(files.losses), err)
    if evaluating is not None and evaluating.records:
        evaluator, entries, n = evaluating.evaluator, evaluating.records, evaluating.n
        try:
            references = evaluator.references(n=n)
            best = min(entries, key=lambda e: e["fid"])
            write_atomic(files.metrics, json.dumps({
                "dataset": evaluator.dataset, "samples": n, "ema": ema,
                "classifier_test_accuracy": evaluator.classifier.test_accuracy,
                "references": {k: v.as_dict() for k, v in references.items()},
                "best": best, "eval": entries}, indent=1), "metrics")
        except Exception as err:  # noqa: BLE001 - raised below unless training failed
            if not failing:
                raise
            warn(str(files.metrics), err)
            return
        try:
            viz.save_quality_plot(entries, files.quality, references)
        except Exception as err:  # noqa: BLE001 - as for losses.png
            warn(str(files.quality), err)
        print(f"Best classifier FID {best['fid']:.2f} at epoch {best['epoch']} "
              f"(real images: {references['real (training split)'].fid:.2f}, noise: "
              f"{references['noise (uniform)'].fid:.2f}) -> {files.best}")


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


def _weights(ckpt: dict) -> str:
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
    print(f"{args.n} samples from {ckpt['path']} (step {ckpt['step']:,}{_weights(ckpt)}) -> "
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
    rows = {f"{Path(ckpt['path']).name} (step {ckpt['step']:,}{_weights(ckpt)})": scores,
            **evaluator.references(n=args.n, seed=args.seed)}
    print(f"{ckpt['run']['dataset']}, {scores.n:,} generated images from {ckpt['path']} against "
          "the test split:")
    print(evaluator.table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    recipe = _checked_train_args(parser, args) if args.command == "train" else None
    started = time.time()
    try:
        if args.command == "train":
            with RunLock(args.out):  # before the data loads: one run per folder
                return train(args, recipe)  # --overwrite: fit replaces the old run, not before
        return sample(args) if args.command == "sample" else evaluate(args)
    except KeyboardInterrupt:  # before training, or a second Ctrl-C: what was saved is whole
        resume = _after_interrupt(args, started) if args.command == "train" else ""
        print(f"error: interrupted. Every file already written is whole{resume}.",
              file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except GanHelpersError as err:  # the user's to fix; anything else is a bug: traceback
        print(f"error: {err}", file=sys.stderr)
        if args.command == "train" and isinstance(err, (CheckpointWriteError, RunWriteError)):
            files = RunFiles(args.out)
            if files.holds_run() and not (args.overwrite
                                          and files.checkpoint.stat().st_mtime < started):
                print(f"To continue: python -m gan_helpers {' '.join(_resume_args(args))}",
                      file=sys.stderr)
        return 2


def _after_interrupt(args: argparse.Namespace, started: float) -> str:
    """What an interrupt of `train` outside the steps leaves (a Ctrl-C while the data loads, the
    networks are built or the evaluation classifier trains, or a second Ctrl-C): a checkpoint
    to continue, the old run (--overwrite that wrote nothing yet), or nothing to resume."""
    files = RunFiles(args.out)
    if not files.holds_run():
        return ": no checkpoint was written, so there is nothing to resume; train again"
    if args.overwrite and files.checkpoint.stat().st_mtime < started:
        return f"; nothing of the new run was saved, and {args.out} still holds the old run"
    return f"; to continue: python -m gan_helpers {' '.join(_resume_args(args))}"


if __name__ == "__main__":
    sys.exit(main())
