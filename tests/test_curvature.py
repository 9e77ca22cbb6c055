"""Hessian eigenvalue, eigenvector and trace from Hessian-vector products, and the loss along the leading
eigenvector, against Hessians and losses known exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from trigger_kd.errors import TriggerKDError
from trigger_kd.train.curvature import (
    hessian_trace,
    hessian_vector_product,
    leading_eigenpair,
    leading_eigenvalue,
    loss_along_direction,
    loss_along_leading_eigenvector,
    loss_curvature,
    loss_rise_over_quadratic,
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


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors]).numpy()


def _least_squares_fit(model, x, y):
    """Set the linear model to the minimum of mean (a theta - y)^2 (zero gradient there)."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    theta = torch.linalg.lstsq(a, y.unsqueeze(1)).solution.squeeze(1)
    with torch.no_grad():
        model.weight.copy_(theta[:-1].unsqueeze(0))
        model.bias.copy_(theta[-1:])


def test_leading_eigenvector_matches_the_exact_one_up_to_sign():
    model, x, y, exact = _regression()
    eigs, vecs = np.linalg.eigh(exact)
    pair = leading_eigenpair(model, [(x[:100], y[:100]), (x[100:], y[100:])], _mse, max_iter=500, tol=1e-10)
    v = _flat(pair["eigenvector"])
    assert pair["converged"] and pair["eigenvalue"] == pytest.approx(eigs[-1], rel=1e-6)
    assert [t.shape for t in pair["eigenvector"]] == [p.shape for p in model.parameters()]
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-12)
    assert abs(v @ vecs[:, -1]) == pytest.approx(1.0, abs=1e-6)  # the same line, either sign
    assert abs(v @ vecs[:, -2]) < 1e-3  # and not the second one
    # the old entry point: the same eigenvalue, no vector
    old = leading_eigenvalue(model, [(x, y)], _mse, max_iter=500, tol=1e-10)
    assert set(old) == {"eigenvalue", "iterations", "converged"} and old["eigenvalue"] == pytest.approx(eigs[-1])


def test_loss_along_the_leading_eigenvector_is_the_analytic_parabola():
    model, x, y, exact = _regression()
    n = len(y)
    a = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1).numpy()
    theta = _flat([model.weight.detach(), model.bias.detach()])  # away from the minimum: a linear term too
    before = [p.detach().clone() for p in model.parameters()]
    eps = np.linspace(-0.5, 0.5, 21)
    res = loss_along_leading_eigenvector(model, [(x[:77], y[:77]), (x[77:], y[77:])], _mse, eps, max_iter=500,
                                         tol=1e-10)
    v = _flat(leading_eigenpair(model, [(x, y)], _mse, max_iter=500, tol=1e-10)["eigenvector"])
    lam = np.linalg.eigvalsh(exact)[-1]
    resid = a @ theta - y.numpy()
    loss0, grad = np.mean(resid ** 2), 2.0 / n * a.T @ resid
    expected = loss0 + eps * (grad @ v) + 0.5 * lam * eps ** 2  # exact: the loss is quadratic in theta
    assert res["eps"] == pytest.approx(list(eps)) and res["loss_at_zero"] == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(res["loss"], expected, rtol=1e-8)
    np.testing.assert_allclose(res["loss_rise"], expected - loss0, rtol=1e-6, atol=1e-12)
    assert res["lambda_max"] == pytest.approx(lam, rel=1e-8) and res["n_jets"] == n and res["n_parameters"] == 7
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # restored bit for bit
    assert model.training  # its mode too


def test_loss_rise_over_quadratic_is_one_at_a_quadratic_minimum():
    model, x, y, _ = _regression()
    _least_squares_fit(model, x, y)
    res = loss_along_leading_eigenvector(model, [(x, y)], _mse, [-0.4, -0.1, 0.0, 0.2, 0.5], max_iter=500,
                                         tol=1e-10)
    r = res["loss_rise_over_quadratic"]
    assert r[2] is None  # eps 0: no prediction to divide by
    np.testing.assert_allclose([r[i] for i in (0, 1, 3, 4)], 1.0, rtol=1e-6)


class _Quartic(torch.nn.Module):
    """One parameter w at its minimum 1: L(w) = (w - 1)^2 + (w - 1)^4, Hessian 2, L(1 + e) - L(1) = e^2 + e^4."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))


def _quartic_loss(m, batch):
    d = m.w - 1.0
    return (d ** 2 + d ** 4).sum() + 0.0 * batch[1].sum()


def test_loss_rise_over_quadratic_has_the_known_anharmonic_value():
    model = _Quartic()
    batch = (None, torch.zeros(4, dtype=torch.float64))
    eps = [-0.5, -0.25, 0.1, 0.3, 1.0]
    res = loss_along_leading_eigenvector(model, [batch], _quartic_loss, eps, max_iter=20, tol=1e-12)
    assert res["lambda_max"] == pytest.approx(2.0)
    np.testing.assert_allclose(res["loss"], [e ** 2 + e ** 4 for e in eps], rtol=1e-12)
    np.testing.assert_allclose(res["loss_rise_over_quadratic"], [1 + e ** 2 for e in eps], rtol=1e-12)
    # the pure function: any rise, any eigenvalue; None where the prediction vanishes
    assert loss_rise_over_quadratic([0.0, 2.0], [1.0, 5.0], 1.0, 4.0) == [None, 0.5]
    assert loss_rise_over_quadratic([1.0], [3.0], 1.0, 0.0) == [None]


def test_loss_along_direction_restores_the_parameters_even_on_error():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))  # float32
    before = [p.detach().clone() for p in model.parameters()]
    direction = [torch.randn_like(p) for p in model.parameters()]
    x, y = torch.randn(16, 3), torch.randn(16)
    calls = []

    def failing(m, batch):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return _mse(m, batch)

    with pytest.raises(RuntimeError, match="boom"):
        loss_along_direction(model, [(x, y)], failing, direction, [0.3, -0.7, 0.9])
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    # float32 and an eps whose steps do not round-trip (theta + e d - e d != theta): still bit for bit
    losses = loss_along_direction(model, [(x, y)], _mse, direction, [0.1, 0.3, 0.7, 0.0])
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    with torch.no_grad():
        assert losses[-1] == pytest.approx(float(_mse(model, (x, y))), rel=1e-6)
    with pytest.raises(TriggerKDError, match="one tensor per trainable parameter"):
        loss_along_direction(model, [(x, y)], _mse, direction[:-1], [0.1])
