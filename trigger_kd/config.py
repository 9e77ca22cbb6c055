"""Typed, strict configuration: pydantic models, one per YAML section.

One YAML file per model in ``hls_configs/``. Layering (later wins): the models' defaults <
profile overlay (``hls_configs/profiles/<profile>.yml``) < the model file < ``--set``
overrides. Types are strict, unknown keys are refused, and every value's range is checked
at load time, before any work; a problem is one ConfigError naming the key and the file it
came from. Adding a key is one line in its section below; stages read their section directly.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .errors import TriggerKDError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hls_configs"


class ConfigError(TriggerKDError):
    """A configuration problem, worded for the person who wrote the YAML."""


Count = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Bits = Annotated[int, Field(ge=1)]  # unsigned
SignedBits = Annotated[int, Field(ge=2)]  # a sign bit and at least one more (1-bit narrow-range weights are all 0)
MAX_BITS = 24  # student bit widths: float32 (training, golden outputs) holds 24-bit integers exactly
# Sizes are bounded by what one machine holds, refused at load time (before any work), never a traceback from an
# allocation hours in: a jet's constituents (real jets hold < 200; a LorentzNet's edges grow as the square), one
# layer's width (4096 x 4096 float32 weights are 64 MiB; no FPGA student comes near), a network's depth, a batch.
MAX_CONSTITUENTS = 1024
# A clock period (hls.clock_period, and every period a synthesis report gives: synth/reports.py): no FPGA fabric runs
# at 10 GHz or above, none below 1 kHz.
MIN_CLOCK_NS = 0.1
MAX_CLOCK_NS = 1e6
MAX_WIDTH = 4096
MAX_DEPTH = 64
MAX_BATCH = 65536
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Depth = Annotated[int, Field(ge=1, le=MAX_DEPTH)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Particles = Annotated[int, Field(ge=1, le=MAX_CONSTITUENTS)]
Widths = Annotated[tuple[Width, ...], Field(max_length=MAX_DEPTH)]


class Section(BaseModel):
    """Strict (no coercion), closed (unknown keys refused), frozen, defaults validated too."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _lists_as_tuples(cls, raw: Any) -> Any:  # YAML lists -> the tuples the fields hold
        return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()} if isinstance(raw, dict) else raw


def _earlier(info: ValidationInfo, key: str, default: Any) -> Any:
    """A field validated before this one (cross-field rules), or its default if it was invalid."""
    return info.data.get(key, default)


def _refused_when(field: str, why: Callable[[Any, dict], Any]):
    """A cross-field rule of ``field``, as its validator: ``why(value, the fields validated before it, each absent
    when invalid)`` is falsy for a good value, else the message of the ValueError (the field's error, as pydantic's
    own checks)."""
    def check(cls, v: Any, info: ValidationInfo) -> Any:
        message = why(v, info.data)
        if message:
            raise ValueError(message)
        return v

    return field_validator(field)(classmethod(check))


