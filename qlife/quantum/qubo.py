"""QUBO model helpers and solvers behind one dimod-style interface: `sample(bqm) -> dimod.SampleSet`.

The model is a binary `dimod.BinaryQuadraticModel` (SPIN models are converted). `solve(bqm, solver, seed,
**options) -> QuboResult` runs one of `SOLVERS`:
  exact  brute force over all 2^n assignments in numpy (n <= 24)
  qaoa   fast QAOA (`qlife.quantum.qaoa`): diagonal-phase statevector, any depth p, restarts
  sa     dwave-samplers SimulatedAnnealingSampler      tabu  dwave-samplers TabuSampler
  dwave  Leap QPU via dwave-system (lazy import; needs DWAVE_API_TOKEN)
Helpers: `k_hot_penalty` / `one_hot_penalty`, `from_quadratic_program`, `from_matrix`, `scale`/`normalize`,
`all_energies`. Variable order everywhere is `list(bqm.variables)`; bit i of a basis index is variable i.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import dimod
import numpy as np

from qlife.quantum.errors import QuantumBackendError, require_env
from qlife.quantum.resources import ResourceCount, anneal_qpu_seconds, energy_kwh

EXACT_MAX_VARIABLES = 24
SOLVERS = ("exact", "qaoa", "sa", "tabu", "dwave")


class Sampler(Protocol):
    """dimod's sampler shape: every solver takes a BQM and returns a SampleSet (lowest energy first)."""

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet: ...


@dataclass
class QuboResult:
    sample: dict[Hashable, int]
    x: np.ndarray  # the sample in `list(bqm.variables)` order
    energy: float
    solver: str
    wall_s: float
    resources: ResourceCount
    num_reads: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    sampleset: dimod.SampleSet | None = field(default=None, repr=False)

    def gap(self, best_energy: float) -> float:
        """Relative gap to a reference (e.g. exact) energy: (E - E*) / |E*| (0 when E* is 0 and E == E*)."""
        return (self.energy - best_energy) / max(abs(best_energy), 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy": self.energy,
            "solver": self.solver,
            "wall_s": self.wall_s,
            "num_reads": self.num_reads,
            "x": self.x.tolist(),
            "resources": self.resources.to_dict(),
            "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str, list, bool))},
        }


# --- model helpers -----------------------------------------------------------------------------------


def as_binary(bqm: dimod.BinaryQuadraticModel) -> dimod.BinaryQuadraticModel:
    return bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, inplace=False)


def from_matrix(q: np.ndarray, offset: float = 0.0) -> dimod.BinaryQuadraticModel:
    """x^T Q x + offset over binary x (Q need not be symmetric; its diagonal is linear since x^2 = x)."""
    q = np.asarray(q, dtype=float)
    return dimod.BinaryQuadraticModel(
        np.diag(q).copy(), np.triu(q, 1) + np.tril(q, -1).T, offset, dimod.BINARY
    )


def to_matrix(bqm: dimod.BinaryQuadraticModel) -> tuple[np.ndarray, np.ndarray, float]:
    """(h, J upper-triangular, offset) in `list(bqm.variables)` order."""
    bqm = as_binary(bqm)
    lin, (row, col, quad), offset = bqm.to_numpy_vectors(variable_order=list(bqm.variables))
    n = len(lin)
    j = np.zeros((n, n))
    np.add.at(j, (np.minimum(row, col), np.maximum(row, col)), quad)
    return np.asarray(lin, dtype=float), j, float(offset)


def k_hot_penalty(variables: Iterable[Hashable], k: int, strength: float) -> dimod.BinaryQuadraticModel:
    """strength * (sum x - k)^2 as a BQM: zero exactly on assignments with k ones. Add it to a model."""
    v = list(variables)
    linear = {x: strength * (1 - 2 * k) for x in v}
    quadratic = {(a, b): 2.0 * strength for i, a in enumerate(v) for b in v[i + 1 :]}
    return dimod.BinaryQuadraticModel(linear, quadratic, strength * k * k, dimod.BINARY)


def one_hot_penalty(variables: Iterable[Hashable], strength: float) -> dimod.BinaryQuadraticModel:
    return k_hot_penalty(variables, 1, strength)


def scale(bqm: dimod.BinaryQuadraticModel, factor: float) -> dimod.BinaryQuadraticModel:
    out = bqm.copy()
    out.scale(factor)
    return out


def normalize(bqm: dimod.BinaryQuadraticModel) -> tuple[dimod.BinaryQuadraticModel, float]:
    """Scale so the largest |bias| is 1; returns (scaled model, factor applied). Energies scale by factor."""
    biases = [abs(b) for b in bqm.linear.values()] + [abs(b) for b in bqm.quadratic.values()]
    factor = 1.0 / max(max(biases, default=1.0), 1e-12)
    return scale(bqm, factor), factor


def from_quadratic_program(qp: Any, penalty: float | None = None) -> dimod.BinaryQuadraticModel:
    """qiskit-optimization QuadraticProgram -> binary BQM (constraints become penalties, max -> min)."""
    from qiskit_optimization.converters import QuadraticProgramToQubo

    qubo = QuadraticProgramToQubo(penalty=penalty).convert(qp)
    sign = -1.0 if qubo.objective.sense.name == "MAXIMIZE" else 1.0
    names = [v.name for v in qubo.variables]
    bqm = dimod.BinaryQuadraticModel(
        {n: 0.0 for n in names}, {}, sign * qubo.objective.constant, dimod.BINARY
    )
    for name, c in qubo.objective.linear.to_dict(use_name=True).items():
        bqm.add_linear(name, sign * c)
    for (a, b), c in qubo.objective.quadratic.to_dict(use_name=True).items():
        if a == b:
            bqm.add_linear(a, sign * c)
        else:
            bqm.add_quadratic(a, b, sign * c)
    return bqm


