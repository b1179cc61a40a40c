"""Data-loading encodings of real feature vectors, their exact fidelities and their circuit costs.

- amplitude: a real vector reduced / zero-padded to 2^q dims, L2-normalised, loaded on q qubits by the RY/CNOT
  tree of `qlife.quantum.circuits.amplitude_encoding` (2^q - 1 RY, 2^q - 2 CNOT). For real states
  F(x, y) = cos²(x, y), so a fidelity threshold (1 - eps)² is the cosine rule cos > 1 - eps.
- angle: one feature per qubit, RY(θ_i) with θ = π/2 (1 + x) for the components x ∈ [-1, 1] of an L2-normalised
  vector; a product state, so F = Π cos²((θ_i - φ_i) / 2) exactly, without 2^d amplitudes.

`reduce_dim(X, dim)` (uncentred SVD: cosines kept as far as dim allows), `amplitude_states`, `angle_params`,
`StateEncoder.fit(X, encoding, q)` (`encode` fitted once on X, then applied row-wise to any rows: curation's shards),
`exact_fidelity_gram(A, B, encoding)`,
and for stage 2 `encoding_report(X, ...)`, `resource_sweep(dims)`, `plot_sweep(rows, path)`, and its verdict's
per-document classifiers `loading_classifiers(backend)` (a kernel SVM on the amplitude-encoded states' swap-test
fidelities beside the same SVM on cos² of the features, an RBF SVM and a logistic regression).
Arrays in, arrays / dicts out; `plot_sweep` is the one writer (a PNG).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qlife.arrays import unit_rows
from qlife.quantum.circuits import amplitude_angles, amplitude_encoding, angle_encoding
from qlife.quantum.fidelity import FidelityKernel, exact_gram, fidelity
from qlife.quantum.resources import ResourceCount, circuit_resources
from qlife.quantum.simulator import compile_circuit

ENCODINGS = ("amplitude", "angle")


class Projection:
    """`reduce_dim`'s map fitted on some rows, applied row-wise to any: zero-padding when the rows have <= dim
    columns, else the projection on the fitted rows' top-`dim` right singular vectors; rows L2-normalised."""

    def __init__(self, X: np.ndarray, dim: int):
        X = np.asarray(X, dtype=np.float64)
        self.dim, self.comps = dim, None
        if X.shape[1] > dim:
            _, _, vt = np.linalg.svd(X, full_matrices=False)
            comps = vt[:dim]
            comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]  # fixed signs
            self.comps = comps

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.comps is None:
            if X.shape[1] > self.dim:
                raise ValueError(f"rows of {X.shape[1]} columns into a projection fitted on <= {self.dim}")
            out = np.zeros((len(X), self.dim))
            out[:, : X.shape[1]] = X
            return unit_rows(out)
        return unit_rows(X @ self.comps.T)


def reduce_dim(X: np.ndarray, dim: int) -> np.ndarray:
    """(n, dim): X projected on its top-`dim` right singular vectors (an uncentred SVD, not PCA: without
    centring, directions and cosines survive as far as `dim` allows), or zero-padded when X has <= dim
    columns; rows L2-normalised."""
    return Projection(X, dim)(X)


def n_qubits_for(encoding: str, dim: int) -> int:
    """Qubits that load a `dim`-feature vector: ceil(log2 dim) (amplitude) or dim (angle)."""
    if encoding == "amplitude":
        return max(1, int(np.ceil(np.log2(max(dim, 2)))))
    if encoding == "angle":
        return dim
    raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")


def amplitude_states(X: np.ndarray, n_qubits: int) -> np.ndarray:
    """(n, 2^q) real unit vectors: the amplitudes prepared by the amplitude encoding."""
    return reduce_dim(X, 2**n_qubits)


def angle_params(X: np.ndarray, n_qubits: int) -> np.ndarray:
    """(n, q) RY angles θ = π/2 (1 + x) of the q-dim reduced, L2-normalised features (θ ∈ [0, π])."""
    return np.pi / 2 * (1.0 + reduce_dim(X, n_qubits))


def encode(X: np.ndarray, encoding: str, n_qubits: int) -> np.ndarray:
    """What the circuits load: amplitude states (n, 2^q) or angle parameters (n, q)."""
    if encoding == "amplitude":
        return amplitude_states(X, n_qubits)
    if encoding == "angle":
        return angle_params(X, n_qubits)
    raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")


