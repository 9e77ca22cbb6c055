"""QKeras students (MLP and deep set), their float twins, storage and integer form.

Formats follow ``cfg.student`` (:class:`~trigger_kd.config.StudentConfig`), as the Brevitas students do:
input ``quantized_bits(input_bits, input_int_bits)`` (signed fixed<input_bits, input_int_bits+1>),
weights ``quantized_bits(weight_bits, 0)``, bias ``quantized_bits(bias_bits, .)`` with at most
as many fractional bits as the layer's accumulator, ReLU ``quantized_relu(act_bits, act_int_bits)``,
last Dense without activation (logits). Deep set: per-particle ``QConv1D(kernel_size=1)`` on
channels-last (N, P, F), ``GlobalAveragePooling1D``, then the Dense head.

Importing this module selects the legacy Keras (``tf_keras``) that QKeras and hls4ml's Keras-2
converter need: it sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math  # noqa: E402
import warnings  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..errors import TriggerKDError  # noqa: E402
from ..config import StudentConfig  # noqa: E402
from ..data.features import n_features  # noqa: E402
from .intnet import Dense, FixedFormat, IntNet, MeanPool, Quant  # noqa: E402

try:
    import tensorflow as tf  # noqa: E402
    import tf_keras  # noqa: E402
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu  # noqa: E402
    from qkeras.utils import _add_supported_quantized_objects  # noqa: E402
except ImportError as exc:  # pragma: no cover - depends on the install
    raise TriggerKDError(
        f"the QKeras students need the 'qkeras' extra ({exc}); run: pip install -e '.[qkeras]' (or make install)"
    ) from exc

if not issubclass(QDense, tf_keras.layers.Layer):  # pragma: no cover - import-order problem
    raise TriggerKDError(
        "TensorFlow was imported with Keras 3 before trigger_kd.models.students_keras; "
        "set TF_USE_LEGACY_KERAS=1 in the environment (or import this module first)"
    )

PREDICT_BATCH = 4096


# ----------------------------------------------------------------------------- formats
def input_quantizer(spec: StudentConfig):
    return quantized_bits(spec.input_bits, spec.input_int_bits, alpha=1)


def weight_quantizer(spec: StudentConfig):
    return quantized_bits(spec.weight_bits, 0, alpha=1)


def relu_quantizer(spec: StudentConfig):
    return quantized_relu(spec.act_bits, spec.act_int_bits)


def bias_quantizer(spec: StudentConfig, acc_frac_bits: int):
    """Signed ``bias_bits`` with the accumulator's fractional bits (never more; at least 0 integer bits)."""
    integer = max(spec.bias_bits - 1 - acc_frac_bits, 0)
    return quantized_bits(spec.bias_bits, integer, alpha=1)


# ----------------------------------------------------------------------------- models
def build_keras_student(spec: StudentConfig, quantized: bool, seed: int = 0, n_classes: int = 2):
    """The QKeras student (``quantized=True``) or its float twin (same layers, no quantisers).

    Unchecked: build students through ``models.backend``. Initialisers are seeded from ``seed``.
    """
    P, F = spec.n_particles, n_features(spec.jet_pt_feature)
    counter = iter(range(1000))

    def init():
        return tf_keras.initializers.GlorotUniform(seed=seed * 1000 + next(counter))

    def dense(units, name, in_frac, conv=False):
        kw = dict(kernel_initializer=init(), name=name)
        if not quantized:
            return tf_keras.layers.Conv1D(units, 1, **kw) if conv else tf_keras.layers.Dense(units, **kw)
        qkw = dict(kernel_quantizer=weight_quantizer(spec),
                   bias_quantizer=bias_quantizer(spec, in_frac + spec.weight_bits - 1), **kw)
        return QConv1D(units, 1, **qkw) if conv else QDense(units, **qkw)

    def relu(name):
        return QActivation(relu_quantizer(spec), name=name) if quantized else tf_keras.layers.ReLU(name=name)

    shape = (P * F,) if spec.arch == "mlp" else (P, F)
    inp = tf_keras.Input(shape, name="x")
    h = QActivation(input_quantizer(spec), name="in_quant")(inp) if quantized else inp
    frac = spec.input_bits - 1 - spec.input_int_bits
    if spec.arch == "mlp":
        for i, n in enumerate(spec.mlp_hidden, 1):
            h = relu(f"relu{i}")(dense(n, f"fc{i}", frac)(h))
            frac = spec.act_bits - spec.act_int_bits
    else:
        for i, n in enumerate(spec.phi_hidden, 1):
            h = relu(f"phi_relu{i}")(dense(n, f"phi{i}", frac, conv=True)(h))
            frac = spec.act_bits - spec.act_int_bits
        h = tf_keras.layers.GlobalAveragePooling1D(name="pool")(h)
        frac += int(math.ceil(math.log2(P)))
        for i, n in enumerate(spec.rho_hidden, 1):
            h = relu(f"rho_relu{i}")(dense(n, f"rho{i}", frac)(h))
            frac = spec.act_bits - spec.act_int_bits
    out = dense(n_classes, "logits", frac)(h)
    kind = "qkeras" if quantized else "float"
    return tf_keras.Model(inp, out, name=f"{spec.arch}_{kind}")


