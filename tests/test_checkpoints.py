"""Checkpoints that describe themselves: the run record, refusals, rebuilding a generator (or the
moving average of its weights), a checkpoint that is always of a whole step, and callbacks' own
state across resume."""

from __future__ import annotations

import pytest
import torch

from gan_helpers import models
from gan_helpers.callbacks import AnnealNoise, Callback
from gan_helpers.checkpoints import (
    CheckpointError,
    CheckpointWriteError,
    RunMismatchError,
    averaged_weights,
    load_checkpoint,
    load_generator,
    save_checkpoint,
)
from gan_helpers.errors import UsageError
from gan_helpers.evaluation import EvaluateEvery, KeepBest
from gan_helpers.objectives import HingeObjective
from gan_helpers.run_folder import RunFiles
from gan_helpers.training import FitOptions, SpeedOptions, fit, train_step
from tests.helpers import FakeEvaluator, StopAt, small_gan, tiny_loader


def test_the_checkpoint_records_what_built_the_run(tmp_path):
    G, D = small_gan("dcgan")
    loader = tiny_loader()
    loader.dataset_name = "fashion-mnist"
    fit(G, D, loader, epochs=1, run_dir=tmp_path, progress=False,
        options=FitOptions(settings={"recipe": "x"}))
    run = load_checkpoint(RunFiles(tmp_path).checkpoint)["run"]
    assert run["dataset"] == "fashion-mnist"
    assert run["G"] == {"class": "DCGANGenerator",
                        "args": {"latent_dim": 16, "width": 8, "channels": 1}}
    assert run["D"]["class"] == "DCGANDiscriminator" and run["D"]["args"]["norm"] == "batch"
    assert run["objective"] == "BCEObjective(saturating=False, real_label=1.0)"
    settings = run["settings"]
    assert settings["recipe"] == "x" and settings["batch_size"] == 32 and settings["seed"] == 0
    assert settings["lr_g"] == settings["lr_d"] == 2e-4 and settings["betas"] == [0.5, 0.999]


@pytest.mark.parametrize("kind", ["mlp", "dcgan", "dcgan64", "cmlp", "cdcgan"])
def test_load_generator_rebuilds_every_model_from_its_record(tmp_path, kind):
    G, D, _ = models.build_gan(kind, latent_dim=8)
    state = {"format": "gan-helpers-checkpoint/2", "G": G.state_dict(), "step": 3,
             "run": {"dataset": "mnist", "G": models.describe(G), "D": models.describe(D)}}
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    loaded, ckpt = load_generator(tmp_path)
    assert type(loaded) is type(G) and not loaded.training and ckpt["step"] == 3
    z = torch.randn(4, 8)
    labels = torch.arange(4) if kind.startswith("c") else None
    assert torch.equal(models.generate(loaded, z, labels), models.generate(G, z, labels))


def test_load_generator_prefers_best_and_refuses_another_dataset(tmp_path):
    G, _ = small_gan("mlp")
    for name, step in (("checkpoint.pt", 10), ("best.pt", 7)):
        save_checkpoint({"format": "gan-helpers-checkpoint/2", "G": G.state_dict(), "step": step,
                         "run": {"dataset": "mnist", "G": models.describe(G)}}, tmp_path / name)
    assert load_generator(tmp_path)[1]["step"] == 7
    assert load_generator(tmp_path, best=False)[1]["step"] == 10
    with pytest.raises(RunMismatchError, match="trained on mnist, not fashion-mnist"):
        load_generator(tmp_path, dataset="fashion-mnist")


def test_checkpoints_from_before_the_record_are_refused_clearly(tmp_path):
    G, D = small_gan("mlp")
    old = {"format": "gan-helpers-checkpoint/1", "G": G.state_dict(), "D": D.state_dict(),
           "meta": {"dataset": "mnist"}}
    save_checkpoint(old, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="earlier version of gan_helpers"):
        load_generator(tmp_path)
    with pytest.raises(CheckpointError, match="Train again into a new run folder"):
        fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, resume=True, progress=False)