class StateEncoder:
    """`encode(X, encoding, n_qubits)` fitted on some rows (`fit`) and applied row-wise to any rows: on the rows it
    was fitted on, exactly `encode`'s (a projection wider than 2^q / q is fitted once, not per call)."""

    def __init__(self, encoding: str, n_qubits: int, projection: Projection):
        self.encoding, self.n_qubits, self.projection = encoding, n_qubits, projection

    @classmethod
    def fit(cls, X: np.ndarray, encoding: str, n_qubits: int) -> StateEncoder:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        return cls(encoding, n_qubits, Projection(X, 2**n_qubits if encoding == "amplitude" else n_qubits))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = self.projection(X)
        return Z if self.encoding == "amplitude" else np.pi / 2 * (1.0 + Z)


def angle_statevectors(theta: np.ndarray) -> np.ndarray:
    """(n, 2^q) product states ⊗_i (cos θ_i/2 |0> + sin θ_i/2 |1>), qubit 0 least significant (qiskit order)."""
    theta = np.atleast_2d(theta)
    out = np.ones((len(theta), 1))
    for i in range(theta.shape[1]):  # qubit i becomes the new most significant bit
        q = np.stack([np.cos(theta[:, i] / 2), np.sin(theta[:, i] / 2)], axis=1)
        out = (q[:, :, None] * out[:, None, :]).reshape(len(theta), -1)
    return out


def exact_fidelity_gram(A: np.ndarray, B: np.ndarray, encoding: str) -> np.ndarray:
    """Exact |<a_i|b_j>|² for encoded rows (see `encode`): the engine's `exact_gram`."""
    return exact_gram(A, B, encoding)


def encoding_circuit(encoding: str, n_qubits: int, row: np.ndarray | None = None):
    """The loading circuit, bound to `row` (amplitude vector or angles) when given."""
    if encoding == "amplitude":
        qc = amplitude_encoding(n_qubits)
        return qc if row is None else qc.assign_parameters(amplitude_angles(row))
    qc = angle_encoding(n_qubits, "ry")
    return qc if row is None else qc.assign_parameters(np.asarray(row, dtype=float))


# ----------------------------------------------------------------------------- stage 2 report

def prepared_states(encoding: str, rows: np.ndarray) -> np.ndarray:
    """Statevectors the encoding circuit actually prepares, simulated by the engine's torch simulator."""
    n = rows.shape[1] if encoding == "angle" else int(np.log2(rows.shape[1]))
    qc = encoding_circuit(encoding, n)
    x = amplitude_angles(rows) if encoding == "amplitude" else rows
    sim = compile_circuit(qc, dtype=torch.complex128)
    with torch.no_grad():
        return sim.state(torch.as_tensor(np.asarray(x, dtype=float))).numpy()


def encoding_report(X: np.ndarray, backend: Any = "shots", max_angle_qubits: int = 16, param: str = "backend"
                    ) -> tuple[dict[str, dict[str, Any]], ResourceCount | None]:
    """Per encoding, for the feature rows X (n, d): circuit resources (transpiled, for the first row),
    prepared-vs-target fidelity (exact, and by a swap test on `backend`, a spec or runner at `param`, e.g.
    `{kind: shots, shots: 1024}`: one circuit per row), and the classical bytes one encoded document stands for.
    The angle check simulates 2^d amplitudes: skipped beyond `max_angle_qubits` features. Returns the report and
    the swap tests' resources as the backend counts them (None when no encoding was checked)."""
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    out = {}
    resources = None
    for enc in ENCODINGS:
        q = n_qubits_for(enc, d)
        if enc == "angle" and q > max_angle_qubits:
            continue
        rows = encode(X, enc, q)
        target = rows if enc == "amplitude" else angle_statevectors(rows)
        prepared = prepared_states(enc, rows)
        exact = fidelity(prepared, target, "statevector").values
        checked = fidelity(prepared, target, backend, param)
        sampled, used = checked.values, checked.resources
        resources = used if resources is None else resources + used
        res = circuit_resources(encoding_circuit(enc, q, rows[0]))
        out[enc] = {"qubits": q, "depth": res["depth"], "two_qubit_gates": res["two_qubit_gates"],
                    "parameters": int(rows.shape[1] if enc == "angle" else 2**q - 1),
                    "fidelity_exact_mean": float(exact.mean()), "fidelity_exact_min": float(exact.min()),
                    "fidelity_shots_mean": float(sampled.mean()), "fidelity_shots_min": float(sampled.min()),
                    "samples": len(X), "swap_test_circuits": used.circuits, "shots": used.shots,
                    "classical_bytes_float32": 4 * d, "classical_bytes_float64": 8 * d,
                    "amplitudes_loaded": int(2**q)}
    return out, resources


def resource_sweep(dims: tuple[int, ...] = (4, 8, 16, 32, 64)) -> list[dict[str, Any]]:
    """Transpiled depth and two-qubit gates of both encodings against feature dimension (generic angles:
    the gate structure does not depend on the data)."""
    rows = []
    for d in dims:
        for enc in ENCODINGS:
            q = n_qubits_for(enc, d)
            r = circuit_resources(encoding_circuit(enc, q))
            rows.append({"dim": d, "encoding": enc, "qubits": q, "depth": r["depth"],
                         "two_qubit_gates": r["two_qubit_gates"]})
    return rows


