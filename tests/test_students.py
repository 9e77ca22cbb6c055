"""Brevitas students: fixed-point view, permutation invariance, KD loss, training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from student_helpers import perturbed_student, random_inputs
from trigger_kd.config import DistillConfig
from trigger_kd.config import StudentConfig as StudentSpec
from trigger_kd.models.backend import BrevitasBackend
from trigger_kd.models.intnet import IntNet
from trigger_kd.models.students import build_student, predict_logits, student_intnet
from trigger_kd.train.distill import kd_loss
from trigger_kd.train.feed import InputFeed
from trigger_kd.train.loops import fit




@pytest.mark.parametrize("arch", ["mlp", "deepset"])
def test_integer_network_is_bit_exact_with_brevitas(arch, tmp_path):
    spec = StudentSpec(arch=arch, n_particles=8, mlp_hidden=(16, 8), phi_hidden=(8, 8), rho_hidden=(8,))
    model = perturbed_student(spec)
    x = random_inputs(spec, 1000)
    y = predict_logits(model, x)
    net = student_intnet(model)
    net.save(tmp_path / "net.json")
    again = IntNet.load(tmp_path / "net.json")
    lsb = BrevitasBackend(spec).output_lsb(model)
    assert np.array_equal(np.rint(again.evaluate(x) / lsb), np.rint(y / lsb))
    # the logits really are on the grid (an exact fixed-point model)
    assert np.max(np.abs(y / lsb - np.rint(y / lsb))) < 1e-6
    table = net.layer_table()
    assert table[0]["type"] == f"fixed<{spec.input_bits},{spec.input_int_bits + 1}>"


def test_quantised_output_changes_with_bit_width():
    """The quantisers are live: fewer weight bits give different outputs."""
    x = random_inputs(StudentSpec(), 200)
    a = predict_logits(perturbed_student(StudentSpec(weight_bits=8)), x)
    b = predict_logits(perturbed_student(StudentSpec(weight_bits=3)), x)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("quantized", [True, False])
def test_deepset_is_permutation_invariant(quantized):
    spec = StudentSpec(arch="deepset", n_particles=8, phi_hidden=(8, 8), rho_hidden=(8,))
    model = perturbed_student(spec) if quantized else build_student(spec, quantized=False).eval()
    x = random_inputs(spec, 300)
    perm = np.random.default_rng(3).permutation(spec.n_particles)
    a, b = predict_logits(model, x), predict_logits(model, x[:, :, perm])
    if quantized:
        assert np.array_equal(a, b)  # exact: the mean of fixed-point values does not depend on order
    else:
        assert np.allclose(a, b, atol=1e-5)


def test_deepset_needs_power_of_two_particles():
    with pytest.raises(Exception, match="power of two"):
        BrevitasBackend(StudentSpec(arch="deepset", n_particles=6))


def test_kd_loss_matches_hand_computed_value():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1])
    # CE = 0.220094849, KL(t/T || s/T) = 0.121286919 (batch mean), T = 2, alpha = 0.5
    assert float(kd_loss(s, y, t, alpha=0.5, temperature=2.0)) == pytest.approx(0.35262126280043093, rel=1e-6)
    assert float(kd_loss(s, y, t, alpha=0.0, temperature=2.0)) == pytest.approx(0.22009484928059772, rel=1e-6)
    assert float(kd_loss(s, y, None, alpha=0.7, temperature=2.0)) == pytest.approx(0.22009484928059772, rel=1e-6)


@pytest.mark.slow  # trains a student for 8 epochs
def test_training_learns_a_separable_problem():
    spec = StudentSpec(arch="mlp", n_particles=2, mlp_hidden=(8,), epochs=8, batch_size=64, lr=1e-2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8)).astype(np.float32) * 0.5
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    teacher = np.stack([-(x[:, 0] + x[:, 1]), x[:, 0] + x[:, 1]], axis=1) * 4
    backend = BrevitasBackend(spec)
    model = backend.build(quantized=True)
    hist = fit(backend, model, InputFeed(x[:1500], y[:1500], teacher[:1500]), x[1500:], y[1500:], spec,
               DistillConfig(alpha=0.5, temperature=2.0), progress=False)
    assert hist["best_val_accuracy"] > 0.9
    acc = (predict_logits(model, x[1500:]).argmax(1) == y[1500:]).mean()
    assert acc == pytest.approx(hist["best_val_accuracy"])
