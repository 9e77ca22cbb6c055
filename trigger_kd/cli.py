"""Command line: `trigger-kd run CONFIG ...` and the tools around it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import TriggerKDError, one_line
from .rundir import DATA, FIRMWARE, PARITY, REPORT, REPORT_MD

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_run_dir(cfg) -> Path:
    return Path("firmware") / cfg.name


def cmd_run(args) -> int:
    from .config import load_config
    from .console import info
    from .pipeline import run_pipeline
    from .stages import STAGES

    cfg = load_config(args.config, args.set or [], profile=args.profile)
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(cfg)
    info(f"model {cfg.name} (profile {cfg.profile}) -> run directory {run_dir}")
    if args.to != DATA:
        cfg.teacher.resolved  # noqa: B018 (an explicit CUDA device where there is none: refused before any work)
    run_pipeline(cfg, STAGES, run_dir, to=args.to, start=args.from_, progress=not args.no_progress)
    report = run_dir / REPORT / REPORT_MD
    if report.is_file() and (args.to in (None, "report")):
        info(f"report: {report}")
    return 0


def cmd_show_config(args) -> int:
    from .config import dump_config, load_config

    cfg = load_config(args.config, args.set or [], profile=args.profile)
    sys.stdout.write(dump_config(cfg))
    return 0


def cmd_stages(args) -> int:
    from .stages import STAGES

    for s in STAGES:
        print(f"{s.name:9s} {s.help}")
    return 0


def cmd_check_parity(args) -> int:
    from .firmware.check import check_parity
    from .rundir import is_import_dir, is_run_dir

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise TriggerKDError(f"check-parity: {run_dir} is not a directory; give a run directory")
    fw = run_dir / FIRMWARE if is_run_dir(run_dir) or (run_dir / FIRMWARE / PARITY).is_file() else run_dir
    above = run_dir.absolute().parent
    if fw is run_dir and run_dir.name != FIRMWARE and is_run_dir(above) and not is_import_dir(run_dir):
        raise TriggerKDError(f"check-parity: {run_dir} is the {run_dir.name} folder of the run {above}, not its "
                             f"firmware: give the run directory (trigger-kd check-parity {above})")
    return check_parity(fw)


def cmd_import_qonnx(args) -> int:
    import numpy as np

    from .config import HLSConfig, load_config
    from .firmware.import_qonnx import check_inputs, import_qonnx

    from .rundir import is_import_dir, run_dir_of

    if args.set and not args.config:
        raise TriggerKDError("import-qonnx: --set applies to a model YAML; give it with --config")
    if args.inputs and (args.n is not None or args.seed is not None):
        flags = " and ".join(f"--{k} {v}" for k, v in (("n", args.n), ("seed", args.seed)) if v is not None)
        raise TriggerKDError(f"import-qonnx: {flags} shape(s) the random inputs, but --inputs {args.inputs} gives the "
                             "inputs (it would be ignored): give one or the other")
    args.n, args.seed = (1000 if args.n is None else args.n), (0 if args.seed is None else args.seed)
    if args.seed < 0:
        raise TriggerKDError(f"import-qonnx --seed {args.seed}: a seed is 0 or more")
    out = Path(args.run_dir)
    if out.exists() and not out.is_dir():
        raise TriggerKDError(f"import-qonnx --run-dir {out} is an existing file, not a directory; choose another")
    if run_dir_of(out) is not None:
        raise TriggerKDError(f"import-qonnx --run-dir {out} belongs to the pipeline run {run_dir_of(out)}; its files "
                             "would replace that run's firmware: choose a directory of its own")
    if out.is_dir() and any(out.iterdir()) and not is_import_dir(out):
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise TriggerKDError(f"import-qonnx --run-dir {out} is a folder with other files in it ({shown}, ...) and "
                             "not one import-qonnx wrote; its files of the same names would be replaced: give a new "
                             "or empty directory")
    inputs = None
    if args.inputs:
        path = Path(args.inputs)
        if path.suffix != ".npy" or not path.is_file():
            raise TriggerKDError(f"--inputs {path}: expected an existing .npy array of model inputs (rows first)")
        try:
            inputs = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:  # EOFError: an empty file
            raise TriggerKDError(f"--inputs {path}: not a plain numeric .npy array ({one_line(exc)})") from exc
    check_inputs(inputs, args.n)
    settings = load_config(args.config, args.set or []).hls if args.config else HLSConfig()
    result = import_qonnx(Path(args.model), Path(args.run_dir), settings, inputs=inputs, n=args.n, seed=args.seed,
                          input_precision=args.input_precision)
    print(json.dumps({k: v for k, v in result.items() if k != "first_mismatched_jets"}, indent=2, default=str))
    return 0 if result.get("bit_exact_fraction") == 1.0 else 1


def cmd_parse_report(args) -> int:
    from .synth.reports import format_record, parse_report

    records = parse_report(Path(args.path))
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        for r in records:
            print(format_record(r))
    return 0


def cmd_cache(args) -> int:
    from .cache import UNSURE, cache_root, format_entries, list_entries, prune
    from .console import info, warn

    cache = cache_root()
    if args.action == "list":
        prune_only = [f"--older-than {args.older_than:g}"] if args.older_than is not None else []
        prune_only += [flag for flag, on in (("--unreferenced", args.unreferenced), ("--forget-missing",
                                             args.forget_missing), ("--dry-run", args.dry_run)) if on]
        if prune_only:
            raise TriggerKDError(f"cache list shows every entry; {', '.join(prune_only)} belong(s) to `cache prune`: "
                                 "to see what it would remove, trigger-kd cache prune --older-than DAYS and/or "
                                 "--unreferenced --dry-run")
        entries = list_entries(cache)
        if args.json:  # the notes format_entries prints, on stderr beside the JSON
            from .cache import foreign_note

            if not entries.exists:
                warn(f"the cache folder {entries.root} does not exist")
            if foreign_note(entries):
                warn(foreign_note(entries))
        print(json.dumps([e.to_dict() for e in entries], indent=2) if args.json else format_entries(entries))
        return 0
    if args.older_than is None and not args.unreferenced:
        raise TriggerKDError("cache prune: say what to remove: --older-than DAYS and/or --unreferenced")
    if args.forget_missing and not args.unreferenced:
        raise TriggerKDError("cache prune --forget-missing widens --unreferenced: give both")
    if args.older_than is not None and not args.older_than >= 0:
        raise TriggerKDError(f"cache prune --older-than {args.older_than:g}: an age in days must be 0 or more")
    unsure = [e for e in list_entries(cache) if e.links == UNSURE] if args.unreferenced else []
    removed = prune(cache, args.older_than, args.unreferenced, args.dry_run, forget_missing=args.forget_missing)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print(json.dumps({"dry_run": bool(args.dry_run), "removed": [e.to_dict() for e in removed]}, indent=2))
    for e in removed if not args.json else ():
        print(f"{verb} {e.stage}/{e.path.name} ({e.size} bytes; {e.made_from})")
    info(f"{verb} {len(removed)} entries, {sum(e.size for e in removed)} bytes, from {cache}")
    gone = {e.path for e in removed}
    kept = [e for e in unsure if e.path not in gone]
    if kept:
        shown = "; ".join(f"{e.stage}/{e.path.name} (last seen linked from {', '.join(e.last_seen)})" for e in kept)
        warn(f"kept {len(kept)} entr{'y' if len(kept) == 1 else 'ies'} whose runs are not where they were last seen "
             f"(moved or deleted? a moved run still links to its entries, and its next run refreshes the record): "
             f"{shown}. If those runs are deleted, `trigger-kd cache prune --unreferenced --forget-missing` removes "
             "them")
    return 0


def run_data_stage(cfg, run_dir: Path, progress: bool = True) -> Path:
    """Run (or reuse from the cache) the data stage of ``cfg`` in ``run_dir``; its data directory.
    What `trigger-kd evaluate --on CONFIG` scores (the library module does not run the pipeline itself)."""
    from .pipeline import run_pipeline
    from .stages import STAGES

    run_pipeline(cfg, STAGES, run_dir, to=DATA, progress=progress)
    return (Path(run_dir) / DATA).resolve()


def run_shared_stages(cfg, run_dir: Path) -> None:
    """The stages every point of a `trigger-kd front` sweep shares (data, teacher, transfer: cached), once."""
    from .pipeline import run_pipeline
    from .rundir import TRANSFER
    from .stages import STAGES

    run_pipeline(cfg, STAGES, run_dir, to=TRANSFER, progress=False)


def run_front_point(cfg, run_dir: str) -> None:
    """One point of a `trigger-kd front` sweep, in a Dask worker process: the point's config (checked by the client)
    through the stages up to synth in its own run directory (stamped and cached like any run)."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # as main(): before anything imports TensorFlow
    from .models.tf_quiet import install

    install()
    from .pipeline import run_pipeline
    from .rundir import SYNTH
    from .stages import STAGES

    run_pipeline(cfg, STAGES, Path(run_dir), to=SYNTH, progress=False)


