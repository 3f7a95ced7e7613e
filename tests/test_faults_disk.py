"""Fault injection, round two: saved work and runs. A run folder that holds a run, in the library
(`fit`) as on the command line; real full file systems (a file size limit, `ulimit -f`, and a
small tmpfs where mounting works) and injected write failures (a full disk, a file too large, a
read-only or forbidden folder, torch's own writer) at the checkpoint, the history and the grids;
damaged or odd histories meeting the plots; interrupts before any step; a loss that explodes.

Each test checks the exit status or exception, the message, and that nothing already saved
changed (the bytes of every file of the run folder)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_helpers import callbacks as callbacks_module
from gan_helpers import checkpoints, run_folder, viz
from gan_helpers.callbacks import Callback
from gan_helpers.checkpoints import (
    CheckpointWriteError,
    RunMismatchError,
    load_checkpoint,
    save_checkpoint,
)
from gan_helpers.errors import NonFiniteLossError, UsageError
from gan_helpers.objectives import BCEObjective, HingeObjective, WGANGPObjective
from gan_helpers.run_folder import RunExistsError, RunFiles, RunWriteError
from gan_helpers.stats import EXPLODED, loss_limits
from gan_helpers.training import FitOptions, fit, train_step
from tests.helpers import BASE, StopAt, cli, small_gan, tiny_loader, write_dataset

ROOT = Path(__file__).resolve().parent.parent


def snapshot(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under `folder` (the lock file aside: it is the lock's)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def quick_fit(run_dir: Path, kind: str = "mlp", **kwargs):
    G, D = small_gan(kind)
    kwargs.setdefault("epochs", 1)
    return fit(G, D, tiny_loader(), run_dir=run_dir, progress=False, **kwargs)


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory) -> Path:
    """The run `saved` copies, fitted once for this module."""
    run = tmp_path_factory.mktemp("saved-once") / "run"
    quick_fit(run)
    return run


@pytest.fixture
def saved(tmp_path, saved_once) -> Path:
    """A run folder with one finished epoch (8 steps) of the small MLP GAN, from `fit`: a copy
    of `saved_once` (the run records no path), the test's own to change."""
    run = tmp_path / "run"
    shutil.copytree(saved_once, run)
    return run


# ----------------------------------------------------------------------------- fit, a saved run


def test_fit_again_continues_the_finished_run_and_changes_nothing(saved, capsys):
    before = snapshot(saved)
    history = quick_fit(saved)  # "Run all" a second time: the same call
    assert "holds this run at step 8" in capsys.readouterr().out
    assert history.stop_reason == "finished" and len(history["loss_d"]) == 8
    assert history.checkpoint_step == 8 and history.final_grid == RunFiles(saved).final
    assert snapshot(saved) == before


def test_fit_with_more_epochs_continues_exactly(saved, tmp_path):
    history = quick_fit(saved, epochs=2)
    assert len(history["loss_d"]) == 16 and load_checkpoint(saved / "checkpoint.pt")["step"] == 16
    one_go = quick_fit(tmp_path / "one_go", epochs=2)
    assert history["loss_d"] == one_go["loss_d"]


@pytest.mark.parametrize("change,named", [
    ({"kind": "dcgan"}, "G was MLPGenerator("),
    ({"seed": 3}, "seed was 0, now 3"),
    ({"objective": HingeObjective()}, "objective was 'BCEObjective"),
])
def test_fit_into_a_run_of_other_settings_is_refused(saved, change, named):
    before = snapshot(saved)
    with pytest.raises(RunMismatchError) as caught:
        quick_fit(saved, **change)
    assert named in str(caught.value) and "overwrite=True" in str(caught.value)
    assert snapshot(saved) == before


def test_fit_resume_false_into_a_saved_run_is_refused(saved):
    before = snapshot(saved)
    with pytest.raises(RunExistsError, match="already holds a run.*overwrite=True"):
        quick_fit(saved, resume=False)
    with pytest.raises(UsageError, match="pick one"):
        quick_fit(saved, resume=True, overwrite=True)
    assert snapshot(saved) == before