class DataConfig(Section):
    # where jets come from: pythia (generated here, Pythia 8 + FastJet) or the format of the files in `paths`
    # (top tagging reference dataset, hls4ml LHC jets 150p, JetClass ROOT, canonical HDF5: data/formats.py)
    source: Literal["pythia", "toptagging", "hls4ml", "jetclass", "canonical"] = "pythia"
    paths: tuple[str, ...] = ()  # input files for the non-generated sources
    jets_per_class: NonNeg = 10000  # generated jets per class; cap per class for file sources (0 = all)
    max_constituents: Particles = 200  # constituents kept per jet, leading in pT (fewer: zero-padded)
    split: tuple[Positive, ...] = (0.6, 0.2, 0.2)  # train, val, test
    # Pythia seeds of the shards (with class and shard index), the train/val/test shuffle, the transfer set's
    # order and the boosted views' velocities
    seed: NonNeg = 1
    workers: NonNeg = 0  # 0 = one per core
    shard_size: Count = 500  # generated jets per shard file of a class's pool (a new size: new pools)
    sqrt_s: Positive = 14000.0  # pp centre-of-mass energy, GeV (Pythia Beams:eCM)
    pthat_min: Annotated[float, Field(ge=0)] = 500.0  # minimum pT of the hard 2 -> 2 process, GeV (PhaseSpace:pTHatMin)
    jet_r: Positive = 0.8  # anti-kT jet radius; also the gluon / q matching distance to the hard parton
    pt_min: Annotated[float, Field(ge=0)] = 550.0  # jets kept: pT above this, GeV (and below pt_max)
    pt_max: Positive = 650.0  # jets kept: pT below this, GeV
    eta_max: Positive = 2.0  # jets kept: |eta| below this
    particle_eta_max: Positive = 2.5  # visible final-state particles clustered: |eta| below this
    match_dr: Positive = 0.8  # top / w / z jets: the boson or top and its decay quarks within this Delta R
    mpi: bool = False  # Pythia multiparton interactions (PartonLevel:MPI)
    hadronization: bool = True  # Pythia hadronisation (HadronLevel:all)
    signal: tuple[str, ...] = ("top",)  # jet classes labelled 1 (trigger_kd/classes.py)
    background: tuple[str, ...] = ("qcd",)  # jet classes labelled 0
    # a multi-class tagger (K >= 3 outputs, output k = classes[k], e.g. [gluon, q, w, z, top]); replaces
    # signal / background (setting both is an error); empty: the binary signal-vs-background tagger
    classes: tuple[str, ...] = ()

    @field_validator("background")
    @classmethod
    def _task(cls, v: tuple, info: ValidationInfo) -> tuple:
        from .classes import check_selection

        if "signal" in info.data:
            try:
                check_selection(info.data["signal"], v)
            except TriggerKDError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("classes")
    @classmethod
    def _multiclass(cls, v: tuple, info: ValidationInfo) -> tuple:
        from .classes import check_classes

        if not v:
            return v
        try:
            check_classes(v)
        except TriggerKDError as exc:
            raise ValueError(str(exc)) from None
        origins = (info.context or {}).get("origins") or {}
        given = [f"data.{k} ({origins[f'data.{k}']})" for k in ("signal", "background") if f"data.{k}" in origins]
        if given:
            raise ValueError(f"data.classes makes a multi-class tagger and {' and '.join(given)} a binary one: set "
                             "data.classes or data.signal / data.background, not both")
        return v

    _paths_for_files = _refused_when("paths", lambda v, d: d.get("source", "pythia") != "pythia" and not v and (
        f"data.source is '{d['source']}' but no paths are given: list the input files"))
    _jets_to_generate = _refused_when("jets_per_class", lambda v, d: v == 0 and d.get("source", "pythia") == "pythia"
                                      and "must be at least 1 for generated jets (0 = all jets applies to file "
                                      "sources)")

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple) -> tuple:
        if len(v) != 3:
            raise ValueError(f"expected a list of 3 values (train, val, test), got {list(v)}")
        if abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"train, val and test fractions must add up to 1, got {list(v)} (sum {sum(v):g})")
        return v

    _pt_window = _refused_when("pt_max", lambda v, d: v <= d.get("pt_min", 0.0) and (
        f"must be above data.pt_min ({d['pt_min']:g}), got {v:g}"))

    def physics(self) -> dict:
        """What generated jets of a class depend on (with class, seed and shard_size: the shard pool's key).
        A new ``data`` key counts as physics unless it is excluded here."""
        return self.model_dump(exclude={"source", "paths", "jets_per_class", "split", "seed", "workers", "shard_size",
                                      "signal", "background", "classes"})

    def plain_fields(self) -> list[str]:
        """The keys dumps and stamps hold: a binary task's signal / background (no ``classes``, so binary stamps
        are those of before multi-class taggers), a multi-class task's ``classes``."""
        drop = {"signal", "background"} if self.classes else {"classes"}
        return [name for name in type(self).model_fields if name not in drop]

    @property
    def task(self):
        """What the K outputs mean (``trigger_kd/classes.py``)."""
        from .classes import task_of

        return task_of(self)


class TeacherConfig(Section):
    # lorentznet (models/lorentznet.py, hard Lorentz symmetry) or transformer (models/transformer.py: the plain encoder
    # of Glowacki / the SEAL paper, no symmetry built in). Keys of one arch only (ARCH_KEYS) with the other arch are
    # refused unless a profile set them (profiles size both teachers); dumps and stamps leave them out.
    arch: Literal["lorentznet", "transformer"] = "lorentznet"
    # auto | cpu | cuda | cuda:N (trigger_kd/device.py): training, cached logits, transfer labelling. auto = cuda where
    # torch finds one, resolved before the stage is stamped (`resolved`); an explicit cuda without one is an error
    device: str = "auto"
    amp: bool = False  # mixed precision (bf16, else fp16) on CUDA only: with a CPU device an error, never ignored
    n_particles: Particles = 32  # leading constituents per jet the teacher sees
    hidden: Width = 32  # lorentznet
    layers: Depth = 3  # lorentznet: LGEB blocks
    epochs: Count = 3  # training epochs (no early stopping; the best-validation-accuracy weights are kept)
    batch_size: Batch = 64  # jets per training step (per rank with several GPUs)
    lr: Positive = 1e-3  # AdamW peak learning rate: warm-up over 5 % of the steps, then cosine decay
    weight_decay: Annotated[float, Field(ge=0)] = 0.01  # AdamW weight decay
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2  # dropout probability (lorentznet decoder, transformer encoder)
    c_weight: Annotated[float, Field(ge=0)] = 5e-3  # lorentznet
    d_model: Width = 64  # transformer: embedding width
    encoder_layers: Depth = 3  # transformer: encoder layers (not `layers`: the paper profile sizes both teachers)
    heads: Count = 4  # transformer: attention heads (divide d_model)
    ff_dim: Width = 64  # transformer: feed-forward width
    head_hidden: Widths = (64, 32)  # transformer: the head's hidden widths, then one logit
    seed: NonNeg = 1  # initial weights, batch shuffling, SEAL boosts and dropout
    threads: NonNeg = 0  # PyTorch CPU threads (0 = PyTorch's default)
    # SEAL: + lambda mean ||f(L x) - f(x)||^2, boosts L (train/seal.py)
    seal_lambda: Annotated[float, Field(ge=0)] = 0.0
    seal_max_beta: Annotated[float, Field(ge=0, lt=1)] = 0.95  # |beta| of those boosts uniform in [0, this]
    # transformer: + this * mean sum_G ||d/de f(exp(e G) x)||^2 over the six Lorentz generators (train/seal.py)
    seal_generator_lambda: Annotated[float, Field(ge=0)] = 0.0

    ARCH_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "lorentznet": ("hidden", "layers", "c_weight"),
        "transformer": ("d_model", "encoder_layers", "heads", "ff_dim", "head_hidden", "seal_generator_lambda")}

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        from .device import DEVICE_PATTERN

        if not re.fullmatch(DEVICE_PATTERN, v):
            raise ValueError(f"{v!r} is not a device: use auto, cpu, cuda or cuda:N (N = 0, 1, ...)")
        return v

    _amp_on_cuda = _refused_when("amp", lambda v, d: v and d.get("device", "auto") == "cpu" and (
        "mixed precision needs a CUDA device and teacher.device is cpu: set teacher.amp: false (refused, not ignored)"))

    @field_validator(*ARCH_KEYS["lorentznet"], *ARCH_KEYS["transformer"])
    @classmethod
    def _key_of_the_arch(cls, v: Any, info: ValidationInfo) -> Any:
        arch = _earlier(info, "arch", "lorentznet")
        name = info.field_name
        owner = next(a for a, keys in cls.ARCH_KEYS.items() if name in keys)
        origin = ((info.context or {}).get("origins") or {}).get(f"teacher.{name}", "")
        if owner != arch and v != cls.model_fields[name].default and not origin.startswith("profile "):
            raise ValueError(f"applies to teacher.arch: {owner} only; teacher.arch {arch} would ignore it: remove it "
                             f"or use arch {owner}")
        return v

    _heads_split_the_width = _refused_when("heads", lambda v, d: d.get("arch", "lorentznet") == "transformer" and (
        d.get("d_model", v) % v) and f"the {v} attention heads must divide teacher.d_model ({d.get('d_model', v)})")

    def plain_fields(self) -> list[str]:
        """The keys dumps and stamps hold: every key but those of the other arch (ARCH_KEYS)."""
        other = {k for a, keys in self.ARCH_KEYS.items() if a != self.arch for k in keys}
        return [name for name in type(self).model_fields if name not in other]

    @property
    def resolved(self) -> "TeacherConfig":
        """This section with ``device: auto`` resolved to the device it runs on (what the teacher stage is stamped
        with); an explicit CUDA device where there is none, or amp without CUDA, is a TriggerKDError naming the key."""
        from .device import resolve_device

        return self.model_copy(update={"device": resolve_device(self.device, self.amp)})


