"""Typed, strict configuration.

One YAML file per model in ``hls_configs/`` is loaded into frozen dataclasses.
Layering (later wins): dataclass defaults < profile overlay
(``hls_configs/profiles/<profile>.yml``) < the model file < ``--set`` overrides.
Any key that is not a field of its section is an error naming the key and
where it came from; values are type-checked.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import TriggerKDError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hls_configs"


class ConfigError(TriggerKDError):
    """A configuration problem, worded for the person who wrote the YAML."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "pythia"  # pythia | toptagging | hls4ml | jetclass | canonical
    paths: tuple[str, ...] = ()  # input files for the non-generated sources
    jets_per_class: int = 10000  # generated jets per class; cap per class for file sources (0 = all)
    max_constituents: int = 200
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train, val, test
    seed: int = 1
    workers: int = 0  # 0 = one per core
    shard_size: int = 500
    sqrt_s: float = 14000.0
    pthat_min: float = 500.0
    jet_r: float = 0.8
    pt_min: float = 550.0
    pt_max: float = 650.0
    eta_max: float = 2.0
    particle_eta_max: float = 2.5
    match_dr: float = 0.8
    mpi: bool = False
    hadronization: bool = True
    signal: tuple[str, ...] = ("top",)  # jet classes labelled 1 (trigger_kd/data/classes.py)
    background: tuple[str, ...] = ("qcd",)  # jet classes labelled 0

    def __post_init__(self):
        from .data.classes import check_selection

        try:
            check_selection(self.signal, self.background)
        except TriggerKDError as exc:
            raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class TeacherConfig:
    n_particles: int = 32
    hidden: int = 32
    layers: int = 3
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.2
    c_weight: float = 5e-3
    seed: int = 1
    threads: int = 0


@dataclass(frozen=True)
class StudentConfig:
    arch: str = "mlp"  # mlp | deepset
    framework: str = "brevitas"  # brevitas | qkeras
    n_particles: int = 16
    mlp_hidden: tuple[int, ...] = (32, 16)
    phi_hidden: tuple[int, ...] = (16, 16)
    rho_hidden: tuple[int, ...] = (16,)
    weight_bits: int = 6
    act_bits: int = 8
    act_int_bits: int = 3
    input_bits: int = 10
    input_int_bits: int = 1
    bias_bits: int = 16
    epochs: int = 10
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 1
    threads: int = 0


@dataclass(frozen=True)
class DistillConfig:
    alpha: float = 0.7  # weight of the soft-target term; 0 = trained from scratch
    temperature: float = 3.0


@dataclass(frozen=True)
class ExportConfig:
    check_jets: int = 512  # jets on which QONNX execution is compared with the student


@dataclass(frozen=True)
class HLSConfig:
    backend: str = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_period: float = 5.0
    io_type: str = "io_parallel"
    strategy: str = "Latency"
    reuse_factor: int = 1
    layer_precision: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthConfig:
    tool: str = "auto"  # auto | vivado | vitis | docker | open-source
    docker_image: str = "trigger-kd-vivado:latest"
    vivado_synth: bool = False  # also run Vivado logic synthesis after HLS
    latency_cutoff: float = 5.0  # ns of combinational logic per pipeline stage (open-source route)
    simulator: str = "verilator"  # verilator | iverilog (open-source route RTL simulation)
    sim_jets: int = 1000  # test jets simulated on the RTL (0 = all)
    family: str = "xcup"  # Yosys synth_xilinx family


@dataclass(frozen=True)
class ChecksConfig:
    parity_min_fraction: float = 1.0
    working_point: float = 0.5  # top-score threshold for decisions
    boost_betas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    smear_sigmas: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Config:
    name: str
    profile: str = "quick"
    description: str = ""
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    export: ExportConfig = ExportConfig()
    hls: HLSConfig = HLSConfig()
    synth: SynthConfig = SynthConfig()
    checks: ChecksConfig = ChecksConfig()
    source_file: str = ""  # where the config came from (not a YAML key)

    def section(self, name: str) -> Any:
        return getattr(self, name)


SECTIONS = ("data", "teacher", "student", "distill", "export", "hls", "synth", "checks")
_CHOICES = {
    ("data", "source"): {"pythia", "toptagging", "hls4ml", "jetclass", "canonical"},
    ("student", "arch"): {"mlp", "deepset"},
    ("student", "framework"): {"brevitas", "qkeras"},
    ("hls", "io_type"): {"io_parallel", "io_stream"},
    ("hls", "strategy"): {"Latency", "Resource"},
    ("hls", "backend"): {"Vivado", "Vitis"},
    ("synth", "tool"): {"auto", "vivado", "vitis", "docker", "open-source"},
    ("synth", "simulator"): {"verilator", "iverilog"},
}


