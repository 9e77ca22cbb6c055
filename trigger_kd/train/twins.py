"""The twins' training: the quantised student, its float twin and (optionally) its scratch twin, from the same
initial weights, trained alike by ``train/loops.py``'s ``fit`` through the model adapter handed in
(``models/backend.py``), and saved."""
from __future__ import annotations

from pathlib import Path

from ..console import info
from ..rundir import SCRATCH_MODEL as SCRATCH  # the quantised student trained without the teacher (scratch twin)
from ..rundir import STUDENT_MODELS as NAMES  # the quantised student and its float twin (file stems)
from .loops import fit

KINDS = {NAMES[0]: "quantised", NAMES[1]: "float twin", SCRATCH: "scratch twin"}


def train_twins(backend, feed, x_val, y_val, distill, out: Path, progress: bool = True,
                scratch_twin: bool = False) -> dict:
    """Quantised student and float twin (and the scratch twin: the quantised student on the feed's labelled rows
    without the teacher), from the same initial weights, trained alike; saved in ``out``. Returns the histories."""
    if backend.calibrates:
        backend.set_calibration(feed.epoch(0)[0])  # the training (and transfer) inputs: what calibration sees
    s = backend.s
    models = dict(zip([*NAMES, SCRATCH], backend.twins(scratch=scratch_twin)))
    feeds = {name: feed for name in NAMES}
    if scratch_twin:
        feeds[SCRATCH] = feed.labelled_only()
    histories = {}
    for name, model in models.items():
        how = "from scratch" if feeds[name].teacher is None else f"KD alpha={distill.alpha:g} T={distill.temperature:g}"
        info(f"[student] training {backend.framework} {KINDS[name]} {s.arch} ({how}, {len(feeds[name])} jets, "
             f"{feeds[name].n_views or 'no'} boosted views, SEAL lambda {s.seal_lambda:g})")
        histories[name] = fit(backend, model, feeds[name], x_val, y_val, s, distill, progress,
                              bound_required=name == NAMES[0])  # student.max_ebops binds the deployed student
        backend.save(model, Path(out) / f"{name}{backend.suffix}")
    return histories
