"""Stage `report`: ``<run-dir>/report/`` with report.json, report.md and plots."""
from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..console import info
from ..rundir import REPORT, REPORT_MD
from ..stage import RunContext


def run_report(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..report.build import build_report

    report = build_report(ctx.run_dir, out, cfg.name, cfg.source_file)
    info(f"[report] {ctx.run_dir / REPORT / REPORT_MD}")
    return {"parity": (report.get("parity") or {}).get("bit_exact_fraction"),
            "resources_source": (report.get("resources") or {}).get("source")}
