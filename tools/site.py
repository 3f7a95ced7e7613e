"""The lessons as a static web site: executed notebooks, rendered by MkDocs (Material theme) and
mkdocs-jupyter, with every output, the maths and previous/next links.

    python tools/site.py            # `make site`: full-mode executions -> site/
    python tools/site.py --smoke    # smoke-mode executions (the test's) -> build/site-smoke/

1. Execute. Each lesson's executed copy (`runs/executed/`, where `make lessons` writes them;
   `build/site-smoke/executed/` in smoke mode) records in its metadata a key: the hash of the
   lesson's code cells, of `gan_helpers/*.py`, of the mode and of the dataset. A lesson is executed
   again only when its key changed (a change in its prose alone is copied into the cached
   execution), and then from scratch: its earlier runs in `build/site-runs/` are
   deleted first (smoke runs go to a temporary folder). A copy without a key, written by `make
   lessons` (full mode) or by `make test`'s nbmake pass (smoke mode), is taken as it is when it
   ran the lesson's code and is newer than the lesson and the package. A lesson that fails stops
   the build, naming the cell.
2. Prepare. Each executed copy becomes a page source in `build/site-src/`: the "Open in Colab" /
   download bar and the line saying which dataset and device produced the outputs and when,
   widgets replaced by a picture of their final state, solution cells marked to be shown
   collapsed. The home page gets the series' introduction (`docs/site/intro.md`) and one card per
   lesson: the thumbnail of its key figure (a cell tagged `thumbnail`, else the last figure
   before the Summary), its time (the first cell's `**Time:**` line) and its links.
3. Build with MkDocs (`mkdocs.yml`, hooks in `docs/site/site_hooks.py`), then copy MathJax
   (installed from npm into build/npm/ on first use: no CDN, the site works offline) and the
   lessons as learners download them (without outputs).

The execution cache (step 1) is this module's own, not jupyter-cache's. jupyter-cache 1.0.1 was
tried with this environment's nbclient 0.11 and nbformat 5.11: it installs and runs without a
version conflict (adding SQLAlchemy 2.1, importlib-metadata, tabulate and lazy-importer), but
- its hash covers a notebook's code cells and kernelspec only: a change in gan_helpers, the mode
  or the dataset leaves a cached execution matched, unless its hashing is overridden;
- its executors take no kernel environment (GAN_SMOKE, GAN_RUNS_DIR would have to be set in this
  process's os.environ) and record only cell errors and timeouts (a dead kernel escapes);
- it keeps executions in a SQLite database of its own, while `make lessons` and `make test`'s
  nbmake pass write plain executed copies, which this build adopts and MkDocs reads: the copies
  would stay, the database would be a second store of the same outputs.
What it would replace is `lesson_key` and `refresh_prose` (its `merge_match_into_notebook`);
adopting copies, the failed lesson's partial notebook and the pages' stamp (device, date,
duration) would still be written here.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import html
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script (`python tools/site.py`): tools/ is on the path, the
    sys.path.insert(0, str(ROOT))  # repository (where `tools.*` and gan_helpers are) is not

from tools.notebooks import NOTEBOOKS, repo_url, source  # noqa: E402

PACKAGE = ROOT / "gan_helpers"
ASSETS = ROOT / "docs" / "site"
FULL = {"executed": ROOT / "runs" / "executed", "src": ROOT / "build" / "site-src",
        "site": ROOT / "site"}
SMOKE_DIR = ROOT / "build" / "site-smoke"
SMOKE = {"executed": SMOKE_DIR / "executed", "src": SMOKE_DIR / "src", "site": SMOKE_DIR / "site"}
SITE_RUNS = ROOT / "build" / "site-runs"  # where the full-mode executions train
META = "gan_lessons_site"  # the executed copy's metadata entry this tool writes
SOLUTION_TAG = "site-collapsed-input"  # what docs/site/site_hooks.py wraps in <details>
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class SiteError(Exception):
    """A lesson that failed or cannot be shown: the build stops, saying which and why."""


def lessons(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


# ---------------------------------------------------------------------------------- 1. execute

def inputs_hash(package: Path = PACKAGE) -> str:
    """The hash of the package's code: a change in any module re-executes every lesson."""
    h = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def code_sources(nb) -> list[str]:
    """The sources of a notebook's code cells, in order: what an execution depends on."""
    return [source(c) for c in nb.cells if c.cell_type == "code"]


