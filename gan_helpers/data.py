"""Loading MNIST and Fashion-MNIST (online and offline), normalisation, and the fast loader.

The datasets come through `torchvision.datasets` with `download=True`. When the download fails
(no internet), a system-installed copy is used if there is one (Debian's `dataset-fashion-mnist`
puts the genuine files in `/usr/share/datasets/fashion-mnist/`); otherwise one clear error says
which four files to put where. Another dataset is never substituted silently.
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
import shutil
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from . import config
from .errors import GanHelpersError, UsageError

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What we need to know about one of the supported datasets."""

    name: str
    torchvision_class: type
    title: str
    classes: tuple[str, ...]

    @property
    def folder(self) -> str:
        """The folder torchvision uses under the data root (`MNIST`, `FashionMNIST`)."""
        return self.torchvision_class.__name__


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", datasets.MNIST, "MNIST", tuple(str(d) for d in range(10))
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        datasets.FashionMNIST,
        "Fashion-MNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


class DatasetUnavailableError(GanHelpersError, RuntimeError):
    """The dataset could not be downloaded and no local copy was found."""


class DatasetCorruptError(GanHelpersError, RuntimeError):
    """A dataset file exists but is truncated or not in the IDX format."""


def dataset_info(name: str | None = None) -> DatasetInfo:
    """The `DatasetInfo` for `name` (default: the configured dataset, see `config`)."""
    return DATASETS[config.dataset_name(name)]


def system_dirs(name: str) -> list[Path]:
    """Folders where an operating-system package may have installed the dataset's files.

    `$GAN_SYSTEM_DATASETS` (a `os.pathsep`-separated list of folders, each holding one folder
    per dataset) replaces the default `/usr/share/datasets`.
    """
    roots = os.environ.get("GAN_SYSTEM_DATASETS", "/usr/share/datasets").split(os.pathsep)
    return [Path(r) / name for r in roots if r]


# ----------------------------------------------------------------------------- file checks

_IDX_MAGIC = {"images": (0x0803, 3), "labels": (0x0801, 1)}


