"""Distillation inputs without a framework: batched boosts, boosted features, the epoch feed, transfer sets."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from trigger_kd.data.boost import boost, boost_matrices, boost_matrix, random_boost_velocities
from trigger_kd.data.features import student_features, student_input
from trigger_kd.data.formats import load_unlabelled, write_canonical
from trigger_kd.data.physics import jet_kinematics
from trigger_kd.data.sanity import jet_hashes
from trigger_kd.data.transfer import TransferSetError, check_disjoint, read_transfer, write_transfer
from trigger_kd.errors import TriggerKDError
from trigger_kd.train.feed import UNLABELLED, DistillFeed, InputFeed, LorentzJets, view_velocities


def _jets(n=40, p=12, seed=0) -> np.ndarray:
    """Collimated massless-ish jets along +x with a random spread, zero padding at the end."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(40.0, size=(n, p)) + 1.0
    eta, phi = rng.normal(0.3, 0.2, (n, p)), rng.normal(0.1, 0.2, (n, p))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px**2 + py**2 + pz**2 + 0.0195), px, py, pz], -1)
    order = np.argsort(-pt, axis=1)
    c = np.take_along_axis(c, order[..., None], axis=1)
    c[:, p - 3:] = 0.0
    return c.astype(np.float32)


def test_batched_boosts_match_single_and_keep_masses():
    rng = np.random.default_rng(1)
    betas = random_boost_velocities(rng, 500, 0.9)
    speed = np.linalg.norm(betas, axis=1)
    assert speed.max() <= 0.9 and speed.min() >= 0.0 and abs(speed.mean() - 0.45) < 0.05
    assert np.abs(betas.mean(axis=0)).max() < 0.06  # no preferred direction
    m = boost_matrices(betas[:3])
    for i in range(3):
        np.testing.assert_allclose(m[i], boost_matrix(betas[i]), atol=1e-15)
    metric = np.diag([1.0, -1.0, -1.0, -1.0])
    np.testing.assert_allclose(np.einsum("nji,jk,nkl->nil", m, metric, m), np.broadcast_to(metric, m.shape), atol=1e-12)
    np.testing.assert_array_equal(boost_matrices(np.zeros((2, 3))), np.broadcast_to(np.eye(4), (2, 4, 4)))
    with pytest.raises(TriggerKDError, match="below 1"):
        boost_matrices([[0.6, 0.8, 0.1]])
    with pytest.raises(TriggerKDError, match=r"\[0, 1\)"):
        random_boost_velocities(rng, 3, 1.0)


def test_boosted_features_equal_features_of_boosted_constituents():
    c = _jets()
    jets = LorentzJets.from_constituents(c, 8)
    np.testing.assert_array_equal(jets.features(), student_features(c, 8))  # same numbers as the students see
    b = np.zeros((len(c), 3))
    b[:, 0] = 0.3
    np.testing.assert_allclose(jets.boosted(b).features(), student_features(boost(c.astype(np.float64), 0.3, "x"), 8),
                               atol=1e-5)
    # the jet mass is Lorentz invariant, the features are not (pT fractions and angles move)
    betas = random_boost_velocities(np.random.default_rng(2), len(c), 0.5)
    wide = LorentzJets.from_constituents(c, 16)  # 9 real constituents, 3 padded, 4 slots beyond the array
    moved = wide.boosted(betas)
    np.testing.assert_allclose(jet_kinematics(moved.axis[:, None])["mass"], jet_kinematics(c)["mass"], rtol=1e-5)
    assert np.abs(moved.features() - wide.features()).max() > 0.05
    padding = wide.features()[..., 0] == 0
    assert padding[:, 9:].all() and not padding[:, :9].any()
    assert (moved.features()[padding] == 0).all()  # padding stays exactly zero


def test_lorentz_jets_keep_the_jet_pt_feature_through_boosts_takes_and_concat():
    c = _jets()
    jets = LorentzJets.from_constituents(c, 8, jet_pt=True)
    b = np.zeros((len(c), 3))
    b[:, 0] = 0.3
    want = student_features(boost(c.astype(np.float64), 0.3, "x"), 8, jet_pt=True)
    assert want.shape[-1] == 5
    np.testing.assert_allclose(jets.boosted(b).features(), want, atol=1e-5)
    both = LorentzJets.concat([jets.take(np.arange(5)), jets.take(np.arange(5, 10))])
    np.testing.assert_array_equal(both.features(), student_features(c[:10], 8, jet_pt=True))
    with pytest.raises(TriggerKDError, match="jet pT feature"):
        LorentzJets.concat([jets, LorentzJets.from_constituents(c, 8)])


