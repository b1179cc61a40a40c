"""The torch simulator against qiskit's Statevector: every builder 1-12 qubits, every gate, gradients."""

import numpy as np
import pytest
import torch
from qiskit.circuit import Gate, Parameter, ParameterVector, QuantumCircuit
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import Statevector

from qlife.quantum import QuantumBackendError
from qlife.quantum.circuits import (
    amplitude_angles,
    amplitude_encoding,
    angle_encoding,
    hardware_efficient_ansatz,
    variational_circuit,
)
from qlife.quantum.simulator import (
    SUPPORTED_GATES,
    QuantumLayer,
    compile_circuit,
    export_qasm3,
)


def _reference(qc: QuantumCircuit, params: list, values: np.ndarray) -> np.ndarray:
    return Statevector(qc.assign_parameters(dict(zip(params, values)))).data


def _check(vc, rng, batch=2, tol=1e-5):
    sim = compile_circuit(vc)
    x = rng.uniform(-np.pi, np.pi, (batch, vc.num_inputs))
    w = rng.uniform(-np.pi, np.pi, vc.num_weights)
    psi = sim.state(torch.tensor(x), torch.tensor(w)).numpy()
    params = list(vc.inputs) + list(vc.weights)
    for b in range(batch):
        ref = _reference(vc.circuit, params, np.concatenate([x[b], w]))
        assert np.abs(psi[b] - ref).max() <= tol


@pytest.mark.parametrize("n", range(1, 13))
def test_every_builder_matches_statevector(n):
    rng = np.random.default_rng(n)
    ent = ["linear", "ring", "full"][n % 3]
    _check(variational_circuit(n, 2, entanglement=ent, entangler=["cx", "cz"][n % 2]), rng)
    _check(hardware_efficient_ansatz(n, 2, ("rx", "ry", "rz"), ent, "cz", reupload=True), rng)
    _check(variational_circuit(n, 1, encoding_rotation="rz", rotations=("rx",)), rng, batch=1)
    if n <= 10:  # amplitude encoding has 2^n - 2 CNOTs: qiskit's reference gets slow beyond
        _check(variational_circuit(n, 1, encoding="amplitude"), rng, batch=1)


@pytest.mark.slow
@pytest.mark.parametrize("n", [11, 12])
def test_amplitude_builder_matches_statevector_large(n):
    _check(variational_circuit(n, 1, encoding="amplitude"), np.random.default_rng(n), batch=1)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_amplitude_encoding_prepares_the_vector(n):
    v = np.random.default_rng(0).normal(size=(3, 2**n))
    sim = compile_circuit(amplitude_encoding(n))
    psi = sim.state(torch.tensor(amplitude_angles(v))).numpy()
    assert np.allclose(psi, v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-6)


def _gate_circuit(name: str, rng) -> tuple[QuantumCircuit, list[Parameter]]:
    gate = get_standard_gate_name_mapping()[name]
    theta = ParameterVector("θ", len(gate.params))
    qc = QuantumCircuit(3)
    for q in range(3):  # a random entangled start so every matrix entry matters
        qc.ry(rng.uniform(0, 3), q)
        qc.rz(rng.uniform(0, 3), q)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qubits = rng.permutation(3)[: gate.num_qubits].tolist()
    qc.append(gate.base_class(*theta) if gate.params else gate, qubits)
    qc.rx(0.3, 0)
    return qc, list(theta)


@pytest.mark.parametrize("name", SUPPORTED_GATES)
def test_each_gate_matches_statevector(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    qc, theta = _gate_circuit(name, rng)
    w = rng.uniform(-np.pi, np.pi, len(theta))
    for dtype, tol in ((torch.complex64, 1e-5), (torch.complex128, 1e-12)):
        psi = compile_circuit(qc, inputs=[], weights=theta, dtype=dtype).state(w=torch.tensor(w))
        assert np.abs(psi[0].numpy() - _reference(qc, theta, w)).max() <= tol, name


def test_batched_gate_angles_and_expressions():
    x, t = ParameterVector("x", 2), ParameterVector("θ", 2)
    qc = QuantumCircuit(2)
    qc.ry(2 * x[0] + 0.5, 0)
    qc.rx(x[1] * t[0], 1)  # nonlinear: evaluated through sympy
    qc.crz(x[0] - t[1], 0, 1)
    qc.rzz(t[0], 0, 1)
    qc.global_phase = t[1]
    rng = np.random.default_rng(1)
    xv, wv = rng.uniform(-2, 2, (4, 2)), rng.uniform(-2, 2, 2)
    psi = compile_circuit(qc).state(torch.tensor(xv), torch.tensor(wv)).numpy()
    for b in range(4):
        assert np.abs(psi[b] - _reference(qc, [*x, *t], np.concatenate([xv[b], wv]))).max() < 1e-5


def test_gradients_match_finite_differences():
    vc = hardware_efficient_ansatz(3, 2, ("ry", "rz"), "ring", "cx", reupload=True)
    sim = compile_circuit(vc, dtype=torch.complex128)
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True)
    w = torch.tensor(rng.uniform(-1, 1, vc.num_weights), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sim.expval_z(a, b), (x, w))


def test_expval_and_probs_agree_with_qiskit():
    vc = variational_circuit(4, 2)
    rng = np.random.default_rng(3)
    x, w = rng.uniform(-1, 1, (1, 4)), rng.uniform(-1, 1, vc.num_weights)
    sim = compile_circuit(vc)
    sv = Statevector(vc.circuit.assign_parameters(dict(zip([*vc.inputs, *vc.weights], [*x[0], *w]))))
    probs = sim.probs(torch.tensor(x), torch.tensor(w)).numpy()[0]
    assert np.allclose(probs, sv.probabilities(), atol=1e-6)
    z = sim.expval_z(torch.tensor(x), torch.tensor(w)).numpy()[0]
    ref = [
        sv.expectation_value(__import__("qiskit").quantum_info.Pauli("I" * (3 - q) + "Z" + "I" * q)).real
        for q in range(4)
    ]
    assert np.allclose(z, ref, atol=1e-6)


def test_unsupported_gate_is_a_clear_error():
    qc = QuantumCircuit(1)
    qc.append(Gate("mystery", 1, []), [0])
    with pytest.raises(QuantumBackendError, match="mystery"):
        compile_circuit(qc)
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with pytest.raises(QuantumBackendError, match="measure"):
        compile_circuit(qc)


def test_composite_gates_are_decomposed():
    inner = angle_encoding(2)
    qc = QuantumCircuit(2)
    qc.append(inner.to_gate(), [0, 1])
    x = list(qc.parameters)
    psi = compile_circuit(qc, inputs=x, weights=[]).state(torch.tensor([[0.3, -1.2]])).numpy()[0]
    assert np.abs(psi - _reference(qc, x, np.array([0.3, -1.2]))).max() < 1e-6


def test_too_many_qubits_is_refused():
    with pytest.raises(QuantumBackendError, match="qubits"):
        compile_circuit(QuantumCircuit(27))


def test_quantum_layer_trains_and_exports():
    torch.manual_seed(0)
    layer = QuantumLayer(variational_circuit(3, 2), seed=0)
    x = torch.rand(16, 3)
    target = torch.full((16, 3), -0.5)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    text = export_qasm3(variational_circuit(3, 2), layer.weights)
    assert text.startswith("OPENQASM 3") and "input float" in text
