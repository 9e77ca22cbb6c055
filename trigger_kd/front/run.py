"""`trigger-kd front`: run every point of the sweep as a Dask task, then write front.json, front.png and the pick.

The runner is passed in (``run_point``, ``run_shared``: functions of ``trigger_kd/cli.py``, the one module that
imports the pipeline): this module never imports it. Each point is the model config with its ``--set``
overrides, run through the normal stages up to ``synth`` in ``<out>/points/<id>/``, so it is cached by the
per-stage stamps and an interrupted sweep resumes; the shared data / teacher / transfer stages are made once
(``<out>/shared/``, into the content-addressed cache) before the points start, and every point links them.
Where the points run and what every worker must see: cluster.py; which files of the sweep directory may be
replaced, and how each invocation's outputs replace the previous one's: outputs.py.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from ..atomic import atomic_path, write_text_atomic
from ..concurrency import waiting_lock
from ..config import dump_config, load_config
from ..console import info, warn
from ..provenance import git_state
from ..rundir import check_run_dir
from .checks import check_budget, check_paths, check_sets, make_dirs, remove_made
from .cluster import (SHARED_RULE, Expect, Session, WorkersRefused, check_workers, connect, probe_files,
                      scheduler_address, worker_view)
from .outputs import FRONT_JSON, FRONT_PNG, PICKED_YML, TAG, check_out_dir, clear, picked_header
from .record import check_row, point_row, reference_lines
from .sweep import FrontError, NoPointFits, Point, pareto_front, pick_under_budget, point_grid

POINTS_DIR, SHARED_DIR = "points", "shared"
LOCK_FILE = ".front.lock"  # held by the invocation writing into the sweep directory


def point_task(run_point: Callable, cfg, run_dir: str, expect: Expect | None = None) -> dict:
    """What one Dask task does (in a worker process): run the point's stages on its checked config ``cfg``, return
    its row. Errors come back
    as the row's ``error`` (the sweep goes on with the other points and then fails, naming them). With ``expect``
    (the client's probe) the worker first checks that it sees the sweep directory and the cache and runs the same
    code: a worker that joined after the probe is held to the same rule."""
    t0 = time.time()
    where = _where()
    if expect is not None:
        view = worker_view(expect)
        if view["problems"]:
            return {"error": f"this worker cannot run points: {'; '.join(view['problems'])}. {SHARED_RULE}",
                    "seconds": 0.0, **where}
    try:
        run_point(cfg, run_dir)
    except BaseException as exc:  # noqa: BLE001 - reported to the client, which exits non-zero
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8),
                "seconds": round(time.time() - t0, 1), **where}
    row = point_row(Path(run_dir))
    metric = row.get("metric") or "auc"  # the figure the front ranks on (val_score = val_<metric>)
    missing = [k for k in (f"val_{metric}", f"test_{metric}", "lut", "latency_ns", "parity_pct") if row.get(k) is None]
    if missing:  # a point without them can be neither on the front nor picked: say so instead of leaving it out
        row["error"] = f"the run directory {run_dir} records no {', '.join(missing)}"
    else:  # figures outside their physical range (a damaged record) are not ranked either
        wrong = check_row({**row, "id": Path(run_dir).name})
        if wrong:
            row["error"] = f"the run directory {run_dir} records impossible figures: {'; '.join(wrong)}"
    return {**row, "seconds": round(time.time() - t0, 1), **where}


def _where() -> dict:
    """The host and Dask worker a task ran on (front.json records them)."""
    out = {"host": os.uname().nodename, "worker": None}
    try:
        from distributed import get_worker

        out["worker"] = get_worker().address
    except (ImportError, ValueError):
        pass
    return out


@dataclass
class Request:
    """One `trigger-kd front` invocation, checked (``_request``) before any work: every point's config parsed and
    checked once here; the workers get those checked configs themselves."""

    config: str  # the model YAML, absolute
    cfg: Any  # the model config with the sweep's settings (shared stages, names)
    grid: list[Point]
    configs: dict  # point id -> its checked config
    sets: list[str]  # every point's --set (the user's and the sweep's own)
    user_sets: list[str]  # the user's --set (the picked config keeps them, not the sweep's)
    profile: str | None
    out_dir: Path
    n_workers: int | None  # the embedded LocalCluster's; None with --scheduler
    address: str | None
    max_lut: float | None
    max_latency_ns: float | None
    yosys: bool
    command: str


def run_front(config: str, *, sets: list[str], profile: str | None, points: list[str] | None, out: str | None,
              workers: int | None, scheduler: str | None, max_lut: float | None, max_latency_ns: float | None,
              yosys: bool, run_point: Callable, run_shared: Callable, command: str) -> dict:
    """The sweep; returns front.json's content. Raises FrontError (after writing front.json) when a point failed
    or no point fits the budget.

    Before any work: the request (config, points, ``--workers`` against this machine, the scheduler address, the
    sweep directory's files) is checked; then the cluster is reached and every worker probed. Only then are the
    earlier invocation's outputs removed (outputs.py), so a refused request leaves them as they were and an
    accepted one leaves only its own."""
    req = _request(config, sets, profile, points, out, workers, scheduler, max_lut, max_latency_ns, yosys, command)
    out_dir, cfg = req.out_dir, req.cfg
    made = make_dirs(out_dir)  # the filesystem may still refuse: one line, nothing left
    info(f"[front] {cfg.name} ({cfg.student.framework} {cfg.student.arch}): {len(req.grid)} points "
         f"({', '.join(p.id for p in req.grid)}) -> {out_dir}")
    try:
        session = connect(req.n_workers, req.address)
    except BaseException:  # a scheduler that cannot be reached: nothing is left written
        remove_made(made)
        raise
    try:
        with waiting_lock(out_dir / LOCK_FILE, f"the sweep directory {out_dir}"):
            check_out_dir(out_dir)  # again: another front may have written there while this one waited
            return _sweep(session, req, run_point, run_shared)
    except WorkersRefused:
        if made:  # nothing was run: leave no folder behind either
            (out_dir / LOCK_FILE).unlink(missing_ok=True)
            remove_made(made)
        raise
    finally:
        session.close()


def _request(config, sets, profile, points, out, workers, scheduler, max_lut, max_latency_ns, yosys,
             command) -> Request:
    """The invocation checked: the budget, config, points, the user's --set against the keys the sweep sets,
    --workers against this machine, the scheduler address, the sweep directory's files and every path the sweep
    makes under it (checks.py); nothing is written."""
    from .sweep import parse_points

    check_budget(max_lut, max_latency_ns)
    config = str(Path(config).resolve())
    # the front is drawn on da4ml's LUT estimate, which the open-source synth route makes (after the user's --set);
    # Yosys runs only on the points on the front, with --yosys. The picked config keeps the user's synth.yosys.
    user_sets = [*sets, "synth.tool=open-source"]
    cfg = load_config(config, [*user_sets, "synth.yosys=false"], profile=profile)
    grid = point_grid(cfg.student, parse_points(points, cfg.student.framework))
    check_sets(sets, grid)  # the user's: none may set what the sweep sets
    sets = [*user_sets, "synth.yosys=false"]
    configs = {p.id: load_config(config, [*sets, *p.overrides], profile=profile) for p in grid}
    address = scheduler_address(scheduler) if scheduler else None
    n_workers = None if address else check_workers(workers, len(grid))
    given = Path(out or Path("firmware") / f"{cfg.name}_front").absolute()  # as given: its symlinks are checked
    check_paths(given, [given / SHARED_DIR, given / POINTS_DIR, *(given / POINTS_DIR / p.id for p in grid)],
                given / LOCK_FILE)
    out_dir = given.resolve()
    check_out_dir(out_dir)
    for run_dir in [out_dir / SHARED_DIR, *(out_dir / POINTS_DIR / p.id for p in grid)]:
        check_run_dir(run_dir)  # a folder of the user's where a point's run directory goes: refused now
    return Request(config, cfg, grid, configs, sets, user_sets, profile, out_dir, n_workers, address, max_lut,
                   max_latency_ns, yosys, command)


def _sweep(session: Session, req: Request, run_point: Callable, run_shared: Callable) -> dict:
    """Probe, the shared stages, every point, the front; then this invocation's outputs."""
    invocation = uuid.uuid4().hex[:12]
    out_dir = req.out_dir
    futures: dict = {}
    try:
        with probe_files(out_dir) as expect:
            views = session.probe(expect)  # every worker sees the sweep directory and the cache, same code
            make_dirs(out_dir / POINTS_DIR)
            removed = clear(out_dir)  # the earlier invocation's outputs: none of them may survive this one
            if removed:
                info(f"[front] removed the earlier sweep's {', '.join(removed)} (this sweep writes its own)")
            info("[front] shared stages (data, teacher, transfer), once for every point")
            run_shared(req.cfg, out_dir / SHARED_DIR)
            rows = _run_points(session.client, req, run_point, expect, futures)
            front = pareto_front(rows)
            for r in rows:
                r["on_front"] = r["id"] in front
            if req.yosys:
                _yosys_on_front(session.client, [r for r in rows if r["on_front"]], req.cfg.synth.family)
    except KeyboardInterrupt:
        session.interrupted(futures)
        raise
    session.close()  # the points are done: stop the embedded cluster's workers before the outputs are written
    notes: list[str] = []  # reference lines left out (a damaged record): warned, and carried by front.json
    lines = next((found for r in rows if not r.get("error") and (found := reference_lines(Path(r["run_dir"]), notes))),
                 {})
    result = _result(req, rows, front, lines, sorted(views), invocation)
    for note in notes:
        warn(f"[front] {note}")
    if notes:
        result["warnings"] = notes
    problem, picked_text = _verdict(req, rows, result, invocation)
    _publish(req, rows, front, lines, result, picked_text, invocation)
    if problem is not None:
        raise problem
    return result


def _result(req: Request, rows: list[dict], front: list[str], lines: dict, workers: list[str], invocation: str) -> dict:
    """front.json's content before the verdict (``picked`` None)."""
    metric = _metric(rows)
    return {
        "command": req.command,
        "invocation": invocation,
        "git": git_state(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": req.config, "profile": req.cfg.profile, "sets": list(req.sets),
        "framework": req.cfg.student.framework, "arch": req.cfg.student.arch,
        "executor": {**({"scheduler": req.address} if req.address else {"local_cluster_workers": req.n_workers}),
                     "workers": workers},
        "lut_source": ("lut: da4ml's estimate, ff: da4ml's pipeline register bits (synth stage, open-source route, "
                       "synth.yosys false); yosys_lut / yosys_ff: Yosys synth_xilinx on the front's points (--yosys)"),
        "chosen_on": (f"validation {metric} of the quantised student (val_score; the test figure recorded, never "
                      "used)"),
        "reference_lines_val_auc" if metric == "auc" else f"reference_lines_val_{metric}": lines,
        "points": rows,
        "front": front,
        "budget": {"max_lut": req.max_lut, "max_latency_ns": req.max_latency_ns},
        "picked": None,
    }


def _verdict(req: Request, rows: list[dict], result: dict, invocation: str) -> tuple[FrontError | None, str | None]:
    """(the error the command ends with, or None; picked.yml's text, or None), ``result`` completed."""
    failed = [r for r in rows if r.get("error")]
    if failed:
        return FrontError(
            f"{len(failed)} of {len(rows)} sweep points failed ({'; '.join(r['id'] + ': ' + r['error'] for r in failed)}); "
            f"nothing picked. Their errors are in {req.out_dir / FRONT_JSON}; fix and rerun the same command "
            f"(completed points are reused)"), None
    if req.yosys and any(r["on_front"] and r.get("yosys_lut") is None for r in rows):
        return FrontError("--yosys: Yosys failed on points on the front: "
                          + "; ".join(f"{r['id']}: {r.get('yosys_error')}" for r in rows
                                      if r["on_front"] and r.get("yosys_lut") is None)), None
    if req.max_lut is None and req.max_latency_ns is None:
        return None, None
    try:
        best = pick_under_budget(rows, max_lut=req.max_lut, max_latency_ns=req.max_latency_ns)
    except NoPointFits as exc:
        result["no_point_fits"] = str(exc)
        return exc, None
    point = next(p for p in req.grid if p.id == best["id"])
    metric = best.get("metric") or "auc"
    picked_cfg = load_config(req.config, [*req.user_sets, *point.overrides, f"name={req.cfg.name}_{point.id}"],
                             profile=req.profile)
    picked_text = picked_header(invocation, f"best validation {metric} within the budget "
                                            f"({_budget_text(req.max_lut, req.max_latency_ns)}); {req.command}"
                                ) + dump_config(picked_cfg)
    result["picked"] = {"id": best["id"], "config": str(req.out_dir / PICKED_YML), "metric": metric,
                        "val_score": best["val_score"], "test_score": best.get("test_score"),
                        "val_auc": best["val_auc"], "test_auc": best.get("test_auc"), "lut": best["lut"],
                        "latency_ns": best.get("latency_ns"), "overrides": list(point.overrides)}
    return None, picked_text


def _publish(req: Request, rows, front, lines, result: dict, picked_text: str | None, invocation: str) -> None:
    """This invocation's outputs, each atomically: the plot, the pick (none: the earlier one went with clear),
    front.json last (it names the others)."""
    from .plot import front_plot

    cfg, out_dir = req.cfg, req.out_dir
    metric = _metric(rows)
    with atomic_path(out_dir / FRONT_PNG) as tmp:
        front_plot(rows, front, lines, tmp, picked=(result["picked"] or {}).get("id"), max_lut=req.max_lut,
                   title=f"{cfg.name}: {cfg.student.framework} {cfg.student.arch}, validation {metric} vs LUT",
                   software=f"{TAG} invocation {invocation}")
    if picked_text is not None:
        write_text_atomic(out_dir / PICKED_YML, picked_text)
    write_text_atomic(out_dir / FRONT_JSON, json.dumps(result, indent=2, default=str))
    _summary(rows, front, result, out_dir)


def _metric(rows: list[dict]) -> str:
    """What the points rank on (record.py ``ranking_metric``: auc, or accuracy for K classes)."""
    return next((r["metric"] for r in rows if r.get("metric")), "auc")


def _budget_text(max_lut, max_latency_ns) -> str:
    return " and ".join(s for s in (f"<= {max_lut:g} LUT" if max_lut is not None else "",
                                    f"<= {max_latency_ns:g} ns" if max_latency_ns is not None else "") if s)


def _yosys_on_front(client, rows: list[dict], family: str) -> None:
    """Yosys LUT / FF of the front's points (Dask tasks; cached per point by its synth stamp)."""
    from .yosys import point_yosys

    info(f"[front] --yosys: Yosys synth_xilinx on the {len(rows)} point(s) on the front")
    futures = {client.submit(point_yosys, r["run_dir"], family, pure=False,
                             key=f"trigger-kd-front-yosys-{r['id']}-{uuid.uuid4().hex}"): r for r in rows}
    for fut, r in futures.items():
        try:
            y = fut.result()
        except Exception as exc:  # noqa: BLE001 - reported, and the command fails
            r["yosys_error"] = f"{type(exc).__name__}: {exc}"
            continue
        r["yosys_lut"], r["yosys_ff"] = y["yosys_lut"], y["yosys_ff"]
        info(f"[front] {r['id']}: Yosys {y['yosys_lut']} LUT, {y['yosys_ff']} FF (da4ml estimate {r['lut']:.0f} LUT)")


def _run_points(client, req: Request, run_point: Callable, expect: Expect, futures: dict) -> list[dict]:
    """Submit every point (``futures`` is filled as they are, for the caller to cancel on Ctrl-C); their rows as
    they complete. A point whose worker is lost reruns on another (the scheduler's doing); its run directory's
    lock and the stage runner's leftovers of the killed attempt make the rerun start clean."""
    from dask.distributed import as_completed

    grid, out_dir = req.grid, req.out_dir
    rows: dict[str, dict] = {}
    for p in grid:
        run_dir = out_dir / POINTS_DIR / p.id
        fut = client.submit(point_task, run_point, req.configs[p.id], str(run_dir), expect,
                            key=f"trigger-kd-front-{p.id}-{uuid.uuid4().hex}", pure=False)
        futures[fut] = p
    where = f"the Dask scheduler {req.address}" if req.address else f"a LocalCluster of {req.n_workers} worker process(es)"
    info(f"[front] {len(grid)} points submitted to {where}")
    for done, fut in enumerate(as_completed(list(futures)), start=1):
        p = futures[fut]
        try:
            row = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. a worker that died (out of memory, killed) too often
            row = {"error": f"{type(exc).__name__}: {exc}"}
        rows[p.id] = {"id": p.id, "family": p.family, "knobs": p.knobs, "overrides": list(p.overrides),
                      "run_dir": str(out_dir / POINTS_DIR / p.id), **row}
        r = rows[p.id]
        if r.get("error"):
            warn(f"[front] {done}/{len(grid)} {p.id}: FAILED: {r['error']}")
        else:
            info(f"[front] {done}/{len(grid)} {p.id}: val {r['metric']} {r['val_score']:.4f}, test {r['metric']} "
                 f"{r['test_score']:.4f}, "
                 f"{r['lut']:.0f} LUT (da4ml), {r['pipeline_stages']} stages = {r['latency_ns']} ns, parity "
                 f"{r['parity_pct']:.2f} % ({r.get('seconds')} s)")
    return [rows[p.id] for p in grid]


def _summary(rows: list[dict], front: list[str], result: dict, out_dir: Path) -> None:
    metric = _metric(rows)
    name = "AUC" if metric == "auc" else "acc"
    lines = [f"{'point':24s} {'val ' + name:>8s} {'test ' + name:>8s} {'LUT':>8s} {'ns':>6s} {'parity':>7s}"]
    for r in sorted(rows, key=lambda r: (r.get("lut") is None, r.get("lut") or 0)):
        if r.get("error"):
            lines.append(f"{r['id']:24s} FAILED")
            continue
        mark = " *front*" if r["id"] in front else ""
        mark += " <- picked" if (result["picked"] or {}).get("id") == r["id"] else ""
        lines.append(f"{r['id']:24s} {r['val_score']:8.4f} {r['test_score']:8.4f} {r['lut']:8.0f} "
                     f"{r['latency_ns'] if r['latency_ns'] is not None else float('nan'):6.1f} "
                     f"{r['parity_pct']:6.2f}%{mark}")
    sys.stdout.write("\n".join(lines) + "\n")
    info(f"[front] {out_dir / FRONT_JSON}, {out_dir / FRONT_PNG}"
         + (f"; picked {result['picked']['id']}: trigger-kd run {result['picked']['config']} --run-dir "
            f"{out_dir / POINTS_DIR / result['picked']['id']}" if result["picked"] else ""))
