"""The one hls4ml configuration path, whatever front end the quantised model comes from.

A front end (:class:`FrontEnd`: QONNX in ``hls.py``, QKeras in ``hls_keras.py``; a Keras-3 HGQ2
front end plugs in the same way) says only what differs between model formats: how hls4ml reads
the model (its ``config_from_*``/``convert_from_*`` pair, and the context it must run in), the
model's input type, its own precision rules and hls4ml passes, and the quantised model's output
of each hls4ml layer. Everything else is written once, here:

- the hls4ml config: granularity ``name``, backend, part, clock, io_type, strategy, reuse factor
  (model and every layer), ``Trace`` on every layer, the input type (``set_input_precision``);
- ``hls.output`` (``outputs.py``): for ``argmax`` / ``softmax`` the hls4ml pass ``AppendClassOutput`` appends a
  Softmax layer ``class_output`` (``implementation: argmax`` / ``stable``) after the model's output;
- ``hls.layer_precision`` overrides, applied by the hls4ml pass ``LayerPrecisionOverrides`` after
  hls4ml's type inference (so any type can be changed), with one error for a layer name the
  hls4ml model does not have (listing those it has) and one for an unknown precision key;
- conversion, the records (``hls_rules.json``, ``hls_config.json``) and the g++ compilation;
- ``first_mismatch_layer``: hls4ml's per-layer trace against the quantised model's output of the
  same layer, matched by hls4ml layer name, in hls4ml's graph order.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from hls4ml.model.optimizer import OptimizerPass

from ..atomic import write_text_atomic
from ..config import HLSConfig, layer_precision_problem
from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from .outputs import CLASS_OUTPUT, OUTPUTS, class_index, class_output_config, one_hot

PROJECT_NAME = "myproject"
FLOW_PREFIX = "trigger_kd:exactness"  # one flow per front end: its own passes, then the overrides
RULES_FILE, CONFIG_FILE = "hls_rules.json", "hls_config.json"


class FirmwareError(TriggerKDError):
    """The hls4ml project could not be built as configured."""


class FrontEnd(ABC):
    """What one model format tells the shared hls4ml path (everything else is in this module)."""

    name: str  # in messages: "QONNX", "QKeras", ...
    passes: tuple[type[OptimizerPass], ...] = ()  # its own hls4ml passes, run before the overrides

    def parsing(self) -> contextlib.AbstractContextManager:
        """The context hls4ml must read, convert, write and trace this model in (e.g. tf_keras seen as keras)."""
        return contextlib.nullcontext()

    @abstractmethod
    def hls4ml_config(self, settings: HLSConfig) -> dict:
        """hls4ml's own config for the model (``config_from_*_model``, granularity ``name``)."""

    @abstractmethod
    def input_precision(self, layers: dict) -> tuple[str, str, str] | None:
        """(input layer name, hls4ml type, where it comes from), or None where hls4ml reads the input
        type from the model itself; anything else double-rounds the input."""

    def precision_rules(self, layers: dict) -> list[str]:
        """The front end's other exactness rules on ``config['LayerName']``; returns their record lines."""
        return []

    @abstractmethod
    def convert(self, **kwargs):
        """``hls4ml.converters.convert_from_*_model(model, **kwargs)``."""

    @abstractmethod
    def reference_outputs(self, hls_model, x: np.ndarray) -> dict[str, np.ndarray]:
        """The quantised model's output of each hls4ml layer it can name (hls4ml layer name -> (rows, ...))."""

    def check_inputs(self, x: np.ndarray) -> None:
        """Refuse inputs the model does not take, before any trace."""


class KerasFrontEnd(FrontEnd):
    """A Keras model (``self.model``: QKeras on tf_keras, or HGQ2 on Keras 3): hls4ml's Keras converter and the
    model's own input shape."""

    model = None

    def convert(self, **kwargs):
        import hls4ml

        return hls4ml.converters.convert_from_keras_model(self.model, **kwargs)

    def check_inputs(self, x: np.ndarray) -> None:
        want_shape = tuple(int(d) for d in self.model.input_shape[1:])
        if x.shape[1:] != want_shape:
            raise TriggerKDError(f"inputs of shape {x.shape[1:]} for a student that takes {want_shape} per jet")


# ----------------------------------------------------------------------------- config rules shared by front ends
def check_precision_keys(overrides: dict) -> None:
    """``hls.layer_precision`` as the config checks it (for settings built without validation)."""
    problem = layer_precision_problem(overrides or {})
    if problem:
        raise TriggerKDError(problem)


def set_input_precision(layers: dict, name: str, hls_type: str, why: str) -> str:
    """The model input takes the type of the model's own input quantiser (hls4ml's default would round twice)."""
    layers.setdefault(name, {}).setdefault("Precision", {})["result"] = hls_type
    return f"input {name}: {hls_type} ({why})"


