"""QUBO helpers and solvers: exact vs qaoa/sa/tabu, penalties, the qiskit-optimization reference."""

import dimod
import numpy as np
import pytest
from qiskit.circuit.library import QAOAAnsatz
from qiskit.quantum_info import Statevector
from qiskit_optimization import QuadraticProgram

from qlife.params import ExactSampler, QAOASampler, SASampler, TabuSampler
from qlife.quantum import QuantumBackendError
from qlife.quantum.backends import solve as solve_spec
from qlife.quantum.qaoa import qaoa_circuit, qaoa_expectation, qaoa_state
from qlife.quantum.qubo import (
    all_energies,
    from_matrix,
    from_quadratic_program,
    k_hot_penalty,
    normalize,
    one_hot_penalty,
)
from qlife.quantum.reference import qiskit_qaoa

SPECS = {"exact": ExactSampler, "qaoa": QAOASampler, "sa": SASampler, "tabu": TabuSampler}


def solve(bqm, kind, **settings):
    if kind == "exact":
        settings.pop("seed", None)
    return solve_spec(bqm, SPECS[kind](**settings), "test.sampler")


def _random_qubo(n: int, seed: int) -> dimod.BinaryQuadraticModel:
    return from_matrix(np.random.default_rng(seed).normal(size=(n, n)), offset=0.3)


def test_all_energies_match_dimod():
    bqm = _random_qubo(9, 0)
    e = all_energies(bqm)
    for k in np.random.default_rng(1).integers(0, 2**9, 20):
        x = dict(zip(bqm.variables, (k >> np.arange(9)) & 1))
        assert e[k] == pytest.approx(bqm.energy(x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solvers_reach_the_exact_optimum_on_12_variables(seed):
    bqm = _random_qubo(12, seed)
    best = solve(bqm, "exact").energy
    assert solve(bqm, "qaoa", seed=seed, p=2, restarts=2, maxiter=100).energy == pytest.approx(best)
    assert solve(bqm, "sa", seed=seed, num_reads=50).energy == pytest.approx(best)
    assert solve(bqm, "tabu", seed=seed, num_reads=2, timeout_ms=50).energy == pytest.approx(best)


def test_k_hot_penalty_gives_a_feasible_optimum():
    rng = np.random.default_rng(3)
    n, k = 10, 3
    bqm = dimod.BinaryQuadraticModel({i: -rng.uniform(0, 1) for i in range(n)}, {}, 0.0, dimod.BINARY)
    bqm.update(k_hot_penalty(range(n), k, strength=4.0))
    for solver in ("exact", "tabu", "sa"):
        res = solve(bqm, solver, seed=0)
        assert res.x.sum() == k, solver
    assert one_hot_penalty(["a", "b"], 2.0).energy({"a": 1, "b": 0}) == 0.0


def test_normalize_scales_energies():
    bqm = _random_qubo(5, 4)
    nb, factor = normalize(bqm)
    x = dict.fromkeys(bqm.variables, 1)
    assert nb.energy(x) == pytest.approx(factor * bqm.energy(x))
    assert max(abs(b) for b in list(nb.linear.values()) + list(nb.quadratic.values())) == pytest.approx(1.0)


def _qp() -> QuadraticProgram:
    qp = QuadraticProgram("ref")
    for i in range(4):
        qp.binary_var(f"x{i}")
    qp.minimize(
        linear=[1.0, -2.0, 0.5, -1.0],
        quadratic={("x0", "x1"): 1.5, ("x1", "x2"): -2.0, ("x2", "x3"): 1.0, ("x0", "x3"): 0.7},
    )
    qp.linear_constraint({"x0": 1, "x1": 1, "x2": 1, "x3": 1}, "==", 2)
    return qp


def test_from_quadratic_program_matches_qiskit_energies():
    qp = _qp()
    bqm = from_quadratic_program(qp)
    from qiskit_optimization.converters import QuadraticProgramToQubo

    qubo = QuadraticProgramToQubo().convert(qp)
    for k in range(16):
        x = [(k >> i) & 1 for i in range(4)]
        assert bqm.energy(dict(zip([v.name for v in qubo.variables], x))) == pytest.approx(
            qubo.objective.evaluate(x)
        )


def test_fast_qaoa_matches_qiskit_optimization_reference():
    qp = _qp()
    bqm = from_quadratic_program(qp)
    from qiskit_optimization.converters import QuadraticProgramToQubo

    op, offset = QuadraticProgramToQubo().convert(qp).to_ising()
    gammas, betas = np.array([0.11, -0.07]), np.array([0.4, 0.9])
    ansatz = QAOAAnsatz(op, reps=2)
    values = {p: (betas if p.name.startswith("β") else gammas)[p.index] for p in ansatz.parameters}
    ref = Statevector(ansatz.assign_parameters(values)).expectation_value(op).real + offset
    assert qaoa_expectation(bqm, gammas, betas) == pytest.approx(ref, abs=1e-9)
    # the exported circuit is the same state as the fast path
    psi = qaoa_state(all_energies(bqm), gammas, betas)
    assert np.abs(Statevector(qaoa_circuit(bqm, 2, gammas, betas)).data - psi).max() < 1e-10


def test_qaoa_finds_the_same_optimum_as_qiskit_optimization():
    bqm = from_quadratic_program(_qp())
    x_ref, e_ref, nfev = qiskit_qaoa(bqm, p=1, maxiter=50, seed=0)
    ours = solve(bqm, "qaoa", seed=0, p=1, restarts=2, maxiter=50)
    assert nfev > 1
    assert ours.energy == pytest.approx(e_ref) == pytest.approx(solve(bqm, "exact").energy)
    assert ours.resources.circuits > 1 and ours.resources.hardware_equivalent


def test_exact_refuses_too_many_variables():
    with pytest.raises(QuantumBackendError, match="24"):
        solve(_random_qubo(25, 0), "exact")
