"""Vendor report parsing on real reports from public repositories (tests/fixtures/reports/SOURCES.md)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from trigger_kd.cli import main
from trigger_kd.errors import TriggerKDError
from trigger_kd.synth.backends import Container, VitisHLS, VivadoHLS, vendor_backend
from trigger_kd.synth.reports import format_record, parse_csynth_xml, parse_report, parse_vivado_synth_rpt

FIX = Path(__file__).parent / "fixtures" / "reports"
VIVADO_HLS = FIX / "vivado_hls_2019.2_myproject_csynth.xml"
VITIS_HLS = FIX / "vitis_hls_2022.2_myproject_csynth.xml"
RPT_2020 = FIX / "vivado_2020.1_vivado_synth.rpt"
RPT_2022 = FIX / "vivado_2022.2_vivado_synth.rpt"


def test_vivado_hls_2019_csynth_exact():
    r = parse_csynth_xml(VIVADO_HLS)
    assert (r.tool, r.tool_version, r.kind) == ("Vivado HLS", "2019.2.1", "hls-estimate")
    assert r.source == "Vivado HLS 2019.2.1 csynth"
    assert r.part == "xc7z020-clg400-1"
    assert r.clock_target_ns == 5.0 and r.clock_estimated_ns == 4.429
    assert (r.latency_min_cycles, r.latency_max_cycles) == (96014, 96165)
    assert (r.latency_min_ns, r.latency_max_ns) == (480000.0, 481000.0)  # "0.480 ms", "0.481 ms"
    assert (r.interval_min, r.interval_max) == (4625, 95949)
    assert (r.bram_18k, r.dsp, r.ff, r.lut, r.uram) == (285, 118, 51414, 33365, 0)
    assert r.available == {"bram_18k": 280, "dsp": 220, "ff": 106400, "lut": 53200, "uram": 0}
    assert r.utilization_pct["bram_18k"] == pytest.approx(101.7857, abs=1e-4)
    assert r.utilization_pct["dsp"] == pytest.approx(53.6364, abs=1e-4)
    assert "uram" not in r.utilization_pct  # 0 available: no percentage
    assert r.extra["top"] == "myproject" and r.extra["clock_uncertainty_ns"] == 0.62
    assert r.extra["pipeline_type"] == "dataflow" and r.extra["latency_average_cycles"] == 96014


def test_vitis_hls_2022_csynth_exact():
    r = parse_csynth_xml(VITIS_HLS)
    assert (r.tool, r.tool_version, r.source) == ("Vitis HLS", "2022.2", "Vitis HLS 2022.2 csynth")
    assert r.part == "xcu250-figd2104-2L-e"
    assert r.clock_target_ns == 5.0 and r.clock_estimated_ns == 3.636
    assert (r.latency_min_cycles, r.latency_max_cycles, r.latency_min_ns, r.latency_max_ns) == (15, 15, 75.0, 75.0)
    assert (r.interval_min, r.interval_max) == (1, 1)
    assert (r.bram_18k, r.dsp, r.ff, r.lut, r.uram) == (8, 2557, 24233, 116694, 0)
    assert r.available == {"bram_18k": 5376, "dsp": 12288, "ff": 3456000, "lut": 1728000, "uram": 1280}
    assert r.utilization_pct["lut"] == pytest.approx(6.7531, abs=1e-4)
    assert r.extra["latency_ns_from"].startswith("report")


def test_csynth_without_realtime_latency_computes_ns(tmp_path):
    """A report without the RealTime fields: ns = cycles x target clock, and the record says so."""
    text = VITIS_HLS.read_text()
    for tag in ("Best-caseRealTimeLatency", "Average-caseRealTimeLatency", "Worst-caseRealTimeLatency"):
        start, end = text.index(f"<{tag}>"), text.index(f"</{tag}>") + len(tag) + 3
        text = text[:start] + text[end:]
    (tmp_path / "myproject_csynth.xml").write_text(text)
    r = parse_csynth_xml(tmp_path / "myproject_csynth.xml")
    assert (r.latency_min_ns, r.latency_max_ns) == (75.0, 75.0)
    assert r.extra["latency_ns_from"].startswith("computed")


def test_vivado_2020_utilization_exact():
    r = parse_vivado_synth_rpt(RPT_2020)
    assert (r.tool, r.tool_version, r.kind, r.source) == ("Vivado", "2020.1", "post-synthesis", "Vivado 2020.1 synthesis")
    assert r.part == "xczu9egffvb1156-2"
    assert (r.lut, r.ff, r.dsp, r.uram) == (31277, 4555, 0, None)
    assert r.bram_18k == 1 and r.extra["bram_tiles"] == 0.5  # half a 36k tile = one RAMB18
    assert r.available == {"lut": 274080, "ff": 548160, "dsp": 2520, "bram_18k": 1824}
    assert r.utilization_pct == {"lut": 11.41, "ff": 0.83, "dsp": 0.0, "bram_18k": 0.05}
    assert r.extra["carry8"] == 3849
    assert r.extra["primitives"]["LUT3"] == 16663 and r.extra["primitives"]["FDSE"] == 10
    assert r.latency_max_cycles is None and r.clock_target_ns is None


def test_vivado_2022_utilization_exact():
    """Vivado 2022 adds a 'Prohibited' column and SLR tables that repeat the row names with zeros."""
    r = parse_vivado_synth_rpt(RPT_2022)
    assert (r.tool_version, r.part) == ("2022.2", "xcu50-fsvh2104-2L-e")
    assert (r.lut, r.ff, r.dsp, r.bram_18k, r.uram) == (179437, 227971, 2058, 502, 0)
    assert r.available == {"lut": 871680, "ff": 1743360, "dsp": 5952, "bram_18k": 2688, "uram": 640}
    assert r.utilization_pct == {"lut": 20.59, "ff": 13.08, "dsp": 34.58, "bram_18k": 18.68, "uram": 0.0}
    assert r.extra["carry8"] == 13720 and r.extra["bram_tiles"] == 251


def _project(tmp_path: Path) -> Path:
    """An hls4ml-like project: the top report, a per-function report beside it, and vivado_synth.rpt (the top
    report's part made the Vivado report's, written with dashes: the two are of one design)."""
    prj = tmp_path / "hls_prj"
    rep = prj / "myproject_prj" / "solution1" / "syn" / "report"
    rep.mkdir(parents=True)
    (rep / "myproject_csynth.xml").write_text(VITIS_HLS.read_text().replace("<Part>xcu250-figd2104-2L-e</Part>",
                                                                            "<Part>xczu9eg-ffvb1156-2</Part>"))
    shutil.copy(VIVADO_HLS, rep / "dense_latency_config2_s_csynth.xml")  # not the top: must be skipped
    shutil.copy(RPT_2020, prj / "vivado_synth.rpt")
    return prj


def test_parse_project_directory(tmp_path):
    records = parse_report(_project(tmp_path))
    assert [r.kind for r in records] == ["hls-estimate", "post-synthesis"]
    assert records[0].lut == 116694 and records[0].tool == "Vitis HLS"
    assert records[1].lut == 31277 and records[1].source == "Vivado 2020.1 synthesis"


def test_cli_parse_report_json(capsys):
    assert main(["parse-report", str(VITIS_HLS), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1
    d = data[0]
    assert (d["lut"], d["ff"], d["dsp"], d["bram_18k"], d["uram"]) == (116694, 24233, 2557, 8, 0)
    assert (d["latency_max_cycles"], d["interval_max"], d["part"]) == (15, 1, "xcu250-figd2104-2L-e")
    assert main(["parse-report", str(RPT_2022), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)[0]
    assert (d["lut"], d["bram_18k"], d["available"]["lut"]) == (179437, 502, 871680)


def test_cli_parse_report_text(capsys, tmp_path):
    assert main(["parse-report", str(_project(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "Vitis HLS 2022.2 csynth" in out and "116694" in out and "1728000" in out
    assert "Vivado 2020.1 synthesis" in out and "31277" in out
    assert format_record(parse_csynth_xml(VIVADO_HLS)).splitlines()[0] == "Vivado HLS 2019.2.1 csynth  [hls-estimate]"


def test_directory_without_report(tmp_path, capsys):
    (tmp_path / "firmware").mkdir()
    with pytest.raises(TriggerKDError) as exc:
        parse_report(tmp_path)
    msg = str(exc.value)
    assert "no synthesis report found" in msg and "_csynth.xml" in msg and "vivado_synth.rpt" in msg
    assert main(["parse-report", str(tmp_path)]) == 2
    assert "no synthesis report found" in capsys.readouterr().err


def test_not_a_report(tmp_path):
    bad = tmp_path / "x_csynth.xml"
    bad.write_text("<profile><ReportVersion><Version>2022.2</Version></ReportVersion></profile>")
    with pytest.raises(TriggerKDError, match="not a csynth XML report"):
        parse_report(bad)
    bad.write_text("<profile>")
    with pytest.raises(TriggerKDError, match="not a readable csynth XML"):
        parse_report(bad)
    with pytest.raises(TriggerKDError, match="report not found"):
        parse_report(tmp_path / "missing.rpt")


# ----------------------------------------------------------------------------- vendor backends (no tools here)
def _hls4ml_like(tmp_path: Path, vitis: bool) -> Path:
    prj = tmp_path / ("vitis" if vitis else "vivado")
    prj.mkdir()
    head = "source [file join $tcldir build_opt.tcl]\n" if vitis else "foreach arg $::argv {}\n"
    (prj / "build_prj.tcl").write_text(head)
    return prj


def test_vendor_commands_match_hls4ml(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vendor tool: vitis_hls fallback is the one chosen
    assert VivadoHLS().command(tmp_path, True) == [
        "vivado_hls", "-f", "build_prj.tcl", "reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=1 fifo_opt=0"]
    assert VitisHLS().command(tmp_path, False) == ["vitis_hls", "-f", "build_prj.tcl"]
    fake = tmp_path / "vitis-run"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert VitisHLS().command(tmp_path, False) == ["vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls"]
    prj = _hls4ml_like(tmp_path, vitis=True)
    VitisHLS().prepare(prj, vivado_synth=True)
    opt = (prj / "build_opt.tcl").read_text()
    assert "vsynth     1" in opt and "csim       0" in opt and "cosim      0" in opt
    monkeypatch.delenv("TRIGGER_KD_CONTAINER_ENGINE", raising=False)
    d = Container("trigger-kd-vivado:latest", "Vivado").command(prj, False)
    assert d[:6] == ["docker", "run", "--rm", "-v", f"{prj.resolve()}:/work/prj", "-w"]
    assert "trigger-kd-vivado:latest" in d and 'vivado_hls -f build_prj.tcl "reset=0' in d[-1]


def test_container_engine_flags_mounts_and_variables(tmp_path, monkeypatch):
    xilinx = tmp_path / "Xilinx"
    xilinx.mkdir()
    monkeypatch.setenv("TRIGGER_KD_XILINX", str(xilinx))
    monkeypatch.setenv("XILINXD_LICENSE_FILE", "2100@licserver")
    monkeypatch.setenv("TRIGGER_KD_CONTAINER_ENGINE", "podman")  # the environment wins over synth.container_engine
    c = vendor_backend("docker", "Vitis", "img:1", "docker", ("--network", "host"))
    cmd = c.command(tmp_path, False)
    assert cmd[:2] == ["podman", "run"] and c.slug == "podman" and c.name == "podman (Vitis HLS)"
    assert cmd[cmd.index("img:1") - 2:cmd.index("img:1")] == ["--network", "host"]  # site flags just before the image
    assert f"{xilinx}:{xilinx}:ro" in cmd and "XILINXD_LICENSE_FILE=2100@licserver" in cmd
    assert f"TRIGGER_KD_XILINX={xilinx}" in cmd  # the entrypoint sources settings64.sh under it
    user = ["--user", f"{os.getuid()}:{os.getgid()}"] if os.getuid() == 0 else ["--userns=keep-id"]
    assert all(u in cmd for u in user)  # rootless podman maps the caller with keep-id, not --user
    monkeypatch.setenv("TRIGGER_KD_CONTAINER_ENGINE", "lxc")
    with pytest.raises(TriggerKDError, match="TRIGGER_KD_CONTAINER_ENGINE.*docker, podman"):
        vendor_backend("docker", "Vitis", "img:1", "docker")
    monkeypatch.delenv("TRIGGER_KD_CONTAINER_ENGINE")
    monkeypatch.setenv("TRIGGER_KD_XILINX", str(tmp_path / "missing"))
    with pytest.raises(TriggerKDError, match="TRIGGER_KD_XILINX=.*not a directory"):
        vendor_backend("docker", "Vitis", "img:1", "podman").command(tmp_path, False)


def test_missing_vendor_tool_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    prj = _hls4ml_like(tmp_path, vitis=False)
    for backend, exe in ((VivadoHLS(), "vivado_hls"), (VitisHLS(), "vitis-run")):
        assert not backend.available()
        with pytest.raises(TriggerKDError) as exc:
            backend.run(prj, tmp_path / "logs")
        assert exe in str(exc.value) and "synth.tool: docker" in str(exc.value) and "open-source" in str(exc.value)
    docker = vendor_backend("docker", "Vitis", "no-such-image:1")
    assert not docker.available()
    assert "docker" in docker.missing_message() and "open-source" in docker.missing_message()


def test_backend_rejects_other_backends_project(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for exe in ("vivado_hls", "vitis_hls"):
        (bindir / exe).write_text("#!/bin/sh\nexit 1\n")
        (bindir / exe).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(TriggerKDError, match="Vitis backend"):
        VivadoHLS().run(_hls4ml_like(tmp_path, vitis=True), tmp_path / "logs")
    with pytest.raises(TriggerKDError, match="Vivado backend"):
        VitisHLS().run(_hls4ml_like(tmp_path, vitis=False), tmp_path / "logs")


def test_failed_vendor_build_keeps_logs(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vivado_hls").write_text("#!/bin/sh\necho 'ERROR: [HLS 200-70] license checkout failed' >&2\nexit 3\n")
    (bindir / "vivado_hls").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    with pytest.raises(TriggerKDError) as exc:
        VivadoHLS().run(_hls4ml_like(tmp_path, vitis=False), tmp_path / "logs")
    assert "exit 3" in str(exc.value) and "license checkout failed" in str(exc.value)
    assert "license checkout failed" in (tmp_path / "logs" / "vivado_hls.stderr.log").read_text()


def test_truncated_reports_name_the_missing_fields(tmp_path, capsys):
    """A report cut short (a full disk, a killed run) is parsed with a warning naming what it lacks (issue 11)."""
    lines = RPT_2022.read_text().splitlines(keepends=True)
    cut = tmp_path / "vivado_synth.rpt"
    cut.write_text("".join(lines[:74]))  # ends after the CLB Logic tables: no BLOCKRAM, no DSP section
    rec = parse_vivado_synth_rpt(cut)
    assert rec.lut == 179437 and rec.dsp is None
    assert rec.extra["missing_fields"] == ["DSPs", "Block RAM Tile"]
    assert "lacks DSPs, Block RAM Tile" in capsys.readouterr().err
    assert "missing    DSPs, Block RAM Tile" in format_record(rec)
    text = VITIS_HLS.read_text()
    import re

    damaged = tmp_path / "myproject_csynth.xml"
    damaged.write_text(re.sub(r"<Worst-caseLatency>.*?</Worst-caseLatency>", "", re.sub(r"<LUT>.*?</LUT>", "", text, count=1)))
    rec = parse_csynth_xml(damaged)
    assert rec.extra["missing_fields"] == ["Worst-caseLatency", "LUT"]
    assert "Worst-caseLatency, LUT" in capsys.readouterr().err
    assert "missing_fields" not in parse_csynth_xml(VITIS_HLS).extra  # complete reports: no warning
