"""Vendor synthesis reports -> typed resource records.

Reads Vivado HLS (2019-2020, ``DSP48E`` tag) and Vitis HLS (2020.2+, ``DSP`` tag)
``*_csynth.xml`` files and Vivado ``report_utilization`` text reports
(``vivado_synth.rpt``). Every record names its tool, version, part and kind.

Every value read from a report passes :func:`validate_record` (called by ``ResourceRecord.fill_utilization``, the
last step of every producer of a record: the two parsers here and the open-source route) before it becomes a
figure. Rules and ranges:

- type: a field that is present holds a number (``undef``, ``-``, empty and ``<0.01`` read as absent); text
  that is not a number is refused, naming the field;
- range: resource counts (used and available) are finite, >= 0, whole (a Block RAM *tile* may be half: one RAMB18)
  and at most ``MAX_COUNT`` (1e9: 100x the largest FPGA, so only a damaged report gets there); clock periods are
  in [``MIN_CLOCK_NS``, ``MAX_CLOCK_NS``] ns (10 GHz to 1 kHz, config.py), a clock uncertainty below its period;
  units: a csynth section's ``<unit>`` scales its times (ps, ns, us, ms, s) and its cycle counts must be in clock
  cycles, any other unit is refused; latencies and intervals are whole cycles >= 0 below 2^32 - 1 (HLS writes
  2^32 - 1 for "undefined"); times are finite and >= 0;
- contradictions (two sources of the same fact disagree -> ``ReportError`` naming both): the part or the top
  function of two reports of one project (a ``vivado_synth.rpt`` and the C-synthesis reports below its folder:
  :func:`check_same_design`); best-case above
  worst-case latency or interval; a report's RealTime latency against cycles x clock period (1 % + one period);
  a report's Util% against used / available (0.01 points + 0.1 %); a Vivado row against the sum of its sub-rows
  (LUT as Logic + LUT as Memory, Register as Flip Flop + Register as Latch, RAMB36/FIFO + RAMB18 / 2); the same
  row, or the same resource under two tags (``DSP`` and ``DSP48E``), with two values;
- warnings the record carries (``extra["warnings"]``, printed too): a design that uses more of a resource than
  the part has (it does not fit), an estimated clock period above the target (timing not met).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import MAX_CLOCK_NS, MIN_CLOCK_NS
from ..console import warn
from ..errors import TriggerKDError

RESOURCES = ("dsp", "lut", "ff", "bram_18k", "uram")
KINDS = ("hls-estimate", "post-synthesis", "open-source-synthesis", "model-estimate", "da4ml-estimate")
LABELS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram_18k": "BRAM_18K", "uram": "URAM"}
MAX_COUNT = 1e9  # of any resource: the largest FPGAs hold ~1e7 LUTs; even an HLS over-estimate stays far below
MAX_CYCLES = 2**32 - 1  # HLS counts cycles in 32 bits and writes 2^32 - 1 for "undefined"
UTIL_TOL_POINTS = 0.01  # reports print Util% with two decimals
LATENCY_REL_TOL = 0.01  # RealTime latencies are printed with 3-4 significant digits


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
        """utilization_pct from used / available where the report did not give it, then :func:`validate_record`
        (every producer of a record calls this last)."""
        _check_counts(self, _where(self))  # no percentage from a negative or NaN count
        for key in RESOURCES:
            used, avail = getattr(self, key), self.available.get(key)
            if key not in self.utilization_pct and used is not None and avail:
                self.utilization_pct[key] = round(100.0 * used / avail, 4)
        validate_record(self)


# ----------------------------------------------------------------------------- validation
def _show(value) -> str:
    """A value from a report, on one line."""
    text = value if isinstance(value, str) else format(value, "g") if isinstance(value, float) else str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _where(rec: "ResourceRecord") -> str:
    return str(rec.extra.get("report") or rec.source or rec.tool or "resource record").replace("\n", " ")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_count(value, what: str, where: str, half: bool = False, limit: float = MAX_COUNT):
    """A count read from outside (a report, a Yosys log): None, or a finite whole number in [0, limit]
    (``half``: multiples of 0.5, a Block RAM tile holding one RAMB18). Raises ReportError naming it."""
    if value is None:
        return None
    if not _is_number(value):
        raise ReportError(f"{where}: {what} is {_show(value)!r}, not a number; the report is damaged")
    if value != value or value in (float("inf"), float("-inf")):
        raise ReportError(f"{where}: {what} is {_show(value)}, not a finite number; the report is damaged")
    if value < 0:
        raise ReportError(f"{where}: {what} is {_show(value)}: a resource count cannot be below zero; the report "
                          f"is damaged or not written by the tool")
    if value > limit:
        raise ReportError(f"{where}: {what} is {_show(value)}, above {limit:.3g}, more than any FPGA holds; the "
                          f"report is damaged")
    step = 0.5 if half else 1.0
    if float(value) / step != int(float(value) / step):
        raise ReportError(f"{where}: {what} is {_show(value)}, not a whole {'half ' if half else ''}count; the "
                          f"report is damaged")
    return value


def _check_time(value, what: str, where: str, positive: bool = False, limit: float | None = None):
    if value is None:
        return None
    if not _is_number(value) or value != value or value in (float("inf"), float("-inf")):
        raise ReportError(f"{where}: {what} is {_show(value)}, not a finite number; the report is damaged")
    if value < 0 or (positive and value == 0):
        raise ReportError(f"{where}: {what} is {_show(value)}: it must be {'above' if positive else 'at least'} "
                          f"zero; the report is damaged")
    if limit is not None and value > limit:
        raise ReportError(f"{where}: {what} is {_show(value)} ns, above {limit:g} ns (a clock below 1 kHz); the "
                          f"report is damaged")
    return value


def _check_clock(value, what: str, where: str):
    """A clock period in ns read from a report: None, or finite in [MIN_CLOCK_NS, MAX_CLOCK_NS]."""
    value = _check_time(value, what, where, positive=True)
    if value is not None and not MIN_CLOCK_NS <= value <= MAX_CLOCK_NS:
        raise ReportError(f"{where}: {what} is {_show(value)} ns, outside [{MIN_CLOCK_NS:g}, {MAX_CLOCK_NS:g}] ns "
                          f"(no FPGA is clocked at 10 GHz or above, or below 1 kHz); the report is damaged or its "
                          f"unit is not ns")
    return value


def _check_counts(rec: "ResourceRecord", where: str) -> None:
    for key in RESOURCES:
        check_count(getattr(rec, key), f"{LABELS[key]} used", where)
    for key, value in rec.available.items():
        check_count(value, f"{LABELS.get(key, key)} available", where)


def validate_record(rec: "ResourceRecord") -> "ResourceRecord":
    """Check every figure of ``rec`` against its type, its physical range and the other figures that state the
    same fact (module docstring); raise ReportError (one line, naming the field and the report) or record a
    warning in ``rec.extra["warnings"]``."""
    where = _where(rec)
    pending: list[str] = []  # warnings, recorded and printed once every rule has passed
    if rec.kind not in KINDS:
        raise ReportError(f"{where}: unknown record kind {_show(rec.kind)!r}; expected one of {list(KINDS)}")
    _check_counts(rec, where)
    for key, pct in rec.utilization_pct.items():
        label = LABELS.get(key, key)
        _check_time(pct, f"{label} utilization %", where)
        used, avail = getattr(rec, key, None), rec.available.get(key)
        if used is not None and avail:
            computed = 100.0 * used / avail
            if abs(pct - computed) > UTIL_TOL_POINTS + 1e-3 * computed:
                raise ReportError(f"{where}: {label} utilization {_show(pct)} % contradicts used / available = "
                                  f"{_show(used)} / {_show(avail)} = {computed:.4g} %; the report is damaged")
    for key in RESOURCES:
        used, avail = getattr(rec, key), rec.available.get(key)
        if used is not None and avail is not None and used > avail:
            pct = f" ({100.0 * used / avail:.1f} %)" if avail else ""
            pending.append(f"{LABELS[key]} {_show(used)} of {_show(avail)} available{pct}: the design does not "
                           f"fit {rec.part or 'the part'}")
    target = _check_clock(rec.clock_target_ns, "target clock period", where)
    est = _check_clock(rec.clock_estimated_ns, "estimated clock period", where)
    if target is not None and est is not None and est > target:
        pending.append(f"estimated clock period {_show(est)} ns is above the target {_show(target)} ns: timing "
                       f"is not met")
    for lo_name, hi_name, lo_key, hi_key in (("Best-caseLatency", "Worst-caseLatency", "latency_min_cycles",
                                              "latency_max_cycles"),
                                             ("Interval-min", "Interval-max", "interval_min", "interval_max")):
        lo, hi = getattr(rec, lo_key), getattr(rec, hi_key)
        for name, v in ((lo_name, lo), (hi_name, hi)):
            if v is not None:
                check_count(v, f"{name} (cycles)", where, limit=MAX_CYCLES - 1)
        if lo is not None and hi is not None and lo > hi:
            raise ReportError(f"{where}: {lo_name} {_show(lo)} is above {hi_name} {_show(hi)} (cycles): the two "
                              f"contradict each other; the report is damaged")
    lo_ns = _check_time(rec.latency_min_ns, "best-case latency (ns)", where)
    hi_ns = _check_time(rec.latency_max_ns, "worst-case latency (ns)", where)
    if lo_ns is not None and hi_ns is not None and lo_ns > hi_ns:
        raise ReportError(f"{where}: best-case latency {_show(lo_ns)} ns is above the worst case {_show(hi_ns)} ns: "
                          f"the two contradict each other; the report is damaged")
    if str(rec.extra.get("latency_ns_from", "")).startswith("report"):
        clocks = [c for c in (target, est) if c is not None]
        for name, ns, cycles in (("Best-case", lo_ns, rec.latency_min_cycles),
                                 ("Worst-case", hi_ns, rec.latency_max_cycles)):
            if ns is None or cycles is None or not clocks:
                continue
            if not any(abs(ns - cycles * c) <= LATENCY_REL_TOL * cycles * c + c for c in clocks):
                raise ReportError(f"{where}: {name}RealTimeLatency {_show(ns)} ns contradicts {name}Latency "
                                  f"{_show(cycles)} cycles x the clock period {_show(clocks[0])} ns = "
                                  f"{cycles * clocks[0]:.6g} ns; the report is damaged")
    for key in ("carry8", "carry4", "bram_tiles"):
        if key in rec.extra:
            check_count(rec.extra[key], key, where, half=key == "bram_tiles")
    for name, n in (rec.extra.get("primitives") or {}).items():
        check_count(n, f"primitive {_show(name)}", where)
    for msg in pending:
        warnings = rec.extra.setdefault("warnings", [])
        if msg not in warnings:
            warnings.append(msg)
            warn(f"{where}: {msg}")
    return rec


# ----------------------------------------------------------------------------- helpers
_ABSENT = ("", "-", "undef", "n/a", "na", "none")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.I | re.ASCII)


def _number(text: str | None, what: str | None = None, where: str | None = None) -> int | float | None:
    """'12' -> 12, '0.5' -> 0.5; 'undef' / '-' / '' / None / '<0.01' -> None (absent). Other text is refused with
    ``what`` and ``where`` named (without them: None, the lenient reading of discovery)."""
    if text is None:
        return None
    text = text.strip().rstrip("*").strip()
    if text.lower() in _ABSENT or text.startswith("<"):
        return None
    if not _NUMBER.fullmatch(text):  # ASCII only: float() would also take other scripts' digits
        if what is None:
            return None
        raise ReportError(f"{where}: {what} is {_show(text)!r}, not a number; the report is damaged")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        return value  # refused by validate_record, naming the field
    return int(value) if value.is_integer() and "e" not in text.lower() else value


_TIME_UNITS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9, "sec": 1e9}


def _time_ns(text: str | None, what: str = "time", where: str = "") -> float | None:
    """'75.000 ns' / '0.915 us' / '0.480 ms' -> nanoseconds; 'undef' / '-' / '' -> None; other text refused."""
    if text is None or text.strip().lower() in _ABSENT:
        return None
    m = re.fullmatch(r"\s*(\S+?)\s*(ps|ns|us|ms|sec|s)\s*", text)
    if m and _NUMBER.fullmatch(m.group(1)):
        value = float(m.group(1)) * _TIME_UNITS[m.group(2)]
    else:
        raise ReportError(f"{where}: {what} is {_show(text)!r}, not a time (a number and ps/ns/us/ms/s); the "
                          f"report is damaged") from None
    return round(value, 6) if value == value and abs(value) != float("inf") else value


def _text(node: ET.Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    return found.text.strip() if found is not None and found.text is not None else None


def _available_expected(rec: ResourceRecord, name: str) -> dict[str, Any]:
    """What the part has of each resource the design uses: one entry ``name`` when the report gives none, else
    one per resource (a percentage needs both)."""
    if not rec.available:
        return {name: rec.available}
    return {f"{LABELS[k]} available": rec.available.get(k) for k in ("lut", "ff", "dsp", "bram_18k")
            if getattr(rec, k) is not None}


def _note_missing(rec: ResourceRecord, path: Path, expected: dict[str, Any]) -> None:
    """Name the fields a complete report has but this one lacks (a truncated file, an incomplete run)."""
    missing = [name for name, value in expected.items() if value in (None, {}, "")]
    if missing:
        rec.extra["missing_fields"] = missing
        warn(f"{path}: the report lacks {', '.join(missing)} (truncated, or from an incomplete run?); "
             f"those figures are n/a")


# ----------------------------------------------------------------------------- csynth.xml
_XML_RESOURCES = {"bram_18k": ("BRAM_18K",), "dsp": ("DSP", "DSP48E"), "ff": ("FF",), "lut": ("LUT",), "uram": ("URAM",)}


def _xml_resource(node: ET.Element | None, tags: tuple[str, ...], what: str, where: str):
    """One resource under one of its tags; two tags with two values contradict each other."""
    found = {tag: _number(_text(node, tag), f"{what} <{tag}>", where) for tag in tags}
    found = {tag: v for tag, v in found.items() if v is not None}
    if len(set(found.values())) > 1:
        a, b = list(found.items())[:2]
        raise ReportError(f"{where}: {what} <{a[0]}> {_show(a[1])} and <{b[0]}> {_show(b[1])} give two values for "
                          f"the same resource; the report is damaged")
    return next(iter(found.values()), None)


def _xml_time_scale(root: ET.Element, section: str, where: str) -> float:
    """What one of ``section``'s times is in ns, from its ``<unit>`` (absent: ns, as every HLS version writes);
    a unit that is no time is refused."""
    unit = _text(root, f"{section}/unit")
    if unit is None or unit.strip() == "":
        return 1.0
    if unit.strip().lower() not in _TIME_UNITS:
        raise ReportError(f"{where}: <{section}><unit> is {_show(unit)!r}, not a unit of time (ps, ns, us, ms, s); "
                          f"the report is damaged")
    return _TIME_UNITS[unit.strip().lower()]


def _xml_clocks(root: ET.Element, where: str) -> tuple[float | None, float | None, float | None]:
    """(target, estimated, uncertainty) clock in ns, each in its section's unit, each in range, the uncertainty
    below the target (part of the period)."""
    def clock(section: str, tag: str, scale: float) -> float | None:
        value = _number(_text(root, f"{section}/{tag}"), tag, where)
        return None if value is None else _check_clock(round(float(value) * scale, 9), tag, where)

    user = _xml_time_scale(root, "UserAssignments", where)
    target = clock("UserAssignments", "TargetClockPeriod", user)
    est = clock("PerformanceEstimates/SummaryOfTimingAnalysis", "EstimatedClockPeriod",
                _xml_time_scale(root, "PerformanceEstimates/SummaryOfTimingAnalysis", where))
    unc = _number(_text(root, "UserAssignments/ClockUncertainty"), "ClockUncertainty", where)
    if unc is not None:
        unc = _check_time(round(float(unc) * user, 9), "ClockUncertainty", where, limit=MAX_CLOCK_NS)
        if target is not None and unc >= target:
            raise ReportError(f"{where}: ClockUncertainty {_show(unc)} ns is not below TargetClockPeriod "
                              f"{_show(target)} ns (the uncertainty is a part of the period); the report is damaged")
    lat_unit = _text(root, "PerformanceEstimates/SummaryOfOverallLatency/unit")
    if lat_unit and lat_unit.strip().lower() not in ("clock cycles", "cycles"):
        raise ReportError(f"{where}: <SummaryOfOverallLatency><unit> is {_show(lat_unit)!r}: its latencies and "
                          f"intervals are read as clock cycles and no other unit is understood; the report is "
                          f"damaged or of an unknown format")
    return target, est, unc


def _csynth_root(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ReportError(f"HLS report not found: {path}") from None
    except IsADirectoryError:
        raise ReportError(f"{path} is a directory, not a csynth XML report") from None
    except ET.ParseError as exc:
        raise ReportError(f"{path} is not a readable csynth XML report ({exc}); is the HLS run complete?") from None
    if root.find("PerformanceEstimates") is None or root.find("AreaEstimates/Resources") is None:
        raise ReportError(f"{path} has no PerformanceEstimates/AreaEstimates: not a csynth XML report")
    return root


def parse_csynth_xml(path: str | Path) -> ResourceRecord:
    """One Vivado/Vitis HLS C-synthesis XML report -> ResourceRecord (kind ``hls-estimate``), validated."""
    path = Path(path)
    where = str(path)
    root = _csynth_root(path)
    res = root.find("AreaEstimates/Resources")
    avail_node = root.find("AreaEstimates/AvailableResources")
    tool = "Vivado HLS" if res.find("DSP48E") is not None else "Vitis HLS"
    version = _text(root, "ReportVersion/Version")
    target, est, unc = _xml_clocks(root, where)
    lat = root.find("PerformanceEstimates/SummaryOfOverallLatency")

    def num(node, tag):
        return _number(_text(node, tag), tag, where)

    rec = ResourceRecord(
        part=_text(root, "UserAssignments/Part"), tool=tool, tool_version=version, source=f"{tool} {version} csynth",
        kind="hls-estimate", clock_target_ns=target, clock_estimated_ns=est,
        latency_min_cycles=num(lat, "Best-caseLatency"), latency_max_cycles=num(lat, "Worst-caseLatency"),
        interval_min=num(lat, "Interval-min"), interval_max=num(lat, "Interval-max"),
    )
    rec.extra["report"] = where
    best_ns = _time_ns(_text(lat, "Best-caseRealTimeLatency"), "Best-caseRealTimeLatency", where)
    worst_ns = _time_ns(_text(lat, "Worst-caseRealTimeLatency"), "Worst-caseRealTimeLatency", where)
    if best_ns is not None or worst_ns is not None:
        rec.latency_min_ns, rec.latency_max_ns = best_ns, worst_ns
        rec.extra["latency_ns_from"] = "report (Best/Worst-caseRealTimeLatency)"
    elif rec.clock_target_ns is not None:
        for tag, v in (("Best-caseLatency", rec.latency_min_cycles), ("Worst-caseLatency", rec.latency_max_cycles)):
            check_count(v, f"{tag} (cycles)", where, limit=MAX_CYCLES - 1)
        rec.latency_min_ns = _times(rec.latency_min_cycles, rec.clock_target_ns)
        rec.latency_max_ns = _times(rec.latency_max_cycles, rec.clock_target_ns)
        rec.extra["latency_ns_from"] = "computed: cycles x target clock period (no RealTime latency in the report)"
    for key, tags in _XML_RESOURCES.items():
        used = _xml_resource(res, tags, f"{LABELS[key]} used", where)
        if used is not None:
            setattr(rec, key, used)
        avail = _xml_resource(avail_node, tags, f"{LABELS[key]} available", where)
        if avail is not None:
            rec.available[key] = avail
    for key, tag in (("top", "UserAssignments/TopModelName"), ("product_family", "UserAssignments/ProductFamily"),
                     ("pipeline_type", "PerformanceEstimates/PipelineType")):
        value = _text(root, tag)
        if value:
            rec.extra[key] = value
    if unc is not None:
        rec.extra["clock_uncertainty_ns"] = unc
    avg = num(lat, "Average-caseLatency")
    if avg is not None:
        rec.extra["latency_average_cycles"] = check_count(avg, "Average-caseLatency (cycles)", where,
                                                          limit=MAX_CYCLES - 1)
    rec.fill_utilization()  # validates the record
    _note_missing(rec, path, {
        "Part": rec.part, "TargetClockPeriod": rec.clock_target_ns, "Best-caseLatency": rec.latency_min_cycles,
        "Worst-caseLatency": rec.latency_max_cycles, "Interval-min": rec.interval_min,
        "Interval-max": rec.interval_max, "LUT": rec.lut, "FF": rec.ff, "DSP": rec.dsp, "BRAM_18K": rec.bram_18k,
        **_available_expected(rec, "AvailableResources")})
    return rec


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
# a row and the sub-rows that add up to it (Vivado prints both: two statements of one count)
_RPT_SUMS = (
    (("CLB LUTs", "Slice LUTs"), (("LUT as Logic", 1.0), ("LUT as Memory", 1.0))),
    (("CLB Registers", "Slice Registers"), (("Register as Flip Flop", 1.0), ("Register as Latch", 1.0))),
    (("Block RAM Tile",), (("RAMB36/FIFO", 1.0), ("RAMB18", 0.5))),
)

_RPT_READ = {n for names in _RPT_ROWS.values() for n in names} | {sub for _, subs in _RPT_SUMS for sub, _ in subs}


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
    """A Vivado ``report_utilization`` text report (e.g. ``vivado_synth.rpt``) -> ResourceRecord, validated."""
    path = Path(path)
    where = str(path)
    text, header = _read_rpt(path)
    m = re.search(r"Vivado v\.?(\S+)", header.get("Tool Version", ""))
    version = m.group(1) if m else None
    raw, primitives = _rpt_cells(text, where)
    rows = _rpt_rows(raw, where)
    _check_rpt_sums(rows, where)
    found = {key: next((rows[n] for n in names if n in rows), None) for key, names in _RPT_ROWS.items()}
    if all(found[k] is None for k in ("lut", "ff", "dsp")):
        raise ReportError(f"{path}: no LUT/register/DSP rows found in the utilization tables")
    rec = _rpt_record(header, version, found, primitives, where)
    rec.fill_utilization()  # validates the record
    _note_missing(rec, path, {"Device": rec.part, "Tool Version": rec.tool_version, "LUTs": rec.lut,
                              "Registers": rec.ff, "DSPs": rec.dsp, "Block RAM Tile": rec.bram_18k,
                              **_available_expected(rec, "Available")})
    return rec


def _read_rpt(path: Path) -> tuple[str, dict[str, str]]:
    """The report's text and its header fields (``| Tool Version : ...``); refuses what is no utilization report."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise ReportError(f"Vivado utilization report not found: {path}") from None
    except IsADirectoryError:
        raise ReportError(f"{path} is a directory, not a Vivado utilization report") from None
    header = dict(re.findall(r"^\|\s*([A-Za-z ]+?)\s*:\s*(.*?)\s*$", text[:4000], flags=re.M))
    if "Utilization Design Information" not in text and "Command" not in header:
        raise ReportError(f"{path} is not a Vivado report_utilization report (no 'Utilization Design Information')")
    return text, header


