"""Quantum kernels on feature vectors: exact values against qiskit's Statevector and partial_trace, PSD Gram
matrices, shot estimates unbiased with a spread that shrinks, aer circuits agreeing within shot error and counted,
concentration at large bandwidth, and clear refusals of bad input."""

import numpy as np
import pytest
from qiskit.circuit.library import zz_feature_map
from qiskit.quantum_info import Statevector, partial_trace

from qlife.quantum import kernels
from qlife.quantum.kernels import (
    KINDS,
    ProjectedQuantumKernel,
    QuantumFidelityKernel,
    concentration,
    feature_map,
    median_gamma,
)
from qlife.quantum.memory import ResourceLimitError

CLEAN_AER = {"kind": "aer", "shots": 4000, "seed": 1, "noise": None}


def _rows(count: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, d))


def _qiskit_states(X: np.ndarray, kind: str, bandwidth: float, reps: int = 2) -> list[Statevector]:
    qc = feature_map(X.shape[1], reps, kind=kind)
    return [Statevector(qc.assign_parameters(bandwidth * x)) for x in X]


@pytest.mark.parametrize("kind", KINDS)
def test_fidelity_kernel_is_the_overlap_of_the_qiskit_states(kind):
    A, B = _rows(5, 4, 0), _rows(4, 4, 1)
    kernel = QuantumFidelityKernel("statevector", 4, bandwidth=0.8, kind=kind)
    sa, sb = _qiskit_states(A, kind, 0.8), _qiskit_states(B, kind, 0.8)
    ref = np.array([[abs(a.inner(b)) ** 2 for b in sb] for a in sa])
    assert np.abs(kernel.gram(A, B) - ref).max() < 1e-10
    sym = np.array([[abs(a.inner(b)) ** 2 for b in sa] for a in sa])
    assert np.abs(kernel.gram(A) - sym).max() < 1e-10
    psi = kernel.statevectors(A)  # the reference path: the same states up to a global phase
    assert np.abs(np.abs(np.einsum("ij,ij->i", psi.conj(), np.array([s.data for s in sa]))) - 1).max() < 1e-10


def test_zz_map_is_qiskits_zz_feature_map():
    x = _rows(3, 4, 2)
    ours = _qiskit_states(x, "zz", 1.0)
    theirs = [Statevector(zz_feature_map(4, reps=2, entanglement="linear").assign_parameters(r)) for r in x]
    assert all(abs(abs(a.inner(b)) - 1) < 1e-10 for a, b in zip(ours, theirs))


def test_angle_map_is_the_product_cosine_kernel():
    A, B = _rows(6, 5, 3), _rows(4, 5, 4)
    bw = 0.6
    ref = np.prod(np.cos(bw * (A[:, None, :] - B[None, :, :]) / 2) ** 2, axis=2)
    assert np.abs(QuantumFidelityKernel("statevector", 5, bandwidth=bw, kind="angle").gram(A, B) - ref).max() < 1e-12
    # the closed form needs no statevector: 30 qubits are fine for the classically trivial control
    wide = QuantumFidelityKernel("statevector", 30, bandwidth=bw, kind="angle")
    a30, b30 = _rows(3, 30, 5), _rows(2, 30, 6)
    ref30 = np.prod(np.cos(bw * (a30[:, None, :] - b30[None, :, :]) / 2) ** 2, axis=2)
    assert np.abs(wide.gram(a30, b30) - ref30).max() < 1e-12


@pytest.mark.parametrize("kind", ["reuploading", "zz"])
def test_projected_kernel_matches_reduced_density_matrices(kind):
    n, bw, gamma = 4, 0.7, 0.9
    A, B = _rows(4, n, 7), _rows(3, n, 8)

    def rdms(states):
        return [[partial_trace(s, [j for j in range(n) if j != k]).data for k in range(n)] for s in states]

    ra, rb = rdms(_qiskit_states(A, kind, bw)), rdms(_qiskit_states(B, kind, bw))
    ref = np.array([[np.exp(-gamma * sum(np.linalg.norm(a[k] - b[k]) ** 2 for k in range(n))) for b in rb]
                    for a in ra])
    kernel = ProjectedQuantumKernel("statevector", n, bandwidth=bw, gamma=gamma, kind=kind)
    assert np.abs(kernel.gram(A, B) - ref).max() < 1e-10
    # Bloch features: rho_k = (I + x X + y Y + z Z) / 2
    F = kernel.features(A).reshape(len(A), n, 3)
    assert np.abs(F[:, :, 0] - 2 * np.array([[r[k][1, 0].real for k in range(n)] for r in ra])).max() < 1e-10
    assert np.abs(F[:, :, 1] - 2 * np.array([[r[k][1, 0].imag for k in range(n)] for r in ra])).max() < 1e-10
    assert np.abs(F[:, :, 2] - np.array([[(r[k][0, 0] - r[k][1, 1]).real for k in range(n)] for r in ra])
                  ).max() < 1e-10


