"""Vendor synthesis reports -> typed resource records.

Reads Vivado HLS (2019-2020, ``DSP48E`` tag) and Vitis HLS (2020.2+, ``DSP`` tag)
``*_csynth.xml`` files and Vivado ``report_utilization`` text reports
(``vivado_synth.rpt``). Every record names its tool, version, part and kind.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..console import warn
from ..errors import TriggerKDError

RESOURCES = ("dsp", "lut", "ff", "bram_18k", "uram")
KINDS = ("hls-estimate", "post-synthesis", "open-source-synthesis", "model-estimate")


class ReportError(TriggerKDError):
    """A report is missing or cannot be read."""


@dataclass
class ResourceRecord:
    """Resources and latency of one design, with where the numbers came from."""

    part: str | None = None
    tool: str | None = None
    tool_version: str | None = None
    source: str = ""
    kind: str = "hls-estimate"
    clock_target_ns: float | None = None
    clock_estimated_ns: float | None = None
    latency_min_cycles: int | None = None
    latency_max_cycles: int | None = None
    latency_min_ns: float | None = None
    latency_max_ns: float | None = None
    interval_min: int | None = None
    interval_max: int | None = None
    dsp: int | float | None = None
    lut: int | float | None = None
    ff: int | float | None = None
    bram_18k: int | float | None = None
    uram: int | float | None = None
    available: dict[str, int | float] = field(default_factory=dict)
    utilization_pct: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def fill_utilization(self) -> None:
        """utilization_pct from used / available where the report did not give it."""
        for key in RESOURCES:
            used, avail = getattr(self, key), self.available.get(key)
            if key not in self.utilization_pct and used is not None and avail:
                self.utilization_pct[key] = round(100.0 * used / avail, 4)


# ----------------------------------------------------------------------------- helpers
def _number(text: str | None) -> int | float | None:
    """'12' -> 12, '0.5' -> 0.5, 'undef' / '-' / '' / None -> None."""
    if text is None:
        return None
    text = text.strip().rstrip("*").strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "e" not in text.lower() else value


_TIME_UNITS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _time_ns(text: str | None) -> float | None:
    """'75.000 ns' / '0.915 us' / '0.480 ms' -> nanoseconds."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(ps|ns|us|ms|s)\s*", text)
    if not m:
        return None
    return round(float(m.group(1)) * _TIME_UNITS[m.group(2)], 6)


