"""Stage `data`: jets in the canonical layout, split into train / val / test.

Output (in the content-addressed cache, linked from ``<run-dir>/data``):
``train.h5``, ``val.h5``, ``test.h5`` (``constituents`` (N, P, 4) float32 E,px,py,pz GeV,
``is_top`` (N,) int8) and ``summary.json`` (counts, jet-mass medians, generation cost).
Generated jets come from a shard pool keyed by the physics settings (not by the
number of jets), so asking for more jets later reuses the shards already made and
an interrupted generation resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..cache import note_use
from ..concurrency import waiting_lock
from ..config import Config, stamp_of
from ..console import info
from ..pipeline import RunContext, StageError


def _gen_settings(cfg: Config):
    """The physics settings of generation: the ``data:`` keys that GenSettings names."""
    from ..data.generate import GenSettings

    return GenSettings(**{f.name: getattr(cfg.data, f.name) for f in dataclasses.fields(GenSettings)})


def shard_pool(cfg: Config, cache: Path) -> Path:
    """Directory of generated shards for these physics settings and seed, generation code and tool versions."""
    from ..fingerprint import code_fingerprint, tool_versions

    settings = _gen_settings(cfg)
    key = stamp_of("jets", settings, cfg.data.seed, cfg.data.shard_size,
                   code_fingerprint("trigger_kd.data.generate")["sha256"], tool_versions(("pythia", "fastjet")))
    return cache / "jets" / key[:24]


def _split_arrays(constituents, is_top, split, seed, jets_per_class):
    rng = np.random.default_rng(seed)
    keep = []
    for label in (1, 0):
        idx = np.flatnonzero(is_top == label)
        if len(idx) == 0:
            raise StageError(f"the input has no {'top' if label else 'QCD'} jets")
        rng.shuffle(idx)
        if jets_per_class > 0:
            idx = idx[:jets_per_class]
        keep.append(idx)
    idx = np.concatenate(keep)
    rng.shuffle(idx)
    n = len(idx)
    fractions = np.asarray(split, dtype=float)
    if np.any(fractions <= 0) or abs(fractions.sum() - 1.0) > 1e-6:
        raise StageError(f"data.split must be three positive fractions adding up to 1, got {list(split)}")
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    parts = {
        "train": idx[:n_train],
        "val": idx[n_train : n_train + n_val],
        "test": idx[n_train + n_val :],
    }
    return {k: (constituents[v], is_top[v]) for k, v in parts.items()}


def data_summary(out: Path) -> dict:
    from ..data.formats import read_canonical
    from ..data.physics import jet_kinematics

    summary: dict = {}
    for split in ("train", "val", "test"):
        c, y = read_canonical(out / f"{split}.h5")
        kin = jet_kinematics(c)
        n_const = (np.abs(c).sum(axis=-1) > 0).sum(axis=1)
        summary[split] = {
            "n_jets": int(len(y)),
            "n_top": int((y == 1).sum()),
            "n_qcd": int((y == 0).sum()),
            "top_mass_median_gev": float(np.median(kin["mass"][y == 1])) if (y == 1).any() else None,
            "qcd_mass_median_gev": float(np.median(kin["mass"][y == 0])) if (y == 0).any() else None,
            "mean_constituents": float(n_const.mean()) if len(n_const) else None,
        }
    return summary


def run_data(cfg: Config, ctx: RunContext, out: Path) -> dict:
    d = cfg.data
    from ..data.formats import load_source, write_canonical

    summary: dict = {"source": d.source}
    if d.source == "pythia":
        from ..data.generate import assemble, generate_jets

        if d.jets_per_class <= 0:
            raise StageError("data.jets_per_class must be positive for generated jets")
        pool = shard_pool(cfg, ctx.cache)
        pool.parent.mkdir(parents=True, exist_ok=True)
        with waiting_lock(pool.with_name(f"{pool.name}.lock"), f"jet pool {pool}"):
            info(f"[data] generating {d.jets_per_class} top + {d.jets_per_class} QCD jets "
                 f"(Pythia 8 + FastJet), shards in {pool}")
            gen = generate_jets(
                pool, d.jets_per_class, _gen_settings(cfg), seed=d.seed, workers=d.workers,
                shard_size=d.shard_size, progress=ctx.progress,
            )
            note_use(pool, made_from={"seed": d.seed, "shard_size": d.shard_size,
                                      **dataclasses.asdict(_gen_settings(cfg))})
            summary["generation"] = gen
            summary["pool"] = str(pool)  # `trigger-kd cache prune` keeps pools a dataset names
            paths = assemble(pool, d.jets_per_class, split=tuple(d.split), seed=d.seed, out_dir=out)
        for split, path in paths.items():
            if Path(path).resolve().parent != out.resolve():
                os.replace(path, out / f"{split}.h5")
    else:
        if not d.paths:
            raise StageError(f"data.source is '{d.source}' but data.paths is empty: list the input files")
        constituents, is_top = load_source(d.source, [Path(p) for p in d.paths], d.max_constituents)
        parts = _split_arrays(constituents, is_top, d.split, d.seed, d.jets_per_class)
        for split, (c, y) in parts.items():
            write_canonical(out / f"{split}.h5", c, y)
        summary["paths"] = list(d.paths)
    summary.update(data_summary(out))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    info(
        "[data] "
        + ", ".join(f"{s}: {summary[s]['n_jets']} jets" for s in ("train", "val", "test"))
        + f"; top mass median {summary['train']['top_mass_median_gev']:.0f} GeV, "
        f"QCD {summary['train']['qcd_mass_median_gev']:.0f} GeV"
    )
    return summary
