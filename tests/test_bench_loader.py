"""The loader benchmark runs end to end on a tiny dataset and reports positive figures."""

from __future__ import annotations

import pytest

from benchmarks import bench_loader


def test_benchmark_prints_and_returns_positive_figures(tiny_data, capsys):
    results = bench_loader.main(["--limit", "200", "--repeats", "1", "--batch-size", "64"])
    for key in ("classic", "fast"):
        assert results[key]["batches"] == 4  # 200 images in batches of 64, the last one partial
        assert results[key]["seconds"] > 0
        assert results[key]["batches_per_s"] > 0
    assert results["ratio"] > 0
    out = capsys.readouterr().out
    assert "Fashion-MNIST" in out and "200 images" in out
    assert "classic" in out and "fast / classic" in out


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench_loader.main(["--repeats", "0"])
