"""Fault injection, the inputs: odd values where they enter (the command line, the `GAN_*`
environment variables, the library functions a lesson calls), damaged or substituted data, and what
`sample` and `evaluate` write and say. Each test checks the exit status or the exception, the
message, and that nothing already saved changed (`snapshot` before and after)."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from gan_helpers import checks, config, data, latent, latent_views, metrics, models
from gan_helpers.__main__ import main
from gan_helpers.classifier import Classifier
from gan_helpers.errors import DeviceUnavailableError, UsageError, UsageTypeError
from gan_helpers.evaluation import Evaluator
from tests.helpers import (
    BASE,
    cli,
    small_conditional_g,
    small_gan,
    tiny_loader,
    write_dataset,
    write_idx,
)

ROOT = Path(__file__).resolve().parent.parent
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
FASHION = Path("/usr/share/datasets/fashion-mnist")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links too) and the MD5 of its contents."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[str(path.relative_to(folder))] = hashlib.md5(path.read_bytes()).hexdigest()
    return found


def refused(argv: list[str], capsys) -> str:
    """Run `main(argv)`, which must be refused with status 2 (by the parser, or as one line);
    return what it printed on stderr."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "error: " in err
    return err


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    """One run folder with one finished epoch (8 steps) of the MLP GAN and a samples.png, trained
    once for the module on `tiny_data`'s dataset (the same images every time)."""
    folder = tmp_path_factory.mktemp("trained")
    write_dataset(folder / "data" / "FashionMNIST" / "raw")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GAN_DATA_DIR", str(folder / "data"))
        env.setenv("GAN_DATASET", "fashion-mnist")
        env.setenv("GAN_SYSTEM_DATASETS", str(folder / "no-system-copy"))
        assert main(["train", *BASE, "--epochs", "1", "--out", str(folder / "run")]) == 0
        assert main(["sample", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture
def trained(trained_once, tiny_data, tmp_path, capsys) -> Path:
    """A copy of `trained_once` in this test's folder, beside `tiny_data`."""
    capsys.readouterr()
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


# ----------------------------------------------------------------------------- NaN, infinity


@pytest.mark.parametrize("args,message", [
    (["--lr", "nan"], "argument --lr: nan is not a finite number: it must be above 0"),
    (["--lr", "inf"], "argument --lr: inf is not a finite number"),
    (["--lr=-inf"], "argument --lr: -inf is not a finite number"),
    (["--lr", "1e20"], "argument --lr: 1e20 is out of range: it must be above 0 and at most 100"),
    (["--betas", "nan", "0.9"], "argument --betas: nan is not a finite number"),
    (["--betas", "0.5", "inf"], "argument --betas: inf is not a finite number"),
    (["--label-smoothing", "nan"], "argument --label-smoothing: nan is not a finite number"),
    (["--instance-noise", "inf"], "argument --instance-noise: inf is not a finite number"),
    (["--instance-noise", "nan"], "argument --instance-noise: nan is not a finite number"),
    (["--instance-noise", "1e30"], "it must be at least 0 and at most 10"),
    (["--ema", "nan"], "argument --ema: nan is not a finite number"),
    (["--seed", "-1"], "argument --seed: -1 is out of range: it must be at least 0"),
    (["--seed", str(2**64)], "at most 4,294,967,295"),
    (["--eval-samples", "1000000"], "argument --eval-samples: 1000000 is out of range"),
])
def test_odd_training_values_are_refused_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    err = refused(["train", *BASE, "--out", str(out), *args], capsys)
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize("command,args,message", [
    ("sample", ["--seed", str(10**30)], "argument --seed: 1000000000000000000000000000000 is "
                                        "out of range"),
    ("sample", ["--seed", "-3"], "argument --seed: -3 is out of range"),
    ("sample", ["--n", "0"], "argument --n: 0 is out of range: it must be at least 1"),
    ("sample", ["--n", "1e9"], "argument --n: '1e9' is not a int"),
    ("evaluate", ["--n", "1"], "argument --n: 1 is out of range: it must be at least 2"),
    ("evaluate", ["--seed", "nan"], "argument --seed: 'nan' is not a int"),
])
def test_odd_sample_and_evaluate_values_are_refused(trained, capsys, command, args, message):
    before = snapshot(trained)
    assert message in refused([command, str(trained), *args], capsys)
    assert snapshot(trained) == before


# ----------------------------------------------------------------------------- environment


def test_a_bad_smoke_images_variable_does_not_break_help(tmp_path):
    result = cli("train", "--help", env={"GAN_SMOKE_IMAGES": "abc"})
    assert result.returncode == 0 and "--epochs" in result.stdout, result.stderr


@pytest.mark.parametrize("value,message", [
    ("abc", "GAN_SMOKE_IMAGES is 'abc', not a whole number"),
    ("-5", "GAN_SMOKE_IMAGES is -5, but it must be at least 1"),
    ("0", "GAN_SMOKE_IMAGES is 0, but it must be at least 1"),
])
def test_a_bad_smoke_images_variable_is_one_line_in_smoke_mode(tiny_data, tmp_path, value,
                                                               message):
    out = tmp_path / "run"
    result = cli("train", *BASE, "--out", str(out),
                 env={"GAN_SMOKE": "1", "GAN_SMOKE_IMAGES": value})
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize("value,message", [
    ("mps", "GAN_DEVICE is 'mps', but Apple MPS is not available here"),
    ("cuda:7", "GAN_DEVICE is 'cuda:7', but"),
    ("tpu", "GAN_DEVICE is 'tpu', which is not a device: use cpu, cuda, cuda:N or mps"),
    ("cuda:x", "GAN_DEVICE is 'cuda:x', which is not a device"),
])
def test_a_bad_device_variable_is_refused_naming_it(tiny_data, tmp_path, monkeypatch, capsys,
                                                    value, message):
    if value == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if value == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    monkeypatch.setenv("GAN_DEVICE", value)
    out = tmp_path / "run"
    assert message in refused(["train", *BASE, "--out", str(out)], capsys)
    assert not out.exists()
    with pytest.raises(DeviceUnavailableError, match="GAN_DEVICE"):
        config.pick_device()


def test_a_bad_device_variable_stops_sample_and_changes_nothing(trained, monkeypatch, capsys):
    monkeypatch.setenv("GAN_DEVICE", "mps" if not torch.backends.mps.is_available() else "tpu")
    before = snapshot(trained)
    assert "GAN_DEVICE is" in refused(["sample", str(trained), "--n", "4"], capsys)
    assert snapshot(trained) == before


def test_options_given_win_over_bad_variables(trained, tmp_path, monkeypatch, capsys):
    """--device and --dataset replace GAN_DEVICE and GAN_DATASET, so their bad values do not
    matter then; sample and evaluate take the dataset from the checkpoint."""
    monkeypatch.setenv("GAN_DEVICE", "tpu")
    monkeypatch.setenv("GAN_DATASET", "cifar10")
    out = tmp_path / "s.pt"
    assert main(["sample", str(trained), "--n", "3", "--device", "cpu", "--out", str(out)]) == 0
    assert torch.load(out).shape == (3, 1, 28, 28)
    assert main(["train", *BASE, "--dataset", "fashion-mnist", "--device", "cpu", "--max-steps",
                 "1", "--out", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "checkpoint.pt").exists()


def test_device_names_in_capitals_are_allowed(trained, monkeypatch, capsys):
    monkeypatch.setenv("GAN_DEVICE", " CPU ")
    assert config.pick_device() == torch.device("cpu")
    assert checks.device("Cpu") == torch.device("cpu")
    assert main(["sample", str(trained), "--n", "4", "--device", "CPU",
                 "--out", str(trained.parent / "s.pt")]) == 0
    assert torch.load(trained.parent / "s.pt").shape == (4, 1, 28, 28)


@pytest.mark.parametrize("env,message", [
    ({"GAN_DATASET": "cifar10"}, "Unknown dataset 'cifar10': choose one of mnist, fashion-mnist"),
    ({"GAN_DATA_DIR": "FILE"}, "which is a file: point it at a folder"),
])
def test_bad_dataset_variables_are_refused_before_any_work(tiny_data, tmp_path, monkeypatch,
                                                           capsys, env, message):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    for name, value in env.items():
        monkeypatch.setenv(name, str(blocker) if value == "FILE" else value)
    out = tmp_path / "run"
    assert message in refused(["train", *BASE, "--out", str(out)], capsys)
    assert not out.exists() and blocker.read_text() == "not a folder"


# ----------------------------------------------------------------------------- library calls


@pytest.mark.parametrize("kwargs,error,message", [
    ({"batch_size": "64"}, UsageTypeError,
     "batch_size must be a whole number, got text, '64': write batch_size=64, without quotes"),
    ({"batch_size": 0}, UsageError, "batch_size is 0, but it must be at least 1"),
    ({"batch_size": 2.5}, UsageError, "batch_size must be a whole number, got 2.5"),
    ({"batch_size": True}, UsageTypeError, "batch_size must be a whole number, got a bool"),
    ({"limit": -10}, UsageError, "limit is -10, but it must be at least 1"),
    ({"limit": float("nan")}, UsageError, "limit must be a whole number, got nan"),
    ({"seed": -1}, UsageError, "seed is -1, but it must be at least 0"),
    ({"image_size": "64"}, UsageTypeError, "image_size must be a whole number"),
    ({"device": "tpu"}, DeviceUnavailableError, "device is 'tpu', which is not a device"),
    ({"device": 3}, UsageTypeError, "device must be a device name"),
])
def test_make_loader_names_a_wrong_argument(tiny_data, kwargs, error, message):
    before = snapshot(tiny_data["root"])
    with pytest.raises(error) as err:
        data.make_loader(**kwargs)
    assert message in str(err.value)
    assert snapshot(tiny_data["root"]) == before


def test_make_loader_allows_whole_floats(tiny_data):
    assert data.make_loader(batch_size=64.0, limit=1e2).batch_size == 64  # 1e2: a hundred


@NO_CUDA
def test_cuda_without_cuda_is_one_clear_error_before_the_data_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path / "empty"))  # no dataset at all
    for call in (lambda: data.make_loader(device="cuda"), lambda: config.pick_device("cuda"),
                 lambda: data.TensorLoader(torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
                                           torch.zeros(4), device="cuda:0")):
        with pytest.raises(DeviceUnavailableError, match="CUDA is not available here"):
            call()
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("images,labels,message", [
    (torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4), "must have 4 dimensions"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(3), "4 images but 3 labels"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, 1), "labels has shape (4, 1)"),
    ([[0]], torch.zeros(1), "images must be a torch tensor"),
])
def test_tensor_loader_names_wrong_shapes(images, labels, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.TensorLoader(images, labels)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("case,error,message", [
    ("epochs as text", UsageTypeError, "epochs must be a whole number, got text, '2': write "
                                       "epochs=2, without quotes"),
    ("epochs 0", UsageError, "epochs is 0, but it must be at least 1"),
    ("max_steps nan", UsageError, "max_steps must be a whole number, got nan"),
    ("seed too large", UsageError, "seed is 18446744073709551616, but it must be at least 0 and "
                                   "at most 4,294,967,295"),
    ("swapped", UsageError, "G and D look swapped"),
    ("same network", UsageError, "G and D are the same network"),
    ("not a network", UsageTypeError, "D must be a network (a torch.nn.Module), got text"),
    ("mlp fed 64x64", UsageError, "G makes images of shape 1x28x28, but the loader serves "
                                  "1x64x64"),
    ("28x28 G, 64x64 D", UsageError, "D (DCGAN64Discriminator) cannot take G's images of "
                                     "shape 1x28x28"),
    ("latent mismatch", UsageError, "G (MLPGenerator) cannot turn latent vectors of 16 numbers"),
    ("not a loader", UsageTypeError, "loader must yield (images, labels) batches"),
])
def test_fit_arguments_name_the_mistake_in_words(case, error, message):
    """`checks.fit_arguments`, the check `fit` runs before any work; the networks are unchanged
    (BatchNorm's running statistics too)."""
    G, D = small_gan("dcgan")
    loader, epochs, kwargs = tiny_loader(), 1, {}
    if case == "epochs as text":
        epochs = "2"
    elif case == "epochs 0":
        epochs = 0
    elif case == "max_steps nan":
        kwargs = {"max_steps": float("nan")}
    elif case == "seed too large":
        kwargs = {"seed": 2**64}
    elif case == "swapped":
        G, D = D, G
    elif case == "same network":
        D = G
    elif case == "not a network":
        D = "D"
    elif case == "mlp fed 64x64":
        G, D = small_gan("mlp")
        loader = tiny_loader()
        loader.image_size = 64
    elif case == "28x28 G, 64x64 D":
        D = models.DCGAN64Discriminator(width=8)
    elif case == "latent mismatch":
        G, _ = small_gan("mlp")
        G.latent_dim = 16
        G.net[0] = torch.nn.Linear(12, G.net[0].out_features)  # built for 12 numbers, says 16
    elif case == "not a loader":
        loader = 42
    before = (_state(G), _state(D)) if isinstance(D, torch.nn.Module) else None
    with pytest.raises(error) as err:
        checks.fit_arguments(G, D, loader, epochs, **kwargs)
    assert message in str(err.value)
    if before is not None:
        assert _same(before[0], _state(G)) and _same(before[1], _state(D))


def test_fit_arguments_accept_a_good_pair_and_change_nothing():
    for G, D in (small_gan("dcgan"), small_gan("mlp")):
        before = (_state(G), _state(D))
        G.train()
        assert checks.fit_arguments(G, D, tiny_loader(), 2.0, max_steps=5)["epochs"] == 2
        assert G.training and _same(before[0], _state(G)) and _same(before[1], _state(D))
    G = small_conditional_g()
    D = models.ProjectionDiscriminator("mlp", 10)
    G8 = models.ConditionalGenerator("mlp", latent_dim=8, num_classes=10, hidden=(16,))
    checks.gan_networks(G8, D, (1, 28, 28))
    checks.gan_networks(G, D, (1, 28, 28))
    checks.fit_arguments(G, D, tiny_loader(), 1)


def test_labels_out_of_range_for_a_conditional_gan_are_named():
    G, D = small_conditional_g(), models.ProjectionDiscriminator("mlp", 10)
    loader = tiny_loader()
    loader.labels[3] = 10
    with pytest.raises(UsageError, match="The loader's labels include 10, but the conditional "
                                         "generator has classes 0 to 9"):
        checks.fit_arguments(G, D, loader, 1)


def _evaluator() -> Evaluator:
    return Evaluator(Classifier(), dataset="fashion-mnist", device="cpu")


@pytest.mark.parametrize("call,error,message", [
    (lambda e, G: e.score_generator(G, n=0), UsageError, "n is 0, but it must be at least 2"),
    (lambda e, G: e.score_generator(G, n="100"), UsageTypeError,
     "n must be a whole number, got text, '100'"),
    (lambda e, G: e.score_generator(G, seed=-2), UsageError, "seed is -2"),
    (lambda e, G: e.score_generator("G"), UsageTypeError, "G must be a generator network"),
    (lambda e, G: e.score_generator(small_gan("mlp")[1]), UsageError,
     "G (MLPDiscriminator) cannot turn latent vectors of 100 numbers into images"),
    (lambda e, G: e.score_generator(torch.nn.Linear(100, 1)), UsageError,
     "G (Linear) gives (2, 1) for 2 latent vectors, not images (2, C, H, W): is it a "
     "generator? (G and D may be swapped.)"),
    (lambda e, G: e.score_generator(models.DCGANDiscriminator(width=8)), UsageError,
     "G (DCGANDiscriminator) cannot turn latent vectors of 100 numbers into images"),
    (lambda e, G: e.score_generator(models.MLPGenerator(16, (8,), image_shape=(3, 28, 28))),
     UsageError, "G's images has 3 channels"),
    (lambda e, G: e.score(torch.zeros(8, 3, 28, 28)), UsageError,
     "images has 3 channels (shape (8, 3, 28, 28)), but grayscale images (1 channel)"),
    (lambda e, G: e.score(torch.zeros(8, 28, 28)), UsageError, "must have 4 dimensions"),
    (lambda e, G: e.score(torch.zeros(1, 1, 28, 28)), UsageError, "at least 2 images"),
    (lambda e, G: e.outputs(torch.zeros(2, 1, 28, 28, dtype=torch.int64)), UsageTypeError,
     "uint8 pixels or floats"),
    (lambda e, G: e.references(n=1), UsageError, "n is 1, but it must be at least 2"),
    (lambda e, G: Evaluator(classifier="resnet", dataset="mnist"), UsageTypeError,
     "classifier must be a gan_helpers Classifier"),
    (lambda e, G: Evaluator(Classifier(), dataset="mnist", batch_size=0), UsageError,
     "batch_size is 0"),
])
def test_the_evaluator_names_a_wrong_argument(call, error, message):
    evaluator = _evaluator()
    G, _ = small_gan("mlp")
    before = _state(G)
    with pytest.raises(error) as err:
        call(evaluator, G)
    assert message in str(err.value)
    assert _same(before, _state(G))


@pytest.mark.parametrize("call,error,message", [
    (lambda G: latent.slerp(torch.ones(16), torch.ones(8), 0.5), UsageError,
     "z0 has 16 numbers per vector and z1 8"),
    (lambda G: latent.slerp(torch.ones(16), torch.ones(16), float("nan")), UsageError,
     "t must be finite numbers"),
    (lambda G: latent.lerp(torch.ones(3, 16), torch.ones(4, 16), 0.5), UsageError,
     "do not pair up"),
    (lambda G: latent.lerp([1.0, 2.0], torch.ones(2), 0.5), UsageTypeError,
     "z0 must be a torch tensor"),
    (lambda G: latent.path(torch.ones(16), torch.ones(16), "10"), UsageTypeError,
     "steps must be a whole number"),
    (lambda G: latent.interpolate(G, torch.ones(64), torch.ones(64)), UsageError,
     "z0 has 64 numbers per vector (shape (64,)), but the generator takes 16"),
    (lambda G: latent.sample_prior(-1, 16), UsageError, "n is -1"),
    (lambda G: latent.sample_prior(10, 16, seed=2**40), UsageError, "seed is 1099511627776"),
    (lambda G: latent.sample_prior(10, "16"), UsageTypeError, "latent_dim must be a whole"),
    (lambda G: latent.walk(torch.ones(16), 4), UsageError, "keypoints has shape (16,)"),
    (lambda G: latent_views.Explorer(G, torch.ones(16), {"up": torch.ones(8)}), UsageError,
     "direction 'up' has 8 numbers, but z has 16"),
    (lambda G: latent_views.Explorer(G, torch.ones(16), {"up": torch.ones(16)}, span=float("inf")),
     UsageError, "span is inf, but it is not a finite number"),
    (lambda G: models.generate(G, torch.ones(3, 100)), UsageError,
     "z has 100 numbers per vector (shape (3, 100)), but the generator takes 16"),
    (lambda G: models.generate(G, torch.ones(3, 16), batch_size=0), UsageError,
     "batch_size is 0"),
    (lambda G: models.generate(torch.ones(3), torch.ones(3, 16)), UsageTypeError,
     "G must be a generator network"),
])
def test_latent_space_helpers_name_a_wrong_argument(call, error, message):
    G, _ = small_gan("mlp")
    with pytest.raises(error) as err:
        call(G)
    assert message in str(err.value)


def test_metrics_name_mismatched_statistics():
    mu, sigma = torch.zeros(4), torch.eye(4)
    with pytest.raises(UsageError, match=r"sigma2 has shape \(3, 3\), but mu1 has 4 features"):
        metrics.frechet_distance(mu, sigma, mu, torch.eye(3))
    with pytest.raises(UsageError, match="at least two feature vectors, got 1"):
        metrics.gaussian_stats(torch.zeros(1, 4))
    with pytest.raises(UsageError, match=r"features has shape \(5,\)"):
        metrics.gaussian_stats(torch.zeros(5))
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == 0.0


# ----------------------------------------------------------------------------- data integrity


def _no_download(monkeypatch) -> None:
    def fail(self):
        raise RuntimeError("Error downloading: no network in this test")
    monkeypatch.setattr(datasets.MNIST, "download", fail)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_other_datasets_files_are_refused_naming_the_file(tmp_path, monkeypatch):
    """Fashion-MNIST's files in MNIST/raw/ (here stand-ins whose MD5s are registered as
    Fashion-MNIST's, so the test needs no real dataset)."""
    _no_download(monkeypatch)
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_dataset(raw)
    known = {stem: _md5(raw / stem) for stem in data.RAW_FILES}
    monkeypatch.setitem(data.KNOWN_MD5, "fashion-mnist", known)
    before = snapshot(tmp_path / "data")
    with pytest.raises(data.DatasetMismatchError) as err:
        data.load_dataset("mnist", root=tmp_path / "data")
    assert str(err.value).startswith(f"{raw / 'train-images-idx3-ubyte'} is Fashion-MNIST's "
                                     "train-images-idx3-ubyte, not MNIST's")
    assert "choose fashion-mnist" in str(err.value)
    assert snapshot(tmp_path / "data") == before


def test_the_other_datasets_gz_files_are_known_by_torchvisions_md5(tmp_path, monkeypatch):
    _no_download(monkeypatch)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    write_dataset(raw)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(64, np.uint8))
    gz = write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(64, np.uint8), compress=True)
    resources = [(name, _md5(gz) if name == gz.name else md5)
                 for name, md5 in datasets.MNIST.resources]
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    with pytest.raises(data.DatasetMismatchError, match=f"{gz} is MNIST's t10k-labels"):
        data.load_dataset("fashion-mnist", root=tmp_path / "data")


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_genuine_fashion_mnist_put_in_mnist_raw_is_refused_by_the_command_line(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in FASHION.glob("*.gz"):  # what the offline message asks for, with the wrong dataset
        (raw / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "run"
    result = cli("train", *BASE, "--dataset", "mnist", "--out", str(out),
                 env={"GAN_DATA_DIR": str(tmp_path / "data"),
                      "GAN_SYSTEM_DATASETS": str(tmp_path / "none")})
    assert result.returncode == 2, result.stderr
    assert "is Fashion-MNIST's train-images-idx3-ubyte, not MNIST's" in result.stderr
    assert "Traceback" not in result.stderr and not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("damage,message", [
    ("label 12", "holds label 12 at position 5 (1 out of range in all), but Fashion-MNIST has "
                 "classes 0 to 9"),
    ("zeroed images", "256 of its 256 images are entirely black (zeroed)"),
    ("a tenth zeroed", "26 of its 256 images are entirely black"),
    ("other contents at the genuine size", "has the size of Fashion-MNIST's "
                                           "train-images-idx3-ubyte but not its contents"),
])
def test_damaged_data_is_refused_naming_the_file(tiny_data, monkeypatch, damage, message):
    raw = tiny_data["root"] / "FashionMNIST" / "raw"
    if damage == "label 12":
        labels = tiny_data["train_labels"].copy()
        labels[5] = 12
        write_idx(raw / "train-labels-idx1-ubyte", labels)
    elif damage == "zeroed images":
        write_idx(raw / "train-images-idx3-ubyte", np.zeros((256, 28, 28), np.uint8))
    elif damage == "a tenth zeroed":
        images = tiny_data["train_images"].copy()
        images[-26:] = 0
        write_idx(raw / "train-images-idx3-ubyte", images)
    else:
        monkeypatch.setitem(data.GENUINE_COUNT, "train", 256)  # as if this were the full split
    before = snapshot(tiny_data["root"])
    with pytest.raises(data.DatasetCorruptError) as err:
        data.make_loader()
    assert message in str(err.value) and str(raw) in str(err.value)
    assert snapshot(tiny_data["root"]) == before


def test_a_few_black_images_are_allowed(tiny_data):
    raw = tiny_data["root"] / "FashionMNIST" / "raw"
    images = tiny_data["train_images"].copy()
    images[:2] = 0  # under 1%: a dataset of one's own may hold a blank image or two
    write_idx(raw / "train-images-idx3-ubyte", images)
    assert len(data.make_loader(batch_size=8).images) == 256


def test_damaged_data_stops_the_command_line_before_training(tiny_data, tmp_path, capsys):
    raw = tiny_data["root"] / "FashionMNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", np.full(64, 200, np.uint8))
    out = tmp_path / "run"
    assert main(["train", *BASE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{raw / 't10k-labels-idx1-ubyte'} holds label 200" in err
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("where", ["GAN_DATA_DIR", "raw"])
def test_a_file_where_a_data_folder_belongs_is_one_clear_error(tmp_path, monkeypatch, where):
    _no_download(monkeypatch)
    blocker = tmp_path / "blocker"
    if where == "GAN_DATA_DIR":
        blocker.write_text("x")
        root, expected = blocker, f"The data folder {blocker} (GAN_DATA_DIR) is a file"
        monkeypatch.setenv("GAN_DATA_DIR", str(blocker))
    else:
        root = blocker
        (blocker / "MNIST").mkdir(parents=True)
        (blocker / "MNIST" / "raw").write_text("x")
        expected = f"{blocker / 'MNIST' / 'raw'} is a file, but it must be a folder"
    before = snapshot(tmp_path)
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("mnist", root=root)
    assert str(err.value).startswith(expected)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("source", ["gz files put in raw/", "a system copy"])
def test_a_data_folder_that_fills_up_says_so_and_leaves_no_partial_file(tmp_path, source):
    """A real limit on file size (`ulimit -f`): unpacking fails with EFBIG, which is named as the
    data folder's problem, not as a file that cannot be read."""
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    system = tmp_path / "system"
    # train images: 200,720 bytes unpacked
    write_dataset(raw if source.startswith("gz") else system / "fashion-mnist", compress=True)
    before = snapshot(tmp_path)
    code = "from gan_helpers import data; data.load_dataset(download=False)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "GAN_DATA_DIR": str(tmp_path / "data"), "GAN_DATASET": "fashion-mnist",
             "GAN_SYSTEM_DATASETS": str(system)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)))
    assert result.returncode == 1
    assert ("DatasetUnavailableError: Cannot write the dataset file train-images-idx3-ubyte into "
            f"{raw}: File too large") in result.stderr
    assert "cannot be read" not in result.stderr
    assert not list(raw.glob(".*partial"))
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # the .gz files untouched


