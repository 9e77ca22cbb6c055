"""The report a trigger engineer reads, from stage outputs (a real Vitis HLS report as the resource record)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trigger_kd.cli import main as cli
from trigger_kd.report.build import build_report
from trigger_kd.synth.reports import parse_report

VITIS_HLS = Path(__file__).parent / "fixtures" / "reports" / "vitis_hls_2022.2_myproject_csynth.xml"


def _metrics(acc: float, alpha: float, scratch_acc: float | None = None) -> dict:
    m = {"accuracy": acc, "auc": acc + 0.05, "rej30": 40.0, "rej50": 12.5, "n_jets": 1000}
    rob = {"boost": [{"beta": b, "accuracy": acc - b / 10, "auc": 0.9} for b in (0.0, 0.1)], "smear": [], "n_jets": 1000}
    scratch_rob = {**rob, "boost": [{"beta": b, "accuracy": 0.8 - b, "auc": 0.9} for b in (0.0, 0.1)]}
    return {"model": "x", "arch": "mlp", "framework": "brevitas", "distill": {"alpha": alpha, "temperature": 3.0},
            "seed": 7, "n_training_jets": {"labelled": 6000, "transfer": 2000, "boosted_views": 4},
            "n_test_jets": 1000, "inputs": {"n_particles": 16, "features": ["2*pt/pt_jet", "2*deta", "2*dphi", "mass_gev",
                                                                        "ln_pt_jet_tev"], "layout": "flat", "shape": [80],
                                              "saturated_jets": {"training": {},
                                                                 "test": {"2*deta": 0.0, "ln_pt_jet_tev": 0.0042}}},
            "teacher": {**m, "accuracy": 0.94}, "student": m, "student_float": m,
            "robustness": {"student": rob, "student_scratch": scratch_rob}, "source": "1000 test jets",
            **({"student_scratch": {**m, "accuracy": scratch_acc}} if scratch_acc is not None else {})}


def _run_dir(root: Path, name: str, acc: float, alpha: float, with_synth: bool, scratch_acc=None) -> Path:
    run = root / name
    for d in ("student", "firmware", "synth"):
        (run / d).mkdir(parents=True)
    (run / "student" / "metrics.json").write_text(json.dumps(_metrics(acc, alpha, scratch_acc)))
    (run / "firmware" / "parity.json").write_text(json.dumps({
        "n_jets": 1000, "bit_exact_fraction": 1.0, "max_abs_diff": 0.0, "first_mismatch_layer": None,
        "float_agreement": {"decision_agreement": 0.98, "max_score_diff": 0.2, "auc_quantized": 0.9, "auc_float": 0.91}}))
    if with_synth:
        rec = parse_report(VITIS_HLS)[0].to_dict()
        (run / "synth" / "resources.json").write_text(json.dumps({"primary": rec, "records": [rec], "notes": []}))
    return run


def test_report_carries_vendor_numbers_and_sources(tmp_path):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=True, scratch_acc=0.86)
    report = build_report(run, run / "report", "mlp_kd")
    res = report["resources"]
    assert res["source"] == "Vitis HLS 2022.2 csynth" and res["kind"] == "hls-estimate"
    assert (res["lut"], res["dsp"], res["latency_cycles"], res["interval_max"]) == (116694, 2557, 15, 1)
    kd = report["physics"]["kd_vs_scratch"]
    assert abs(kd["delta"]["accuracy"] - 0.02) < 1e-12
    md = (run / "report" / "report.md").read_text()
    assert "116,694" in md and "75.0 ns / 15 cyc" in md and "Vitis HLS 2022.2 csynth" in md
    assert "100.000 % bit-exact" in md and "KD vs scratch: accuracy +0.0200" in md
    # the report opens with what distillation bought: KD student, scratch twin and teacher, seed named
    assert md.index("## What distillation bought") < md.index("## At a glance")
    assert "student seed 7" in md and "2000 transfer jets, 4 boosted views" in md
    assert "| KD student (quantised) | 0.8800 |" in md and "| scratch twin (quantised) | 0.8600 |" in md
    assert "| teacher | 0.9400 |" in md and "acc @ boost 0.1" in md and "| 0.7000 |" in md  # scratch at beta 0.1
    assert (run / "report" / "resources.png").stat().st_size > 1000
    assert "Inputs: the 16 leading constituents (pT order, zero-padded), 5 features each" in md and "`ln_pt_jet_tev`" in md
    assert "Input range: `ln_pt_jet_tev` saturates the input quantiser in 0.42 % of the test jets." in md


def test_missing_figures_are_reported_missing(tmp_path):
    run = _run_dir(tmp_path, "deepset_kd", 0.87, 1.0, with_synth=False)
    _run_dir(tmp_path, "deepset_scratch", 0.86, 0.0, with_synth=False)  # a sibling run: not this run's, not read
    report = build_report(run, run / "report", "deepset_kd")
    assert report["resources"] is None and "kd_vs_scratch" not in report["physics"]
    md = (run / "report" / "report.md").read_text()
    assert "Synthesis stage not run" in md and "n/a" in md and "no scratch twin in this run" in md
    assert "Arithmetic: teacher: not recorded; student: not recorded." in md  # run dirs written before the record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deepset_kd", "deepset_scratch"]  # wrote only in its own run


def test_side_by_side_comparison(tmp_path, capsys):
    runs = [_run_dir(tmp_path, n, a, 0.7, s) for n, a, s in (("mlp_kd", 0.88, True), ("deepset_kd", 0.87, False))]
    for r in runs:
        build_report(r, r / "report", r.name)
    assert cli(["report", *map(str, runs), "--print"]) == 0
    out = capsys.readouterr().out
    assert "| mlp_kd | 0.880 |" in out and "| deepset_kd | 0.870 |" in out
    assert (tmp_path / "comparison.md").is_file() and (tmp_path / "comparison_resources.png").is_file()
    assert cli(["report", str(tmp_path / "nothing")]) == 2


def test_jet_mass_baselines_are_rows_of_the_physics_table(tmp_path):
    """The jet mass of the student's own inputs and of all constituents, on the same test jets, sit beside the
    networks; the report says what the network adds over the mass of its own inputs."""
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    metrics = json.loads((run / "student" / "metrics.json").read_text())
    metrics["baselines"] = {
        "jet_mass_inputs": {"what": "jet mass of the 16 leading constituents (the student's inputs)",
                            "cut": {"threshold": 95.31, "chosen_on": "val", "n_jets": 400, "val_accuracy": 0.86},
                            "test": {"accuracy": 0.85, "auc": 0.9156, "rej30": 30.0, "rej50": 10.0, "n_jets": 1000}},
        "jet_mass_all": {"what": "jet mass of all stored constituents",  # a record from before the cut: mass > 0.5
                         "test": {"accuracy": 0.5, "auc": 0.9020, "rej30": 25.0, "rej50": 9.0, "n_jets": 1000}}}
    (run / "student" / "metrics.json").write_text(json.dumps(metrics))
    report = build_report(run, run / "report", "mlp_kd")
    assert report["physics"]["baselines"]["jet_mass_inputs"]["test"]["auc"] == 0.9156
    md = (run / "report" / "report.md").read_text()
    assert "| baseline: jet mass of the 16 leading constituents (the student's inputs) | 0.8500 | 0.9156 |" in md
    assert "| baseline: jet mass of all stored constituents | — | 0.9020 |" in md and "0.5000" not in md
    assert ("that of the mass cut maximising the accuracy on the 400 validation jets, applied to the test jets (jet "
            "mass of the 16 leading constituents (the student's inputs): mass > 95.3 GeV)") in md
    assert "What the network adds: the quantised student's AUC is +0.0144 over the jet mass of its own 16" in md
    assert "| jet-mass AUC (own inputs) |" in md and "| 0.9156 |" in md


def test_quantisation_section_shows_uniform_formats_and_learned_bit_widths(tmp_path):
    """The deployed student's number formats: uniform ones (Brevitas/QKeras) with the share of zero weights,
    learned ones (HGQ2) with mean/max bits per layer, pruned weights and EBOPs (total summed)."""
    uniform = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    (uniform / "student" / "quant_layers.json").write_text(json.dumps([
        {"layer": "input", "type": "fixed<10,2>"},
        {"layer": "0:dense", "shape": [32, 64], "weight_frac_bits": 2, "max_abs_weight_int": 2, "zero_weights": 0.6494},
        {"layer": "1:quant+relu", "type": "ufixed<6,3>"}]))
    md = build_report(uniform, uniform / "report", "mlp_kd") and (uniform / "report" / "report.md").read_text()
    assert "### Quantisation" in md and "Uniform bit widths" in md
    assert "| 0:dense | weights 2^-2 steps | 32 x 64 | 2 | 64.9 % |" in md and "| 1:quant+relu | ufixed<6,3> |" in md
    learned = _run_dir(tmp_path, "mlp_kd_hgq", 0.88, 0.7, with_synth=False)
    (learned / "student" / "quant_layers.json").write_text(json.dumps([
        {"layer": "dense", "units": 32, "weight_bits_mean": 2.31, "weight_bits_max": 5.0, "weights_zero_bits": 700,
         "input_bits_mean": 7.5, "input_bits_max": 10.0, "ebops": 4100.4},
        {"layer": "dense_1", "units": 2, "weight_bits_mean": 3.0, "weight_bits_max": 4.0, "weights_zero_bits": 3,
         "input_bits_mean": 4.0, "input_bits_max": 6.0, "ebops": 99.7}]))
    report = build_report(learned, learned / "report", "mlp_kd_hgq")
    assert report["quantisation"]["learned_bit_widths"] and report["quantisation"]["ebops_total"] == pytest.approx(4200.1)
    md = (learned / "report" / "report.md").read_text()
    assert "Learned bit widths (HGQ2)" in md and "Total EBOPs 4200" in md
    assert "| dense | 32 | 2.31 / 5 | 700 | 7.50 / 10 | 4100 |" in md
    (learned / "student" / "quant_layers.json").write_text("not json")  # unreadable: the section is left out
    assert build_report(learned, learned / "report", "mlp_kd_hgq")["quantisation"] is None


def test_a_twin_outside_the_ebops_bound_is_called_not_equal_cost(tmp_path):
    """student.max_ebops: the KD student kept an epoch within the bound, the scratch twin its best of all at more
    EBOPs; the report says that the KD vs scratch difference is not at equal cost (and not when both are within)."""
    run = _run_dir(tmp_path, "mlp_kd_hgq", 0.88, 0.7, with_synth=False, scratch_acc=0.87)

    def curve(twin_stopped):
        row = {"epoch": 3, "val_auc": 0.9, "val_loss": 0.3}
        return {"monitor": "val_auc", "models": {
            "student": {"best_epoch": 3, "epochs": 5, "stopped": "max_epochs", "history": [{**row, "ebops": 9000.0}]},
            "student_scratch": {"best_epoch": 3, "epochs": 5, "stopped": twin_stopped,
                                "history": [{**row, "ebops": 52000.0}]}}}

    (run / "student" / "epoch_curve.json").write_text(json.dumps(curve(
        "max_epochs; no epoch within student.max_ebops=10000: kept the best of all")))
    build_report(run, run / "report", "mlp_kd_hgq")
    md = (run / "report" / "report.md").read_text()
    assert "Not at equal cost" in md and "52000 EBOPs, against 9000" in md
    (run / "student" / "epoch_curve.json").write_text(json.dumps(curve("max_epochs")))
    build_report(run, run / "report", "mlp_kd_hgq")
    assert "Not at equal cost" not in (run / "report" / "report.md").read_text()


def _k_class_metrics(acc: float, k_scratch: float) -> dict:
    """A K-class student's metrics.json, as train/multiclass.py writes them (two signal classes)."""
    classes = ["gluon", "q", "top"]

    def model(a):
        return {"accuracy": a, "auc": a + 0.2, "n_jets": 90,
                "per_class": {c: {"auc": a + 0.1 * i, "n_jets": 30, "efficiency": a, "purity": a}
                              for i, c in enumerate(classes)},
                "confusion": {"classes": classes, "counts": [[20, 5, 5], [6, 20, 4], [2, 3, 25]]},
                "rejection": {"top": {"against": ["gluon", "q"], "rej30": 50.0, "rej50": 11.0}}}

    base = {"what": "BDT on substructure", "test": model(0.5), "val": model(0.5)}
    return {"model": "k", "framework": "hgq", "arch": "mlp", "n_test_jets": 90, "source": "90 test jets",
            "teacher": model(0.8), "student": model(acc), "student_float": model(acc), "student_scratch": model(k_scratch),
            "baselines": {"jet_mass_inputs": {**base, "what": "BDT on the jet mass"}, "substructure": base},
            "task": {"outputs": classes, "multiclass": True, "describe": "3 classes: gluon, q, top",
                     "monitor": "val_accuracy"}}


