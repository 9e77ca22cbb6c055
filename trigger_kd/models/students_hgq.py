"""HGQ2 students (MLP and deep set): learned per-weight and per-activation bit widths, their float twin, storage and
calibration (their da4ml trace, the open-source route's integer form, is ``synth/hgq_trace.py``).

Formats follow ``cfg.student`` (:class:`~trigger_kd.config.StudentConfig`): the input is quantised to the
student's fixed input bus, signed ``fixed<input_bits, input_int_bits + 1>``, rounded half up (HGQ2/da4ml
``RND``; da4ml traces no half-to-even) and saturated, not trained. Every ``QDense`` learns the bit widths of
its weights (start ``weight_bits``) and of its input activations (start ``act_bits`` fractional bits), with
HGQ2's EBOPs penalty scaled by ``student.ebops_beta`` in the loss. Hidden layers end in ReLU; the last
``QDense`` gives the logits (its accumulator, no output quantiser).

Keras 3 and tf_keras in one process: HGQ2 imports ``keras`` (Keras 3, TensorFlow backend); QKeras uses
``tf_keras``. ``TF_USE_LEGACY_KERAS=1`` only changes what ``tf.keras`` is, which neither HGQ2 nor hls4ml's
Keras-3 converter uses, so it is set here too (then a QKeras student in the same process still gets tf_keras).
HGQ2 activations wrap (``WRAP``) until :func:`calibrate` sets their integer bits from training inputs
(``trace_minmax``): every model saved by the student stage is calibrated.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..config import StudentConfig  # noqa: E402
from ..data.features import n_features  # noqa: E402
from ..errors import TriggerKDError  # noqa: E402
from ..fixedpoint import FixedFormat  # noqa: E402

if getattr(sys.modules.get("keras"), "__version__", "3").split(".")[0] != "3":  # pragma: no cover
    raise TriggerKDError("trigger_kd.models.students_hgq imported while 'keras' is tf_keras (inside the QKeras "
                         "hls4ml parsing context): import it outside that block")
try:
    import keras  # noqa: E402
    import tensorflow as tf  # noqa: E402
    from hgq.config import LayerConfigScope, QuantizerConfig  # noqa: E402
    from hgq.layers import QDense, Quantizer  # noqa: E402
except ImportError as exc:  # pragma: no cover - depends on the install
    raise TriggerKDError(f"the HGQ2 students need hgq2 and Keras 3 ({exc}); run: make install") from exc

if keras.backend.backend() != "tensorflow":  # pragma: no cover - set by the environment
    raise TriggerKDError(f"KERAS_BACKEND is {keras.backend.backend()!r}: the HGQ2 students run on Keras 3's "
                         "tensorflow backend (unset KERAS_BACKEND or set it to tensorflow)")

PREDICT_BATCH = 4096
ROUNDING = "RND"  # the input quantiser: half up (HGQ2 and da4ml agree on it; da4ml traces no RND_CONV)


def input_format(spec: StudentConfig) -> FixedFormat:
    """The student's input bus: signed fixed<input_bits, input_int_bits + 1>, half up, saturated."""
    return FixedFormat(True, spec.input_bits, spec.input_bits - 1 - spec.input_int_bits, rounding=ROUNDING)


def input_kif(spec: StudentConfig) -> tuple[int, int, int]:
    """(keep sign, integer bits without the sign, fractional bits) of the input bus, as HGQ2/da4ml count them."""
    return 1, spec.input_int_bits, spec.input_bits - 1 - spec.input_int_bits


