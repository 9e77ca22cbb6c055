"""The open-source route: real hardware numbers without Vivado.

IntNet -> da4ml trace (bit-exact pipelined Verilog; with ``hls.output: argmax`` ending in the comparator tree of
``da4ml_argmax.py``, one output: the class index) -> da4ml interpreter check ->
Yosys ``synth_xilinx`` (LUT/FF/CARRY/DSP counts) -> RTL simulation of test jets
(Verilator or Icarus) -> one ``open-source-synthesis`` ResourceRecord. Yosys counts are
not Vivado's (no place and route, CARRY4 rather than CARRY8, INV cells not absorbed);
latency in cycles is the number of da4ml pipeline stages, at an initiation interval of 1; the
stage cut scales with the clock (``stage_cutoff``), and latency in ns = stages x clock period is
labelled "pipeline depth at the target clock; timing not closed" (no place and route, no STA).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..console import info, warn
from ..errors import TriggerKDError
from ..firmware.outputs import TIE_RULE, class_index
from ..firmware.parity import compare_fixed
from ..models.intnet import IntNet
from . import da4ml_trace, rtl_sim
from .reports import ResourceRecord
from .tools import ToolError, require
from .yosys import INSTALL_HINT as YOSYS_HINT
from .yosys import run_yosys

# Resource counts of common parts (AMD/Xilinx data sheets, as csynth reports them).
PART_RESOURCES = {
    "xcvu13p": {"lut": 1728000, "ff": 3456000, "dsp": 12288, "bram_18k": 5376, "uram": 1280},
    "xcvu9p": {"lut": 1182240, "ff": 2364480, "dsp": 6840, "bram_18k": 4320, "uram": 960},
}


LATENCY_LABEL = "pipeline depth at the target clock; timing not closed"
REFERENCE_CLOCK_NS = 5.0  # synth.latency_cutoff is da4ml's delay budget per stage at this clock


def stage_cutoff(latency_cutoff: float, clock_period: float) -> float:
    """da4ml's per-stage delay budget for ``clock_period``: ``synth.latency_cutoff`` scaled from a 5 ns clock.

    ``latency_cutoff`` is in da4ml's delay units (its adder/LUT delay model, not ns) for a 5 ns clock; a
    slower clock allows proportionally more logic per stage, a faster one less, so the number of stages
    times the clock period is the latency at that clock.
    """
    if not (clock_period > 0 and latency_cutoff > 0):
        raise OpenSourceError(f"hls.clock_period ({clock_period}) and synth.latency_cutoff ({latency_cutoff}) "
                              f"must be positive")
    return latency_cutoff * clock_period / REFERENCE_CLOCK_NS


class OpenSourceError(TriggerKDError):
    """The open-source route found a problem (wrong inputs, a mismatch, a missing tool)."""


@dataclass
class OpenSourceResult:
    record: ResourceRecord
    rtl_parity: dict | None
    da4ml_estimate: float
    notes: list[str] = field(default_factory=list)


def part_resources(part: str | None) -> dict:
    p = (part or "").lower()
    return dict(next((v for k, v in PART_RESOURCES.items() if p.startswith(k)), {}))


def rtl_parity(reference: np.ndarray, got: np.ndarray, frac_bits: int, simulator: str) -> dict:
    """The simulated RTL outputs of every jet against ``reference`` as integers on the output grid (2**-frac_bits):
    ``firmware.parity.compare_fixed``, the comparison the C-simulation's parity uses, with the simulator named."""
    return {**compare_fixed(got, reference, 2.0**-frac_bits), "simulator": simulator}


