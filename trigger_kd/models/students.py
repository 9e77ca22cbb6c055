"""Brevitas students: an MLP over flattened constituents and a deep set.

Only power-of-two fixed-point quantisers, quantised biases and an input quantiser, so
that every value is an integer on a known grid (the condition for bit-exact firmware,
see TOOLCHAIN_FACTS):
- input: signed ``fixed<input_bits, input_int_bits+1>``, constant scale, round half to even, saturate;
- weights: signed ``weight_bits``, per-tensor power-of-two scale from the weights' range;
- biases: ``bias_bits`` on the accumulator grid (input scale x weight scale);
- hidden activations: ReLU to unsigned ``ufixed<act_bits, act_int_bits>``, constant scale;
- deep set pooling: mean over a power-of-two number of particles, kept exact
  (``ufixed<act_bits + log2 P, act_int_bits>``);
- output: the last layer's accumulator (logits), no rounding.

The float twin (``quantized=False``) has the same layers with plain PyTorch modules.
The deep set uses the formulation that converts through QONNX to hls4ml: per-particle
``QuantConv1d(kernel_size=1)`` on (B, F, P) and ``AdaptiveAvgPool1d(1)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..config import StudentConfig
from ..data.features import n_features
from .intnet import Dense, FixedFormat, IntNet, MeanPool, Quant

N_CLASSES = 2


# ----------------------------------------------------------------------------- quantisers
def _quantizers():
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint,
                                Uint8ActPerTensorFixedPoint)
    from brevitas.quant.scaled_int import IntBias

    return ScalingImplType, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, IntBias


def input_quant(spec: StudentConfig):
    import brevitas.nn as qnn

    const, signed_act, _, _, _ = _quantizers()
    top = 2.0 ** spec.input_int_bits
    return qnn.QuantIdentity(act_quant=signed_act, bit_width=spec.input_bits, scaling_impl_type=const.CONST,
                             max_val=top, min_val=-top, return_quant_tensor=True)


def relu_quant(spec: StudentConfig, bits: int | None = None):
    import brevitas.nn as qnn

    const, _, unsigned_act, _, _ = _quantizers()
    bits = bits or spec.act_bits
    # max_val / (2**bits - 1) must be the power of two 2**-frac exactly
    frac = bits - spec.act_int_bits
    return qnn.QuantReLU(act_quant=unsigned_act, bit_width=bits, scaling_impl_type=const.CONST,
                         max_val=(2**bits - 1) * 2.0**-frac, return_quant_tensor=True)


def pool_quant(spec: StudentConfig):
    """Identity on the exact mean of ReLU outputs (log2 P more fractional bits): no rounding."""
    import brevitas.nn as qnn

    const, _, unsigned_act, _, _ = _quantizers()
    bits = spec.act_bits + int(math.log2(spec.n_particles))
    frac = bits - spec.act_int_bits
    return qnn.QuantIdentity(act_quant=unsigned_act, bit_width=bits, scaling_impl_type=const.CONST,
                             max_val=(2**bits - 1) * 2.0**-frac, signed=False, return_quant_tensor=True)


def qlinear(spec: StudentConfig, n_in: int, n_out: int):
    import brevitas.nn as qnn

    _, _, _, wq, bq = _quantizers()
    return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=wq, weight_bit_width=spec.weight_bits,
                           bias_quant=bq, bias_bit_width=spec.bias_bits, return_quant_tensor=True)


def qconv(spec: StudentConfig, n_in: int, n_out: int):
    import brevitas.nn as qnn

    _, _, _, wq, bq = _quantizers()
    return qnn.QuantConv1d(n_in, n_out, kernel_size=1, bias=True, weight_quant=wq, weight_bit_width=spec.weight_bits,
                           bias_quant=bq, bias_bit_width=spec.bias_bits, return_quant_tensor=True)


# ----------------------------------------------------------------------------- models
def _stack(spec: StudentConfig, quantized: bool, n_in: int, widths, n_out: int | None = None,
           per_particle: bool = False) -> tuple[list[nn.Module], int]:
    """[layer, ReLU] per hidden width (+ a last layer to ``n_out`` logits); 1x1 convolutions per particle."""
    def layer(a, b):
        if per_particle:
            return qconv(spec, a, b) if quantized else nn.Conv1d(a, b, kernel_size=1)
        return qlinear(spec, a, b) if quantized else nn.Linear(a, b)

    mods: list[nn.Module] = []
    for width in widths:
        mods += [layer(n_in, width), relu_quant(spec) if quantized else nn.ReLU()]
        n_in = width
    if n_out is not None:
        mods.append(layer(n_in, n_out))
    return mods, n_in


class MLPStudent(nn.Module):
    """(B, P*F) flattened constituents -> hidden layers with ReLU -> K logits."""

    def __init__(self, spec: StudentConfig, quantized: bool = True, n_classes: int = N_CLASSES):
        super().__init__()
        self.spec, self.quantized = spec, quantized
        first = input_quant(spec) if quantized else nn.Identity()
        n_in = spec.n_particles * n_features(spec.jet_pt_feature)
        layers, _ = _stack(spec, quantized, n_in, spec.mlp_hidden, n_classes)
        self.net = nn.Sequential(first, *layers)

    def forward(self, x):
        return _dequantised(self.net(x))


class DeepSetStudent(nn.Module):
    """(B, F, P) -> per-particle phi (1x1 conv + ReLU) -> mean over particles -> rho -> K logits."""

    def __init__(self, spec: StudentConfig, quantized: bool = True, n_classes: int = N_CLASSES):
        super().__init__()
        self.spec, self.quantized = spec, quantized
        first = input_quant(spec) if quantized else nn.Identity()
        phi, n_in = _stack(spec, quantized, n_features(spec.jet_pt_feature), spec.phi_hidden, per_particle=True)
        self.phi = nn.Sequential(first, *phi)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.pool_q = pool_quant(spec) if quantized else nn.Identity()
        rho, _ = _stack(spec, quantized, n_in, spec.rho_hidden, n_classes)
        self.rho = nn.Sequential(*rho)

    def forward(self, x):
        h = self.phi(x)
        h = self.pool(_dequantised(h))
        h = self.pool_q(torch.flatten(h, 1))
        return _dequantised(self.rho(h))


def _dequantised(t):
    """A Brevitas QuantTensor's values as a plain tensor (plain tensors pass through)."""
    return t.value if hasattr(t, "value") and not isinstance(t, torch.Tensor) else t


