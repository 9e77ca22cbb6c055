"""The transformer teacher (teacher.arch: transformer): features from the four-momenta, masking, training, the
checkpoint round trip, its config keys, and the pipeline with it (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from test_teacher_ddp import TINY, write_jets
from trigger_kd.config import ConfigError, TeacherConfig, dump_config, load_config
from trigger_kd.data.boost import boost
from trigger_kd.models.lorentznet import prepare_batch
from trigger_kd.models.transformer import JetTransformer, constituent_features
from trigger_kd.train.seal import boosted
from trigger_kd.train.teacher import build_teacher, load_teacher, teacher_logits, train_teacher

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(arch="transformer", d_model=16, heads=2, ff_dim=16, head_hidden=(16, 8), encoder_layers=2)
TINY_T = TeacherConfig(**{**TINY.model_dump(), "hidden": 32, "layers": 3, **SMALL})


def _jets(n=6, p=10, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt = -np.sort(-(rng.exponential(20, (n, p)) + 1), axis=1)
    eta, phi = rng.normal(0.3, 0.3, (n, p)), rng.normal(1.0, 0.3, (n, p))
    m = rng.uniform(0, 0.5, (n, p))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2 + m ** 2), px, py, pz], -1)
    c[np.arange(p)[None, :] >= rng.integers(3, p + 1, n)[:, None]] = 0
    c[0, 3:] = 0  # one jet with three constituents
    return c


def _batch(c, n=12):
    return prepare_batch(c, n, add_beams=False, dtype=torch.float64)


def test_features_are_the_papers_seven_from_the_four_momenta():
    c = _jets()
    b = _batch(c)
    f = constituent_features(b["x"], b["node_mask"]).numpy()
    assert f.shape == (6, 12, 7) and np.isfinite(f).all()
    assert (f[~b["node_mask"].numpy()] == 0).all()  # padded particles: all features zero
    # the jet of three constituents, by hand
    v = c[0, :3]
    jet = v.sum(0)
    pt, pt_j = np.hypot(v[:, 1], v[:, 2]), np.hypot(jet[1], jet[2])
    eta, eta_j = np.arcsinh(v[:, 3] / pt), np.arcsinh(jet[3] / pt_j)
    phi, phi_j = np.arctan2(v[:, 2], v[:, 1]), np.arctan2(jet[2], jet[1])
    d_eta, d_phi = eta - eta_j, phi - phi_j
    want = np.stack([d_eta, d_phi, np.log(pt / pt_j), np.log(pt), np.log(v[:, 0] / jet[0]), np.log(v[:, 0]),
                     np.hypot(d_eta, d_phi)], -1)
    np.testing.assert_allclose(f[0, :3], want, rtol=1e-9, atol=1e-9)


def test_a_boost_of_the_inputs_changes_the_features():
    c = _jets()
    moved = boost(c, 0.6, "x")
    f = constituent_features(_batch(c)["x"], _batch(c)["node_mask"])
    g = constituent_features(_batch(moved)["x"], _batch(moved)["node_mask"])
    assert not torch.allclose(f, g, atol=1e-3)
    # a boost along the beam (z): d_phi and the pT features stay, the energies change
    along = constituent_features(_batch(boost(c, 0.6, "z"))["x"], _batch(c)["node_mask"])
    torch.testing.assert_close(along[..., [1, 2, 3]], f[..., [1, 2, 3]], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(along[..., 5], f[..., 5])


def test_padding_and_particle_order_do_not_change_the_output():
    torch.manual_seed(0)
    model = JetTransformer(d_model=16, heads=2, ff_dim=16, layers=2, head_hidden=(16, 8), dropout=0.0).double().eval()
    c = _jets()
    with torch.no_grad():
        out = model(_batch(c, 10))
        wider = model(_batch(np.concatenate([c, np.zeros((6, 5, 4))], 1), 15))
        perm = np.random.default_rng(1).permutation(10)
        shuffled = model(_batch(c[:, perm], 10))
    assert out.shape == (6, 2) and torch.isfinite(out).all()
    torch.testing.assert_close(wider, out, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(shuffled, out, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out[:, 0], -out[:, 1])  # one logit z, as the pair (-z/2, z/2): softmax = sigmoid(z)
    empty = model(_batch(np.zeros((2, 10, 4)), 10))  # a jet without constituents: finite, not NaN
    assert torch.isfinite(empty).all()


def test_sizes_are_config_keys():
    model = build_teacher(TINY_T)
    assert isinstance(model, JetTransformer)
    enc = model.encoder.layers
    assert len(enc) == 2 and enc[0].self_attn.num_heads == 2 and enc[0].linear1.out_features == 16
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [16, 8, 1]
    assert model.embedding[0].in_features == 7 and model.embedding[0].out_features == 16


def test_transformer_training_round_trip(tmp_path):
    train, val = write_jets(tmp_path / "train.h5", 160, seed=0), write_jets(tmp_path / "val.h5", 64, seed=1)
    settings = TeacherConfig(**{**TINY_T.model_dump(), "seal_lambda": 0.1, "seal_generator_lambda": 0.01})
    result = train_teacher(train, val, settings, tmp_path / "t", progress=False)
    assert result["arch"] == "transformer" and result["device"] == "cpu" and result["gpu"] is None
    history = json.loads((tmp_path / "t" / "history.json").read_text())["history"]
    assert len(history) == 2 and all(h["train_seal_penalty"] > 0 and h["train_seal_generator_penalty"] > 0
                                     for h in history)
    model = load_teacher(tmp_path / "t" / "teacher.pt")
    assert isinstance(model, JetTransformer) and not model.training
    assert result["n_params"] == sum(p.numel() for p in model.parameters())
    with h5py.File(val) as f:
        c, y = f["constituents"][...], f["is_top"][...]
    logits = teacher_logits(model, c, settings.n_particles, batch_size=24, progress=False)
    assert logits.shape == (64, 2) and logits.dtype == np.float32
    best = history[result["best_epoch"] - 1]
    assert np.mean(logits.argmax(1) == y) == pytest.approx(best["val_accuracy"])


def test_boosted_inputs_move_the_transformer():
    """SEAL's output term acts on the transformer through every particle (no beams): a boost changes its logits."""
    torch.manual_seed(0)
    model = build_teacher(TINY_T).double().eval()
    x = torch.from_numpy(_jets())
    with torch.no_grad():
        a = model(_batch(x, 10))
        b = model(_batch(boosted(x, 0.9, torch.Generator().manual_seed(0)), 10))
    assert (a - b).abs().max() > 1e-4


