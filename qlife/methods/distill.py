"""Knowledge distillation on frozen teacher features: loss, students, training loop.

Loss (Hinton et al.): (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)).
Any `nn.Module` mapping features to logits can be the student (the MLP here, the VQC student of
`qlife.methods.vqc`); the loop trains with Adam on mini-batches and keeps the weights of the best validation accuracy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      alpha: float, temperature: float) -> torch.Tensor:
    ce = F.cross_entropy(student_logits, labels)
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                  reduction="batchmean", log_target=True)
    return (1 - alpha) * ce + alpha * t * t * kl


class MLPStudent(nn.Module):
    """Standardised features -> hidden (ReLU) -> classes; hidden=0 gives a linear student."""

    def __init__(self, in_dim: int, hidden: int, n_classes: int, seed: int = 0):
        super().__init__()
        self.in_dim, self.hidden, self.n_classes = in_dim, hidden, n_classes
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        with torch.random.fork_rng():  # its initial weights from `seed`, not from whatever ran before in the process
            torch.manual_seed(seed)
            layers = [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)] if hidden else \
                [nn.Linear(in_dim, n_classes)]
            self.net = nn.Sequential(*layers)

    def set_scaler(self, X: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(X.mean(0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(X.std(0) + 1e-6, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "n_classes": self.n_classes}


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def mlp_hidden_for_budget(in_dim: int, n_classes: int, budget: int) -> int:
    """Largest hidden width whose MLP has at most `budget` parameters (0 = linear if none fits)."""
    h = (budget - n_classes) // (in_dim + 1 + n_classes)
    return max(0, int(h))


@dataclass
class DistillResult:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)


def train_student(student: nn.Module, data: dict[str, np.ndarray], alpha: float, temperature: float,
                  epochs: int, lr: float, batch_size: int, patience: int, seed: int,
                  circuit_lr: float | None = None) -> DistillResult:
    """data: {train,val}_{x,logits,y}. Early stopping on validation accuracy; best weights restored. A student
    with `optimizer_groups` (the VQC) gets its circuit's angles trained at `circuit_lr` (default `lr`)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t = {k: torch.as_tensor(v, dtype=torch.long if k.endswith("_y") else torch.float32)
         for k, v in data.items() if k.startswith(("train_", "val_"))}
    groups = (student.optimizer_groups(lr, circuit_lr) if hasattr(student, "optimizer_groups") else
              [{"params": [p for p in student.parameters() if p.requires_grad], "lr": lr}])
    opt = torch.optim.Adam(groups, lr=lr)
    best = DistillResult(-1, -1.0)
    best_state, waited = None, 0
    for epoch in range(epochs):
        student.train()
        losses = []
        for idx in torch.randperm(len(t["train_y"]), generator=gen).split(batch_size):
            loss = distillation_loss(student(t["train_x"][idx]), t["train_logits"][idx], t["train_y"][idx],
                                     alpha, temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val_acc = accuracy(student, data["val_x"], data["val_y"])
        best.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_accuracy": val_acc})
        if val_acc > best.best_val_accuracy:
            best.best_epoch, best.best_val_accuracy = epoch, val_acc
            best_state, waited = copy.deepcopy(student.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        student.load_state_dict(best_state)
    student.eval()
    return best


@torch.no_grad()
def predict(student: nn.Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    student.eval()
    x = torch.as_tensor(X, dtype=torch.float32)
    return torch.cat([student(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(student: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float((predict(student, X).argmax(1) == np.asarray(y)).mean())
