"""A Colab-like runtime without Colab: the machinery of tests/test_colab_runtime.py.

`build_runtime` makes a throwaway virtual environment that looks to a lesson like a fresh Colab
runtime: Colab's versions of the packages the lessons touch (ipywidgets 7.7.1, ipykernel 6,
IPython 7, matplotlib, numpy, tqdm, Pillow: `COLAB_PACKAGES`), this environment's torch and
torchvision (symlinked: several GB not installed again), a stand-in `google.colab`
(tools/fake_colab/) that the kernel imports at start as Colab's does, and a kernelspec for it.
`snapshot` commits a copy of the working tree (uncommitted changes included) to a throwaway git
repository that a lesson's set-up cell installs from through a `file://localhost/...` URL;
`lesson_copy` puts one lesson alone in an empty folder with its `REPO = "..."` line pointed
there; `execute` runs it top to bottom with nbclient on the runtime's kernel.

By hand (keeps the runtime in FOLDER and prints how to start its kernel):
    .venv/bin/python tools/colab_runtime.py FOLDER
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_COLAB = Path(__file__).resolve().parent / "fake_colab"
KERNEL_NAME = "colab-like"

# What a Colab GPU runtime had (googlecolab/backend-info, pip-freeze.gpu.txt, mid 2026) for the
# packages a lesson or its kernel touches. Colab runs Python 3.12 and torch 2.11+cu128; here the
# runtime uses this machine's Python and this environment's torch and torchvision (`LINKED`),
# with what they need (setuptools too: torch 2.14 needs a newer one than Colab's 75.2).
COLAB_PACKAGES = {
    "ipykernel": "6.17.1",
    "ipython": "7.34.0",
    "ipywidgets": "7.7.1",
    "widgetsnbextension": "3.6.10",
    "jupyterlab-widgets": "3.0.16",
    "jupyter-client": "7.4.9",
    "jupyter-core": "5.9.1",
    "traitlets": "5.7.1",
    "tornado": "6.5.1",
    "pyzmq": "26.2.1",
    "notebook": "6.5.7",
    "matplotlib": "3.10.0",
    "matplotlib-inline": "0.2.2",
    "numpy": "2.0.2",
    "pillow": "11.3.0",
    "tqdm": "4.67.3",
}
PIP_VERSION = "24.1.2"  # Colab's pip
LINKED = ("torch", "torchvision")  # with what they need, from the environment running this


class RuntimeUnavailableError(RuntimeError):
    """The Colab-like runtime could not be built here (no git, no package index, ...)."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment, less what would leak the checkout or its settings into the
    runtime (`GAN_*`, `PYTHONPATH`, `VIRTUAL_ENV`, Jupyter's and IPython's folders) or keep it
    from caching compiled modules as Colab does (`PYTHONDONTWRITEBYTECODE`); plus `extra`."""
    drop = ("GAN_", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE",
            "VIRTUAL_ENV", "JUPYTER", "IPYTHONDIR", "MPLBACKEND", "CONDA_PREFIX",
            "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or "no message").splitlines()
        raise RuntimeUnavailableError(f"{what} failed ({' '.join(cmd[:4])} ...): "
                                      + " | ".join(said[-6:]))
    return proc


def _dependency_closure(names: tuple[str, ...]) -> list:
    """The installed distributions `names` need, themselves included (markers and extras
    evaluated for this Python)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    todo = [(n, frozenset()) for n in names]
    while todo:
        name, extras = todo.pop()
        key = _norm(name)
        if key in found and not extras:
            continue
        try:
            dist = found.get(key) or metadata.distribution(name)
        except metadata.PackageNotFoundError as err:
            raise RuntimeUnavailableError(f"{name} is not installed in {sys.prefix}") from err
        found[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = [""] + sorted(extras)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((req.name, frozenset(req.extras)))
    return list(found.values())


def link_distributions(names: tuple[str, ...], site: Path, skip: set[str]) -> tuple[list[str],
                                                                                     list[str]]:
    """Make `names` and what they need (but `skip`) importable from `site` by symlinking the
    top-level files and folders their RECORDs list to this environment's copies; return
    `name==version` of each, and the real paths linked to.

    A top-level folder that a distribution outside the set also uses (a namespace) is not
    linked whole: its files are hard-linked one by one instead, so nothing installed into the
    runtime later can land in this environment. `__pycache__` and files outside site-packages
    (console scripts: the lessons do not run them) are left out.
    """
    from importlib import metadata

    dists = [d for d in _dependency_closure(names) if _norm(d.metadata["Name"]) not in skip]
    chosen = {_norm(d.metadata["Name"]) for d in dists}
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for entry in dist.files or []:
            top = os.path.normpath(str(entry)).split(os.sep)[0]
            owners.setdefault(top, set()).add(_norm(dist.metadata["Name"]))
    targets = set()
    for dist in dists:
        for entry in dist.files or []:
            rel = os.path.normpath(str(entry))
            top = rel.split(os.sep)[0]
            if top in ("..", "__pycache__"):
                continue
            if owners.get(top, set()) <= chosen:  # the whole folder belongs to the set
                src, dst = Path(dist.locate_file(top)), site / top
            else:
                src, dst = Path(dist.locate_file(entry)), site / rel
            if dst.is_symlink() or dst.exists() or not src.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                dst.symlink_to(src, target_is_directory=True)
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    dst.symlink_to(src)
            targets.add(str(src.resolve()))
    return sorted(f"{_norm(d.metadata['Name'])}=={d.version}" for d in dists), sorted(targets)


@dataclass
class Runtime:
    """A built Colab-like runtime: its Python, site-packages and kernelspec folder."""

    root: Path
    python: Path
    site: Path
    kernels: Path
    versions: dict[str, str] = field(default_factory=dict)
    linked: list[str] = field(default_factory=list)  # real paths of what link_distributions linked
    frozen: list[str] = field(default_factory=list)  # `pip freeze --all` right after building
    build_seconds: float = 0.0

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process in this runtime (its bin/ first on PATH)."""
        path = f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return clean_env(PATH=path, **extra)

    def pip(self, *args: str) -> subprocess.CompletedProcess:
        return _run([str(self.python), "-m", "pip", *args], f"pip {args[0]}", env=self.env())

    def freeze(self) -> list[str]:
        return sorted(self.pip("freeze", "--all").stdout.splitlines())

    def uninstall_gan_helpers(self) -> None:
        """Make this a runtime that has never seen gan_helpers (as Colab gives each lesson)."""
        if self.installed_from() is not None:
            self.pip("uninstall", "--yes", "--quiet", "gan-helpers")

    def installed_from(self) -> str | None:
        """The URL gan-helpers was installed from (PEP 610 direct_url.json), None if it is not."""
        found = sorted(self.site.glob("gan_helpers-*.dist-info"))
        if not found:
            return None
        direct = found[0] / "direct_url.json"
        return json.loads(direct.read_text()).get("url", "") if direct.exists() else ""

    def kernel_manager(self):
        """A jupyter_client KernelManager for this runtime's kernel (not started)."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        specs = KernelSpecManager(kernel_dirs=[str(self.kernels)])
        return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _wheelhouse(pins: list[str], log=print) -> Path:
    """A folder holding wheels of `pins` and everything they need, downloaded on first use and
    kept (in `$XDG_CACHE_HOME` or ~/.cache, one folder per set of pins) for later builds."""
    import hashlib

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{sys.version_info[:2]} {sorted(pins)}".encode()).hexdigest()[:12]
    folder = cache / "gan-lessons" / f"colab-wheels-{key}"
    if not (folder / "COMPLETE").exists():
        start = time.perf_counter()
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
              "--dest", str(folder), *pins], "downloading Colab's packages", env=clean_env())
        (folder / "COMPLETE").write_text("\n".join(pins) + "\n")
        log(f"  downloaded {len(list(folder.glob('*.whl')))} wheels to {folder} "
            f"in {time.perf_counter() - start:.0f} s")
    return folder


