"""The training command line: its run folder, resume, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

from torchvision import datasets

from gan_helpers.__main__ import main
from gan_helpers.checkpoints import load_checkpoint


def test_train_writes_the_whole_run_folder_and_resumes(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.pt", "final.png", "losses.png", "history.json", "grids"} <= names
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_001.png",
                                                                "epoch_002.png"]
    assert len(json.loads((out / "history.json").read_text())["loss_d"]) == 8
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["meta"]["model"] == "dcgan" and ckpt["meta"]["dataset"] == "fashion-mnist"

    assert main(["train", "--model", "dcgan", "--epochs", "3", "--batch-size", "64",
                 "--out", str(out), "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 12
    assert len(list((out / "grids").iterdir())) == 3
    assert "finished after 12 steps" in capsys.readouterr().out


def test_errors_are_one_clear_line(tiny_data, tmp_path, capsys, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading: no network in this test")
    monkeypatch.setattr(datasets.MNIST, "download", offline)
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "MNIST is not available" in err and "Traceback" not in err


def test_module_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "gan_helpers", "train", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--model {mlp,dcgan,dcgan64,cmlp,cdcgan}" in result.stdout
    assert "--loss {bce,saturating,hinge,wgan-gp}" in result.stdout and "--resume" in result.stdout


def test_conditional_model_and_stabilisers_from_the_command_line(tiny_data, tmp_path, capsys):
    out = tmp_path / "cond"
    assert main(["train", "--model", "cdcgan", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--spectral-norm", "--instance-noise", "0.1",
                 "--label-smoothing", "0.9", "--loss", "saturating"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    meta = ckpt["meta"]
    assert meta["model"] == "cdcgan" and meta["spectral_norm"] and meta["instance_noise"] == 0.1
    assert meta["d_kwargs"] == {"norm": "none"}
    assert "saturating=True, real_label=0.9" in meta["objective"]
    assert ckpt["fixed_labels"] is not None

    out = tmp_path / "wgan"
    assert main(["train", "--model", "dcgan", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--loss", "wgan-gp"]) == 0
    meta = load_checkpoint(out / "checkpoint.pt")["meta"]
    assert meta["d_kwargs"] == {"norm": "layer"} and meta["betas"] == (0.0, 0.9)
    assert meta["lr_g"] == meta["lr_d"] == 1e-4
    def strict(token):
        raise ValueError(f"{token} is not JSON")
    history = json.loads((out / "history.json").read_text(), parse_constant=strict)
    assert history["grad_g"] == [None] * 4  # 4 steps < n_critic: G never updated
    capsys.readouterr()

    assert main(["train", "--loss", "wgan-gp", "--label-smoothing", "0.9",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "Label smoothing needs a BCE loss" in capsys.readouterr().err
    assert main(["train", "--model", "mlp", "--d-norm", "layer",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "d_norm applies to the DCGAN" in capsys.readouterr().err