def old_epochs_key(raw: Any, where: str) -> Any:
    """``student.epochs`` (before max_epochs existed) -> ``max_epochs``; both in one place is an error."""
    if not isinstance(raw, dict) or "epochs" not in raw:
        return raw
    if "max_epochs" in raw:
        raise ValueError(f"'student.epochs' is the old name of 'student.max_epochs' and {where} gives both: keep "
                         "max_epochs")
    return {("max_epochs" if k == "epochs" else k): v for k, v in raw.items()}


class StudentConfig(Section):
    arch: Literal["mlp", "deepset"] = "mlp"  # mlp: dense layers on the flattened constituents; deepset: phi, mean, rho
    # quantisation-aware training library: brevitas (PyTorch), qkeras or hgq (HGQ2, learned bit widths)
    framework: Literal["brevitas", "qkeras", "hgq"] = "brevitas"
    n_particles: Particles = 16  # leading constituents per jet the student (and its firmware) reads
    # + ln(pT_jet / TeV) on every constituent (trigger_kd/data/features.py): the jet's scale, which boosted
    # views need to keep a student's accuracy under boosts (benchmarks/history/kd_gain.md, "Boost robustness and the
    # jet's pT")
    jet_pt_feature: bool = False
    mlp_hidden: Widths = (32, 16)  # mlp: hidden layer widths, then the output layer
    phi_hidden: Annotated[tuple[Width, ...], Field(min_length=1, max_length=MAX_DEPTH)] = (16, 16)  # the mean pools phi's ReLU outputs
    rho_hidden: Widths = (16,)  # deepset: hidden widths of rho after the mean, then the output layer
    weight_bits: SignedBits = 6  # signed, power-of-two scale per tensor
    act_bits: Bits = 8  # unsigned ReLU outputs ufixed<act_bits, act_int_bits>
    act_int_bits: NonNeg = 3  # integer bits of the ReLU outputs (of act_bits)
    input_bits: SignedBits = 10  # signed input fixed<input_bits, input_int_bits + 1>
    input_int_bits: NonNeg = 1  # integer bits of the input, sign bit not counted (1: range [-2, 2))
    bias_bits: SignedBits = 16  # signed biases (Brevitas, QKeras), on the grid of the layer's accumulator
    # Training to convergence (train/loops.py): up to max_epochs, early stopping on the validation AUC (stop after
    # `patience` epochs without a gain above min_delta; the best-validation weights are kept). `epochs` is the old
    # name of max_epochs and is still read (student.epochs: N == student.max_epochs: N).
    max_epochs: Count = 100
    patience: Count = 10  # early stopping: epochs without a validation AUC gain above min_delta
    min_delta: Annotated[float, Field(ge=0, lt=1)] = 0.0  # AUC gain that counts as an improvement
    # plateau: linear warm-up over warmup_epochs, then lr until the validation AUC stalls for lr_patience epochs,
    # then lr * lr_factor (not below min_lr), and so on. one_cycle: warm-up then cosine decay over max_epochs
    # (PyTorch OneCycleLR values; early stopping may end it before the decay).
    lr_schedule: Literal["plateau", "one_cycle"] = "plateau"
    warmup_epochs: NonNeg = 1  # plateau: epochs of linear warm-up from lr / 25 to lr
    lr_patience: Count = 3  # plateau: epochs without a validation AUC gain before the rate is lowered
    lr_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5  # plateau: the rate is multiplied by this when lowered
    min_lr: Annotated[float, Field(ge=0)] = 1e-5  # plateau: the rate is not lowered below this
    batch_size: Batch = 256  # jets per training step
    lr: Positive = 3e-3  # AdamW learning rate (plateau: after the warm-up; one_cycle: the peak)
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4  # AdamW weight decay
    seed: NonNeg = 1  # initial weights, the jets' training order and the SEAL boosts
    threads: NonNeg = 0  # training threads: PyTorch pool or TensorFlow op pools (0: the library default)
    seal_lambda: Annotated[float, Field(ge=0)] = 0.0  # SEAL: weight of mean ||f(L x) - f(x)||^2 over random boosts L
    seal_max_beta: Annotated[float, Field(ge=0, lt=1)] = 0.95  # SEAL boosts: random direction, |beta| ~ U(0, this)
    # HGQ2 (framework hgq): weight of the EBOPs resource penalty (effective bit operations, HGQ2's LUT proxy) in
    # the loss; learned per-weight / per-activation bit widths start at weight_bits / act_bits. 0 = no penalty;
    # above 1e-3 the penalty swamps the KD loss (every bit width collapses), so larger values are refused.
    ebops_beta: Annotated[float, Field(ge=0, le=1e-3)] = 1e-5
    # HGQ2: keep the best-validation epoch among those whose EBOPs are at most this (null: any epoch). The penalty
    # trims the bit widths over many epochs while the validation AUC peaks early, so the best-AUC epoch alone is
    # often one the penalty has not yet trimmed; early stopping counts from the first epoch within the bound.
    max_ebops: Annotated[float, Field(gt=0)] | None = None
    # HGQ2: after the fixed input bus (input_bits), the first layer learns per-input bit widths too (within the
    # bus: at most its bits; the EBOPs penalty drops input bits the tagger does not need). false: the first layer
    # reads the whole bus.
    learn_input_bits: bool = False

    # keys only HGQ2 reads, refused with other frameworks when changed from their default
    HGQ_KEYS: ClassVar[dict[str, str]] = {"ebops_beta": "is the HGQ2 resource penalty",
                                          "max_ebops": "bounds HGQ2's EBOPs",
                                          "learn_input_bits": "is an HGQ2 learned bit width"}

    @model_validator(mode="before")
    @classmethod
    def _old_epochs_key(cls, raw: Any) -> Any:
        return old_epochs_key(raw, "the student section")

    @model_validator(mode="after")
    def _hgq_keys_need_hgq(self) -> "StudentConfig":
        # a changed value only: a dumped config (stamps, a front's picked.yml) carries the default for every framework
        for key, what in self.HGQ_KEYS.items():
            if self.framework != "hgq" and getattr(self, key) != type(self).model_fields[key].default:
                raise ValueError(f"student.{key} {what} (student.framework: hgq); framework {self.framework} "
                                 f"would ignore it: remove it or use framework hgq")
        return self

    _lr_drops_before_stop = _refused_when("lr_patience", lambda v, d: d.get("lr_schedule", "plateau") == "plateau" and (
        v >= d.get("patience", v + 1)) and (f"must be below student.patience ({d['patience']}) with the plateau "
                                            "schedule (else training stops before the learning rate is ever lowered)"))
    _pooling_exact = _refused_when("n_particles", lambda v, d: d.get("arch", "mlp") == "deepset" and v & (v - 1) and (
        f"the deep set averages over {v} particles, which is exact in fixed point only for a power of two (8, 16, "
        "32, ...)"))
    _act_format = _refused_when("act_int_bits", lambda v, d: v > d.get("act_bits", v) and (
        f"must not exceed student.act_bits ({d['act_bits']}), got {v}"))
    _input_format = _refused_when("input_int_bits", lambda v, d: v + 1 > d.get("input_bits", v + 1) and (
        f"must be below student.input_bits ({d['input_bits']}; one bit is the sign), got {v}"))

    @field_validator("weight_bits", "act_bits", "input_bits", "bias_bits")
    @classmethod
    def _float32_exact(cls, v: int) -> int:
        # training and the golden outputs run in float32, whose 24-bit significand holds every integer of up to
        # 24 bits exactly; a wider fixed-point type has values float32 rounds, and bit-exact firmware is lost
        if v > MAX_BITS:
            raise ValueError(f"at most {MAX_BITS} bits (float32 training represents {MAX_BITS}-bit integers exactly, "
                             f"wider values are rounded), got {v}")
        return v


