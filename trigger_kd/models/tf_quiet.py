"""TensorFlow without its start-up noise: the one place that keeps TensorFlow's, absl's and Keras's chatter off
the terminal, so that a run prints our own lines (and every real warning) only.

TensorFlow 2.21 logs through absl from its shared libraries' static initialisers, before absl's logging is set up:
``TF_CPP_MIN_LOG_LEVEL`` silences its later INFO lines (the CPU feature guard) but not those, which go straight
to file descriptor 2 ("All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on",
"Could not find cuda drivers", once per library). :func:`install` therefore runs the first ``import tensorflow``
of the process (whoever imports it: the students, hls4ml, the distillation loss) with descriptor 2 sent to a
temporary file, then writes back every line it caught except those of ``NOISE``: nothing else is hidden. It also
sets the environment TensorFlow reads at import and drops the messages of TensorFlow's Python logger listed in
``PY_LOG_NOISE`` (no Python ``warnings`` of theirs showed in a run). Lines written while TensorFlow imports reach
the terminal when the import ends, not before. Numerics are untouched (oneDNN stays as TensorFlow chooses).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from contextlib import contextmanager

ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's own C++ INFO/WARNING/ERROR lines after start-up
NOISE = tuple(re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$",
    r"^I\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] ",  # absl INFO lines of TF's start-up
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.\s*$",
))
# messages of TensorFlow's Python logger ("WARNING:tensorflow:...") that say nothing to a user: tf_keras's note on
# loading a compiled model that has not been trained or evaluated since (every saved QKeras student, reloaded)
PY_LOG_NOISE = ("Compiled the loaded model, but the compiled metrics have yet to be built",)


def is_noise(line: str) -> bool:
    return any(p.match(line) for p in NOISE)


@contextmanager
def dropping_noise():
    """Run the block with file descriptor 2 caught; afterwards write back to stderr every line but ``NOISE``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with dropping_noise():
            self.loader.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]  # loaded: done


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` and hands it a loader that runs it under :func:`dropping_noise`; stays in place until
    TensorFlow is actually loaded (libraries ask ``importlib.util.find_spec("tensorflow")`` without importing it)."""

    searching = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec(name)  # the real one, by the finders after this one
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _DropMessages(logging.Filter):
    """Drops the records of TensorFlow's Python logger whose message starts with one of ``PY_LOG_NOISE``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(PY_LOG_NOISE)


def install() -> None:
    """Before anything imports TensorFlow: its environment, the Python logger filter, and the quiet first import
    (a no-op once TensorFlow is loaded)."""
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropMessages) for f in tf_logger.filters):
        tf_logger.addFilter(_DropMessages())
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
