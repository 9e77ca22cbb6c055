"""Where trigger_kd keeps what it can rebuild: the content-addressed cache (shared stages, compiled kernels)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import TriggerKDError


def cache_root() -> Path:
    """``$TRIGGER_KD_CACHE``, else ``$XDG_CACHE_HOME/trigger_kd``, else ``~/.cache/trigger_kd``; refused
    (``check_cache_root``) when something other than a folder is there."""
    env = os.environ.get("TRIGGER_KD_CACHE")
    if env:
        return check_cache_root(Path(env).expanduser())
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return check_cache_root(Path(base) / "trigger_kd")


def check_cache_root(root: Path) -> Path:
    """``root`` when it is a folder or nothing yet (made on first use); a file (or another non-folder) is refused."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        where = " ($TRIGGER_KD_CACHE)" if os.environ.get("TRIGGER_KD_CACHE") else ""
        raise TriggerKDError(f"the cache folder {root}{where} is a file, not a folder: point TRIGGER_KD_CACHE at a "
                             "folder (new, or one trigger_kd made)")
    return root
