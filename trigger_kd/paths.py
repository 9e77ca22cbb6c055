"""Where trigger_kd keeps what it can rebuild: the content-addressed cache (shared stages, compiled kernels)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TRIGGER_KD_CACHE``, else ``$XDG_CACHE_HOME/trigger_kd``, else ``~/.cache/trigger_kd``."""
    env = os.environ.get("TRIGGER_KD_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trigger_kd"
