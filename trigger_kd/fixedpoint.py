"""One fixed-point type for every representation the project meets.

``FixedFormat`` is read from a QONNX ``Quant`` node, a QKeras quantiser, an hls4ml type string
``fixed<W,I,RND,SAT>`` or a scale; it gives the hls4ml string, da4ml's (signed, integer, fractional)
triple, the integer range, and the one pooling rule (the exact mean of 2**k values).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import TriggerKDError

QONNX_ROUNDING = {"ROUND": "RND_CONV", "FLOOR": "TRN", "ROUND_TO_ZERO": "TRN_ZERO"}  # Quant attribute -> ap_fixed
_HLS = re.compile(r"^\s*(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,\s*\d+\s*)?>\s*$")


class NotFixedPoint(TriggerKDError):
    """A quantiser that no ap_fixed type represents (non-power-of-two scale, zero point, ...)."""


@dataclass(frozen=True)
class FixedFormat:
    signed: bool
    bits: int  # total bits, sign included
    frac_bits: int  # value = integer * 2**-frac_bits
    rounding: str = "RND_CONV"  # ap_fixed quantisation mode: RND_CONV = half to even (Brevitas/torch/QKeras)
    saturation: str = "SAT"  # ap_fixed overflow mode

    @property
    def integer(self) -> int:  # integer bits as hls4ml counts them (sign included)
        return self.bits - self.frac_bits

    @property
    def int_min(self) -> int:
        return -(1 << (self.bits - 1)) + (self.saturation == "SAT_SYM") if self.signed else 0

    @property
    def int_max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def hls_type(self) -> str:  # plain ``fixed<W,I>`` (hls4ml's default TRN/WRAP modes)
        return f"{'fixed' if self.signed else 'ufixed'}<{self.bits},{self.integer}>"

    @property
    def hls(self) -> str:  # with rounding and saturation: ``fixed<W,I,RND_CONV,SAT>``
        return f"{self.hls_type[:-1]},{self.rounding},{self.saturation}>"

    @property
    def kif(self) -> tuple[int, int, int]:  # da4ml's (signed, integer bits without the sign, fractional bits)
        return int(self.signed), self.integer - int(self.signed), self.frac_bits

    def pool(self, n: int) -> "FixedFormat":
        """Signed type holding the sum and the exact mean of ``n`` (a power of two) values of this type."""
        k = int(math.ceil(math.log2(max(n, 1))))
        integer = self.integer + k + (0 if self.signed else 1)
        return FixedFormat(True, integer + self.frac_bits + k, self.frac_bits + k, "TRN", "WRAP")

    def grid(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Values drawn uniformly from every point of this type's grid."""
        return rng.integers(self.int_min, self.int_max + 1, size=shape).astype(np.float64) * 2.0 ** -self.frac_bits

    @classmethod
    def from_hls(cls, text: str) -> "FixedFormat":
        m = _HLS.match(str(text))
        if not m:
            raise NotFixedPoint(f"{text!r} is not an hls4ml fixed-point type like 'fixed<16,6>' or 'ufixed<8,3,RND_CONV,SAT>'")
        u, width, integer, rnd, sat = m.groups()
        return cls(not u, int(width), int(width) - int(integer), rnd or "TRN", sat or "WRAP")

    @classmethod
    def from_scale(cls, signed: bool, bits: int, scale, what: str, rounding: str = "RND_CONV",
                   saturation: str = "SAT") -> "FixedFormat":
        """A quantiser with ``bits`` bits and step ``scale`` (one power of two, else :class:`NotFixedPoint`)."""
        s = np.asarray(scale, dtype=np.float64).reshape(-1)
        frac = -math.log2(float(s[0])) if s.size and s[0] > 0 else math.nan
        if not (np.all(s == s[0]) and abs(frac - round(frac)) < 1e-9):
            shown = f"{s[0]:g}" if s.size == 1 else f"{s.size} scales {s.min():g}..{s.max():g}"
            raise NotFixedPoint(f"{what}: scale {shown} is not one power of two; no ap_fixed type represents it exactly")
        return cls(bool(signed), int(bits), int(round(frac)), rounding, saturation)

    @classmethod
    def from_quant(cls, model_wrapper, node) -> "FixedFormat":
        """The type of a QONNX ``Quant`` node (constant power-of-two scale, zero offset)."""
        scale, zeropt, bits = (model_wrapper.get_initializer(node.input[i]) for i in (1, 2, 3))
        if scale is None or bits is None or zeropt is None:
            raise NotFixedPoint(f"Quant node {node.name}: scale, zero point or bit width is not a constant")
        if np.any(np.asarray(zeropt) != 0):
            raise NotFixedPoint(f"Quant node {node.name}: non-zero zero point; no ap_fixed type represents it")
        attrs = {a.name: a for a in node.attribute}
        signed = bool(attrs["signed"].i) if "signed" in attrs else True
        narrow = bool(attrs["narrow"].i) if "narrow" in attrs else False
        rounding = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
        return cls.from_scale(signed, int(np.max(bits)), scale, f"Quant node {node.name}",
                              QONNX_ROUNDING.get(rounding, "RND_CONV"), "SAT_SYM" if narrow and signed else "SAT")

    @classmethod
    def from_qkeras(cls, q) -> "FixedFormat":
        """``quantized_bits`` / ``quantized_relu`` (alpha 1, no sigmoid) -> its fixed-point format."""
        cfg = q.get_config()
        bits, integer = int(cfg["bits"]), int(cfg["integer"])
        name = type(q).__name__
        if name == "quantized_bits":
            if cfg.get("alpha") not in (None, 1, 1.0) or cfg.get("symmetric") or not cfg.get("keep_negative", True):
                raise NotFixedPoint(f"quantiser {q} is not a plain signed fixed-point type (use alpha=1, symmetric=0)")
            return cls(True, bits, bits - 1 - integer)
        if name == "quantized_relu":
            if cfg.get("use_sigmoid") or cfg.get("negative_slope"):
                raise NotFixedPoint(f"quantiser {q} is not a plain quantised ReLU")
            return cls(False, bits, bits - integer)
        raise NotFixedPoint(f"quantiser {name} has no fixed-point form here (use quantized_bits or quantized_relu)")
