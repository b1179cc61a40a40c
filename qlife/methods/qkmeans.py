"""Quantum k-means (q-means, DiAdamo et al. style) and quantum SemDeDup on encoded embeddings.

Each document embedding is reduced to 2^q dims and amplitude-encoded on q qubits (or reduced to q dims and
angle-encoded on q qubits; see `qlife.methods.qencoding`). Every point–centroid and point–point comparison is a
swap-test fidelity on the chosen backend:
  statevector  exact |<a|b>|² (batched: one matmul per block of points)
  shots        the swap test's P(0) = (1 + F) / 2 sampled with `shots` shots (binomial) and inverted, the model
               of the engine's `fidelity(..., backend="shots")`, drawn here over whole blocks at once
  aer          real swap-test circuits on qiskit-aer through the engine (small subsets only: `max_circuits`)
Assignment: nearest centroid = highest fidelity. Centroids are updated classically: the mean of the member
states (signs aligned, as x and -x are one state), renormalised and re-encoded (angle: mean of the angles).
Initialisation: greedy k-means++ (`semdedup.kmeans_pp_init`) with the Bures distance 2 - 2√F, which for real
amplitude states is the squared Euclidean distance up to sign. Convergence: share of points that changed
cluster <= tol. `SwapTest` counts the circuits (one per fidelity) and shots they imply for the ledger.

`qsemdedup` clusters with `qkmeans`, then reuses `semdedup.semdedup` with the fidelity Gram of each cluster
(threshold (1 - eps)² on amplitude states is exactly cosine > 1 - eps) and fidelity to the centroid for the
keep rule, so the quantum distance decides both steps. Arrays in, results out; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from qlife.methods.qencoding import ENCODINGS, encode, exact_fidelity_gram, swap_test_structure
from qlife.methods.semdedup import SemDedupResult, kmeans_pp_init, semdedup
from qlife.quantum.circuits import angle_encoding
from qlife.quantum.errors import QuantumBackendError
from qlife.quantum.fidelity import NoiseParams, circuit_fidelity, fidelity, fidelity_distance
from qlife.quantum.resources import ResourceCount

BACKENDS = ("statevector", "shots", "aer")


class SwapTest:
    """Swap-test fidelity estimates between encoded rows on one backend, counting circuits and shots.

    `gram(A, B, circuits=None)` estimates F[i, j]; `circuits` is how many distinct swap tests the caller
    needs (default len(A) * len(B); a symmetric within-cluster matrix needs m(m-1)/2). Rows must be what
    `qencoding.encode` returns (amplitude rows already unit vectors).
    """

    def __init__(self, encoding: str, n_qubits: int, backend: str = "statevector", shots: int = 1024,
                 seed: int = 0, noise: NoiseParams | None = None, max_circuits: int | None = 20_000):
        if backend not in BACKENDS:
            raise QuantumBackendError(f"quantum k-means backend must be one of {BACKENDS}, got {backend!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.encoding, self.n_qubits, self.backend, self.shots = encoding, n_qubits, backend, shots
        self.noise, self.max_circuits = noise, max_circuits
        self.rng = np.random.default_rng(seed)
        self.circuits = 0

    def gram(self, A: np.ndarray, B: np.ndarray, circuits: int | None = None) -> np.ndarray:
        n = len(A) * len(B) if circuits is None else circuits
        self.circuits += n
        if self.backend == "statevector":
            return exact_fidelity_gram(A, B, self.encoding, normalized=True)
        if self.backend == "shots":
            p0 = (1.0 + exact_fidelity_gram(A, B, self.encoding, normalized=True)) / 2.0
            k = self.rng.binomial(self.shots, np.clip(p0, 0.0, 1.0))
            return np.clip(2.0 * k / self.shots - 1.0, 0.0, 1.0)
        return self._aer_gram(A, B)

    def _aer_gram(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        if self.max_circuits is not None and self.circuits > self.max_circuits:
            raise QuantumBackendError(
                f"backend 'aer' would need more than {self.max_circuits} swap-test circuits "
                f"(curate.quantum.max_circuits); use 'statevector' or 'shots', or a smaller corpus")
        ia, ib = (g.ravel() for g in np.meshgrid(np.arange(len(A)), np.arange(len(B)), indexing="ij"))
        seed = int(self.rng.integers(2**31))
        if self.encoding == "amplitude":
            vals = fidelity(A[ia], B[ib], "aer", self.shots, seed, self.noise).values
        else:
            vals = circuit_fidelity(angle_encoding(self.n_qubits), A[ia], B[ib], backend="aer",
                                    shots=self.shots, seed=seed, noise=self.noise).values
        return vals.reshape(len(A), len(B))

    def resources(self) -> ResourceCount:
        executed = "aer" if self.backend == "aer" else "cpu"
        small = self.n_qubits <= 10 or self.encoding == "angle"  # a 2^q-gate tree is slow to transpile
        structure = swap_test_structure(self.encoding, self.n_qubits) if small else \
            {"qubits": 2 * self.n_qubits + 1}
        return ResourceCount.for_circuits(self.backend, None, self.circuits, self.shots, executed, True,
                                          structure)


@dataclass(frozen=True)
class QKMeansResult:
    labels: np.ndarray  # (n,) cluster of each point
    centroids: np.ndarray  # (k, dim) encoded centroids (unit amplitude vectors or angles)
    n_iter: int
    converged: bool  # False: stopped at the noise floor (patience) or at max_iter


def _update(states: np.ndarray, labels: np.ndarray, k: int, C: np.ndarray, encoding: str, worst: np.ndarray
            ) -> np.ndarray:
    """Classical centroid update: mean of the members (signs aligned to the old centroid), renormalised;
    an empty cluster is re-seeded at the worst-fit point (lowest fidelity to its centroid)."""
    X = states
    if encoding == "amplitude":
        X = states * np.where(np.einsum("ij,ij->i", states, C[labels]) < 0, -1.0, 1.0)[:, None]
    onehot = csr_matrix((np.ones(len(X)), (labels, np.arange(len(X)))), shape=(k, len(X)))
    counts = np.bincount(labels, minlength=k)
    C_new = (onehot @ X) / np.maximum(counts, 1)[:, None]
    empty = np.flatnonzero(counts == 0)
    C_new[empty] = states[worst[: len(empty)]]
    if encoding == "amplitude":
        C_new /= np.maximum(np.linalg.norm(C_new, axis=1, keepdims=True), 1e-12)
    return C_new


def qkmeans(states: np.ndarray, k: int, est: SwapTest, seed: int = 0, max_iter: int = 100, tol: float = 1e-3,
            patience: int = 5, block: int = 8192, trace: list | None = None) -> QKMeansResult:
    """q-means on encoded rows: swap-test assignment, classical centroid update, fidelity k-means++ init.

    Stops when at most `tol` of the points changed cluster (converged), or when that share has not reached
    a new low for `patience` iterations (the shot-noise floor of a sampled backend), or after `max_iter`.
    `trace`, when given, collects the changed share per iteration.
    """
    states = np.asarray(states, dtype=np.float64)
    if not 1 <= k <= len(states):
        raise ValueError(f"k must be in 1..{len(states)}, got {k}")
    C = kmeans_pp_init(states, k, np.random.default_rng(seed),
                       lambda A, B: fidelity_distance(est.gram(A, B), "bures"))
    labels = np.full(len(states), -1)
    converged, n_iter, best, since = False, 0, np.inf, 0
    while n_iter < max_iter:
        n_iter += 1
        F = np.concatenate([est.gram(states[s: s + block], C) for s in range(0, len(states), block)])
        new = F.argmax(1)
        changed = float(np.mean(new != labels))
        labels = new
        if trace is not None:
            trace.append(changed)
        best, since = (changed, 0) if changed < best else (best, since + 1)
        converged = changed <= tol
        if converged or since >= patience:  # shot noise keeps flipping boundary points: stop at its floor
            break
        worst = np.argsort(F[np.arange(len(F)), labels], kind="stable")
        C = _update(states, labels, k, C, est.encoding, worst)
    return QKMeansResult(labels, C, n_iter, converged)


@dataclass(frozen=True)
class QSemDedupResult:
    result: SemDedupResult
    kmeans: QKMeansResult
    resources: ResourceCount
    threshold: float
    n_qubits: int
    encoding: str


def default_threshold(encoding: str, eps: float) -> float:
    """Fidelity threshold matching cosine > 1 - eps: (1 - eps)² for amplitude states; for angle states
    F ≈ exp(-π²/16 |Δx|²) with |Δx|² = 2 - 2 cos, so exp(-π² eps / 8)."""
    return (1.0 - eps) ** 2 if encoding == "amplitude" else float(np.exp(-np.pi**2 * eps / 8))


def qsemdedup(X: np.ndarray, n_clusters: int = 50, eps: float = 0.07, threshold: float | None = None,
              keep: str = "hard", seed: int = 0, n_qubits: int = 7, encoding: str = "amplitude",
              backend: str = "statevector", shots: int = 1024, max_iter: int = 100, tol: float = 1e-3,
              patience: int = 5, noise: NoiseParams | None = None, max_circuits: int | None = 20_000
              ) -> QSemDedupResult:
    """Quantum SemDeDup: q-means clusters, then within-cluster pairs with fidelity > threshold, one kept."""
    states = encode(X, encoding, n_qubits)
    thr = default_threshold(encoding, eps) if threshold is None else threshold
    est = SwapTest(encoding, n_qubits, backend, shots, seed, noise, max_circuits)
    if backend == "aer" and max_circuits is not None and len(states) * n_clusters > max_circuits:
        raise QuantumBackendError(  # fail before any work: one assignment round alone needs n * k circuits
            f"backend 'aer' needs at least {len(states) * n_clusters} swap-test circuits per k-means round, "
            f"over max_circuits={max_circuits}; use 'statevector' or 'shots', or a smaller corpus")
    km = qkmeans(states, min(n_clusters, len(states)), est, seed=seed, max_iter=max_iter, tol=tol,
                 patience=patience)

    def similarity(S: np.ndarray) -> np.ndarray:
        return est.gram(S, S, circuits=len(S) * (len(S) - 1) // 2)

    def to_centroid(S: np.ndarray, c: np.ndarray) -> np.ndarray:
        return est.gram(S, c[None], circuits=len(S))[:, 0]

    res = semdedup(states, km.labels, similarity, thr, keep=keep, seed=seed, centroids=km.centroids,
                   centroid_similarity=to_centroid)
    return QSemDedupResult(res, km, est.resources(), thr, n_qubits, encoding)
