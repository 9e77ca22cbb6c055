"""What the firmware outputs (``hls.output``) and how each output is judged against the quantised student.

- ``logits`` (default): the K logits, compared bit for bit on the output grid (``parity.compare_fixed``).
- ``argmax``: the class index. hls4ml gets one more layer, ``class_output``: a Softmax with ``implementation:
  argmax`` (hls4ml 1.3 ``nnet_activation.h`` ``softmax_argmax``, appended by ``hls_config.AppendClassOutput``).
  It writes a one-hot word of K bits (``uint<1>`` each): it scans classes 1..K-1 and moves only on a strictly
  greater logit, so a tie goes to the lowest class index, the rule of numpy's ``argmax`` (``TIE_RULE``). Both
  sides use it: ``class_index`` on the student's integer logits, the firmware's word decoded by
  ``one_hot_index`` (a word that is not exactly one-hot counts as a differing jet). The open-source route traces
  the same rule into the RTL (``synth/da4ml_argmax.py``), whose output is the index itself.
- ``softmax``: hls4ml's lookup-table softmax (``implementation: stable``). It is not exact (exp and 1/x tables
  indexed by the top input bits: hls4ml issues 1512, 1443, 1523): the firmware stage builds it, C-simulates the
  test jets, measures it against the float softmax of the student's integer logits rounded to the output type
  (``softmax_agreement``) and refuses (:class:`SoftmaxRefused`) with the measured numbers.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat

OUTPUTS = ("logits", "argmax", "softmax")
CLASS_OUTPUT = "class_output"  # the hls4ml layer appended for argmax / softmax
TIE_RULE = "first highest logit (numpy argmax): a tie goes to the lowest class index"
ONE_HOT_TYPE = "uint<1>"  # one bit per class of the argmax layer's one-hot word
SOFTMAX_IMPLEMENTATION = "stable"  # hls4ml's default softmax
SOFTMAX_TYPE = "ufixed<16,1,RND,SAT>"  # its output type here (hls.layer_precision.class_output.result changes it)


class SoftmaxRefused(TriggerKDError):
    """``hls.output: softmax`` measured and refused: the lookup-table softmax is not the student's softmax."""


def class_output_config(output: str) -> dict:
    """hls4ml ``LayerName`` config of the appended layer (``Trace`` on, as every layer)."""
    if output == "argmax":
        return {"Implementation": "argmax", "Precision": {"result": ONE_HOT_TYPE}, "Trace": True}
    if output == "softmax":
        return {"Implementation": SOFTMAX_IMPLEMENTATION, "Precision": {"result": SOFTMAX_TYPE}, "Trace": True}
    raise TriggerKDError(f"hls.output {output!r} appends no layer (one of {', '.join(OUTPUTS)})")


# ----------------------------------------------------------------------------- argmax
def class_index(logits: np.ndarray) -> np.ndarray:
    """The class index of every row: the first highest value (``TIE_RULE``)."""
    z = np.asarray(logits, dtype=np.float64)
    return np.argmax(z.reshape(len(z), -1), axis=1).astype(np.int64)


def one_hot(index: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(index), k), np.float64)
    out[np.arange(len(index)), np.asarray(index, dtype=np.int64)] = 1.0
    return out


def one_hot_index(words: np.ndarray) -> np.ndarray:
    """The position of the single 1 of every one-hot row; -1 for a row that is not exactly one-hot."""
    w = np.asarray(words, dtype=np.float64)
    w = w.reshape(len(w), -1)
    valid = np.all((w == 0) | (w == 1), axis=1) & (w.sum(axis=1) == 1)
    return np.where(valid, np.argmax(w, axis=1), -1).astype(np.int64)


def top_margins(logits: np.ndarray, lsb: float) -> dict:
    """How often the tie rule decides (top two equal) and how often one LSB does, on these rows."""
    z = np.asarray(logits, dtype=np.float64)
    z = z.reshape(len(z), -1)
    if z.shape[1] < 2 or len(z) == 0:
        return {"tied_at_top": 0, "won_by_one_lsb": 0}
    top2 = -np.sort(-z, axis=1)[:, :2]
    gap = np.rint((top2[:, 0] - top2[:, 1]) / lsb)
    return {"tied_at_top": int((gap == 0).sum()), "won_by_one_lsb": int((gap == 1).sum())}


