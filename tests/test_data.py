"""The data layer: torchvision loading, the offline paths, damaged files, the fast loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torchvision import datasets

from gan_helpers import config, data
from tests.helpers import write_dataset


def _no_download(monkeypatch):
    """Make torchvision's download fail as it does offline, whatever this machine can reach."""
    def fail(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network in this test")
    monkeypatch.setattr(datasets.MNIST, "download", fail)


def test_loads_idx_files_through_torchvision(tiny_data):
    ds = data.load_dataset()
    assert isinstance(ds, datasets.FashionMNIST)
    assert len(ds) == 256
    assert torch.equal(ds.data, torch.from_numpy(tiny_data["train_images"]))
    test = data.load_dataset(train=False)
    assert torch.equal(test.targets, torch.from_numpy(tiny_data["t10k_labels"]).long())


def test_dataset_setting_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("GAN_DATASET", "fashion-mnist")
    assert config.dataset_name() == "fashion-mnist"
    assert config.dataset_name("mnist") == "mnist"
    monkeypatch.delenv("GAN_DATASET")
    assert config.dataset_name() == "mnist"
    with pytest.raises(ValueError, match=", ".join(config.DATASETS)):
        config.dataset_name("cifar10")


def test_offline_without_copy_names_files_folder_and_options(tmp_path, monkeypatch):
    _no_download(monkeypatch)
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(tmp_path / "none"))
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("mnist", root=tmp_path / "data")
    message = str(err.value)
    for name in data.RAW_FILES:
        assert f"{name}.gz" in message
    assert str(tmp_path / "data" / "MNIST" / "raw") in message
    assert "dataset-fashion-mnist" in message and "GAN_DATA_DIR" in message
    assert "download failed" in message


def test_offline_uses_system_copy_decompresses_it_and_says_so_in_one_line(
        tmp_path, monkeypatch, capsys):
    _no_download(monkeypatch)
    system = tmp_path / "system"
    arrays = write_dataset(system / "fashion-mnist", compress=True)
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(system))
    ds = data.load_dataset("fashion-mnist", root=tmp_path / "data")
    assert torch.equal(ds.data, torch.from_numpy(arrays["train_images"]))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.RAW_FILES)
    said = capsys.readouterr()
    (line,) = said.out.splitlines()  # one line, naming what was done instead and where
    assert line.startswith("Fashion-MNIST could not be downloaded")
    assert str(system / "fashion-mnist") in line and str(raw) in line
    assert said.err == ""
    data.load_dataset("fashion-mnist", root=tmp_path / "data")  # the copy is made only once
    assert capsys.readouterr().out == ""


def test_system_copy_of_one_dataset_is_never_used_for_another(tmp_path, monkeypatch):
    _no_download(monkeypatch)
    system = tmp_path / "system"
    write_dataset(system / "fashion-mnist", compress=True)
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(system))
    with pytest.raises(data.DatasetUnavailableError, match="MNIST is not available"):
        data.load_dataset("mnist", root=tmp_path / "data")


def test_truncated_file_gets_an_error_naming_it(tiny_data):
    path = tiny_data["root"] / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(data.DatasetCorruptError, match="train-images-idx3-ubyte.*truncated"):
        data.load_dataset()


def test_file_that_is_not_idx_gets_an_error_naming_it(tiny_data):
    path = tiny_data["root"] / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_text("<html>Not found</html>")
    with pytest.raises(data.DatasetCorruptError, match="t10k-labels-idx1-ubyte.*not an IDX"):
        data.load_dataset()


def test_corrupt_system_gzip_gets_an_error_naming_it(tmp_path, monkeypatch):
    _no_download(monkeypatch)
    system = tmp_path / "system" / "fashion-mnist"
    write_dataset(system, compress=True)
    bad = system / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:200])
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(tmp_path / "system"))
    with pytest.raises(data.DatasetCorruptError, match="train-images-idx3-ubyte.gz"):
        data.load_dataset("fashion-mnist", root=tmp_path / "data")


