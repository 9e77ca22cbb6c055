"""Every value a synthesis report or a Yosys log gives is validated where it is read (synth/reports.py, issue 35):
properties over generated damage, not one test per case. Each generated report is either refused (a ReportError;
`trigger-kd parse-report` exits 2 with one line on stderr) or parsed into a record whose every figure is in its
physical range, with a warning the record carries for what it lacks or what does not fit."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from trigger_kd.cli import main as cli
from trigger_kd.errors import TriggerKDError
from trigger_kd.synth.reports import (MAX_COUNT, RESOURCES, ReportError, ResourceRecord, format_record,
                                      parse_report, validate_record)
from trigger_kd.synth.yosys import parse_stat

FIX = Path(__file__).parent / "fixtures" / "reports"
XML = {"vivado_hls": FIX / "vivado_hls_2019.2_myproject_csynth.xml",
       "vitis_hls": FIX / "vitis_hls_2022.2_myproject_csynth.xml"}
RPT = {"2020": FIX / "vivado_2020.1_vivado_synth.rpt", "2022": FIX / "vivado_2022.2_vivado_synth.rpt"}

# values a damaged or hand-edited report can hold where a count, a period or a latency belongs
NOT_NUMBERS = ["abc", "12abc", "1..5", "0x1F", "١٢"]
NONFINITE = ["nan", "NaN", "inf", "-inf", "Infinity"]
NEGATIVE = ["-1", "-0.5", "-1e6", "-99999999"]
HUGE = ["1e12", "5000000000", "1e300", "1e400"]
FRACTION = ["0.5", "12.25", "3.3333"]
ABSENT = ["", "undef", "-"]


def _outcome(capsys, path: Path):
    """('refused', message) or ('parsed', records), checked against the CLI: exit 2 and one line, or exit 0."""
    try:
        records = parse_report(path)
    except TriggerKDError as exc:
        assert isinstance(exc, ReportError), exc
        msg = str(exc)
        assert "\n" not in msg and str(path) in msg, msg
        capsys.readouterr()
        assert cli(["parse-report", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and err.count("\n") == 0 and "Traceback" not in err, err
        return "refused", msg
    capsys.readouterr()
    assert cli(["parse-report", str(path), "--json"]) == 0
    capsys.readouterr()
    return "parsed", records


def _all_refused_naming(tmp_path, capsys, cases: dict, filename: str) -> None:
    """Every case {name: (report text, words)} written as ``filename`` is refused with a message holding its words
    (both sources of a contradiction named)."""
    for name, (body, words) in cases.items():
        path = tmp_path / name / filename
        path.parent.mkdir()
        path.write_text(body)
        kind, msg = _outcome(capsys, path)
        assert kind == "refused", name
        for w in words:
            assert w in msg, (name, msg)


def _figures_in_range(rec: ResourceRecord) -> None:
    """What a parsed record may show: every figure in its physical range."""
    for key in RESOURCES:
        v = getattr(rec, key)
        assert v is None or (math.isfinite(v) and 0 <= v <= MAX_COUNT and float(v).is_integer()), (key, v)
    for key, v in {**rec.available, **rec.utilization_pct}.items():
        assert math.isfinite(v) and v >= 0, (key, v)
    for lo, hi in (("latency_min_cycles", "latency_max_cycles"), ("interval_min", "interval_max"),
                   ("latency_min_ns", "latency_max_ns")):
        a, b = getattr(rec, lo), getattr(rec, hi)
        for v in (a, b):
            assert v is None or (math.isfinite(v) and v >= 0), (lo, v)
        assert a is None or b is None or a <= b
    for v in (rec.clock_target_ns, rec.clock_estimated_ns):
        assert v is None or (math.isfinite(v) and v > 0)


def _warned(rec: ResourceRecord) -> bool:
    return bool(rec.extra.get("warnings") or rec.extra.get("missing_fields"))


# ----------------------------------------------------------------------------- csynth.xml
def _section(text: str, section: str) -> tuple[int, int]:
    start = text.index(f"<{section}>")
    return start, text.index(f"</{section}>", start)


def _set_tag(text: str, tag: str, value: str | None, section: str | None = None) -> str:
    """``<tag>value</tag>`` (inside ``<section>`` if given); None removes the element."""
    lo, hi = _section(text, section) if section else (0, len(text))
    part = text[lo:hi]
    new = re.sub(rf"<{tag}>[^<]*</{tag}>", "" if value is None else f"<{tag}>{value}</{tag}>", part, count=1)
    assert new != part or value is not None and f"<{tag}>{value}</{tag}>" in part, (tag, section)
    return text[:lo] + new + text[hi:]


def _dsp_tag(text: str) -> str:
    return "DSP48E" if "<DSP48E>" in text else "DSP"


XML_FIELDS = [("LUT", "Resources", "count"), ("FF", "Resources", "count"), ("BRAM_18K", "Resources", "count"),
              ("URAM", "Resources", "count"), ("DSP", "Resources", "count"),
              ("LUT", "AvailableResources", "count"), ("FF", "AvailableResources", "count"),
              ("DSP", "AvailableResources", "count"),
              ("TargetClockPeriod", None, "clock"), ("EstimatedClockPeriod", None, "clock"),
              ("Best-caseLatency", None, "cycles"), ("Worst-caseLatency", None, "cycles"),
              ("Interval-min", None, "cycles"), ("Interval-max", None, "cycles"),
              ("Worst-caseRealTimeLatency", None, "time"), ("Best-caseRealTimeLatency", None, "time")]
BAD = {"count": NOT_NUMBERS + NONFINITE + NEGATIVE + HUGE + FRACTION,
       "clock": NOT_NUMBERS + NONFINITE + NEGATIVE + ["0", "0.0", "1e7", "1e400"],
       "cycles": NOT_NUMBERS + NONFINITE + NEGATIVE + FRACTION + ["4294967295", "1e12"],
       "time": ["abc ns", "12", "-5 ns", "nan ns", "1e400 ns", "5 parsecs", "1..2 us"]}


def _xml_cases(n: int, seed: int):
    """(report, field, section, value) drawn from every field and every kind of bad value."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        report = str(rng.choice(sorted(XML)))
        tag, section, kind = XML_FIELDS[rng.integers(len(XML_FIELDS))]
        yield report, tag, section, str(rng.choice(BAD[kind]))


