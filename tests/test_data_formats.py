"""Readers for the public jet formats and the canonical layout, on small files in those layouts."""
from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot

from trigger_kd.data.formats import DataFormatError, load_source, read_canonical, read_jet_classes, write_canonical
from trigger_kd.errors import TriggerKDError

P = 6  # constituents per jet in the small test files


def _jets(n: int, seed: int) -> np.ndarray:
    """(n, P, 4) massless E,px,py,pz, unsorted in pT, with 0-2 zero-padded slots at the end."""
    rng = np.random.default_rng(seed)
    p3 = rng.normal(scale=20.0, size=(n, P, 3))
    c = np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1).astype(np.float32)
    for i in range(n):
        c[i, P - (i % 3):] = 0.0
    return c


def _sorted(c: np.ndarray, p: int) -> np.ndarray:
    pt = np.hypot(c[..., 1], c[..., 2])
    out = np.take_along_axis(c, np.argsort(-pt, axis=1, kind="stable")[..., None], axis=1)[:, :p]
    if out.shape[1] < p:
        out = np.concatenate([out, np.zeros((len(c), p - out.shape[1], 4), np.float32)], axis=1)
    return out


def _check_sorted(c: np.ndarray) -> None:
    pt = np.hypot(c[..., 1], c[..., 2])
    assert (np.diff(pt, axis=1) <= 0).all()


# ----------------------------------------------------------------------------- canonical
def test_canonical_roundtrip_and_layout(tmp_path):
    c = _jets(5, 0)
    y = np.array([1, 0, 1, 0, 0], np.int8)
    path = write_canonical(tmp_path / "x.h5", c, y)
    with h5py.File(path) as f:
        assert f.attrs["layout"] == "E,px,py,pz GeV"
        assert f["constituents"].dtype == np.float32 and f["is_signal"].dtype == np.int8 and "is_top" not in f
    c2, y2 = read_canonical(path)
    assert np.array_equal(c2, c) and np.array_equal(y2, y)
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]  # no temp file left behind
    assert read_jet_classes(path).tolist() == ["top", "qcd", "top", "qcd", "qcd"]  # a file without jet_class
    c3, y3, n3 = load_source("canonical", [path, path], 4)
    assert c3.shape == (10, 4, 4) and np.array_equal(c3[:5], _sorted(c, 4)) and np.array_equal(y3[5:], y)
    assert n3[:5].tolist() == ["top", "qcd", "top", "qcd", "qcd"]


def test_canonical_files_that_name_the_label_is_top_keep_loading(tmp_path):
    """Files written before the label was renamed is_signal (its dataset was is_top) read the same."""
    c = _jets(4, 2)
    y = np.array([1, 0, 0, 1], np.int8)
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f["constituents"] = c.astype(np.float32)
        f["is_top"] = y
    c2, y2 = read_canonical(tmp_path / "old.h5")
    assert np.array_equal(c2, c.astype(np.float32)) and np.array_equal(y2, y)
    assert read_jet_classes(tmp_path / "old.h5").tolist() == ["top", "qcd", "qcd", "top"]
    with h5py.File(tmp_path / "old.h5", "a") as f:
        f["is_top"][0] = 2
    with pytest.raises(DataFormatError, match="'is_top' must hold 0 .background. or 1 .signal."):
        read_canonical(tmp_path / "old.h5")


def test_canonical_records_each_jets_class(tmp_path):
    c = _jets(5, 1)
    names = np.array(["w", "gluon", "z", "w", "q"])
    path = write_canonical(tmp_path / "x.h5", c, np.isin(names, ["w", "z"]), jet_class=names)
    assert read_jet_classes(path).tolist() == names.tolist()
    c2, y2, n2 = load_source("canonical", [path], 6, signal=("w",), background=("gluon", "q"))
    assert n2.tolist() == ["w", "gluon", "w", "q"] and y2.tolist() == [1, 0, 1, 0]
    assert np.array_equal(c2, _sorted(c[[0, 1, 3, 4]], 6))
    _, y3, n3 = load_source("canonical", [path], 6, signal=("z",), background=("qcd",))  # qcd takes gluon and q
    assert n3.tolist() == ["gluon", "z", "q"] and y3.tolist() == [0, 1, 0]
    with pytest.raises(DataFormatError, match=r"no top jets in .*x\.h5 \(canonical\) for the task top vs qcd"):
        load_source("canonical", [path], 6)
    with pytest.raises(DataFormatError, match=r"unknown jet classes \['higgs'\]"):
        write_canonical(tmp_path / "y.h5", c, np.zeros(5), jet_class=["higgs"] * 5)


