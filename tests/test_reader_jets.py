"""Every jet file reader validates what it reads (data/formats.py, data/sanity.py; issue 35): properties over
generated inputs, per reader (canonical, top tagging, hls4ml, JetClass), not one test per case.

For each reader a generator makes files that are out of range (NaN/inf, negative energies, values beyond float32,
MeV units, zero-pT jets), missing (no jets, one jet, no labels), contradictory (two label sources that disagree)
and degenerate (single-particle jets, collinear jets of mass 0, all jets equal, all jets empty). Each one is
refused with one line (a TriggerKDError; `trigger-kd run --to data`: exit 2, one `error:` line) or loaded with a
warning the report carries, exactly as the ranges stated in data/sanity.py say; healthy files load silently."""
from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot

from trigger_kd.cli import main as cli
from trigger_kd.data import sanity
from trigger_kd.classes import Task
from trigger_kd.data.formats import DataFormatError, load_source, load_unlabelled, read_canonical
from trigger_kd.data.sanity import DataSanityError, check_physics
from trigger_kd.errors import TriggerKDError

P = 10
FIVE = ("gluon", "q", "w", "z", "top")


def _jets(n: int, rng, spread: float = 5.0) -> np.ndarray:
    """(n, P, 4) massless constituents E,px,py,pz in a cone around +x, jet pT ~400 GeV, masses of tens of GeV."""
    p3 = rng.normal(scale=spread, size=(n, P, 3)) + np.array([40.0, 0.0, 0.0])
    return np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1)