@pytest.mark.parametrize("seed", range(3))
def test_csynth_out_of_range_values_are_refused(tmp_path, capsys, seed):
    """A count below zero, NaN, text, a fraction or more than any FPGA holds; a clock of zero; a latency of
    "undefined" cycles: refused, naming the field, never shown as a figure."""
    for k, (report, tag, section, value) in enumerate(_xml_cases(25, seed)):
        text = XML[report].read_text()
        tag = _dsp_tag(text) if tag == "DSP" else tag
        path = tmp_path / f"c{k}" / "myproject_csynth.xml"
        path.parent.mkdir()
        path.write_text(_set_tag(text, tag, value, section))
        kind, out = _outcome(capsys, path)
        assert kind == "refused", (report, tag, section, value, out and format_record(out[0]))


def test_csynth_absent_fields_are_reported_not_invented(tmp_path, capsys):
    """A field removed or written as undef / - / empty: parsed, the figure n/a, the record says what it lacks."""
    rng = np.random.default_rng(7)
    for k in range(20):
        report = str(rng.choice(sorted(XML)))
        text = XML[report].read_text()
        tag, section, _ = XML_FIELDS[rng.integers(8)]  # the resource fields
        tag = _dsp_tag(text) if tag == "DSP" else tag
        value = None if k % 2 else str(rng.choice(ABSENT))
        path = tmp_path / f"a{k}" / "myproject_csynth.xml"
        path.parent.mkdir()
        path.write_text(_set_tag(text, tag, value, section))
        kind, out = _outcome(capsys, path)
        assert kind == "parsed", out
        rec = out[0]
        _figures_in_range(rec)
        if tag != "URAM":  # parts without URAM have reports without it
            assert _warned(rec), (tag, section, value)
            assert "missing" in format_record(rec) or "warning" in format_record(rec)


