"""Every lesson, opened alone in a Colab-like runtime, installs gan_helpers and runs (smoke mode).

What Colab does, without Colab (tools/colab_runtime.py builds it): a fresh virtual environment
with Colab's Python (3.13) and Colab's versions of the packages the lessons touch (torch 2.11.0,
torchvision 0.26.0, numpy 2.1.3, ipywidgets 7.7.1, ipykernel 6, IPython 7, matplotlib, tqdm,
Pillow, tornado), installed from PyPI's wheels, and a stand-in `google.colab` that the kernel
imports at start. Each lesson is copied alone into an empty folder, its set-up cell pointed at a
git snapshot of the working tree, and run top to bottom on that runtime's kernel, after
gan_helpers was uninstalled (a fresh runtime per lesson, as Colab gives).

Checked: every lesson passes; the set-up cell installed gan_helpers and did not switch on Colab's
custom widget manager; no deprecation warning is raised by gan_helpers or a lesson's own cells;
data and runs went beside the notebook (or to the stand-in Google Drive, for the lesson run with
its Drive switch on); nothing was read from the repository checkout; the set-up cell does not
reinstall an installed gan_helpers, and a failed install says one sentence; `pip freeze` of the
runtime is unchanged but for gan-helpers. Each lesson's time is printed; the executed lessons are
kept in test-artifacts/colab-runtime/RUNTIME/.

`COLAB_RUNTIMES` picks the runtimes: `current` (the default: Colab's default runtime, Python
3.13), `26.07` (the previous one, Python 3.12, numpy 2.0.2), or `all` (`make colab-check`).

This takes minutes; it needs git and, the first time, PyPI (the runtime's wheels, 2.6 GiB, are
kept in ~/.cache/gan-lessons). Where they are missing it is skipped, and in CI (`CI` set) it
fails, as it does where Colab's Python is missing (elsewhere the running Python stands in).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import in_ci
from tools import colab_runtime
from tools.colab_runtime import RuntimeUnavailableError

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DRIVE_LESSON = "02_mlp_gan.ipynb"  # run with its "keep the run on Google Drive" switch on
DRIVE_SWITCH = {"KEEP_ON_DRIVE = False": "KEEP_ON_DRIVE = True"}
NOWHERE = "file://localhost/nonexistent/gan-lessons"  # a repository address that cannot work
ARTIFACTS = ROOT / "test-artifacts" / "colab-runtime"  # the executed lessons, outputs included

# Appended before a lesson's own cells: a deprecation warning raised by gan_helpers or by the
# lesson's cells (`__main__`) becomes an error, so the lesson fails on it.
STRICT_WARNINGS = """import warnings
for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
    for module in (r"gan_helpers(\\..*)?", "__main__"):
        warnings.filterwarnings("error", category=category, module=module)"""


def runtime_names() -> list[str]:
    """The runtimes `COLAB_RUNTIMES` asks for (comma-separated names, or `all`)."""
    asked = os.environ.get("COLAB_RUNTIMES", "").strip() or colab_runtime.DEFAULT_RUNTIME
    names = list(colab_runtime.RUNTIMES) if asked == "all" else [
        n.strip() for n in asked.split(",") if n.strip()]
    unknown = [n for n in names if n not in colab_runtime.RUNTIMES]
    if unknown:
        raise pytest.UsageError(f"COLAB_RUNTIMES: unknown runtime {unknown}; known: "
                                f"{', '.join(colab_runtime.RUNTIMES)} or all")
    return names

PROBE = '''import json, sys
from importlib import metadata
import gan_helpers
from gan_helpers import config
print("PROBE " + json.dumps({
    "colab": "google.colab" in sys.modules, "gan_helpers": gan_helpers.__file__,
    "data_dir": str(config.data_dir()), "runs_dir": str(config.runs_dir()),
    "run_dir": str(globals().get("RUN_DIR") or ""), "sys_path": sys.path,
    "versions": {n: metadata.version(n) for n in ("ipywidgets", "ipykernel", "torch",
                                                   "numpy")}}))'''


def say(capsys, text: str) -> None:
    """Print `text` now, past pytest's capture (lesson times belong in the log)."""
    with capsys.disabled():
        print(text, flush=True)