def test_fit_overwrite_replaces_the_whole_run(saved):
    files = RunFiles(saved)
    files.best.write_bytes(files.checkpoint.read_bytes())  # as if the old run had evaluations
    files.metrics.write_text("{}")
    files.grid(5).write_bytes(files.grid(1).read_bytes())
    quick_fit(saved, seed=5, overwrite=True)
    assert not files.best.exists() and not files.metrics.exists()  # nothing of the old run
    assert sorted(p.name for p in files.grids.iterdir()) == ["epoch_001.png"]
    assert load_checkpoint(files.checkpoint)["run"]["settings"]["seed"] == 5
    assert json.loads(files.history.read_text())["stop_reason"] == "finished"


def nan_step(*args, **kwargs) -> torch.Tensor:
    return torch.full((6,), float("nan"))


def test_fit_overwrite_that_fails_before_writing_keeps_the_old_run(saved):
    before = snapshot(saved)
    with pytest.raises(NonFiniteLossError, match="at step 1"):
        quick_fit(saved, overwrite=True, options=FitOptions(step_fn=nan_step))
    assert snapshot(saved) == before
    history = quick_fit(saved, overwrite=True, max_steps=1, seed=7)  # one step: replaced now
    assert history.checkpoint_step == 1 and snapshot(saved) != before
    assert load_checkpoint(saved / "checkpoint.pt")["run"]["settings"]["seed"] == 7


class Interrupting(Callback):
    """Sends the process SIGINT in `on_fit_start` and then works for up to 20 s (like the
    evaluation classifier training for the first time); records how long it went on."""

    def on_fit_start(self, state) -> None:
        self.start = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        while time.monotonic() - self.start < 20:
            time.sleep(0.01)


def test_an_interrupt_before_the_first_step_is_honoured_at_once_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    start = time.monotonic()
    history = quick_fit(run, callbacks=[Interrupting()])
    assert time.monotonic() - start < 10
    assert history.stop_reason.startswith("interrupted") and history.checkpoint_step is None
    assert len(history["loss_d"]) == 0
    assert snapshot(run) == {}  # no checkpoint, no history, no grid: nothing to resume


def test_an_interrupt_before_the_first_step_of_a_resumed_run_keeps_its_checkpoint(saved):
    before = snapshot(saved)
    history = quick_fit(saved, epochs=2, callbacks=[Interrupting()])
    assert history.stop_reason.startswith("interrupted") and history.checkpoint_step == 8
    assert snapshot(saved) == before


def test_a_checkpoint_records_how_long_its_run_was_to_be(tmp_path):
    quick_fit(tmp_path / "stopped", epochs=2, callbacks=[StopAt(3)])
    stopped = load_checkpoint(tmp_path / "stopped" / "checkpoint.pt")
    assert (stopped["step"], stopped["total_steps"]) == (3, 16)  # not finished
    quick_fit(tmp_path / "stopped", epochs=2)
    done = load_checkpoint(tmp_path / "stopped" / "checkpoint.pt")
    assert (done["step"], done["total_steps"]) == (16, 16)


# ----------------------------------------------------------------------------- the command line


def test_run_all_twice_in_lesson_04_keeps_its_saved_run(tmp_path):
    """"Run all" a second time in the lesson that trains into a run folder (smoke mode, its own
    runs folder): every cell passes again and the saved run's checkpoint and history are left
    byte for byte as the first "Run all" wrote them."""
    import nbformat
    from nbclient import NotebookClient

    lesson = ROOT / "notebooks" / "04_live_training.ipynb"
    env = {**os.environ, "GAN_SMOKE": "1", "GAN_RUNS_DIR": str(tmp_path / "runs")}
    saved = []
    for _ in range(2):
        nb = nbformat.read(lesson, as_version=4)
        NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(lesson.parent)}}
                       ).execute(env=env)  # raises CellExecutionError if a cell fails
        files = RunFiles(next((tmp_path / "runs").rglob("04_live_training")))
        saved.append((files.checkpoint.read_bytes(), files.history.read_bytes()))
    assert saved[1] == saved[0]