def test_csynth_contradictions_name_both_sources(tmp_path, capsys):
    text = XML["vitis_hls"].read_text()
    cases = {
        "latency": (_set_tag(text, "Best-caseLatency", "20"), ["Best-caseLatency 20", "Worst-caseLatency 15"]),
        "interval": (_set_tag(_set_tag(text, "Interval-min", "9"), "Interval-max", "3"), ["Interval-min 9",
                                                                                          "Interval-max 3"]),
        "realtime": (_set_tag(text, "Worst-caseRealTimeLatency", "2.000 us"),
                     ["Worst-caseRealTimeLatency 2000 ns", "Worst-caseLatency 15 cycles"]),
        "two_dsp_tags": (text.replace("<DSP>2557</DSP>", "<DSP>2557</DSP><DSP48E>12</DSP48E>"),
                         ["<DSP> 2557", "<DSP48E> 12"]),
    }
    _all_refused_naming(tmp_path, capsys, cases, "myproject_csynth.xml")


def test_csynth_design_larger_than_the_part_is_a_carried_warning(tmp_path, capsys):
    """Used above available is possible (an HLS estimate of a design that does not fit): a figure, with a
    warning in the record, its text and its JSON; so is an estimated clock above the target."""
    rng = np.random.default_rng(3)
    text = XML["vitis_hls"].read_text()
    for k in range(6):
        tag = ["LUT", "FF", "DSP", "BRAM_18K"][k % 4]
        avail = int(re.search(rf"<{tag}>(\d+)</{tag}>", text[_section(text, "AvailableResources")[0]:]).group(1))
        used = int(avail * rng.uniform(1.01, 50))
        body = _set_tag(text, tag, str(used), "Resources")
        if k == 5:
            body = _set_tag(body, "EstimatedClockPeriod", "7.5")
        path = tmp_path / f"big{k}" / "myproject_csynth.xml"
        path.parent.mkdir()
        path.write_text(body)
        kind, out = _outcome(capsys, path)
        assert kind == "parsed"
        rec = out[0]
        _figures_in_range(rec)
        assert any("does not fit" in w for w in rec.extra["warnings"]), rec.extra
        assert "does not fit" in format_record(rec) and rec.to_dict()["extra"]["warnings"]
        if k == 5:
            assert any("timing is not met" in w for w in rec.extra["warnings"])


def test_the_real_reports_parse_in_range():
    """The four public reports pass every rule (the 2019 one with its 101.8 % BRAM carried as a warning)."""
    for path in [*XML.values(), *RPT.values()]:
        rec = parse_report(path)[0]
        _figures_in_range(rec)
    assert parse_report(XML["vivado_hls"])[0].extra["warnings"] == [
        "BRAM_18K 285 of 280 available (101.8 %): the design does not fit xc7z020-clg400-1"]
    for path in (XML["vitis_hls"], *RPT.values()):
        assert "warnings" not in parse_report(path)[0].extra


# ----------------------------------------------------------------------------- vivado_synth.rpt
def _set_cell(text: str, row: str, column: str, value: str, occurrence: int = 0) -> str:
    """Replace one cell of the first table (or the ``occurrence``-th) holding ``row`` under ``column``."""
    lines = text.splitlines(keepends=True)
    header, seen = None, -1
    for i, line in enumerate(lines):
        if line.startswith("|") and "Site Type" in line:
            header = [c.strip() for c in line.strip().strip("|").split("|")]
            continue
        if header and line.startswith("|"):
            cells = line.rstrip("\n").strip().strip("|").split("|")
            if len(cells) == len(header) and cells[0].strip().rstrip("*").strip() == row:
                seen += 1
                if seen == occurrence:
                    k = header.index(column)
                    width = len(cells[k])
                    cells[k] = f" {value} ".rjust(width)
                    lines[i] = "|" + "|".join(cells) + "|\n"
                    return "".join(lines)
    raise AssertionError(f"no row {row!r}")


RPT_ROWS = {"2020": ["CLB LUTs", "CLB Registers", "DSPs", "Block RAM Tile", "LUT as Logic", "RAMB18"],
            "2022": ["CLB LUTs", "CLB Registers", "DSPs", "Block RAM Tile", "URAM", "LUT as Memory", "RAMB36/FIFO"]}


