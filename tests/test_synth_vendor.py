"""The vendor route of the synth stage on a real hls4ml project.

Vitis HLS cannot run here, so a stand-in `vitis_hls` on PATH does what the real tool leaves
behind: the C-synthesis report, here a real Vitis HLS 2022.2 report from a public repository
(tests/fixtures/reports/SOURCES.md). Everything else is real: the hls4ml project, the copy
the stage builds in, the command line, the report discovery and the resources.json record.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from student_helpers import perturbed_student, random_inputs
from trigger_kd.config import Config, HLSConfig, SynthConfig
from trigger_kd.firmware.hls import convert_qonnx
from trigger_kd.config import StudentConfig as StudentSpec
from trigger_kd.models.backend import BrevitasBackend
from trigger_kd.firmware.student_export import export_for_firmware
from trigger_kd.errors import TriggerKDError
from trigger_kd.rundir import STAMP_FILE
from trigger_kd.stage import RunContext

FIXTURE = Path(__file__).parent / "fixtures" / "reports" / "vitis_hls_2022.2_myproject_csynth.xml"


@pytest.fixture()
def run_with_project(tmp_path):
    spec = StudentSpec(arch="mlp", n_particles=2, mlp_hidden=(4,))
    export_for_firmware(BrevitasBackend(spec), perturbed_student(spec), random_inputs(spec, 8), tmp_path)
    fw = tmp_path / "run" / "firmware"
    fw.mkdir(parents=True)
    (fw / STAMP_FILE).write_text("{}")
    hls_model, _ = convert_qonnx(tmp_path / "model_clean.onnx", fw / "hls4ml_prj", HLSConfig(backend="Vitis"))
    hls_model.write()
    return RunContext(run_dir=tmp_path / "run", cache=tmp_path / "cache", progress=False), fw / "hls4ml_prj"


def _stand_in(bindir: Path, body: str) -> None:
    bindir.mkdir(exist_ok=True)
    exe = bindir / "vitis_hls"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)


def test_vitis_route_builds_a_copy_and_reads_the_report(run_with_project, tmp_path, monkeypatch):
    from trigger_kd.stages.synth import run_synth

    ctx, prj = run_with_project
    original_opts = (prj / "build_opt.tcl").read_text()
    _stand_in(tmp_path / "bin", f'[ "$1" = "-f" ] && [ -f "$2" ] || exit 9\n'
                                f"mkdir -p myproject_prj/solution1/syn/report\n"
                                f"cp {FIXTURE} myproject_prj/solution1/syn/report/myproject_csynth.xml\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    out = tmp_path / "out"
    out.mkdir()
    cfg = Config(name="t", hls=HLSConfig(backend="Vitis"), synth=SynthConfig(tool="vitis"))
    summary = run_synth(cfg, ctx, out)
    res = json.loads((out / "resources.json").read_text())
    assert summary["route"] == res["route"] == "vitis"
    p = res["primary"]
    assert (p["source"], p["kind"], p["lut"], p["dsp"], p["latency_max_cycles"]) == (
        "Vitis HLS 2022.2 csynth", "hls-estimate", 116694, 2557, 15)
    assert any("HLS C-synthesis estimate" in n for n in res["notes"])
    copy_opts = (out / "hls_prj" / "build_opt.tcl").read_text()  # C synthesis only, written into the copy
    assert "csim       0" in copy_opts and "synth      1" in copy_opts
    assert not (prj / "myproject_prj").exists() and (prj / "build_opt.tcl").read_text() == original_opts  # untouched


def test_vitis_route_failure_keeps_logs_and_says_why(run_with_project, tmp_path, monkeypatch):
    from trigger_kd.stages.synth import run_synth

    ctx, _ = run_with_project
    _stand_in(tmp_path / "bin", "echo 'ERROR: [HLS 207-812] license not found' >&2\nexit 2\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    out = tmp_path / "out"
    out.mkdir()
    cfg = Config(name="t", hls=HLSConfig(backend="Vitis"), synth=SynthConfig(tool="vitis"))
    with pytest.raises(TriggerKDError, match="license not found"):
        run_synth(cfg, ctx, out)
    assert "license not found" in (out / "logs" / "vitis_hls.stderr.log").read_text()
