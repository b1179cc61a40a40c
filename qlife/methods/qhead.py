"""Hybrid quantum classification head (after IonQ's hybrid fine-tuning, arXiv 2504.08732).

pooled encoder output (B, h) -> Linear(h, q) -> pi * tanh (angles in (-pi, pi)) -> re-uploading circuit on q
qubits: `layers` x (RY(angle_i) on every qubit, then trainable rotations, then an entangling layer) -> <Z_i> per
qubit -> Linear(q, classes). Simulated by the batched torch statevector simulator (qlife.quantum.simulator),
so it trains end to end with the encoder by autograd. It replaces a sequence classifier's `classifier`
module (qlife.classifiers.set_head), its config goes into the model config (`qlife_quantum_head`) and its weights
into the model's safetensors, so `qlife.classifiers.load_teacher` rebuilds it for deploy, serving and the registry.

The circuit's weights can be trained by AdamW (with the classical parameters, at their own learning rate) or
by quantum natural gradient (qlife.quantum.qng), and frozen at initialisation for the ablation that asks
whether the circuit learns anything: training lives in qlife.methods.finetune (`finetune` with the encoder,
`fit_head` on fixed features); `qlife.classifiers.quantum_head_of` finds the head in a classifier.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from qiskit import QuantumCircuit
from torch import nn

from qlife.quantum.circuits import VariationalCircuit, variational_circuit
from qlife.quantum.simulator import QuantumLayer

ROTATIONS = ("rx", "ry", "rz")
ENTANGLEMENTS = ("linear", "ring", "full")


@dataclass(frozen=True)
class QuantumHeadConfig:
    qubits: int = 4
    layers: int = 2
    entanglement: str = "ring"
    rotations: tuple[str, ...] = ("ry", "rz")
    init_scale: float = 0.1  # circuit weights ~ U(-1, 1) * init_scale * pi (near identity)
    seed: int = 0
    angle_scale: float = 0.25  # input angles = angle_scale * pi * tanh(projection)
    # the qubits' state before the first encoding: zero (|0>: <Z> = cos(angle), even: the sign of the
    # projection is lost) | plus (H first, |+>: <Z> = -sin(angle), odd)
    start: str = "plus"

    def __post_init__(self) -> None:
        if not 1 <= self.qubits <= 16:
            raise ValueError(f"quantum head: qubits must be in 1..16 (a statevector per example), got {self.qubits}")
        if self.layers < 1:
            raise ValueError(f"quantum head: layers must be >= 1, got {self.layers}")
        if self.entanglement not in ENTANGLEMENTS:
            raise ValueError(f"quantum head: entanglement must be one of {ENTANGLEMENTS}, got {self.entanglement!r}")
        if self.start not in ("zero", "plus"):
            raise ValueError(f"quantum head: start must be zero or plus, got {self.start!r}")
        if not self.rotations or any(r not in ROTATIONS for r in self.rotations):
            raise ValueError(f"quantum head: rotations must be a non-empty subset of {ROTATIONS}, "
                             f"got {list(self.rotations)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rotations": list(self.rotations)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantumHeadConfig:
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "rotations" in kw:
            kw["rotations"] = tuple(kw["rotations"])
        return cls(**kw)


def head_circuit(cfg: QuantumHeadConfig) -> VariationalCircuit:
    """The head's circuit: (H on every qubit if cfg.start is plus), then cfg.layers x (RY(x_i) re-upload,
    cfg.rotations, CNOTs on the cfg.entanglement pairs)."""
    vc = variational_circuit(cfg.qubits, cfg.layers, "angle", tuple(cfg.rotations), cfg.entanglement, "cx", True,
                             "ry")
    if cfg.start == "zero":
        return vc
    qc = QuantumCircuit(cfg.qubits, name="qhead")
    qc.h(range(cfg.qubits))
    return VariationalCircuit(qc.compose(vc.circuit), vc.inputs, vc.weights)


class QuantumHead(nn.Module):
    """(B, in_dim) -> (B, n_classes) through a re-uploading circuit on cfg.qubits qubits."""

    def __init__(self, in_dim: int, n_classes: int, cfg: QuantumHeadConfig = QuantumHeadConfig()):
        super().__init__()
        self.cfg = cfg
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)  # the same initial head for a given seed, whatever ran before
        self.proj = nn.Linear(in_dim, cfg.qubits)
        self.vc = head_circuit(cfg)
        self.circuit = QuantumLayer(self.vc, "expval", init_scale=math.pi * cfg.init_scale, seed=cfg.seed)
        self.out = nn.Linear(cfg.qubits, n_classes)
        torch.random.set_rng_state(gen_state)

    def angles(self, h: torch.Tensor) -> torch.Tensor:
        """The circuit's input angles (B, qubits), re-uploaded before every layer."""
        return self.cfg.angle_scale * math.pi * torch.tanh(self.proj(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., n_classes): a decoder's classifier applies its head to every token (then keeps
        the last real one), so leading dimensions are flattened into the circuit's batch."""
        flat = h.reshape(-1, h.shape[-1])
        return self.out(self.circuit(self.angles(flat)).to(h.dtype)).reshape(*h.shape[:-1], -1)

    def freeze_circuit(self) -> None:
        self.circuit.weights.requires_grad_(False)


def parameter_split(module: nn.Module) -> dict[str, int]:
    """Trainable parameters of a model (or a head) by part: encoder, classical head, quantum circuit."""
    out = {"encoder": 0, "head_classical": 0, "head_quantum": 0}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("circuit.weights"):
            out["head_quantum"] += p.numel()
        elif name.split(".")[0] in ("classifier", "score") or not hasattr(module, "base_model"):
            out["head_classical"] += p.numel()
        else:
            out["encoder"] += p.numel()
    out["head"] = out["head_classical"] + out["head_quantum"]
    out["total"] = out["head"] + out["encoder"]
    return out


def mlp_hidden_matching(params: int, in_dim: int, n_classes: int) -> int:
    """The hidden width of an MLP head (in -> h -> classes, biases) with about `params` parameters."""
    return max(1, round((params - n_classes) / (in_dim + 1 + n_classes)))


def mlp_head(in_dim: int, hidden: int, n_classes: int, dropout: float = 0.1, seed: int = 0) -> nn.Module:
    """The mlp head of qlife.classifiers.set_head as a standalone module (Linear -> GELU -> Dropout -> Linear)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
