"""Curvature of a training loss: leading Hessian eigenvalue and eigenvector, Hessian trace, and the
loss along the leading eigenvector.

All come from Hessian-vector products (double backward with ``torch.autograd.grad``), never
from the Hessian itself, so they scale to any model: the leading eigenpair (largest eigenvalue in
magnitude, as in pyhessian) by power iteration, the trace by Hutchinson's estimator
E[v^T H v] with Rademacher vectors v. The loss is the mean over all jets of the given
batches ``(inputs, targets)``, ``loss_fn(model, batch)`` being the mean over one batch; products
are accumulated batch by batch, so memory stays that of one batch.

``loss_along_direction`` evaluates that mean loss at theta + eps * v for a list of eps (a 1-D slice
of the landscape; with v the unit leading eigenvector, pyhessian's "loss landscape perturbed along
the top eigenvector") and puts the parameters back bit for bit. ``loss_rise_over_quadratic`` divides
the measured rise L(theta + eps v) - L(theta) by the second-order prediction lambda eps^2 / 2: 1 where
the Hessian describes the slice, below 1 where the loss flattens out (or rises more slowly) beyond it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import TriggerKDError
from ..models.edge_kernel import torch_edges
from ..models.transformer import math_attention

LossFn = Callable[[torch.nn.Module, tuple], torch.Tensor]


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TriggerKDError("the model has no trainable parameters: nothing to measure the curvature of")
    return params


def _batch_size(batch: tuple) -> int:
    """Jets in a batch (inputs, targets): the length of its targets (inputs may be a dict of tensors)."""
    return int(batch[-1].shape[0])


def hessian_vector_product(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn,
                           vec: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v for the mean loss over all jets in ``batches`` (``loss_fn(model, batch)`` = batch mean).

    Second derivatives: LorentzNet computes its edges with PyTorch ops here (its compiled edge kernel
    is differentiable once only), the transformer its attention (the fused kernels are not twice differentiable)."""
    params = _params(model)
    total = sum(_batch_size(b) for b in batches)
    if total == 0:
        raise TriggerKDError("no jets to measure the curvature on: pass at least one non-empty batch")
    out = [torch.zeros_like(p) for p in params]
    for batch in batches:
        with torch_edges(), math_attention():  # twice differentiable: no compiled edge kernel, no fused attention
            loss = loss_fn(model, batch) * (_batch_size(batch) / total)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vec))
        hv = torch.autograd.grad(dot, params, allow_unused=True)
        for o, h in zip(out, hv):
            if h is not None:
                o.add_(h.detach())
    return out


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def _normalised(v: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = _dot(v, v) ** 0.5
    if norm == 0.0:
        raise TriggerKDError("the Hessian-vector product vanished: the loss is flat in every direction tried")
    return [x / norm for x in v]


def leading_eigenpair(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn, max_iter: int = 100,
                      tol: float = 1e-4, seed: int = 0) -> dict:
    """Largest-magnitude Hessian eigenvalue and its eigenvector by power iteration:
    {eigenvalue, eigenvector, iterations, converged}.

    ``eigenvector``: one tensor per trainable parameter (the order of ``model.parameters()``), unit
    norm over all of them together, defined up to its sign. Stops when the Rayleigh quotient changes
    by less than ``tol`` (relative) between iterations."""
    params = _params(model)
    gen = torch.Generator().manual_seed(seed)
    v = _normalised([torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params])
    eig, converged, it = None, False, 0
    for it in range(1, max_iter + 1):
        hv = hessian_vector_product(model, batches, loss_fn, v)
        new = _dot(hv, v)  # Rayleigh quotient, v normalised
        v = _normalised(hv)
        if eig is not None and abs(new - eig) <= tol * max(abs(new), 1e-12):
            eig, converged = new, True
            break
        eig = new
    return {"eigenvalue": eig, "eigenvector": v, "iterations": it, "converged": converged}


def leading_eigenvalue(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn, max_iter: int = 100,
                       tol: float = 1e-4, seed: int = 0) -> dict:
    """Largest-magnitude Hessian eigenvalue by power iteration: {eigenvalue, iterations, converged}
    (``leading_eigenpair`` without the eigenvector)."""
    res = leading_eigenpair(model, batches, loss_fn, max_iter=max_iter, tol=tol, seed=seed)
    return {k: res[k] for k in ("eigenvalue", "iterations", "converged")}


def mean_loss(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn) -> float:
    """The mean loss over all jets of ``batches`` (no gradients), in the contexts of
    ``hessian_vector_product`` so that it is the function whose Hessian that measures."""
    total = sum(_batch_size(b) for b in batches)
    if total == 0:
        raise TriggerKDError("no jets to evaluate the loss on: pass at least one non-empty batch")
    out = 0.0
    with torch.no_grad(), torch_edges(), math_attention():
        for batch in batches:
            out += float(loss_fn(model, batch)) * (_batch_size(batch) / total)
    return out


def loss_along_direction(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn,
                         direction: Sequence[torch.Tensor], eps: Sequence[float]) -> list[float]:
    """The mean loss at theta + e * direction for each e of ``eps`` (theta: the trainable parameters,
    ``direction`` one tensor per parameter as from ``leading_eigenpair``), in the model's current mode.

    Each point is set from a saved copy of theta (no accumulated rounding between points), and theta is
    copied back afterwards, bit for bit, also when the loss raises."""
    params = _params(model)
    if len(direction) != len(params) or any(d.shape != p.shape for d, p in zip(direction, params)):
        raise TriggerKDError("the direction must have one tensor per trainable parameter, of its shape")
    saved = [p.detach().clone() for p in params]
    losses = []
    try:
        for e in eps:
            with torch.no_grad():
                for p, p0, d in zip(params, saved, direction):
                    p.copy_(p0 + float(e) * d.to(dtype=p.dtype, device=p.device))
            losses.append(mean_loss(model, batches, loss_fn))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved):
                p.copy_(p0)
    return losses


