"""hls.output: what the firmware outputs and how it is proven.

- logits: the K logits, bit-exact (K = 5 and K = 2);
- argmax: the class index, equal to the argmax of the student's integer logits on every jet, with ties going to the
  lowest class index (numpy's rule, and hls4ml's softmax_argmax's), in C-simulation and in the RTL (Verilator);
- softmax: built, measured against the exact softmax, refused with the numbers.

The hard cases are made by hand (tests/output_students.py): logits that tie exactly, that differ by one LSB, and that
reach the largest and smallest values their inputs allow; each test checks that the cases occur before it trusts
an equality.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import output_students as hard
from trigger_kd.errors import TriggerKDError
from trigger_kd.firmware.outputs import (TIE_RULE, argmax_parity, class_index, index_evidence, one_hot, one_hot_index,
                                         softmax_agreement, softmax_reference, top_margins)
from trigger_kd.firmware.parity import float_agreement
from trigger_kd.fixedpoint import FixedFormat
from trigger_kd.models.intnet import Dense, IntNet, Quant

TESTS = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- the rules, on arrays (fast)
def test_tie_rule_is_the_first_highest_and_words_must_be_one_hot():
    z = np.array([[1, 3, 3, 0], [5, 5, 5, 5], [-7, -7, -8, -9], [0, 1, 2, 2], [2, 1, 0, -1]], dtype=float)
    assert class_index(z).tolist() == [1, 0, 0, 2, 0] and "lowest class index" in TIE_RULE
    words = one_hot(class_index(z), 4)
    assert one_hot_index(words).tolist() == [1, 0, 0, 2, 0]
    words[1, 3] = 1  # two bits set
    words[2] = 0  # none set
    words[3, 2] = 0.5  # not a bit
    assert one_hot_index(words).tolist() == [1, -1, -1, -1, 0]
    report = argmax_parity(words, z, lsb=1.0)
    assert report["n_mismatched"] == 3 and report["not_one_hot"] == 3 and report["first_mismatched_jets"] == [1, 2, 3]
    assert report["tied_at_top"] == 4 and report["won_by_one_lsb"] == 1  # rows 0-3 tie; row 4 wins by one
    assert index_evidence(words, z) == (0.4, 5)
    assert top_margins(z * 0.25, 0.25) == top_margins(z, 1.0)


def test_float_agreement_binary_unchanged_multiclass_by_class_index():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(400, 2))
    f = q + rng.normal(scale=0.2, size=q.shape)
    y = rng.integers(0, 2, 400)
    fa = float_agreement(q, f, y, working_point=0.3)
    ps = lambda z: np.exp(z[:, 1]) / np.exp(z).sum(1)  # noqa: E731  (the binary signal score)
    assert set(fa) == {"n_jets", "working_point", "decision_agreement", "max_score_diff", "mean_score_diff",
                       "auc_quantized", "auc_float"}  # the binary record as before
    assert fa["decision_agreement"] == pytest.approx(np.mean((ps(q) > 0.3) == (ps(f) > 0.3)))
    assert fa["max_score_diff"] == pytest.approx(np.max(np.abs(ps(q) - ps(f))))
    q5 = rng.normal(size=(500, 5))
    f5 = q5.copy()
    f5[:50] = f5[:50, ::-1]  # 50 jets change their class index (or not, where the reversal keeps it)
    y5 = rng.integers(0, 5, 500)
    fa5 = float_agreement(q5, f5, y5)
    assert fa5["n_classes"] == 5 and "class index" in fa5["decision"]
    assert fa5["decision_agreement"] == pytest.approx(np.mean(class_index(q5) == class_index(f5)))
    assert fa5["accuracy_quantized"] == pytest.approx(np.mean(class_index(q5) == y5))
    assert 0 < fa5["auc_quantized"] < 1 and fa5["auc_float"] is not None
    assert float_agreement(q5, f5, np.zeros(500))["auc_quantized"] is None  # one class present: no AUC


def test_softmax_reference_is_the_exact_softmax_rounded_like_ap_fixed():
    fmt = FixedFormat.from_hls("ufixed<8,1,RND,SAT>")  # 7 fractional bits
    z = np.array([[0.0, 0.0], [0.0, np.log(3.0)], [0.0, 0.0 + 1e-9]])
    ref = softmax_reference(z, fmt)
    assert ref[0].tolist() == [64, 64] and ref[1].tolist() == [32, 96]
    m = softmax_agreement(ref * 2.0**-7, z, fmt)
    assert m["bit_identical_fraction"] == 1.0 and m["max_abs_diff_lsb"] == 0
    assert m["argmax_agreement"] == pytest.approx(2 / 3)  # even the exact softmax, rounded, loses a tiny lead
    off = ref * 2.0**-7
    off[1, 0] += 2.0**-7
    m = softmax_agreement(off, z, fmt)
    assert m["bit_identical_fraction"] == pytest.approx(2 / 3) and m["max_abs_diff_lsb"] == 1
    assert softmax_reference(np.array([[0.0, 100.0]]), fmt).tolist() == [[0, 128]]  # 1.0 fits ufixed<8,1>


# ----------------------------------------------------------------------------- the comparator tree in da4ml (fast)
def _net(k: int, seed: int) -> IntNet:
    """8 inputs -> k logits: random rows, then row 1 = row 0 (a tie on every jet), row 2 = row 0 plus one weight
    LSB on input 3 (one LSB apart when that input is one LSB; k = 2: row 1 is that row); the last class a constant
    that always loses (k odd >= 5) or, for k = 4, always wins: comparisons da4ml's ranges decide without a
    comparator."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 8, (k, 8))
    b = rng.integers(-40, 40, k)
    w[1:3], b[1:3] = w[0], b[0]
    w[k - 1 if k == 2 else 2, 3] += 1
    if k == 4 or k >= 5 and k % 2:
        w[k - 1], b[k - 1] = 0, 10**6 if k == 4 else -(10**6)
    return IntNet(FixedFormat(True, 6, 3), (8,), [Dense(w, 3, b, 6), Quant(FixedFormat(True, 24, 6))], name=f"k{k}")


