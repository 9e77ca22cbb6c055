"""SEAL penalty: random boosts, the penalty itself, and teacher training with it."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from test_lorentznet import P, jets
from test_teacher_ddp import TINY, write_jets
from trigger_kd.data.boost import apply_lorentz, boost_matrix, random_lorentz
from trigger_kd.errors import TriggerKDError
from trigger_kd.models.lorentznet import LorentzNet, prepare_batch
from trigger_kd.train.seal import (LORENTZ_GENERATORS, PairForward, boosted, generator_derivatives, generator_penalty,
                                   seal_penalty)
from trigger_kd.config import TeacherConfig
from trigger_kd.train.teacher import train_teacher

METRIC = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64))


def test_random_lorentz_draws_boosts():
    gen = torch.Generator().manual_seed(0)
    m = random_lorentz(2000, 0.95, gen, torch.float64)
    assert m.shape == (2000, 4, 4)
    assert torch.allclose(m.transpose(1, 2) @ METRIC @ m, METRIC.expand(2000, 4, 4), atol=1e-10)  # Lorentz
    beta = -m[:, 0, 1:] / m[:, :1, 0]
    speed = beta.norm(dim=1)
    assert speed.max() <= 0.95 and speed.min() >= 0 and abs(float(speed.mean()) - 0.475) < 0.03  # U(0, 0.95)
    assert (beta / speed.unsqueeze(1)).mean(0).abs().max() < 0.05  # directions uniform on the sphere
    for k in range(3):
        np.testing.assert_allclose(m[k].numpy(), boost_matrix(beta[k].numpy()), atol=1e-12)
    again = random_lorentz(2000, 0.95, torch.Generator().manual_seed(0), torch.float64)
    assert torch.equal(m, again)
    with pytest.raises(TriggerKDError):
        random_lorentz(3, 1.0)


def test_boosts_keep_padding_and_masses():
    c = torch.from_numpy(jets())
    moved = boosted(c, 0.9, torch.Generator().manual_seed(1))
    assert torch.equal(moved[c[..., 0] == 0], torch.zeros_like(moved[c[..., 0] == 0]))
    mass2 = lambda v: v[..., 0] ** 2 - (v[..., 1:] ** 2).sum(-1)  # noqa: E731
    assert torch.allclose(mass2(moved), mass2(c), atol=1e-8)
    assert not torch.allclose(moved, c)
    single = apply_lorentz(random_lorentz(6, 0.5, torch.Generator().manual_seed(2)), c.float())
    assert single.dtype == torch.float32 and single.shape == c.shape


def test_penalty_of_an_invariant_function_is_zero_and_not_otherwise():
    torch.manual_seed(0)
    model = LorentzNet(n_scalar=2, n_hidden=16, n_class=2, n_layers=3, c_weight=0.5).double().eval()
    c = torch.from_numpy(jets())
    moved = boosted(c, 0.95, torch.Generator().manual_seed(3))
    with torch.no_grad():
        # without beams LorentzNet is exactly Lorentz invariant
        f = lambda x: model(prepare_batch(x, P, add_beams=False, dtype=torch.float64))  # noqa: E731
        assert float(seal_penalty(f(c), f(moved))) < 1e-20
        # with the beams fixed (the teacher as trained), boosting the jet changes the output
        g = lambda x: model(prepare_batch(x, P, dtype=torch.float64))  # noqa: E731
        assert float(seal_penalty(g(c), g(moved))) > 1e-6


def test_pair_forward_leaves_running_statistics_to_the_unmoved_batch():
    torch.manual_seed(0)
    model = LorentzNet(n_scalar=2, n_hidden=8, n_class=2, n_layers=2, dropout=0.3).train()
    alone = copy.deepcopy(model)
    c = torch.from_numpy(jets()).float()
    batch, moved = prepare_batch(c, P), prepare_batch(boosted(c, 0.9), P)
    torch.manual_seed(5)
    logits, moved_logits, _ = PairForward(model)(batch, moved)
    torch.manual_seed(5)
    expected = alone(batch)
    assert torch.equal(logits, expected)  # same dropout draws as a plain forward
    for (k, a), b in zip(model.state_dict().items(), alone.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.allclose(logits, moved_logits)
    (logits.sum() + moved_logits.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_teacher_training_with_seal(tmp_path):
    train, val = write_jets(tmp_path / "train.h5", 128, seed=0), write_jets(tmp_path / "val.h5", 64, seed=1)
    settings = TeacherConfig(**{**TINY.model_dump(), "epochs": 1, "seal_lambda": 0.1, "seal_max_beta": 0.95})
    result = train_teacher(train, val, settings, tmp_path / "seal", progress=False)
    row = json.loads((tmp_path / "seal" / "history.json").read_text())["history"][0]
    assert result["epochs"] == 1 and row["train_seal_penalty"] > 0 and np.isfinite(row["train_seal_penalty"])
    plain = train_teacher(train, val, TeacherConfig(**{**TINY.model_dump(), "epochs": 1}), tmp_path / "plain",
                          progress=False)
    assert plain["epochs"] == 1
    assert "train_seal_penalty" not in json.loads((tmp_path / "plain" / "history.json").read_text())["history"][0]
    with pytest.raises(ValueError, match="seal_max_beta"):  # the settings are the config section: checked on creation
        TeacherConfig(**{**TINY.model_dump(), "seal_max_beta": 1.0})
    with pytest.raises(ValueError, match="seal_lambda"):
        TeacherConfig(**{**TINY.model_dump(), "seal_lambda": -0.1})


# ----------------------------------------------------------------------------- SEAL of the paper: both terms
def _mass2(x):
    """The invariant mass squared of the summed four-momenta: exactly Lorentz invariant."""
    s = x.sum(1)
    return (s[:, :1] ** 2 - (s[:, 1:] ** 2).sum(1, keepdim=True))


def _energy(x):
    """The summed energy: invariant under rotations, not under boosts."""
    return x[..., 0].sum(1, keepdim=True)


def test_the_six_generators_span_the_lorentz_algebra():
    g = LORENTZ_GENERATORS.to(torch.float64)
    assert g.shape == (6, 4, 4)
    assert torch.allclose(g.transpose(1, 2) @ METRIC + METRIC @ g, torch.zeros_like(g))  # G^T eta + eta G = 0
    assert torch.linalg.matrix_rank(g.reshape(6, 16)) == 6
    np.testing.assert_allclose(torch.linalg.matrix_exp(0.3 * g[0]).numpy(), boost_matrix([-np.tanh(0.3), 0, 0]),
                               atol=1e-12)  # the first is a boost along x (rapidity 0.3)


def test_generator_derivatives_are_those_of_the_transformed_inputs():
    x = torch.from_numpy(jets())
    f = lambda v: torch.stack([_energy(v)[:, 0], v[..., 3].sum(1) * v[..., 1].sum(1) / 100], 1)  # noqa: E731
    out, derivs = generator_derivatives(f, x)
    torch.testing.assert_close(out, f(x))
    eps = 1e-6
    for g, d in zip(LORENTZ_GENERATORS.to(torch.float64), derivs):
        move = lambda e: f(torch.einsum("ij,bpj->bpi", torch.linalg.matrix_exp(e * g), x))  # noqa: E731
        torch.testing.assert_close(d, (move(eps) - move(-eps)) / (2 * eps), rtol=1e-5, atol=1e-6)
    assert all(float(d.abs().max()) < 1e-9 for d in generator_derivatives(_energy, x)[1][3:])  # rotations keep E


def test_both_seal_terms_vanish_for_an_invariant_function_and_not_otherwise():
    x = torch.from_numpy(jets())
    moved = boosted(x, 0.95, torch.Generator().manual_seed(4))
    scale = float(_mass2(x).square().mean())
    assert float(seal_penalty(_mass2(x), _mass2(moved))) < 1e-20 * scale
    assert float(generator_penalty(_mass2, x)[1].detach()) < 1e-20 * scale
    assert float(seal_penalty(_energy(x), _energy(moved))) > 1.0
    assert float(generator_penalty(_energy, x)[1].detach()) > 1.0
    # padding stays zero under the generators: a padded jet gives the same penalty as the unpadded one
    wide = torch.cat([x, torch.zeros(len(x), 3, 4, dtype=x.dtype)], 1)
    torch.testing.assert_close(generator_penalty(_energy, wide)[1], generator_penalty(_energy, x)[1])


def test_generator_penalty_trains_the_model_through_its_parameters():
    torch.manual_seed(0)
    from trigger_kd.models.transformer import JetTransformer

    model = JetTransformer(d_model=8, heads=2, ff_dim=8, layers=1, head_hidden=(8,), dropout=0.1).double().train()
    batch = prepare_batch(torch.from_numpy(jets()), P, add_beams=False, dtype=torch.float64)
    logits, penalty = generator_penalty(lambda v: model({**batch, "x": v}), batch["x"])
    assert logits.shape == (6, 2) and float(penalty.detach()) > 0
    penalty.backward()
    # every parameter but the last bias (derivatives of z do not depend on it) is trained by the penalty
    assert [n for n, p in model.named_parameters() if p.grad is None] == ["head.2.bias"]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert float(model.embedding[0].weight.grad.abs().sum()) > 0
