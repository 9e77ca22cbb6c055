"""One integer-grid comparison behind both parity verdicts: the firmware's C-simulation (``firmware/parity.py``
``parity_report``) and the open-source route's RTL simulation (``synth/opensource.py`` ``rtl_parity``).

Properties checked on seeded random cases, for both callers alike: equal outputs are exact; a changed output on
the grid makes exactly its jet differ by its distance in LSB; an undefined (NaN or infinite) simulated output makes
its jet differ and is counted; and no verdict at all (a one-line refusal) for zero jets, a non-finite reference,
a value off the grid, or outputs of another shape.
"""
from __future__ import annotations

import numpy as np
import pytest

from trigger_kd.errors import TriggerKDError
from trigger_kd.firmware.parity import parity_report
from trigger_kd.synth.opensource import rtl_parity

FRAC_BITS = 3
LSB = 2.0**-FRAC_BITS


def _firmware(got, want):
    return parity_report(got, want, LSB)


def _rtl(got, want):
    return rtl_parity(want, got, FRAC_BITS, "test simulator")


CALLERS = [pytest.param(_firmware, id="firmware-csim"), pytest.param(_rtl, id="rtl-sim")]
SEEDS = range(6)


def _outputs(seed: int, n: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40)) if n is None else n
    return rng.integers(-200, 200, size=(n, int(rng.integers(1, 6)))) * LSB


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("compare", CALLERS)
def test_equal_outputs_are_exact(compare, seed):
    want = _outputs(seed)
    p = compare(want.copy(), want)
    assert p["n_jets"] == len(want) and p["bit_exact_fraction"] == 1.0
    assert p["n_mismatched"] == 0 and p["max_abs_diff_lsb"] == 0 and p["undefined_outputs"] == 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("compare", CALLERS)
def test_one_changed_output_is_one_differing_jet(compare, seed):
    want = _outputs(seed)
    rng = np.random.default_rng(100 + seed)
    got = want.copy()
    jet, col, lsbs = int(rng.integers(len(want))), int(rng.integers(want.shape[1])), int(rng.integers(1, 9))
    got[jet, col] += lsbs * LSB
    p = compare(got, want)
    assert p["n_mismatched"] == 1 and p["first_mismatched_jets"] == [jet]
    assert p["bit_exact_fraction"] == pytest.approx(1 - 1 / len(want))
    assert p["max_abs_diff_lsb"] == lsbs and p["max_abs_diff"] == pytest.approx(lsbs * LSB)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("compare", CALLERS)
def test_undefined_simulated_output_is_a_differing_jet(compare, seed, bad):
    want = _outputs(seed)
    got = want.copy()
    jet = len(want) // 2
    got[jet, 0] = bad
    p = compare(got, want)
    assert p["bit_exact_fraction"] < 1.0 and p["n_mismatched"] == 1 and p["undefined_outputs"] == 1
    assert p["first_mismatched_jets"] == [jet] and p["max_abs_diff_lsb"] == 0


@pytest.mark.parametrize("compare", CALLERS)
def test_no_finite_simulated_output_at_all(compare):
    want = _outputs(1)
    p = compare(np.full_like(want, np.nan), want)
    assert p["bit_exact_fraction"] == 0.0 and p["undefined_outputs"] == len(want)
    assert p["max_abs_diff"] is None and p["max_abs_diff_lsb"] is None


@pytest.mark.parametrize("compare", CALLERS)
def test_zero_jets_is_refused_not_exact(compare):
    want = np.zeros((0, 2))
    with pytest.raises(TriggerKDError, match="zero jets"):
        compare(want.copy(), want)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("compare", CALLERS)
def test_non_finite_reference_is_refused(compare, bad):
    want = _outputs(2)
    got = want.copy()
    want[0, 0] = got[0, 0] = bad  # equal, yet no verdict: the model itself has no value there
    with pytest.raises(TriggerKDError, match="NaN or infinite"):
        compare(got, want)


@pytest.mark.parametrize("side", ["got", "want"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("compare", CALLERS)
def test_off_grid_value_is_refused(compare, seed, side):
    want = _outputs(seed)
    got = want.copy()
    (got if side == "got" else want)[0, 0] += LSB / 3
    with pytest.raises(TriggerKDError, match="not on the fixed-point grid"):
        compare(got, want)


@pytest.mark.parametrize("got_shape", [(5, 2), (4, 3), (2, 4), (8,)])
@pytest.mark.parametrize("compare", CALLERS)
def test_other_shape_is_refused(compare, got_shape):
    want = np.zeros((4, 2))
    with pytest.raises(TriggerKDError, match="shape"):
        compare(np.zeros(got_shape), want)


@pytest.mark.parametrize("compare", CALLERS)
def test_single_output_column_may_be_flat(compare):
    want = _outputs(3)[:, :1]
    assert compare(want.reshape(-1), want)["bit_exact_fraction"] == 1.0


@pytest.mark.parametrize("want", [np.zeros((0, 3)), np.array([[0.0, np.nan, 1.0]]), np.zeros((2, 3))])
def test_class_index_parity_refuses_the_same_inputs(want):
    """hls.output argmax judges one-hot words, yet refuses what the logits comparison refuses."""
    with pytest.raises(TriggerKDError, match="zero jets|NaN or infinite|shape"):
        parity_report(np.zeros((len(want) + (len(want) == 2), 3)), want, LSB, output="argmax")
