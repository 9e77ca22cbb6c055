"""Train the teacher (teacher.arch: LorentzNet or the transformer), on one process or under torchrun (DDP).

    python -m trigger_kd.train.teacher --train T.h5 --val V.h5 --out DIR [--epochs N ...]
    torchrun --nproc_per_node=2 -m trigger_kd.train.teacher --train T.h5 --val V.h5 --out DIR

Under torchrun (WORLD_SIZE > 1) the training jets are sharded with DistributedSampler,
gradients are averaged by DDP (NCCL on GPUs, gloo on the CPU: trigger_kd/device.py), BatchNorm running
statistics are averaged over ranks after every epoch, validation is sharded and summed, and only
rank 0 writes files. teacher.device picks the device (auto: a GPU where there is one), teacher.amp
mixed precision on a GPU (training only; logits are computed in float32).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ..allocator import keep_freed_memory
from ..atomic import atomic_path, write_text_atomic
from ..config import TeacherConfig, validated
from ..console import error, info, progress_enabled
from ..errors import TriggerKDError
from ..models.lorentznet import prepare_batch
from ..models.teachers import FORMATS, arch_of, build_teacher, from_checkpoint, n_logits, teacher_batch
from .. import device as devices
from .seal import PairForward, boosted, seal_penalty

__all__ = ["build_teacher", "load_teacher", "teacher_logits", "train_teacher"]


# The teacher's settings are the config's `teacher:` section, TeacherConfig (also the torchrun entry point's flags).


def n_outputs(path: Path) -> int:
    """The tagger's K outputs for a data file: its classes (multi-class), else 2."""
    from ..data.formats import read_classes

    classes = read_classes(path)
    return 2 if classes is None else len(classes)


def _load(path: Path, n_particles: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.formats import read_canonical

    c, y = read_canonical(path)
    if len(y) == 0:
        raise TriggerKDError(f"{path}: no jets in the {what} file; regenerate the data with more jets")
    return torch.from_numpy(np.ascontiguousarray(c[:, :n_particles])), torch.from_numpy(y.astype(np.int64))


def _world(device: torch.device) -> tuple[int, int, bool]:
    """(world_size, rank, whether this call initialised the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, False
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend=devices.backend(device))
        started = True
    return dist.get_world_size(), dist.get_rank(), started


def _allsum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _average_buffers(model: nn.Module, world: int) -> None:
    """Make BatchNorm running statistics equal on every rank (mean over ranks)."""
    if world == 1:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf /= world
        else:
            dist.broadcast(buf, src=0)


def _cosine(total_steps: int, warmup_frac: float = 0.05):
    warmup = max(1, int(warmup_frac * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return factor


@torch.no_grad()
def _evaluate(model: nn.Module, c: torch.Tensor, y: torch.Tensor, n_particles: int, batch_size: int):
    """(correct, summed loss, count) on this rank's jets."""
    model.eval()
    correct, loss, count = 0.0, 0.0, 0.0
    for i in range(0, len(y), batch_size):
        logits = model(teacher_batch(model, c[i:i + batch_size], n_particles)).float()
        yb = y[i:i + batch_size].to(logits.device)
        correct += float((logits.argmax(1) == yb).sum())
        loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        count += len(yb)
    return correct, loss, count


def _save_atomic(obj, path: Path) -> None:
    if isinstance(obj, str):
        write_text_atomic(path, obj)
        return
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train_teacher(train_h5: Path, val_h5: Path, settings: TeacherConfig, out_dir: Path, progress: bool = True,
                  save_rank_weights: bool = False) -> dict:
    """Train the teacher (AdamW, warmup + cosine per step, cross-entropy, SEAL terms when their lambdas are > 0),
    keep the best-val-accuracy weights.

    Writes out_dir/teacher.pt and out_dir/history.json (rank 0 only); with save_rank_weights
    every rank also writes its final weights to out_dir/rank{r}_final.pt (a DDP consistency check).
    """
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    out_dir = Path(out_dir)
    device = devices.rank_device(settings.device, int(os.environ.get("WORLD_SIZE", "1")))
    amp = devices.amp_dtype(device, settings.amp)
    world, rank, started = _world(device)
    try:
        return _train(Path(train_h5), Path(val_h5), settings, out_dir, progress, save_rank_weights, world, rank,
                      device, amp)
    finally:
        if started:
            dist.destroy_process_group()


def _train(train_h5, val_h5, settings, out_dir, progress, save_rank_weights, world, rank, device, amp) -> dict:
    """The phases: the data, the model and its optimiser (:func:`_setup`), the epochs (:func:`_train_epoch`,
    :func:`_epoch_row`), the best weights and the history written (:func:`_finish`)."""
    n = settings.n_particles
    c_train, y_train = _load(train_h5, n, "training")
    c_val, y_val = _load(val_h5, n, "validation")
    c_val, y_val = c_val[rank::world], y_val[rank::world]
    run = _setup(c_train, y_train, n_outputs(train_h5), settings, world, rank, device, amp)

    history, best_acc, best_epoch, best_state = [], -1.0, 0, None
    train_seconds = 0.0
    for epoch in range(settings.epochs):
        sums, epoch_seconds = _train_epoch(run, epoch, progress)
        train_seconds += epoch_seconds
        row = _epoch_row(run, epoch, sums, epoch_seconds, c_val, y_val)
        history.append(row)
        if rank == 0:
            info(f"[teacher] epoch {epoch + 1}/{settings.epochs}: train loss {row['train_loss']:.4f} "
                 f"acc {row['train_accuracy']:.4f}, val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}")
        if row["val_accuracy"] > best_acc:
            best_acc, best_epoch = row["val_accuracy"], epoch + 1
            best_state = copy.deepcopy(run.model.state_dict()) if rank == 0 else None

    n_jets = len(y_train)
    result = {"epochs": settings.epochs, "best_epoch": best_epoch, "best_val_accuracy": best_acc,
              "train_seconds": train_seconds,
              "jets_per_second": n_jets * settings.epochs / max(train_seconds, 1e-9),
              "n_params": run.n_params, "world_size": world, "n_train_jets": n_jets, "arch": settings.arch,
              **devices.describe(device, amp), "backend": devices.backend(device) if world > 1 else None}
    _finish(run, out_dir, save_rank_weights, best_state, history, result)
    return result


@dataclass
class _Run:
    """What the epochs of one rank share."""
    settings: TeacherConfig
    world: int
    rank: int
    device: torch.device
    amp: object  # the autocast dtype, or None
    model: nn.Module
    net: nn.Module  # PairForward(model), DDP-wrapped on several ranks
    n_params: int
    beams: bool  # LorentzNet: beams added to every batch
    loader: object
    sampler: object  # DistributedSampler on several ranks, else None
    boosts: torch.Generator  # SEAL's own random stream
    opt: torch.optim.Optimizer
    scaler: object
    sched: object


def _setup(c_train, y_train, n_classes: int, settings, world, rank, device, amp) -> _Run:
    """The model (seeded by ``teacher.seed``), the loader, the optimiser and schedule, in the order that fixes the
    random streams (the model's initial weights, the shuffling, SEAL's boosts, dropout per rank)."""
    torch.manual_seed(settings.seed)
    model = build_teacher(settings, n_classes).to(device)
    beams = arch_of(model) == "lorentznet"
    n_params = int(sum(p.numel() for p in model.parameters()))
    dataset = torch.utils.data.TensorDataset(c_train, y_train)
    if world > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank,
                                                                  shuffle=True, seed=settings.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size, sampler=sampler)
        net = nn.parallel.DistributedDataParallel(PairForward(model),
                                                  device_ids=[device.index] if device.type == "cuda" else None)
    else:
        sampler = None
        gen = torch.Generator().manual_seed(settings.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, generator=gen)
        net = PairForward(model)
    boosts = torch.Generator().manual_seed(settings.seed + 7919 * (rank + 1))  # SEAL's own random stream
    torch.manual_seed(settings.seed + rank)  # dropout differs per rank, as in the original
    # fused: one kernel for all parameters (0.3 ms instead of 2 ms per step at quick size, same updates)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # bf16 needs no loss scaling
    total_steps = max(1, settings.epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(total_steps))
    return _Run(settings, world, rank, device, amp, model, net, n_params, beams, loader, sampler, boosts, opt,
                scaler, sched)


