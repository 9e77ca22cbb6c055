"""Jets that would give a silently wrong result are refused: wrong component order, wrong units,
random bytes, the same jets in training and test (issue 11)."""
from __future__ import annotations

import numpy as np
import pytest

from trigger_kd.config import load_config
from trigger_kd.data.formats import DataFormatError, load_source, read_canonical, write_canonical
from trigger_kd.data.sanity import DataSanityError
from trigger_kd.pipeline import run_pipeline
from trigger_kd.stages import STAGES


def _jets(n: int, seed: int, p: int = 10) -> np.ndarray:
    """(n, p, 4) massless constituents E,px,py,pz (GeV) in a cone around +x: jet masses of tens of GeV."""
    rng = np.random.default_rng(seed)
    p3 = rng.normal(scale=5.0, size=(n, p, 3)) + np.array([40.0, 0.0, 0.0])
    return np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1).astype(np.float32)


def _labels(n: int) -> np.ndarray:
    return (np.arange(n) % 2).astype(np.int8)


def test_component_order_px_py_pz_e_is_refused(tmp_path):
    c = _jets(50, 0)
    write_canonical(tmp_path / "ok.h5", c, _labels(50))
    load_source("canonical", [tmp_path / "ok.h5"], 10)  # physical jets pass
    write_canonical(tmp_path / "swapped.h5", c[..., [1, 2, 3, 0]], _labels(50))
    with pytest.raises(DataSanityError, match=r"swapped\.h5 .*E < \|p\|.*seems to store \(px, py, pz, E\)"):
        load_source("canonical", [tmp_path / "swapped.h5"], 10)


def test_mev_units_are_refused(tmp_path):
    write_canonical(tmp_path / "mev.h5", _jets(50, 1) * 1000.0, _labels(50))
    with pytest.raises(DataSanityError, match="implausible jet mass spectrum.*MeV"):
        load_source("canonical", [tmp_path / "mev.h5"], 10)


def test_toptagging_file_of_random_bytes(tmp_path):
    path = tmp_path / "train.h5"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(DataFormatError, match=r"train\.h5: not an HDF5 file"):
        load_source("toptagging", [path], 10)


def _data_cfg_sets(*paths) -> list[str]:
    listed = ", ".join(f"'{p}'" for p in paths)
    return ["data.source=canonical", f"data.paths=[{listed}]", "data.jets_per_class=0", "data.max_constituents=10",
            "teacher.n_particles=10", "student.n_particles=8"]


def _data_cfg(repo, *paths):
    return load_config(repo / "hls_configs/mlp_kd.yml", _data_cfg_sets(*paths))


def test_same_file_twice_is_refused(tmp_path, repo):
    a = write_canonical(tmp_path / "a.h5", _jets(60, 2), _labels(60))
    with pytest.raises(DataSanityError, match=r"lists the same file twice .*a\.h5"):
        run_pipeline(_data_cfg(repo, a, tmp_path / "." / "a.h5"), STAGES[:1], tmp_path / "run")


def test_overlapping_files_are_refused_naming_them(tmp_path, repo):
    c = _jets(400, 3)
    a = write_canonical(tmp_path / "a.h5", c[:300], _labels(300))
    b = write_canonical(tmp_path / "b.h5", c[200:], _labels(200))  # 100 jets in both files
    with pytest.raises(DataSanityError, match=r"also in the .* split .*a\.h5 and .*b\.h5"):
        run_pipeline(_data_cfg(repo, a, b), STAGES[:1], tmp_path / "run")
    b = write_canonical(tmp_path / "b.h5", _jets(200, 4), _labels(200))  # disjoint: fine
    run_pipeline(_data_cfg(repo, a, b), STAGES[:1], tmp_path / "run")
    assert sum(len(read_canonical(tmp_path / "run" / "data" / f"{s}.h5")[1]) for s in ("train", "val", "test")) == 500


