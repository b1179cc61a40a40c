"""The fidelity kernel on every backend kind: exact, shots and aer agree within sampling error; the swap-test
circuit on the statevector backend equals the analytic overlap; a device model and noise lower it; ibm needs
its token and never falls back."""

import numpy as np
import pytest

from qlife.quantum import QuantumBackendError
from qlife.quantum.circuits import variational_circuit
from qlife.quantum.fidelity import FidelityKernel, circuit_fidelity, fidelity, fidelity_distance, gram

CLEAN_AER = {"kind": "aer", "shots": 4000, "seed": 1, "noise": None}


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
    for backend in ({"kind": "shots", "shots": shots, "seed": 1}, CLEAN_AER):
        est = fidelity(a, b, backend).values
        assert np.abs(est - exact).max() < 5 * sigma, backend



def test_shot_estimates_come_from_the_runner_and_match_the_former_binomial(monkeypatch):
    """On `shots` the swap test's ancilla is sampled by the backend layer (`sample_expectation`), drawing exactly
    the binomial the kernel used to draw itself: the same values for the same seed, forks included."""
    from qlife.quantum.backends import ShotsRunner
    from qlife.quantum.fidelity import exact_gram, exact_pairs

    a, b = _pairs(3, 9, 5, real=True)
    spec = {"kind": "shots", "shots": 300, "seed": 4}

    def former(exact, rng):  # the estimate fidelity.py computed before the backend layer owned it
        k = rng.binomial(300, np.clip((1.0 + exact) / 2.0, 0.0, 1.0))
        return np.clip(2.0 * k / 300 - 1.0, 0.0, 1.0)

    calls = []
    original = ShotsRunner.sample_expectation
    monkeypatch.setattr(ShotsRunner, "sample_expectation",
                        lambda self, e, rng=None: calls.append(np.shape(e)) or original(self, e, rng))
    kernel = FidelityKernel(spec, "amplitude", 3)
    rng = np.random.default_rng(4)
    assert np.array_equal(kernel.gram(a, b), former(exact_gram(a, b, "amplitude"), rng))
    assert np.array_equal(kernel.pairs(a, b), former(exact_pairs(a, b, "amplitude"), rng))
    fork = FidelityKernel(spec, "amplitude", 3).fork(np.random.SeedSequence(11))
    fork_rng = np.random.default_rng(np.random.SeedSequence(11, spawn_key=(4,)))
    assert np.array_equal(fork.gram(a, a), former(exact_gram(a, a, "amplitude"), fork_rng))
    assert calls == [(9, 9), (9,), (9, 9)]

def test_the_swap_test_circuit_gives_the_analytic_overlap():
    # the statevector backend runs the real parameterized swap-test circuit: P(0) = (1 + F) / 2 exactly
    a, b = _pairs(3, 5, 0, real=True)
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    kernel = FidelityKernel("statevector", "amplitude", 3)
    assert np.abs(kernel._run(a, b) - fidelity(a, b).values).max() < 1e-12
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, np.pi, (4, 3)), rng.uniform(0, np.pi, (4, 3))
    angle = FidelityKernel("statevector", "angle", 3)
    assert np.abs(angle._run(x, y) - angle.pairs(x, y)).max() < 1e-12


@pytest.mark.slow  # a device model (fake_torino) simulated: the default suite keeps one such test
def test_noise_and_a_device_model_lower_the_fidelity_estimate():
    a, b = _pairs(2, 6, 0, real=True)
    clean = fidelity(a, b, CLEAN_AER).values
    noisy = fidelity(a, b, {"kind": "aer", "shots": 4000, "seed": 1,
                            "noise": {"p1": 0.01, "p2": 0.05, "readout": 0.05}}).values
    assert noisy.mean() < clean.mean()
    device = fidelity(a, b, {"kind": "device", "device": "fake_torino", "shots": 4000, "seed": 1})
    assert device.values.mean() < clean.mean() + 0.02
    res = device.resources
    assert res.device == "fake_torino" and res.executed_on == "aer" and res.circuits == 6
    assert res.qubits == 5 and res.two_qubit_gates > 0 and res.depth > 0


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
    aer = circuit_fidelity(vc, xa, xb, w, {"kind": "aer", "shots": 8000, "noise": None})
    assert np.abs(aer.values - exact).max() < 0.06
    assert aer.resources.qubits == 5 and aer.resources.circuits == 3 and aer.resources.executed_on == "aer"


def test_ibm_without_token_names_the_variable(monkeypatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    a, b = _pairs(1, 2, 0)
    with pytest.raises(QuantumBackendError, match="QISKIT_IBM_TOKEN"):
        fidelity(a, b, "ibm")


def test_unknown_backend_is_an_error():
    a, b = _pairs(1, 2, 0)
    with pytest.raises(QuantumBackendError, match="not a circuit backend"):
        fidelity(a, b, "magic")


@pytest.mark.slow  # 8 s of device-model simulation; tests/quantum/test_backends.py keeps a device test fast
def test_compare_backends_puts_a_device_model_beside_exact_on_the_same_pairs():
    # encode's loading check: two copies of each loaded document, exact F = 1; a device returns less
    from qlife.quantum.fidelity import compare_backends

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 8))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    out = compare_backends(rows, rows, "amplitude", 3, ["shots", {"kind": "device", "device": "fake_torino"}],
                           "encode.quantum.backends", threshold=0.9)
    assert out["pairs"] == 3 and out["exact_mean"] == pytest.approx(1.0)
    assert out["shots"]["mean_abs_error"] < 1e-12  # F = 1: P(0) = 1, no shot noise
    device = out["device:fake_torino"]
    assert device["device"] == "fake_torino" and device["swaps"] >= 0 and device["two_qubit_gates"] > 0
    assert device["mean"] < 1.0 and 0 <= device["decision_agreement"] <= 1
