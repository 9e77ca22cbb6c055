"""Where a benchmark figure came from: the package's `trigger_kd.provenance.git_state` (commit and dirty flag
of the checkout that was measured)."""
from __future__ import annotations

from trigger_kd.provenance import REPO, git_state

__all__ = ["REPO", "git_state"]
