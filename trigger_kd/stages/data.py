"""Stage `data`: jets in the canonical layout, split into train / val / test.

Output (in the content-addressed cache, linked from ``<run-dir>/data``):
``train.h5``, ``val.h5``, ``test.h5`` (``constituents`` (N, P, 4) float32 E,px,py,pz GeV,
``is_signal`` (N,) int8 = 1 for the ``data.signal`` classes, ``jet_class`` names; a multi-class task
(``data.classes``) also ``label``, the class index, balanced per class and stratified by class) and
``summary.json`` (counts, per-class jet-mass medians and constituent counts, generation cost).
Generated jets come from one shard pool per class keyed by the class and the physics
settings (not by the number of jets), so asking for more jets later, or another task
using the same class, reuses the shards already made, and an interrupted generation
resumes where it stopped.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..config import Config
from ..classes import SIGNAL_CLASSES
from ..console import info
from ..rundir import SPLITS, SUMMARY, split_file
from ..stage import RunContext, StageError


def _split_arrays(constituents, labels, names, origin, data):
    from ..data.generate import split_counts

    task = data.task
    rng = np.random.default_rng(data.seed)
    keep = []
    for label in reversed(range(task.n_classes)):  # binary: signal (1) first, as always
        idx = np.flatnonzero(labels == label)
        if len(idx) == 0:
            what = task.outputs[label] if task.multiclass else ("signal" if label else "background")
            raise StageError(f"the input has no {what} jets")
        rng.shuffle(idx)
        if data.jets_per_class > 0:
            idx = idx[:data.jets_per_class]
        keep.append(idx)
    # stratified: each class split in the data.split fractions, then each split shuffled (every split holds the
    # classes in the same proportions, exactly)
    parts = {"train": [], "val": [], "test": []}
    for cls_idx in keep:
        start = 0
        for name, n in zip(parts, split_counts(len(cls_idx), data.split)):
            parts[name].append(cls_idx[start:start + n])
            start += n
    parts = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    empty = [k for k, v in parts.items() if len(v) == 0]
    if empty:
        raise StageError(f"{sum(len(k) for k in keep)} jets (data.jets_per_class={data.jets_per_class}) split {list(data.split)} leave "
                         f"the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} without jets: raise "
                         "data.jets_per_class (or give files with more jets)")
    return {k: (constituents[v], labels[v], names[v], origin[v]) for k, v in parts.items()}


def data_summary(out: Path, check_generated: bool = False) -> dict:
    """Per split: jet counts (signal = ``is_signal`` 1; a multi-class task: per class index) and, per jet class,
    count, jet-mass median (GeV), soft-drop mass median (z_cut 0.1, beta 0, on the first 500 jets) and mean
    number of constituents. ``check_generated``: generated jets pass the physics ranges files pass
    (data/sanity.py), per class, recorded as ``sanity`` (each split read once for both)."""
    from ..data.formats import read_canonical, read_classes, read_jet_classes
    from ..data.physics import jet_kinematics
    from ..data.sanity import check_physics

    summary: dict = {"sanity": {}} if check_generated else {}
    for split in SPLITS:
        c, y = read_canonical(out / split_file(split))
        classes = read_classes(out / split_file(split))
        names = read_jet_classes(out / split_file(split))
        if check_generated:
            summary["sanity"][split] = check_physics(c, f"generated {split} jets", names)
        mass = jet_kinematics(c)["mass"]
        n_const = (np.abs(c).sum(axis=-1) > 0).sum(axis=1)
        summary[split] = {"n_jets": int(len(y))}
        if classes is None:
            summary[split].update({
                "n_signal": int((y == 1).sum()),
                "n_background": int((y == 0).sum()),
                "signal_mass_median_gev": float(np.median(mass[y == 1])) if (y == 1).any() else None,
                "background_mass_median_gev": float(np.median(mass[y == 0])) if (y == 0).any() else None})
        else:
            summary[split]["n_per_label"] = {cls: int((y == k).sum()) for k, cls in enumerate(classes)}
        summary[split].update({
            "mean_constituents": float(n_const.mean()) if len(n_const) else None,
            "classes": {str(cls): _class_summary(c, mass, n_const, names == cls) for cls in sorted(set(names.tolist()))},
        })
    return summary


_SOFTDROP_JETS = 500  # soft-drop grooming costs a few ms per jet: medians from the first jets of a class


def _class_summary(c, mass, n_const, sel) -> dict:
    from ..data.physics import softdrop_mass

    idx = np.flatnonzero(sel)[:_SOFTDROP_JETS]
    return {"n_jets": int(sel.sum()), "mass_median_gev": float(np.median(mass[sel])),
            "mean_constituents": float(n_const[sel].mean()),
            "softdrop_mass_median_gev": float(np.median(softdrop_mass(c[idx]))),
            "softdrop_jets": int(len(idx))}


def _say_budget(cfg: Config, pools: dict[str, Path]) -> None:
    """Print the expected time, disk and memory of this request; refuse it when it cannot fit."""
    from ..data.budget import check_budget, generation_budget

    data_cfg = cfg.data
    existing = {cls: min(sum(1 for _ in pool.glob("shard_*.h5")) * data_cfg.shard_size, data_cfg.jets_per_class)
                if pool.is_dir() else 0 for cls, pool in pools.items()}
    budget = generation_budget(data_cfg.jets_per_class, existing, data_cfg.mpi, data_cfg.workers, data_cfg.max_constituents,
                               next(iter(pools.values())))
    info(f"[data] {budget.describe()}")
    check_budget(budget)


def run_data(cfg: Config, ctx: RunContext, out: Path) -> dict:
    data_cfg = cfg.data
    from ..data.formats import load_source, require_file, write_canonical

    task = data_cfg.task
    summary: dict = {"source": data_cfg.source}
    summary.update({"classes": list(task.outputs)} if task.multiclass else
                   {"signal": list(data_cfg.signal), "background": list(data_cfg.background)})
    if data_cfg.source == "pythia":
        from ..data.generate import assemble, filled_pools, shard_pool

        classes = task.classes
        _say_budget(cfg, {cls: shard_pool(data_cfg, ctx.cache, cls) for cls in classes})
        with filled_pools(data_cfg, ctx.cache, classes, data_cfg.jets_per_class, ctx.progress) as (pools, gen):
            summary["generation"] = gen
            # `trigger-kd cache prune` keeps pools a dataset names
            summary["pools"] = {cls: str(pool) for cls, pool in pools.items()}
            paths = assemble(pools, data_cfg, out_dir=out)
        for split, path in paths.items():
            if Path(path).resolve().parent != out.resolve():
                os.replace(path, out / split_file(split))
    else:
        from ..data.sanity import check_distinct_paths, check_empty_jets, check_no_leaks

        for path in data_cfg.paths:  # a directory or a symlink loop named as such, before anything resolves it
            require_file(Path(path), "check data.paths")
        check_distinct_paths(data_cfg.paths)
        sanity: dict = {}
        constituents, labels, names, origin = load_source(
            data_cfg.source, [Path(p) for p in data_cfg.paths], data_cfg.max_constituents, with_origin=True, task=task,
            report=sanity)
        summary["sanity"] = sanity  # what the physics checks saw per file and class (data/sanity.py ranges)
        check_empty_jets(constituents, origin, [str(p) for p in data_cfg.paths])
        parts = _split_arrays(constituents, labels, names, origin, data_cfg)
        check_no_leaks({k: v[0] for k, v in parts.items()}, {k: v[3] for k, v in parts.items()},
                       [str(p) for p in data_cfg.paths])
        for split, (c, y, n, _) in parts.items():
            is_signal = np.isin(n, SIGNAL_CLASSES).astype(np.int8) if task.multiclass else y
            write_canonical(out / split_file(split), c, is_signal, jet_class=n,
                            classes=task.outputs if task.multiclass else None)
        summary["paths"] = list(data_cfg.paths)
    summary.update(data_summary(out, check_generated=data_cfg.source == "pythia"))  # before any use
    (out / SUMMARY).write_text(json.dumps(summary, indent=2))
    info(
        "[data] "
        + ", ".join(f"{s}: {summary[s]['n_jets']} jets" for s in SPLITS)
        + "; train jet-mass medians "
        + ", ".join(f"{cls} {v['mass_median_gev']:.0f} GeV (soft drop {v['softdrop_mass_median_gev']:.0f})"
                    for cls, v in summary["train"]["classes"].items())
    )
    return summary
