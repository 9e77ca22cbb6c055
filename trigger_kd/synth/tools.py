"""Finding and running the external tools of the synthesis routes (logs kept, progress shown)."""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from ..console import info
from ..errors import TriggerKDError


class ToolError(TriggerKDError):
    """A synthesis tool is missing or failed."""


def require(exe: str, how: str, env: dict | None = None) -> str:
    """Full path of ``exe`` on PATH, or a ToolError saying how to get it."""
    path = shutil.which(exe, path=(env or os.environ).get("PATH"))
    if not path:
        raise ToolError(f"'{exe}' not found on PATH; {how}")
    return path


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_logged(
    cmd: Sequence[str],
    log: Path,
    cwd: Path | None = None,
    env: dict | None = None,
    label: str = "",
    progress: Callable[[str], str | None] | None = None,
    heartbeat_s: float = 30.0,
    min_interval_s: float = 5.0,
) -> None:
    """Run ``cmd`` with stdout+stderr into ``log``; print progress lines; raise ToolError on failure.

    ``progress(line)`` may return a short message for a log line; it is printed when
    ``min_interval_s`` have passed since the last message. After ``heartbeat_s``
    seconds of silence the elapsed time is printed. The child runs in
    its own process group, which is ended if this process is interrupted.
    """
    label = label or Path(cmd[0]).name
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = last = time.time()
    with open(log, "w") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            done, current = False, None
            while not done:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:
                    done = True
                    line = ""
                if line:
                    fh.write(line)
                msg = progress(line) if (progress and line) else None
                current = msg or current
                now = time.time()
                if (msg and now - last >= min_interval_s) or now - last > heartbeat_s:
                    info(f"  {label}: {msg or f'still running ({current})' if current else 'running'} ({now - t0:.0f} s)")
                    last = now
            rc = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
    if rc != 0:
        raise ToolError(f"{label} failed (exit {rc}); full log: {log}\n--- last lines ---\n{tail(log)}")


def _pump(stream, lines: "queue.Queue") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def version_of(cmd: Sequence[str], pattern: str, env: dict | None = None) -> str | None:
    """First regex group of ``pattern`` in the output of ``cmd`` (e.g. ``yosys -V``)."""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else None