def test_a_k_class_report_has_per_class_figures_confusion_and_both_baselines(tmp_path):
    run = _run_dir(tmp_path, "k", 0.7, 0.7, True)
    (run / "student" / "metrics.json").write_text(json.dumps(_k_class_metrics(0.7, 0.6)))
    build_report(run, run / "report", "k")
    md = (run / "report" / "report.md").read_text()
    for words in ("3 classes: gluon, q, top", "validation accuracy", "| top: 1/eB@30% |", "### Per class",
                  "| true \\ predicted | gluon | q | top |", "| gluon | 20 (66.7 %) | 5 (16.7 %) | 5 (16.7 %) |",
                  "baseline: BDT on substructure", "baseline: BDT on the jet mass", "What distillation bought, per class",
                  "| top | 0.9000 | 0.8000 | +0.1000 |", "over the substructure classifier"):
        assert words in md, words
    assert "1/eB @ eS=30%" not in md  # binary columns are not shown for K classes
    # side by side with a binary run: one table each, and the per-class comparison
    binary = _run_dir(tmp_path, "b", 0.88, 0.7, True)
    build_report(binary, binary / "report", "b")
    assert cli(["report", str(run), str(binary), "--out", str(tmp_path / "cmp.md")]) == 0
    cmp = (tmp_path / "cmp.md").read_text()
    assert "| k | 0.7000 | 0.9000 | 0.5000 | logits |" in cmp and "| b | 0.880 |" in cmp
    assert "| k | 0.7000 (+0.1000 KD) |" in cmp and "| k | 50.0 | 11.0 |" in cmp