@pytest.mark.parametrize("k", [2, 3, 4, 5, 8, 9])
def test_da4ml_class_index_is_the_first_highest_logit(k):
    from trigger_kd.synth import da4ml_trace

    net = _net(k, seed=k)
    rng = np.random.default_rng(k)
    x = rng.integers(-34, 34, (3000, 8)) * 2.0**-3  # beyond the input range too: saturation
    x[:1000, :] = rng.integers(-1, 2, (1000, 8)) * 2.0**-3  # small inputs: ties and one-LSB margins
    z = net.evaluate(x)
    got = da4ml_trace.interpreter_predict(da4ml_trace.trace(net, 5.0, output="argmax"), net, x)
    assert got.shape == (len(x), 1)
    assert np.array_equal(got[:, 0], class_index(z))
    margins = top_margins(z, 2.0**-net.output_frac_bits)
    if k == 4:
        assert np.all(got == 3)  # the constant winner
    else:
        assert margins["tied_at_top"] > 0 and margins["won_by_one_lsb"] > 0  # the cases occurred


def test_open_source_route_refuses_softmax(tmp_path):
    from trigger_kd.synth.opensource import OpenSourceError, run_open_source

    with pytest.raises(OpenSourceError, match="softmax has no exact form"):
        run_open_source(_net(3, 0), np.zeros((2, 8)), tmp_path, part="xcvu13p", clock_period=5.0, output="softmax")


def test_import_qonnx_refuses_other_outputs(tmp_path):
    from trigger_kd.config import HLSConfig
    from trigger_kd.firmware.import_qonnx import import_qonnx

    with pytest.raises(TriggerKDError, match="hls.output argmax applies to pipeline runs"):
        import_qonnx(tmp_path / "m.onnx", tmp_path / "run", HLSConfig(output="argmax"), n=4)


# ----------------------------------------------------------------------------- firmware per front end (slow)
def _summary(framework: str, k: int, out: Path) -> dict:
    outputs = ("logits", "argmax", "softmax") if k > 2 else ("argmax",)  # K = 2 logits: tests/test_firmware.py
    if framework != "qkeras":
        return hard.build_and_compare(framework, k, out, outputs)
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import output_students as h; "
            "print('SUMMARY' + json.dumps(h.build_and_compare(sys.argv[2], int(sys.argv[3]), sys.argv[4], "
            "tuple(sys.argv[5:]))))")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")  # QKeras (tf_keras) in a process of its own, away from HGQ2
    done = subprocess.run([sys.executable, "-c", code, str(TESTS), framework, str(k), str(out), *outputs],
                          capture_output=True, text=True, env=env, timeout=600)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("SUMMARY")), None)
    assert line is not None, done.stderr[-3000:]
    return json.loads(line[len("SUMMARY"):])


