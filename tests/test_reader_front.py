"""front.json read back (trigger_kd/front/record.py ``read_front``): property over generated damaged rows, each
refused in one error naming the file, the point and the field; sweep rows are checked when the point returns."""
from __future__ import annotations

import json
import math

import pytest

from test_front_fakes import write_point
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


# ----------------------------------------------------------------------------- front_yosys.json read back
YOSYS_GOOD = {"synth_stamp": "s1", "family": "xcup", "yosys_lut": 620, "yosys_ff": 90, "yosys_version": "Yosys 0.33",
              "yosys_cpu_s": 1.5, "log": "/x/yosys.log"}
YOSYS_BAD = [*BAD_VALUES, -7, "abc", 1e15, 1.5, None]


def _yosys_point(tmp_path, cached) -> "Path":
    """A point's run directory whose synth stage (stamp s1) names no RTL, with ``cached`` as its front_yosys.json."""
    from trigger_kd.front.yosys import YOSYS_JSON

    point = tmp_path / "point"
    (point / "synth").mkdir(parents=True)
    (point / "synth" / "stamp.json").write_text(json.dumps({"stamp": "s1"}))
    (point / YOSYS_JSON).write_text(cached if isinstance(cached, str) else json.dumps(cached, allow_nan=True))
    return point


def test_a_good_cached_yosys_record_is_used(tmp_path):
    from trigger_kd.front.yosys import point_yosys

    assert point_yosys(str(_yosys_point(tmp_path, YOSYS_GOOD)), "xcup")["yosys_lut"] == 620


@pytest.mark.parametrize("key", ["yosys_lut", "yosys_ff", "yosys_cpu_s"])
@pytest.mark.parametrize("value", YOSYS_BAD, ids=repr)
def test_a_damaged_cached_yosys_record_is_never_used_and_says_why(tmp_path, key, value):
    """Every impossible figure in the cache: the record is refused naming the file and the field, and the point's
    Yosys is run again (here the synth stage names no RTL, so the rerun fails: the damaged figures never come back)."""
    from trigger_kd.front.yosys import YOSYS_JSON, cached_yosys, point_yosys

    if key == "yosys_cpu_s" and (value is None or value in (1e12, 1e15, 1.5)):
        pytest.skip("a time needs no upper bound, and may be absent")
    point = _yosys_point(tmp_path, {**YOSYS_GOOD, key: value})
    record, why = cached_yosys(point / YOSYS_JSON, "s1", "xcup")
    assert record is None and str(point / YOSYS_JSON) in why and key in why and "\n" not in why
    with pytest.raises(FileNotFoundError, match="names no RTL"):
        point_yosys(str(point), "xcup")


@pytest.mark.parametrize("damage", ["not json", "a list", "empty", "no yosys_lut", "no family", "a folder"])
def test_a_cached_yosys_file_that_is_no_record_is_refused(tmp_path, damage):
    from trigger_kd.front.yosys import YOSYS_JSON, cached_yosys

    text = {"not json": "{", "a list": "[620, 90]", "empty": "",
            "no yosys_lut": json.dumps({k: v for k, v in YOSYS_GOOD.items() if k != "yosys_lut"}),
            "no family": json.dumps({k: v for k, v in YOSYS_GOOD.items() if k != "family"}), "a folder": "{}"}[damage]
    point = _yosys_point(tmp_path, text)
    if damage == "a folder":
        (point / YOSYS_JSON).unlink()
        (point / YOSYS_JSON).mkdir()
    record, why = cached_yosys(point / YOSYS_JSON, "s1", "xcup")
    assert record is None and why and str(point / YOSYS_JSON) in why


def test_an_outdated_or_absent_cached_yosys_record_is_redone_quietly(tmp_path):
    from trigger_kd.front.yosys import YOSYS_JSON, cached_yosys

    point = _yosys_point(tmp_path, YOSYS_GOOD)
    assert cached_yosys(point / YOSYS_JSON, "s2", "xcup") == (None, None)  # the synth stage was redone
    assert cached_yosys(point / YOSYS_JSON, "s1", "xc7") == (None, None)  # another family
    assert cached_yosys(point / YOSYS_JSON, "s1", "xcup")[0]["yosys_ff"] == 90
    (point / YOSYS_JSON).unlink()
    assert cached_yosys(point / YOSYS_JSON, "s1", "xcup") == (None, None)


@pytest.mark.parametrize("stamp", ["[1]", "3", "null", '"s"', "{"])
def test_a_point_whose_stamp_file_is_no_record_still_gives_a_row(tmp_path, stamp):
    """A stage's stamp.json that is JSON but no object (or no JSON): the row says no stamp, it does not crash."""
    from trigger_kd.front.record import point_row

    write_point(tmp_path / "p", val_auc=0.9, lut=100.0)
    for stage in ("student", "firmware", "synth"):
        (tmp_path / "p" / stage / "stamp.json").write_text(stamp)
    row = point_row(tmp_path / "p")
    assert row["stamps"] == {"student": None, "firmware": None, "synth": None} and row["lut"] == 100.0


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1, 1.5, "0.9", True, [0.9], {"auc": 0.9}], ids=repr)
def test_a_damaged_reference_line_is_left_out_with_a_warning_naming_it(tmp_path, value):
    """The plot's teacher / baseline lines (record.py ``reference_lines``): an impossible value is not drawn nor
    recorded; the problem names the file and the line (front.json carries it)."""
    from trigger_kd.front.record import reference_lines

    write_point(tmp_path / "p", val_auc=0.9, lut=100.0)
    path = tmp_path / "p" / "student" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["validation"]["teacher"]["auc"] = value
    doc["baselines"] = {"jet_mass_inputs": {"val": {"auc": 0.7}}, "jet_mass_all": [1], "substructure": {"val": 3}}
    path.write_text(json.dumps(doc, allow_nan=True))
    problems: list[str] = []
    assert reference_lines(tmp_path / "p", problems) == {"jet_mass_inputs": 0.7}
    assert len(problems) == 1 and "teacher" in problems[0] and str(path) in problems[0]


@pytest.mark.parametrize("value", ["abc", None, [0.9], {"x": 1}], ids=repr)
def test_a_point_whose_student_figures_are_no_numbers_is_an_error_row_naming_the_field(tmp_path, value):
    from trigger_kd.front.run import point_task

    write_point(tmp_path / "p", val_auc=0.9, lut=100.0)
    path = tmp_path / "p" / "student" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["validation"]["student"] = {"auc": value, "accuracy": 0.8} if value is not None else [0.9]
    path.write_text(json.dumps(doc))
    row = point_task(lambda *a: None, None, str(tmp_path / "p"))
    assert ("val_score" in row["error"] or "no val_auc" in row["error"]) and "Error:" not in row["error"], row["error"]
