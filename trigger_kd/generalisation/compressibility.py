"""Compressibility of a teacher: how well and how fast a fixed reference student learns its logits.

As in Glowacki (Fig. 9): the reference student is trained with the MSE between its logits and
the teacher's (no labels); the MSE on the validation jets after every epoch is the curve. The
student, its inputs, optimiser and seed are fixed here, so curves of different teachers on the
same jets compare teachers only.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError

REFERENCE = {"n_particles": 16, "hidden": (64, 64, 32), "lr": 1e-3, "batch_size": 256, "seed": 0,
             "inputs": "student features (pT/pT_jet, d_eta, d_phi, mass) of the 16 leading constituents"}


def reference_student():
    """The fixed float MLP: 16 x 4 features -> 64 -> 64 -> 32 -> 2 logits, ReLU."""
    import torch

    torch.manual_seed(REFERENCE["seed"])
    sizes = (REFERENCE["n_particles"] * 4, *REFERENCE["hidden"])
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], 2))


def reference_inputs(constituents: np.ndarray) -> np.ndarray:
    from ..data.features import student_features

    f = student_features(constituents, REFERENCE["n_particles"])
    return np.ascontiguousarray(f.reshape(len(f), -1), dtype=np.float32)


def distillation_curve(x_train: np.ndarray, t_train: np.ndarray, x_val: np.ndarray, t_val: np.ndarray,
                       epochs: int = 20) -> dict:
    """Train the reference student on the teacher logits with MSE; the MSE per epoch."""
    import torch

    if epochs < 1:
        raise TriggerKDError(f"compressibility needs at least one epoch, got {epochs}")
    if len(x_train) != len(t_train) or len(x_val) != len(t_val) or len(x_train) == 0 or len(x_val) == 0:
        raise TriggerKDError(f"compressibility: {len(x_train)} training inputs for {len(t_train)} teacher logits, "
                             f"{len(x_val)} validation inputs for {len(t_val)}: rerun the teacher stage")
    model = reference_student()
    opt = torch.optim.Adam(model.parameters(), lr=REFERENCE["lr"])
    xt, tt = torch.from_numpy(np.asarray(x_train, np.float32)), torch.from_numpy(np.asarray(t_train, np.float32))
    xv, tv = torch.from_numpy(np.asarray(x_val, np.float32)), torch.from_numpy(np.asarray(t_val, np.float32))
    gen = torch.Generator().manual_seed(REFERENCE["seed"])
    bs = REFERENCE["batch_size"]

    def val_mse() -> float:
        model.eval()
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(xv), tv))

    curve = [{"epoch": 0, "train_mse": None, "val_mse": val_mse()}]
    for epoch in range(1, epochs + 1):
        model.train()
        order, total = torch.randperm(len(xt), generator=gen), 0.0
        for i in range(0, len(xt), bs):
            idx = order[i:i + bs]
            loss = torch.nn.functional.mse_loss(model(xt[idx]), tt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        curve.append({"epoch": epoch, "train_mse": total / len(xt), "val_mse": val_mse()})
    return {
        "curve": curve,
        "final_val_mse": curve[-1]["val_mse"],
        "teacher_logit_variance": float(np.var(t_val)),
        "n_train_jets": int(len(x_train)),
        "n_val_jets": int(len(x_val)),
        "reference_student": {**REFERENCE, "hidden": list(REFERENCE["hidden"]),
                              "n_parameters": int(sum(p.numel() for p in model.parameters()))},
    }
