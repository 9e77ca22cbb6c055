"""The trained teacher, quantised student and float twin of one run directory, for scoring new jets."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TriggerKDError
from ..rundir import DATA, MODELS, RESOLVED_CONFIG, STUDENT, STUDENT_MODELS, TEACHER, TEACHER_MODEL, completed_stage
from ..runcheck import made_from, require_chain

__all__ = ["MODELS", "RunModels", "completed_stage"]  # MODELS: the teacher, the quantised student and its float twin


class RunModels:
    """Loads a run's models once; ``scores(constituents)`` gives each model's signal score per jet."""

    def __init__(self, run_dir: Path, what: str = "evaluate"):
        from ..config import load_config
        from ..models.backend import student_backend
        from ..train.teacher import load_teacher

        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise TriggerKDError(f"run directory {self.run_dir} not found")
        # the student and everything it was made from (data, teacher, transfer) must be one run, as written
        require_chain(self.run_dir, [STUDENT], what)
        self.dirs = {s: completed_stage(self.run_dir, s) for s in (DATA, TEACHER, STUDENT)}
        self.made_from = made_from(self.run_dir, (DATA, TEACHER, STUDENT))
        self.cfg = load_config(self.dirs["student"] / RESOLVED_CONFIG)
        task = self.cfg.data.task
        if task.multiclass:  # its figures (signal score, AUC against one background) are a binary tagger's
            raise TriggerKDError(f"trigger-kd {what} measures binary taggers (a signal score); {self.run_dir} is a "
                                 f"{task.describe()} tagger: its report gives the per-class figures, and "
                                 "`trigger-kd evaluate` / `diagnose` for K classes are not built yet")
        self.teacher = load_teacher(self.dirs["teacher"] / TEACHER_MODEL)
        self.backend = student_backend(self.cfg.student)
        self.students = {name: self.backend.load(self.dirs["student"], name) for name in STUDENT_MODELS}

    def student_inputs(self, constituents: np.ndarray) -> np.ndarray:
        return self.backend.inputs(constituents)

    def float_student_torch(self):
        """The float twin as a torch module, or None (QKeras twins are Keras models)."""
        import torch

        twin = self.students["student_float"]
        return twin if isinstance(twin, torch.nn.Module) else None

    def logits(self, constituents: np.ndarray) -> dict[str, np.ndarray]:
        from ..train.teacher import teacher_logits

        x = self.student_inputs(constituents)
        return {
            "teacher": teacher_logits(self.teacher, constituents, self.cfg.teacher.n_particles, progress=False),
            **{name: self.backend.predict(model, x) for name, model in self.students.items()},
        }

    def scores(self, constituents: np.ndarray) -> dict[str, np.ndarray]:
        from ..train.metrics import signal_score

        return {k: signal_score(v) for k, v in self.logits(constituents).items()}
