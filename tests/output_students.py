"""Tiny K-class students whose logits are set by hand, for the firmware-output tests (tests/test_firmware_outputs.py).

No hidden layer: logits = W q(x) + b, so the quantised inputs decide them exactly. W and b are integers on the
weight grid (2**-(weight_bits-1)) and the output grid (the model's output LSB), the same in Brevitas, QKeras and
HGQ2. The rows make the cases where the class index is decided by the tie rule or by one LSB, and where the logits
reach the extremes of their range (inputs saturated at the input type's limits):

- K = 5: classes 0 and 1 have equal rows (a tie on every jet: 0 must win); class 2 is class 0 plus input 1, so it
  wins or loses by exactly one LSB when input 1 is +-1 input LSB; class 3 drops input 0 and has bias +1 LSB (it
  wins by one LSB when inputs 0 and 1 are 0); class 4 is the negative of class 3's inputs (the most negative and
  most positive logits of all).
- K = 2: class 1 is class 0 plus input 1 (tie at input 1 = 0, one LSB at +-1).
"""
from __future__ import annotations

import numpy as np

from trigger_kd.config import StudentConfig

N_PARTICLES = 2  # 2 particles x 4 features = 8 inputs
_BIG = [31] * 6  # the largest weight of weight_bits = 6, on inputs 2..7
ROWS = {
    5: [[16, 0, *_BIG], [16, 0, *_BIG], [16, 1, *_BIG], [0, 0, *_BIG], [0, 0, *[-w for w in _BIG]]],
    2: [[16, 0, *_BIG], [16, 1, *_BIG]],
}
BIAS_LSB = {5: [0, 0, 0, 1, 0], 2: [0, 0]}  # in output LSBs


def spec(framework: str) -> StudentConfig:
    return StudentConfig(framework=framework, arch="mlp", n_particles=N_PARTICLES, mlp_hidden=())


def hard_student(s: StudentConfig | str, k: int, quantized: bool = True):
    """(backend, student) with the last (only) layer set to ``ROWS[k]`` and ``BIAS_LSB[k]`` (``s``: the student
    section, with ``mlp_hidden`` empty and ``N_PARTICLES`` particles, or a framework name)."""
    from trigger_kd.models.backend import student_backend

    backend = student_backend(spec(s) if isinstance(s, str) else s, n_classes=k)
    if backend.s.arch != "mlp" or backend.s.mlp_hidden or backend.s.n_particles != N_PARTICLES:
        raise ValueError(f"hard-set logits need an MLP without hidden layers on {N_PARTICLES} particles")
    model = backend.build(quantized=True)
    w = np.asarray(ROWS[k], dtype=np.float64) * 2.0 ** -(backend.s.weight_bits - 1)  # (K, inputs)
    _set(backend.framework, model, w, np.zeros(k))
    bias = np.asarray(BIAS_LSB[k], dtype=np.float64) * output_lsb(backend, model)
    _set(backend.framework, model, w, bias)
    if not quantized:  # the float twin with the same weights
        twin = backend.build(quantized=False)
        _set(backend.framework, twin, w, bias)
        return backend, twin
    return backend, model


def output_lsb(backend, model) -> float:
    """The grid of the student's logits, as the student stage's integer network gives it (any framework)."""
    from trigger_kd.synth.hgq_trace import student_intnet

    return 2.0 ** -student_intnet(backend, model).output_frac_bits


def _set(framework: str, model, w: np.ndarray, b: np.ndarray) -> None:
    if framework == "brevitas":
        import torch

        layer = model.net[-1]
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(w, dtype=layer.weight.dtype))
            layer.bias.copy_(torch.tensor(b, dtype=layer.bias.dtype))
    else:  # Keras: kernel (inputs, K)
        layer = model.get_layer("logits")
        layer.kernel.assign(w.T.astype(np.float32))
        layer.bias.assign(b.astype(np.float32))


def input_grid(s: StudentConfig) -> tuple[float, int, int]:
    """(input LSB, lowest and highest integer) of the student's input type fixed<input_bits, input_int_bits + 1>."""
    frac = s.input_bits - 1 - s.input_int_bits
    return 2.0**-frac, -(2 ** (s.input_bits - 1)), 2 ** (s.input_bits - 1) - 1