def _healthy(rng, classes=("top", "qcd"), n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    c = np.concatenate([_jets(n, rng, 5.0 + 2.0 * k) for k in range(len(classes))])
    names = np.repeat(np.asarray(classes), n)
    order = rng.permutation(len(c))
    return c[order], names[order]


# ----------------------------------------------------------------------------- writers: one per format
def _canonical(path, c, names, **datasets):
    """A canonical file; ``datasets`` replace (None: leave out) or add datasets, ``attr_*`` set attributes."""
    with h5py.File(path, "w") as f:
        base = {"constituents": c, "is_signal": (names == "top").astype(np.int8),
                "jet_class": np.asarray(names).astype("S8")}
        for key, value in base.items():
            if key not in datasets:
                f[key] = value
        for key, value in datasets.items():
            if key.startswith("attr_"):
                f.attrs[key[5:]] = value
            elif value is not None:  # None: the dataset left out
                f[key] = value
    return path


def _toptagging(path, c, names, is_signal=None, truth=None, text_column=False):
    n = len(c)
    data = {f"{k}_{i}": c[:, i, j] for i in range(c.shape[1]) for j, k in enumerate(("E", "PX", "PY", "PZ"))}
    y = (names == "top").astype(np.int64) if is_signal is None else is_signal
    if truth is None:  # the reference dataset: the top quark's 4-momentum for top jets, zero for QCD jets
        p = c[:, :, 1:].sum(axis=1)
        truth = np.concatenate([np.sqrt((p ** 2).sum(axis=1, keepdims=True) + 172.5 ** 2), p], axis=1)
        truth[np.asarray(names) != "top"] = 0.0
    for j, k in enumerate(("truthE", "truthPX", "truthPY", "truthPZ")):
        data[k] = truth[:, j]
    data["ttv"] = np.zeros(n, np.int64)
    data["is_signal_new"] = y
    df = pd.DataFrame(data)
    if text_column:
        df["PX_0"] = df["PX_0"].astype(str)
    df.to_hdf(path, key="table")
    return path


_HLS = {"gluon": 0, "q": 1, "w": 2, "z": 3, "top": 4}


def _hls4ml(path, c, names, onehot=None, undef=None):
    n = len(c)
    jets = np.zeros((n, 59), np.float32)
    if onehot is None:
        onehot = np.zeros((n, 5))
        onehot[np.arange(n), [_HLS["gluon" if k == "qcd" else k] for k in names]] = 1
    jets[:, 53:58] = onehot
    if undef is not None:
        jets[:, 58] = undef
    parts = np.zeros((n, P, 16), c.dtype)
    parts[:, :, 0:3] = c[..., 1:4]
    parts[:, :, 3] = c[..., 0]
    with h5py.File(path, "w") as f:
        f["jets"] = jets
        f["jetConstituentList"] = parts
        f["jetFeatureNames"] = np.array([f"j_feat{i}".encode() for i in range(53)]
                                        + [b"j_g", b"j_q", b"j_w", b"j_z", b"j_t", b"j_undef"])
        f["particleFeatureNames"] = np.array([s.encode() for s in ["j1_px", "j1_py", "j1_pz", "j1_e"]
                                              + [f"j1_f{i}" for i in range(12)]])
    return path


_JC = {"top": "label_Tbqq", "qcd": "label_QCD", "w": "label_Wqq", "z": "label_Zqq"}


def _jetclass(path, c, names, labels=None, counts=None, short=None, nparticles=None):
    n = len(c)
    counts = np.any(c != 0, axis=-1).sum(axis=1) if counts is None else counts
    branches = {}
    for b, j in (("part_px", 1), ("part_py", 2), ("part_pz", 3), ("part_energy", 0)):
        k = counts - 1 if b == short else counts  # `short`: this branch lists one particle fewer per jet
        k = np.maximum(k, 0)
        flat = np.concatenate([c[i, :k[i], j] for i in range(n)]) if n else np.zeros(0)
        branches[b] = ak.unflatten(flat.astype(np.float64), k)
    if labels is None:
        labels = {b: np.asarray(names) == cls for cls, b in _JC.items()}
        labels["label_Hbb"] = np.zeros(n, bool)
    branches.update({b: np.asarray(v).astype(np.bool_) if np.asarray(v).dtype == bool else np.asarray(v)
                     for b, v in labels.items()})
    if nparticles is not None:
        branches["jet_nparticles"] = np.asarray(nparticles, np.float32)
    with uproot.recreate(path) as f:
        f["tree"] = branches
    return path


WRITERS = {"canonical": _canonical, "toptagging": _toptagging, "hls4ml": _hls4ml, "jetclass": _jetclass}


# ----------------------------------------------------------------------------- the property's two halves
def _verdict(source, path, task=None):
    """'refused' (one line naming the file), 'warned' (loaded; the report carries a warning) or 'loaded'."""
    report: dict = {}
    try:
        load_source(source, [path], P, task=task, report=report)
    except TriggerKDError as exc:
        assert isinstance(exc, (DataFormatError, DataSanityError)), repr(exc)
        msg = str(exc)
        assert "\n" not in msg and str(path) in msg, msg
        return "refused", msg
    if report["warnings"]:
        assert all("\n" not in w for w in report["warnings"])
        return "warned", report["warnings"]
    assert report["files"][str(path)]["physics"]  # what it saw, per class
    return "loaded", report


def _cli(repo, tmp_path, source, path, capsys, classes=None) -> tuple[int, str]:
    run = tmp_path / f"run_{path.stem}"
    args = ["run", str(repo / "hls_configs/mlp_kd.yml"), "--to", "data", "--run-dir", str(run), "--no-progress",
            "--set", f"data.source={source}", "--set", f"data.paths=['{path}']", "--set", "data.jets_per_class=0",
            "--set", f"data.max_constituents={P}",
            "--set", f"teacher.n_particles={P}", "--set", "student.n_particles=8"]
    capsys.readouterr()
    rc = cli(args)
    return rc, capsys.readouterr().err


def _refused_by_cli(repo, tmp_path, source, path, capsys) -> None:
    rc, err = _cli(repo, tmp_path, source, path, capsys)
    assert rc == 2, err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    line = next(l for l in err.splitlines() if l.startswith("error:"))
    assert str(path) in line, line
    assert not (tmp_path / f"run_{path.stem}" / "data").exists()


# ----------------------------------------------------------------------------- physics: the stated ranges
def _expected_physics(c: np.ndarray, names: np.ndarray) -> str:
    """The verdict data/sanity.py's stated ranges give (an oracle written from the docstring's table)."""
    if not np.isfinite(c).all() or (np.abs(c) > np.finfo(np.float32).max).any():
        return "refused"
    c = c.astype(np.float32).astype(np.float64)
    mask = np.any(c != 0, axis=-1)
    if not len(c) or not mask.any():
        return "refused"
    e, p = c[..., 0][mask], np.linalg.norm(c[..., 1:][mask], axis=-1)
    if np.mean(e < p - 1e-3 * p - 1e-6) > 0.01:
        return "refused"
    verdict = "loaded"
    for cls in np.unique(names):
        sel = (names == cls) & mask.any(axis=1)
        if not sel.any():
            return "refused"
        mult = mask[sel].sum(axis=1)
        s = c[sel].sum(axis=1)
        pt = np.hypot(s[:, 1], s[:, 2])
        mass = np.sqrt(np.maximum(s[:, 0] ** 2 - (s[:, 1:] ** 2).sum(axis=1), 0))
        if np.median(mult) < 2 or (pt <= 0).any():
            return "refused"
        if not 1.0 <= np.median(mass[mult >= 2]) <= 3000.0 or not 1.0 <= np.median(pt) <= 5e4:
            return "refused"
        if len(pt) >= 2 and np.ptp(mult) == 0 and np.ptp(mass) == 0 and np.ptp(pt) == 0:
            return "refused"
        if np.mean(mult == 1) > 0.05 or ((names == cls) & ~mask.any(axis=1)).any():  # single or empty jets
            verdict = "warned"
    if c[..., 0].max() > 1e5:
        return "refused"
    return verdict


def _physics_cases(rng, n_cases: int):
    """(name, constituents, names): healthy jets damaged in one way, on a random subset of jets or classes."""
    kinds = ["nan", "inf", "negative_energy", "huge", "beyond_float32", "single", "collinear", "all_equal",
             "empty_file", "all_empty", "mev", "zero_pt", "one_class_single", "healthy"]
    for k in range(n_cases):
        kind = kinds[k % len(kinds)]
        c, names = _healthy(rng)
        n = len(c)
        some = rng.choice(n, int(rng.integers(1, n + 1)), replace=False)
        if kind == "nan":
            c[rng.integers(n), rng.integers(P), rng.integers(4)] = np.nan
        elif kind == "inf":
            c[rng.integers(n), rng.integers(P), rng.integers(4)] = rng.choice([np.inf, -np.inf])
        elif kind == "negative_energy":
            c[some, :, 0] *= -1
        elif kind == "huge":
            c[some] *= rng.choice([1e4, 1e8, 1e20])
        elif kind == "beyond_float32":
            c[rng.integers(n), 0] *= 1e38
        elif kind == "single":  # a random fraction of single-particle jets: refused above half, warned above 5 %
            frac = rng.choice([0.02, 0.2, 0.45, 0.7, 1.0])
            for i in rng.choice(n, int(frac * n), replace=False):
                c[i, 1:] = 0.0
        elif kind == "collinear":  # every constituent along the jet axis: mass 0
            c[..., 1:] = c[..., :1] * np.array([1.0, 0.0, 0.0])
        elif kind == "all_equal":
            c[:] = c[0]
        elif kind == "empty_file":
            c, names = c[:0], names[:0]
        elif kind == "all_empty":
            c[:] = 0.0
        elif kind == "mev":
            c *= 1000.0
        elif kind == "zero_pt":
            c[some, :, 1:3] = 0.0
            c[some, :, 0] = np.abs(c[some, :, 3])
        elif kind == "one_class_single":  # one class degenerate among healthy others: per class, not overall
            c[names == "qcd", 1:] = 0.0
        yield kind, c, names


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_physics_of_every_reader_against_the_stated_ranges(tmp_path, repo, capsys, source):
    rng = np.random.default_rng({"canonical": 1, "hls4ml": 2, "jetclass": 3, "toptagging": 4}[source])
    seen = set()
    for k, (kind, c, names) in enumerate(_physics_cases(rng, 28)):
        if source == "jetclass" and kind in ("all_empty",):  # a ROOT file lists particles: no empty slots to store
            continue
        path = WRITERS[source](tmp_path / f"{k}_{kind}.{'root' if source == 'jetclass' else 'h5'}", c, names)
        want = "refused" if kind == "empty_file" else _expected_physics(c, names)
        got, out = _verdict(source, path)
        assert got == want, (source, kind, got, want, out if got != "loaded" else "")
        if kind == "healthy":
            assert got == "loaded"
        if k < 14 and got == "refused":  # the first round through the CLI too: exit 2, one line
            _refused_by_cli(repo, tmp_path, source, path, capsys)
        elif got == "warned" and (kind, got) not in seen:  # the data stage runs on, the warning on stderr
            rc, err = _cli(repo, tmp_path, source, path, capsys)
            assert rc == 0 and "warning:" in err and "single constituent" in err, err
        seen.add((kind, got))
    verdicts = {v for _, v in seen}
    assert verdicts == {"refused", "warned", "loaded"}, seen  # every branch of the property exercised


def test_the_named_case_every_jet_a_single_particle_says_what_it_saw(tmp_path, repo, capsys):
    """Issue 35: a file whose jets are single particles of mass 0 GeV was accepted."""
    rng = np.random.default_rng(0)
    c, names = _healthy(rng)
    c[:, 1:] = 0.0
    path = _canonical(tmp_path / "single.h5", c, names)
    kind, msg = _verdict("canonical", path)
    assert kind == "refused" and "degenerate" in msg and "100.0% of 30 jets have a single constituent" in msg
    assert "mass is 0 GeV" in msg and "median 1" in msg
    _refused_by_cli(repo, tmp_path, "canonical", path, capsys)
    c, names = _healthy(rng)
    kind, report = _verdict("canonical", _canonical(tmp_path / "ok.h5", c, names))
    seen = report["files"][str(tmp_path / "ok.h5")]["physics"]
    assert set(seen) == {"top", "qcd"} and seen["top"]["multiplicity_median"] == P
    assert 1 < seen["qcd"]["mass_median_gev"] < 3000 and seen["top"]["single_constituent_fraction"] == 0.0


def test_a_degenerate_class_among_healthy_ones_is_named(tmp_path):
    """Per class: five classes, one of them made of collinear (mass 0) jets, is refused naming that class."""
    rng = np.random.default_rng(9)
    for bad in FIVE:
        c, names = _healthy(rng, FIVE, n=12)
        sel = names == bad
        c[sel, :, 1:] = c[sel, :, :1] * np.array([1.0, 0.0, 0.0])
        path = _canonical(tmp_path / f"{bad}.h5", c, names, is_signal=np.isin(names, ("w", "z", "top")).astype(np.int8))
        with pytest.raises(DataSanityError, match=rf"implausible jet mass spectrum of the {bad} jets: median 0 GeV"):
            load_source("canonical", [path], P, task=Task.of_classes(FIVE))


def test_unlabelled_files_are_checked_the_same(tmp_path):
    """The transfer set's reader: no labels, all jets one group, the same ranges."""
    rng = np.random.default_rng(4)
    for k, (kind, c, names) in enumerate(_physics_cases(rng, 14)):
        path = tmp_path / f"u{k}.h5"
        with h5py.File(path, "w") as f:
            f["constituents"] = c
        want = "refused" if kind == "empty_file" else _expected_physics(c, np.full(len(names), "all"))
        try:
            load_unlabelled("canonical", [path], P)
            got = "loaded or warned"
        except TriggerKDError as exc:
            assert "\n" not in str(exc)
            got = "refused"
        assert got == (want if want == "refused" else "loaded or warned"), (kind, got, want)


def test_check_physics_alone_on_degenerate_arrays():
    """Empty, one element, all equal, NaN/inf, negative, huge: refused with one line or returned with warnings."""
    rng = np.random.default_rng(3)
    arrays = [np.zeros((0, P, 4)), np.zeros((1, P, 4)), _jets(1, rng), np.ones((5, P, 4)), np.full((4, P, 4), np.nan),
              -_jets(6, rng), _jets(6, rng) * 1e12, np.zeros((3, 0, 4)), np.zeros((3, P, 3))]
    for a in arrays:
        try:
            seen = check_physics(a, "x.h5")
        except DataSanityError as exc:
            assert str(exc).startswith("x.h5") and "\n" not in str(exc)
            continue
        assert isinstance(seen["warnings"], list) and sum(s["jets"] for s in seen["classes"].values()) <= len(a)
    stated = {"MIN_MEDIAN_MULTIPLICITY": "median >= 2", "WARN_SINGLE_FRACTION": "above 5 %",
              "PT_RANGE_GEV": "1 GeV to 50 TeV", "MASS_RANGE_GEV": "1 to 3000 GeV", "MAX_ENERGY_GEV": "1e5 GeV"}
    assert (sanity.MIN_MEDIAN_MULTIPLICITY, sanity.WARN_SINGLE_FRACTION, sanity.PT_RANGE_GEV, sanity.MASS_RANGE_GEV,
            sanity.MAX_ENERGY_GEV) == (2, 0.05, (1.0, 5e4), (1.0, 3000.0), 1e5)
    for name, text in stated.items():  # each range is stated, with its value, where the rules are
        assert name in sanity.__doc__ and text in sanity.__doc__, name


# ----------------------------------------------------------------------------- two label sources
def _label_cases(source: str, rng, c, names):
    """(name, writer kwargs, expected verdict, words the message must hold) for one reader's label sources."""
    n = len(names)
    top = names == "top"
    some = rng.choice(n, int(rng.integers(1, n)), replace=False)
    if source == "canonical":
        flipped = (~top).astype(np.int8)
        partly = top.astype(np.int8)
        partly[some[:1]] ^= 1
        yield "reversed", {"is_signal": flipped}, "refused", ["'is_signal' and 'jet_class'", "contradict"]
        yield "class_on_both_sides", {"is_signal": partly}, "refused", ["'is_signal' and 'jet_class'", "both sides"]
        legacy = top.astype(np.int8)
        legacy[some] ^= 1
        yield "is_top_disagrees", {"is_top": legacy}, "refused", ["'is_signal' and 'is_top'", "disagree"]
        for v in (2, -1, 0.5, np.nan):
            y = top.astype(np.float64)
            y[some[0]] = v
            yield f"label_{v}", {"is_signal": y}, "refused", ["'is_signal' must hold 0 (background) or 1"]
        yield "unknown_class", {"jet_class": np.where(top, b"tpo", b"qcd")}, "refused", ["unknown classes", "tpo"]
        yield "class_length", {"jet_class": np.asarray(names[:-1]).astype("S8")}, "refused", ["'jet_class' has shape"]
        yield "layout", {"attr_layout": "px,py,pz,E MeV"}, "refused", ["'layout' attribute", "px,py,pz,E MeV"]
        yield "text_constituents", {"constituents": np.full((n, P, 4), b"1.0")}, "refused", ["must hold numbers"]
        yield "complex_constituents", {"constituents": c.astype(np.complex64)}, "refused", ["must hold numbers"]
        yield "no_constituents", {"constituents": None}, "refused", ["no dataset 'constituents'"]
        yield "no_label", {"is_signal": None}, "refused", ["no dataset 'is_signal'"]
    elif source == "toptagging":
        for v in (2, -1, 0.5):
            y = top.astype(np.float64)
            y[some[0]] = v
            yield f"label_{v}", {"is_signal": y}, "refused", ["'is_signal_new' must hold 0 (QCD) or 1 (top)"]
        y = top.astype(np.int64)
        y[some] ^= 1
        yield "truth_disagrees", {"is_signal": y}, "refused", ["'is_signal_new' and the truth top 4-momentum"]
        yield "reversed", {"is_signal": (~top).astype(np.int64)}, "refused", ["disagree on 60 of 60 jets"]
        yield "truth_not_a_top", {"truth": np.ones((n, 4))}, "warned", ["neither zero nor a top quark"]
        yield "text_column", {"text_column": True}, "refused", ["must hold numbers"]
    elif source == "hls4ml":
        onehot = np.zeros((n, 5))
        onehot[np.arange(n), [4 if t else 0 for t in top]] = 1
        two = onehot.copy()
        two[some, 2] = 1
        yield "two_labels", {"onehot": two}, "refused", ["two or more of the one-hot labels", "contradict"]
        none = onehot.copy()
        none[some] = 0
        yield "no_label", {"onehot": none}, "refused", ["none of the one-hot labels", "not marked j_undef"]
        undef = np.zeros(n)
        undef[some] = 1
        yield "undefined", {"onehot": none, "undef": undef}, ("warned" if len(some) < n - 1 else None), ["j_undef"]
        for v in (2, 0.5, np.nan, -1):
            bad = onehot.copy()
            bad[some[0], 4] = v
            yield f"label_{v}", {"onehot": bad}, "refused", ["must hold 0 or 1 (one-hot)"]
    elif source == "jetclass":
        base = {b: names == cls for cls, b in _JC.items()}
        two = dict(base, label_Hbb=np.isin(np.arange(n), some))
        yield "two_labels", {"labels": two}, "refused", ["not exactly one of the label branches", "two or more"]
        none = {b: v & ~np.isin(np.arange(n), some) for b, v in base.items()}
        yield "no_label", {"labels": none}, "refused", ["not exactly one of the label branches", "none"]
        yield "label_value", {"labels": dict(base, label_QCD=np.where(names == "qcd", 2, 0))}, "refused", [
            "must hold 0 or 1 (one-hot)"]
        yield "short_branch", {"short": str(rng.choice(["part_px", "part_py", "part_pz"]))}, "refused", [
            "one jet's particles must be listed once"]
        counts = np.any(c != 0, axis=-1).sum(axis=1)
        stated = counts.copy()
        stated[some[0]] += 1
        yield "nparticles", {"nparticles": stated}, "refused", ["jet_nparticles says", "disagree"]
        yield "nparticles_ok", {"nparticles": counts}, "loaded", []


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_contradicting_or_broken_labels_are_refused_naming_both(tmp_path, repo, capsys, source):
    rng = np.random.default_rng({"canonical": 11, "hls4ml": 12, "jetclass": 13, "toptagging": 14}[source])
    c, names = _healthy(rng)
    if source == "jetclass":
        c[:, P - 2:] = 0.0  # ROOT files list particles: fewer than P per jet
    ext = "root" if source == "jetclass" else "h5"
    for k, (case, kwargs, want, words) in enumerate(_label_cases(source, rng, c, names)):
        path = WRITERS[source](tmp_path / f"{k}_{case}.{ext}", c, names, **kwargs)
        got, out = _verdict(source, path)
        if want is None:  # every jet of one side left out: refused for lack of that side
            assert got == "refused" and "no " in out, out
            continue
        assert got == want, (source, case, got, out)
        text = out if isinstance(out, str) else " ".join(out) if isinstance(out, list) else ""
        for w in words:
            assert w in text, (case, text)
        if got == "refused" and k % 3 == 0:  # through the CLI too: exit 2, one line
            _refused_by_cli(repo, tmp_path, source, path, capsys)


def test_is_signal_written_for_another_task_is_reported(tmp_path):
    """A canonical file made for w vs qcd + top, read for top vs qcd: its is_signal calls the top jets 0. The
    labels follow jet_class and the report says so; read for top vs w (every kept jet the other way round) it is
    refused, naming both labels."""
    rng = np.random.default_rng(21)
    c, names = _healthy(rng, ("w", "qcd", "top"), n=20)
    path = _canonical(tmp_path / "wq.h5", c, names, is_signal=(names == "w").astype(np.int8))
    got, out = _verdict("canonical", path, task=Task.binary(("top",), ("qcd",)))
    assert got == "warned" and "written for another task" in out[0], out
    got, _ = _verdict("canonical", path, task=Task.binary(("w",), ("qcd",)))
    assert got == "loaded"
    got, msg = _verdict("canonical", path, task=Task.binary(("top",), ("w",)))
    assert got == "refused" and "'is_signal' and 'jet_class' contradict each other for the task top vs w" in msg


def test_split_files_agree_with_their_own_task(tmp_path, repo):
    """A data stage's split file: is_signal must follow the task of the summary.json beside it."""
    import json

    rng = np.random.default_rng(22)
    c, names = _healthy(rng, ("w", "gluon"), n=10)
    (tmp_path / "summary.json").write_text(json.dumps({"signal": ["w"], "background": ["gluon"]}))
    ok = _canonical(tmp_path / "train.h5", c, names, is_signal=(names == "w").astype(np.int8))
    assert read_canonical(ok)[1].tolist() == (names == "w").astype(int).tolist()
    bad = _canonical(tmp_path / "val.h5", c, names, is_signal=np.zeros(len(names), np.int8))
    with pytest.raises(DataFormatError, match=r"'is_signal' and 'jet_class' disagree on 10 of 20 jets .*summary\.json"):
        read_canonical(bad)


def test_a_file_none_of_whose_jets_belong_to_the_task_is_reported(tmp_path):
    rng = np.random.default_rng(23)
    c, names = _healthy(rng)
    good = _canonical(tmp_path / "good.h5", c, names)
    wz, wz_names = _healthy(rng, ("w", "z"))
    other = _canonical(tmp_path / "wz.h5", wz, wz_names, is_signal=np.ones(len(wz_names), np.int8))
    report: dict = {}
    load_source("canonical", [good, other], P, report=report)
    assert any("wz.h5: none of its 60 jets (w 30, z 30)" in w and "contributes nothing" in w
               for w in report["warnings"]), report["warnings"]
    assert report["files"][str(other)]["kept"] == 0
