"""Fast QAOA for QUBOs: the cost Hamiltonian is diagonal, so a layer is an elementwise phase and a mixer.

The cost vector C over all 2^n assignments is computed once (`qubo.all_energies`); a layer is
psi *= exp(-i gamma C), then RX(2 beta) on every qubit (exp(-i beta sum X), applied by the simulator's own
`gates.apply_layer`). `qaoa_state` / `qaoa_expectation` evaluate it with torch (complex128; complex64 inside
the optimizer loop); `QAOAOptimizer.fit` optimizes (gamma, beta) with scipy (COBYLA by default) from several
starts and returns the best angles and the final state's probabilities. Sampling them, on the exact state or
on a circuit backend, is `qlife.quantum.backends.QAOADimodSampler`. `qaoa_circuit` exports the same circuit
to qiskit: H on all qubits, P/CP phases for h_i x_i and J_ij x_i x_j, RX mixers; its statevector equals
`qaoa_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np
import torch
from qiskit.circuit import ParameterVector, QuantumCircuit
from scipy.optimize import minimize

from qlife.quantum.gates import apply_layer
from qlife.quantum.qubo import all_energies, as_binary, to_matrix


def _state(cost: torch.Tensor, gammas: Any, betas: Any, dtype: torch.dtype) -> torch.Tensor:
    n = int(np.log2(cost.numel()))
    psi = torch.full((1, cost.numel()), 2 ** (-n / 2), dtype=dtype)
    for g, b in zip(gammas, betas):
        psi = psi * torch.polar(torch.ones_like(cost), -float(g) * cost).to(dtype)
        rx = torch.tensor([[np.cos(b), -1j * np.sin(b)], [-1j * np.sin(b), np.cos(b)]], dtype=dtype)
        psi = apply_layer(psi, dict.fromkeys(range(n), rx), n)  # exp(-i b sum X) = RX(2b) on every qubit
    return psi[0]


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


@dataclass
class QAOAFit:
    gammas: np.ndarray  # in the QUBO's own energy units
    betas: np.ndarray
    expectation: float  # <C> of the final state
    nfev: int  # objective evaluations (each a circuit run with shots on hardware)
    probabilities: np.ndarray  # (2^n,) of the final state, exact


class QAOAOptimizer:
    """(gamma, beta) for a cost vector: scipy `optimizer` from a linear-ramp start plus random restarts."""

    def __init__(self, p: int = 2, restarts: int = 4, maxiter: int = 200, optimizer: str = "COBYLA",
                 seed: int | None = None, initial_point: Any = None):
        self.p, self.restarts, self.maxiter = p, restarts, maxiter
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

    def fit(self, energies: np.ndarray) -> QAOAFit:
        """Optimize on the energies of every assignment (`qubo.all_energies`)."""
        # standardize so the same angle ranges suit every problem; gamma = gamma' / std in the original units
        std = float(energies.std()) or 1.0
        angles, val, nfev = self.optimize((energies - energies.mean()) / std)
        gammas, betas = angles[: self.p] / std, angles[self.p :]
        psi = qaoa_state(energies, gammas, betas)
        return QAOAFit(gammas, betas, val * std + float(energies.mean()), nfev, psi.real**2 + psi.imag**2)