@pytest.fixture(scope="module", params=runtime_names())
def runtime(tmp_path_factory, request):
    """The Colab-like runtime, built once for this module (per runtime asked for), removed after."""
    capsys = request.config.pluginmanager.get_plugin("capturemanager")
    folder = tmp_path_factory.mktemp(f"colab-runtime-{request.param}")
    try:
        with capsys.global_and_fixture_disabled():
            print(f"\nbuilding the Colab-like runtime '{request.param}' ...", flush=True)
            built = colab_runtime.build_runtime(folder, request.param, fallback=not in_ci(),
                                                log=lambda m: print(m, flush=True))
            print(f"  built in {built.build_seconds:.0f} s: {built.describe()}", flush=True)
    except (RuntimeUnavailableError, ImportError) as err:
        shutil.rmtree(folder, ignore_errors=True)
        if in_ci():
            pytest.fail(f"CI must run the Colab-like test, but the runtime cannot be built: {err}")
        pytest.skip(f"the Colab-like runtime cannot be built here: {err}")
    built.lessons_run = 0
    yield built
    shutil.rmtree(folder, ignore_errors=True)


def test_without_colabs_python_the_build_falls_back_or_refuses(tmp_path):
    """A Python the machine lacks is not found; with `fallback=False` (CI) the build refuses at
    once, naming it, before anything is downloaded or created."""
    missing = colab_runtime.RuntimeSpec("test", "9.99", {}, "a runtime of a Python nobody has")
    assert colab_runtime.find_python("9.99") is None
    with pytest.raises(RuntimeUnavailableError, match=r"Colab runs Python 9\.99, but python9\.99 "
                                                      r"is not on this machine"):
        colab_runtime.build_runtime(tmp_path / "rt", missing, log=lambda m: None, fallback=False)
    assert not (tmp_path / "rt").exists()
    found = colab_runtime.find_python("{}.{}".format(*sys.version_info))
    assert found is not None and found.exists()


def test_the_runtime_has_colabs_versions(runtime):
    """Colab's pins are what the runtime's Python imports (installed, not linked from here)."""
    wanted = runtime.spec.packages
    assert {n: runtime.versions[n] for n in wanted} == wanted
    if not runtime.fallback:
        assert runtime.versions["python"].rsplit(".", 1)[0] == runtime.spec.python
    torch_dir = Path(_import_path(runtime, "torch")).resolve()
    assert torch_dir.is_relative_to(runtime.site.resolve()), f"torch comes from {torch_dir}"


def _import_path(runtime, module: str) -> str:
    proc = subprocess.run([str(runtime.python), "-c", f"import {module}; print({module}.__file__)"],
                          capture_output=True, text=True, env=runtime.env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory) -> str:
    """A `file://localhost/...` URL of a git snapshot of the working tree as it is now."""
    try:
        return colab_runtime.snapshot(ROOT, tmp_path_factory.mktemp("snapshot") / "gan-lessons")
    except RuntimeUnavailableError as err:
        if in_ci():
            pytest.fail(f"CI must run the Colab-like test, but: {err}")
        pytest.skip(str(err))


def kernel_env(runtime, scratch: Path, repo_url: str, **extra: str) -> dict[str, str]:
    """The kernel's environment: smoke mode on Fashion-MNIST, the stand-in Colab's log, and the
    audit of reads under the checkout and the snapshot."""
    snapshot_dir = repo_url.removeprefix("file://localhost")
    return runtime.env(GAN_SMOKE="1", GAN_DATASET="fashion-mnist",
                       FAKE_COLAB_LOG=str(scratch / "colab-calls.jsonl"),
                       COLAB_RUNTIME_AUDIT_LOG=str(scratch / "audit.log"),
                       COLAB_RUNTIME_AUDIT_ROOTS=os.pathsep.join([str(ROOT), snapshot_dir]),
                       **extra)


def colab_calls(scratch: Path) -> list[dict]:
    log = scratch / "colab-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def reads_of_the_checkout(scratch: Path) -> list[str]:
    log = scratch / "audit.log"
    return log.read_text().splitlines() if log.exists() else []