# The transfer stage reads a part of ``distill``: every DistillConfig field carries one of these two marks, and
# the transfer stage's stamp is the fields marked TRANSFER plus TRANSFER_DERIVED (DistillConfig.transfer_keys).
TRANSFER = Field(json_schema_extra={"transfer_stamp": True})  # the transfer stage's output depends on it
NOT_TRANSFER = Field(json_schema_extra={"transfer_stamp": False})  # it does not (the student stage reads all)


class DistillConfig(Section):
    # weight of the soft-target term; 0 = trained from scratch (the transfer stage reads only alpha > 0: uses_teacher)
    alpha: Annotated[float, Field(ge=0, le=1), NOT_TRANSFER] = 0.7
    temperature: Annotated[Positive, NOT_TRANSFER] = 3.0  # softens both softmaxes of the KD term (scaled by T^2)
    # extra generated jets per class, teacher targets only (own seed stream)
    transfer_jets_per_class: Annotated[NonNeg, TRANSFER] = 0
    transfer_paths: Annotated[tuple[str, ...], TRANSFER] = ()  # unlabelled jet files, teacher targets only
    # format of the transfer_paths files (as data.source)
    transfer_source: Annotated[Literal["toptagging", "hls4ml", "jetclass", "canonical"], TRANSFER] = "canonical"
    augment_max_beta: Annotated[float, Field(ge=0, lt=1), TRANSFER] = 0.0  # boosted views: |beta| ~ U(0, this), 0 = off
    # boosted views per jet (teacher logits precomputed); epoch e: e mod k
    augment_views: Annotated[Count, TRANSFER] = 4
    scratch_twin: Annotated[bool | None, NOT_TRANSFER] = None  # train the from-scratch twin (null: when alpha > 0)

    TRANSFER_DERIVED: ClassVar[tuple[str, ...]] = ("uses_teacher",)  # properties the transfer stage reads

    @classmethod
    def transfer_keys(cls) -> tuple[str, ...]:
        """The ``distill`` keys in the transfer stage's stamp: fields marked TRANSFER, then TRANSFER_DERIVED.
        A field without a mark is refused here (every run computes this), so none escapes the stamp unnoticed."""
        marks = {name: f.json_schema_extra.get("transfer_stamp") if isinstance(f.json_schema_extra, dict) else None
                 for name, f in cls.model_fields.items()}
        unmarked = sorted(name for name, mark in marks.items() if mark is None)
        if unmarked:
            raise TypeError(f"DistillConfig field(s) {', '.join(unmarked)} carry neither TRANSFER nor NOT_TRANSFER "
                            "(trigger_kd/config.py): say whether the transfer stage's output depends on them")
        return tuple(name for name, mark in marks.items() if mark) + cls.TRANSFER_DERIVED

    @property
    def with_scratch_twin(self) -> bool:
        return self.uses_teacher if self.scratch_twin is None else self.scratch_twin

    @property
    def uses_teacher(self) -> bool:
        """Distillation (alpha > 0): transfer jets and the teacher's logits on boosted views are used."""
        return self.alpha > 0


