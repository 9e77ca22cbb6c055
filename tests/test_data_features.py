"""Jet / constituent kinematics and the student input features."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from trigger_kd.data.features import FEATURE_NAMES, student_features, student_input
from trigger_kd.config import DataConfig
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
    assert f.shape == (2, 4, 4) and f.dtype == np.float32 and len(FEATURE_NAMES) == 4
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
