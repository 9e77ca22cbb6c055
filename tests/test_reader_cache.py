"""The cache read back (trigger_kd/cache.py ``list_entries``, the one reader of a cache folder and of an entry's
records): only what trigger_kd made is an entry; everything else in the folder is named and left alone (never
removed, never given a lock file); a damaged record of an entry is one line, and prune leaves that entry alone;
a cache folder that is a file is refused in one line. Cache folders are built from records, not by running stages."""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import pytest

from trigger_kd.cache import USES_FILE, list_entries, note_use, prune
from trigger_kd.cli import main as cli
from trigger_kd.errors import TriggerKDError
from trigger_kd.paths import cache_root

KEY = "0123456789abcdef01234567"
POOL = f"top-{KEY}"
DAY = 86400.0


def _entry(cache: Path, stage: str = "data", key: str = KEY, uses: object = None, age_days: float = 10.0) -> Path:
    """An entry as the runner leaves it: stamp.json naming its stage and stamp, .uses.json with its last use."""
    entry = cache / stage / key
    entry.mkdir(parents=True)
    (entry / "out.bin").write_bytes(b"x" * 10)
    if stage == "jets":
        (entry / "shard_00000.h5").write_bytes(b"h5")
    else:
        (entry / "stamp.json").write_text(json.dumps({"stage": stage, "stamp": key + "f" * 40, "summary": {}}))
    record = {"last_used": time.time() - age_days * DAY, "links": [], "runs": {}} if uses is None else uses
    text = record if isinstance(record, (str, bytes)) else json.dumps(record, allow_nan=True)
    (entry / USES_FILE).write_bytes(text if isinstance(text, bytes) else text.encode())
    return entry


def _foreign(root: Path, outside: Path) -> dict[Path, bytes]:
    """What a user keeps in (or points) a folder that also holds the cache: files and folders at depths 1-3,
    folders shaped like entries but without the records that prove trigger_kd made them, symlinks to outside."""
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    files = {"notes.txt": b"n", "photos/2020/a.jpg": b"a", "docs/thesis/ch1.tex": b"c", "docs/thesis/fig/f.pdf": b"f",
             f"data/{'f' * 24}/mine.txt": b"m", "data/readme.txt": b"r", f"jets/{POOL[:-1]}x/shard_00000.h5": b"s",
             f"jets/gluon-{KEY}/notes.txt": b"g", f"teacher/{KEY}/stamp.json": b"{broken",
             f"transfer/{KEY}/stamp.json": json.dumps({"stage": "transfer"}).encode(), "jets/empty/.keep": b""}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "data" / ("a" * 24)).write_text("a file where an entry would be")
    (root / "links").mkdir()
    os.symlink(outside, root / "links" / KEY)
    _entry(outside, "data", KEY)  # an entry's records behind a symlink: trigger_kd never makes one, not followed
    os.symlink(outside / "data" / KEY, root / "data" / ("b" * 24))
    return {p: p.read_bytes() for p in [*root.rglob("*"), *outside.rglob("*")] if p.is_file()}


def _unchanged(before: dict[Path, bytes]) -> None:
    for path, data in before.items():
        assert path.read_bytes() == data, path
    assert not [p for p in before if p.exists() and Path(f"{p}.lock").exists()]


@pytest.mark.parametrize("command", [["cache", "prune", "--older-than", "0"],
                                     ["cache", "prune", "--unreferenced", "--forget-missing"],
                                     ["cache", "prune", "--older-than", "0", "--unreferenced", "--dry-run"]])
