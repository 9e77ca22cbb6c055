"""teacher.device (auto | cpu | cuda | cuda:N) and teacher.amp on a machine without CUDA: validated keys, `auto`
resolved before the stamp, an explicit CUDA request refused with an error naming the key (never a silent CPU
fallback), and the teacher's models under mixed precision on the PyTorch path a GPU takes (tests that need
CUDA itself are in tests/test_teacher_cuda.py)."""
from __future__ import annotations

import pytest
import torch

from test_lorentznet import P, jets
from trigger_kd.cli import main as cli
from trigger_kd.config import TeacherConfig, load_config
from trigger_kd.errors import TriggerKDError
from trigger_kd.models.edge_kernel import torch_edges
from trigger_kd.models.lorentznet import prepare_batch
from trigger_kd.device import resolve_device
from trigger_kd.train.teacher import build_teacher

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no CUDA device")


def test_device_values_are_validated():
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:3"):
        assert TeacherConfig(device=ok).device == ok
    for bad in ("gpu", "CUDA", "cuda:", "cuda:x", "cuda0", "mps"):
        with pytest.raises(ValueError, match="device"):
            TeacherConfig(device=bad)
    with pytest.raises(ValueError, match="(?s)amp.*CUDA"):  # mixed precision on the CPU is refused, not ignored
        TeacherConfig(device="cpu", amp=True)


@no_cuda
def test_auto_resolves_before_the_stamp(repo):
    from trigger_kd.pipeline import compute_stamp
    from trigger_kd.stages import STAGES

    teacher = next(s for s in STAGES if s.name == "teacher")
    auto, cpu = (load_config(repo / "hls_configs/mlp_kd.yml", [f"teacher.device={d}"]) for d in ("auto", "cpu"))
    assert auto.teacher.device == "auto" and auto.teacher.resolved.device == "cpu"
    deps = {"code": "c", "tools": {}, "inputs": []}
    assert compute_stamp(teacher, auto, {"data": "d"}, deps) == compute_stamp(teacher, cpu, {"data": "d"}, deps)
    other = load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.arch=transformer"])
    assert compute_stamp(teacher, other, {"data": "d"}, deps) != compute_stamp(teacher, cpu, {"data": "d"}, deps)


@no_cuda
def test_an_explicit_cuda_request_without_cuda_is_an_error_naming_the_key(repo, tmp_path, capsys):
    for name in ("cuda", "cuda:1"):
        with pytest.raises(TriggerKDError, match=rf"teacher.device is '{name}'.*no CUDA device"):
            resolve_device(name)
    with pytest.raises(TriggerKDError, match="teacher.amp.*CUDA.*auto"):
        TeacherConfig(amp=True).resolved
    code = cli(["run", str(repo / "hls_configs/mlp_kd.yml"), "--set", "teacher.device=cuda", "--to", "student",
                "--run-dir", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "teacher.device" in err and err.count("error:") == 1
    assert not (tmp_path / "run" / "data").exists()  # refused before any work


@pytest.mark.parametrize("arch", ["lorentznet", "transformer"])
def test_teachers_train_under_autocast_on_the_torch_path(arch):
    """What a GPU with teacher.amp runs (autocast, PyTorch ops instead of the CPU edge kernel), here with CPU
    bfloat16 autocast: forward and backward run and give finite float outputs."""
    torch.manual_seed(0)
    settings = TeacherConfig(**({"hidden": 8, "layers": 2} if arch == "lorentznet" else
                                {"arch": arch, "d_model": 16, "heads": 2, "ff_dim": 16, "head_hidden": (8,),
                                 "encoder_layers": 2}))
    model = build_teacher(settings).train()
    batch = prepare_batch(torch.from_numpy(jets()), P, add_beams=arch == "lorentznet")
    with torch_edges(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 1, 0, 1, 0, 1]))
    loss.backward()
    assert torch.isfinite(logits.float()).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
