"""Fast QAOA for QUBOs: the cost Hamiltonian is diagonal, so a layer is an elementwise phase and a mixer.

The cost vector C over all 2^n assignments is computed once (`qubo.all_energies`); a layer is
psi *= exp(-i gamma C), then RX(2 beta) on every qubit (exp(-i beta sum X)). `qaoa_state` /
`qaoa_expectation` evaluate it with torch (complex128; complex64 inside the optimizer loop; the mixer
as Kronecker blocks of <= 6 qubits, one matmul each); `QAOASampler` optimizes (gamma, beta) with scipy
(COBYLA by default) from several starts and samples `shots` bitstrings from the best state, returning them
as a dimod SampleSet (lowest energy first). `qaoa_circuit` exports the same circuit to qiskit: H on all
qubits, P/CP phases for h_i x_i and J_ij x_i x_j, RX mixers; its statevector equals `qaoa_state`.
"""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np
import torch
from qiskit.circuit import ParameterVector, QuantumCircuit
from scipy.optimize import minimize

from qlife.quantum.errors import QuantumBackendError
from qlife.quantum.qubo import _bits, all_energies, as_binary, to_matrix
from qlife.quantum.resources import ResourceCount, circuit_resources
from qlife.quantum.simulator import MAX_QUBITS

_BLOCK = 6  # the mixer acts on blocks of <= 6 qubits: one (64 x 64) matmul instead of 6 elementwise passes


def _state(cost: torch.Tensor, gammas: Any, betas: Any, dtype: torch.dtype) -> torch.Tensor:
    n = int(np.log2(cost.numel()))
    psi = torch.full((cost.numel(),), 2 ** (-n / 2), dtype=dtype)
    for g, b in zip(gammas, betas):
        psi = psi * torch.polar(torch.ones_like(cost), -float(g) * cost).to(dtype)
        rx = torch.tensor([[np.cos(b), -1j * np.sin(b)], [-1j * np.sin(b), np.cos(b)]], dtype=dtype)
        for lo in range(0, n, _BLOCK):  # exp(-i b sum X) = RX(2b) on every qubit, as Kronecker blocks
            hi = min(n, lo + _BLOCK)
            m = rx
            for _ in range(hi - lo - 1):
                m = torch.kron(m, rx)
            if lo == 0:
                psi = (psi.view(-1, 2**hi) @ m.T).reshape(-1)
            else:
                psi = torch.matmul(m, psi.view(-1, 2 ** (hi - lo), 2**lo)).reshape(-1)
    return psi


