"""Pythia 8 + FastJet jet generation: physics sanity, reproducibility, resume, assembly."""
from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from trigger_kd.config import DataConfig
from trigger_kd.data.formats import read_canonical, read_jet_classes, write_canonical
from trigger_kd.data.generate import (
    GenerationError,
    _boson_partons,
    _top_partons,
    assemble,
    generate_jets,
    pythia_commands,
    shard_path,
    shard_seed,
)
from trigger_kd.data.physics import constituent_kinematics, jet_kinematics, softdrop_mass

SEED = 7
SETTINGS = DataConfig()
GEN = DataConfig(jets_per_class=300, seed=SEED, workers=2, shard_size=100)  # the generation tests' pools


# ----------------------------------------------------------------------------- fast unit tests

# one xdist worker runs the whole module (make test: --dist loadgroup), so its module-scoped fixtures are made once
pytestmark = pytest.mark.xdist_group("test_data_generate")

def test_shard_seeds_are_stable_distinct_and_in_pythia_range():
    seeds = {shard_seed(SEED, cls, k) for cls in ("top", "qcd") for k in range(50)}
    assert len(seeds) == 100
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert shard_seed(SEED, "top", 3) == shard_seed(SEED, "top", 3)
    assert shard_seed(SEED, "top", 3) != shard_seed(SEED + 1, "top", 3)


def test_pythia_commands_follow_settings():
    top = pythia_commands(DataConfig(mpi=True, hadronization=False, pthat_min=400.0), "top", 5)
    assert "Top:gg2ttbar = on" in top and "Top:qqbar2ttbar = on" in top
    assert "24:onIfAny = 1 2 3 4 5" in top and "PartonLevel:MPI = on" in top
    assert "HadronLevel:all = off" in top and "PhaseSpace:pTHatMin = 400.0" in top
    qcd = pythia_commands(SETTINGS, "qcd", 5)
    assert "HardQCD:all = on" in qcd and "PartonLevel:MPI = off" in qcd and "Random:seed = 5" in qcd
    with pytest.raises(GenerationError, match="unknown jet class"):
        pythia_commands(SETTINGS, "wjets", 5)
    w = pythia_commands(SETTINGS, "w", 5)
    assert "WeakDoubleBoson:ffbar2WW = on" in w and "24:onIfAny = 1 2 3 4 5" in w
    z = pythia_commands(SETTINGS, "z", 5)
    assert "WeakZ0:gmZmode = 2" in z and "23:onIfAny = 1 2 3 4 5" in z
    assert "HardQCD:gg2gg = on" in pythia_commands(SETTINGS, "gluon", 5)
    assert "HardQCD:qq2qq = on" in pythia_commands(SETTINGS, "q", 5)


def test_top_partons_from_an_event_record():
    # event 0: t -> b W+, W+ -> u dbar ; tbar -> bbar W-, W- -> e nu (leptonic: incomplete)
    pid = np.array([90, 6, -6, 5, 24, -5, -24, 2, -1, 11, -12, 21])
    mother = np.array([-1, 0, 0, 1, 1, 2, 2, 4, 4, 6, 6, 0])
    event = np.zeros(len(pid), np.int64)
    out = _top_partons(pid, mother, event, 1)
    assert out[0, 0].tolist() == [1, 3, 7, 8]
    assert (out[0, 1] == -1).all()


def test_boson_partons_from_an_event_record():
    # event 0: Z -> b bbar, Z (copy) -> Z -> u ubar ; event 1: Z -> mu mu (no quarks) ; event 2: Z -> d dbar
    pid = np.array([90, 23, 23, 23, 5, -5, 2, -2, 21, 90, 23, 13, -13, 90, 23, 1, -1])
    mother = np.array([-1, 0, 0, 2, 1, 1, 3, 3, 4, -1, 9, 10, 10, -1, 13, 14, 14])
    event = np.array([0] * 9 + [1] * 4 + [2] * 4)
    out = _boson_partons(pid, mother, event, 3, 23)
    assert out.shape == (3, 2, 3)
    assert out[0].tolist() == [[1, 4, 5], [3, 6, 7]]
    assert (out[1] == -1).all()
    assert out[2, 0].tolist() == [14, 15, 16] and (out[2, 1] == -1).all()
    assert (_boson_partons(pid, mother, event, 3, 24) == -1).all()  # no W in these events


