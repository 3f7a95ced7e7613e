"""Fault injection: the real command line, in subprocesses, on a tiny dataset, under bad
arguments, unusable folders, resume mismatches, signals, concurrent runs, damaged checkpoints,
divergence and a full disk. Each test checks the exit status, the message, and that nothing
already saved was lost or changed."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_helpers import checkpoints
from gan_helpers.__main__ import main
from gan_helpers.checkpoints import load_checkpoint, save_checkpoint
from gan_helpers.run_folder import RunFiles
from gan_helpers.training import fit
from tests.helpers import BASE, StopAt, cli, small_gan, tiny_loader

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gan_helpers", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# ----------------------------------------------------------------------------- arguments, folders


@pytest.mark.parametrize("args,message", [
    (["--epochs", "-1"], "argument --epochs: -1 is out of range: it must be at least 1"),
    (["--lr", "0"], "argument --lr: 0 is out of range: it must be above 0"),
    (["--limit", "-3"], "argument --limit: -3 is out of range"),
    (["--device", "cuda:9"], "argument --device"),
])
def test_bad_arguments_exit_2_before_any_work(tiny_data, tmp_path, args, message):
    result = cli("train", *BASE, "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_dataset_is_one_line(tiny_data, tmp_path):
    result = cli("train", "--model", "mlp", "--batch-size", "300", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "no batches" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_unwritable_output_folder_is_found_before_the_data_loads(tiny_data, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "run"
    result = cli("train", *BASE, "--out", str(out))
    assert result.returncode == 2 and "Cannot write into the run folder" in result.stderr
    assert "Training" not in result.stdout  # refused before loading data or training
    assert blocker.read_text() == "not a folder"


def test_an_existing_run_is_not_overwritten_without_asking(trained):
    before = (trained / "checkpoint.pt").read_bytes()
    result = cli("train", *BASE, "--epochs", "1", "--out", str(trained))
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (trained / "checkpoint.pt").read_bytes() == before


# ----------------------------------------------------------------------------- resume mismatches


@pytest.mark.parametrize("change,named", [
    (["--loss", "hinge"], "objective was 'BCEObjective"),
    (["--batch-size", "16"], "batch_size was 32, now 16"),
    (["--seed", "3"], "seed was 0, now 3"),
    (["--limit", "128"], "limit was None, now 128"),
    (["--lr", "1e-3"], "lr_g was 0.0002, now 0.001"),
    (["--model", "dcgan"], "G was MLPGenerator("),
    (["--latent-dim", "64"], "latent_dim was 100, now 64"),
])
def test_resume_under_other_settings_is_refused_and_changes_nothing(trained, change, named):
    before = (trained / "checkpoint.pt").read_bytes()
    result = cli("train", *BASE, "--epochs", "2", "--out", str(trained), "--resume", *change)
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "use another run folder" in result.stderr
    assert (trained / "checkpoint.pt").read_bytes() == before


def test_resume_may_change_the_epochs_and_the_evaluation(trained):
    result = cli("train", *BASE, "--epochs", "2", "--out", str(trained), "--resume",
                 "--threads", "1", "--sync-every", "3")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(trained / "checkpoint.pt")["step"] == 16


# ----------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum,status,reason", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_after_the_step_saves_and_says_how_to_resume(tiny_data, tmp_path, signum,
                                                                    status, reason):
    out = tmp_path / "run"
    run = start("train", *BASE, "--epochs", "100000", "--out", str(out))
    wait_for(RunFiles(out).grid(2))  # two epochs done: the run is in its stride
    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == status, stderr
    assert reason in stdout and "--resume" in stderr and "Traceback" not in stderr
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] >= 16 and len(ckpt["history"]["loss_d"]) == ckpt["step"]
    assert RunFiles(out).lock.read_text() == ""  # released
    epochs = ckpt["step"] // 8 + 1
    result = cli("train", *BASE, "--epochs", str(epochs), "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(out / "checkpoint.pt")["step"] == epochs * 8


def test_two_signals_end_at_once_and_leave_a_whole_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    run = start("train", *BASE, "--epochs", "100000", "--out", str(out))
    wait_for(RunFiles(out).grid(1))
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in stderr
    assert load_checkpoint(out / "checkpoint.pt")["step"] >= 8  # whole, and loads


def test_sigterm_resumes_exactly(tmp_path):
    G, D = small_gan("mlp")
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path / "a", progress=False,
                  callbacks=[StopAt(5, "sigterm")])
    assert history.stop_reason == "terminated (SIGTERM)" and len(history["loss_d"]) == 5
    G, D = small_gan("mlp")
    fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path / "a", resume=True, progress=False)
    G2, D2 = small_gan("mlp")
    fit(G2, D2, tiny_loader(), epochs=2, run_dir=tmp_path / "b", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(),
                                                  G2.state_dict().values()))


def test_a_signal_during_a_checkpoint_write_waits_for_the_write(tmp_path, monkeypatch):
    path = save_checkpoint({"step": 1, "w": torch.ones(3)}, tmp_path / "checkpoint.pt")
    real_save = torch.save

    def interrupted_save(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        time.sleep(0.05)
        real_save(obj, f)

    monkeypatch.setattr(checkpoints.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["step"] == 2  # written whole before the interrupt was raised
    assert not path.with_name(".checkpoint.pt.tmp").exists()


# ----------------------------------------------------------------------------- concurrent runs


def test_a_second_run_into_the_same_folder_is_refused(tiny_data, tmp_path):
    out = tmp_path / "run"
    first = start("train", *BASE, "--epochs", "100000", "--out", str(out))
    try:
        wait_for(RunFiles(out).grid(1))
        second = cli("train", *BASE, "--out", str(out), "--overwrite")
        assert second.returncode == 2
        assert f"in use by another training run (process {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143  # the first run was not disturbed
    assert load_checkpoint(out / "checkpoint.pt")["step"] >= 8


def test_a_stale_lock_is_taken_over(tiny_data, tmp_path):
    """A lock file left by a run that was killed (no lock is held on it any more)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "run"
    out.mkdir()
    RunFiles(out).lock.write_text(f"process {gone.pid} on {os.uname().nodename}\n")
    result = cli("train", *BASE, "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert RunFiles(out).lock.read_text() == ""


# ----------------------------------------------------------------------------- damage


class Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "hostile pickle", "missing part"])
def test_a_damaged_checkpoint_is_refused_in_one_line(trained, tmp_path, damage):
    path = trained / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    marker = tmp_path / "pwned"
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "hostile pickle":
        torch.save({"format": "gan-helpers-checkpoint/2", "G": Hostile(marker)}, path)
    else:
        ckpt = load_checkpoint(path)
        del ckpt["G"]
        save_checkpoint(ckpt, path)
    expected = "lacks G" if damage == "missing part" else "cannot be used"
    for command in (["train", *BASE, "--epochs", "2", "--out", str(trained), "--resume"],
                    ["sample", str(trained)]):
        result = cli(*command)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert not marker.exists()


