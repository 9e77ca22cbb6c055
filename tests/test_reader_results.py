"""The readers of result records (issue 35): ``evaluate/<name>.json``, ``diagnostics.json`` and the ``report.json`` that
``trigger-kd report DIR...`` compares, each checked by one reader (``trigger_kd/report/records.py``) against type,
physical range and contradictions. Written as properties: for each reader a generator of out-of-range, missing,
contradictory and degenerate values, each refused in one line (exit 2) or shown as "damaged" and never as a figure.
Also: ``--out`` never inside a run directory's stage folders, rows told apart when two runs share a model name, and a
result whose ``made_from`` lacks a stage is not taken as this run's."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from test_report import _run_dir

from trigger_kd.cli import main as cli
from trigger_kd.report.build import build_report
from trigger_kd.report.compare import labelled
from trigger_kd.report.generalisation import current_evaluations
from trigger_kd.report.records import DamagedRecord, evaluation_problems, read_diagnostics, report_problems
from trigger_kd.rundir import MODELS
from trigger_kd.runcheck import RESULT_STAGES, stale_result

NAN, INF = math.nan, math.inf
NOT_NUMBERS = ["high", True, [0.9], {"v": 1}]
BAD_SCORES = [-0.1, 1.5, 7.5, NAN, INF, -INF, *NOT_NUMBERS]  # AUC, accuracy, fractions: [0, 1]
BAD_COUNTS = [-5, 2.5, NAN, INF, 1e12, "10", True]  # jets, parameters: whole, >= 0
BAD_REJECTIONS = [0.5, -1.0, NAN, INF, "x"]  # 1/eB >= 1
BAD_NONNEG = [-1.0, -0.1, NAN, INF, "wide"]  # errors, MSEs, variances, smearing widths
BAD_FINITE = [NAN, INF, -INF, "x", None]  # required and finite, any sign


def _metrics(n: int = 200) -> dict:
    return {"accuracy": 0.8, "auc": 0.9, "rej30": 20.0, "rej50": 8.0, "n_jets": n, "n_top": n // 2, "n_qcd": n - n // 2}


def _evaluation(n: int = 200) -> dict:
    """An evaluate/<name>.json as `trigger-kd evaluate` writes it (a hand-made run: no made_from to compare)."""
    return {"name": "z_vs_gluon", "task": "Z vs gluon", "n_jets": n, "n_left_out_training_jets": 3,
            **{m: _metrics(n) for m in MODELS}, "source": f"{n} jets", "warnings": ["12 jets have 1 constituent"]}


def _diagnostics() -> dict:
    """A diagnostics.json as `trigger-kd diagnose` writes it (shape of a real one, /tmp runs of the issue)."""
    curv = {"loss": "cross-entropy", "lambda_max": 1.88, "power_iterations": 5, "converged": False, "trace": -0.71,
            "trace_std_error": 2.6, "trace_samples": 4, "n_jets": 50, "n_parameters": 2083}
    smear = [{"sigma": s, "auc": 0.85, "accuracy": 0.5} for s in (0.0, 0.1)]
    return {"model": "mlp_kd", "task": "top vs qcd", "in_distribution": {m: _metrics() for m in MODELS},
            "curvature": {"teacher": curv, "student_float": {**curv, "lambda_max": 0.83}, "source": "first 50 jets"},
            "compressibility": {"curve": [{"epoch": 0, "train_mse": None, "val_mse": 0.049},
                                          {"epoch": 1, "train_mse": 0.048, "val_mse": 0.039}],
                                "final_val_mse": 0.039, "teacher_logit_variance": 0.0084, "n_train_jets": 360,
                                "n_val_jets": 120, "reference_student": {"n_parameters": 10466}},
            "smearing": {**{m: smear for m in MODELS}, "n_jets": {m: 120 for m in MODELS}, "source": "test jets"}}


def _set(record: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(record)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _cases(paths_and_values) -> list:
    return [pytest.param(p, v, id=f"{'.'.join(map(str, p))}={v!r}") for p, vs in paths_and_values for v in vs]


EVALUATION_CASES = _cases(
    [(("n_jets",), [*BAD_COUNTS, None]), (("n_left_out_training_jets",), BAD_COUNTS), (("task",), [5, ""])]
    + [((m, k), BAD_SCORES) for m in MODELS for k in ("auc", "accuracy")]
    + [(("student", k), BAD_REJECTIONS) for k in ("rej30", "rej50")]
    + [(("teacher", "n_jets"), [*BAD_COUNTS, 199]),  # 199: contradicts the record's 200 jets
       (("student", "n_top"), [7])]  # top + QCD != all jets
    + [((m,), ["x", [], None]) for m in MODELS]
    + [(("warnings",), ["pT in MeV?", {"w": 1}, 3]), (("warnings", 0), ["", None, 5, ["nested"]])])


def _write_evaluation(run: Path, name: str, text: str) -> None:
    (run / "evaluate").mkdir(exist_ok=True)
    (run / "evaluate" / f"{name}.json").write_text(text)


@pytest.mark.parametrize("path,value", EVALUATION_CASES)
def test_the_evaluation_reader_refuses_every_bad_value(path, value):
    assert evaluation_problems(_evaluation()) == []
    problems = evaluation_problems(_set(_evaluation(), path, value))
    assert problems and str(path[0]) in problems[0], problems


@pytest.mark.parametrize("path,value", [(("student", "auc"), 7.5), (("n_jets",), -5), (("teacher", "auc"), NAN),
                                        (("student", "accuracy"), "high")])
def test_a_damaged_evaluation_is_named_and_never_shown_as_a_figure(tmp_path, capsys, path, value):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    _write_evaluation(run, "good", json.dumps(_evaluation()))
    _write_evaluation(run, "second", json.dumps(_set(_evaluation(), path, value)))
    report = build_report(run, run / "report", "mlp_kd")
    gen = report["generalisation"]
    assert list(gen["ood"]) == ["good"] and list(gen["damaged"]) == ["evaluate/second.json"]
    md = (run / "report" / "report.md").read_text()
    assert "- Left out, damaged: `evaluate/second.json` (" in md and "| second |" not in md and "| good |" in md
    assert "evaluate/second.json: damaged" in capsys.readouterr().err  # every tool that reads it says so
    assert list(current_evaluations(run)[0]) == ["good"]  # what `diagnose` records as "ood"


def test_what_the_data_checks_found_borderline_is_shown_beside_the_figures(tmp_path):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    _write_evaluation(run, "good", json.dumps(_evaluation()))
    _write_evaluation(run, "quiet", json.dumps({**_evaluation(), "warnings": []}))
    build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    assert "- `good`: 12 jets have 1 constituent" in md and "- `quiet`:" not in md


@pytest.mark.parametrize("text", ["not json {", "[]", '"text"', "{}", "null", ""])
def test_an_evaluation_that_is_not_one_is_named_not_skipped(tmp_path, text):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    _write_evaluation(run, "second", text)
    (run / "evaluate" / "folder.json").mkdir()  # not even a file
    build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    assert "Left out, damaged: `evaluate/second.json`" in md and "Left out, damaged: `evaluate/folder.json`" in md


DIAGNOSTICS_CASES = _cases(
    [(("curvature", m, k), BAD_FINITE) for m in ("teacher", "student_float") for k in ("lambda_max", "trace")]
    + [(("curvature", "teacher", "trace_std_error"), BAD_NONNEG),
       (("curvature", "teacher", "n_parameters"), BAD_COUNTS),
       (("curvature", "teacher"), ["x", 3]),
       (("compressibility", "curve"), [[], None, "x", [{"epoch": 0}]]),
       (("compressibility", "curve", 1, "val_mse"), BAD_NONNEG),
       (("compressibility", "curve", 1, "train_mse"), [*BAD_NONNEG, None]),
       (("compressibility", "final_val_mse"), BAD_NONNEG),
       (("compressibility", "teacher_logit_variance"), BAD_NONNEG),
       (("compressibility", "n_val_jets"), BAD_COUNTS),
       (("smearing", "student", 1, "sigma"), [*BAD_NONNEG, None]),
       (("smearing", "student", 1, "auc"), BAD_SCORES),
       (("smearing", "teacher"), ["x", {"sigma": 0.1}]),
       (("in_distribution", "student", "accuracy"), BAD_SCORES),
       (("in_distribution", "student", "n_jets"), BAD_COUNTS)])


@pytest.mark.parametrize("path,value", DIAGNOSTICS_CASES)
def test_the_diagnostics_reader_refuses_every_bad_value(tmp_path, path, value):
    (tmp_path / "diagnostics.json").write_text(json.dumps(_set(_diagnostics(), path, value)))
    with pytest.raises(DamagedRecord, match=r"diagnostics.json: damaged diagnostics: .*" + r"\.".join(map(str, path[:2]))):
        read_diagnostics(tmp_path / "diagnostics.json")


@pytest.mark.parametrize("path,value", [(("curvature", "teacher", "lambda_max"), NAN),
                                        (("curvature", "teacher", "trace"), INF),
                                        (("curvature", "teacher", "trace_std_error"), -1.0),
                                        (("compressibility", "final_val_mse"), -1.0),
                                        (("smearing", "student", 1, "sigma"), -0.1),
                                        (("smearing", "student", 1, "auc"), 3.0)])
def test_a_damaged_diagnostics_file_is_named_and_never_shown_as_figures(tmp_path, path, value):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    (run / "diagnostics.json").write_text(json.dumps(_diagnostics()))
    assert read_diagnostics(run / "diagnostics.json") is not None and read_diagnostics(tmp_path / "none") is None
    (run / "diagnostics.json").write_text(json.dumps(_set(_diagnostics(), path, value)))
    report = build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    assert "- Left out, damaged: `diagnostics.json` (" in md and ".".join(map(str, path[:2])) in md
    for section in ("### Loss curvature", "### Compressibility", "### pT smearing"):
        assert section not in md
    assert report["generalisation"]["diagnostics_file"] is None


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "7"])
def test_a_diagnostics_file_that_is_not_json_is_named(tmp_path, text):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    (run / "diagnostics.json").write_text(text)
    build_report(run, run / "report", "mlp_kd")
    assert "Left out, damaged: `diagnostics.json` (not a JSON object: rerun `trigger-kd diagnose" in (run / "report" / "report.md").read_text()


def test_a_negative_curvature_is_a_figure_the_report_shows(tmp_path):
    """Power iteration returns the eigenvalue of largest magnitude and Hutchinson's trace is an estimate: both may
    be negative (a real run's trace was -0.71), so they are shown, only NaN/inf refused."""
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    (run / "diagnostics.json").write_text(json.dumps(_set(_diagnostics(), ("curvature", "teacher", "lambda_max"), -3.0)))
    build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    assert "| teacher | cross-entropy | -3 |" in md and "-0.71 ± 2.6" in md and "damaged" not in md


# ----------------------------------------------------------------------------- `trigger-kd report DIR...` (compare)
def _two_reports(tmp_path) -> list[Path]:
    runs = [_run_dir(tmp_path, n, 0.88, 0.7, with_synth=True) for n in ("r1", "fake")]
    for r in runs:
        build_report(r, r / "report", "mlp_kd")
    return runs


REPORT_CASES = _cases(
    [(("resources", "lut"), [-100, 2.5, NAN, "many", 1e12]), (("resources", "latency_cycles"), [-1, 16, "x"]),
     (("resources", "utilization_pct", "lut"), [50.0]),  # contradicts used / available
     (("physics", "student", "auc"), BAD_SCORES), (("physics", "student", "accuracy"), BAD_SCORES),
     (("physics", "student", "rej30"), BAD_REJECTIONS), (("physics", "teacher", "n_jets"), [*BAD_COUNTS, 999]),
     (("physics", "n_test_jets"), BAD_COUNTS), (("physics", "student"), ["x", [1]]), (("physics",), ["x", 3]),
     (("parity", "bit_exact_fraction"), BAD_SCORES), (("parity", "n_jets"), BAD_COUNTS),
     (("model",), ["", None, 5]), (("resources",), ["x", [1]])])


def _one_line_refusal(capsys, *words) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.mark.parametrize("path,value", REPORT_CASES)
def test_the_report_reader_refuses_every_bad_value(good_report, path, value):
    assert report_problems(good_report) == []
    text = "; ".join(report_problems(_set(good_report, path, value)))
    assert str(path[0]) in text or "resource record" in text, text


@pytest.fixture(scope="module")
def good_report(tmp_path_factory) -> dict:
    run = _run_dir(tmp_path_factory.mktemp("good"), "r1", 0.88, 0.7, with_synth=True)
    return build_report(run, run / "report", "mlp_kd")


@pytest.mark.parametrize("path,value", [(("resources", "lut"), -100), (("physics", "student", "auc"), 7.5),
                                        (("physics", "n_test_jets"), NAN), (("model",), None)])
def test_compare_refuses_a_damaged_report_in_one_line(tmp_path, capsys, path, value):
    runs = _two_reports(tmp_path)
    rpt = runs[1] / "report" / "report.json"
    rpt.write_text(json.dumps(_set(json.loads(rpt.read_text()), path, value)))
    out = tmp_path / "c.md"
    assert cli(["report", *map(str, runs), "--out", str(out), "--print"]) == 2
    _one_line_refusal(capsys, str(rpt), "damaged report", "nothing was written")
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("text", ["", "not json", "[]", "{}"])
def test_compare_refuses_a_report_that_is_not_one(tmp_path, capsys, text):
    runs = _two_reports(tmp_path)
    (runs[1] / "report" / "report.json").write_text(text)
    assert cli(["report", *map(str, runs), "--out", str(tmp_path / "c.md")]) == 2
    _one_line_refusal(capsys, "fake/report/report.json")


def test_two_runs_of_one_model_are_told_apart_and_both_drawn(tmp_path, capsys):
    runs = _two_reports(tmp_path)  # both "mlp_kd"
    out = tmp_path / "c.md"
    assert cli(["report", *map(str, runs), "--out", str(out)]) == 0
    md = out.read_text()
    assert f"| mlp_kd ({runs[0]}) |" in md and f"| mlp_kd ({runs[1]}) |" in md
    rows = json.loads(out.with_suffix(".json").read_text())["models"]
    assert [r["run_dir"] for r in rows] == [str(r) for r in runs] and len({r["model"] for r in rows}) == 2
    reports = [{"model": m} for m in ("a", "a", "b", "a")]  # the bars are keyed by these labels: one per run
    assert len({r["model"] for r in labelled(reports, [Path(f"d{i}") for i in range(4)])}) == 4
    assert cli(["report", str(runs[0]), str(runs[0]) + "/", "--out", str(out)]) == 2  # one run named twice
    _one_line_refusal(capsys, "same run directory")


def _mark(run: Path) -> Path:
    (run / ".trigger-kd-run").write_text("made by trigger-kd run\n")
    return run


@pytest.mark.parametrize("where", ["report/c.md", "report", "student/deeper/c.md",
                                   "evaluate/c.md"])
def test_compare_never_writes_into_a_run_directorys_folders(tmp_path, capsys, where):
    runs = _two_reports(tmp_path)
    (runs[0] / "student" / "deeper").mkdir()
    (runs[0] / "evaluate").mkdir()
    before = sorted(p for p in runs[0].rglob("*"))
    out = _mark(runs[0]) / where
    assert cli(["report", *map(str, runs), "--out", str(out)]) == 2
    _one_line_refusal(capsys, "inside the run directory", "elsewhere")
    assert sorted(p for p in runs[0].rglob("*") if p.name != ".trigger-kd-run") == before


def test_compare_may_write_beside_the_stage_folders_and_says_when_it_cannot_write(tmp_path, capsys):
    runs = _two_reports(tmp_path)
    (tmp_path / "r3").mkdir()
    assert cli(["report", *map(str, runs), "--out", str(_mark(tmp_path / "r3") / "c.md")]) == 0  # the top level
    assert cli(["report", *map(str, runs), "--out", "/proc/c.md"]) == 2
    _one_line_refusal(capsys, "/proc/c.md", "cannot write there")


# ----------------------------------------------------------------------------- made_from: proven this run's, or said
def _stamped(tmp_path) -> Path:
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    for s in RESULT_STAGES:
        (run / s).mkdir(exist_ok=True)
        (run / s / "stamp.json").write_text(json.dumps({"stamp": f"{s}-stamp", "outputs": f"{s}-hash"}))
    return run


MADE_FROM = {s: f"{s}-hash" for s in RESULT_STAGES}


@pytest.mark.parametrize("missing", [(s,) for s in RESULT_STAGES] + [RESULT_STAGES])
def test_a_result_whose_made_from_lacks_a_stage_is_not_taken_as_this_runs(tmp_path, missing):
    run = _stamped(tmp_path)
    assert stale_result(run, {"made_from": MADE_FROM}, "diagnostics.json") is None
    partial = {s: h for s, h in MADE_FROM.items() if s not in missing}
    why = stale_result(run, {"made_from": partial}, "diagnostics.json")
    assert why and all(s in why for s in missing) and "not proven" in why
    (run / "diagnostics.json").write_text(json.dumps({**_diagnostics(), "made_from": partial}))
    build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    assert "Left out, stale: `diagnostics.json`" in md and "### Loss curvature" not in md


@pytest.mark.parametrize("made_from", [{**MADE_FROM, "student": "other-run"}, {**MADE_FROM, "student": None},
                                       {**MADE_FROM, "student": 5}, {**MADE_FROM, "../x": "y"}, [], "x", None])
def test_a_result_from_another_run_is_stale_and_said_truthfully(tmp_path, made_from):
    run = _stamped(tmp_path)
    why = stale_result(run, {"made_from": made_from}, "evaluate/own.json")
    assert why and "rerun after" not in why
    _write_evaluation(run, "own", json.dumps({**_evaluation(), "made_from": made_from}))
    build_report(run, run / "report", "mlp_kd")
    assert "Left out, stale: `evaluate/own.json`" in (run / "report" / "report.md").read_text()
