"""The model adapter of a student, whichever framework (Brevitas, QKeras or HGQ2).

Each adapter builds the quantised student and its float twin, makes one optimiser step on a loss it is handed
(the loss itself, KD plus SEAL, is ``train/steps.py``'s; the twins' training is ``train/twins.py``'s), stores,
loads and runs them, and gives the integer network (Brevitas and QKeras: ``IntNet``; the HGQ2 student's is its
da4ml trace, ``synth/hgq_trace.py``). It imports nothing above ``models/`` (``tests/test_layering.py``): what
hls4ml converts and the hls4ml build are ``firmware/student_export.py`` and ``firmware/from_student.py``.
The input layout is decided here and nowhere else:
``layout`` is what the model takes ('flat' (N, P*F) for the MLP; 'NFP' (N, F, P) for the Brevitas
deep set, 'NPF' (N, P, F) for the QKeras one); hls4ml takes 'NPF' from both frameworks (qonnx
makes the Brevitas graph channels-last), the integer network 'NFP'.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.features import StudentFeatures, student_input
from ..errors import TriggerKDError
from ..rundir import SCRATCH_MODEL as SCRATCH  # the quantised student trained without the teacher (scratch twin)
from ..rundir import STUDENT_MODELS as NAMES  # the quantised student and its float twin (file stems)
from .keras_runtime import keras_runtime, tf_runtime


class StudentBackend(ABC):
    framework: str
    suffix: str  # file suffix of a stored model
    tools: tuple[str, ...]  # the Python distributions it runs (part of the stages' stamps)
    deepset_layout: str

    def __init__(self, s, n_classes: int = 2):  # ``cfg.student``: arch, framework, power-of-two deep set checked at load
        self.s = s
        self.n_classes = n_classes  # the tagger's K outputs (2: binary; data.classes: K)
        self.layout = "flat" if s.arch == "mlp" else self.deepset_layout
        self.features = StudentFeatures.of(s)  # the config's one way into data/features.py; stages use this one

    # ---- inputs: the one place that knows layouts
    def inputs(self, constituents) -> np.ndarray:
        """Canonical constituents -> the exact array the student takes."""
        return self.inputs_from_features(self.features(constituents))

    def inputs_from_features(self, feats) -> np.ndarray:
        """Features (N, P, F) -> the exact array the student takes."""
        return student_input(feats, self.layout)

    def to_layout(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Student inputs -> 'NFP' (integer network) or 'NPF' (hls4ml); flat inputs stay as they are."""
        return np.ascontiguousarray(x.transpose(0, 2, 1)) if self.layout not in ("flat", layout) else x

    # ---- training, storage
    calibrates = False  # HGQ2: a quantised model is calibrated before ``save`` on what ``set_calibration`` gave

    def ebops(self, model) -> float | None:
        """The model's resource proxy during training (HGQ2's EBOPs), or None where the framework has none."""
        return None

    def twins(self, scratch: bool = False) -> tuple:
        """(quantised student, float twin[, scratch twin]), the twins starting from the student's initial weights."""
        models = [self.build(quantized=True), self.build(quantized=False)] + ([self.build(quantized=True)] if scratch else [])
        for twin in models[1:]:
            self.set_weights(twin, self.get_weights(models[0]))
        return tuple(models)

    def load(self, student_dir: Path, name: str = "student"):
        path = Path(student_dir) / f"{name}{self.suffix}"
        if not path.is_file():
            raise TriggerKDError(f"no {self.framework} student at {path}: run the student stage first")
        return self._load(path, quantized=name != NAMES[1])

    def output_lsb(self, model) -> float:
        """Grid of the quantised student's logits (the last layer's accumulator LSB)."""
        return 2.0 ** -self.intnet(model).output_frac_bits

    def firmware_inputs(self, x: np.ndarray) -> np.ndarray:
        return self.to_layout(x, "NPF")

    def intnet_inputs(self, x: np.ndarray) -> np.ndarray:
        return self.to_layout(x, "NFP")

    @abstractmethod
    def build(self, quantized: bool): ...

    @abstractmethod
    def runtime(self) -> dict:
        """The CPU thread pools training runs with and, for TensorFlow, its graph options (the student metrics'
        ``runtime``)."""

    @abstractmethod
    def get_weights(self, model): ...

    @abstractmethod
    def set_weights(self, model, weights) -> None: ...

    @abstractmethod
    def make_step(self, model, loss) -> Callable:
        """(x, y, teacher logits or None, lr, SEAL inputs or None) -> (loss, the lr the optimiser used): one AdamW
        step on ``loss`` (``train/steps.py``'s ``KDLoss``: its ``torch`` or ``tf`` form, called on the logits of x
        and of its boosted copy, one forward pass for both)."""

    @abstractmethod
    def save(self, model, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path, quantized: bool): ...

    @abstractmethod
    def predict(self, model, x: np.ndarray) -> np.ndarray:
        """Logits (N, K), float64."""

    @abstractmethod
    def intnet(self, model):
        """The quantised student as an integer network (its inputs: ``intnet_inputs``)."""


