"""Undo hgq2 0.2.0's overwrite of QKeras (run by `make install` after pip).

hgq2 0.2.0 ships a QKeras-compatibility package named `qkeras` (qkeras/__init__.py plus the packages
qkeras/quantizers/, qkeras/qlayers/, qkeras/initializers/). Installed with QKeras 0.9.0 it replaces
QKeras' __init__.py, and its package directories shadow QKeras' modules quantizers.py and qlayers.py,
so `from qkeras import QActivation` fails. This removes hgq2's directories that QKeras does not own and
reinstalls QKeras' own files (no dependencies). HGQ2 itself never imports `qkeras`. Idempotent.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def main() -> int:
    try:
        hgq, qk = distribution("hgq2"), distribution("qkeras")
    except PackageNotFoundError:
        return 0  # one of them is missing: nothing overlaps
    owned = {str(f) for f in qk.files or ()}
    removed = set()
    for f in hgq.files or ():
        parts = Path(str(f)).parts
        if len(parts) > 2 and parts[0] == "qkeras" and f"qkeras/{parts[1]}.py" in owned:
            target = Path(hgq.locate_file(f"qkeras/{parts[1]}"))
            if target.is_dir() and target not in removed:
                shutil.rmtree(target)
                removed.add(target)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet",
                           f"qkeras=={qk.version}"], check=False)
    if done.returncode:
        print(f"error: could not reinstall qkeras {qk.version} over hgq2's compatibility package", file=sys.stderr)
        return done.returncode
    check = subprocess.run([sys.executable, "-c", "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; "
                            "from qkeras import QActivation, QDense; import hgq"], capture_output=True, text=True)
    if check.returncode:
        print("error: QKeras and HGQ2 do not both import after the repair:\n" + check.stderr[-2000:], file=sys.stderr)
        return 1
    print(f"qkeras {qk.version} repaired over hgq2's compatibility package ({len(removed)} directories removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
