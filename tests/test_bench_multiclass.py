"""benchmarks/multiclass.py's bookkeeping on synthetic front.json rows: seed statistics keyed on accuracy, KD vs
scratch at equal or lower LUT with the max(3 std, 0.01) margin, the 40k-LUT pick on validation, the parity verdict."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.multiclass import (  # noqa: E402
    aggregate, failed_parity, front_command, front_ids, grid_specs, kd_vs_scratch, lines_from, markdown,
    parity_verdict, pick_on_validation, point_specs, reseed_jobs, study_verdict)


def _row(pid, val, test, lut, parity=100.0, rtl=100.0, **kw):
    """A K-class front.json row: ranked on accuracy; the AUCs deliberately ordered the other way."""
    return {"id": pid, "knobs": {"width": 1.0, "beta": 1e-5, "max_ebops": None, "inputs": False},
            "metric": "accuracy", "val_score": val, "test_score": test, "val_accuracy": val, "test_accuracy": test,
            "val_auc": 1 - val, "test_auc": 1 - test, "lut": lut, "latency_ns": 25.0, "parity_pct": parity,
            "rtl_parity_pct": rtl, **kw}


def _seeds(pid, lut, vals_tests):
    return {seed: [_row(pid, v, t, lut)] for seed, (v, t) in enumerate(vals_tests, start=1)}


def _merge(*runs):
    out: dict = {}
    for r in runs:
        for seed, rows in r.items():
            out.setdefault(seed, []).extend(rows)
    return out


LINES = {"teacher": {"test": {"accuracy": 0.80, "auc": 0.95}, "val": {"accuracy": 0.79}},
         "jet_mass_inputs": {"test": {"accuracy": 0.55}, "val": {"accuracy": 0.54}},
         "substructure": {"test": {"accuracy": 0.70}, "val": {"accuracy": 0.69}}}


def test_aggregation_over_seeds_is_keyed_on_accuracy_and_keeps_failures_apart():
    runs = {"hgq_kd": _merge(_seeds("a", 9000, [(0.70, 0.71), (0.72, 0.73), (0.74, 0.75)]),
                             {1: [_row("b", 0.60, 0.61, 5000)], 2: [{"id": "b", "error": "ValueError: boom"}]})}
    agg = aggregate(runs)["hgq_kd"]
    assert [p["id"] for p in agg] == ["b", "a"]  # by mean LUT
    a = agg[1]
    assert a["seeds"] == [1, 2, 3]
    assert a["stats"]["test_accuracy"]["mean"] == pytest.approx(0.73)
    assert a["stats"]["test_accuracy"]["std"] == pytest.approx(0.02)  # sample std
    assert a["stats"]["val_score"]["mean"] == pytest.approx(0.72)
    assert a["stats"]["test_auc"]["mean"] == pytest.approx(0.27)
    b = agg[0]
    assert b["seeds"] == [1] and b["errors"] == [{"seed": 2, "error": "ValueError: boom"}]
    assert b["stats"]["test_accuracy"]["n"] == 1 and b["stats"]["test_accuracy"]["std"] is None
    # the validation front ranks on ACCURACY (the AUCs are ordered the other way), and a failed point is off it
    assert front_ids(agg) == ["a"]
    ok = aggregate({"f": _merge(_seeds("small", 1000, [(0.6, 0.6)]), _seeds("big", 2000, [(0.7, 0.6)]),
                                _seeds("worse", 3000, [(0.65, 0.9)]))})["f"]
    assert front_ids(ok) == ["small", "big"]  # "worse" costs more for less validation accuracy
    assert front_ids(ok, metric="auc") == ["small"]


def _fam(points):
    return aggregate({"f": _merge(*points)})["f"]


def test_kd_vs_scratch_at_equal_or_lower_lut_with_the_three_std_or_one_percent_margin():
    kd = _fam([_seeds("k1", 5000, [(0.70, 0.700), (0.70, 0.704), (0.70, 0.702)])])  # test 0.702 +- 0.002
    scratch = _fam([_seeds("s1", 4000, [(0.68, 0.690), (0.68, 0.692), (0.68, 0.691)]),
                    _seeds("s2", 6000, [(0.75, 0.750), (0.75, 0.750), (0.75, 0.750)]),  # better but bigger
                    _seeds("s3", 5000, [(0.60, 0.699), (0.60, 0.699), (0.60, 0.699)])])  # best TEST, worst val
    res = kd_vs_scratch(kd, scratch)
    (row,) = res["rows"]
    assert row["scratch"] == "s1"  # at or under 5000 LUT, chosen on validation (not s3, not s2)
    assert row["gain"] == pytest.approx(0.011)
    assert row["required"] == pytest.approx(0.01)  # 3 x 0.002 = 0.006 < the 0.01 floor
    assert row["verdict"] == "met" and res["met"] is True and res["met_at"] == ["k1"]
    assert res["three_seeds_everywhere"]
    # the same gain with a wider seed spread: 3 std = 0.012 > 0.011
    wide = _fam([_seeds("k1", 5000, [(0.70, 0.698), (0.70, 0.706), (0.70, 0.702)])])
    res = kd_vs_scratch(wide, scratch)
    assert res["rows"][0]["required"] == pytest.approx(0.012) and res["rows"][0]["verdict"] == "not met"
    assert res["met"] is False
    # 0.009 < 0.01 floor although the spread is small
    close = _fam([_seeds("k1", 5000, [(0.70, 0.6995), (0.70, 0.7005), (0.70, 0.7)])])
    assert kd_vs_scratch(close, scratch)["rows"][0]["verdict"] == "not met"
    # one seed: no spread, no verdict; no scratch point at or under the LUT count: not judged
    lone = _fam([_seeds("k1", 5000, [(0.70, 0.75)])])
    assert kd_vs_scratch(lone, scratch)["rows"][0]["verdict"].startswith("fewer than 2 seeds")
    assert kd_vs_scratch(lone, scratch)["met"] is None
    tiny = _fam([_seeds("k0", 3000, [(0.70, 0.75), (0.70, 0.75)])])
    res = kd_vs_scratch(tiny, scratch)
    assert res["rows"][0]["scratch"] is None and res["judged"] == 0 and res["met"] is None


def test_kd_vs_scratch_judges_every_point_on_the_kd_front():
    kd = _fam([_seeds("k1", 5000, [(0.70, 0.702), (0.70, 0.704), (0.70, 0.703)]),
               _seeds("k2", 8000, [(0.75, 0.752), (0.75, 0.754), (0.75, 0.753)]),
               _seeds("off", 9000, [(0.74, 0.9), (0.74, 0.9), (0.74, 0.9)])])  # off the validation front
    scratch = _fam([_seeds("s1", 4000, [(0.68, 0.690), (0.68, 0.690), (0.68, 0.690)]),
                    _seeds("s2", 7500, [(0.74, 0.750), (0.74, 0.750), (0.74, 0.750)])])
    res = kd_vs_scratch(kd, scratch)
    assert [r["kd"] for r in res["rows"]] == ["k1", "k2"]
    assert [r["scratch"] for r in res["rows"]] == ["s1", "s2"]
    assert [r["verdict"] for r in res["rows"]] == ["met", "not met"]  # +0.013 vs +0.003
    assert res["met"] is False and res["met_at"] == ["k1"] and res["judged"] == 2


def test_the_40k_pick_is_made_on_validation_not_test():
    fams = aggregate({
        "hgq_kd": _merge(_seeds("val_best", 30000, [(0.78, 0.770), (0.78, 0.772)]),
                         _seeds("test_best", 20000, [(0.70, 0.800), (0.70, 0.800)]),
                         _seeds("too_big", 41000, [(0.90, 0.900), (0.90, 0.900)])),
        "brevitas_kd": _merge(_seeds("b", 10000, [(0.75, 0.79), (0.75, 0.79)]))})
    assert pick_on_validation(fams["hgq_kd"], 40000)["id"] == "val_best"
    assert pick_on_validation(fams["hgq_kd"], 50000)["id"] == "too_big"
    assert pick_on_validation(fams["hgq_kd"], 100) is None
    st = study_verdict(fams, LINES, max_lut=40000)
    assert (st["family"], st["picked"]) == ("hgq_kd", "val_best")
    assert st["teacher_gap"] == pytest.approx(0.029) and st["over_substructure"] == pytest.approx(0.071)
    assert st["teacher_gap_met"] and st["baseline_met"] and st["met"]
    # within 0.03 of the teacher but not 0.03 above the substructure baseline
    st = study_verdict(fams, {**LINES, "substructure": {"test": {"accuracy": 0.75}}}, max_lut=40000)
    assert st["teacher_gap_met"] and not st["baseline_met"] and not st["met"]
    # too far from the teacher
    st = study_verdict(fams, {**LINES, "teacher": {"test": {"accuracy": 0.90}}}, max_lut=40000)
    assert not st["teacher_gap_met"] and not st["met"]
    # nothing fits, or no baseline measured: reported, not met
    assert study_verdict(fams, LINES, max_lut=100)["met"] is False
    assert study_verdict(fams, {}, max_lut=40000)["met"] is False


def test_parity_verdict_needs_100_percent_on_every_point_seed_c_sim_and_rtl():
    ok = aggregate({"f": _merge(_seeds("a", 1000, [(0.7, 0.7), (0.7, 0.7)]))})
    assert parity_verdict(ok)["met"] and parity_verdict(ok)["point_seeds_checked"] == 2
    for bad in ({"parity_pct": 99.9}, {"rtl_parity_pct": 99.9}, {"rtl_parity_pct": None}):
        runs = {"f": {1: [_row("a", 0.7, 0.7, 1000)], 2: [{**_row("a", 0.7, 0.7, 1000), **bad}]}}
        v = parity_verdict(aggregate(runs))
        assert v["met"] is False and len(v["failures"]) == 1 and v["failures"][0]["seed"] == 2
    err = "StageError: RTL simulation is bit-exact on only 99.9000% of 1000 test jets (iverilog); see logs"
    v = parity_verdict(aggregate({"f": {1: [_row("a", 0.7, 0.7, 1000)], 2: [{"id": "a", "error": err}]}}))
    assert v["met"] is False and v["failures"][0]["rtl_parity_pct"] == pytest.approx(99.9)
    assert parity_verdict({"f": []})["met"] is False  # nothing checked is not a pass
    assert failed_parity("C-simulation is bit-exact on only 99.950 % of 4000 test jets") == {"parity_pct": 99.95}


def test_point_specs_and_grids_make_what_trigger_kd_front_parses():
    from trigger_kd.front.sweep import parse_points

    knobs = {"width": 0.5, "beta": 1e-06, "max_ebops": None, "inputs": False}
    parsed = parse_points(point_specs(knobs), "hgq")
    assert parsed == {"width": (0.5,), "beta": (1e-06,), "inputs": (False,)}
    assert parse_points(point_specs({"width": 2.0, "bits": [3, 6]}), "brevitas") == {"width": (2.0,), "bits": ((3, 6),)}
    assert grid_specs("hgq_kd", "0.5,1", []) == ["width=0.5,1", "beta=1e-6,1e-5,1e-4"]
    # --points replaces the axis where the framework has it; a knob of another framework is left out
    assert grid_specs("hgq_kd", "0.5,1", ["width=0.5", "bits=4"]) == ["width=0.5", "beta=1e-6,1e-5,1e-4"]
    assert grid_specs("brevitas_kd", "0.5,1", ["beta=1e-5", "bits=4"]) == ["width=0.5,1", "bits=4"]
    cmd = front_command("hgq_scratch", 2, "quick", 2, Path("/tmp/x"), ["width=1"], ["data.jets_per_class=300"], "tk")
    assert cmd[:2] == ["tk", "front"] and cmd[cmd.index("--profile") + 1] == "quick"
    sets = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]
    assert sets == ["distill.alpha=0", "student.seed=2", "distill.scratch_twin=false", "data.jets_per_class=300"]


def test_reseed_front_takes_each_front_and_its_partners_knobs():
    agg = aggregate({
        "hgq_kd": _merge(_seeds("a", 1000, [(0.7, 0.7)]), _seeds("b", 2000, [(0.6, 0.6)])),
        "hgq_scratch": _merge(_seeds("a", 1000, [(0.5, 0.5)]), _seeds("b", 2000, [(0.6, 0.6)]))})
    jobs = reseed_jobs(agg, [2, 3], "accuracy")
    assert sorted((f, s) for f, s, _ in jobs) == [("hgq_kd", 2), ("hgq_kd", 2), ("hgq_kd", 3), ("hgq_kd", 3),
                                                 ("hgq_scratch", 2), ("hgq_scratch", 2), ("hgq_scratch", 3),
                                                 ("hgq_scratch", 3)]


def test_lines_and_markdown_from_student_metrics():
    sm = {"teacher": {"accuracy": 0.8, "auc": 0.95, "n_jets": 500, "per_class": {}},
          "validation": {"teacher": {"accuracy": 0.79, "auc": 0.94}},
          "baselines": {"jet_mass_inputs": {"what": "BDT on mass", "val": {"accuracy": 0.5},
                                            "test": {"accuracy": 0.55}},
                        "substructure": {"what": "BDT", "val": {"accuracy": 0.6}, "test": {"accuracy": 0.7}}}}
    lines = lines_from(sm)
    assert lines["teacher"]["test"] == {"accuracy": 0.8, "auc": 0.95, "n_jets": 500}
    assert lines["substructure"]["test"]["accuracy"] == 0.7 and lines["jet_mass_inputs"]["what"] == "BDT on mass"
    assert lines_from({}, {"test": {"accuracy": 0.81}})["teacher"]["test"] == {"accuracy": 0.81}
    fams = aggregate({"hgq_kd": _merge(_seeds("a", 1000, [(0.7, 0.71), (0.7, 0.73)])),
                      "hgq_scratch": _merge(_seeds("a", 900, [(0.6, 0.61), (0.6, 0.61)]))})
    result = {"profile": "quick", "metric": "accuracy", "families": fams, "fronts": {"hgq_kd": ["a"]},
              "lines": lines, "verdicts": {"kd_vs_scratch": {"hgq_kd": kd_vs_scratch(fams["hgq_kd"],
                                                                                     fams["hgq_scratch"])},
                                           "study": study_verdict(fams, lines), "parity": parity_verdict(fams)}}
    md = markdown(result)
    assert "| HGQ2 KD | a | 2 | 0.7000 | 0.7200 +- 0.0141 |" in md and "da4ml" in md
    assert "KD vs scratch (hgq_kd): met" in md and "bit-exact: met" in md
