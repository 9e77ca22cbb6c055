"""Messages for people: one place that decides how progress and problems are printed."""
from __future__ import annotations

import sys

from rich.console import Console

_err = Console(stderr=True, highlight=False)


def info(msg: str) -> None:
    _err.print(msg, markup=False, soft_wrap=True)


def warn(msg: str) -> None:
    _err.print(f"warning: {msg}", style="yellow", markup=False, soft_wrap=True)


def error(msg: str) -> None:
    _err.print(f"error: {msg}", style="bold red", markup=False, soft_wrap=True)


def progress_enabled(requested: bool = True) -> bool | None:
    """tqdm's `disable` argument: None lets tqdm hide bars when stderr is not a terminal."""
    return None if requested else True


def is_tty() -> bool:
    return sys.stderr.isatty()
