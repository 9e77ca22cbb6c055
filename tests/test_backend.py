"""One student interface: Brevitas and QKeras students are trained by the same recipe."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from trigger_kd.config import DistillConfig, StudentConfig
from trigger_kd.models.backend import student_backend
from trigger_kd.train.feed import DistillFeed, LorentzJets
from trigger_kd.train.loops import fit, lr_at
from trigger_kd.train.steps import kd_step

pytestmark = pytest.mark.skipif(importlib.util.find_spec("qkeras") is None, reason="the QKeras extra is not installed")
FRAMEWORKS = ("brevitas", "qkeras")


def _cfg(framework: str, arch: str = "mlp", **more) -> StudentConfig:
    return StudentConfig(arch=arch, framework=framework, n_particles=4, mlp_hidden=(8,), phi_hidden=(8,),
                         rho_hidden=(8,), epochs=3, batch_size=32, lr=5e-3, seed=3, **more)


def _constituents(n: int, seed: int = 1) -> np.ndarray:
    c = np.random.default_rng(seed).normal(size=(n, 6, 4)) * 50
    c[..., 0] = np.abs(c[..., 0]) + np.linalg.norm(c[..., 1:], axis=-1)  # physical 4-vectors (E >= |p|)
    return c


@pytest.mark.slow  # trains a student for 3 epochs in each framework (TensorFlow included)
def test_same_per_step_learning_rate_in_both_frameworks():
    c = _constituents(150, seed=0)
    y = (c[:, 0, 1] > 0).astype(np.int64)
    teacher = np.random.default_rng(0).normal(size=(100, 2))
    used = {}
    for fw in FRAMEWORKS:
        backend = student_backend(_cfg(fw, lr_schedule="one_cycle"))
        feed = DistillFeed(LorentzJets.from_constituents(c[:100], 4), y[:100], backend.inputs_from_features, teacher)
        used[fw] = fit(backend, backend.build(quantized=True), feed, backend.inputs(c[100:]), y[100:], backend.s,
                       DistillConfig(alpha=0.5, temperature=2.0), progress=False)["lr_per_step"]
    want = [lr_at(i, 12, 5e-3) for i in range(12)]  # 3 epochs of 4 batches
    assert want[0] == pytest.approx(5e-3 / 25) and max(want) == pytest.approx(5e-3) and want[-1] < 1e-6
    np.testing.assert_allclose(used["brevitas"], want, rtol=1e-12)
    np.testing.assert_allclose(used["qkeras"], want, rtol=1e-6)  # TensorFlow keeps the rate in float32


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_step_loss_is_masked_kd_plus_seal_in_both_frameworks(framework):
    """The loss one step reports equals (1-a) CE(labelled) + a T^2 KL + lambda ||f(Lx) - f(x)||^2 before it."""
    import torch

    from trigger_kd.train.distill import kd_loss
    from trigger_kd.train.seal import seal_penalty

    backend = student_backend(_cfg(framework, seal_lambda=0.5))
    model = backend.build(quantized=True)
    c = _constituents(48, seed=4)
    labels = np.r_[(c[:32, 0, 1] > 0).astype(np.int64), np.full(16, -1)]
    teacher = np.random.default_rng(5).normal(size=(48, 2)).astype(np.float32)
    feed = DistillFeed(LorentzJets.from_constituents(c, 4), labels, backend.inputs_from_features, teacher,
                       seal_lambda=0.5, seed=2)
    x, y, t = feed.epoch(0)
    idx = np.arange(48)
    xs = feed.seal_inputs(0, idx)
    assert xs.shape == x.shape and not np.allclose(xs, x)
    f, fs = (torch.from_numpy(backend.predict(model, v)) for v in (x, xs))
    want = kd_loss(f, torch.from_numpy(y), torch.from_numpy(t).double(), 0.7, 3.0) + 0.5 * seal_penalty(f, fs)
    plain = kd_loss(f, torch.from_numpy(y), torch.from_numpy(t).double(), 0.7, 3.0)
    loss, _ = kd_step(backend, model, DistillConfig(alpha=0.7, temperature=3.0))(x, y, t, 1e-3, xs)
    assert loss == pytest.approx(want.item(), rel=2e-5) and abs(want.item() - plain.item()) > 1e-3


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("arch", ["mlp", "deepset"])
def test_float_and_scratch_twins_start_from_the_students_weights(framework, arch):
    backend = student_backend(_cfg(framework, arch))
    quant, twin, scratch = backend.twins(scratch=True)
    q = backend.get_weights(quant)
    for other in (twin, scratch):
        f = backend.get_weights(other)
        if framework == "brevitas":
            assert set(f) <= set(q) and len(f) >= 4
            assert all(np.array_equal(f[k].numpy(), q[k].numpy()) for k in f)
        else:
            assert len(f) == len(q) >= 4 and all(np.array_equal(a, b) for a, b in zip(f, q))
    assert len(backend.twins()) == 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_inputs_intnet_and_firmware_layouts(framework):
    """The integer network computes the student's logits from the layout the backend gives it."""
    from trigger_kd.data.features import student_features

    backend = student_backend(_cfg(framework, "deepset"))
    quant, _ = backend.twins()
    c = _constituents(64)
    x = backend.inputs(c)
    assert np.array_equal(backend.firmware_inputs(x), student_features(c, 4))  # hls4ml takes (N, P, F)
    assert np.array_equal(backend.intnet(quant).evaluate(backend.intnet_inputs(x)), backend.predict(quant, x))