def _first_run(tmp_path, **kwargs):
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, progress=False, **kwargs)


def test_resume_refuses_another_dataset(tmp_path):
    _first_run(tmp_path)
    G, D = small_gan("mlp")
    loader = tiny_loader()
    loader.dataset_name = "mnist"
    with pytest.raises(RunMismatchError, match="dataset was None, now 'mnist'"):
        fit(G, D, loader, epochs=2, run_dir=tmp_path, resume=True, progress=False)


def test_resume_refuses_another_model(tmp_path):
    _first_run(tmp_path)
    G = models.MLPGenerator(latent_dim=16, hidden=(32, 32))
    _, D = small_gan("mlp")
    with pytest.raises(RunMismatchError) as err:
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False)
    assert "G was MLPGenerator(latent_dim=16, hidden=[32, 64]" in str(err.value)
    assert "now MLPGenerator(latent_dim=16, hidden=[32, 32]" in str(err.value)
    assert "use another run folder" in str(err.value)


def test_resume_refuses_other_settings_and_objective(tmp_path):
    _first_run(tmp_path, options=FitOptions(settings={"limit": 256}))
    G, D = small_gan("mlp")
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with pytest.raises(RunMismatchError) as err:
        fit(G, D, tiny_loader(batch_size=16), epochs=2, run_dir=tmp_path, resume=True,
            progress=False, opt_g=opt_g, objective=HingeObjective(),
            options=FitOptions(settings={"limit": 128}))
    message = str(err.value)
    for part in ("batch_size was 32, now 16", "lr_g was 0.0002, now 0.001",
                 "limit was 256, now 128", "objective was 'BCEObjective"):
        assert part in message
    # the same settings continue, and more epochs are allowed
    G, D = small_gan("mlp")
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False,
                  options=FitOptions(settings={"limit": 256}))
    assert len(history["loss_d"]) == 16


def test_an_exception_mid_step_keeps_the_last_whole_checkpoint(tmp_path):
    """D updated, G not: such a state is never written as the run's checkpoint."""
    calls = {"n": 0}

    def failing_in_g_update(G, D, opt_g, opt_d, real, z, objective, **kw):
        calls["n"] += 1
        if calls["n"] == 11:  # step 11, in epoch 2: D has just been updated
            opt_d.zero_grad()
            objective.d_loss(D(real), D(G(z).detach())).backward()
            opt_d.step()
            raise RuntimeError("out of memory in the generator's update")
        return train_step(G, D, opt_g, opt_d, real, z, objective, **kw)

    G, D = small_gan("mlp")
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path,
            options=FitOptions(step_fn=failing_in_g_update),
            progress=False)
    ckpt = load_checkpoint(RunFiles(tmp_path).checkpoint)
    assert ckpt["step"] == 8  # the end of epoch 1, not a state with D one update ahead
    assert "the checkpoint of step 8 was kept" in RunFiles(tmp_path).history.read_text()

    # ...and it resumes exactly: the same weights as a run that never failed
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, resume=True, progress=False)
    G2, D2 = small_gan("mlp")
    fit(G2, D2, tiny_loader(), epochs=3, run_dir=tmp_path / "straight", progress=False)
    for a, b in zip(G.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)


class Counter(Callback):
    """A callback with state: how many steps it has seen, across resumes."""

    def __init__(self) -> None:
        self.seen = 0
        self.failures: list[str] = []

    def on_step_end(self, state) -> None:
        self.seen += 1

    def on_exception(self, state, error) -> None:
        self.failures.append(f"{type(error).__name__} in step: {state.in_step}")

    def state_dict(self) -> dict:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"]


def test_callbacks_keep_their_state_in_the_checkpoint(tmp_path):
    G, D = small_gan("mlp")
    first = Counter()
    fit(G, D, tiny_loader(), epochs=2, max_steps=5, run_dir=tmp_path, progress=False,
        callbacks=[first])
    assert load_checkpoint(RunFiles(tmp_path).checkpoint)["callbacks"] == {"Counter": {"seen": 5}}
    G, D = small_gan("mlp")
    second = Counter()
    fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False,
        callbacks=[second])
    assert second.seen == 16 and second.failures == []


