"""Tabu search over exactly-k assignments: every sample has exactly num_ones ones, the best is the brute-force
optimum on small problems, its energies are the model's, a penalty constant on the feasible set changes nothing,
and a missing or impossible cardinality is refused."""

from __future__ import annotations

from itertools import combinations

import dimod
import numpy as np
import pytest

from qlife.params import Search, SwapTabuSampler
from qlife.quantum.backends import solve
from qlife.quantum.swap_tabu import SwapTabuSampler as Swap
from qlife.quantum.swap_tabu import dense, greedy, swap_search


def psd_bqm(n: int, seed: int) -> dimod.BinaryQuadraticModel:
    """E(x) = |A x|^2 + c . x: the shape of a layer's reconstruction error (PSD) with a linear tilt."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3 * n, n))
    q = a.T @ a / n
    lin = np.diag(q) + rng.normal(scale=0.3, size=n)
    return dimod.BinaryQuadraticModel(lin, {(i, j): 2 * q[i, j] for i in range(n) for j in range(i + 1, n)}, 0.5,
                                      dimod.BINARY)


def brute(bqm: dimod.BinaryQuadraticModel, m: int) -> float:
    n = len(bqm)
    best = np.inf
    for ones in combinations(range(n), m):
        x = {v: 0 for v in range(n)}
        x.update({v: 1 for v in ones})
        best = min(best, bqm.energy(x))
    return best


@pytest.mark.parametrize("n,m,seed", [(9, 3, 0), (12, 6, 1), (13, 9, 2)])
def test_best_sample_is_the_brute_force_optimum_and_every_sample_keeps_m(n, m, seed):
    bqm = psd_bqm(n, seed)
    ss = Swap().sample(bqm, num_ones=m, timeout_ms=10_000, max_iterations=400, seed=seed)
    assert ss.first.energy == pytest.approx(brute(bqm, m), rel=1e-10)
    assert np.all(ss.record.sample.sum(1) == m)
    assert np.allclose(ss.record.energy, bqm.energies((ss.record.sample, list(ss.variables))))
    assert len({r.tobytes() for r in ss.record.sample}) == len(ss)  # distinct local optima


def test_a_cardinality_penalty_changes_nothing_on_the_feasible_set():
    bqm = psd_bqm(12, 3)
    pen = bqm.copy()
    pen.add_linear_equality_constraint([(v, 1.0) for v in range(12)], lagrange_multiplier=7.0, constant=-5.0)
    kw = dict(num_ones=5, timeout_ms=10_000, max_iterations=300, seed=0)
    a, b = Swap().sample(bqm, **kw), Swap().sample(pen, **kw)
    optimum = brute(bqm, 5)
    assert a.first.energy == pytest.approx(optimum, rel=1e-10)
    assert b.first.energy == pytest.approx(optimum, rel=1e-10)  # the penalty is zero on every feasible sample
    assert np.all(b.record.sample.sum(1) == 5)


def test_dense_form_and_greedy_start():
    bqm = psd_bqm(7, 4)
    h, js, off = dense(bqm)
    assert np.allclose(js, js.T) and np.all(np.diag(js) == 0) and off == 0.5
    x = np.array([1, 0, 1, 1, 0, 0, 1])
    assert h @ x + 0.5 * x @ js @ x + off == pytest.approx(bqm.energy(dict(enumerate(x))))
    z = greedy(h, js, 3)
    assert z.sum() == 3
    z2, e2, optima, counters = swap_search(h, js, z, 10.0, 5, 3, 20, 2, 0, max_iterations=100)
    assert z2.sum() == 3 and counters["iterations"] == 100 and e2 <= h @ z + 0.5 * z @ js @ z + 1e-12
    assert optima[0][0] == pytest.approx(e2)


def test_trivial_cardinalities_and_a_spin_model():
    bqm = psd_bqm(6, 5)
    assert Swap().sample(bqm, num_ones=0, max_iterations=5).first.energy == pytest.approx(0.5)
    assert set(Swap().sample(bqm, num_ones=6, max_iterations=5).first.sample.values()) == {1}
    spin = bqm.change_vartype(dimod.SPIN, inplace=False)
    assert Swap().sample(spin, num_ones=2, max_iterations=50).first.energy == pytest.approx(brute(bqm, 2))


def test_bad_input_names_the_problem():
    bqm = psd_bqm(5, 6)
    with pytest.raises(ValueError, match="num_ones"):
        Swap().sample(bqm)
    with pytest.raises(ValueError, match="num_ones = 9"):
        Swap().sample(bqm, num_ones=9)
    with pytest.raises(ValueError, match="num_ones"):  # through the backend layer: the caller must say m
        solve(bqm, SwapTabuSampler(max_iterations=5), "t.swap")
    res = solve(bqm, SwapTabuSampler(max_iterations=50), "t.swap", num_ones=2)
    assert sum(res.x) == 2 and res.resources.executed_on == "cpu" and not res.resources.hardware_equivalent
    with pytest.raises(ValueError, match="swap_tabu keeps exactly k"):
        Search.model_validate({"fmqa": {"solver": {"kind": "swap_tabu"}}})


def test_seeded_runs_repeat():
    bqm = psd_bqm(30, 7)
    kw = dict(num_ones=12, timeout_ms=10_000, max_iterations=200, seed=3)
    a, b = Swap().sample(bqm, **kw), Swap().sample(bqm, **kw)
    assert np.array_equal(a.record.sample, b.record.sample)