def _rpt_cells(text: str, where: str) -> tuple[dict[str, tuple[str, str | None, str | None]], dict[str, int | float]]:
    """The utilization tables' rows as printed (row name -> (Used, Available, Util%)) and the primitives table
    (Ref Name -> Used); a row read twice with two Used values is refused."""
    raw: dict[str, tuple[str, str | None, str | None]] = {}
    primitives: dict[str, int | float] = {}
    for head, body in _tables(text.splitlines()):
        cols = {name: k for k, name in enumerate(head)}
        if "Ref Name" in cols and "Used" in cols:
            for r in body:
                if len(r) == len(head) and r[cols["Ref Name"]]:
                    primitives[r[cols["Ref Name"]]] = _number(r[cols["Used"]], f"primitive {r[cols['Ref Name']]} "
                                                              "Used", where)
            continue
        if not {"Site Type", "Used", "Available"} <= cols.keys():
            continue  # SLR tables and the like repeat row names with other meanings
        for r in body:
            if len(r) != len(head):
                continue
            name = r[cols["Site Type"]].rstrip("*").strip()
            if not name:
                continue
            cells = (r[cols["Used"]], r[cols["Available"]], r[cols["Util%"]] if "Util%" in cols else None)
            if name in _RPT_READ and name in raw and raw[name][0] != cells[0]:
                raise ReportError(f"{where}: the row '{_show(name)}' appears twice with Used {_show(raw[name][0])} "
                                  f"and {_show(cells[0])}: two values for one count; the report is damaged")
            raw.setdefault(name, cells)
    return raw, primitives


