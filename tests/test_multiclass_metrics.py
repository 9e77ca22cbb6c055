"""Multi-class metrics, jet substructure observables, substructure baselines and multi-class plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trigger_kd.data.physics import jet_kinematics
from trigger_kd.errors import TriggerKDError
from trigger_kd.train.metrics import binary_metrics, signal_score
from trigger_kd.train.multiclass import multiclass_metrics
from trigger_kd.train.multiclass_baselines import substructure_baselines
from trigger_kd.train.multiclass_plots import confusion_plot, per_class_roc_plot
from trigger_kd.train.substructure import substructure_features

NAMES = ("gluon", "q", "w", "z", "top")
SIG, QCD = [2, 3, 4], [0, 1]


def labels(n_per=40, k=5):
    return np.repeat(np.arange(k), n_per)


def assert_close(a, b):
    """Equal nested dicts / lists, floats to 1e-12."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12)
    else:
        assert a == b


# ----------------------------------------------------------------------------- metrics
def test_perfect_logits():
    y = labels()
    m = multiclass_metrics(y, 7.0 * np.eye(5)[y], NAMES, SIG, QCD)
    assert m["accuracy"] == 1.0 and m["auc"] == 1.0 and m["n_jets"] == len(y)
    assert all(c["auc"] == 1.0 and c["efficiency"] == 1.0 and c["purity"] == 1.0 for c in m["per_class"].values())
    assert np.array_equal(m["confusion"]["counts"], 40 * np.eye(5, dtype=int))
    assert m["confusion"]["classes"] == list(NAMES)
    json.dumps(m, allow_nan=False)
    # perfect separation: no QCD jet passes at any signal efficiency, 1/eB unbounded
    for name in ("w", "z", "top"):
        r = m["rejection"][name]
        assert r["against"] == ["gluon", "q"] and r["n_signal"] == 40 and r["n_background"] == 80
        assert r["rej30"] is None and r["rej50"] is None and "eB = 0" in r["rej30_note"] and r["auc"] == 1.0
    assert set(m["rejection"]) == {"w", "z", "top"}
    big = multiclass_metrics(y, 1e6 * np.eye(5)[y] - 3e5, NAMES, SIG, QCD)
    assert big["auc"] == 1.0 and big["accuracy"] == 1.0


def test_constant_and_permuted_logits_are_chance():
    y = labels(400)
    m = multiclass_metrics(y, np.full((len(y), 5), 2.5), NAMES, SIG, QCD)
    assert all(c["auc"] == 0.5 for c in m["per_class"].values()) and m["auc"] == 0.5
    assert m["accuracy"] == pytest.approx(0.2)  # ties: everything predicted as output 0, as numpy's argmax
    assert not np.asarray(m["confusion"]["counts"])[:, 1:].any()
    assert m["per_class"]["gluon"]["efficiency"] == 1.0 and m["per_class"]["q"]["purity"] is None
    assert m["rejection"]["top"]["auc"] == 0.5
    rng = np.random.default_rng(0)
    perm = multiclass_metrics(rng.permutation(y), 5.0 * np.eye(5)[y], NAMES, SIG, QCD)
    assert all(abs(c["auc"] - 0.5) < 0.05 for c in perm["per_class"].values())
    assert abs(perm["accuracy"] - 0.2) < 0.05


def test_ties_go_to_the_first_highest_output():
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 3.0], [0.0, 0.0, 1.0]])
    m = multiclass_metrics([0, 1, 2, 2], logits, ("a", "b", "c"))
    pred = np.argmax(logits, axis=1)
    assert np.array_equal(pred, [0, 1, 0, 2])
    assert m["confusion"]["counts"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["accuracy"] == 0.75 and m["rejection"] == {}


def test_confusion_matches_sklearn_and_sums_to_n():
    from sklearn.metrics import confusion_matrix, roc_auc_score
    from scipy.special import softmax

    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 3000)
    z = rng.normal(size=(3000, 5)) + 1.5 * np.eye(5)[y]
    m = multiclass_metrics(y, z, NAMES, SIG, QCD)
    counts = np.asarray(m["confusion"]["counts"])
    assert counts.sum() == len(y)
    assert np.array_equal(counts.sum(axis=1), np.bincount(y, minlength=5))
    assert np.array_equal(counts, confusion_matrix(y, z.argmax(1), labels=range(5)))
    p = softmax(z, axis=1)
    for k, name in enumerate(NAMES):
        assert m["per_class"][name]["auc"] == pytest.approx(roc_auc_score(y == k, p[:, k]), abs=1e-12)
        assert m["per_class"][name]["efficiency"] == pytest.approx(counts[k, k] / counts[k].sum())
        assert m["per_class"][name]["purity"] == pytest.approx(counts[k, k] / counts[:, k].sum())
    assert m["auc"] == pytest.approx(np.mean([m["per_class"][n]["auc"] for n in NAMES]))
    # the rejection discriminant p_top / (p_top + p_gluon + p_q) on top and QCD jets only
    keep = np.isin(y, [4, 0, 1])
    d = p[keep, 4] / (p[keep, 4] + p[keep, 0] + p[keep, 1])
    assert m["rejection"]["top"]["auc"] == pytest.approx(roc_auc_score(y[keep] == 4, d), abs=1e-12)
    assert m["rejection"]["top"]["n_background"] == int(np.isin(y, [0, 1]).sum())
    json.dumps(m, allow_nan=False)