def build_runtime(root: Path, log=print) -> Runtime:
    """Build the Colab-like runtime in `root` (an empty or missing folder)."""
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    _run([base, "-m", "venv", "--without-pip", str(venv)], "creating the virtual environment")
    python = venv / "bin" / "python"
    env = clean_env(PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     "asking the new Python for its site-packages").stdout.strip())
    log(f"  runtime: {venv} (Python {sys.version.split()[0]})")

    # torch, torchvision and what they need: this environment's own files, linked (not copied).
    skip = {_norm(n) for n in COLAB_PACKAGES} | {"pip"}
    linked, targets = link_distributions(LINKED, site, skip)
    log(f"  linked from {sys.prefix}: {', '.join(linked)}")

    # Colab's versions of the rest, from wheels kept between runs; installed by this
    # environment's pip (the runtime has none until then), not compiled: the first kernel
    # compiles and keeps what the lessons import, a fraction of it.
    pins = [f"pip=={PIP_VERSION}"] + [f"{n}=={v}" for n, v in COLAB_PACKAGES.items()]
    wheels = _wheelhouse(pins, log)
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-index", "--no-compile", "--find-links", str(wheels), *pins],
         "installing Colab's packages", env=env)
    _run([str(python), "-m", "pip", "check"], "checking the runtime's requirements", env=env)

    # The stand-in google.colab and the audit hook, as site-packages of their own.
    shutil.copytree(FAKE_COLAB / "google", site / "google", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("colab_runtime_audit.py", "colab_runtime_audit.pth"):
        shutil.copy2(FAKE_COLAB / name, site / name)

    # The kernel, which imports google.colab at start (an IPython start-up file), like Colab's.
    ipython_dir = root / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-google-colab.py").write_text("import google.colab  # as Colab's kernel does\n")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Colab-like)", "language": "python",
        "env": {"IPYTHONDIR": str(ipython_dir),
                # ipykernel 6's debugger otherwise warns about frozen modules at every start
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"}}, indent=1))

    versions = json.loads(_run([str(python), "-c", (
        "import json; from importlib import metadata as m; import sys; "
        f"names = {sorted({*COLAB_PACKAGES, *LINKED, 'pip'})!r}; "
        "print(json.dumps({'python': sys.version.split()[0], "
        "**{n: m.version(n) for n in names}}))")], "reading versions", env=env).stdout)
    runtime = Runtime(root=root, python=python, site=site, kernels=root / "kernels",
                      versions=versions, linked=targets)
    runtime.frozen = runtime.freeze()
    runtime.build_seconds = time.perf_counter() - start
    return runtime


def snapshot(root: Path, dest: Path) -> str:
    """Commit a copy of the working tree of `root` (tracked and untracked files that git does not
    ignore, as they are now) to a new git repository in `dest`; return its `file://localhost`
    URL (pip before 24 rejects `git+file:///...` in a direct reference)."""
    if shutil.which("git") is None:
        raise RuntimeUnavailableError("git is not installed")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                  "listing the working tree", cwd=root).stdout
    dest.mkdir(parents=True)
    for rel in filter(None, listed.split("\0")):
        src = root / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=snapshot", "-c", "user.email=snapshot@localhost",
           "-c", "commit.gpgsign=false"]
    _run([*git, "init", "--quiet"], "git init", cwd=dest)
    _run([*git, "add", "--all"], "git add", cwd=dest)
    _run([*git, "commit", "--quiet", "--message", "working tree snapshot"], "git commit", cwd=dest)
    return "file://localhost" + dest.resolve().as_posix()


