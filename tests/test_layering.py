"""Layering of the package: which package may import which (``LAYERS``), no import cycle, only the CLI imports the
runner, one module owns the run directory.

The import graph is read from the source (every ``import`` statement, also those inside functions, as
``trigger_kd/fingerprint.py`` reads them), so a lazy import that runs back up the layers or closes a cycle counts too.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from trigger_kd import fingerprint, rundir
from trigger_kd.stage import RunContext, Stage, StageError

PKG_DIR = fingerprint.PACKAGE_DIR


def _package_modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PKG_DIR.rglob("*.py")):
        parts = ["trigger_kd", *path.relative_to(PKG_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _import_graph() -> dict[str, set[str]]:
    mods = _package_modules()
    return {m: {i for i in fingerprint._package_imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


# ----------------------------------------------------------------------------- the layers (imports go down only)
CORE = "core"  # every module directly in trigger_kd/ that no row names: errors, console, atomic, paths, fixedpoint,
# config, rundir, fingerprint, manifest, runcheck, cache, concurrency, allocator, provenance, stage, ...
LAYERS: tuple[tuple[str, ...], ...] = (  # lowest first; one row a layer, each entry a unit (a package or a module)
    (CORE,),                                # shared basics: errors, console, config, run-directory names, stamps
    ("trigger_kd.install",),                # steps `make install` runs (imports nothing of the package)
    ("trigger_kd.data",),                   # jets, features, formats
    ("trigger_kd.models",),                 # architectures and the model adapter per framework
    ("trigger_kd.train",),                  # loops, losses, twins, metrics: calls the adapter handed to it
    ("trigger_kd.firmware",),               # hls4ml front ends, exactness rules, parity
    ("trigger_kd.synth",),                  # vendor and open-source routes, the da4ml traces (reads firmware.outputs)
    ("trigger_kd.report",),                 # reads its run directory's records
    ("trigger_kd.generalisation", "trigger_kd.front"),  # evaluation on other jets; the sweeps (side by side)
    ("trigger_kd.stages",),                 # one function per stage
    ("trigger_kd.pipeline",),               # the runner
    ("trigger_kd.cli",),
)
"""A module may import modules of its own unit and of lower layers; nothing of a higher layer, nor of another unit
of its own layer. The core modules import one another freely (no cycle: the test below)."""
EXCEPTIONS: dict = {}  # (importer, imported): why it runs up; an entry no import needs any more fails the test


def _unit(module: str) -> tuple[int, str]:
    """(layer index, unit) of a package module: the longest unit that is the module or a package above it; a module
    directly in trigger_kd/ that no row names is core."""
    found = [(len(u), i, u) for i, row in enumerate(LAYERS) for u in row if module == u or module.startswith(u + ".")]
    if found:
        _, i, u = max(found)
        return i, u
    parts = module.split(".")
    if parts[0] == "trigger_kd" and (len(parts) == 1 or (len(parts) == 2 and not (PKG_DIR / parts[1]).is_dir())):
        return 0, CORE
    raise AssertionError(f"{module} is in no layer of LAYERS: add its package")


def _upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) that runs up the layers or sideways into another unit of the same layer."""
    bad = []
    for m, deps in graph.items():
        (mi, mu) = _unit(m)
        for d in sorted(deps):
            (di, du) = _unit(d)
            if mu == du or di < mi:
                continue
            bad.append((m, d))
    return sorted(bad)


def test_imports_go_down_the_layers_only():
    """No import, also inside a function, runs back up the layers (``LAYERS``) except those ``EXCEPTIONS`` justifies,
    and every exception is still needed."""
    bad = _upward_imports(_import_graph())
    unjustified = [f"{m} imports {d}" for m, d in bad if (m, d) not in EXCEPTIONS]
    assert not unjustified, "imports that run back up the layers (tests/test_layering.py LAYERS):\n" + "\n".join(unjustified)
    assert sorted(EXCEPTIONS) == [e for e in bad if e in EXCEPTIONS], "an exception no import needs any more"