def test_shifting_a_jets_logits_changes_nothing():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 2000)
    z = rng.normal(size=(2000, 5)) + np.eye(5)[y]
    shifted = z + rng.integers(-50, 50, (2000, 1)).astype(np.float64)
    assert_close(multiclass_metrics(y, z, NAMES, SIG, QCD), multiclass_metrics(y, shifted, NAMES, SIG, QCD))


def test_two_outputs_agree_with_binary_metrics():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1500)
    z = rng.normal(size=(1500, 2)) + 0.8 * np.eye(2)[y]
    m = multiclass_metrics(y, z, ("qcd", "top"), [1], [0])
    b = binary_metrics(y, signal_score(z))
    r = m["rejection"]["top"]
    assert r["auc"] == pytest.approx(b["auc"]) and m["per_class"]["top"]["auc"] == pytest.approx(b["auc"])
    assert r["rej30"] == pytest.approx(b["rej30"]) and r["rej50"] == pytest.approx(b["rej50"])
    assert m["accuracy"] == pytest.approx(b["accuracy"])


def test_absent_class_gets_no_auc():
    y = labels(300, 4)  # no top jets
    rng = np.random.default_rng(4)
    m = multiclass_metrics(y, rng.normal(size=(len(y), 5)) + np.eye(5)[y], NAMES, SIG, QCD)
    top = m["per_class"]["top"]
    assert top["auc"] is None and "no top jets" in top["auc_note"] and top["n_jets"] == 0 and top["efficiency"] is None
    assert m["auc_classes"] == ["gluon", "q", "w", "z"]
    assert m["rejection"]["top"]["rej50"] is None and "no top jets" in m["rejection"]["top"]["note"]
    assert m["rejection"]["w"]["rej50"] is not None
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("y, logits, match", [
    ([0, 1, 2], [[0, 1, np.nan], [0, 0, 0], [1, 1, 1]], "NaN or infinite"),
    ([0, 1, 2], [[0, 1, np.inf], [0, 0, 0], [1, 1, 1]], "NaN or infinite"),
    ([0, 1, 2], np.zeros((3, 4)), "logits"),
    ([0, 1], np.zeros((3, 3)), "logits"),
    ([[0], [1], [2]], np.zeros((3, 3)), "labels"),
    ([0, 1, 3], np.zeros((3, 3)), "outside 0..2"),
    ([0, -1, 2], np.zeros((3, 3)), "outside 0..2"),
    ([0.0, 1.5, 2.0], np.zeros((3, 3)), "integer"),
    ([1, 1, 1], np.zeros((3, 3)), "at least 2 classes"),
    ([], np.zeros((0, 3)), "empty"),
])
def test_refusals(y, logits, match):
    with pytest.raises(TriggerKDError, match=match):
        multiclass_metrics(y, logits, ("a", "b", "c"))


def test_refuses_bad_outputs_and_indices():
    y, z = [0, 1, 2], np.eye(3)
    with pytest.raises(TriggerKDError, match="distinct output names"):
        multiclass_metrics(y, z, ("a", "a", "c"))
    with pytest.raises(TriggerKDError, match="overlap"):
        multiclass_metrics(y, z, ("a", "b", "c"), [1], [1, 0])
    with pytest.raises(TriggerKDError, match="indices"):
        multiclass_metrics(y, z, ("a", "b", "c"), [3], [0])
    assert "rejection_note" in multiclass_metrics(y, z, ("a", "b", "c"), [1], [])


