"""Paths the tools are given in a script (issue 35): a run directory may hold spaces and odd characters; every path
written into a tool's script is quoted (or relative to the tool's working directory), and what a tool cannot take
is refused before it runs, in one line, never a late "Can't open input file" from the tool."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from trigger_kd.errors import TriggerKDError
from trigger_kd.synth.backends import container_run_command
from trigger_kd.synth.yosys import run_yosys, script

# directory names as users make them: spaces, quotes, shell and Yosys comment/separator characters, non-ASCII
ODD_NAMES = ["my runs", "a'b $x", "h#a;b c", "ünï cødé", "-lead (1) [x] {y}", "tab\there", "back\\slash"]
TINY_V = "module top(input [3:0] a, input [3:0] b, output [4:0] s); assign s = a + b; endmodule\n"


def _tiny_rtl(where: Path) -> Path:
    (where / "rtl" / "src").mkdir(parents=True)
    (where / "rtl" / "src" / "top.v").write_text(TINY_V)
    return where / "rtl"


def _tokens(line: str) -> list[str]:
    """Yosys's own tokenising of a script line: whitespace separates, a double-quoted token may hold spaces."""
    out, cur, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            cur += ch
        elif ch.isspace() and not quoted:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + ([cur] if cur else [])


@pytest.mark.parametrize("name", ODD_NAMES)
def test_script_names_every_file_as_one_token(tmp_path, name):
    """Whatever the directory is called, each source is one quoted token of read_verilog, relative to the log
    directory Yosys runs in, and names the file that exists."""
    base = tmp_path / name / "run dir"
    rtl = _tiny_rtl(base)
    logs = base / "logs"
    logs.mkdir()
    files = [rtl / "src" / "top.v", rtl / "src" / "top.v"]
    line = script(files, "top", "xcup", cwd=logs).splitlines()[0]
    tokens = _tokens(line)
    assert tokens[:2] == ["read_verilog", "-defer"] and len(tokens) == 2 + len(files), line
    for tok in tokens[2:]:
        assert tok.startswith('"') and tok.endswith('"'), tok
        assert (logs / tok[1:-1]).resolve() == (rtl / "src" / "top.v").resolve()


@pytest.mark.parametrize("bad", ['quo"te', "new\nline", "car\rret", "nul\x01l"])
def test_a_path_yosys_cannot_take_is_refused_in_one_line(tmp_path, bad):
    """A double quote or a control character cannot be written into a Yosys script: refused naming the path."""
    src = tmp_path / "x" / bad / "top.v"
    with pytest.raises(TriggerKDError) as exc:
        script([src], "top", "xcup", cwd=tmp_path / "logs")
    assert "\n" not in str(exc.value) and "Yosys" in str(exc.value)
    for top, family in (("top; shell", "xcup"), ("top", "xc7 -run x"), ("", "xcup"), ("top", "")):
        with pytest.raises(TriggerKDError):
            script([tmp_path / "top.v"], top, family, cwd=tmp_path)


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (make tools)")
def test_yosys_runs_in_a_directory_with_odd_characters(tmp_path):
    """The real tool, once, in a run directory whose name holds every odd character above: the adder synthesises
    (defect: `Can't open input file /tmp/sweep/my` after training and firmware)."""
    base = tmp_path / "".join(n.replace("\t", " ").replace("\\", "_") for n in ODD_NAMES[:5]) / "r"
    rtl = _tiny_rtl(base)
    res = run_yosys(rtl, "top", "xc7", base / "synth logs", progress=False)
    assert res.total_cells > 0 and res.lut > 0, res.cells


def test_container_mount_of_an_odd_directory(tmp_path):
    """The container's host directory is one argument of the engine's command line (no shell splits it); a
    directory whose name holds the mount separator ':' cannot be mounted with -v and is refused."""
    for name in ("my runs", "a'b $x", "c,d"):
        host = tmp_path / name
        host.mkdir()
        cmd = container_run_command("docker", "img", host, ["true"])
        assert f"{host.resolve()}:/work/prj" in cmd and shlex.split(shlex.join(cmd)) == cmd
    for name in ("a:b", "x:/etc"):
        host = tmp_path / name
        host.mkdir(parents=True)
        with pytest.raises(TriggerKDError, match="cannot be mounted"):
            container_run_command("docker", "img", host, ["true"])


@pytest.mark.slow
def test_open_source_route_in_a_run_directory_with_spaces(tmp_path):
    """The whole route (da4ml, Yosys, RTL simulation) under a folder named like the defect's ("my runs") plus odd
    characters: figures and a bit-exact simulation, and Verilator's limit (GNU Make builds in no path with spaces)
    said in the notes the record carries, Icarus Verilog simulating instead; never a late failure."""
    from test_synth_opensource import PART, grid_inputs, tiny_mlp

    from trigger_kd.synth.opensource import run_open_source

    net = tiny_mlp()
    x = grid_inputs(net, 40, seed=5)
    out = tmp_path / "my runs" / "a'b $x#;c" / "synth"
    res = run_open_source(net, x, out, part=PART, clock_period=5.0, simulator="verilator", sim_jets=0,
                          reference_logits=net.evaluate(x), progress=False)
    assert res.record.lut > 0 and res.rtl_parity["bit_exact_fraction"] == 1.0
    assert res.rtl_parity["simulator"] == "icarus verilog"
    assert any("path with spaces" in n and "Icarus Verilog simulated" in n for n in res.notes), res.notes
    assert (out / "logs" / "yosys.ys").read_text().startswith('read_verilog -defer "../rtl/src/')