# ----------------------------------------------------------------------------- divergence, disk


def test_divergence_stops_the_run_like_nan(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = cli("train", *BASE, "--epochs", "3", "--lr", "100", "--out", str(out))
    assert result.returncode == 1
    assert "the run diverged" in result.stderr and "Traceback" not in result.stderr
    assert "lower learning rate" in result.stderr
    assert not (out / "checkpoint.pt").exists()  # nothing good to keep: no checkpoint at all


def test_a_full_disk_stops_with_a_clear_message_and_keeps_the_last_checkpoint(
        tiny_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_save = torch.save
    saves = {"n": 0}

    def full_after_the_first(obj, f):
        saves["n"] += 1
        if saves["n"] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f)

    monkeypatch.setattr(checkpoints.torch, "save", full_after_the_first)
    assert main(["train", *BASE, "--epochs", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Could not write the checkpoint" in err and "No space left on device" in err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 8  # epoch 1's, whole
    assert not (out / ".checkpoint.pt.tmp").exists()


def test_overwrite_replaces_the_whole_run(trained):
    files = RunFiles(trained)
    files.best.write_bytes(files.checkpoint.read_bytes())  # as if the old run had evaluations
    files.metrics.write_text("{}")
    result = cli("train", *BASE, "--epochs", "1", "--seed", "5", "--out", str(trained),
                 "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not files.best.exists() and not files.metrics.exists()  # nothing of the old run
    assert load_checkpoint(files.checkpoint)["run"]["settings"]["seed"] == 5
    assert sorted(p.name for p in files.grids.iterdir()) == ["epoch_001.png"]