def test_the_layer_check_finds_upward_and_sideways_imports():
    graph = {"trigger_kd.models.backend": {"trigger_kd.train.loops", "trigger_kd.data.features", "trigger_kd.errors"},
             "trigger_kd.train.loops": {"trigger_kd.models.backend", "trigger_kd.train.steps"},
             "trigger_kd.train.steps": set(), "trigger_kd.data.features": set(), "trigger_kd.errors": set(),
             "trigger_kd.front.run": {"trigger_kd.generalisation.evaluate"}, "trigger_kd.generalisation.evaluate": set(),
             "trigger_kd.config": {"trigger_kd.rundir"}, "trigger_kd.rundir": set()}
    assert _upward_imports(graph) == [("trigger_kd.front.run", "trigger_kd.generalisation.evaluate"),
                                      ("trigger_kd.models.backend", "trigger_kd.train.loops")]
    with pytest.raises(AssertionError, match="in no layer"):
        _unit("trigger_kd.newpackage.x")
    assert _unit("trigger_kd.rundir") == _unit("trigger_kd") == (0, CORE) and _unit("trigger_kd.cli") == (11, "trigger_kd.cli")


def test_every_package_module_has_a_layer():
    for name in _package_modules():
        _unit(name)


def test_every_module_imports():
    for name in _package_modules():
        if name.endswith("students_keras") or name.endswith("hls_keras"):
            pytest.importorskip("qkeras")
        importlib.import_module(name)


def test_no_import_cycle_among_package_modules():
    assert _cycles(_import_graph()) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check finds one


def test_only_the_cli_imports_the_runner():
    graph = _import_graph()
    assert sorted(m for m, deps in graph.items() if "trigger_kd.pipeline" in deps) == ["trigger_kd.cli"]
    # the stages take their types from stage.py and their file names from rundir.py
    for name, deps in graph.items():
        if name.startswith("trigger_kd.stages."):
            assert "trigger_kd.stage" in deps and "trigger_kd.rundir" in deps, name


def test_rundir_imports_nothing_but_errors_and_atomic():
    assert _import_graph()["trigger_kd.rundir"] <= {"trigger_kd", "trigger_kd.errors", "trigger_kd.atomic"}


# ----------------------------------------------------------------------------- ctx.dir serves declared stages only
def _completed(run: Path, *stages: str) -> None:
    for s in stages:
        (run / s).mkdir(parents=True, exist_ok=True)
        (run / s / rundir.STAMP_FILE).write_text("{}")


def test_ctx_dir_refuses_a_stage_not_in_needs(tmp_path):
    run = tmp_path / "run"
    _completed(run, "data", "teacher", "student")
    ctx = RunContext(run_dir=run, cache=tmp_path / "cache", progress=False)
    stage = Stage("export", (), ("student",), lambda cfg, ctx, out: {})
    own = ctx.for_stage(stage)
    assert own.dir("student") == (run / "student").resolve()
    with pytest.raises(StageError, match=r"stage 'export' reads the output of stage 'teacher' but does not declare it"):
        own.dir("teacher")
    assert ctx.dir("teacher") == (run / "teacher").resolve()  # a context made outside the runner: no stage, no limit
    assert own.stamps is ctx.stamps  # one stamp table for the whole run


def test_the_runner_gives_each_stage_its_own_needs(tmp_path, repo):
    from trigger_kd.config import load_config
    from trigger_kd.pipeline import run_pipeline

    def a(cfg, ctx, out):
        return {}

    def sneaky(cfg, ctx, out):
        ctx.dir("a")  # declared: fine
        ctx.dir("b")  # completed, but not declared
        return {}

    cfg = load_config(repo / "hls_configs/mlp_kd.yml")
    stages = [Stage("a", (), (), a), Stage("b", (), ("a",), a), Stage("c", (), ("a",), sneaky)]
    with pytest.raises(StageError, match="'c' reads the output of stage 'b'.*add 'b' to its needs"):
        run_pipeline(cfg, stages, tmp_path / "run", progress=False)


def test_stage_table_matches_rundir_names():
    from trigger_kd.stages import STAGE_NAMES, STAGES

    assert tuple(STAGE_NAMES) == rundir.STAGE_NAMES
    for s in STAGES:  # every stage needs only earlier stages
        assert all(rundir.STAGE_NAMES.index(n) < rundir.STAGE_NAMES.index(s.name) for n in s.needs), s.name