class ExportConfig(Section):
    check_jets: Count = 512  # jets on which QONNX execution is compared with the student


PRECISION_KEYS = ("result", "accum", "weight", "bias")  # what hls.layer_precision may set on a layer
_MODES = r"(?:AP_)?(?:TRN|TRN_ZERO|RND|RND_ZERO|RND_INF|RND_MIN_INF|RND_CONV|WRAP|SAT|SAT_ZERO|SAT_SYM)"
_HLS_TYPE = re.compile(rf"^\s*(?:auto|(?:ap_|ac_)?u?int<\s*[1-9]\d*\s*>|(?:ap_|ac_)?u?fixed<\s*[1-9]\d*\s*,\s*-?\d+\s*"
                       rf"(?:,\s*(?:{_MODES}|true|false)\s*){{0,2}}(?:,\s*\d+\s*)?>)\s*$")


class HLSConfig(Section):
    # what the firmware outputs and check-parity judges: the K logits (default), the class index (argmax: the first
    # highest logit, as numpy), or softmax values (refused unless proven exact: firmware/outputs.py)
    output: Literal["logits", "argmax", "softmax"] = "logits"
    backend: Literal["Vivado", "Vitis"] = "Vitis"  # hls4ml backend; synth.tool auto looks for this vendor tool
    part: Annotated[str, Field(min_length=1)] = "xcvu13p-flga2577-2-e"  # AMD/Xilinx FPGA part number
    clock_period: Annotated[float, Field(ge=MIN_CLOCK_NS, le=MAX_CLOCK_NS)] = 5.0  # ns
    io_type: Literal["io_parallel", "io_stream"] = "io_parallel"  # hls4ml IOType: all inputs at once, or streamed
    strategy: Literal["Latency", "Resource"] = "Latency"  # hls4ml Strategy of the model and every layer
    reuse_factor: Count = 1  # hls4ml ReuseFactor: multiplications per multiplier (1 = fully parallel)
    # per-layer overrides: {layer name: {"result": "fixed<16,6>", "accum": ..., "weight": ..., "bias": ...}}
    layer_precision: dict[str, dict[str, str]] = {}

    @field_validator("layer_precision")
    @classmethod
    def _hls_types(cls, v: dict) -> dict:
        problem = layer_precision_problem(v)
        if problem:
            raise ValueError(problem)
        return v


def layer_precision_problem(overrides: dict) -> str | None:
    """What is wrong with ``hls.layer_precision`` (None: nothing). Its keys and types are known at load time (the
    layer names only once hls4ml has built the model)."""
    for layer, types in overrides.items():
        bad = sorted(set(types) - set(PRECISION_KEYS))
        if bad:
            return f"hls.layer_precision.{layer} has unknown keys {bad}; use {', '.join(PRECISION_KEYS)}"
        for key, text in types.items():
            if not _HLS_TYPE.match(text):
                return (f"hls.layer_precision.{layer}.{key}: {text!r} is not an hls4ml type such as 'fixed<16,6>', "
                        "'ufixed<8,3,RND_CONV,SAT>', 'int<8>' or 'auto'")
    return None


