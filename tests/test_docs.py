"""The documentation: the site builds with warnings as errors, the generated references hold every config key and
every command-line option, and the hand-written pages (and README.md) name only keys and options that exist."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from trigger_kd.cli import build_parser
from trigger_kd.config import Config

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import trigger_kd_reference as reference  # noqa: E402  (docs/_ext is not a package)


def all_keys() -> list[str]:
    """Every key a model file may set, straight from the pydantic models (not through the generator)."""
    keys = []
    for name, field in Config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += [f"{name}.{k}" for k in field.annotation.model_fields]
        elif name != "source_file":  # set by the loader, refused in a file
            keys.append(name)
    return keys


def test_every_config_key_has_a_row_in_the_reference():
    text = reference.config_reference()
    missing = [k for k in all_keys() if f"| `{k}` |" not in text]
    assert not missing, f"config keys missing from the generated reference: {missing}"
    assert len(all_keys()) > 100  # the sections were found


def test_every_config_key_has_a_description():
    undocumented = reference.undocumented_keys()
    assert not undocumented, (f"config keys without a description: {', '.join(undocumented)}; give each a comment "
                              "beside or above its field in trigger_kd/config.py (or Field(description=...))")
    assert "## Keys without a description\n\nNone." in reference.config_reference()


FABRICATED = """
class Fabricated(BaseModel):
    # the comment right above
    above: int = 1
    beside: int = 2  # the comment beside
    bare: int = 3
    pydantic: int = Field(4, description="pydantic's own")
    # a comment, then a blank line

    gap: int = 5
"""


def test_a_key_without_a_description_is_found():
    """The check above can fail: a fabricated section with keys documented each way, and two without (a blank line
    between a comment and a field detaches it, and a comment beside one field does not describe the next)."""
    namespace = {"BaseModel": BaseModel, "Field": Field}
    exec(FABRICATED, namespace)
    models = {"fabricated": namespace["Fabricated"]}
    assert reference.undocumented_keys(models, FABRICATED) == ["fabricated.bare", "fabricated.gap"]
    comments = reference._comments(FABRICATED)
    assert comments[("Fabricated", "above")] == "the comment right above"
    assert comments[("Fabricated", "beside")] == "the comment beside"


def test_stages_column_follows_the_stage_table():
    rows = {line.split("|")[1].strip(" `"): line.split("|")[5].strip()
            for line in reference.config_reference().splitlines() if line.startswith("| `")}
    assert rows["student.seal_lambda"] == "student"
    assert rows["distill.transfer_jets_per_class"] == "transfer, student"  # marked TRANSFER in config.py
    assert rows["distill.temperature"] == "student"
    assert rows["teacher.arch"] == "teacher"  # the teacher stage reads teacher.resolved, the whole section
    assert rows["hls.clock_period"] == "firmware, synth"


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_is_in_the_cli_reference():
    sections = {chunk.split("\n", 1)[0].strip(): chunk
                for chunk in reference.cli_reference().split("\n## trigger-kd ")[1:]}
    assert set(sections) == set(subparsers())
    for cmd, parser in subparsers().items():
        for action in parser._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert f"`{opt}`" in sections[cmd], f"trigger-kd {cmd} {opt} is missing from the CLI reference"
            if not action.option_strings:
                assert f"`{action.dest}` (positional)" in sections[cmd]


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in DOCS.glob("*.md"))])
def test_hand_written_pages_name_only_real_keys_and_options(page):
    assert reference.unknown_names((REPO / page).read_text()) == []


def test_the_page_check_finds_a_wrong_key_command_and_option():
    page = "\n".join([
        "Set `student.nonexistent: 3` or `student.seal_lambda: 0.1` (`student.epochs` is an old name).",
        "Files are not keys: `trigger_kd/firmware/hls.py`, `data.py`, `report.md`.",
        "```bash",
        "trigger-kd front hls_configs/mlp_kd.yml --workers 2 --max-lut 10000 \\",
        "    --no-such-option   # a continued line counts",
        "trigger-kd frobnicate firmware/mlp_kd",
        "trigger-kd run hls_configs/mlp_kd.yml --set \"data.signal=[w]\" --set hls.clock_perod=4",
        "```",
    ])
    assert reference.unknown_names(page) == [
        "config key `hls.clock_perod`",
        "option `trigger-kd front --no-such-option`",
        "command `trigger-kd frobnicate`",
        "config key `student.nonexistent`",
    ]


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
           str(DOCS), str(tmp_path / "html")]
    try:
        subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"sphinx-build failed:\n{exc.stdout}\n{exc.stderr}")
    html = (tmp_path / "html" / "reference" / "config.html").read_text()
    assert "student.seal_lambda" in html and (tmp_path / "html" / "reference" / "cli.html").is_file()