def cmd_front(args) -> int:
    import shlex

    from .front.run import run_front

    run_front(args.config, sets=args.set or [], profile=args.profile, points=args.points, out=args.out,
              workers=args.workers, scheduler=args.scheduler, max_lut=args.max_lut, max_latency_ns=args.max_latency_ns,
              yosys=args.yosys, run_point=run_front_point, run_shared=run_shared_stages,
              command=shlex.join(["trigger-kd", *(sys.argv[1:] if args.argv is None else args.argv)]))
    return 0


def cmd_evaluate(args) -> int:
    from .generalisation.evaluate import evaluate_run

    evaluate_run(Path(args.run_dir), args.on, name=args.name, overrides=args.set or [], progress=not args.no_progress,
                 run_data=run_data_stage)
    return 0


def cmd_diagnose(args) -> int:
    from .generalisation.diagnose import diagnose

    diagnose(Path(args.run_dir), curvature_jets=args.curvature_jets, power_iterations=args.power_iterations,
             trace_samples=args.trace_samples, compress_epochs=args.compress_epochs, seed=args.seed,
             progress=not args.no_progress)
    return 0


def cmd_report(args) -> int:
    from .report.compare import compare_runs

    runs = [Path(p) for p in args.run_dirs]
    out = compare_runs(runs, Path(args.out) if args.out else runs[0].resolve().parent / "comparison.md")
    print(out.read_text() if args.print else f"comparison written to {out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a user's mistake in one line (argparse prints the whole usage block first), naming --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .stages import STAGE_NAMES

    p = _Parser(prog="trigger-kd", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_run_commands(sub, STAGE_NAMES)
    _add_firmware_commands(sub)
    _add_result_commands(sub)
    _add_front(sub)
    _add_cache(sub)
    return p


def _add_run_commands(sub, stage_names) -> None:
    """run, show-config, stages."""
    r = sub.add_parser("run", help="run the pipeline for one model config")
    r.add_argument("config", help="model YAML, e.g. hls_configs/mlp_kd.yml")
    r.add_argument("--to", choices=stage_names, help="last stage to run (default: all)")
    r.add_argument("--from", dest="from_", choices=stage_names, help="rerun from this stage on")
    r.add_argument("--run-dir", help="run directory (default firmware/<model name>/)")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--profile", help="profile overlay (hls_configs/profiles/: quick, study, paper); default from the config")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("show-config", help="print the resolved config")
    c.add_argument("config", help="model YAML, e.g. hls_configs/mlp_kd.yml")
    c.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    c.add_argument("--profile", help="profile overlay (hls_configs/profiles/: quick, study, paper); default from the config")
    c.set_defaults(func=cmd_show_config)

    s = sub.add_parser("stages", help="list the stages")
    s.set_defaults(func=cmd_stages)


def _add_firmware_commands(sub) -> None:
    """check-parity, import-qonnx, parse-report."""
    cp = sub.add_parser("check-parity", help="exit non-zero unless C-simulation is bit-exact on every test jet "
                                             "(hls.output argmax: the class index equal on every test jet)")
    cp.add_argument("run_dir")
    cp.set_defaults(func=cmd_check_parity)

    iq = sub.add_parser("import-qonnx", help="build and check firmware for a QONNX model trained elsewhere")
    iq.add_argument("model", help="QONNX .onnx file")
    iq.add_argument("--run-dir", required=True)
    iq.add_argument("--inputs", help=".npy array of inputs (default: random inputs on the input grid)")
    iq.add_argument("--n", type=int, help="number of random inputs (default 1000; not with --inputs)")
    iq.add_argument("--input-precision", metavar="'fixed<W,I>'",
                    help="firmware input type for a model whose input no power-of-two Quant node reads "
                         "(default: hls4ml's fixed<16,6>); recorded in parity.json")
    iq.add_argument("--seed", type=int, help="seed of the random inputs (default 0; not with --inputs)")
    iq.add_argument("--config", help="take the hls: section from this model YAML")
    iq.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="override a key of the --config model YAML (repeatable)")
    iq.set_defaults(func=cmd_import_qonnx)

    pr = sub.add_parser("parse-report", help="read Vivado/Vitis HLS and Vivado synthesis reports")
    pr.add_argument("path", help="HLS project directory, *_csynth.xml or vivado_synth.rpt")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_parse_report)


