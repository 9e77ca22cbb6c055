"""Small formatting helpers for Markdown reports: missing values print as n/a."""
from __future__ import annotations

import math


def fmt(value, spec: str = "g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if spec == "d":
        return str(int(round(value)))
    if spec == "g" and isinstance(value, (int, float)) and float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"  # resource counts: 1,728,000 rather than 1.728e+06
    return format(value, spec)


def md_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return "\n".join(out)
