"""LorentzNet teacher throughput: the reference edge-list forward vs the dense one, side by side.

    python benchmarks/teacher_throughput.py --out benchmarks/out/teacher_throughput.json \
        [--sizes quick,paper] [--threads 1,2] [--seconds 3] [--rounds 3]

Same model, same weights, same batches: the reference is the former edge-list implementation
(gather + index_add, tests/lorentznet_reference.py), the new one is `LorentzNet.forward` (dense, with
its compiled edge kernel; the JSON says whether the kernel was used, or why not).
Training = forward + cross-entropy backward + AdamW step (fused, as `train.teacher`) at the profile's
teacher batch size, with glibc keeping freed memory (`allocator.keep_freed_memory`, as `train.teacher`);
inference = `torch.inference_mode` forward on batches of 512 jets (the `teacher_logits` batch;
64 at paper size, where the reference's edge tensors for 512 jets take GBs).
Measurements alternate reference and new, round by round, so load from other jobs on a shared
machine hits both alike; each measurement runs at least --seconds (and at least one batch) after
one warm-up batch. The sizes are the teacher sections of hls_configs/profiles/{quick,paper}.yml.
Jets are synthetic (pT-ordered, collimated massless constituents) with a constituent count drawn
from a normal distribution of mean 70 and sd 15 (real 550-650 GeV jets have 60-80 on average),
so the padding at 128 particles is realistic.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))

from lorentznet_reference import reference_forward  # noqa: E402

from trigger_kd.allocator import keep_freed_memory  # noqa: E402
from trigger_kd.models import edge_kernel  # noqa: E402
from trigger_kd.models.lorentznet import LorentzNet, prepare_batch  # noqa: E402

INFER_BATCH = {"quick": 512, "paper": 64}  # 512 = teacher_logits' batch; the reference needs GBs for 512 at paper size


def synthetic_jets(n: int, max_particles: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    count = np.clip(np.rint(rng.normal(70, 15, n)), 10, max_particles).astype(int)
    pt = -np.sort(-(rng.exponential(10, (n, max_particles)) + 0.5), axis=1)
    eta, phi = rng.normal(0, 0.3, (n, max_particles)), rng.normal(0, 0.3, (n, max_particles))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = np.stack([np.sqrt(px ** 2 + py ** 2 + pz ** 2), px, py, pz], -1).astype(np.float32)
    c[np.arange(max_particles)[None] >= count[:, None]] = 0
    return c


def teacher_size(profile: str) -> dict:
    t = yaml.safe_load((REPO / "hls_configs" / "profiles" / f"{profile}.yml").read_text())["teacher"]
    return {"n_particles": t["n_particles"], "hidden": t["hidden"], "layers": t["layers"],
            "batch_size": t["batch_size"], "dropout": t.get("dropout", 0.2)}


class Timer:
    """Jets and seconds summed over the rounds of one measurement."""

    def __init__(self):
        self.jets, self.seconds = 0, 0.0

    def run(self, step, jets_per_step: int, seconds: float):
        t0, k = time.perf_counter(), 0
        while k == 0 or time.perf_counter() - t0 < seconds:
            step()
            k += 1
        self.seconds += time.perf_counter() - t0
        self.jets += k * jets_per_step

    @property
    def rate(self) -> float:
        return self.jets / self.seconds


def measure(profile: str, threads: int, seconds: float, rounds: int, keep_memory: bool = True) -> dict:
    torch.set_num_threads(threads)
    if keep_memory:
        keep_freed_memory()  # as the teacher's training does (both implementations, same process)
    size = teacher_size(profile)
    n, bs, ibs = size["n_particles"], size["batch_size"], INFER_BATCH.get(profile, 512)
    torch.manual_seed(0)
    model = LorentzNet(n_scalar=2, n_hidden=size["hidden"], n_class=2, n_layers=size["layers"],
                       dropout=size["dropout"])
    jets = synthetic_jets(4 * max(ibs, bs))
    labels = torch.from_numpy(np.arange(len(jets)) % 2)
    train_batches = [(prepare_batch(jets[i:i + bs, :n], n), labels[i:i + bs]) for i in range(0, len(jets), bs)]
    infer_batches = [prepare_batch(jets[i:i + ibs, :n], n) for i in range(0, len(jets), ibs)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as train.teacher
    forwards = {"reference": lambda batch: reference_forward(model, batch), "dense": model}

    def train_step(forward):
        def step():
            batch, y = train_batches[step.k % len(train_batches)]
            step.k += 1
            loss = torch.nn.functional.cross_entropy(forward(batch), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        step.k = 0
        return step

    def infer_step(forward):
        def step():
            with torch.inference_mode():
                forward(infer_batches[step.k % len(infer_batches)])
            step.k += 1
        step.k = 0
        return step

    timers = {(mode, impl): Timer() for mode in ("train", "infer") for impl in forwards}
    steps = {("train", impl): train_step(f) for impl, f in forwards.items()}
    steps.update({("infer", impl): infer_step(f) for impl, f in forwards.items()})
    for key in steps:  # warm-up: one batch each
        model.train(key[0] == "train")
        steps[key]()
    for r in range(rounds):
        for mode in ("train", "infer"):
            model.train(mode == "train")
            impls = list(forwards) if r % 2 == 0 else list(forwards)[::-1]
            for impl in impls:
                timers[mode, impl].run(steps[mode, impl], bs if mode == "train" else ibs, seconds)
    ok, why = edge_kernel.available(size["hidden"], torch.float32)
    out = {"profile": profile, "threads": threads, **size, "infer_batch_size": ibs,
           "edge_kernel": {"used": ok, "library" if ok else "why_not": why}}
    for mode in ("train", "infer"):
        ref, new = timers[mode, "reference"], timers[mode, "dense"]
        out[mode] = {"reference_jets_per_s": round(ref.rate, 1), "dense_jets_per_s": round(new.rate, 1),
                     "speedup": round(new.rate / ref.rate, 2), "reference_jets": ref.jets, "dense_jets": new.jets}
    print(f"[{profile}, {threads} thread(s)] train {out['train']['reference_jets_per_s']} -> "
          f"{out['train']['dense_jets_per_s']} jets/s (x{out['train']['speedup']}), infer "
          f"{out['infer']['reference_jets_per_s']} -> {out['infer']['dense_jets_per_s']} jets/s "
          f"(x{out['infer']['speedup']})", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, out="benchmarks/out/teacher_throughput.json")
    ap.add_argument("--sizes", default="quick,paper", help="profiles whose teacher section sets the size")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, each measured at every size (1: per "
                    "core; 2: the quick profile's teacher.threads and all cores of this machine, as the paper profile "
                    "runs)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per measurement and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's malloc settings alone (trigger-kd and train.teacher call allocator.keep_freed_memory; "
                         "this shows what that setting does to both implementations)")
    args = ap.parse_args()
    t0, measured = time.time(), provenance(flat_git=True)  # the code that is measured
    threads = [int(t) for t in args.threads.split(",")]
    sizes = args.sizes.split(",")
    results = []
    for profile in sizes:
        for t in threads:
            results.append(measure(profile, t, args.seconds, args.rounds, keep_memory=not args.default_allocator))
    result = {
        "benchmark": "teacher_throughput",
        **measured,
        "allocator": "glibc default" if args.default_allocator else "allocator.keep_freed_memory (as trigger-kd and train.teacher)",
        # the acceptance figures: the least speedup over every size and thread count measured
        "speedup_train": min(r["train"]["speedup"] for r in results),
        "speedup_infer": min(r["infer"]["speedup"] for r in results),
        "speedups": {f'{r["profile"]}, {r["threads"]} thread(s)': {"train": r["train"]["speedup"],
                                                                   "infer": r["infer"]["speedup"]} for r in results},
        "results": results,
        "jets": "synthetic, constituent count ~ normal(70, 15); see the module docstring",
        "machine": machine(torch=torch.__version__, load_average_at_end=os.getloadavg()),
        "wall_seconds": round(time.time() - t0, 1),
    }
    write_record(args.out, result)
    print(json.dumps({k: result[k] for k in ("speedup_train", "speedup_infer", "wall_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