def lesson_key(lesson: Path, package_hash: str, smoke: bool, dataset: str) -> str:
    """The hash of what an execution depends on: the lesson's code cells (not its prose), the
    package, the mode and the dataset."""
    import nbformat

    h = hashlib.sha256()
    for code in code_sources(nbformat.read(lesson, as_version=4)):
        h.update(code.encode() + b"\0")
    h.update(f"\0{package_hash}\0smoke={smoke}\0dataset={dataset}".encode())
    return h.hexdigest()


def refresh_prose(executed_nb, lesson_nb) -> bool:
    """Give a cached execution the lesson's current markdown (its code is the same, the key says
    so): the lesson's cells, each code cell with the outputs of its executed twin. Returns
    whether anything changed."""
    ran = [c for c in executed_nb.cells if c.cell_type == "code"]
    code = [c for c in lesson_nb.cells if c.cell_type == "code"]
    for mine, twin in zip(code, ran):
        mine.outputs, mine.execution_count = twin.outputs, twin.execution_count
        mine.metadata = {**twin.metadata, **mine.metadata}  # the lesson's tags win
    if [(c.cell_type, source(c), c.metadata) for c in lesson_nb.cells] == [
            (c.cell_type, source(c), c.metadata) for c in executed_nb.cells]:
        return False
    executed_nb.cells = lesson_nb.cells
    return True


def kernel_env(smoke: bool) -> dict[str, str]:
    """The environment the lessons run in: this one, in smoke or in full mode."""
    env = {k: v for k, v in os.environ.items() if k != "GAN_SMOKE"}
    if smoke:
        env["GAN_SMOKE"] = "1"
    return env


def dataset_of(env: dict[str, str]) -> str:
    """The dataset the lessons pick under `env` (what `config.dataset_name()` returns there)."""
    return (env.get("GAN_DATASET") or "mnist").strip().lower()


def device_of(env: dict[str, str]) -> str:
    """The device the lessons train on under `env`, in words."""
    import torch

    from gan_helpers import config

    old = os.environ.get("GAN_DEVICE")
    os.environ.pop("GAN_DEVICE", None)
    try:
        device = config.pick_device(env.get("GAN_DEVICE") or None)
    finally:
        if old is not None:
            os.environ["GAN_DEVICE"] = old
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device.index or 0)})"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = ", " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} cores{model})"


@dataclass
class Outcome:
    lesson: str
    status: str  # "cached", "adopted" or "executed"
    seconds: float = 0.0


def _stamp(nb, key: str, smoke: bool, env: dict[str, str], device: str, seconds: float | None,
           when: dt.datetime) -> None:
    from gan_helpers import __version__

    nb.metadata[META] = {
        "key": key, "smoke": smoke, "dataset": dataset_of(env), "device": device,
        "executed": when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": None if seconds is None else round(seconds, 1),
        "gan_helpers": __version__}


def _execute_one(lesson: Path, dest: Path, key: str, smoke: bool, env: dict[str, str],
                 device: str) -> float:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, CellExecutionError, DeadKernelError

    for old in (Path(env["GAN_RUNS_DIR"]) / dataset_of(env)).glob(f"{lesson.stem}*"):
        shutil.rmtree(old)  # the page shows the lesson's own run, from its first step
    nb = nbformat.read(lesson, as_version=4)
    client = NotebookClient(nb, timeout=900 if smoke else None, kernel_name="python3",
                            resources={"metadata": {"path": str(lesson.parent)}})
    print(f"executing {lesson.name} ({'smoke' if smoke else 'full'} mode) ...", flush=True)
    start = time.monotonic()
    try:
        client.execute(env=env)
    except (CellExecutionError, CellControlSignal, DeadKernelError) as e:  # an error, a timeout
        failed = dest.with_suffix(".failed.ipynb")
        nbformat.write(nb, failed)
        raise SiteError(f"{lesson.name} failed (the executed part is in {failed}):\n"
                        f"{type(e).__name__}: {e}") from None
    seconds = time.monotonic() - start
    _stamp(nb, key, smoke, env, device, seconds, dt.datetime.now(dt.timezone.utc))
    tmp = dest.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dest)
    print(f"executed {lesson.name} in {seconds:.0f} s", flush=True)
    return seconds