def test_the_adapter_holds_the_students_features_made_once_from_the_config():
    """``backend.features`` is the one way the config enters data/features.py: the same numbers and checks as the
    functions it wraps, with the student section's settings."""
    from trigger_kd.data.features import StudentFeatures, check_input_range, feature_names, saturated_jets, student_features

    s = _cfg("brevitas", jet_pt_feature=True, input_bits=8, input_int_bits=1)
    backend = student_backend(s)
    assert backend.features == StudentFeatures(n_particles=4, jet_pt=True, input_bits=8, input_int_bits=1)
    c = _constituents(40)
    f = backend.features(c)
    assert np.array_equal(f, student_features(c, 4, jet_pt=True)) and backend.features.names == feature_names(True)
    assert np.array_equal(backend.inputs(c), backend.inputs_from_features(f))
    assert backend.features.saturated(f) == dict(zip(feature_names(True), saturated_jets(f, 8, 1).tolist()))
    f[:, 0, 1] = 50.0  # every jet beyond the input range in one feature
    with pytest.raises(Exception, match="2\\*deta is outside"):
        backend.features.check_range(f, "training")
    with pytest.raises(Exception, match="2\\*deta is outside"):
        check_input_range(f, feature_names(True), 8, 1, "training")


def test_train_twins_trains_and_saves_each_twin_through_the_adapter(tmp_path):
    """train/twins.py drives the adapter it is handed: the three models saved, one history each, the scratch twin on
    the labelled rows only; a framework without calibration is not asked for it."""
    from trigger_kd.train.twins import train_twins

    backend = student_backend(_cfg("brevitas"))
    c = _constituents(60)
    labels = np.r_[(c[:40, 0, 1] > 0).astype(np.int64), np.full(20, -1)]
    teacher = np.random.default_rng(5).normal(size=(60, 2)).astype(np.float32)
    feed = DistillFeed(LorentzJets.from_constituents(c, 4), labels, backend.inputs_from_features, teacher)
    assert not backend.calibrates and not hasattr(backend, "set_calibration")
    h = train_twins(backend, feed, backend.inputs(c[:20]), labels[:20].clip(0), DistillConfig(alpha=0.5), tmp_path,
                    progress=False, scratch_twin=True)
    assert sorted(h) == ["student", "student_float", "student_scratch"]
    assert h["student"]["jets"] == 60 and h["student_scratch"]["jets"] == 40
    assert all((tmp_path / f"{name}.pt").is_file() for name in h)