def test_keys_of_the_other_arch_are_refused(repo):
    cfg = repo / "hls_configs/mlp_kd.yml"
    with pytest.raises(ConfigError, match=r"'teacher.hidden' \(--set\).*teacher.arch: lorentznet.*transformer"):
        load_config(cfg, ["teacher.arch=transformer", "teacher.hidden=16"])
    with pytest.raises(ConfigError, match=r"'teacher.d_model' \(--set\).*teacher.arch: transformer"):
        load_config(cfg, ["teacher.d_model=32"])
    with pytest.raises(ConfigError, match="teacher.seal_generator_lambda.*transformer"):
        load_config(cfg, ["teacher.seal_generator_lambda=0.1"])
    with pytest.raises(ConfigError, match="teacher.heads.*divide.*d_model"):
        load_config(cfg, ["teacher.arch=transformer", "teacher.d_model=30", "teacher.heads=4"])
    with pytest.raises(ValueError, match="c_weight"):  # built directly: the same rule
        TeacherConfig(arch="transformer", c_weight=0.1)


def test_profiles_size_both_teachers_and_dumps_keep_the_arch_keys_only(repo, tmp_path):
    cfg = repo / "hls_configs/mlp_kd.yml"
    paper = load_config(cfg, ["teacher.arch=transformer"], profile="paper")  # the profile's hidden: 72 is fine
    t = paper.teacher
    assert (t.d_model, t.heads, t.ff_dim, t.encoder_layers) == (256, 4, 256, 3)
    assert paper.teacher.head_hidden == (256, 128)
    assert load_config(cfg, profile="paper").teacher.layers == 6  # LorentzNet's paper size unchanged
    quick = load_config(cfg, ["teacher.arch=transformer"])
    assert quick.teacher.d_model < 256
    text = dump_config(quick)
    assert "d_model" in text and "c_weight" not in text and "hidden: 32" not in text.replace("head_hidden", "")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/quick.yml").write_text((repo / "hls_configs/profiles/quick.yml").read_text())
    (tmp_path / "dumped.yml").write_text(text)  # reloaded with its profile: the same config
    dumped = tmp_path / "dumped.yml"
    assert load_config(dumped) == quick.model_copy(update={"source_file": str(dumped)})
    assert "d_model" not in dump_config(load_config(cfg))  # a LorentzNet config dumps no transformer keys