class SynthConfig(Section):
    # route: vivado / vitis (local vendor HLS), docker (the same in a container), open-source (da4ml + Yosys + RTL
    # simulation), auto (the local vendor tool for hls.backend when on PATH, else open-source with a warning)
    tool: Literal["auto", "vivado", "vitis", "docker", "open-source"] = "auto"
    docker_image: Annotated[str, Field(min_length=1)] = "trigger-kd-vivado:latest"  # image of the docker route
    container_engine: Literal["docker", "podman"] = "docker"  # environment TRIGGER_KD_CONTAINER_ENGINE wins
    container_flags: tuple[str, ...] = ()  # extra `<engine> run` flags a site needs, e.g. ["--network", "host"]
    vivado_synth: bool = False  # also run Vivado logic synthesis after HLS
    latency_cutoff: Positive = 5.0  # da4ml delay units per stage at a 5 ns clock, scaled with hls.clock_period (not ns)
    simulator: Literal["verilator", "iverilog"] = "verilator"  # open-source route RTL simulation
    sim_jets: NonNeg = 1000  # test jets simulated on the RTL (0 = all)
    family: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "xcup"  # Yosys synth_xilinx family (a name)
    # open-source route: Yosys synth_xilinx counts (false: da4ml's LUT estimate and pipeline register bits only, no
    # Yosys run; what `trigger-kd front` uses for its points; the RTL is still written and simulated)
    yosys: bool = True