@pytest.mark.parametrize("seed", range(3))
def test_rpt_out_of_range_and_contradicting_cells_are_refused(tmp_path, capsys, seed):
    """Any bad value in a row the record reads (Used, Available, Util%): refused. A changed count contradicts
    its sub-rows or its Util%, so even a plausible edit is caught."""
    rng = np.random.default_rng(100 + seed)
    for k in range(20):
        report = str(rng.choice(sorted(RPT)))
        row = str(rng.choice(RPT_ROWS[report]))
        column = str(rng.choice(["Used", "Available", "Util%"]))
        pool = NOT_NUMBERS + NONFINITE + NEGATIVE + HUGE + (["0.3"] if column != "Util%" else ["-0.01", "77.7"])
        if column == "Used":
            pool = pool + [str(int(rng.integers(1, 10**6)))]  # a plausible number that contradicts the sub-rows
        value = str(rng.choice(pool))
        path = tmp_path / f"r{k}" / "vivado_synth.rpt"
        path.parent.mkdir()
        path.write_text(_set_cell(RPT[report].read_text(), row, column, value))
        kind, out = _outcome(capsys, path)
        assert kind == "refused", (report, row, column, value, out and format_record(out[0]))


def test_rpt_contradictions_name_both(tmp_path, capsys):
    text = RPT["2022"].read_text()
    cases = {
        "subrows": (_set_cell(_set_cell(text, "LUT as Logic", "Used", "100000"), "LUT as Logic", "Util%", "11.47"),
                    ["'CLB LUTs' Used 179437", "LUT as Logic 100000", "LUT as Memory 12503"]),
        "bram": (_set_cell(_set_cell(text, "RAMB18", "Used", "8"), "RAMB18", "Util%", "0.30"),
                 ["'Block RAM Tile' Used 251", "RAMB36/FIFO 248", "RAMB18 8"]),
        "util": (_set_cell(text, "DSPs", "Util%", "3.46"), ["'DSPs' Util% 3.46", "2058 / 5952"]),
    }
    _all_refused_naming(tmp_path, capsys, cases, "vivado_synth.rpt")
    # the same row twice (a second CLB Logic table appended) with another count
    lines = text.splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if "CLB LUTs*" in l) - 3
    table = lines[start:start + 16]
    dup = "".join(lines) + "\n" + _set_cell("".join(table), "CLB LUTs", "Used", "5")
    path = tmp_path / "dup" / "vivado_synth.rpt"
    path.parent.mkdir()
    path.write_text(dup)
    kind, msg = _outcome(capsys, path)
    assert kind == "refused" and "appears twice with Used 179437 and 5" in msg, msg


def test_rpt_cut_short_anywhere_is_refused_or_says_what_it_lacks(tmp_path, capsys):
    """A report cut at any line (a full disk, a killed run): refused, or parsed with the missing figures named."""
    rng = np.random.default_rng(11)
    seen = set()
    for report, src in RPT.items():
        lines = src.read_text().splitlines(keepends=True)
        full = parse_report(src)[0]
        for k, cut in enumerate(sorted(rng.choice(len(lines), 12, replace=False))):
            path = tmp_path / f"{report}_{k}" / "vivado_synth.rpt"
            path.parent.mkdir()
            path.write_text("".join(lines[:cut]))
            kind, out = _outcome(capsys, path)
            seen.add(kind)
            if kind == "parsed":
                rec = out[0]
                _figures_in_range(rec)
                lost = [key for key in ("lut", "ff", "dsp", "bram_18k") if getattr(rec, key) != getattr(full, key)]
                assert all(getattr(rec, key) is None for key in lost), lost  # never a different number
                assert not lost or rec.extra.get("missing_fields"), (cut, lost)
    assert seen == {"parsed", "refused"}  # both branches exercised


