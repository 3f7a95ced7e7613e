"""Benchmark: the classic DataLoader pipeline against the fast tensor loader, on the CPU.

Both loaders go through one whole epoch of the training split in batches of 128, shuffled, and
give the same float32 images in [-1, 1]:

* classic: torchvision dataset + `ToTensor()` + `Normalize((0.5,), (0.5,))` per image, then
  `DataLoader(batch_size=128, shuffle=True)` (`gan_helpers.data.classic_loader`);
* fast: the whole split as one uint8 tensor, batched by indexing and normalised per batch
  (`gan_helpers.data.make_loader`).

Each epoch is timed `--repeats` times; the table shows the median epoch time, the batches per
second it gives, and the ratio fast / classic.

Run it on an otherwise idle machine: the fast loader's few large operations per batch are split
across PyTorch's threads, and when other programs keep the cores busy its figure drops sharply
while the classic loader's (one core, many small steps) hardly moves. The table's header gives
the 1-minute load average before the run and the number of torch threads (`--threads` sets it).

    python benchmarks/bench_loader.py                       # the configured dataset ($GAN_DATASET)
    python benchmarks/bench_loader.py --dataset fashion-mnist --repeats 5
    python benchmarks/bench_loader.py --limit 2048 --repeats 1   # a quick run on a subset
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Iterable

import torch

from gan_helpers import config, data


def measure(loader: Iterable, repeats: int) -> dict[str, float]:
    """Time `repeats` epochs of `loader`: batches per epoch, median seconds, batches per second."""
    runs = [data.time_loader(loader) for _ in range(repeats)]
    batches = runs[0][0]
    seconds = statistics.median(s for _, s in runs)
    return {"batches": batches, "seconds": seconds, "batches_per_s": batches / seconds}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="epochs timed per loader; the median is reported (default 3)")
    parser.add_argument("--dataset", choices=config.DATASETS, default=None,
                        help="dataset (default: $GAN_DATASET, else mnist)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first LIMIT training images (a quick run)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(THREADS) first (default: torch's default)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, dict[str, float] | float]:
    """Run the benchmark, print the table, and return the figures."""
    args = parse_args(argv)
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = data.dataset_info(args.dataset)

    # Both loaders cover the same images: the first `limit` (or all) of the training split.
    n_images = len(data.load_dataset(info.name))
    if args.limit is not None:
        n_images = min(n_images, args.limit)
    classic = data.classic_loader(info.name, batch_size=args.batch_size,
                                  indices=range(n_images) if args.limit else None)
    # drop_last=False: the same epoch as the DataLoader's, last partial batch included.
    fast = data.make_loader(info.name, batch_size=args.batch_size, device="cpu",
                            limit=args.limit, drop_last=False)

    results: dict[str, dict[str, float] | float] = {
        "classic": measure(classic, args.repeats),
        "fast": measure(fast, args.repeats),
    }
    results["ratio"] = results["fast"]["batches_per_s"] / results["classic"]["batches_per_s"]
    print_table(results, info.title, n_images, args, load)
    return results


def print_table(results: dict, title: str, n_images: int, args: argparse.Namespace,
                load: str) -> None:
    """Print the figures; `load` is the 1-minute load average before the run (busy CPU: >0)."""
    print(f"Loader benchmark: {title} training split, {n_images:,} images, batch size "
          f"{args.batch_size}, CPU, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats} epoch(s), load average before the run {load}")
    print(f"{'loader':<46}{'batches':>9}{'s/epoch':>10}{'batches/s':>12}")
    rows = (("classic", "DataLoader + ToTensor + Normalize"),
            ("fast", "make_loader (TensorLoader)"))
    for key, label in rows:
        r = results[key]
        print(f"{key + '  ' + label:<46}{r['batches']:>9,}{r['seconds']:>10.3f}"
              f"{r['batches_per_s']:>12,.0f}")
    print(f"{'fast / classic':<46}{'':>19}{results['ratio']:>11.1f}x")


if __name__ == "__main__":
    main()