def _rpt_rows(raw: dict, where: str) -> dict:
    """The rows this reader uses, as numbers (Used, Available, Util%), each cell checked and Util% against
    Used / Available."""
    def row(name: str):
        used, avail, util = raw[name]
        return (_number(used, f"'{name}' Used", where), _number(avail, f"'{name}' Available", where),
                _number(util, f"'{name}' Util%", where))

    rows = {name: row(name) for name in raw if name in _RPT_READ}
    for name, (used, avail, util) in rows.items():  # every cell read, whether the record keeps it or not
        half = name in ("Block RAM Tile", "RAMB36/FIFO")
        check_count(used, f"'{name}' Used", where, half=half)
        check_count(avail, f"'{name}' Available", where)
        _check_time(util, f"'{name}' Util%", where)
        if used is not None and avail and util is not None:
            computed = 100.0 * used / avail
            if abs(util - computed) > UTIL_TOL_POINTS + 1e-3 * computed:
                raise ReportError(f"{where}: '{name}' Util% {_show(util)} contradicts Used / Available = "
                                  f"{_show(used)} / {_show(avail)} = {computed:.4g} %; the report is damaged")
    return rows


def _check_rpt_sums(rows: dict, where: str) -> None:
    """Refuse a total row (LUTs, registers, Block RAM tiles) that is not the sum of its sub-rows."""
    for totals, subs in _RPT_SUMS:
        total_name = next((n for n in totals if n in rows), None)
        if total_name is None or not all(sub in rows for sub, _ in subs):
            continue
        total = check_count(rows[total_name][0], f"'{total_name}' Used", where, half=True)
        parts = [(sub, check_count(rows[sub][0], f"'{sub}' Used", where), w) for sub, w in subs]
        if total is None or any(v is None for _, v, _ in parts):
            continue
        summed = sum(v * w for _, v, w in parts)
        if abs(summed - total) > 1e-9:
            terms = " + ".join(f"{sub} {_show(v)}{' / 2' if w != 1.0 else ''}" for sub, v, w in parts)
            raise ReportError(f"{where}: '{total_name}' Used {_show(total)} contradicts its sub-rows {terms} = "
                              f"{summed:g}; the report is damaged")


