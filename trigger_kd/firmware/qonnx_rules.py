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


class ExplicitPads(_Recorded):
    """Conv/pooling nodes get explicit ``pads`` (zeros, or what ``auto_pad=SAME_*`` means); channels-last needs them."""

    def apply(self, model):
        for node in model.graph.node:
            attrs = {a.name: a for a in node.attribute}
            auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
            if node.op_type not in ("Conv", "MaxPool", "AveragePool") or "pads" in attrs and auto == "NOTSET":
                continue
            kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else \
                list(model.get_tensor_shape(node.input[1])[2:])
            begin, end = [0] * len(kernel), [0] * len(kernel)
            if auto.startswith("SAME"):
                size = model.get_tensor_shape(node.input[0])[2:]
                strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * len(kernel)
                dil = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * len(kernel)
                for i, (n, k, st, d) in enumerate(zip(size, kernel, strides, dil)):
                    total = max((-(-n // st) - 1) * st + (k - 1) * d + 1 - n, 0)
                    small, big = total // 2, total - total // 2
                    begin[i], end[i] = (small, big) if auto == "SAME_UPPER" else (big, small)
            elif auto != "NOTSET":
                continue  # VALID: no padding, nothing to write
            for name in ("pads", "auto_pad"):
                if name in attrs:
                    node.attribute.remove(attrs[name])
            node.attribute.append(helper.make_attribute("pads", begin + end))
            self.applied.append(f"{node.name}: explicit pads {begin + end} (auto_pad {auto})")
        return model, False


class QonnxDomain(_Recorded):
    """Quant nodes of old exports (domain ``onnx.brevitas``/``finn``) get qonnx's domain and its opset import."""

    def apply(self, model):
        domain = "qonnx.custom_op.general"
        for node in model.graph.node:
            if node.op_type in ("Quant", "BipolarQuant", "Trunc") and node.domain != domain:
                self.applied.append(f"{node.name}: domain {node.domain or '(none)'} -> {domain}")
                node.domain = domain
        if self.applied and domain not in [o.domain for o in model.model.opset_import]:
            model.model.opset_import.append(helper.make_opsetid(domain, 1))
        return model, False


class FillTransposePerm(_Recorded):
    """Transpose nodes without ``perm`` get the ONNX default, the reversed axes (hls4ml 1.3 reads the attribute)."""

    def apply(self, model):
        for node in model.graph.node:
            shape = model.get_tensor_shape(node.input[0]) if node.op_type == "Transpose" else None
            if shape and "perm" not in [a.name for a in node.attribute]:
                node.attribute.append(helper.make_attribute("perm", list(range(len(shape)))[::-1]))
                self.applied.append(f"{node.name}: explicit perm {list(range(len(shape)))[::-1]} (the ONNX default)")
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


class RemoveConstantGraphInputs(_Recorded):
    """Graph inputs that are initializers (old opsets list them) or that no node reads: hls4ml takes them as inputs."""

    def apply(self, model):
        used = {i for n in model.graph.node for i in n.input}
        inits = {i.name for i in model.graph.initializer}
        for inp in list(model.graph.input)[1:]:
            if inp.name in inits or inp.name not in used:
                model.graph.input.remove(inp)
                self.applied.append(f"graph input {inp.name} dropped ({'a constant' if inp.name in inits else 'unused'})")
        return model, False


FIXES = (FillQuantDefaults, ExplicitPads, FillTransposePerm, RemoveUnsqueezeSqueezePairs, RemoveTrailingIdentity,
         RemoveConstantGraphInputs)


def apply_fixes(model) -> tuple[object, list[str]]:
    """Every fixing transformation, repeated until nothing changes; returns (model, lines applied)."""
    applied = []
    for cls in FIXES:
        t = cls()
        model = model.transform(t)
        applied += t.applied
    return model, applied