# ----------------------------------------------------------------------------- any record (the open-source route)
def test_records_built_elsewhere_pass_the_same_rules():
    """The open-source route builds its record itself and calls fill_utilization: the same rules apply."""
    ok = ResourceRecord(tool="Yosys", source="Yosys synth", kind="open-source-synthesis", lut=10, ff=5, dsp=0,
                        bram_18k=0, uram=0, available={"lut": 100}, clock_target_ns=5.0)
    ok.fill_utilization()
    assert ok.utilization_pct == {"lut": 10.0}
    for field, value in (("lut", -3), ("ff", float("nan")), ("dsp", 2.5), ("bram_18k", 1e10),
                         ("clock_target_ns", 0.0), ("latency_min_cycles", -1), ("kind", "guess")):
        rec = ResourceRecord(tool="Yosys", source="Yosys synth", kind="open-source-synthesis", lut=10)
        setattr(rec, field, value)
        with pytest.raises(ReportError) as exc:
            rec.fill_utilization()
        assert "\n" not in str(exc.value) and "Yosys synth" in str(exc.value)
    rec = ResourceRecord(source="x", latency_min_cycles=9, latency_max_cycles=3)
    with pytest.raises(ReportError, match="Best-caseLatency 9 is above Worst-caseLatency 3"):
        validate_record(rec)


# ----------------------------------------------------------------------------- Yosys stat
def _stat_log(cells: dict[str, int], top: str = "top", total: int | None = None) -> str:
    body = "".join(f"     {name:<30}{n:>6}\n" for name, n in cells.items())
    total = sum(cells.values()) if total is None else total
    return (f"3. Printing statistics.\n\n=== {top} ===\n\n   Number of wires:                 16\n"
            f"   Number of cells:             {total:>5}\n{body}\n"
            "End of script. Logfile hash: 0, CPU: user 1.97s system 0.06s, MEM: 134.94 MB peak\n")


CELL_NAMES = ["LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "FDRE", "FDSE", "CARRY4", "CARRY8", "DSP48E2",
              "RAMB18E2", "RAMB36E2", "IBUF", "OBUF", "BUFG", "MUXF7", "$_AND_"]


def test_yosys_stat_properties():
    """Random stat blocks parse to exactly their cells; any damage (a negative or huge count, a total that is not
    the sum, a block cut anywhere, no block for the top, a cell listed twice) is refused, never a LUT count of 0."""
    rng = np.random.default_rng(5)
    for k in range(60):
        names = list(rng.choice(CELL_NAMES, rng.integers(1, 10), replace=False))
        cells = {str(n): int(rng.integers(0, 10**6)) for n in names}
        log = _stat_log(cells)
        assert parse_stat(log, "top", "y.log") == (cells, sum(cells.values()))
        kind = k % 6
        if kind == 0:
            bad = _stat_log({**cells, names[0]: -int(rng.integers(1, 100))})
        elif kind == 1:
            bad = _stat_log({**cells, names[0]: int(MAX_COUNT) + int(rng.integers(1, 10**6))})
        elif kind == 2:
            bad = _stat_log(cells, total=sum(cells.values()) + int(rng.integers(1, 50)))
        elif kind == 3:  # cut inside the block: before its last cell line ends
            end = log.index("\n\nEnd of script")
            bad = log[:int(rng.integers(log.index("=== top"), end - 1))]
        elif kind == 4:
            bad = log.replace("=== top ===", "=== other ===")
        else:
            bad = log.replace(f"     {names[0]:<30}", f"     {names[0]:<30}{int(rng.integers(1, 9))}\n"
                                                      f"     {names[0]:<30}", 1)
        with pytest.raises(ReportError) as exc:
            parse_stat(bad, "top", "y.log")
        assert str(exc.value).startswith("y.log: ") and "\n" not in str(exc.value), (kind, exc.value)


def test_yosys_real_log_block():
    """The stat block of a Yosys 0.23 run (synth_xilinx of a 4-bit adder)."""
    log = ("=== top ===\n\n   Number of wires:                 16\n   Number of wire bits:             60\n"
           "   Number of public wires:           4\n   Number of public wire bits:      14\n"
           "   Number of memories:               0\n   Number of memory bits:            0\n"
           "   Number of processes:              0\n   Number of cells:                 26\n"
           "     BUFG                            1\n     CARRY4                          2\n"
           "     FDRE                            5\n     IBUF                            9\n"
           "     LUT2                            4\n     OBUF                            5\n\n"
           "   Estimated number of LCs:          2\n\n"
           "End of script. Logfile hash: 7470d2ff53, CPU: user 1.97s system 0.06s, MEM: 134.94 MB peak\n")
    cells, total = parse_stat(log, "top")
    assert total == 26 and cells["LUT2"] == 4 and "Estimated" not in cells


