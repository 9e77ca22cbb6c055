"""front.json read back (trigger_kd/front/record.py ``read_front``): property over generated damaged rows, each
refused in one error naming the file, the point and the field; sweep rows are checked when the point returns."""
from __future__ import annotations

import json
import math

import pytest

from trigger_kd.front.record import FrontFileError, check_row, read_front

GOOD = {"id": "w8_b3a6", "metric": "auc", "val_score": 0.94, "test_score": 0.93, "val_auc": 0.94, "test_auc": 0.93,
        "val_accuracy": 0.88, "test_accuracy": 0.87, "val_rej30": 120.0, "test_rej50": 30.0, "lut": 6100.0,
        "ff": 900, "yosys_lut": 6200, "pipeline_stages": 4, "latency_ns": 20.0, "clock_ns": 5.0, "seconds": 300.0,
        "parity_pct": 100.0, "parity_jets": 4000, "rtl_parity_pct": 100.0, "on_front": True}

BAD_VALUES = [math.nan, math.inf, -math.inf, -1.0, 1e12, "0.9", True, [0.9]]
FRACTIONS = ["val_score", "test_score", "val_auc", "test_auc", "val_accuracy", "test_accuracy"]
FIELDS = [*FRACTIONS, "lut", "ff", "yosys_lut", "pipeline_stages", "parity_jets", "latency_ns", "clock_ns",
          "seconds", "parity_pct", "rtl_parity_pct", "val_rej30", "test_rej50"]


def _doc(rows, front=None, picked=None):
    return {"points": rows, "front": front if front is not None else [r["id"] for r in rows], "picked": picked}


def _write(tmp_path, doc):
    p = tmp_path / "front.json"
    p.write_text(json.dumps(doc, allow_nan=True))
    return p


def test_a_front_json_of_good_rows_reads(tmp_path):
    doc = _doc([GOOD, {**GOOD, "id": "w4_b3a6", "lut": 3000.0}, {"id": "failed", "error": "RuntimeError: x"}],
               picked={"id": "w8_b3a6"})
    assert read_front(_write(tmp_path, doc))["picked"]["id"] == "w8_b3a6"


@pytest.mark.parametrize("key", FIELDS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_every_figure_out_of_its_range_or_type_is_refused_naming_it(tmp_path, key, value):
    if value == 1e12 and key in ("latency_ns", "clock_ns", "seconds", "val_rej30", "test_rej50"):
        pytest.skip("no upper bound on a time or a rejection")
    row = {**GOOD, "metric": None, key: value}  # no metric: the two names of a score are not compared here
    with pytest.raises(FrontFileError) as e:
        read_front(_write(tmp_path, _doc([row])))
    msg = str(e.value)
    assert str(tmp_path / "front.json") in msg and "w8_b3a6" in msg and key in msg and "\n" not in msg


@pytest.mark.parametrize("damage", ["contradiction", "missing", "repeated id", "front names a stranger",
                                    "pick names a stranger", "not ours", "not json", "unknown metric"])
def test_contradictions_and_missing_figures_are_refused(tmp_path, damage):
    rows, front, picked = [dict(GOOD)], None, None
    if damage == "contradiction":
        rows[0]["val_score"] = 0.95  # val_auc says 0.94
    elif damage == "missing":
        rows[0]["lut"] = None
    elif damage == "repeated id":
        rows.append(dict(GOOD))
    elif damage == "front names a stranger":
        front = ["w8_b3a6", "w99"]
    elif damage == "pick names a stranger":
        picked = {"id": "w99"}
    elif damage == "unknown metric":
        rows[0]["metric"] = "loss"
    p = _write(tmp_path, _doc(rows, front, picked))
    if damage == "not ours":
        p.write_text(json.dumps({"rows": []}))
    elif damage == "not json":
        p.write_text("{")
    with pytest.raises(FrontFileError, match=str(p)):
        read_front(p)


def test_check_row_lets_a_failed_point_lack_figures():
    assert check_row({"id": "x", "error": "boom"}) == []
    assert check_row({"id": "x"}) and "no val_score, lut and no error" in check_row({"id": "x"})[0]


def test_a_sweep_point_with_impossible_figures_is_an_error_row_not_ranked(tmp_path):
    """The writer side: a point whose run directory records an AUC above 1 comes back as a failed row."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_front_fakes import write_point
    from trigger_kd.front.run import point_task

    write_point(tmp_path / "p", val_auc=1.5, lut=100.0)
    row = point_task(lambda *a: None, None, str(tmp_path / "p"))
    assert "impossible figures" in row["error"] and "val_score = 1.5 outside [0, 1]" in row["error"]
    write_point(tmp_path / "q", val_auc=0.9, lut=100.0)
    assert not point_task(lambda *a: None, None, str(tmp_path / "q")).get("error")