class BrevitasBackend(StudentBackend):
    framework, suffix, deepset_layout = "brevitas", ".pt", "NFP"
    tools = ("brevitas", "onnx", "onnxruntime", "qonnx")

    def runtime(self) -> dict:
        import torch

        return {"torch": torch.get_num_threads()}

    def build(self, quantized: bool):
        import torch

        from .students import build_student

        torch.manual_seed(self.s.seed)
        return build_student(self.s, quantized=quantized, n_classes=self.n_classes)

    def get_weights(self, model):
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def set_weights(self, model, weights) -> None:
        """Same parameter names in student and twin (the quantisers' own state is not copied)."""
        model.load_state_dict({k: weights[k] for k in model.state_dict()})

    def make_step(self, model, loss):
        import torch

        if self.s.threads > 0:
            torch.set_num_threads(self.s.threads)
        opt = torch.optim.AdamW(model.parameters(), lr=self.s.lr, weight_decay=self.s.weight_decay)

        def step(xb, yb, tb, lr, xs=None):
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            out = model(torch.from_numpy(xb if xs is None else np.concatenate([xb, xs])))  # one pass for both
            value = loss.torch(out, len(xb), yb, tb, boosted=xs is not None)
            opt.zero_grad()
            value.backward()
            opt.step()
            return value.item(), opt.param_groups[0]["lr"]
        return step

    def save(self, model, path: Path) -> None:
        import torch

        torch.save(model.state_dict(), path)

    def _load(self, path: Path, quantized: bool):
        import torch

        state = torch.load(path, weights_only=True)
        # a stored student has its own K: the output count of its last layer (the last weight matrix or 1x1 kernel)
        last = [v for k, v in state.items() if k.endswith(".weight") and v.ndim >= 2][-1]
        model = type(self)(self.s, int(last.shape[0])).build(quantized=quantized)
        model.load_state_dict(state)
        return model.eval()

    def predict(self, model, x):
        from .students import predict_logits

        return predict_logits(model, x)

    def intnet(self, model):
        from .students import student_intnet

        return student_intnet(model)


class QKerasBackend(StudentBackend):
    framework, suffix, deepset_layout = "qkeras", ".h5", "NPF"
    tools = ("tensorflow", "tf-keras", "qkeras")

    def runtime(self) -> dict:
        from .students_keras import tf

        return tf_runtime(tf)

    def build(self, quantized: bool):
        from .students_keras import build_keras_student, tf, tf_keras

        keras_runtime(tf, self.s)  # before the first model starts TensorFlow's runtime
        tf_keras.utils.set_random_seed(self.s.seed)
        return build_keras_student(self.s, quantized=quantized, seed=self.s.seed, n_classes=self.n_classes)

    def get_weights(self, model):
        return [w.copy() for w in model.get_weights()]

    def set_weights(self, model, weights) -> None:
        model.set_weights(weights)  # QDense/QConv1D and Dense/Conv1D: the same kernels and biases

    def make_step(self, model, loss):
        from .students_keras import tf, tf_keras

        opt = tf_keras.optimizers.AdamW(learning_rate=self.s.lr, weight_decay=self.s.weight_decay, epsilon=1e-8)
        _step = _keras_step(tf, model, opt, loss, model_losses=False)

        def step(xb, yb, tb, lr, xs=None):
            opt.learning_rate = lr
            return float(_step(xb, yb.astype(np.int32), tb, xs)), float(opt.learning_rate.numpy())
        return step

    def save(self, model, path: Path) -> None:
        from .students_keras import save_keras_student

        save_keras_student(model, path)

    def _load(self, path: Path, quantized: bool = True):
        from .students_keras import load_keras_student

        return load_keras_student(path)

    def predict(self, model, x):
        from .students_keras import keras_predict

        return keras_predict(model, x)

    def intnet(self, model):
        from .students_keras import keras_intnet

        return keras_intnet(model)