def hard_inputs(s: StudentConfig, k: int, n: int = 1500, seed: int = 0) -> np.ndarray:
    """Inputs (n + 2K + 2, 8) on the input grid: inputs 0 and 1 in {-1, 0, +1} LSB (ties and one-LSB wins), the
    others small, at the limits or beyond them (the input quantiser saturates); then, for every class, the inputs
    that drive its logit to its largest and its smallest value, and all inputs saturated both ways."""
    lsb, lo, hi = input_grid(s)
    rng = np.random.default_rng(seed)
    choices = np.array([0, 1, -1, 2, -2, hi, lo, hi + 40, lo - 40], dtype=np.float64)  # beyond: saturate
    q = choices[rng.integers(0, len(choices), size=(n, 8))]
    q[:, :2] = rng.integers(-1, 2, size=(n, 2))
    q[: n // 5, 2:] = rng.integers(lo, hi + 1, size=(n // 5, 6))  # anywhere on the grid
    w = np.asarray(ROWS[k], dtype=np.float64)
    reach = [np.where(w[c] > 0, hi, np.where(w[c] < 0, lo, 0)) for c in range(k)]
    reach += [np.where(w[c] > 0, lo, np.where(w[c] < 0, hi, 0)) for c in range(k)]
    q = np.concatenate([q, np.array(reach), np.full((1, 8), hi + 40.0), np.full((1, 8), lo - 40.0)])
    return (q * lsb).astype(np.float32)


def logit_limits(s: StudentConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value each class's logit can take, in output LSBs."""
    _, lo, hi = input_grid(s)
    w = np.asarray(ROWS[k], dtype=np.float64)
    b = np.asarray(BIAS_LSB[k], dtype=np.float64)
    top = np.where(w > 0, w * hi, w * lo).sum(axis=1) + b
    bottom = np.where(w > 0, w * lo, w * hi).sum(axis=1) + b
    return bottom, top


def hard_cases(q_logits: np.ndarray, lsb: float, s: StudentConfig) -> dict:
    """How often each hard case occurs in these logits (every count must be > 0 for the test to mean anything)."""
    from trigger_kd.firmware.outputs import top_margins

    z = np.rint(np.asarray(q_logits) / lsb)
    bottom, top = logit_limits(s, z.shape[1])
    return {**top_margins(q_logits, lsb),
            "classes_at_their_max": int(np.sum(np.any(z == top[None], axis=0))),
            "classes_at_their_min": int(np.sum(np.any(z == bottom[None], axis=0)))}


def build_and_compare(framework: str, k: int, out, outputs=("logits", "argmax", "softmax"), n: int = 1500) -> dict:
    """Build the hand-set student's firmware for each ``hls.output`` and compare its C-simulation with the student
    on ``hard_inputs``; a summary (plain JSON values: the QKeras case runs in a process of its own)."""
    from pathlib import Path

    from trigger_kd.config import HLSConfig
    from trigger_kd.firmware.hls import hls_predict
    from trigger_kd.firmware.outputs import SoftmaxRefused, class_index, one_hot_index
    from trigger_kd.firmware.parity import parity_report
    from trigger_kd.firmware.from_student import build_firmware
    from trigger_kd.synth.hgq_trace import student_intnet
    from trigger_kd.stages.firmware import SOFTMAX_CHECK, _measure_and_refuse_softmax

    out = Path(out)
    backend, model = hard_student(framework, k)
    x = hard_inputs(backend.s, k, n=n)
    if framework == "hgq":  # calibrated and stored as the student stage does it
        backend.set_calibration(x)
        backend.save(model, out / f"student{backend.suffix}")
        model = backend.load(out)
    if framework == "brevitas":
        from trigger_kd.firmware.student_export import export_for_firmware

        export_for_firmware(backend, model, x[:16], out)
    net = student_intnet(backend, model)
    q, lsb = backend.predict(model, x), 2.0 ** -net.output_frac_bits
    summary = {"cases": hard_cases(q, lsb, backend.s), "n_jets": len(x),
               "intnet_equals_model": bool(np.array_equal(net.evaluate(backend.intnet_inputs(x)), q))}
    for output in outputs:
        fw = build_firmware(backend, model, out, out / f"prj_{output}", HLSConfig(output=output),
                            record_dir=out / output)
        csim = hls_predict(fw.hls_model, backend.firmware_inputs(x), progress=False)
        if output == "softmax":
            try:
                _measure_and_refuse_softmax(csim, q, fw.hls_model, out / output)
                summary["softmax"] = {"refused": None}
            except SoftmaxRefused as exc:
                import json

                summary["softmax"] = {"refused": str(exc),
                                      "measured": json.loads((out / output / SOFTMAX_CHECK).read_text())}
            continue
        report = parity_report(csim, q, lsb, output=output)
        summary[output] = {"fraction": report["bit_exact_fraction"], "n_mismatched": report["n_mismatched"],
                           "shape": list(csim.shape)}
        if output == "argmax":
            summary[output].update(
                index_equal=bool(np.array_equal(one_hot_index(csim), class_index(q))),
                ties=report["tied_at_top"], one_lsb=report["won_by_one_lsb"], not_one_hot=report["not_one_hot"],
                first_mismatch=fw.first_mismatch(backend.firmware_inputs(x[:20])))
    return summary
