"""The third adversarial sweep (issue 35, "Same answer everywhere"): new cases of the named kinds, each kind fixed in
the one reader that owns its input, tested as a property over generated bad inputs.

- jet files whose own two descriptions of one fact disagree: hls4ml feature-name lists that do not match the
  columns they name (longer: a traceback; shorter or duplicated: the wrong column read), JetClass particle branches
  that are not one list per jet (a traceback), top-tagging constituent columns with gaps (constituents dropped
  without a word), a canonical file read as unlabelled jets whose ``layout`` says another layout (read anyway);
- YAML files with a key written twice (the last one won without a word), ``--profile`` against ``--set profile=``;
- arguments that a command would ignore: ``import-qonnx --n/--seed`` beside ``--inputs``, ``--input-precision``
  against the model's own input quantiser, ``cache list`` with the options of ``cache prune``.
Each is refused in one line (exit 2 through the CLI) before any work."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from test_reader_jets import P, _canonical, _healthy, _hls4ml, _jetclass, _refused_by_cli, _toptagging, _verdict
from trigger_kd.cli import main as cli
from trigger_kd.config import ConfigError, load_config
from trigger_kd.data.formats import DataFormatError, load_source, load_unlabelled
from trigger_kd.errors import TriggerKDError


def _replace(path, name, value):
    with h5py.File(path, "a") as f:
        del f[name]
        f[name] = value


# ----------------------------------------------------------------------------- hls4ml: names against columns
def _name_cases(rng):
    """(case, dataset, new names given the old) of feature-name lists that do not describe their columns."""
    for ds in ("jetFeatureNames", "particleFeatureNames"):
        yield f"{ds}_longer", ds, lambda n: [b"extra%d" % i for i in range(int(rng.integers(1, 12)))] + n
        yield f"{ds}_shorter", ds, lambda n: n[int(rng.integers(1, 5)):]
        yield f"{ds}_one", ds, lambda n: n[:1]
        yield f"{ds}_empty", ds, lambda n: np.zeros(0, "S4")
    yield "label_twice", "jetFeatureNames", lambda n: [b"j_t"] + n[1:]
    yield "e_twice", "particleFeatureNames", lambda n: n[:5] + [b"j1_e"] + n[6:]


def test_hls4ml_feature_names_must_describe_their_columns(tmp_path, repo, capsys):
    rng = np.random.default_rng(31)
    c, names = _healthy(rng)
    for k, (case, ds, change) in enumerate(_name_cases(rng)):
        path = _hls4ml(tmp_path / f"{case}.h5", c, names)
        with h5py.File(path, "r") as f:
            old = list(f[ds][...])
        _replace(path, ds, np.asarray(change(old)))
        got, msg = _verdict("hls4ml", path)
        assert got == "refused" and ds in msg, (case, msg)
        if k % 4 == 0:
            _refused_by_cli(repo, tmp_path, "hls4ml", path, capsys)
    ok = _hls4ml(tmp_path / "ok.h5", c, names)
    assert _verdict("hls4ml", ok)[0] == "loaded"


# ----------------------------------------------------------------------------- JetClass: one list per jet
@pytest.mark.parametrize("branch", ["part_px", "part_energy", "part_pz"])
def test_jetclass_particle_branches_must_be_lists(tmp_path, repo, capsys, branch):
    import awkward as ak
    import uproot

    rng = np.random.default_rng(32)
    c, names = _healthy(rng)
    c[:, P - 2:] = 0.0
    path = _jetclass(tmp_path / f"flat_{branch}.root", c, names)
    with uproot.open(path) as f:
        arrays = f["tree"].arrays(library="ak")
    branches = {b: arrays[b] for b in arrays.fields}
    branches[branch] = ak.to_numpy(ak.sum(arrays[branch], axis=1))  # one number per jet, not one per particle
    with uproot.recreate(path) as f:
        f["tree"] = branches
    got, msg = _verdict("jetclass", path)
    assert got == "refused" and branch in msg and "per particle" in msg, msg
    _refused_by_cli(repo, tmp_path, "jetclass", path, capsys)


# ----------------------------------------------------------------------------- top tagging: every column present
def _column_cases(rng):
    slots = P - 2
    yield "missing_PY", [f"PY_{int(rng.integers(1, slots))}"], {}
    yield "missing_E", [f"E_{int(rng.integers(1, slots))}"], {}
    yield "missing_last_PZ", [f"PZ_{P - 1}"], {}
    yield "slot_after_gap", [f"{k}_{P - 1}" for k in ("E", "PX", "PY", "PZ")], {f"{k}_{P + 3}": 1.0 for k in
                                                                             ("E", "PX", "PY", "PZ")}
    yield "lone_E", [], {f"E_{P}": 1.0}


def test_toptagging_constituent_columns_have_no_gaps(tmp_path, repo, capsys):
    rng = np.random.default_rng(33)
    c, names = _healthy(rng)
    for k, (case, drop, add) in enumerate(_column_cases(rng)):
        path = _toptagging(tmp_path / f"{case}.h5", c, names)
        df = pd.read_hdf(path, key="table").drop(columns=drop)
        for col, v in add.items():
            df[col] = v
        df.to_hdf(path, key="table", mode="w")
        got, msg = _verdict("toptagging", path)
        assert got == "refused" and "column" in msg, (case, msg)
        assert any(col in msg for col in drop + list(add)), (case, msg)
        if k == 0:
            _refused_by_cli(repo, tmp_path, "toptagging", path, capsys)


# ----------------------------------------------------------------------------- canonical, labelled or not
def _canonical_cases(c):
    n = len(c)
    yield "layout", {"attr_layout": "px,py,pz,E MeV"}
    yield "layout_bytes", {"attr_layout": b"pt,eta,phi,m"}
    yield "text", {"constituents": np.full((n, P, 4), b"1.0")}
    yield "complex", {"constituents": c.astype(np.complex64)}
    yield "three_components", {"constituents": c[..., :3]}
    yield "flat", {"constituents": c[:, 0, 0]}
    yield "nan", {"constituents": np.where(np.arange(4) == 1, np.nan, c)}
    yield "huge", {"constituents": c * 1e300}
    yield "none", {"constituents": None}


@pytest.mark.parametrize("case", [name for name, _ in _canonical_cases(np.zeros((1, P, 4)))])
def test_unlabelled_canonical_files_are_read_by_the_same_reader(tmp_path, case):
    """``load_unlabelled`` (a transfer set of recorded jets) reads canonical constituents with the labelled
    reader's checks: the same file is refused by both, with the same words."""
    rng = np.random.default_rng(34)
    c, names = _healthy(rng)
    kwargs = dict(_canonical_cases(c))[case]
    path = _canonical(tmp_path / f"{case}.h5", c, names, **kwargs)
    with pytest.raises(DataFormatError) as labelled:
        load_source("canonical", [path], P)
    with pytest.raises(DataFormatError) as unlabelled:
        load_unlabelled("canonical", [path], P)
    a, b = str(labelled.value), str(unlabelled.value)
    assert "\n" not in b and str(path) in b, b
    assert a.split(";")[0] == b.split(";")[0], (a, b)