def test_a_read_only_data_folder_is_named(tmp_path, monkeypatch):
    import errno

    _no_download(monkeypatch)
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "data")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("mnist", root=tmp_path / "data")
    assert str(err.value).startswith(f"Cannot create the dataset folder "
                                     f"{tmp_path / 'data' / 'MNIST' / 'raw'}: Read-only file "
                                     "system. Make the data folder writable")
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------------- sample outputs


def _pt(path: Path) -> torch.Tensor:
    return torch.load(path)


@pytest.mark.parametrize("out,message", [
    ("s.jpg", "s.jpg ends in .jpg: the name must end in .png or .pt"),
    ("samples", "samples has no extension: the name must end in .png or .pt"),
    ("s.pt.bak", "ends in .bak"),
    ("FOLDER", "is a folder: give a file name in it, e.g."),
    ("blocker/s.png", "because {parent}/blocker is a file"),
    ("dangling.png", "is a link to {parent}/nowhere.png, which does not exist: remove the link"),
])
def test_sample_refuses_an_output_it_cannot_write(trained, capsys, out, message):
    parent = trained.parent
    (parent / "blocker").write_text("not a folder")
    (parent / "FOLDER").mkdir()
    (parent / "dangling.png").symlink_to(parent / "nowhere.png")
    before = snapshot(parent)
    err = refused(["sample", str(trained), "--out", str(parent / out)], capsys)
    assert message.format(parent=parent) in err
    assert snapshot(parent) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_sample_refuses_a_folder_without_write_permission(trained, capsys):
    locked = trained.parent / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "cannot be written (permission denied)" in refused(
            ["sample", str(trained), "--out", str(locked / "s.png")], capsys)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("error", ["EACCES", "ENOSPC", "torch's writer"])
