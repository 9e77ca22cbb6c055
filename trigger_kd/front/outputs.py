"""The files `trigger-kd front` writes in its sweep directory, and the two rules they follow.

1. Nothing of the user's is replaced: ``front.json``, ``front.png`` and ``picked.yml`` are replaced only when
   they are trigger-kd front's own (``foreign``: read from their content, so a sweep directory made by an earlier
   version, or moved, is still recognised); a folder holding a file of those names that is not is refused before
   any work.
2. Every output in the folder is of one invocation: an invocation that has passed its checks and reached the
   cluster removes the earlier invocation's outputs before any work (``clear``), and at the end writes its own
   (``publish``: each atomically, front.json last). Each carries the invocation's id (front.json ``invocation``,
   picked.yml's first line, front.png's ``Software`` text chunk), so an interrupted or failed sweep never leaves
   an earlier pick beside its own results.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import TriggerKDError

FRONT_JSON, FRONT_PNG, PICKED_YML = "front.json", "front.png", "picked.yml"
OUTPUTS = (FRONT_JSON, FRONT_PNG, PICKED_YML)
TAG = "trigger-kd front"  # front.png's Software text and picked.yml's first line begin with it
PICKED_HEADER = "# picked by trigger-kd front"


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG file (keyword -> text); {} when it is not a PNG."""
    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IDAT" or kind == b"IEND" or length > 1 << 20:
                    break
                data = f.read(length)
                f.read(4)  # CRC
                if kind == b"tEXt" and b"\0" in data:
                    key, _, text = data.partition(b"\0")
                    out[key.decode("latin-1")] = text.decode("latin-1")
    except OSError:
        return {}
    return out


def front_json_invocation(path: Path) -> str | None:
    """The invocation id of a front.json trigger-kd front wrote ("" for one from before ids); None: not ours."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and str(data.get("command", "")).startswith("trigger-kd front")
            and isinstance(data.get("points"), list)):
        return None
    return str(data.get("invocation") or "")


def invocation_of(path: Path) -> str | None:
    """The invocation id an output file of ours carries ("" for ours from before ids); None: not ours."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None  # trigger-kd front writes plain files only
    if path.name == FRONT_JSON:
        return front_json_invocation(path)
    if path.name == PICKED_YML:
        try:
            with open(path, errors="replace") as f:
                first = f.readline()
        except OSError:
            return None
        if not first.startswith(PICKED_HEADER):
            return None
        rest = first[len(PICKED_HEADER):]
        return rest[len(" (invocation "):].split(")")[0] if rest.startswith(" (invocation ") else ""
    if path.name == FRONT_PNG:
        software = png_text(path).get("Software", "")
        if software.startswith(TAG):
            return software[len(TAG):].strip().removeprefix("invocation").strip()
        return None
    return None


def foreign(out_dir: Path) -> list[str]:
    """The output names in ``out_dir`` that trigger-kd front did not write. A front.png from before the PNG tag is
    ours when the front.json beside it is."""
    out_dir = Path(out_dir)
    legacy = (out_dir / FRONT_JSON).is_file() and invocation_of(out_dir / FRONT_JSON) == ""
    bad = []
    for name in OUTPUTS:
        path = out_dir / name
        if not (path.exists() or path.is_symlink()):
            continue
        if invocation_of(path) is None and not (name == FRONT_PNG and legacy and path.is_file()
                                                  and not path.is_symlink() and png_text(path)):
            bad.append(name)
    return bad


def check_out_dir(out_dir: Path) -> None:
    """Refuse (before any work) a sweep directory that is a file, or holds an output name trigger-kd front did not
    write."""
    out_dir = Path(out_dir)
    if (out_dir.exists() or out_dir.is_symlink()) and not out_dir.is_dir():
        raise TriggerKDError(f"front --out {out_dir} is an existing file, not a folder; nothing was replaced: give a "
                             "new folder (or one an earlier `trigger-kd front` wrote)")
    from ..rundir import run_dir_of

    run = run_dir_of(out_dir)
    if run is not None:
        raise TriggerKDError(f"front --out {out_dir} belongs to the pipeline run {run}; the sweep's files would mix with "
                             "that run's: give --out a folder of its own")
    bad = foreign(out_dir) if out_dir.is_dir() else []
    if bad:
        raise TriggerKDError(
            f"front --out {out_dir}: {', '.join(bad)} already exist{'s' if len(bad) == 1 else ''} there and "
            f"trigger-kd front did not write {'it' if len(bad) == 1 else 'them'}; nothing was replaced: give --out a "
            "new folder (or one an earlier `trigger-kd front` wrote)")


def clear(out_dir: Path) -> list[str]:
    """Remove the earlier invocation's outputs (ours only: checked again), front.json first; the names removed."""
    removed, bad = [], foreign(out_dir)
    for name in (FRONT_JSON, PICKED_YML, FRONT_PNG):
        path = Path(out_dir) / name
        if path.exists() and name not in bad:
            path.unlink()
            removed.append(name)
    return removed


def picked_header(invocation: str, text: str) -> str:
    return f"{PICKED_HEADER} (invocation {invocation}): {text}\n"
