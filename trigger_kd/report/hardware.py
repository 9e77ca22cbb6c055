"""The firmware half of the report: C-simulation parity (``firmware/parity.json``) and the resources and latency
of the synthesised design (``synth/resources.json``), each with its source."""
from __future__ import annotations

from pathlib import Path

from .tables import fmt, md_table

RESOURCE_KEYS = ("dsp", "lut", "ff", "bram_18k", "uram")


def parity_markdown(p: dict | None) -> list[str]:
    lines = ["## Firmware parity", ""]
    if not p:
        return lines + ["Firmware stage not run.", ""]
    lines += [
        f"C-simulation ({p.get('source', 'hls4ml csim')}) vs the quantised model on {p.get('n_jets')} test jets: "
        f"**{p.get('bit_exact_fraction', 0) * 100:.3f} % bit-exact**, max |diff| {fmt(p.get('max_abs_diff'), 'g')}, "
        f"first mismatching layer: {p.get('first_mismatch_layer') or 'none'}.", ""]
    if p.get("output") and p.get("output") != "logits":
        lines += [f"Deployed output: **{p['output']}** (`hls.output`); parity judges it on every test jet.", ""]
    fa = p.get("float_agreement") or {}
    if fa and fa.get("n_classes"):  # K classes: the class index
        lines += [f"Against the float twin: {fmt(fa.get('decision_agreement'), '.4f')} identical class decisions "
                  f"({fa.get('decision')}), max |diff| of a class probability {fmt(fa.get('max_score_diff'), '.4f')}, "
                  f"macro AUC quantised {fmt(fa.get('auc_quantized'), '.4f')} vs float "
                  f"{fmt(fa.get('auc_float'), '.4f')}.", ""]
    elif fa:
        lines += [f"Against the float twin: {fmt(fa.get('decision_agreement'), '.4f')} identical top/QCD decisions "
                  f"at the working point, max |diff| of the top score {fmt(fa.get('max_score_diff'), '.4f')}, "
                  f"AUC quantised {fmt(fa.get('auc_quantized'), '.4f')} vs float {fmt(fa.get('auc_float'), '.4f')}.", ""]
    return lines


def resources_markdown(r: dict | None, out: Path) -> list[str]:
    lines = ["## Resources", ""]
    if not r:
        return lines + ["Synthesis stage not run: no resource figures.", ""]
    lines += [f"Source: **{r.get('source')}** ({r.get('kind', 'n/a')}), part {r.get('part') or 'n/a'}, "
              f"clock target {fmt(r.get('clock_target_ns'), 'g')} ns.", ""]
    rows = [{"resource": k.upper(), "used": fmt(r.get(k), "g"),
             "available": fmt((r.get("available") or {}).get(k), "g"),
             "% of part": fmt((r.get("utilization_pct") or {}).get(k), ".3f")} for k in RESOURCE_KEYS]
    lines += [md_table(rows), ""]
    label = (r.get("extra") or {}).get("latency_label")
    lines += [f"Latency: {fmt(r.get('latency_cycles'), 'd')} cycles = {fmt(r.get('latency_max_ns'), '.1f')} ns"
              f"{f' ({label})' if label else ''}; initiation interval {fmt(r.get('interval_max'), 'd')}.", ""]
    if r.get("rtl_parity"):
        rp = r["rtl_parity"]
        lines += [f"RTL simulation vs the quantised model: {fmt(rp.get('bit_exact_fraction'), '.4f')} bit-exact "
                  f"on {rp.get('n_jets')} test jets ({rp.get('simulator', '')}).", ""]
    if r.get("da4ml_estimate") is not None:
        lines += [f"da4ml's own LUT estimate: {fmt(r.get('da4ml_estimate'), 'g')} (an estimate, beside the measured count).", ""]
    for note in r.get("notes", []) or []:
        lines += [f"- {note}"]
    if (out / "resources.png").is_file():
        lines += ["", "![Resources](resources.png)", ""]
    return lines
