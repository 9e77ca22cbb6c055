"""Honest stage fingerprints: a stage's code fingerprint holds the code it runs, and only that.

Tested both ways: what must be in a stage's fingerprint (its own library code, the hls4ml rules for the
firmware stage, the native sources a module declares) and what must not (the student features and the
hls4ml path in the teacher's and the data's, the runner in anyone's). The slow test makes the edit the
issue describes (a harmless line appended to firmware/rules.py) and checks that a rerun redoes the
firmware stage and nothing before it.
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from trigger_kd import fingerprint
from trigger_kd.config import DistillConfig
from trigger_kd.stages import STAGES, TRANSFER_KEYS

PKG = "trigger_kd"
BY_NAME = {s.name: s for s in STAGES}


def _modules(stage: str) -> list[str]:
    return fingerprint.code_fingerprint(BY_NAME[stage].code_module())["modules"]


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package that the fingerprints hash instead of the installed one (edit it freely)."""
    copy = tmp_path / PKG
    shutil.copytree(fingerprint.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.o"))
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", copy)
    fingerprint.code_fingerprint.cache_clear()
    yield copy
    fingerprint.code_fingerprint.cache_clear()


# ----------------------------------------------------------------------------- what is not in a fingerprint
@pytest.mark.parametrize("stage", ["data", "teacher", "transfer"])
def test_early_stages_hold_neither_student_features_nor_firmware(stage):
    mods = _modules(stage)
    assert f"{PKG}.data.features" not in mods  # a fix there reruns the student, not the teacher
    assert not [m for m in mods if m == f"{PKG}.firmware" or m.startswith(f"{PKG}.firmware.")]
    assert not [m for m in mods if m.startswith(f"{PKG}.models.backend")]  # the student interface
    assert f"{PKG}.stages.{stage}" in mods


@pytest.mark.parametrize("stage", ["student", "export"])
def test_student_and_export_hold_no_hls4ml_path(stage):
    mods = _modules(stage)
    for name in ("firmware.rules", "firmware.hls", "firmware.hls_keras", "firmware.from_student"):
        assert f"{PKG}.{name}" not in mods, name


def test_the_runner_is_in_no_stage_fingerprint():
    for stage in STAGES:
        mods = set(_modules(stage.name))
        assert not mods & fingerprint.RUNNER, (stage.name, sorted(mods & fingerprint.RUNNER))
        assert f"{PKG}.stages" not in mods  # the stage table is runner code
    # the report's own modules (records: the checking readers of result files), the validated resource reader (report/standing.py reads sibling runs' records) and
    # the numerics pin every process runs with (trigger_kd/__init__.py)
    assert set(_modules("report")) <= {PKG, f"{PKG}.report", f"{PKG}.stages.report", f"{PKG}.numerics", f"{PKG}.synth",
                                       f"{PKG}.synth.reports"} | {
        f"{PKG}.report.{m}" for m in ("build", "binary", "generalisation", "hardware", "multiclass", "plots",
                                      "quantisation", "records", "standing", "tables")}


# ----------------------------------------------------------------------------- what is in one
def test_firmware_stage_holds_the_hls4ml_rules():
    mods = _modules("firmware")
    for name in ("firmware.rules", "firmware.hls", "firmware.hls_keras", "firmware.parity", "firmware.from_student",
                 "models.backend", "stages.firmware"):
        assert f"{PKG}.{name}" in mods, name
    assert f"{PKG}.data.features" in _modules("student") and f"{PKG}.firmware.qonnx_export" in _modules("export")
    assert f"{PKG}.models.lorentznet" in _modules("teacher") and f"{PKG}.models.edge_kernel" in _modules("teacher")


def test_an_edit_to_the_hls4ml_rules_changes_the_firmware_fingerprint_only(package_copy):
    before = {s.name: fingerprint.code_fingerprint(s.code_module())["sha256"] for s in STAGES}
    with open(package_copy / "firmware" / "rules.py", "a") as f:
        f.write("\n_HARMLESS = 1\n")
    fingerprint.code_fingerprint.cache_clear()
    after = {s.name: fingerprint.code_fingerprint(s.code_module())["sha256"] for s in STAGES}
    assert [s for s in before if before[s] != after[s]] == ["firmware"]  # later stages follow its stamp

    with open(package_copy / "data" / "features.py", "a") as f:
        f.write("\n# a fix in the student features\n")
    fingerprint.code_fingerprint.cache_clear()
    again = {s.name: fingerprint.code_fingerprint(s.code_module())["sha256"] for s in STAGES}
    changed = {s for s in after if after[s] != again[s]}
    assert "teacher" not in changed and "data" not in changed and "transfer" not in changed
    assert {"student", "export", "firmware"} <= changed


# ----------------------------------------------------------------------------- native sources
def _toy_module(root: Path, native: str) -> None:
    (root / "toy_native.py").write_text(textwrap.dedent(f"""\
        NATIVE_SOURCES = {native}


        def run():
            return 1
        """))


def test_native_sources_are_in_the_fingerprint(tmp_path, monkeypatch):
    root = tmp_path / "mods"
    (root / "csrc" / "inc").mkdir(parents=True)
    (root / "csrc" / "kernel.cpp").write_text("int f() { return 1; }\n")
    (root / "csrc" / "inc" / "kernel.h").write_text("int f();\n")
    (root / "notes.txt").write_text("not declared\n")
    _toy_module(root, '("csrc/kernel.cpp", "csrc/inc")')
    monkeypatch.syspath_prepend(str(root))
    import toy_native  # noqa: F401 (a module outside the package is found through sys.modules)

    def fp():
        fingerprint.code_fingerprint.cache_clear()
        return fingerprint.code_fingerprint("toy_native")

    first = fp()
    assert first["modules"] == ["toy_native"]
    assert first["native"] == ["toy_native:csrc/inc/kernel.h", "toy_native:csrc/kernel.cpp"]
    (root / "notes.txt").write_text("edited, but not a declared source\n")
    assert fp()["sha256"] == first["sha256"]
    (root / "csrc" / "kernel.cpp").write_text("int f() { return 2; }\n")
    edited = fp()["sha256"]
    assert edited != first["sha256"]
    (root / "csrc" / "inc" / "kernel.h").write_text("int f(void);\n")  # a file in a declared directory
    assert fp()["sha256"] != edited
    (root / "csrc" / "kernel.cpp").unlink()  # a declared source that is gone is hashed as missing
    assert fp()["native"] == first["native"]
    fingerprint.code_fingerprint.cache_clear()


def test_native_sources_must_be_a_literal_tuple_of_paths(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import os\nNATIVE_SOURCES = tuple(os.listdir('.'))\n")
    with pytest.raises(ValueError, match="literal tuple"):
        fingerprint.native_sources(path)
    path.write_text("NATIVE_SOURCES = 'kernel.cpp'\n")
    with pytest.raises(ValueError, match="tuple of path strings"):
        fingerprint.native_sources(path)
    path.write_text("NATIVE_SOURCES: tuple[str, ...] = ('k.cpp',)\n")
    assert fingerprint.native_sources(path) == [tmp_path / "k.cpp"]


def test_package_native_sources_are_declared_relative_to_their_module():
    """Any NATIVE_SOURCES a package module declares names files that exist (the edge kernel's C++, once it has one)."""
    for path in sorted(fingerprint.PACKAGE_DIR.rglob("*.py")):
        for src in fingerprint.native_sources(path):
            assert src.is_file(), f"{path} declares {src}, which does not exist"


# ----------------------------------------------------------------------------- stamp keys from the config model
def test_every_distill_key_is_in_the_transfer_stamp_or_deliberately_not():
    marks = {name: (f.json_schema_extra or {}).get("transfer_stamp") for name, f in DistillConfig.model_fields.items()}
    assert None not in marks.values(), marks  # every field says whether the transfer stage depends on it
    assert set(TRANSFER_KEYS) == {k for k, v in marks.items() if v} | set(DistillConfig.TRANSFER_DERIVED)
    assert set(TRANSFER_KEYS) == {"transfer_jets_per_class", "transfer_paths", "transfer_source", "augment_max_beta",
                                  "augment_views", "uses_teacher"}
    assert BY_NAME["transfer"].reads == tuple(f"distill.{k}" for k in TRANSFER_KEYS)
    for derived in DistillConfig.TRANSFER_DERIVED:
        assert isinstance(getattr(DistillConfig, derived), property)


def test_a_distill_key_without_a_mark_is_refused():
    class Grown(DistillConfig):
        new_knob: int = 3  # added without saying whether the transfer stage reads it

    with pytest.raises(TypeError, match="new_knob carry neither TRANSFER nor NOT_TRANSFER"):
        Grown.transfer_keys()


# ----------------------------------------------------------------------------- end to end (the acceptance)
@pytest.mark.slow
def test_an_edit_to_rules_reruns_the_firmware_stage_and_nothing_before(tmp_path, package_copy, capfd):
    from test_e2e import TINY

    from trigger_kd.cli import main as cli

    repo = Path(__file__).resolve().parent.parent
    args = ["run", str(repo / "hls_configs" / "mlp_kd.yml"), "--to", "firmware", "--run-dir", str(tmp_path / "run"),
            "--no-progress"]
    for s in TINY:
        args += ["--set", s]
    assert cli(args) == 0
    capfd.readouterr()
    with open(package_copy / "firmware" / "rules.py", "a") as f:
        f.write("\n_HARMLESS_TOP_LEVEL_STATEMENT = None\n")
    fingerprint.code_fingerprint.cache_clear()
    assert cli(args) == 0
    err = capfd.readouterr().err
    for stage in ("data", "teacher", "transfer", "student", "export"):
        assert f"[{stage}] up to date" in err, (stage, err)
    assert "[firmware] running" in err and "[firmware] up to date" not in err