def test_normalize_matches_the_classic_transform_and_inverts(tiny_data):
    ds = data.load_dataset(transform=data.classic_transform())
    images, _ = data.load_tensors()
    classic = torch.stack([ds[i][0] for i in range(8)])
    assert torch.equal(data.normalize(images[:8]), classic)
    assert classic.min() >= -1 and classic.max() <= 1
    assert torch.allclose(data.denormalize(classic) * 255, images[:8].float(), atol=1e-4)


def _epoch(loader, epoch):
    return torch.cat([labels for _, labels in loader.batches(epoch)])


def test_tensor_loader_covers_every_sample_once_per_epoch():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 2, 2)
    labels = torch.arange(100)
    loader = data.TensorLoader(images.contiguous(), labels, batch_size=32, seed=3)
    assert len(loader) == 4
    seen = [labels for _, labels in loader]
    assert [len(s) for s in seen] == [32, 32, 32, 4]
    assert sorted(torch.cat(seen).tolist()) == list(range(100))
    for x, y in loader.batches(1):  # images follow their labels through the shuffle
        assert torch.equal(data.normalize(images[y]), x)


def test_tensor_loader_order_depends_only_on_seed_and_epoch():
    images, labels = torch.zeros(64, 1, 28, 28, dtype=torch.uint8), torch.arange(64)
    a = data.TensorLoader(images, labels, batch_size=16, seed=1)
    b = data.TensorLoader(images, labels, batch_size=16, seed=1)
    c = data.TensorLoader(images, labels, batch_size=16, seed=2)
    assert torch.equal(_epoch(a, 0), _epoch(b, 0))
    assert not torch.equal(_epoch(a, 0), _epoch(a, 1))  # reshuffled every epoch
    assert not torch.equal(_epoch(a, 0), _epoch(c, 0))
    first, second = list(iter(a)), list(iter(a))  # iterating twice gives epochs 0 then 1
    assert torch.equal(torch.cat([y for _, y in first]), _epoch(b, 0))
    assert torch.equal(torch.cat([y for _, y in second]), _epoch(b, 1))
    tail = torch.cat([y for _, y in a.batches(2, start=2)])  # resuming mid-epoch
    assert torch.equal(tail, _epoch(b, 2)[32:])


def test_tensor_loader_drop_last_range_and_resize(tiny_data):
    loader = data.make_loader(batch_size=100)  # 256 images, drop_last by default
    assert len(loader) == 2
    batches = list(loader)
    assert all(x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 for x, _ in batches)
    x = torch.cat([x for x, _ in batches])
    assert x.min() == -1 and x.max() == 1
    big = data.make_loader(batch_size=8, image_size=64)
    assert next(iter(big))[0].shape == (8, 1, 64, 64)


def test_tensor_loader_rejects_floats():
    with pytest.raises(TypeError, match="uint8"):
        data.TensorLoader(torch.zeros(4, 1, 28, 28), torch.zeros(4))


def test_pick_follows_the_smoke_switch(monkeypatch):
    monkeypatch.setattr(config, "SMOKE", False)
    assert config.pick(full=10, smoke=1) == 10
    monkeypatch.setattr(config, "SMOKE", True)
    assert config.pick(full=10, smoke=1) == 1


def test_first_images_go_through_the_datasets_transform_and_shrink_in_smoke_mode(
        tiny_data, monkeypatch):
    ds = data.load_dataset(transform=data.classic_transform())
    monkeypatch.setattr(config, "SMOKE", False)
    first = data.first_images(ds, 10)
    assert first.shape == (10, 1, 28, 28)
    assert torch.equal(first, data.normalize(data.load_tensors()[0][:10]))
    assert len(data.first_images(ds, 1000)) == 256  # no more than the dataset holds
    monkeypatch.setattr(config, "SMOKE", True)
    monkeypatch.setattr(config, "SMOKE_IMAGES", 7)
    assert len(data.first_images(ds, 10)) == 7