def _train_epoch(run: _Run, epoch: int, progress: bool) -> tuple[list[float], float]:
    """One epoch of steps: cross entropy (+ the SEAL terms), then the BatchNorm statistics averaged over the ranks;
    returns this rank's [correct, summed loss, count,
    summed SEAL penalty, summed generator penalty] and the epoch's seconds."""
    settings, device, amp, n = run.settings, run.device, run.amp, run.settings.n_particles
    seal, generators = settings.seal_lambda > 0, settings.seal_generator_lambda > 0
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    run.net.train()
    t0 = time.perf_counter()
    correct = loss_sum = seal_sum = gen_sum = count = 0.0
    bar = tqdm(run.loader, desc=f"teacher epoch {epoch + 1}/{settings.epochs}", unit="batch", leave=False,
               disable=True if run.rank else progress_enabled(progress))
    for xb, yb in bar:
        yb = yb.to(device)
        moved = (prepare_batch(boosted(xb, settings.seal_max_beta, run.boosts), n, run.beams, device=device)
                 if seal else None)
        with devices.autocast(device, amp):
            logits, moved_logits, gen = run.net(prepare_batch(xb, n, run.beams, device=device), moved, generators)
            logits = logits.float()
            loss = nn.functional.cross_entropy(logits, yb)
            if seal:
                penalty = seal_penalty(logits, moved_logits.float())
                loss = loss + settings.seal_lambda * penalty
                seal_sum += float(penalty.detach()) * len(yb)
            if generators:
                loss = loss + settings.seal_generator_lambda * gen
                gen_sum += float(gen.detach()) * len(yb)
        run.opt.zero_grad()
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        correct += float((logits.detach().argmax(1) == yb).sum())
        loss_sum += float(loss.detach()) * len(yb)
        count += len(yb)
        bar.set_postfix(loss=f"{loss_sum / count:.4f}", acc=f"{correct / count:.3f}")
    bar.close()
    _average_buffers(run.model, run.world)
    return [correct, loss_sum, count, seal_sum, gen_sum], time.perf_counter() - t0