def _add_result_commands(sub) -> None:
    """report, evaluate, diagnose."""
    rp = sub.add_parser("report", help="compare several run directories side by side")
    rp.add_argument("run_dirs", nargs="+")
    rp.add_argument("--out", help="output Markdown (default: comparison.md beside the first run directory)")
    rp.add_argument("--print", action="store_true", help="print the comparison")
    rp.set_defaults(func=cmd_report)

    ev = sub.add_parser("evaluate", help="score a run's teacher, student and float twin on another task's jets")
    ev.add_argument("run_dir")
    ev.add_argument("--on", required=True, metavar="CONFIG_OR_DATA",
                    help="model YAML (its data stage runs; its test jets), data/run directory (test.h5) or canonical .h5")
    ev.add_argument("--name", help="result name: RUN_DIR/evaluate/NAME.json (default: the task, e.g. z_vs_gluon)")
    ev.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="override a key of the --on config (repeatable), e.g. data.signal=[z]")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    dg = sub.add_parser("diagnose", help="loss curvature, compressibility, smearing and OOD results -> diagnostics.json")
    dg.add_argument("run_dir")
    dg.add_argument("--curvature-jets", type=int, default=256, help="training jets for the Hessian estimates")
    dg.add_argument("--power-iterations", type=int, default=20, help="most power iterations (leading eigenvalue)")
    dg.add_argument("--trace-samples", type=int, default=20, help="Hutchinson samples (trace)")
    dg.add_argument("--compress-epochs", type=int, default=20, help="epochs of the reference-student distillation")
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--no-progress", action="store_true")
    dg.set_defaults(func=cmd_diagnose)


