"""A Colab-like runtime without Colab: the machinery of tests/harness/test_colab_runtime.py.

`build_runtime` makes a throwaway virtual environment that looks to a lesson like a fresh Colab
GPU runtime: Colab's Python (`python3.13` where this machine has it), Colab's versions of the
packages a lesson or its kernel touches, torch and torchvision included (installed from PyPI's
wheels, not linked: `RUNTIMES`), a stand-in `google.colab` (tools/fake_colab/) that the kernel
imports at start as Colab's does, and a kernelspec for it. The wheels are downloaded once and
kept, one folder per interpreter and set of pins, so a second build only installs them.
`snapshot` commits a copy of the working tree (uncommitted changes included) to a throwaway git
repository that a lesson's set-up cell installs from through a `file://localhost/...` URL;
`lesson_copy` puts one lesson alone in an empty folder with its `REPO = "..."` line pointed
there; `execute` runs it top to bottom with nbclient on the runtime's kernel.

By hand (keeps the runtime in FOLDER and prints how to start its kernel):
    .venv/bin/python tools/colab_runtime.py FOLDER [current|26.07]
"""

from __future__ import annotations

import glob
import hashlib
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


@dataclass(frozen=True)
class RuntimeSpec:
    """One Colab runtime version: its Python (major.minor) and its pinned packages."""

    name: str
    python: str
    packages: dict[str, str]
    about: str

    def pins(self) -> list[str]:
        return [f"{n}=={v}" for n, v in self.packages.items()]


# Colab's versions of what a lesson or its kernel touches, from googlecolab/backend-info's
# pip-freeze.gpu.txt (the 26.07 runtime: Python 3.12, numpy 2.0.2, tornado 6.5.1). The current
# default runtime, Python 3.13 since late August 2026 (backend-info "Upgrade to Python 3.13",
# colabtools #6081), differs in numpy (2.1.3) and tornado (6.5.7). Colab's torch is
# 2.11.0+cu128 from PyTorch's own index; here it is PyPI's 2.11.0 (a CUDA build too, which runs
# on the CPU). Colab's pip is 24.1.2 and its setuptools 75.2.0.
_COLAB_26_07 = {
    "pip": "24.1.2",
    "setuptools": "75.2.0",
    "torch": "2.11.0",
    "torchvision": "0.26.0",
    "triton": "3.6.0",
    "sympy": "1.14.0",
    "networkx": "3.6.1",
    "jinja2": "3.1.6",
    "fsspec": "2025.3.0",
    "filelock": "3.29.0",
    "typing-extensions": "4.15.0",
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
    "debugpy": "1.8.15",
    "notebook": "6.5.7",
    "matplotlib": "3.10.0",
    "matplotlib-inline": "0.2.2",
    "numpy": "2.0.2",
    "pillow": "11.3.0",
    "tqdm": "4.67.3",
    "packaging": "26.2",
}
RUNTIMES = {
    "current": RuntimeSpec("current", "3.13", {**_COLAB_26_07, "numpy": "2.1.3",
                                                "tornado": "6.5.7"},
                           "Colab's default runtime since late August 2026"),
    "26.07": RuntimeSpec("26.07", "3.12", _COLAB_26_07,
                         "the previous runtime, still offered under 'Change runtime version'"),
}
DEFAULT_RUNTIME = "current"