# ----------------------------------------------------------------------------- YAML: a key written twice
def _duplicate_cases():
    yield "top_level", "name: a\nstudent:\n  arch: mlp\nname: b\n", "name"
    yield "section", "name: a\nstudent:\n  arch: mlp\nstudent:\n  arch: deepset\n", "student"
    yield "nested", "name: a\nstudent:\n  arch: mlp\n  weight_bits: 4\n  weight_bits: 6\n", "weight_bits"
    yield "same_value", "name: a\nstudent:\n  arch: mlp\n  arch: mlp\n", "arch"
    yield "at_profile", ("name: a\nstudent:\n  arch: mlp\nat_profile:\n  quick:\n    distill:\n      alpha: 0.1\n"
                         "      alpha: 0.9\n"), "alpha"
    yield "flow", "name: a\nstudent: {arch: mlp, arch: deepset}\n", "arch"


@pytest.mark.parametrize("case", [c[0] for c in _duplicate_cases()])
def test_a_yaml_key_written_twice_is_refused_naming_both_lines(tmp_path, capsys, case):
    text, key = next((t, k) for name, t, k in _duplicate_cases() if name == case)
    path = tmp_path / "twice.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert str(path) in msg and f"'{key}'" in msg and "twice" in msg and "\n" not in msg, msg
    capsys.readouterr()
    assert cli(["show-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err


@pytest.mark.parametrize("text", ["name: a\nstudent: [\n", "name: a\nstudent:\n\tarch: mlp\n", "name: 'a\n",
                                  "name: a\n  student: b\n x: 1\n", "name: a\nstudent: *nowhere\n"])
def test_invalid_yaml_is_refused_in_one_line_saying_where(tmp_path, text):
    path = tmp_path / "broken.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path} is not valid YAML") and "\n" not in msg and "line" in msg, msg


def test_a_profile_file_with_a_key_twice_is_refused(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/mine.yml").write_text("data:\n  jets_per_class: 10\n  jets_per_class: 20\n")
    (tmp_path / "m.yml").write_text("name: m\nprofile: mine\nstudent:\n  arch: mlp\n")
    with pytest.raises(ConfigError, match=r"mine\.yml.*'jets_per_class'.*twice"):
        load_config(tmp_path / "m.yml")


@pytest.mark.parametrize("text", ["[8, 8]", "{a: 1}", "x: 1", "'a: 1'"])
def test_set_values_that_are_not_duplicates_still_parse(repo, text):
    """The duplicate-key loader does not change how ordinary values read (lists, strings, one key)."""
    try:
        load_config(repo / "hls_configs/mlp_kd.yml", [f"student.mlp_hidden={text}"])
    except ConfigError as exc:
        assert "twice" not in str(exc)


def test_profile_flag_and_set_profile_must_agree(repo):
    with pytest.raises(ConfigError, match=r"--profile quick.*--set profile=study"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["profile=study"], profile="quick")
    assert load_config(repo / "hls_configs/mlp_kd.yml", ["profile=study"], profile="study").profile == "study"
    assert load_config(repo / "hls_configs/mlp_kd.yml", ["profile=study"]).profile == "study"


# ----------------------------------------------------------------------------- arguments a command would ignore
def _dense(tmp_path):
    import qonnx_graphs as tg

    path = tmp_path / "dense.onnx"
    tg.dense().save(str(path))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-2, 2, (20, 4)).astype(np.float32))
    return path