def test_feed_cycles_views_and_keeps_transfer_jets_out_of_the_scratch_twin():
    c = _jets(30)
    jets = LorentzJets.from_constituents(c, 8)
    labels = np.r_[np.tile([0, 1], 10), np.full(10, UNLABELLED)]
    teacher = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    betas = view_velocities(1, 0, 3, 30, 0.5)
    assert betas.shape == (3, 30, 3)
    np.testing.assert_array_equal(betas, view_velocities(1, 0, 3, 30, 0.5))  # reproducible
    assert not np.array_equal(betas, view_velocities(1, 1, 3, 30, 0.5))  # train and transfer parts differ
    view_t = np.random.default_rng(1).normal(size=(3, 30, 2)).astype(np.float32)
    to_input = lambda f: student_input(f, "flat")  # noqa: E731
    feed = DistillFeed(jets, labels, to_input, teacher=teacher, view_betas=betas, view_teacher=view_t,
                       seal_lambda=0.1, seal_max_beta=0.95, seed=3)
    x0, y0, t0 = feed.epoch(0)
    x3, _, t3 = feed.epoch(3)
    x1, _, t1 = feed.epoch(1)
    np.testing.assert_array_equal(x0, x3)  # epoch e uses view e mod k
    np.testing.assert_array_equal(t0, view_t[0])
    np.testing.assert_array_equal(t1, view_t[1])
    assert not np.array_equal(x0, x1) and x0.shape == (30, 32) and x0.dtype == np.float32
    np.testing.assert_array_equal(x1, to_input(jets.boosted(betas[1]).features()))
    s = feed.seal_inputs(1, [2, 5, 7])
    assert s.shape == (3, 32) and not np.allclose(s, x1[[2, 5, 7]])
    twin = feed.labelled_only()
    assert len(twin) == 20 and twin.teacher is None and twin.n_views == 3
    xt, yt, tt = twin.epoch(1)
    np.testing.assert_array_equal(xt, x1[:20])
    np.testing.assert_array_equal(yt, labels[:20])
    assert tt is None
    plain = DistillFeed(jets.take(np.arange(20)), labels[:20], to_input)
    np.testing.assert_array_equal(plain.epoch(5)[0], to_input(student_features(c[:20], 8)))
    assert plain.seal_inputs(0, [1]) is None
    with pytest.raises(TriggerKDError, match="teacher targets"):
        DistillFeed(jets, labels, to_input)
    with pytest.raises(TriggerKDError, match="every augmented view"):
        DistillFeed(jets, labels, to_input, teacher=teacher, view_betas=betas)


def test_transfer_sets_are_checked_disjoint_and_read_without_labels(tmp_path):
    c = _jets(20)
    h = jet_hashes(c)
    assert len(set(h.tolist())) == 20 and jet_hashes(c.copy()).tolist() == h.tolist()
    report = check_disjoint(c[:10], {"train": c[10:15], "test": c[15:]})
    assert report == {"transfer_jets": 10, "duplicates_within_transfer": 0, "shared_with_train": 0,
                      "shared_with_test": 0}
    with pytest.raises(TransferSetError, match="2 of 10 transfer jets are also test jets"):
        check_disjoint(np.concatenate([c[:8], c[18:]]), {"train": c[10:15], "test": c[15:]})
    write_transfer(tmp_path / "t.h5", c, {"origin": "test"})
    np.testing.assert_array_equal(read_transfer(tmp_path / "t.h5"), c)
    # unlabelled canonical files (no is_signal at all) and labelled ones both read; labels are dropped
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("constituents", data=c[:5, :, :])
    write_canonical(tmp_path / "lab.h5", c[5:], np.zeros(15, np.int8))
    got = load_unlabelled("canonical", [tmp_path / "data.h5", tmp_path / "lab.h5"], 16)
    assert got.shape == (20, 16, 4)
    np.testing.assert_array_equal(got[:, :12], c)
    np.testing.assert_array_equal(got[:, 12:], 0)
    with pytest.raises(TriggerKDError, match="no dataset 'constituents'"):
        with h5py.File(tmp_path / "other.h5", "w") as f:
            f.create_dataset("x", data=np.zeros(3))
        load_unlabelled("canonical", [tmp_path / "other.h5"], 16)


def test_input_feed_serves_fixed_inputs():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    feed = InputFeed(x, [0, 1, UNLABELLED, 1], np.zeros((4, 2)))
    xe, ye, te = feed.epoch(3)
    np.testing.assert_array_equal(xe, x)
    assert ye.tolist() == [0, 1, -1, 1] and te.shape == (4, 2) and feed.seal_inputs(0, [1]) is None
    twin = feed.labelled_only()
    assert len(twin) == 3 and twin.teacher is None and twin.epoch(0)[1].tolist() == [0, 1, 1]
    with pytest.raises(TriggerKDError, match="one each per jet"):
        InputFeed(x, [0, 1])
