"""`trigger-kd import-qonnx`: firmware and an honest parity report for a QONNX model trained elsewhere.

The model gets small fixing transformations (``qonnx_rules.py``), qonnx cleanup (channels-last for
image/sequence inputs), the exactness rules, an hls4ml project compiled with g++, and ``parity.json``
comparing C-simulation with QONNX execution on the given inputs or on N random inputs on the
firmware's input grid. Every model ends in one verdict:
- ``exact``: C-simulation equals QONNX execution on every input;
- ``approximate by design``: exact up to hls4ml's lookup-table layers (listed), measured before them;
- ``inexact, measured``: max |diff| in LSB and in value, argmax agreement, the first differing layer,
  and the reasons found in the graph (float bias/weights, non-power-of-two scales, BipolarQuant);
- ``refused`` (:class:`ImportRefused`): one line naming the node/op or tool limit and why.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..config import HLSConfig
from ..console import info, warn
from ..errors import TriggerKDError, one_line as _one_line
from ..fingerprint import sha256_file
from ..manifest import write_manifest
from ..rundir import HLS_PROJECT, IMPORT_CSIM, IMPORT_RECORD, IMPORT_REFERENCE, ONNX_CLEAN, PARITY
from ..fixedpoint import FixedFormat, NotFixedPoint
from .hls import FirmwareError, check_ops, compile_model, convert_qonnx, first_mismatch_layer, hls_predict, reference_tensors
from .parity import compare_fixed
from .qonnx_rules import QonnxDomain, apply_fixes
from .rules import first_input_quant

APPROXIMATE_OPS = {"Softmax": "lookup-table softmax", "Sigmoid": "lookup-table sigmoid", "Tanh": "lookup-table tanh"}
QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "FloatQuant", "IntQuant")
SPATIAL_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize")
FLOAT_MODEL = ("{} is a float ONNX model (no Quant nodes), not QONNX: built with hls4ml's default fixed<16,6> types "
               "and measured. For exact firmware quantise it (Brevitas, or QKeras exported to QONNX); to measure "
               "hls4ml's post-training quantisation at other types give --input-precision and hls.layer_precision")
HLS4ML_DEFAULT_INPUT = "fixed<16,6>"  # hls4ml's default precision, which the config gives an unquantised input


class ImportRefused(FirmwareError):
    """The model cannot be turned into firmware here; the message names the node/op or limit and why."""


def check_inputs(inputs: np.ndarray | None, n: int) -> None:
    """Refuse before any build: no rows to compare, or values no fixed-point input can hold."""
    if inputs is None and n < 1:
        raise TriggerKDError(f"--n {n}: need at least one input to compare firmware with the model")
    if inputs is not None:
        x = np.asarray(inputs)
        if x.ndim < 2 or len(x) == 0 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_):
            raise TriggerKDError(f"--inputs: expected a numeric array (rows, *input shape), got {x.dtype} {x.shape}")
        if np.iscomplexobj(x):
            raise TriggerKDError(f"--inputs holds complex numbers ({x.dtype}); fixed-point firmware takes real "
                                 "inputs: give the real values")
        bad = ~np.isfinite(x.astype(np.float64))
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(x), -1).any(1))
            raise TriggerKDError(f"--inputs holds NaN or inf in {len(rows)} rows (first: {rows[:5].tolist()}); "
                                 "fixed-point firmware has no such values: remove or replace them")


def check_interface(mw, source: Path) -> None:
    """One input tensor and one output tensor: what the firmware and the comparison take."""
    consts = {i.name for i in mw.graph.initializer}
    inputs = [i.name for i in mw.graph.input if i.name not in consts]
    outputs = [o.name for o in mw.graph.output]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ImportRefused(f"{source}: the model has {len(inputs)} inputs ({', '.join(inputs) or 'none'}) and "
                            f"{len(outputs)} outputs ({', '.join(outputs) or 'none'}); import-qonnx builds firmware "
                            "for a model with one input and one output")
    dims = next(i for i in mw.graph.input if i.name == inputs[0]).type.tensor_type.shape.dim
    shown = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in dims]
    bad = [k for k, d in enumerate(dims) if k > 0 and not (d.HasField("dim_value") and d.dim_value > 0)]
    if len(dims) < 2 or bad:
        why = f"dimension {bad[0]} is {shown[bad[0]]!r}" if bad else "no feature dimension after the batch"
        raise ImportRefused(f"{source}: the input {inputs[0]} has shape {shown}: {why}; firmware takes one fixed input "
                            "shape: export the model with every dimension but the batch fixed to a positive size")


def prepare(mw, source: Path) -> tuple[object, list[str], bool]:
    """Fixes + qonnx cleanup (+ channels-last, GemmToMatMul); returns (clean graph, fixes, input made channels-last)."""
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    fixes = []
    opset = next((o.version for o in mw.model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset < 9 and all(n.domain == "" for n in mw.graph.node):  # qonnx cleanup and onnxruntime fail on these
        from onnx.version_converter import convert_version

        mw = type(mw)(convert_version(mw.model, 13))
        fixes.append(f"ONNX opset {opset} -> 13 (onnx.version_converter)")
    shape = [d.dim_value for d in mw.graph.input[0].type.tensor_type.shape.dim]
    if shape and shape[0] != 1:
        mw = mw.transform(ChangeBatchSize(1))
        fixes.append(f"batch size {shape[0]} -> 1 (firmware takes one input at a time)")
    domain = QonnxDomain()
    mw = cleanup_model(mw.transform(domain))
    mw, more = apply_fixes(mw)
    fixes += domain.applied[:1] + [f"... and {len(domain.applied) - 1} more"] * (len(domain.applied) > 1)
    fixes += more
    to_last = False
    if len(shape) >= 3 and any(n.op_type in SPATIAL_OPS for n in mw.graph.node):
        first = [n.op_type for n in mw.graph.node if mw.graph.input[0].name in n.input]
        to_last = first != ["Transpose"]  # a Keras export already takes channels-last inputs
        mw = mw.transform(ConvertToChannelsLastAndClean(make_input_channels_last=to_last))
        fixes.append("qonnx channels-last conversion" + (" (input made channels-last)" if to_last else ""))
    return cleanup_model(mw.transform(GemmToMatMul())), fixes, to_last


def input_type(clean, given: str | None, source: Path) -> tuple[FixedFormat, str, bool]:
    """(firmware input type, where it comes from, from the model's own quantiser). ``given`` (--input-precision) is
    for an input no power-of-two Quant node reads; against such a quantiser's own type it is refused (two types of
    one input: the firmware would read another grid than the model), unless the two are the same type."""
    q0 = first_input_quant(clean)
    if given is not None:
        fmt = FixedFormat.from_hls(given)
        try:
            own = FixedFormat.from_quant(clean, q0) if q0 is not None else None
        except NotFixedPoint:
            own = None
        if own is not None and own != fmt:
            raise ImportRefused(f"{source}: --input-precision {fmt.hls} contradicts the model's input quantiser "
                                f"{q0.name} ({own.hls}): the firmware would read another input grid than the model; "
                                f"leave --input-precision out (the quantiser's type is used) or give {own.hls}")
        return fmt, "--input-precision" + (f" (= input quantiser {q0.name})" if own else ""), own is not None
    if q0 is not None:
        try:
            return FixedFormat.from_quant(clean, q0), f"input quantiser {q0.name}", True
        except NotFixedPoint as exc:
            why = str(exc)
    else:
        bq = [n.name for n in clean.graph.node if n.op_type == "BipolarQuant" and n.input[0] == clean.graph.input[0].name]
        why = f"the input is binarised by BipolarQuant {bq[0]}" if bq else "no Quant node reads the input"
    return FixedFormat.from_hls(HLS4ML_DEFAULT_INPUT), f"hls4ml default ({why})", False


def graph_reasons(clean, source) -> list[str]:
    """What in the graph keeps hls4ml from being exact (for the verdict's ``reason``)."""
    if not any(n.op_type in QUANT_OPS for n in clean.graph.node):
        return [FLOAT_MODEL.format(source)]
    quant_out = {n.output[0] for n in clean.graph.node if n.op_type in QUANT_OPS}
    reasons, floats, pow2_bad, bipolar = [], [], [], []
    for node in clean.graph.node:
        if node.op_type == "Quant":
            try:
                FixedFormat.from_quant(clean, node)
            except NotFixedPoint as exc:
                pow2_bad.append(str(exc))
        elif node.op_type == "BipolarQuant":
            bipolar.append(node.name)
        elif node.op_type in ("Add", "MatMul", "Mul", "Sub", "Div", "Conv", "BatchNormalization"):
            consts = [i for i in node.input[1:] if clean.get_initializer(i) is not None and i not in quant_out]
            if consts:
                floats.append(f"{node.name} ({node.op_type})")
    if bipolar:
        reasons.append(f"BipolarQuant ({', '.join(bipolar)}): hls4ml computes 0/1 where QONNX has -1/+1")
    if pow2_bad:
        reasons.append(f"{len(pow2_bad)} Quant nodes with scales no ap_fixed type holds (e.g. {pow2_bad[0]}); "
                       "hls4ml rescales them in fixed point (ApplyAlpha)")
    if floats:
        reasons.append(f"unquantised float constants in {', '.join(floats[:4])}{' ...' if len(floats) > 4 else ''}: "
                       "hls4ml rounds them to its default fixed<16,6>")
    return reasons


def _on_grid(x: np.ndarray, fmt: FixedFormat) -> tuple[np.ndarray, int]:
    with np.errstate(over="ignore"):  # a huge value scales to inf and clips to the type's end like any other
        q = np.clip(np.round(x * 2.0**fmt.frac_bits), fmt.int_min, fmt.int_max) * 2.0**-fmt.frac_bits
    return q, int(np.sum(q != x))


MIN_DISTINCT_INPUTS = 10  # a verdict on fewer distinct inputs says little about the rest of the input space


def input_caveats(given: np.ndarray | None, x: np.ndarray, fmt: FixedFormat) -> list[str]:
    """What limits a verdict measured on ``x`` (the inputs on the firmware's grid; ``given``: as the user gave
    them, None for random ones), each one line the verdict line and parity.json carry: given values outside the
    input type's range (clipped to its ends: the comparison saw saturated inputs, not the values given), and a
    degenerate input set (all rows equal, fewer than MIN_DISTINCT_INPUTS distinct rows on the grid)."""
    caveats = []
    if given is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.round(np.asarray(given, dtype=np.float64) * 2.0**fmt.frac_bits)
        out = (scaled < fmt.int_min) | (scaled > fmt.int_max)
        if out.any():
            rows = int(out.reshape(len(out), -1).any(1).sum())
            lo, hi = fmt.int_min * 2.0**-fmt.frac_bits, fmt.int_max * 2.0**-fmt.frac_bits
            caveats.append(f"{int(out.sum())} of {out.size} given input values ({100.0 * out.mean():.3g} %, in {rows} "
                           f"of {len(out)} rows) lie outside the input type {fmt.hls} range [{lo:g}, {hi:g}] and "
                           f"saturate: the comparison saw the clipped values, not the inputs given")
    distinct = len(np.unique(x.reshape(len(x), -1), axis=0)) if len(x) else 0
    if len(x) > 1 and distinct == 1:
        caveats.append(f"all {len(x)} inputs are one and the same row on the input grid: the verdict covers that "
                       f"one input only")
    elif distinct < MIN_DISTINCT_INPUTS:
        caveats.append(f"only {distinct} distinct input rows on the input grid (of {len(x)}; fewer than "
                       f"{MIN_DISTINCT_INPUTS}): the verdict covers those only")
    return caveats


def _lsb(layer) -> float:
    p = layer.get_output_variable().type.precision
    return 2.0 ** -(int(p.width) - int(p.integer)) if hasattr(p, "integer") else 1.0


def import_qonnx(model_path: Path, run_dir: Path, settings: HLSConfig, inputs: np.ndarray | None = None,
                 n: int = 1000, seed: int = 0, input_precision: str | None = None) -> dict:
    check_inputs(inputs, n)
    if getattr(settings, "output", "logits") != "logits":
        raise TriggerKDError(f"import-qonnx builds and judges the model's own outputs; hls.output "
                             f"{settings.output} applies to pipeline runs (`trigger-kd run`): set hls.output: logits")
    if input_precision is not None:
        FixedFormat.from_hls(input_precision)  # refuse a malformed type before any work
    try:
        return _import(Path(model_path), Path(run_dir), settings, inputs, n, seed, input_precision)
    except TriggerKDError:
        raise
    except Exception as exc:  # a tool's own failure on a published model: one line, never a traceback
        raise ImportRefused(f"{model_path}: {_one_line(exc)}") from exc


def _import(model_path, run_dir, settings, inputs, n, seed, input_precision) -> dict:
    import hls4ml

    clean, fixes, to_last = _load(model_path)
    fmt, fmt_source, own_quantiser = input_type(clean, input_precision, model_path)
    x, input_source = _inputs(clean, fmt, own_quantiser, inputs, n, seed, to_last)  # refused before the claim
    clean_path, model_sha = _claim(run_dir, model_path, clean)
    caveats = input_caveats(inputs, x, fmt)
    hls_model, rules = _build(model_path, clean_path, run_dir, settings, (fmt, fmt_source), fixes)
    result: dict = {"model": str(model_path), "n_jets": int(len(x)), "inputs": input_source,
                    "input_precision": fmt.hls, "input_precision_source": fmt_source,
                    "source": f"hls4ml {hls4ml.__version__} C-simulation (g++), {settings.backend} backend",
                    "compared_with": "qonnx execution of the cleaned graph", "hls_rules": rules}
    result.update(_compare(model_path, run_dir, clean, clean_path, hls_model, x))
    result.update(_verdict(result, model_path, clean, clean_path, hls_model, x))
    result["input_caveats"] = caveats  # the verdict holds on these inputs only: said wherever it is
    result["model_sha256"] = model_sha
    _seal(run_dir, model_path, result)
    line = (f"[import-qonnx] {result['verdict']}: bit-exact on {result['bit_exact_fraction'] * 100:.3f} % of "
            f"{len(x)} inputs (at {result['compared_at']}); report {run_dir / PARITY}")
    if caveats:
        warn(f"{line}; but {'; and '.join(caveats)}")
    else:
        info(line)
    return result


def _load(model_path: Path):
    """(the cleaned graph, the fixes applied, whether channels moved last); refuses what cannot be built."""
    from qonnx.core.modelwrapper import ModelWrapper

    if not model_path.is_file():
        raise TriggerKDError(f"{model_path}: file not found (expected a QONNX .onnx model)")
    if model_path.stat().st_size == 0:
        raise TriggerKDError(f"{model_path}: an empty file (0 bytes), not an ONNX model")
    try:
        mw = ModelWrapper(str(model_path))
    except Exception as exc:
        raise TriggerKDError(f"{model_path}: not a readable ONNX model ({_one_line(exc)})") from exc
    check_interface(mw, model_path)
    try:
        clean, fixes, to_last = prepare(mw, model_path)
    except Exception as exc:
        raise ImportRefused(f"{model_path}: qonnx cleanup failed ({_one_line(exc)})") from exc
    try:
        check_ops(clean, model_path, original=mw)
    except FirmwareError as exc:
        raise ImportRefused(str(exc)) from exc
    if not any(n.op_type in QUANT_OPS for n in clean.graph.node):
        warn(FLOAT_MODEL.format(model_path))
    return clean, fixes, to_last


def _claim(run_dir: Path, model_path: Path, clean) -> tuple[Path, str]:
    """Claim ``run_dir`` for this import and save the cleaned graph: (its path, the model's sha256)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model_sha = sha256_file(model_path)
    # claimed first: an import that stops half way leaves a directory check-parity calls incomplete, not a verdict
    write_text_atomic(run_dir / IMPORT_RECORD, json.dumps({"tool": "import-qonnx", "complete": False,
                                                           "model": str(model_path.resolve())}, indent=2))
    clean_path = run_dir / ONNX_CLEAN
    with atomic_path(clean_path) as tmp:
        clean.save(str(tmp))
    return clean_path, model_sha


def _inputs(clean, fmt: FixedFormat, own_quantiser: bool, inputs, n: int, seed: int,
            to_last: bool) -> tuple[np.ndarray, str]:
    """(the inputs on the firmware's input grid, where they came from): ``inputs``, or ``n`` random ones."""
    shape = tuple(d.dim_value for d in clean.graph.input[0].type.tensor_type.shape.dim)[1:]
    rng = np.random.default_rng(seed)
    if inputs is None:
        x = fmt.grid(rng, (n, *shape)) if own_quantiser else _on_grid(rng.standard_normal((n, *shape)), fmt)[0]
        return x, (f"{n} random inputs " + ("uniform on" if own_quantiser else "N(0,1) rounded to")
                   + f" the input grid {fmt.hls} (seed {seed})")
    x = np.asarray(inputs, dtype=np.float64)
    if to_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if tuple(x.shape[1:]) != shape:
        raise TriggerKDError(f"--inputs has rows of shape {tuple(x.shape[1:])}, the model takes {shape}"
                             + (" (after moving channels last)" if to_last else ""))
    x, moved = _on_grid(x, fmt)
    return x, f"{len(x)} given inputs" + (f" ({moved} values rounded onto the input grid {fmt.hls})" if moved else "")


def _build(model_path: Path, clean_path: Path, run_dir: Path, settings: HLSConfig, input_format, fixes: list):
    """The hls4ml project of the cleaned graph, compiled: (the hls4ml model, the fixes and exactness rules applied,
    also written to hls_rules.json)."""
    import hls4ml

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            hls_model, rules = convert_qonnx(clean_path, run_dir / HLS_PROJECT, settings, input_format=input_format)
    except TriggerKDError:
        raise
    except Exception as exc:
        raise ImportRefused(f"{model_path}: hls4ml {hls4ml.__version__} cannot convert it ({_one_line(exc)})") from exc
    rules = fixes + rules
    write_text_atomic(run_dir / "hls_rules.json", json.dumps({"rules": rules}, indent=2))
    try:
        compile_model(hls_model)
    except TriggerKDError as exc:
        raise ImportRefused(f"{model_path}: {exc}") from exc
    return hls_model, rules


def _compare(model_path: Path, run_dir: Path, clean, clean_path: Path, hls_model, x: np.ndarray) -> dict:
    """C-simulation against QONNX execution, at the output or (lookup-table layers) before the first of them; the
    compared values are saved as the evidence check-parity re-reads."""
    import hls4ml

    info(f"[import-qonnx] C-simulation of {len(x)} inputs")
    csim = hls_predict(hls_model, x, progress=False)
    approx = [(nd.name, nd.op_type, nd.input[0]) for nd in clean.graph.node if nd.op_type in APPROXIMATE_OPS]
    out_name = clean.graph.output[0].name
    ref = reference_tensors(clean_path, x, keep={out_name} | {a[2] for a in approx})
    ref_out = ref[out_name]
    if csim.shape != ref_out.shape:
        raise ImportRefused(f"{model_path}: the hls4ml project returns {csim.shape[1]} values per input, the model "
                            f"{ref_out.shape[1]} (hls4ml {hls4ml.__version__} dropped or reshaped the output)")
    layers = [layer for layer in hls_model.get_layers() if layer.class_name != "Input"]
    result: dict = {"approximate_layers": [{"node": nm, "op": op, "why": APPROXIMATE_OPS[op]} for nm, op, _ in approx]}
    at = _last_exact_layer(layers) if approx else None
    if at is not None:
        with contextlib.redirect_stdout(io.StringIO()):
            _, trace = hls_model.trace(np.ascontiguousarray(x))
        got, want = np.asarray(trace[at.name], dtype=np.float64).reshape(len(x), -1), ref[approx[0][2]]
        result.update(compare_fixed(got, want, _lsb(at), strict=False), compared_at=at.name)
    else:
        got, want = csim, ref_out
        result.update(compare_fixed(got, want, _lsb(layers[-1]), strict=False), compared_at="output")
    for name, values in ((IMPORT_CSIM, got), (IMPORT_REFERENCE, want)):  # the evidence check-parity re-reads
        with atomic_path(run_dir / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(values, dtype=np.float64).reshape(len(x), -1), allow_pickle=False)
    result["output_max_abs_diff"] = float(np.max(np.abs(csim - ref_out)))
    result["argmax_agreement"] = float(np.mean(csim.argmax(1) == ref_out.argmax(1))) if csim.shape[1] > 1 else None
    return result


def _verdict(result: dict, model_path: Path, clean, clean_path: Path, hls_model, x: np.ndarray) -> dict:
    """exact, approximate by design or inexact (measured, with the first differing layer and the graph's reasons)."""
    out: dict = {"first_mismatch_layer": None}
    exact = result["bit_exact_fraction"] == 1.0
    if not exact:
        try:
            first = x[result["first_mismatched_jets"][:5]]
            out["first_mismatch_layer"] = first_mismatch_layer(hls_model, clean_path, first)
        except Exception as exc:  # the per-layer trace is a diagnosis; its failure must not hide the verdict
            out["first_mismatch_layer_error"] = _one_line(exc)
        out["verdict"] = "inexact, measured"
        out["reason"] = "; ".join(graph_reasons(clean, model_path.name)) or "not identified from the graph"
    elif result["approximate_layers"]:
        out["verdict"] = "approximate by design"
        out["reason"] = "lookup-table layers: " + ", ".join(f"{a['node']} ({a['op']})"
                                                            for a in result["approximate_layers"])
    else:
        out["verdict"], out["reason"] = "exact", None
    return out


def _seal(run_dir: Path, model_path: Path, result: dict) -> None:
    """parity.json, the manifest of every file written, and the import record marked complete (written last)."""
    write_text_atomic(run_dir / PARITY, json.dumps(result, indent=2, default=float))
    outputs = write_manifest(run_dir, skip=frozenset({IMPORT_RECORD}))
    write_text_atomic(run_dir / IMPORT_RECORD, json.dumps(
        {"tool": "import-qonnx", "complete": True, "model": str(model_path.resolve()),
         "model_sha256": result["model_sha256"], "outputs": outputs}, indent=2))


def _last_exact_layer(layers):
    """The layer feeding hls4ml's first lookup-table layer (None if it is the first layer)."""
    for i, layer in enumerate(layers):
        if layer.class_name in ("Softmax", "Activation") and \
                str(layer.get_attr("activation", "")).lower() in ("softmax", "sigmoid", "tanh"):
            return layers[i - 1] if i > 0 else None
    return None
