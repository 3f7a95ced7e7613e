"""Loading MNIST and Fashion-MNIST (online and offline), normalisation, and the fast loader.

The datasets come through `torchvision.datasets` with `download=True`. When the download fails
(no internet), a system-installed copy is used if there is one (Debian's `dataset-fashion-mnist`
puts the genuine files in `/usr/share/datasets/fashion-mnist/`); otherwise one clear error says
which four files to put where. Another dataset is never substituted silently.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import os
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from . import checks, config
from .errors import GanHelpersError, UsageError, UsageTypeError
from .images import MEAN, STD, denormalize  # noqa: F401 - denormalize: lesson 01's

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


DEFAULT_BATCH_SIZE = 128
"""The batch size of the DCGAN paper, the loaders' default (the tuned recipe uses 64)."""

DATASET_INFO: dict[str, DatasetInfo] = {
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
"""What each of `config.DATASETS` (the names, listed there once) is and where it comes from."""
assert tuple(DATASET_INFO) == config.DATASETS


class DatasetUnavailableError(GanHelpersError, RuntimeError):
    """The dataset could not be downloaded and no local copy was found."""


class DatasetCorruptError(GanHelpersError, RuntimeError):
    """A dataset file exists but is truncated, not in the IDX format, or damaged (zeroed images,
    labels out of range, contents that differ from the published file's)."""


class DatasetMismatchError(DatasetCorruptError):
    """A dataset file is the other dataset's (Fashion-MNIST's file in `MNIST/raw/`, or the
    reverse)."""


def dataset_info(name: str | None = None) -> DatasetInfo:
    """The `DatasetInfo` for `name` (default: the configured dataset, see `config`)."""
    return DATASET_INFO[config.dataset_name(name)]


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


def _check_folders(root: Path, raw: Path) -> None:
    """The data folder and the dataset's `raw/` must be folders (not files)."""
    if root.exists() and not root.is_dir():
        via = " (GAN_DATA_DIR)" if os.environ.get("GAN_DATA_DIR") else ""
        raise DatasetUnavailableError(
            f"The data folder {root}{via} is a file, not a folder: point GAN_DATA_DIR at a "
            "folder (the datasets go into its MNIST/ and FashionMNIST/), or unset it.")
    for folder in (raw.parent, raw):
        if folder.exists() and not folder.is_dir():
            raise DatasetUnavailableError(
                f"{folder} is a file, but it must be a folder holding the dataset's files: move "
                "it away and run again.")


# ----------------------------------------------------------------------------- data integrity

GENUINE_COUNT = {"train": 60_000, "t10k": 10_000}
"""The number of images (and labels) in each split of MNIST and of Fashion-MNIST."""

KNOWN_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        # MNIST's decompressed training images are not listed: their published MD5 is the .gz's
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
"""MD5 sums of the decompressed files, the contents of the `.gz` files whose MD5 torchvision
publishes (`published_md5`): a system copy (Debian recompressed its `.gz` files) or a folder of
decompressed files is checked with these."""

BLACK_SHARE = 0.01
"""A images file in which more than this share of the images is entirely black (zeroed) is
refused: the genuine files have none."""

VERIFIED = ".gan_helpers-verified.json"
"""The cache of verified files, in the dataset's folder (`MNIST/`, beside `raw/`)."""

_verified: dict[str, list] = {}
"""The same cache in memory, for a data folder that cannot be written."""


def published_md5(info: DatasetInfo) -> dict[str, str]:
    """torchvision's published MD5 of each of `info`'s four `.gz` files, by file name."""
    return dict(info.torchvision_class.resources)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _other_dataset(info: DatasetInfo, stem: str, digest: str, gz_digest: str | None
                   ) -> DatasetInfo | None:
    """The other dataset whose file `stem` has these contents (or whose `.gz` this is)."""
    for other in DATASET_INFO.values():
        if other is info:
            continue
        if digest == KNOWN_MD5[other.name].get(stem):
            return other
        if gz_digest is not None and gz_digest == published_md5(other).get(f"{stem}.gz"):
            return other
    return None


def check_file_contents(info: DatasetInfo, path: Path) -> None:
    """Check one of `info`'s four decompressed files (already a complete IDX file) against what
    it must be: not the other dataset's (by MD5, of the file and of its `.gz` beside it), the
    published contents when it has the genuine size, labels within the classes, and not zeroed
    images. Raises `DatasetMismatchError` or `DatasetCorruptError` naming the file."""
    stem = path.name
    gz = path.with_name(f"{stem}.gz")
    digest = _md5(path)
    gz_digest = _md5(gz) if gz.is_file() else None
    advice = (f"Delete the dataset's files in {path.parent} and run again to download them, or put "
              f"the genuine {info.title} files there.")
    other = _other_dataset(info, stem, digest, gz_digest)
    if other is not None:
        which = gz if gz_digest is not None and digest != KNOWN_MD5[other.name].get(stem) else path
        raise DatasetMismatchError(
            f"{which} is {other.title}'s {stem}, not {info.title}'s: put {info.title}'s files in "
            f"{path.parent} (or choose {other.name}, whose files go in "
            f"{path.parent.parent.parent / other.folder / 'raw'}).")
    kind = "images" if "images" in stem else "labels"
    shape = check_idx_file(path)
    split = stem.split("-")[0]
    known = KNOWN_MD5[info.name].get(stem)
    if shape[0] == GENUINE_COUNT[split] and known is not None and digest != known:
        raise DatasetCorruptError(
            f"{path} has the size of {info.title}'s {stem} but not its contents (MD5 {digest}, "
            f"expected {known}): it is damaged or from another dataset. {advice}")
    offset = 4 + 4 * len(shape)
    values = np.fromfile(path, dtype=np.uint8, offset=offset)
    if kind == "labels":
        classes = len(info.classes)
        bad = np.flatnonzero(values >= classes)
        if len(bad):
            raise DatasetCorruptError(
                f"{path} holds label {values[bad[0]]} at position {bad[0]:,} ({len(bad):,} out of "
                f"range in all), but {info.title} has classes 0 to {classes - 1}: the file is "
                f"damaged or from another dataset. {advice}")
    elif shape[0]:
        black = int((values.reshape(shape[0], -1).max(1) == 0).sum())
        if black > BLACK_SHARE * shape[0]:
            raise DatasetCorruptError(
                f"{path}: {black:,} of its {shape[0]:,} images are entirely black (zeroed): the "
                f"file is damaged. {advice}")


def _file_key(info: DatasetInfo, path: Path) -> list:
    """What identifies a file's version cheaply: size and modification time (of the `.gz`
    beside it too), and the dataset it was checked for."""
    key: list = [info.name]
    for p in (path, path.with_name(f"{path.name}.gz")):
        if p.is_file():
            st = p.stat()
            key += [p.name, st.st_size, st.st_mtime_ns]
    return key


def verify_files(info: DatasetInfo, raw: Path) -> None:
    """`check_file_contents` for each of the four files in `raw`, once per file version: the
    result is cached under its size and modification time (`VERIFIED`, beside `raw/`; in memory
    too, for a data folder that cannot be written), so only a new or changed file costs a read."""
    cache_path = raw.parent / VERIFIED
    try:
        cache = json.loads(cache_path.read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    changed = False
    for stem in RAW_FILES:
        path = raw / stem
        key = _file_key(info, path)
        if cache.get(stem) == key or _verified.get(str(path.resolve())) == key:
            continue
        check_file_contents(info, path)
        cache[stem] = _verified[str(path.resolve())] = key
        changed = True
    if changed:
        tmp = cache_path.with_name(f"{VERIFIED}.partial")
        try:
            tmp.write_text(json.dumps(cache))
            tmp.replace(cache_path)
        except OSError:  # a read-only data folder: the in-memory cache still holds
            tmp.unlink(missing_ok=True)


class _WriteError(Exception):
    """Writing into the data folder failed (wraps the OSError)."""


def _unpack(src: Path, dest: Path) -> None:
    """Decompress (or copy) `src` into `dest`, through a temporary file: `dest` appears whole or
    not at all. A file that cannot be read raises `DatasetCorruptError` naming it; a folder that
    cannot be written (full, read-only) raises `DatasetUnavailableError` naming the folder."""
    tmp = dest.with_name(f".{dest.name}.partial")
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        try:
            fin = opener(src, "rb")
        except OSError as err:
            raise DatasetCorruptError(f"Dataset file {src} cannot be read: {err}") from err
        with fin:
            try:
                fout = open(tmp, "wb")
            except OSError as err:
                raise _WriteError(err) from err
            with fout:
                while True:
                    try:
                        chunk = fin.read(1 << 20)
                    except (OSError, EOFError, gzip.BadGzipFile) as err:
                        raise DatasetCorruptError(
                            f"Dataset file {src} cannot be read: {err}. Replace it with a good "
                            "copy.") from err
                    if not chunk:
                        break
                    try:
                        fout.write(chunk)
                    except OSError as err:
                        raise _WriteError(err) from err
            try:
                fout.close()  # a full disk often shows only here
            except OSError as err:
                raise _WriteError(err) from err
        tmp.replace(dest)
    except _WriteError as wrapped:
        tmp.unlink(missing_ok=True)
        err = wrapped.__cause__
        raise DatasetUnavailableError(
            f"Cannot write the dataset file {dest.name} into {dest.parent}: "
            f"{getattr(err, 'strerror', None) or err}. Free some space or make the folder "
            "writable, or point GAN_DATA_DIR at another folder.") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _make_folder(raw: Path) -> None:
    """Create the dataset's `raw/` folder, or say in one line why it cannot be."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetUnavailableError(
            f"Cannot create the dataset folder {raw}: {err.strerror or err}. Make the data "
            "folder writable, or point GAN_DATA_DIR at a folder you can write.") from err


def _unpack_placed_files(raw: Path) -> None:
    """Decompress the `.gz` files a user put into `raw/` (what the offline message asks for),
    whatever their compression: torchvision would only accept the ones whose MD5 matches its
    own, and try to download the others."""
    for stem in RAW_FILES:
        packed = raw / f"{stem}.gz"
        if packed.is_file() and not (raw / stem).exists():
            _unpack(packed, raw / stem)


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
    _make_folder(raw)
    for stem, src in found.items():
        try:
            _unpack(src, raw / stem)
        except DatasetCorruptError as err:
            raise DatasetCorruptError(f"System dataset file {src} cannot be read: "
                                      f"{err.__cause__ or err}") from err
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
    _check_folders(root, raw)
    if raw.is_dir():
        _unpack_placed_files(raw)
    if not _raw_complete(raw):
        _make_folder(raw)

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
    verify_files(info, raw)
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
    limit = checks.optional(checks.positive_int, "limit", limit)
    ds = load_dataset(name, root, train=train)
    images, labels = ds.data.unsqueeze(1), ds.targets.long()
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images.contiguous(), labels.contiguous()


# ----------------------------------------------------------------------------- normalisation

def classic_transform() -> transforms.Compose:
    """The per-image transform of the classic tutorials: `ToTensor()` then `Normalize`."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] to floats in [-1, 1] (the same values as `classic_transform`)."""
    return images.float().div_(255).sub_(MEAN).div_(STD)


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
        batch_size: int = DEFAULT_BATCH_SIZE,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        image_size: int | None = None,
    ) -> None:
        checks.tensor("images", images, dims=4, what="(N, C, H, W)")
        if images.dtype != torch.uint8:
            raise UsageTypeError(f"TensorLoader wants uint8 images (pixels 0 to 255), got "
                                 f"{images.dtype}.")
        checks.tensor("labels", labels, dims=1, what="(N,)")
        if len(images) != len(labels):
            raise UsageError(f"{len(images)} images but {len(labels)} labels: give one label per "
                             "image.")
        batch_size = checks.positive_int("batch_size", batch_size)
        seed = checks.seed("seed", seed)
        image_size = checks.optional(checks.positive_int, "image_size", image_size)
        device = checks.device(device) if device is not None else images.device
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
    batch_size: int = DEFAULT_BATCH_SIZE,
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
    batch_size = checks.positive_int("batch_size", batch_size)  # all before the data loads
    limit = checks.optional(checks.positive_int, "limit", limit)
    seed = checks.seed("seed", seed)
    image_size = checks.optional(checks.positive_int, "image_size", image_size)
    device = checks.device(device) if device is not None else None
    limit = config.smoke_cap(limit, config.smoke_images())
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
    return next((info.name for info in DATASET_INFO.values() if type(ds) is info.torchvision_class),
                None)


def classic_loader(
    name: str | None = None,
    train: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 0,
    image_size: int | None = None,
    root: str | os.PathLike[str] | None = None,
    indices: Sequence[int] | None = None,
) -> torch.utils.data.DataLoader:
    """The classic tutorials' pipeline: dataset + `ToTensor`/`Normalize` + shuffled DataLoader."""
    batch_size = checks.positive_int("batch_size", batch_size)
    num_workers = checks.non_negative_int("num_workers", num_workers)
    image_size = checks.optional(checks.positive_int, "image_size", image_size)
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
    n = checks.positive_int("n", n)
    n = config.smoke_cap(min(n, len(dataset)), config.smoke_images())
    return torch.stack([dataset[i][0] for i in range(n)])


def time_loader(loader: Iterable, batches: int | None = None,
                device: torch.device | str | None = None) -> tuple[int, float]:
    """Go through the first `batches` batches of one epoch of `loader` (None: the whole epoch),
    moving the images to `device` as training would; return how many batches that was and the
    seconds it took, including the wait for the GPU to finish (smoke mode times at most
    `SMOKE_TIMED_BATCHES`)."""
    if batches is not None:
        batches = checks.positive_int("batches", batches)
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