def _fake_pools(root, classes):
    """Pools of 3 shards x 10 jets per class, jets tagged by E = 1000 * class index + 100 * shard + jet."""
    rng = np.random.default_rng(0)
    pools = {cls: root / cls for cls in classes}
    for j, cls in enumerate(classes):
        for k in range(3):
            c = rng.normal(size=(10, 5, 4)).astype(np.float32)
            c[:, :, 0] = 1000 * j + 100 * k + np.arange(10)[:, None]
            write_canonical(shard_path(pools[cls], k), c, np.zeros(10, np.int8), jet_class=np.full(10, cls))
    return pools


def test_softdrop_drops_a_soft_wide_angle_particle():
    def particle(pt, eta, phi):
        return [pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]

    prongs = [particle(300.0, 0.0, 0.0), particle(200.0, 0.15, 0.1)]
    jet = np.zeros((2, 5, 4))
    jet[0, :3] = prongs + [particle(2.0, -0.5, 0.5)]  # z = 2/502 < 0.1, dR ~ 0.7: groomed away
    jet[1, :1] = prongs[:1]
    plain = jet_kinematics(jet)["mass"]
    two = jet_kinematics(np.array([prongs]))["mass"][0]
    sd = softdrop_mass(jet)
    assert sd[0] == pytest.approx(two, rel=1e-9) and plain[0] > two + 5.0
    assert sd[1] == pytest.approx(0.0, abs=1e-3)  # a single massless particle


def test_assemble_balances_classes_and_splits(tmp_path):
    pools = _fake_pools(tmp_path / "pool", ["qcd", "top"])
    paths = assemble(pools, DataConfig(jets_per_class=25, seed=3), out_dir=tmp_path / "out")
    tags = []
    for name, n in (("train", 30), ("val", 10), ("test", 10)):
        c, y = read_canonical(paths[name])
        assert len(y) == n and (y == 1).sum() == n // 2
        assert np.array_equal(y, (c[:, 0, 0] >= 1000).astype(np.int8))
        assert np.array_equal(read_jet_classes(paths[name]), np.where(y == 1, "top", "qcd"))
        tags.extend(c[:, 0, 0].tolist())
    expected = [1000 * lab + 100 * k + i for lab in (0, 1) for k in range(3) for i in range(10) if 10 * k + i < 25]
    assert sorted(tags) == sorted(expected)  # first 25 jets per class, each once
    with pytest.raises(GenerationError, match="missing"):
        assemble(pools, DataConfig(jets_per_class=31, seed=3), out_dir=tmp_path / "out2")


