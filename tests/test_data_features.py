"""Jet / constituent kinematics and the student input features."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from trigger_kd.data.features import (FEATURE_NAMES, N_FEATURES, check_input_range, feature_names, input_range,
                                      n_features, saturated_jets, student_features, student_input)
from trigger_kd.config import DataConfig
from trigger_kd.data.boost import apply_matrices, boost_matrices
from trigger_kd.data.generate import generate_shard
from trigger_kd.data.physics import constituent_kinematics, jet_kinematics
from trigger_kd.errors import TriggerKDError


def _p4(pt, eta, phi, m=0.0):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return [np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz]


def test_kinematics_of_known_vectors_and_empty_rows():
    c = np.zeros((3, 4, 4))
    c[0, 0] = _p4(100.0, 0.5, 3.0)
    c[0, 1] = _p4(50.0, -0.2, -3.0, m=0.13957)
    c[1, 0] = [10.0, 0.0, 0.0, 10.0]  # along the beam: pt 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jet = jet_kinematics(c)
        kin = constituent_kinematics(c)
    s = c[0].sum(axis=0)
    assert jet["mass"][0] == pytest.approx(np.sqrt(s[0] ** 2 - s[1:] @ s[1:]))
    assert jet["pt"][0] == pytest.approx(np.hypot(s[1], s[2]))
    assert (jet["mass"][1:] == 0).all() and (jet["pt"][1:] == 0).all() and (jet["eta"][1:] == 0).all()
    assert kin["pt"][0, :2] == pytest.approx([100.0, 50.0])
    assert kin["eta"][0, :2] == pytest.approx([0.5, -0.2])
    assert kin["phi"][0, :2] == pytest.approx([3.0, -3.0])
    assert kin["mask"].tolist() == [[True, True, False, False], [True, False, False, False], [False] * 4]
    with pytest.raises(TriggerKDError, match="4-vectors"):
        jet_kinematics(np.zeros((2, 3)))


def test_features_values_wrap_and_padding():
    c = np.zeros((2, 3, 4), np.float32)
    c[0, 0] = _p4(300.0, 1.0, np.pi - 0.05)
    c[0, 1] = _p4(30.0, 1.2, -np.pi + 0.05, m=0.493677)  # across the phi = +-pi boundary
    c[1, 0] = _p4(500.0, -0.3, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = student_features(c, 4)
    assert f.shape == (2, 4, 4) and f.dtype == np.float32 and len(FEATURE_NAMES) == 5  # 5th: with the jet pT
    jet = jet_kinematics(c)
    phi_j = jet["phi"][0]
    assert 3.0 < phi_j < np.pi
    pt_rel = np.hypot(c[0, 0, 1], c[0, 0, 2]) / jet["pt"][0]
    assert f[0, 0, 0] == pytest.approx(2 * pt_rel, rel=1e-5)
    assert f[0, 0, 1] == pytest.approx(2 * (1.0 - jet["eta"][0]), abs=1e-4)
    assert f[0, 0, 2] == pytest.approx(2 * (np.pi - 0.05 - phi_j), abs=1e-4)
    assert f[0, 1, 2] == pytest.approx(2 * (np.pi + 0.05 - phi_j), abs=1e-4)  # wrapped, not about -12
    assert f[0, 1, 3] == pytest.approx(0.493677, abs=5e-3) and f[0, 0, 3] == pytest.approx(0.0, abs=5e-3)
    assert f[1, 0].tolist() == pytest.approx([2.0, 0.0, 0.0, 0.0], abs=1e-5)
    assert (f[0, 2:] == 0).all() and (f[1, 1:] == 0).all()  # padding and slots beyond P are exactly 0
    assert student_features(c, 1).shape == (2, 1, 4)


def test_jet_pt_feature_is_the_jets_log_pt_on_every_real_constituent():
    c = np.zeros((3, 3, 4), np.float32)
    c[0, 0], c[0, 1] = _p4(300.0, 1.0, 0.5), _p4(30.0, 1.2, 0.6, m=0.493677)
    c[1, 0] = _p4(500.0, -0.3, 0.2)
    c[2, 0], c[2, 1], c[2, 2] = _p4(4000.0, 0.1, 0.0), _p4(3000.0, 0.0, 0.1), _p4(2000.0, 0.0, -0.1)
    plain, f = student_features(c, 4), student_features(c, 4, jet_pt=True)
    assert f.shape == (3, 4, 5) and n_features(True) == 5 and n_features(False) == N_FEATURES == 4
    assert feature_names(True)[-1] == "ln_pt_jet_tev" and feature_names(False) == FEATURE_NAMES[:4]
    np.testing.assert_array_equal(f[..., :4], plain)  # the first four are unchanged
    pt = jet_kinematics(c)["pt"]
    for k, n_real in enumerate((2, 1, 3)):
        np.testing.assert_allclose(f[k, :n_real, 4], np.log(pt[k] / 1000.0), rtol=1e-6)
        assert (f[k, n_real:] == 0).all()  # padding stays exactly zero
    assert f[1, 0, 4] == pytest.approx(np.log(0.5), rel=1e-6)
    assert f[2, 0, 4] > 2.0  # a 9 TeV jet: above the fixed<10,2> range, the input quantiser saturates it


def test_jet_pt_feature_follows_a_boost_along_the_jet():
    """Along the jet a boost scales the jet's pT and shrinks its angles: feature 4 moves by the log of the pT
    ratio, so a student can tell a boosted top from a narrow QCD jet."""
    c, _ = generate_shard(DataConfig(), "top", 20, seed=3)
    c = c.astype(np.float64)
    p_jet = c.sum(axis=1)[:, 1:]
    toward = -0.3 * p_jet / np.linalg.norm(p_jet, axis=1, keepdims=True)  # a frame moving against the jet
    moved = apply_matrices(c, boost_matrices(toward))
    before, after = student_features(c, 16, jet_pt=True), student_features(moved, 16, jet_pt=True)
    ratio = jet_kinematics(moved)["pt"] / jet_kinematics(c)["pt"]
    assert (ratio > 1.3).all()  # the jet gets harder ...
    real = before[..., 0] > 0
    shift = after[..., 4] - before[..., 4]
    np.testing.assert_allclose(shift[real], np.broadcast_to(np.log(ratio)[:, None], real.shape)[real], atol=1e-5)
    spread = lambda f: np.hypot(f[..., 1], f[..., 2])[real].mean()  # noqa: E731
    assert spread(after) < 0.8 * spread(before)  # ... and narrower


def test_student_input_layouts():
    f = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    mlp = student_input(f, "flat")
    assert mlp.shape == (2, 12) and mlp.dtype == np.float32 and mlp.flags.c_contiguous
    assert mlp[0, :4].tolist() == f[0, 0].tolist()  # particle 0 first
    ds = student_input(f, "NFP")
    assert ds.shape == (2, 4, 3) and ds.flags.c_contiguous and ds[1, 2, 1] == f[1, 1, 2]
    assert np.array_equal(student_input(f, "NPF"), f.astype(np.float32))
    with pytest.raises(TriggerKDError, match="unknown input layout"):
        student_input(f, "gnn")
    with pytest.raises(TriggerKDError, match=r"\(N, P, 4\)"):
        student_features(np.zeros((2, 3)), 2)


def test_features_of_generated_jets_fit_the_fixed_point_range():
    c, _ = generate_shard(DataConfig(), "qcd", 60, seed=11)
    f = student_features(c, 16)
    inside = (f >= -2.0) & (f < 2.0)
    assert inside.mean() > 0.999
    live = f[..., 0] > 0
    assert live.mean() > 0.9  # generated jets have more than 16 constituents mostly
    assert np.abs(f[..., 1][live]).max() < 2.0 and np.abs(f[..., 2][live]).max() < 2.0
    assert (f[..., 0][live] > 0.005).mean() > 0.9  # pT fractions above the 8-bit LSB mostly


def test_saturated_jets_counts_jets_beyond_half_an_lsb_of_the_input_range():
    lo, hi, lsb = input_range(10, 1)
    assert (lo, hi, lsb) == (-2.0, 2.0 - 2.0**-8, 2.0**-8)
    f = np.zeros((4, 3, 2))
    f[0, 1, 0] = hi + 0.4 * lsb  # rounds onto hi: a rounding error, not saturation
    f[1, 2, 0] = hi + 0.6 * lsb  # saturates
    f[2, :, 1] = -2.1  # saturates on every constituent: still one jet
    f[3, 0, 1] = lo  # exactly representable
    np.testing.assert_allclose(saturated_jets(f, 10, 1), [0.25, 0.25])
    np.testing.assert_allclose(saturated_jets(f, 10, 2), [0.0, 0.0])  # fixed<10,3> holds [-4, 4)
    assert saturated_jets(np.zeros((0, 3, 2)), 10, 1).tolist() == [0.0, 0.0]


def test_jet_pt_feature_of_soft_jets_is_refused_with_what_to_do():
    """Jets of 40-120 GeV: ln(pT / TeV) < -2 saturates silently in model and firmware alike; refuse it."""
    rng = np.random.default_rng(5)
    pts = rng.uniform(40.0, 400.0, size=200)
    c = np.zeros((200, 3, 4))
    for k, pt in enumerate(pts):
        c[k, 0], c[k, 1] = _p4(0.7 * pt, 0.1, 0.0), _p4(0.3 * pt, -0.1, 0.1)
    f = student_features(c, 4, jet_pt=True)
    with pytest.raises(TriggerKDError) as err:
        check_input_range(f, feature_names(True), 10, 1, "training")
    msg = str(err.value)
    soft = (pts < 135.3).mean()
    assert f"ln_pt_jet_tev is outside the student's input range [-2, 1.99609] (fixed<10,2>) in {100 * soft:.1f} % " \
           "of the training jets" in msg
    assert "135 GeV to 7.4 TeV" in msg and "student.input_int_bits" in msg and "student.jet_pt_feature off" in msg
    assert "2*pt/pt_jet" not in msg  # the other features are fine
    frac = check_input_range(f, feature_names(True), 10, 2, "training")  # fixed<10,3>: 18 GeV to 55 TeV
    assert frac == {name: 0.0 for name in feature_names(True)}
    assert check_input_range(student_features(c, 4), feature_names(False), 10, 1, "training")["2*deta"] == 0.0