def check_idx_file(path: Path) -> tuple[int, ...]:
    """Check that `path` is a complete IDX file (the MNIST format); return its shape.

    Raises `DatasetCorruptError` naming the file if it is truncated or not an IDX file.
    """
    kind = "images" if "images" in path.name else "labels"
    magic, ndim = _IDX_MAGIC[kind]
    advice = "Delete it and run again to re-download, or replace it with a good copy."
    try:
        with open(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
    except OSError as err:
        raise DatasetCorruptError(f"Cannot read dataset file {path}: {err}") from err
    if len(header) < 4 + 4 * ndim or struct.unpack(">I", header[:4])[0] != magic:
        raise DatasetCorruptError(
            f"Dataset file {path} is not an IDX {kind} file (wrong or missing header). {advice}"
        )
    shape = struct.unpack(f">{ndim}I", header[4:])
    expected = 4 + 4 * ndim + math.prod(shape)
    actual = path.stat().st_size
    if actual != expected:
        raise DatasetCorruptError(
            f"Dataset file {path} is truncated or damaged: {actual:,} bytes, expected "
            f"{expected:,} for shape {shape}. {advice}"
        )
    return shape


def _check_raw_folder(raw: Path) -> None:
    for split in ("train", "t10k"):
        images = check_idx_file(raw / f"{split}-images-idx3-ubyte")
        labels = check_idx_file(raw / f"{split}-labels-idx1-ubyte")
        if images[0] != labels[0]:
            raise DatasetCorruptError(
                f"{raw / f'{split}-images-idx3-ubyte'} holds {images[0]} images but "
                f"{raw / f'{split}-labels-idx1-ubyte'} holds {labels[0]} labels: "
                "the files do not belong together. Delete them and run again."
            )


def _raw_complete(raw: Path) -> bool:
    return all((raw / f).exists() for f in RAW_FILES)


def _copy_system_files(source: Path, raw: Path) -> bool:
    """Decompress (or copy) a system copy's four files into `raw`; False if any is missing.

    Debian recompressed its `.gz` files, so their MD5 sums differ from the ones torchvision
    checks; torchvision accepts the decompressed files in `raw/` without a download.
    """
    found = {}
    for stem in RAW_FILES:
        for candidate in (source / f"{stem}.gz", source / stem):
            if candidate.exists():
                found[stem] = candidate
                break
    if len(found) < len(RAW_FILES):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for stem, src in found.items():
        tmp = raw / f".{stem}.partial"
        try:
            if src.suffix == ".gz":
                with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                shutil.copyfile(src, tmp)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            tmp.unlink(missing_ok=True)
            raise DatasetCorruptError(f"System dataset file {src} cannot be read: {err}") from err
        tmp.replace(raw / stem)
    return True


def _unavailable_message(info: DatasetInfo, raw: Path, download_error: BaseException | None) -> str:
    files = "\n".join(f"    {f}.gz" for f in RAW_FILES)
    why = f"The download failed ({download_error}).\n" if download_error else ""
    return (
        f"{info.title} is not available.\n{why}"
        f"Put these four files (gzipped or not) into {raw}/ :\n{files}\n"
        "Offline options:\n"
        f"  - copy them there from a machine with internet (torchvision downloads them to the same "
        f"folder), or point GAN_DATA_DIR at a folder that holds {info.folder}/raw/;\n"
        "  - on Debian or Ubuntu, `sudo apt-get install dataset-fashion-mnist` installs the "
        "genuine Fashion-MNIST; then choose fashion-mnist (the DATASET line of a lesson's "
        "settings, or GAN_DATASET=fashion-mnist for every lesson)."
    )


def _system_copy_message(info: DatasetInfo, source: Path, raw: Path,
                         download_error: BaseException | None) -> str:
    """The one line `load_dataset` prints when it used a system copy instead of downloading."""
    why = "could not be downloaded" if download_error is not None else "is not downloaded yet"
    return (f"{info.title} {why}, so the copy installed on this system was used instead: "
            f"unpacked {source} into {raw} (once, a few seconds).")


def load_dataset(
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    transform=None,
    download: bool = True,
) -> datasets.MNIST:
    """The torchvision dataset `name` (default: `$GAN_DATASET`, else MNIST) from `root`.

    Downloads with torchvision if needed; offline, falls back to a system-installed copy (and
    says so in one line); else raises `DatasetUnavailableError`. Damaged files raise
    `DatasetCorruptError` naming the file.
    """
    info = dataset_info(name)
    root = config.data_dir(root)
    raw = root / info.folder / "raw"
    download_error: BaseException | None = None

    if not _raw_complete(raw) and download:
        try:
            info.torchvision_class(str(root), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - any failure here means "try the offline copy"
            download_error = err
    if not _raw_complete(raw):
        for source in system_dirs(info.name):
            if _copy_system_files(source, raw):
                print(_system_copy_message(info, source, raw, download_error))
                break
    if not _raw_complete(raw):
        raise DatasetUnavailableError(_unavailable_message(info, raw, download_error))

    _check_raw_folder(raw)
    try:
        return info.torchvision_class(str(root), train=train, transform=transform, download=False)
    except Exception as err:  # noqa: BLE001 - re-raised with the folder named
        raise DatasetCorruptError(f"torchvision could not read the files in {raw}: {err}") from err


def load_tensors(
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as `(images, labels)`: uint8 `(N, 1, 28, 28)` and int64 `(N,)`.

    `limit` keeps the first `limit` samples (smoke mode uses this to stay fast).
    """
    ds = load_dataset(name, root, train=train)
    images, labels = ds.data.unsqueeze(1), ds.targets.long()
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images.contiguous(), labels.contiguous()


# ----------------------------------------------------------------------------- normalisation

MEAN, STD = 0.5, 0.5
"""`Normalize(MEAN, STD)` maps [0, 1] to [-1, 1], the range of the generator's tanh output."""


def classic_transform() -> transforms.Compose:
    """The per-image transform of the classic tutorials: `ToTensor()` then `Normalize`."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] to floats in [-1, 1] (the same values as `classic_transform`)."""
    return images.float().div_(255).sub_(MEAN).div_(STD)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] back to [0, 1] for display (clamped)."""
    return images.mul(STD).add(MEAN).clamp_(0, 1)


# ----------------------------------------------------------------------------- loaders


class TensorLoader:
    """A fast loader: the whole dataset as one uint8 tensor, batched by indexing.

    Use it like a `DataLoader`: `for images, labels in loader`. Each pass is one epoch; every
    sample appears once per epoch, in an order that depends only on `(seed, epoch)`, so the same
    seed gives the same order and a run can resume mid-epoch exactly (`batches(epoch, start)`).
    Images come out as floats in [-1, 1], resized to `image_size` if given.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 128,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        image_size: int | None = None,
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"TensorLoader wants uint8 images, got {images.dtype}.")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}.")
        device = torch.device(device) if device is not None else images.device
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.image_size = image_size
        self.epoch = 0
        self.dataset_name: str | None = None
        """The dataset's name (`make_loader` sets it), recorded in checkpoints."""

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of `epoch`: a permutation seeded by `(seed, epoch)`."""
        n = len(self.images)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=gen).to(self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, skipping the first `start` (to resume mid-epoch)."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = normalize(self.images.index_select(0, idx))  # index_select: 2x faster than [idx]
            if self.image_size is not None and x.shape[-1] != self.image_size:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
            yield x, self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.batches(epoch)


def make_loader(
    name: str | None = None,
    train: bool = True,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    seed: int = 0,
    limit: int | None = None,
    image_size: int | None = None,
    drop_last: bool = True,
    root: str | os.PathLike[str] | None = None,
) -> TensorLoader:
    """The fast loader over the configured dataset (drops the last, smaller batch by default).

    `limit` keeps the first `limit` images (None: all); smoke mode keeps `config.SMOKE_IMAGES`.
    """
    limit = config.smoke_cap(limit, config.SMOKE_IMAGES)
    images, labels = load_tensors(name, root, train=train, limit=limit)
    loader = TensorLoader(
        images, labels, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed,
        device=device, image_size=image_size,
    )
    loader.dataset_name = config.dataset_name(name)
    return loader


def dataset_of(loader: object) -> str | None:
    """The name of the dataset `loader` serves: a `TensorLoader` from `make_loader`, or a
    `DataLoader` over one of the torchvision datasets (a `Subset` of one too); else None."""
    if getattr(loader, "dataset_name", None):
        return loader.dataset_name  # type: ignore[attr-defined]
    ds = getattr(loader, "dataset", None)
    while isinstance(ds, torch.utils.data.Subset):
        ds = ds.dataset
    return next((info.name for info in DATASETS.values() if type(ds) is info.torchvision_class),
                None)


def classic_loader(
    name: str | None = None,
    train: bool = True,
    batch_size: int = 128,
    num_workers: int = 0,
    image_size: int | None = None,
    root: str | os.PathLike[str] | None = None,
    indices: Sequence[int] | None = None,
) -> torch.utils.data.DataLoader:
    """The classic tutorials' pipeline: dataset + `ToTensor`/`Normalize` + shuffled DataLoader."""
    tf = classic_transform()
    if image_size is not None:
        tf = transforms.Compose([transforms.Resize(image_size), *tf.transforms])
    ds = load_dataset(name, root, train=train, transform=tf)
    if indices is not None:
        ds = torch.utils.data.Subset(ds, list(indices))
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=num_workers
    )