def build_student(spec: StudentConfig, quantized: bool = True, n_classes: int = N_CLASSES) -> nn.Module:
    """Unchecked: build students through ``models.backend`` (which checks arch and particle count)."""
    return (MLPStudent if spec.arch == "mlp" else DeepSetStudent)(spec, quantized, n_classes)


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Logits (N, K) as float64 (the quantised student's outputs are exact on their grid)."""
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))).double()
           for i in range(0, len(x), batch_size)]
    if not out:
        last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d))][-1]
        return np.zeros((0, last.out_features if isinstance(last, nn.Linear) else last.out_channels))
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------- fixed-point view
def _act_format(module) -> FixedFormat:
    proxy = module.act_quant
    return FixedFormat.from_scale(proxy.is_signed, int(proxy.bit_width()), float(proxy.scale().detach()), "activation")


def _dense(layer, in_frac: int, per_particle: bool, bias_bits: int) -> Dense:
    qw = layer.quant_weight()
    wf = FixedFormat.from_scale(True, int(qw.bit_width), qw.scale.detach().numpy(), "weight").frac_bits
    w = qw.int().detach().to(torch.int64).numpy()
    if w.ndim == 3:  # conv1d kernel 1: (out, in, 1)
        w = w[:, :, 0]
    bias, bf = None, 0
    if layer.bias is not None:
        bf = in_frac + wf
        bias = np.rint(layer.bias.detach().double().numpy() * 2.0**bf).astype(np.int64)
        lim = 2 ** (bias_bits - 1)
        bias = np.clip(bias, -lim, lim - 1)
    return Dense(w.astype(np.int64), wf, bias, bf, per_particle)


def student_intnet(model: nn.Module) -> IntNet:
    """The quantised student as an integer network (bit-exact with its forward pass)."""
    if not getattr(model, "quantized", False):
        raise ValueError("student_intnet needs the quantised student, not the float twin")
    spec: StudentConfig = model.spec
    model.eval()
    layers = []
    mods = list(model.net) if spec.arch == "mlp" else list(model.phi)
    in_fmt = _act_format(mods[0])
    f = in_fmt.frac_bits
    per_particle = spec.arch == "deepset"

    def walk(seq, f, per_particle):
        for m in seq:
            name = type(m).__name__
            if name in ("QuantLinear", "QuantConv1d"):
                d = _dense(m, f, per_particle, spec.bias_bits)
                layers.append(d)
                f = f + d.weight_frac_bits
            elif name in ("QuantReLU", "QuantIdentity"):
                fmt = _act_format(m)
                layers.append(Quant(fmt, relu=name == "QuantReLU"))
                f = fmt.frac_bits
        return f

    f = walk(mods[1:], f, per_particle)
    if spec.arch == "deepset":
        layers.append(MeanPool(spec.n_particles))
        fmt = _act_format(model.pool_q)
        layers.append(Quant(fmt, relu=False))
        walk(list(model.rho), fmt.frac_bits, False)
    f = n_features(spec.jet_pt_feature)
    shape = (spec.n_particles * f,) if spec.arch == "mlp" else (f, spec.n_particles)
    return IntNet(in_fmt, shape, layers, name=f"{spec.arch}_student")