def test_time_loader_counts_the_batches_it_timed_and_moves_them(monkeypatch):
    moved = []

    class Batch(torch.Tensor):
        def to(self, device):
            moved.append(torch.device(device))
            return self

    images = torch.zeros(100, 1, 2, 2, dtype=torch.uint8)
    loader = data.TensorLoader(images, torch.arange(100), batch_size=32)  # 4 batches, last short
    monkeypatch.setattr(config, "SMOKE", False)
    done, seconds = data.time_loader(loader)
    assert done == 4 and seconds > 0  # None: the whole epoch
    assert data.time_loader(loader, 2)[0] == 2
    assert data.time_loader(loader, 10)[0] == 4  # never past the end of one epoch
    batches = [(Batch(torch.zeros(2)), None)] * 3
    assert data.time_loader(batches, device="cpu")[0] == 3 and moved == [torch.device("cpu")] * 3
    monkeypatch.setattr(config, "SMOKE", True)
    many = [(torch.zeros(1), None)] * 50
    assert data.time_loader(many, 40)[0] == data.SMOKE_TIMED_BATCHES < 40
    assert data.time_loader(many)[0] == 50  # a whole epoch stays whole


def test_following_the_offline_advice_works_with_any_gzip(tmp_path, monkeypatch, capsys):
    """The offline error asks for the four .gz files in raw/: put there (recompressed, so their
    MD5s are not torchvision's, and with no system copy), they are unpacked and used."""
    _no_download(monkeypatch)
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(tmp_path / "none"))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    arrays = write_dataset(raw, compress=True)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{f}.gz" for f in data.RAW_FILES)
    ds = data.load_dataset("fashion-mnist", root=tmp_path / "data")
    assert torch.equal(ds.data, torch.from_numpy(arrays["train_images"]))
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [*data.RAW_FILES, *(f"{f}.gz" for f in data.RAW_FILES)])  # the .gz files are kept
    assert capsys.readouterr().err == ""


def test_a_damaged_placed_gzip_is_named(tmp_path, monkeypatch):
    _no_download(monkeypatch)
    monkeypatch.setenv("GAN_SYSTEM_DATASETS", str(tmp_path / "none"))
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    write_dataset(raw, compress=True)
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(data.DatasetCorruptError, match=f"Dataset file {bad} cannot be read"):
        data.load_dataset("fashion-mnist", root=tmp_path / "data")
    assert not (raw / "train-labels-idx1-ubyte").exists()  # no half-written file
    assert not list(raw.glob(".*partial"))


def test_files_are_checked_once_per_version(tiny_data, monkeypatch):
    """The contents check (MD5s, labels, black images) runs once per file; the cache, beside
    raw/, is keyed on size and modification time, so a changed file is checked again."""
    checked = []
    real = data.check_file_contents
    monkeypatch.setattr(data, "check_file_contents",
                        lambda info, path: checked.append(path.name) or real(info, path))
    data._verified.clear()
    data.load_dataset()
    assert sorted(checked) == sorted(data.RAW_FILES)
    assert (tiny_data["root"] / "FashionMNIST" / data.VERIFIED).exists()
    data._verified.clear()  # a new process: only the cache file remains
    data.load_dataset(train=False)
    assert len(checked) == 4
    labels = tiny_data["root"] / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes())  # same contents, a new modification time
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    data.load_dataset()
    assert checked[4:] == ["t10k-labels-idx1-ubyte"]


def test_a_read_only_cache_folder_still_works(tiny_data, monkeypatch):
    """The cache cannot be written (a read-only data folder): the files are checked, and the
    check is remembered in memory instead."""
    def refuse(self, text):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "write_text", refuse)
    data._verified.clear()
    assert len(data.load_dataset()) == 256
    assert not (tiny_data["root"] / "FashionMNIST" / data.VERIFIED).exists()
    calls = []
    monkeypatch.setattr(data, "check_file_contents", lambda info, path: calls.append(path))
    data.load_dataset()
    assert calls == []