def _simulate(model, traced, x_grid, simulator: str, log_dir: Path, progress: bool, notes: list[str]):
    """(outputs per jet, simulator name, measured latency or None)."""
    where = Path(model._path).resolve()
    if simulator == "verilator" and any(c.isspace() for c in str(where)):  # verilated.mk refuses such a folder
        msg = (f"Verilator simulation not possible: GNU Make, which builds Verilator's model, cannot build in "
               f"{where} (a path with spaces); Icarus Verilog simulated the RTL instead (use a run directory "
               f"without spaces for Verilator)")
        warn(msg)
        notes.append(msg)
    elif simulator == "verilator":
        try:
            out = rtl_sim.simulate_verilator(model, x_grid, log_dir, jobs=min(2, os.cpu_count() or 1), progress=progress)
            return out, f"verilator {rtl_sim.verilator_version()} (da4ml binder)", None
        except (ToolError, RuntimeError, AssertionError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            msg = f"Verilator simulation not possible ({why}); Icarus Verilog simulated the RTL instead"
            warn(msg)
            notes.append(msg)
    by_cycle, first = rtl_sim.simulate_iverilog(model, x_grid, log_dir, progress=progress)
    lat = first if first is not None else traced.stages
    return by_cycle[lat:lat + len(x_grid)], "icarus verilog", first


def check_tools(simulator: str, yosys: bool = True) -> None:
    """Fail before any work when a tool of the route is missing."""
    if yosys:
        require("yosys", YOSYS_HINT)
    if simulator == "iverilog":
        require("iverilog", rtl_sim.IVERILOG_HINT)
        require("vvp", rtl_sim.IVERILOG_HINT)
    else:
        rtl_sim.verilator_env()


def run_open_source(
    net: IntNet,
    x_test: np.ndarray,
    out: Path,
    *,
    part: str,
    clock_period: float,
    latency_cutoff: float = 5.0,
    family: str = "xcup",
    simulator: str = "verilator",
    sim_jets: int = 1000,
    reference_logits: np.ndarray | None = None,
    progress: bool = True,
    yosys: bool = True,
    output: str = "logits",
) -> OpenSourceResult:
    """Trace, check, synthesize and simulate ``net``; RTL in ``out/rtl``, logs in ``out/logs``. Without ``yosys``
    the resources are da4ml's own estimate (LUT) and the pipeline's register bits (FF), labelled as such.
    ``output`` (``hls.output``): ``logits`` (the K logits) or ``argmax`` (one output, the class index, first
    highest logit; compared with the argmax of the integer network's logits)."""
    if output not in ("logits", "argmax"):
        raise OpenSourceError(f"hls.output {output}: the open-source route builds the logits or the class index "
                              f"(argmax); a softmax has no exact form here (firmware/outputs.py)")
    check_tools(simulator, yosys)
    out = Path(out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    x_test = _test_inputs(net, x_test)
    stage_cut = stage_cutoff(latency_cutoff, clock_period)
    traced = _trace(net, stage_cut, latency_cutoff, clock_period, output)
    expected, out_frac = _checked_circuit(net, traced, x_test, reference_logits, output)
    rtl_dir = out / "rtl"
    model = da4ml_trace.write_verilog(traced, rtl_dir, part=part, clock_period=clock_period)
    ys = _synthesize(rtl_dir, traced, family, logs, progress) if yosys else None
    if ys is None:
        info(f"  yosys: not run (synth.yosys false): da4ml estimate {traced.cost_lut:.0f} LUT, "
             f"{traced.register_bits} register bits")
    n_sim = len(x_test) if sim_jets <= 0 else min(sim_jets, len(x_test))
    x_grid = da4ml_trace.grid_inputs(net, x_test[:n_sim])
    info(f"  rtl: simulating {n_sim} test jets with {simulator}")
    got, sim_name, measured = _simulate(model, traced, x_grid, simulator, logs, progress, notes)
    parity = rtl_parity(expected[:n_sim], got, out_frac, sim_name)
    parity["output"] = output
    if output == "argmax":
        parity["compared"] = f"class index against the argmax of the integer network's logits ({TIE_RULE})"
    if measured is not None:
        parity["latency_cycles_measured"] = measured
        if measured != traced.stages:
            notes.append(f"simulated latency {measured} cycles differs from da4ml's {traced.stages} stages")
    info(f"  rtl: {parity['bit_exact_fraction']:.4%} bit-exact on {n_sim} jets ({sim_name})")
    rec = _record(traced, ys, part=part, family=family, clock_period=clock_period, latency_cutoff=latency_cutoff,
                  stage_cut=stage_cut, out=out, rtl_dir=rtl_dir)
    notes += _record_notes(rec, ys, traced, clock_period, stage_cut)
    return OpenSourceResult(record=rec, rtl_parity=parity, da4ml_estimate=traced.cost_lut, notes=notes)


def _test_inputs(net: IntNet, x_test: np.ndarray) -> np.ndarray:
    """The test inputs as float64 rows of the integer network's input shape (flattened for a flat network)."""
    x_test = np.asarray(x_test, dtype=np.float64)
    flat_ok = len(net.input_shape) == 1 and x_test.ndim >= 2 and int(np.prod(x_test.shape[1:])) == net.input_shape[0]
    if flat_ok:
        return x_test.reshape(len(x_test), -1)
    if tuple(x_test.shape[1:]) != tuple(net.input_shape):
        raise OpenSourceError(f"test inputs have shape {x_test.shape}, but the integer network expects "
                              f"(N, {', '.join(map(str, net.input_shape))}); rerun the student stage")
    return x_test


def _trace(net: IntNet, stage_cut: float, latency_cutoff: float, clock_period: float, output: str):
    info(f"  da4ml: tracing {net.name} (stage cut {stage_cut:g} da4ml delay units: synth.latency_cutoff "
         f"{latency_cutoff:g} scaled to the {clock_period:g} ns clock)")
    t0 = time.time()
    traced = da4ml_trace.trace(net, stage_cut, output=output)
    info(f"  da4ml: {traced.stages} pipeline stages, estimate {traced.cost_lut:.0f} LUT ({time.time() - t0:.1f} s)")
    return traced


def _checked_circuit(net: IntNet, traced, x_test: np.ndarray, reference_logits: np.ndarray | None,
                     output: str) -> tuple[np.ndarray, int]:
    """(what the circuit must output on every test jet, its fraction bits), after checking that the integer network
    is the student (its saved logits) and that da4ml's traced circuit computes the integer network."""
    expected = net.evaluate(x_test)
    if reference_logits is not None:
        ref = np.asarray(reference_logits, dtype=np.float64).reshape(expected.shape)
        same = np.all(ref == expected, axis=1)
        if not same.all():
            i = int(np.argmin(same))
            raise OpenSourceError(
                f"the integer network (intnet.json) disagrees with the student's saved test logits on "
                f"{int((~same).sum())} of {len(same)} jets (first: jet {i}, {expected[i].tolist()} vs "
                f"{ref[i].tolist()}): RTL parity would be measured against the wrong model. Rerun the student "
                f"stage; if it persists, the integer network does not express this student (use a vendor route)")
    out_frac, what = net.output_frac_bits, ""
    if output == "argmax":  # the circuit's one output: the class index of the integer network's logits
        expected, out_frac, what = class_index(expected)[:, None].astype(np.float64), 0, " (class index)"
    interp = da4ml_trace.interpreter_predict(traced, net, x_test)
    bad = ~np.all(interp == expected, axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise OpenSourceError(
            f"da4ml's traced circuit differs from the integer network{what} on {int(bad.sum())} of {len(bad)} test "
            f"jets (first: jet {i}, {interp[i].tolist()} vs {expected[i].tolist()}); the RTL would not be bit-exact")
    info(f"  da4ml: interpreter equals the integer network{what} on all {len(bad)} test jets")
    return expected, out_frac


def _synthesize(rtl_dir: Path, traced, family: str, logs: Path, progress: bool):
    info(f"  yosys: synth_xilinx -family {family} on {traced.top} (this can take minutes for large designs)")
    ys = run_yosys(rtl_dir, traced.top, family, logs, progress=progress)
    info(f"  yosys: {ys.lut} LUT, {ys.ff} FF, {ys.carry} CARRY, {ys.dsp} DSP (CPU {ys.cpu_s} s)")
    return ys


def _record(traced, ys, *, part: str, family: str, clock_period: float, latency_cutoff: float, stage_cut: float,
            out: Path, rtl_dir: Path) -> ResourceRecord:
    """The resource record: Yosys's counts (``ys``), or without Yosys da4ml's estimate, labelled as such."""
    rec = ResourceRecord(
        part=part,
        tool="Yosys" if ys else "da4ml",
        tool_version=ys.version if ys else _da4ml_version(),
        source=(f"Yosys {ys.version} synth_xilinx -family {family} (open-source, not Vivado); "
                f"latency: {LATENCY_LABEL}" if ys else
                f"da4ml {_da4ml_version()} estimate (LUT: its cost model; FF: the pipeline's register bits; no "
                f"synthesis: synth.yosys false); latency: {LATENCY_LABEL}"),
        kind="open-source-synthesis" if ys else "da4ml-estimate",
        clock_target_ns=float(clock_period),
        latency_min_cycles=traced.stages,
        latency_max_cycles=traced.stages,
        latency_min_ns=round(traced.stages * clock_period, 6),
        latency_max_ns=round(traced.stages * clock_period, 6),
        interval_min=1,
        interval_max=1,
        dsp=ys.dsp if ys else 0,
        lut=ys.lut if ys else int(round(traced.cost_lut)),
        ff=ys.ff if ys else traced.register_bits,
        bram_18k=ys.bram_18k if ys else 0,
        uram=ys.count(r"URAM\w*") if ys else 0,
        available=part_resources(part),
    )
    rec.fill_utilization()
    rec.extra.update({
        "carry": ys.carry if ys else None,
        "cells": ys.cells if ys else None,
        "total_cells": ys.total_cells if ys else None,
        "yosys_cpu_s": ys.cpu_s if ys else None,
        "da4ml_estimate_lut": traced.cost_lut,
        "da4ml_register_bits": traced.register_bits,
        "da4ml_pipeline_stages": traced.stages,
        "da4ml_latency_cutoff": latency_cutoff,
        "da4ml_stage_cut": stage_cut,
        "latency_label": LATENCY_LABEL,
        "da4ml_version": _da4ml_version(),
        # paths relative to the stage directory: `out` is a temporary directory, renamed when the stage completes
        "rtl_dir": str(rtl_dir.relative_to(out)),
        "top": traced.top,
        "yosys_log": str(Path(ys.log).relative_to(out)) if ys else None,
        "latency_convention": "clock edges from the edge that registers the input to the edge that presents the output",
    })
    return rec


def _record_notes(rec: ResourceRecord, ys, traced, clock_period: float, stage_cut: float) -> list[str]:
    notes = []
    if not rec.available:
        notes.append(f"no resource counts known for part {rec.part}: utilization not computed")
    if ys:
        notes.append("LUT/FF counts are Yosys synth_xilinx figures (no place and route); Vivado's usually differ "
                     "(CARRY8 instead of CARRY4, inverters absorbed into LUTs)")
    else:
        notes.append("LUT/FF are da4ml's estimate and register bits, not a synthesis (synth.yosys false); set "
                     "synth.yosys true for Yosys synth_xilinx counts")
    notes.append(f"latency {traced.stages} cycles x {clock_period:g} ns = {traced.stages * clock_period:g} ns is the "
                 f"{LATENCY_LABEL}: da4ml cut the logic into stages of at most {stage_cut:g} delay units "
                 f"(its own delay model), no timing analysis checked that a stage fits the clock")
    return notes


def _da4ml_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("da4ml")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        return None
