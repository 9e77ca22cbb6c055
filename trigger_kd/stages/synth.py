"""Stage `synth`: resource and latency figures, each naming its source.

Routes (``synth.tool``): ``vivado`` / ``vitis`` (local vendor HLS), ``docker`` (the same in
a container), ``open-source`` (da4ml + Yosys + Verilator/Icarus), ``auto`` (the local vendor
tool for ``hls.backend`` when it is on PATH, otherwise open-source, with a warning saying so).
Vendor routes build a copy of the firmware stage's hls4ml project in ``hls_prj/`` (with ``hls.output: argmax``
its last layer is the argmax); the open-source route traces the same output (``hls.output``: the K logits or the
class index, ``synth/da4ml_argmax.py``) and simulates it against the student's logits or their argmax.
Output: ``resources.json`` (primary record, all records, RTL parity, notes, route) and ``logs/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info, warn
from ..rundir import FIRMWARE, HLS_PROJECT, INTNET, RESOURCES, STUDENT, TEST_INPUTS, TEST_LOGITS, Resources
from ..stage import RunContext, StageError


def choose_route(cfg: Config) -> tuple[str, list[str]]:
    """(route, notes): the route ``synth.tool`` asks for, ``auto`` resolved."""
    from ..synth.backends import local_backend_for

    tool = cfg.synth.tool
    if tool != "auto":
        return tool, []
    local = local_backend_for(cfg.hls.backend)
    if local.available():
        return ("vitis" if cfg.hls.backend == "Vitis" else "vivado"), []
    note = (f"synth.tool auto: no {local.name} on PATH (looked for {' / '.join(local.executables)}), so the "
            f"open-source route ran (da4ml + Yosys + RTL simulation), not Vivado/Vitis. For vendor numbers "
            f"use synth.tool: docker (make docker-image, docker/README.md) or put the AMD/Xilinx tools on PATH.")
    warn(note)
    return "open-source", [note]


def _vendor(cfg: Config, ctx: RunContext, out: Path, route: str, notes: list[str]):
    from ..synth.backends import vendor_backend

    src = ctx.dir(FIRMWARE) / HLS_PROJECT
    if not (src / "build_prj.tcl").is_file():
        raise StageError(f"no hls4ml project in {src}; rerun the firmware stage")
    backend = vendor_backend(route, cfg.hls.backend, cfg.synth.docker_image, cfg.synth.container_engine,
                             cfg.synth.container_flags)
    if not backend.available():
        raise StageError(backend.missing_message())
    prj = out / "hls_prj"
    info(f"[synth] copying {src} -> {prj}")
    shutil.copytree(src, prj, symlinks=True, ignore=shutil.ignore_patterns("*.so", "*.o"))
    records = backend.run(prj, out / "logs", vivado_synth=cfg.synth.vivado_synth)
    notes += [f"{r.extra.get('report', r.source)} lacks {', '.join(r.extra['missing_fields'])} (truncated or "
              f"incomplete report): those figures are n/a" for r in records if r.extra.get("missing_fields")]
    hls = next((r for r in records if r.kind == "hls-estimate"), None)
    post = next((r for r in records if r.kind == "post-synthesis"), None)
    if post is not None and hls is not None:
        primary = _merge_latency(post, hls)
        notes.append(f"resources from {post.source}; latency and interval from {hls.source}")
    else:
        primary = hls or records[0]
    if primary.kind == "hls-estimate":
        notes.append("resources are the HLS C-synthesis estimate; set synth.vivado_synth: true for post-synthesis counts")
    return primary, records, None, None


def _merge_latency(post, hls):
    from dataclasses import replace

    merged = replace(post, extra=dict(post.extra), available=dict(post.available),
                     utilization_pct=dict(post.utilization_pct))
    for key in ("clock_target_ns", "clock_estimated_ns", "latency_min_cycles", "latency_max_cycles",
                "latency_min_ns", "latency_max_ns", "interval_min", "interval_max"):
        setattr(merged, key, getattr(hls, key))
    merged.source = f"{post.source}; latency from {hls.source}"
    merged.extra["latency_source"] = hls.source
    return merged


def _open_source(cfg: Config, ctx: RunContext, out: Path, notes: list[str]):
    from ..models.backend import student_backend
    from ..synth.da4ml_comb import load_integer_network
    from ..synth.opensource import run_open_source

    sdir = ctx.dir(STUDENT)
    if not (sdir / INTNET).is_file():
        raise StageError(
            f"the open-source route traces the student's integer network, but {sdir / INTNET} does not "
            f"exist (student.framework: {cfg.student.framework}; a student stage from an older version writes "
            f"none); rerun the student stage, or use a vendor route "
            f"(synth.tool: vivado | vitis | docker)")
    net = load_integer_network(sdir / INTNET)  # IntNet, or the da4ml-traced HGQ2 student
    x = student_backend(cfg.student).intnet_inputs(np.load(sdir / TEST_INPUTS))
    ref = np.load(sdir / TEST_LOGITS) if (sdir / TEST_LOGITS).is_file() else None
    s, h = cfg.synth, cfg.hls
    info(f"[synth] open-source route: da4ml -> {f'Yosys ({s.family})' if s.yosys else 'no Yosys'} -> {s.simulator} on {len(x)} test jets "
         f"({'all' if s.sim_jets <= 0 else min(s.sim_jets, len(x))} simulated)")
    res = run_open_source(net, x, out, part=h.part, clock_period=h.clock_period, latency_cutoff=s.latency_cutoff,
                          family=s.family, simulator=s.simulator, sim_jets=s.sim_jets, reference_logits=ref,
                          progress=ctx.progress, yosys=s.yosys, output=h.output)
    notes += res.notes
    return res.record, [res.record], res.rtl_parity, res.da4ml_estimate


def run_synth(cfg: Config, ctx: RunContext, out: Path) -> dict:
    if cfg.hls.output == "softmax":  # the firmware stage measures and refuses it; nothing to synthesise
        raise StageError("hls.output: softmax is refused (the lookup-table softmax is not exact: the firmware stage "
                         "measures it on the test jets and says by how much); use hls.output logits or argmax")
    route, notes = choose_route(cfg)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if route == "open-source":
        primary, records, rtl_parity, estimate = _open_source(cfg, ctx, out, notes)
    else:
        primary, records, rtl_parity, estimate = _vendor(cfg, ctx, out, route, notes)
    Resources(primary=primary.to_dict(), records=[r.to_dict() for r in records], rtl_parity=rtl_parity,
              da4ml_estimate=estimate, notes=notes, route=route).write(out / RESOURCES)
    info(f"[synth] {primary.source}: LUT {primary.lut}, FF {primary.ff}, DSP {primary.dsp}, "
         f"BRAM18 {primary.bram_18k}, latency {primary.latency_max_cycles} cycles")
    if rtl_parity is not None and rtl_parity.get("bit_exact_fraction") != 1.0:
        raise StageError(
            f"RTL simulation is bit-exact on only {rtl_parity['bit_exact_fraction']:.4%} of {rtl_parity['n_jets']} "
            f"test jets ({rtl_parity['simulator']}); see {out / 'logs'} and {out / RESOURCES}")
    return {"route": route, "source": primary.source, "kind": primary.kind, "lut": primary.lut, "ff": primary.ff,
            "dsp": primary.dsp, "bram_18k": primary.bram_18k, "latency_cycles": primary.latency_max_cycles,
            "rtl_bit_exact_fraction": None if rtl_parity is None else rtl_parity.get("bit_exact_fraction")}
