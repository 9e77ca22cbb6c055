"""Metrics, boosts, smearing and plots."""
from __future__ import annotations

import numpy as np
import pytest

from trigger_kd.data.boost import boost, random_lorentz_transform, rotate, smear_pt
from trigger_kd.errors import TriggerKDError
from trigger_kd.train.metrics import binary_metrics, robustness, signal_score
from trigger_kd.train.plots import robustness_plot, roc_plot


def jets(n=20, p=12, n_real=8, seed=0, mass=0.14):
    """Random jets of massive particles (E from |p| and `mass`), zero-padded after n_real."""
    rng = np.random.default_rng(seed)
    mom = rng.normal(0, 30, (n, p, 3))
    e = np.sqrt((mom ** 2).sum(-1) + mass ** 2)
    c = np.concatenate([e[..., None], mom], -1).astype(np.float32)
    c[:, n_real:] = 0
    return c


def inv_mass2(c):
    c = np.asarray(c, dtype=np.float64)
    return c[..., 0] ** 2 - (c[..., 1:] ** 2).sum(-1)


def test_signal_score_is_softmax_and_stable():
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [1000.0, -1000.0], [-800.0, 900.0], [1e308, 1e308]])
    s = signal_score(logits)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[:2], [0.5, np.exp(3) / (np.exp(1) + np.exp(3))])
    assert s[2] == 0.0 and s[3] == 1.0
    with pytest.raises(TriggerKDError):
        signal_score(np.zeros((3, 3)))


def test_perfect_separation():
    y = np.array([0] * 50 + [1] * 50)
    m = binary_metrics(y, np.linspace(0, 1, 100))
    assert m["accuracy"] == 1.0 and m["auc"] == 1.0
    assert m["rej30"] is None and m["rej50"] is None and "rej50_note" in m
    assert (m["n_jets"], m["n_top"], m["n_qcd"]) == (100, 50, 50)
    assert all(type(m[k]) is float for k in ("accuracy", "auc"))


def test_random_scores_near_half():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 20000)
    m = binary_metrics(y, rng.random(20000))
    assert abs(m["auc"] - 0.5) < 0.02 and abs(m["accuracy"] - 0.5) < 0.02
    assert 1.8 < m["rej50"] < 2.2 and 3.0 < m["rej30"] < 3.7  # 1/eB = 1/eS for a random tagger


def test_known_rejection():
    # tops at 0.9, 0.8, 0.3, 0.2; QCD at 0.85 and nine at 0.1: eS = 50% first reached at eB = 1/10
    y = np.array([1, 1, 1, 1] + [0] * 10)
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.85] + [0.1] * 9)
    m = binary_metrics(y, s)
    assert m["rej50"] == pytest.approx(10.0) and m["rej30"] == pytest.approx(10.0)
    assert m["accuracy"] == pytest.approx(11 / 14)  # 2 tops below 0.5, one QCD above


def test_interpolated_rejection():
    # a score tie makes a straight ROC segment from (eB, eS) = (0, .25) to (.5, .75): interpolate on it
    y = np.array([1, 1, 1, 1, 0, 0])
    s = np.array([0.9, 0.6, 0.6, 0.1, 0.6, 0.1])
    m = binary_metrics(y, s)
    assert m["rej50"] == pytest.approx(4.0) and m["rej30"] == pytest.approx(20.0)
    # one QCD above all tops: ROC (0,0), (.5,0), (.5,.5), (1,.5), (1,1)
    m = binary_metrics([0, 1, 0, 1], [0.9, 0.8, 0.3, 0.2])
    assert m["rej50"] == pytest.approx(2.0) and m["rej30"] == pytest.approx(2.0)
    # eS = 50% reached before any QCD jet passes: ROC (0,0), (0,.5), (.5,.5), (.5,1), (1,1)
    m = binary_metrics([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.2])
    assert m["rej30"] is None and m["rej50"] is None and "rej30_note" in m