def argmax_parity(words: np.ndarray, q_logits: np.ndarray, lsb: float) -> dict:
    """The firmware's one-hot words against the class index of the student's integer logits, jet by jet."""
    want = class_index(q_logits)
    got = one_hot_index(words) if len(want) else np.zeros(0, np.int64)
    same = got == want
    return {
        "n_jets": int(len(want)),
        "bit_exact_fraction": float(same.mean()) if len(same) else 0.0,
        "n_mismatched": int((~same).sum()),
        "not_one_hot": int((got < 0).sum()),
        "max_abs_diff": None,  # no value to differ: the class index is equal or not
        "first_mismatched_jets": [int(i) for i in np.flatnonzero(~same)[:10]],
        "output": "argmax",
        "compared": "class index (one-hot word decoded) against the argmax of the quantised student's logits",
        "tie_rule": TIE_RULE,
        **top_margins(q_logits, lsb),
    }


def index_evidence(words: np.ndarray, q_logits: np.ndarray) -> tuple[float, int]:
    """(fraction of jets with the same class index, jets) from the saved arrays (``check-parity``)."""
    want = np.asarray(q_logits, dtype=np.float64)
    words = np.asarray(words, dtype=np.float64)
    if len(want) == 0 or words.size != want.size:
        return 0.0, len(want)
    return float(np.mean(one_hot_index(words.reshape(want.shape)) == class_index(want))), len(want)


# ----------------------------------------------------------------------------- softmax: measured, then refused
def softmax_reference(q_logits: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Float64 softmax of the integer logits, rounded to ``fmt`` as ap_fixed rounds (values are >= 0) and saturated:
    what an exact softmax in that type would output; integers on ``fmt``'s grid."""
    z = np.asarray(q_logits, dtype=np.float64)
    z = z.reshape(len(z), -1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    v = e / e.sum(axis=1, keepdims=True) * 2.0**fmt.frac_bits
    if fmt.rounding == "RND_CONV":
        q = np.round(v)  # half to even
    elif fmt.rounding in ("RND", "RND_INF"):
        q = np.floor(v + 0.5)  # half up
    elif fmt.rounding in ("RND_ZERO", "RND_MIN_INF"):
        q = np.ceil(v - 0.5)  # half down
    else:
        q = np.floor(v)  # TRN, TRN_ZERO (no negative values)
    return np.clip(q, fmt.int_min, fmt.int_max).astype(np.int64)


def softmax_agreement(csim: np.ndarray, q_logits: np.ndarray, fmt: FixedFormat, tables: dict | None = None) -> dict:
    """How close the firmware's softmax is to the exact one: bit-identical jets, argmax agreement, max difference."""
    want = softmax_reference(q_logits, fmt)
    got = np.asarray(csim, dtype=np.float64).reshape(want.shape) * 2.0**fmt.frac_bits
    diff = np.abs(got - want)
    same = np.all(diff == 0, axis=1)
    n = len(want)
    return {
        "output": "softmax",
        "n_jets": int(n),
        "bit_identical_fraction": float(same.mean()) if n else 0.0,
        "argmax_agreement": float(np.mean(class_index(got) == class_index(q_logits))) if n else 0.0,
        "max_abs_diff_lsb": float(diff.max()) if diff.size else 0.0,
        "max_abs_diff": float(diff.max() * 2.0**-fmt.frac_bits) if diff.size else 0.0,
        "output_type": fmt.hls,
        "reference": f"float64 softmax of the quantised student's integer logits, rounded to {fmt.hls}",
        "tables": tables or {},
    }


def softmax_refusal(m: dict) -> str:
    return (f"hls.output: softmax refused: hls4ml's lookup-table softmax ({m['tables'].get('implementation', '?')}) "
            f"is not exact. Measured on the {m['n_jets']} test jets of this run: its C-simulation equals the softmax "
            f"of the student's integer logits (float64, rounded to {m['output_type']}) on "
            f"{m['bit_identical_fraction'] * 100:.2f} % of jets (max |diff| {m['max_abs_diff_lsb']:g} LSB), and its "
            f"argmax agrees with the logits' on {m['argmax_agreement'] * 100:.2f} %. Use hls.output: logits (the K "
            f"logits, bit-exact) or hls.output: argmax (the class index, bit-exact) and take the softmax off chip.")


def softmax_tables(hls_model) -> dict:
    """The appended softmax layer's implementation, table sizes and types, as hls4ml built them."""
    layer = next((la for la in hls_model.get_layers() if la.name == CLASS_OUTPUT), None)
    if layer is None:
        return {}
    out = {"implementation": layer.get_attr("implementation")}
    for key in ("table_size", "exp_table_size", "inv_table_size"):
        if layer.get_attr(key) is not None:
            out[key] = int(layer.get_attr(key))
    for key in ("exp_table_t", "inv_table_t", "accum_t"):
        t = layer.get_attr(key)
        if t is not None and hasattr(t, "precision"):
            out[key] = str(t.precision)
    out["result_t"] = str(layer.get_output_variable().type.precision)
    return out
