"""The teacher on a GPU (teacher.device: cuda, teacher.amp). Every test here needs CUDA and is skipped without it:
run `pytest tests/test_teacher_cuda.py` on a machine with a GPU (a second GPU for the NCCL test)."""
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

from test_teacher_ddp import TINY, write_jets
from test_teacher_transformer import SMALL
from trigger_kd.config import TeacherConfig
from trigger_kd.train.teacher import load_teacher, teacher_logits, train_teacher

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
REPO = Path(__file__).resolve().parent.parent
ARCHES = {"lorentznet": {}, "transformer": {**SMALL, "hidden": 32, "layers": 3}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("jets")
    return write_jets(d / "train.h5", 320, seed=0), write_jets(d / "val.h5", 96, seed=1)


@pytest.mark.parametrize("arch", sorted(ARCHES))
@pytest.mark.parametrize("amp", [False, True])
def test_training_and_logits_on_the_gpu(data, tmp_path, arch, amp):
    settings = TeacherConfig(**{**TINY.model_dump(), **ARCHES[arch], "device": "cuda", "amp": amp,
                                "seal_lambda": 0.1})
    result = train_teacher(data[0], data[1], settings, tmp_path, progress=False)
    assert result["device"].startswith("cuda") and result["gpu"] and result["arch"] == arch
    assert result["amp"] == (("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if amp else None)
    gpu = load_teacher(tmp_path / "teacher.pt", device="cuda")
    assert next(gpu.parameters()).is_cuda
    with h5py.File(data[1]) as f:
        c = f["constituents"][...]
    on_gpu = teacher_logits(gpu, c, settings.n_particles, progress=False)
    on_cpu = teacher_logits(load_teacher(tmp_path / "teacher.pt"), c, settings.n_particles, progress=False)
    assert np.isfinite(on_gpu).all()
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-3, rtol=1e-3)  # the same weights on both devices


def test_lorentznet_on_cuda_uses_torch_ops_not_the_cpu_kernel(data, tmp_path):
    settings = TeacherConfig(**{**TINY.model_dump(), "epochs": 1, "device": "cuda"})
    train_teacher(data[0], data[1], settings, tmp_path, progress=False)
    model = load_teacher(tmp_path / "teacher.pt", device="cuda")
    with h5py.File(data[1]) as f:
        c = f["constituents"][:8]
    from trigger_kd.models import edge_kernel

    built = dict(edge_kernel._libs)
    teacher_logits(model, c, settings.n_particles, progress=False)
    assert edge_kernel._libs == built  # no kernel built or looked up for CUDA tensors


def test_seal_generator_term_on_the_gpu(data, tmp_path):
    settings = TeacherConfig(**{**TINY.model_dump(), **ARCHES["transformer"], "epochs": 1, "device": "cuda",
                                "seal_generator_lambda": 0.01})
    train_teacher(data[0], data[1], settings, tmp_path, progress=False)
    row = json.loads((tmp_path / "history.json").read_text())["history"][0]
    assert row["train_seal_generator_penalty"] > 0


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL across two GPUs")
def test_torchrun_on_two_gpus_uses_nccl_and_keeps_ranks_identical(data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "trigger_kd.train.teacher", "--train", str(data[0]), "--val", str(data[1]), "--out", str(tmp_path),
           "--epochs", "1", "--hidden", "8", "--layers", "2", "--n-particles", "8", "--batch-size", "32",
           "--device", "cuda", "--no-progress", "--save-rank-weights"]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["world_size"] == 2 and result["backend"] == "nccl"
    w0 = torch.load(tmp_path / "rank0_final.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1_final.pt", weights_only=True)
    assert all(torch.equal(w0[k].cpu(), w1[k].cpu()) for k in w0)
