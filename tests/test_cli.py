"""The training command line: its run folder, resume, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from torchvision import datasets

from gan_helpers import recipes
from gan_helpers.__main__ import main
from gan_helpers.checkpoints import load_checkpoint, load_generator
from gan_helpers.models import generate
from gan_helpers.recipes import PRESETS, Recipe, default_name
from gan_helpers.training import native_bf16


def test_train_writes_the_whole_run_folder_and_resumes(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.pt", "final.png", "losses.png", "history.json", "grids"} <= names
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_001.png",
                                                                "epoch_002.png"]
    assert len(json.loads((out / "history.json").read_text())["loss_d"]) == 8
    run = load_checkpoint(out / "checkpoint.pt")["run"]
    assert run["settings"]["model"] == "dcgan" and run["dataset"] == "fashion-mnist"
    assert run["G"]["class"] == "DCGANGenerator"

    assert main(["train", "--model", "dcgan", "--epochs", "3", "--batch-size", "64",
                 "--out", str(out), "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 12
    assert len(list((out / "grids").iterdir())) == 3
    assert "finished after 12 steps" in capsys.readouterr().out


def test_errors_are_one_clear_line(tiny_data, tmp_path, capsys, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading: no network in this test")
    monkeypatch.setattr(datasets.MNIST, "download", offline)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "none"), "--resume"])
    assert exit_.value.code == 2 and "no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "MNIST is not available" in err and "Traceback" not in err


def test_the_dcgan_trains_the_tuned_recipe_on_a_cpu_unless_told_otherwise(tiny_data, tmp_path,
                                                                           capsys):
    def settings(out):
        return load_checkpoint(out / "checkpoint.pt")["run"]["settings"]

    runs = {name: tmp_path / name for name in ("default", "paper", "mixed")}
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(runs["default"])]) == 0
    said = capsys.readouterr().out
    assert "(recipe tuned)" in said and ("bf16 autocast" in said) == native_bf16("cpu")
    tuned = settings(runs["default"])
    assert (tuned["g_kwargs"], tuned["lr_g"], tuned["batch_size"], tuned["ema"]) == (
        {"width": 32}, 8e-4, 64, None)
    assert tuned["lr_schedule"] is None  # the preset's (none)
    assert main(["train", "--recipe", "paper", "--epochs", "1", "--out", str(runs["paper"])]) == 0
    paper = settings(runs["paper"])
    assert "g_kwargs" not in paper and paper["d_kwargs"] == {"norm": "batch"}
    assert (paper["lr_g"], paper["batch_size"], paper["ema"]) == (2e-4, 128, None)
    assert paper["lr_schedule"] is None
    assert main(["train", "--epochs", "1", "--ema", "0.9", "--width", "16", "--lr", "1e-3",
                 "--batch-size", "32", "--amp", "off", "--lr-schedule", "late-linear",
                 "--device", "cpu",
                 "--out", str(runs["mixed"])]) == 0  # options win
    assert "bf16 autocast" not in capsys.readouterr().out
    mixed = settings(runs["mixed"])
    assert (mixed["g_kwargs"], mixed["lr_d"], mixed["batch_size"], mixed["ema"]) == (
        {"width": 16}, 1e-3, 32, 0.9)
    assert mixed["lr_schedule"] == "late-linear"
    # The tuned recipe was measured for the DCGAN on a CPU: elsewhere the paper's is the default.
    for model, loss, device in (("mlp", "bce", "cpu"), ("dcgan", "hinge", "cpu"),
                                ("dcgan", "bce", "meta")):
        assert default_name(model, loss, torch.device(device)) == "paper"
    assert PRESETS["paper"] == (Recipe(), 128, None, None)
    # Lessons take the same rule by name: the tuned preset on a CPU, with its bf16 setting.
    assert recipes.default_preset("cpu") is PRESETS["tuned"]
    assert recipes.default_preset(torch.device("meta")) is PRESETS["paper"]
    assert PRESETS["tuned"].options().speed.amp == "auto"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--model", "mlp", "--recipe", "tuned", "--out", str(tmp_path / "m")])
    assert exit_.value.code == 2
    assert "--recipe tuned is the dcgan model's" in capsys.readouterr().err


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
    settings = ckpt["run"]["settings"]
    assert settings["model"] == "cdcgan" and settings["spectral_norm"]
    assert settings["instance_noise"] == 0.1
    assert settings["d_kwargs"] == {"norm": "none"}
    assert "saturating=True, real_label=0.9" in settings["objective"]
    assert ckpt["fixed_labels"] is not None

    out = tmp_path / "wgan"
    assert main(["train", "--model", "dcgan", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--loss", "wgan-gp"]) == 0
    settings = load_checkpoint(out / "checkpoint.pt")["run"]["settings"]
    assert settings["d_kwargs"] == {"norm": "layer"} and list(settings["betas"]) == [0.0, 0.9]
    assert settings["lr_g"] == settings["lr_d"] == 1e-4
    def strict(token):
        raise ValueError(f"{token} is not JSON")
    history = json.loads((out / "history.json").read_text(), parse_constant=strict)
    assert history["grad_g"] == [None] * 4  # 4 steps < n_critic: G never updated
    capsys.readouterr()

    for args, message in [(["--loss", "wgan-gp", "--label-smoothing", "0.9"],
                           "Label smoothing needs a BCE loss"),
                          (["--model", "mlp", "--d-norm", "layer"], "d_norm applies to the DCGAN")]:
        with pytest.raises(SystemExit) as exit_:
            main(["train", *args, "--out", str(tmp_path / "bad")])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before any work


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "argument --epochs: 0 is out of range: it must be at least 1"),
    (["--epochs", "-1"], "argument --epochs: -1 is out of range"),
    (["--batch-size", "0"], "argument --batch-size: 0 is out of range"),
    (["--lr", "0"], "argument --lr: 0 is out of range: it must be above 0"),
    (["--limit", "-5"], "argument --limit: -5 is out of range"),
    (["--eval-samples", "1"], "argument --eval-samples: 1 is out of range: it must be at least 2"),
    (["--label-smoothing", "1.5"], "it must be above 0.5 and at most 1"),
    (["--batch-size", "600", "--limit", "512"],
     "--batch-size 600 is larger than the 512 training images"),
    (["--device", "cuda:7"], "argument --device"),
    (["--device", "tpu"], "argument --device"),
    (["--resume", "--overwrite"], "pick one"),
    (["--ema", "1"], "argument --ema: 1 is out of range: it must be at least 0 and at most 0.9999"),
    (["--ema", "-0.5"], "argument --ema: -0.5 is out of range"),
])
def test_bad_arguments_are_refused_by_the_parser(tmp_path, capsys, args, message):
    if args[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "run"), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_not_overwritten_without_asking(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--model", "mlp", "--epochs", "1", "--batch-size", "64", "--out", str(out)]
    assert main(common) == 0
    before = load_checkpoint(out / "checkpoint.pt")["G"]
    with pytest.raises(SystemExit) as exit_:
        main(common)
    assert exit_.value.code == 2 and "already holds a run" in capsys.readouterr().err
    assert all(torch.equal(a, b) for a, b in zip(
        before.values(), load_checkpoint(out / "checkpoint.pt")["G"].values()))
    assert main([*common, "--overwrite", "--seed", "1"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["run"]["settings"]["seed"] == 1
    # resuming under other settings is refused with both values named
    assert main([*common, "--resume", "--epochs", "2", "--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "lr_g was 0.0002, now 0.001" in err and "use another run folder" in err


def test_sample_and_evaluate_a_run_folder(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cmlp", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out)]) == 0
    assert main(["sample", str(out), "--n", "20", "--class", "3",
                 "--out", str(tmp_path / "s.png")]) == 0
    grid = Image.open(tmp_path / "s.png")
    assert grid.size == (2 * (10 * 30 + 2), 2 * (2 * 30 + 2))  # 20 images, 10 a row, scale 2
    assert main(["sample", str(out), "--n", "5", "--out", str(tmp_path / "s.pt")]) == 0
    images = torch.load(tmp_path / "s.pt")
    assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert main(["sample", str(out), "--class", "10"]) == 2
    assert "this model has classes 0 to 9" in capsys.readouterr().err
    capsys.readouterr()

    assert main(["evaluate", str(out), "--n", "64"]) == 0
    table = capsys.readouterr().out
    assert "checkpoint.pt (step 4)" in table
    assert "real (training split)" in table and "noise (uniform)" in table and "FID" in table


def test_sample_refuses_a_class_for_an_unconditional_model(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["sample", str(out), "--class", "1"]) == 2
    assert "unconditional: --class needs a conditional model" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "No run folder at" in capsys.readouterr().err


def test_only_the_projects_errors_lose_their_traceback(tiny_data, tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug, not the user's mistake")
    monkeypatch.setattr("gan_helpers.__main__.fit", bug)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--model", "mlp", "--out", str(tmp_path / "run")])


def test_ema_from_training_to_samples_and_scores(tiny_data, tmp_path, capsys):
    """--ema keeps the average in the checkpoint; sample and evaluate use it, --raw does not."""
    out = tmp_path / "run"
    assert main(["train", "--model", "dcgan", "--epochs", "1", "--batch-size", "64",
                 "--out", str(out), "--ema", "0.9"]) == 0
    assert "moving average of G's weights (decay 0.9)" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["run"]["settings"]["ema"] == 0.9
    assert ckpt["callbacks"][ckpt["average"]]["updates"] == 4  # 256 images, 64 a step

    averaged, _ = load_generator(out)
    raw, _ = load_generator(out, averaged=False)
    z = torch.randn(6, 100, generator=torch.Generator().manual_seed(0))  # sample's noise
    for flags, G in (([], averaged), (["--raw"], raw)):
        assert main(["sample", str(out), "--n", "6", "--out", str(tmp_path / "s.pt"),
                     *flags]) == 0
        assert torch.equal(torch.load(tmp_path / "s.pt"), generate(G, z))
    assert not torch.equal(generate(averaged, z), generate(raw, z))
    said = capsys.readouterr().out
    assert "(step 4, moving average) ->" in said and "(step 4) ->" in said

    assert main(["evaluate", str(out), "--n", "64"]) == 0
    assert "checkpoint.pt (step 4, moving average)" in capsys.readouterr().out

    # resuming under another decay is another run
    assert main(["train", "--model", "dcgan", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out), "--resume", "--ema", "0.99"]) == 2
    assert "ema was 0.9, now 0.99" in capsys.readouterr().err
    assert main(["train", "--model", "dcgan", "--epochs", "2", "--batch-size", "64",
                 "--out", str(out), "--resume", "--ema", "0.9"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["callbacks"][ckpt["average"]]["updates"] == 8
