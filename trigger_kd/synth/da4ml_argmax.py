"""The class index in the RTL (``hls.output: argmax``): a comparator tree appended to the da4ml trace of the logits.

The traced logits (da4ml ``CombLogic``, of an ``IntNet`` or of the HGQ2 student) are replayed on symbolic inputs
of the same formats, and a tree of comparators picks the class: at every node the candidate of the higher class
indices replaces the lower one only when its logit is strictly greater (the sign bit of ``low - high`` drives
da4ml's ``msb_mux`` for both the logit and the index). Every left subtree holds lower indices than its right
sibling, so the winner is the first highest logit: numpy's ``argmax`` and hls4ml's ``softmax_argmax``
(``firmware/outputs.py``, ``TIE_RULE``). The circuit's one output is the index, an unsigned integer of
ceil(log2 K) bits; da4ml pipelines, simulates and writes it like any trace.
"""
from __future__ import annotations

import numpy as np


def _pick(low, high):
    """(value, index) of the higher-index candidate if its value is strictly greater, else of the lower one."""
    (va, ia), (vb, ib) = low, high
    d = va - vb
    if d.low >= 0:  # never below: the lower index always wins (also a tie that is certain, e.g. equal logits)
        return low
    if d.high < 0:  # always below: the higher index always wins
        return high
    return d.msb_mux(vb, va), d.msb_mux(ib, ia)  # d < 0 (sign bit set): high is strictly greater


def argmax_index(values):
    """The da4ml variable holding the index of the first highest of ``values`` (FixedVariables, class order)."""
    from da4ml.trace import FixedVariable

    values = list(values)
    hw = values[0].hwconf
    cands = [(v, FixedVariable.from_const(k, hwconf=hw, _factor=1)) for k, v in enumerate(values)]
    while len(cands) > 1:
        nxt = [_pick(cands[j], cands[j + 1]) for j in range(0, len(cands) - 1, 2)]
        if len(cands) % 2:
            nxt.append(cands[-1])
        cands = nxt
    return cands[0][1]


def class_index_comb(comb):
    """``comb`` (K logits) followed by the comparator tree: a CombLogic with one output, the class index."""
    from da4ml.trace import FixedVariable, FixedVariableArray, comb_trace

    k, i, f = (np.asarray(a) for a in comb.inp_kifs)
    inp = FixedVariableArray.from_kif(k, i, f)
    hw = next(iter(np.ravel(inp._vars))).hwconf
    logits = [v if isinstance(v, FixedVariable) else FixedVariable.from_const(v, hwconf=hw, _factor=1)
              for v in np.ravel(comb(inp))]
    if len(logits) < 2:
        from ..errors import TriggerKDError

        raise TriggerKDError(f"hls.output argmax needs at least 2 class logits; the traced network has {len(logits)}")
    return comb_trace(inp, [argmax_index(logits)], keep_dead_inputs=True)
