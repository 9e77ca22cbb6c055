"""HGQ2 students (student.framework: hgq): config keys, KD training steps, calibration, hls4ml C-simulation and
the da4ml trace bit-exact against the quantised Keras model on every test jet."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from trigger_kd.config import DistillConfig, HLSConfig, StudentConfig


# ----------------------------------------------------------------------------- config (fast)
def test_hgq_framework_and_ebops_beta_are_validated():
    s = StudentConfig(framework="hgq", ebops_beta=2e-5)
    assert s.framework == "hgq" and s.ebops_beta == 2e-5
    assert StudentConfig().ebops_beta == 1e-5
    for bad in (-1e-6, 0.5, "lots"):
        with pytest.raises(ValueError, match="ebops_beta"):
            StudentConfig(framework="hgq", ebops_beta=bad)
    assert StudentConfig(framework="hgq", arch="deepset", n_particles=8).arch == "deepset"
    with pytest.raises(ValueError, match="power of two"):
        StudentConfig(framework="hgq", arch="deepset", n_particles=6)
    with pytest.raises(ValueError, match="framework"):
        StudentConfig(framework="hgq3")
    with pytest.raises(ValueError, match="ebops_beta is the HGQ2"):  # silently ignored otherwise
        StudentConfig(framework="brevitas", ebops_beta=1e-4)
    dumped = StudentConfig(framework="qkeras").model_dump()  # a resolved config reloads: default beta is fine
    assert StudentConfig(**dumped).ebops_beta == 1e-5


def test_shipped_hgq_config_loads():
    from trigger_kd.config import load_config

    cfg = load_config("hls_configs/mlp_kd_hgq.yml")
    assert cfg.student.framework == "hgq" and cfg.student.arch == "mlp" and cfg.distill.alpha > 0


def test_combnet_input_bus_rounds_half_up_and_saturates():
    from trigger_kd.fixedpoint import FixedFormat
    from trigger_kd.synth.da4ml_comb import _quantize

    fmt = FixedFormat(True, 4, 1, rounding="RND")  # values -4 .. 3.5 in steps of 0.5
    got = _quantize(np.array([0.25, -0.25, 0.75, 9.0, -9.0]), fmt)
    assert got.tolist() == [1, 0, 2, 7, -8]


# ----------------------------------------------------------------------------- train, firmware, trace (slow)
needs_hgq = pytest.mark.skipif(importlib.util.find_spec("hgq") is None, reason="hgq2 not installed")


@needs_hgq
@pytest.mark.slow
@pytest.mark.parametrize("arch,learn_input_bits", [
    ("mlp", False), ("deepset", False), ("mlp", True),
    ("mlp", "uniform")])  # one width on every lane: hls4ml would fuse bus and learned quantiser (2026-12-03 front sweep)
def test_hgq_kd_steps_csim_and_da4ml_bit_exact(tmp_path, arch, learn_input_bits):
    from trigger_kd.firmware.from_student import build_firmware
    from trigger_kd.firmware.hls import hls_predict
    from trigger_kd.models.backend import HGQBackend
    from trigger_kd.synth.da4ml_comb import load_integer_network
    from trigger_kd.synth.hgq_trace import student_intnet
    from trigger_kd.train.steps import kd_step

    spec = StudentConfig(framework="hgq", arch=arch, n_particles=4, mlp_hidden=(8,), phi_hidden=(8,), rho_hidden=(8,),
                         ebops_beta=1e-5, seed=3, learn_input_bits=bool(learn_input_bits))
    backend = HGQBackend(spec)
    shape = (16,) if arch == "mlp" else (4, 4)  # the deep set takes (N, P, F)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, *shape)).astype(np.float32)
    flat = x.reshape(len(x), -1)
    y = (flat[:, 0] + flat[:, 5] > 0).astype(np.int64)
    y[::3] = -1  # transfer-style rows: teacher targets only
    t = np.stack([-flat[:, 0] - flat[:, 5], flat[:, 0] + flat[:, 5]], 1).astype(np.float32)
    model, twin = backend.twins()
    step = kd_step(backend, model, DistillConfig(alpha=0.7, temperature=3.0))
    before = backend.predict(model, x[:64])
    losses = [step(x[i:i + 100], y[i:i + 100], t[i:i + 100], 3e-3)[0] for i in range(0, 600, 100)]
    assert all(np.isfinite(losses)) and not np.array_equal(before, backend.predict(model, x[:64]))
    assert backend.ebops(model) > 0 and backend.ebops(twin) is None  # the epoch curve's resource column

    if learn_input_bits:  # learned input widths below the bus: double rounding and saturation, where exactness is at stake
        from trigger_kd.models.students_hgq import layer_bits

        iq = model.get_layer("fc1").iq.quantizer
        f, i = np.asarray(iq._f), np.asarray(iq._i)
        lanes = np.arange(f.size).reshape(f.shape)
        if learn_input_bits == "uniform":  # every lane one fractional and one integer bit below the bus
            iq._f.assign(np.full_like(f, spec.input_bits - 2 - spec.input_int_bits))
            iq._i.assign(np.full_like(i, spec.input_int_bits - 1))
            assert layer_bits(model)[0]["input_bits_mean"] == spec.input_bits - 2  # two bits fewer on every lane
        else:
            iq._f.assign((f - lanes % 5).astype(f.dtype))
            iq._i.assign((i - (lanes % 3 == 2)).astype(i.dtype))
            assert layer_bits(model)[0]["input_bits_mean"] < spec.input_bits - 2  # fewer bits than the bus
    backend.set_calibration(x)  # what train_twins sets: calibration before the model is saved
    backend.save(model, tmp_path / "student.keras")
    backend.save(twin, tmp_path / "student_float.keras")
    model = backend.load(tmp_path)
    x_test = rng.normal(size=(500, *shape)).astype(np.float32) * 1.5  # some beyond the calibration range: WRAP alike
    q = backend.predict(model, x_test)

    fw = build_firmware(backend, model, tmp_path, tmp_path / "prj", HLSConfig(), record_dir=tmp_path)
    csim = hls_predict(fw.hls_model, backend.firmware_inputs(x_test), progress=False)
    assert np.array_equal(csim, q), f"C-simulation differs on {int((~np.all(csim == q, axis=1)).sum())} jets"
    net = student_intnet(backend, model)  # the student stage's da4ml trace
    lsb = 2.0 ** -net.output_frac_bits
    assert np.array_equal(np.rint(q / lsb) * lsb, q)  # the output grid the parity compares on
    net.save(tmp_path / "intnet.json")
    again = load_integer_network(tmp_path / "intnet.json")
    assert np.array_equal(again.evaluate(backend.intnet_inputs(x_test)), q)  # da4ml's interpreter == Keras, every jet
    assert again.comb.cost > 0 and again.trace(5.0).stages >= 1

    # the open-source route on it: the saved logits checked, the RTL simulated bit-exact (Yosys left to make synth)
    from trigger_kd.synth.opensource import run_open_source

    x_rtl = backend.intnet_inputs(x_test[:200])
    res = run_open_source(again, x_rtl, tmp_path / "rtl", part="xcvu13p-flga2577-2-e", clock_period=5.0,
                          simulator="iverilog", sim_jets=40, reference_logits=q[:200], progress=False, yosys=False)
    assert res.rtl_parity["bit_exact_fraction"] == 1.0 and res.da4ml_estimate == again.comb.cost


THREADS_PROBE = """
import json
from trigger_kd.config import StudentConfig
from trigger_kd.models.backend import HGQBackend
first = HGQBackend(StudentConfig(framework="hgq", arch="mlp", n_particles=4, mlp_hidden=(8,), threads=1))
first.build(True)  # starts TensorFlow's runtime: its pools are fixed from here on
second = HGQBackend(StudentConfig(framework="hgq", arch="mlp", n_particles=4, mlp_hidden=(8,), threads=2))
second.build(True)
print(json.dumps(first.runtime()))
"""


@needs_hgq
@pytest.mark.slow
def test_student_threads_reach_tensorflow_or_say_why_not():
    """student.threads sizes TensorFlow's pools before the first model starts its runtime (it was silently ignored:
    the training step set it after); a later request the started runtime cannot honour is a warning, not lost."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", THREADS_PROBE], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"tensorflow_intra_op": 1, "tensorflow_inter_op": 1,
                                                                "tensorflow_arithmetic_optimization": False}
    assert "student.threads=2 not applied" in res.stderr and "pools 1/1" in res.stderr


@needs_hgq
@pytest.mark.slow
def test_hgq_training_with_the_ebops_term_is_reproducible_run_to_run():
    """Two fresh processes, the same seed, the stage's own build and training step with HGQ2's EBOPs penalty on:
    the same weights after 120 steps. With TensorFlow's graph optimizer as shipped they differed in every pair
    tried (grappler's arithmetic optimizer sums the gradient terms in an order that changes from one process to
    the next: benchmarks/hgq_determinism.py), so a rerun of a stage with the same stamp trained another student."""
    from benchmarks.hgq_determinism import probe

    first, second = probe(1e-5, 120), probe(1e-5, 120)
    assert first["after_step_1"] == second["after_step_1"]
    assert first["after_last_step"] == second["after_last_step"]
