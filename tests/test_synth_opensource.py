"""Open-source synthesis route: da4ml trace bit-exact with IntNet, Yosys counts, RTL simulation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trigger_kd.config import Config, HLSConfig, StudentConfig, SynthConfig
from trigger_kd.errors import TriggerKDError
from trigger_kd.models.intnet import Dense, FixedFormat, IntNet, MeanPool, Quant
from trigger_kd.rundir import STAMP_FILE
from trigger_kd.stage import RunContext
from trigger_kd.synth import da4ml_trace
from trigger_kd.synth.opensource import LATENCY_LABEL, run_open_source, stage_cutoff

PART = "xcvu13p-flga2577-2-e"


def tiny_mlp(seed: int = 0, w_bits: int = 4) -> IntNet:
    """8 inputs -> 4 (ReLU, ufixed<6,3>) -> 2 logits, 4-bit weights."""
    rng = np.random.default_rng(seed)
    lim = 2 ** (w_bits - 1)
    w1, w2 = rng.integers(-lim, lim, (4, 8)), rng.integers(-lim, lim, (2, 4))
    return IntNet(FixedFormat(True, 8, 5), (8,), [
        Dense(w1, 3, rng.integers(-300, 300, 4), 8),
        Quant(FixedFormat(False, 6, 3), relu=True),
        Dense(w2, 3, rng.integers(-60, 60, 2), 6),
    ], name="mlp_student")


def tiny_deepset(seed: int = 1) -> IntNet:
    """2 features x 4 particles -> per-particle 4 (ReLU) -> mean -> quant -> 2 -> signed quant."""
    rng = np.random.default_rng(seed)
    return IntNet(FixedFormat(True, 8, 5), (2, 4), [
        Dense(rng.integers(-8, 8, (4, 2)), 3, rng.integers(-200, 200, 4), 8, per_particle=True),
        Quant(FixedFormat(False, 6, 3), relu=True),
        MeanPool(4),
        Quant(FixedFormat(False, 6, 4)),
        Dense(rng.integers(-8, 8, (2, 4)), 3, rng.integers(-100, 100, 2), 7),
        Quant(FixedFormat(True, 6, 3)),  # signed: ties on negative values and saturation both ways
    ], name="deepset_student")


def grid_inputs(net: IntNet, n: int, seed: int = 0) -> np.ndarray:
    """Random inputs on the input grid, covering the full signed range (and a little beyond)."""
    rng = np.random.default_rng(seed)
    f = net.input_format
    q = rng.integers(f.int_min - 4, f.int_max + 5, (n, *net.input_shape))
    return q * 2.0**-f.frac_bits


def ties_before(net: IntNet, layer_index: int, x: np.ndarray) -> int:
    """How many values land exactly half-way between two grid points before Quant ``layer_index``."""
    head = IntNet(net.input_format, net.input_shape, net.layers[:layer_index])
    q, f = head.evaluate_int(x)
    shift = f - net.layers[layer_index].fmt.frac_bits
    return int(np.sum((q & ((1 << shift) - 1)) == (1 << (shift - 1)))) if shift > 0 else 0


@pytest.mark.parametrize("make", [tiny_mlp, tiny_deepset])
def test_trace_is_bit_exact_with_intnet(make):
    net = make()
    x = grid_inputs(net, 4000)
    traced = da4ml_trace.trace(net, latency_cutoff=5.0)
    assert traced.stages >= 1 and traced.cost_lut > 0
    quants = [i for i, layer in enumerate(net.layers) if isinstance(layer, Quant)]
    assert all(ties_before(net, i, x) > 0 for i in quants)  # round-half-to-even is exercised
    got = da4ml_trace.interpreter_predict(traced, net, x)
    np.testing.assert_array_equal(got, net.evaluate(x))


@pytest.mark.parametrize("fmt", [FixedFormat(True, 4, 1), FixedFormat(False, 3, 0), FixedFormat(True, 12, 9),
                                 FixedFormat(True, 8, 8), FixedFormat(False, 10, 2)])
def test_quant_formats_round_and_saturate_like_intnet(fmt):
    """Narrow formats saturate often; frac_bits 9 > the accumulator's 8 needs no rounding at all."""
    rng = np.random.default_rng(3)
    net = IntNet(FixedFormat(True, 8, 5), (6,), [Dense(rng.integers(-8, 8, (3, 6)), 3, rng.integers(-99, 99, 3), 8),
                                                 Quant(fmt, relu=not fmt.signed)], name="q")
    x = grid_inputs(net, 3000, seed=4)
    traced = da4ml_trace.trace(net, 5.0)
    np.testing.assert_array_equal(da4ml_trace.interpreter_predict(traced, net, x), net.evaluate(x))