def test_on_exception_sees_the_failure_and_whether_it_was_mid_step(tmp_path):
    def broken(*args, **kwargs):
        raise ValueError("a bug in the step")

    G, D = small_gan("mlp")
    counter = Counter()
    with pytest.raises(ValueError, match="a bug in the step"):
        fit(G, D, tiny_loader(), epochs=1, options=FitOptions(step_fn=broken), progress=False,
            callbacks=[counter])
    assert counter.failures == ["ValueError in step: True"]


def test_instance_noise_schedule_is_kept_across_resume(tmp_path):
    G, D = small_gan("mlp")
    noisy = models.InstanceNoise(D, sigma=0.2)
    fit(G, noisy, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False,
        callbacks=[AnnealNoise(noisy), StopAt(4)])
    assert noisy.sigma == pytest.approx(0.2 * (1 - 4 / 16))
    G, D = small_gan("mlp")
    noisy = models.InstanceNoise(D, sigma=0.2)
    seen = []
    record = type("Record", (Callback,), {"on_fit_start": lambda self, s: seen.append(
        noisy.sigma)})()
    fit(G, noisy, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False,
        callbacks=[AnnealNoise(noisy), record])
    assert seen == [pytest.approx(0.2 * (1 - 4 / 16))]  # continues the schedule at step 4
    assert noisy.sigma == 0.0


def test_a_learning_rate_schedule_is_not_stretched_on_resume(tmp_path):
    """The linear decay spans the run it was made for: resuming for longer would make the
    learning rate jump back up, so it is refused; the same length resumes."""
    _first_run(tmp_path, options=FitOptions(lr_schedule="linear"), max_steps=4)
    G, D = small_gan("mlp")
    with pytest.raises(RunMismatchError, match="lr_schedule_steps was 4, now 16 .the learning-rate "
                                               "schedule spans the run it was started as"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, resume=True, progress=False,
            options=FitOptions(lr_schedule="linear"))


def test_another_instance_noise_is_another_run(tmp_path):
    G, D = small_gan("mlp")
    fit(G, models.InstanceNoise(D, sigma=0.2), tiny_loader(), epochs=1, run_dir=tmp_path,
        progress=False)
    G, D = small_gan("mlp")
    expected = r"sigma=0.2\), now InstanceNoise\(D=MLPDiscriminator\(hidden=\[64, 32\]"
    with pytest.raises(RunMismatchError, match=expected):
        fit(G, models.InstanceNoise(D, sigma=0.1), tiny_loader(), epochs=2, run_dir=tmp_path,
            resume=True, progress=False)


def test_two_callbacks_with_state_under_one_name_are_refused():
    G, D = small_gan("mlp")
    with pytest.raises(UsageError, match="Two callbacks keep their state under one name"):
        fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[Counter(), Counter()])


def test_a_checkpoint_with_one_damaged_byte_is_refused(tmp_path):
    """torch.load would read the flipped bit as a weight; the CRC-32 of the record does not
    match its bytes any more."""
    _first_run(tmp_path)
    path = RunFiles(tmp_path).checkpoint
    weights = load_checkpoint(path)["G"]
    raw = bytearray(path.read_bytes())
    first = next(iter(weights.values())).reshape(-1)[:4].numpy().tobytes()
    raw[raw.index(first) + 1] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match its bytes"):
        load_checkpoint(path)


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path):
    """A real write error, from /dev/full: torch's writer would raise its own RuntimeError for a
    path, so the checkpoint is written through a Python file, whose error says what happened."""
    path = save_checkpoint({"step": 1, "w": torch.ones(3)}, tmp_path / "checkpoint.pt")
    (tmp_path / ".checkpoint.pt.tmp").symlink_to("/dev/full")
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    assert load_checkpoint(path)["step"] == 1