def test_median_heuristic_gamma_from_fit_or_pooled_rows():
    X = _rows(6, 4, 9)  # 15 distinct pairs: the median is one of them
    kernel = ProjectedQuantumKernel("statevector", 4).fit(X)
    K = kernel.gram(X)
    assert kernel.gamma_ == kernel.last_gamma
    assert abs(np.median(K[np.triu_indices(6, 1)]) - np.exp(-1)) < 1e-12
    unfitted = ProjectedQuantumKernel("statevector", 4)
    A, B = X[:3], _rows(4, 4, 10)
    unfitted.gram(A, B)
    assert unfitted.gamma_ is None
    assert unfitted.last_gamma == median_gamma(np.vstack([unfitted.features(A), unfitted.features(B)]))


@pytest.mark.parametrize("kind", KINDS)
def test_gram_is_symmetric_psd_with_unit_diagonal(kind):
    X = _rows(12, 5, 11)
    for kernel in (QuantumFidelityKernel("statevector", 5, bandwidth=0.9, kind=kind),
                   ProjectedQuantumKernel("statevector", 5, bandwidth=0.9, kind=kind)):
        K = kernel.gram(X)
        assert np.array_equal(K, K.T) and np.all(np.diag(K) == 1.0)
        assert np.linalg.eigvalsh(K).min() > -1e-9
        assert np.abs(kernel.gram(X, X.copy()) - K).max() < 1e-10


def test_chunked_states_give_the_same_gram(monkeypatch):
    A, B = _rows(7, 4, 12), _rows(5, 4, 13)
    whole = QuantumFidelityKernel("statevector", 4).gram(A, B)
    whole_p = ProjectedQuantumKernel("statevector", 4, gamma=1.0).gram(A, B)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 2 * 16 * 2**4)  # two states a chunk: B is recomputed per chunk
    assert np.abs(QuantumFidelityKernel("statevector", 4).gram(A, B) - whole).max() < 1e-12
    assert np.abs(ProjectedQuantumKernel("statevector", 4, gamma=1.0).gram(A, B) - whole_p).max() < 1e-12


def test_shot_estimates_are_unbiased_shrink_with_shots_and_reproduce():
    X = _rows(10, 3, 14)
    iu = np.triu_indices(10, 1)
    exact = QuantumFidelityKernel("statevector", 3, bandwidth=0.5).gram(X)[iu]
    errors = {}
    for shots in (100, 10000):
        est = QuantumFidelityKernel({"kind": "shots", "shots": shots, "seed": 3}, 3, bandwidth=0.5).gram(X)
        assert np.all(np.diag(est) == 1.0) and np.array_equal(est, est.T)
        err = est[iu] - exact
        sd_mean = np.sqrt(np.sum(exact * (1 - exact)) / shots) / len(err)
        assert abs(err.mean()) < 3 * sd_mean
        errors[shots] = np.sqrt(np.mean(err**2))
    assert errors[10000] < 0.3 * errors[100]
    spec = {"kind": "shots", "shots": 500, "seed": 7}
    first = QuantumFidelityKernel(spec, 3).gram(X[:4], X[4:])
    assert np.array_equal(first, QuantumFidelityKernel(spec, 3).gram(X[:4], X[4:]))
    assert not np.array_equal(first, QuantumFidelityKernel({**spec, "seed": 8}, 3).gram(X[:4], X[4:]))
    kernel = QuantumFidelityKernel(spec, 3)
    kernel.gram(X[:4], X[4:])
    kernel.gram(X[:4])
    assert kernel.resources.circuits == 4 * 6 + 6 and kernel.resources.shots == 30 * 500


def test_projected_shot_features_are_unbiased_and_counted():
    X = _rows(20, 3, 15)
    exact = ProjectedQuantumKernel("statevector", 3).features(X)
    rms = {}
    for shots in (100, 10000):
        kernel = ProjectedQuantumKernel({"kind": "shots", "shots": shots, "seed": 2}, 3)
        err = kernel.features(X) - exact
        assert abs(err.mean()) < 3 * np.sqrt(np.sum(1 - exact**2) / shots) / err.size
        rms[shots] = np.sqrt(np.mean(err**2))
        assert kernel.resources.circuits == 3 * len(X)  # one circuit per basis per row
    assert rms[10000] < 0.3 * rms[100]