def test_assemble_labels_the_signal_classes(tmp_path):
    pools = _fake_pools(tmp_path / "pool", ["w", "z", "gluon", "q"])
    paths = assemble(pools, DataConfig(jets_per_class=20, split=(0.5, 0.25, 0.25), signal=("w", "z"),
                                       background=("gluon",)), out_dir=tmp_path / "out")
    c, y = read_canonical(paths["train"])
    names = read_jet_classes(paths["train"])
    assert len(y) == 30 and sorted(set(names)) == ["gluon", "w", "z"]
    assert np.array_equal(y, np.isin(names, ["w", "z"]).astype(np.int8))
    assert np.array_equal(names, np.array(["w", "z", "gluon"])[(c[:, 0, 0] // 1000).astype(int)])
    with pytest.raises(ValueError, match="overlap"):  # the data section refuses the task when it is made
        DataConfig(signal=("q",), background=("qcd",))
    with pytest.raises(GenerationError, match=r"no pool given for the jet class\(es\) \['top'\]"):
        assemble(pools, DataConfig(jets_per_class=10, signal=("top",), background=("q",)), out_dir=tmp_path / "o3")


def test_generate_rejects_bad_sizes_and_classes(tmp_path):
    for bad in ({"jets_per_class": 0}, {"shard_size": 0}, {"split": (0.6, 0.5, 0.2)}):  # refused when made
        with pytest.raises(ValueError, match=next(iter(bad))):
            DataConfig(**bad)
    with pytest.raises(GenerationError, match=r"unknown jet class\(es\) \['higgs'\]"):
        generate_jets({"higgs": tmp_path}, DataConfig(jets_per_class=10, workers=1), progress=False)


# ----------------------------------------------------------------------------- real generation
def _pools(root):
    return {cls: root / cls for cls in ("top", "qcd")}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("jets") / "pool"
    stats = generate_jets(_pools(path), GEN, progress=False)
    return path, stats


def _class(pool_dir, cls, n_shards=3):
    parts = [read_canonical(shard_path(pool_dir / cls, k)) for k in range(n_shards)]
    names = np.concatenate([read_jet_classes(shard_path(pool_dir / cls, k)) for k in range(n_shards)])
    assert (names == cls).all()
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
def test_w_z_gluon_and_quark_jets_are_physical(tmp_path):
    classes = ("w", "z", "gluon", "q")
    stats = generate_jets({cls: tmp_path / cls for cls in classes}, GEN, progress=False)
    mass, groomed, n_const = {}, {}, {}
    for cls in classes:
        assert stats[cls]["shards_generated"] == 3 and stats[cls]["jets_per_cpu_second"] > 10
        c, _ = _class(tmp_path, cls)
        jet = jet_kinematics(c)
        assert jet["pt"].min() >= 549.0 and jet["pt"].max() <= 651.0
        mass[cls] = float(np.median(jet["mass"]))
        groomed[cls] = float(np.median(softdrop_mass(c)))
        n_const[cls] = float(np.any(c != 0, axis=-1).sum(axis=1).mean())
    assert 65.0 < mass["w"] < 95.0 and 70.0 < groomed["w"] < 90.0, (mass, groomed)  # m_W = 80.4 GeV
    assert 78.0 < mass["z"] < 105.0 and 82.0 < groomed["z"] < 100.0, (mass, groomed)  # m_Z = 91.2 GeV
    assert mass["z"] > mass["w"] and groomed["z"] > groomed["w"], (mass, groomed)
    # light-quark jets are lighter than gluon jets; grooming takes both well below the bosons
    assert mass["q"] < mass["gluon"] and groomed["q"] < groomed["gluon"] < groomed["w"] - 15.0, (mass, groomed)
    assert n_const["gluon"] > 1.3 * n_const["q"], n_const  # C_A / C_F: gluons radiate more


@pytest.mark.slow
def test_pool_is_reproducible_with_other_worker_count(pool, tmp_path):
    path, _ = pool
    other = tmp_path / "pool1"
    stats = generate_jets(_pools(other), GEN.model_copy(update={"jets_per_class": 100, "workers": 1}), progress=False)
    assert stats["top"]["shards_generated"] == 1 and stats["qcd"]["shards_generated"] == 1
    for cls in ("top", "qcd"):
        a, _ = read_canonical(shard_path(path / cls, 0))
        b, _ = read_canonical(shard_path(other / cls, 0))
        assert np.array_equal(a, b)
    c, _ = read_canonical(shard_path(path / "top", 1))
    assert not np.array_equal(a[:10], c[:10])  # different shards, different events


@pytest.mark.slow
def test_resume_regenerates_only_the_missing_shard(pool, tmp_path):
    src, _ = pool
    path = tmp_path / "pool"
    shutil.copytree(src, path)
    before = assemble(_pools(path), GEN, out_dir=tmp_path / "a")
    victim = shard_path(path / "top", 1)
    victim.unlink()
    stale = victim.with_name(f".{victim.name}.999999999.tmp")  # left by a killed process
    stale.write_bytes(b"partial")
    kept = {p: p.stat().st_mtime_ns for p in path.glob("*/shard_*.h5")}
    stats = generate_jets(_pools(path), GEN, progress=False)
    assert stats["top"]["shards_generated"] == 1 and stats["top"]["shards_reused"] == 2
    assert stats["qcd"]["shards_generated"] == 0 and stats["qcd"]["shards_reused"] == 3
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert victim.is_file() and not stale.exists()
    with h5py.File(victim) as f:
        assert f.attrs["shard"] == 1 and f.attrs["class"] == "top"
    after = assemble(_pools(path), GEN, out_dir=tmp_path / "b")
    for split in ("train", "val", "test"):
        (ca, ya), (cb, yb) = read_canonical(before[split]), read_canonical(after[split])
        assert np.array_equal(ca, cb) and np.array_equal(ya, yb)
    again = generate_jets(_pools(path), GEN, progress=False)
    assert again["top"]["shards_generated"] == 0 and again["qcd"]["shards_generated"] == 0
    assert not any(p.name.endswith(".tmp") for p in path.rglob("*"))
    assert sorted(os.listdir(path / "top")) == sorted(os.listdir(src / "top"))