def test_a_failed_sample_write_keeps_the_old_file_whole(trained, capsys, monkeypatch, error):
    import errno

    from gan_helpers import __main__ as cli_module

    old = trained / "samples.png"
    before = snapshot(trained.parent)

    def failing(src, dst):
        if error == "torch's writer":
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
        code = getattr(errno, error)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(cli_module.os, "replace", failing)
    err = refused(["sample", str(trained), "--seed", "7"], capsys)
    assert f"Could not write the samples to {old}" in err and "Nothing there was changed" in err
    assert snapshot(trained.parent) == before  # no .partial file left either
    Image.open(old).verify()


@pytest.mark.parametrize("name", ["S.PT", "grid.PNG", "sub/dir/s.png"])
def test_sample_writes_upper_case_extensions_and_new_folders(trained, capsys, name):
    out = trained.parent / name
    assert main(["sample", str(trained), "--n", "10", "--out", str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    if name.lower().endswith(".pt"):
        assert _pt(out).shape == (10, 1, 28, 28)
    else:
        assert Image.open(out).size == (2 * (8 * 30 + 2), 2 * (2 * 30 + 2))


def test_sample_refuses_a_grid_too_large_to_open(trained, capsys):
    from gan_helpers import __main__ as cli_module

    before = snapshot(trained.parent)
    err = refused(["sample", str(trained), "--n", "100000"], capsys)
    assert "a grid of 100,000 images would have 363,001,936 pixels" in err
    assert "use --n 24,648 or fewer, or --out FILE.pt" in err
    assert snapshot(trained.parent) == before
    limit = Image.MAX_IMAGE_PIXELS  # the largest grid allowed is one Pillow opens
    assert cli_module._grid_pixels(24_648, 8, (1, 28, 28)) <= limit
    assert cli_module._grid_pixels(24_656, 8, (1, 28, 28)) > limit


# ----------------------------------------------------------------------------- which checkpoint


def test_sample_says_when_best_is_older_than_the_last_checkpoint(trained, capsys):
    (trained / "best.pt").write_bytes((trained / "checkpoint.pt").read_bytes())  # step 8
    assert main(["train", *BASE, "--epochs", "2", "--out", str(trained), "--resume"]) == 0
    capsys.readouterr()
    assert main(["sample", str(trained), "--n", "4", "--out", str(trained / "s.pt")]) == 0
    said = capsys.readouterr()
    assert f"from {trained / 'best.pt'} (step 8)" in said.out
    assert ("note: using best.pt, from step 8; the last checkpoint is from step 16, 8 steps "
            "later: add --checkpoint last") in said.err
    assert main(["sample", str(trained), "--n", "4", "--checkpoint", "last",
                 "--out", str(trained / "s.pt")]) == 0
    said = capsys.readouterr()
    assert "checkpoint.pt (step 16)" in said.out and "note:" not in said.err


def test_evaluate_warns_below_a_meaningful_sample_count_and_in_smoke_mode(trained, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr(config, "SMOKE", True)
    before = snapshot(trained)
    assert main(["evaluate", str(trained), "--n", "5000"]) == 0
    said = capsys.readouterr()
    assert ("note: GAN_SMOKE is set, so only 256 of the 5,000 images are scored, by a briefly "
            "trained classifier") in said.err
    assert "256 generated images from" in said.out and "5,000" not in said.out
    assert main(["evaluate", str(trained), "--n", "2"]) == 0
    said = capsys.readouterr()
    assert "warning: an FID from 2 samples is noisy and biased upwards" in said.err
    assert f"2 generated images from {trained / 'checkpoint.pt'}" in said.out
    assert snapshot(trained) == before