def test_overwrite_with_damaged_data_deletes_nothing(trained, tiny_data):
    before = snapshot(trained)
    images = tiny_data["root"] / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    result = cli("train", *BASE, "--epochs", "1", "--out", str(trained), "--overwrite")
    assert result.returncode == 2 and "error:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(trained) == before


def test_overwrite_that_diverges_at_once_keeps_the_old_run(trained):
    before = snapshot(trained)
    result = cli("train", *BASE, "--epochs", "1", "--lr", "100", "--out", str(trained),
                 "--overwrite")
    assert result.returncode == 1 and "the run diverged" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(trained) == before


def test_a_damaged_history_does_not_turn_a_refusal_into_a_traceback(trained):
    files = RunFiles(trained)
    files.history.write_text('{"loss_d": [0.5, ')  # cut short
    before = snapshot(trained)
    result = cli("train", *BASE, "--epochs", "2", "--out", str(trained), "--resume",
                 "--seed", "3")
    assert result.returncode == 2 and "seed was 0, now 3" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr  # nothing reads history.json: the run's own
    assert snapshot(trained) == before     # history, in memory, is what losses.png is drawn from


def test_plots_take_histories_with_missing_values(tmp_path):
    """NaN and infinity are saved as null in history.json; the plots skip them."""
    history = {"loss_d": [0.7, None, 0.6] * 10, "loss_g": [0.7, 0.8, None] * 10,
               "d_real": [0.5] * 30, "d_fake": [None] * 30}
    assert viz.save_history_plot(history, tmp_path / "losses.png").stat().st_size > 0
    viz.plot_grad_norms({"run": {"grad_d": [1.0, None] * 20, "grad_g": [None, 2.0] * 20}})


def test_an_interrupt_while_the_classifier_trains_is_honoured_at_once(tmp_path, monkeypatch):
    """Ctrl-C while the evaluation classifier trains for the first time (no smoke mode: its
    full schedule, 10 epochs of 20,000 images) ends the command within seconds, saying there is
    nothing to resume, and caches no classifier."""
    root = tmp_path / "data"
    write_dataset(root / "FashionMNIST" / "raw", n_train=20_000)
    env = {k: v for k, v in os.environ.items() if k != "GAN_SMOKE"}
    env.update(GAN_DATA_DIR=str(root), GAN_DATASET="fashion-mnist",
               GAN_SYSTEM_DATASETS=str(tmp_path / "no-system-copy"))
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "gan_helpers", "train", *BASE, "--out",
                            str(out), "--eval-every", "1"], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in run.stdout:
            if "classifier" in line:
                break
        else:
            pytest.fail(f"no classifier notice: {run.stderr.read()}")
        time.sleep(1)  # well into its training
        sent = time.monotonic()
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert time.monotonic() - sent < 10
    assert run.returncode == 130 and "nothing to resume" in stderr, stderr
    assert "Traceback" not in stderr and not (out / "checkpoint.pt").exists()
    assert not list(root.rglob("*.pt"))  # no classifier cached half-trained


# ----------------------------------------------------------------------------- full disks, real