def loss_rise_over_quadratic(eps: Sequence[float], losses: Sequence[float], loss_at_zero: float,
                             eigenvalue: float) -> list[float | None]:
    """(L(theta + e v) - L(theta)) / (eigenvalue e^2 / 2) per e: the measured rise of the loss along a
    unit eigenvector v over its second-order (Hessian) prediction. None where the prediction is 0
    (e = 0 or a zero eigenvalue)."""
    out = []
    for e, loss in zip(eps, losses, strict=True):
        quad = 0.5 * eigenvalue * float(e) ** 2
        out.append(None if quad == 0 else (loss - loss_at_zero) / quad)
    return out


def loss_along_leading_eigenvector(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn,
                                   eps: Sequence[float], max_iter: int = 100, tol: float = 1e-4,
                                   seed: int = 0) -> dict:
    """The mean loss along the unit leading Hessian eigenvector v, with the model in eval mode:
    {eps, loss (at theta + eps v), loss_at_zero, loss_rise (loss - loss_at_zero),
    loss_rise_over_quadratic (``loss_rise_over_quadratic``), lambda_max, power_iterations, converged,
    n_jets, n_parameters}. v is power iteration's (as ``loss_curvature``'s with the same arguments);
    the parameters are restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        pair = leading_eigenpair(model, batches, loss_fn, max_iter=max_iter, tol=tol, seed=seed)
        loss0 = mean_loss(model, batches, loss_fn)
        losses = loss_along_direction(model, batches, loss_fn, pair["eigenvector"], eps)
    finally:
        model.train(was_training)
    eps = [float(e) for e in eps]
    return {
        "eps": eps,
        "loss": losses,
        "loss_at_zero": loss0,
        "loss_rise": [x - loss0 for x in losses],
        "loss_rise_over_quadratic": loss_rise_over_quadratic(eps, losses, loss0, pair["eigenvalue"]),
        "lambda_max": pair["eigenvalue"],
        "power_iterations": pair["iterations"],
        "converged": pair["converged"],
        "n_jets": sum(_batch_size(b) for b in batches),
        "n_parameters": sum(p.numel() for p in _params(model)),
    }


def hessian_trace(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn, samples: int = 100,
                  seed: int = 0) -> dict:
    """Hutchinson estimate of tr(H) with Rademacher vectors: {trace, std_error, samples}."""
    if samples < 2:
        raise TriggerKDError(f"the trace estimate needs at least 2 samples, got {samples}")
    params = _params(model)
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        v = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p.dtype).to(p.device) for p in params]
        values.append(_dot(hessian_vector_product(model, batches, loss_fn, v), v))
    t = torch.tensor(values, dtype=torch.float64)
    return {"trace": float(t.mean()), "std_error": float(t.std() / len(values) ** 0.5), "samples": samples}


def loss_curvature(model: torch.nn.Module, batches: Sequence[tuple], loss_fn: LossFn, max_iter: int = 100,
                   tol: float = 1e-4, trace_samples: int = 100, seed: int = 0) -> dict:
    """Leading eigenvalue and trace of the Hessian of the mean loss, with the model in eval
    mode (no dropout); the number of jets and parameters are recorded with them."""
    was_training = model.training
    model.eval()
    try:
        eig = leading_eigenvalue(model, batches, loss_fn, max_iter=max_iter, tol=tol, seed=seed)
        tr = hessian_trace(model, batches, loss_fn, samples=trace_samples, seed=seed)
    finally:
        model.train(was_training)
    return {
        "lambda_max": eig["eigenvalue"],
        "power_iterations": eig["iterations"],
        "converged": eig["converged"],
        "trace": tr["trace"],
        "trace_std_error": tr["std_error"],
        "trace_samples": tr["samples"],
        "n_jets": sum(_batch_size(b) for b in batches),
        "n_parameters": sum(p.numel() for p in _params(model)),
    }