def _add_front(sub) -> None:
    fr = sub.add_parser("front", help="accuracy per LUT: sweep widths x bits (hgq: x beta), Pareto front, budget pick")
    fr.add_argument("config", help="model YAML whose framework's knobs are swept, e.g. hls_configs/mlp_kd.yml")
    ex = fr.add_mutually_exclusive_group()
    ex.add_argument("--workers", type=int, help="worker processes of the embedded Dask LocalCluster (default 2; at "
                    "most one per core and per 1.5 GiB of memory: more is refused)")
    ex.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask cluster instead: its scheduler's address "
                    "(tcp://HOST:8786) or scheduler file; every worker must see the sweep directory and the cache at "
                    "the same paths and run the same trigger_kd (checked before any point)")
    fr.add_argument("--max-lut", type=float, help="budget: pick the best validation figure (AUC; K classes: accuracy) "
                    "with at most this da4ml LUT")
    fr.add_argument("--max-latency-ns", type=float, help="budget: at most this latency (pipeline stages x clock)")
    fr.add_argument("--yosys", action="store_true", help="fail unless every point on the front has its Yosys LUT count (front.json yosys_lut; the open-source "
                         "route runs Yosys on every point today)")
    fr.add_argument("--points", nargs="+", action="extend", metavar="AXIS=V1,V2",
                    help="knob values instead of the defaults, e.g. width=0.5,1,2 bits=3,4,6 (hgq: beta=1e-6,1e-5)")
    fr.add_argument("--out", help="sweep directory (default firmware/<model>_front/)")
    fr.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override for every point")
    fr.add_argument("--profile", help="profile overlay (hls_configs/profiles/: quick, study, paper); default from the config")
    fr.set_defaults(func=cmd_front)