class ChecksConfig(Section):
    # the firmware stage fails below this fraction of test jets whose C-simulation logits equal the student's bit
    # for bit (hls.output argmax: always 1)
    parity_min_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    working_point: Annotated[float, Field(gt=0, lt=1)] = 0.5  # top-score threshold for decisions
    # robustness metrics: test jets boosted along x with these velocities |beta| (fractions of c)
    boost_betas: tuple[Annotated[float, Field(ge=0, lt=1)], ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    # robustness metrics: each constituent's pT smeared, pT (1 + sigma N(0, 1)), with these relative sigmas
    smear_sigmas: tuple[Annotated[float, Field(ge=0)], ...] = (0.0, 0.05, 0.1, 0.2)


class Config(Section):
    name: str  # also the default run directory's name
    profile: str = "quick"  # overlay under this file: hls_configs/profiles/<profile>.yml (--profile wins)
    description: str = ""  # free text on what this model is (kept in the resolved config)
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    export: ExportConfig = ExportConfig()
    hls: HLSConfig = HLSConfig()
    synth: SynthConfig = SynthConfig()
    checks: ChecksConfig = ChecksConfig()
    source_file: str = ""  # where the config came from (not a YAML key)

    @field_validator("name")
    @classmethod
    def _directory_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", v):
            raise ValueError(f"{v!r} names the run directory: use letters, digits, '_', '.' and '-' only")
        return v

    @model_validator(mode="after")
    def _particles_stored(self, info: ValidationInfo) -> "Config":
        """A network cannot read more constituents than the data keeps per jet (the rest would be zero padding
        the loader never fills): both keys named, with where each came from."""
        origins = (info.context or {}).get("origins") or {}
        stored = self.data.max_constituents
        for section in ("teacher", "student"):
            n = getattr(self, section).n_particles
            if n > stored:
                raise ValueError(
                    f"{section}.n_particles {n} ({origins.get(f'{section}.n_particles', 'default value')}) is above "
                    f"data.max_constituents {stored} ({origins.get('data.max_constituents', 'default value')}): the "
                    f"jets keep at most {stored} constituents; lower {section}.n_particles or raise "
                    f"data.max_constituents (at most {MAX_CONSTITUENTS})")
        return self

    def section(self, name: str) -> Any:
        return getattr(self, name)


SECTIONS = ("data", "teacher", "student", "distill", "export", "hls", "synth", "checks")


# ----------------------------------------------------------------------------- errors for people
_WORDING = {
    "int_type": "expected an integer", "float_type": "expected a number", "bool_type": "expected true/false",
    "string_type": "expected a string", "tuple_type": "expected a list", "dict_type": "expected a mapping",
    "model_type": "expected a section (mapping)",
}


def _model_at(cls: Any, loc: tuple) -> type[BaseModel] | None:
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        cls = field.annotation
    return cls


def _message(root: type[BaseModel], err: dict, origins: Mapping[str, str], default: str) -> str:
    loc = err["loc"]
    if not loc and err["type"] == "value_error":  # a rule across sections names its keys itself
        return err["msg"].removeprefix("Value error, ")
    dotted = ".".join(str(p) for p in loc if isinstance(p, str)) + "".join(f"[{p}]" for p in loc if isinstance(p, int))
    origin = origins.get(".".join(str(p) for p in loc if isinstance(p, str)), default)
    if err["type"] == "extra_forbidden":
        names = set((_model_at(root, loc[:-1]) or root).model_fields) - {"source_file"}
        close = difflib.get_close_matches(str(loc[-1]), sorted(names), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        section = ".".join(map(str, loc[:-1]))
        return (f"unknown config key '{dotted}' in {origin}{hint}; "
                f"known keys{' in ' + section if section else ''}: {', '.join(sorted(names))}")
    got = err.get("input")
    if err["type"] == "literal_error":
        what = f"{got!r} is not one of {err['ctx']['expected']}"
    elif err["type"] == "too_short":
        what = f"expected at least {err['ctx']['min_length']} value(s), got {list(got)!r}"
    elif err["type"] == "missing":
        what = "missing required key"
    elif err["type"] in _WORDING:
        what = f"{_WORDING[err['type']]}, got {got!r}"
    else:  # range and cross-field rules
        what = err["msg"].removeprefix("Value error, ")
        what = what[0].lower() + what[1:] + ("" if err["type"] == "value_error" else f", got {got!r}")
    return f"'{dotted}' ({origin}): {what}"


def validated(cls: type[Section], raw: Mapping[str, Any], origins: Mapping[str, str] = {},
              default: str = "default value"):
    """``cls`` built from ``raw``, or a ConfigError naming the key and where it came from (``origins``)."""
    try:
        return cls.model_validate(raw, context={"origins": origins})  # TeacherConfig: keys a profile set
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(_message(cls, errors[0], origins, default) + more) from None


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


class _KeyTwice(Exception):
    """A mapping key written twice in one YAML mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is refused (PyYAML keeps the last value
    without a word: two values of one setting, one silently lost). Keys a merge (``<<: *anchor``) brings in may be
    overridden, as YAML says."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor refuses it
                    continue
                if first is not None:
                    raise _KeyTwice(f"the key '{key}' is written twice in one mapping (lines {first} and {line}): "
                                    "one value would be lost without a word; keep one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml(text: str):
    """``text`` as YAML (``_UniqueKeyLoader``)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(exc, 'problem', None) or str(exc).splitlines()[0]}{where}"


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
    except _KeyTwice as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not data:
        raise ConfigError(f"{path} is empty: a model file names at least its student (see hls_configs/mlp_kd.yml)")
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
        value = _yaml(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    except _KeyTwice as exc:
        raise ConfigError(f"--set {expr}: {exc}") from None
    return parts, value


def _renamed_keys(layer: dict, origin: str) -> dict:
    """One layer (profile, model file or --set) with old key names read as the new ones, before layers merge (so
    a model file's old ``student.epochs`` still overrides the profile's ``student.max_epochs``)."""
    student = layer.get("student")
    if not isinstance(student, dict) or "epochs" not in student:
        return layer
    try:
        student = old_epochs_key(student, origin)
    except ValueError as exc:
        raise ConfigError(f"{exc}") from None
    if type(student["max_epochs"]) is not int or student["max_epochs"] < 1:
        raise ConfigError(f"'student.epochs' ({origin}): expected an integer of at least 1 (the old name of "
                          f"student.max_epochs), got {student['max_epochs']!r}")
    from .console import warn

    warn(f"'student.epochs' ({origin}) is the old name of 'student.max_epochs' (early stopping on the validation AUC "
         "may end training sooner; student.patience): read as max_epochs")
    return {**layer, "student": student}


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
    _other_profiles: bool = True,
) -> Config:
    """Load a model YAML with its profile overlay and ``--set`` overrides. The file's ``at_profile`` values for
    the other profiles are checked too (with those profiles), so that a wrong one is found when the file is read."""
    path = Path(path)
    model = _read_yaml(path)
    at_profile = model.pop(AT_PROFILE, None)
    set_tree: dict = {}
    for expr in overrides:
        parts, value = parse_set(expr)
        node = set_tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {expr}: '{p}' is not a section")
        node[parts[-1]] = value
    if profile is not None and set_tree.get("profile") not in (None, profile):
        raise ConfigError(f"--profile {profile} and --set profile={set_tree['profile']} name two profiles: give one")
    prof = profile or set_tree.get("profile") or model.get("profile") or "quick"
    if not isinstance(prof, str):
        raise ConfigError(f"'profile' must be a name, got {prof!r}")
    origins: dict[str, str] = {}
    raw: dict = {}
    from .rundir import RESOLVED_CONFIG

    if path.name == RESOLVED_CONFIG and model.get("profile") not in (None, prof):
        raise ConfigError(f"{path} is a run's resolved config: it holds the values of the profile "
                          f"{model['profile']}, and profile {prof} would only rename them; give the model YAML "
                          f"(e.g. hls_configs/{model.get('name', '<model>')}.yml) with --profile {prof}")

    if path.name != RESOLVED_CONFIG or profile is not None:  # a run's resolved config holds its profile's values
        prof_path = _profile_path(prof, path)
        if not prof_path.is_file():
            raise ConfigError(f"profile '{prof}' not found (looked for {prof_path})")
        raw = _merge(raw, _renamed_keys(_read_yaml(prof_path), f"profile {prof_path}"), origins, f"profile {prof_path}")
    raw = _merge(raw, _renamed_keys(model, str(path)), origins, str(path))
    recipe = _profile_recipe(at_profile, prof, path)
    if recipe:
        where = f"{path} ({AT_PROFILE}: {prof})"
        raw = _merge(raw, _renamed_keys(recipe, where), origins, where)
    raw = _merge(raw, _renamed_keys(set_tree, "--set"), origins, "--set")
    if "source_file" in raw:
        raise ConfigError(f"unknown config key 'source_file' in {origins['source_file']}")
    raw = _absolute_paths(raw, origins, path)
    cfg = validated(Config, {**raw, "profile": prof, "name": raw.get("name", path.stem), "source_file": str(path)},
                    origins)
    for other in (at_profile or {}) if _other_profiles else ():
        if other != prof:
            load_config(path, profile=other, _other_profiles=False)
    return cfg


AT_PROFILE = "at_profile"  # a model file's values for one profile only: {profile name: {section: {key: value}}}


def _profile_path(name: str, path: Path) -> Path:
    """A profile's file: beside the model file (``profiles/<name>.yml``), else the shipped one."""
    local = path.resolve().parent / "profiles" / f"{name}.yml"
    return local if local.is_file() else CONFIG_DIR / "profiles" / f"{name}.yml"


def _profile_recipe(at_profile, prof: str, path: Path) -> dict:
    """The model file's ``at_profile`` values for the profile in use (applied after the file's own keys, before
    ``--set``): a recipe chosen at one size (e.g. a transfer set sized for the quick profile) that must not override
    another profile's sizes. Every profile it names must exist beside the shipped ones or the file."""
    if at_profile is None:
        return {}
    if not isinstance(at_profile, Mapping) or not all(isinstance(v, Mapping) for v in at_profile.values()):
        raise ConfigError(f"{path}: '{AT_PROFILE}' must map profile names to config sections, e.g. "
                          f"{AT_PROFILE}: {{quick: {{distill: {{transfer_jets_per_class: 20000}}}}}}")
    for name, values in at_profile.items():
        if not _profile_path(name, path).is_file():
            raise ConfigError(f"{path}: '{AT_PROFILE}.{name}': no profile named '{name}' (hls_configs/profiles/)")
        for key in ("profile", AT_PROFILE):
            if key in values:  # the profile is chosen before its values are read: it would be ignored
                raise ConfigError(f"{path}: '{AT_PROFILE}.{name}.{key}': a profile's values cannot choose the "
                                  "profile; set 'profile' at the top of the file or give --profile")
    return dict(at_profile.get(prof) or {})


# config keys that name input files; the stage whose stamp.json records what they named (its ``inputs``)
PATH_KEYS = {("data", "paths"): "data", ("distill", "transfer_paths"): "transfer"}


def _absolute_paths(raw: dict, origins: Mapping[str, str], path: Path) -> dict:
    """``data.paths`` and ``distill.transfer_paths`` made absolute, once, at load time. The rule: a relative path
    written in a YAML file (a model file, a profile) is relative to that file's own directory; one given with
    ``--set`` is relative to the current directory, where it was typed. So the loaded config, and every
    ``config.resolved.yml`` dumped from it, names the same files wherever it is run from. ``~`` is expanded.

    A ``config.resolved.yml`` written before this rule holds a relative path as it was typed, relative to a
    directory it did not record: refused, naming the file that run read (its stage's ``stamp.json``)."""
    from .rundir import RESOLVED_CONFIG

    out = dict(raw)
    for (section, key), stage in PATH_KEYS.items():
        values = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), Mapping) else None
        if not isinstance(values, (list, tuple)) or not values:
            continue
        origin = origins.get(f"{section}.{key}", str(path))
        if origin == "--set":
            base = Path.cwd()
        elif origin.startswith("profile "):
            base = Path(origin.removeprefix("profile ")).parent
        else:
            base = path.parent
        relative = [v for v in values if isinstance(v, str) and not Path(v).expanduser().is_absolute()]
        if relative and path.name == RESOLVED_CONFIG and origin == str(path):
            raise ConfigError(_old_relative_message(path, f"{section}.{key}", values, relative, stage))
        fixed = [str(Path(base).absolute() / Path(v).expanduser()) if v in relative else
                 (str(Path(v).expanduser()) if isinstance(v, str) else v) for v in values]
        out[section] = {**raw[section], key: fixed}
    return out