def test_prune_removes_only_entries_trigger_kd_made(tmp_path, monkeypatch, capsys, command):
    root = tmp_path / "cache"
    before = _foreign(root, tmp_path / "outside")
    mine = [_entry(root, "data", "c" * 24), _entry(root, "jets", POOL)]
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(root))
    locks_before = sorted(root.rglob("*.lock"))
    assert cli(command) == 0
    out, err = capsys.readouterr()
    _unchanged(before)
    assert sorted(p for p in root.rglob("*.lock") if p.name not in {"c" * 24 + ".lock", POOL + ".lock"}) == locks_before
    assert all(e.exists() == ("--dry-run" in command) for e in mine), (out, err)
    assert sorted(re.findall(r"(?:removed|would remove) (\S+)", out)) == ["data/" + "c" * 24, f"jets/{POOL}"]
    assert "not trigger_kd cache entries, left alone" in err and "photos" in err and "notes.txt" in err


def test_list_names_only_entries_and_says_what_it_left_alone(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    _foreign(root, tmp_path / "outside")
    _entry(root, "data", "c" * 24)
    assert [(e.stage, e.path.name) for e in list_entries(root)] == [("data", "c" * 24)]
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(root))
    assert cli(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 entries" in out and "not trigger_kd cache entries, left alone" in out and "docs/" in out
    assert "photos" not in out.split("left alone")[0]


def test_a_home_folder_as_the_cache_loses_nothing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    for rel in ("photos/2020/a.jpg", "docs/thesis/ch1.tex", ".bashrc", "Downloads/x.iso"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(rel)
    before = sorted(p for p in home.rglob("*"))
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(home))
    for command in (["cache", "prune", "--unreferenced"], ["cache", "prune", "--older-than", "0"]):
        assert cli(command) == 0
        assert "removed 0 entries" in capsys.readouterr().err
    assert sorted(p for p in home.rglob("*")) == before


def test_symlinks_inside_an_entry_are_not_followed_when_it_is_removed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    entry = _entry(tmp_path / "cache")
    os.symlink(outside, entry / "to_outside")
    os.symlink(outside / "precious.txt", entry / "file_link")
    assert [e.path for e in prune(tmp_path / "cache", 0, False, False)] == [entry]
    assert not entry.exists() and (outside / "precious.txt").read_text() == "mine"


BAD_TIMES = ["yesterday", 1e12, 1e300, 10**400, -5.0, 0, 1e9, math.nan, math.inf, -math.inf, True, None, [1.0],
             {"t": 1}, "1.7e9"]
BAD_RECORDS = ["not json", "{", "[]", "null", "42", json.dumps({"links": [], "runs": {}}),
               json.dumps({"last_used": 1.7e9, "links": "/run/a"}), json.dumps({"last_used": 1.7e9, "links": [{}]}),
               json.dumps({"last_used": 1.7e9, "runs": []}), json.dumps({"last_used": 1.7e9, "runs": {"r": "x"}}),
               json.dumps({"last_used": 1.7e9, "runs": {"r": {"link": 5, "last_seen": 1.7e9}}}),
               json.dumps({"last_used": 1.7e9, "runs": {"r": {"link": "/run/a", "last_seen": "then"}}}),
               json.dumps({"last_used": 1.7e9, "made_from": ["seed"]}), b"\xff\x00", '{"last_used": 1.7e9, "links": [""]}']


def _damaged_cases():
    now = time.time()
    return ([json.dumps({"last_used": t, "links": [], "runs": {}}, allow_nan=True) for t in BAD_TIMES]
            + [r if isinstance(r, bytes) else r.replace("1.7e9", repr(now - 20 * DAY)) for r in BAD_RECORDS])


@pytest.mark.parametrize("record", _damaged_cases(), ids=range(len(_damaged_cases())))
def test_every_damaged_record_is_one_line_and_prune_leaves_the_entry(tmp_path, monkeypatch, capsys, record):
    root = tmp_path / "cache"
    entry = _entry(root, uses=record)
    good = _entry(root, "data", "d" * 24)
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(root))
    assert cli(["cache", "list"]) == 0
    out = capsys.readouterr().out
    damaged = [line for line in out.splitlines() if line.startswith("damaged:")]
    assert len(damaged) == 1 and f"data/{KEY}" in damaged[0] and USES_FILE in damaged[0], out
    assert not re.search(r" -\d", out.splitlines()[1])  # never a negative age
    assert cli(["cache", "list", "--json"]) == 0
    listed = {Path(e["path"]).name: e for e in json.loads(capsys.readouterr().out)}
    assert listed[KEY]["damaged"] and not listed["d" * 24]["damaged"]
    assert listed[KEY]["last_used"] is None or "last_used" not in damaged[0]
    for command in (["cache", "prune", "--older-than", "0"], ["cache", "prune", "--unreferenced", "--forget-missing"]):
        assert cli(command) == 0
        out, err = capsys.readouterr()
        assert entry.is_dir() and f"data/{KEY}" not in out, (out, err)
        assert len([line for line in err.splitlines() if "damaged" in line and f"data/{KEY}" in line]) == 1, err
    assert not good.exists()  # the sound entry went
    note_use(entry)  # a run's next use rewrites the record from what is sound in it
    assert not list_entries(root)[0].damaged


