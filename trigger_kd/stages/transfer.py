"""Stage `transfer`: teacher targets beyond the labelled training jets, computed once and cached.

Output (content-addressed cache, linked from ``<run-dir>/transfer``; keyed by the teacher, the
data and the ``distill.transfer_*`` / ``distill.augment_*`` keys):
- ``transfer.h5``: the transfer jets (constituents only: no labels), generated
  (``distill.transfer_jets_per_class`` per class, own seed stream) and/or read from
  ``distill.transfer_paths``; ``logits_transfer.npy`` the teacher's logits on them;
- with ``distill.augment_max_beta`` > 0: ``view_betas_{train,transfer}.npy`` (k, N, 3), the boost
  of every jet in each of the k views, and ``logits_views_{train,transfer}.npy`` (k, N, 2), the
  teacher's logits on the boosted jets (beams not boosted: see trigger_kd/train/feed.py);
- ``overlap.json``: the constituent-hash check that no transfer jet is a train/val/test jet.
With none of these keys set the stage writes only its stamp. From scratch (``distill.alpha: 0``) there are
no teacher targets to learn from: no transfer jets, no teacher logits, only the views' boosts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..rundir import (DATA, OVERLAP, SPLITS, TEACHER, TEACHER_MODEL, TRANSFER_JETS, TRANSFER_LOGITS, split_file,
                      view_betas_file, view_logits_file)
from ..stage import RunContext, StageError


def _transfer_jets(cfg: Config, ctx: RunContext) -> tuple[np.ndarray, dict]:
    """Generated plus file transfer jets (N, P, 4), shuffled, and where they came from."""
    from ..data.formats import load_unlabelled, sort_and_pad
    from ..data.generate import filled_pools, pool_jets
    from ..data.sanity import check_physics

    d, data = cfg.distill, cfg.data
    parts, origin = [], {}
    if d.transfer_jets_per_class > 0:
        if data.source != "pythia":
            raise StageError(f"distill.transfer_jets_per_class needs generated jets (data.source: pythia), not "
                             f"'{data.source}'; list unlabelled files in distill.transfer_paths instead")
        classes = data.task.classes
        with filled_pools(data, ctx.cache, classes, d.transfer_jets_per_class, ctx.progress, stream="transfer") as (
                pools, origin["generation"]):
            parts += [sort_and_pad(pool_jets(pools[cls], cls, d.transfer_jets_per_class), data.max_constituents)
                      for cls in classes]
        origin["pools"] = {cls: str(pool) for cls, pool in pools.items()}  # `trigger-kd cache prune` keeps them
    if d.transfer_paths:
        files = load_unlabelled(d.transfer_source, [Path(p) for p in d.transfer_paths], data.max_constituents)
        check_physics(files, f"distill.transfer_paths ({', '.join(d.transfer_paths)})")
        parts.append(files)
        origin["paths"] = list(d.transfer_paths)
    c = np.concatenate(parts) if parts else np.zeros((0, data.max_constituents, 4), np.float32)
    return c[np.random.default_rng([data.seed, 1]).permutation(len(c))], origin


def _views(model, constituents, betas, n_particles, progress) -> np.ndarray:
    """Teacher logits (k, N, K) on each view: every jet's leading constituents boosted by its own velocity."""
    from ..data.boost import apply_matrices, boost_matrices
    from ..train.teacher import teacher_logits

    lead = np.asarray(constituents[:, :n_particles])
    return np.stack([teacher_logits(model, apply_matrices(lead, boost_matrices(b)).astype(np.float32),
                                    n_particles, progress=progress) for b in betas])


def run_transfer(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..data.boost import view_velocities
    from ..data.formats import read_canonical
    from ..data.transfer import check_disjoint, write_transfer
    from ..numerics import require
    from ..train.teacher import load_teacher, teacher_logits

    arithmetic = require("the transfer stage")
    distill = cfg.distill
    data, teacher = ctx.dir(DATA), ctx.dir(TEACHER)
    if distill.uses_teacher:
        c_transfer, origin = _transfer_jets(cfg, ctx)
    else:  # from scratch: no teacher targets to learn from, so no transfer jets and no teacher logits
        if distill.transfer_jets_per_class or distill.transfer_paths:
            info("[transfer] distill.alpha is 0 (from scratch): transfer jets skipped (teacher targets only)")
        c_transfer, origin = np.zeros((0, cfg.data.max_constituents, 4), np.float32), {}
    summary: dict = {"transfer_jets": int(len(c_transfer)), **origin, "views": 0, "numerics": arithmetic}
    if not len(c_transfer) and distill.augment_max_beta == 0:
        return summary
    # on the device the teacher stage resolved (its stamp, upstream of this one, holds it)
    model = load_teacher(teacher / TEACHER_MODEL, cfg.teacher.resolved.device) if distill.uses_teacher else None
    n = cfg.teacher.n_particles
    splits = {k: read_canonical(data / split_file(k))[0] for k in SPLITS}
    if len(c_transfer):
        summary["overlap"] = check_disjoint(c_transfer, splits)
        (out / OVERLAP).write_text(json.dumps(summary["overlap"], indent=2))
        write_transfer(out / TRANSFER_JETS, c_transfer, {"origin": json.dumps(origin, default=str)})
        np.save(out / TRANSFER_LOGITS, teacher_logits(model, c_transfer, n, progress=ctx.progress))
        info(f"[transfer] {len(c_transfer)} transfer jets, none shared with train/val/test (constituent hashes)")
    if distill.augment_max_beta > 0:
        for part, (name, c) in enumerate((("train", splits["train"]), ("transfer", c_transfer))):
            betas = view_velocities(cfg.data.seed, part, distill.augment_views, len(c), distill.augment_max_beta)
            np.save(out / view_betas_file(name), betas)
            if model is not None:
                np.save(out / view_logits_file(name), _views(model, c, betas, n, ctx.progress))
        summary["views"] = distill.augment_views
        info(f"[transfer] teacher logits on {distill.augment_views} boosted views (|beta| <= {distill.augment_max_beta}) "
             f"of {len(splits['train'])} training + {len(c_transfer)} transfer jets")
    return summary
