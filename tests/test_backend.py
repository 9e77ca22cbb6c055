"""One student interface: Brevitas and QKeras students are trained by the same recipe."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from trigger_kd.config import DistillConfig, StudentConfig
from trigger_kd.models.backend import student_backend
from trigger_kd.train.loops import fit, lr_at

pytestmark = pytest.mark.skipif(importlib.util.find_spec("qkeras") is None, reason="the QKeras extra is not installed")
FRAMEWORKS = ("brevitas", "qkeras")


def _cfg(framework: str, arch: str = "mlp") -> StudentConfig:
    return StudentConfig(arch=arch, framework=framework, n_particles=4, mlp_hidden=(8,), phi_hidden=(8,),
                         rho_hidden=(8,), epochs=3, batch_size=32, lr=5e-3, seed=3)


def test_same_per_step_learning_rate_in_both_frameworks():
    rng = np.random.default_rng(0)
    feats = rng.uniform(-1, 1, size=(150, 4, 4)).astype(np.float32)
    y = (feats[:, 0, 0] > 0).astype(np.int64)
    teacher = rng.normal(size=(100, 2))
    used = {}
    for fw in FRAMEWORKS:
        backend = student_backend(_cfg(fw))
        x = feats.reshape(150, -1)
        used[fw] = fit(backend, backend.build(quantized=True), x[:100], y[:100], teacher, x[100:], y[100:], backend.s,
                       DistillConfig(alpha=0.5, temperature=2.0), progress=False)["lr_per_step"]
    want = [lr_at(i, 12, 5e-3) for i in range(12)]  # 3 epochs of 4 batches
    assert want[0] == pytest.approx(5e-3 / 25) and max(want) == pytest.approx(5e-3) and want[-1] < 1e-6
    np.testing.assert_allclose(used["brevitas"], want, rtol=1e-12)
    np.testing.assert_allclose(used["qkeras"], want, rtol=1e-6)  # TensorFlow keeps the rate in float32


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("arch", ["mlp", "deepset"])
def test_float_twin_starts_from_the_students_weights(framework, arch):
    backend = student_backend(_cfg(framework, arch))
    quant, twin = backend.twins()
    q, f = backend.get_weights(quant), backend.get_weights(twin)
    if framework == "brevitas":
        assert set(f) <= set(q) and len(f) >= 4
        assert all(np.array_equal(f[k].numpy(), q[k].numpy()) for k in f)
    else:
        assert len(f) == len(q) >= 4 and all(np.array_equal(a, b) for a, b in zip(f, q))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_inputs_intnet_and_firmware_layouts(framework):
    """The integer network computes the student's logits from the layout the backend gives it."""
    from trigger_kd.data.features import student_features

    backend = student_backend(_cfg(framework, "deepset"))
    quant, _ = backend.twins()
    c = np.random.default_rng(1).normal(size=(64, 6, 4)) * 50
    c[..., 0] = np.abs(c[..., 0]) + np.linalg.norm(c[..., 1:], axis=-1)  # physical 4-vectors (E >= |p|)
    x = backend.inputs(c)
    assert np.array_equal(backend.firmware_inputs(x), student_features(c, 4))  # hls4ml takes (N, P, F)
    assert np.array_equal(backend.intnet(quant).evaluate(backend.intnet_inputs(x)), backend.predict(quant, x))

