"""Run by tests/test_lorentznet.py in a process with libasan preloaded: the edge kernel built with
-fsanitize=address,undefined against the edge-list reference in float64 (exit status 0 and a last line
saying how many comparisons passed; a sanitizer report aborts the process)."""
from __future__ import annotations

import copy

import torch

from lorentznet_reference import reference_forward
from trigger_kd.models import edge_kernel
from trigger_kd.models.lorentznet import LorentzNet, prepare_batch
from test_lorentznet import jets, rel

passed = 0
for hidden in (10,):  # one build (each costs ~40 s): vector columns [0, 8) and the columns left, [8, 10)
    torch.manual_seed(0)
    new = LorentzNet(n_scalar=2, n_hidden=hidden, n_class=2, n_layers=3, c_weight=0.5, dropout=0.0).double()
    with torch.no_grad():
        for block in new.LGEBs[:-1]:
            block.phi_x[-1].weight *= 1000
    edge_kernel._libs[(hidden, torch.float64)] = edge_kernel._build(hidden, "double", extra=edge_kernel.SANITIZE)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        m, ref = copy.deepcopy(new), copy.deepcopy(new)
        c = jets(8, 12)
        c[3] = c[3, ::-1].copy()  # padding first in one jet
        batch = prepare_batch(c, 12, dtype=torch.float64)
        a, b = m.train()(batch), reference_forward(ref.train(), batch)
        assert rel(a, b) < 1e-12, rel(a, b)
        a.square().sum().backward()
        b.square().sum().backward()
        scale = max(float(q.grad.abs().max()) for q in ref.parameters())
        for (name, p), q in zip(m.named_parameters(), ref.parameters()):
            assert float((p.grad - q.grad).abs().max()) < 1e-12 * scale, name
        with torch.no_grad():
            assert rel(m.eval()(batch), reference_forward(ref.eval(), batch)) < 1e-12
        passed += 1
print(f"sanitized kernel: {passed} comparisons passed")
