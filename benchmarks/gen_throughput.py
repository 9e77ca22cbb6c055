"""Jet generation throughput (Pythia 8 + FastJet) on this machine.

    python benchmarks/gen_throughput.py --out benchmarks/out/gen_throughput.json [--jets 1000] [--mpi] [--workers N]

Generates ``--jets`` jets per class (``--classes``, default top and QCD) into temporary shard pools with the default
physics settings and writes jets per CPU-second per class, wall time, workers, settings and
machine info as JSON, plus per class the jet-mass and soft-drop mass medians and the mean
number of constituents as a sanity check.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402
from trigger_kd.config import DataConfig  # noqa: E402
from trigger_kd.data.formats import read_canonical  # noqa: E402
from trigger_kd.data.generate import CLASSES, generate_jets  # noqa: E402
from trigger_kd.data.physics import jet_kinematics, softdrop_mass  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, {"workers": "0 = one per core"}, out="benchmarks/out/gen_throughput.json", workers=0)
    ap.add_argument("--jets", type=int, default=1000, help="jets per class")
    ap.add_argument("--mpi", action="store_true", help="multi-parton interactions on")
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--classes", nargs="+", default=["top", "qcd"], choices=CLASSES)
    args = ap.parse_args()
    classes = args.classes
    settings = DataConfig(mpi=args.mpi, jets_per_class=args.jets, seed=args.seed, workers=args.workers,
                          shard_size=args.shard_size)
    with tempfile.TemporaryDirectory(prefix="gen_throughput_") as tmp:
        pool = Path(tmp) / "pool"
        t0 = time.time()
        stats = generate_jets({cls: pool / cls for cls in classes}, settings, progress=True)
        wall = time.time() - t0
        medians, groomed, n_const = {}, {}, {}
        for cls in classes:
            c = np.concatenate([read_canonical(p)[0] for p in sorted((pool / cls).glob("shard_*.h5"))])
            medians[cls] = float(np.median(jet_kinematics(c)["mass"]))
            groomed[cls] = float(np.median(softdrop_mass(c)))
            n_const[cls] = float(np.any(c != 0, axis=-1).sum(axis=1).mean())
    result = {
        **provenance(),
        "jets_per_class": args.jets,
        "jets_generated_per_class": {cls: stats[cls]["shards_generated"] * args.shard_size for cls in classes},
        "jets_per_cpu_second": {cls: stats[cls]["jets_per_cpu_second"] for cls in classes},
        "cpu_seconds": {cls: stats[cls]["cpu_seconds"] for cls in classes},
        "events": {cls: stats[cls]["events"] for cls in classes},
        "jets_per_wall_second": len(classes) * args.jets / wall if wall > 0 else None,
        "wall_seconds": wall,
        "workers": stats["workers"],
        "shard_size": args.shard_size,
        "jet_mass_median_gev": medians,
        "softdrop_mass_median_gev": groomed,
        "mean_constituents": n_const,
        "settings": settings.physics(),
        "machine": machine(cpu_count=os.cpu_count(), pythia8mc=metadata.version("pythia8mc"),
                           fastjet=metadata.version("fastjet")),
    }
    write_record(args.out, result)
    print(json.dumps({k: result[k] for k in ("jets_per_cpu_second", "wall_seconds", "workers",
                                             "jet_mass_median_gev", "softdrop_mass_median_gev",
                                             "mean_constituents")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