def build_hgq_student(spec: StudentConfig, quantized: bool, seed: int = 0, n_classes: int = 2):
    """The HGQ2 student (``quantized=True``) or its float twin (Keras 3 layers, same names and kernels).

    MLP: (N, P*F) -> QDense ... -> logits. Deep set: (N, P, F) -> per-particle QDense (the same weights on every
    particle: Dense on the last axis) -> global average pooling over the P particles (exact: P is a power of
    two) -> QDense head -> logits."""
    from hgq.layers import QGlobalAveragePooling1D

    keras.utils.set_random_seed(seed)
    P, F = spec.n_particles, n_features(spec.jet_pt_feature)
    k, i, f = input_kif(spec)
    iq = QuantizerConfig("kif", "datalane", k0=k, i0=i, f0=f, round_mode=ROUNDING, overflow_mode="SAT",
                         trainable=False)
    wq = QuantizerConfig("kbi", "weight", b0=spec.weight_bits, i0=0)
    aq = QuantizerConfig("kif", "datalane", i0=spec.act_int_bits, f0=spec.act_bits - spec.act_int_bits)
    counter = iter(range(1000))

    def init():
        return keras.initializers.GlorotUniform(seed=seed * 1000 + next(counter))

    if spec.arch == "mlp":
        inp = keras.Input((P * F,), name="x")
        sizes, names = [*spec.mlp_hidden, n_classes], [f"fc{j}" for j in range(1, len(spec.mlp_hidden) + 1)] + ["logits"]
        pool_after = None
    else:
        inp = keras.Input((P, F), name="x")
        sizes = [*spec.phi_hidden, *spec.rho_hidden, n_classes]
        names = ([f"phi{j}" for j in range(1, len(spec.phi_hidden) + 1)]
                 + [f"rho{j}" for j in range(1, len(spec.rho_hidden) + 1)] + ["logits"])
        pool_after = len(spec.phi_hidden) - 1
    h = inp
    first_iq = iq
    if quantized and spec.learn_input_bits:  # the fixed bus, then the first layer's own learned input widths
        h = Quantizer(iq, name="input_bus")(h)
        first_iq = QuantizerConfig("kif", "datalane", k0=k, i0=i, f0=f, round_mode=ROUNDING, overflow_mode="SAT",
                                   trainable=True)
    with LayerConfigScope(beta0=float(spec.ebops_beta), enable_ebops=True):
        for j, (n, name) in enumerate(zip(sizes, names)):
            act = None if name == "logits" else "relu"
            if quantized:
                h = QDense(n, activation=act, name=name, kernel_initializer=init(), kq_conf=wq,
                           iq_conf=first_iq if j == 0 else aq)(h)
            else:
                h = keras.layers.Dense(n, activation=act, name=name, kernel_initializer=init())(h)
            if j == pool_after:
                h = (QGlobalAveragePooling1D(name="pool") if quantized
                     else keras.layers.GlobalAveragePooling1D(name="pool"))(h)
    return keras.Model(inp, h, name=f"{spec.arch}_{'hgq' if quantized else 'float'}")


def is_quantized(model) -> bool:
    return any(isinstance(layer, QDense) for layer in model.layers)


def hgq_predict(model, x: np.ndarray) -> np.ndarray:
    """Logits (N, K) as float64, in inference mode."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float64)
    out = [np.asarray(model(x[j:j + PREDICT_BATCH], training=False)) for j in range(0, len(x), PREDICT_BATCH)]
    return np.concatenate(out).astype(np.float64)


def calibrate(model, x: np.ndarray) -> float:
    """Integer bits of every wrapping activation quantiser from the range seen on ``x`` (HGQ2 ``trace_minmax``);
    returns the model's EBOPs after calibration. Needed before export: uncalibrated bit widths wrap."""
    from hgq.utils import trace_minmax

    if len(x) == 0:
        raise TriggerKDError("HGQ2 calibration needs training inputs; the feed is empty")
    return float(trace_minmax(model, np.asarray(x, dtype=np.float32), batch_size=4096, verbose=0))


def save_hgq_student(model, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp_keras = Path(str(tmp) + ".keras")  # Keras 3 insists on the suffix
        model.save(tmp_keras)
        os.replace(tmp_keras, tmp)


def load_hgq_student(path: Path):
    path = Path(path)
    if not path.is_file():
        raise TriggerKDError(f"no HGQ2 student at {path}: run the student stage first")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as d:  # Keras 3 reads only files named *.keras
        tmp = Path(d) / "model.keras"
        shutil.copyfile(path, tmp)
        return keras.models.load_model(tmp, compile=False)


def layer_bits(model) -> list[dict]:
    """Per QDense layer: the learned weight and input bit widths (mean / max / zeros), for quant_layers.json."""
    rows = []
    for layer in model.layers:
        if not isinstance(layer, QDense):
            continue
        kq = layer.kq
        w_bits = np.asarray(kq.bits_(layer.kernel.shape)) if hasattr(kq, "bits_") else None
        i_bits = np.asarray(layer.iq.bits_((1, *layer.input.shape[1:]))) if hasattr(layer.iq, "bits_") else None
        rows.append({
            "layer": layer.name, "units": int(layer.units),
            "weight_bits_mean": None if w_bits is None else float(w_bits.mean()),
            "weight_bits_max": None if w_bits is None else float(w_bits.max()),
            "weights_zero_bits": None if w_bits is None else int((w_bits <= 0).sum()),
            "input_bits_mean": None if i_bits is None else float(i_bits.mean()),
            "input_bits_max": None if i_bits is None else float(i_bits.max()),
            "ebops": float(np.asarray(layer.ebops)),
        })
    return rows