def qaoa_state(
    cost: np.ndarray, gammas: Any, betas: Any, dtype: torch.dtype = torch.complex128
) -> np.ndarray:
    """|gamma, beta> = prod_k [mixer(beta_k) phase(gamma_k)] |+>^n for the cost vector (length 2^n)."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    return _state(torch.as_tensor(cost, dtype=real), gammas, betas, dtype).numpy()


def qaoa_expectation(bqm: dimod.BinaryQuadraticModel, gammas: Any, betas: Any) -> float:
    """<C> of the QAOA state at the given angles (same convention as `qaoa_circuit`)."""
    cost = all_energies(as_binary(bqm))
    psi = qaoa_state(cost, np.atleast_1d(gammas), np.atleast_1d(betas))
    return float(np.abs(psi) ** 2 @ cost)


def qaoa_circuit(
    bqm: dimod.BinaryQuadraticModel, p: int, gammas: Any = None, betas: Any = None
) -> QuantumCircuit:
    """The QAOA circuit as qiskit gates; unbound ParameterVectors "γ"/"β" when angles are not given."""
    h, j, offset = to_matrix(as_binary(bqm))
    n = len(h)
    gammas = ParameterVector("γ", p) if gammas is None else np.atleast_1d(gammas)
    betas = ParameterVector("β", p) if betas is None else np.atleast_1d(betas)
    qc = QuantumCircuit(n, name="qaoa")
    qc.h(range(n))
    for k in range(p):
        for i in range(n):
            if h[i] != 0:
                qc.p(-gammas[k] * h[i], i)  # exp(-i gamma h_i x_i)
        for a, b in zip(*np.nonzero(j)):
            qc.cp(-gammas[k] * j[a, b], int(a), int(b))  # exp(-i gamma J_ab x_a x_b)
        qc.rx(2 * betas[k], range(n))
    qc.global_phase = -sum(gammas) * offset  # makes the statevector equal to qaoa_state exactly
    return qc


class QAOASampler:
    """QAOA on the fast simulator. `sample(bqm)` -> SampleSet of `shots` samples with the angles in info."""

    def __init__(
        self,
        p: int = 2,
        restarts: int = 4,
        maxiter: int = 200,
        shots: int = 1024,
        optimizer: str = "COBYLA",
        seed: int | None = None,
        initial_point: Any = None,
        num_reads: int | None = None,  # dimod-style alias of shots
    ):
        shots = shots if num_reads is None else num_reads
        self.p, self.restarts, self.maxiter, self.shots = p, restarts, maxiter, shots
        self.optimizer, self.seed, self.initial_point = optimizer, seed, initial_point

    def _starts(self, rng: np.random.Generator) -> list[np.ndarray]:
        ramp = (np.arange(self.p) + 0.5) / self.p  # linear ramp: adiabatic-like schedule
        starts = [np.concatenate([0.8 * ramp, 0.8 * (1 - ramp)])]
        if self.initial_point is not None:
            starts = [np.asarray(self.initial_point, dtype=float)]
        while len(starts) < self.restarts:
            starts.append(np.concatenate([rng.uniform(0, 1.5, self.p), rng.uniform(0, np.pi / 2, self.p)]))
        return starts

    def optimize(self, cost: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Best (gamma', beta) for the standardized cost, its expectation, and total evaluations."""
        rng = np.random.default_rng(self.seed)
        best, best_val, nfev = None, np.inf, 0
        c32 = torch.as_tensor(cost, dtype=torch.float32)  # complex64 during the search: ~1e-7 relative error
        for x0 in self._starts(rng):

            def f(t: np.ndarray) -> float:
                psi = _state(c32, t[: self.p], t[self.p :], torch.complex64)
                return float((psi.real**2 + psi.imag**2) @ c32)

            res = minimize(f, x0, method=self.optimizer, options={"maxiter": self.maxiter})
            nfev += int(res.nfev)
            if res.fun < best_val:
                best, best_val = res.x, float(res.fun)
        return best, best_val, nfev

    def sample(self, bqm: dimod.BinaryQuadraticModel, **_: Any) -> dimod.SampleSet:
        bqm = as_binary(bqm)
        n = len(bqm)
        if n > MAX_QUBITS:
            raise QuantumBackendError(
                f"QAOA statevector limit is {MAX_QUBITS} qubits, the QUBO has {n} variables"
            )
        energies = all_energies(bqm)
        # standardize so the same angle ranges suit every problem; gamma = gamma' / std in the original units
        std = float(energies.std()) or 1.0
        cost = (energies - energies.mean()) / std
        angles, val, nfev = self.optimize(cost)
        gammas, betas = angles[: self.p] / std, angles[self.p :]
        psi = qaoa_state(energies, gammas, betas)
        probs = psi.real**2 + psi.imag**2
        rng = np.random.default_rng(None if self.seed is None else self.seed + 1)
        idx, counts = np.unique(
            rng.choice(len(probs), size=self.shots, p=probs / probs.sum()), return_counts=True
        )
        info = {
            "gammas": gammas.tolist(),
            "betas": betas.tolist(),
            "expectation": val * std + energies.mean(),
            "nfev": nfev,
            "p": self.p,
            "p_best_sample": float(probs[idx[np.argmin(energies[idx])]]),
            "most_probable": int(np.argmax(probs)),
            "resources": self._resources(bqm, nfev),
        }
        return dimod.SampleSet.from_samples(
            (_bits(idx, n), list(bqm.variables)),
            dimod.BINARY,
            energies[idx],
            info=info,
            num_occurrences=counts,
        )

    def _resources(self, bqm: dimod.BinaryQuadraticModel, nfev: int) -> ResourceCount:
        # on hardware every objective evaluation is a circuit run with `shots` shots, plus the final sampling
        structure = circuit_resources(qaoa_circuit(bqm, self.p))
        return ResourceCount.for_circuits("qaoa", None, nfev + 1, self.shots, "cpu", True, structure)