# ----------------------------------------------------------------------------- clock range and units (csynth.xml)
def _no_realtime(text: str) -> str:
    """Without the RealTime latencies, a clock period is checked on its own (not only against them)."""
    for tag in ("Best-caseRealTimeLatency", "Average-caseRealTimeLatency", "Worst-caseRealTimeLatency"):
        text = re.sub(rf"<{tag}>[^<]*</{tag}>", "", text)
    return text


def _write(tmp_path: Path, name: str, body: str, filename: str = "myproject_csynth.xml") -> Path:
    path = tmp_path / name / filename
    path.parent.mkdir(parents=True)
    path.write_text(body)
    return path


def test_clock_periods_below_any_fpga_clock_are_refused(tmp_path, capsys):
    """A clock period faster than any FPGA runs (10 GHz and up: 1e-6 ns, 0.01 ns) or slower than 1 kHz is refused
    on its own, with or without the RealTime latencies to contradict it; so is a clock uncertainty as large as
    the period it is part of (both named)."""
    from trigger_kd.synth.reports import MAX_CLOCK_NS, MIN_CLOCK_NS

    rng = np.random.default_rng(21)
    for k in range(12):
        report = str(rng.choice(sorted(XML)))
        text = XML[report].read_text() if k % 2 else _no_realtime(XML[report].read_text())
        tag = ["TargetClockPeriod", "EstimatedClockPeriod"][k % 2 if k < 8 else 0]
        value = str(rng.choice(["1e-6", "0.01", "0.0999", "-0", "1e-300", f"{MAX_CLOCK_NS * 1.5:g}"]))
        kind, msg = _outcome(capsys, _write(tmp_path, f"k{k}", _set_tag(text, tag, value)))
        assert kind == "refused", (report, tag, value)
        assert "clock" in msg.lower() or "Latency" in msg, msg
    for report in XML:
        body = _no_realtime(XML[report].read_text())
        target = float(re.search(r"<TargetClockPeriod>([^<]+)<", body).group(1))
        path = _write(tmp_path, f"unc_{report}", _set_tag(body, "ClockUncertainty", f"{target:g}"))
        kind, msg = _outcome(capsys, path)
        assert kind == "refused" and "ClockUncertainty" in msg and "TargetClockPeriod" in msg, msg
        edge = _write(tmp_path, f"edge_{report}", _set_tag(body, "TargetClockPeriod", f"{MIN_CLOCK_NS:g}"))
        edge.write_text(_set_tag(_set_tag(edge.read_text(), "EstimatedClockPeriod", f"{MIN_CLOCK_NS:g}"),
                                 "ClockUncertainty", "0"))
        kind, out = _outcome(capsys, edge)
        assert kind == "parsed" and out[0].clock_target_ns == MIN_CLOCK_NS


def _set_unit(text: str, section: str, unit: str) -> str:
    return _set_tag(text, "unit", unit, section)


