"""Stage `student`: the quantisation-aware student, trained with knowledge distillation,
and its float twin (same layers, no quantisers, same loss) for comparison.

Output ``<run-dir>/student/``:
- ``student.pt`` (Brevitas) or ``student.h5`` (QKeras), ``student_float.*``;
- golden I/O for the later stages: ``test_inputs.npy`` (the exact student input for every
  test jet), ``test_logits.npy`` (quantised), ``test_logits_float.npy``, ``test_is_top.npy``;
- ``metrics.json``: teacher / student / student_float metrics on the test jets and robustness
  to Lorentz boosts and pT smearing; ``roc.png``, ``robustness.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..pipeline import RunContext


def student_spec(cfg: Config):
    from ..models.spec import StudentSpec

    s = cfg.student
    return StudentSpec(
        arch=s.arch, n_particles=s.n_particles, n_features=4, mlp_hidden=tuple(s.mlp_hidden),
        phi_hidden=tuple(s.phi_hidden), rho_hidden=tuple(s.rho_hidden), weight_bits=s.weight_bits,
        act_bits=s.act_bits, act_int_bits=s.act_int_bits, input_bits=s.input_bits,
        input_int_bits=s.input_int_bits, bias_bits=s.bias_bits,
    )


def train_settings(cfg: Config):
    from ..train.settings import TrainSettings

    s, d = cfg.student, cfg.distill
    return TrainSettings(
        epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay, seed=s.seed,
        alpha=d.alpha, temperature=d.temperature, threads=s.threads,
    )


def model_inputs(cfg: Config, constituents: np.ndarray) -> np.ndarray:
    """Canonical constituents -> the exact array the student takes (layout per framework)."""
    from ..data.features import student_features, student_input

    feats = student_features(constituents, cfg.student.n_particles)
    if cfg.student.framework == "qkeras" and cfg.student.arch == "deepset":
        return np.ascontiguousarray(feats)  # QKeras deep set is channels-last (N, P, F)
    return student_input(feats, cfg.student.arch)


class TrainedStudent:
    """The trained quantised student and float twin of one run, for whichever framework."""

    def __init__(self, cfg: Config, student_dir: Path):
        self.cfg = cfg
        self.dir = Path(student_dir)
        self.framework = cfg.student.framework
        self.spec = student_spec(cfg)
        if self.framework == "brevitas":
            import torch

            from ..models.students import build_student

            self.quant = build_student(self.spec, quantized=True)
            self.quant.load_state_dict(torch.load(self.dir / "student.pt", weights_only=True))
            self.float = build_student(self.spec, quantized=False)
            self.float.load_state_dict(torch.load(self.dir / "student_float.pt", weights_only=True))
            self.quant.eval()
            self.float.eval()
        else:
            from ..models.students_keras import load_keras_student

            self.quant = load_keras_student(self.dir / "student.h5")
            self.float = load_keras_student(self.dir / "student_float.h5")

    def logits(self, x: np.ndarray, quantized: bool = True) -> np.ndarray:
        model = self.quant if quantized else self.float
        if self.framework == "brevitas":
            from ..train.loops import predict_logits

            return predict_logits(model, x)
        from ..models.students_keras import keras_predict

        return keras_predict(model, x)


def run_student(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..data.formats import read_canonical
    from ..train.metrics import binary_metrics, robustness, top_score
    from ..train.plots import robustness_plot, roc_plot

    data, teacher = ctx.dir("data"), ctx.dir("teacher")
    s = cfg.student
    splits = {k: read_canonical(data / f"{k}.h5") for k in ("train", "val", "test")}
    x = {k: model_inputs(cfg, c) for k, (c, _) in splits.items()}
    y = {k: v[1].astype(np.int64) for k, v in splits.items()}
    t_train = np.load(teacher / "logits_train.npy") if cfg.distill.alpha > 0 else None
    settings = train_settings(cfg)
    spec = student_spec(cfg)
    histories = {}
    if s.framework == "brevitas":
        import torch

        from ..models.students import build_student
        from ..train.loops import train_student

        torch.manual_seed(s.seed)
        for name, quantized in (("student", True), ("student_float", False)):
            info(f"[student] training {'quantised' if quantized else 'float twin'} {s.arch} "
                 f"({'KD alpha=%g T=%g' % (cfg.distill.alpha, cfg.distill.temperature) if t_train is not None else 'from scratch'})")
            model = build_student(spec, quantized=quantized)
            histories[name] = train_student(model, x["train"], y["train"], t_train, x["val"], y["val"],
                                            settings, progress=ctx.progress)
            torch.save(model.state_dict(), out / f"{name}.pt")
    else:
        from ..models.students_keras import build_keras_student, save_keras_student, train_keras_student

        for name, quantized in (("student", True), ("student_float", False)):
            info(f"[student] training QKeras {'quantised' if quantized else 'float twin'} {s.arch}")
            model = build_keras_student(spec, quantized=quantized)
            histories[name] = train_keras_student(model, x["train"], y["train"], t_train, x["val"], y["val"], settings)
            save_keras_student(model, out / f"{name}.h5")
    trained = TrainedStudent(cfg, out)
    if s.framework == "brevitas":
        from ..models.students import quant_layer_table, student_intnet

        student_intnet(trained.quant).save(out / "intnet.json")  # the integer network the RTL route traces
        (out / "quant_layers.json").write_text(json.dumps(quant_layer_table(trained.quant), indent=2))
    else:  # QKeras: the integer network takes (F, P) per jet; the QKeras deep set itself takes (P, F)
        from ..models.students_keras import keras_intnet

        keras_intnet(trained.quant).save(out / "intnet.json")
    c_test, is_top = splits["test"]
    q_logits = trained.logits(x["test"], quantized=True)
    f_logits = trained.logits(x["test"], quantized=False)
    t_logits = np.load(teacher / "logits_test.npy")
    np.save(out / "test_inputs.npy", x["test"].astype(np.float32))
    np.save(out / "test_logits.npy", q_logits)
    np.save(out / "test_logits_float.npy", f_logits)
    np.save(out / "test_is_top.npy", is_top.astype(np.int8))
    scores = {"teacher": top_score(t_logits), "student": top_score(q_logits), "student_float": top_score(f_logits)}
    metrics = {k: binary_metrics(is_top, v) for k, v in scores.items()}
    teacher_metrics = json.loads((teacher / "metrics.json").read_text())
    rob = {"teacher": teacher_metrics["robustness"]}
    for name, quantized in (("student", True), ("student_float", False)):
        rob[name] = robustness(
            lambda c, q=quantized: top_score(trained.logits(model_inputs(cfg, c), quantized=q)),
            c_test, is_top, betas=cfg.checks.boost_betas, smear=cfg.checks.smear_sigmas, seed=0,
        )
    result = {
        "model": cfg.name,
        "framework": s.framework,
        "arch": s.arch,
        "distill": cfg.distill.model_dump(),
        "n_test_jets": int(len(is_top)),
        **metrics,
        "robustness": rob,
        "training": histories,
        "source": f"{len(is_top)} test jets from {data}",
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    roc_plot({k: (is_top, v) for k, v in scores.items()}, out / "roc.png")
    robustness_plot(rob, out / "robustness.png")
    info("[student] " + "; ".join(f"{k}: acc {m['accuracy']:.3f} AUC {m['auc']:.4f}" for k, m in metrics.items()))
    return {k: metrics[k] for k in scores}