def set_pooling_precision(layers: dict, name: str, fmt: FixedFormat, n: int) -> str:
    """Global average pooling over ``n`` values of type ``fmt``: accumulator and result hold the exact mean."""
    t = fmt.pool(n).hls_type
    layers.setdefault(name, {}).setdefault("Precision", {}).update(accum=t, result=t)
    return f"pooling {name}: accum/result {t} (mean of {n} x {fmt.hls_type}, exact)"


# ----------------------------------------------------------------------------- the overrides pass and the flow
def _kd(model) -> dict:
    return model.config.config["HLSConfig"]["Model"].setdefault("TriggerKD", {"layer_precision": {}, "applied": []})


class AppendClassOutput(OptimizerPass):
    """``hls.output`` argmax / softmax: a Softmax layer ``class_output`` after the model's one output (its config,
    ``outputs.class_output_config``, is in ``LayerName``: implementation, one-hot or softmax type, trace)."""

    name = "trigger_kd_class_output"

    def match(self, node):
        model = node.model
        return (_kd(model).get("output", "logits") != "logits" and CLASS_OUTPUT not in model.graph
                and any(out in model.outputs for out in node.outputs))

    def transform(self, model, node):
        output = _kd(model)["output"]
        if len(model.outputs) != 1 or len(node.outputs) != 1:
            raise FirmwareError(f"hls.output {output} needs a model with one output; this one has "
                                f"{len(model.outputs)} ({', '.join(model.outputs)}): use hls.output logits")
        var = node.get_output_variable()
        k = int(var.shape[-1])
        if k < 2 or var.size() != k:
            raise FirmwareError(f"hls.output {output} needs K >= 2 class logits in one vector; the model's output "
                                f"{node.name} has shape {list(var.shape)}: use hls.output logits")
        layer = model.make_node("Softmax", CLASS_OUTPUT, {"activation": "softmax", "n_in": k, "axis": -1},
                                [node.outputs[0]])
        model.insert_node(layer)
        impl = layer.get_attr("implementation")
        record_applied(model, f"output {CLASS_OUTPUT}: Softmax implementation {impl} after {node.name} "
                              f"({k} classes, result {layer.get_output_variable().type.precision})")
        return True


def record_applied(model, line: str) -> None:
    """A pass's record line (listed in ``hls_rules.json`` after the config rules)."""
    _kd(model)["applied"].append(line)


class LayerPrecisionOverrides(OptimizerPass):
    """``hls.layer_precision``, applied after hls4ml's type inference so a user can change any type."""

    name = "trigger_kd_layer_precision"

    def match(self, node):
        kd = _kd(node.model)
        return node.name in kd["layer_precision"] and not any(a.startswith(f"override {node.name}.") for a in kd["applied"])

    def transform(self, model, node):
        kd = _kd(model)
        for key, value in kd["layer_precision"][node.name].items():
            precision = model.config.backend.convert_precision_string(value)
            target = node.get_output_variable().type if key == "result" else (
                node.get_attr("accum_t") if key == "accum" else node.weights.get(key))
            if target is None:
                raise TriggerKDError(f"hls.layer_precision: layer {node.name} has no {key}")
            target.update_precision(precision) if key in ("weight", "bias") else setattr(target, "precision", precision)
            kd["applied"].append(f"override {node.name}.{key} = {value}")
        return False  # types only: the graph is unchanged


def exactness_flow(front: FrontEnd) -> str:
    """The flow ``trigger_kd:exactness_<front end>`` (registered once, after ``vivado:optimize``)."""
    from hls4ml.model.flow.flow import get_available_flows, register_flow
    from hls4ml.model.optimizer import get_available_passes, register_pass

    flow = f"{FLOW_PREFIX}_{front.name.lower()}"
    if flow not in get_available_flows():
        passes = (*front.passes, AppendClassOutput, LayerPrecisionOverrides)
        for cls in passes:
            if cls.name not in get_available_passes():
                register_pass(cls.name, cls)
        register_flow(flow, [cls.name for cls in passes], requires=["vivado:optimize"])
    return flow


# ----------------------------------------------------------------------------- config, conversion, build
def hls_config(front: FrontEnd, settings: HLSConfig) -> tuple[dict, list[str]]:
    """The hls4ml config for ``front``'s model and the record lines of the rules applied to it."""
    import hls4ml

    check_precision_keys(settings.layer_precision)
    output = getattr(settings, "output", "logits")
    if output not in OUTPUTS:
        raise TriggerKDError(f"hls.output {output!r}: use one of {', '.join(OUTPUTS)}")
    with contextlib.redirect_stdout(io.StringIO()), front.parsing():
        config = front.hls4ml_config(settings)
    layers = config["LayerName"]
    if output != "logits":
        layers[CLASS_OUTPUT] = class_output_config(output)
    given = front.input_precision(layers)
    rules = ([set_input_precision(layers, *given)] if given else []) + front.precision_rules(layers)
    config["Model"].update(Strategy=settings.strategy, ReuseFactor=settings.reuse_factor)
    for layer_config in layers.values():
        layer_config["Trace"] = True
        if "ReuseFactor" in layer_config:
            layer_config["ReuseFactor"] = settings.reuse_factor
    config["Flows"] = [exactness_flow(front), hls4ml.backends.get_backend(settings.backend).get_default_flow()]
    config["Model"]["TriggerKD"] = {"layer_precision": {k: dict(v) for k, v in settings.layer_precision.items()},
                                    "applied": [], **({"output": output} if output != "logits" else {})}
    return config, rules