def execute(executed: Path, smoke: bool, jobs: int = 1, notebooks: Path = NOTEBOOKS,
            package: Path = PACKAGE, only: list[str] | None = None) -> list[Outcome]:
    """Execute into `executed` every lesson whose executed copy is missing or stale (of those
    whose names start with one of `only`, when given)."""
    import nbformat

    executed.mkdir(parents=True, exist_ok=True)
    env = kernel_env(smoke)
    dataset, package_hash = dataset_of(env), inputs_hash(package)
    device = ""  # found only when a lesson runs (it imports torch)
    newest_input = max(p.stat().st_mtime for p in package.glob("*.py"))
    outcomes, todo = [], []
    for lesson in lessons(notebooks):
        if only and not lesson.name.startswith(tuple(only)):
            continue
        key = lesson_key(lesson, package_hash, smoke, dataset)
        dest = executed / lesson.name
        if dest.exists():
            nb = nbformat.read(dest, as_version=4)
            stamp = nb.metadata.get(META)
            lesson_nb = nbformat.read(lesson, as_version=4)
            same_code = code_sources(nb) == code_sources(lesson_nb)
            if stamp and stamp.get("key") == key:
                if not same_code:
                    raise SiteError(f"{lesson.name}: its executed copy in {executed} has other "
                                    "code than its key says; delete it and build again")
                if refresh_prose(nb, lesson_nb):
                    nbformat.write(nb, dest)
                outcomes.append(Outcome(lesson.name, "cached"))
                continue
            if (stamp is None and same_code
                    and dest.stat().st_mtime > max(newest_input, lesson.stat().st_mtime)):
                # Written after the last change by `make lessons` (full mode) or by `make test`'s
                # nbmake pass (smoke mode, into the smoke folder): its outputs are current.
                device = device or device_of(env)
                when = dt.datetime.fromtimestamp(dest.stat().st_mtime, dt.timezone.utc)
                _stamp(nb, key, smoke, env, device, None, when)
                nbformat.write(nb, dest)
                os.utime(dest, (when.timestamp(), when.timestamp()))
                outcomes.append(Outcome(lesson.name, "adopted"))
                continue
        todo.append((lesson, dest, key))
    # The site's runs are its own, never a learner's runs/: in full mode build/site-runs/, where
    # a lesson finds the runs of the lessons before it; smoke runs go to a folder deleted after.
    if todo:
        device = device or device_of(env)
    runs = tempfile.mkdtemp(prefix="site-smoke-runs-") if smoke else None
    env["GAN_RUNS_DIR"] = runs or str(SITE_RUNS)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(_execute_one, *t, smoke, env, device): t[0].name for t in todo}
        for future in as_completed(futures):  # the first failure stops the others
            outcomes.append(Outcome(futures[future], "executed", future.result()))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if runs:
            shutil.rmtree(runs, ignore_errors=True)
    return sorted(outcomes, key=lambda o: o.lesson)


# ---------------------------------------------------------------------------------- 2. prepare

def first_cell(nb) -> str:
    return source(nb["cells"][0]) if nb["cells"] else ""


def title_of(nb, fallback: str) -> str:
    m = re.search(r"^#\s+(.+)$", first_cell(nb), re.M)
    return m.group(1).strip() if m else fallback


def time_of(nb) -> str | None:
    """The first cell's `**Time:** ...` line, without the label."""
    m = re.search(r"\*\*Time:?\*\*:?\s*(.+)", first_cell(nb))
    return m.group(1).strip() if m else None


def blurb_of(nb) -> str:
    """The first paragraph of the first cell after its title (markdown)."""
    for para in re.split(r"\n\s*\n", first_cell(nb)):
        para = para.strip()
        if para and not para.startswith(("#", "[![", "**", "-", "*", "<")):
            return para
    return ""


def colab_url(name: str) -> str:
    path = repo_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{name}"


def _images(output) -> list[bytes]:
    data = output.get("data", {})
    found = [base64.b64decode("".join(data[m])) for m in ("image/png", "image/jpeg", "image/gif")
             if m in data]
    html_data = data.get("text/html", "")
    html_data = "".join(html_data) if isinstance(html_data, list) else html_data
    found += [base64.b64decode(b) for b in
              re.findall(r"src=[\"']data:image/(?:png|jpeg);base64,([^\"']+)", html_data)]
    return found


def key_figure(nb) -> bytes | None:
    """The picture of a lesson: the image of a cell tagged `thumbnail`, else its last image
    before `## Summary`."""
    last = None
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and source(cell).lstrip().startswith("## Summary"):
            break
        for output in cell.get("outputs", []):
            for image in _images(output):
                if "thumbnail" in cell.get("metadata", {}).get("tags", []):
                    return image
                last = image
    return last