@pytest.mark.slow
@pytest.mark.parametrize("framework,k", [("brevitas", 5), ("hgq", 5), ("qkeras", 5),
                                         ("brevitas", 2), ("hgq", 2), ("qkeras", 2)])
def test_firmware_outputs_on_hand_set_logits(framework, k, tmp_path):
    s = _summary(framework, k, tmp_path)
    n = s["n_jets"]
    assert s["intnet_equals_model"]  # the integer reference is the model
    cases = s["cases"]
    assert cases["tied_at_top"] > 0 and cases["won_by_one_lsb"] > 0, cases
    assert cases["classes_at_their_max"] == k and cases["classes_at_their_min"] == k, cases  # range extremes
    a = s["argmax"]
    assert a["shape"] == [n, k] and a["not_one_hot"] == 0  # one bit per class, exactly one set
    assert a["fraction"] == 1.0 and a["n_mismatched"] == 0 and a["index_equal"], a  # every jet, the ties included
    assert a["first_mismatch"] is None
    if k == 2:
        return
    assert s["logits"] == {"fraction": 1.0, "n_mismatched": 0, "shape": [n, k]}
    sm = s["softmax"]
    m = sm["measured"]
    assert sm["refused"] and m["n_jets"] == n and m["bit_identical_fraction"] < 1.0  # why it is refused, measured
    for number in (f"{m['bit_identical_fraction'] * 100:.2f} %", f"{m['argmax_agreement'] * 100:.2f} %"):
        assert number in sm["refused"]
    assert "hls.output: logits" in sm["refused"] and "hls.output: argmax" in sm["refused"]
    assert m["tables"]["implementation"] == "stable" and m["tables"]["table_size"] > 0


# ----------------------------------------------------------------------------- the class index in the RTL (slow)
@pytest.mark.slow
@pytest.mark.parametrize("framework,k,simulator", [("brevitas", 5, "verilator"), ("hgq", 5, "verilator"),
                                                   ("hgq", 2, "iverilog")])
def test_rtl_class_index_equals_the_student_argmax(framework, k, simulator, tmp_path):
    """Brevitas: IntNet traced by trigger_kd; HGQ2: the da4ml trace of the model (CombNet); both + comparator tree."""
    from trigger_kd.synth.hgq_trace import student_intnet
    from trigger_kd.synth.opensource import run_open_source

    backend, model = hard.hard_student(framework, k)
    x = hard.hard_inputs(backend.s, k, n=1200)
    if framework == "hgq":
        backend.set_calibration(x)
        backend.save(model, tmp_path / "student.keras")
        model = backend.load(tmp_path)
    q = backend.predict(model, x)
    intnet = student_intnet(backend, model)
    cases = hard.hard_cases(q, 2.0 ** -intnet.output_frac_bits, backend.s)
    assert cases["tied_at_top"] > 0 and cases["won_by_one_lsb"] > 0 and cases["classes_at_their_max"] == k
    res = run_open_source(intnet, backend.intnet_inputs(x), tmp_path / "rtl",
                          part="xcvu13p-flga2577-2-e", clock_period=5.0, simulator=simulator, sim_jets=0,
                          reference_logits=q, progress=False, yosys=False, output="argmax")
    p = res.rtl_parity
    assert p["output"] == "argmax" and p["n_jets"] == len(x) and p["bit_exact_fraction"] == 1.0, p
    assert p["undefined_outputs"] == 0 and p["simulator"].startswith(simulator.replace("iverilog", "icarus"))
    assert res.record.latency_max_cycles >= 1


