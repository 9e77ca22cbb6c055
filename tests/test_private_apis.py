"""Canaries: the private (undocumented) parts of hls4ml, qonnx and da4ml that trigger_kd relies on.

Each test fails with a message naming the version pinned in pyproject.toml, so an upgrade that
changes one of them says what to look at instead of breaking bit-exactness somewhere downstream.
An installed version other than the pin is only a warning (VersionDriftWarning, in pytest's summary).
"""
from __future__ import annotations

import inspect
import re
import sys
import warnings
from importlib.metadata import version

import pytest

from conftest import REPO


def pinned(pkg: str) -> str:
    m = re.search(rf'"{pkg}(?:\[[^\]]*\])?==([^"]+)"', (REPO / "pyproject.toml").read_text())
    return m.group(1) if m else "?"


def canary(pkg: str, what: str, ok: bool) -> None:
    assert ok, (f"{pkg} {version(pkg)} changed a private API trigger_kd relies on ({what}); the code was written "
                f"against {pkg}=={pinned(pkg)}: adapt trigger_kd (see the module named here) or pin {pkg}=={pinned(pkg)}")


def _params(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


# ----------------------------------------------------------------------------- hls4ml
def test_hls4ml_flows_and_passes():
    from hls4ml.model.flow.flow import flow_map, get_flow, register_flow
    from hls4ml.model.optimizer import OptimizerPass, register_pass

    canary("hls4ml", "firmware/hls_config.py: register_pass(name, cls) and register_flow(name, optimizers, requires)",
           {"name", "opt_cls"} <= _params(register_pass) and {"name", "optimizers", "requires"} <= _params(register_flow))
    canary("hls4ml", "firmware/hls_config.py, rules.py: OptimizerPass.match(node) / transform(model, node)",
           {"node"} <= _params(OptimizerPass.match) and {"model", "node"} <= _params(OptimizerPass.transform))
    canary("hls4ml", "firmware/hls_config.py: flow 'vivado:optimize' runs type inference before the templates",
           "vivado:optimize" in flow_map and "infer_precision_types" in get_flow("vivado:optimize").optimizers
           and "vivado:optimize" in get_flow("vitis:ip").requires)


def test_hls4ml_graph_and_type_api(tmp_path):
    import contextlib
    import io

    import qonnx_graphs as tg
    from trigger_kd.firmware.hls import convert_qonnx
    from trigger_kd.config import HLSConfig

    path = tmp_path / "tiny.onnx"
    tg.dense().save(str(path))
    with contextlib.redirect_stderr(io.StringIO()):
        hls_model, _ = convert_qonnx(path, tmp_path / "prj", HLSConfig())
    dense = next(la for la in hls_model.get_layers() if la.class_name == "Dense")
    hls_cfg = hls_model.config.config["HLSConfig"]
    canary("hls4ml", "firmware/hls_config.py: hls_config['Model'] (our TriggerKD entry) and 'Flows' reach the ModelGraph",
           "TriggerKD" in hls_cfg.get("Model", {}) and hls_cfg.get("Flows", [None])[0] == "trigger_kd:exactness_qonnx")
    canary("hls4ml", "firmware/rules.py, hls_config.py: ModelGraph.remove_node, backend.convert_precision_string",
           callable(getattr(hls_model, "remove_node", None))
           and callable(getattr(hls_model.config.backend, "convert_precision_string", None)))
    canary("hls4ml", "firmware/hls_config.py: layer.get_attr('accum_t').precision, weights[...].update_precision",
           hasattr(dense.get_attr("accum_t"), "precision") and callable(getattr(dense.weights["weight"], "update_precision", None)))
    prec = dense.get_output_variable().type.precision
    canary("hls4ml", "firmware/import_qonnx.py: precision.width / .integer", (prec.width, prec.integer) > (0, 0))
    canary("hls4ml", "firmware/hls_config.py: ModelGraph.trace(x) -> (output, {layer: array})",
           callable(getattr(hls_model, "trace", None)) and list(_params(hls_model.trace)) == ["x"])


# ----------------------------------------------------------------------------- qonnx
def test_qonnx_model_wrapper_and_exec():
    import numpy as np
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.base import Transformation
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean

    import qonnx_graphs as tg

    mw = tg.dense()
    canary("qonnx", "firmware/rules.py, hls.py: ModelWrapper.find_producer / find_consumers / get_initializer / get_tensor_shape",
           all(callable(getattr(mw, f, None)) for f in ("find_producer", "find_consumers", "get_initializer", "get_tensor_shape")))
    canary("qonnx", "firmware/qonnx_export.py: ConvertToChannelsLastAndClean(make_input_channels_last=...)",
           "make_input_channels_last" in _params(ConvertToChannelsLastAndClean.__init__))
    canary("qonnx", "firmware/qonnx_rules.py: Transformation.apply(model) -> (model, changed)",
           "model" in _params(Transformation.apply))
    ctx = execute_onnx(mw, {"global_in": np.zeros((1, 4), np.float32)}, return_full_exec_context=True)
    canary("qonnx", "firmware/hls.py: execute_onnx(..., return_full_exec_context=True) returns every tensor",
           {"global_in", mw.graph.output[0].name} <= set(ctx))


# ----------------------------------------------------------------------------- da4ml
def test_da4ml_trace_internals():
    import numpy as np
    from da4ml.trace import FixedVariable, FixedVariableArray

    x = FixedVariableArray.from_kif(np.ones(2), np.full(2, 3), np.full(2, 2))
    v = x._vars[0] if hasattr(x, "_vars") else None
    canary("da4ml", "synth/da4ml_trace.py: FixedVariableArray._vars / .solver_options / .hwconf",
           v is not None and hasattr(x, "solver_options") and hasattr(x, "hwconf"))
    canary("da4ml", "synth/da4ml_trace.py: FixedVariable .low / .high / .kif / .quantize(k, i, f, overflow, round)",
           all(hasattr(v, a) for a in ("low", "high", "kif")) and tuple(v.kif) == (1, 3, 2)
           and {"overflow_mode", "round_mode"} <= _params(v.quantize))
    canary("da4ml", "synth/da4ml_trace.py: FixedVariable.from_const(value, hwconf=...)",
           "hwconf" in _params(FixedVariable.from_const))


class VersionDriftWarning(UserWarning):
    """An installed version other than the one pinned in pyproject.toml."""


def warn_on_drift(pkg: str) -> None:
    if version(pkg) != pinned(pkg):
        warnings.warn(f"{pkg} {version(pkg)} is installed, {pkg}=={pinned(pkg)} is pinned in pyproject.toml: the "
                      f"canaries in this file were written against {pinned(pkg)}; read any failure of theirs with "
                      f"that in mind", VersionDriftWarning, stacklevel=2)


@pytest.mark.parametrize("pkg", ["hls4ml", "qonnx", "da4ml"])
def test_installed_versions_are_the_pinned_ones(pkg):
    """Not a failure of trigger_kd: a warning (in pytest's summary) that says which version the canaries above
    were written against when another one is installed. The canaries themselves fail only on a real change."""
    warn_on_drift(pkg)


def test_version_drift_warns_and_does_not_fail(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "pinned", lambda pkg: "0.0.1")
    with pytest.warns(VersionDriftWarning, match=r"qonnx .* is installed, qonnx==0\.0\.1 is pinned"):
        warn_on_drift("qonnx")
