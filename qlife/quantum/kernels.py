"""Quantum kernels on reduced real feature vectors (rows of X, shape (N, d), d = n_qubits standardised features),
for drift detection: MMD two-sample tests and one-class SVMs take any object with `.gram(A, B)`.

`QuantumFidelityKernel(backend, n_qubits, bandwidth, reps, kind)`  k(x, y) = |<psi(x)|psi(y)>|^2
`ProjectedQuantumKernel(backend, n_qubits, bandwidth, gamma, reps, kind)`  k(x, y) = exp(-gamma sum_k
    ||rho_k(x) - rho_k(y)||_F^2), rho_k the one-qubit reduced state of qubit k (Huang et al., "Power of data in
    quantum machine learning", Nat. Commun. 12, 2631 (2021))
`concentration(K)`  mean / std / min / max of the off-diagonal entries and the share below 1e-3: exponential
    concentration (Thanasilp et al., arXiv 2208.11060) shows as a vanishing std around a tiny mean.

|psi(x)> = U(bandwidth * x)|0>: the feature map circuit (`feature_map`) sees the rows scaled by `bandwidth`, which
decides whether the kernel concentrates (Shaydulin & Wild, arXiv 2111.05451): small bandwidths keep the states of
nearby rows close even for many qubits, large ones spread them over the Hilbert space (k -> 2^-n off the diagonal).

Feature maps (`kind`; reps layers; pairs from `entanglement` = linear / ring / full, as in qlife.quantum.circuits):
  reuploading  (default) per rep: RY(x_k) then RZ(x_k) on every qubit k, then CZ on every pair
  zz           qiskit's ZZFeatureMap: per rep H on every qubit, P(2 x_k), then per pair (i, j)
               CX(i, j) P(2 (pi - x_i)(pi - x_j)) on j CX(i, j)
  angle        RY(x_k) on every qubit once, no entanglement (`reps` ignored): the product kernel
               prod_k cos^2((x_k - y_k) / 2), the classically trivial control

How each backend kind computes an entry:
  statevector  exact states on the batched torch simulator (complex128), k from |S_A S_B^H|^2 or Bloch vectors;
               rows are simulated in chunks of at most `CHUNK_BYTES` of states (the angle map in closed form)
  shots        the exact value sampled by the runner as the circuit's ideal-hardware outcome would be, seeded by
               the backend's seed: fidelity Binomial(shots, F) / shots (`sample_outcome`: the all-zeros
               frequency of the compute-uncompute circuit U(x) U(y)^dagger); each Bloch component
               2 Binomial(shots, (1 + <P>) / 2) / shots - 1 (`sample_expectation`)
  other kinds  the circuits themselves on the backend (aer with noise, a device model, hardware): the
               compute-uncompute circuit per pair (F = frequency of all zeros), or for the projected kernel the map
               with an X / Y / Z basis change and measurement per row (3 circuits a row); `max_circuits` refuses
               a job over that many circuits (counted over the kernel's life) before anything runs
A symmetric call `gram(A)` (or `gram(A, A)` with the same object) estimates only the pairs i < j, mirrors them
and sets the diagonal to exactly 1 (k(x, x) = 1 by construction; on a noisy backend that adds a positive
diagonal, which keeps the matrix PSD). `resources` counts every circuit so far, executed or hardware-equivalent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from qlife.quantum.backends import CircuitRunner, as_runner, check_statevector
from qlife.quantum.circuits import entangling_pairs
from qlife.quantum.memory import ResourceLimitError
from qlife.quantum.resources import ResourceCount
from qlife.quantum.simulator import MAX_QUBITS, compile_circuit

KINDS = ("reuploading", "zz", "angle")
CHUNK_BYTES = 256 * 1024**2  # states simulated at once (complex128 rows of 2^n amplitudes)
MEDIAN_ROWS = 1000  # the median heuristic looks at (a seeded subsample of) this many rows at most
PAULIS = ("x", "y", "z")


# --- feature maps ----------------------------------------------------------------------------------------


def feature_map(n_qubits: int, reps: int = 2, entanglement: str = "linear", kind: str = "reuploading",
                x: ParameterVector | None = None) -> QuantumCircuit:
    """The feature map U(x) with inputs in ParameterVector "x" (n_qubits of them); see the module docstring.

    Bind the scaled row, `bandwidth * x`: the circuit itself has no bandwidth."""
    if kind not in KINDS:
        raise ValueError(f"feature map kind must be one of {KINDS}, got {kind!r}")
    if n_qubits < 1 or reps < 1:
        raise ValueError(f"n_qubits and reps must be >= 1, got {n_qubits} and {reps}")
    x = ParameterVector("x", n_qubits) if x is None else x
    qc = QuantumCircuit(n_qubits, name=f"{kind}_map")
    if kind == "angle":
        for k in range(n_qubits):
            qc.ry(x[k], k)
        return qc
    pairs = entangling_pairs(n_qubits, entanglement)
    for _ in range(reps):
        if kind == "reuploading":
            for k in range(n_qubits):
                qc.ry(x[k], k)
                qc.rz(x[k], k)
            for i, j in pairs:
                qc.cz(i, j)
        else:  # zz
            for k in range(n_qubits):
                qc.h(k)
                qc.p(2 * x[k], k)
            for i, j in pairs:
                qc.cx(i, j)
                qc.p(2 * (np.pi - x[i]) * (np.pi - x[j]), j)
                qc.cx(i, j)
    return qc


def compute_uncompute(prep: QuantumCircuit) -> QuantumCircuit:
    """U(x) then U(y)^dagger, every qubit measured; parameters "x" then "y" (bind [x, y]); P(0...0) = |<y|x>|^2."""
    n = prep.num_qubits
    params = sorted(prep.parameters, key=lambda p: p.index)
    second = prep.assign_parameters(dict(zip(params, ParameterVector("y", len(params)))))
    qc = QuantumCircuit(n, n, name="compute_uncompute")
    qc.compose(prep, range(n), inplace=True)
    qc.compose(second.inverse(), range(n), inplace=True)
    qc.measure(range(n), range(n))
    return qc


def basis_circuit(prep: QuantumCircuit, pauli: str) -> QuantumCircuit:
    """The map, a rotation taking `pauli` ("x": H; "y": Sdg H; "z": none) to Z on every qubit, measured."""
    n = prep.num_qubits
    qc = QuantumCircuit(n, n, name=f"{prep.name}_{pauli}")
    qc.compose(prep, range(n), inplace=True)
    for k in range(n):
        if pauli == "y":
            qc.sdg(k)
        if pauli in ("x", "y"):
            qc.h(k)
    qc.measure(range(n), range(n))
    return qc


# --- shared machinery ------------------------------------------------------------------------------------


class _FeatureMapKernel:
    """A feature map on one backend: input checks, exact states in chunks, circuit counting and resources."""

    def __init__(self, backend: Any, n_qubits: int, bandwidth: float, reps: int, kind: str, entanglement: str,
                 param: str, max_circuits: int | None):
        if not np.isfinite(bandwidth) or bandwidth <= 0:
            raise ValueError(f"bandwidth must be a positive number, got {bandwidth!r}")
        if max_circuits is not None and max_circuits < 1:
            raise ValueError(f"max_circuits must be >= 1 or None, got {max_circuits!r}")
        self.circuit = feature_map(n_qubits, reps, entanglement, kind)
        self.runner: CircuitRunner = as_runner(backend, param)
        self.n_qubits, self.bandwidth, self.reps, self.kind = n_qubits, float(bandwidth), reps, kind
        self.entanglement, self.param, self.max_circuits = entanglement, param, max_circuits
        self.rng = np.random.default_rng(self.runner.seed)
        self.circuits = 0
        self._sim = None
        if self.runner.analytic and kind != "angle" and n_qubits > MAX_QUBITS:
            raise ResourceLimitError(f"{n_qubits}-qubit exact states are beyond the simulator's {MAX_QUBITS}: "
                                     f"fewer features (n_qubits), or a sampling backend other than "
                                     f"{self.runner.kind!r} in {param}")

    @property
    def analytic(self) -> bool:
        return self.runner.analytic

    @property
    def sampled(self) -> bool:
        return self.runner.sampled

    def check(self, X: Any, name: str = "X") -> np.ndarray:
        """Rows as a float (N, n_qubits) array; a ValueError for a wrong feature count or NaN / inf."""
        a = np.asarray(X, dtype=float)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != self.n_qubits:
            raise ValueError(f"{name} must have shape (rows, {self.n_qubits}): one feature per qubit "
                             f"(n_qubits={self.n_qubits}), got {a.shape}; reduce the features first or change "
                             f"n_qubits")
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(f"{name} has NaN or inf in {int(bad.sum())} row(s), first at row "
                             f"{int(np.argmax(bad))}: impute or drop them before the quantum kernel")
        return a

    def _chunk(self) -> int:
        return max(1, CHUNK_BYTES // (16 * 2**self.n_qubits))

    def _simulator(self) -> Any:
        if self._sim is None:
            self._sim = compile_circuit(self.circuit, dtype=torch.complex128)
        return self._sim

    def _state_blocks(self, X: np.ndarray):
        """(slice, exact states (rows, 2^n) complex128) for consecutive chunks of rows."""
        chunk = self._chunk()
        check_statevector(self.n_qubits, self.param, batch=min(chunk, max(len(X), 1)), complex_bytes=16)
        sim = self._simulator()
        for s in range(0, len(X), chunk):
            with torch.no_grad():
                psi = sim.state(torch.as_tensor(self.bandwidth * X[s: s + chunk], dtype=torch.float64))
            yield slice(s, s + len(psi)), psi.numpy()

    def statevectors(self, X: Any) -> np.ndarray:
        """Exact |psi(x)> = U(bandwidth x)|0> for every row, (N, 2^n) complex128 (the reference path)."""
        X = self.check(X)
        if self.n_qubits > MAX_QUBITS:
            raise ResourceLimitError(f"{self.n_qubits}-qubit exact states are beyond the simulator's "
                                     f"{MAX_QUBITS}: fewer features (n_qubits) in {self.param}")
        check_statevector(self.n_qubits, self.param, batch=max(len(X), 1), complex_bytes=16)
        out = np.empty((len(X), 2**self.n_qubits), dtype=complex)
        for sl, psi in self._state_blocks(X):
            out[sl] = psi
        return out

    def _reserve(self, n: int, what: str) -> None:
        """Count n more circuits; on a circuit-running backend refuse first when they pass max_circuits."""
        if not self.analytic and self.max_circuits is not None and self.circuits + n > self.max_circuits:
            raise ResourceLimitError(
                f"backend {self.runner.name!r} would run {n} {what} circuits ({self.circuits} already run), over "
                f"max_circuits={self.max_circuits}: raise max_circuits, use a statevector or shots backend in "
                f"{self.param}, or fewer rows")
        self.circuits += n

    def template(self) -> QuantumCircuit:  # pragma: no cover - defined by each kernel
        raise NotImplementedError

    @property
    def resources(self) -> ResourceCount:
        """Every circuit so far on this backend (circuits, shots, structure of one circuit as it runs there)."""
        return self.runner.cost(self.template(), self.circuits)


def _symmetric(A: Any, B: Any) -> bool:
    return B is None or B is A


# --- the fidelity kernel ---------------------------------------------------------------------------------


class QuantumFidelityKernel(_FeatureMapKernel):
    """k(x, y) = |<psi(x)|psi(y)>|^2, |psi(x)> = U(bandwidth x)|0>; `gram(A)` is the symmetric Gram of A."""

    def __init__(self, backend: Any, n_qubits: int, bandwidth: float = 1.0, reps: int = 2,
                 kind: str = "reuploading", param: str = "monitor.quantum.backend",
                 max_circuits: int | None = None, entanglement: str = "linear"):
        super().__init__(backend, n_qubits, bandwidth, reps, kind, entanglement, param, max_circuits)
        self._template: QuantumCircuit | None = None

    def template(self) -> QuantumCircuit:
        """The compute-uncompute circuit; bind [bandwidth x, bandwidth y]."""
        if self._template is None:
            self._template = compute_uncompute(self.circuit)
        return self._template

    def exact(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Exact |<psi(a_i)|psi(b_j)>|^2 of checked rows (closed form for the angle map)."""
        out = np.empty((len(A), len(B)))
        if self.kind == "angle":
            step = max(1, 2**22 // max(len(B) * self.n_qubits, 1))
            for s in range(0, len(A), step):
                d = self.bandwidth * (A[s: s + step, None, :] - B[None, :, :])
                out[s: s + step] = np.prod(0.5 + 0.5 * np.cos(d), axis=2)
            return out
        blocks_b = list(self._state_blocks(B)) if len(B) <= self._chunk() else None
        for sa, psi_a in self._state_blocks(A):
            for sb, psi_b in blocks_b if blocks_b is not None else self._state_blocks(B):
                out[sa, sb] = np.abs(psi_a @ psi_b.conj().T) ** 2
        return np.clip(out, 0.0, 1.0)

    def gram(self, A: Any, B: Any = None) -> np.ndarray:
        """K[i, j] = k(a_i, b_j), shape (len(A), len(B)); B None (or A itself): the symmetric Gram of A."""
        sym = _symmetric(A, B)
        A = self.check(A, "A")
        B = A if sym else self.check(B, "B")
        if sym:
            iu = np.triu_indices(len(A), 1)
            K = np.eye(len(A))
            self._reserve(len(iu[0]), "compute-uncompute")
            if self.analytic:
                vals = self._sample(self.exact(A, A)[iu])
            else:
                vals = self._run(A[iu[0]], A[iu[1]])
            K[iu] = vals
            K.T[iu] = vals
            return K
        self._reserve(len(A) * len(B), "compute-uncompute")
        if self.analytic:
            return self._sample(self.exact(A, B))
        ia, ib = (g.ravel() for g in np.meshgrid(np.arange(len(A)), np.arange(len(B)), indexing="ij"))
        return self._run(A[ia], B[ib]).reshape(len(A), len(B))

    def __call__(self, A: Any, B: Any = None) -> np.ndarray:
        return self.gram(A, B)

    def _sample(self, exact: np.ndarray) -> np.ndarray:
        """On `shots`: the all-zeros count of the compute-uncompute circuit, Binomial(shots, F) / shots."""
        if not self.sampled:
            return exact
        return self.runner.sample_outcome(exact, self.rng)

    def _run(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """The compute-uncompute circuit for each row pair on the backend: F = frequency of all zeros."""
        if len(A) == 0:
            return np.zeros(0)
        values = self.bandwidth * np.hstack([A, B])
        return np.clip(self.runner.run(self.template(), values).frequencies[:, 0], 0.0, 1.0)


# --- the projected kernel --------------------------------------------------------------------------------


def bloch_vectors(states: np.ndarray) -> np.ndarray:
    """One-qubit Bloch vectors (<X_k>, <Y_k>, <Z_k>) of every qubit k of statevectors (N, 2^n) -> (N, 3n), in
    the order x_0, y_0, z_0, x_1, ... (qubit k is bit k of the basis index, qiskit's order)."""
    psi = np.atleast_2d(states)
    N, n = len(psi), int(round(np.log2(psi.shape[1])))
    out = np.empty((N, 3 * n))
    for k in range(n):
        v = psi.reshape(N, 2 ** (n - k - 1), 2, 2**k)
        a0, a1 = v[:, :, 0, :], v[:, :, 1, :]
        c = np.einsum("nij,nij->n", a0.conj(), a1)  # rho_k[1, 0] = (x + i y) / 2
        out[:, 3 * k] = 2.0 * c.real
        out[:, 3 * k + 1] = 2.0 * c.imag
        out[:, 3 * k + 2] = (np.abs(a0) ** 2 - np.abs(a1) ** 2).sum(axis=(1, 2))
    return out


def _sq_distances(F: np.ndarray, G: np.ndarray) -> np.ndarray:
    """sum_k ||rho_k - sigma_k||_F^2 = 0.5 ||bloch - bloch'||^2 for every row pair."""
    from scipy.spatial.distance import cdist

    if len(F) == 0 or len(G) == 0:
        return np.zeros((len(F), len(G)))
    return 0.5 * cdist(F, G, "sqeuclidean")


def median_gamma(features: np.ndarray, seed: int = 0) -> float:
    """1 / median over distinct row pairs of sum_k ||rho_k - rho_k'||_F^2 (a seeded subsample of at most
    MEDIAN_ROWS rows), so the median pair has k = exp(-1); 1.0 when fewer than two distinct rows."""
    F = np.atleast_2d(features)
    if len(F) > MEDIAN_ROWS:
        F = F[np.random.default_rng(seed).choice(len(F), MEDIAN_ROWS, replace=False)]
    d = _sq_distances(F, F)[np.triu_indices(len(F), 1)]
    d = d[d > 1e-12]
    return 1.0 / float(np.median(d)) if len(d) else 1.0


class ProjectedQuantumKernel(_FeatureMapKernel):
    """k(x, y) = exp(-gamma sum_k ||rho_k(x) - rho_k(y)||_F^2) from the one-qubit reduced states (Bloch vectors).

    gamma None: the median heuristic (`median_gamma`) on the Bloch features of the rows given to `fit(X)`; if
    the kernel is not fitted, on the pooled rows of each `gram(A, B)` call (then `last_gamma` says which)."""

    def __init__(self, backend: Any, n_qubits: int, bandwidth: float = 1.0, gamma: float | None = None,
                 reps: int = 2, kind: str = "reuploading", param: str = "monitor.quantum.backend",
                 max_circuits: int | None = None, entanglement: str = "linear"):
        super().__init__(backend, n_qubits, bandwidth, reps, kind, entanglement, param, max_circuits)
        if gamma is not None and (not np.isfinite(gamma) or gamma <= 0):
            raise ValueError(f"gamma must be a positive number or None, got {gamma!r}")
        self.gamma = gamma
        self.gamma_: float | None = gamma  # the gamma gram uses: explicit or fitted
        self.last_gamma: float | None = gamma
        self._templates: dict[str, QuantumCircuit] = {}

    def template(self, pauli: str = "z") -> QuantumCircuit:
        if pauli not in self._templates:
            self._templates[pauli] = basis_circuit(self.circuit, pauli)
        return self._templates[pauli]

    def exact_features(self, X: np.ndarray) -> np.ndarray:
        """Exact Bloch vectors of checked rows (closed form for the angle map: (sin t, 0, cos t), t = b x_k)."""
        if self.kind == "angle":
            t = self.bandwidth * X
            return np.stack([np.sin(t), np.zeros_like(t), np.cos(t)], axis=2).reshape(len(X), -1)
        out = np.empty((len(X), 3 * self.n_qubits))
        for sl, psi in self._state_blocks(X):
            out[sl] = bloch_vectors(psi)
        return out

    def features(self, X: Any) -> np.ndarray:
        """Bloch vectors (N, 3 n): exact, sampled (shots), or measured in the X, Y, Z bases (3 circuits a row)."""
        X = self.check(X)
        self._reserve(3 * len(X), "basis-measurement")
        if self.analytic:
            exact = self.exact_features(X)
            return self.runner.sample_expectation(exact, self.rng) if self.sampled else exact
        out = np.empty((len(X), self.n_qubits, 3))
        if len(X) == 0:
            return out.reshape(0, -1)
        bits = (np.arange(2**self.n_qubits)[:, None] >> np.arange(self.n_qubits)[None, :]) & 1
        for p, pauli in enumerate(PAULIS):
            freq = self.runner.run(self.template(pauli), self.bandwidth * X).frequencies
            out[:, :, p] = freq @ (1.0 - 2.0 * bits)
        return out.reshape(len(X), -1)

    def fit(self, X: Any) -> ProjectedQuantumKernel:
        """Fix gamma by the median heuristic on the Bloch features of X (only when gamma was None)."""
        if self.gamma is None:
            self.gamma_ = median_gamma(self.features(X), self.runner.seed)
            self.last_gamma = self.gamma_
        return self

    def gram(self, A: Any, B: Any = None) -> np.ndarray:
        """K[i, j] = k(a_i, b_j); B None (or A itself): the symmetric Gram of A (unit diagonal)."""
        sym = _symmetric(A, B)
        FA = self.features(self.check(A, "A"))
        FB = FA if sym else self.features(self.check(B, "B"))
        gamma = self.gamma_
        if gamma is None:
            gamma = median_gamma(FA if sym else np.vstack([FA, FB]), self.runner.seed)
        self.last_gamma = gamma
        K = np.exp(-gamma * _sq_distances(FA, FB))
        if sym:
            np.fill_diagonal(K, 1.0)
        return K

    def __call__(self, A: Any, B: Any = None) -> np.ndarray:
        return self.gram(A, B)


# --- diagnostics -----------------------------------------------------------------------------------------


def concentration(K: Any, threshold: float = 1e-3, offdiagonal: bool | None = None) -> dict[str, Any]:
    """Spread of kernel values: mean, std, min, max and the share below `threshold` of the off-diagonal
    entries of a square Gram matrix (offdiagonal None: when K is square) or of all entries of a rectangular
    one. A std that vanishes around a tiny mean is exponential concentration: the kernel no longer tells rows
    apart with a polynomial number of shots."""
    K = np.asarray(K, dtype=float)
    if K.ndim != 2:
        raise ValueError(f"K must be a 2-D kernel matrix, got shape {K.shape}")
    off = K.shape[0] == K.shape[1] if offdiagonal is None else offdiagonal
    if off and K.shape[0] != K.shape[1]:
        raise ValueError(f"off-diagonal statistics need a square matrix, got {K.shape}")
    vals = K[~np.eye(K.shape[0], dtype=bool)] if off else K.ravel()
    out: dict[str, Any] = {"entries": int(vals.size), "offdiagonal": bool(off), "threshold": threshold}
    if vals.size == 0:
        return {**out, **dict.fromkeys(("mean", "std", "min", "max", "fraction_below"), float("nan"))}
    return {**out, "mean": float(vals.mean()), "std": float(vals.std()), "min": float(vals.min()),
            "max": float(vals.max()), "fraction_below": float(np.mean(vals < threshold))}
