"""Small formatting helpers for Markdown reports: missing values print as n/a."""
from __future__ import annotations

import math


def fmt(value, spec: str = "g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if spec == "d":
        return str(int(round(value)))
    return format(value, spec)


def md_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return "\n".join(out)
