"""A run folder's files come from `fit`'s callbacks, not from whoever called `fit`: a lesson's
`fit` and the command line's `train` leave the same files, and the command line chooses its exit
status from the `Stop` value, not from the words of the stop reason."""

from __future__ import annotations

import json
from pathlib import Path

from gan_helpers import data
from gan_helpers.evaluation import quality_callbacks
from gan_helpers.state import Stop
from gan_helpers.training import fit
from tests.helpers import BASE, StopAt, cli, small_gan


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.name != ".lock")


def test_a_notebook_run_and_a_cli_run_leave_the_same_files(tmp_path):
    cli_dir, notebook_dir = tmp_path / "cli", tmp_path / "notebook"
    result = cli("train", *BASE, "--epochs", "2", "--limit", "128", "--eval-every", "1",
                 "--eval-samples", "50", "--out", str(cli_dir))
    assert result.returncode == 0, result.stderr
    G, D = small_gan("mlp")
    loader = data.make_loader(batch_size=32, limit=128, device="cpu")
    history = fit(G, D, loader, epochs=2, run_dir=notebook_dir, progress=False,
                  callbacks=quality_callbacks(n=50))
    assert history.stop is Stop.FINISHED and history.stop_reason == "finished"
    assert files_of(notebook_dir) == files_of(cli_dir)
    assert files_of(cli_dir) == ["best.pt", "checkpoint.pt", "final.png", "grids/epoch_001.png",
                                 "grids/epoch_002.png", "history.json", "losses.png",
                                 "metrics.json", "quality.png"]
    saved = [json.loads((d / "metrics.json").read_text()) for d in (cli_dir, notebook_dir)]
    assert saved[0].keys() == saved[1].keys()
    assert [len(m["eval"]) for m in saved] == [2, 2]


def test_the_stop_is_a_value(tmp_path):
    G, D = small_gan("mlp")
    loader = data.make_loader(batch_size=32, limit=128, device="cpu")
    history = fit(G, D, loader, epochs=3, progress=False, callbacks=[StopAt(3)])
    assert history.stop is Stop.STOPPED and len(history["loss_d"]) == 3
    history = fit(G, D, loader, epochs=1, run_dir=tmp_path, progress=False)
    assert history.stop is Stop.FINISHED
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["stop_reason"] == "finished"
