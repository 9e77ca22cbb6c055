"""Is HGQ2 student training reproducible run to run? Same seed, same data, fresh processes, weights compared.

    python benchmarks/hgq_determinism.py --out benchmarks/out/hgq_determinism.json [--runs 3] [--steps 120]

Each run is a fresh Python process that builds the HGQ2 student 64-32 with the student stage's own code
(``HGQBackend.build``: seed 1, ``student.threads`` 1) and takes ``--steps`` of its training step (``make_step``:
the KD loss plus HGQ2's EBOPs term, AdamW) on the same random inputs (256 per step), then prints a hash of every
weight after the first step and after the last. Cases: the EBOPs penalty off (``ebops_beta`` 0), on (1e-5) with
TensorFlow's graph optimizer as shipped, and on with the student runtime's settings (``keras_runtime`` in
``models/keras_runtime.py``: grappler's arithmetic optimizer off). A case is reproducible when every run gives the same
hashes. Found while checking why ``make synth MODEL=mlp_kd_hgq_10k`` did not give the sweep's numbers for the
same stamps (benchmarks/history/front.md, "The 10k-LUT target reached"); ``tests/test_hgq.py`` runs the last case twice.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import add_options, provenance, write_record  # noqa: E402

# name -> (student.ebops_beta, TensorFlow's graph options as shipped instead of the student runtime's)
CASES = {"hgq_beta0": (0.0, False), "hgq_beta1e-5_tf_defaults": (1e-5, True), "hgq_beta1e-5": (1e-5, False)}

# One run: the HGQ2 student 64-32 on 16 x 4 inputs built and stepped by the student stage's own code (HGQBackend:
# build, then train.steps.kd_step: the KD loss plus HGQ2's EBOPs term, AdamW), seed 1, student.threads 1, --steps steps on
# the same random inputs (256 per step). argv: ebops_beta, steps, "tf_defaults" (grappler's arithmetic optimizer
# switched back on after build, i.e. TensorFlow as shipped) or "student". Prints the weights' hashes as JSON.
PROBE = """
import hashlib, json, sys
import numpy as np
from trigger_kd.config import DistillConfig, StudentConfig
from trigger_kd.models.backend import HGQBackend
from trigger_kd.models.students_hgq import tf
from trigger_kd.train.steps import kd_step

beta, steps, mode = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
backend = HGQBackend(StudentConfig(framework="hgq", arch="mlp", n_particles=16, mlp_hidden=(64, 32),
                                   ebops_beta=beta, seed=1, threads=1))
model = backend.build(True)
if mode == "tf_defaults":
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})
step = kd_step(backend, model, DistillConfig(alpha=0.7, temperature=3.0))
rng = np.random.default_rng(0)
x = rng.normal(size=(256 * 40, 64)).astype(np.float32)  # the MLP's layout: 16 particles x 4 features, flat
y = (x[:, 0] + x[:, 5] > 0).astype(np.int64)
t = np.stack([-x[:, 0] - x[:, 5], x[:, 0] + x[:, 5]], 1).astype(np.float32)
digest = lambda: hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.weights)).hexdigest()[:16]
out = {}
for k in range(steps):
    i = (k % 40) * 256
    step(x[i:i + 256], y[i:i + 256], t[i:i + 256], 3e-3)
    if k == 0:
        out["after_step_1"] = digest()
out["after_last_step"] = digest()
print(json.dumps(out))
"""


def probe(beta: float, steps: int, mode: str = "student") -> dict:
    """One fresh process of ``PROBE``: the weights' hashes after the first and the last step."""
    res = subprocess.run([sys.executable, "-c", PROBE, str(beta), str(steps), mode], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, out="benchmarks/out/hgq_determinism.json")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args()
    t0 = time.time()
    cases = {}
    for name, (beta, tf_defaults) in CASES.items():
        runs = []
        for _ in range(args.runs):
            runs.append(probe(beta, args.steps, "tf_defaults" if tf_defaults else "student"))
        cases[name] = {"ebops_beta": beta, "tensorflow_graph_options": "as shipped" if tf_defaults else "student",
                       "runs": runs,
                       "reproducible": all(r == runs[0] for r in runs),
                       "distinct_final_weights": len({r["after_last_step"] for r in runs})}
        print(f"{name}: {'reproducible' if cases[name]['reproducible'] else 'NOT reproducible'} "
              f"({cases[name]['distinct_final_weights']} distinct final weights in {args.runs} runs)")
    result = {**provenance(), "runs_per_case": args.runs, "steps": args.steps, "seconds": round(time.time() - t0, 1),
              "cases": cases}
    write_record(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