def test_a_comparison_answers_for_every_run_asked_or_refuses(tmp_path, capsys):
    runs = [_run_dir(tmp_path, n, 0.8, 0.7, True) for n in ("a", "b")]
    for r in runs:
        build_report(r, r / "report", r.name)
    out = tmp_path / "cmp.md"
    assert cli(["report", str(runs[0]), str(tmp_path / "gone"), str(runs[1]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "gone" in err and "1 of the 3 runs" in err and "nothing was written" in err
    assert not out.exists()


def _data_record(run: Path, test_sha: str) -> None:
    """The data stage's manifest, as the runner writes it: what the 'same test jets' check reads."""
    (run / "data").mkdir()
    (run / "data" / "manifest.json").write_text(json.dumps(
        {"files": {"test.h5": {"size": 2000, "sha256": test_sha}, "val.h5": {"size": 2000, "sha256": "v"}}}))


def test_where_it_sits_shows_the_taggers_beside_it_on_the_same_test_jets_only(tmp_path):
    """Sibling run directories with a report: figures where their data stage recorded the same test jets,
    "not comparable" where not (no number), "not read" where the report's resource record is damaged."""
    pick = _run_dir(tmp_path, "mlp_kd_hgq_10k", 0.8876, 1.0, with_synth=True)
    other = _run_dir(tmp_path, "deepset_kd", 0.8612, 1.0, with_synth=True)
    damaged = _run_dir(tmp_path, "mlp_kd_qkeras", 0.8512, 1.0, with_synth=True)
    for run, sha in ((pick, "same"), (other, "other"), (damaged, "same")):
        _data_record(run, sha)
        build_report(run, run / "report", run.name)
    broken = json.loads((damaged / "report" / "report.json").read_text())
    broken["resources"]["lut"] = -5
    (damaged / "report" / "report.json").write_text(json.dumps(broken))
    run = _run_dir(tmp_path, "mlp_kd", 0.8812, 0.7, with_synth=True)
    _data_record(run, "same")
    report = build_report(run, run / "report", "mlp_kd")
    by_name = {s["model"]: s for s in report["standing"]["siblings"]}
    assert [by_name[m]["comparable"] for m in ("mlp_kd_hgq_10k", "deepset_kd", "mlp_kd_qkeras")] == [True, False, False]
    assert by_name["mlp_kd_hgq_10k"]["value"] == pytest.approx(0.9376) and by_name["mlp_kd_hgq_10k"]["lut"] == 116694
    assert "value" not in by_name["deepset_kd"] and "lut" not in by_name["deepset_kd"]  # no number from other jets
    md = (run / "report" / "report.md").read_text()
    section = md[md.index("## Where it sits"):md.index("## Physics")]
    assert "| **mlp_kd** (this run) | 0.9312 | 116,694 | Vitis HLS 2022.2 csynth | 75.0 ns / 15 cyc |" in section
    assert "| mlp_kd_hgq_10k | 0.9376 | 116,694 | Vitis HLS 2022.2 csynth | 75.0 ns / 15 cyc |" in section
    assert "| deepset_kd | not comparable: other test jets |" in section and "0.9112" not in section
    assert "| mlp_kd_qkeras | not read: its resource record is damaged" in section and "0.9012" not in section
    assert "make synth MODEL" not in section  # the front's pick is there


def test_where_it_sits_without_siblings_says_how_to_build_the_fronts_pick(tmp_path):
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    (tmp_path / "notes").mkdir()  # a folder without a report is no tagger
    report = build_report(run, run / "report", "mlp_kd")
    assert report["standing"]["siblings"] == []
    md = (run / "report" / "report.md").read_text()
    assert "No other tagger with a report under" in md and "`make synth MODEL=mlp_kd_hgq_10k`" in md


def test_where_it_sits_does_not_read_a_sibling_run_that_is_not_one_consistent_run(tmp_path):
    sibling = _run_dir(tmp_path, "mlp_kd_hgq_10k", 0.89, 1.0, with_synth=False)
    build_report(sibling, sibling / "report", sibling.name)
    (sibling / ".trigger-kd-run").write_text("made by trigger-kd run\n")  # the runner's, with no completed stage
    run = _run_dir(tmp_path, "mlp_kd", 0.88, 0.7, with_synth=False)
    build_report(run, run / "report", "mlp_kd")
    md = (run / "report" / "report.md").read_text()
    section = md[md.index("## Where it sits"):md.index("## Physics")]
    assert "| mlp_kd_hgq_10k | not read: the report stage has not completed in" in section and "0.9400" not in section