def _old_relative_message(path: Path, dotted: str, values, relative: list[str], stage: str) -> str:
    import json as _json

    from .rundir import STAMP_FILE

    recorded = None
    here = Path(path).absolute().parent
    for stage_dir in (here, here.parent / stage):  # the stage's own directory, or the run's
        try:
            stamp = _json.loads((stage_dir / STAMP_FILE).read_text())
        except (OSError, ValueError):
            continue
        if stamp.get("stage") == stage and len(stamp.get("inputs") or []) == len(values):
            recorded = [str(i.get("path")) for i in stamp["inputs"]]
            break
    listed = ", ".join(repr(v) for v in relative)
    then = (f"; that run read {', '.join(recorded)} (recorded in {stage_dir / STAMP_FILE}): rerun with --set "
            f"{dotted}=[{', '.join(recorded)}]" if recorded else
            f": rerun with --set {dotted}=[...] naming the files by absolute path")
    return (f"'{dotted}' ({path}): {listed} is relative, and this resolved config was written by an older trigger-kd, "
            f"which read it against the directory that run was started from (not recorded), so it would now name "
            f"another file depending on where you stand{then}")


# ----------------------------------------------------------------------------- stamps
def to_plain(obj: Any) -> Any:
    """Config models / mappings / tuples -> JSON-able plain data."""
    if isinstance(obj, BaseModel):
        names = obj.plain_fields() if hasattr(obj, "plain_fields") else type(obj).model_fields
        return {name: to_plain(getattr(obj, name)) for name in names}
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