def test_dead_inputs_and_constant_outputs():
    """A zero weight column leaves an input unused (it keeps its port); a zero row gives a constant output."""
    w = np.array([[1, 0, -2, 3], [0, 0, 0, 0], [2, 0, 1, -1]])
    net = IntNet(FixedFormat(True, 6, 3), (4,), [Dense(w, 2, np.array([5, -13, 7]), 5),
                                                 Quant(FixedFormat(True, 5, 1))], name="dead")
    traced = da4ml_trace.trace(net, 5.0)
    assert traced.comb.shape == (4, 3)
    x = grid_inputs(net, 500)
    out = da4ml_trace.interpreter_predict(traced, net, x)
    np.testing.assert_array_equal(out, net.evaluate(x))
    assert np.all(out[:, 1] == out[0, 1])


def test_missing_yosys_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    net = tiny_mlp()
    with pytest.raises(TriggerKDError) as exc:
        run_open_source(net, grid_inputs(net, 10), tmp_path / "out", part=PART, clock_period=5.0)
    msg = str(exc.value)
    assert "'yosys' not found" in msg and "apt-get install yosys" in msg and "make tools" in msg


@pytest.mark.slow
def test_open_source_mlp_verilator(tmp_path):
    net = tiny_mlp()
    x = grid_inputs(net, 300, seed=5)
    res = run_open_source(net, x, tmp_path, part=PART, clock_period=5.0, simulator="verilator", sim_jets=0,
                          reference_logits=net.evaluate(x))
    r = res.record
    assert r.kind == "open-source-synthesis" and r.source.startswith("Yosys 0.") and "not Vivado" in r.source
    assert r.lut > 0 and r.ff > 0 and r.dsp == 0 and r.interval_max == 1
    stages = r.extra["da4ml_pipeline_stages"]
    assert r.latency_max_cycles == stages and r.latency_max_ns == stages * 5.0
    assert r.extra["latency_label"] == LATENCY_LABEL and LATENCY_LABEL in r.source
    assert any("timing not closed" in n for n in res.notes)
    assert r.available["lut"] == 1728000 and 0 < r.utilization_pct["lut"] < 1
    assert res.da4ml_estimate > 0 and r.extra["carry"] > 0
    assert res.rtl_parity["n_jets"] == 300 and res.rtl_parity["bit_exact_fraction"] == 1.0
    assert res.rtl_parity["simulator"].startswith("verilator")
    assert (tmp_path / "logs" / "yosys.log").is_file() and (tmp_path / "logs" / "verilator_build.log").is_file()
    assert (tmp_path / "rtl" / "src" / "mlp_student.v").is_file()
    assert (tmp_path / "rtl" / "build_vivado_prj.tcl").is_file()


@pytest.mark.slow
def test_open_source_deepset_iverilog_measures_latency(tmp_path):
    net = tiny_deepset()
    x = grid_inputs(net, 120, seed=6)
    res = run_open_source(net, x, tmp_path, part=PART, clock_period=4.0, simulator="iverilog", sim_jets=100)
    assert res.record.lut > 0
    assert res.rtl_parity["n_jets"] == 100 and res.rtl_parity["bit_exact_fraction"] == 1.0
    assert res.rtl_parity["latency_cycles_measured"] == res.record.latency_max_cycles
    assert res.rtl_parity["simulator"] == "icarus verilog"