def _epoch_row(run: _Run, epoch: int, sums: list[float], epoch_seconds: float, c_val, y_val) -> dict:
    """The epoch's history row: train and validation loss and accuracy over every rank, the rate, the SEAL terms."""
    settings, world, device = run.settings, run.world, run.device
    t1 = time.perf_counter()
    val = _allsum(list(_evaluate(run.model, c_val, y_val, settings.n_particles, max(256, settings.batch_size))),
                  world, device)
    tr = _allsum(sums, world, device)
    row = {"epoch": epoch + 1, "lr": run.opt.param_groups[0]["lr"], "train_loss": tr[1] / tr[2],
           "train_accuracy": tr[0] / tr[2], "val_loss": val[1] / val[2], "val_accuracy": val[0] / val[2],
           "train_seconds": epoch_seconds, "val_seconds": time.perf_counter() - t1}
    if settings.seal_lambda > 0:  # mean ||f(L x) - f(x)||^2 over the epoch's jets (train_loss includes lambda times it)
        row["train_seal_penalty"] = tr[3] / tr[2]
    if settings.seal_generator_lambda > 0:  # mean sum_G ||d/de f(exp(e G) x)||^2 over the epoch's jets
        row["train_seal_generator_penalty"] = tr[4] / tr[2]
    return row


def _finish(run: _Run, out_dir: Path, save_rank_weights: bool, best_state, history: list, result: dict) -> None:
    """Every rank's final weights (``save_rank_weights``); on rank 0 the checkpoint of the best epoch and
    history.json; then the ranks meet."""
    settings, model = run.settings, run.model
    if save_rank_weights:
        out_dir.mkdir(parents=True, exist_ok=True)
        _save_atomic(model.state_dict(), out_dir / f"rank{run.rank}_final.pt")
    if run.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = {"format": FORMATS[settings.arch], "model": model.config, "settings": settings.model_dump(),
                "best_epoch": result["best_epoch"], "best_val_accuracy": result["best_val_accuracy"],
                "state_dict": best_state}
        _save_atomic(ckpt, out_dir / "teacher.pt")
        _save_atomic(json.dumps({"history": history, **result}, indent=2), out_dir / "history.json")
    if run.world > 1:
        dist.barrier()


def load_teacher(path, device: str = "cpu") -> nn.Module:
    """Rebuild the teacher saved by `train_teacher` on ``device`` (a resolved teacher.device), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise TriggerKDError(f"{path}: teacher checkpoint not found; run the teacher stage first "
                             "(trigger-kd run <config> --to teacher)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise TriggerKDError(f"{path}: cannot read the teacher checkpoint ({exc}); retrain the teacher") from None
    model = from_checkpoint(ckpt) if isinstance(ckpt, dict) else None
    if model is None:
        raise TriggerKDError(f"{path}: not a trigger_kd teacher checkpoint (format none of "
                             f"{', '.join(FORMATS.values())}); retrain the teacher with this version")
    return model.to(devices.rank_device(device, 1)).eval()


@torch.inference_mode()
def teacher_logits(model: nn.Module, constituents: np.ndarray, n_particles: int, batch_size: int = 512,
                   progress: bool = True) -> np.ndarray:
    """Logits (N, K) float32 of the leading n_particles constituents of every jet, on the model's device."""
    model.eval()
    c = np.asarray(constituents)
    out = [model(teacher_batch(model, c[i:i + batch_size, :n_particles], n_particles)).float().cpu()
           for i in tqdm(range(0, len(c), batch_size), desc="teacher logits", unit="batch", leave=False,
                         disable=progress_enabled(progress))]
    return torch.cat(out).numpy() if out else np.zeros((0, n_logits(model)), dtype=np.float32)


def _parser() -> argparse.ArgumentParser:
    defaults = TeacherConfig()
    p = argparse.ArgumentParser(prog="python -m trigger_kd.train.teacher", description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, required=True, help="canonical HDF5 training jets")
    p.add_argument("--val", type=Path, required=True, help="canonical HDF5 validation jets")
    p.add_argument("--out", type=Path, required=True, help="output directory (teacher.pt, history.json)")
    for name in TeacherConfig.model_fields:
        flag, default = "--" + name.replace("_", "-"), getattr(defaults, name)
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            p.add_argument(flag, type=int, nargs="+", default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--save-rank-weights", action="store_true", help="every rank writes rank{r}_final.pt")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keep_freed_memory()  # this process trains: no page faults for the same large blocks every step
    try:
        settings = validated(TeacherConfig, {n: getattr(args, n) for n in TeacherConfig.model_fields},
                             {f"teacher.{n}": "command line" for n in TeacherConfig.model_fields}, "command line")
        result = train_teacher(args.train, args.val, settings, args.out, progress=not args.no_progress,
                               save_rank_weights=args.save_rank_weights)
    except TriggerKDError as exc:
        error(str(exc))
        return 2
    if result["world_size"] == 1 or int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
