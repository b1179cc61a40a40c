"""Quantum k-means (q-means, DiAdamo et al. style) and quantum SemDeDup on encoded embeddings.

Each document embedding is reduced to 2^q dims and amplitude-encoded on q qubits (or reduced to q dims and
angle-encoded on q qubits; see `qlife.methods.qencoding`). Every point–centroid and point–point comparison is a
swap-test fidelity through the engine's `FidelityKernel` on the backend named in params (statevector: exact,
batched as one matmul per block of points; shots: the swap test's outcome sampled over whole blocks at once;
aer, a device model or hardware: the swap-test circuits themselves, small inputs only: `max_circuits`).
Assignment: nearest centroid = highest fidelity. Centroids are updated classically: the mean of the member
states (signs aligned, as x and -x are one state), renormalised and re-encoded (angle: mean of the angles).
Initialisation: greedy k-means++ (`semdedup.kmeans_pp_init`) with the Bures distance 2 - 2√F, which for real
amplitude states is the squared Euclidean distance up to sign. Convergence: share of points that changed
cluster <= tol. The kernel counts the circuits (one per fidelity) and shots they imply for the ledger.

`qsemdedup` clusters with `qkmeans`, then reuses `semdedup.semdedup` with the fidelity Gram of each cluster
(threshold (1 - eps)² on amplitude states is exactly cosine > 1 - eps) and fidelity to the centroid for the
keep rule, so the quantum distance decides both steps. At scale (`fit_sample`, as the classical twin): q-means runs
on the seeded sample `semdedup.fit_rows` (its encoding fitted there too), every document is then assigned by its
swap-test fidelity to the centroids in blocks, and the states are encoded per cluster batch, never all at once.
Arrays in, results out; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from qlife.arrays import unit_rows
from qlife.methods.qencoding import StateEncoder
from qlife.methods.semdedup import Map, SemDedupResult, assign_nearest, fit_rows, kmeans_pp_init, semdedup, serial_map
from qlife.quantum.fidelity import FidelityKernel, fidelity_distance, raise_too_many
from qlife.quantum.resources import ResourceCount


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
        C_new = unit_rows(C_new)
    return C_new


def qkmeans(states: np.ndarray, k: int, est: FidelityKernel, seed: int = 0, max_iter: int = 100, tol: float = 1e-3,
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
    kmeans: QKMeansResult  # labels: every document's cluster (fitted on a sample: its nearest centroid)
    resources: ResourceCount
    threshold: float
    n_qubits: int
    encoding: str
    encoder: StateEncoder | None = None  # the rows -> states map the method used
    fit_docs: int | None = None  # documents q-means ran on (all, or the sample)


def default_threshold(encoding: str, eps: float) -> float:
    """Fidelity threshold matching cosine > 1 - eps: (1 - eps)² for amplitude states; for angle states
    F ≈ exp(-π²/16 |Δx|²) with |Δx|² = 2 - 2 cos, so exp(-π² eps / 8)."""
    return (1.0 - eps) ** 2 if encoding == "amplitude" else float(np.exp(-np.pi**2 * eps / 8))


def qsemdedup(X: np.ndarray, n_clusters: int = 50, eps: float = 0.07, threshold: float | None = None,
              keep: str = "hard", seed: int = 0, n_qubits: int = 7, encoding: str = "amplitude",
              backend: Any = "statevector", max_iter: int = 100, tol: float = 1e-3, patience: int = 5,
              max_circuits: int | None = 20_000, param: str = "backend", pmap: Map = serial_map,
              fit_sample: int | None = None) -> QSemDedupResult:
    """Quantum SemDeDup: q-means clusters, then within-cluster pairs with fidelity > threshold, one kept.
    `backend`: a circuit backend spec or runner (qlife.quantum.backends); `param` names it in messages; `pmap`
    runs the clusters (`semdedup.semdedup`); `fit_sample`: q-means on a seeded sample of that many rows when X has
    more, every row then assigned to the centroid of highest fidelity."""
    sample = fit_rows(len(X), fit_sample, seed)
    fit = X if sample is None else X[sample]
    encoder = StateEncoder.fit(fit, encoding, n_qubits)
    states = encoder(fit)
    del fit
    thr = default_threshold(encoding, eps) if threshold is None else threshold
    est = FidelityKernel(backend, encoding, n_qubits, param, max_circuits)
    if not est.analytic and max_circuits is not None and len(X) * n_clusters > max_circuits:
        # fail before any work: one assignment round alone needs n * k circuits
        raise_too_many(est.runner, len(X) * n_clusters, max_circuits, param)
    km = qkmeans(states, min(n_clusters, len(states)), est, seed=seed, max_iter=max_iter, tol=tol,
                 patience=patience)
    del states
    if sample is not None:  # every document to its nearest centroid (highest swap-test fidelity), block by block
        labels = assign_nearest(len(X), lambda s, e: encoder(X[s:e]), lambda A: est.gram(A, km.centroids),
                                "curate q-means assign")
        km = replace(km, labels=labels)

    if not est.analytic and max_circuits is not None:  # the pairwise part at most: every pair and centroid
        sizes = np.bincount(km.labels)
        worst = est.circuits + int((sizes * (sizes - 1) // 2 + sizes).sum())
        if worst > max_circuits:
            raise_too_many(est.runner, worst, max_circuits, param)
    res = semdedup(X, km.labels, ClusterFidelity(est), thr, keep=keep, seed=seed, centroids=km.centroids,
                   pmap=pmap, transform=encoder)
    est.circuits += res.circuits
    return QSemDedupResult(res, km, est.resources, thr, n_qubits, encoding, encoder,
                           len(X) if sample is None else len(sample))


@dataclass(frozen=True)
class ClusterFidelity:
    """Quantum SemDeDup's similarity inside one cluster (`semdedup.ClusterJob`): the swap-test Gram of its members
    and their fidelity to the centroid, on a fork of the kernel (its own RNG and circuit count)."""

    kernel: FidelityKernel

    def fork(self, seed: np.random.SeedSequence) -> ClusterFidelity:
        return ClusterFidelity(self.kernel.fork(seed))

    def __call__(self, S: np.ndarray) -> np.ndarray:
        return self.kernel.gram(S, S, circuits=len(S) * (len(S) - 1) // 2)

    def block(self, A: np.ndarray, B: np.ndarray, circuits: int) -> np.ndarray:
        """Rows A of a big cluster against all of it (B): `circuits` distinct swap tests (the pairs i < j)."""
        return self.kernel.gram(A, B, circuits=circuits)

    def to_centroid(self, S: np.ndarray, c: np.ndarray) -> np.ndarray:
        return self.kernel.gram(S, c[None], circuits=len(S))[:, 0]

    @property
    def circuits(self) -> int:
        return self.kernel.circuits


def sample_pairs(r: QSemDedupResult, X: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encoded row pairs to compare backends on: half the pairs the method called duplicates (removed doc, kept
    representative), half random pairs inside one cluster; (A, B) in the method's encoding."""
    rng = np.random.default_rng(seed)
    dup = np.flatnonzero(r.result.duplicate_of >= 0)
    take = rng.permutation(dup)[: n_pairs // 2]
    a, b = list(take), list(r.result.duplicate_of[take])
    labels = r.kmeans.labels
    for c in rng.permutation(np.unique(labels)):
        members = np.flatnonzero(labels == c)
        if len(members) >= 2 and len(a) < n_pairs:
            i, j = rng.choice(members, 2, replace=False)
            a.append(i)
            b.append(j)
    encoder = r.encoder or StateEncoder.fit(X, r.encoding, r.n_qubits)
    return encoder(X[np.array(a, dtype=int)]), encoder(X[np.array(b, dtype=int)])