# ----------------------------------------------------------------------------- substructure
def prong_jet(rng, prongs, n_per=6, spread=0.005, pt=500.0, p=40, eta0=0.3, phi0=3.0):
    """Massless constituents in prongs [(deta, dphi, pt fraction)], pT-ordered, zero-padded to p rows."""
    rows = []
    for de, dp, frac in prongs:
        pts = rng.dirichlet(np.ones(n_per)) * frac * pt
        eta = eta0 + de + rng.normal(0, spread, n_per)
        phi = phi0 + dp + rng.normal(0, spread, n_per)
        mom = np.stack([pts * np.cos(phi), pts * np.sin(phi), pts * np.sinh(eta)], -1)
        rows.append(np.concatenate([np.linalg.norm(mom, axis=1, keepdims=True), mom], 1))
    c = np.concatenate(rows)
    c = c[np.argsort(-np.hypot(c[:, 1], c[:, 2]))]
    out = np.zeros((p, 4), np.float32)
    out[:len(c)] = c
    return out


def test_prongs_show_in_n_subjettiness():
    rng = np.random.default_rng(5)
    one = prong_jet(rng, [(0, 0, 1.0)], spread=0.02)
    two = prong_jet(rng, [(0, -0.2, 0.5), (0, 0.2, 0.5)])
    three = prong_jet(rng, [(0.3, 0, 0.4), (-0.15, 0.26, 0.3), (-0.15, -0.26, 0.3)])  # across the phi = pi wrap
    f = substructure_features(np.stack([one, two, three]))
    assert f["tau1"][0] < 0.2 * f["tau1"][1] and f["tau1"][0] < 0.2 * f["tau1"][2]  # one prong: tau1 small
    assert f["tau21"][1] < 0.1 < f["tau21"][0]  # two prongs: tau21 small
    assert f["tau32"][2] < 0.1 < min(f["tau32"][0], f["tau32"][1], f["tau21"][2])  # three prongs: tau32 small
    assert np.array_equal(f["multiplicity"], [6, 12, 18])
    np.testing.assert_allclose(f["mass"], jet_kinematics(np.stack([one, two, three]))["mass"])


def _rap_phi(v):
    e, px, py, pz = v
    pt2 = px * px + py * py
    return np.arcsinh(pz / np.sqrt(pt2 + max(e * e - pt2 - pz * pz, 0.0))), np.arctan2(py, px)


def _dr(a, b):
    (ya, pa), (yb, pb) = _rap_phi(a), _rap_phi(b)
    dp = abs(pa - pb)
    return np.hypot(ya - yb, min(dp, 2 * np.pi - dp))


def _tau_reference(parts, n, r0=0.8):
    """tau_n (beta = 1) with exclusive kT axes, clustered by hand: merge the pair of least
    min(pT_i^2, pT_j^2) dR^2, E-scheme, until n remain."""
    if len(parts) <= n:
        return 0.0
    axes = [p.copy() for p in parts]
    while len(axes) > n:
        _, i, j = min((min(np.hypot(*axes[i][1:3]), np.hypot(*axes[j][1:3])) ** 2 * _dr(axes[i], axes[j]) ** 2, i, j)
                      for i in range(len(axes)) for j in range(i + 1, len(axes)))
        axes[i] = axes[i] + axes.pop(j)
    return sum(np.hypot(*p[1:3]) * min(_dr(p, a) for a in axes) for p in parts) / (
        sum(np.hypot(*p[1:3]) for p in parts) * r0)


def test_n_subjettiness_matches_a_hand_clustered_reference():
    rng = np.random.default_rng(6)
    c = np.zeros((25, 12, 4), np.float32)
    for i in range(len(c)):
        m = int(rng.integers(0, 13))
        eta, phi, pt = rng.normal(0.3, 0.3, m), rng.normal(3.0, 0.3, m), np.sort(rng.exponential(30, m) + 1)[::-1]
        mom = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], -1)
        c[i, :m, 1:], c[i, :m, 0] = mom, np.sqrt((mom ** 2).sum(-1) + 0.14 ** 2)
    f = substructure_features(c, jet_r=1.0)
    for i in range(len(c)):
        parts = [row.astype(np.float64) for row in c[i] if row.any()]
        for n in (1, 2, 3):
            assert f[f"tau{n}"][i] == pytest.approx(_tau_reference(parts, n, 1.0), abs=1e-12)
        assert f["multiplicity"][i] == len(parts)
        t1, t2, t3 = (f[f"tau{n}"][i] for n in (1, 2, 3))
        assert f["tau21"][i] == (t2 / t1 if t1 > 0 else 0.0) and f["tau32"][i] == (t3 / t2 if t2 > 0 else 0.0)