def test_shot_kernels_are_sampled_by_the_runner_as_the_former_binomials():
    """On `shots` both kernels take their estimates from the backend layer (`sample_outcome`, `sample_expectation`),
    which draws exactly the binomials the kernels used to draw themselves: the same values for the same seed."""
    X, Y = _rows(6, 3, 16), _rows(4, 3, 17)
    spec = {"kind": "shots", "shots": 500, "seed": 5}
    kernel, rng = QuantumFidelityKernel(spec, 3, bandwidth=0.7), np.random.default_rng(5)
    iu = np.triu_indices(6, 1)
    exact_sym, exact = kernel.exact(X, X)[iu], kernel.exact(X, Y)
    sym = kernel.gram(X)
    assert np.array_equal(sym[iu], rng.binomial(500, np.clip(exact_sym, 0, 1)) / 500)
    assert np.array_equal(kernel.gram(X, Y), rng.binomial(500, np.clip(exact, 0, 1)) / 500)
    projected, rng = ProjectedQuantumKernel(spec, 3), np.random.default_rng(5)
    bloch = projected.exact_features(X)
    former = 2.0 * rng.binomial(500, np.clip((1.0 + bloch) / 2.0, 0.0, 1.0)) / 500 - 1.0
    assert np.array_equal(projected.features(X), former)

def test_aer_circuits_agree_with_exact_and_are_counted():
    X = _rows(3, 3, 16)
    exact = QuantumFidelityKernel("statevector", 3).gram(X)
    sigma = np.sqrt(0.25 / CLEAN_AER["shots"])
    kernel = QuantumFidelityKernel(CLEAN_AER, 3, max_circuits=20)
    K = kernel.gram(X)
    assert np.abs(K - exact).max() < 5 * sigma and np.all(np.diag(K) == 1.0)
    assert kernel.resources.circuits == 3  # the pairs i < j
    full = kernel.gram(X, X.copy())  # every pair, the diagonal measured as well
    assert np.abs(full - exact).max() < 5 * sigma
    res = kernel.resources
    assert res.circuits == 12 and res.shots == 12 * 4000 and res.executed_on == "aer" and res.qubits == 3
    assert res.two_qubit_gates > 0
    projected = ProjectedQuantumKernel(CLEAN_AER, 3)
    F = projected.features(X)
    assert np.abs(F - ProjectedQuantumKernel("statevector", 3).features(X)).max() < 5 / np.sqrt(4000)
    assert projected.resources.circuits == 9


def test_large_bandwidth_concentrates_the_fidelity_kernel():
    X = _rows(24, 8, 17)
    stats = {bw: concentration(QuantumFidelityKernel("statevector", 8, bandwidth=bw).gram(X)) for bw in (0.3, 3.0)}
    assert stats[3.0]["std"] < 0.5 * stats[0.3]["std"]
    assert stats[3.0]["mean"] < 0.2 * stats[0.3]["mean"]
    assert stats[3.0]["fraction_below"] > stats[0.3]["fraction_below"] == 0.0
    assert stats[0.3]["entries"] == 24 * 23 and stats[0.3]["offdiagonal"]


def test_concentration_statistics():
    K = np.array([[1.0, 0.2, 0.0005], [0.2, 1.0, 0.4], [0.0005, 0.4, 1.0]])
    c = concentration(K)
    off = np.array([0.2, 0.0005, 0.2, 0.4, 0.0005, 0.4])
    assert c["entries"] == 6 and c["min"] == 0.0005 and c["max"] == 0.4
    assert np.isclose(c["mean"], off.mean()) and np.isclose(c["std"], off.std())
    assert np.isclose(c["fraction_below"], 1 / 3)
    rect = concentration(K[:2])
    assert rect["entries"] == 6 and not rect["offdiagonal"] and rect["max"] == 1.0
    assert np.isnan(concentration(np.ones((1, 1)))["mean"])


def test_bad_input_is_refused_clearly():
    kernel = QuantumFidelityKernel("statevector", 4)
    with pytest.raises(ValueError, match=r"shape \(rows, 4\).*n_qubits=4"):
        kernel.gram(_rows(3, 5, 0))
    bad = _rows(3, 4, 0)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 row.*row 1"):
        kernel.gram(_rows(2, 4, 1), bad)
    with pytest.raises(ValueError, match="NaN"):
        ProjectedQuantumKernel("statevector", 4).fit(bad)
    with pytest.raises(ValueError, match="kind must be one of"):
        QuantumFidelityKernel("statevector", 4, kind="iqp")
    with pytest.raises(ValueError, match="bandwidth"):
        QuantumFidelityKernel("statevector", 4, bandwidth=0.0)
    with pytest.raises(ResourceLimitError, match="simulator.*my.backend"):
        QuantumFidelityKernel("statevector", 30, param="my.backend")
    capped = QuantumFidelityKernel(CLEAN_AER, 2, max_circuits=5, param="monitor.quantum.backend")
    with pytest.raises(ResourceLimitError, match="16 compute-uncompute circuits.*max_circuits=5.*monitor.quantum"):
        capped.gram(_rows(4, 2, 2), _rows(4, 2, 3))
    assert capped.circuits == 0  # refused before running
    with pytest.raises(ResourceLimitError, match="max_circuits=5"):
        ProjectedQuantumKernel(CLEAN_AER, 2, max_circuits=5).features(_rows(2, 2, 4))