class RuntimeUnavailableError(RuntimeError):
    """The Colab-like runtime could not be built here (no git, no package index, ...)."""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment, less what would leak the checkout or its settings into the
    runtime (`GAN_*`, `PYTHONPATH`, `VIRTUAL_ENV`, Jupyter's and IPython's folders, pyenv's
    choice of version) or keep it from caching compiled modules as Colab does
    (`PYTHONDONTWRITEBYTECODE`); plus `extra`."""
    drop = ("GAN_", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE",
            "VIRTUAL_ENV", "JUPYTER", "IPYTHONDIR", "MPLBACKEND", "CONDA_PREFIX",
            "PIP_REQUIRE_VIRTUALENV", "PYENV_VERSION")
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


def _version_key(path: str) -> tuple[int, ...]:
    found = re.search(r"/versions/(\d+(?:\.\d+)*)/", path)
    return tuple(int(x) for x in found.group(1).split(".")) if found else ()


def find_python(version: str) -> Path | None:
    """An interpreter of Python `version` (major.minor): `pythonX.Y` on the PATH, else one of
    pyenv's installed versions (whose shims answer only where that version is selected);
    None if there is none. Returns the interpreter's real path (`sys.executable`)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(glob.glob(str(pyenv / "versions" / f"{version}.*" / "bin"
                                       / f"python{version}")), key=_version_key, reverse=True)
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", "import sys; print(sys.executable); "
                               "print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, env=clean_env())
        lines = proc.stdout.split()
        if proc.returncode == 0 and len(lines) == 2 and lines[1] == version:
            return Path(lines[0])
    return None


@dataclass
class Runtime:
    """A built Colab-like runtime: its Python, site-packages and kernelspec folder."""

    root: Path
    python: Path
    site: Path
    kernels: Path
    spec: RuntimeSpec
    versions: dict[str, str] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)  # `pip freeze --all` right after building
    build_seconds: float = 0.0
    download_seconds: float = 0.0  # 0 when the wheels were already kept
    fallback: str = ""  # why the runtime does not run Colab's Python ("" when it does)
    python_used: str = ""  # the interpreter the virtual environment was made from

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

    def describe(self) -> str:
        """One line: the runtime's name, its Python and the versions that matter most."""
        v = self.versions
        shown = ", ".join(f"{n} {v[n]}" for n in ("torch", "torchvision", "numpy", "ipywidgets",
                                                   "ipykernel", "ipython", "tornado",
                                                   "matplotlib", "pillow", "tqdm") if n in v)
        return (f"Colab runtime '{self.spec.name}' with Python {v.get('python', '?')} "
                f"({self.python_used}): {shown}" + (f" [{self.fallback}]" if self.fallback else ""))


def wheelhouse(python: Path, pins: list[str], log=print) -> tuple[Path, float]:
    """A folder holding wheels of `pins` and everything they need for `python`, downloaded on
    first use and kept (in `$XDG_CACHE_HOME` or ~/.cache, one folder per interpreter, platform
    and set of pins); returns it and the seconds the download took (0 when kept)."""
    tag = _run([str(python), "-c", "import sys, sysconfig; print(sys.implementation.name, "
                "'%d.%d' % sys.version_info[:2], sysconfig.get_platform())"],
               "asking the runtime's Python for its tags").stdout.strip()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{tag} {sorted(pins)}".encode()).hexdigest()[:12]
    folder = cache / "gan-lessons" / f"colab-wheels-{key}"
    if (folder / "COMPLETE").exists():
        return folder, 0.0
    start = time.perf_counter()
    _run([sys.executable, "-m", "pip", "--python", str(python), "download", "--quiet",
          "--only-binary=:all:", "--dest", str(folder), *pins],
         "downloading Colab's packages", env=clean_env())
    (folder / "COMPLETE").write_text(f"{tag}\n" + "\n".join(pins) + "\n")
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in folder.glob("*.whl")) / 2**30
    log(f"  downloaded {len(list(folder.glob('*.whl')))} wheels ({size:.1f} GiB) to {folder} "
        f"in {seconds:.0f} s")
    return folder, seconds