def _rpt_record(header: dict, version, found: dict, primitives: dict, where: str) -> ResourceRecord:
    """The record of the rows found (``_RPT_ROWS`` key -> (Used, Available, Util%) or None), before validation."""
    state = header.get("Design State")
    source = f"Vivado {version} synthesis" if state in (None, "Synthesized") else f"Vivado {version} utilization ({state})"
    rec = ResourceRecord(part=header.get("Device"), tool="Vivado", tool_version=version, source=source, kind="post-synthesis")
    rec.extra["report"] = where
    for key in ("lut", "ff", "dsp", "uram"):
        if found[key] is not None:
            used, avail, util = found[key]
            setattr(rec, key, used)
            if avail is not None:
                rec.available[key] = avail
            if util is not None:
                rec.utilization_pct[key] = float(util) if _is_number(util) else util
    if found["bram_tile"] is not None:  # one Block RAM tile = one RAMB36 = two RAMB18
        used, avail, util = found["bram_tile"]
        check_count(used, "'Block RAM Tile' Used", where, half=True)
        check_count(avail, "'Block RAM Tile' Available", where)
        rec.bram_18k = _number(str(used * 2)) if used is not None else None
        if avail is not None:
            rec.available["bram_18k"] = avail * 2
        if util is not None:
            rec.utilization_pct["bram_18k"] = float(util) if _is_number(util) else util
        rec.extra["bram_tiles"] = used
    for key in ("carry8", "carry4"):
        if found[key] is not None:
            rec.extra[key] = found[key][0]
    if primitives:
        rec.extra["primitives"] = primitives
    for key, name in (("top", "Design"), ("design_state", "Design State"), ("date", "Date")):
        if header.get(name):
            rec.extra[key] = header[name]
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


