"""FMQA: the factorization machine, its QUBO, valid proposals, and the QAOA path against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from qlife.methods.fmqa import BitEncoding, FactorizationMachine, FMQASearcher, penalty_strength
from qlife.methods.search_space import config_key, from_key
from qlife.methods.searchers import run_search
from qlife.params import ExactSampler, QAOASampler, SASampler, TabuSampler
from qlife.quantum.backends import solve
from qlife.quantum.qubo import all_energies, bits

SPACE = {"learning_rate": [2e-5, 5e-5, 1e-4], "epochs": [1, 2], "max_length": [32, 64], "batch_size": [16, 32],
         "frozen_layers": [0, 2, 4]}  # the default search space: 12 one-hot bits


def objective(c: dict) -> float:
    """A planted score with an interaction (max_length x batch_size) and one best configuration."""
    lr = SPACE["learning_rate"].index(c["learning_rate"])
    return (-(lr - 1) ** 2 - 0.25 * (c["frozen_layers"] - 2) ** 2 + 0.1 * c["epochs"]
            + 0.5 * (c["max_length"] == 64) * (c["batch_size"] == 16))


def all_configs(space: dict) -> list[dict]:
    return [dict(zip(space, v)) for v in itertools.product(*space.values())]


def test_fm_recovers_a_planted_quadratic_function_of_bits():
    rng = np.random.default_rng(0)
    n, k = 10, 3
    w, v = rng.normal(size=n), rng.normal(size=(n, k))
    x = rng.integers(0, 2, (240, n)).astype(np.float32)
    y = x @ w + np.einsum("si,ij,sj->s", x, np.triu(v @ v.T, 1), x)
    torch.manual_seed(0)
    fm = FactorizationMachine(n, k, init_std=0.1)
    fm.fit(x[:180], y[:180], epochs=1500, lr=0.02, weight_decay=0.0)
    test_mse = float(np.mean((fm.predict(x[180:]) - y[180:]) ** 2))
    assert test_mse < 1e-3 * y.var()  # held-out points: the function, not the sample, was learned
    h, j, offset = fm.qubo()
    np.testing.assert_allclose(h, w, atol=0.1)  # coefficients of N(0, 1) scale
    np.testing.assert_allclose(j, np.triu(v @ v.T, 1), atol=0.1)


@pytest.mark.parametrize("dw", [None, 3])
def test_qubo_of_a_fitted_fm_has_the_fms_own_minimum(dw):
    """Brute force over every bit vector: the QUBO's minimum is valid and is the FM's best configuration."""
    rng = np.random.default_rng(1)
    s = FMQASearcher(SPACE, seed=1, domain_wall_min_levels=dw)
    for c in rng.permutation(all_configs(SPACE))[:20]:
        s.proposed.add(config_key(SPACE, c))
        s.tell(c, objective(c) + rng.normal(0, 0.05))
    fm = s.fit()
    bqm = s.build_qubo(fm)
    n = s.enc.n_bits
    assert len(bqm) == n == (12 if dw is None else 10)
    e = all_energies(bqm)
    x = bits(np.array([np.argmin(e)]), n)[0]
    assert all(s.enc.valid(x))
    valid = all_configs(SPACE)
    pred = fm.predict(np.stack([s.enc.encode(c) for c in valid]))
    assert s.enc.decode_key(x) == config_key(SPACE, valid[int(np.argmin(pred))])
    np.testing.assert_allclose(e.min(), pred.min(), rtol=1e-5, atol=1e-6)  # penalties vanish on valid bits


def test_one_hot_penalty_breaks_every_invalid_assignment_by_a_flip():
    """lambda exceeds the largest single-flip change of the FM, so no invalid assignment is a local minimum."""
    rng = np.random.default_rng(2)
    enc = BitEncoding(SPACE)
    fm = FactorizationMachine(enc.n_bits, 4, init_std=1.0)
    with torch.no_grad():
        fm.w.copy_(torch.as_tensor(rng.normal(size=enc.n_bits)))
    h, j, _ = fm.qubo()
    bqm = fm.bqm()
    bqm.update(enc.penalty(penalty_strength(h, j, 1.01)))
    e = all_energies(bqm)
    for idx in range(2 ** enc.n_bits):
        x = bits(np.array([idx]), enc.n_bits)[0]
        if not all(enc.valid(x)):
            assert min(e[idx ^ (1 << b)] for b in range(enc.n_bits)) < e[idx]


def test_encoding_round_trip_and_repair():
    enc = BitEncoding({**SPACE, "head": ["linear", "mlp"], "fixed": [7]}, domain_wall_min_levels=3)
    for c in all_configs(enc.space):
        x = enc.encode(c)
        assert all(enc.valid(x)) and from_key(enc.space, enc.decode_key(x)) == c
    s = FMQASearcher(SPACE, seed=0)
    s.tell(from_key(SPACE, (0, 0, 0, 0, 0)), 0.1)
    s.tell(from_key(SPACE, (2, 1, 1, 1, 2)), 0.9)
    fm = s.fit()
    x = s.enc.encode(from_key(SPACE, (1, 0, 0, 0, 0)))
    x[0:3] = [1, 0, 1]  # learning rate (bits 0-2): two levels on
    x[9:12] = 0  # frozen_layers (bits 9-11): none on
    key, broken = s.repair(x, fm)
    assert broken == 2 and key[0] in (0, 2) and all(s.enc.valid(s.enc.key_bits(key)))


@pytest.mark.parametrize("solver", [SASampler(num_reads=20, num_sweeps=200), TabuSampler(num_reads=2, timeout_ms=5),
                                    ExactSampler(num_reads=8)])
def test_every_fmqa_proposal_is_a_valid_unseen_configuration(solver):
    s = FMQASearcher(SPACE, seed=3, solver=solver, epochs=100)
    calls = []

    def f(c):
        calls.append(config_key(SPACE, c))
        return objective(c)

    history, stats = run_search([s], f, budget=30, log=None)
    assert len(history) == 30 and len(set(calls)) == 30  # no configuration evaluated twice
    for row in history:
        c = {k: row[k] for k in SPACE}
        assert all(s.enc.valid(s.enc.encode(c)))
    r = s.resources()
    assert r["initial_design"] == 3 and r["rounds"] == 27
    assert r["sampler_proposals"] + r["neighbour_proposals"] + r["random_proposals"] == 27
    # the initial design set every one-hot bit at least once
    first = np.stack([s.enc.encode({k: row[k] for k in SPACE}) for row in history[:3]])
    assert first.max(0).all()
    assert max(row["score"] for row in history) == pytest.approx(max(objective(c) for c in all_configs(SPACE)))


def test_n_init_below_the_levels_is_refused():
    with pytest.raises(ValueError, match="every bit"):
        FMQASearcher(SPACE, n_init=2)


def test_qaoa_path_gives_the_exact_optimum_of_a_12_bit_fm_qubo():
    rng = np.random.default_rng(4)
    s = FMQASearcher(SPACE, seed=4)
    for c in rng.permutation(all_configs(SPACE))[:15]:
        s.proposed.add(config_key(SPACE, c))
        s.tell(c, objective(c))
    bqm = s.build_qubo(s.fit())
    assert len(bqm) == 12
    exact = solve(bqm, ExactSampler(), "t.exact")
    qaoa = solve(bqm, QAOASampler(p=3, restarts=3, maxiter=150, shots=2048, seed=0), "t.qaoa")
    assert qaoa.energy == pytest.approx(exact.energy, abs=1e-9)
    assert all(s.enc.valid(qaoa.x)) and np.array_equal(qaoa.x, exact.x)
    assert qaoa.resources.qubits == 12 and qaoa.resources.shots > 0


def test_sliding_window_and_subsample_bound_the_training_set():
    s = FMQASearcher(SPACE, seed=0, window=5)
    for c in all_configs(SPACE)[:9]:
        s.tell(c, objective(c))
    x, y = s.training_set()
    assert x.shape == (5, 12)
    s2 = FMQASearcher(SPACE, seed=0, subsample=4)
    for c in all_configs(SPACE)[:9]:
        s2.tell(c, objective(c))
    assert s2.training_set()[0].shape == (4, 12)
