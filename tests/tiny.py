"""The tests' tiny settings (``--set`` overrides): real jets, teacher, students, firmware and synthesis at sizes that
finish in minutes on 2 cores. One base; each suite's variation is written as explicit overrides of it."""
from __future__ import annotations

BASE = {
    "data.jets_per_class": 300, "data.shard_size": 300,
    "teacher.n_particles": 16, "teacher.hidden": 16, "teacher.layers": 2, "teacher.epochs": 1,
    "student.n_particles": 4, "student.batch_size": 64, "student.mlp_hidden": "[8]",
    "distill.transfer_jets_per_class": 100,  # the quick profile's recipe (transfer set, SEAL), small
}
_STUDENT = ("student.n_particles", "student.batch_size", "student.mlp_hidden")


def tiny(overrides: dict | None = None) -> list[str]:
    """``BASE`` with ``overrides`` (a value of None drops the key), as ``key=value`` strings."""
    merged = {**BASE, **(overrides or {})}
    return [f"{k}={v}" for k, v in merged.items() if v is not None]


# tests/test_e2e.py: the whole pipeline to the open-source synthesis route
E2E = tiny({"student.epochs": 2, "student.phi_hidden": "[8]", "student.rho_hidden": "[8]",
            "synth.tool": "open-source", "synth.sim_jets": 100})
# tests/test_front.py and tests/test_front_cluster.py: sweeps of students (the same data, teacher and transfer set)
FRONT = tiny({"student.max_epochs": 2, "synth.sim_jets": 20})
# tests/test_generalisation.py: W against gluon jets, no transfer set
GENERALISATION = tiny({"data.signal": "[w]", "data.background": "[gluon]", "student.epochs": 2,
                       "distill.transfer_jets_per_class": 0})
# tests/test_transfer_stage.py: up to the transfer stage, a smaller teacher; each test sets its own transfer set
TRANSFER = tiny({"data.jets_per_class": 100, "data.shard_size": 100, "data.workers": 1, "teacher.n_particles": 8,
                 "teacher.hidden": 8, "teacher.layers": 1, "distill.transfer_jets_per_class": 0,
                 **dict.fromkeys(_STUDENT)})