def test_a_damaged_stamp_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    entry = _entry(root)
    stamp = json.loads((entry / "stamp.json").read_text())
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(root))
    for summary in ([], {"pools": ["a"]}, {"pools": {"top": 5}}, {"pool": 3}):
        (entry / "stamp.json").write_text(json.dumps({**stamp, "summary": summary, "inputs": [5], "sections": 3}))
        assert cli(["cache", "list"]) == 0
        assert "damaged" in capsys.readouterr().out and entry.is_dir()
    (entry / "stamp.json").write_text(json.dumps({**stamp, "stage": "teacher"}))  # two sources disagree
    assert cli(["cache", "list"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("damaged:")][0]
    assert "teacher" in line and "data" in line


def test_a_cache_that_is_a_file_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    f = tmp_path / "cache"
    f.write_text("not a folder")
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(f))
    with pytest.raises(TriggerKDError, match="not a folder"):
        cache_root()
    for command in (["cache", "list"], ["cache", "prune", "--older-than", "0"]):
        assert cli(command) == 2
        err = capsys.readouterr().err.strip()
        assert str(f) in err and "\n" not in err and "Traceback" not in err
    assert f.read_text() == "not a folder"
    with pytest.raises(TriggerKDError, match="not a folder"):
        list_entries(f)


def test_a_cache_that_does_not_exist_is_said_and_not_made(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(tmp_path / "nowhere"))
    assert cli(["cache", "list"]) == 0
    assert "does not exist" in capsys.readouterr().out
    assert cli(["cache", "prune", "--older-than", "0"]) == 0
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_entries_missing_pieces_are_still_entries_or_left_alone(tmp_path):
    root = tmp_path / "cache"
    no_uses = _entry(root, "data", "c" * 24)
    (no_uses / USES_FILE).unlink()
    os.utime(no_uses, (time.time() - 30 * DAY,) * 2)  # no record of its last use: its folder's time stands in
    no_shards = _entry(root, "jets", POOL)
    (no_shards / "shard_00000.h5").unlink()  # .uses.json alone proves it trigger_kd's
    bare = root / "jets" / f"qcd-{KEY}"
    bare.mkdir()  # the right shape, nothing of trigger_kd's in it: not an entry
    listed = {e.path.name: e for e in list_entries(root)}
    assert sorted(listed) == ["c" * 24, POOL] and not any(e.damaged for e in listed.values())
    assert [e.path for e in prune(root, 20, False, False)] == [no_uses]
    wrong = _entry(root, "jets", f"w-{KEY}", uses={"last_used": time.time(), "made_from": {"class": "top"}})
    line = next(e.damaged for e in list_entries(root) if e.path == wrong)  # the name and the record disagree
    assert "top" in line and f"w-{KEY}" in line
    assert [e.path for e in prune(root, 0, True, False, forget_missing=True)] == [no_shards]
    assert wrong.is_dir() and bare.is_dir()