def test_binary_metrics_errors():
    with pytest.raises(TriggerKDError, match="both"):
        binary_metrics([1, 1], [0.2, 0.3])
    with pytest.raises(TriggerKDError, match="NaN"):
        binary_metrics([0, 1], [np.nan, 0.3])
    with pytest.raises(TriggerKDError, match="labels but"):
        binary_metrics([0, 1, 1], [0.1, 0.3])


def test_boost_identity_and_invariant_mass():
    c = jets()
    np.testing.assert_array_equal(boost(c, 0.0, "x"), c)
    for axis in "xyz":
        b = boost(c, 0.6, axis)
        assert b.dtype == c.dtype and b.shape == c.shape
        np.testing.assert_allclose(inv_mass2(b), inv_mass2(c), atol=2e-2)
        assert np.all(b[:, 8:] == 0)
        assert not np.allclose(b, c)
    b = boost(c.astype(np.float64), 0.6, "x")
    np.testing.assert_allclose(inv_mass2(b), inv_mass2(c.astype(np.float64)), atol=1e-9)
    # the jet (sum of constituents) mass is preserved too, and the boost is along x only
    np.testing.assert_allclose(inv_mass2(b.sum(1)), inv_mass2(c.astype(np.float64).sum(1)), rtol=1e-10)
    np.testing.assert_array_equal(b[..., 2:], c[..., 2:].astype(np.float64))
    # boosting back undoes it; px of a particle at rest along x
    np.testing.assert_allclose(boost(b, -0.6, "x"), c, atol=1e-9)
    rest = np.array([[[1.0, 0.0, 0.0, 0.0]]])
    np.testing.assert_allclose(boost(rest, 0.6, "x")[0, 0], [1.25, -0.75, 0, 0])
    with pytest.raises(TriggerKDError):
        boost(c, 1.0)
    with pytest.raises(TriggerKDError):
        boost(c, 0.1, "t")


def test_rotation_and_random_transform():
    c = jets().astype(np.float64)
    r = rotate(c, 0.7, "z")
    np.testing.assert_allclose(np.hypot(r[..., 1], r[..., 2]), np.hypot(c[..., 1], c[..., 2]), atol=1e-9)
    np.testing.assert_array_equal(r[..., 3], c[..., 3])
    np.testing.assert_allclose(rotate(c, np.pi / 2, "z")[..., 1], -c[..., 2], atol=1e-9)
    np.testing.assert_allclose(rotate(c, np.pi / 2, "x")[..., 2], -c[..., 3], atol=1e-9)
    np.testing.assert_allclose(rotate(c, np.pi / 2, "y")[..., 3], -c[..., 1], atol=1e-9)
    t = random_lorentz_transform(c, np.random.default_rng(1))
    np.testing.assert_allclose(inv_mass2(t), inv_mass2(c), atol=1e-8)
    dots = lambda a: a[:, :, None, 0] * a[:, None, :, 0] - np.einsum("nik,njk->nij", a[..., 1:], a[..., 1:])
    np.testing.assert_allclose(dots(t), dots(c), atol=1e-7)
    assert np.all(t[:, 8:] == 0) and np.all(t[:, :8, 0] > 0)
    assert not np.allclose(t, c)


def test_smear():
    c = jets()
    np.testing.assert_array_equal(smear_pt(c, 0.0, np.random.default_rng(0)), c)
    s = smear_pt(c, 0.1, np.random.default_rng(0))
    assert s.dtype == c.dtype and np.all(s[:, 8:] == 0)
    ratio = s[:, :8, 0] / c[:, :8, 0]
    np.testing.assert_allclose(s[:, :8], c[:, :8] * ratio[..., None], rtol=1e-5)  # whole 4-vector scaled
    assert 0.05 < ratio.std() < 0.15 and np.all(ratio >= 0)
    assert np.all(smear_pt(c, 100.0, np.random.default_rng(0))[..., 0] >= 0)  # clipped, never negative


