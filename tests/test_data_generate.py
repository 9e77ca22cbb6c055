"""Pythia 8 + FastJet jet generation: physics sanity, reproducibility, resume, assembly."""
from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from trigger_kd.data.formats import read_canonical, write_canonical
from trigger_kd.data.generate import (
    GenerationError,
    GenSettings,
    _top_partons,
    assemble,
    generate_jets,
    pythia_commands,
    shard_path,
    shard_seed,
)
from trigger_kd.data.physics import constituent_kinematics, jet_kinematics

SEED = 7
SETTINGS = GenSettings()


# ----------------------------------------------------------------------------- fast unit tests
def test_shard_seeds_are_stable_distinct_and_in_pythia_range():
    seeds = {shard_seed(SEED, cls, k) for cls in ("top", "qcd") for k in range(50)}
    assert len(seeds) == 100
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert shard_seed(SEED, "top", 3) == shard_seed(SEED, "top", 3)
    assert shard_seed(SEED, "top", 3) != shard_seed(SEED + 1, "top", 3)


def test_pythia_commands_follow_settings():
    top = pythia_commands(GenSettings(mpi=True, hadronization=False, pthat_min=400.0), "top", 5)
    assert "Top:gg2ttbar = on" in top and "Top:qqbar2ttbar = on" in top
    assert "24:onIfAny = 1 2 3 4 5" in top and "PartonLevel:MPI = on" in top
    assert "HadronLevel:all = off" in top and "PhaseSpace:pTHatMin = 400.0" in top
    qcd = pythia_commands(SETTINGS, "qcd", 5)
    assert "HardQCD:all = on" in qcd and "PartonLevel:MPI = off" in qcd and "Random:seed = 5" in qcd
    with pytest.raises(GenerationError, match="unknown jet class"):
        pythia_commands(SETTINGS, "wjets", 5)


def test_top_partons_from_an_event_record():
    # event 0: t -> b W+, W+ -> u dbar ; tbar -> bbar W-, W- -> e nu (leptonic: incomplete)
    pid = np.array([90, 6, -6, 5, 24, -5, -24, 2, -1, 11, -12, 21])
    mother = np.array([-1, 0, 0, 1, 1, 2, 2, 4, 4, 6, 6, 0])
    event = np.zeros(len(pid), np.int64)
    out = _top_partons(pid, mother, event, 1)
    assert out[0, 0].tolist() == [1, 3, 7, 8]
    assert (out[0, 1] == -1).all()


def test_assemble_balances_classes_and_splits(tmp_path):
    pool = tmp_path / "pool"
    rng = np.random.default_rng(0)
    for cls, label in (("top", 1), ("qcd", 0)):
        for k in range(3):
            c = rng.normal(size=(10, 5, 4)).astype(np.float32)
            c[:, :, 0] = 1000 * label + 100 * k + np.arange(10)[:, None]  # tag jets by E
            write_canonical(shard_path(pool, cls, k), c, np.full(10, label, np.int8))
    paths = assemble(pool, 25, (0.6, 0.2, 0.2), seed=3, out_dir=tmp_path / "out")
    tags = []
    for name, n in (("train", 30), ("val", 10), ("test", 10)):
        c, y = read_canonical(paths[name])
        assert len(y) == n and (y == 1).sum() == n // 2
        assert np.array_equal(y, (c[:, 0, 0] >= 1000).astype(np.int8))
        tags.extend(c[:, 0, 0].tolist())
    expected = [1000 * lab + 100 * k + i for lab in (0, 1) for k in range(3) for i in range(10) if 10 * k + i < 25]
    assert sorted(tags) == sorted(expected)  # first 25 jets per class, each once
    with pytest.raises(GenerationError, match="missing"):
        assemble(pool, 31, (0.6, 0.2, 0.2), seed=3, out_dir=tmp_path / "out2")
    with pytest.raises(GenerationError, match="split"):
        assemble(pool, 10, (0.6, 0.5, 0.2), seed=3, out_dir=tmp_path / "out3")


def test_generate_rejects_bad_sizes(tmp_path):
    with pytest.raises(GenerationError, match="positive"):
        generate_jets(tmp_path, 0, SETTINGS, seed=1, workers=1, progress=False)


# ----------------------------------------------------------------------------- real generation
@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("jets") / "pool"
    stats = generate_jets(path, 300, SETTINGS, seed=SEED, workers=2, shard_size=100, progress=False)
    return path, stats


