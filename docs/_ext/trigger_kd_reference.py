"""Sphinx extension: the configuration and command-line references, generated from the code at build time.

- ``reference/config.md``: every key of the pydantic models in ``trigger_kd/config.py`` with its type, default,
  allowed range and description, and the stages whose stamp holds it (``Stage.reads`` in
  ``trigger_kd/stages/__init__.py``). A field without ``Field(description=...)`` is described by the comment
  written beside or above it in ``config.py``; a key with neither is listed as undocumented
  (``undocumented_keys``), never left out, and fails ``tests/test_docs.py``.
- ``reference/cli.md``: every ``trigger-kd`` command and option, from the argparse parser
  (``trigger_kd.cli.build_parser``), not from ``--help`` text.

Hand-written pages are checked while they are read (``unknown_names``): a ``section.key`` in backticks that is
not a config key, or a ``trigger-kd CMD --option`` that the parser does not have, is a warning, which
``sphinx-build -W`` (``make docs``) turns into an error. ``tests/test_docs.py`` runs the same check on README.md.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import re
import tokenize
import typing
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from trigger_kd import config as config_module
from trigger_kd.config import SECTIONS, Config

GENERATED = ("reference/config.md", "reference/cli.md")
# keys the loader still accepts under an old name (config.old_epochs_key): not fields, but valid in a config file
OLD_NAMES = {"student.epochs": "student.max_epochs"}
NOT_A_KEY = {"source_file"}  # a Config field the loader sets itself and refuses in a YAML file
FILE_SUFFIXES = {"py", "pt", "yml", "json", "md", "h5", "npy", "png", "cpp", "onnx", "rpt", "xml"}  # `report.md`, `data.py`: files, not keys


# ----------------------------------------------------------------------------- config keys
def section_models() -> dict[str, type[BaseModel]]:
    """Section name -> its pydantic model ("" for the top-level keys)."""
    return {"": Config, **{name: Config.model_fields[name].annotation for name in SECTIONS}}


def config_keys(models: dict[str, type[BaseModel]] | None = None) -> list[str]:
    """Every key a config file may set, as ``section.key`` (top-level keys bare), of ``models`` (section name ->
    model, "" for the top level; default: ``section_models()``)."""
    keys = []
    for section, model in (models or section_models()).items():
        for name in model.model_fields:
            if section == "" and (name in SECTIONS or name in NOT_A_KEY):
                continue
            keys.append(f"{section}.{name}" if section else name)
    return keys


def _comments(source: str | None = None) -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comment beside the field, or the comment lines right above it, in
    ``source`` (default: ``config.py``)."""
    source = Path(config_module.__file__).read_text() if source is None else source
    lines = source.splitlines()
    by_line = {tok.start[0]: tok.string.lstrip("#").strip()
               for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out: dict[tuple[str, str], str] = {}
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, n = [], stmt.lineno - 1
            while n >= 1 and lines[n - 1].strip().startswith("#"):
                above.insert(0, by_line[n])
                n -= 1
            beside = [by_line[i] for i in range(stmt.lineno, stmt.end_lineno + 1) if i in by_line]
            text = " ".join(above + beside).strip()
            if text:
                out[(cls.name, stmt.target.id)] = text
    return out


def _bounds(meta) -> list[str]:
    words = []
    for m in meta:
        if isinstance(m, FieldInfo):
            words += _bounds(m.metadata)
        elif isinstance(m, annotated_types.Ge):
            words.append(f">= {m.ge:g}")
        elif isinstance(m, annotated_types.Gt):
            words.append(f"> {m.gt:g}")
        elif isinstance(m, annotated_types.Le):
            words.append(f"<= {m.le:g}")
        elif isinstance(m, annotated_types.Lt):
            words.append(f"< {m.lt:g}")
        elif isinstance(m, annotated_types.MinLen):
            words.append(f"at least {m.min_length} value(s)")
    return words


def _type(annotation) -> tuple[str, list[str]]:
    """A readable type and the bounds it carries (of each element for lists)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        name, bounds = _type(args[0])
        return name, bounds + _bounds(args[1:])
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args)), []
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        parts = [_type(a) for a in args if a is not type(None)]
        name = " or ".join(p[0] for p in parts) + (" or null" if type(None) in args else "")
        return name, [b for p in parts for b in p[1]]
    if origin is tuple:
        name, bounds = _type(args[0])
        return f"list of {name}", [f"each {b}" for b in bounds]
    if origin is dict:
        return f"mapping {_type(args[0])[0]} -> {_type(args[1])[0]}", []
    return {"int": "integer", "float": "number", "str": "string", "bool": "true/false"}.get(
        getattr(annotation, "__name__", ""), str(annotation)), []


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _stage_readers() -> dict[str, list[str]]:
    """``section.key`` (or ``section`` for all its keys) -> the stages whose stamp holds it."""
    from trigger_kd.stages import STAGES

    models = section_models()
    readers: dict[str, list[str]] = {}
    for stage in STAGES:
        for read in stage.reads:
            section, _, key = read.partition(".")
            model = models[section]
            if key and key not in model.model_fields:  # a property: the whole section, or a value derived from it
                prop = getattr(model, key)
                whole = typing.get_type_hints(prop.fget, vars(config_module)).get("return") is model
                target = section if whole else f"{section}.({key})"
            else:
                target = read
            readers.setdefault(target, []).append(stage.name)
    return readers


def undocumented_keys(models: dict[str, type[BaseModel]] | None = None, source: str | None = None) -> list[str]:
    """Config keys with neither a pydantic description nor a comment in config.py (or in ``source``, the file
    that defines ``models``; both default to the real config). ``tests/test_docs.py`` fails on any."""
    comments = _comments(source)
    models = models or section_models()
    missing = []
    for key in config_keys(models):
        section, _, name = key.rpartition(".")
        model = models[section]
        if not model.model_fields[name].description and (model.__name__, name) not in comments:
            missing.append(key)
    return missing


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    comments, readers, models = _comments(), _stage_readers(), section_models()
    out = ["# Configuration reference", "",
           "Generated from `trigger_kd/config.py` when the documentation is built (`docs/_ext/trigger_kd_reference.py`). "
           "A model file (`hls_configs/<model>.yml`) sets these keys over its profile "
           "(`hls_configs/profiles/<profile>.yml`), and `--set section.key=value` over both. Unknown keys, wrong "
           "types and values out of range are refused when the config is loaded, naming the key and where it came "
           "from.", "",
           "*Stages* are those whose stamp holds the key (`Stage.reads` in `trigger_kd/stages/__init__.py`): a change "
           "reruns them, and every stage after them through their stamps. *Description* is the field's pydantic "
           "description or, where it has none, the comment beside or above the field in `config.py`; "
           "*(no description)* marks a key with neither.", ""]
    for section, model in models.items():
        title = f"`{section}`" if section else "Top level"
        whole = readers.get(section, []) if section else []
        derived = {k: v for k, v in readers.items() if k.startswith(f"{section}.(")} if section else {}
        out += [f"## {title}", ""]
        if whole:
            out += [f"The whole section is in the stamp of: {', '.join(whole)}.", ""]
        for key, stages in derived.items():
            out += [f"{', '.join(stages)} also read{'s' if len(stages) == 1 else ''} `{key.replace('(', '').replace(')', '')}`, "
                    "a value the section computes from its keys.", ""]
        checks = {}
        for name, dec in model.__pydantic_decorators__.field_validators.items():
            for f in dec.info.fields:
                checks.setdefault(f, []).append(name)
        out += ["| key | type | default | allowed | stages | description |", "|---|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if section == "" and (name in SECTIONS or name in NOT_A_KEY):
                continue
            key = f"{section}.{name}" if section else name
            kind, bounds = _type(field.annotation)
            bounds = _bounds(field.metadata) + bounds
            bounds += [f"checked by `{c}`" for c in checks.get(name, [])]
            stages = sorted(set(whole + readers.get(key, [])), key=_stage_order)
            text = field.description or comments.get((model.__name__, name)) or "*(no description)*"
            out.append(f"| `{key}` | {_cell(kind)} | `{_cell(_default(field))}` | {_cell('; '.join(bounds) or 'any')} | "
                       f"{', '.join(stages) or ('none' if section else 'run directory name' if name == 'name' else 'none')} | "
                       f"{_cell(text)} |")
        out.append("")
        for label, keys in _framework_only(model).items():
            out += [f"Only with {label}: {', '.join(f'`{section}.{k}`' for k in keys)} (refused with the others when "
                    "changed from the default).", ""]
    out += ["## Old names", "", "Still read, with a warning: " +
            ", ".join(f"`{old}` as `{new}`" for old, new in OLD_NAMES.items()) + ".", ""]
    missing = undocumented_keys()
    out += ["## Keys without a description", "",
            (f"{len(missing)} keys have neither a pydantic description nor a comment in `config.py`: "
             + ", ".join(f"`{k}`" for k in missing) + ".") if missing else "None.", ""]
    return "\n".join(out)


def _stage_order(name: str) -> int:
    from trigger_kd.stages import STAGE_NAMES

    return STAGE_NAMES.index(name)


def _framework_only(model) -> dict[str, list[str]]:
    """Keys a section accepts with one framework or architecture only (its HGQ_KEYS / ARCH_KEYS class tables)."""
    out = {}
    if hasattr(model, "HGQ_KEYS"):
        out["`student.framework: hgq`"] = list(model.HGQ_KEYS)
    for arch, keys in getattr(model, "ARCH_KEYS", {}).items():
        out[f"`teacher.arch: {arch}`"] = list(keys)
    return out


# ----------------------------------------------------------------------------- the command line
def subcommands() -> dict[str, argparse.ArgumentParser]:
    from trigger_kd.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _helps() -> dict[str, str]:
    from trigger_kd.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: c.help or "" for c in action._choices_actions}


def options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of a subcommand (--help included)."""
    return [s for a in parser._actions for s in a.option_strings]


def cli_reference() -> str:
    helps = _helps()
    out = ["# Command-line reference", "",
           "Generated from the argparse parser (`trigger_kd.cli.build_parser`) when the documentation is built. "
           "Every command exits 2 with one line on a usage or configuration error.", ""]
    for name, parser in subcommands().items():
        out += [f"## trigger-kd {name}", "", helps.get(name, ""), "", "```text", parser.format_usage().strip(), "```", ""]
        exclusive = [g for g in parser._mutually_exclusive_groups]
        out += ["| argument | value | default | help |", "|---|---|---|---|"]
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            names = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.dest}` (positional)"
            if a.required and a.option_strings:
                names += " (required)"
            if a.nargs == 0:
                value = "flag"
            elif a.choices:
                value = "one of " + ", ".join(f"`{c}`" for c in a.choices)
            else:
                value = f"`{a.metavar or a.dest.upper()}`" + (" ..." if a.nargs in ("+", "*") else "")
            if isinstance(a, argparse._AppendAction) or isinstance(a, argparse._ExtendAction):
                value += " (repeatable)"
            default = "" if a.default in (None, False, argparse.SUPPRESS) else f"`{a.default}`"
            out.append(f"| {names} | {_cell(value)} | {_cell(default)} | {_cell(a.help or '')} |")
        if not any(not isinstance(a, argparse._HelpAction) for a in parser._actions):
            out[-2:] = ["No arguments."]
        out.append("")
        for group in exclusive:
            out += ["Give at most one of " + ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions) + ".", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- checking hand-written pages
_KEY = re.compile(r"(?<![\w/.\-])(" + "|".join(SECTIONS) + r")\.([a-z_][a-z0-9_]*)(?![\w/(])")
_INLINE = re.compile(r"(`+)(.+?)\1", re.S)
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1", re.S | re.M)
_COMMAND = re.compile(r"trigger-kd\s+([a-z][a-z-]*)((?:\\\n|[^\n#;&])*)")