# ----------------------------------------------------------------------------- typing
def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _check_value(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (collections.abc.Mapping, dict) or tp is dict:
        args = typing.get_args(tp) or (str, Any)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return types.MappingProxyType(
            {
                _check_value(k, args[0], f"{where} key"): _check_value(v, args[1], f"{where}.{k}")
                for k, v in value.items()
            }
        )
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, raw: Mapping[str, Any], origins: Mapping[str, str], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names or key == "source_file":
            close = _closest(key, names - {"source_file"})
            hint = f" (did you mean '{close}'?)" if close else ""
            known = ", ".join(sorted(names - {"source_file"}))
            raise ConfigError(
                f"unknown config key '{dotted}' in {origins.get(dotted, '?')}{hint}; "
                f"known keys{' in ' + prefix[:-1] if prefix else ''}: {known}"
            )
        tp = hints[key]
        where = f"'{dotted}' ({origins.get(dotted, '?')})"
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
            kwargs[key] = _build(tp, value, origins, f"{dotted}.")
        else:
            kwargs[key] = _check_value(value, tp, where)
            choices = _CHOICES.get(tuple(dotted.split(".")))
            if choices and kwargs[key] not in choices:
                raise ConfigError(f"{where}: {kwargs[key]!r} is not one of {sorted(choices)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"missing required key in {prefix or 'top level'}: {exc}") from None


def _closest(key: str, names: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6)
    return match[0] if match else None


# ----------------------------------------------------------------------------- merging
def _merge(base: dict, over: Mapping, origins: dict, origin: str, prefix: str = "") -> dict:
    out = dict(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "layer_precision":
            out[key] = _merge(out[key], value, origins, origin, f"{dotted}.")
        else:
            out[key] = value
            _record(origins, dotted, value, origin)
    return out


def _record(origins: dict, dotted: str, value: Any, origin: str) -> None:
    origins[dotted] = origin
    if isinstance(value, Mapping):
        for k, v in value.items():
            _record(origins, f"{dotted}.{k}", v, origin)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def parse_set(expr: str) -> tuple[list[str], Any]:
    """``section.key=value`` -> (["section", "key"], parsed YAML value)."""
    if "=" not in expr:
        raise ConfigError(f"--set expects section.key=value, got '{expr}'")
    key, _, text = expr.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set expects section.key=value, got '{expr}'")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return parts, value


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
) -> Config:
    """Load a model YAML with its profile overlay and ``--set`` overrides."""
    path = Path(path)
    model = _read_yaml(path)
    set_tree: dict = {}
    for expr in overrides:
        parts, value = parse_set(expr)
        node = set_tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {expr}: '{p}' is not a section")
        node[parts[-1]] = value
    prof = profile or set_tree.get("profile") or model.get("profile") or "quick"
    if not isinstance(prof, str):
        raise ConfigError(f"'profile' must be a name, got {prof!r}")
    prof_path = path.resolve().parent / "profiles" / f"{prof}.yml"
    if not prof_path.is_file():
        prof_path = CONFIG_DIR / "profiles" / f"{prof}.yml"
    if not prof_path.is_file():
        raise ConfigError(f"profile '{prof}' not found (looked for {prof_path})")
    origins: dict[str, str] = {}
    raw: dict = {}
    raw = _merge(raw, _read_yaml(prof_path), origins, f"profile {prof_path}")
    raw = _merge(raw, model, origins, str(path))
    raw = _merge(raw, set_tree, origins, "--set")
    raw["profile"] = prof
    raw.setdefault("name", path.stem)
    cfg = _build(Config, raw, origins, "")
    return dataclasses.replace(cfg, source_file=str(path))


# ----------------------------------------------------------------------------- stamps
def to_plain(obj: Any) -> Any:
    """Dataclasses / mappings / tuples -> JSON-able plain data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def stamp_of(*parts: Any) -> str:
    """A stable hash of plain data (config sections, upstream stamps)."""
    blob = json.dumps([to_plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def dump_config(cfg: Config) -> str:
    plain = to_plain(cfg)
    plain.pop("source_file", None)
    return yaml.safe_dump(plain, sort_keys=False)
