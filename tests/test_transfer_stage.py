"""The transfer stage on real generated jets and a real (tiny) teacher: transfer set, boosted views, caching."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trigger_kd.cli import main as cli
from trigger_kd.data.boost import apply_matrices, boost_matrices
from trigger_kd.data.formats import read_canonical
from trigger_kd.data.sanity import jet_hashes
from trigger_kd.data.transfer import read_transfer
from trigger_kd.train.teacher import load_teacher, teacher_logits
from tiny import TRANSFER

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TINY = TRANSFER  # tests/tiny.py; each test sets its own transfer set


def _run(run_dir, *extra) -> int:
    args = ["run", str(REPO / "hls_configs" / "mlp_kd.yml"), "--to", "transfer", "--run-dir", str(run_dir),
            "--no-progress"]
    for s in [*TINY, *extra]:
        args += ["--set", s]
    return cli(args)


def test_transfer_jets_and_boosted_views(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(run, "distill.transfer_jets_per_class=50", "distill.augment_max_beta=0.5",
                "distill.augment_views=2") == 0
    out = run / "transfer"
    c_tr = read_transfer(out / "transfer.h5")
    train, _ = read_canonical(run / "data" / "train.h5")
    assert c_tr.shape == (100, train.shape[1], 4)
    overlap = json.loads((out / "overlap.json").read_text())
    assert overlap["transfer_jets"] == 100 and overlap["shared_with_test"] == 0
    every = np.concatenate([read_canonical(run / "data" / f"{s}.h5")[0] for s in ("train", "val", "test")])
    assert not np.isin(jet_hashes(c_tr), jet_hashes(every)).any()
    teacher = load_teacher(run / "teacher" / "teacher.pt")
    np.testing.assert_allclose(np.load(out / "logits_transfer.npy"), teacher_logits(teacher, c_tr, 8, progress=False),
                               atol=1e-5)
    betas = np.load(out / "view_betas_train.npy")
    views = np.load(out / "logits_views_train.npy")
    assert betas.shape == (2, len(train), 3) and views.shape == (2, len(train), 2)
    assert np.linalg.norm(betas, axis=-1).max() <= 0.5
    assert np.load(out / "logits_views_transfer.npy").shape == (2, 100, 2)
    # view 1's logits are the teacher's on the boosted jets (beams unboosted), not on the jets themselves
    boosted = apply_matrices(train[:20, :8], boost_matrices(betas[1, :20])).astype(np.float32)
    np.testing.assert_allclose(views[1, :20], teacher_logits(teacher, boosted, 8, progress=False), atol=1e-5)
    plain = np.load(run / "teacher" / "logits_train.npy")[:20]
    assert np.abs(views[1, :20] - plain).max() > 1e-3
    # the stage is keyed by its own keys only: a new alpha reuses it, a new transfer size does not
    capsys.readouterr()
    assert _run(run, "distill.transfer_jets_per_class=50", "distill.augment_max_beta=0.5",
                "distill.augment_views=2", "distill.alpha=0.3") == 0
    assert "[transfer] up to date" in capsys.readouterr().err
    assert _run(tmp_path / "other", "distill.transfer_jets_per_class=60") == 0
    assert "[transfer] running" in capsys.readouterr().err
    c60 = read_transfer(tmp_path / "other" / "transfer" / "transfer.h5")
    assert len(c60) == 120 and not (tmp_path / "other" / "transfer" / "view_betas_train.npy").exists()
    assert np.isin(jet_hashes(c_tr), jet_hashes(c60)).all()  # the transfer pool grows, keeping its jets


def test_transfer_from_unlabelled_files_refuses_evaluation_jets(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(run) == 0
    assert not (run / "transfer" / "transfer.h5").exists()  # nothing asked: nothing computed
    leak = str(run / "data" / "test.h5")
    assert _run(run, f"distill.transfer_paths=[{leak}]") != 0
    assert "are also test jets" in capsys.readouterr().err
    # from scratch (alpha 0): no teacher targets, so no transfer jets and no teacher logits; the views' boosts stay
    assert _run(run, f"distill.transfer_paths=[{leak}]", "distill.alpha=0", "distill.augment_max_beta=0.3",
                "distill.augment_views=1") == 0
    assert "transfer jets skipped" in capsys.readouterr().err
    out = run / "transfer"
    assert not (out / "transfer.h5").exists() and not (out / "logits_views_train.npy").exists()
    assert np.load(out / "view_betas_train.npy").shape[:2] == (1, len(read_canonical(run / "data" / "train.h5")[1]))


def test_student_distilled_on_transfer_jets_boosted_views_and_seal(tmp_path):
    """The acceptance run, smaller: every model in metrics.json with its robustness, the scratch twin included."""
    run = tmp_path / "run"
    extra = ["distill.transfer_jets_per_class=50", "distill.augment_max_beta=0.5", "distill.augment_views=2",
             "student.seal_lambda=0.1", "student.epochs=1", "student.n_particles=4", "student.mlp_hidden=[8]",
             "student.jet_pt_feature=true"]
    args = ["run", str(REPO / "hls_configs" / "mlp_kd.yml"), "--to", "student", "--run-dir", str(run), "--no-progress"]
    for s in [*TINY, *extra]:
        args += ["--set", s]
    assert cli(args) == 0
    m = json.loads((run / "student" / "metrics.json").read_text())
    names = ("teacher", "student", "student_float", "student_scratch")
    for name in names:
        assert {"accuracy", "auc", "rej30", "rej50"} <= set(m[name]) and m[name]["n_jets"] == m["n_test_jets"]
        assert [b["beta"] for b in m["robustness"][name]["boost"]] == [0.0, 0.1, 0.2, 0.3, 0.5]
        assert m["validation"][name]["n_jets"] == 40
    train = m["training"]
    n_train = m["n_training_jets"]["labelled"]
    assert m["n_training_jets"] == {"labelled": n_train, "transfer": 100, "boosted_views": 2}
    assert train["student"]["jets"] == train["student_float"]["jets"] == n_train + 100
    assert train["student_scratch"]["jets"] == n_train  # no teacher: no transfer jets
    assert m["distill"]["augment_max_beta"] == 0.5 and m["seal"]["lambda"] == 0.1
    assert (run / "student" / "student_scratch.pt").is_file()
    saturated = m["inputs"].pop("saturated_jets")
    assert m["inputs"] == {"n_particles": 4, "features": ["2*pt/pt_jet", "2*deta", "2*dphi", "mass_gev", "ln_pt_jet_tev"],
                           "layout": "flat", "shape": [20]}  # the jet's ln(pT / TeV) on each of the 4 constituents
    assert saturated["training"]["ln_pt_jet_tev"] == 0.0 and max(saturated["test"].values()) <= 0.01  # 550-650 GeV jets