def keras_predict(model, x: np.ndarray) -> np.ndarray:
    """Logits (N, K) as float64, computed in batches in inference mode."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float64)
    out = [model(x[i:i + PREDICT_BATCH], training=False).numpy() for i in range(0, len(x), PREDICT_BATCH)]
    return np.concatenate(out).astype(np.float64)


# ----------------------------------------------------------------------------- storage
def custom_objects() -> dict:
    co: dict = {}
    _add_supported_quantized_objects(co)
    return co


@contextmanager
def quiet_serialisation():
    """Hide tf_keras' harmless warnings about HDF5 being legacy and QKeras quantisers used as constraints."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*keras.constraints.serialize", category=UserWarning)
        yield


def save_keras_student(model, path: Path) -> None:
    """Write the model as HDF5 (atomically: temporary name in the same folder, then rename)."""
    with atomic_path(path) as tmp, quiet_serialisation():
        model.save(str(tmp), save_format="h5", include_optimizer=False)


def load_keras_student(path: Path):
    path = Path(path)
    if not path.is_file():
        raise TriggerKDError(f"no QKeras student at {path}: run the student stage first")
    return tf_keras.models.load_model(path, custom_objects=custom_objects(), compile=False)


# ----------------------------------------------------------------------------- integer form
def keras_intnet(model) -> IntNet:
    """The quantised QKeras student as an :class:`IntNet` (integer weights, exact formats).

    MLP: ``IntNet.evaluate(x) == keras_predict(model, x)``. Deep set: IntNet's per-particle
    layout is (N, F, P), so ``IntNet.evaluate(x.transpose(0, 2, 1)) == keras_predict(model, x)``.
    """
    layers, input_format, frac = [], None, None
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.InputLayer):
            continue
        if isinstance(layer, QActivation):
            fmt = FixedFormat.from_qkeras(layer.quantizer)
            if input_format is None:
                if fmt.signed is False:
                    raise TriggerKDError("the first QActivation must quantise the input (quantized_bits)")
                input_format = fmt
            else:
                layers.append(Quant(fmt, relu=not fmt.signed))
            frac = fmt.frac_bits
        elif isinstance(layer, (QDense, QConv1D)):
            if input_format is None:
                raise TriggerKDError(f"layer {layer.name} comes before any input quantiser: not a quantised student")
            layers.append(_int_dense(layer, frac))
            frac = frac + layers[-1].weight_frac_bits
        elif isinstance(layer, tf_keras.layers.GlobalAveragePooling1D):
            layers.append(MeanPool(int(layer.input_shape[1])))
            frac += int(math.log2(layers[-1].n))
        else:
            raise TriggerKDError(f"layer {layer.name} ({type(layer).__name__}) has no integer form: not a QKeras student")
    if input_format is None:
        raise TriggerKDError("model has no quantisers: keras_intnet needs the quantised student, not the float twin")
    shape = tuple(int(d) for d in model.input_shape[1:])
    if len(shape) == 2:
        shape = shape[::-1]  # (P, F) channels-last -> IntNet's (F, P)
    return IntNet(input_format, shape, layers, name=model.name)


def _int_dense(layer, in_frac: int) -> Dense:
    wfmt = FixedFormat.from_qkeras(layer.kernel_quantizer_internal)
    w = np.asarray(layer.kernel_quantizer_internal(layer.kernel).numpy(), dtype=np.float64)
    w = w.reshape(-1, w.shape[-1]).T  # Dense (in, out) / Conv1D k=1 (1, in, out) -> (out, in)
    wq = _to_int(w, wfmt.frac_bits, layer.name + " kernel")
    bias, bfrac = None, 0
    if layer.use_bias:
        bfmt = FixedFormat.from_qkeras(layer.bias_quantizer_internal)
        b = np.asarray(layer.bias_quantizer_internal(layer.bias).numpy(), dtype=np.float64)
        bias, bfrac = _to_int(b, bfmt.frac_bits, layer.name + " bias"), bfmt.frac_bits
        if bfrac > in_frac + wfmt.frac_bits:
            raise TriggerKDError(f"{layer.name}: bias has more fractional bits than its accumulator")
    return Dense(wq, wfmt.frac_bits, bias, bfrac, per_particle=isinstance(layer, QConv1D))


def _to_int(v: np.ndarray, frac: int, what: str) -> np.ndarray:
    q = v * 2.0**frac
    if not np.array_equal(q, np.round(q)):
        raise TriggerKDError(f"{what} is not on its 2**-{frac} grid")
    return np.round(q).astype(np.int64)

