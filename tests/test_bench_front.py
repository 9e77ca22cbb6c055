"""benchmarks/front.py's bookkeeping: seed statistics, the budget pick on validation, KD vs scratch at equal LUT."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.front import aggregate, budget_pick, kd_vs_scratch, knob_points, near_budget  # noqa: E402


def _row(pid, val, test, lut, **kw):
    return {"id": pid, "knobs": {"width": 1.0}, "val_auc": val, "test_auc": test, "lut": lut, "parity_pct": 100.0, **kw}


def test_budget_pick_uses_validation_and_the_seed_mean_of_lut():
    runs = {"hgq_kd": {1: [_row("a", 0.93, 0.99, 9000), _row("b", 0.94, 0.90, 9500), _row("c", 0.95, 0.95, 12000)],
                       2: [_row("b", 0.94, 0.91, 10600)]}}  # b's mean LUT 10,050: over a 10k budget
    agg = aggregate(runs)["hgq_kd"]
    assert [p["id"] for p in agg] == ["a", "b", "c"]
    b = next(p for p in agg if p["id"] == "b")
    assert b["stats"]["lut"]["mean"] == pytest.approx(10050) and b["stats"]["test_auc"]["std"] == pytest.approx(0.00707, abs=1e-5)
    assert budget_pick(agg, 10000)["id"] == "a"  # not b (mean over budget), not the best test AUC by accident
    assert budget_pick(agg, 11000)["id"] == "b"  # best VALIDATION AUC under budget, although its test AUC is lowest
    assert budget_pick(agg, 100) is None
    assert near_budget(agg, 10000) == ["a", "b"]  # a under the budget, b the smallest above


def test_kd_vs_scratch_compares_at_or_under_equal_lut_and_needs_a_spread():
    kd = aggregate({"k": {1: [_row("k1", 0.9, 0.940, 5000)], 2: [_row("k1", 0.9, 0.944, 5000)],
                          3: [_row("k1", 0.9, 0.942, 5000)]}})["k"]
    scratch = aggregate({"s": {1: [_row("s1", 0.9, 0.930, 4000), _row("s2", 0.9, 0.990, 6000)],
                               2: [_row("s1", 0.9, 0.932, 4000)]}})["s"]
    (row,) = kd_vs_scratch(kd, scratch)
    assert row["scratch"] == "s1"  # s2 is better but bigger
    assert row["gain"] == pytest.approx(0.011) and row["required"] == pytest.approx(0.006)
    assert row["verdict"] == "met"
    lone = aggregate({"k": {1: [_row("k1", 0.9, 0.940, 5000)]}})["k"]
    one = aggregate({"s": {1: [_row("s1", 0.9, 0.930, 4000)]}})["s"]
    assert kd_vs_scratch(lone, one)[0]["verdict"].startswith("one seed")
    assert kd_vs_scratch(lone, aggregate({"s": {1: [_row("s9", 0.9, 0.9, 9000)]}})["s"])[0]["scratch"] is None


def test_failed_points_are_kept_as_errors_not_averaged():
    agg = aggregate({"f": {1: [_row("a", 0.9, 0.9, 100)], 2: [{"id": "a", "error": "boom"}]}})["f"]
    assert agg[0]["seeds"] == [1] and agg[0]["errors"] == [{"seed": 2, "error": "boom"}]
    assert agg[0]["stats"]["test_auc"]["n"] == 1


def test_knob_points_name_exactly_one_point():
    from trigger_kd.front.sweep import parse_points

    for knobs, framework in (({"width": 0.5, "bits": [3, 6]}, "brevitas"), ({"width": 2.0, "beta": 1e-06}, "hgq"),
                             ({"width": 1.0, "beta": 1e-4, "max_ebops": 4e4}, "hgq")):
        parsed = parse_points(knob_points(knobs), framework)
        assert {k: (list(v[0]) if isinstance(v[0], tuple) else v[0]) for k, v in parsed.items()} == knobs
    assert knob_points({"width": 1.0, "beta": 1e-5, "max_ebops": None}) == ["width=1.0", "beta=1e-05"]
