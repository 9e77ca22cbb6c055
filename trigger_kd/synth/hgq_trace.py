"""The HGQ2 student's integer form: the da4ml trace of the calibrated quantised model (HGQ2's own tracer, the
student's input bus given), a :class:`~trigger_kd.synth.da4ml_comb.CombNet`. The student stage traces it once and
writes it as ``intnet.json``; the firmware stage (its output LSB) and the open-source route read that file.

:func:`student_intnet` is the integer network of a student of any framework: the adapter's ``IntNet``
(Brevitas, QKeras) or this trace (HGQ2).
"""
from __future__ import annotations

from ..errors import TriggerKDError
from .da4ml_comb import CombNet


def trace_da4ml(model, spec):
    """The calibrated HGQ2 model as da4ml combinational logic (HGQ2's own tracer; the input bus of ``spec``,
    ``cfg.student``, given)."""
    from da4ml.converter import trace_model
    from da4ml.trace import comb_trace

    from ..models.students_hgq import input_kif

    inp, out = trace_model(model, inputs_kif=input_kif(spec))
    return comb_trace(inp, out, keep_dead_inputs=True)


def hgq_intnet(model, spec) -> CombNet:
    """The da4ml trace of the calibrated quantised HGQ2 student (``CombNet``: what the open-source route
    synthesises)."""
    from ..models.students_hgq import input_format, is_quantized, layer_bits

    if not is_quantized(model):
        raise TriggerKDError("the HGQ2 integer form needs the quantised student, not the float twin")
    return CombNet(name=model.name, input_shape=tuple(int(d) for d in model.input_shape[1:]),
                   input_format=input_format(spec), comb=trace_da4ml(model, spec), layers=layer_bits(model))


def student_intnet(backend, model):
    """The quantised student of ``backend`` (the model adapter) as an integer network (its inputs:
    ``backend.intnet_inputs``): ``IntNet`` for Brevitas and QKeras, the da4ml trace for HGQ2."""
    return hgq_intnet(model, backend.s) if backend.framework == "hgq" else backend.intnet(model)