def _code(text: str) -> list[str]:
    """Inline code spans and fenced blocks of a Markdown page."""
    blocks = [m.group(2) for m in _FENCE.finditer(text)]
    rest = _FENCE.sub("", text)
    return blocks + [m.group(2) for m in _INLINE.finditer(rest)]


def unknown_names(text: str) -> list[str]:
    """Config keys (``section.key`` in code) and ``trigger-kd CMD --option`` a Markdown page names that do not
    exist. File names (``firmware/hls.py``) and other code are not keys: a key is a section name, a dot and a
    lower-case name not followed by more path or a call."""
    keys = set(config_keys()) | set(OLD_NAMES)
    commands = subcommands()
    bad = []
    for code in _code(text):
        for m in _KEY.finditer(code):
            key = f"{m.group(1)}.{m.group(2)}"
            if key not in keys and m.group(2) not in FILE_SUFFIXES:
                bad.append(f"config key `{key}`")
        for m in _COMMAND.finditer(code):
            cmd, rest = m.group(1), m.group(2)
            if cmd not in commands:
                bad.append(f"command `trigger-kd {cmd}`")
                continue
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                if opt not in options(commands[cmd]):
                    bad.append(f"option `trigger-kd {cmd} {opt}`")
    return bad


# ----------------------------------------------------------------------------- Sphinx hooks
def write_references(app) -> None:
    """Write the generated pages into the source tree (only when their text changed, so a rebuild is quiet)."""
    for rel, text in zip(GENERATED, (config_reference(), cli_reference())):
        path = Path(app.srcdir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def check_page(app, docname: str, source: list[str]) -> None:
    if f"{docname}.md" in GENERATED:
        return
    from sphinx.util import logging

    for problem in unknown_names(source[0]):
        logging.getLogger(__name__).warning(f"{problem} does not exist (trigger_kd/config.py, trigger_kd/cli.py)",
                                            location=docname)


def setup(app):
    app.connect("builder-inited", write_references)
    app.connect("source-read", check_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
