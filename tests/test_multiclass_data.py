"""K-class taggers, the data side: data.classes in the config, the task's labels, K-class canonical files, the data
stage's balanced and stratified splits, the hls4ml LHC jets with their five labels; binary runs unchanged."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from trigger_kd.cli import main as cli
from trigger_kd.config import ConfigError, dump_config, load_config
from trigger_kd.classes import Task, task_of
from trigger_kd.data.formats import (DataFormatError, load_source, read_canonical, read_classes, read_jet_classes,
                                     read_task, write_canonical)

FIVE = ["gluon", "q", "w", "z", "top"]


def _jets(n: int, seed: int, mass: float = 0.0) -> np.ndarray:
    """(n, 10, 4) physical jets near the x axis; ``mass`` spreads the constituents so classes differ in mass."""
    rng = np.random.default_rng(seed)
    p3 = rng.normal(scale=5.0 + mass, size=(n, 10, 3)) + np.array([40.0, 0.0, 0.0])
    return np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("sets, words", [
    (["data.classes=[gluon, q, w, z, top]", "data.signal=[top]"], ["data.classes", "data.signal", "not both"]),
    (["data.classes=[gluon, q, w]", "data.background=[qcd]"], ["data.classes", "data.background"]),
    (["data.classes=[w, top]"], ["at least 3", "data.signal and data.background"]),
    (["data.classes=[w, z, higgs]"], ["unknown jet class", "higgs"]),
    (["data.classes=[w, z, w]"], ["twice"]),
    (["data.classes=[qcd, gluon, top]"], ["qcd", "gluon", "one class only"]),
])
def test_classes_refused_with_the_key_named(repo, sets, words):
    with pytest.raises(ConfigError) as exc:
        load_config(repo / "hls_configs/mlp_kd.yml", sets)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_a_five_class_config_dumps_and_reloads_and_binary_dumps_are_unchanged(repo, tmp_path):
    cfg = load_config(repo / "hls_configs/mlp_kd_hgq_5class.yml")
    assert cfg.data.task.outputs == tuple(FIVE) and cfg.data.task.n_classes == 5 and cfg.hls.output == "logits"
    text = dump_config(cfg)
    assert "classes:" in text and "signal:" not in text and "background:" not in text
    (tmp_path / "again.yml").write_text(text)
    assert load_config(tmp_path / "again.yml").data == cfg.data  # a dumped config (front's picked.yml) loads back
    binary = dump_config(load_config(repo / "hls_configs/mlp_kd.yml"))
    assert "classes" not in binary.split("teacher:")[0] and "signal:" in binary  # binary stamps as before


def test_every_shipped_config_loads(repo):
    for path in sorted((repo / "hls_configs").glob("*.yml")):
        cfg = load_config(path)
        assert cfg.data.task.n_classes == (5 if "5class" in path.stem else 2), path


# ----------------------------------------------------------------------------- the task
def test_task_labels_binary_as_before_and_k_classes_by_index():
    names = np.array(["top", "gluon", "q", "w", "z", "qcd"])
    keep, y = Task.binary(("top",), ("qcd",)).labels(names)
    assert keep.tolist() == [True, True, True, False, False, True] and y.tolist() == [1, 0, 0, 0]
    keep, y = Task.of_classes(FIVE).labels(names)
    assert keep.tolist() == [True] * 5 + [False] and y.tolist() == [4, 0, 1, 2, 3]
    t = Task.of_classes(FIVE)
    assert [t.outputs[k] for k in t.signal_outputs()] == ["w", "z", "top"]
    assert [t.outputs[k] for k in t.qcd_outputs()] == ["gluon", "q"]
    assert Task.binary(("top",), ("qcd",)).classes == ("top", "qcd")  # generation order as before (signal first)


# ----------------------------------------------------------------------------- canonical files
def test_k_class_files_carry_the_index_and_refuse_contradicting_labels(tmp_path):
    names = np.array(FIVE * 2)
    path = write_canonical(tmp_path / "k.h5", _jets(10, 1), np.isin(names, ["w", "z", "top"]).astype(np.int8),
                           jet_class=names, classes=tuple(FIVE))
    c, y = read_canonical(path)
    assert y.tolist() == [0, 1, 2, 3, 4] * 2 and read_classes(path) == tuple(FIVE)
    assert read_task(path) == Task.of_classes(FIVE)
    # two sources of the same fact: the class index and the class names must agree on every jet
    with h5py.File(path, "r+") as f:
        lab = f["label"][...]
        f["label"][...] = np.roll(lab, 1)
    with pytest.raises(DataFormatError, match="disagree on 10 of 10 jets"):
        read_canonical(path)
    with h5py.File(path, "r+") as f:
        f["label"][...] = lab + 5
    with pytest.raises(DataFormatError, match="class indices 0..4"):
        read_canonical(path)
    with pytest.raises(DataFormatError, match="none of the task's classes"):
        write_canonical(tmp_path / "bad.h5", _jets(2, 2), np.zeros(2, np.int8), jet_class=["qcd", "top"],
                        classes=tuple(FIVE))
    binary = write_canonical(tmp_path / "b.h5", _jets(2, 3), np.array([1, 0], np.int8), jet_class=["top", "qcd"])
    assert read_classes(binary) is None and read_canonical(binary)[1].tolist() == [1, 0]


def test_hls4ml_files_load_with_their_five_labels(tmp_path):
    from test_data_formats import _hls4ml_file

    kinds = ["t", "g", "w", "q", "z", "t", "g"]
    path = _hls4ml_file(tmp_path / "jets.h5", _jets(7, 4)[:, :6], kinds)
    c, y, names = load_source("hls4ml", [path], 8, task=Task.of_classes(FIVE))
    assert names.tolist() == ["top", "gluon", "w", "q", "z", "top", "gluon"] and y.tolist() == [4, 0, 2, 1, 3, 4, 0]
    _, y3, names3 = load_source("hls4ml", [path], 8, task=Task.of_classes(["gluon", "w", "z"]))
    assert names3.tolist() == ["gluon", "w", "z", "gluon"] and y3.tolist() == [0, 1, 2, 0]
    path2 = _hls4ml_file(tmp_path / "noz.h5", _jets(3, 5)[:, :6], ["t", "g", "w"])
    with pytest.raises(DataFormatError, match=r"no z jets in .*noz\.h5 \(hls4ml\).*every class"):
        load_source("hls4ml", [path2], 8, task=Task.of_classes(FIVE))


# ----------------------------------------------------------------------------- the data stage
@pytest.mark.parametrize("config,counts,sets", [
    ("mlp_kd_hgq_5class.yml", {"gluon": 60, "q": 45, "w": 50, "z": 80, "top": 55}, []),
    ("mlp_kd.yml", {"w": 90, "gluon": 47}, ["data.signal=[w]", "data.background=[gluon]"]),
], ids=["5 classes", "binary"])
def test_data_stage_balances_and_stratifies_every_task(repo, tmp_path, config, counts, sets):
    """Unequal class counts in the files -> data.jets_per_class per class, every split holding every class in the
    data.split fractions exactly (K classes and binary alike); the class index in every K-class split file."""
    names = np.concatenate([[k] * n for k, n in counts.items()])
    c = np.concatenate([_jets(n, i, mass=3.0 * i) for i, n in enumerate(counts.values())])
    path = write_canonical(tmp_path / "in.h5", c, np.isin(names, ["w", "z", "top"]).astype(np.int8), jet_class=names)
    run = tmp_path / "run"
    assert cli(["run", str(repo / "hls_configs" / config), "--to", "data", "--run-dir", str(run),
                "--no-progress", "--set", "data.source=canonical", "--set", f"data.paths=['{path}']",
                "--set", "data.jets_per_class=40", "--set", "data.max_constituents=10",
                "--set", "teacher.n_particles=10", "--set", "student.n_particles=8",
                *[a for s in sets for a in ("--set", s)]]) == 0
    k = len(counts)
    total = {}
    for split, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        f = run / "data" / f"{split}.h5"
        _, y = read_canonical(f)
        per = np.bincount(y, minlength=k)
        assert per.tolist() == [round(40 * frac)] * k, (split, per)  # balanced, stratified
        if k > 2:
            assert read_classes(f) == tuple(FIVE)
            assert (np.array(FIVE)[y] == read_jet_classes(f)).all()
        total[split] = len(y)
    assert total == {"train": 24 * k, "val": 8 * k, "test": 8 * k}


def test_task_of_a_binary_config_is_the_old_binary_task(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", ["data.signal=[w, z]", "data.background=[gluon, q]"])
    t = task_of(cfg.data)
    assert not t.multiclass and t.outputs == ("gluon+q", "w+z") and t.describe() == "w+z vs gluon+q"


# ----------------------------------------------------------------------------- teachers with K outputs
@pytest.mark.parametrize("arch", ["lorentznet", "transformer"])
def test_teachers_give_k_logits_and_binary_teachers_are_unchanged(repo, arch, tmp_path):
    import torch

    from trigger_kd.models.teachers import build_teacher, from_checkpoint, n_logits, teacher_batch

    cfg = load_config(repo / "hls_configs/mlp_kd.yml", [f"teacher.arch={arch}"])
    c = _jets(6, 7)
    for k in (2, 5):
        torch.manual_seed(0)
        model = build_teacher(cfg.teacher, k).eval()
        z = model(teacher_batch(model, c, 8))
        assert z.shape == (6, k) and n_logits(model) == k
        if k == 2 and arch == "transformer":  # one logit z as (-z/2, z/2), as always
            assert torch.allclose(z[:, 0], -z[:, 1])
        again = from_checkpoint({"format": {"lorentznet": "trigger_kd.lorentznet.v1",
                                            "transformer": "trigger_kd.transformer.v1"}[arch],
                                 "model": model.config, "state_dict": model.state_dict()}).eval()
        assert torch.equal(again(teacher_batch(again, c, 8)), z)  # a K-class checkpoint restores with its K


def test_the_binary_task_of_a_split_is_read_never_guessed(tmp_path):
    """A binary split names its task in the data stage's summary.json beside it; without it (or with one that does
    not name the classes) the task is unknown and the stages refuse instead of assuming top vs qcd."""
    import json

    path = write_canonical(tmp_path / "test.h5", _jets(4, 1), np.array([1, 0, 1, 0], np.int8),
                           jet_class=np.array(["w", "gluon", "w", "gluon"]))
    with pytest.raises(DataFormatError, match="without a readable summary.json.*rerun it"):
        read_task(path)
    (tmp_path / "summary.json").write_text(json.dumps({"signal": "w"}))  # damaged: no background
    with pytest.raises(DataFormatError, match="summary.json"):
        read_task(path)
    (tmp_path / "summary.json").write_text(json.dumps({"signal": ["w"], "background": ["gluon"]}))
    assert read_task(path) == Task.binary(("w",), ("gluon",))
