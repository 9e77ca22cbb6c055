"""Students trained to convergence (issue 23, item 1): early stopping on the validation AUC after ``patience``
epochs without a gain, the best-validation weights restored, the learning-rate schedule, the epoch curve
written, plotted and in the report, and the old ``student.epochs`` key still read."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from trigger_kd.config import ConfigError, DistillConfig, StudentConfig, load_config
from trigger_kd.errors import TriggerKDError
from trigger_kd.rundir import EPOCH_CURVE, EPOCH_CURVE_PLOT, STUDENT, EpochCurve
from trigger_kd.train import loops


class _Feed:
    """Four rows, two batches an epoch."""

    teacher, n_views = None, 0

    def __len__(self):
        return 4

    def epoch(self, e):
        return np.zeros((4, 1), np.float32), np.zeros(4, np.int64), None

    def seal_inputs(self, e, idx):
        return None


class _CountingBackend:
    """The model is a step counter: its 'weights' say after how many steps they were taken."""

    framework = "fake"

    def make_step(self, model, distill):
        def step(xb, yb, tb, lr, xs=None):
            model["steps"] += 1
            return 0.5, lr
        return step

    def get_weights(self, model):
        return dict(model)

    def set_weights(self, model, weights):
        model.update(weights)

    def predict(self, model, x):
        return np.zeros((len(x), 2))

    def ebops(self, model):
        return None


def _fit(monkeypatch, aucs, **settings):
    """fit() with the validation AUC of epoch e scripted as aucs[e - 1]."""
    scripted = iter(aucs)
    monkeypatch.setattr(loops, "validation_scores",
                        lambda logits, y: {"val_loss": 0.3, "val_auc": next(scripted), "val_accuracy": 0.8})
    bound_required = settings.pop("bound_required", True)
    s = StudentConfig(**{"max_epochs": len(aucs), "batch_size": 2, "lr": 1e-2, **settings})
    model = {"steps": 0}
    result = loops.fit(_CountingBackend(), model, _Feed(), np.zeros((3, 1)), np.array([0, 1, 1]), s,
                       DistillConfig(alpha=0.0), progress=False, bound_required=bound_required)
    return result, model


def test_stops_after_patience_epochs_without_gain_and_keeps_the_best_weights(monkeypatch):
    result, model = _fit(monkeypatch, [0.6, 0.7, 0.8, 0.79, 0.8, 0.75, 0.95, 0.96], patience=3, lr_patience=2)
    assert result["epochs"] == 6 and result["best_epoch"] == 3 and result["best_val_auc"] == 0.8
    assert result["stopped"].startswith("early stopping") and result["max_epochs"] == 8
    assert model["steps"] == 3 * 2  # the weights of epoch 3 (2 steps an epoch), not of epoch 6
    assert [r["epoch"] for r in result["history"]] == [1, 2, 3, 4, 5, 6]
    assert set(result["history"][0]) >= {"train_loss", "val_loss", "val_auc", "val_accuracy", "lr"}


def test_min_delta_gain_does_not_count_and_max_epochs_ends_it(monkeypatch):
    result, _ = _fit(monkeypatch, [0.8, 0.8005, 0.801, 0.8015], patience=3, lr_patience=2, min_delta=0.002)
    assert result["epochs"] == 4 and result["best_epoch"] == 1  # 3 gains of 0.0005 < min_delta
    result, model = _fit(monkeypatch, [0.6, 0.7, 0.8, 0.9], patience=3, lr_patience=2)
    assert result["epochs"] == 4 and result["best_epoch"] == 4 and result["stopped"] == "max_epochs"
    assert model["steps"] == 8


def test_without_a_validation_auc_every_epoch_runs_and_the_last_weights_stay(monkeypatch):
    result, model = _fit(monkeypatch, [None] * 5, patience=2, lr_patience=1)
    assert result["epochs"] == 5 and result["best_epoch"] == 5 and model["steps"] == 10


def test_plateau_schedule_warms_up_then_lowers_the_rate_when_the_auc_stalls(monkeypatch):
    result, _ = _fit(monkeypatch, [0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7], patience=10, lr_patience=2, warmup_epochs=1,
                     lr_factor=0.5, min_lr=3e-3)
    lrs = result["lr_per_step"]
    assert lrs[0] == pytest.approx(1e-2 / 25) and lrs[1] < 1e-2  # warm-up over epoch 1 (2 steps)
    per_epoch = [r["lr"] for r in result["history"]]
    # stalls after epochs 3, 4 -> lowered for epoch 5; 5, 6 -> lowered again, not below min_lr, for epoch 7
    assert per_epoch[1:] == pytest.approx([1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 3e-3])


def test_one_cycle_schedule_spans_max_epochs(monkeypatch):
    result, _ = _fit(monkeypatch, [0.5 + 0.01 * e for e in range(10)], lr_schedule="one_cycle")
    np.testing.assert_allclose(result["lr_per_step"], [loops.lr_at(i, 20, 1e-2) for i in range(20)])


def test_validation_scores():
    logits = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    got = loops.validation_scores(logits, np.array([1, 0, 0, 0]))
    assert got["val_auc"] == 1.0 and got["val_accuracy"] == 0.75
    want = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log1p(np.exp(1.0)), np.log1p(np.exp(-1.0))])
    assert got["val_loss"] == pytest.approx(want)
    assert loops.validation_scores(logits, np.array([1, 1, 1, 1]))["val_auc"] is None


def test_config_keys_checked_and_old_epochs_key_read(tmp_path, repo):
    cfg = load_config(repo / "hls_configs/mlp_kd.yml")
    assert cfg.student.max_epochs >= cfg.student.patience > cfg.student.lr_patience
    assert load_config(repo / "hls_configs/mlp_kd.yml", ["student.epochs=4"]).student.max_epochs == 4
    assert StudentConfig(epochs=7).max_epochs == 7
    old = tmp_path / "old.yml"  # a model file written before max_epochs: its epochs overrides the profile's max_epochs
    old.write_text("student:\n  arch: mlp\n  epochs: 5\n")
    assert load_config(old).student.max_epochs == 5
    old.write_text("student:\n  epochs: 5\n  max_epochs: 6\n")
    with pytest.raises(ConfigError, match=r"student.epochs.*old name.*max_epochs"):
        load_config(old)
    for bad, key in (("student.patience=0", "patience"), ("student.min_delta=-0.1", "min_delta"),
                     ("student.lr_factor=1.5", "lr_factor"), ("student.lr_schedule=cosine", "lr_schedule"),
                     ("student.warmup_epochs=-1", "warmup_epochs"), ("student.lr_patience=10", "lr_patience"),
                     ("student.patiense=3", "patiense")):
        with pytest.raises(ConfigError, match=rf"student\.{key}.*--set"):
            load_config(repo / "hls_configs/mlp_kd.yml", [bad])


def test_epoch_curve_written_plotted_and_in_the_report(tmp_path):
    from trigger_kd.report.build import training_block, training_markdown
    from trigger_kd.train.plots import epoch_curve_plot

    hist = [{"epoch": e, "lr": 1e-3, "train_loss": 1 / e, "val_loss": 1 / e + 0.1, "val_auc": 0.9 + e / 100,
             "val_accuracy": 0.8, "seconds": e} for e in (1, 2, 3)]
    models = {"student": {"history": hist, "best_epoch": 3, "epochs": 3, "max_epochs": 50, "stopped": "max_epochs",
                          "lr_schedule": "plateau", "train_seconds": 3.0},
              "student_scratch": {"history": hist[:2], "best_epoch": 1, "epochs": 2, "max_epochs": 50,
                                  "stopped": "early stopping", "lr_schedule": "plateau", "train_seconds": 2.0}}
    student = tmp_path / STUDENT
    student.mkdir()
    EpochCurve(models=models).write(student / EPOCH_CURVE)
    epoch_curve_plot(models, student / EPOCH_CURVE_PLOT)
    assert json.loads((student / EPOCH_CURVE).read_text())["models"]["student"]["history"][2]["val_auc"] == 0.93
    assert (student / EPOCH_CURVE_PLOT).read_bytes()[:4] == b"\x89PNG"
    block = training_block(tmp_path)
    assert block["student"]["best_epoch"] == 3 and block["student"]["best_val_auc"] == 0.93
    assert block["student_scratch"]["best_val_auc"] == 0.91
    (tmp_path / EPOCH_CURVE_PLOT).write_bytes((student / EPOCH_CURVE_PLOT).read_bytes())
    md = "\n".join(training_markdown(block, tmp_path))
    assert "0.9300" in md and f"]({EPOCH_CURVE_PLOT})" in md and training_block(tmp_path / "none") is None
    assert "EBOPs" not in md  # a framework without a resource proxy: no column
    hist[2]["ebops"], hist[1]["ebops"] = 41234.4, 60000.0  # HGQ2: the kept epoch's EBOPs beside its AUC
    EpochCurve(models=models).write(student / EPOCH_CURVE)
    block = training_block(tmp_path)
    assert block["student"]["ebops_kept"] == 41234.4 and block["student_scratch"]["ebops_kept"] is None
    assert "| EBOPs (kept epoch) |" in "\n".join(training_markdown(block, tmp_path))


@pytest.mark.slow  # trains small students in both frameworks (TensorFlow included)
@pytest.mark.parametrize("framework", ["brevitas", "qkeras", "hgq"])
def test_real_student_keeps_its_best_validation_epoch(framework):
    if framework == "qkeras" and importlib.util.find_spec("qkeras") is None:
        pytest.skip("the QKeras extra is not installed")
    from trigger_kd.models.backend import student_backend
    from trigger_kd.train.feed import DistillFeed, LorentzJets

    rng = np.random.default_rng(1)
    c = rng.normal(size=(300, 6, 4)) * 50
    c[..., 0] = np.abs(c[..., 0]) + np.linalg.norm(c[..., 1:], axis=-1)
    y = (c[:, 0, 1] + 0.5 * c[:, 1, 2] > 0).astype(np.int64)
    s = StudentConfig(arch="mlp", framework=framework, n_particles=4, mlp_hidden=(8,), max_epochs=12, patience=2,
                      lr_patience=1, batch_size=50, lr=2e-2, seed=3)
    backend = student_backend(s)
    feed = DistillFeed(LorentzJets.from_constituents(c[:200], 4), y[:200], backend.inputs_from_features, None)
    model = backend.build(quantized=True)
    x_val = backend.inputs(c[200:])
    result = loops.fit(backend, model, feed, x_val, y[200:], s, DistillConfig(alpha=0.0), progress=False)
    aucs = [r["val_auc"] for r in result["history"]]
    assert result["best_val_auc"] == max(aucs) and aucs[result["best_epoch"] - 1] == max(aucs)
    ebops = [r.get("ebops") for r in result["history"]]
    assert all(e > 0 for e in ebops) if framework == "hgq" else not any(ebops)  # HGQ2's EBOPs, epoch by epoch
    if result["stopped"] != "max_epochs":
        assert result["epochs"] == result["best_epoch"] + s.patience
    again = loops.validation_scores(backend.predict(model, x_val), y[200:])["val_auc"]
    assert again == pytest.approx(result["best_val_auc"], abs=1e-12)  # the best epoch's weights are back


def test_a_backends_resource_proxy_is_in_every_epoch_row(monkeypatch):
    """HGQ2's EBOPs per epoch in the history (epoch_curve.json): how far the penalty has trimmed the model when
    the kept (best-validation) epoch was reached. Frameworks without one leave the column out."""
    result, _ = _fit(monkeypatch, [0.6, 0.7, 0.65], patience=3, lr_patience=2)
    assert all("ebops" not in row for row in result["history"])
    monkeypatch.setattr(_CountingBackend, "ebops", lambda self, model: 1000.0 - model["steps"])
    result, _ = _fit(monkeypatch, [0.6, 0.7, 0.65], patience=3, lr_patience=2)
    ebops = [row["ebops"] for row in result["history"]]
    assert len(ebops) == 3 and ebops[0] > ebops[1] > ebops[2]


def test_max_ebops_keeps_the_best_epoch_within_the_bound(monkeypatch):
    """student.max_ebops (HGQ2): an epoch above the bound is never kept, however good its AUC; early stopping
    counts from the first epoch within it (the penalty needs epochs to trim the model)."""
    monkeypatch.setattr(_CountingBackend, "ebops", lambda self, model: 1000.0 - 100 * model["steps"] / 2)
    # ebops by epoch (2 steps per epoch): 900, 800, 700, 600, 500, 400; bound 650: epochs 4.. only
    result, model = _fit(monkeypatch, [0.99, 0.98, 0.97, 0.80, 0.85, 0.84], patience=2, lr_patience=1,
                         framework="hgq", max_ebops=650.0)
    assert result["best_epoch"] == 5 and result["best_val_auc"] == 0.85 and result["max_ebops"] == 650.0
    assert model["steps"] == 10 and result["epochs"] == 6  # the kept weights: epoch 5's
    # none within: the deployed student is refused, naming the key; a comparison twin keeps its best, said so
    with pytest.raises(TriggerKDError, match=r"student.max_ebops=100: no epoch .* \(lowest 400 EBOPs at epoch 6\)"):
        _fit(monkeypatch, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], patience=2, lr_patience=1, framework="hgq", max_ebops=100.0)
    result, model = _fit(monkeypatch, [0.9, 0.95, 0.7, 0.6, 0.5, 0.4], patience=2, lr_patience=1, framework="hgq",
                         max_ebops=100.0, bound_required=False)
    assert result["best_epoch"] == 2 and model["steps"] == 4 and "kept the best of all" in result["stopped"]


def test_max_ebops_is_an_hgq_key():
    assert StudentConfig(framework="hgq", max_ebops=5e4).max_ebops == 5e4
    for bad in ({"framework": "brevitas", "max_ebops": 5e4}, {"framework": "hgq", "max_ebops": 0}):
        with pytest.raises(ValueError, match="max_ebops"):
            StudentConfig(**bad)