REPO_LINE = re.compile(r'^REPO = "[^"]*"$', re.MULTILINE)


def lesson_copy(lesson: Path, folder: Path, repo: str, replace: dict[str, str] | None = None,
                extra_cells: list[str] = ()) -> Path:
    """Copy `lesson` alone into `folder` with its set-up cell's `REPO = "..."` pointed at `repo`,
    each `replace` key (a whole line of a code cell) replaced by its value, and `extra_cells`
    appended; return the copy's path."""
    import nbformat

    nb = nbformat.read(lesson, as_version=4)
    setup = nb.cells[1]
    setup.source, count = REPO_LINE.subn(f'REPO = "{repo}"', setup.source)
    if count != 1:
        raise ValueError(f"{lesson.name}: the set-up cell has no single `REPO = \"...\"` line")
    for old, new in (replace or {}).items():
        line = re.compile(rf"^{re.escape(old)}(?=\s*(#.*)?$)", re.MULTILINE)
        hits = 0
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source, n = line.subn(new, cell.source)
                hits += n
        if hits != 1:
            raise ValueError(f"{lesson.name}: expected one line `{old}`, found {hits}")
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in extra_cells)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / lesson.name
    nbformat.write(nb, copy)
    return copy


@dataclass
class Execution:
    notebook: object  # the executed nbformat notebook, outputs included
    seconds: float
    error: Exception | None

    def failed_cell(self) -> tuple[int, str] | None:
        """(index, source) of the first cell whose output is an error, None if none."""
        for i, cell in enumerate(self.notebook.cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                return i, cell.source
        return None

    def describe_failure(self) -> str:
        found = self.failed_cell()
        if found is None:
            return f"the execution failed outside any cell: {self.error!r}"
        i, source = found
        err = next(o for o in self.notebook.cells[i].outputs if o.get("output_type") == "error")
        whose = ("the set-up cell (installing gan_helpers in the runtime)" if i == 1 else
                 f"the lesson's own cell {i} (`{source.splitlines()[0] if source else ''}`)")
        tail = "\n".join(_strip_ansi(line) for line in err.get("traceback", [])[-3:])
        return f"{whose} raised {err['ename']}: {err['evalue']}\n{tail}"


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def execute(path: Path, runtime: Runtime, env: dict[str, str], timeout: int = 900) -> Execution:
    """Run the notebook at `path` top to bottom on the runtime's kernel, in its folder, with
    `env` as the kernel's whole environment; save it with its outputs; stop at the first error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, km=runtime.kernel_manager(), timeout=timeout,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except Exception as err:  # noqa: BLE001 - reported with the failed cell by the caller
        error = err
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return Execution(nb, seconds, error)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("By hand")[1].strip(), file=sys.stderr)
        return 2
    runtime = build_runtime(Path(argv[0]).resolve())
    print(json.dumps(runtime.versions, indent=1))
    print(f"built in {runtime.build_seconds:.0f} s; kernelspec in {runtime.kernels} "
          f"(JUPYTER_PATH={runtime.root} jupyter ... --kernel {KERNEL_NAME})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
