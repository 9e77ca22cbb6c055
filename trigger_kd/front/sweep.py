"""The accuracy-per-LUT sweep as pure functions: the knob table, the point grid, the Pareto front and the pick.

Every point of a sweep is the model config with ``--set`` overrides (``Point.overrides``); nothing here runs a
stage. The knobs that trade accuracy for hardware depend on the student's framework (``KNOBS``): Brevitas and
QKeras students have uniform bit widths, so their knobs are the layer widths and the (weight, activation) bits;
a framework with learned bit widths (HGQ2, ``student.framework: hgq``) trades through its resource penalty
``student.ebops_beta`` instead. A new framework plugs in with one ``KNOBS`` entry (and an ``Axis`` if it has a
knob of its own).

Choices are made on VALIDATION AUC only (the front and the budget pick); test AUC is recorded, never used.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import TriggerKDError


class FrontError(TriggerKDError):
    """A sweep request that cannot be served (unknown knob, bad value, no point under the budget)."""


class NoPointFits(FrontError):
    """No point of the sweep meets the budget: nothing is picked."""


# ----------------------------------------------------------------------------- knobs
def _widths(student: Any) -> dict[str, tuple[int, ...]]:
    """The hidden-layer widths a width scale applies to, by config key."""
    if student.arch == "mlp":
        return {"mlp_hidden": tuple(student.mlp_hidden)}
    return {"phi_hidden": tuple(student.phi_hidden), "rho_hidden": tuple(student.rho_hidden)}


def _scaled(widths: tuple[int, ...], scale: float) -> tuple[int, ...]:
    if not all(math.isfinite(w * scale) for w in widths):
        raise FrontError(f"--points width={scale:g}: scales the widths {list(widths)} beyond any number; give a "
                         "scale such as 0.5, 1 or 2")
    return tuple(max(1, int(math.floor(w * scale + 0.5))) for w in widths)


def _width_overrides(student: Any, scale: float) -> list[str]:
    return [f"student.{k}=[{','.join(map(str, _scaled(v, scale)))}]" for k, v in _widths(student).items()]


def _width_label(student: Any, scale: float) -> str:
    return "w" + "_".join("-".join(map(str, _scaled(v, scale))) for v in _widths(student).values())


def _positive_float(text: str) -> float:
    v = float(text)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError("must be a positive number")
    return v


# (weight bits, activation bits) of a bits value given as one number: the activations keep 2 bits more, at least
# 6 (ReLU outputs ufixed<a, 3>: the measured quick-profile points of issue 23 were 6/8, 4/6 and 3/6)
def _bits_pair(text: str) -> tuple[int, int]:
    w, _, a = str(text).partition("/")
    wb = int(w)
    ab = int(a) if a else max(6, wb + 2)
    if wb < 2 or ab < 1:
        raise ValueError("weight bits must be >= 2 (signed) and activation bits >= 1")
    return wb, ab


def _bits_overrides(student: Any, v: tuple[int, int]) -> list[str]:
    out = [f"student.weight_bits={v[0]}", f"student.act_bits={v[1]}"]
    if student.act_int_bits > v[1]:
        out.append(f"student.act_int_bits={v[1]}")
    return out


@dataclass(frozen=True)
class Axis:
    """One knob: its default values, how a value is read from ``--points``, the overrides and label it gives."""

    name: str
    help: str
    default: tuple
    parse: Callable[[str], Any]
    overrides: Callable[[Any, Any], list[str]]  # (cfg.student, value) -> ["student.key=value", ...]
    label: Callable[[Any, Any], str]  # (cfg.student, value) -> short text for the point id and the plot
    family: bool = True  # False: the axis runs along each family's curve (widths); True: it names the family
    # True: its values scale the config's own (widths): a --set of those keys is the base it scales, not overridden
    relative: bool = False


WIDTH = Axis("width", "scale of every hidden layer width (0.5 halves them)", (0.5, 1.0, 2.0), _positive_float,
             _width_overrides, _width_label, family=False, relative=True)
BITS = Axis("bits", "uniform weight/activation bits: 'W' (activations max(6, W+2)) or 'W/A'",
            ((3, 6), (4, 6), (6, 8)), _bits_pair, _bits_overrides, lambda s, v: f"b{v[0]}a{v[1]}")
def _yaml_float(v: float) -> str:
    """A float as YAML 1.1 reads it back as a float (``1e-06`` would be a string there: ``1.0e-06``)."""
    text = repr(float(v))
    return text if "." in text or "e" not in text else text.replace("e", ".0e", 1)


BETA = Axis("beta", "HGQ2 resource penalty student.ebops_beta", (1e-6, 1e-5, 1e-4), _positive_float,
            lambda s, v: [f"student.ebops_beta={_yaml_float(v)}"], lambda s, v: f"beta{v:g}")

def _max_ebops(text: str) -> float | None:
    return None if str(text).strip().lower() in ("none", "null", "any") else _positive_float(text)


# HGQ2's kept epoch: the best validation AUC among the epochs within this many EBOPs (None: any epoch, the default)
MAX_EBOPS = Axis("max_ebops", "HGQ2: keep the best epoch with at most this many EBOPs, 'none' for any "
                 "(student.max_ebops)", (None,), _max_ebops,
                 lambda s, v: [] if v is None else [f"student.max_ebops={_yaml_float(v)}"],
                 lambda s, v: "" if v is None else f"e{v:g}")

def _inputs(text: str) -> bool:
    v = str(text).strip().lower()
    if v not in ("fixed", "learned"):
        raise ValueError("'fixed' (the first layer reads the whole input bus) or 'learned' (its own input widths)")
    return v == "learned"


# HGQ2's first layer: the fixed input bus as it is, or its own learned per-input widths (student.learn_input_bits)
INPUTS = Axis("inputs", "HGQ2: 'fixed' input bus or 'learned' per-input bit widths (student.learn_input_bits)",
              (False,), _inputs, lambda s, v: ["student.learn_input_bits=true"] if v else [],
              lambda s, v: "inl" if v else "")
AXES = {a.name: a for a in (WIDTH, BITS, BETA, MAX_EBOPS, INPUTS)}

# framework -> its knobs. hgq (learned bit widths) trades through the EBOPs penalty, not uniform bits.
KNOBS: dict[str, tuple[Axis, ...]] = {
    "brevitas": (WIDTH, BITS),
    "qkeras": (WIDTH, BITS),
    "hgq": (WIDTH, BETA, MAX_EBOPS, INPUTS),
}


def knobs_for(framework: str) -> tuple[Axis, ...]:
    if framework not in KNOBS:
        raise FrontError(f"no sweep knobs for student.framework '{framework}' (known: {', '.join(KNOBS)}); add its "
                         f"entry to KNOBS in trigger_kd/front/sweep.py")
    return KNOBS[framework]


def parse_points(specs: list[str] | tuple[str, ...] | None, framework: str) -> dict[str, tuple]:
    """``["width=0.5,1", "bits=3,4/6"]`` -> {axis: values}; axes not named keep their defaults."""
    axes = {a.name: a for a in knobs_for(framework)}
    out: dict[str, tuple] = {}
    for spec in specs or ():
        name, eq, text = str(spec).partition("=")
        name = name.strip()
        if not eq or name not in axes:
            raise FrontError(f"--points {spec!r}: expected AXIS=V1,V2,... with AXIS one of "
                             f"{', '.join(f'{a.name} ({a.help})' for a in axes.values())}")
        if name in out:
            raise FrontError(f"--points {spec!r}: the {name} axis is given twice; give all its values once, "
                             f"e.g. {name}=V1,V2")
        values = []
        for item in (t.strip() for t in text.split(",")):
            try:
                values.append(axes[name].parse(item))
            except (TypeError, ValueError) as exc:
                raise FrontError(f"--points {spec!r}: {item!r} is not a valid {name} value ({exc})") from None
        if not values:
            raise FrontError(f"--points {spec!r}: no values")
        out[name] = tuple(dict.fromkeys(values))
    return out


@dataclass(frozen=True)
class Point:
    """One point of the sweep: the model config with ``overrides``; its run directory is ``points/<id>``."""

    id: str
    family: str  # the curve it belongs to in the plot (the non-width knobs), e.g. "b4a6"
    knobs: dict = field(hash=False, compare=False)  # axis name -> value
    overrides: tuple[str, ...] = ()
    by_axis: dict = field(default_factory=dict, hash=False, compare=False)  # axis name -> the overrides it gives


def point_grid(student: Any, values: dict[str, tuple] | None = None) -> list[Point]:
    """Every combination of the framework's knob values (``values`` replaces an axis's defaults)."""
    axes = knobs_for(student.framework)
    values = values or {}
    unknown = set(values) - {a.name for a in axes}
    if unknown:
        raise FrontError(f"knob(s) {', '.join(sorted(unknown))} do not apply to student.framework "
                         f"'{student.framework}' (its knobs: {', '.join(a.name for a in axes)})")
    points, seen = [], set()
    for combo in itertools.product(*(values.get(a.name, a.default) for a in axes)):
        by_axis = {a.name: tuple(a.overrides(student, v)) for a, v in zip(axes, combo)}
        overrides = tuple(o for a in axes for o in by_axis[a.name])
        if overrides in seen:  # e.g. two width scales that round to the same widths
            continue
        seen.add(overrides)
        labels = [a.label(student, v) for a, v in zip(axes, combo)]  # "" for a knob left at "any" (max_ebops)
        family = "_".join(lab for a, lab in zip(axes, labels) if a.family and lab) or "all"
        points.append(Point(id="_".join(lab for lab in labels if lab), family=family,
                            knobs={a.name: (list(v) if isinstance(v, tuple) else v) for a, v in zip(axes, combo)},
                            overrides=overrides, by_axis=by_axis))
    return points


# ----------------------------------------------------------------------------- choosing
def score(row: dict):
    """A point's validation figure the front ranks on (``val_score``: AUC for a binary tagger, accuracy for a
    K-class one; rows from before ``val_score`` existed: their validation AUC)."""
    return row["val_score"] if "val_score" in row else row.get("val_auc")


def _usable(row: dict) -> bool:
    return not row.get("error") and score(row) is not None and row.get("lut") is not None


def pareto_front(rows: list[dict]) -> list[str]:
    """Ids of the points no other point beats on both the validation figure (higher) and LUT (lower), by LUT."""
    ok = [r for r in rows if _usable(r)]
    front = [r for r in ok if not any(
        q["lut"] <= r["lut"] and score(q) >= score(r) and (q["lut"] < r["lut"] or score(q) > score(r))
        for q in ok)]
    return [r["id"] for r in sorted(front, key=lambda r: (r["lut"], -score(r), r["id"]))]


def pick_under_budget(rows: list[dict], max_lut: float | None = None, max_latency_ns: float | None = None) -> dict:
    """The point with the best VALIDATION figure (``score``) among those within the budget (ties: fewer LUT, lower latency, id).
    Raises NoPointFits, saying what the sweep offers, when none fits."""
    ok = [r for r in rows if _usable(r)]

    def fits(r):
        if max_lut is not None and not r["lut"] <= max_lut:
            return False
        if max_latency_ns is not None and not (r.get("latency_ns") is not None and r["latency_ns"] <= max_latency_ns):
            return False
        return True

    inside = [r for r in ok if fits(r)]
    if not inside:
        budget = " and ".join(s for s in (f"<= {max_lut:g} LUT" if max_lut is not None else "",
                                         f"<= {max_latency_ns:g} ns" if max_latency_ns is not None else "") if s)
        if not ok:
            raise NoPointFits(f"no point under the budget ({budget}): no point of the sweep has results")
        small = min(ok, key=lambda r: r["lut"])
        fast = min(ok, key=lambda r: (r.get("latency_ns") is None, r.get("latency_ns") or 0))
        raise NoPointFits(
            f"no point of the sweep fits the budget ({budget}); nothing picked. Smallest: {small['id']} with "
            f"{small['lut']:.0f} LUT ({small.get('latency_ns')} ns); fastest: {fast['id']} with "
            f"{fast.get('latency_ns')} ns ({fast['lut']:.0f} LUT). Add smaller points (--points) or raise the budget")
    return max(inside, key=lambda r: (score(r), -r["lut"], -(r.get("latency_ns") or 0), r["id"]))
