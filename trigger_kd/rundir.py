"""The run directory, in one place: what each stage directory holds and how to read it.

Every module that reads or writes a run directory takes its names from here: the runner
(``pipeline.py``), the stages, the cache tools, ``check-parity``, the report and the
``evaluate`` / ``diagnose`` tools. This module imports nothing of the package but ``errors``,
so anything may import it without pulling in the runner.

Layout of ``<run-dir>/``:

- ``.trigger-kd-run``: the marker saying the runner made this directory (``--run-dir`` refuses an existing,
  non-empty directory without it and without completed stages, so nothing of the user's is replaced), with the
  run's id (``run_id``), which moves with the directory;
- ``<stage>/`` (a symlink into ``$TRIGGER_KD_CACHE`` for the shared stages ``data``, ``teacher``,
  ``transfer``): the stage's artefacts (names below), ``stamp.json`` (what the result was made
  from: ``read_stamp``; ``outputs``: the hash of ``manifest.json``, the list of every file the stage
  wrote with its size and hash, ``trigger_kd/manifest.py``; ``upstream`` / ``upstream_outputs``: the
  stamps and output hashes of the stages it read) and ``config.resolved.yml`` (the full resolved config
  of the run that made it);
- ``<stage>.failed/``: the partial output of a failed or interrupted attempt and ``FAILED.json``
  (``last_attempt_failed``), removed by the next success;
- ``<stage>.attempt.json``: written (atomically) before a stage's attempt starts any work, removed only when the
  attempt ends: by its success (with ``<stage>.failed/``), or once a failure or an interrupt is recorded in
  ``FAILED.json``. An attempt killed outright (SIGKILL, the OOM killer, a power cut) leaves it, so every reader
  sees that attempt as unfinished exactly as after SIGTERM (``last_attempt_failed``);
- ``.trigger-kd.lock``: held while a run works on the directory (also what proves that the temporary entries of
  a run that is not holding it are leftovers: ``trigger_kd/concurrency.py``);
- ``evaluate/<name>.json`` (``trigger-kd evaluate``) and ``diagnostics.json`` (``trigger-kd diagnose``).

The JSON records the report and the tools read (``parity.json``, ``resources.json``, the
teacher's and the student's ``metrics.json``) have a typed view here (``Parity``,
``Resources``, ``TeacherMetrics``, ``StudentMetrics``): the stage that writes a file builds the
record, readers get attributes instead of ``.get`` chains. The files keep their JSON layout;
keys a record does not name are kept (``rest``) and written back unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import TriggerKDError

# ----------------------------------------------------------------------------- the runner's files
STAMP_FILE = "stamp.json"
FAILED_FILE = "FAILED.json"  # in <stage>.failed/: the last attempt of that stage failed or was interrupted
RESOLVED_CONFIG = "config.resolved.yml"
RUN_LOCK = ".trigger-kd.lock"
MANIFEST_FILE = "manifest.json"  # every output of a completed stage (trigger_kd/manifest.py); stamp.json has its hash
RUN_MARKER = ".trigger-kd-run"  # in every run directory the runner made: it may replace what it holds
ATTEMPT_SUFFIX = ".attempt.json"  # <stage>.attempt.json: an attempt of that stage began and has not ended
# .<name>.tmp-PID etc.: a runner's temporary entries (group 1: what it is for, 2: the name of the entry it makes or
# replaces, 3: the pid of its maker, which names it only: liveness is judged by locks, trigger_kd/concurrency.py)
LEFTOVER = re.compile(r"^\.(.+)\.(tmp|old|link)-(\d+)$")

# ----------------------------------------------------------------------------- stages, in order
DATA, TEACHER, TRANSFER, STUDENT, EXPORT, FIRMWARE, SYNTH, REPORT = (
    "data", "teacher", "transfer", "student", "export", "firmware", "synth", "report")
STAGE_NAMES = (DATA, TEACHER, TRANSFER, STUDENT, EXPORT, FIRMWARE, SYNTH, REPORT)  # the one list; stages/ tables them

# ----------------------------------------------------------------------------- artefacts, by the stage that writes them
SPLITS = ("train", "val", "test")
SUMMARY = "summary.json"  # data: counts, per-class medians, generation cost
METRICS = "metrics.json"  # teacher and student: TeacherMetrics / StudentMetrics
TEACHER_MODEL = "teacher.pt"
TRANSFER_JETS = "transfer.h5"
TRANSFER_LOGITS = "logits_transfer.npy"
OVERLAP = "overlap.json"
STUDENT_MODELS = ("student", "student_float")  # the quantised student and its float twin (file stems)
SCRATCH_MODEL = "student_scratch"  # the quantised student trained without the teacher (scratch twin)
MODELS = ("teacher", *STUDENT_MODELS)  # what `evaluate` and `diagnose` score
INTNET = "intnet.json"
QUANT_LAYERS = "quant_layers.json"
TEST_INPUTS = "test_inputs.npy"  # the exact student input of every test jet (golden I/O of later stages)
TEST_LOGITS = "test_logits.npy"  # the quantised student's logits on them
TEST_LOGITS_FLOAT = "test_logits_float.npy"
TEST_LABELS = "test_is_signal.npy"  # 1 = a signal-class jet
ROC_PLOT = "roc.png"
CONFUSION_PLOT = "confusion.png"  # student, K-class tasks: the quantised student's confusion matrix
ROBUSTNESS_PLOT = "robustness.png"
EPOCH_CURVE = "epoch_curve.json"  # student: per model, per epoch train loss, val loss, val AUC, lr (EpochCurve)
EPOCH_CURVE_PLOT = "epoch_curve.png"
EXPORT_CHECK = "check.json"
ONNX_RAW = "model_raw.onnx"
ONNX_CLEAN = "model_clean.onnx"
KERAS_EXPORT = "student.h5"
HLS_PROJECT = "hls4ml_prj"
CSIM_OUTPUTS = "csim_outputs.npy"
PARITY = "parity.json"
RESOURCES = "resources.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
EVALUATE_DIR = "evaluate"
DIAGNOSTICS = "diagnostics.json"
# a directory `trigger-kd import-qonnx` wrote: its record (model, model hash, manifest digest) and the evidence
# check-parity recomputes the verdict from (the firmware's and the QONNX execution's values at the compared layer)
IMPORT_RECORD = "import.json"
IMPORT_CSIM = "csim_compared.npy"
IMPORT_REFERENCE = "reference_compared.npy"


def split_file(split: str) -> str:
    """data: ``train.h5`` / ``val.h5`` / ``test.h5`` (canonical layout)."""
    return f"{split}.h5"


def teacher_logits_file(split: str) -> str:
    """teacher: its logits (N, 2) on every jet of a split, in the data file's row order."""
    return f"logits_{split}.npy"


