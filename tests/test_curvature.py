"""Hessian eigenvalue and trace from Hessian-vector products, against Hessians known exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trigger_kd.errors import TriggerKDError
from trigger_kd.train.curvature import (
    hessian_trace,
    hessian_vector_product,
    leading_eigenvalue,
    loss_curvature,
)


def _mse(model, batch):
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def _regression(n=256, d=6, seed=0):
    """Linear regression data; columns of different scales so the spectrum has a clear gap."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    noise = torch.randn(n, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(d, generator=gen, dtype=torch.float64) + 0.1 * noise
    model = torch.nn.Linear(d, 1).double()
    a = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1).numpy()
    exact = 2.0 / n * a.T @ a  # Hessian of mean (a theta - y)^2 in (weights, bias)
    return model, x, y, exact


def test_linear_regression_mse_matches_the_exact_hessian():
    model, x, y, exact = _regression()
    batches = [(x[:100], y[:100]), (x[100:130], y[100:130]), (x[130:], y[130:])]  # unequal batches
    eigs = np.linalg.eigvalsh(exact)
    res = loss_curvature(model, batches, _mse, trace_samples=200, seed=3)
    assert res["converged"] and res["lambda_max"] == pytest.approx(eigs[-1], rel=0.01)
    assert res["trace"] == pytest.approx(np.trace(exact), rel=0.05)
    assert abs(res["trace"] - np.trace(exact)) < 4 * res["trace_std_error"]
    assert res["n_jets"] == 256 and res["n_parameters"] == 7


def test_hessian_vector_product_is_exact_and_batch_independent():
    model, x, y, exact = _regression(n=64, d=3)
    v = [torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)]
    whole = hessian_vector_product(model, [(x, y)], _mse, v)
    split = hessian_vector_product(model, [(x[:10], y[:10]), (x[10:], y[10:])], _mse, v)
    expected = exact @ np.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(torch.cat([t.reshape(-1) for t in whole]).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(torch.cat([t.reshape(-1) for t in split]).numpy(), expected, rtol=1e-10)


def test_nonlinear_model_matches_autograd_hessian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()
    x = torch.randn(128, 4, dtype=torch.float64)
    y = (x[:, 0] * x[:, 1] > 0).double()

    def bce(m, batch):
        return torch.nn.functional.binary_cross_entropy_with_logits(m(batch[0]).squeeze(-1), batch[1])

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of_flat(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[i:i + s.numel()].reshape(s)
            i += s.numel()
        return bce(lambda inp: torch.func.functional_call(model, parts, (inp,)), (x, y))

    exact = torch.autograd.functional.hessian(loss_of_flat, flat0).numpy()
    eigs = np.linalg.eigvalsh(exact)
    top = eigs[np.argmax(np.abs(eigs))]
    eig = leading_eigenvalue(model, [(x, y)], bce, max_iter=500, tol=1e-7)
    assert eig["converged"] and eig["eigenvalue"] == pytest.approx(top, rel=0.01)
    tr = hessian_trace(model, [(x, y)], bce, samples=400, seed=1)
    # mixed-sign curvature: Hutchinson's variance 2 sum_{i != j} H_ij^2 is large here; check its error bar
    assert abs(tr["trace"] - np.trace(exact)) < 4 * tr["std_error"] < 0.2 * abs(np.trace(exact))


def test_errors_are_named():
    model, x, y, _ = _regression(n=8, d=2)
    with pytest.raises(TriggerKDError, match="at least 2 samples"):
        hessian_trace(model, [(x, y)], _mse, samples=1)
    with pytest.raises(TriggerKDError, match="no jets"):
        hessian_vector_product(model, [(x[:0], y[:0])], _mse, [torch.zeros_like(p) for p in model.parameters()])
    frozen = torch.nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(TriggerKDError, match="no trainable parameters"):
        loss_curvature(frozen, [(x.float(), y.float())], _mse)
