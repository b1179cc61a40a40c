"""BOCS: the horseshoe posterior recovers a second-order function of bits, the SA acquisition finds the sampled
model's own optimum (against brute force), and the searcher proposes new valid configurations, seeded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qlife.methods.bocs import BOCSSearcher, QuadraticModel, horseshoe_gibbs, pair_features
from qlife.methods.search_space import config_key
from qlife.methods.searchers import run_search
from tests.methods.test_fmqa import SPACE, all_configs, objective


def planted(d: int, rng: np.random.Generator, linear: int, pairs: int) -> tuple[float, np.ndarray]:
    """A sparse second-order function: (intercept, coefficients in pair_features order)."""
    coef = np.zeros(d + d * (d - 1) // 2)
    coef[rng.choice(d, linear, replace=False)] = rng.choice([-1, 1], linear) * rng.uniform(1, 3, linear)
    coef[d + rng.choice(d * (d - 1) // 2, pairs, replace=False)] = rng.choice([-1, 1], pairs) * rng.uniform(1, 3, pairs)
    return 0.7, coef


@pytest.mark.parametrize("d, n", [(5, 32), (7, 24)])  # p = 15 <= n: Rue's sampler; p = 28 > n: the fast sampler
def test_horseshoe_posterior_mean_recovers_the_true_second_order_coefficients(d, n):
    rng = np.random.default_rng(d)
    c, coef = planted(d, rng, linear=3, pairs=3)
    grid = np.array(list(itertools.product([0, 1], repeat=d)))
    x = grid[rng.choice(len(grid), n, replace=False)]
    feats = pair_features(x)
    y = c + feats @ coef  # noiseless
    beta, b0 = horseshoe_gibbs(feats, y, 500, np.random.default_rng(0), keep=300, thin=2)
    mean = beta.mean(0)
    np.testing.assert_allclose(mean, coef, atol=0.05)
    assert abs(b0.mean() - c) < 0.05
    held_out = pair_features(grid)  # the function everywhere, not only the sample
    assert np.max(np.abs(held_out @ mean + b0.mean() - (c + held_out @ coef))) < 0.2


def test_the_searchers_posterior_is_fitted_to_the_negated_score_on_its_bits():
    """Through the searcher: a binary space's bits are its variables; BOCS minimises the negated score."""
    d = 5
    rng = np.random.default_rng(3)
    c, coef = planted(d, rng, linear=2, pairs=3)
    space = {f"x{i}": [0, 1] for i in range(d)}
    s = BOCSSearcher(space, seed=0, domain_wall_min_levels=2)
    assert s.enc.n_bits == d
    for x in itertools.product([0, 1], repeat=d):
        cfg = dict(zip(space, x))
        s.proposed.add(config_key(space, cfg))
        s.tell(cfg, float(c + pair_features(np.array(x))[0] @ coef))
    draws = s.posterior(n_iter=400, keep=200, thin=2)
    h = np.mean([m.h for m in draws], 0)
    u = np.mean([m.u for m in draws], 0)
    np.testing.assert_allclose(h, -coef[:d], atol=0.05)
    np.testing.assert_allclose(u[np.triu_indices(d, 1)], -coef[d:], atol=0.05)
    assert abs(np.mean([m.c for m in draws]) + c) < 0.05


@pytest.mark.parametrize("space_kind", ["binary", "one_hot"])
def test_sa_acquisition_finds_the_sampled_models_brute_force_optimum(space_kind):
    """Each Thompson draw's optimum over every valid configuration (brute force) is what the annealer returns."""
    space = {f"x{i}": [0, 1] for i in range(12)} if space_kind == "binary" else SPACE
    dw = 2 if space_kind == "binary" else None
    s = BOCSSearcher(space, seed=4, domain_wall_min_levels=dw)
    rng = np.random.default_rng(4)
    configs = all_configs(space)
    for i in rng.choice(len(configs), 20, replace=False):  # a rugged random quadratic score
        cfg = configs[i]
        s.proposed.add(config_key(space, cfg))
        bits = s.enc.encode(cfg).astype(float)
        s.tell(cfg, float(np.sin(3 * bits @ np.arange(len(bits))) + objective(cfg) if space_kind == "one_hot" else
                          np.sin(3 * bits @ np.arange(len(bits)))))
    every = np.stack([s.enc.encode(cfg) for cfg in configs]).astype(float)
    for model in s.posterior(keep=4, thin=10):
        values = model(every)
        ranked = s.anneal(model)
        assert config_key(space, configs[int(np.argmin(values))]) == ranked[0][1]
        np.testing.assert_allclose(ranked[0][0], values.min(), atol=1e-9)
        assert [e for e, _ in ranked] == sorted(e for e, _ in ranked)


def test_quadratic_model_is_the_pair_feature_regression():
    rng = np.random.default_rng(5)
    coef = rng.normal(size=6 + 15)
    x = rng.integers(0, 2, (40, 6))
    np.testing.assert_allclose(QuadraticModel(6, coef, 0.3)(x), 0.3 + pair_features(x) @ coef)


def test_bocs_finds_the_optimum_of_a_binary_quadratic_problem_and_beats_random():
    """On a planted BQP in 7 variables (128 points), 16 evaluations: BOCS reaches the brute-force optimum on most
    seeds, random search on fewer (the second-order model is the right one)."""
    from qlife.methods.searchers import RandomSearcher

    d, budget = 7, 16
    space = {f"x{i}": [0, 1] for i in range(d)}
    hits = {"bocs": 0, "random": 0}
    for seed in range(4):  # a bocs round: 200 Gibbs iterations, 140 SA moves x 5 chains
        rng = np.random.default_rng(100 + seed)
        q = rng.normal(size=(d, d))
        grid = np.array(list(itertools.product([0, 1], repeat=d)))
        best = np.einsum("si,ij,sj->s", grid, q, grid).max()

        def f(cfg: dict, q: np.ndarray = q) -> float:
            x = np.array([cfg[k] for k in space])
            return float(x @ q @ x)

        for name, s in (("bocs", BOCSSearcher(space, seed, n_init=5, domain_wall_min_levels=2, n_gibbs=200,
                                              sa_sweeps=20)),
                        ("random", RandomSearcher(space, seed))):
            history, _ = run_search([s], f, budget, log=None)
            hits[name] += max(r["score"] for r in history) >= best - 1e-9
            assert len({config_key(space, {k: r[k] for k in space}) for r in history}) == budget  # all new
    assert hits["bocs"] >= 3 and hits["bocs"] > hits["random"], hits
