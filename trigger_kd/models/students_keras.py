"""QKeras students (MLP and deep set), their float twins, KD training, storage and integer form.

Formats follow :class:`~trigger_kd.models.spec.StudentSpec`, as the Brevitas students do:
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
import time  # noqa: E402
import warnings  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..errors import TriggerKDError  # noqa: E402
from .intnet import Dense, FixedFormat, IntNet, MeanPool, Quant  # noqa: E402
from .spec import StudentSpec  # noqa: E402

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
def input_quantizer(spec: StudentSpec):
    return quantized_bits(spec.input_bits, spec.input_int_bits, alpha=1)


def weight_quantizer(spec: StudentSpec):
    return quantized_bits(spec.weight_bits, 0, alpha=1)


def relu_quantizer(spec: StudentSpec):
    return quantized_relu(spec.act_bits, spec.act_int_bits)


def bias_quantizer(spec: StudentSpec, acc_frac_bits: int):
    """Signed ``bias_bits`` with the accumulator's fractional bits (never more; at least 0 integer bits)."""
    integer = max(spec.bias_bits - 1 - acc_frac_bits, 0)
    return quantized_bits(spec.bias_bits, integer, alpha=1)


# ----------------------------------------------------------------------------- models
def build_keras_student(spec: StudentSpec, quantized: bool, seed: int = 0):
    """The QKeras student (``quantized=True``) or its float twin (same layers, no quantisers).

    Initialisers are seeded from ``seed`` so both twins start from the same weights.
    """
    if spec.arch not in ("mlp", "deepset"):
        raise TriggerKDError(f"unknown student arch {spec.arch!r}: use 'mlp' or 'deepset'")
    P, F = spec.n_particles, spec.n_features
    if spec.arch == "deepset" and quantized and P & (P - 1):
        raise TriggerKDError(
            f"the quantised deep set averages over {P} particles, which is not exact in fixed point; "
            "set student.n_particles to a power of two (8, 16, 32, ...)"
        )
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
    frac = spec.input_frac_bits
    if spec.arch == "mlp":
        for i, n in enumerate(spec.mlp_hidden, 1):
            h = relu(f"relu{i}")(dense(n, f"fc{i}", frac)(h))
            frac = spec.act_frac_bits
    else:
        for i, n in enumerate(spec.phi_hidden, 1):
            h = relu(f"phi_relu{i}")(dense(n, f"phi{i}", frac, conv=True)(h))
            frac = spec.act_frac_bits
        h = tf_keras.layers.GlobalAveragePooling1D(name="pool")(h)
        frac += int(math.ceil(math.log2(P)))
        for i, n in enumerate(spec.rho_hidden, 1):
            h = relu(f"rho_relu{i}")(dense(n, f"rho{i}", frac)(h))
            frac = spec.act_frac_bits
    out = dense(spec.n_classes, "logits", frac)(h)
    kind = "qkeras" if quantized else "float"
    return tf_keras.Model(inp, out, name=f"{spec.arch}_{kind}")


def kd_loss(s_logits, y, t_logits, alpha: float, temperature: float):
    """(1-alpha) CE(y, s) + alpha T^2 KL(softmax(t/T) || softmax(s/T)), batch mean; plain CE if t is None."""
    s_logits = tf.cast(s_logits, tf.float32)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=s_logits))
    if t_logits is None:
        return ce
    T = float(temperature)
    log_ps = tf.nn.log_softmax(s_logits / T, axis=-1)
    log_pt = tf.nn.log_softmax(tf.cast(t_logits, tf.float32) / T, axis=-1)
    kl = tf.reduce_mean(tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1))
    return (1.0 - alpha) * ce + alpha * T * T * kl


def train_keras_student(model, x, y, t_logits, xv, yv, settings, progress: bool = False) -> dict:
    """Train with Adam(W) and the KD loss (plain CE when ``t_logits`` is None); keep the best-val-accuracy weights."""
    from tqdm import tqdm

    if settings.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
        except RuntimeError:
            pass  # the TensorFlow runtime has started already; its thread pool cannot be resized
    tf_keras.utils.set_random_seed(settings.seed)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    teacher = None if t_logits is None else np.asarray(t_logits, dtype=np.float32)
    if teacher is not None and len(teacher) != len(x):
        raise TriggerKDError(f"{len(teacher)} teacher logits for {len(x)} training jets: re-run the teacher stage")
    if settings.weight_decay > 0:
        opt = tf_keras.optimizers.AdamW(learning_rate=settings.lr, weight_decay=settings.weight_decay)
    else:
        opt = tf_keras.optimizers.Adam(learning_rate=settings.lr)
    alpha, T = float(settings.alpha), float(settings.temperature)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, tb):
        with tf.GradientTape() as tape:
            s = model(xb, training=True)
            loss = kd_loss(s, yb, tb if teacher is not None else None, alpha, T)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(s, axis=-1, output_type=tf.int32), yb), tf.float32))

    rng = np.random.default_rng(settings.seed)
    history, best_acc, best_epoch, best_weights = [], -1.0, 0, None
    t0 = time.perf_counter()
    for epoch in tqdm(range(1, settings.epochs + 1), desc="train (qkeras)", disable=not progress):
        order = rng.permutation(len(x))
        loss_sum, correct = 0.0, 0.0
        for start in range(0, len(x), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            tb = teacher[idx] if teacher is not None else np.zeros((len(idx), 2), np.float32)
            loss, ok = step(x[idx], y[idx], tb)
            loss_sum += float(loss) * len(idx)
            correct += float(ok)
        row = {"epoch": epoch, "train_loss": loss_sum / max(len(x), 1), "train_accuracy": correct / max(len(x), 1)}
        if xv is not None and len(xv):
            sv = keras_predict(model, xv)
            row["val_loss"] = float(kd_loss(sv, np.asarray(yv), None, 0.0, 1.0))
            row["val_accuracy"] = float(np.mean(np.argmax(sv, axis=1) == np.asarray(yv)))
        else:
            row["val_accuracy"] = row["train_accuracy"]
        history.append(row)
        if row["val_accuracy"] > best_acc:
            best_acc, best_epoch = row["val_accuracy"], epoch
            best_weights = [w.copy() for w in model.get_weights()]
    if best_weights is not None:
        model.set_weights(best_weights)
    return {"epochs": settings.epochs, "best_epoch": best_epoch, "best_val_accuracy": best_acc,
            "train_seconds": time.perf_counter() - t0, "history": history}


def keras_predict(model, x: np.ndarray) -> np.ndarray:
    """Logits (N, 2) as float64, computed in batches in inference mode."""
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


__all__ = [
    "build_keras_student", "train_keras_student", "kd_loss", "keras_predict", "save_keras_student",
    "load_keras_student", "keras_intnet", "custom_objects", "tf_keras",
]
