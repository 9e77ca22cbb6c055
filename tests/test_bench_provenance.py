"""benchmarks/provenance.py: the options every benchmark shares and the provenance its JSON record carries."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.provenance import add_options, command, machine, provenance, write_record  # noqa: E402


def _parser(**defaults) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    add_options(ap, {"work": "where the runs go"}, **defaults)
    return ap


def test_shared_options_keep_each_benchmarks_defaults_and_types():
    ap = _parser(out="o.json", profile="study", seeds=[1, 2, 3], work=None, workers=2, jobs=1, set=[])
    assert vars(ap.parse_args([])) == {"out": "o.json", "profile": "study", "seeds": [1, 2, 3], "work": None,
                                       "workers": 2, "jobs": 1, "set": []}
    args = ap.parse_args(["--seeds", "4", "5", "--workers", "3", "--set", "a.b=1", "--set", "c.d=2"])
    assert args.seeds == [4, 5] and args.workers == 3 and args.set == ["a.b=1", "c.d=2"]
    assert _parser(set=[]).parse_args([]).set == []  # the default list is not the one a run appended to
    assert "where the runs go" in _parser(work="w").format_help()


def test_only_the_named_options_are_added():
    ap = _parser(out="o.json")
    assert vars(ap.parse_args([])) == {"out": "o.json"}
    with pytest.raises(SystemExit):
        ap.parse_args(["--seeds", "1"])
    with pytest.raises(KeyError):
        _parser(seed=1)  # not a shared option: a benchmark adds its own


def test_provenance_names_the_command_the_checkout_and_the_time():
    nested = provenance(["--out", "x.json"], script="benchmarks/front.py")
    assert nested["command"] == f"{sys.executable} benchmarks/front.py --out x.json"
    assert set(nested) == {"command", "git", "created"} and set(nested["git"]) == {"commit", "dirty"}
    assert nested["git"]["commit"] and len(nested["created"]) == 19
    flat = provenance([], script="s.py", flat_git=True)
    assert set(flat) == {"command", "git_commit", "git_dirty", "created"} and flat["git_commit"] == nested["git"]["commit"]
    assert command().startswith(sys.executable)
    m = machine(torch="2.x")
    assert m["cpus"] and m["python"] and m["platform"] and m["torch"] == "2.x"


def test_write_record_makes_the_folder_and_writes_json(tmp_path):
    path = write_record(tmp_path / "deep" / "r.json", {"a": 1, "p": Path("x")})
    assert path == tmp_path / "deep" / "r.json" and json.loads(path.read_text()) == {"a": 1, "p": "x"}
    assert not [p for p in path.parent.iterdir() if p.name != "r.json"]  # no temporary file left
