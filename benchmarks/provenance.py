"""Where a benchmark figure came from: the git commit of the code that was measured."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of this checkout, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True,
                              cwd=REPO).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