def _class(pool_dir, cls):
    parts = [read_canonical(shard_path(pool_dir, cls, k)) for k in range(3)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.slow
def test_pool_statistics(pool):
    path, stats = pool
    for cls in ("top", "qcd"):
        s = stats[cls]
        assert s["shards_generated"] == 3 and s["shards_reused"] == 0 and s["available_jets"] == 300
        assert s["cpu_seconds"] > 0 and s["jets_per_cpu_second"] > 10
        assert sorted(p.name for p in (path / cls).iterdir()) == [f"shard_{k:05d}.h5" for k in range(3)]


@pytest.mark.slow
def test_generated_jets_are_physical(pool):
    path, _ = pool
    medians = {}
    for cls, label in (("top", 1), ("qcd", 0)):
        c, y = _class(path, cls)
        assert c.shape == (300, SETTINGS.max_constituents, 4) and c.dtype == np.float32
        assert (y == label).all()
        jet = jet_kinematics(c)
        assert jet["pt"].min() >= 549.0 and jet["pt"].max() <= 651.0  # float32 sums
        assert np.abs(jet["eta"]).max() < 2.0 + 1e-3
        kin = constituent_kinematics(c)
        pt = np.where(kin["mask"], kin["pt"], 0.0)
        assert (np.diff(pt, axis=1) <= 1e-3).all(), "constituents not sorted by pT"
        n = kin["mask"].sum(axis=1)
        assert (~kin["mask"][np.arange(c.shape[1])[None] >= n[:, None]]).all(), "padding not at the end"
        assert 20 < n.mean() < 150
        assert np.abs(kin["eta"][kin["mask"]]).max() < SETTINGS.particle_eta_max
        medians[cls] = float(np.median(jet["mass"]))
    assert 140.0 < medians["top"] < 210.0, medians
    assert medians["qcd"] < 130.0, medians


@pytest.mark.slow
def test_pool_is_reproducible_with_other_worker_count(pool, tmp_path):
    path, _ = pool
    other = tmp_path / "pool1"
    stats = generate_jets(other, 100, SETTINGS, seed=SEED, workers=1, shard_size=100, progress=False)
    assert stats["top"]["shards_generated"] == 1 and stats["qcd"]["shards_generated"] == 1
    for cls in ("top", "qcd"):
        a, _ = read_canonical(shard_path(path, cls, 0))
        b, _ = read_canonical(shard_path(other, cls, 0))
        assert np.array_equal(a, b)
    c, _ = read_canonical(shard_path(path, "top", 1))
    assert not np.array_equal(a[:10], c[:10])  # different shards, different events


@pytest.mark.slow
def test_resume_regenerates_only_the_missing_shard(pool, tmp_path):
    src, _ = pool
    path = tmp_path / "pool"
    shutil.copytree(src, path)
    before = assemble(path, 300, (0.6, 0.2, 0.2), seed=SEED, out_dir=tmp_path / "a")
    victim = shard_path(path, "top", 1)
    victim.unlink()
    stale = victim.with_name(f".{victim.name}.999999999.tmp")  # left by a killed process
    stale.write_bytes(b"partial")
    kept = {p: p.stat().st_mtime_ns for p in path.glob("*/shard_*.h5")}
    stats = generate_jets(path, 300, SETTINGS, seed=SEED, workers=2, shard_size=100, progress=False)
    assert stats["top"]["shards_generated"] == 1 and stats["top"]["shards_reused"] == 2
    assert stats["qcd"]["shards_generated"] == 0 and stats["qcd"]["shards_reused"] == 3
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert victim.is_file() and not stale.exists()
    with h5py.File(victim) as f:
        assert f.attrs["shard"] == 1 and f.attrs["class"] == "top"
    after = assemble(path, 300, (0.6, 0.2, 0.2), seed=SEED, out_dir=tmp_path / "b")
    for split in ("train", "val", "test"):
        (ca, ya), (cb, yb) = read_canonical(before[split]), read_canonical(after[split])
        assert np.array_equal(ca, cb) and np.array_equal(ya, yb)
    again = generate_jets(path, 300, SETTINGS, seed=SEED, workers=2, shard_size=100, progress=False)
    assert again["top"]["shards_generated"] == 0 and again["qcd"]["shards_generated"] == 0
    assert not any(p.name.endswith(".tmp") for p in path.rglob("*"))
    assert sorted(os.listdir(path / "top")) == sorted(os.listdir(src / "top"))
