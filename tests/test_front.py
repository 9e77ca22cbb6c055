"""`trigger-kd front`: the knob table, the point grid, the Pareto front and the budget pick (pure functions)."""
from __future__ import annotations

import pytest

from tiny import FRONT
from trigger_kd.config import load_config
from trigger_kd.front.sweep import (KNOBS, FrontError, NoPointFits, pareto_front, parse_points, pick_under_budget,
                                    point_grid)

# every `trigger-kd front` writes probe files into the suite's shared cache: the modules that run fronts and
# check those files run on one xdist worker, one after the other (pytest --dist loadgroup)
pytestmark = pytest.mark.xdist_group("front")


def test_default_grid_brevitas_mlp(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml")  # quick profile: mlp_hidden [32, 16]
    pts = point_grid(cfg.student)
    assert len(pts) == 9 and len({p.id for p in pts}) == 9
    by_id = {p.id: p for p in pts}
    p = by_id["w16-8_b3a6"]
    assert p.overrides == ("student.mlp_hidden=[16,8]", "student.weight_bits=3", "student.act_bits=6")
    assert p.family == "b3a6" and p.knobs == {"width": 0.5, "bits": [3, 6]}
    assert {"w32-16_b6a8", "w64-32_b4a6"} <= set(by_id)
    # every point's overrides give a valid config
    for p in pts:
        load_config(repo / "hls_configs/mlp_kd.yml", list(p.overrides))


def test_grid_from_points_deepset_and_dedupe(repo):
    cfg = load_config(repo / "hls_configs/deepset_kd.yml")  # phi [16, 16], rho [16]
    pts = point_grid(cfg.student, parse_points(["width=0.5,1", "bits=4,4/8"], "brevitas"))
    assert [p.id for p in pts] == ["w8-8_8_b4a6", "w8-8_8_b4a8", "w16-16_16_b4a6", "w16-16_16_b4a8"]
    assert pts[0].overrides[:2] == ("student.phi_hidden=[8,8]", "student.rho_hidden=[8]")
    tiny = load_config(repo / "hls_configs/mlp_kd.yml", ["student.mlp_hidden=[2]"])
    assert len(point_grid(tiny.student, {"width": (0.1, 0.2), "bits": ((3, 6),)})) == 1  # both round to width 1


def test_points_errors():
    with pytest.raises(FrontError, match="AXIS=V1,V2.*width.*bits"):
        parse_points(["depth=2"], "brevitas")
    with pytest.raises(FrontError, match="'x' is not a valid width"):
        parse_points(["width=1,x"], "brevitas")
    with pytest.raises(FrontError, match="not a valid bits"):
        parse_points(["bits=1"], "brevitas")
    with pytest.raises(FrontError, match="beta"):
        parse_points(["bits=3"], "hgq")  # hgq trades through its EBOPs penalty, not uniform bits
    with pytest.raises(FrontError, match="no sweep knobs for student.framework 'other'"):
        parse_points([], "other")


def test_hgq_entry_gives_width_x_beta(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd_hgq.yml")
    assert [a.name for a in KNOBS["hgq"]] == ["width", "beta", "max_ebops", "inputs"]
    pts = point_grid(cfg.student, parse_points(["width=1", "beta=1e-6,3e-6"], "hgq"))
    assert [p.overrides for p in pts] == [("student.mlp_hidden=[32,16]", "student.ebops_beta=1.0e-06"),
                                          ("student.mlp_hidden=[32,16]", "student.ebops_beta=3.0e-06")]
    assert [p.id for p in pts] == ["w32-16_beta1e-06", "w32-16_beta3e-06"]
    # max_ebops (the kept epoch's EBOPs bound): 'none' is the default, any epoch
    pts = point_grid(cfg.student, parse_points(["width=2", "beta=1e-4", "max_ebops=none,40000"], "hgq"))
    assert [p.id for p in pts] == ["w64-32_beta0.0001", "w64-32_beta0.0001_e40000"]
    assert pts[1].overrides[-1] == "student.max_ebops=40000.0" and pts[1].family == "beta0.0001_e40000"
    assert load_config(repo / "hls_configs/mlp_kd_hgq.yml", list(pts[1].overrides)).student.max_ebops == 4e4
    with pytest.raises(FrontError, match="not a valid max_ebops"):
        parse_points(["max_ebops=-3"], "hgq")
    # inputs: the fixed bus (default) or the first layer's learned input widths, a family of its own
    pts = point_grid(cfg.student, parse_points(["width=1", "beta=1e-5", "inputs=fixed,learned"], "hgq"))
    assert [p.id for p in pts] == ["w32-16_beta1e-05", "w32-16_beta1e-05_inl"] and pts[1].family == "beta1e-05_inl"
    assert load_config(repo / "hls_configs/mlp_kd_hgq.yml", list(pts[1].overrides)).student.learn_input_bits
    with pytest.raises(FrontError, match="not a valid inputs"):
        parse_points(["inputs=some"], "hgq")
    for p in point_grid(cfg.student):  # the default grid: 3 widths x 3 betas, each a valid config
        assert load_config(repo / "hls_configs/mlp_kd_hgq.yml", list(p.overrides)).student.ebops_beta in (1e-6, 1e-5,
                                                                                                          1e-4)


ROWS = [
    {"id": "a", "val_auc": 0.90, "test_auc": 0.99, "lut": 1000, "latency_ns": 10},
    {"id": "b", "val_auc": 0.93, "test_auc": 0.90, "lut": 3000, "latency_ns": 20},
    {"id": "c", "val_auc": 0.92, "test_auc": 0.95, "lut": 4000, "latency_ns": 15},  # dominated by b
    {"id": "d", "val_auc": 0.95, "test_auc": 0.91, "lut": 9000, "latency_ns": 35},
    {"id": "e", "val_auc": 0.99, "lut": 500, "error": "StageError: ..."},  # failed: never on the front or picked
]


def test_pareto_front_on_validation_auc_vs_lut():
    assert pareto_front(ROWS) == ["a", "b", "d"]
    assert pareto_front([{"id": "x", "val_auc": 0.9, "lut": 5}, {"id": "y", "val_auc": 0.9, "lut": 5}]) == ["x", "y"]


def test_pick_by_validation_auc_never_test():
    assert pick_under_budget(ROWS, max_lut=5000)["id"] == "b"  # c has the better test AUC: not a criterion
    assert pick_under_budget(ROWS, max_lut=10000)["id"] == "d"
    assert pick_under_budget(ROWS, max_lut=10000, max_latency_ns=16)["id"] == "c"  # off the front, best within 16 ns
    assert pick_under_budget(ROWS, max_latency_ns=12)["id"] == "a"
    assert pick_under_budget(ROWS, max_latency_ns=20)["id"] == "b"
    tie = [{"id": "x", "val_auc": 0.9, "lut": 10}, {"id": "y", "val_auc": 0.9, "lut": 8}]
    assert pick_under_budget(tie)["id"] == "y"


def test_no_point_under_the_budget_is_an_error():
    with pytest.raises(NoPointFits, match=r"no point of the sweep fits the budget \(<= 800 LUT\).*Smallest: a"):
        pick_under_budget(ROWS, max_lut=800)
    with pytest.raises(NoPointFits, match="<= 5 ns"):
        pick_under_budget(ROWS, max_latency_ns=5)
    with pytest.raises(NoPointFits, match="no point of the sweep has results"):
        pick_under_budget([ROWS[-1]], max_lut=1e9)



def test_repeated_points_options_add_up_and_an_axis_twice_is_refused(repo):
    """`--points width=0.5 --points bits=3` is one point (the second option used to replace the first: the width
    axis fell back to its three defaults); the same axis named twice is an error, not the last one silently."""
    from trigger_kd.cli import build_parser
    from trigger_kd.config import load_config

    args = build_parser().parse_args(["front", "x.yml", "--points", "width=0.5", "--points", "bits=3"])
    assert args.points == ["width=0.5", "bits=3"]
    student = load_config(repo / "hls_configs/mlp_kd.yml").student
    assert [p.id for p in point_grid(student, parse_points(args.points, "brevitas"))] == ["w16-8_b3a6"]
    with pytest.raises(FrontError, match="width.*twice"):
        parse_points(["width=0.5", "bits=3", "width=1"], "brevitas")


def test_cli_refuses_bad_requests_before_any_work(repo, tmp_path, capsys):
    from trigger_kd.cli import main as cli

    out = tmp_path / "sweep"
    cfg = str(repo / "hls_configs/mlp_kd.yml")
    assert cli(["front", cfg, "--points", "depth=2", "--out", str(out)]) == 2
    assert cli(["front", cfg, "--points", "bits=1", "--out", str(out)]) == 2
    assert cli(["front", cfg, "--set", "data.jets_per_class=0", "--out", str(out)]) == 2
    assert cli(["front", cfg, "--workers", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "AXIS=V1,V2" in err and "not a valid bits" in err and "jets_per_class" in err and "--workers" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_point_task_reports_failures_as_rows(tmp_path):
    from trigger_kd.errors import TriggerKDError
    from trigger_kd.front.run import point_task

    def fails(cfg, run_dir):
        raise TriggerKDError("stage 'student' stopped: the disk is full")

    row = point_task(fails, None, str(tmp_path / "p"))
    assert row["error"] == "TriggerKDError: stage 'student' stopped: the disk is full" and "Traceback" in row["traceback"]
    # a run that leaves no metrics or resources is a failed point, not one silently left off the front
    row = point_task(lambda *a: None, None, str(tmp_path / "p"))
    assert "records no val_auc, test_auc, lut, latency_ns, parity_pct" in row["error"]
    with pytest.raises(KeyboardInterrupt):
        point_task(lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()), None, str(tmp_path))

# ----------------------------------------------------------------------------- a real sweep (slow)
TINY = FRONT  # tests/tiny.py: as tests/test_e2e.py, real jets to open-source synthesis, at tiny sizes


def _stage_times(run) -> dict:
    import json

    return {s: json.loads((run / s / "stamp.json").read_text())["finished"] + json.loads(
        (run / s / "stamp.json").read_text())["stamp"] for s in ("student", "export", "firmware", "synth")}


@pytest.mark.slow
def test_front_sweep_on_a_two_worker_local_cluster(tmp_path, repo, monkeypatch):
    import json

    from trigger_kd.cli import main as cli

    # the session cache (tests/conftest.py): the tiny data / teacher / transfer of the other end-to-end tests
    out = tmp_path / "sweep"
    args = ["front", str(repo / "hls_configs/mlp_kd.yml"), "--workers", "2", "--out", str(out),
            "--points", "width=0.5,1", "bits=3,6", *[a for s in TINY for a in ("--set", s)]]
    # no budget fits: a clear error, non-zero, nothing picked (and the sweep's results are kept)
    assert cli([*args, "--max-lut", "1"]) == 2
    front = json.loads((out / "front.json").read_text())
    assert front["picked"] is None and "no point of the sweep fits" in front["no_point_fits"]
    assert not (out / "picked.yml").exists()
    rows = {r["id"]: r for r in front["points"]}
    assert set(rows) == {"w4_b3a6", "w4_b6a8", "w8_b3a6", "w8_b6a8"}
    for r in rows.values():
        assert not r.get("error"), r
        assert 0.5 < r["val_auc"] <= 1 and 0.5 < r["test_auc"] <= 1 and 0 <= r["val_accuracy"] <= 1
        assert r["lut"] > 0 and r["ff"] > 0 and r["pipeline_stages"] >= 1
        assert r["latency_ns"] == r["pipeline_stages"] * 5.0 and r["parity_pct"] == 100.0
        assert r["rtl_parity_pct"] == 100.0 and r["yosys_lut"] is None  # points: da4ml's estimate, no Yosys
    assert front["git"]["commit"] and front["command"].startswith("trigger-kd front ")
    assert front["front"] and set(front["front"]) <= set(rows)
    assert "teacher" in front["reference_lines_val_auc"]
    assert (out / "front.png").stat().st_size > 5000
    # a budget between the smallest and the largest point: the best VALIDATION AUC within it is picked
    luts = sorted(r["lut"] for r in rows.values())
    budget = (luts[0] + luts[-1]) / 2
    before = {i: _stage_times(out / "points" / i) for i in rows}
    assert cli([*args, "--max-lut", str(budget), "--yosys"]) == 0
    assert {i: _stage_times(out / "points" / i) for i in rows} == before  # resumed: no stage reran
    front = json.loads((out / "front.json").read_text())
    fits = [r for r in front["points"] if r["lut"] <= budget]
    best = max(fits, key=lambda r: r["val_auc"])
    assert front["picked"]["id"] == best["id"] and front["picked"]["lut"] <= budget
    assert all(r["yosys_lut"] > 0 and r["yosys_ff"] > 0 for r in front["points"] if r["on_front"])
    assert all(r["yosys_lut"] is None for r in front["points"] if not r["on_front"])
    # `trigger-kd run` on the picked config in the point's run directory: the same student, export and firmware
    # (their stamps match: nothing retrains), synth with Yosys (the config's synth.yosys), firmware bit-exact on
    # every test jet, da4ml LUT within the budget
    run = out / "points" / best["id"]
    assert cli(["run", str(out / "picked.yml"), "--run-dir", str(run), "--no-progress"]) == 0
    after = _stage_times(run)
    assert {s: after[s] for s in ("student", "export", "firmware")} == {
        s: before[best["id"]][s] for s in ("student", "export", "firmware")}
    assert json.loads((run / "firmware" / "parity.json").read_text())["bit_exact_fraction"] == 1.0
    res = json.loads((run / "synth" / "resources.json").read_text())
    assert res["da4ml_estimate"] == best["lut"] <= budget and res["primary"]["kind"] == "open-source-synthesis"
    assert res["rtl_parity"]["bit_exact_fraction"] == 1.0
    assert (run / "report" / "report.md").is_file() and cli(["check-parity", str(run)]) == 0


@pytest.mark.slow
def test_synth_without_yosys_then_yosys_on_the_front(tmp_path):
    """synth.yosys false (the sweep's points): da4ml's LUT estimate and register bits, labelled, RTL still simulated
    bit-exact; `--yosys` then synthesises that RTL (front/yosys.py), cached by the synth stamp."""
    import json

    import numpy as np

    from trigger_kd.front.yosys import YOSYS_JSON, point_yosys
    from trigger_kd.models.intnet import Dense, FixedFormat, IntNet, Quant
    from trigger_kd.rundir import Resources
    from trigger_kd.synth.opensource import run_open_source

    rng = np.random.default_rng(0)
    net = IntNet(FixedFormat(True, 8, 5), (8,), [
        Dense(rng.integers(-8, 8, (4, 8)), 3, rng.integers(-300, 300, 4), 8),
        Quant(FixedFormat(False, 6, 3), relu=True),
        Dense(rng.integers(-8, 8, (2, 4)), 3, rng.integers(-60, 60, 2), 6),
    ], name="mlp_student")
    x = rng.integers(-140, 140, (200, 8)) * 2.0**-5
    synth = tmp_path / "point" / "synth"
    res = run_open_source(net, x, synth, part="xcvu13p-flga2577-2-e", clock_period=5.0, sim_jets=0,
                          reference_logits=net.evaluate(x), yosys=False)
    r = res.record
    assert r.kind == "da4ml-estimate" and "no synthesis: synth.yosys false" in r.source
    assert r.lut == round(res.da4ml_estimate) and r.ff == r.extra["da4ml_register_bits"] > 0
    assert res.rtl_parity["bit_exact_fraction"] == 1.0 and not (synth / "logs" / "yosys.log").exists()
    Resources(primary=r.to_dict(), records=[r.to_dict()], rtl_parity=res.rtl_parity,
              da4ml_estimate=res.da4ml_estimate, route="open-source").write(synth / "resources.json")
    (synth / "stamp.json").write_text(json.dumps({"stamp": "s1"}))
    y = point_yosys(str(tmp_path / "point"), "xcup")
    assert y["yosys_lut"] > 0 and 0 < y["yosys_ff"] <= r.ff  # Yosys may trim constant register bits
    assert json.loads((tmp_path / "point" / YOSYS_JSON).read_text())["synth_stamp"] == "s1"
    assert point_yosys(str(tmp_path / "point"), "xcup")["log"] == y["log"]  # cached
    # a damaged cache of the same synth stamp is not used: Yosys runs again and its figures replace the damage
    cached = json.loads((tmp_path / "point" / YOSYS_JSON).read_text())
    (tmp_path / "point" / YOSYS_JSON).write_text(json.dumps({**cached, "yosys_lut": -7, "yosys_ff": "abc"}))
    again = point_yosys(str(tmp_path / "point"), "xcup")
    assert (again["yosys_lut"], again["yosys_ff"]) == (y["yosys_lut"], y["yosys_ff"])
    assert json.loads((tmp_path / "point" / YOSYS_JSON).read_text())["yosys_lut"] == y["yosys_lut"]


def test_k_class_points_rank_on_their_validation_accuracy():
    """A K-class sweep's rows carry val_score = the validation accuracy (record.py ranking_metric): the front and the
    pick follow it, not the macro AUC beside it."""
    rows = [{"id": "a", "metric": "accuracy", "val_score": 0.70, "val_auc": 0.95, "lut": 1000},
            {"id": "b", "metric": "accuracy", "val_score": 0.72, "val_auc": 0.90, "lut": 2000},
            {"id": "c", "metric": "accuracy", "val_score": 0.71, "val_auc": 0.99, "lut": 3000}]
    assert pareto_front(rows) == ["a", "b"]
    assert pick_under_budget(rows, max_lut=5000)["id"] == "b"
    assert pick_under_budget(rows, max_lut=1500)["id"] == "a"
