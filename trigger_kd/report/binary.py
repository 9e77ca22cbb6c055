"""The physics section of a binary tagger's report: teacher, students and the jet-mass baselines on the same test
jets, what the network adds over the mass of its own inputs, the inputs, robustness to boosts.

A jet mass has no cut of its own: its accuracy is that of the mass cut chosen on the validation jets
(``train/baselines.py`` ``cut``), or a dash where none was chosen (a record from before the cut, or no validation
jets): never the "accuracy" of an uncut score.
"""
from __future__ import annotations

from pathlib import Path

from ..rundir import ROBUSTNESS_PLOT, ROC_PLOT
from .tables import fmt, md_table

NO_CUT = "—"  # the accuracy of a score without a cut


def _row(name: str, m: dict, accuracy: str) -> dict:
    return {"model": name, "accuracy": accuracy, "AUC": fmt(m.get("auc"), ".4f"),
            "1/eB @ eS=30%": fmt(m.get("rej30"), ".1f"), "1/eB @ eS=50%": fmt(m.get("rej50"), ".1f"),
            "jets": fmt(m.get("n_jets"), "d")}


def baseline_accuracy(b: dict, split: str = "test") -> str:
    """The accuracy of a jet-mass baseline at its validation-chosen cut, or a dash (no cut, none to show)."""
    return fmt((b.get(split) or {}).get("accuracy"), ".4f") if b.get("cut") else NO_CUT


def physics_rows(phys: dict) -> list[dict]:
    rows = [_row(name, phys[name], fmt(phys[name].get("accuracy"), ".4f"))
            for name in ("teacher", "student", "student_float") if phys.get(name)]
    for key, b in (phys.get("baselines") or {}).items():
        rows.append(_row(f"baseline: {b.get('what', key)}", b.get("test") or {}, baseline_accuracy(b)))
    return rows


def cut_note(baselines: dict) -> list[str]:
    """How the baselines' accuracy was obtained (the cut chosen on validation jets), or why it is a dash."""
    if not baselines:
        return []
    cuts = {b.get("what", k): b["cut"] for k, b in baselines.items() if b.get("cut")}
    if not cuts:
        return [f"Jet-mass accuracy: {NO_CUT} (a score without a cut has no accuracy, and no cut was chosen on "
                "validation jets for this run).", ""]
    n = next(iter(cuts.values())).get("n_jets")
    each = "; ".join(f"{what}: mass > {fmt(c.get('threshold'), '.1f')} GeV" for what, c in cuts.items())
    return [f"Jet-mass accuracy: that of the mass cut maximising the accuracy on the {fmt(n, 'd')} validation jets, "
            f"applied to the test jets ({each}); AUC and rejections need no cut.", ""]


def baseline_markdown(phys: dict) -> list[str]:
    """What the network adds over the jet mass of its own inputs (AUC on the same test jets)."""
    own = ((phys.get("baselines") or {}).get("jet_mass_inputs") or {}).get("test") or {}
    student = phys.get("student") or {}
    if own.get("auc") is None or student.get("auc") is None:
        return []
    gain = student["auc"] - own["auc"]
    return [f"What the network adds: the quantised student's AUC is {gain:+.4f} over the jet mass of its own "
            f"{(phys.get('inputs') or {}).get('n_particles', 'n/a')} input constituents ({student['auc']:.4f} vs "
            f"{own['auc']:.4f} on the same {own.get('n_jets', 'n/a')} test jets; score = the mass).", ""]


def binary_physics_markdown(phys: dict) -> list[str]:
    """The physics table (networks and baselines), the baselines' cut and what the network adds."""
    n = phys.get("n_test_jets")
    lines = ["## Physics", "",
             f"Measured on {n if n is not None else 'n/a'} test jets ({phys.get('source') or 'n/a'}).", ""]
    rows = physics_rows(phys)
    lines += [md_table(rows), ""] if rows else ["No physics metrics (student stage not run).", ""]
    lines += cut_note(phys.get("baselines") or {})
    lines += baseline_markdown(phys)
    return lines


def inputs_markdown(phys: dict, has_rows: bool) -> list[str]:
    lines: list[str] = []
    inputs = phys.get("inputs")
    if inputs:
        feats = inputs.get("features") or []
        lines += [f"Inputs: the {inputs.get('n_particles')} leading constituents (pT order, zero-padded), "
                  f"{len(feats)} features each ({', '.join(f'`{f}`' for f in feats)}), particle-major in the "
                  "firmware (trigger_kd/data/features.py).", ""]
        test_sat = (inputs.get("saturated_jets") or {}).get("test")
        if test_sat is not None:
            clipped = {k: v for k, v in test_sat.items() if v > 0}
            lines += ["Input range: " + (", ".join(f"`{k}` saturates the input quantiser in {100 * v:.2f} % of the test "
                                                   "jets" for k, v in clipped.items()) if clipped else
                                         "no feature saturates the input quantiser on any test jet") + ".", ""]
    if not phys.get("kd_vs_scratch") and has_rows:
        lines += ["KD vs scratch: no scratch twin in this run.", ""]
    return lines


def robustness_markdown(phys: dict, out: Path) -> list[str]:
    """Accuracy and AUC under boosts along x, then the ROC and robustness plots."""
    rows = [{"model": name, "boost beta (x)": fmt(b.get("beta"), "g"), "accuracy": fmt(b.get("accuracy"), ".4f"),
             "AUC": fmt(b.get("auc"), ".4f")}
            for name, r in (phys.get("robustness") or {}).items() for b in (r or {}).get("boost", [])]
    lines = ["### Robustness to Lorentz boosts", "", md_table(rows), ""] if phys.get("robustness") else []
    for img, title in ((ROC_PLOT, "ROC"), (ROBUSTNESS_PLOT, "Robustness")):
        if (out / img).is_file():
            lines += [f"![{title}]({img})", ""]
    return lines
