"""Quantum k-means and quantum SemDeDup: assignments vs brute force, backends vs the engine, encodings."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from qlife.data.generator import generate_corpus
from qlife.methods.embed import tfidf_svd_embed
from qlife.methods.qencoding import (
    angle_statevectors,
    encode,
    encoding_report,
    exact_fidelity_gram,
    plot_sweep,
    reduce_dim,
    resource_sweep,
)
from qlife.methods.qkmeans import qkmeans, qsemdedup
from qlife.methods.semdedup import (
    cosine_similarity_matrix,
    dedup_scores,
    exact_duplicate_of,
    planted_groups,
    semdedup,
    semdedup_classical,
)
from qlife.quantum import QuantumBackendError
from qlife.quantum.circuits import angle_encoding
from qlife.quantum.fidelity import FidelityKernel, circuit_fidelity, fidelity, gram


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


def _blobs(n: int = 300, k: int = 5, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim))
    X = centers[rng.integers(k, size=n)] + 0.4 * rng.normal(size=(n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("encoding,q", [("amplitude", 4), ("angle", 6)])
def test_assignments_are_brute_force_nearest_centroid_by_exact_fidelity(encoding, q):
    states = encode(_blobs(), encoding, q)
    est = FidelityKernel("statevector", encoding, q)
    km = qkmeans(states, 5, est, seed=1, tol=0.0)
    assert km.converged
    # brute force, independent path: explicit statevectors, the engine's row-wise fidelity per (point, centroid)
    sv = states if encoding == "amplitude" else angle_statevectors(states)
    cv = km.centroids if encoding == "amplitude" else angle_statevectors(km.centroids)
    F = np.stack([fidelity(sv, np.repeat(cv[j][None], len(sv), 0)).values for j in range(len(cv))], axis=1)
    assert np.array_equal(km.labels, F.argmax(1))
    assert est.circuits >= km.n_iter * len(states) * 5  # one swap test per point-centroid pair, per iteration


def test_statevector_gram_is_the_engine_gram_and_shots_follow_its_model():
    states = encode(_blobs(40), "amplitude", 4)
    exact = FidelityKernel("statevector", "amplitude", 4).gram(states, states[:7])
    assert np.allclose(exact, gram(states, states[:7]).values, atol=1e-12)
    est = FidelityKernel({"kind": "shots", "shots": 1024, "seed": 0}, "amplitude", 4)
    a, b = states[:1].repeat(4000, 0), states[1:2].repeat(4000, 0)
    mine = est.gram(states[:1], states[1:2].repeat(4000, 0))[0]
    engine = fidelity(a, b, {"kind": "shots", "shots": 1024, "seed": 1}).values
    exact = float(gram(states[:1], states[1:2]).values[0, 0])
    assert abs(mine.mean() - exact) < 0.005 and abs(engine.mean() - exact) < 0.005
    assert mine.std() == pytest.approx(engine.std(), rel=0.1)  # same binomial swap-test model
    res = est.resources
    assert res.circuits == 4000 and res.shots == 4000 * 1024 and res.qubits == 9 and res.two_qubit_gates > 0


def test_angle_fidelity_matches_the_circuit():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, np.pi, (5, 4)), rng.uniform(0, np.pi, (5, 4))
    exact = circuit_fidelity(angle_encoding(4), a, b).values
    assert np.allclose(np.diag(exact_fidelity_gram(a, b, "angle")), exact, atol=1e-10)
    assert np.allclose(np.diag(exact_fidelity_gram(a, b, "angle")),
                       fidelity(angle_statevectors(a), angle_statevectors(b)).values, atol=1e-10)


def test_aer_runs_real_circuits_and_refuses_large_jobs():
    states = encode(_blobs(6, 2, 4, seed=3), "amplitude", 2)
    est = FidelityKernel({"kind": "aer", "shots": 4000, "noise": None}, "amplitude", 2, max_circuits=100)
    F = est.gram(states, states[:2])
    assert np.abs(F - gram(states, states[:2]).values).max() < 0.08
    assert est.resources.executed_on == "aer" and est.circuits == 12
    with pytest.raises(QuantumBackendError, match="max_circuits"):
        est.gram(states.repeat(20, 0), states[:2])
    with pytest.raises(QuantumBackendError, match="max_circuits"):  # before any circuit runs
        qsemdedup(np.eye(600, 8), n_clusters=50, n_qubits=3, backend="aer", max_circuits=1000)


def test_aer_quantum_kmeans_end_to_end_on_a_tiny_set():
    states = encode(_blobs(12, 2, 4, seed=4), "amplitude", 2)
    aer = FidelityKernel({"kind": "aer", "shots": 2000, "noise": None}, "amplitude", 2)
    km = qkmeans(states, 2, aer, seed=0, max_iter=5)
    exact = qkmeans(states, 2, FidelityKernel("statevector", "amplitude", 2), seed=0)
    same = np.mean(km.labels == exact.labels)
    assert max(same, 1 - same) >= 0.9  # the same partition up to label names


def test_reduce_dim_keeps_cosines_when_dim_covers_the_rank():
    X = _blobs(50, 3, 8)
    Z = reduce_dim(np.hstack([X, np.zeros((50, 8))]), 8)  # rank 8 in 16 columns
    assert np.allclose(cosine_similarity_matrix(X), Z @ Z.T, atol=1e-10)
    assert np.allclose(reduce_dim(X, 16)[:, :8], X)  # padding


def test_fidelity_threshold_reproduces_the_cosine_rule_on_the_same_clusters():
    X = _blobs(200, 4, 16, seed=2)
    X = np.vstack([X, X[:30] + 0.05 * np.random.default_rng(0).normal(size=(30, 16))])
    labels = np.random.default_rng(1).integers(4, size=len(X))
    eps = 0.07
    classical = semdedup(X, labels, cosine_similarity_matrix, 1 - eps, keep="random")
    states = encode(X, "amplitude", 4)
    quantum = semdedup(states, labels, lambda S: exact_fidelity_gram(S, S, "amplitude"), (1 - eps) ** 2,
                       keep="random")
    assert classical.n_removed > 20
    assert np.array_equal(classical.duplicate_of, quantum.duplicate_of)


@pytest.fixture(scope="module")
def small_corpus():
    c = generate_corpus(seed=1, n_docs=1000, live_size=20)
    texts = [d["text"] for d in c.docs]
    dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    X = tfidf_svd_embed([texts[i] for i in rest], dim=128, seed=0)
    groups = planted_groups([d["id"] for d in c.docs], {**c.exact_duplicates, **c.near_duplicates})

    def score(duplicate_of):
        removed = dup >= 0
        removed[rest[duplicate_of >= 0]] = True
        return dedup_scores(removed, groups)

    return X, score


def test_quantum_semdedup_matches_classical_on_planted_duplicates(small_corpus):
    X, score = small_corpus
    classical = score(semdedup_classical(X, 20, 0.07).duplicate_of)
    sv = qsemdedup(X, 20, 0.07)
    exact = score(sv.result.duplicate_of)
    assert exact["precision"] >= 0.9 and exact["recall"] >= 0.9, exact
    assert abs(exact["f1"] - classical["f1"]) <= 0.02, (exact, classical)
    assert sv.n_qubits == 7 and sv.resources.circuits > 0 and sv.resources.qubits == 15
    shots = qsemdedup(X, 20, 0.07, backend={"kind": "shots", "shots": 1024})
    assert abs(score(shots.result.duplicate_of)["f1"] - exact["f1"]) <= 0.05
    assert shots.resources.shots == shots.resources.circuits * 1024
    again = qsemdedup(X, 20, 0.07, backend={"kind": "shots", "shots": 1024})  # seeded: same decisions
    assert np.array_equal(again.result.duplicate_of, shots.result.duplicate_of)


def test_encoding_report_and_sweep(tmp_path):
    X = np.random.default_rng(0).normal(size=(8, 8))
    rep, res = encoding_report(X, {"kind": "shots", "shots": 256})
    assert res.circuits == 2 * 8 and res.shots == 2 * 8 * 256 and res.qubits == 2 * 8 + 1  # angle: 8 qubits
    amp, ang = rep["amplitude"], rep["angle"]
    assert amp["qubits"] == 3 and amp["two_qubit_gates"] <= 2**3 - 2 and amp["fidelity_exact_min"] > 1 - 1e-9
    assert ang["qubits"] == 8 and ang["two_qubit_gates"] == 0 and ang["fidelity_exact_min"] > 1 - 1e-9
    assert amp["shots"] == 8 * 256 and amp["classical_bytes_float32"] == 32
    sweep = resource_sweep((4, 8, 16))
    amp_gates = [r["two_qubit_gates"] for r in sweep if r["encoding"] == "amplitude"]
    assert amp_gates == [2, 6, 14]  # 2^q - 2 CNOTs of the RY/CNOT tree
    path = plot_sweep(sweep, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
