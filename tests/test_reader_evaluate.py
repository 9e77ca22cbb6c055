"""`trigger-kd evaluate` and `trigger-kd diagnose` validate what they read before any work (issue 35;
trigger_kd/generalisation/inputs.py): properties over generated inputs, not one test per case.

- The jet file evaluate scores: a generator of damaged files (all-zero, MeV units, (px, py, pz, E) order, one
  particle per jet, jets cut to 2 constituents, constituents out of pT order, NaN/inf, negative energies, beyond
  float32, no jets, one jet, one class, all jets equal, text values, a K-class file, a wrong layout attribute, no
  labels); each is refused with one line by the data stage's own checks, as the data stage refuses it, and healthy
  files (also of jets with fewer constituents than the model reads) load with no warning.
- Jets the run trained on are recognised whatever the order or number of constituents a file stores.
- The arguments of diagnose and evaluate: each bad one refused with one line, exit 2, before any work (here: before
  the run directory, which does not exist, is even looked at) and without writing anything.
(The same files through `trigger-kd evaluate` on a real run: tests/test_generalisation.py, slow.)"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from trigger_kd.cli import main as cli
from trigger_kd.data.formats import sort_and_pad
from trigger_kd.errors import TriggerKDError
from trigger_kd.generalisation.diagnose import diagnose
from trigger_kd.generalisation.evaluate import evaluate_run
from trigger_kd.generalisation.inputs import jet_keys, read_scored_jets, unseen_mask

P, NEEDS = 20, 16  # stored constituents per jet; what the (pretend) teacher reads


def healthy(n: int = 40, seed: int = 0, multiplicity: tuple[int, int] = (P, P)) -> tuple[np.ndarray, np.ndarray]:
    """(n, P, 4) pT-ordered massless constituents around +x (jet pT ~ 600 GeV, masses of tens of GeV), top and qcd
    jets alternating; each jet keeps a random number of constituents in ``multiplicity`` (the rest: padding)."""
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(n) % 2 == 0, 8.0, 4.0)[:, None, None]
    p3 = rng.normal(size=(n, P, 3)) * spread + np.array([40.0, 0.0, 0.0])
    c = sort_and_pad(np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1), P)
    keep = rng.integers(multiplicity[0], multiplicity[1] + 1, size=n)
    c[np.arange(P)[None, :] >= keep[:, None]] = 0.0
    return c, np.where(np.arange(n) % 2 == 0, "top", "qcd")


def write(path, c, names, **datasets):
    """A canonical file; ``datasets`` replace (None: leave out) or add datasets, ``attr_*`` set attributes."""
    base = {"constituents": c, "is_signal": (np.asarray(names) == "top").astype(np.int8),
            "jet_class": np.asarray(names).astype("S8"), "attr_layout": "E,px,py,pz GeV"}
    with h5py.File(path, "w") as f:
        for key, value in {**base, **datasets}.items():
            if value is None:
                continue
            if key.startswith("attr_"):
                f.attrs[key[5:]] = value
            else:
                f[key] = value
    return path


def shuffled(c, seed=1):
    rng = np.random.default_rng(seed)
    out = c.copy()
    for i in range(len(out)):
        n = int(np.any(out[i] != 0, axis=-1).sum())
        out[i, :n] = out[i, rng.permutation(n)]
    return out


def cut(c, k):
    out = np.zeros_like(c)
    out[:, :k] = c[:, :k]
    return out


def _damaged():
    """name -> (constituents, names, extra datasets, what the one-line refusal says)."""
    c, names = healthy()
    neg = c.copy()
    neg[..., 0] *= -1.0
    nan, inf = c.copy(), c.copy()
    nan[3, 2, 1], inf[5, 0, 0] = np.nan, np.inf
    equal = np.repeat(c[:1], len(c), axis=0)
    return {
        "all zero": (np.zeros_like(c), names, {}, "empty"),
        "MeV units": (c * 1000.0, names, {}, "MeV"),
        "px,py,pz,E order": (c[..., [1, 2, 3, 0]], names, {}, r"\(px, py, pz, E\)"),
        "one particle per jet": (cut(c, 1), names, {}, "single constituent"),
        "cut to 2 constituents": (cut(c, 2), names, {}, "cut to 2 constituents"),
        "out of pT order": (shuffled(c), names, {}, "not in pT order"),
        "NaN": (nan, names, {}, "NaN/inf"),
        "inf": (inf, names, {}, "NaN/inf"),
        "negative energies": (neg, names, {}, "E < |p|"),
        "beyond float32": (c.astype(np.float64) * 1e38, names, {}, "beyond float32"),
        "huge energies": (c * 300.0, names, {}, "above|implausible"),
        "no jets": (c[:0], names[:0], {}, "no jets"),
        "one jet": (c[:1], names[:1], {}, "both signal and background"),
        "one class": (c[names == "qcd"], names[names == "qcd"], {}, "all 20 jets are background"),
        "all jets equal": (equal, names, {}, "copies of one jet"),
        "text constituents": (c.astype("S8"), names, {}, "must hold numbers"),
        "2D constituents": (c[..., 0], names, {}, r"\(N, P, 4\)"),
        "K classes": (c, names, {"label": (names == "top").astype(np.int8), "attr_classes": "qcd,top"}, "2-class"),
        "MeV layout": (c, names, {"attr_layout": "E,px,py,pz MeV"}, "layout"),
        "no labels": (c, names, {"is_signal": None, "jet_class": None}, "no dataset 'is_signal'"),
        "labels contradict": (c, names, {"is_signal": (np.arange(len(c)) % 4 == 0).astype(np.int8)}, "contradict"),
    }


@pytest.mark.parametrize("case", list(_damaged()))
def test_every_damaged_jet_file_is_refused_with_one_line(tmp_path, case):
    c, names, extra, says = _damaged()[case]
    path = write(tmp_path / "jets.h5", c, names, **extra)
    with pytest.raises(TriggerKDError, match=says) as err:
        read_scored_jets(path, NEEDS, "the teacher")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("multiplicity", [(P, P), (5, 12), (2, 30 // 2)])
def test_healthy_jets_load_without_a_word_also_with_fewer_constituents_than_the_model_reads(tmp_path, multiplicity):
    c, names = healthy(60, seed=2, multiplicity=multiplicity)
    got, y, got_names, warnings = read_scored_jets(write(tmp_path / "jets.h5", c, names), NEEDS, "the teacher")
    assert warnings == [] and np.array_equal(got, c.astype(np.float32)) and list(got_names) == list(names)
    assert y.tolist() == (names == "top").astype(int).tolist()


def test_a_few_jets_of_one_multiplicity_are_not_taken_for_a_cut_file(tmp_path):
    c, names = healthy(4, seed=5)
    c = cut(c, 10)  # 4 jets of 10 constituents: chance, not a cut (at least 5 jets, over 25 %, at the largest)
    assert len(read_scored_jets(write(tmp_path / "few.h5", c, names), NEEDS, "the teacher")[0]) == 4
    c, names = healthy(5, seed=5)
    with pytest.raises(TriggerKDError, match="cut to 10 constituents"):
        read_scored_jets(write(tmp_path / "five.h5", cut(c, 10), names), NEEDS, "the teacher")


def test_what_is_not_a_jet_file_is_refused_with_one_line(tmp_path):
    text = tmp_path / "jets.h5"
    text.write_text("E,px,py,pz\n1,2,3,4\n")
    for path, says in ((text, "not a readable HDF5 file"), (tmp_path, "is a directory"),
                       (tmp_path / "gone.h5", "not found")):
        with pytest.raises(TriggerKDError, match=says) as err:
            read_scored_jets(path, NEEDS, "the teacher")
        assert "\n" not in str(err.value)


def test_a_borderline_file_is_read_with_the_warning_the_result_carries(tmp_path):
    c, names = healthy(40)
    c[:4] = cut(c[:4], 1)  # 4 of 20 jets per class of one constituent: above the 5 % the data stage warns at
    warnings = read_scored_jets(write(tmp_path / "jets.h5", c, names), NEEDS, "the teacher")[3]
    assert warnings and all("single constituent" in w for w in warnings)


def test_a_jet_is_known_whatever_the_order_and_number_of_its_stored_constituents():
    a, _ = healthy(30, seed=3)
    b, _ = healthy(10, seed=4)
    assert len(set(jet_keys(a).tolist())) == 30
    assert np.array_equal(jet_keys(shuffled(a)), jet_keys(a))  # order within a jet: the same jet
    assert np.array_equal(jet_keys(a[:, :10]), jet_keys(a))  # fewer stored constituents: the same jet
    assert np.array_equal(jet_keys(np.where(a == 0, -0.0, a)), jet_keys(a))  # -0.0 is 0.0
    mixed = np.concatenate([b[:3], shuffled(a[[2, 7]]), b[3:]])
    assert unseen_mask(mixed, [a]).tolist() == [True] * 3 + [False] * 2 + [True] * 7
    assert unseen_mask(b, []).all() and unseen_mask(b, [a[:0]]).all()
    moved = a.copy()
    moved[0, 0, 1] += 1.0  # one value changed: another jet
    assert unseen_mask(moved, [a]).tolist() == [True] + [False] * 29


BAD_DIAGNOSE = [("--power-iterations", "0"), ("--power-iterations", "-1"), ("--trace-samples", "0"),
                ("--trace-samples", "1"), ("--compress-epochs", "-5"), ("--compress-epochs", "0"),
                ("--curvature-jets", "0"), ("--seed", "-1"), ("--power-iterations", "1000000000")]


@pytest.mark.parametrize("flag,value", BAD_DIAGNOSE)
def test_diagnose_refuses_each_bad_argument_before_any_work(tmp_path, capsys, flag, value):
    run = tmp_path / "no_run"  # not looked at: the arguments come first
    assert cli(["diagnose", str(run), flag, value, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag in err and "Traceback" not in err
    assert not run.exists()


@pytest.mark.parametrize("kw", [{"power_iterations": 2.5}, {"trace_samples": True}, {"compress_epochs": "3"},
                                {"seed": None}, {"curvature_jets": float("nan")}])
def test_diagnose_refuses_arguments_of_the_wrong_type(tmp_path, kw):
    with pytest.raises(TriggerKDError, match="whole number"):
        diagnose(tmp_path / "no_run", **kw)


def test_evaluate_refuses_bad_arguments_before_reading_the_run(tmp_path, capsys):
    jets = write(tmp_path / "jets.h5", *healthy())
    run = tmp_path / "no_run"
    for args, says in (([str(jets), "--name", "../x"], "--name"), ([str(tmp_path / "gone.h5")], "not found"),
                       ([str(jets), "--set", "data.signal=[z]"], "--set applies")):
        assert cli(["evaluate", str(run), "--on", *args, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and says in err
    assert not run.exists()
    with pytest.raises(TriggerKDError, match="--on"):
        evaluate_run(run, "")