# ----------------------------------------------------------------------------- the stages and check-parity (slow)
def _stages(k: int):
    """A student stage that writes the hand-set K-class student's files, the export stage's Brevitas export, and the
    real firmware and synth stages."""
    from trigger_kd.firmware.student_export import export_for_firmware
    from trigger_kd.pipeline import Stage
    from trigger_kd.rundir import INTNET, TEST_INPUTS, TEST_LABELS, TEST_LOGITS, TEST_LOGITS_FLOAT
    from trigger_kd.stages.firmware import run_firmware
    from trigger_kd.stages.synth import run_synth

    def student(cfg, ctx, out):
        backend, model = hard.hard_student(cfg.student, k)
        _, twin = hard.hard_student(cfg.student, k, quantized=False)
        x = hard.hard_inputs(backend.s, k, n=600)
        backend.save(model, out / "student.pt")
        np.save(out / TEST_INPUTS, x)
        np.save(out / TEST_LOGITS, backend.predict(model, x))
        np.save(out / TEST_LOGITS_FLOAT, backend.predict(twin, x))
        np.save(out / TEST_LABELS, np.arange(len(x)) % k)  # the class index (a K-class run)
        backend.intnet(model).save(out / INTNET)
        return {}

    def export(cfg, ctx, out):
        backend, model = hard.hard_student(cfg.student, k)
        export_for_firmware(backend, model, np.load(ctx.dir("student") / TEST_INPUTS)[:16], out)
        return {}

    return [Stage("student", ("student",), (), student), Stage("export", ("export",), ("student",), export),
            Stage("firmware", ("hls", "checks"), ("student", "export"), run_firmware),
            Stage("synth", ("synth", "hls"), ("student", "firmware"), run_synth)]


@pytest.mark.slow
def test_argmax_run_is_judged_on_the_class_index_and_softmax_is_refused(tmp_path, repo, monkeypatch, capsys):
    from trigger_kd.cli import main as cli
    from trigger_kd.config import load_config
    from trigger_kd.pipeline import run_pipeline

    monkeypatch.setenv("TRIGGER_KD_CACHE", str(tmp_path / "cache"))
    k = 5

    def cfg(*sets):
        return load_config(repo / "hls_configs/mlp_kd.yml", [
            "student.mlp_hidden=[]", f"student.n_particles={hard.N_PARTICLES}", "student.weight_bits=6",
            "synth.tool=open-source", "synth.yosys=false", "synth.sim_jets=0", *sets])

    run = tmp_path / "run"
    run_pipeline(cfg("hls.output=argmax"), _stages(k), run)
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["output"] == "argmax" and parity["bit_exact_fraction"] == 1.0 and parity["n_jets"] == 600 + 2 * k + 2
    assert parity["tied_at_top"] > 0 and parity["won_by_one_lsb"] > 0 and parity["max_abs_diff"] is None
    fa = parity["float_agreement"]  # the float twin does not saturate its inputs: it differs on some jets
    assert fa["n_classes"] == k and 0.5 < fa["decision_agreement"] <= 1.0 and "class index" in fa["decision"]
    assert np.load(run / "firmware" / "csim_outputs.npy").shape == (parity["n_jets"], k)  # the one-hot words
    rules = json.loads((run / "firmware" / "hls_rules.json").read_text())["rules"]
    assert any(r.startswith("output class_output: Softmax implementation argmax") for r in rules)
    res = json.loads((run / "synth" / "resources.json").read_text())
    assert res["rtl_parity"]["output"] == "argmax" and res["rtl_parity"]["bit_exact_fraction"] == 1.0
    assert res["rtl_parity"]["n_jets"] == parity["n_jets"]
    capsys.readouterr()
    assert cli(["check-parity", str(run)]) == 0
    assert "class index (argmax) equal on all" in capsys.readouterr().err

    # logits one LSB coarser in the firmware: one-LSB wins become ties, the index moves on some jets, and both the
    # stage and check-parity say so (no checks.parity_min_fraction lets a class index differ)
    coarse = "hls.layer_precision.Dense_MatMul_0.result=fixed<17,5,TRN,SAT>"  # the logits' type: 18 bits, 13 fractional
    with pytest.raises(TriggerKDError, match=r"class index equal on only .*argmax: every jet.*Dense_MatMul_0"):
        run_pipeline(cfg("hls.output=argmax", "checks.parity_min_fraction=0.5", coarse), _stages(k), run)
    failed = json.loads((run / "firmware.failed" / "parity.json").read_text())
    assert 0.5 < failed["bit_exact_fraction"] < 1.0 and failed["required_fraction"] == 1.0
    capsys.readouterr()
    assert cli(["check-parity", str(run)]) == 1

    # softmax: built, C-simulated on the run's test jets, measured, refused with the numbers
    with pytest.raises(TriggerKDError, match=r"softmax refused.*Measured on the \d+ test jets.*hls.output: argmax"):
        run_pipeline(cfg("hls.output=softmax"), _stages(k), tmp_path / "run_softmax")
    m = json.loads((tmp_path / "run_softmax" / "firmware.failed" / "softmax_check.json").read_text())
    assert m["n_jets"] == parity["n_jets"] and m["bit_identical_fraction"] < 1.0 and m["argmax_agreement"] < 1.0


