"""`trigger-kd front --yosys`: Yosys synth_xilinx on the RTL a point's synth stage wrote (the sweep's points run
the open-source route with ``synth.yosys: false``, da4ml's estimate only), cached per point by the synth stamp.

Every record, the cached ``front_yosys.json`` read back and a fresh one alike, goes through ``yosys_record``: the
LUT and FF are whole counts in [0, 1e9] (``synth/reports.check_count``), the CPU time a finite time >= 0, the synth
stamp and family strings. A cached record that fails is not used: Yosys runs again, and a warning says why."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..atomic import write_text_atomic
from ..console import warn
from ..errors import TriggerKDError
from ..rundir import RESOURCES, SYNTH, Resources
from ..synth.reports import check_count
from .record import stamp_of

YOSYS_JSON = "front_yosys.json"


class YosysRecordError(TriggerKDError):
    """A front_yosys.json whose content cannot be a Yosys synthesis of the point."""


def yosys_record(doc, where: str) -> dict:
    """``doc`` when it is a possible Yosys record (see the module's docstring); YosysRecordError naming ``where``
    and the field otherwise."""
    if not isinstance(doc, dict):
        raise YosysRecordError(f"{where}: not a front_yosys.json record (a JSON object), but {type(doc).__name__}")
    for key in ("yosys_lut", "yosys_ff"):
        if doc.get(key) is None:
            raise YosysRecordError(f"{where}: no {key}")
        check_count(doc[key], key, where)
    cpu = doc.get("yosys_cpu_s")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not math.isfinite(cpu)
                            or cpu < 0):
        raise YosysRecordError(f"{where}: yosys_cpu_s is {cpu!r}, not a time in seconds (a finite number >= 0)")
    if not isinstance(doc.get("family"), str) or not doc["family"]:
        raise YosysRecordError(f"{where}: family is {doc.get('family')!r}, not an FPGA family name")
    if not isinstance(doc.get("synth_stamp"), (str, type(None))):
        raise YosysRecordError(f"{where}: synth_stamp is {doc['synth_stamp']!r}, not a stamp")
    return doc


def cached_yosys(path: Path, stamp, family: str) -> tuple[dict | None, str | None]:
    """The cached record at ``path``: (record, None) when it is of this synth stage (``stamp``) and ``family`` and
    possible; (None, None) when absent or of another synth stage or family (Yosys runs again, nothing to say);
    (None, why) when it is damaged."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path}: not a readable front_yosys.json ({exc})"
    try:
        record = yosys_record(doc, str(path))
    except TriggerKDError as exc:
        return None, str(exc)
    if record.get("synth_stamp") != stamp or record["family"] != family:
        return None, None
    return record, None


def point_yosys(run_dir: str, family: str) -> dict:
    """{"yosys_lut", "yosys_ff", ...} of the point in ``run_dir`` (``<run_dir>/front_yosys.json``, redone when its
    synth stage was, or when the cached record is damaged)."""
    from ..synth.yosys import run_yosys

    run_dir = Path(run_dir)
    synth = (run_dir / SYNTH).resolve()
    stamp = stamp_of(synth)
    cached = run_dir / YOSYS_JSON
    old, why = cached_yosys(cached, stamp, family)
    if old is not None:
        return old
    if why:
        warn(f"[front] {why}: the cached Yosys figures are not used; running Yosys on {run_dir.name} again")
    res = Resources.read(synth / RESOURCES)
    extra = (res.primary.get("extra") or {}) if res else {}
    if not extra.get("rtl_dir") or not extra.get("top"):
        raise FileNotFoundError(f"{synth / RESOURCES} names no RTL (not the open-source route?)"
                                + (f"; the cached front_yosys.json was not used: {why}" if why else ""))
    ys = run_yosys(synth / extra["rtl_dir"], extra["top"], family, run_dir / "front_yosys_logs", progress=False)
    out = yosys_record({"synth_stamp": stamp, "family": family, "yosys_lut": ys.lut, "yosys_ff": ys.ff,
                        "yosys_version": ys.version, "yosys_cpu_s": ys.cpu_s, "log": str(Path(ys.log))},
                       f"Yosys on {run_dir}")
    write_text_atomic(cached, json.dumps(out, indent=2))
    return out