def test_smear_is_pt_times_one_plus_sigma_gaussian_per_constituent():
    """Glowacki's smearing: p'T = pT (1 + sigma eps), eps ~ N(0, 1) drawn per constituent; eta, phi kept."""
    from scipy import stats

    from trigger_kd.data.physics import constituent_kinematics

    c = jets(n=4000, seed=5)
    sigma = 0.2
    before, after = constituent_kinematics(c), constituent_kinematics(smear_pt(c, sigma, np.random.default_rng(1)))
    m = before["mask"]
    eps = (after["pt"][m] / before["pt"][m] - 1.0) / sigma  # 32,000 constituents
    assert abs(eps.mean()) < 0.03 and abs(eps.std() - 1.0) < 0.02
    assert stats.kstest(eps, "norm").pvalue > 1e-3
    per_jet = eps.reshape(len(c), -1)
    assert abs(np.corrcoef(per_jet[:, 0], per_jet[:, 1])[0, 1]) < 0.05  # independent within a jet
    np.testing.assert_allclose(after["eta"][m], before["eta"][m], atol=1e-5)
    np.testing.assert_allclose(after["phi"][m], before["phi"][m], atol=1e-5)


def test_robustness_shape_and_sensitivity():
    c = jets(n=200, seed=4)
    y = np.arange(200) % 2
    # toy tagger: score rises with px of the leading particle (not boost invariant), labels correlated with it
    c[y == 1, 0, 1] += 40
    c[y == 1, 0, 0] = np.sqrt((c[y == 1, 0, 1:] ** 2).sum(-1) + 0.14 ** 2)
    score_fn = lambda x: 1 / (1 + np.exp(-(x[:, 0, 1] - 20) / 10))
    rob = robustness(score_fn, c, y, betas=[0.0, 0.5], smear=[0.0, 0.3], seed=0)
    assert rob["n_jets"] == 200 and rob["boost_axis"] == "x"
    assert [p["beta"] for p in rob["boost"]] == [0.0, 0.5] and [p["sigma"] for p in rob["smear"]] == [0.0, 0.3]
    assert rob["boost"][0] == pytest.approx({"beta": 0.0, **{k: binary_metrics(y, score_fn(c))[k]
                                                             for k in ("accuracy", "auc")}})
    assert rob["boost"][1]["accuracy"] != rob["boost"][0]["accuracy"]
    assert rob["smear"][0]["accuracy"] == rob["boost"][0]["accuracy"]
    assert robustness(score_fn, c, y, [0.5], [0.3], seed=0) == robustness(score_fn, c, y, [0.5], [0.3], seed=0)


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    curves = {"good": (y, y + rng.normal(0, 0.5, 500)), "bad": (y, rng.random(500))}
    roc_plot(curves, tmp_path / "roc.png")
    rob = {m: {"boost": [{"beta": b, "accuracy": 0.9 - b / 3, "auc": 0.9} for b in (0, 0.2, 0.5)],
               "smear": [{"sigma": s, "accuracy": 0.9 - s, "auc": 0.9} for s in (0, 0.1)], "n_jets": 5,
               "boost_axis": "x"} for m in ("teacher", "student")}
    robustness_plot(rob, tmp_path / "rob.png")
    for name in ("roc.png", "rob.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rob.png", "roc.png"]  # no temp files left


def test_jet_mass_baselines_use_the_students_own_constituents():
    """The inputs baseline is the mass of the leading n constituents only; the other, of all of them; both
    scored with the mass itself on every split given."""
    from trigger_kd.data.physics import jet_kinematics
    from trigger_kd.train.baselines import jet_mass_baselines

    rng = np.random.default_rng(3)
    n, p = 400, 6
    y = (np.arange(n) % 2).astype(np.int8)
    pt = np.sort(rng.exponential(30, (n, p)) + 1, axis=1)[:, ::-1]
    spread = np.where(y == 1, 0.4, 0.1)[:, None]  # signal: wider, heavier jets
    eta, phi = rng.normal(0, 1, (n, p)) * spread, rng.normal(0, 1, (n, p)) * spread
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2), px, py, pz], -1)
    out = jet_mass_baselines({"test": (c, y), "val": (c[:100], y[:100])}, n_particles=3)
    lead = binary_metrics(y, jet_kinematics(c[:, :3])["mass"])
    full = binary_metrics(y, jet_kinematics(c)["mass"])
    for key, expected in (("jet_mass_inputs", lead), ("jet_mass_all", full)):
        got = out[key]["test"]
        assert {k: v for k, v in got.items() if k != "accuracy"} == {k: v for k, v in expected.items() if k != "accuracy"}
    assert lead["auc"] != full["auc"] and 0.6 < lead["auc"] < 1.0
    assert out["jet_mass_inputs"]["val"]["n_jets"] == 100 and "3 leading constituents" in out["jet_mass_inputs"]["what"]