def probe(execution) -> dict:
    """What the probe cell appended to the lesson printed."""
    for out in execution.notebook.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("PROBE "):
                return json.loads(line.removeprefix("PROBE "))
    raise AssertionError("the probe cell printed nothing")


def under(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_a_lesson_opened_alone_installs_gan_helpers_and_runs(lesson, runtime, repo_url, tmp_path,
                                                             capsys):
    runtime.uninstall_gan_helpers()  # a fresh runtime, as Colab gives each notebook
    work, scratch, drive = tmp_path / "content", tmp_path / "scratch", tmp_path / "drive"
    scratch.mkdir()
    on_drive = lesson.name == DRIVE_LESSON
    copy = colab_runtime.lesson_copy(lesson, work, repo_url, DRIVE_SWITCH if on_drive else None,
                                     extra_cells=[PROBE], first_cells=[STRICT_WARNINGS])
    env = kernel_env(runtime, scratch, repo_url, GAN_DRIVE_MOUNT=str(drive))
    result = colab_runtime.execute(copy, runtime, env)
    runtime.lessons_run += 1
    (ARTIFACTS / runtime.spec.name).mkdir(parents=True, exist_ok=True)
    shutil.copy(copy, ARTIFACTS / runtime.spec.name / lesson.name)
    say(capsys, f"\n  {lesson.name}: {result.seconds:.0f} s in the Colab-like runtime "
                f"'{runtime.spec.name}' (Python {runtime.versions['python']}, torch "
                f"{runtime.versions['torch']})"
                + (" (runs on the stand-in Google Drive)" if on_drive else ""))
    assert result.error is None, f"{lesson.name}: {result.describe_failure()}"

    assert runtime.installed_from() == repo_url, "the set-up cell did not install gan_helpers"
    calls = [c["call"] for c in colab_calls(scratch)]
    assert "output.enable_custom_widget_manager" not in calls, \
        "the lesson turned on Colab's custom widget manager (core ipywidgets need none)"
    assert reads_of_the_checkout(scratch) == [], "the lesson read files of the checkout"

    seen = probe(result)
    assert seen["colab"] and under(seen["gan_helpers"], runtime.site)
    assert {n: seen["versions"][n] for n in ("ipywidgets", "ipykernel", "torch", "numpy")} == {
        n: runtime.spec.packages[n] for n in ("ipywidgets", "ipykernel", "torch", "numpy")}
    assert not any(p and under(p, ROOT) for p in seen["sys_path"])
    assert Path(seen["data_dir"]) == work / "data"
    assert Path(seen["runs_dir"]) == work / "runs" / "smoke" / "fashion-mnist"
    made = {p.name for p in work.iterdir()} - {copy.name}
    assert made <= {"data", "runs"}, f"the lesson wrote {sorted(made)} beside the notebook"
    if seen["run_dir"]:
        run_dir = Path(seen["run_dir"])
        home = drive / "MyDrive" / "gan-lessons" / "runs" if on_drive else work / "runs"
        assert under(run_dir, home), f"RUN_DIR {run_dir} is not under {home}"
        assert run_dir.is_dir() and any(run_dir.iterdir()), f"nothing was written to {run_dir}"
    if on_drive:
        assert seen["run_dir"], f"{lesson.name} has no RUN_DIR"
        mounts = [c for c in colab_calls(scratch) if c["call"] == "drive.mount"]
        assert mounts and mounts[0]["mountpoint"] == str(drive)
    shutil.rmtree(work / "data", ignore_errors=True)  # 50 MB a lesson, kept by pytest otherwise


def setup_notebook(folder: Path, repo: str) -> Path:
    """A notebook holding only a title, the lessons' set-up cell pointed at `repo`, and a cell
    that imports gan_helpers."""
    import nbformat

    nb = nbformat.read(LESSONS[0], as_version=4)
    nb.cells = nb.cells[:2] + [nbformat.v4.new_code_cell("import gan_helpers\n"
                                                         "print(gan_helpers.__file__)")]
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "setup.ipynb")
    return colab_runtime.lesson_copy(folder / "setup.ipynb", folder, repo)


