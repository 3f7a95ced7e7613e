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
    assert "--model {dcgan,dcgan64,mlp}" in result.stdout and "--resume" in result.stdout
