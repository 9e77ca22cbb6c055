"""Sphinx configuration: MyST Markdown pages; the config and CLI references are generated from the code at build
time (_ext/trigger_kd_reference.py). Build: `make docs` (warnings are errors)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "trigger_kd"
author = "trigger_kd developers"
extensions = ["myst_parser", "trigger_kd_reference"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = "trigger_kd"
