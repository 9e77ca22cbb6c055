"""The KD loss skips unlabelled (transfer) jets in the hard-label term; the SEAL penalty."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trigger_kd.train.distill import kd_loss
from trigger_kd.train.seal import seal_penalty


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)


def test_hard_label_term_covers_labelled_jets_only():
    s, t = _batch()
    labels = torch.tensor([0, 1, 1, -1, -1, -1])
    a, temp = 0.7, 3.0
    soft = F.kl_div(F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1), reduction="batchmean", log_target=True)
    want = (1 - a) * F.cross_entropy(s[:3], labels[:3]) + a * temp**2 * soft
    assert kd_loss(s, labels, t, a, temp).item() == pytest.approx(want.item(), rel=1e-6)
    # all labelled: the plain mean cross entropy; none labelled: the soft term alone
    full = torch.tensor([0, 1, 1, 0, 0, 1])
    assert kd_loss(s, full, None, 0.0, 1.0).item() == pytest.approx(F.cross_entropy(s, full).item(), rel=1e-6)
    assert kd_loss(s, torch.full((6,), -1), t, a, temp).item() == pytest.approx((a * temp**2 * soft).item(), rel=1e-6)


def test_tensorflow_loss_and_penalty_equal_the_torch_ones():
    """QKeras students get the same masked KD loss and SEAL penalty as the Brevitas ones."""
    pytest.importorskip("tensorflow")
    from trigger_kd.train.distill import kd_loss_tf, seal_penalty_tf

    s, t = _batch(1)
    labels = torch.tensor([0, 1, -1, 1, -1, 0])
    for alpha, teacher in ((0.7, t), (0.0, None)):
        want = kd_loss(s, labels, teacher, alpha, 3.0).item()
        got = float(kd_loss_tf(s.numpy(), labels.numpy(), None if teacher is None else teacher.numpy(), alpha, 3.0))
        assert got == pytest.approx(want, rel=1e-5)
    assert float(seal_penalty_tf(s.numpy(), t.numpy())) == pytest.approx(seal_penalty(s, t).item(), rel=1e-6)
    assert seal_penalty(s, s).item() == 0.0