@pytest.mark.parametrize("extra, words", [
    (["--n", "5"], "--n 5"), (["--seed", "3"], "--seed 3"), (["--n", "1000"], "--n 1000"),
    (["--input-precision", "fixed<4,2>"], "input quantiser Quant_0"),
    (["--input-precision", "fixed<8,5>"], "fixed<8,5,RND_CONV,SAT>"),  # the same width, other rounding
])
def test_import_arguments_that_would_be_ignored_or_contradicted_are_refused(tmp_path, capsys, extra, words):
    model = _dense(tmp_path)
    inputs = [] if extra[0] == "--input-precision" else ["--inputs", str(tmp_path / "x.npy")]
    capsys.readouterr()
    assert cli(["import-qonnx", str(model), "--run-dir", str(tmp_path / "run"), *inputs, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_input_precision_equal_to_the_quantisers_type_is_taken(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from trigger_kd.firmware.import_qonnx import input_type

    model = ModelWrapper(str(_dense(tmp_path)))
    fmt, source, own = input_type(model, "fixed<8,5,RND_CONV,SAT>", "dense.onnx")
    assert fmt.hls == "fixed<8,5,RND_CONV,SAT>" and own


@pytest.mark.parametrize("extra", [["--older-than", "3"], ["--unreferenced"], ["--forget-missing"], ["--dry-run"],
                                   ["--older-than", "0", "--unreferenced"]])
def test_cache_list_refuses_the_options_of_prune(capsys, extra):
    capsys.readouterr()
    assert cli(["cache", "list", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and extra[0] in err and "prune" in err, err


def test_cache_prune_json_says_what_it_removed_as_json(capsys):
    import json

    capsys.readouterr()
    assert cli(["cache", "prune", "--older-than", "100", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == [] and out["dry_run"] is True


@pytest.mark.parametrize("shape", [(20, 5), (20, 1, 4), (20, 4, 1), (20, 2, 2), (20, 3)])
def test_inputs_of_the_wrong_shape_are_refused_before_the_run_dir_is_touched(tmp_path, capsys, shape):
    """Refused before the run directory is claimed: an earlier import there keeps its verdict (a refusal does not
    turn a good import into an unfinished one)."""
    model = _dense(tmp_path)
    np.save(tmp_path / "bad.npy", np.zeros(shape, np.float32))
    capsys.readouterr()
    assert cli(["import-qonnx", str(model), "--run-dir", str(tmp_path / "run"), "--inputs", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "the model takes (4,)" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("in_shape", [[1, "F"], [1, 0], ["N", 4, "P"], [1, 4, 0], [1], ["N"]])
def test_an_input_shape_that_is_not_fixed_is_refused_before_any_build(tmp_path, capsys, in_shape):
    import qonnx_graphs as tg
    from onnx import helper, numpy_helper

    q, inits = tg.quant("Quant_in", "x", "xq", 0.125, 8)
    relu = helper.make_node("Relu", ["xq"], ["y"], name="Relu_0")
    try:
        model = tg.graph([q, relu], inits, in_shape, in_shape)
    except Exception:  # qonnx's cleanup refuses it already: nothing to import
        pytest.skip(f"qonnx cannot make a graph of input shape {in_shape}")
    model.save(str(tmp_path / "odd.onnx"))
    capsys.readouterr()
    assert cli(["import-qonnx", str(tmp_path / "odd.onnx"), "--run-dir", str(tmp_path / "run"), "--n", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "fixed input shape" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_symbolic_batch_dimension_is_accepted():
    import qonnx_graphs as tg
    from onnx import helper, numpy_helper

    from trigger_kd.firmware.import_qonnx import check_interface

    q, inits = tg.quant("Quant_in", "x", "xq", 0.125, 8)
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    model = tg.graph([q, helper.make_node("MatMul", ["xq", "W"], ["y"], name="MatMul_0")], inits, ["N", 4], ["N", 3],
                     [w])
    check_interface(model, "dyn.onnx")  # no refusal


# ----------------------------------------------------------------------------- evaluate --on a K-class model YAML
def _k_class_configs(repo):
    for path in sorted((repo / "hls_configs").glob("*5class*.yml")):
        yield path.name, path, []
    yield "mlp_kd+classes", repo / "hls_configs/mlp_kd.yml", ["data.classes=[w,z,top]"]


def test_evaluate_on_a_k_class_model_yaml_is_refused_before_its_data_stage(repo, tmp_path):
    """The jets of a K-class task are refused by evaluate (a binary tagger's signal score); from a model YAML that is
    known from the config, before its data stage generates them (minutes to hours), not after."""
    from trigger_kd.generalisation.evaluate import resolve_jets

    def data_stage(cfg, where, progress):
        made.append(where)
        return where

    cases = list(_k_class_configs(repo))
    assert len(cases) >= 3
    for case, path, sets in cases:
        made: list = []
        with pytest.raises(TriggerKDError) as exc:
            resolve_jets(str(path), sets, tmp_path, run_data=data_stage)
        msg = str(exc.value)
        assert "-class" in msg and "binary" in msg and str(path) in msg and "\n" not in msg, (case, msg)
        assert made == [], case
    made = []
    resolve_jets(str(repo / "hls_configs/mlp_kd.yml"), [], tmp_path, run_data=data_stage)
    assert len(made) == 1  # a binary task's data stage runs


# ----------------------------------------------------------------------------- at_profile: every profile's values
@pytest.mark.parametrize("section", ["distill:\n      alpha: 7", "distill:\n      alphaa: 0.5",
                                     "student:\n      mlp_hidden: 8", "data:\n      jets_per_class: -5",
                                     "student:\n      arch: transformer"])
@pytest.mark.parametrize("other", ["study", "paper"])
def test_at_profile_values_of_another_profile_are_checked_too(tmp_path, section, other):
    """A model file's ``at_profile`` values for a profile not in use are read with the file: checked when it is
    loaded, not left to fail the day that profile is used."""
    path = tmp_path / "m.yml"
    path.write_text(f"name: m\nstudent:\n  arch: mlp\nat_profile:\n  {other}:\n    {section}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)  # the quick profile
    assert f"at_profile: {other}" in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    path.write_text(f"name: m\nstudent:\n  arch: mlp\nat_profile:\n  {other}:\n    distill:\n      alpha: 0.2\n")
    assert load_config(path).distill.alpha != 0.2 and load_config(path, profile=other).distill.alpha == 0.2


@pytest.mark.parametrize("key", ["profile: study", "at_profile: {quick: {distill: {alpha: 0.1}}}"])
@pytest.mark.parametrize("where", ["quick", "study"])
def test_at_profile_values_cannot_choose_the_profile(tmp_path, key, where):
    """``at_profile.quick.profile: study`` would be read and then ignored (the profile is chosen before): refused."""
    path = tmp_path / "m.yml"
    path.write_text(f"name: m\nstudent:\n  arch: mlp\nat_profile:\n  {where}:\n    {key}\n")
    with pytest.raises(ConfigError, match=rf"at_profile\.{where}\.{key.split(':')[0]}"):
        load_config(path)


# ----------------------------------------------------------------------------- damaged bytes: one line, never a traceback
def _damaged_copies(path, rng):
    """(case, bytes) of a file cut short or with a block of its bytes overwritten."""
    data = path.read_bytes()
    for frac in (0.1, 0.5, 0.95):
        yield f"cut{frac}", data[:int(len(data) * frac)]
    for frac in (0.3, 0.6, float(rng.uniform(0.2, 0.8))):
        i = int(len(data) * frac)
        yield f"zeroed{frac:.2f}", data[:i] + bytes(64) + data[i + 64:]
    for k in range(40):  # random bytes at random places: headers, tables, chunks
        i, n = int(rng.integers(0, len(data))), int(rng.integers(1, 200))
        yield f"random{k}", data[:i] + rng.integers(0, 256, n, dtype=np.uint8).tobytes() + data[i + n:]


def _compressed_canonical(path, c, names):
    from trigger_kd.data.formats import write_canonical

    return write_canonical(path, c, (names == "top").astype(np.int8), jet_class=names)


@pytest.mark.parametrize("source, writer, ext", [("jetclass", _jetclass, "root"), ("toptagging", _toptagging, "h5"),
                                                 ("hls4ml", _hls4ml, "h5"), ("canonical", _compressed_canonical, "h5")])
def test_damaged_files_are_refused_in_one_line(tmp_path, source, writer, ext):
    """Every reader, labelled and unlabelled, on files cut short or overwritten in the middle: refused in one line
    naming the file, or (bytes no reader can tell from data, in uncompressed files) loaded and checked as jets."""
    rng = np.random.default_rng(35)
    c, names = _healthy(rng, n=100)
    c[:, P - 2:] = 0.0
    good = writer(tmp_path / f"good.{ext}", c, names)
    for case, data in _damaged_copies(good, rng):
        path = tmp_path / f"{case}.{ext}"
        path.write_bytes(data)
        for read in (load_source, load_unlabelled):
            try:
                read(source, [path], P)
            except TriggerKDError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc), (case, read.__name__, str(exc))


def _npy_cases(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).uniform(-2, 2, (20, 4)).astype(np.float32))
    data = good.read_bytes()
    yield "empty", b""
    yield "header_cut", data[:40]
    yield "data_cut", data[:len(data) - 7]
    yield "text", b"1,2,3,4\n5,6,7,8\n"
    yield "garbage", bytes(range(256))
    yield "dir", None


@pytest.mark.parametrize("case", ["empty", "header_cut", "data_cut", "text", "garbage", "dir"])
def test_a_damaged_inputs_file_is_refused_in_one_line(tmp_path, capsys, case):
    model = _dense(tmp_path)
    data = dict(_npy_cases(tmp_path))[case]
    path = tmp_path / "in.npy"
    path.mkdir() if data is None else path.write_bytes(data)
    capsys.readouterr()
    assert cli(["import-qonnx", str(model), "--run-dir", str(tmp_path / "run"), "--inputs", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err and "--inputs" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("profile, sets", [("study", []), (None, ["profile=study"]), ("paper", ["profile=paper"])])
def test_a_resolved_config_keeps_its_profile(repo, tmp_path, profile, sets):
    """A run's config.resolved.yml holds its profile's values: another --profile would only rename them (the run
    would say study at quick sizes); refused, naming both. Its own profile is accepted."""
    from trigger_kd.config import dump_config
    from trigger_kd.rundir import RESOLVED_CONFIG

    path = tmp_path / RESOLVED_CONFIG
    path.write_text(dump_config(load_config(repo / "hls_configs/mlp_kd.yml")))
    with pytest.raises(ConfigError) as exc:
        load_config(path, sets, profile=profile)
    msg = str(exc.value)
    assert "quick" in msg and ("study" in msg or "paper" in msg), msg
    assert load_config(path, profile="quick").profile == "quick"
    assert load_config(path).profile == "quick"


# ----------------------------------------------------------------------------- hls.layer_precision at load time
@pytest.mark.parametrize("value, words", [
    ("{fc1: {reslt: 'fixed<8,3>'}}", "reslt"), ("{fc1: {result: foo}}", "foo"), ("{fc1: {result: 'fixed<8>'}}", "fixed<8>"),
    ("{fc1: {result: 'fixed<0,3>'}}", "fixed<0,3>"), ("{fc1: {accum: 'fixed<8,3,FOO,SAT>'}}", "FOO"),
    ("{fc1: {weight: 8}}", "weight"), ("{fc1: 'fixed<8,3>'}", "fc1"), ("{fc1: {bias: ''}}", "bias"),
])
def test_layer_precision_types_are_checked_when_the_config_loads(repo, value, words):
    """An hls.layer_precision override that no hls4ml type reads was refused only at the firmware stage, after
    the data, teacher and student stages (minutes to hours); the key and the type are known when the config loads
    (the layer names only once hls4ml has built its model)."""
    with pytest.raises(ConfigError) as exc:
        load_config(repo / "hls_configs/mlp_kd.yml", [f"hls.layer_precision={value}"])
    assert "hls.layer_precision" in str(exc.value) and words in str(exc.value), str(exc.value)


@pytest.mark.parametrize("value", ["{fc1: {result: 'fixed<8,3>', accum: 'ap_fixed<18,8,AP_RND_CONV,AP_SAT>'}}",
                                   "{class_output: {result: 'ufixed<16,1,RND,SAT>'}}", "{fc2: {weight: 'int<6>'}}",
                                   "{fc2: {bias: 'ap_fixed<16,6,RND_CONV,SAT_SYM>'}}", "{fc1: {accum: auto}}"])
def test_layer_precision_types_hls4ml_reads_are_accepted(repo, value):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", [f"hls.layer_precision={value}"])
    assert cfg.hls.layer_precision