@pytest.mark.slow
def test_argmax_after_a_deep_set_in_io_stream(tmp_path):
    """hls4ml's streaming argmax after pooling (Brevitas deep set, K = 5, io_stream): the index on every jet, with
    classes 0 and 1 tied on every jet (equal last-layer rows) and leading on some."""
    import torch

    from trigger_kd.config import HLSConfig, StudentConfig
    from trigger_kd.firmware.hls import build_hls_from_qonnx, hls_predict
    from trigger_kd.models.backend import BrevitasBackend
    from trigger_kd.firmware.student_export import export_for_firmware

    s = StudentConfig(arch="deepset", n_particles=4, phi_hidden=(8,), rho_hidden=(8,))
    backend = BrevitasBackend(s, n_classes=5)
    model = backend.build(quantized=True)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        last = model.rho[-1]
        last.weight[1], last.bias[1] = last.weight[0].clone(), last.bias[0].clone()
        last.bias[2] -= 0.5  # class 2 (which led on every jet) no longer always ahead of the tied pair
    model.eval()
    x = np.random.default_rng(2).normal(size=(800, 4, 4)).astype(np.float32)
    export_for_firmware(backend, model, x[:16], tmp_path)
    hls_model = build_hls_from_qonnx(tmp_path / "model_clean.onnx", tmp_path / "prj",
                                     HLSConfig(io_type="io_stream", output="argmax"), n_particles=4)
    q = backend.predict(model, x)
    report = argmax_parity(hls_predict(hls_model, backend.firmware_inputs(x), progress=False), q,
                           backend.output_lsb(model))
    assert report["bit_exact_fraction"] == 1.0 and report["not_one_hot"] == 0, report
    z = np.rint(q / backend.output_lsb(model))
    assert np.array_equal(z[:, 0], z[:, 1]) and report["tied_at_top"] > 0  # the tie rule decided some jets
    assert len(set(class_index(q))) > 1


# ----------------------------------------------------------------------------- canaries: what this relies on (fast)
def test_canaries_hls4ml_argmax_layer_and_da4ml_comparators():
    """The private parts of hls4ml 1.3 and da4ml 0.6 the argmax output relies on (as tests/test_private_apis.py)."""
    import inspect
    import re

    import hls4ml
    from da4ml.trace import FixedVariable, FixedVariableArray
    from da4ml.types import CombLogic
    from hls4ml.model.graph import ModelGraph

    headers = Path(hls4ml.__file__).parent / "templates" / "vivado" / "nnet_utils"
    for name, var in (("nnet_activation.h", "data"), ("nnet_activation_stream.h", "in_data")):
        body = (headers / name).read_text().split("void softmax_argmax(", 1)[1].split("\n}\n", 1)[0]
        assert "int idx = 0;" in body and re.search(rf"if \({var}\[i\] > maximum\)", body), (
            f"hls4ml {hls4ml.__version__} {name}: softmax_argmax no longer keeps the first highest (strict > from "
            f"index 0); firmware/outputs.py TIE_RULE and the tests of tests/test_firmware_outputs.py rely on it")
    assert {"kind", "name", "attributes", "inputs"} <= set(inspect.signature(ModelGraph.make_node).parameters)
    assert {"node", "before"} <= set(inspect.signature(ModelGraph.insert_node).parameters)  # hls_config.py
    x = FixedVariableArray.from_kif(np.ones(2), np.full(2, 3), np.full(2, 2))
    d = x._vars[0] - x._vars[1]
    assert hasattr(d, "msb_mux") and d.low < 0 <= d.high  # synth/da4ml_argmax.py
    assert "inp_kifs" in dir(CombLogic) and callable(CombLogic.__call__)
    assert "hwconf" in inspect.signature(FixedVariable.from_const).parameters
