"""The trained teacher, quantised student and float twin of one run directory, for scoring new jets."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TriggerKDError
from ..rundir import (DATA, MODELS, RESOLVED_CONFIG, STUDENT, STUDENT_MODELS, TEACHER, TEACHER_MODEL, TRANSFER,
                      TRANSFER_JETS, completed_stage, split_file)
from ..runcheck import RESULT_STAGES, made_from, require_chain

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
        self.made_from = made_from(self.run_dir, RESULT_STAGES)  # the stages runcheck.stale_result requires
        self.cfg = load_config(self.dirs["student"] / RESOLVED_CONFIG)
        task = self.cfg.data.task
        if task.multiclass:  # its figures (signal score, AUC against one background) are a binary tagger's
            raise TriggerKDError(f"trigger-kd {what} measures binary taggers (a signal score); {self.run_dir} is a "
                                 f"{task.describe()} tagger: its report gives the per-class figures, and "
                                 "`trigger-kd evaluate` / `diagnose` for K classes are not built yet")
        self.teacher = load_teacher(self.dirs["teacher"] / TEACHER_MODEL)
        self.backend = student_backend(self.cfg.student)
        self.students = {name: self.backend.load(self.dirs["student"], name) for name in STUDENT_MODELS}

    def trained_on(self) -> list[np.ndarray]:
        """The jets the run's models learnt from: its training and validation split and, where the student was
        distilled on them, its transfer jets (``stages/student.py`` reads them the same way)."""
        from ..data.formats import read_canonical
        from ..data.transfer import read_transfer

        jets = [read_canonical(self.dirs[DATA] / split_file(s))[0] for s in ("train", "val")]
        transfer = completed_stage(self.run_dir, TRANSFER) / TRANSFER_JETS
        if self.cfg.distill.uses_teacher and transfer.is_file():
            jets.append(read_transfer(transfer))
        return jets

    def reads(self, trained_on: list[np.ndarray]) -> tuple[int, str]:
        """(constituents per jet the models read, which model and why, in words): the most that the teacher or the
        student reads, but no more than the jets the run trained on (``trained_on``) had."""
        t, s = self.cfg.teacher.n_particles, self.cfg.student.n_particles
        had = max((int(np.any(c != 0, axis=-1).sum(axis=1).max()) for c in trained_on if len(c)), default=0)
        reader = f"the {'teacher' if t >= s else 'student'} of {self.run_dir}"
        if had < max(t, s):
            return had, f"{reader} (trained on jets of up to {had} constituents)"
        return max(t, s), reader

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
