"""Selecting k of n units: the removal QUBO's optimum is the brute-force best k-subset; every solver keeps
exactly k; QAOA on a 12-unit problem (a MiniLM layer's heads) reaches the exact optimum."""

from __future__ import annotations

import numpy as np
import pytest

from qlife.methods.selection import (
    DiagonalSelector,
    QuboSelector,
    RandomSelector,
    TopKSelector,
    UnitScores,
    brute_force_best,
    repair,
)
from qlife.params import ExactSampler, PathIntegralSampler, QAOASampler, SASampler, SwapTabuSampler, TabuSampler


def planted(n: int, seed: int, examples: int = 64, redundant: int = 3) -> UnitScores:
    """Per-example gate gradients with `redundant` groups of near-copies: strong cross terms."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(examples, n)) * rng.uniform(0.2, 1.5, size=n)
    for a in range(redundant):
        g[:, n - 1 - a] = g[:, a] + 0.05 * rng.normal(size=examples)  # unit n-1-a duplicates unit a
    return UnitScores(importance=np.abs(g).mean(0), gradient=g.mean(0), curvature=g.T @ g / examples)


def test_removal_qubo_is_the_second_order_loss_model():
    s = planted(6, 0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        keep = np.sort(rng.choice(6, 3, replace=False))
        z = np.ones(6)
        z[keep] = 0
        expected = -s.gradient @ z + 0.5 * z @ s.curvature @ z
        assert s.loss_increase(keep) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n,k,seed", [(8, 3, 0), (10, 5, 1), (12, 4, 2)])
def test_exact_qubo_optimum_equals_the_brute_force_best_subset(n, k, seed):
    s = planted(n, seed)
    best, best_e = brute_force_best(s, k)
    sel = QuboSelector(ExactSampler(), "t.exact")
    keep = sel.select(s, k)
    assert sel.last.raw_feasible and sel.last.repaired_flips == 0  # the penalty makes the optimum feasible
    assert np.array_equal(keep, best)
    assert sel.last.energy == pytest.approx(best_e, rel=1e-9, abs=1e-12)


def test_cross_terms_change_the_choice_against_the_diagonal_twin():
    """Two near-copies each look important alone; removing both costs far more than one: the QUBO keeps one of
    each pair, the diagonal twin cannot see that."""
    s = planted(10, 3, redundant=3)
    k = 5
    twin = DiagonalSelector().select(s, k)
    qubo = QuboSelector(ExactSampler(), "t.exact").select(s, k)
    assert s.loss_increase(qubo) <= s.loss_increase(twin) + 1e-12
    assert brute_force_best(s, k)[1] == pytest.approx(s.loss_increase(qubo), rel=1e-9)


@pytest.mark.parametrize("solver", [ExactSampler(num_reads=4), SASampler(num_reads=20, num_sweeps=300),
                                    PathIntegralSampler(num_reads=10, num_sweeps=200),
                                    TabuSampler(num_reads=3, timeout_ms=20),
                                    SwapTabuSampler(timeout_ms=1000, max_iterations=200),
                                    QAOASampler(p=1, restarts=1, maxiter=20, shots=256)])
def test_every_solver_keeps_exactly_k(solver):
    s = planted(10, 4)
    for k in ((4,) if solver.kind == "qaoa" else (1, 4, 9, 10)):  # qaoa: 10 qubits, one k keeps it cheap
        sel = QuboSelector(solver, f"t.{solver.kind}")
        keep = sel.select(s, k)
        assert len(keep) == k == len(np.unique(keep)) and np.all(np.diff(keep) > 0)
        assert all(len(kp) == k for _, kp in sel.last.samples)
    for sel in (TopKSelector(), RandomSelector(0), DiagonalSelector()):
        assert len(sel.select(s, 4)) == 4


@pytest.mark.parametrize("n,k,seed", [(8, 3, 0), (12, 4, 2), (14, 7, 6)])
def test_swap_tabu_reaches_the_brute_force_best_subset_without_a_penalty(n, k, seed):
    s = planted(n, seed)
    sel = QuboSelector(SwapTabuSampler(timeout_ms=5000, max_iterations=300), "t.swap")
    bqm, _, lam = sel.bqm(s, k)
    assert lam == 0.0 and len(bqm.quadratic) == n * (n - 1) // 2  # the objective alone
    keep = sel.select(s, k)
    assert sel.last.raw_feasible and sel.last.repaired_flips == 0
    assert np.array_equal(keep, brute_force_best(s, k)[0])


def test_qaoa_reaches_the_exact_optimum_of_a_12_head_layer():
    s = planted(12, 5)
    exact = QuboSelector(ExactSampler(), "t.exact")
    qaoa = QuboSelector(QAOASampler(p=2, restarts=3, maxiter=150, shots=4096, seed=0), "t.qaoa")
    k = 6
    assert np.array_equal(qaoa.select(s, k), exact.select(s, k))
    assert qaoa.last.energy == pytest.approx(exact.last.energy, rel=1e-9)
    assert qaoa.last.resources.qubits == 12 and qaoa.last.resources.shots > 0


def test_repair_reaches_exactly_m_and_prefers_the_cheaper_flip():
    h = np.array([1.0, -2.0, 0.5, 3.0])
    j = np.zeros((4, 4))
    z, flips = repair(np.array([1, 1, 1, 1]), 2, h, j)  # drop the two units with the largest cost (3, 1)
    assert z.tolist() == [0, 1, 1, 0] and flips == 2
    z, flips = repair(np.array([0, 0, 0, 0]), 1, h, j)  # add the cheapest
    assert z.tolist() == [0, 1, 0, 0] and flips == 1


def test_bad_input_is_refused():
    s = planted(5, 0)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        TopKSelector().select(s, 0)
    with pytest.raises(ValueError, match="needs UnitScores.curvature"):
        QuboSelector(ExactSampler()).select(UnitScores(np.ones(4)), 2)
    with pytest.raises(ValueError, match="penalty_scale"):
        QuboSelector(ExactSampler(), penalty_scale=1.0)
    with pytest.raises(ValueError, match="expected"):
        UnitScores(np.ones(3), curvature=np.eye(4))


def test_qaoa_reaches_the_exact_optimum_on_a_real_12_head_layer_qubo():
    """The reconstruction QUBO of a (random, tiny) BERT layer with 12 heads, keep 6: QAOA's selection is the
    exact one."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from qlife.methods.pruning import calibrate, layer_scores

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=1, num_attention_heads=12,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(cfg).eval()
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(1, 100, (8, 12), generator=g),
                "attention_mask": torch.ones(8, 12, dtype=torch.long)} for _ in range(2)]
    cal = calibrate(model, "heads", batches, [torch.randint(0, 2, (8,), generator=g) for _ in batches])
    s = layer_scores(cal, None)[0]
    assert s.n == 12
    exact = QuboSelector(ExactSampler(), "t.exact")
    qaoa = QuboSelector(QAOASampler(p=2, restarts=3, maxiter=150, shots=4096, seed=0), "t.qaoa")
    assert np.array_equal(qaoa.select(s, 6), exact.select(s, 6))
    assert qaoa.last.energy == pytest.approx(exact.last.energy, rel=1e-9)