def _add_cache(sub) -> None:
    ca = sub.add_parser("cache", help="list or prune the dataset/teacher cache ($TRIGGER_KD_CACHE)")
    ca.add_argument("action", choices=("list", "prune"))
    ca.add_argument("--json", action="store_true", help="JSON on stdout: list: the entries; prune: what it removed "
                                                        "(or would remove)")
    ca.add_argument("--older-than", type=float, metavar="DAYS", help="prune: entries not used for DAYS days")
    ca.add_argument("--unreferenced", action="store_true",
                    help="prune: entries no run directory links to (jet pools no dataset names); entries whose "
                         "runs were moved or deleted are kept, and listed")
    ca.add_argument("--forget-missing", action="store_true",
                    help="prune --unreferenced: also entries whose runs are not where they were last seen (deleted; "
                         "or moved: such a run makes them again when it next runs)")
    ca.add_argument("--dry-run", action="store_true", help="prune: only say what would be removed")
    ca.set_defaults(func=cmd_cache)


class Terminated(KeyboardInterrupt):
    """SIGTERM (batch systems, CI timeouts): handled like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _quiet_full_disk_hooks():
    """h5py reports a full disk again while it frees file handles (Cython prints a traceback through
    sys.excepthook, then calls sys.unraisablehook); the stage error already says the disk is full, so
    those echoes are dropped. Anything else passes on. Returns a function that restores the hooks."""
    from .pipeline import is_environment_error

    old_unraisable, old_except = sys.unraisablehook, sys.excepthook

    def unraisable(u):
        if not (u.exc_value is not None and is_environment_error(u.exc_value)):
            old_unraisable(u)

    def excepthook(tp, value, tb):
        if not (value is not None and is_environment_error(value)):
            old_except(tp, value, tb)

    sys.unraisablehook, sys.excepthook = unraisable, excepthook

    def restore():
        sys.unraisablehook, sys.excepthook = old_unraisable, old_except

    return restore


def main(argv: list[str] | None = None) -> int:
    import errno
    import os
    import signal

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QKeras needs tf_keras; must be set before TF loads
    from .models.tf_quiet import install

    install()  # TensorFlow's start-up noise off stderr, whoever imports it (trigger_kd/models/tf_quiet.py)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given (front.json records it)
    from .allocator import keep_freed_memory
    from .console import error

    keep_freed_memory()  # the teacher's steps reuse the same large blocks: keep them (allocator.py)

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    restore_hooks = _quiet_full_disk_hooks()
    try:
        return args.func(args)
    except TriggerKDError as exc:
        error(str(exc))
        return 2
    except BrokenPipeError:  # `trigger-kd parse-report ... | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Terminated:
        error("terminated (SIGTERM); completed stages are kept, rerun the same command to resume")
        return 143
    except KeyboardInterrupt:
        error("interrupted; completed stages are kept, rerun the same command to resume")
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                             errno.ENOTDIR, errno.EISDIR):
            raise
        error(f"{exc.strerror}: {exc.filename or ''}; free space or fix permissions there (or choose other "
              f"paths) and rerun")
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        restore_hooks()


if __name__ == "__main__":
    sys.exit(main())