def view_betas_file(part: str) -> str:
    """transfer: boosts (k, N, 3) of the k boosted views of ``part`` ('train' or 'transfer')."""
    return f"view_betas_{part}.npy"


def view_logits_file(part: str) -> str:
    """transfer: the teacher's logits (k, N, 2) on those views."""
    return f"logits_views_{part}.npy"


# ----------------------------------------------------------------------------- stamps and failed attempts
def read_stamp(path: Path) -> dict | None:
    """The stamp.json of a completed stage directory, or None."""
    try:
        return json.loads((Path(path) / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_run_dir(path: Path, stage_names=STAGE_NAMES) -> bool:
    """A directory the runner made (its marker) or one with completed stages (made before the marker existed)."""
    path = Path(path)
    return (path / RUN_MARKER).is_file() or any((path / s / STAMP_FILE).is_file() for s in stage_names)


def is_import_dir(path: Path) -> bool:
    """A directory `trigger-kd import-qonnx` wrote (its record, or the files of one made before the record)."""
    path = Path(path)
    return (path / IMPORT_RECORD).is_file() or all((path / f).exists() for f in (PARITY, ONNX_CLEAN, HLS_PROJECT))


def run_dir_of(path: Path) -> Path | None:
    """The run directory ``path`` is, or is a stage directory of (None: neither)."""
    path = Path(path).absolute()
    for candidate in (path, path.parent):
        if candidate.is_dir() and is_run_dir(candidate):
            return candidate
    return None


def run_dir_above(folder: Path) -> Path | None:
    """The run directory that holds ``folder`` in one of its stage folders (or deeper), as written or with its links
    resolved; None when no folder above it is a run directory. The runner replaces whatever is in there."""
    for path in dict.fromkeys((Path(folder).absolute(), Path(folder).resolve())):
        for above in path.parents:
            if is_run_dir(above):
                return above
    return None


def check_run_dir(path: Path, stage_names=STAGE_NAMES) -> str:
    """Before any work: may the runner use ``path``? "new" (absent or empty), "run" (marked), "adopt" (a run
    from before the marker); anything else is a folder of the user's, refused (its stage-named folders would
    be replaced)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise TriggerKDError(f"--run-dir {path} is a broken symlink; give a new or empty directory")
    if not path.is_dir():
        return "new"  # absent (made now), or a file the runner's prepare_dir refuses
    if (path / RUN_MARKER).is_file():
        return "run"
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return "new"
    if is_run_dir(path, tuple(stage_names) + STAGE_NAMES) or all(n == RUN_LOCK or LEFTOVER.match(n)
                                                                 or n.endswith(ATTEMPT_SUFFIX) for n in names):
        return "adopt"
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    raise TriggerKDError(f"--run-dir {path} is an existing folder that is not a trigger-kd run directory (it holds "
                         f"{shown}); a run replaces its stage folders, so it only uses a new or empty folder or one "
                         "it made: choose another --run-dir")


_MARKER_TEXT = ("made by trigger-kd run: stage folders here are replaced by reruns; put nothing of your own in this "
                "directory\n")
_RUN_ID = re.compile(r"^run id: ([0-9a-f]{32})$", re.M)


def run_id(path: Path) -> str | None:
    """The id in a run directory's marker (None: no marker, or one from before run ids). It names the run wherever
    the directory is moved: the cache records which runs use an entry by it (``trigger_kd/cache.py``)."""
    try:
        m = _RUN_ID.search((Path(path) / RUN_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m.group(1) if m else None


def mark_run_dir(path: Path, claim: str) -> str:
    """Write the marker of a run directory (a new one, or one from before the marker: adopted; a marker from before
    run ids gets one); the run's id."""
    known = run_id(path)
    if known is not None:
        return known
    import uuid

    from .atomic import write_text_atomic

    new = uuid.uuid4().hex
    write_text_atomic(Path(path) / RUN_MARKER, f"{_MARKER_TEXT}run id: {new}\n")
    return new


def failed_dir(stage_dir: Path) -> Path:
    """``<stage>.failed/`` beside ``<stage>/``."""
    stage_dir = Path(stage_dir)
    return stage_dir.with_name(f"{stage_dir.name}.failed")


def attempt_file(stage_dir: Path) -> Path:
    """``<stage>.attempt.json`` beside ``<stage>/``."""
    stage_dir = Path(stage_dir)
    return stage_dir.with_name(f"{stage_dir.name}{ATTEMPT_SUFFIX}")


def lock_nowait(lock_path: Path, shared: bool) -> int | None:
    """An fd holding ``lock_path`` (flock), taken without waiting: shared on the existing file, or exclusive (the file
    made if missing). None when another descriptor (of any process, this one included) holds it in a conflicting
    mode; OSError when the file cannot be opened or locked otherwise."""
    import fcntl
    import os

    fd = os.open(lock_path, os.O_RDONLY) if shared else os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise


def run_in_progress(run_dir: Path) -> bool:
    """Does a trigger-kd run hold ``run_dir``'s lock now? (A shared probe of ``.trigger-kd.lock``, released at once;
    a process that holds the lock itself must not ask.)"""
    import os

    try:
        fd = lock_nowait(Path(run_dir) / RUN_LOCK, shared=True)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)  # drops the probe's lock
    return False


def last_attempt_failed(stage_dir: Path, running: bool | None = None) -> dict | None:
    """Why the last attempt of the stage at ``stage_dir`` did not finish, or None when it succeeded (or none began).

    An attempt record (``<stage>.attempt.json``: the attempt began and never ended) comes first: it is newer than any
    ``FAILED.json``. It reads as ``{"error": "killed: ..." | "begun by ...: it may still be running", "time",
    "see"}``; ``running``: whether a run holds the run directory now (None: probe its lock; the runner, which holds
    it, passes False). Else the
    ``FAILED.json`` of ``<stage>.failed/`` (a failure or an interrupt the runner recorded) as it was written."""
    record = read_json(attempt_file(stage_dir))
    if record is not None or attempt_file(stage_dir).is_file():
        record = record or {}
        who = f"pid {record.get('pid')} on {record.get('host')}"
        probed = running is None
        if probed:
            running = run_in_progress(Path(stage_dir).parent)
        what = (f"begun by {who} and not ended; a run holds {Path(stage_dir).parent / RUN_LOCK} now: it may still "
                "be running" if running else f"killed: begun by {who}, it never ended"
                + (" and no run holds the run directory" if probed else ""))
        return {"error": what, "time": record.get("started"), "see": attempt_file(stage_dir).name,
                "stamp": record.get("stamp")}
    try:
        return json.loads((failed_dir(stage_dir) / FAILED_FILE).read_text())
    except (OSError, ValueError):
        return None


def completed_stage(run_dir: Path, stage: str, hint: str = STUDENT) -> Path:
    """The resolved output directory of a completed stage of ``run_dir``, or a clear error."""
    path = Path(run_dir) / stage
    if not (path / STAMP_FILE).is_file():
        raise TriggerKDError(f"{run_dir}: the {stage} stage has not completed there; run "
                             f"`trigger-kd run CONFIG --to {hint} --run-dir {run_dir}` first")
    return path.resolve()


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; None when the file is missing or not JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_evaluations(run_dir: Path) -> dict[str, dict | None]:
    """Every ``RUN_DIR/evaluate/*.json`` (``trigger-kd evaluate``) by name; None for one that is not a JSON object
    (named by its reader, ``report/records.py``, never left out without a word)."""
    return {p.stem: read_json(p) for p in sorted((Path(run_dir) / EVALUATE_DIR).glob("*.json"))}


# ----------------------------------------------------------------------------- typed records
class Record:
    """A JSON object with named fields; other keys of the file are kept in ``rest``, in file order after them."""

    rest: dict

    @classmethod
    def from_dict(cls, data: dict):
        names = [f.name for f in fields(cls) if f.name != "rest"]
        return cls(**{k: data[k] for k in names if k in data}, rest={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict:
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rest"}
        return {**named, **self.rest}

    @classmethod
    def read(cls, path: Path):
        """The record in ``path``; None when the file is missing or unreadable."""
        data = read_json(path)
        return None if data is None else cls.from_dict(data)

    def write(self, path: Path) -> None:
        from .atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=float))


@dataclass
class Parity(Record):
    """``firmware/parity.json``: C-simulation against the quantised student, as integers on the output grid."""

    n_jets: int = 0
    bit_exact_fraction: float = 0.0
    max_abs_diff: float | None = None
    first_mismatch_layer: str | None = None
    source: str | None = None
    float_agreement: dict | None = None  # against the float twin (firmware/parity.py float_agreement)
    required_fraction: float = 1.0  # checks.parity_min_fraction as the firmware stage applied it
    rest: dict = field(default_factory=dict)  # n_mismatched, output_lsb, first_mismatched_jets, ...

    @property
    def exact(self) -> bool:
        return self.n_jets > 0 and self.bit_exact_fraction == 1.0


@dataclass
class Resources(Record):
    """``synth/resources.json``: the primary resource record (``synth.reports.ResourceRecord`` as a dict), all
    records, RTL parity (open-source route), da4ml's own estimate, notes and the route that made them."""

    primary: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    rtl_parity: dict | None = None
    da4ml_estimate: float | None = None
    notes: list = field(default_factory=list)
    route: str | None = None
    rest: dict = field(default_factory=dict)


@dataclass
class TeacherMetrics(Record):
    """``teacher/metrics.json``: test metrics, robustness to boosts and smearing, training record."""

    test: dict = field(default_factory=dict)
    robustness: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    n_params: int | None = None
    rest: dict = field(default_factory=dict)


@dataclass
class StudentMetrics(Record):
    """``student/metrics.json``: the test metrics of the teacher and every student model (``models``: written as
    top-level keys ``teacher``, ``student``, ``student_float``, ``student_scratch``), the same on the validation
    jets, robustness, the settings the students were trained with."""

    model: str | None = None
    framework: str | None = None
    arch: str | None = None
    seed: int | None = None
    distill: dict = field(default_factory=dict)
    seal: dict = field(default_factory=dict)
    inputs: dict | None = None
    n_test_jets: int | None = None
    n_training_jets: dict | None = None
    models: dict = field(default_factory=dict)  # model name -> binary metrics (accuracy, auc, rej30, rej50, n_jets)
    validation: dict = field(default_factory=dict)
    robustness: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)  # train/baselines.py: jet mass of the inputs / of all constituents
    task: dict | None = None  # what the K outputs mean (outputs, multiclass, the validation figure training watches)
    runtime: dict | None = None  # student.threads as requested, the pools training ran with, TensorFlow's graph options
    source: str | None = None
    rest: dict = field(default_factory=dict)

    MODEL_KEYS = ("teacher", *STUDENT_MODELS, SCRATCH_MODEL)

    @classmethod
    def from_dict(cls, data: dict):
        models = {k: data[k] for k in cls.MODEL_KEYS if k in data}
        rec = super().from_dict({k: v for k, v in data.items() if k not in cls.MODEL_KEYS})
        rec.models = models
        return rec

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "models":
                out.update(self.models)
            elif f.name == "task" and self.task is None:  # records from before multi-class taggers have none
                continue
            elif f.name != "rest":
                out[f.name] = getattr(self, f.name)
        return {**out, **self.rest}

    def metrics(self, model: str) -> dict:
        """Test metrics of one model ({} when the run has none)."""
        return self.models.get(model) or {}


@dataclass
class EpochCurve(Record):
    """``student/epoch_curve.json``: how every student model trained (``train/loops.py`` fit), by model name
    (``student``, ``student_float``, ``student_scratch``): ``history`` (per epoch: ``epoch``, ``lr``,
    ``train_loss``, ``val_loss``, ``val_auc``, ``val_accuracy``, ``seconds``), ``best_epoch`` (the weights kept),
    ``epochs`` run, ``max_epochs``, ``stopped`` (why training ended), the schedule and early-stopping settings."""

    monitor: str = "val_auc"
    models: dict = field(default_factory=dict)
    rest: dict = field(default_factory=dict)

    def best(self, model: str) -> dict | None:
        """The epoch-curve row of the weights kept for ``model`` (None when unknown)."""
        m = self.models.get(model) or {}
        return next((r for r in m.get("history") or [] if r.get("epoch") == m.get("best_epoch")), None)
