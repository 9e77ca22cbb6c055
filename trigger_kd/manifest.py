"""What a stage wrote: the manifest of its output directory, and whether the directory still holds it.

When a stage completes, the runner lists every file of its directory in ``manifest.json`` (``rundir.MANIFEST_FILE``):
relative name, size and the SHA-256 of files up to ``HASH_LIMIT`` bytes (bigger files: size and mtime in
nanoseconds, so that a multi-GB dataset is not re-read on every run), and the target of every symlink.
``stamp.json`` records the SHA-256 of the manifest itself (``outputs``), so the manifest cannot change unnoticed
either. ``output_problem`` says what no longer matches ("student/student.pt is missing"); the runner reruns such a
stage instead of calling it up to date, and the tools (``runcheck.py``) refuse to read it.

Left out: ``stamp.json``, ``manifest.json`` and top-level dot files (a cache entry's ``.uses.json`` bookkeeping).
Files added to a stage directory after it completed are not its outputs and are ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import write_text_atomic
from .fingerprint import sha256_file
from .rundir import MANIFEST_FILE, STAMP_FILE, read_stamp

HASH_LIMIT = 32 << 20  # files up to 32 MiB are hashed; bigger ones are checked by size and mtime_ns
_SKIP = {STAMP_FILE, MANIFEST_FILE}


def _entries(stage_dir: Path, skip: frozenset[str] = frozenset()):
    """(relative name, path) of every file and symlink below ``stage_dir``, symlinks not followed."""
    for root, dirs, files in os.walk(stage_dir):
        rel_root = Path(root).relative_to(stage_dir)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            if rel_root == Path(".") and (name in _SKIP or name in skip or name.startswith(".")):
                continue
            yield (rel_root / name).as_posix(), Path(root) / name
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d))
                         and not (rel_root == Path(".") and d.startswith(".")))


def file_record(path: Path) -> dict:
    """How one output is recorded: a symlink's target, or size and sha256 (or mtime_ns for a big file)."""
    if path.is_symlink():
        return {"link": os.readlink(path)}
    st = path.stat()
    if st.st_size <= HASH_LIMIT:
        return {"size": st.st_size, "sha256": sha256_file(path)}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def make_manifest(stage_dir: Path, skip: frozenset[str] = frozenset()) -> dict:
    """The manifest of ``stage_dir``; ``skip``: further top-level names left out (the record that holds its digest)."""
    stage_dir = Path(stage_dir)
    return {"files": {rel: file_record(p) for rel, p in _entries(stage_dir, skip)}, "hash_limit": HASH_LIMIT}


def digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def write_manifest(stage_dir: Path, skip: frozenset[str] = frozenset()) -> str:
    """Write ``stage_dir/manifest.json``; its digest (for ``stamp.json`` ``outputs``)."""
    manifest = make_manifest(stage_dir, skip)
    write_text_atomic(Path(stage_dir) / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True))
    return digest(manifest)


def _changed(path: Path, want: dict) -> str | None:
    """Why ``path`` is not the file the manifest records (None: it is)."""
    if "link" in want:
        if not path.is_symlink():
            return "is missing" if not path.exists() else "was replaced (it was a symlink)"
        return None if os.readlink(path) == want["link"] else "now points elsewhere"
    if not path.is_file() or path.is_symlink():
        return "is missing" if not path.exists() and not path.is_symlink() else "was replaced by something else"
    st = path.stat()
    if st.st_size != want.get("size"):
        return f"was changed (size {st.st_size} bytes, the stage wrote {want.get('size')})"
    if "sha256" in want and sha256_file(path) != want["sha256"]:
        return "was changed (its content differs from what the stage wrote)"
    if "mtime_ns" in want and st.st_mtime_ns != want["mtime_ns"]:
        return "was changed (modified after the stage wrote it)"
    return None


def output_problem(stage_dir: Path, label: str | None = None) -> str | None:
    """What is wrong with a completed stage directory's outputs, naming the file as ``label/relative`` (default:
    the directory's name); None when every output is there and unchanged, or when the stage was made before
    manifests existed (no ``outputs`` in its stamp: nothing to compare with)."""
    stage_dir = Path(stage_dir)
    label = label or stage_dir.name
    stamp = read_stamp(stage_dir)
    if stamp is None:
        return f"{label}/{STAMP_FILE} is missing or unreadable"
    if "outputs" not in stamp:
        return None
    return manifest_problem(stage_dir, stamp["outputs"], label, STAMP_FILE)


def manifest_problem(out_dir: Path, outputs: str, label: str, record: str) -> str | None:
    """What no longer matches the manifest of ``out_dir`` whose digest ``record`` holds (``outputs``); None: all."""
    try:
        manifest = json.loads((out_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return f"{label}/{MANIFEST_FILE} is missing or unreadable"
    if digest(manifest) != outputs:
        return f"{label}/{MANIFEST_FILE} was changed (it no longer matches {label}/{record})"
    for rel, want in (manifest.get("files") or {}).items():
        why = _changed(out_dir / rel, want)
        if why:
            return f"{label}/{rel} {why}"
    return None


def adopt(stage_dir: Path, upstream_outputs: dict[str, str]) -> str:
    """A stage made before manifests existed: record its outputs now (and what its upstream outputs are); the
    new ``outputs`` digest."""
    stage_dir = Path(stage_dir)
    stamp = read_stamp(stage_dir) or {}
    stamp["outputs"] = write_manifest(stage_dir)
    stamp.setdefault("upstream_outputs", upstream_outputs)
    write_text_atomic(stage_dir / STAMP_FILE, json.dumps(stamp, indent=2, default=str))
    return stamp["outputs"]