def test_units_are_honoured_or_refused(tmp_path, capsys):
    """The ``<unit>`` of a section scales its times (us, ps: the same clock in ns) or is refused (a unit that is no
    time, a latency section counted in anything but clock cycles); never read as if it were ns."""
    base = XML["vitis_hls"].read_text()  # target 5.00 ns, estimated 3.636 ns, latency 15 cycles
    honoured = {
        "us": (_set_tag(_set_tag(_set_unit(base, "UserAssignments", "us"), "TargetClockPeriod", "0.005"),
                        "ClockUncertainty", "0.00135"), 5.0, 3.636),
        "ps": (_set_tag(_set_tag(_set_unit(base, "UserAssignments", "ps"), "TargetClockPeriod", "5000"),
                        "ClockUncertainty", "1350"), 5.0, 3.636),
        "est_ps": (_set_tag(_set_unit(base, "SummaryOfTimingAnalysis", "ps"), "EstimatedClockPeriod", "3636"),
                   5.0, 3.636),
    }
    for name, (body, target, est) in honoured.items():
        kind, out = _outcome(capsys, _write(tmp_path, name, body))
        assert kind == "parsed", (name, out)
        assert out[0].clock_target_ns == pytest.approx(target) and out[0].clock_estimated_ns == pytest.approx(est)
        assert out[0].extra["clock_uncertainty_ns"] == pytest.approx(1.35)
    refused = {
        "clock_us_unscaled": (_set_unit(base, "UserAssignments", "us"), ["clock period 5000 ns"]),
        "furlongs": (_set_unit(base, "UserAssignments", "furlongs"), ["unit", "furlongs"]),
        "empty_unit": (_set_unit(base, "SummaryOfTimingAnalysis", "parsecs"), ["unit", "parsecs"]),
        "latency_us": (_set_unit(base, "SummaryOfOverallLatency", "us"), ["SummaryOfOverallLatency", "us"]),
        "latency_ns": (_set_unit(base, "SummaryOfOverallLatency", "ns"), ["SummaryOfOverallLatency", "ns"]),
    }
    for name, (body, words) in refused.items():
        kind, msg = _outcome(capsys, _write(tmp_path, name, body))
        assert kind == "refused", (name, msg and format_record(msg[0]))
        assert all(w in msg for w in words), (name, msg)


# ----------------------------------------------------------------------------- one project, two reports
def _project(tmp: Path, csynth: str, rpt: str | None) -> Path:
    report = tmp / "myproject_prj" / "solution1" / "syn" / "report"
    report.mkdir(parents=True)
    (report / "myproject_csynth.xml").write_text(csynth)
    if rpt is not None:
        (tmp / "vivado_synth.rpt").write_text(rpt)
    return tmp


def _rpt_design(text: str, part: str | None = None, top: str | None = None) -> str:
    if part:
        text = re.sub(r"^(\| Device\s*: ).*$", lambda m: m.group(1) + part, text, count=1, flags=re.M)
    if top:
        text = re.sub(r"^(\| Design\s*: ).*$", lambda m: m.group(1) + top, text, count=1, flags=re.M)
    return text


def test_reports_of_one_project_that_disagree_on_part_or_top_are_refused(tmp_path, capsys):
    """A project folder whose C-synthesis report and Vivado report name two parts or two top functions holds two
    designs' numbers: refused, naming both files and both values, never both printed as one design's."""
    csynth, rpt = XML["vitis_hls"].read_text(), RPT["2020"].read_text()  # xcu250 / xczu9eg, both myproject
    part = "xcu250-figd2104-2L-e"
    cases = {
        "parts": (csynth, rpt, ["xcu250-figd2104-2L-e", "xczu9egffvb1156-2"]),
        "tops": (csynth, _rpt_design(rpt, part=part, top="other_top"), ["myproject", "other_top"]),
        "csynth_top": (_set_tag(csynth, "TopModelName", "mytop"), _rpt_design(rpt, part=part), ["mytop", "myproject"]),
    }
    for name, (xml, text, words) in cases.items():
        prj = _project(tmp_path / name, xml, text)
        kind, msg = _outcome(capsys, prj)
        assert kind == "refused", name
        assert "myproject_csynth.xml" in msg and "vivado_synth.rpt" in msg and all(w in msg for w in words), msg
    # agreeing reports (the part written with or without dashes), and separate projects: one record each
    same = _project(tmp_path / "same", csynth, _rpt_design(rpt, part="xcu250figd2104-2L-e"))
    kind, out = _outcome(capsys, same)
    assert kind == "parsed" and len(out) == 2
    two = tmp_path / "two"
    _project(two / "a", csynth, None)
    _project(two / "b", XML["vivado_hls"].read_text(), None)
    kind, out = _outcome(capsys, two)
    assert kind == "parsed" and {r.part for r in out} == {part, "xc7z020-clg400-1"}