def check_override_names(hls_model, overrides: dict) -> None:
    """Every layer ``hls.layer_precision`` names is a layer of the hls4ml model (after hls4ml's fusions)."""
    names = [layer.name for layer in hls_model.get_layers()]
    bad = [k for k in overrides or {} if k not in names]
    if bad:
        raise FirmwareError(f"hls.layer_precision names layer(s) {bad} that the hls4ml model does not have; "
                            f"its layers: {', '.join(names)}")


def convert(front: FrontEnd, prj_dir: Path, settings: HLSConfig) -> tuple[object, list[str], dict]:
    """Convert (not compile): (hls4ml model, rules applied, the config it was converted with)."""
    config, rules = hls_config(front, settings)
    with contextlib.redirect_stdout(io.StringIO()), front.parsing():
        hls_model = front.convert(
            output_dir=str(prj_dir), project_name=PROJECT_NAME, backend=settings.backend, part=settings.part,
            clock_period=settings.clock_period, io_type=settings.io_type, hls_config=copy.deepcopy(config))
    check_override_names(hls_model, settings.layer_precision)
    return hls_model, rules + hls_model.config.config["HLSConfig"]["Model"]["TriggerKD"]["applied"], config


def build(front: FrontEnd, prj_dir: Path, settings: HLSConfig, record_dir: Path | None = None):
    """Convert and compile (g++) the hls4ml project in ``prj_dir``; where ``record_dir`` is given, list the
    rules applied in ``hls_rules.json`` and the config in ``hls_config.json`` there (nothing else is written
    outside the directories the caller names)."""
    hls_model, rules, config = convert(front, Path(prj_dir), settings)
    if record_dir is not None:
        write_text_atomic(Path(record_dir) / RULES_FILE, json.dumps({"rules": rules}, indent=2))
        write_text_atomic(Path(record_dir) / CONFIG_FILE, json.dumps(config, indent=2, default=str))
    with front.parsing():  # a Keras project writer saves the model next to its YAML config
        compile_model(hls_model)
    return hls_model


def compile_model(hls_model) -> None:
    import shutil

    if shutil.which("g++") is None:
        raise FirmwareError("g++ not found: the C-simulation library is compiled with g++ (apt-get install g++)")
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        try:
            hls_model.compile()
        except Exception as exc:
            errors = [line for line in buf.getvalue().splitlines() if "error" in line.lower()][:6]
            raise FirmwareError(f"g++ could not compile the hls4ml project ({exc}); first errors:\n"
                                + "\n".join(errors or buf.getvalue().splitlines()[-6:])) from exc


# ----------------------------------------------------------------------------- diagnosis
def first_mismatch_layer(hls_model, front: FrontEnd, x: np.ndarray) -> str | None:
    """First hls4ml layer (graph order) whose C-simulation trace differs from the quantised model's
    output of the same layer (matched by hls4ml layer name) on the rows of ``x``; None if none differs."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if len(x) == 0:
        return None
    front.check_inputs(x)
    with contextlib.redirect_stdout(io.StringIO()), front.parsing():  # trace() rewrites and recompiles the project
        _, trace = hls_model.trace(x)
    ref = front.reference_outputs(hls_model, x)
    order = [layer.name for layer in hls_model.get_layers() if layer.name in trace and layer.name in ref]
    if not order:
        raise TriggerKDError(
            f"the hls4ml trace ({', '.join(trace) or 'empty'}) shares no layer name with the {front.name} model's "
            f"layer outputs ({', '.join(ref) or 'none'}): was the hls4ml project built from this model?")
    for name in order:
        got = np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1)
        want = np.asarray(ref[name], dtype=np.float64).reshape(len(x), -1)
        if got.shape != want.shape or not np.array_equal(got, want):
            return name
    return _class_output_mismatch(hls_model, trace, ref, len(x))


def _class_output_mismatch(hls_model, trace: dict, ref: dict, n: int) -> str | None:
    """``class_output`` (argmax) when every layer before it agrees but its one-hot word is not the one of the
    argmax of the layer it reads (the model's logits); None otherwise."""
    layer = next((la for la in hls_model.get_layers() if la.name == CLASS_OUTPUT), None)
    if layer is None or layer.get_attr("implementation") != "argmax" or CLASS_OUTPUT not in trace:
        return None
    feeder = next((la.name for la in hls_model.get_layers() if layer.inputs[0] in la.outputs), None)
    if feeder not in ref:
        return None
    logits = np.asarray(ref[feeder], dtype=np.float64).reshape(n, -1)
    got = np.asarray(trace[CLASS_OUTPUT], dtype=np.float64).reshape(n, -1)
    return None if np.array_equal(got, one_hot(class_index(logits), logits.shape[1])) else CLASS_OUTPUT