class HGQBackend(StudentBackend):
    """HGQ2 (Keras 3): learned per-weight / per-activation bit widths, EBOPs penalty ``student.ebops_beta``.
    Every quantised model is calibrated (``trace_minmax`` on the training inputs) before it is saved; its
    integer form is the da4ml trace of the model itself (``synth/hgq_trace.py``), not an adapter's ``IntNet``."""

    framework, suffix, deepset_layout = "hgq", ".keras", "NPF"
    tools = ("tensorflow", "keras", "hgq2", "da4ml")
    _calibration: np.ndarray | None = None

    def runtime(self) -> dict:
        from .students_hgq import tf

        return tf_runtime(tf)

    def build(self, quantized: bool):
        from .students_hgq import build_hgq_student, tf

        keras_runtime(tf, self.s)  # before the first model starts TensorFlow's runtime
        return build_hgq_student(self.s, quantized=quantized, seed=self.s.seed, n_classes=self.n_classes)

    calibrates = True

    def set_calibration(self, x: np.ndarray) -> None:
        """The inputs every quantised model is calibrated on before it is saved (train/twins.py: the training and
        transfer inputs)."""
        self._calibration = x

    def get_weights(self, model):
        """Every variable (quantiser bit widths too, for early stopping) and, by layer, kernel and bias (twins)."""
        return {"all": [v.numpy().copy() for v in model.weights],
                "dense": {layer.name: (layer.kernel.numpy().copy(), layer.bias.numpy().copy())
                          for layer in model.layers if hasattr(layer, "kernel")}}

    def set_weights(self, model, weights) -> None:
        if [tuple(v.shape) for v in model.weights] == [w.shape for w in weights["all"]]:
            for v, w in zip(model.weights, weights["all"]):
                v.assign(w)
            return
        for layer in model.layers:  # the float twin: the same kernels and biases, no quantisers
            if layer.name in weights["dense"]:
                kernel, bias = weights["dense"][layer.name]
                layer.kernel.assign(kernel)
                layer.bias.assign(bias)

    def ebops(self, model) -> float | None:
        """HGQ2's effective bit operations of the quantised layers as of the last training step (None: float twin)."""
        values = [float(np.asarray(layer.ebops)) for layer in model.layers if hasattr(layer, "ebops")]
        return sum(values) if values else None

    def make_step(self, model, loss):
        from .students_hgq import keras, tf

        opt = keras.optimizers.AdamW(learning_rate=self.s.lr, weight_decay=self.s.weight_decay, epsilon=1e-8)
        _step = _keras_step(tf, model, opt, loss, model_losses=True)  # + EBOPs * beta, bit widths

        def step(xb, yb, tb, lr, xs=None):
            opt.learning_rate.assign(lr)
            return float(_step(xb, yb.astype(np.int32), tb, xs)), float(np.asarray(opt.learning_rate))
        return step

    def save(self, model, path: Path) -> None:
        from .students_hgq import calibrate, is_quantized, save_hgq_student

        if is_quantized(model) and self._calibration is not None:
            calibrate(model, self._calibration)
        save_hgq_student(model, path)

    def _load(self, path: Path, quantized: bool = True):
        from .students_hgq import load_hgq_student

        return load_hgq_student(path)

    def predict(self, model, x):
        from .students_hgq import hgq_predict

        return hgq_predict(model, x)

    def intnet_inputs(self, x: np.ndarray) -> np.ndarray:
        return x  # the da4ml trace takes the model's own layout ('flat' or 'NPF'), not IntNet's 'NFP'

    def intnet(self, model):
        raise TriggerKDError("the HGQ2 student's integer network is its da4ml trace, not an IntNet: "
                             "trigger_kd.synth.hgq_trace.student_intnet")


def _keras_step(tf, model, opt, loss, model_losses: bool):
    """The compiled optimiser step of a Keras student (QKeras on tf_keras, HGQ2 on Keras 3) on ``loss.tf`` of the
    logits of ``xb`` and of the boosted views ``xs`` (one forward pass for both), plus ``model.losses`` where
    ``model_losses`` (HGQ2's EBOPs and bit-width terms); returns the loss it differentiated. ``tf``: TensorFlow as
    the framework's module imported it (``keras_runtime`` ran in the adapter's ``build``, before the model existed)."""

    @tf.function(reduce_retracing=True)
    def _step(xb, yb, tb, xs):
        with tf.GradientTape() as tape:
            out = model(xb if xs is None else tf.concat([xb, xs], 0), training=True)
            value = loss.tf(out, tf.shape(xb)[0], yb, tb, boosted=xs is not None)
            if model_losses and model.losses:
                value = value + tf.add_n(model.losses)
        grads = tape.gradient(value, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return value

    return _step


def backend_class(framework: str) -> type[StudentBackend]:
    return {b.framework: b for b in (BrevitasBackend, QKerasBackend, HGQBackend)}[framework]


def student_backend(s, n_classes: int = 2) -> StudentBackend:
    """The backend for ``cfg.student`` (its ``framework`` key) with ``n_classes`` outputs (loading a stored model
    needs no count: it has its own)."""
    return backend_class(s.framework)(s, n_classes)

