"""TensorFlow's start-up noise stays off the terminal (trigger_kd/models/tf_quiet.py); every other line stays."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_kd.models.tf_quiet import dropping_noise

REPO = Path(__file__).resolve().parent.parent
# what TensorFlow 2.21 wrote at import before tf_quiet (absl's pre-init lines, once per shared library)
TF_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796646777.014226   28434 port.cc:153] oneDNN custom operations are on. You may see slightly "
            "different numerical results due to floating-point round-off errors.\n"
            "I0000 00:00:1796646777.015279   28434 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
            "will not be used.\n")
NOISY = re.compile(r"absl|oneDNN|cuda|cpu_feature_guard|^[IWE]\d{4} |tensorflow|keras", re.I | re.M)


def _python(code: str, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS"):
        env.pop(key, None)  # as a user's shell has them: unset
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600, check=False)


def test_the_noise_is_dropped_and_every_other_line_kept(capfd):
    with dropping_noise():
        os.write(2, (TF_NOISE + "a real problem\n").encode())
    assert capfd.readouterr().err == "a real problem\n"


def test_the_cli_drops_the_noise_of_whoever_imports_tensorflow_first(tmp_path):
    """A stand-in ``tensorflow`` that writes TensorFlow's start-up lines to descriptor 2 at import, as the real one
    does from C++: after the CLI has started, importing it prints only what is not noise; our lines remain."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        f"import logging, os\nos.write(2, {(TF_NOISE + 'kept line').encode()!r} + b'\\n')\n"
        "logging.getLogger('tensorflow').warning('Compiled the loaded model, but the compiled metrics have yet to be "
        "built. `model.compile_metrics` will be empty until you train or evaluate the model.')\n"
        "logging.getLogger('tensorflow').warning('a real warning')\n")
    code = ("import importlib.util, sys\nfrom trigger_kd.cli import main\nassert main(['stages']) == 0\n"
            "assert importlib.util.find_spec('tensorflow') is not None\n"  # libraries ask before they import it
            "import tensorflow\nprint('our message', file=sys.stderr)\n")
    out = _python(code, [tmp_path, REPO])
    assert out.returncode == 0, out.stderr
    assert out.stderr == "kept line\na real warning\nour message\n" and "student" in out.stdout
    bare = _python("import tensorflow", [tmp_path, REPO])  # without the CLI: the noise is there (the test can fail)
    assert "port.cc:153] oneDNN" in bare.stderr


@pytest.mark.slow
def test_the_real_tensorflow_students_import_quietly():
    """The real TensorFlow, HGQ2 and QKeras students, imported after the CLI started: no TensorFlow/absl/oneDNN/
    CUDA/Keras line on stderr."""
    code = ("from trigger_kd.cli import main\nassert main(['stages']) == 0\n"
            "import trigger_kd.models.students_hgq, trigger_kd.models.students_keras\n"
            "import tensorflow as tf\nprint(tf.constant([1.0, 2.0]).numpy().sum())\n")
    out = _python(code, [REPO])
    assert out.returncode == 0, out.stderr
    assert not NOISY.search(out.stderr), out.stderr
    assert out.stdout.strip().endswith("3.0")
