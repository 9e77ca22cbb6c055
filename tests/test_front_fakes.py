"""Stand-ins for a sweep point's stages (no tests here): they write the records `trigger-kd front` reads from a
point's run directory (student metrics, synth resources, firmware parity), so the sweep's bookkeeping, its
outputs, its refusals and Ctrl-C can be tested in seconds. Importable by Dask worker processes (PYTHONPATH=tests).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from trigger_kd.rundir import RUN_MARKER, Parity, Resources, StudentMetrics

FAIL_ENV = "TKD_FAKE_FAIL"  # a point id: that point raises
SLOW_ENV = "TKD_FAKE_SLOW"  # seconds each point runs (a child process sleeps beside it, as g++ or Yosys would)


def write_point(run_dir: Path, val_auc: float, lut: float, latency_ns: float = 10.0) -> None:
    run_dir = Path(run_dir)
    for d in ("student", "synth", "firmware"):
        (run_dir / d).mkdir(parents=True, exist_ok=True)
    StudentMetrics(models={"student": {"auc": val_auc - 0.01, "accuracy": 0.8}},
                   validation={"student": {"auc": val_auc, "accuracy": 0.8}, "teacher": {"auc": 0.95}}
                   ).write(run_dir / "student" / "metrics.json")
    Resources(primary={"kind": "da4ml-estimate", "lut": lut, "latency_max_ns": latency_ns, "latency_max_cycles": 2,
                       "clock_target_ns": 5.0, "extra": {"da4ml_register_bits": 10, "da4ml_pipeline_stages": 2}},
              da4ml_estimate=lut).write(run_dir / "synth" / "resources.json")
    Parity(n_jets=10, bit_exact_fraction=1.0).write(run_dir / "firmware" / "parity.json")


def fake_point(cfg, run_dir: str) -> None:
    """A point: LUT = 100 x width, validation AUC rising with the width; ``done`` counts the runs that finished."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_MARKER).touch()  # as the stage runner marks its run directories
    if os.environ.get(FAIL_ENV) == run_dir.name:
        raise RuntimeError(f"the fake point {run_dir.name} fails")
    if (run_dir / "done").is_file():  # resumed: a completed point is reused, not rerun
        return
    slow = float(os.environ.get(SLOW_ENV) or 0)
    if slow:
        import subprocess

        (run_dir / "started").write_text(str(os.getpid()))
        child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({slow})"])
        t0 = time.time()
        while time.time() - t0 < slow:
            sum(range(20000))  # busy, as a training step: Ctrl-C must not print this worker's traceback
        child.wait()
    w = cfg.student.mlp_hidden[0]  # the point's checked config, as the client sent it
    write_point(run_dir, 0.80 + 0.004 * w, 100.0 * w)
    with open(run_dir / "done", "a") as f:
        f.write(f"{os.getpid()}\n")


def fake_shared(cfg, run_dir) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)


def main(argv: list[str]) -> int:
    """`trigger-kd` with the fake stages (for a subprocess)."""
    from trigger_kd import cli

    cli.run_front_point = fake_point
    cli.run_shared_stages = fake_shared
    return cli.main(argv)


if __name__ == "__main__":  # the workers unpickle the fakes by module name: import them as test_front_fakes
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import test_front_fakes

    sys.exit(test_front_fakes.main(sys.argv[1:]))