def _masses_of_two_classes(n: int, seed: int):
    """Jets whose mass separates the classes (signal heavier), (N, 4, 4) constituents and labels."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    pt = np.sort(rng.exponential(30, (n, 4)) + 1, axis=1)[:, ::-1]
    spread = np.where(y == 1, 0.4, 0.1)[:, None]
    eta, phi = rng.normal(0, 1, (n, 4)) * spread, rng.normal(0, 1, (n, 4)) * spread
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2), px, py, pz], -1), y


def test_jet_mass_accuracy_is_that_of_the_cut_chosen_on_validation_jets():
    """A mass in GeV has no cut of its own: the accuracy is that of the mass cut that maximises the validation
    accuracy (every cut between two validation masses tried here by brute force), applied to the test jets;
    never the 'accuracy' of mass > 0.5 GeV (every jet called signal: 0.5 on balanced jets)."""
    from trigger_kd.data.physics import jet_kinematics
    from trigger_kd.train.baselines import jet_mass_baselines

    c_val, y_val = _masses_of_two_classes(300, 5)
    c_test, y_test = _masses_of_two_classes(500, 6)
    out = jet_mass_baselines({"test": (c_test, y_test), "val": (c_val, y_val)}, n_particles=4)["jet_mass_inputs"]
    m_val, m_test = jet_kinematics(c_val)["mass"], jet_kinematics(c_test)["mass"]
    best = max(np.mean((m_val > t) == (y_val == 1)) for t in np.concatenate([[m_val.min() - 1], m_val]))
    cut = out["cut"]
    assert cut["chosen_on"] == "val" and cut["n_jets"] == 300
    assert cut["val_accuracy"] == pytest.approx(best) and out["val"]["accuracy"] == pytest.approx(best)
    assert np.mean((m_val > cut["threshold"]) == (y_val == 1)) == pytest.approx(best)
    assert out["test"]["accuracy"] == pytest.approx(np.mean((m_test > cut["threshold"]) == (y_test == 1)))
    assert out["test"]["accuracy"] > 0.6 and binary_metrics(y_test, m_test)["accuracy"] == 0.5


def test_jet_mass_accuracy_without_validation_jets_is_not_given():
    from trigger_kd.train.baselines import jet_mass_baselines

    c, y = _masses_of_two_classes(200, 7)
    out = jet_mass_baselines({"test": (c, y)}, n_particles=2)
    for entry in out.values():
        assert entry["cut"] is None and entry["test"]["accuracy"] is None and entry["test"]["auc"] > 0.5


def test_baseline_curves_are_the_masses_the_baselines_score(tmp_path):
    """What the ROC plot draws beside the students: both jet masses, labelled, on the test jets, with the AUC the
    baselines report."""
    from trigger_kd.train.baselines import baseline_curves, jet_mass_baselines

    c, y = _masses_of_two_classes(300, 8)
    curves = baseline_curves(y, c, n_particles=2)
    assert list(curves) == ["jet mass of the student's 2 inputs", "jet mass of all constituents"]
    measured = jet_mass_baselines({"test": (c, y)}, n_particles=2)
    for (labels, mass), key in zip(curves.values(), ("jet_mass_inputs", "jet_mass_all")):
        assert labels is y and binary_metrics(y, mass)["auc"] == measured[key]["test"]["auc"]
    roc_plot({"student": (y, y + np.random.default_rng(0).normal(0, 1, len(y))), **curves}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
