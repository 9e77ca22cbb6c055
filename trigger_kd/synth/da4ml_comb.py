"""A student already traced by da4ml (HGQ2: per-weight and per-activation formats that ``IntNet`` cannot hold),
in the place of the integer network: the student stage writes it as ``intnet.json`` (``"kind": "da4ml_comb"``)
and the open-source route reads either form through :func:`load_integer_network`.

It offers what ``synth/opensource.py`` uses of an ``IntNet``: ``name``, ``input_shape``, ``input_format``,
``quantize_input``, ``evaluate`` (da4ml's bit-exact interpreter, checked there against the student's own
test logits), ``output_frac_bits``, ``trace`` (the pipeline at a stage cut) and ``layer_table``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat

KIND = "da4ml_comb"


def _quantize(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Float -> integers on ``fmt``'s grid: RND (half up) or RND_CONV (half to even), then saturation."""
    v = np.asarray(x, dtype=np.float64) * 2.0**fmt.frac_bits
    if fmt.rounding == "RND":
        q = np.floor(v + 0.5)
    elif fmt.rounding == "RND_CONV":
        q = np.round(v)
    elif fmt.rounding == "TRN":
        q = np.floor(v)
    else:
        raise TriggerKDError(f"input rounding {fmt.rounding} is not one the open-source route reproduces")
    return np.clip(q, fmt.int_min, fmt.int_max)


@dataclass
class CombNet:
    name: str
    input_shape: tuple[int, ...]
    input_format: FixedFormat
    comb: object  # da4ml CombLogic
    layers: list[dict] = field(default_factory=list)  # per-layer formats for quant_layers.json

    @property
    def output_frac_bits(self) -> int:
        return int(np.max(np.asarray(self.comb.out_kifs)[2]))

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        return _quantize(x, self.input_format)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """da4ml's bit-exact interpreter on float inputs (quantised to the input bus first); (N, outputs)."""
        x = np.asarray(x, dtype=np.float64)
        grid = (self.quantize_input(x) * 2.0**-self.input_format.frac_bits).reshape(len(x), -1)
        if len(grid) == 0:
            return np.zeros((0, len(np.asarray(self.comb.out_kifs)[2])), np.float64)
        return np.asarray(self.comb.predict(grid, n_threads=1), dtype=np.float64).reshape(len(x), -1)

    def trace(self, latency_cutoff: float):
        from da4ml.trace import to_pipeline

        from .da4ml_trace import Traced, verilog_name

        return Traced(comb=self.comb, pipeline=to_pipeline(self.comb, latency_cutoff, verbose=False),
                      top=verilog_name(self.name))

    def layer_table(self) -> list[dict]:
        return list(self.layers)

    def save(self, path: Path) -> None:
        from da4ml.types import JSONEncoder

        f = self.input_format
        data = {"kind": KIND, "name": self.name, "input_shape": list(self.input_shape),
                "input_format": {"signed": f.signed, "bits": f.bits, "frac_bits": f.frac_bits,
                                 "rounding": f.rounding, "saturation": f.saturation},
                "layers": self.layers, "comb": json.loads(json.dumps(self.comb, cls=JSONEncoder))}
        write_text_atomic(Path(path), json.dumps(data))

    @classmethod
    def from_dict(cls, data: dict) -> "CombNet":
        from da4ml.types import CombLogic

        return cls(name=data["name"], input_shape=tuple(data["input_shape"]),
                   input_format=FixedFormat(**data["input_format"]), comb=CombLogic.deserialize(data["comb"]),
                   layers=list(data.get("layers", [])))


def load_integer_network(path: Path):
    """``intnet.json`` as written by the student stage: an ``IntNet``, or a :class:`CombNet` (HGQ2)."""
    from ..models.intnet import IntNet

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TriggerKDError(f"cannot read the student's integer network {path} ({exc}); rerun the student stage") from exc
    if isinstance(data, dict) and data.get("kind") == KIND:
        return CombNet.from_dict(data)
    return IntNet.load(path)