def test_leading_constituents_small_jets_and_refusals():
    rng = np.random.default_rng(7)
    c = np.stack([prong_jet(rng, [(0, 0, 0.6), (0.2, 0.1, 0.4)], n_per=5, p=20) for _ in range(6)])
    c[0] = 0  # empty jet
    c[1, 1:] = 0  # one particle
    c[2, 2:] = 0  # two particles
    f = substructure_features(c, n_particles=7)
    g = substructure_features(c[:, :7])
    assert all(np.array_equal(f[k], g[k]) for k in f)
    assert list(f["multiplicity"]) == [0, 1, 2, 7, 7, 7] and f["multiplicity"].dtype == np.int64
    for k in ("tau1", "tau2", "tau3", "tau21", "tau32"):
        assert f[k][0] == f[k][1] == 0.0 and np.isfinite(f[k]).all()
    assert f["tau1"][2] > 0 and f["tau2"][2] == f["tau3"][2] == f["tau32"][2] == f["tau21"][2] == 0.0
    assert f["mass"][0] == 0.0 and f["mass"][1] == pytest.approx(0.0, abs=0.05)  # massless, up to float32 rounding
    with pytest.raises(TriggerKDError, match="N, P, 4"):
        substructure_features(c[0])
    with pytest.raises(TriggerKDError, match="n_particles"):
        substructure_features(c, n_particles=0)
    bad = c.copy()
    bad[3, 0, 1] = np.nan
    with pytest.raises(TriggerKDError, match="NaN"):
        substructure_features(bad)


# ----------------------------------------------------------------------------- baselines and plots
def synthetic_jets(n_per, seed):
    """gluon: one wide prong; w: two prongs; top: three prongs (masses ~ 60, 120, 190 GeV) with jitter."""
    rng = np.random.default_rng(seed)
    c, y = [], []
    for label in range(3):
        for _ in range(n_per):
            s = rng.uniform(0.7, 1.3)
            prongs = {0: [(0, 0, 1.0)],
                      1: [(0, -0.12 * s, 0.5), (0, 0.12 * s, 0.5)],
                      2: [(0.18 * s, 0, 0.4), (-0.09 * s, 0.16 * s, 0.3), (-0.09 * s, -0.16 * s, 0.3)]}[label]
            c.append(prong_jet(rng, prongs, n_per=5, spread=0.05 if label == 0 else 0.01, p=20))
            y.append(label)
    order = rng.permutation(len(y))
    return np.stack(c)[order], np.asarray(y)[order]


def test_substructure_baselines_beat_chance():
    names = ("gluon", "w", "top")
    splits = {s: synthetic_jets(120, seed) for s, seed in (("train", 10), ("val", 11), ("test", 12))}
    out = substructure_baselines(splits, 12, names, [1, 2], [0], seed=0)
    assert set(out) == {"jet_mass_inputs", "substructure"}
    assert out["jet_mass_inputs"]["features"] == ["mass"]
    assert out["substructure"]["features"] == ["mass", "tau21", "tau32", "multiplicity"]
    for entry in out.values():
        assert set(entry) == {"what", "features", "classifier", "val", "test"}
        assert entry["test"]["accuracy"] > 0.6 and entry["test"]["auc"] > 0.8
        assert set(entry["test"]["rejection"]) == {"w", "top"}
    json.dumps(out, allow_nan=False)
    again = substructure_baselines(splits, 12, names, [1, 2], [0], seed=0)
    assert again["substructure"]["test"] == out["substructure"]["test"]  # fixed random_state
    c, y = splits["train"]
    with pytest.raises(TriggerKDError, match="never see"):
        substructure_baselines({"train": (c[y < 2], y[y < 2]), "test": splits["test"]}, 12, names, [1, 2], [0])


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(8)
    y = labels(60)
    z = rng.normal(size=(len(y), 5)) + 2 * np.eye(5)[y]
    m = multiclass_metrics(y, z, NAMES, SIG, QCD)
    confusion_plot(m["confusion"], tmp_path / "confusion.png", "test: 5 classes")
    per_class_roc_plot(y, z, NAMES, tmp_path / "roc.png",
                       extra={"substructure": (y, z + rng.normal(size=z.shape)), "mass": (y, rng.normal(size=z.shape))})
    for name in ("confusion.png", "roc.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "roc.png"]  # no temporary files left
    with pytest.raises(TriggerKDError, match="logits"):
        per_class_roc_plot(y, z[:, :4], NAMES, tmp_path / "bad.png")