def test_a_file_size_limit_keeps_the_checkpoint_writes_the_history_and_says_how_to_resume(
        trained):
    """`ulimit -f` just below the checkpoint's size: the grids and history.json still fit, the
    next checkpoint does not (EFBIG; the process ignores SIGXFSZ)."""
    files = RunFiles(trained)
    before = files.checkpoint.read_bytes()
    result = cli("train", *BASE, "--epochs", "3", "--out", str(trained), "--resume",
                 file_limit=len(before) - 1)
    assert result.returncode == 2, result.stderr
    assert "Could not write the checkpoint" in result.stderr
    assert os.strerror(errno.EFBIG) in result.stderr
    assert "The checkpoint of step 8" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr and "inline_container" not in result.stderr
    assert files.checkpoint.read_bytes() == before  # whole, untouched
    assert not list(trained.glob(".*.tmp"))
    history = json.loads(files.history.read_text())
    assert history["stop_reason"].startswith("error: CheckpointWriteError")
    assert len(history["loss_d"]) == 16  # what was trained, though not checkpointed
    again = cli("train", *BASE, "--epochs", "3", "--out", str(trained), "--resume")
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(files.checkpoint)["step"] == 24


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 56 MiB at `tmp_path/disk` (root only, where mounting works), unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=56m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_tmpfs_keeps_the_checkpoint_and_writes_the_history(tiny_data, small_disk):
    """The MLP's checkpoint is about 34 MiB: the first fits, the second (written beside the
    first, then renamed over it) does not."""
    out = small_disk / "run"
    result = cli("train", *BASE, "--epochs", "3", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "Could not write the checkpoint" in result.stderr
    assert os.strerror(errno.ENOSPC) in result.stderr
    assert "The checkpoint of step 8" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 8  # whole
    assert not list(out.glob(".*.tmp"))
    history = json.loads((out / "history.json").read_text())
    assert history["stop_reason"].startswith("error: CheckpointWriteError")


def test_a_read_only_file_system_is_refused_before_any_work(tiny_data, small_disk):
    """The tmpfs remounted read-only under a saved run (EROFS, for real)."""
    out = small_disk / "run"
    assert cli("train", *BASE, "--epochs", "1", "--out", str(out)).returncode == 0
    before = snapshot(out)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = cli("train", *BASE, "--epochs", "2", "--out", str(out), "--resume")
    assert result.returncode == 2, result.stderr
    assert f"Cannot write into the run folder {out}: {os.strerror(errno.EROFS)}" in result.stderr
    assert "Training" not in result.stdout and "Traceback" not in result.stderr
    with pytest.raises(run_folder.RunFolderError, match=os.strerror(errno.EROFS)):
        quick_fit(out)
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- writes, injected


def failing_open(monkeypatch, module, err: BaseException, after: int, suffix: str):
    """From the `after`+1-th call on, `open` in `module` fails with `err` for files whose name
    ends in `suffix` (the temporary file of an atomic write)."""
    calls = {"n": 0}
    real_open = open

    def fake(path, *args, **kwargs):
        if str(path).endswith(suffix):
            calls["n"] += 1
            if calls["n"] > after:
                raise err
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(module, "open", fake, raising=False)


WRITE_ERRORS = {
    "full disk": (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), os.strerror(errno.ENOSPC)),
    "file too large": (OSError(errno.EFBIG, os.strerror(errno.EFBIG)), os.strerror(errno.EFBIG)),
    "read-only": (OSError(errno.EROFS, os.strerror(errno.EROFS)), os.strerror(errno.EROFS)),
    "forbidden": (PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
                  os.strerror(errno.EACCES)),
}


@pytest.mark.parametrize("case", [*WRITE_ERRORS, "torch's writer"])
def test_a_checkpoint_that_cannot_be_written_keeps_the_last_and_writes_the_history(
        saved, monkeypatch, case):
    before = RunFiles(saved).checkpoint.read_bytes()
    if case == "torch's writer":
        def broken(obj, f):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 "
                               "vs 598")
        monkeypatch.setattr(checkpoints.torch, "save", broken)
        said = "could not be written whole"
    else:
        err, said = WRITE_ERRORS[case]
        failing_open(monkeypatch, run_folder, err, 0, ".checkpoint.pt.tmp")
    with pytest.raises(CheckpointWriteError) as caught:
        quick_fit(saved, epochs=3)
    message = str(caught.value)
    assert said in message and "The checkpoint of step 8" in message
    assert "resume=True" in message and "train --resume" in message
    assert RunFiles(saved).checkpoint.read_bytes() == before
    assert not list(saved.glob(".*.tmp"))
    history = json.loads(RunFiles(saved).history.read_text())
    assert history["stop_reason"].startswith("error: CheckpointWriteError")
    assert len(history["loss_d"]) == 16


