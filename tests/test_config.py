"""Strict, typed configuration: every shipped YAML loads; misspellings and bad types are named."""
from __future__ import annotations

from pathlib import Path

import pytest

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