def test_file_replaced_at_the_same_path_is_not_served_from_the_cache(tmp_path, repo):
    path = tmp_path / "jets.h5"
    write_canonical(path, _jets(100, 5), _labels(100))
    run_pipeline(_data_cfg(repo, path), STAGES[:1], tmp_path / "run1")
    write_canonical(path, _jets(140, 6), _labels(140))  # same path, other jets
    run_pipeline(_data_cfg(repo, path), STAGES[:1], tmp_path / "run2")
    n = [sum(len(read_canonical(tmp_path / r / "data" / f"{s}.h5")[1]) for s in ("train", "val", "test"))
         for r in ("run1", "run2")]
    assert n == [100, 140]


def test_huge_request_states_its_cost_and_is_refused_before_starting(tmp_path, repo, capsys):
    from trigger_kd.cli import main as cli
    from trigger_kd.data.generate import shard_pool
    from trigger_kd.pipeline import cache_root

    cfg = load_config(repo / "hls_configs/mlp_kd.yml", ["data.jets_per_class=1000000000"])
    pools = [shard_pool(cfg.data, cache_root(), cls) for cls in ("top", "qcd")]

    def pool_files():  # the pools are keyed by physics, not jet count: other tests may have filled them already
        return {str(f) for pool in pools if pool.exists() for f in pool.rglob("*")}

    before = pool_files()
    rc = cli(["run", str(repo / "hls_configs/mlp_kd.yml"), "--to", "data", "--run-dir", str(tmp_path / "run"),
              "--set", "data.jets_per_class=1000000000", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "estimate" in err and "of disk" in err and "of memory" in err and "days" in err
    assert "does not fit" in err and "Traceback" not in err
    assert pool_files() == before  # nothing generated
    assert not (tmp_path / "run" / "data").exists()


@pytest.mark.slow  # runs the pipeline up to the student twice (teacher kernel build and training)
def test_jet_pt_feature_of_soft_jets_is_refused_before_the_student_trains(tmp_path, repo):
    """Jets of about 120 GeV: ln(pT / TeV) is below the fixed<10,2> input range. The student stage refuses
    before training (model and firmware would agree on a clipped input, so no parity check would notice);
    one more integer bit lets it run, and metrics.json records what saturates."""
    import json

    from trigger_kd.errors import TriggerKDError

    path = write_canonical(tmp_path / "soft.h5", _jets(400, 7) * 0.3, _labels(400))
    tiny = ["teacher.n_particles=4", "teacher.hidden=4", "teacher.layers=1", "teacher.epochs=1",
            "distill.transfer_jets_per_class=0", "student.epochs=1", "student.n_particles=4", "student.mlp_hidden=[4]",
            "distill.scratch_twin=false", "student.jet_pt_feature=true"]
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", [*_data_cfg_sets(path), *tiny])
    with pytest.raises(TriggerKDError, match=r"ln_pt_jet_tev is outside .* in 100\.0 % of the training and transfer "
                                             r"jets: .* 135 GeV to 7\.4 TeV; raise student\.input_int_bits"):
        run_pipeline(cfg, STAGES, tmp_path / "run", to="student", progress=False)
    assert not (tmp_path / "run" / "student").exists()
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", [*_data_cfg_sets(path), *tiny, "student.input_int_bits=2"])
    run_pipeline(cfg, STAGES, tmp_path / "run", to="student", progress=False)
    sat = json.loads((tmp_path / "run" / "student" / "metrics.json").read_text())["inputs"]["saturated_jets"]
    assert set(sat) == {"training", "test"} and sat["training"]["ln_pt_jet_tev"] == 0.0
    assert list(sat["test"]) == ["2*pt/pt_jet", "2*deta", "2*dphi", "mass_gev", "ln_pt_jet_tev"]


def test_leaks_count_every_copy_of_a_jet():
    """One jet copied three times into the test split is three leaked test jets (one distinct), not "1 jets"."""
    from trigger_kd.data.sanity import check_no_leaks

    j = _jets(10, 7)
    splits = {"train": j[:5], "test": j[[0, 0, 0, 6]]}
    with pytest.raises(DataSanityError, match=r"3 of the 4 jets of the test split .*1 distinct jets"):
        check_no_leaks(splits, None, ["jets.h5"])