@pytest.mark.parametrize("case", ["full disk", "read-only"])
def test_a_history_that_cannot_be_written_keeps_the_old_one(saved, monkeypatch, case):
    files = RunFiles(saved)
    old_history = files.history.read_bytes()
    err, said = WRITE_ERRORS[case]
    failing_open(monkeypatch, run_folder, err, 0, ".history.json.tmp")
    with pytest.raises(RunWriteError) as caught:
        quick_fit(saved, epochs=2)
    assert "Could not write the history" in str(caught.value) and said in str(caught.value)
    assert "The checkpoint of step 16" in str(caught.value)
    assert files.history.read_bytes() == old_history  # whole: the old one, not a part
    assert load_checkpoint(files.checkpoint)["step"] == 16


@pytest.mark.parametrize("case", ["full disk", "forbidden"])
def test_a_grid_that_cannot_be_written_stops_with_the_last_checkpoint(saved, monkeypatch, case):
    files = RunFiles(saved)
    before = files.checkpoint.read_bytes()
    err, said = WRITE_ERRORS[case]

    def broken(*args, **kwargs):
        raise err

    monkeypatch.setattr(callbacks_module, "save_grid", broken)
    with pytest.raises(RunWriteError) as caught:
        quick_fit(saved, epochs=2)
    message = str(caught.value)
    assert "Could not write the grid" in message and said in message
    # the grid failed before epoch 2's checkpoint; the final one, of the same step, was written
    assert "The checkpoint of step 16" in message and "resume=True" in message
    assert load_checkpoint(files.checkpoint)["step"] == 16
    assert files.checkpoint.read_bytes() != before
    assert json.loads(files.history.read_text())["stop_reason"].startswith("error: RunWriteError")


def test_the_classifier_cache_and_other_checkpoints_get_the_same_message(tmp_path, monkeypatch):
    failing_open(monkeypatch, run_folder, OSError(errno.ENOSPC, "No space left on device"), 0,
                 ".tmp")
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        save_checkpoint({"step": 1}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / ".x.pt.tmp").exists()


# ----------------------------------------------------------------------------- divergence


def test_loss_limits_follow_the_objective():
    assert loss_limits(BCEObjective()) == pytest.approx(
        {"loss_d": EXPLODED * 2 * 0.6931, "loss_g": EXPLODED}, rel=1e-3)
    assert loss_limits(HingeObjective()) == pytest.approx({"loss_d": 2 * EXPLODED,
                                                           "loss_g": EXPLODED})
    assert loss_limits(WGANGPObjective()) == {}  # a critic's outputs have no zero


def exploding_step(*args, **kwargs) -> torch.Tensor:
    """A real step whose reported generator loss is 4e5 from step 11 on (`--lr 10`'s DCGAN)."""
    stats = train_step(*args, **kwargs)
    exploding_step.calls += 1
    if exploding_step.calls > 10:
        stats = stats.clone()
        stats[1] = 4e5
    return stats


def test_a_generator_loss_that_explodes_below_the_old_limit_stops_the_run(saved):
    before = snapshot(saved)
    exploding_step.calls = 8  # the saved run did 8 steps
    with pytest.raises(NonFiniteLossError) as caught:
        quick_fit(saved, epochs=3, options=FitOptions(step_fn=exploding_step))
    message = str(caught.value)
    assert "generator's loss became 4e+05 at step 11" in message and "exploded past 100" in message
    assert "the run diverged" in message
    ckpt = load_checkpoint(RunFiles(saved).checkpoint)
    assert ckpt["step"] == 8 and snapshot(saved)["checkpoint.pt"] == before["checkpoint.pt"]


def test_a_dcgan_at_learning_rate_10_is_stopped(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--model", "dcgan", "--batch-size", "32", "--lr", "10", "--epochs",
                 "2", "--out", str(out))
    assert result.returncode == 1 and "the run diverged" in result.stderr, result.stderr
    assert "finished" not in result.stdout and "Traceback" not in result.stderr
    assert not (out / "checkpoint.pt").exists()
