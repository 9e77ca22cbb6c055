"""A quantised student as an integer network: the framework-independent fixed-point reference.

Every value is an integer ``q`` with a number of fractional bits ``f`` (real value ``q * 2**-f``).
Dense layers multiply integer weights by integer activations exactly (no rounding); only
``Quant`` layers round (half to even, as Brevitas/torch ``round`` and hls4ml ``RND_CONV``) and
saturate. Means over a power-of-two number of particles are exact (they only add fractional bits).

This is what the open-source synthesis route traces into RTL (da4ml) and what the RTL
simulation is compared with; ``evaluate`` is bit-exact with the quantised student.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat


@dataclass
class Quant:
    fmt: FixedFormat
    relu: bool = False  # clamp at zero before quantising (QuantReLU)
    kind: str = "quant"


@dataclass
class Dense:
    weight: np.ndarray  # (out, in) int64
    weight_frac_bits: int
    bias: np.ndarray | None  # (out,) int64 or None
    bias_frac_bits: int = 0
    per_particle: bool = False  # deep set phi: same weights on every particle (input (F, P))
    kind: str = "dense"


@dataclass
class MeanPool:
    n: int  # particles averaged (a power of two: the mean is then exact, it only adds fractional bits)
    kind: str = "mean_pool"

    def __post_init__(self):
        if self.n < 1 or self.n & (self.n - 1):
            raise TriggerKDError(f"mean over {self.n} particles is not exact in fixed point: use a power of two")


@dataclass
class IntNet:
    input_format: FixedFormat
    input_shape: tuple[int, ...]  # per jet: (F*P,) for the MLP, (F, P) for the deep set
    layers: list = field(default_factory=list)
    name: str = "student"

    # ----------------------------------------------------------------- evaluation
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs -> integers on the input grid (round half to even, saturate)."""
        return _round_clip(np.asarray(x, dtype=np.float64) * 2.0**self.input_format.frac_bits, self.input_format)

    def evaluate_int(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Float inputs (N, *input_shape) -> (integer outputs (N, C), their fractional bits)."""
        q = self.quantize_input(x).astype(np.int64)
        f = self.input_format.frac_bits
        for layer in self.layers:
            q, f = _apply(layer, q, f)
        return q, f

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        q, f = self.evaluate_int(x)
        return q.astype(np.float64) * 2.0**-f

    @property
    def output_frac_bits(self) -> int:
        f = self.input_format.frac_bits
        for layer in self.layers:
            f = _frac_after(layer, f)
        return f

    def layer_table(self) -> list[dict]:
        """Per-layer fixed-point formats, for reports and hls4ml checks (``student/quant_layers.json``)."""
        rows = [{"layer": "input", "type": self.input_format.hls_type}]
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Quant):
                rows.append({"layer": f"{i}:quant{'+relu' if layer.relu else ''}", "type": layer.fmt.hls_type})
            elif isinstance(layer, Dense):
                rows.append({"layer": f"{i}:dense{'(per particle)' if layer.per_particle else ''}",
                             "shape": list(layer.weight.shape), "weight_frac_bits": layer.weight_frac_bits,
                             "max_abs_weight_int": int(np.abs(layer.weight).max()) if layer.weight.size else 0,
                             "zero_weights": float((layer.weight == 0).mean())})
            else:
                rows.append({"layer": f"{i}:mean_pool", "n": layer.n})
        return rows

    # ----------------------------------------------------------------- storage
    def to_dict(self) -> dict:
        layers = []
        for layer in self.layers:
            d = {}
            for k, v in asdict(layer).items():
                d[k] = v.tolist() if isinstance(v, np.ndarray) else v
            layers.append(d)
        return {"name": self.name, "input_format": asdict(self.input_format),
                "input_shape": list(self.input_shape), "layers": layers}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def from_dict(cls, d: dict) -> "IntNet":
        layers = []
        for ld in d["layers"]:
            kind = ld["kind"]
            if kind == "quant":
                layers.append(Quant(FixedFormat(**ld["fmt"]), relu=ld["relu"]))
            elif kind == "dense":
                layers.append(Dense(np.asarray(ld["weight"], dtype=np.int64), ld["weight_frac_bits"],
                                    None if ld["bias"] is None else np.asarray(ld["bias"], dtype=np.int64),
                                    ld["bias_frac_bits"], ld["per_particle"]))
            elif kind == "mean_pool":
                layers.append(MeanPool(ld["n"]))
            else:
                raise ValueError(f"unknown integer-network layer kind {kind!r}")
        return cls(FixedFormat(**d["input_format"]), tuple(d["input_shape"]), layers, d.get("name", "student"))

    @classmethod
    def load(cls, path: Path) -> "IntNet":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _round_clip(v: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    return np.clip(np.round(v), fmt.int_min, fmt.int_max)  # np.round: half to even


def _shift_round_half_even(q: np.ndarray, shift: int) -> np.ndarray:
    """Integer q * 2**-shift rounded half to even (shift > 0), exactly in integers."""
    floor = q >> shift
    rem = q - (floor << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & (floor & 1 == 1))
    return floor + up.astype(np.int64)


def _frac_after(layer, f: int) -> int:
    if isinstance(layer, Quant):
        return layer.fmt.frac_bits
    if isinstance(layer, Dense):
        return f + layer.weight_frac_bits
    if isinstance(layer, MeanPool):
        return f + int(np.log2(layer.n))
    raise TypeError(layer)


def _apply(layer, q: np.ndarray, f: int) -> tuple[np.ndarray, int]:
    if isinstance(layer, Quant):
        if layer.relu:
            q = np.maximum(q, 0)
        shift = f - layer.fmt.frac_bits
        if shift > 0:
            q = _shift_round_half_even(q, shift)
        elif shift < 0:
            q = q << (-shift)
        return np.clip(q, layer.fmt.int_min, layer.fmt.int_max), layer.fmt.frac_bits
    if isinstance(layer, Dense):
        w = layer.weight
        if layer.per_particle:  # (N, F, P) -> (N, out, P)
            acc = np.einsum("oi,nip->nop", w, q)
        else:
            acc = q.reshape(len(q), -1) @ w.T
        fa = f + layer.weight_frac_bits
        if layer.bias is not None:
            if layer.bias_frac_bits > fa:
                raise ValueError(f"bias has {layer.bias_frac_bits} fractional bits, more than the accumulator's {fa}")
            b = layer.bias << (fa - layer.bias_frac_bits)
            acc = acc + (b[None, :, None] if layer.per_particle else b[None, :])
        return acc, fa
    if isinstance(layer, MeanPool):
        return q.sum(axis=-1), f + int(np.log2(layer.n))
    raise TypeError(f"unknown layer {layer!r}")