def test_the_set_up_cell_leaves_an_installed_gan_helpers_alone(runtime, repo_url, tmp_path):
    """A second lesson in the same runtime installs nothing: it passes even with an address
    that cannot work."""
    if runtime.installed_from() is None:
        runtime.pip("install", "--quiet", "--no-deps", f"gan-helpers @ git+{repo_url}")
    before = runtime.installed_from(), sorted(runtime.site.glob("gan_helpers-*.dist-info"))
    result = colab_runtime.execute(setup_notebook(tmp_path / "content", NOWHERE), runtime,
                                   kernel_env(runtime, tmp_path, repo_url))
    assert result.error is None, result.describe_failure()
    assert (runtime.installed_from(), sorted(runtime.site.glob("gan_helpers-*.dist-info"))) \
        == before
    assert "output.enable_custom_widget_manager" not in [c["call"] for c in colab_calls(tmp_path)]


def test_a_failed_install_says_one_sentence(runtime, repo_url, tmp_path):
    runtime.uninstall_gan_helpers()
    result = colab_runtime.execute(setup_notebook(tmp_path / "content", NOWHERE), runtime,
                                   kernel_env(runtime, tmp_path, repo_url))
    assert result.failed_cell() is not None and result.failed_cell()[0] == 1
    outputs = result.notebook.cells[1].outputs
    assert [o["output_type"] for o in outputs] == ["error"], "pip's own output reached the cell"
    error = outputs[0]
    assert error["ename"] == "RuntimeError"
    assert error["evalue"].startswith(f"Could not install gan_helpers from {NOWHERE} (")
    assert error["evalue"].endswith("run this cell again.") and "\n" not in error["evalue"]
    shown = "\n".join(error["traceback"])
    assert "pip/_internal" not in shown and "CalledProcessError" not in shown
    assert runtime.installed_from() is None


def test_the_audit_sees_a_read_of_the_checkout(runtime, repo_url, tmp_path):
    """The check that lessons read nothing of the checkout can fail: a read is seen."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(ROOT / 'pyproject.toml')!r}).read(100)")]
    (tmp_path / "content").mkdir()
    nbformat.write(nb, tmp_path / "content" / "reader.ipynb")
    result = colab_runtime.execute(tmp_path / "content" / "reader.ipynb", runtime,
                                   kernel_env(runtime, tmp_path, repo_url))
    assert result.error is None, result.describe_failure()
    assert [line.split("\t")[:2] for line in reads_of_the_checkout(tmp_path)] == [
        ["open", str(ROOT / "pyproject.toml")]]


def test_a_deprecated_call_fails_a_lesson(runtime, repo_url, tmp_path):
    """The strict-warnings cell the lesson copies get can fail: Pillow's deprecated
    `fromarray(..., mode=)` (the call gan_helpers.images made until Pillow 11.3) raises."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(STRICT_WARNINGS), nbformat.v4.new_code_cell(
        "import numpy as np\nfrom PIL import Image\n"
        "Image.fromarray(np.zeros((2, 2), np.uint8), mode='L')")]
    (tmp_path / "content").mkdir()
    nbformat.write(nb, tmp_path / "content" / "deprecated.ipynb")
    result = colab_runtime.execute(tmp_path / "content" / "deprecated.ipynb", runtime,
                                   kernel_env(runtime, tmp_path, repo_url))
    assert result.failed_cell() is not None and result.failed_cell()[0] == 1
    error = next(o for o in result.notebook.cells[1].outputs if o["output_type"] == "error")
    assert error["ename"] == "DeprecationWarning" and "mode" in error["evalue"]


def test_lessons_change_no_package_of_the_runtime_but_gan_helpers(runtime):
    if runtime.lessons_run == 0:
        pytest.skip("no lesson ran in this session")
    now = runtime.freeze()
    changed = sorted(set(runtime.frozen) ^ set(now))
    assert [line for line in changed if not line.lower().startswith(("gan-helpers", "gan_helpers"))
            ] == [], f"pip freeze changed: {changed}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x", "-q"]))
