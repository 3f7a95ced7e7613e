"""What the live dashboard costs: training speed with it on and off, side by side in one kernel.

Runs inside a real Jupyter kernel (through nbclient), so the dashboard's display updates (a PNG
and the status line a refresh) are serialised and sent exactly as in JupyterLab. Alternates
off/on runs of the same training, after a warm-up, and prints the median images per second of
each and the overhead.

    GAN_DATASET=fashion-mnist .venv/bin/python benchmarks/bench_dashboard.py [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import statistics

import nbformat
from nbclient import NotebookClient

CODE = """
import json, time
from gan_helpers import data, models
from gan_helpers.dashboard import Dashboard
from gan_helpers.training import fit

loader = data.make_loader({dataset!r}, batch_size=128, limit={limit})

def run(refresh_s):
    G, D, _ = models.build_gan({model!r})
    callbacks = [] if refresh_s is None else [Dashboard(refresh_s=refresh_s)]
    start = time.perf_counter()
    fit(G, D, loader, epochs=100, max_steps={steps}, progress=False, callbacks=callbacks)
    return {steps} * loader.batch_size / (time.perf_counter() - start)

run(None)  # warm-up
results = {{"off": [], **{{f"on, refresh {{r}} s": [] for r in {refresh}}}}}
for _ in range({repeats}):
    results["off"].append(run(None))
    for r in {refresh}:
        results[f"on, refresh {{r}} s"].append(run(r))
print("RESULTS" + json.dumps(results))
"""


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dcgan", choices=["mlp", "dcgan"])
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--steps", type=int, default=150, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refresh", type=float, nargs="+", default=[1.0, 0.3])
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    args = parser.parse_args(argv)

    code = CODE.format(dataset=args.dataset, limit=args.limit, model=args.model,
                       steps=args.steps, repeats=args.repeats, refresh=list(args.refresh))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=3600, kernel_name="python3").execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
    results = json.loads(out.split("RESULTS", 1)[1])

    base = statistics.median(results["off"])
    print(f"Dashboard overhead: {args.model}, {args.steps} steps a run, median of {args.repeats} "
          "alternating runs, in a Jupyter kernel")
    print(f"{'dashboard':<22}{'images/s':>10}{'overhead':>10}")
    medians = {}
    for name, values in results.items():
        medians[name] = statistics.median(values)
        overhead = 100 * (1 - medians[name] / base)
        print(f"{name:<22}{medians[name]:>10,.0f}{overhead:>9.1f}%")
    return medians


if __name__ == "__main__":
    main()