def _text(node: ET.Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    return found.text.strip() if found is not None and found.text is not None else None


def _note_missing(rec: ResourceRecord, path: Path, expected: dict[str, Any]) -> None:
    """Name the fields a complete report has but this one lacks (a truncated file, an incomplete run)."""
    missing = [name for name, value in expected.items() if value in (None, {}, "")]
    if missing:
        rec.extra["missing_fields"] = missing
        warn(f"{path}: the report lacks {', '.join(missing)} (truncated, or from an incomplete run?); "
             f"those figures are n/a")


# ----------------------------------------------------------------------------- csynth.xml
_XML_RESOURCES = {"bram_18k": ("BRAM_18K",), "dsp": ("DSP", "DSP48E"), "ff": ("FF",), "lut": ("LUT",), "uram": ("URAM",)}


def parse_csynth_xml(path: str | Path) -> ResourceRecord:
    """One Vivado/Vitis HLS C-synthesis XML report -> ResourceRecord (kind ``hls-estimate``)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ReportError(f"HLS report not found: {path}") from None
    except ET.ParseError as exc:
        raise ReportError(f"{path} is not a readable csynth XML report ({exc}); is the HLS run complete?") from None
    res = root.find("AreaEstimates/Resources")
    if root.find("PerformanceEstimates") is None or res is None:
        raise ReportError(f"{path} has no PerformanceEstimates/AreaEstimates: not a csynth XML report")
    avail_node = root.find("AreaEstimates/AvailableResources")
    tool = "Vivado HLS" if res.find("DSP48E") is not None else "Vitis HLS"
    version = _text(root, "ReportVersion/Version")
    target = _number(_text(root, "UserAssignments/TargetClockPeriod"))
    lat = root.find("PerformanceEstimates/SummaryOfOverallLatency")
    rec = ResourceRecord(
        part=_text(root, "UserAssignments/Part"),
        tool=tool,
        tool_version=version,
        source=f"{tool} {version} csynth",
        kind="hls-estimate",
        clock_target_ns=float(target) if target is not None else None,
        clock_estimated_ns=_float(_number(_text(root, "PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod"))),
        latency_min_cycles=_number(_text(lat, "Best-caseLatency")),
        latency_max_cycles=_number(_text(lat, "Worst-caseLatency")),
        interval_min=_number(_text(lat, "Interval-min")),
        interval_max=_number(_text(lat, "Interval-max")),
    )
    best_ns, worst_ns = _time_ns(_text(lat, "Best-caseRealTimeLatency")), _time_ns(_text(lat, "Worst-caseRealTimeLatency"))
    if best_ns is not None or worst_ns is not None:
        rec.latency_min_ns, rec.latency_max_ns = best_ns, worst_ns
        rec.extra["latency_ns_from"] = "report (Best/Worst-caseRealTimeLatency)"
    elif rec.clock_target_ns is not None:
        rec.latency_min_ns = _times(rec.latency_min_cycles, rec.clock_target_ns)
        rec.latency_max_ns = _times(rec.latency_max_cycles, rec.clock_target_ns)
        rec.extra["latency_ns_from"] = "computed: cycles x target clock period (no RealTime latency in the report)"
    for key, tags in _XML_RESOURCES.items():
        for tag in tags:
            used = _number(_text(res, tag))
            if used is not None:
                setattr(rec, key, used)
            avail = _number(_text(avail_node, tag))
            if avail is not None:
                rec.available[key] = avail
    rec.fill_utilization()
    for key, tag in (("top", "UserAssignments/TopModelName"), ("product_family", "UserAssignments/ProductFamily"),
                     ("pipeline_type", "PerformanceEstimates/PipelineType")):
        value = _text(root, tag)
        if value:
            rec.extra[key] = value
    unc = _number(_text(root, "UserAssignments/ClockUncertainty"))
    if unc is not None:
        rec.extra["clock_uncertainty_ns"] = float(unc)
    avg = _number(_text(lat, "Average-caseLatency"))
    if avg is not None:
        rec.extra["latency_average_cycles"] = avg
    rec.extra["report"] = str(path)
    _note_missing(rec, path, {
        "Part": rec.part, "TargetClockPeriod": rec.clock_target_ns, "Best-caseLatency": rec.latency_min_cycles,
        "Worst-caseLatency": rec.latency_max_cycles, "Interval-min": rec.interval_min,
        "Interval-max": rec.interval_max, "LUT": rec.lut, "FF": rec.ff, "DSP": rec.dsp, "BRAM_18K": rec.bram_18k,
        "AvailableResources": rec.available})
    return rec


def _float(v):
    return float(v) if v is not None else None


def _times(cycles, clock):
    return None if cycles is None else round(cycles * clock, 6)


# ----------------------------------------------------------------------------- vivado_synth.rpt
_RPT_ROWS = {
    "lut": ("CLB LUTs", "Slice LUTs"),
    "ff": ("CLB Registers", "Slice Registers"),
    "bram_tile": ("Block RAM Tile",),
    "uram": ("URAM",),
    "dsp": ("DSPs",),
    "carry8": ("CARRY8",),
    "carry4": ("CARRY4",),
}


def _split_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(lines: list[str]):
    """Yield (header cells, [row cells]) for every ``+---+`` framed table."""
    i = 0
    while i < len(lines):
        if lines[i].startswith("+-") and i + 2 < len(lines) and lines[i + 1].startswith("|") and lines[i + 2].startswith("+-"):
            header = _split_row(lines[i + 1])
            rows, j = [], i + 3
            while j < len(lines) and (lines[j].startswith("|") or lines[j].startswith("+-")):
                if lines[j].startswith("|"):
                    rows.append(_split_row(lines[j]))
                j += 1
            yield header, rows
            i = j
        else:
            i += 1


def parse_vivado_synth_rpt(path: str | Path) -> ResourceRecord:
    """A Vivado ``report_utilization`` text report (e.g. ``vivado_synth.rpt``) -> ResourceRecord."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise ReportError(f"Vivado utilization report not found: {path}") from None
    header = dict(re.findall(r"^\|\s*([A-Za-z ]+?)\s*:\s*(.*?)\s*$", text[:4000], flags=re.M))
    if "Utilization Design Information" not in text and "Command" not in header:
        raise ReportError(f"{path} is not a Vivado report_utilization report (no 'Utilization Design Information')")
    m = re.search(r"Vivado v\.?(\S+)", header.get("Tool Version", ""))
    version = m.group(1) if m else None
    state = header.get("Design State")
    rows: dict[str, tuple[Any, Any, Any]] = {}
    primitives: dict[str, int | float] = {}
    for head, body in _tables(text.splitlines()):
        cols = {name: k for k, name in enumerate(head)}
        if "Ref Name" in cols and "Used" in cols:
            for r in body:
                if len(r) == len(head) and r[cols["Ref Name"]]:
                    primitives[r[cols["Ref Name"]]] = _number(r[cols["Used"]])
            continue
        if not {"Site Type", "Used", "Available"} <= cols.keys():
            continue  # SLR tables and the like repeat row names with other meanings
        for r in body:
            if len(r) != len(head):
                continue
            name = r[cols["Site Type"]].rstrip("*").strip()
            if name and name not in rows:
                util = _number(r[cols["Util%"]]) if "Util%" in cols else None
                rows[name] = (_number(r[cols["Used"]]), _number(r[cols["Available"]]), util)
    found = {key: next((rows[n] for n in names if n in rows), None) for key, names in _RPT_ROWS.items()}
    if all(found[k] is None for k in ("lut", "ff", "dsp")):
        raise ReportError(f"{path}: no LUT/register/DSP rows found in the utilization tables")
    source = f"Vivado {version} synthesis" if state in (None, "Synthesized") else f"Vivado {version} utilization ({state})"
    rec = ResourceRecord(part=header.get("Device"), tool="Vivado", tool_version=version, source=source, kind="post-synthesis")
    for key in ("lut", "ff", "dsp", "uram"):
        if found[key] is not None:
            used, avail, util = found[key]
            setattr(rec, key, used)
            if avail is not None:
                rec.available[key] = avail
            if util is not None:
                rec.utilization_pct[key] = float(util)
    if found["bram_tile"] is not None:  # one Block RAM tile = one RAMB36 = two RAMB18
        used, avail, util = found["bram_tile"]
        rec.bram_18k = _number(str(used * 2)) if used is not None else None
        if avail is not None:
            rec.available["bram_18k"] = avail * 2
        if util is not None:
            rec.utilization_pct["bram_18k"] = float(util)
        rec.extra["bram_tiles"] = used
    rec.fill_utilization()
    for key in ("carry8", "carry4"):
        if found[key] is not None:
            rec.extra[key] = found[key][0]
    if primitives:
        rec.extra["primitives"] = primitives
    for key, name in (("top", "Design"), ("design_state", "Design State"), ("date", "Date")):
        if header.get(name):
            rec.extra[key] = header[name]
    rec.extra["report"] = str(path)
    _note_missing(rec, path, {"Device": rec.part, "Tool Version": rec.tool_version, "LUTs": rec.lut,
                              "Registers": rec.ff, "DSPs": rec.dsp, "Block RAM Tile": rec.bram_18k})
    return rec


# ----------------------------------------------------------------------------- discovery
def _top_csynth(report_dir: Path) -> Path | None:
    """The top function's ``<top>_csynth.xml`` in one ``syn/report`` directory (hls4ml writes one per function)."""
    candidates = sorted(report_dir.glob("*_csynth.xml"))
    if not candidates:
        return None
    names = []
    summary = report_dir / "csynth.xml"  # Vitis HLS writes the top's report here too
    if summary.is_file():
        try:
            names.append(_text(ET.parse(summary).getroot(), "UserAssignments/TopModelName"))
        except ET.ParseError:
            pass
    parts = report_dir.resolve().parts
    names += [p[: -len("_prj")] for p in reversed(parts) if p.endswith("_prj")]
    for name in names:
        if name and (report_dir / f"{name}_csynth.xml").is_file():
            return report_dir / f"{name}_csynth.xml"
    if len(candidates) == 1:
        return candidates[0]
    raise ReportError(f"cannot tell the top function's report among {len(candidates)} files in {report_dir} "
                      f"(no csynth.xml and no <name>_prj folder); pass the *_csynth.xml file itself")


def find_reports(directory: Path) -> list[Path]:
    """Top-level csynth XML reports and ``vivado_synth.rpt`` files below ``directory``."""
    found = []
    for report_dir in sorted({p.parent for p in directory.rglob("syn/report/*_csynth.xml")}):
        top = _top_csynth(report_dir)
        if top is not None:
            found.append(top)
    found += sorted(directory.rglob("vivado_synth.rpt"))
    return found


def parse_report(path: str | Path) -> list[ResourceRecord]:
    """An HLS project directory, a ``*_csynth.xml`` or a Vivado ``.rpt`` -> records (HLS first)."""
    path = Path(path)
    if path.is_dir():
        files = find_reports(path)
        if not files:
            raise ReportError(
                f"no synthesis report found under {path}: looked for */syn/report/<top>_csynth.xml "
                f"(Vivado/Vitis HLS C synthesis) and vivado_synth.rpt (Vivado logic synthesis); "
                f"run the HLS build first or pass a report file")
        return [parse_report(f)[0] for f in files]
    if not path.exists():
        raise ReportError(f"report not found: {path}")
    if path.suffix.lower() == ".xml":
        return [parse_csynth_xml(path)]
    if path.suffix.lower() in (".rpt", ".txt"):
        return [parse_vivado_synth_rpt(path)]
    raise ReportError(f"{path}: unknown report type; expected an HLS project directory, a *_csynth.xml or a Vivado .rpt")


# ----------------------------------------------------------------------------- text
def _fmt(v, spec: str = "g") -> str:
    if v is None:
        return "n/a"
    if spec == "g" and float(v).is_integer():
        return str(int(v))
    return format(v, spec)


def format_record(record: ResourceRecord) -> str:
    """A human-readable block: source, part, clock, latency, resource table."""
    r = record
    lines = [f"{r.source or r.tool or 'unknown source'}  [{r.kind}]",
             f"  part       {r.part or 'n/a'}"]
    if r.clock_target_ns is not None or r.clock_estimated_ns is not None:
        lines.append(f"  clock      target {_fmt(r.clock_target_ns)} ns, estimated {_fmt(r.clock_estimated_ns)} ns")
    if r.latency_max_cycles is not None:
        lines.append(f"  latency    {_fmt(r.latency_min_cycles)}-{_fmt(r.latency_max_cycles)} cycles "
                     f"({_fmt(r.latency_min_ns)}-{_fmt(r.latency_max_ns)} ns)")
    if r.interval_max is not None:
        lines.append(f"  interval   {_fmt(r.interval_min)}-{_fmt(r.interval_max)} cycles")
    lines.append(f"  {'resource':<10} {'used':>10} {'available':>11} {'util %':>8}")
    for key in ("lut", "ff", "dsp", "bram_18k", "uram"):
        pct = r.utilization_pct.get(key)
        lines.append(f"  {key.upper():<10} {_fmt(getattr(r, key)):>10} {_fmt(r.available.get(key)):>11} "
                     f"{_fmt(pct, '.2f') if pct is not None else 'n/a':>8}")
    for key in ("carry8", "carry4", "latency_ns_from", "report"):
        if key in r.extra:
            lines.append(f"  {key:<10} {r.extra[key]}")
    if r.extra.get("missing_fields"):
        lines.append(f"  missing    {', '.join(r.extra['missing_fields'])} (not in the report: truncated?)")
    return "\n".join(lines)
