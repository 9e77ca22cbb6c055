"""benchmarks/teachers.py: teacher overrides, per-run figures, the ranking and verdicts; a tiny end-to-end run."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("teachers", REPO / "benchmarks" / "teachers.py")
teachers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(teachers)


def _rows(aucs):
    return [{"accuracy": 0.9, "auc": a, "rej30": 10.0, "val_auc": a, "ood_auc_w_vs_qcd": a - 0.1, "teacher_auc": 0.98}
            for a in aucs]


def test_each_teacher_is_one_loadable_config_on_every_profile():
    from trigger_kd.config import load_config

    for profile in ("quick", "study"):
        for t in teachers.TEACHERS:
            for tiny in (False, True):
                sets = [*(teachers.TINY if tiny else []), *teachers.teacher_sets(t, 0.2, tiny)]
                cfg = load_config(REPO / "hls_configs" / "deepset_kd.yml", sets, profile=profile).teacher
                assert cfg.arch == ("lorentznet" if t == "lorentznet" else "transformer")
                assert cfg.seal_lambda == (0.2 if t == "transformer_seal" else 0.0)
                assert not tiny or cfg.epochs == 1


def test_student_row_reads_the_quantised_student_its_ood_auc_and_the_teacher():
    metrics = {"student": {"accuracy": 0.9, "auc": 0.95, "rej30": 20.0, "rej50": 10.0},
               "teacher": {"accuracy": 0.93, "auc": 0.97},
               "robustness": {"student": {"boost": [{"beta": 0.3, "accuracy": 0.85}, {"beta": 0.5, "accuracy": 0.7}]}}}
    row = teachers.student_row(metrics, {"w_vs_qcd": {"student": {"auc": 0.6}, "teacher": {"auc": 0.1}}})
    assert row["auc"] == 0.95 and row["accuracy_beta0.5"] == 0.7 and row["val_auc"] is None
    assert row["ood_auc_w_vs_qcd"] == 0.6 and row["teacher_auc"] == 0.97
    assert row["jet_mass_inputs_auc"] is None and "lut_da4ml" not in row  # figures not measured stay missing
    metrics["baselines"] = {"jet_mass_inputs": {"test": {"auc": 0.93}, "val": {"auc": 0.5}}}
    row = teachers.student_row(metrics, {}, {"lut_da4ml": 9000.0, "pipeline_stages": 3, "latency_ns": 15.0})
    assert row["jet_mass_inputs_auc"] == 0.93 and row["jet_mass_all_auc"] is None and row["lut_da4ml"] == 9000.0


def test_ranking_counts_a_difference_only_beyond_three_spreads_and_half_a_percent():
    summary = {"lorentznet": teachers.summarise(_rows([0.950, 0.951, 0.952])),  # best, std 0.001
               "transformer_seal": teachers.summarise(_rows([0.946, 0.947, 0.948])),  # 0.004 behind: tie
               "transformer": teachers.summarise(_rows([0.940, 0.941, 0.942]))}  # 0.010 behind: behind
    assert summary["transformer"]["ood_auc_w_vs_qcd"]["mean"] == pytest.approx(0.841)
    r = teachers.rank_teachers(summary)
    assert r["best"] == "lorentznet" and r["clear_best"] is False and r["tied_with_best"] == ["transformer_seal"]
    t = r["teachers"]
    assert t["transformer"]["status"] == "behind best" and t["transformer"]["gap_to_best"] == pytest.approx(0.010)
    assert t["transformer"]["threshold"] == pytest.approx(0.005)
    assert t["transformer_seal"]["status"] == "tied with best" and t["lorentznet"]["status"] == "best"
    noisy = {**summary, "transformer": teachers.summarise(_rows([0.930, 0.940, 0.950]))}  # std 0.01: 3 std = 0.03
    assert teachers.rank_teachers(noisy)["teachers"]["transformer"]["status"] == "tied with best"
    clear = teachers.rank_teachers({k: v for k, v in summary.items() if k != "transformer_seal"})
    assert clear["clear_best"] is True
    one = teachers.rank_teachers({k: teachers.summarise(_rows([v["auc"]["values"][0]])) for k, v in summary.items()})
    assert one["teachers"]["transformer"]["status"] == "one seed" and one["clear_best"] is False
    lines = teachers.teacher_verdicts({"mlp": r, "deepset": clear})
    assert lines["lorentznet"].startswith("mlp: best (AUC 0.9510 ± 0.0010); deepset: best")
    assert "mlp: behind best" in lines["transformer"] and "deepset" not in lines["transformer_seal"]


@pytest.mark.slow
def test_teachers_benchmark_tiny(tmp_path):
    out = tmp_path / "teachers.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "teachers.py"), "--tiny", "--profile", "quick", "--seeds", "1",
           "--archs", "mlp", "--ood-signals", "w", "--jobs", "1", "--cost-seconds", "0.2", "--out", str(out),
           "--work", str(tmp_path / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=REPO)
    r = json.loads(out.read_text())
    assert r["git"]["commit"] and "teachers.py" in r["command"] and r["tiny"] is True
    assert r["task"] == "top vs qcd" and r["ood_tasks"] == ["w_vs_qcd"]
    summary = r["archs"]["mlp"]["summary"]
    assert set(summary) == set(teachers.TEACHERS)
    for s in summary.values():
        assert 0 < s["auc"]["mean"] <= 1 and s["auc"]["n"] == 1 and 0 < s["ood_auc_w_vs_qcd"]["mean"] <= 1
        assert 0.5 < s["jet_mass_inputs_auc"]["mean"] <= 1 and 0.5 < s["jet_mass_all_auc"]["mean"] <= 1
        assert s["lut_da4ml"]["mean"] > 0 and s["latency_ns"]["mean"] == 5.0 * s["pipeline_stages"]["mean"] > 0
    assert r["archs"]["mlp"]["ranking"]["best"] in teachers.TEACHERS and set(r["verdict"]) == set(teachers.TEACHERS)
    cost = r["teacher_cost"]
    assert cost["lorentznet"]["arch"] == "lorentznet" and cost["transformer_seal"]["arch"] == "transformer"
    assert all(c["n_params"] > 0 and c["inference_jets_per_second"]["1_threads"] > 0 for c in cost.values())
    assert out.with_suffix(".png").stat().st_size > 0
