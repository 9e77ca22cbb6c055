"""`trigger-kd import-qonnx` on every model of the corpus: one verdict per model, JSON + the table of
benchmarks/history/import_corpus.md.

    python benchmarks/import_corpus.py --out benchmarks/out/import_corpus.json [--n 1000] [--only NAME ...]

The corpus: the published files in tests/fixtures/qonnx_corpus (repository, path and commit of each
in SOURCES.md) and Brevitas models made with Brevitas' default quantisers (tests/corpus_models.py).
Each model runs with default options (``--n`` random inputs, no --input-precision) in its own
process, so one model's crash cannot hide the others. A refused model is also tried with plain
hls4ml (qonnx cleanup, GemmToMatMul, default config, compile), so the table says whether hls4ml
1.3 itself can compile it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import add_options, provenance, write_record  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))

from corpus_models import CORPUS, brevitas_models, export_brevitas  # noqa: E402

PLAIN_HLS4ML = """
import sys, contextlib, io, warnings
warnings.filterwarnings("ignore")
import hls4ml
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
from qonnx.transformation.gemm_to_matmul import GemmToMatMul
from qonnx.util.cleanup import cleanup_model
m = cleanup_model(ModelWrapper(sys.argv[1]))
if len(m.graph.input[0].type.tensor_type.shape.dim) >= 3:
    m = m.transform(ConvertToChannelsLastAndClean())
m = cleanup_model(m.transform(GemmToMatMul()))
with contextlib.redirect_stdout(io.StringIO()):
    cfg = hls4ml.utils.config.config_from_onnx_model(m, granularity="name", backend="Vitis")
    h = hls4ml.converters.convert_from_onnx_model(m, output_dir=sys.argv[2], backend="Vitis", hls_config=cfg)
    h.compile()
print("COMPILED")
"""


def run_one(path: Path, run_dir: Path, n: int, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "trigger_kd.cli", "import-qonnx", str(path), "--run-dir", str(run_dir), "--n", str(n)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, rc = f"timed out after {timeout:.0f} s", None
    rec = {"seconds": round(time.time() - t0, 1), "exit_code": rc, "traceback": "Traceback (most recent call last)" in out}
    parity = run_dir / "parity.json"
    if parity.is_file() and rc in (0, 1):
        p = json.loads(parity.read_text())
        rec.update({k: p.get(k) for k in ("verdict", "reason", "bit_exact_fraction", "compared_at", "max_abs_diff_lsb",
                                          "max_abs_diff", "argmax_agreement", "first_mismatch_layer", "input_precision",
                                          "input_precision_source", "n_jets", "hls_rules")})
        rec["firmware"] = True
    else:
        lines = [ln for ln in out.splitlines() if ln.startswith("error:")] or out.strip().splitlines()[-1:]
        rec.update({"verdict": "refused" if rc == 2 else "crashed", "reason": " ".join(lines)[:400], "firmware": False})
    return rec


def plain_hls4ml_compiles(path: Path, timeout: float) -> bool | None:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
        try:
            p = subprocess.run([sys.executable, "-c", PLAIN_HLS4ML, str(path), d], capture_output=True, text=True,
                               timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return None
        return "COMPILED" in p.stdout


def table(results: dict) -> str:
    rows = ["| model | verdict | exact at | bit-exact | max diff (LSB) | argmax agreement | reason / refusal |",
            "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        frac = "" if r.get("bit_exact_fraction") is None else f"{r['bit_exact_fraction'] * 100:.1f} %"
        lsb = "" if r.get("max_abs_diff_lsb") is None else f"{r['max_abs_diff_lsb']:.3g}"
        agree = "" if r.get("argmax_agreement") is None else f"{r['argmax_agreement'] * 100:.1f} %"
        reason = (r.get("reason") or "").replace("|", "/")[:160]
        if not r["firmware"] and r.get("plain_hls4ml_compiles") is not None:
            reason += f" (plain hls4ml 1.3 {'compiles' if r['plain_hls4ml_compiles'] else 'fails too'})"
        rows.append(f"| {name} | {r['verdict']} | {r.get('compared_at') or ''} | {frac} | {lsb} | {agree} | {reason} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, out=str(REPO / "benchmarks" / "out" / "import_corpus.json"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="import_corpus_"))
    models = {p.stem: (p, "published: see tests/fixtures/qonnx_corpus/SOURCES.md") for p in sorted(CORPUS.glob("*.onnx"))}
    for name in brevitas_models():
        models[name] = (export_brevitas(name, work), "Brevitas defaults (tests/corpus_models.py)")
    old = Path(args.out)
    results = json.loads(old.read_text())["results"] if args.only and old.is_file() else {}  # --only: update those
    for name, (path, origin) in models.items():
        if args.only and name not in args.only:
            continue
        rec = run_one(path, work / name, args.n, args.timeout)
        rec["origin"] = origin
        if not rec["firmware"]:
            rec["plain_hls4ml_compiles"] = plain_hls4ml_compiles(path, args.timeout)
        results[name] = rec
        print(f"{name}: {rec['verdict']} ({rec['seconds']} s) {rec.get('reason') or ''}"[:300], flush=True)
    compilable = [r for r in results.values() if r["firmware"] or r.get("plain_hls4ml_compiles")]
    summary = {"models": len(results), "firmware_and_parity": sum(r["firmware"] for r in results.values()),
               "hls4ml_can_compile": len(compilable), "tracebacks": sum(r["traceback"] for r in results.values()),
               "verdicts": {v: sum(r["verdict"] == v for r in results.values())
                            for v in sorted({r["verdict"] for r in results.values()})}}
    doc = {**provenance(flat_git=True), "n_random_inputs": args.n, "summary": summary, "results": results,
           "table_markdown": table(results)}
    write_record(args.out, doc)
    print(json.dumps(summary, indent=2))
    print(table(results))
    return 0 if summary["tracebacks"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
