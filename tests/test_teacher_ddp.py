"""Teacher training: torchrun (DDP, gloo) keeps ranks identical; checkpoint, history and logits round-trip."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trigger_kd.errors import TriggerKDError
from trigger_kd.config import TeacherConfig
from trigger_kd.train.teacher import build_teacher, load_teacher, teacher_logits, train_teacher

REPO = Path(__file__).resolve().parent.parent
TINY = TeacherConfig(n_particles=8, hidden=8, layers=2, epochs=2, batch_size=32, threads=1, seed=3)



# one xdist worker runs the whole module (make test: --dist loadgroup), so its module-scoped fixtures are made once
pytestmark = pytest.mark.xdist_group("test_teacher_ddp")

def write_jets(path: Path, n: int, p: int = 12, seed: int = 0) -> Path:
    """Massless constituents, pT-sorted, zero-padded; tops are wider in (eta, phi) than QCD."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    pt = -np.sort(-(rng.exponential(20, (n, p)) + 1), axis=1)
    width = np.where(y == 1, 0.5, 0.15)[:, None]
    eta, phi = rng.normal(0, 1, (n, p)) * width, rng.normal(0, 1, (n, p)) * width
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2), px, py, pz], -1).astype(np.float32)
    c[np.arange(p)[None, :] >= rng.integers(4, p + 1, n)[:, None]] = 0
    with h5py.File(path, "w") as f:
        f["constituents"] = c
        f["is_top"] = y
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("jets")
    return write_jets(d / "train.h5", 320, seed=0), write_jets(d / "val.h5", 96, seed=1)


@pytest.mark.slow  # launches torchrun: two Python processes that train
def test_torchrun_ranks_end_with_identical_weights(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "trigger_kd.train.teacher", "--train", str(data[0]), "--val", str(data[1]), "--out", str(out),
           "--epochs", "1", "--hidden", "8", "--layers", "2", "--n-particles", "8", "--batch-size", "32",
           "--threads", "1", "--seed", "3", "--no-progress", "--save-rank-weights",
           "--seal-lambda", "0.1"]  # SEAL's pair forward under DDP too (one module call per step)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"torchrun failed ({exc.returncode}):\n{exc.stdout[-2000:]}\n{exc.stderr[-4000:]}")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["world_size"] == 2 and result["epochs"] == 1 and result["n_train_jets"] == 320
    w0 = torch.load(out / "rank0_final.pt", weights_only=True)
    w1 = torch.load(out / "rank1_final.pt", weights_only=True)
    assert w0.keys() == w1.keys() and any("running_mean" in k for k in w0)
    different = [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not different, f"ranks disagree on {different}"
    torch.manual_seed(3)
    init = build_teacher(TeacherConfig(n_particles=8, hidden=8, layers=2)).state_dict()
    assert not torch.equal(init["embedding.weight"], w0["embedding.weight"])  # training moved the weights
    history = json.loads((out / "history.json").read_text())
    assert history["world_size"] == 2 and len(history["history"]) == 1
    assert history["history"][0]["train_seal_penalty"] > 0
    model = load_teacher(out / "teacher.pt")  # rank 0 wrote the checkpoint; one epoch, so it is the final model
    for k, v in model.state_dict().items():
        assert torch.equal(v, w0[k]), k
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "rank0_final.pt", "rank1_final.pt", "teacher.pt"]


def test_single_process_training_round_trip(data, tmp_path):
    out = tmp_path / "single"
    result = train_teacher(data[0], data[1], TINY, out, progress=False)
    keys = {"epochs", "best_val_accuracy", "train_seconds", "jets_per_second", "n_params", "world_size"}
    assert keys <= result.keys()
    assert result["world_size"] == 1 and result["epochs"] == 2 and result["jets_per_second"] > 0
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history) == 2
    assert result["best_val_accuracy"] == max(h["val_accuracy"] for h in history)
    assert history[1]["train_loss"] < history[0]["train_loss"] + 0.05
    model = load_teacher(out / "teacher.pt")
    assert not model.training and result["n_params"] == sum(p.numel() for p in model.parameters())
    with h5py.File(data[1]) as f:
        c, y = f["constituents"][...], f["is_top"][...]
    logits = teacher_logits(model, c, TINY.n_particles, batch_size=40, progress=False)
    assert logits.shape == (96, 2) and logits.dtype == np.float32 and np.isfinite(logits).all()
    best = history[result["best_epoch"] - 1]
    assert np.mean(logits.argmax(1) == y) == pytest.approx(best["val_accuracy"])  # checkpoint = best epoch
    # batching does not matter, and constituents beyond n_particles are ignored
    np.testing.assert_allclose(teacher_logits(model, c[:, :8], 8, batch_size=7, progress=False), logits, atol=1e-5)


def test_errors_are_for_people(data, tmp_path):
    with pytest.raises(TriggerKDError, match="not found"):
        train_teacher(tmp_path / "missing.h5", data[1], TINY, tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="epochs"):  # the settings are the config section: checked on creation
        TeacherConfig(epochs=0)
    with pytest.raises(TriggerKDError, match="not found"):
        load_teacher(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(TriggerKDError, match="not a trigger_kd"):
        load_teacher(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(TriggerKDError, match="cannot read"):
        load_teacher(tmp_path / "junk.pt")
