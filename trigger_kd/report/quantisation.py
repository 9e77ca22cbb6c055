"""The report's Quantisation section: the deployed student's per-layer number formats (``student/quant_layers.json``).

Uniform-bit students (Brevitas, QKeras) list each layer's fixed-point type, the weights' fractional bits, the
largest integer weight and the share of zero weights; HGQ2 students (learned bit widths) list each layer's learned
weight and input bit widths (mean / max), the weights pruned to zero bits and the layer's EBOPs, with the total.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..rundir import QUANT_LAYERS, STUDENT
from .tables import fmt, md_table


def quantisation_block(run_dir: Path) -> dict | None:
    """The per-layer table as the student stage wrote it; None for a run without it (or an unreadable file)."""
    path = Path(run_dir) / STUDENT / QUANT_LAYERS
    try:
        layers = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(layers, list) or not all(isinstance(r, dict) for r in layers):
        return None
    learned = any("ebops" in r for r in layers)
    block: dict = {"learned_bit_widths": learned, "layers": layers}
    if learned:
        block["ebops_total"] = sum(float(r.get("ebops") or 0) for r in layers)
    return block


def _uniform_row(r: dict) -> dict:
    shape = r.get("shape")
    return {"layer": r.get("layer"), "format": r.get("type") or (f"weights 2^-{r['weight_frac_bits']} steps"
                                                                  if r.get("weight_frac_bits") is not None else ""),
            "shape (out x in)": " x ".join(map(str, shape)) if shape else "",
            "max |weight| (integer)": fmt(r.get("max_abs_weight_int"), "d") if "max_abs_weight_int" in r else "",
            "zero weights": f"{100 * r['zero_weights']:.1f} %" if r.get("zero_weights") is not None else ""}


def _learned_row(r: dict) -> dict:
    return {"layer": r.get("layer"), "units": fmt(r.get("units"), "d"),
            "weight bits mean / max": f"{fmt(r.get('weight_bits_mean'), '.2f')} / {fmt(r.get('weight_bits_max'), '.0f')}",
            "weights at 0 bits": fmt(r.get("weights_zero_bits"), "d"),
            "input bits mean / max": f"{fmt(r.get('input_bits_mean'), '.2f')} / {fmt(r.get('input_bits_max'), '.0f')}",
            "EBOPs": fmt(r.get("ebops"), ".0f")}


def quantisation_markdown(block: dict | None) -> list[str]:
    if not block:
        return []
    if block["learned_bit_widths"]:
        head = (f"Learned bit widths (HGQ2): per layer, the weights' and inputs' bit widths after training and "
                f"calibration; weights at 0 bits are pruned. Total EBOPs {fmt(block.get('ebops_total'), '.0f')} "
                "(HGQ2's resource estimate the `student.ebops_beta` penalty acts on).")
        rows = [_learned_row(r) for r in block["layers"]]
    else:
        head = "Uniform bit widths: each layer's fixed-point format and the share of its weights quantised to zero."
        rows = [_uniform_row(r) for r in block["layers"]]
    return ["### Quantisation (student/quant_layers.json)", "", head, "", md_table(rows), ""]
