"""Where the teacher runs: ``teacher.device`` (auto | cpu | cuda | cuda:N) resolved to a torch device, its DDP
backend (NCCL on GPUs, gloo on the CPU) and mixed precision (``teacher.amp``, CUDA only).

Rules: ``auto`` is ``cuda`` where ``torch.cuda.is_available()``, else ``cpu``, and is resolved before the teacher
stage is stamped (the stamp holds the device that computes). An explicit ``cuda`` / ``cuda:N`` where torch sees no
such device is an error naming the key, never a silent CPU fallback. ``amp: true`` needs a CUDA device: with a
device that is or resolves to ``cpu`` it is an error, not ignored. Under torchrun ``cuda`` means one GPU per rank
(``cuda:LOCAL_RANK``); ``cuda:N`` names a single GPU and is refused there.
"""
from __future__ import annotations

import contextlib
import os

import torch

from .errors import TriggerKDError

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # teacher.device (checked in trigger_kd/config.py)


def resolve_device(name: str, amp: bool = False, key: str = "teacher.device") -> str:
    """``name`` as the device it means on this machine ('auto' -> 'cuda' or 'cpu'), checked to exist."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TriggerKDError(f"{key} is '{name}' but torch finds no CUDA device (torch {torch.__version__}, "
                                 f"torch.cuda.is_available() is False): set {key}: cpu, or auto (a GPU where "
                                 "there is one)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise TriggerKDError(f"{key} is '{name}' but torch sees {torch.cuda.device_count()} CUDA device(s) "
                                 f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if amp and name == "cpu":
        raise TriggerKDError(f"teacher.amp: true needs a CUDA device (mixed precision is for GPUs; on the CPU it is "
                             f"refused, not ignored), and {key} is or resolves to cpu (auto finds no GPU here): "
                             "set teacher.amp: false")
    return name


def rank_device(name: str, world: int) -> torch.device:
    """The torch device of this process: the resolved ``name``, or under torchrun with 'cuda' the rank's own GPU."""
    name = resolve_device(name)
    if name == "cpu":
        return torch.device("cpu")
    if world > 1:
        if name != "cuda":
            raise TriggerKDError(f"teacher.device '{name}' names one GPU, but torchrun starts {world} processes: "
                                 "use teacher.device: cuda (each rank takes cuda:LOCAL_RANK)")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = torch.device(name if ":" in name else f"cuda:{torch.cuda.current_device()}")
    torch.cuda.set_device(device)
    return device


def backend(device: torch.device) -> str:
    """The torch.distributed backend for ranks on ``device``."""
    return "nccl" if device.type == "cuda" else "gloo"


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype (bfloat16 where the GPU has it, else float16), or None without mixed precision."""
    if not amp:
        return None
    if device.type != "cuda":
        raise TriggerKDError("teacher.amp: true needs a CUDA device")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision on ``device`` with ``dtype``, or nothing when dtype is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def describe(device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """What teacher/metrics.json records: the device, its GPU's name (None on the CPU), the autocast dtype."""
    return {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "amp": str(dtype).removeprefix("torch.") if dtype is not None else None}