# ----------------------------------------------------------------------------- looking and timing

SMOKE_TIMED_BATCHES = 20
"""The most batches `time_loader` times in smoke mode."""


def first_images(dataset: torch.utils.data.Dataset, n: int) -> torch.Tensor:
    """The first `n` images of `dataset`, each through the dataset's own transform, stacked into
    one tensor (smoke mode takes at most `config.SMOKE_IMAGES`)."""
    n = config.smoke_cap(min(n, len(dataset)), config.SMOKE_IMAGES)
    return torch.stack([dataset[i][0] for i in range(n)])


def time_loader(loader: Iterable, batches: int | None = None,
                device: torch.device | str | None = None) -> tuple[int, float]:
    """Go through the first `batches` batches of one epoch of `loader` (None: the whole epoch),
    moving the images to `device` as training would; return how many batches that was and the
    seconds it took, including the wait for the GPU to finish (smoke mode times at most
    `SMOKE_TIMED_BATCHES`)."""
    if batches is not None:
        batches = config.smoke_cap(batches, SMOKE_TIMED_BATCHES)
    device = torch.device(device) if device is not None else None
    start = time.perf_counter()
    done = 0
    for images, _labels in itertools.islice(loader, batches):
        if device is not None:
            images = images.to(device)
        done += 1
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()
    return done, time.perf_counter() - start
