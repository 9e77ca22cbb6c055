"""The same bits on every AVX2 CPU (trigger_kd/numerics.py): the teacher's training and the transfer labelling do not
depend on the vector width the CPU offers nor on the thread count of the labelling.

A CPU with narrower vectors is emulated on this one by capping what MKL may use (MKL_ENABLE_INSTRUCTIONS=AVX2, what
MKL runs on an AVX2-only CPU such as AMD Zen 3); without the pin the two differ on an AVX-512 CPU (measured: a few
steps of LorentzNet end in other weights), with it they agree bit for bit. On a CPU without AVX-512 both runs take
the AVX2 path anyway, and the test still checks the pin is in effect.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trigger_kd import numerics

# a few LorentzNet steps on random massless jets, then the logits of two thread counts; prints the hashes
SCRIPT = r"""
import hashlib, json, sys
import trigger_kd  # the pin, before torch
import numpy as np, torch
from trigger_kd.config import TeacherConfig
from trigger_kd.models.lorentznet import prepare_batch
from trigger_kd.models.teachers import build_teacher

rng = np.random.default_rng(1)
pt = rng.exponential(20.0, (256, 16)); eta = rng.normal(0, 0.4, pt.shape); phi = rng.normal(0, 0.4, pt.shape)
c = np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], -1).astype(np.float32)
c = torch.from_numpy(c); y = torch.from_numpy(rng.integers(0, 2, 256))
torch.set_num_threads(2)
torch.manual_seed(0)
m = build_teacher(TeacherConfig(n_particles=16, hidden=16, layers=2), 2)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
for i in range(0, 256, 64):
    loss = torch.nn.functional.cross_entropy(m(prepare_batch(c[i:i + 64], 16, True)), y[i:i + 64])
    opt.zero_grad(); loss.backward(); opt.step()
m.eval()
out = {"weights": hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()}
for threads in (1, 2):
    torch.set_num_threads(threads)
    with torch.no_grad():
        out[f"logits_{threads}"] = hashlib.sha256(m(prepare_batch(c, 16, True)).numpy().tobytes()).hexdigest()
from trigger_kd import numerics
out["state"] = numerics.state()
print(json.dumps(out))
"""


def _run(env: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("MKL_ENABLE_INSTRUCTIONS", *numerics.PINS)}
    r = subprocess.run([sys.executable, "-c", SCRIPT], env={**base, **env}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_teacher_training_and_labelling_the_same_on_a_narrower_cpu_and_any_thread_count():
    wide = _run({"MKL_CBWR": "AUTO"})  # a user's own value: replaced by the pin
    narrow = _run({"MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    assert wide["state"]["MKL_CBWR"] == "AVX2,STRICT" and wide["state"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    if wide["state"].get("mkl_branch") is not None:
        assert wide["state"]["mkl_branch"] == narrow["state"]["mkl_branch"] == 10
    assert wide["weights"] == narrow["weights"]
    # the transfer set's labels: the same whatever the thread count of the process that labels
    assert wide["logits_1"] == wide["logits_2"] == narrow["logits_1"] == narrow["logits_2"]


def test_training_refused_when_mkl_started_before_the_pin():
    """torch used before trigger_kd was imported (a user's own process): MKL keeps the CPU's own path, and the
    stages that train refuse with one line instead of giving figures that depend on the CPU."""
    code = ("import os, torch; torch.randn(8, 8) @ torch.randn(8, 8)\n"
            "from trigger_kd import numerics\n"
            "try:\n    numerics.require('the teacher stage')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\nelse:\n    print('not refused')")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    if numerics.mkl_branch() is None:
        pytest.skip("this torch has no MKL to ask")
    assert r.stdout.startswith("TriggerKDError the teacher stage: Intel MKL") and "import trigger_kd before torch" in \
        r.stdout, r.stdout