def thumbnail(image: bytes, dest: Path, width: int = 480, height: int = 300) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as im:
        im = im.convert("RGB")
        im.thumbnail((width, height), Image.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        im.save(dest, optimize=True)


def widget_html(model_id: str, state: dict) -> str | None:
    """Static HTML of a widget's saved final state (None for a kind this does not draw)."""
    entry = state.get(model_id)
    if entry is None:
        return None
    name, s = entry["model_name"], entry["state"]
    desc = html.escape(s.get("description") or "")
    label = f"<span class='site-widget-label'>{desc}</span> " if desc else ""

    def child(ref: str) -> str | None:
        return widget_html(ref.removeprefix("IPY_MODEL_"), state)

    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel",
                "TabModel"):
        parts = [child(c) for c in s.get("children", [])]
        if any(p is None for p in parts):
            return None
        direction = "row" if name == "HBoxModel" else "column"
        return (f"<div class='site-widget-box' style='display:flex;flex-direction:{direction};"
                f"align-items:{'center' if direction == 'row' else 'flex-start'};gap:0.4em'>"
                + "".join(parts) + "</div>")
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{label}{s.get('value', '')}</div>"
    if name in ("LabelModel", "TextModel", "TextareaModel"):
        return f"<div>{label}{html.escape(str(s.get('value', '')))}</div>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        return (f"<progress value='{s.get('value', 0)}' max='{s.get('max', 100)}'></progress>")
    if name in ("ImageModel",):
        buffers = {tuple(b["path"]): b["data"] for b in entry.get("buffers", [])}
        data = buffers.get(("value",))
        if not data:
            return None
        fmt = s.get("format", "png")
        size = "".join(f" {k}='{s[k]}'" for k in ("width", "height") if s.get(k))
        return f"<img src='data:image/{fmt};base64,{data}'{size} alt='{desc or 'image'}'>"
    if name in ("ButtonModel", "ToggleButtonModel"):
        return f"<button disabled>{desc or html.escape(s.get('tooltip') or '')}</button>"
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels, index = s.get("_options_labels", []), s.get("index")
        chosen = labels[index] if isinstance(index, int) and index < len(labels) else ""
        return f"<div>{label}<select disabled><option>{html.escape(chosen)}</option></select></div>"
    if name in ("IntSliderModel", "FloatSliderModel", "FloatLogSliderModel"):
        return f"<div>{label}<input type='range' disabled> {s.get('value')}</div>"
    if name in ("CheckboxModel",):
        checked = " checked" if s.get("value") else ""
        return f"<label><input type='checkbox' disabled{checked}> {desc}</label>"
    if name == "OutputModel":
        parts = [_output_html(o) for o in s.get("outputs", [])]
        return None if any(p is None for p in parts) else "<div>" + "".join(parts) + "</div>"
    return None


def _output_html(output: dict) -> str | None:
    if output.get("output_type") == "stream":
        return f"<pre>{html.escape(''.join(output.get('text', '')))}</pre>"
    data = output.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f"<img src='data:{mime};base64,{''.join(data[mime]).strip()}' alt='output'>"
    if "text/html" in data:
        return "".join(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(''.join(data['text/plain']))}</pre>"
    return None


def flatten_widgets(nb) -> int:
    """Replace each widget view by static HTML of its final state; returns how many. The saved
    widget state is dropped: rendering it live needs a widget manager from a CDN."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            drawn = widget_html(data.pop(WIDGET_VIEW).get("model_id", ""), state)
            if drawn is not None:
                data["text/html"] = (f"<div class='site-widget' title='the final state of a "
                                     f"widget (interactive in Jupyter)'>{drawn}</div>")
                count += 1
    return count


def show_gifs(nb) -> None:
    """Show GIF outputs as images: nbconvert draws image/gif as its text fallback."""
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/gif" in data and "text/html" not in data:
                gif = "".join(data["image/gif"]).strip()
                data["text/html"] = f"<img src='data:image/gif;base64,{gif}' alt='animation'>"


def error_outputs(nb) -> list[str]:
    """Errors and tracebacks in a notebook's outputs, as lines naming the cell."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) if output["output_type"] == "stream" else ""
            if output["output_type"] == "error":
                found.append(f"cell {i}: {output.get('ename')}: {output.get('evalue')}")
            elif "Traceback (most recent call last)" in text:
                found.append(f"cell {i}: a traceback in its {output.get('name')} output")
    return found


