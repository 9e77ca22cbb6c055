"""Small QONNX graph transformations that let hls4ml 1.3 convert published models unchanged in meaning.

Each is a qonnx ``Transformation`` that records one line per change in ``self.applied`` (these
lines go to ``hls_rules.json``). They run on the imported graph before qonnx cleanup.
"""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation
from qonnx.transformation.remove import remove_node_and_rewire

_PER_CHANNEL_OPS = ("BatchNormalization", "Relu")  # the same on (N, C) and (N, C, 1, ...)


class _Recorded(Transformation):
    def __init__(self):
        super().__init__()
        self.applied: list[str] = []


class FillQuantDefaults(_Recorded):
    """Quant nodes without ``rounding_mode`` get qonnx's default ``ROUND`` (hls4ml 1.3 reads the attribute)."""

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type == "Quant" and "rounding_mode" not in [a.name for a in node.attribute]:
                node.attribute.append(helper.make_attribute("rounding_mode", "ROUND"))
                self.applied.append(f"{node.name}: rounding_mode ROUND (qonnx's default, written out for hls4ml)")
        return model, False


class FillMaxPoolPads(_Recorded):
    """MaxPool nodes without ``pads`` get explicit zero pads (qonnx's channels-last conversion needs them)."""

    def apply(self, model):
        for node in model.graph.node:
            attrs = {a.name: a for a in node.attribute}
            auto_pad = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
            if node.op_type == "MaxPool" and "pads" not in attrs and auto_pad == "NOTSET":
                node.attribute.append(helper.make_attribute("pads", [0] * 2 * len(attrs["kernel_shape"].ints)))
                self.applied.append(f"{node.name}: explicit zero pads (the ONNX default)")
        return model, False


def _axes(model, node) -> list[int]:
    attr = [list(a.ints) for a in node.attribute if a.name == "axes"]
    if attr:
        return attr[0]
    const = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    return [] if const is None else [int(a) for a in np.asarray(const).reshape(-1)]


class RemoveUnsqueezeSqueezePairs(_Recorded):
    """``Unsqueeze(axes) -> per-channel ops -> Squeeze(axes)`` (PyTorch BatchNorm1d export): drop the pair."""

    def apply(self, model):
        for node in list(model.graph.node):
            if node.op_type != "Unsqueeze" or not _axes(model, node) or min(_axes(model, node)) < 2:
                continue
            chain, nxt = [], model.find_consumers(node.output[0]) or []
            while len(nxt) == 1 and nxt[0].op_type in _PER_CHANNEL_OPS:
                chain.append(nxt[0])
                nxt = model.find_consumers(nxt[0].output[0]) or []
            if len(nxt) == 1 and nxt[0].op_type == "Squeeze" and _axes(model, nxt[0]) == _axes(model, node):
                for n in (node, nxt[0]):
                    remove_node_and_rewire(model, n)
                del model.graph.value_info[:]  # shapes change: cleanup infers them again
                self.applied.append(f"removed {node.name}/{nxt[0].name} around {', '.join(c.name for c in chain)} "
                                    "(hls4ml 1.3 has no Unsqueeze; the ops between are per-channel)")
                return model, True
        return model, False


class RemoveTrailingIdentity(_Recorded):
    """An ``Identity`` producing the graph output is dropped (hls4ml can leave ``myproject()`` without an output)."""

    def apply(self, model):
        outs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if node.op_type == "Identity" and node.output[0] in outs and model.find_producer(node.input[0]) is not None:
                remove_node_and_rewire(model, node)
                self.applied.append(f"removed {node.name} (Identity on the graph output)")
                return model, True
        return model, False


FIXES = (FillQuantDefaults, FillMaxPoolPads, RemoveUnsqueezeSqueezePairs, RemoveTrailingIdentity)


def apply_fixes(model) -> tuple[object, list[str]]:
    """Every fixing transformation, repeated until nothing changes; returns (model, lines applied)."""
    applied = []
    for cls in FIXES:
        t = cls()
        model = model.transform(t)
        applied += t.applied
    return model, applied
