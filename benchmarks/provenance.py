"""What the benchmarks share: their common command-line options and their JSON records, which say where a figure
came from (the command, the checkout measured: `trigger_kd.provenance.git_state`, its commit and dirty flag, the
machine and the date) and are written atomically."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from trigger_kd.atomic import write_text_atomic
from trigger_kd.provenance import REPO, git_state

__all__ = ["REPO", "add_options", "command", "git_state", "machine", "provenance", "write_record"]

# option -> (argparse keywords, the help when a benchmark gives none of its own)
_OPTIONS = {
    "out": ({}, "result JSON"),
    "profile": ({}, "config profile (quick | study | paper)"),
    "work": ({}, "run or sweep directories"),
    "seeds": ({"type": int, "nargs": "+"}, "seeds, one run (or sweep) each"),
    "workers": ({"type": int}, "workers at a time"),
    "jobs": ({"type": int}, "runs at a time (processes)"),
    "set": ({"action": "append", "metavar": "SECTION.KEY=VALUE"}, "config override for every run; repeatable"),
}


def add_options(ap: argparse.ArgumentParser, helps: dict[str, str] | None = None, **defaults) -> None:
    """Add the shared options named in ``defaults`` (``out``, ``profile``, ``work``, ``seeds``, ``workers``,
    ``jobs``, ``set``), each with its default here; ``helps`` replaces an option's help text."""
    helps = helps or {}
    for name, default in defaults.items():
        kwargs, help_text = _OPTIONS[name]
        ap.add_argument(f"--{name}", default=default, help=helps.get(name, help_text), **kwargs)


def command(argv: list[str] | None = None, script: str | None = None) -> str:
    """The command line that ran the benchmark: this interpreter and ``sys.argv`` (or ``script`` and ``argv``)."""
    args = sys.argv if argv is None else [script or sys.argv[0], *argv]
    return shlex.join([sys.executable, *args])


def machine(**extra) -> dict:
    """The machine measured: platform, processor, CPUs and Python, with ``extra`` entries."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), **extra}


def provenance(argv: list[str] | None = None, script: str | None = None, flat_git: bool = False) -> dict:
    """``command``, ``created`` and the checkout measured: ``git`` ({commit, dirty}), or with ``flat_git``
    ``git_commit`` and ``git_dirty``."""
    git = git_state()
    where = {"git_commit": git["commit"], "git_dirty": git["dirty"]} if flat_git else {"git": git}
    return {"command": command(argv, script), **where, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_record(path: str | Path, result: dict, default=str) -> Path:
    """Write ``result`` as indented JSON to ``path`` (its folder made, the file replaced atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2, default=default))
    return path
