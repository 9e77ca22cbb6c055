"""Firmware: Brevitas -> QONNX -> hls4ml, compiled with g++, compared bit for bit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from student_helpers import perturbed_student, random_inputs
from trigger_kd.cli import main as cli
from trigger_kd.config import HLSConfig
from trigger_kd.firmware.hls import (FirmwareError, QonnxFrontEnd, build_hls_from_qonnx, convert_qonnx,
                                     first_mismatch_layer, hls_predict)
from trigger_kd.firmware.import_qonnx import import_qonnx
from trigger_kd.firmware.parity import compare_fixed
from trigger_kd.config import StudentConfig as StudentSpec
from trigger_kd.models.backend import BrevitasBackend
from trigger_kd.firmware.student_export import export_for_firmware
from trigger_kd.models.students import predict_logits

# one xdist worker runs the whole module (make test: --dist loadgroup), so its module-scoped fixtures are made once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_firmware")]

SPECS = {
    "mlp": StudentSpec(arch="mlp", n_particles=4, mlp_hidden=(8, 8)),
    "deepset": StudentSpec(arch="deepset", n_particles=4, phi_hidden=(8,), rho_hidden=(8,)),
}




@pytest.fixture(scope="module", params=["mlp", "deepset"])
def exported(request, tmp_path_factory):
    spec = SPECS[request.param]
    out = tmp_path_factory.mktemp(f"export_{request.param}")
    model = perturbed_student(spec)
    x = random_inputs(spec, 64)
    result = export_student(model, x, out)
    return spec, model, result, out


def export_student(model, x, out):
    return export_for_firmware(BrevitasBackend(model.spec), model, x, out)


def _layout(x, spec):
    return BrevitasBackend(spec).firmware_inputs(x)


def output_lsb(model):
    return BrevitasBackend(model.spec).output_lsb(model)


def test_qonnx_execution_equals_brevitas(exported):
    _, _, result, out = exported
    assert result["check"]["exact"] and result["check"]["n_jets"] == 64
    assert (out / "model_raw.onnx").is_file() and (out / "model_clean.onnx").is_file()


def test_csim_is_bit_exact(exported):
    spec, model, result, out = exported
    hls_model = build_hls_from_qonnx(out / "model_clean.onnx", out / "prj", HLSConfig(), record_dir=out,
                                     n_particles=spec.n_particles if spec.arch == "deepset" else None)
    x = random_inputs(spec, 1000, seed=5)
    csim = hls_predict(hls_model, _layout(x, spec), progress=False)
    report = compare_fixed(csim, predict_logits(model, x), output_lsb(model))
    assert report["bit_exact_fraction"] == 1.0, report
    rules = json.loads((out / "hls_rules.json").read_text())["rules"]
    assert any(r.startswith("input ") for r in rules)
    if spec.arch == "deepset":
        assert any("pooling" in r for r in rules) and any("Transpose" in r for r in rules)
    assert (out / "hls_config.json").is_file()
    # every layer is compared with its own QONNX tensor (by name), and all agree on an exact design
    xf = _layout(x[:8], spec)
    ref = QonnxFrontEnd(out / "model_clean.onnx").reference_outputs(hls_model, xf)
    assert set(ref) == {la.name for la in hls_model.get_layers() if la.class_name != "Input"}
    assert first_mismatch_layer(hls_model, out / "model_clean.onnx", xf) is None


def test_narrowed_accumulator_breaks_parity_and_is_named(tmp_path):
    spec = SPECS["mlp"]
    model = perturbed_student(spec)
    x = random_inputs(spec, 300)
    result = export_student(model, x[:16], tmp_path)
    broken = HLSConfig(layer_precision={"Dense_MatMul_1": {"accum": "fixed<8,3>", "result": "fixed<8,3>"}})
    hls_model = build_hls_from_qonnx(tmp_path / "model_clean.onnx", tmp_path / "prj", broken)
    csim = hls_predict(hls_model, x, progress=False)
    report = compare_fixed(csim, predict_logits(model, x), output_lsb(model))
    assert report["bit_exact_fraction"] < 1.0
    bad = report["first_mismatched_jets"]
    assert first_mismatch_layer(hls_model, tmp_path / "model_clean.onnx", x[bad]) == "Dense_MatMul_1"
    assert result["check"]["exact"]


def test_unknown_override_layer_is_named(tmp_path):
    spec = SPECS["mlp"]
    export_student(perturbed_student(spec), random_inputs(spec, 4), tmp_path)
    with pytest.raises(FirmwareError, match="Dense_Typo.*Dense_MatMul_0"):
        convert_qonnx(tmp_path / "model_clean.onnx", tmp_path / "prj",
                      HLSConfig(layer_precision={"Dense_Typo": {"result": "fixed<8,3>"}}))


def test_import_qonnx_with_lookup_table_softmax(tmp_path):
    """A model trained elsewhere, ending in a Softmax (approximate in hls4ml by design)."""
    from brevitas.export import export_qonnx

    spec = SPECS["mlp"]
    model = torch.nn.Sequential(perturbed_student(spec), torch.nn.Softmax(dim=1)).eval()
    onnx_path = tmp_path / "foreign.onnx"
    export_qonnx(model, torch.zeros(1, *random_inputs(spec, 1).shape[1:]), export_path=str(onnx_path), dynamo=False)
    result = import_qonnx(onnx_path, tmp_path / "run", HLSConfig(), n=300, seed=2)
    assert [a["op"] for a in result["approximate_layers"]] == ["Softmax"]
    assert result["compared_at"] != "output"
    assert result["bit_exact_fraction"] == 1.0 and result["n_jets"] == 300
    assert 0.9 <= result["argmax_agreement"] <= 1.0
    assert (tmp_path / "run" / "parity.json").is_file()
    assert cli(["check-parity", str(tmp_path / "run")]) == 0


def test_import_qonnx_rejects_unsupported_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Cos", ["x"], ["y"], name="my_cosine")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "cos.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(FirmwareError, match="my_cosine.*Cos"):
        import_qonnx(path, tmp_path / "run", HLSConfig(), n=4)


def test_check_parity_exit_codes(tmp_path, capsys):
    (tmp_path / "parity.json").write_text(json.dumps({"n_jets": 10, "bit_exact_fraction": 0.9}))
    assert cli(["check-parity", str(tmp_path)]) == 1
    # a bare parity.json saying 100 % is a number anyone could write: without the evidence an import or a run
    # keeps (import.json, its manifest, the compared arrays), it is not a pass
    (tmp_path / "parity.json").write_text(json.dumps({"n_jets": 10, "bit_exact_fraction": 1.0}))
    capsys.readouterr()
    assert cli(["check-parity", str(tmp_path)]) == 1
    assert "parity STALE" in capsys.readouterr().err
    assert cli(["check-parity", str(tmp_path / "nowhere")]) == 2


def test_students_with_the_jet_pt_feature_stay_bit_exact(tmp_path):
    """Five features per constituent (student.jet_pt_feature): the MLP's input is 5 per particle, and the
    firmware stays bit-exact."""
    spec = StudentSpec(arch="mlp", n_particles=4, mlp_hidden=(8, 8), jet_pt_feature=True)
    model = perturbed_student(spec)
    x = random_inputs(spec, 500, seed=6)
    assert x.shape == (500, 20)
    export_student(model, x[:8], tmp_path)
    hls_model = build_hls_from_qonnx(tmp_path / "model_clean.onnx", tmp_path / "prj", HLSConfig())
    csim = hls_predict(hls_model, _layout(x, spec), progress=False)
    assert compare_fixed(csim, predict_logits(model, x), output_lsb(model))["bit_exact_fraction"] == 1.0


@pytest.mark.parametrize("arch,settings", [
    ("deepset", HLSConfig(io_type="io_stream")),
    ("mlp", HLSConfig(backend="Vivado", strategy="Resource", reuse_factor=2)),
])
def test_other_hls_settings_stay_bit_exact(arch, settings, tmp_path):
    """io_stream, the Resource strategy with reuse, and the Vivado backend keep exactness."""
    spec = SPECS[arch]
    model = perturbed_student(spec)
    x = random_inputs(spec, 500, seed=4)
    result = export_student(model, x[:8], tmp_path)
    hls_model = build_hls_from_qonnx(tmp_path / "model_clean.onnx", tmp_path / "prj", settings,
                                     n_particles=spec.n_particles if arch == "deepset" else None)
    assert hls_model.config.get_config_value("IOType") == settings.io_type
    csim = hls_predict(hls_model, _layout(x, spec), progress=False)
    assert compare_fixed(csim, predict_logits(model, x), output_lsb(model))["bit_exact_fraction"] == 1.0