# ----------------------------------------------------------------------------- records keep the files' JSON
def test_records_round_trip_the_json_files(tmp_path):
    parity = {"n_jets": 10, "bit_exact_fraction": 0.9, "n_mismatched": 1, "max_abs_diff": 0.25, "output_lsb": 0.125,
              "first_mismatched_jets": [3], "source": "hls4ml C-simulation (g++)", "first_mismatch_layer": "fc1",
              "float_agreement": {"decision_agreement": 1.0}, "required_fraction": 0.8}
    p = rundir.Parity.from_dict(parity)
    assert (p.n_jets, p.bit_exact_fraction, p.first_mismatch_layer, p.required_fraction) == (10, 0.9, "fc1", 0.8)
    assert not p.exact and p.rest["n_mismatched"] == 1 and p.to_dict() == parity
    p.write(tmp_path / rundir.PARITY)
    assert json.loads((tmp_path / rundir.PARITY).read_text()) == parity
    assert rundir.Parity.read(tmp_path / rundir.PARITY) == p and rundir.Parity.read(tmp_path / "none.json") is None

    metrics = {"model": "m", "framework": "brevitas", "arch": "mlp", "seed": 1, "distill": {"alpha": 0.7}, "seal": {},
               "inputs": None, "n_test_jets": 5, "n_training_jets": {"labelled": 3},
               "teacher": {"auc": 0.9}, "student": {"auc": 0.8}, "student_float": {"auc": 0.85},
               "student_scratch": {"auc": 0.7}, "validation": {}, "robustness": {}, "training": {}, "baselines": {},
               "runtime": {"threads_requested": 1, "torch": 1}, "source": "x"}
    m = rundir.StudentMetrics.from_dict(metrics)
    assert m.metrics("student_scratch") == {"auc": 0.7} and m.metrics("nope") == {} and m.rest == {}
    assert list(m.to_dict()) == list(metrics) and m.to_dict() == metrics  # same keys, same order as the stage wrote

    res = {"primary": {"lut": 1}, "records": [{"lut": 1}], "rtl_parity": None, "da4ml_estimate": 2.0, "notes": [],
           "route": "open-source"}
    assert rundir.Resources.from_dict(res).to_dict() == res
    teacher = {"test": {"auc": 0.9}, "robustness": {"boost": []}, "training": {"epochs": 1}, "n_params": 7}
    assert rundir.TeacherMetrics.from_dict(teacher).to_dict() == teacher


def test_failed_attempts_and_stamps_are_read_from_rundir(tmp_path):
    stage_dir = tmp_path / "firmware"
    assert rundir.read_stamp(stage_dir) is None and rundir.last_attempt_failed(stage_dir) is None
    rundir.failed_dir(stage_dir).mkdir(parents=True)
    (rundir.failed_dir(stage_dir) / rundir.FAILED_FILE).write_text('{"error": "interrupted"}')
    assert rundir.last_attempt_failed(stage_dir) == {"error": "interrupted"}
    with pytest.raises(Exception, match="the student stage has not completed"):
        rundir.completed_stage(tmp_path, "student")


# ----------------------------------------------------------------------------- the library does not run the pipeline
def test_evaluate_gets_a_config_s_data_stage_from_its_caller(tmp_path, repo):
    import numpy as np

    from trigger_kd.data.formats import write_canonical
    from trigger_kd.errors import TriggerKDError
    from trigger_kd.generalisation.evaluate import resolve_jets

    config = str(repo / "hls_configs" / "mlp_kd.yml")
    with pytest.raises(TriggerKDError, match="nothing was given to run it"):
        resolve_jets(config, ["data.signal=[z]", "data.background=[gluon]"], tmp_path)
    calls = []

    def run_data(cfg, run_dir, progress):
        calls.append((cfg.data.signal, run_dir, progress))
        rng = np.random.default_rng(0)
        c = np.abs(rng.normal(size=(4, 3, 4))).astype(np.float32)
        write_canonical(run_dir / "data" / "test.h5", c, np.array([1, 0, 1, 0]))
        return run_dir / "data"

    path, source, name = resolve_jets(config, ["data.signal=[z]", "data.background=[gluon]"], tmp_path,
                                      progress=False, run_data=run_data)
    assert calls == [(("z",), tmp_path / "z_vs_gluon", False)] and name == "z_vs_gluon"
    assert path == (tmp_path / "z_vs_gluon" / "data" / "test.h5").resolve() and source["split"] == "test"
