"""C-simulation throughput and compile time vs the PyTorch quantised model.

    python benchmarks/csim_throughput.py --out benchmarks/out/csim_throughput.json [--jets 20000]

Builds quick-profile-sized MLP and deep set students (random weights: speed does not depend
on training), then measures QONNX export, hls4ml conversion + g++ compile, C-simulation
and the PyTorch quantised model (1 thread) on the same inputs, and checks they agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402
from trigger_kd.config import HLSConfig  # noqa: E402
from trigger_kd.firmware.hls import build_hls_from_qonnx, hls_predict  # noqa: E402
from trigger_kd.firmware.parity import compare_fixed  # noqa: E402
from trigger_kd.config import StudentConfig as StudentSpec  # noqa: E402
from trigger_kd.models.backend import BrevitasBackend  # noqa: E402
from trigger_kd.firmware.student_export import export_for_firmware  # noqa: E402
from trigger_kd.models.students import build_student, predict_logits  # noqa: E402


def _timed(fn, *args, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def measure(name: str, model, x: np.ndarray, work: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    spec, backend = model.spec, BrevitasBackend(model.spec)
    _, t_export, _ = _timed(export_for_firmware, backend, model, x[:64], work)
    hls_model, t_build, _ = _timed(build_hls_from_qonnx, work / "model_clean.onnx", work / "prj", HLSConfig(),
                                   n_particles=spec.n_particles if spec.arch == "deepset" else None)
    x_fw = backend.firmware_inputs(x)
    csim, t_csim, _ = _timed(hls_predict, hls_model, x_fw, progress=False)
    ref, t_torch, _ = _timed(predict_logits, model, x)
    parity = compare_fixed(csim, ref, backend.output_lsb(model))
    return {"model": name, "arch": spec.arch, "n_particles": spec.n_particles, "n_jets": len(x),
            "export_seconds": t_export, "convert_and_compile_seconds": t_build,
            "csim_seconds": t_csim, "csim_jets_per_second": len(x) / t_csim,
            "torch_quantized_seconds": t_torch, "torch_quantized_jets_per_second": len(x) / t_torch,
            "bit_exact_fraction": parity["bit_exact_fraction"], "torch_threads": 1}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_options(p, out="benchmarks/out/csim_throughput.json")
    p.add_argument("--jets", type=int, default=20000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    import torch

    results = []
    for arch, spec in (("mlp", StudentSpec(arch="mlp", n_particles=8, mlp_hidden=(32, 16))),
                       ("deepset", StudentSpec(arch="deepset", n_particles=8, phi_hidden=(16, 16), rho_hidden=(16,)))):
        torch.manual_seed(0)
        model = build_student(spec).eval()
        shape = (spec.n_particles * 4,) if arch == "mlp" else (4, spec.n_particles)
        x = rng.normal(size=(args.jets, *shape)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(f"quick-profile {arch}", model, x, Path(tmp))
        print(json.dumps(r, indent=1))
        results.append(r)
    out = write_record(args.out, {"benchmark": "csim_throughput", **provenance(), "machine": machine(),
                                  "results": results})
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
