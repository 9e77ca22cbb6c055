"""`trigger-kd front --yosys`: Yosys synth_xilinx on the RTL a point's synth stage wrote (the sweep's points run
the open-source route with ``synth.yosys: false``, da4ml's estimate only), cached per point by the synth stamp."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text_atomic
from ..rundir import RESOURCES, SYNTH, Resources, read_stamp

YOSYS_JSON = "front_yosys.json"


def point_yosys(run_dir: str, family: str) -> dict:
    """{"yosys_lut", "yosys_ff", ...} of the point in ``run_dir`` (``<run_dir>/front_yosys.json``, redone when its
    synth stage was)."""
    from ..synth.yosys import run_yosys

    run_dir = Path(run_dir)
    synth = (run_dir / SYNTH).resolve()
    stamp = (read_stamp(synth) or {}).get("stamp")
    cached = run_dir / YOSYS_JSON
    try:
        old = json.loads(cached.read_text())
        if old.get("synth_stamp") == stamp and old.get("family") == family:
            return old
    except (OSError, ValueError):
        pass
    res = Resources.read(synth / RESOURCES)
    extra = (res.primary.get("extra") or {}) if res else {}
    if not extra.get("rtl_dir") or not extra.get("top"):
        raise FileNotFoundError(f"{synth / RESOURCES} names no RTL (not the open-source route?)")
    ys = run_yosys(synth / extra["rtl_dir"], extra["top"], family, run_dir / "front_yosys_logs", progress=False)
    out = {"synth_stamp": stamp, "family": family, "yosys_lut": ys.lut, "yosys_ff": ys.ff, "yosys_version": ys.version,
           "yosys_cpu_s": ys.cpu_s, "log": str(Path(ys.log))}
    write_text_atomic(cached, json.dumps(out, indent=2))
    return out