def plot_sweep(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """PNG: depth and two-qubit gates against feature dimension, one line per encoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qlife.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key in zip(axes, ("depth", "two_qubit_gates")):
        for enc in ENCODINGS:
            pts = [(r["dim"], r[key]) for r in rows if r["encoding"] == enc]
            ax.plot(*zip(*pts), marker="o", label=enc)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("feature dimension")
        ax.set_ylabel(key.replace("_", " ") + " (transpiled)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Data-loading circuits: amplitude (log2 d qubits) vs angle (d qubits)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})  # no timestamp: stable bytes
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- stage 2 verdict

Classifier = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ResourceCount | None]]


def _symmetric(K: np.ndarray) -> np.ndarray:
    """A train x train Gram from its strict upper triangle, mirrored, with F(x, x) = 1 on the diagonal: the swap
    tests a symmetric kernel needs are the m(m - 1) / 2 distinct pairs."""
    K = np.triu(K, 1)
    K = K + K.T
    np.fill_diagonal(K, 1.0)
    return K


def cos2_gram(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """cos²(a_i, b_j) of feature rows, computed classically: the twin of the amplitude encoding's fidelity."""
    a, b = unit_rows(np.asarray(A, dtype=np.float64)), unit_rows(np.asarray(B, dtype=np.float64))
    return np.square(a @ b.T)


def amplitude_fidelity_grams(X_train: np.ndarray, X_test: np.ndarray, backend: Any = "shots",
                             param: str = "backend") -> tuple[np.ndarray, np.ndarray, ResourceCount]:
    """The fidelity kernel of the amplitude-encoded feature rows (zero-padded to 2^q, unit norm: exactly the
    rows' cos²), estimated by swap tests on `backend` (an analytic one: statevector or shots, whose estimate is
    the swap test's binomial): train x train from its m(m - 1) / 2 distinct pairs, then test x train. Returns
    both Grams and the swap tests' resources as the backend counts them."""
    q = n_qubits_for("amplitude", X_train.shape[1])
    A, B = amplitude_states(X_train, q), amplitude_states(X_test, q)
    kernel = FidelityKernel(backend, "amplitude", q, param)
    if not kernel.analytic:
        raise ValueError(f"{param}: the kernel verdict needs an analytic backend (statevector or shots): "
                         f"{len(A) ** 2 // 2 + len(A) * len(B)} swap-test circuits")
    m = len(A)
    K_train = _symmetric(kernel.gram(A, A, circuits=m * (m - 1) // 2))
    return K_train, kernel.gram(B, A), kernel.resources


def kernel_svm(K_train: np.ndarray, y_train: np.ndarray, K_test: np.ndarray, C: float = 1.0) -> np.ndarray:
    """Test predictions of an SVM on a precomputed kernel (classes weighted by inverse frequency)."""
    from sklearn.svm import SVC

    return SVC(kernel="precomputed", C=C, class_weight="balanced").fit(K_train, y_train).predict(K_test)


def loading_classifiers(backend: Any = "shots", param: str = "backend") -> dict[str, Classifier]:
    """Stage 2's per-document comparison: each (X_train, y_train, X_test) -> (test predictions, quantum resources
    or None), the same features (the PCA projection) and the same train split for all:

    - `amplitude_fidelity_svm` (quantum): an SVM (C = 1, balanced) on the fidelity kernel of the amplitude-
      encoded states, estimated by swap tests on `backend` (finite shots: what data loading gives hardware);
    - `cos2_svm` (its twin): the same SVM on cos² of the features, computed classically. For exact amplitude
      encoding of unit vectors F = cos²: the same mathematics, so the two differ by the shot noise alone;
    - `rbf_svm` (RBF kernel, gamma "scale") and `logistic` (logistic regression): classical classifiers of the
      same features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    def quantum(X, y, Xt):
        K, Kt, used = amplitude_fidelity_grams(X, Xt, backend, param)
        return kernel_svm(K, y, Kt), used

    def twin(X, y, Xt):
        return kernel_svm(_symmetric(cos2_gram(X, X)), y, cos2_gram(Xt, X)), None

    def rbf(X, y, Xt):
        return SVC(kernel="rbf", gamma="scale", class_weight="balanced").fit(X, y).predict(Xt), None

    def logistic(X, y, Xt):
        return LogisticRegression(max_iter=2000, class_weight="balanced").fit(X, y).predict(Xt), None

    return {"amplitude_fidelity_svm": quantum, "cos2_svm": twin, "rbf_svm": rbf, "logistic": logistic}