def build_runtime(root: Path, spec: RuntimeSpec | str = DEFAULT_RUNTIME, log=print,
                  fallback: bool = True) -> Runtime:
    """Build the Colab-like runtime `spec` in `root` (an empty or missing folder).

    It runs Colab's Python (`find_python`). Where this machine has none, it falls back to the
    interpreter running this, saying so, or with `fallback=False` (under CI) refuses instead."""
    spec = RUNTIMES[spec] if isinstance(spec, str) else spec
    start = time.perf_counter()
    base, why_not = find_python(spec.python), ""
    if base is None:
        why_not = (f"Colab runs Python {spec.python}, but python{spec.python} is not on this "
                   f"machine (neither on the PATH nor in pyenv)")
        if not fallback:
            raise RuntimeUnavailableError(why_not + "; install it (e.g. `pyenv install "
                                          f"{spec.python}`) to build Colab's runtime")
        base = Path(getattr(sys, "_base_executable", None) or sys.executable)
        why_not += f"; falling back to {base} (Python {sys.version.split()[0]})"
        log(f"  note: {why_not}")
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    _run([str(base), "-m", "venv", "--without-pip", str(venv)], "creating the virtual environment",
         env=clean_env())
    python = venv / "bin" / "python"
    env = clean_env(PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     "asking the new Python for its site-packages").stdout.strip())
    log(f"  runtime '{spec.name}': {venv} (from {base})")

    # Colab's versions, torch included, from wheels kept between runs; installed by this
    # environment's pip (the runtime has none until then), not compiled: the first kernel
    # compiles and keeps what the lessons import, a fraction of it.
    wheels, download_seconds = wheelhouse(python, spec.pins(), log)
    installing = time.perf_counter()
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-index", "--no-compile", "--find-links", str(wheels), *spec.pins()],
         "installing Colab's packages", env=env)
    _run([str(python), "-m", "pip", "check"], "checking the runtime's requirements", env=env)
    log(f"  installed {len(spec.pins())} pinned packages and what they need in "
        f"{time.perf_counter() - installing:.0f} s")

    _add_fake_colab(root, python, site)
    versions = json.loads(_run([str(python), "-c", (
        "import json; from importlib import metadata as m; import sys; "
        f"names = {sorted(spec.packages)!r}; "
        "print(json.dumps({'python': sys.version.split()[0], "
        "**{n: m.version(n) for n in names}}))")], "reading versions", env=env).stdout)
    runtime = Runtime(root=root, python=python, site=site, kernels=root / "kernels", spec=spec,
                      versions=versions, download_seconds=download_seconds, fallback=why_not,
                      python_used=str(base))
    runtime.frozen = runtime.freeze()
    runtime.build_seconds = time.perf_counter() - start
    return runtime


def _add_fake_colab(root: Path, python: Path, site: Path) -> None:
    """The stand-in google.colab and the audit hook as site-packages of their own, and a kernel
    that imports google.colab at start (an IPython start-up file), like Colab's."""
    shutil.copytree(FAKE_COLAB / "google", site / "google", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("colab_runtime_audit.py", "colab_runtime_audit.pth"):
        shutil.copy2(FAKE_COLAB / name, site / name)
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
                extra_cells: list[str] = (), first_cells: list[str] = ()) -> Path:
    """Copy `lesson` alone into `folder` with its set-up cell's `REPO = "..."` pointed at `repo`,
    each `replace` key (a whole line of a code cell) replaced by its value, `first_cells`
    inserted right after the set-up cell and `extra_cells` appended; return the copy's path."""
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
    nb.cells[2:2] = [nbformat.v4.new_code_cell(src) for src in first_cells]
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
    try:  # cleanup_kc: shut the kernel down afterwards (nbclient keeps a kernel it was given)
        client.execute(env=env, cleanup_kc=True)
    except Exception as err:  # noqa: BLE001 - reported with the failed cell by the caller
        error = err
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return Execution(nb, seconds, error)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or (len(argv) == 2 and argv[1] not in RUNTIMES):
        print(__doc__.split("By hand")[1].strip(), file=sys.stderr)
        return 2
    runtime = build_runtime(Path(argv[0]).resolve(), argv[1] if len(argv) == 2 else
                            DEFAULT_RUNTIME)
    print(json.dumps(runtime.versions, indent=1))
    print(f"built in {runtime.build_seconds:.0f} s; kernelspec in {runtime.kernels} "
          f"(JUPYTER_PATH={runtime.root} jupyter ... --kernel {KERNEL_NAME})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
