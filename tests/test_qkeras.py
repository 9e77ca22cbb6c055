"""QKeras students and QKeras -> hls4ml firmware: bit-exact C-simulation, KD loss, deep-set symmetry, training."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

if importlib.util.find_spec("qkeras") is None:  # find_spec: importing qkeras here would load TF with Keras 3
    pytest.skip("the QKeras extra is not installed", allow_module_level=True)

from trigger_kd.errors import TriggerKDError  # noqa: E402
from trigger_kd.config import HLSConfig  # noqa: E402
from trigger_kd.config import DistillConfig  # noqa: E402
from trigger_kd.config import StudentConfig as StudentSpec  # noqa: E402
from trigger_kd.models.backend import QKerasBackend  # noqa: E402
from trigger_kd.models.intnet import FixedFormat  # noqa: E402
from trigger_kd.models.students_keras import (  # noqa: E402
    build_keras_student,
    keras_intnet,
    keras_predict,
    load_keras_student,
    save_keras_student,
)
from trigger_kd.train.distill import kd_loss_tf as kd_loss  # noqa: E402
from trigger_kd.train.feed import InputFeed  # noqa: E402
from trigger_kd.train.loops import fit  # noqa: E402

# one xdist worker runs the whole module (make test: --dist loadgroup), so its module-scoped fixtures are made once
pytestmark = [pytest.mark.qkeras, pytest.mark.xdist_group("test_qkeras")]

P = 4
F = {"mlp": 4, "deepset": 5}  # the deep set also takes the jet's ln(pT / TeV) (student.jet_pt_feature)
SPECS = {
    "mlp": StudentSpec(arch="mlp", framework="qkeras", n_particles=P, mlp_hidden=(8,)),
    "deepset": StudentSpec(arch="deepset", framework="qkeras", n_particles=P, phi_hidden=(8,), rho_hidden=(8,),
                           jet_pt_feature=True),
}


def random_student(arch: str, seed: int = 0):
    """Quantised student with random weights and biases large enough to reach the ReLU clip."""
    model = build_keras_student(SPECS[arch], quantized=True)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.kernel.assign(rng.uniform(-1, 1, layer.kernel.shape))
            layer.bias.assign(rng.uniform(-2, 2, layer.bias.shape))
    return model


def grid_inputs(arch: str, n: int = 500, seed: int = 1) -> np.ndarray:
    """Inputs within the input range fixed<10,2>: a third on the 2**-8 grid, a third on half-LSB ties, a third anywhere."""
    spec = SPECS[arch]
    rng = np.random.default_rng(seed)
    lsb = 2.0 ** -(spec.input_bits - 1 - spec.input_int_bits)
    lo, hi = -(2.0**spec.input_int_bits), 2.0**spec.input_int_bits - lsb
    k = rng.integers(round(lo / lsb), round(hi / lsb), size=(n, P * F[arch]))
    x = rng.uniform(lo, hi, size=(n, P * F[arch]))
    x[: n // 3] = k[: n // 3] * lsb
    x[n // 3: 2 * n // 3] = (k[n // 3: 2 * n // 3] + 0.5) * lsb
    x = x.astype(np.float32)
    return x if arch == "mlp" else x.reshape(n, P, F[arch])


@pytest.fixture(scope="module")
def students():
    return {arch: random_student(arch) for arch in SPECS}


# ----------------------------------------------------------------------------- fast
@pytest.mark.parametrize("arch", list(SPECS))
def test_intnet_equals_keras(students, arch):
    model = students[arch]
    x = grid_inputs(arch)
    net = keras_intnet(model)
    x_int = QKerasBackend(SPECS[arch]).intnet_inputs(x)
    assert np.array_equal(net.evaluate(x_int), keras_predict(model, x))


def test_kd_loss_by_hand():
    s = np.array([[1.0, -1.0], [0.5, 2.0]])
    t = np.array([[2.0, 0.0], [-1.0, 1.0]])
    y = np.array([0, 1])
    alpha, T = 0.7, 2.0

    def log_softmax(v):
        m = max(v)
        lse = m + math.log(sum(math.exp(a - m) for a in v))
        return [a - lse for a in v]

    ce = -(log_softmax(s[0])[0] + log_softmax(s[1])[1]) / 2
    kl = 0.0
    for sj, tj in zip(s, t):
        lps, lpt = log_softmax(sj / T), log_softmax(tj / T)
        kl += sum(math.exp(b) * (b - a) for a, b in zip(lps, lpt)) / 2
    want = (1 - alpha) * ce + alpha * T * T * kl
    assert want == pytest.approx(0.0581747, abs=1e-7)  # CE 0.164171, KL 0.003187
    assert float(kd_loss(s, y, t, alpha, T)) == pytest.approx(want, rel=1e-5)  # float32 inside
    assert float(kd_loss(s, y, None, alpha, T)) == pytest.approx(ce, rel=1e-6)
    assert float(kd_loss(s, y, s, alpha, T)) == pytest.approx((1 - alpha) * ce, rel=1e-5)  # KL(p || p) = 0


def test_deepset_permutation_invariant(students):
    model = students["deepset"]
    x = grid_inputs("deepset", n=200)
    perm = np.random.default_rng(3).permutation(P)
    assert np.array_equal(keras_predict(model, x), keras_predict(model, x[:, perm, :]))
    float_twin = build_keras_student(SPECS["deepset"], quantized=False)
    np.testing.assert_allclose(keras_predict(float_twin, x), keras_predict(float_twin, x[:, perm, :]), atol=1e-5)


@pytest.mark.slow  # trains TensorFlow students
@pytest.mark.parametrize("arch,quantized,kd", [("mlp", True, True), ("deepset", True, False), ("deepset", False, True)])
def test_train_one_epoch_and_round_trip(tmp_path, arch, quantized, kd):
    rng = np.random.default_rng(5)
    x = grid_inputs(arch, n=260, seed=7)
    y = (x.reshape(len(x), -1)[:, 0] > 0).astype(np.int64)
    t = rng.normal(size=(200, 2)) if kd else None
    spec = StudentSpec(arch=arch, framework="qkeras", n_particles=P, mlp_hidden=(8,), phi_hidden=(8,), rho_hidden=(8,),
                       epochs=1, batch_size=64, lr=1e-2, jet_pt_feature=SPECS[arch].jet_pt_feature)
    model = build_keras_student(spec, quantized=quantized)
    before = keras_predict(model, x)
    hist = fit(QKerasBackend(spec), model, InputFeed(x[:200], y[:200], t), x[200:], y[200:], spec,
               DistillConfig(alpha=0.7, temperature=3.0), progress=False)
    assert hist["epochs"] == 1 and len(hist["history"]) == 1
    assert 0.0 <= hist["best_val_accuracy"] <= 1.0 and hist["train_seconds"] > 0
    assert np.isfinite(hist["history"][0]["train_loss"]) and np.isfinite(hist["history"][0]["val_loss"])
    after = keras_predict(model, x)
    assert not np.array_equal(before, after)
    save_keras_student(model, tmp_path / "s.h5")
    again = load_keras_student(tmp_path / "s.h5")
    assert np.array_equal(keras_predict(again, x), after)
    if quantized:
        lsb = 2.0 ** -keras_intnet(again).output_frac_bits
        assert np.array_equal(after / lsb, np.rint(after / lsb))


def test_non_power_of_two_deepset_refused():
    with pytest.raises(ValueError, match="power of two"):  # refused when the config is read
        QKerasBackend(StudentSpec(arch="deepset", framework="qkeras", n_particles=6))


def test_unknown_layer_override_lists_names(students, tmp_path):
    from trigger_kd.firmware.hls_keras import convert_keras, hls_config_for_keras

    settings = HLSConfig(layer_precision={"fc9": {"result": "fixed<8,3>"}})
    with pytest.raises(TriggerKDError, match="fc9.*fc1.*relu1.*logits"):  # checked against the hls4ml model's layers
        convert_keras(students["mlp"], tmp_path / "prj", settings)
    with pytest.raises(TriggerKDError, match="unknown keys"):  # checked before hls4ml sees the model
        hls_config_for_keras(students["mlp"], HLSConfig.model_construct(layer_precision={"fc1": {"width": "8"}}))


def test_pool_precision_rule():
    act = FixedFormat(signed=False, bits=8, frac_bits=5)  # ufixed<8,3>
    assert act.pool(16).hls_type == "fixed<17,8>"  # sum < 2**7, mean on a 2**-9 grid (the one formula, both routes)
    assert act.pool(32).hls_type == "fixed<19,9>"


# ----------------------------------------------------------------------------- C-simulation (g++)
@pytest.fixture(scope="module")
def hls_models(students, tmp_path_factory):
    from trigger_kd.firmware.hls_keras import build_hls_from_keras

    out = {}
    for arch, model in students.items():
        root = tmp_path_factory.mktemp(f"fw_{arch}")
        out[arch] = build_hls_from_keras(model, root / "hls4ml_prj", HLSConfig(), record_dir=root,
                                         n_particles=P if arch == "deepset" else None)
        assert (root / "hls_config.json").is_file()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(SPECS))
def test_csim_bit_exact(students, hls_models, arch):
    model, hls_model = students[arch], hls_models[arch]
    x = grid_inputs(arch)
    lsb = 2.0 ** -keras_intnet(model).output_frac_bits
    want = keras_predict(model, x) / lsb
    got = np.asarray(hls_model.predict(np.ascontiguousarray(x)), dtype=np.float64).reshape(want.shape) / lsb
    assert np.array_equal(want, np.rint(want)) and np.array_equal(got, np.rint(got))
    assert np.all(np.rint(got) == np.rint(want)), f"{np.mean(np.all(got == want, axis=1)) * 100:.1f} % rows exact"
    if arch == "deepset":
        perm = np.random.default_rng(3).permutation(P)
        again = np.asarray(hls_model.predict(np.ascontiguousarray(x[:, perm, :])), dtype=np.float64)
        assert np.array_equal(again.reshape(want.shape) / lsb, got)


@pytest.mark.slow
def test_broken_precision_named(students, tmp_path):
    from trigger_kd.firmware.hls_keras import build_hls_from_keras, first_mismatch_layer_keras

    model = students["mlp"]
    settings = HLSConfig(layer_precision={"fc1": {"result": "fixed<6,2>"}})
    hls_model = build_hls_from_keras(model, tmp_path / "hls4ml_prj", settings)
    x = grid_inputs("mlp", n=200)
    lsb = 2.0 ** -keras_intnet(model).output_frac_bits
    got = np.rint(np.asarray(hls_model.predict(np.ascontiguousarray(x)), dtype=np.float64).reshape(-1, 2) / lsb)
    exact = np.all(got == np.rint(keras_predict(model, x) / lsb), axis=1)
    assert exact.mean() < 1.0
    assert first_mismatch_layer_keras(hls_model, model, x[~exact][:32]) == "fc1"


@pytest.mark.slow
def test_trace_agrees_on_exact_deepset(students, hls_models):
    from trigger_kd.firmware.hls_keras import QKerasFrontEnd, first_mismatch_layer_keras

    hls_model, x = hls_models["deepset"], grid_inputs("deepset", n=50)
    assert first_mismatch_layer_keras(hls_model, students["deepset"], x) is None
    ref = QKerasFrontEnd(students["deepset"]).reference_outputs(hls_model, x[:4])
    assert {la.name for la in hls_model.get_layers() if la.class_name != "Input"} <= set(ref)  # every layer compared
