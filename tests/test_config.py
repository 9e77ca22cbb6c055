"""Strict, typed configuration: every shipped YAML loads; misspellings and bad types are named."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trigger_kd.cli import main
from trigger_kd.config import ConfigError, load_config, stamp_of

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "hls_configs").glob("*.yml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.student.arch in ("mlp", "deepset")
    paper = load_config(path, profile="paper")
    assert paper.teacher.hidden == 72 and paper.teacher.layers == 6


def test_profile_overlay_then_model_then_set(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", ["data.jets_per_class=300", "distill.temperature=5"])
    assert cfg.data.jets_per_class == 300
    assert cfg.distill.temperature == 5.0
    assert cfg.profile == "quick"
    assert cfg.student.framework == "brevitas"


def test_misspelled_key_in_set_is_named(repo):
    with pytest.raises(ConfigError, match="jets_per_clas'.*--set.*did you mean 'jets_per_class'"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.jets_per_clas=3"])


def test_misspelled_key_in_file_names_file(tmp_path, repo):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/quick.yml").write_text((repo / "hls_configs/profiles/quick.yml").read_text())
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nstudent:\n  arch: mlp\n  weigth_bits: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "student.weigth_bits" in str(exc.value) and str(bad) in str(exc.value)


def test_unknown_section_and_bad_types(repo):
    with pytest.raises(ConfigError, match="unknown config key 'studnet'"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["studnet.arch=mlp"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.jets_per_class=many"])
    with pytest.raises(ConfigError, match="not one of"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["student.arch=transformer"])
    with pytest.raises(ConfigError, match="list of 3"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.split=[0.5,0.5]"])


def test_jet_classes_of_the_task(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml")
    assert (cfg.data.signal, cfg.data.background) == (("top",), ("qcd",))
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", ["data.signal=[w]", "data.background=[gluon, q]"])
    assert (cfg.data.signal, cfg.data.background) == (("w",), ("gluon", "q"))
    with pytest.raises(ConfigError, match=r"data.signal: unknown jet class\(es\) \['higgs'\]"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.signal=[higgs]"])
    with pytest.raises(ConfigError, match="data.background is empty"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.background=[]"])
    with pytest.raises(ConfigError, match=r"overlap in \['gluon'\]"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.signal=[gluon]"])  # qcd holds gluons


def test_layer_precision_override(repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml", ["hls.layer_precision.fc1.accum=fixed<8,3>"])
    assert cfg.hls.layer_precision["fc1"]["accum"] == "fixed<8,3>"


def test_stamp_changes_with_content(repo):
    a = load_config(repo / "hls_configs/mlp_kd.yml")
    b = load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=7"])
    assert stamp_of(a.data) == stamp_of(b.data)
    assert stamp_of(a.teacher) != stamp_of(b.teacher)


def test_cli_names_misspelled_key(capsys, repo):
    rc = main(["run", str(repo / "hls_configs/mlp_kd.yml"), "--to", "data", "--set", "data.jets_per_clas=3",
               "--run-dir", "/nonexistent/should/not/be/created"])
    assert rc == 2
    assert "jets_per_clas" in capsys.readouterr().err
    assert not Path("/nonexistent/should/not/be/created").exists()


# ----------------------------------------------------------------------------- ranges, checked at load time
OUT_OF_RANGE = [
    ("mlp_kd", "hls.clock_period=-5"), ("mlp_kd", "hls.clock_period=0"), ("mlp_kd", "hls.reuse_factor=0"),
    ("mlp_kd", "student.weight_bits=0"), ("mlp_kd", "student.weight_bits=1"), ("mlp_kd", "student.input_bits=1"), ("mlp_kd", "student.act_bits=0"), ("mlp_kd", "student.input_bits=0"),
    ("mlp_kd", "student.bias_bits=-2"), ("mlp_kd", "student.act_int_bits=9"), ("mlp_kd", "student.act_int_bits=-1"),
    ("mlp_kd", "student.input_int_bits=10"), ("mlp_kd", "student.batch_size=0"), ("mlp_kd", "student.epochs=0"),
    ("mlp_kd", "student.lr=0"), ("mlp_kd", "student.mlp_hidden=[32,0]"), ("deepset_kd", "student.n_particles=12"),
    ("deepset_kd", "student.phi_hidden=[]"),
    ("mlp_kd", "teacher.epochs=0"), ("mlp_kd", "teacher.batch_size=0"), ("mlp_kd", "teacher.lr=-1e-3"),
    ("mlp_kd", "teacher.dropout=1"), ("mlp_kd", "data.jets_per_class=0"), ("mlp_kd", "data.jets_per_class=-5"),
    ("mlp_kd", "data.split=[0.5,0.3,0.3]"), ("mlp_kd", "data.split=[1.2,-0.1,-0.1]"), ("mlp_kd", "data.shard_size=0"),
    ("mlp_kd", "data.pt_max=500"), ("mlp_kd", "data.jet_r=0"), ("mlp_kd", "data.max_constituents=0"),
    ("mlp_kd", "distill.alpha=1.5"), ("mlp_kd", "distill.temperature=0"), ("mlp_kd", "export.check_jets=0"),
    ("mlp_kd", "synth.latency_cutoff=0"), ("mlp_kd", "synth.sim_jets=-1"), ("mlp_kd", "checks.parity_min_fraction=0"),
    ("mlp_kd", "checks.parity_min_fraction=1.01"), ("mlp_kd", "checks.working_point=1"),
    ("mlp_kd", "checks.boost_betas=[0.0,1.0]"), ("mlp_kd", "checks.smear_sigmas=[-0.1]"), ("mlp_kd", "name=../x"),
    ("mlp_kd", "name="), ("mlp_kd", "synth.family="), ("mlp_kd", "synth.family=xc7 -run x"),
    ("mlp_kd", "hls.clock_period=1e-6"), ("mlp_kd", "hls.clock_period=0.05"), ("mlp_kd", "hls.clock_period=1e7"),
]


@pytest.mark.parametrize("model,expr", OUT_OF_RANGE, ids=lambda v: v)
def test_out_of_range_values_are_refused_at_load(model, expr, repo):
    key = expr.split("=")[0]
    with pytest.raises(ConfigError) as exc:
        load_config(repo / f"hls_configs/{model}.yml", [expr])
    assert f"'{key}" in str(exc.value) and "(--set)" in str(exc.value)


@pytest.mark.parametrize("exprs", [
    ["checks.parity_min_fraction=1", "distill.alpha=0", "distill.alpha=1", "synth.sim_jets=0"],
    ["student.n_particles=12"],  # any particle count for an MLP; powers of two only for deep sets
    ["student.act_int_bits=8", "student.input_int_bits=9", "student.weight_bits=2"],
    ["student.input_bits=2", "student.input_int_bits=0", "student.bias_bits=2", "student.act_bits=1",
     "student.act_int_bits=0"],
    ["data.source=canonical", "data.paths=[a.h5]", "data.jets_per_class=0"],  # 0 = all jets of a file source
])
def test_values_at_the_edge_of_their_range_load(exprs, repo):
    load_config(repo / "hls_configs/mlp_kd.yml", exprs)


def test_file_source_without_paths_is_refused_at_load(repo):
    with pytest.raises(ConfigError, match=r"'data.paths'.*list the input files"):
        load_config(repo / "hls_configs/mlp_kd.yml", ["data.source=toptagging"])


def test_range_error_names_the_file(tmp_path, repo):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nhls:\n  clock_period: -5\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "'hls.clock_period'" in str(exc.value) and str(bad) in str(exc.value) and "greater than or equal to 0.1" in str(exc.value)


def test_empty_yaml_is_refused(tmp_path):
    for text in ("", "# only a comment\n", "{}\n"):
        empty = tmp_path / "empty.yml"
        empty.write_text(text)
        with pytest.raises(ConfigError, match="empty"):
            load_config(empty)


@pytest.mark.parametrize("args,words", [
    (["--set", "hls.clock_period=-5"], ["'hls.clock_period'", "--set", "greater than or equal to 0.1"]),
    (["--set", "student.weight_bits=0"], ["'student.weight_bits'", "--set"]),
    (["--set", "student.batch_size=0"], ["'student.batch_size'", "--set"]),
    (["--set", "data.split=[0.7,0.2,0.2]"], ["'data.split'", "--set", "add up to 1"]),
])
def test_cli_refuses_out_of_range_values_before_any_work(args, words, tmp_path, repo):
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "trigger_kd.cli", "run", str(repo / "hls_configs/mlp_kd.yml"),
                           "--run-dir", str(run_dir), *args], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not run_dir.exists()


def test_cli_refuses_empty_yaml(tmp_path, repo):
    import subprocess
    import sys

    (tmp_path / "empty.yml").write_text("")
    proc = subprocess.run([sys.executable, "-m", "trigger_kd.cli", "show-config", str(tmp_path / "empty.yml")],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "empty" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_show_config_round_trips(tmp_path, repo, capsys):
    assert main(["show-config", str(repo / "hls_configs/deepset_kd.yml"), "--set", "hls.clock_period=4"]) == 0
    resolved = tmp_path / "resolved.yml"
    resolved.write_text(capsys.readouterr().out)
    again = load_config(resolved, profile="quick")
    assert again == load_config(repo / "hls_configs/deepset_kd.yml", ["hls.clock_period=4"]).model_copy(
        update={"source_file": str(resolved)})


def test_shard_pool_depends_on_physics_seed_and_shard_size_only(tmp_path, repo):
    from trigger_kd.data.generate import shard_pool

    path = repo / "hls_configs/mlp_kd.yml"
    base = shard_pool(load_config(path).data, tmp_path, "top")
    for same in ("data.jets_per_class=77", "data.split=[0.5,0.25,0.25]", "data.workers=3", "teacher.epochs=9",
                 "data.background=[gluon]"):
        assert shard_pool(load_config(path, [same]).data, tmp_path, "top") == base, same
    for other in ("data.pt_min=500", "data.mpi=true", "data.seed=2", "data.shard_size=100", "data.max_constituents=50"):
        assert shard_pool(load_config(path, [other]).data, tmp_path, "top") != base, other
    assert shard_pool(load_config(path).data, tmp_path, "qcd") != base
    assert shard_pool(load_config(path).data, tmp_path, "top", stream="transfer") != base  # transfer jets: own pools
    assert set(load_config(path).data.physics()) == {  # what Pythia + FastJet generation reads
        "sqrt_s", "pthat_min", "jet_r", "pt_min", "pt_max", "eta_max", "particle_eta_max", "match_dr", "mpi",
        "hadronization", "max_constituents"}



def test_import_qonnx_refuses_set_without_a_config(tmp_path, capsys):
    rc = main(["import-qonnx", str(tmp_path / "m.onnx"), "--run-dir", str(tmp_path / "run"),
               "--set", "hls.clock_period=4"])
    assert rc == 2 and "--config" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_teacher_command_line_refuses_bad_settings_before_reading_data(tmp_path, capsys):
    from trigger_kd.train.teacher import main as teacher_main

    rc = teacher_main(["--train", str(tmp_path / "t.h5"), "--val", str(tmp_path / "v.h5"), "--out", str(tmp_path / "o"),
                       "--epochs", "0"])
    assert rc == 2 and "'epochs' (command line)" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_recipe_for_one_profile_applies_at_that_profile_only(repo, tmp_path):
    """``at_profile``: mlp_kd's transfer set was chosen at quick size; at quick it applies (over the profile), at
    study the profile's own value holds, --set wins over both; a profile it names must exist, and its shape is
    checked, each refusal naming the file."""
    quick = load_config(repo / "hls_configs/mlp_kd.yml")
    study = load_config(repo / "hls_configs/mlp_kd.yml", profile="study")
    study_profile = yaml.safe_load((repo / "hls_configs/profiles/study.yml").read_text())
    assert quick.distill.transfer_jets_per_class == 20000
    assert study.distill.transfer_jets_per_class == study_profile["distill"]["transfer_jets_per_class"] != 20000
    assert load_config(repo / "hls_configs/mlp_kd.yml", ["distill.transfer_jets_per_class=7"]).distill \
        .transfer_jets_per_class == 7
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/quick.yml").write_text((repo / "hls_configs/profiles/quick.yml").read_text())
    for bad, says in [("at_profile: {quikc: {distill: {alpha: 0.5}}}", "no profile named 'quikc'"),
                      ("at_profile: [quick]", "must map profile names"),
                      ("at_profile: {quick: {distill: {alpah: 0.5}}}", "alpah")]:
        f = tmp_path / "m.yml"
        f.write_text("name: m\nstudent: {arch: mlp, framework: brevitas}\n" + bad + "\n")
        with pytest.raises(ConfigError, match=says) as e:
            load_config(f)
        assert str(f) in str(e.value)


# ----------------------------------------------------------------------------- sizes the machine can hold (issue 35)
SIZES = {  # every size key, with its bound in config.py
    "data.max_constituents": "MAX_CONSTITUENTS", "teacher.n_particles": "MAX_CONSTITUENTS",
    "student.n_particles": "MAX_CONSTITUENTS", "teacher.hidden": "MAX_WIDTH", "teacher.d_model": "MAX_WIDTH",
    "teacher.ff_dim": "MAX_WIDTH", "teacher.head_hidden": "MAX_WIDTH", "student.mlp_hidden": "MAX_WIDTH",
    "student.phi_hidden": "MAX_WIDTH", "student.rho_hidden": "MAX_WIDTH", "teacher.layers": "MAX_DEPTH",
    "teacher.encoder_layers": "MAX_DEPTH", "teacher.batch_size": "MAX_BATCH", "student.batch_size": "MAX_BATCH"}


def _size_value(key: str, n: int) -> str:
    return f"[{n}]" if key.endswith("_hidden") else str(n)


@pytest.mark.parametrize("key", sorted(SIZES))
def test_every_size_is_bounded_at_load(key, repo):
    """Above its bound (just above, huge, absurd), every size is refused at load naming the key and --set; at the
    bound it loads (the cross-section rule aside: n_particles then needs the constituents stored)."""
    import trigger_kd.config as config

    bound = getattr(config, SIZES[key])
    model = "deepset_kd" if key in ("student.phi_hidden", "student.rho_hidden") else "mlp_kd"
    arch = ["teacher.arch=transformer"] if key.split(".")[1] in ("d_model", "ff_dim", "head_hidden",
                                                                  "encoder_layers") else []
    for n in (bound + 1, 100000, 4_000_000_000, 10**30):
        with pytest.raises(ConfigError) as exc:
            load_config(repo / f"hls_configs/{model}.yml", [*arch, f"{key}={_size_value(key, n)}"])
        assert f"'{key}" in str(exc.value) and "(--set)" in str(exc.value) and str(bound) in str(exc.value)
    extra = [f"data.max_constituents={bound}"] if key.endswith("n_particles") else []
    if key == "teacher.d_model":
        extra.append("teacher.heads=4")
    load_config(repo / f"hls_configs/{model}.yml", [*arch, *extra, f"{key}={_size_value(key, bound)}"])


def test_too_many_layers_are_refused(repo):
    import trigger_kd.config as config

    layers = "[" + ",".join(["8"] * (config.MAX_DEPTH + 1)) + "]"
    with pytest.raises(ConfigError, match=r"'student.mlp_hidden' \(--set\)"):
        load_config(repo / "hls_configs/mlp_kd.yml", [f"student.mlp_hidden={layers}"])


@pytest.mark.parametrize("section", ["teacher", "student"])
def test_more_particles_than_stored_names_both_keys(section, tmp_path, repo):
    """n_particles above data.max_constituents: refused before any work, both keys and where each came from named
    (a model file and --set, or --set twice), one line, exit 2, no run directory."""
    stored = 64
    for n in (stored + 1, 200, 1024):
        with pytest.raises(ConfigError) as exc:
            load_config(repo / "hls_configs/mlp_kd.yml", [f"data.max_constituents={stored}",
                                                          f"{section}.n_particles={n}"])
        msg = str(exc.value)
        assert f"{section}.n_particles {n} (--set)" in msg and f"data.max_constituents {stored} (--set)" in msg, msg
    model = tmp_path / "m.yml"
    model.write_text("name: m\ndata:\n  max_constituents: 20\nteacher:\n  n_particles: 20\nstudent:\n  n_particles: 16\n")
    load_config(model)  # equal or below: fine
    run_dir = tmp_path / "run"
    rc = main(["run", str(model), "--run-dir", str(run_dir), "--set", f"{section}.n_particles=21"])
    assert rc == 2 and not run_dir.exists()
