"""gan_helpers: the small package behind the GAN lessons.

Modules, one concern each, from the bottom up: `errors` (the errors a user can fix), `checks`
(values checked where they enter), `config` (settings from the environment, device, seeds),
`data` (datasets and the fast loader), `models` (also conditional, spectral norm, instance noise),
`objectives` (losses: BCE, hinge, WGAN-GP), `run_folder` (file names, atomic writes, the lock),
`interrupts` (Ctrl-C and SIGTERM, handled in one place), `stats` (each step's statistics and the
divergence check), `state` (`TrainState`, `History`, `Stop`), `checkpoints` (the checkpoint: built,
written, read, resumed, a generator rebuilt), `callbacks` (the hooks `fit` calls, and one-job
callbacks: progress, grids, checkpoint, history), `training` (the step and `fit`), `recipes` (a
training configuration by value), `run_config` (one command-line run, resolved once), `timing`
(the pausable training clock), `images` (grids, PNGs and GIFs, without pyplot), `viz` (the
matplotlib plots), `display` (a widget where widgets render, a static picture elsewhere),
`dashboard` (the live training widget), `metrics` (FID, IS, coverage, confidence), `classifier`
(the evaluation classifier, trained once and cached), `evaluation` (scoring images and
generators, and the callbacks that score, keep the best and stop early), `conditional` (sampling a
conditional GAN), `latent` and `latent_views` (the latent space: its maths; its pictures and
explorer), `toy` (the 1-D GAN of lesson 00), `exercises` (lesson 02's check of
the learner's own training step), `flow` (lesson 09's flow-matching model, trained alone by
`training.fit_flow`) and `__main__` (the command line).
"""

try:
    from .config import SMOKE, pick, pick_device, seed_everything
    from .data import load_dataset, load_tensors, make_loader
    from .errors import brief_in_notebooks
except ModuleNotFoundError as err:  # say which requirements this environment lacks, and how
    from ._requirements import missing_requirements_error

    raise missing_requirements_error(err) from None

__version__ = "0.1.0"
brief_in_notebooks()


def __getattr__(name: str):
    """`fit`, imported from `training` when first asked for."""
    if name == "fit":
        from .training import fit

        return fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SMOKE", "pick", "pick_device", "seed_everything",
    "load_dataset", "load_tensors", "make_loader", "fit",
]