@pytest.mark.slow
def test_pipeline_to_student_with_a_seal_transformer_teacher(tmp_path, monkeypatch):
    """The issue's acceptance: `trigger-kd run mlp_kd.yml --to student --set teacher.arch=transformer
    --set teacher.seal_lambda=0.1` at tiny sizes; teacher/metrics.json names the architecture and device."""
    from test_e2e import TINY as E2E
    from trigger_kd.cli import main as cli

    monkeypatch.chdir(tmp_path)
    sets = [s for s in E2E if not s.startswith(("teacher.hidden", "teacher.layers"))] + [
        "teacher.arch=transformer", "teacher.seal_lambda=0.1", "teacher.d_model=16", "teacher.heads=2",
        "teacher.ff_dim=16", "teacher.head_hidden=[16,8]", "teacher.encoder_layers=2", "teacher.n_particles=8",
        "distill.augment_max_beta=0.3", "distill.augment_views=1", "distill.transfer_jets_per_class=0"]
    args = ["run", str(REPO / "hls_configs/mlp_kd.yml"), "--to", "student", "--run-dir", "run", "--no-progress"]
    assert cli(args + [a for s in sets for a in ("--set", s)]) == 0
    teacher = json.loads((tmp_path / "run/teacher/metrics.json").read_text())
    assert teacher["arch"] == "transformer" and teacher["device"]["name"] == "cpu"
    assert teacher["training"]["arch"] == "transformer" and "boost" in teacher["robustness"]
    student = json.loads((tmp_path / "run/student/metrics.json").read_text())
    # tiny sizes: the metrics are there, no claim on their values
    assert {"auc", "accuracy"} <= set(student["teacher"]) and {"auc", "accuracy"} <= set(student["student"])
    assert (tmp_path / "run/transfer/logits_views_train.npy").is_file()


@pytest.mark.slow  # launches torchrun: two Python processes that train
def test_torchrun_ranks_agree_with_both_seal_terms(tmp_path):
    """The generator term's double backward runs inside DDP's one module call per step: ranks stay identical."""
    import os
    import subprocess
    import sys

    train, val = write_jets(tmp_path / "train.h5", 320, seed=0), write_jets(tmp_path / "val.h5", 96, seed=1)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "trigger_kd.train.teacher", "--train", str(train), "--val", str(val), "--out", str(out),
           "--epochs", "1", "--n-particles", "8", "--batch-size", "32", "--threads", "1", "--seed", "3",
           "--no-progress", "--save-rank-weights", "--arch", "transformer", "--d-model", "16", "--heads", "2",
           "--ff-dim", "16", "--head-hidden", "16", "8", "--encoder-layers", "2", "--seal-lambda", "0.1",
           "--seal-generator-lambda", "0.01", "--no-amp"]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["world_size"] == 2 and result["backend"] == "gloo" and result["arch"] == "transformer"
    w0 = torch.load(out / "rank0_final.pt", weights_only=True)
    w1 = torch.load(out / "rank1_final.pt", weights_only=True)
    assert [k for k in w0 if not torch.equal(w0[k], w1[k])] == []
    assert isinstance(load_teacher(out / "teacher.pt"), JetTransformer)
