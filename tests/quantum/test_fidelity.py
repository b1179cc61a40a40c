"""Fidelity backends: exact, shots and aer agree within sampling error; ibm needs its token."""

import numpy as np
import pytest

from qlife.quantum import QuantumBackendError
from qlife.quantum.circuits import variational_circuit
from qlife.quantum.fidelity import NoiseParams, circuit_fidelity, fidelity, fidelity_distance, gram


def _pairs(n: int, count: int, seed: int, real: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(count, 2**n)) + (0 if real else 1j * rng.normal(size=(count, 2**n)))
    b = a + rng.normal(size=a.shape) * (1 if real else (1 + 1j))
    return a, b


@pytest.mark.parametrize("n,real", [(2, False), (3, True)])
def test_aer_and_shots_agree_within_sampling_error(n, real):
    a, b = _pairs(n, 12, n, real)
    shots = 4000
    exact = fidelity(a, b).values
    sigma = 2 * np.sqrt(0.25 / shots)  # F = 2 P0 - 1: std <= 2 sqrt(P0 (1 - P0) / shots)
    for backend in ("shots", "aer"):
        est = fidelity(a, b, backend, shots=shots, seed=1).values
        assert np.abs(est - exact).max() < 5 * sigma, backend
    diff = (
        fidelity(a, b, "aer", shots=shots, seed=2).values
        - fidelity(a, b, "shots", shots=shots, seed=3).values
    )
    assert np.abs(diff).max() < 5 * np.sqrt(2) * sigma


def test_noise_lowers_the_fidelity_estimate():
    a, b = _pairs(2, 6, 0)
    clean = fidelity(a, b, "aer", shots=4000, seed=0).values
    noisy = fidelity(
        a, b, "aer", shots=4000, seed=0, noise=NoiseParams(p1=0.01, p2=0.05, readout=0.05)
    ).values
    assert noisy.mean() < clean.mean()


def test_gram_and_distance():
    a, b = _pairs(3, 4, 5)
    g = gram(a, b[:3]).values
    assert g.shape == (4, 3)
    assert g[1, 2] == pytest.approx(fidelity(a[1:2], b[2:3]).values[0])
    assert np.allclose(np.diag(gram(a, a).values), 1.0)
    assert fidelity_distance(np.array([1.0, 0.25])).tolist() == pytest.approx([0.0, 1.0])
    assert fidelity_distance(np.array([0.25]), "linear")[0] == pytest.approx(0.75)


def test_circuit_fidelity_statevector_vs_aer():
    vc = variational_circuit(2, 1)
    rng = np.random.default_rng(0)
    w, xa, xb = rng.uniform(size=vc.num_weights), rng.uniform(size=(3, 2)), rng.uniform(size=(3, 2))
    exact = circuit_fidelity(vc, xa, xb, w).values
    aer = circuit_fidelity(vc, xa, xb, w, "aer", shots=8000, seed=0)
    assert np.abs(aer.values - exact).max() < 0.06
    assert aer.resources.qubits == 5 and aer.resources.circuits == 3 and aer.resources.executed_on == "aer"


def test_ibm_without_token_names_the_variable(monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    a, b = _pairs(1, 2, 0)
    with pytest.raises(QuantumBackendError, match="QISKIT_IBM_TOKEN"):
        fidelity(a, b, "ibm")


def test_unknown_backend_is_an_error():
    a, b = _pairs(1, 2, 0)
    with pytest.raises(QuantumBackendError, match="unknown"):
        fidelity(a, b, "magic")
