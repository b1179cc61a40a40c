"""Quantum natural gradient: the block-diagonal metric against a finite-difference Fubini-Study metric, and
a QNG step against plain gradient descent at the same step size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector

from qlife.quantum.circuits import VariationalCircuit, variational_circuit
from qlife.quantum.qng import QNG, BlockDiagMetric, apply_pauli, circuit_blocks, fubini_study
from qlife.quantum.simulator import compile_circuit


@pytest.mark.parametrize("entanglement,rotations", [("ring", ("ry", "rz")), ("linear", ("rx", "ry", "rz")),
                                                    ("full", ("rz", "rx"))])
def test_block_diagonal_metric_equals_the_finite_difference_fubini_study_metric(entanglement, rotations):
    vc = variational_circuit(3, 2, "angle", rotations, entanglement, "cx", True, "ry")
    metric = BlockDiagMetric(vc)
    assert len(metric.blocks) == 2 * len(rotations)  # one block per rotation kind and layer
    sim = compile_circuit(vc, dtype=torch.complex128)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, generator=gen, dtype=torch.float64) * 6 - 3
    w = torch.rand(len(vc.weights), generator=gen, dtype=torch.float64) * 6 - 3
    full = torch.stack([fubini_study(lambda ww, i=i: sim.state(x[i:i + 1], ww)[0], w) for i in range(5)]).mean(0)
    dense = metric.dense(x, w)
    for b in metric.blocks:
        idx = torch.as_tensor(b.weights)
        torch.testing.assert_close(dense[idx[:, None], idx[None, :]], full[idx[:, None], idx[None, :]],
                                   rtol=0, atol=1e-5)
    off = torch.ones_like(dense, dtype=torch.bool)
    for b in metric.blocks:
        idx = torch.as_tensor(b.weights)
        off[idx[:, None], idx[None, :]] = False
    assert (dense[off] == 0).all()
    assert (full[off].abs() > 1e-3).any()  # the approximation drops real correlations: the test can tell


def test_scaled_and_offset_angles_and_a_circuit_without_inputs():
    """Angle 2*theta + 0.3 has generator 2 * P / 2; a block ends where a gate touches its qubit again."""
    t = ParameterVector("t", 3)
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.ry(2 * t[0] + 0.3, 0)
    qc.rx(t[1], 1)
    qc.rz(t[2], 0)  # same qubit as t[0]: a new block
    qc.cx(0, 1)
    vc = VariationalCircuit(qc, (), tuple(t))
    blocks = circuit_blocks(vc)
    assert [b.weights for b in blocks] == [(0, 1), (2,)] and blocks[0].coefs == (2.0, 1.0)
    sim = compile_circuit(vc, dtype=torch.complex128)
    w = torch.tensor([0.4, -1.1, 0.8], dtype=torch.float64)
    full = fubini_study(lambda ww: sim.state(None, ww)[0], w)
    dense = BlockDiagMetric(vc).dense(None, w)
    torch.testing.assert_close(dense[:2, :2], full[:2, :2], rtol=0, atol=1e-5)
    torch.testing.assert_close(dense[2, 2], full[2, 2], rtol=0, atol=1e-5)


def test_unsupported_trainable_gates_are_refused():
    t = Parameter("t")
    qc = QuantumCircuit(2)
    qc.crx(t, 0, 1)
    with pytest.raises(ValueError, match="not supported"):
        circuit_blocks(VariationalCircuit(qc, (), (t,)))
    qc = QuantumCircuit(1)
    qc.ry(t * t, 0)
    with pytest.raises(ValueError, match="not linear"):
        circuit_blocks(VariationalCircuit(qc, (), (t,)))


def test_apply_pauli_matches_the_matrix_on_each_qubit():
    rng = np.random.default_rng(0)
    psi = torch.as_tensor(rng.normal(size=(2, 8)) + 1j * rng.normal(size=(2, 8)))
    mats = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}
    for p, m in mats.items():
        for q in range(3):
            ops = [np.eye(2)] * 3
            ops[2 - q] = m  # kron order: qubit 2 is the most significant bit
            full = np.kron(np.kron(ops[0], ops[1]), ops[2])
            np.testing.assert_allclose(apply_pauli(psi, p, q, 3).numpy(), psi.numpy() @ full.T, atol=1e-12)


def _toy_loss(sim, x, w):
    z = sim.expval_z(x, w)
    return (z[:, 0] + 0.5 * z[:, 1]).mean()


def test_a_qng_step_lowers_the_loss_more_than_plain_gradient_at_the_same_step_size():
    vc = variational_circuit(2, 2, "angle", ("ry", "rz"), "linear", "cx", True, "ry")
    sim = compile_circuit(vc, dtype=torch.complex128)
    x = torch.tensor([[0.3, -0.8], [1.2, 0.4]], dtype=torch.float64)
    lr, wins = 0.05, 0
    for seed in range(10):
        w0 = (torch.rand(len(vc.weights), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
              * 2 - 1) * np.pi
        drops = {}
        for how in ("gd", "qng"):
            w = torch.nn.Parameter(w0.clone())
            loss0 = _toy_loss(sim, x, w)
            loss0.backward()
            if how == "gd":
                with torch.no_grad():
                    w -= lr * w.grad
            else:
                QNG(w, BlockDiagMetric(vc), lr=lr, regularization=1e-4).step(x)
            with torch.no_grad():
                drops[how] = float(loss0 - _toy_loss(sim, x, w))
        assert drops["gd"] > 0
        wins += drops["qng"] > drops["gd"]
    assert wins == 10


def test_qng_counts_the_metric_cost_and_validates_its_arguments():
    vc = variational_circuit(2, 1, "angle", ("ry",), "linear", "cx", True, "ry")
    metric = BlockDiagMetric(vc)
    w = torch.nn.Parameter(torch.zeros(len(vc.weights)))
    opt = QNG(w, metric, lr=0.1)
    w.grad = torch.ones_like(w)
    opt.step(torch.zeros(7, 2))
    assert metric.cost() == {"metric_calls": 1, "metric_blocks": 1, "metric_statevectors": 7,
                             "metric_hardware_circuits": 7}
    with pytest.raises(ValueError, match="lr > 0"):
        QNG(w, metric, lr=0.0)
    with pytest.raises(ValueError, match="weights of shape"):
        QNG(torch.nn.Parameter(torch.zeros(3)), metric)
