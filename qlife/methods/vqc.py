"""VQC student (QD-LLM, Li et al. 2505.13205): frozen teacher features -> circuit -> classes.

features (standardised) -> Linear(in_dim, n_qubits) -> pi * tanh (angles kept in (-pi, pi)) -> angle
encoding (RY; re-uploaded before every layer if `reupload`) -> hardware-efficient ansatz (layers of
rotations + CNOTs) -> readout (<Z> per qubit, or the 2^n bitstring probabilities) -> Linear to classes.
It is an ordinary `nn.Module`, so `qlife.methods.distill.train_student` trains it on the batched torch
simulator with autograd. Evaluation as hardware would see it, always through `qlife.quantum.backends`:
`readout_backend` / `predict_backend` measure the readout on any circuit backend spec. On the analytic kinds
(statevector, `{kind: shots, shots: 1024}`) the exact probabilities come from the torch simulator and the
runner samples them (`CircuitRunner.sample`); every other kind (aer with noise, a real device's model,
hardware) runs the bound circuits. `export_qasm` writes the
trained circuit (weights bound, the n input angles left as `input float`); `circuit_from_qasm` reads it back
into qiskit.

Ablations (`VQCConfig.ablation`), so that one can tell whether the circuit does any of the work:
- "trained": the circuit's angles are trained with the projection and the head;
- "frozen": the circuit is kept at its random initialisation, only the projection and the head train;
- "twin": no circuit: the classical twin, the same projection, pi*tanh and head with the circuit replaced by the
  encoding's own readout on a product state, cos(angle) per qubit (<Z> of RY(a)|0>), or for the `probs` readout
  the product of cos^2(a/2) / sin^2(a/2) over qubits. It is what a near-identity circuit computes, classically.
`VQCConfig.projection` "pca" fixes the projection to the standardised features' first n_qubits principal
components (whitened, not trained), a variant where the circuit and the head must carry the learning;
`optimizer_groups` gives the circuit's angles their own learning rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from torch import nn

from qlife.quantum.circuits import variational_circuit
from qlife.quantum.resources import ResourceCount
from qlife.quantum.simulator import QuantumLayer, bind_weights, export_qasm3

READOUTS = ("expval", "probs")
ABLATIONS = ("trained", "frozen", "twin")
PROJECTIONS = ("learned", "pca")


@dataclass(frozen=True)
class VQCConfig:
    in_dim: int
    n_classes: int
    n_qubits: int = 8
    layers: int = 2
    rotations: tuple[str, ...] = ("ry", "rz")
    entanglement: str = "linear"
    reupload: bool = False
    readout: str = "expval"
    init_scale: float = 0.1  # circuit weights ~ U(-s, s) * pi: near identity, so <Z> starts as cos(angle)
    seed: int = 0
    ablation: str = "trained"  # trained | frozen (at initialisation) | twin (no circuit: cos of the angles)
    projection: str = "learned"  # learned | pca (fixed, whitened principal components)


class VQCStudent(nn.Module):
    """Projection -> variational circuit (torch simulator) -> head. `shots` (eval only): the readout sampled by a
    `shots` backend with that many shots (continuing the student's own RNG stream)."""

    def __init__(self, cfg: VQCConfig):
        super().__init__()
        for name, value, allowed in (("readout", cfg.readout, READOUTS), ("ablation", cfg.ablation, ABLATIONS),
                                     ("projection", cfg.projection, PROJECTIONS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.register_buffer("mean", torch.zeros(cfg.in_dim))
        self.register_buffer("std", torch.ones(cfg.in_dim))
        self.proj = nn.Linear(cfg.in_dim, cfg.n_qubits)
        self.vc = variational_circuit(cfg.n_qubits, cfg.layers, "angle", tuple(cfg.rotations), cfg.entanglement,
                                      "cx", cfg.reupload, "ry")
        self.circuit = QuantumLayer(self.vc, cfg.readout, init_scale=math.pi * cfg.init_scale, seed=cfg.seed)
        # where the circuit started: the weights' movement is reported against it (not saved with the model)
        self.register_buffer("initial_weights", self.circuit.weights.detach().clone(), persistent=False)
        if cfg.ablation != "trained":
            self.circuit.weights.requires_grad_(False)
        if cfg.projection == "pca":
            self.proj.requires_grad_(False)
        width = cfg.n_qubits if cfg.readout == "expval" else 2 ** cfg.n_qubits
        self.head = nn.Linear(width, cfg.n_classes)
        self.shots: int | None = None
        self._rng = np.random.default_rng(cfg.seed)

    def set_scaler(self, X: np.ndarray) -> None:
        """Standardisation from the training features; with projection "pca" also the fixed projection: the
        first n_qubits principal components of the standardised features, scaled to unit variance."""
        self.mean.copy_(torch.as_tensor(X.mean(0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(X.std(0) + 1e-6, dtype=torch.float32))
        if self.cfg.projection == "pca":
            from sklearn.decomposition import PCA

            z = (np.asarray(X, dtype=np.float64) - X.mean(0)) / (X.std(0) + 1e-6)
            k = self.cfg.n_qubits
            if min(z.shape) < k:
                raise ValueError(f"projection 'pca' needs at least {k} feature dimensions and rows, got {X.shape}")
            pca = PCA(k, whiten=True, svd_solver="full").fit(z)  # unit-variance components of z (z is centred)
            weight = pca.components_ / np.sqrt(np.maximum(pca.explained_variance_, 1e-18))[:, None]
            with torch.no_grad():
                self.proj.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                self.proj.bias.zero_()

    def optimizer_groups(self, lr: float, circuit_lr: float | None = None) -> list[dict]:
        """Adam parameter groups: the circuit's angles at `circuit_lr` (default `lr`), the rest at `lr`."""
        circuit = [p for p in self.circuit.parameters() if p.requires_grad]
        rest = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("circuit.")]
        groups = [{"params": rest, "lr": lr}] if rest else []
        return groups + ([{"params": circuit, "lr": circuit_lr or lr}] if circuit else [])

    def twin_readout(self, angles: torch.Tensor) -> torch.Tensor:
        """The classical twin: the encoding's readout on a product state, no ansatz. expval: cos(a) per qubit;
        probs: prod_q (cos^2(a_q/2) if bit q is 0 else sin^2(a_q/2)) over the 2^n basis states."""
        if self.cfg.readout == "expval":
            return torch.cos(angles)
        p0 = torch.cos(angles / 2) ** 2  # (B, n): P(bit q = 0)
        bits = torch.as_tensor((np.arange(2 ** self.cfg.n_qubits)[:, None] >> np.arange(self.cfg.n_qubits)) & 1,
                               dtype=angles.dtype)  # (2^n, n), bit q of the index is qubit q
        return torch.exp((torch.log(p0.clamp_min(1e-12))[:, None, :] * (1 - bits)
                          + torch.log((1 - p0).clamp_min(1e-12))[:, None, :] * bits).sum(-1))

    def weight_movement(self) -> dict[str, float]:
        """How far training moved the circuit's angles from their initialisation."""
        delta = (self.circuit.weights.detach() - self.initial_weights).double()
        init = float(self.initial_weights.double().norm())
        return {"l2": float(delta.norm()), "max_abs": float(delta.abs().max()) if delta.numel() else 0.0,
                "relative": float(delta.norm()) / init if init else float("nan"), "initial_l2": init}

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        """The circuit's input angles (B, n_qubits): the learned projection squashed into (-pi, pi)."""
        return math.pi * torch.tanh(self.proj((x - self.mean) / self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.ablation == "twin":
            return self.head(self.twin_readout(self.angles(x)))
        if self.shots and not self.training:
            from qlife.quantum.backends import as_runner

            probs = self.circuit.sim.probs(self.angles(x), self.circuit.weights).detach().numpy()
            freq = as_runner({"kind": "shots", "shots": self.shots}, "student.shots").sample_probabilities(
                probs, self._rng)
            return self.head(torch.as_tensor(readout_from_frequencies(freq, self.cfg.readout), dtype=torch.float32))
        return self.head(self.circuit(self.angles(x)))

    def config(self) -> dict:
        return {**asdict(self.cfg), "rotations": list(self.cfg.rotations)}

    @classmethod
    def from_config(cls, cfg: dict) -> VQCStudent:
        names = VQCConfig.__dataclass_fields__
        kw = {k: v for k, v in cfg.items() if k in names}
        kw["rotations"] = tuple(kw.get("rotations", ("ry", "rz")))
        return cls(VQCConfig(**kw))


def parameter_split(student: VQCStudent) -> dict[str, int]:
    """Trainable parameters: classical (projection + head) and quantum (circuit angles; 0 when frozen or twin)."""
    quantum = student.circuit.weights.numel() if student.circuit.weights.requires_grad else 0
    classical = sum(p.numel() for name, p in student.named_parameters()
                    if p.requires_grad and not name.startswith("circuit."))
    return {"classical": classical, "quantum": quantum, "total": classical + quantum}


def training_resources(student: VQCStudent, structure: dict, epochs: int, n_train: int, n_val: int,
                       shots: int) -> ResourceCount:
    """Circuits hardware would need for the same training: per example and epoch one forward circuit plus
    two parameter-shift circuits per circuit weight and per input angle (for the projection's gradient),
    and one circuit per validation example and epoch."""
    cfg = student.cfg
    angles = cfg.n_qubits * (cfg.layers if cfg.reupload else 1)
    per_example = 1 + 2 * (student.circuit.weights.numel() + angles)
    circuits = epochs * (n_train * per_example + n_val)
    return ResourceCount.for_circuits("statevector", None, circuits, shots, "cpu", True, structure)


# --- readout from samples ---------------------------------------------------------------------------


def z_signs(n_qubits: int) -> np.ndarray:
    """(2^n, n): +1/-1 eigenvalue of Z_q on each basis state (bit q of the index is qubit q)."""
    bits = (np.arange(2**n_qubits)[:, None] >> np.arange(n_qubits)[None, :]) & 1
    return 1.0 - 2.0 * bits


def readout_from_frequencies(freq: np.ndarray, readout: str) -> np.ndarray:
    """Bitstring frequencies (B, 2^n) -> the head's input: <Z_q> estimates, or the frequencies themselves."""
    if readout == "probs":
        return freq
    return freq @ z_signs(int(np.log2(freq.shape[1])))


@torch.no_grad()
def exact_probs(student: VQCStudent, X: np.ndarray, batch_size: int = 512) -> np.ndarray:
    student.eval()
    x = torch.as_tensor(X, dtype=torch.float32)
    return torch.cat([student.circuit.sim.probs(student.angles(x[i:i + batch_size]), student.circuit.weights)
                      for i in range(0, len(x), batch_size)]).double().numpy()


@torch.no_grad()
def head_logits(student: VQCStudent, readout: np.ndarray) -> np.ndarray:
    return student.head(torch.as_tensor(readout, dtype=torch.float32)).numpy()


@torch.no_grad()
def input_angles(student: VQCStudent, X: np.ndarray) -> np.ndarray:
    student.eval()
    return student.angles(torch.as_tensor(X, dtype=torch.float32)).double().numpy()


# --- hardware-facing circuits: aer, QASM ------------------------------------------------------------


def trained_circuit(student: VQCStudent) -> QuantumCircuit:
    """The circuit with trained weights bound; the n input angles stay free parameters."""
    return bind_weights(student.vc, student.circuit.weights.detach().double())


def export_qasm(student: VQCStudent) -> str:
    return export_qasm3(student.vc, student.circuit.weights.detach().double())


def readout_backend(student: VQCStudent, X: np.ndarray, backend: Any, param: str = "backend",
                    structure: dict | None = None) -> tuple[np.ndarray, ResourceCount]:
    """The trained circuit, measured on `backend` (a spec or runner) for each input: (head inputs (B, width),
    ResourceCount). statevector / shots: the exact probabilities from the torch simulator, sampled by the runner
    (its seed; `structure`, e.g. `circuit_resources(student.vc.circuit)`, sizes the resources, default the
    trained circuit's); other kinds: the circuit transpiled once for the backend and bound per input."""
    from qlife.quantum.backends import as_runner

    runner = as_runner(backend, param)
    qc = trained_circuit(student)
    if runner.analytic:
        result = runner.sample(exact_probs(student, X), None if structure is not None else qc, structure)
    else:
        qc.measure_all()
        result = runner.run(qc, input_angles(student, X))
    return readout_from_frequencies(result.frequencies, student.cfg.readout), result.resources


def predict_backend(student: VQCStudent, X: np.ndarray, backend: Any, param: str = "backend",
                    structure: dict | None = None) -> tuple[np.ndarray, ResourceCount]:
    """(logits, ResourceCount) with the readout measured on `backend` (see `readout_backend`)."""
    readout, resources = readout_backend(student, X, backend, param, structure)
    return head_logits(student, readout), resources


def circuit_from_qasm(text: str) -> QuantumCircuit:
    """OpenQASM 3 -> QuantumCircuit, through `qiskit.qasm3.loads` (qiskit-qasm3-import, a pinned dependency)."""
    from qiskit import qasm3

    return qasm3.loads(text)


def qasm_readout(text: str, angles: np.ndarray, readout: str = "expval") -> np.ndarray:
    """Re-import the exported QASM and simulate it with qiskit's `Statevector` for each row of angles."""
    from qiskit.quantum_info import Statevector

    qc = circuit_from_qasm(text)
    params = sorted(qc.parameters, key=lambda p: int(re.search(r"(\d+)", p.name).group(1)))
    freq = np.stack([Statevector(qc.assign_parameters(dict(zip(params, row)))).probabilities()
                     for row in np.atleast_2d(angles)])
    return readout_from_frequencies(freq, readout)