def _part_key(part: str) -> str:
    """A part name as compared: case and dashes aside (Vivado writes xc7z020clg400-1 for HLS's xc7z020-clg400-1)."""
    return part.replace("-", "").replace("_", "").lower()


def check_same_design(a: ResourceRecord, b: ResourceRecord) -> None:
    """Two reports of one design (HLS C synthesis and Vivado synthesis of one project) state its part and its top
    function each: where both give one, they must agree; else a ReportError naming both reports and both values."""
    for what, va, vb, key in (("part", a.part, b.part, _part_key),
                              ("top function", a.extra.get("top"), b.extra.get("top"), str)):
        if va and vb and key(str(va)) != key(str(vb)):
            raise ReportError(f"{_where(a)} and {_where(b)} are reports of one project but name two {what}s: "
                              f"{_show(va)} and {_show(vb)}; one is left from another build: remove it or rebuild, "
                              f"then pass each report file on its own")


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
        records = [parse_report(f)[0] for f in files]
        for rpt, post in zip(files, records):  # a vivado_synth.rpt and the C synthesis below its folder: one design
            if post.kind == "post-synthesis":
                for f, hls in zip(files, records):
                    if hls.kind == "hls-estimate" and rpt.parent in f.parents:
                        check_same_design(hls, post)
        return records
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
    for w in r.extra.get("warnings") or ():
        lines.append(f"  warning    {w}")
    return "\n".join(lines)