def is_solution(cell) -> bool:
    meta = cell.get("metadata", {})
    return cell["cell_type"] == "code" and (
        "solution" in meta.get("tags", []) or meta.get("jupyter", {}).get("source_hidden")
        or meta.get("cellView") == "form")


def describe(stamp: dict) -> str:
    """Which dataset and device produced the outputs, and when, in words."""
    from gan_helpers.data import DATASET_INFO

    info = DATASET_INFO.get(stamp["dataset"])
    dataset = info.title if info else stamp["dataset"]
    took = f", in {stamp['seconds'] / 60:.1f} minutes" if stamp.get("seconds") else ""
    mode = (" in smoke mode (tiny step counts: a test build, not what a full run shows)"
            if stamp["smoke"] else "")
    return (f"The outputs on this page were produced on <b>{dataset}</b> on "
            f"<b>{html.escape(stamp['device'])}</b>, {stamp['executed']}{took}{mode} "
            f"(gan_helpers {stamp['gan_helpers']}).")


def page_bar(name: str, stamp: dict) -> str:
    return (f"<div class='site-lesson-bar'><p><a class='site-colab' href='{colab_url(name)}'>"
            f"Open in Colab</a> · <a class='site-download' href='notebooks/{name}' download>"
            f"Download the notebook</a> (without outputs)</p>"
            f"<p class='site-provenance'>{describe(stamp)}</p></div>")


def prepare_page(executed_path: Path, dest: Path, assets: Path) -> dict:
    """Write the page source of one executed lesson; returns what the home page needs."""
    import nbformat

    nb = nbformat.read(executed_path, as_version=4)
    name = executed_path.name
    stamp = nb.metadata.get(META)
    if not stamp:
        raise SiteError(f"{executed_path} was not executed by tools/site.py")
    problems = error_outputs(nb)
    if problems:
        raise SiteError(f"{name} has errors in its outputs:\n  " + "\n  ".join(problems))
    flatten_widgets(nb)
    show_gifs(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = source(cell).replace(COLAB_BADGE, "assets/colab-badge.svg")
        if is_solution(cell):
            tags = cell.metadata.setdefault("tags", [])
            if SOLUTION_TAG not in tags:
                tags.append(SOLUTION_TAG)
    bar = nbformat.v4.new_markdown_cell(page_bar(name, stamp))
    bar.metadata["tags"] = ["site-bar"]
    if nb.get("nbformat_minor", 0) < 5:  # cell ids came with nbformat 4.5
        del bar["id"]
    nb["cells"].insert(1, bar)
    nbformat.write(nb, dest)
    figure = key_figure(nb)
    thumb = None
    if figure is not None:
        thumb = f"assets/thumbnails/{executed_path.stem}.png"
        thumbnail(figure, assets.parent / thumb)
    return {"name": name, "page": executed_path.stem + ".html", "title": title_of(nb, name),
            "time": time_of(nb), "blurb": blurb_of(nb), "thumbnail": thumb, "stamp": stamp}


def home_page(cards: list[dict]) -> str:
    import markdown  # Python-Markdown, which MkDocs uses
    intro = (ASSETS / "intro.md").read_text()
    stamps = [c["stamp"] for c in cards]
    from gan_helpers.data import DATASET_INFO

    datasets = sorted({DATASET_INFO[s["dataset"]].title if s["dataset"] in DATASET_INFO
                       else s["dataset"] for s in stamps})
    devices = sorted({s["device"] for s in stamps})
    smoke = [s["smoke"] for s in stamps]
    mode = ("smoke-mode (test) " if all(smoke) else "full " if not any(smoke)
            else "full or smoke-mode (test) ")  # mixed: each page's own line says which
    dates = sorted(s["executed"] for s in stamps)
    out = [intro.rstrip(), "", "## The lessons", ""]
    out.append(
        f"<p class='site-provenance'>Every page shows the outputs of a "
        f"{mode}execution on "
        f"{', '.join(datasets)} on {'; '.join(html.escape(d) for d in devices)}, "
        f"executed between {dates[0]} and {dates[-1]}.</p>" if dates else "")
    out.append("<div class='site-cards'>")
    for c in cards:
        picture = (f"<a href='{c['page']}'><img src='{c['thumbnail']}' alt='The key figure of "
                   f"{html.escape(c['title'])}'></a>" if c["thumbnail"] else "")
        took = (f"<p class='site-time' title='{html.escape(c['time'], quote=True)}'>Time: "
                f"{html.escape(c['time'].split(';')[0].rstrip('.'))}</p>" if c["time"] else "")
        out.append(
            f"<div class='site-card'>\n{picture}\n"
            f"<h3><a href='{c['page']}'>{html.escape(c['title'])}</a></h3>\n"
            f"{markdown.markdown(c['blurb'])}\n{took}\n"
            f"<p class='site-links'><a class='site-colab' href='{colab_url(c['name'])}'>Open in "
            f"Colab</a> · <a class='site-download' href='notebooks/{c['name']}' download>"
            f"Download the notebook</a></p>\n</div>")
    out.append("</div>\n")
    return "\n".join(out)


def copy_assets(src: Path) -> None:
    (src / "assets").mkdir(parents=True, exist_ok=True)
    for asset in ("site.css", "colab-badge.svg", "mathjax-site.js"):
        shutil.copy(ASSETS / asset, src / "assets" / asset)


def prepare(executed: Path, src: Path) -> list[dict]:
    """Write the pages' sources into `src` (emptied first); returns the home page's cards."""
    if src.exists():
        shutil.rmtree(src)
    copy_assets(src)
    cards = []
    for lesson in lessons():
        copy_path = executed / lesson.name
        if not copy_path.exists():
            raise SiteError(f"{lesson.name} has no executed copy in {executed}")
        cards.append(prepare_page(copy_path, src / lesson.name, src / "assets"))
    (src / "index.md").write_text(home_page(cards))
    return cards


# ---------------------------------------------------------------------------------- 3. build

MATHJAX = "mathjax@3.2.2"  # from npm: the project's own build, one file with its SVG fonts


def mathjax_dir() -> Path:
    """MathJax's browser files, installed from npm into build/npm/ the first time."""
    folder = ROOT / "build" / "npm"
    es5 = folder / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-svg.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SiteError("the site's maths needs MathJax from npm, and npm is missing "
                            "(apt-get install npm, or install Node.js)")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(folder), MATHJAX], check=True, stdout=subprocess.DEVNULL)
    return es5


