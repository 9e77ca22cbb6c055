"""End to end on small generated data: jets -> teacher -> KD student -> QONNX -> hls4ml csim -> synth -> report.

Real Pythia jets, a real (tiny) LorentzNet, real g++ C-simulation and the real open-source
synthesis route (da4ml RTL, Yosys, Verilator), on sizes that finish in minutes on 2 cores.
The data and teacher stages are shared by every run through the content-addressed cache.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trigger_kd.cli import main as cli
from tiny import E2E

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

TINY = E2E  # tests/tiny.py


def _run(config: str, run_dir, to: str, extra=()):
    args = ["run", str(REPO / "hls_configs" / f"{config}.yml"), "--to", to, "--run-dir", str(run_dir), "--no-progress"]
    for s in TINY + list(extra):
        args += ["--set", s]
    return cli(args)


def test_mlp_kd_to_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative run directory, as `make synth` uses
    assert _run("mlp_kd", "mlp_kd", "report") == 0
    run = tmp_path / "mlp_kd"
    metrics = json.loads((run / "student" / "metrics.json").read_text())
    for name in ("teacher", "student", "student_float"):
        assert {"accuracy", "auc", "rej30", "rej50", "n_jets"} <= set(metrics[name])
    assert [b["beta"] for b in metrics["robustness"]["student"]["boost"]] == [0.0, 0.1, 0.2, 0.3, 0.5]
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["bit_exact_fraction"] == 1.0 and parity["n_jets"] == metrics["n_test_jets"] > 100
    assert parity["first_mismatch_layer"] is None
    assert 0.0 <= parity["float_agreement"]["decision_agreement"] <= 1.0
    report = json.loads((run / "report" / "report.json").read_text())
    res = report["resources"]
    assert "Yosys" in res["source"] and res["lut"] > 0 and res["latency_cycles"] >= 1
    assert res["rtl_parity"]["bit_exact_fraction"] == 1.0
    # paths recorded by the synth stage point into its final directory, not the temporary one it was built in
    extra = json.loads((run / "synth" / "resources.json").read_text())["primary"]["extra"]
    assert (run / "synth" / extra["rtl_dir"] / "src").is_dir() and (run / "synth" / extra["yosys_log"]).is_file()
    assert ".tmp-" not in (run / "synth" / "resources.json").read_text()
    prj_cfg = (run / "firmware" / "hls4ml_prj" / "hls4ml_config.yml").read_text()
    assert f"OutputDir: {(run / 'firmware' / 'hls4ml_prj').resolve()}\n" in prj_cfg and ".tmp-" not in prj_cfg
    md = (run / "report" / "report.md").read_text()
    assert "bit-exact" in md and "LUT" in md
    # the arithmetic each model was trained with: the pinned MKL path (Brevitas and LorentzNet both run torch)
    teacher = json.loads((run / "teacher" / "metrics.json").read_text())["numerics"]
    for st in (teacher, metrics["runtime"]["numerics"]):
        assert st["mkl_branch"] == 10 and st["MKL_CBWR"] == "AVX2,STRICT" and st["cpu"]["widest_vectors"]
    assert f"Arithmetic: teacher on {teacher['cpu']['model']}" in md and "MKL AVX2 path (pinned)" in md
    base = metrics["baselines"]  # the jet mass of the student's inputs and of all constituents, same test jets
    assert base["jet_mass_inputs"]["test"]["n_jets"] == metrics["n_test_jets"] and 0.5 < base["jet_mass_all"]["test"]["auc"] < 1
    assert "| baseline: jet mass of the" in md and "What the network adds:" in md
    for png in ("roc.png", "robustness.png", "resources.png"):
        assert (run / "report" / png).stat().st_size > 1000
    assert cli(["check-parity", str(run)]) == 0
    # a rerun skips every stage (all up to date)
    assert _run("mlp_kd", "mlp_kd", "report") == 0
    assert (run / "firmware" / "config.resolved.yml").is_file() and not (run / "config.resolved.yml").exists()
    # a new student whose firmware was not rebuilt: parity.json belongs to the old one (issue 11)
    assert _run("mlp_kd", "mlp_kd", "export", ["student.seed=7"]) == 0
    assert cli(["check-parity", str(run)]) == 1


def test_deepset_kd_and_scratch_to_firmware(tmp_path):
    for name in ("deepset_kd", "deepset_scratch"):
        assert _run(name, tmp_path / name, "firmware") == 0
        parity = json.loads((tmp_path / name / "firmware" / "parity.json").read_text())
        assert parity["bit_exact_fraction"] == 1.0
    assert cli(["check-parity", str(tmp_path / "deepset_kd")]) == 0


@pytest.mark.qkeras
def test_qkeras_mlp_to_firmware(tmp_path):
    run = tmp_path / "mlp_kd_qkeras"
    assert _run("mlp_kd_qkeras", run, "firmware") == 0
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["bit_exact_fraction"] == 1.0 and parity["n_jets"] > 100


def test_five_class_hgq_to_report_then_argmax_firmware(tmp_path):
    """A 5-class tagger (gluon, q, w, z, top) from data to firmware parity: the K-class metrics, both baselines and
    the confusion matrix in the report, logits bit-exact in C-simulation and RTL; then the class index deployed
    (hls.output argmax), judged by check-parity."""
    run = tmp_path / "mlp_kd_hgq_5class"
    assert _run("mlp_kd_hgq_5class", run, "report", ["data.jets_per_class=200", "data.shard_size=200"]) == 0
    metrics = json.loads((run / "student" / "metrics.json").read_text())
    assert metrics["task"]["outputs"] == ["gluon", "q", "w", "z", "top"] and metrics["task"]["monitor"] == "val_accuracy"
    for name in ("teacher", "student", "student_float", "student_scratch"):
        m = metrics[name]
        assert set(m["per_class"]) == {"gluon", "q", "w", "z", "top"} and 0 <= m["accuracy"] <= 1
        assert sum(map(sum, m["confusion"]["counts"])) == metrics["n_test_jets"] == m["n_jets"]
        assert set(m["rejection"]) == {"w", "z", "top"}
    assert set(metrics["baselines"]) == {"jet_mass_inputs", "substructure"}
    assert np.load(run / "student" / "test_logits.npy").shape == (metrics["n_test_jets"], 5)
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["bit_exact_fraction"] == 1.0 and parity["n_jets"] == metrics["n_test_jets"]
    res = json.loads((run / "report" / "report.json").read_text())["resources"]
    assert res["rtl_parity"]["bit_exact_fraction"] == 1.0 and res["lut"] > 0
    md = (run / "report" / "report.md").read_text()
    for words in ("5 classes: gluon, q, w, z, top", "Per class", "Confusion matrix", "substructure",
                  "What distillation bought, per class", "bit-exact"):
        assert words in md, words
    for png in ("roc.png", "confusion.png"):
        assert (run / "report" / png).stat().st_size > 1000
    assert cli(["check-parity", str(run)]) == 0
    # the generalisation tools measure binary taggers: refused for this one, not answered wrong
    assert cli(["evaluate", str(run), "--on", str(run / "data"), "--no-progress"]) == 2
    assert cli(["diagnose", str(run), "--no-progress"]) == 2
    # the class index deployed: same student, firmware and RTL rebuilt, judged on the index
    assert _run("mlp_kd_hgq_5class", run, "synth", ["data.jets_per_class=200", "data.shard_size=200",
                                                     "hls.output=argmax"]) == 0
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["bit_exact_fraction"] == 1.0 and parity.get("output") == "argmax"
    rtl = json.loads((run / "synth" / "resources.json").read_text())["rtl_parity"]
    assert rtl["bit_exact_fraction"] == 1.0
    assert cli(["check-parity", str(run)]) == 0
