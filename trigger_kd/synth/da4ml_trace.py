"""Trace an integer network (``IntNet``) with da4ml into a pipelined fixed-point circuit.

Dense layers become constant-matrix-vector products (da4ml's CMVM), biases constant
adds, the mean over 2**k particles a sum times 2**-k (exact), and each ``Quant`` a ReLU
(if set) followed by round-half-to-even and saturation. da4ml rounds only by truncation
('TRN') or half up ('RND'), so half-to-even is built from truncation:
``floor(x + half - lsb_in + lsb_in * b)`` where ``b`` is the bit of weight ``2**-f`` of
``x``, which breaks ties towards the even neighbour exactly as ``IntNet`` does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np

from ..errors import TriggerKDError
from ..models.intnet import Dense, FixedFormat, IntNet, MeanPool, Quant


@dataclass
class Traced:
    comb: object  # da4ml CombLogic
    pipeline: object  # da4ml Pipeline
    top: str  # Verilog top module name

    @property
    def stages(self) -> int:
        return len(self.pipeline.solutions)

    @property
    def cost_lut(self) -> float:
        """da4ml's own LUT estimate of the whole circuit."""
        return float(self.comb.cost)

    @property
    def register_bits(self) -> int:
        """Flip-flops of the pipelined Verilog da4ml writes: every stage's input register and the output register
        (da4ml.codegen pipeline_logic_gen, one register layer); Yosys may trim constant bits."""
        from da4ml.types import minimal_kif

        def bits(qints) -> int:
            return int(sum(sum(minimal_kif(q)) for q in qints))

        return sum(bits(sol.inp_qint) for sol in self.pipeline.solutions) + bits(self.pipeline.out_qint)


def _map(x, fn):
    """Apply ``fn`` to every FixedVariable of a FixedVariableArray."""
    from da4ml.trace import FixedVariableArray

    out = np.empty(x.shape, dtype=object)
    for idx, v in np.ndenumerate(x._vars):
        out[idx] = fn(v)
    return FixedVariableArray(out, x.solver_options, hwconf=x.hwconf)


def _quantize_var(v, fmt: FixedFormat):
    """One variable -> fmt with round half to even and saturation (exactly ``IntNet``'s Quant)."""
    from da4ml.trace import FixedVariable

    k, i, f = fmt.kif
    if v.low == v.high:  # a constant: round it here, in exact arithmetic
        n = int((Decimal(v.low) * (Decimal(2) ** f)).to_integral_value(rounding=ROUND_HALF_EVEN))
        n = min(max(n, fmt.int_min), fmt.int_max)
        return FixedVariable.from_const(Decimal(n) * Decimal(2) ** -f, hwconf=v.hwconf)
    _, _, f_in = v.kif
    if f >= f_in:  # no fractional bits dropped: saturation only
        return v.quantize(k, i, f, "SAT", "TRN")
    b = v.quantize(0, 1 - f, f, "WRAP", "TRN")  # the bit of weight 2**-f (value 0 or 2**-f)
    y = v + (2.0 ** (-f - 1) - 2.0**-f_in) + b * 2.0 ** (f - f_in)
    return y.quantize(k, i, f, "SAT", "TRN")


def apply_intnet(net: IntNet, x):
    """Run ``net`` on a symbolic input array of shape ``net.input_shape``."""
    for n, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            w = layer.weight.T.astype(np.float64) * 2.0**-layer.weight_frac_bits  # (in, out)
            b = None if layer.bias is None else layer.bias.astype(np.float64) * 2.0**-layer.bias_frac_bits
            if layer.per_particle:  # (F, P) -> (out, P), the same weights on every particle
                x = (x.T @ w)
                x = (x + b if b is not None else x).T
            else:
                x = x.reshape(-1) @ w
                x = x + b if b is not None else x
        elif isinstance(layer, MeanPool):
            x = np.sum(x, axis=-1) * 2.0 ** -int(np.log2(layer.n))
        elif isinstance(layer, Quant):
            if layer.relu:
                x = x.relu()
            x = _map(x, lambda v, fmt=layer.fmt: _quantize_var(v, fmt))
        else:
            raise TriggerKDError(f"layer {n}: da4ml tracing does not know integer-network layer {layer!r}")
    return x


def verilog_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "student"
    return s if s[0].isalpha() else f"m_{s}"


def logits_comb(net: IntNet):
    """The network's K outputs as da4ml combinational logic (the HGQ2 student, ``CombNet``, is traced already)."""
    from da4ml.trace import FixedVariableArray, comb_trace

    if hasattr(net, "comb"):  # synth/da4ml_comb.py: the HGQ2 student
        return net.comb
    k, i, f = net.input_format.kif
    shape = tuple(net.input_shape)
    inp = FixedVariableArray.from_kif(np.full(shape, k), np.full(shape, i), np.full(shape, f))
    out = apply_intnet(net, inp)
    return comb_trace(inp, out, keep_dead_inputs=True)  # unused inputs keep their port slot


def trace(net: IntNet, latency_cutoff: float, output: str = "logits") -> Traced:
    """IntNet (or CombNet) -> da4ml combinational logic and its pipeline (``latency_cutoff`` per stage); with
    ``output`` argmax the circuit ends in the comparator tree of ``da4ml_argmax.py`` and outputs the class index."""
    from da4ml.trace import to_pipeline

    comb = logits_comb(net)
    if output == "argmax":
        from .da4ml_argmax import class_index_comb

        comb = class_index_comb(comb)
    elif output != "logits":
        raise TriggerKDError(f"the open-source route outputs the logits or the class index (argmax), not {output!r}")
    pipe = to_pipeline(comb, latency_cutoff, verbose=False)
    return Traced(comb=comb, pipeline=pipe, top=verilog_name(net.name))


def grid_inputs(net: IntNet, x: np.ndarray) -> np.ndarray:
    """Float inputs -> the exact input-grid values the circuit sees, flattened per jet."""
    q = net.quantize_input(np.asarray(x, dtype=np.float64).reshape((len(x), *net.input_shape)))
    return (q * 2.0**-net.input_format.frac_bits).reshape(len(x), -1)


def interpreter_predict(traced: Traced, net: IntNet, x: np.ndarray) -> np.ndarray:
    """da4ml's bit-exact C++ interpreter on float inputs (quantised to the input grid first)."""
    return np.asarray(traced.comb.predict(grid_inputs(net, x), n_threads=1), dtype=np.float64)


def write_verilog(traced: Traced, rtl_dir: Path, part: str, clock_period: float):
    """Pipelined Verilog (plus da4ml's Vivado project script and constraints) into ``rtl_dir``."""
    from da4ml.codegen import VerilogModel

    model = VerilogModel(traced.pipeline, traced.top, Path(rtl_dir), part_name=part, clock_period=clock_period)
    model.write()
    return model
