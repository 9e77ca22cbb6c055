"""Where a recorded figure came from: the git commit of the code that produced it, and whether the checkout
had uncommitted changes to tracked files (then the commit alone does not name the code)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    """{"commit": ``git rev-parse HEAD``, "dirty": tracked files changed}, both None outside a git checkout."""
    def out(*cmd):
        return subprocess.run(["git", *cmd], check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()

    try:
        return {"commit": out("rev-parse", "HEAD"), "dirty": bool(out("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