def test_speed_options_choose_fused_adam(tmp_path):
    seen = []
    grab = type("Grab", (Callback,), {"on_fit_start": lambda self, s: seen.append(
        s.opt_g.defaults["fused"])})()
    for fused in (True, None):
        G, D = small_gan("mlp")
        fit(G, D, tiny_loader(), epochs=1, max_steps=1, progress=False, callbacks=[grab],
            options=FitOptions(speed=SpeedOptions(fused_adam=fused)))
    assert seen == [True, None]  # None: the CPU's default, not fused


# ----------------------------------------------------------------------------- moving average


def same_weights(a: torch.nn.Module | dict, b: torch.nn.Module | dict) -> bool:
    a, b = (m.state_dict() if isinstance(m, torch.nn.Module) else m for m in (a, b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_generator_gives_the_average_unless_asked_for_the_raw_weights(tmp_path):
    G, D = small_gan("dcgan")
    history = fit(G, D, tiny_loader(), epochs=1, run_dir=tmp_path, ema=0.9, progress=False)
    loaded, ckpt = load_generator(tmp_path)
    assert ckpt["averaged"] and not loaded.training
    assert same_weights(loaded, history.G_ema) and not same_weights(loaded, G)
    assert same_weights(averaged_weights(ckpt), history.G_ema)
    raw, ckpt = load_generator(tmp_path, averaged=False)
    assert not ckpt["averaged"] and same_weights(raw, G)


def test_checkpoints_without_an_average_load_and_resume_as_before(tmp_path):
    # a checkpoint as load_generator's callers wrote them before: no callbacks at all
    G, _ = small_gan("mlp")
    save_checkpoint({"format": "gan-helpers-checkpoint/2", "G": G.state_dict(), "step": 3,
                     "run": {"dataset": "mnist", "G": models.describe(G)}},
                    tmp_path / "bare" / "checkpoint.pt")
    loaded, ckpt = load_generator(tmp_path / "bare")
    assert not ckpt["averaged"] and same_weights(loaded, G)
    assert averaged_weights(ckpt) is None

    # a run written before the moving average existed: its settings lack "ema"
    run = tmp_path / "old"
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=1, run_dir=run, progress=False)
    path = RunFiles(run).checkpoint
    old = load_checkpoint(path)
    del old["run"]["settings"]["ema"]
    save_checkpoint(old, path)
    loaded, ckpt = load_generator(run)
    assert not ckpt["averaged"] and same_weights(loaded, G)
    G, D = small_gan("mlp", seed=5)
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=run, resume=True, progress=False)
    assert len(history["loss_d"]) == 16 and history.G_ema is None
    assert load_checkpoint(path)["average"] is None


def test_evaluations_and_the_best_checkpoint_are_of_the_average(tmp_path):
    """Scored after steps 8, 16 and 24 (`every_steps`: the average must be updated before the
    evaluation of the same step)."""
    G, D = small_gan("dcgan")
    evaluator = FakeEvaluator(fids=[5.0, 3.0, 4.0])  # scripted FIDs
    callback = EvaluateEvery(evaluator, n=10, verbose=False, every_steps=8)
    history = fit(G, D, tiny_loader(), epochs=3, run_dir=tmp_path, ema=0.9, progress=False,
                  callbacks=[callback, KeepBest()])
    assert [scored for scored, _ in evaluator.scored] == [history.G_ema] * 3
    assert same_weights(evaluator.scored[2][1], history.G_ema)  # the last step's average
    best_weights = evaluator.scored[1][1]  # epoch 2's average scored best
    assert not same_weights(best_weights, evaluator.scored[2][1])
    best = load_checkpoint(RunFiles(tmp_path).best)
    assert best["step"] == 16 and same_weights(averaged_weights(best), best_weights)
    loaded, ckpt = load_generator(tmp_path)  # best.pt, averaged
    assert ckpt["averaged"] and same_weights(loaded, best_weights)