def test_canonical_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"missing\.h5: file not found"):
        read_canonical(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        read_canonical(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["constituents"] = np.zeros((3, 2, 4), np.float32)
    with pytest.raises(DataFormatError, match="no dataset 'is_signal'"):
        read_canonical(tmp_path / "other.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f["constituents"] = np.zeros((3, 2, 3), np.float32)
        f["is_top"] = np.zeros(3, np.int8)
    with pytest.raises(DataFormatError, match=r"\(N, P, 4\)"):
        read_canonical(tmp_path / "shape.h5")
    c = _jets(3, 1)
    c[1, 0, 2] = np.nan
    write_canonical(tmp_path / "nan.h5", c, np.zeros(3, np.int8))
    with pytest.raises(DataFormatError, match=r"nan\.h5: 1 NaN/inf values .* 1 jets \(first: jet 1\)"):
        read_canonical(tmp_path / "nan.h5")
    with pytest.raises(DataFormatError, match="is_signal must be"):
        write_canonical(tmp_path / "bad.h5", c, np.zeros(2, np.int8))
    assert issubclass(DataFormatError, TriggerKDError)


# ----------------------------------------------------------------------------- top tagging
def _toptagging_file(path, c, y, n_slots=200):
    n = len(c)
    data = {}
    padded = np.zeros((n, n_slots, 4), np.float32)
    padded[:, : c.shape[1]] = c
    for i in range(n_slots):
        for j, k in enumerate(("E", "PX", "PY", "PZ")):
            data[f"{k}_{i}"] = padded[:, i, j]
    for k in ("truthE", "truthPX", "truthPY", "truthPZ"):
        data[k] = np.ones(n, np.float32)
    data["ttv"] = np.zeros(n, np.int64)
    data["is_signal_new"] = y.astype(np.int64)
    df = pd.DataFrame(data)
    assert df.shape[1] == 4 * n_slots + 6  # 806 for the real files
    df.to_hdf(path, key="table")
    return path


def test_toptagging(tmp_path):
    c = _jets(7, 2)
    y = np.array([1, 0, 0, 1, 1, 0, 1], np.int8)
    path = _toptagging_file(tmp_path / "train.h5", c, y)
    c2, y2, n2 = load_source("toptagging", [path], 10)
    assert np.array_equal(n2, np.where(y == 1, "top", "qcd"))
    assert c2.shape == (7, 10, 4) and c2.dtype == np.float32 and y2.dtype == np.int8
    assert np.array_equal(c2, _sorted(c, 10)) and np.array_equal(y2, y)
    _check_sorted(c2)
    c3, _, _ = load_source("toptagging", [path], 3)
    assert np.array_equal(c3, _sorted(c, 3))


def test_toptagging_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere\.h5: file not found"):
        load_source("toptagging", [tmp_path / "nothere.h5"], 10)
    pd.DataFrame({"E_0": [1.0], "PX_0": [1.0]}).to_hdf(tmp_path / "cols.h5", key="table")
    with pytest.raises(DataFormatError, match=r"cols\.h5: missing columns \['PY_0', 'PZ_0', 'is_signal_new'\]"):
        load_source("toptagging", [tmp_path / "cols.h5"], 10)
    pd.DataFrame({"E_0": [1.0]}).to_hdf(tmp_path / "key.h5", key="other")
    with pytest.raises(DataFormatError, match=r"key\.h5: no pandas key 'table'"):
        load_source("toptagging", [tmp_path / "key.h5"], 10)
    c = _jets(4, 3)
    c[2, 1, 0] = np.nan
    path = _toptagging_file(tmp_path / "nan.h5", c, np.array([1, 0, 1, 0]), n_slots=P)
    with pytest.raises(DataFormatError, match=r"nan\.h5: 1 NaN/inf .*toptagging"):
        load_source("toptagging", [path], 10)
    path = _toptagging_file(tmp_path / "qcd.h5", _jets(3, 4), np.zeros(3), n_slots=P)
    with pytest.raises(DataFormatError, match=r"no top jets in .*qcd\.h5"):
        load_source("toptagging", [path], 10)


# ----------------------------------------------------------------------------- hls4ml
JET_NAMES = [f"j_feat{i}" for i in range(53)] + ["j_g", "j_q", "j_w", "j_z", "j_t", "j_undef"]
PART_NAMES = ["j1_px", "j1_py", "j1_pz", "j1_e", "j1_erel", "j1_pt", "j1_ptrel", "j1_eta", "j1_etarel",
              "j1_etarot", "j1_phi", "j1_phirel", "j1_phirot", "j1_deltaR", "j1_costheta", "j1_costhetarel"]
LABELS = {"g": 0, "q": 1, "w": 2, "z": 3, "t": 4}


def _hls4ml_file(path, c, kinds, names=True):
    n = len(c)
    jets = np.zeros((n, 59), np.float32)
    for i, k in enumerate(kinds):
        jets[i, 53 + LABELS[k]] = 1.0
    parts = np.zeros((n, 150, 16), np.float32)
    parts[:, : c.shape[1], 0:3] = c[..., 1:4]
    parts[:, : c.shape[1], 3] = c[..., 0]
    parts[:, : c.shape[1], 4:] = 7.0  # other features must be ignored
    with h5py.File(path, "w") as f:
        f["jets"] = jets
        f["jetConstituentList"] = parts
        f["jetImage"] = np.zeros((n, 4, 4), np.float32)
        if names:
            f["jetFeatureNames"] = np.array([s.encode() for s in JET_NAMES])
            f["particleFeatureNames"] = np.array([s.encode() for s in PART_NAMES])
    return path


@pytest.mark.parametrize("names", [True, False])
def test_hls4ml(tmp_path, names):
    c = _jets(6, 5)
    kinds = ["t", "g", "w", "q", "z", "t"]
    path = _hls4ml_file(tmp_path / "jetImage_0_150p.h5", c, kinds, names=names)
    c2, y2, n2 = load_source("hls4ml", [path], 8)
    keep = [0, 1, 3, 5]  # W and Z jets dropped
    assert np.array_equal(y2, [1, 0, 0, 1]) and n2.tolist() == ["top", "gluon", "q", "top"]
    assert np.array_equal(c2, _sorted(c[keep], 8))
    c3, y3, n3 = load_source("hls4ml", [path], 8, signal=("w",), background=("gluon",))
    assert n3.tolist() == ["gluon", "w"] and y3.tolist() == [0, 1]
    assert np.array_equal(c3, _sorted(c[[1, 2]], 8))
    _, y4, n4 = load_source("hls4ml", [path], 8, signal=("z", "top"), background=("q",))
    assert n4.tolist() == ["top", "q", "z", "top"] and y4.tolist() == [1, 0, 1, 1]


def test_hls4ml_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"gone\.h5: file not found"):
        load_source("hls4ml", [tmp_path / "gone.h5"], 8)
    with h5py.File(tmp_path / "nolist.h5", "w") as f:
        f["jets"] = np.zeros((2, 59), np.float32)
    with pytest.raises(DataFormatError, match=r"nolist\.h5: missing datasets \['jetConstituentList'\]"):
        load_source("hls4ml", [tmp_path / "nolist.h5"], 8)
    path = _hls4ml_file(tmp_path / "wz.h5", _jets(2, 6), ["w", "z"])
    with pytest.raises(DataFormatError, match=r"no top jets in .*wz\.h5 \(hls4ml\)"):
        load_source("hls4ml", [path], 8)
    c = _jets(2, 7)
    c[0, 0, 3] = np.inf
    path = _hls4ml_file(tmp_path / "inf.h5", c, ["t", "g"])
    with pytest.raises(DataFormatError, match=r"inf\.h5: 1 NaN/inf"):
        load_source("hls4ml", [path], 8)


# ----------------------------------------------------------------------------- JetClass
def _jetclass_file(path, c, label, counts, extra_label="label_Hbb"):
    n = len(c)
    branches = {}
    for name, j in (("part_px", 1), ("part_py", 2), ("part_pz", 3), ("part_energy", 0)):
        flat = np.concatenate([c[i, : counts[i], j] for i in range(n)]).astype(np.float32)
        branches[name] = ak.unflatten(flat, counts)
    for name in ("label_QCD", "label_Tbqq", extra_label):
        branches[name] = (np.full(n, name == label)).astype(np.bool_)
    branches["jet_pt"] = np.ones(n, np.float32)
    with uproot.recreate(path) as f:
        f["tree"] = branches
    return path


def test_jetclass(tmp_path):
    top_c, qcd_c = _jets(4, 8), _jets(3, 9)
    top = _jetclass_file(tmp_path / "TTBar_120.root", top_c, "label_Tbqq", [6, 5, 4, 6])
    qcd = _jetclass_file(tmp_path / "ZJetsToNuNu_120.root", qcd_c, "label_QCD", [6, 6, 5])
    hbb = _jetclass_file(tmp_path / "HToBB_120.root", qcd_c, "label_Hbb", [6, 6, 5])
    c2, y2, n2 = load_source("jetclass", [top, qcd, hbb], 5)
    assert n2.tolist() == ["top"] * 4 + ["qcd"] * 3
    wqq = _jetclass_file(tmp_path / "WToQQ_120.root", qcd_c, "label_Wqq", [6, 6, 5], extra_label="label_Wqq")
    _, y3, n3 = load_source("jetclass", [wqq, qcd, top], 5, signal=("w",), background=("qcd",))
    assert n3.tolist() == ["w"] * 3 + ["qcd"] * 3 and y3.tolist() == [1] * 3 + [0] * 3
    assert np.array_equal(y2, [1, 1, 1, 1, 0, 0, 0])
    top_c[1, 5:] = 0.0
    top_c[2, 4:] = 0.0
    qcd_c[2, 5:] = 0.0
    assert np.array_equal(c2, _sorted(np.concatenate([top_c, qcd_c]), 5))
    _check_sorted(c2)


def test_jetclass_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"TTBar_0\.root: file not found"):
        load_source("jetclass", [tmp_path / "TTBar_0.root"], 5)
    with uproot.recreate(tmp_path / "bad.root") as f:
        f["tree"] = {"part_px": ak.Array([[1.0], [2.0]]), "label_QCD": np.array([True, True])}
    with pytest.raises(DataFormatError, match=r"bad\.root: tree 'tree' lacks the branches \['part_py'"):
        load_source("jetclass", [tmp_path / "bad.root"], 5)
    with uproot.recreate(tmp_path / "notree.root") as f:
        f["events"] = {"x": np.zeros(2)}
    with pytest.raises(DataFormatError, match=r"notree\.root: no TTree 'tree'"):
        load_source("jetclass", [tmp_path / "notree.root"], 5)
    c = _jets(2, 10)
    c[1, 2, 1] = np.nan
    path = _jetclass_file(tmp_path / "nan.root", c, "label_Tbqq", [6, 6])
    with pytest.raises(DataFormatError, match=r"nan\.root: 1 NaN/inf"):
        load_source("jetclass", [path], 5)
    path = _jetclass_file(tmp_path / "TTBar_1.root", _jets(2, 11), "label_Tbqq", [6, 6])
    with pytest.raises(DataFormatError, match=r"no qcd jets in .*TTBar_1\.root"):
        load_source("jetclass", [path], 5)


def test_load_source_arguments(tmp_path):
    with pytest.raises(DataFormatError, match="unknown data source 'delphes'"):
        load_source("delphes", [tmp_path / "x.h5"], 5)
    with pytest.raises(DataFormatError, match="at least one input file"):
        load_source("toptagging", [], 5)