def build_site(src: Path, site: Path, cards: list[dict]) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    cwd = os.getcwd()
    os.chdir(ROOT)  # mkdocs.yml's paths are relative to it
    try:
        nav = [{"Home": "index.md"}] + [{c["title"]: c["name"]} for c in cards]
        config = load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(src), site_dir=str(site),
                             nav=nav)
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()
    finally:
        os.chdir(cwd)
    # tex-svg.js and what it may load later (the menu, accessibility, TeX extensions).
    shutil.copytree(mathjax_dir(), site / "assets" / "mathjax", dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n == "chtml" or (
                        n.endswith(".js") and Path(d).name == "es5" and n != "tex-svg.js")])
    (site / "notebooks").mkdir(exist_ok=True)
    for c in cards:
        shutil.copy(NOTEBOOKS / c["name"], site / "notebooks" / c["name"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="smoke-mode executions (tiny step counts), into build/site-smoke/")
    parser.add_argument("--executed", type=Path, help="folder of the executed copies")
    parser.add_argument("--site", type=Path, help="where the site goes")
    parser.add_argument("--jobs", type=int, default=1, help="lessons executed at once")
    parser.add_argument("--execute-only", action="store_true", help="execute, build nothing")
    parser.add_argument("--lessons", nargs="+", metavar="NN",
                        help="execute only these lessons (by number, e.g. 02 03), build nothing")
    args = parser.parse_args(argv)
    paths = dict(SMOKE if args.smoke else FULL)
    paths["executed"] = args.executed or paths["executed"]
    paths["site"] = (args.site or paths["site"]).resolve()
    start = time.monotonic()
    try:
        outcomes = execute(paths["executed"], args.smoke, args.jobs, only=args.lessons)
        for o in outcomes:
            print(f"  {o.lesson}: {o.status}" + (f" ({o.seconds:.0f} s)" if o.seconds else ""))
        if args.execute_only or args.lessons:
            return 0
        built = time.monotonic()
        cards = prepare(paths["executed"], paths["src"])
        build_site(paths["src"], paths["site"], cards)
    except SiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"executions {built - start:.0f} s, site {time.monotonic() - built:.0f} s: "
          f"{paths['site'] / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
