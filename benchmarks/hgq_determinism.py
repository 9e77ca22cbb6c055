"""Is HGQ2 student training reproducible run to run? Same seed, same data, fresh processes, weights compared.

    python benchmarks/hgq_determinism.py --out benchmarks/out/hgq_determinism.json [--runs 3] [--steps 120]

Each run is a fresh Python process (TensorFlow's pools set to 1/1 before its runtime starts, op determinism on)
that builds a student with seed 1, takes ``--steps`` AdamW steps of the KD loss on the same random inputs
(256 per step) and prints a hash of every weight after the first step and after the last. Cases: a plain Keras 3
MLP of the same shape (64-64-32-2), the HGQ2 student 64-32 with the EBOPs penalty off (``ebops_beta`` 0) and
on (1e-5). A case is reproducible when every run gives the same hashes. Found while checking why
``make synth MODEL=mlp_kd_hgq_10k`` did not give the sweep's numbers for the same stamps (benchmarks/RESULTS.md).
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
from benchmarks.provenance import git_state  # noqa: E402

CASES = {"keras_mlp": None, "hgq_beta0": 0.0, "hgq_beta1e-5": 1e-5}

PROBE = """
import hashlib, json, sys
import numpy as np
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from trigger_kd.config import StudentConfig
from trigger_kd.train.distill import kd_loss_tf

beta, steps = json.loads(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(1)
if beta is None:
    inp = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inp)
    h = keras.layers.Dense(32, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
else:
    from trigger_kd.models.students_hgq import build_hgq_student
    model = build_hgq_student(StudentConfig(framework="hgq", arch="mlp", n_particles=16, mlp_hidden=(64, 32),
                                            ebops_beta=beta, seed=1), True)
opt = keras.optimizers.AdamW(learning_rate=3e-3)

@tf.function
def step(xb, yb, tb):
    with tf.GradientTape() as tape:
        loss = kd_loss_tf(model(xb, training=True), yb, tb, 0.7, 3.0)
        if model.losses:
            loss = loss + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))

rng = np.random.default_rng(0)
x = rng.normal(size=(256 * 40, 64)).astype(np.float32)
y = (x[:, 0] + x[:, 5] > 0).astype(np.int32)
t = np.stack([-x[:, 0] - x[:, 5], x[:, 0] + x[:, 5]], 1).astype(np.float32)
digest = lambda: hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.weights)).hexdigest()[:16]
out = {}
for k in range(steps):
    i = (k % 40) * 256
    step(x[i:i + 256], y[i:i + 256], t[i:i + 256])
    if k == 0:
        out["after_step_1"] = digest()
out["after_last_step"] = digest()
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/hgq_determinism.json")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args()
    t0 = time.time()
    cases = {}
    for name, beta in CASES.items():
        runs = []
        for _ in range(args.runs):
            res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(beta), str(args.steps)], cwd=REPO,
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        cases[name] = {"ebops_beta": beta, "runs": runs,
                       "reproducible": all(r == runs[0] for r in runs),
                       "distinct_final_weights": len({r["after_last_step"] for r in runs})}
        print(f"{name}: {'reproducible' if cases[name]['reproducible'] else 'NOT reproducible'} "
              f"({cases[name]['distinct_final_weights']} distinct final weights in {args.runs} runs)")
    result = {"command": " ".join(["python", *sys.argv]), "git": git_state(), "runs_per_case": args.runs,
              "steps": args.steps, "seconds": round(time.time() - t0, 1), "cases": cases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