def _run_dir(tmp_path: Path, net: IntNet | None, n: int = 60) -> RunContext:
    sdir = tmp_path / "run" / "student"
    sdir.mkdir(parents=True)
    (sdir / STAMP_FILE).write_text("{}")
    ref = net or tiny_mlp()
    x = grid_inputs(ref, n, seed=7)
    np.save(sdir / "test_inputs.npy", x.astype(np.float32))
    np.save(sdir / "test_logits.npy", ref.evaluate(x))
    if net is not None:
        net.save(sdir / "intnet.json")
    return RunContext(run_dir=tmp_path / "run", cache=tmp_path / "cache", progress=False)


def test_stage_open_source_needs_intnet(tmp_path):
    from trigger_kd.stages.synth import run_synth

    ctx = _run_dir(tmp_path, None)
    cfg = Config(name="t", student=StudentConfig(framework="qkeras"), synth=SynthConfig(tool="open-source"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TriggerKDError, match=r"intnet\.json does not exist \(student\.framework: qkeras"):
        run_synth(cfg, ctx, out)


@pytest.mark.slow
def test_stage_auto_falls_back_to_open_source(tmp_path):
    from trigger_kd.stages.synth import run_synth

    ctx = _run_dir(tmp_path, tiny_deepset())
    cfg = Config(name="t", hls=HLSConfig(backend="Vitis", part=PART),
                 synth=SynthConfig(tool="auto", simulator="iverilog", sim_jets=0))
    out = tmp_path / "out"
    out.mkdir()
    summary = run_synth(cfg, ctx, out)
    res = json.loads((out / "resources.json").read_text())
    assert summary["route"] == res["route"] == "open-source"
    assert any("vitis-run" in n and "docker" in n for n in res["notes"])
    assert res["primary"]["kind"] == "open-source-synthesis" and res["primary"]["lut"] > 0
    assert res["records"] == [res["primary"]]
    assert res["rtl_parity"]["bit_exact_fraction"] == 1.0 and res["rtl_parity"]["n_jets"] == 60
    assert res["da4ml_estimate"] > 0
    assert (out / "logs" / "yosys.log").is_file()


@pytest.mark.slow
def test_wide_outputs_fall_back_to_iverilog(tmp_path):
    """Outputs wider than da4ml's 32-bit binder: the route says so and simulates with Icarus instead."""
    rng = np.random.default_rng(8)
    net = IntNet(FixedFormat(True, 12, 2), (6,), [Dense(rng.integers(-127, 128, (2, 6)), 0,
                                                        np.array([2**33 + 5, -(2**34) + 3]), 2)], name="wide")
    x = grid_inputs(net, 50, seed=9)
    res = run_open_source(net, x, tmp_path, part="xcvu9p-flga2104-2L-e", clock_period=5.0, simulator="verilator")
    assert res.rtl_parity["simulator"] == "icarus verilog" and res.rtl_parity["bit_exact_fraction"] == 1.0
    assert any("32-bit" in n for n in res.notes)
    assert res.record.available["lut"] == 1182240


def test_integer_network_disagreeing_with_saved_logits_is_an_error(tmp_path):
    """RTL parity against an integer network that is not the student would prove nothing (issue 11)."""
    net = tiny_mlp()
    x = grid_inputs(net, 40, seed=3)
    saved = net.evaluate(x)
    saved[7, 1] += 2.0 ** -net.output_frac_bits  # one LSB on one jet
    with pytest.raises(TriggerKDError, match=r"disagrees with the student's saved test logits on 1 of 40 jets \(first: jet 7"):
        run_open_source(net, x, tmp_path, part=PART, clock_period=5.0, reference_logits=saved)


def test_stage_cut_follows_the_clock():
    """Latency in ns = stages x clock: a slower clock takes more logic per stage, so fewer stages."""
    assert stage_cutoff(5.0, 5.0) == 5.0 and stage_cutoff(5.0, 10.0) == 10.0 and stage_cutoff(4.0, 2.5) == 2.0
    net = tiny_mlp(w_bits=6)
    fast = da4ml_trace.trace(net, stage_cutoff(5.0, 1.25)).stages
    slow = da4ml_trace.trace(net, stage_cutoff(5.0, 20.0)).stages
    assert fast > slow >= 1
    with pytest.raises(TriggerKDError, match="must be positive"):
        stage_cutoff(5.0, -5.0)