def all_energies(bqm: dimod.BinaryQuadraticModel) -> np.ndarray:
    """Energy of every assignment, indexed by sum_i x_i 2^i (n <= 24): low/high halves + one cross GEMM."""
    h, j, offset = to_matrix(bqm)
    n = len(h)
    if n > EXACT_MAX_VARIABLES:
        raise QuantumBackendError(f"exact enumeration is limited to {EXACT_MAX_VARIABLES} variables, got {n}")
    lo = n // 2

    def part(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bits = ((np.arange(2 ** len(idx))[:, None] >> np.arange(len(idx))) & 1).astype(float)
        jj = j[np.ix_(idx, idx)]
        return bits, bits @ h[idx] + np.einsum("si,ij,sj->s", bits, jj, bits)

    lo_idx, hi_idx = np.arange(lo), np.arange(lo, n)
    bl, el = part(lo_idx)
    bh, eh = part(hi_idx)
    cross = bl @ j[np.ix_(lo_idx, hi_idx)] @ bh.T  # (2^lo, 2^hi)
    return (el[:, None] + eh[None, :] + cross + offset).T.ravel()  # index = x_hi * 2^lo + x_lo


def _bits(index: np.ndarray, n: int) -> np.ndarray:
    return ((np.asarray(index)[:, None] >> np.arange(n)) & 1).astype(np.int8)


# --- samplers ------------------------------------------------------------------------------------------


class ExactSampler:
    """Brute force: the `num_reads` lowest-energy assignments (ties by index)."""

    def sample(self, bqm: dimod.BinaryQuadraticModel, num_reads: int = 1) -> dimod.SampleSet:
        bqm = as_binary(bqm)
        e = all_energies(bqm)
        best = np.argsort(e, kind="stable")[:num_reads]
        return dimod.SampleSet.from_samples(
            (_bits(best, len(bqm)), list(bqm.variables)), dimod.BINARY, e[best]
        )


class DWaveLeapSampler:
    """D-Wave QPU through Leap: EmbeddingComposite(DWaveSampler()); token from DWAVE_API_TOKEN."""

    def __init__(self) -> None:
        token = require_env("DWAVE_API_TOKEN", "dwave", "dwave-system", "dwave.system")
        from dwave.system import DWaveSampler, EmbeddingComposite

        self.sampler = EmbeddingComposite(DWaveSampler(token=token))

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        return self.sampler.sample(bqm, return_embedding=True, **kwargs)


def make_sampler(solver: str, **options: Any) -> Sampler:
    if solver == "exact":
        return ExactSampler()
    if solver == "qaoa":
        from qlife.quantum.qaoa import QAOASampler

        return QAOASampler(**options)
    if solver in ("sa", "tabu"):
        from dwave.samplers import SimulatedAnnealingSampler, TabuSampler

        return SimulatedAnnealingSampler() if solver == "sa" else TabuSampler()
    if solver == "dwave":
        return DWaveLeapSampler()
    raise QuantumBackendError(f"unknown QUBO solver {solver!r}; choose one of {SOLVERS}")


def _resources(
    solver: str, bqm: dimod.BinaryQuadraticModel, ss: dimod.SampleSet, reads: int
) -> ResourceCount:
    if solver == "qaoa":
        return ss.info["resources"]
    if solver != "dwave":
        return ResourceCount(solver, executed_on="cpu", hardware_equivalent=False, qubits=0)
    timing = ss.info.get("timing", {})
    measured = timing.get("qpu_access_time")
    embedding = ss.info.get("embedding_context", {}).get("embedding", {})
    qubits = sum(len(chain) for chain in embedding.values()) or len(bqm)
    est = anneal_qpu_seconds(reads)
    qpu = measured * 1e-6 if measured is not None else None
    return ResourceCount(
        "dwave",
        executed_on="dwave",
        hardware_equivalent=False,
        qubits=qubits,
        circuits=1,
        shots=reads,
        qpu_seconds=qpu,
        qpu_seconds_est=est,
        energy_kwh_est=energy_kwh(qpu if qpu is not None else est),
    )


def solve(
    bqm: dimod.BinaryQuadraticModel, solver: str = "exact", seed: int | None = None, **options: Any
) -> QuboResult:
    """Minimize `bqm` with `solver`. Options go to the sampler (`num_reads`, `timeout`, `p`, `shots`...)."""
    bqm = as_binary(bqm)
    if solver == "qaoa":
        sampler, kwargs = make_sampler("qaoa", seed=seed, **options), {}
    else:
        sampler, kwargs = make_sampler(solver), dict(options)
        if solver in ("sa", "tabu") and seed is not None:
            kwargs["seed"] = seed
    t0 = time.perf_counter()
    ss = sampler.sample(bqm, **kwargs)
    wall = time.perf_counter() - t0
    first = ss.first
    variables = list(bqm.variables)
    x = np.array([first.sample[v] for v in variables], dtype=np.int8)
    reads = int(ss.record.num_occurrences.sum())
    info = {k: v for k, v in ss.info.items() if k not in ("resources", "embedding_context")}
    return QuboResult(
        dict(first.sample),
        x,
        float(bqm.energy(first.sample)),
        solver,
        wall,
        _resources(solver, bqm, ss, reads),
        reads,
        info,
        ss,
    )
