"""Stage 7's drift tests behind one interface: the registry holds exactly the names the params schema allows,
every test finds a planted shift, each gives the p-value of a direct call of the function it wraps on the same
window and permutations, and a new test is one class and one registry entry."""

from __future__ import annotations

from types import SimpleNamespace
from typing import get_args

import numpy as np
import pytest
from pydantic import ValidationError

from qlife.methods.drift import detect_drift, ks_max_permutation_test, median_bandwidth, reference_subsample
from qlife.methods.drifttests import (
    MIN_TUNED_ROWS,
    REGISTRY,
    DriftTest,
    Permutations,
    Window,
    drift_tests,
    quantum_kernel,
    subsample_decisions,
)
from qlife.methods.twosample import mmd_fuse_test, rbf_family, tuned_mmd_test
from qlife.params import MONITOR_TESTS, Monitor, MonitorTest
from qlife.quantum.kernels import concentration

N_PERM = 200


@pytest.fixture(scope="module")
def section() -> Monitor:
    # the tests of the features (text_domain_classifier reads texts: tests/methods/test_text_domain_classifier.py)
    features = [t for t in MONITOR_TESTS if t != "text_domain_classifier"]
    return Monitor(n_permutations=N_PERM, max_ref=60, seed=3, ref_seed=1, split_seed=2, tests=features,
                   quantum={"features": 4, "bandwidths": [0.2, 1.0]},
                   fuse={"n_bandwidths": 2, "quantum_bandwidths": [0.5]})


def samples(shift: float, m: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(80, 6)), rng.normal(size=(m, 6)) + shift


def test_registry_holds_exactly_the_names_the_schema_allows():
    assert set(REGISTRY) == set(MONITOR_TESTS) == set(get_args(MonitorTest))
    assert all(cls.name == name and issubclass(cls, DriftTest) for name, cls in REGISTRY.items())
    assert [t.name for t in drift_tests(Monitor(tests=list(MONITOR_TESTS)))] == list(MONITOR_TESTS)  # their order
    assert [t.name for t in drift_tests(Monitor())] == Monitor().tests  # the quick profile's five


def test_an_unknown_test_is_refused_clearly():
    with pytest.raises(ValidationError, match="rbf_tuned"):  # the schema lists what is allowed
        Monitor(tests=["rbf", "wasserstein"], alarm="rbf")
    with pytest.raises(ValueError, match=r"unknown drift test\(s\) \['wasserstein'\]; registered: .*'fuse'"):
        drift_tests(SimpleNamespace(tests=["rbf", "wasserstein"]))


@pytest.fixture(scope="module")
def shifted(section) -> dict:
    ref, live = samples(shift=1.0)
    window = Window(section, ref, live)
    return {t.name: t.run(window) for t in drift_tests(section)}


def test_every_test_rejects_a_planted_shift(shifted, section):
    floor = 1 / (N_PERM + 1)
    for name, out in shifted.items():
        row = out.row
        assert floor <= row["p_value"] < section.alpha and row["alarm"] is True, (name, row)
        assert out.seconds >= 0 and row["wall_s"] == round(out.seconds, 3)
    # the quantum tests charge their circuits; the classical ones run none
    for name, out in shifted.items():
        quantum = name in ("quantum_fidelity", "quantum_projected", "fuse_quantum")
        assert bool(out.resources) == quantum and (out.row.get("circuits", 0) > 0) == quantum, name


def test_p_values_lie_between_the_floor_and_one_without_drift(section):
    ref, live = samples(shift=0.0, seed=4)
    window = Window(section, ref, live)
    for t in drift_tests(section):
        row = t.run(window).row
        assert 1 / (N_PERM + 1) <= row["p_value"] <= 1, t.name
        assert row["alarm"] == (row["p_value"] < section.alpha)


def test_each_test_is_the_function_it_wraps_on_the_same_permutations(shifted, section):
    """The registry's statistics and p-values equal direct calls on the same seeded window."""
    ref, live = samples(shift=1.0)
    q, f = section.quantum, section.fuse
    tested = ref[reference_subsample(len(ref), section.max_ref, section.ref_seed)]
    rq, lq = tested[:, :q.features], live[:, :q.features]
    base = detect_drift(ref, live, section.alpha, N_PERM, section.seed, section.max_ref, ref_seed=section.ref_seed)
    rows = {n: o.row for n, o in shifted.items()}
    assert (rows["rbf"]["p_value"], rows["rbf"]["mmd2"]) == (base.mmd.p_value, base.mmd.mmd2)
    assert rows["rbf"]["bandwidth"] == base.mmd.bandwidth and rows["rbf"]["n_ref"] == len(tested) == 60
    assert (rows["ks"]["bonferroni_p"], rows["ks"]["min_p"]) == (base.ks.bonferroni_p, base.ks.min_p)
    stat, p_ks, _ = ks_max_permutation_test(ref, live, N_PERM, section.seed)  # the whole reference, as before
    assert (rows["ks"]["p_value"], rows["ks"]["statistic"], rows["ks"]["p_value_from"]) == (p_ks, stat, "permutations")
    unit = median_bandwidth(rq, lq, seed=section.ref_seed)
    tuned = tuned_mmd_test(rq, lq, rbf_family(unit), section.rbf_grid, N_PERM, section.seed, section.split_seed,
                           diagnose=concentration)
    assert rows["rbf_tuned"] == {**tuned.to_dict(), "median_distance": unit, "features": q.features,
                                 "alarm": True, "wall_s": rows["rbf_tuned"]["wall_s"]}
    for kind in ("quantum_fidelity", "quantum_projected"):
        r = tuned_mmd_test(rq, lq, lambda b, kind=kind: quantum_kernel(q, kind, b).gram, q.bandwidths, N_PERM,
                           section.seed, section.split_seed, diagnose=concentration)
        assert (rows[kind]["p_value"], rows[kind]["mmd2"], rows[kind]["bandwidth"]) == (r.p_value, r.mmd2,
                                                                                        r.bandwidth)
        assert rows[kind]["qubits"] == q.features
    fuse = mmd_fuse_test(rq, lq, tuple(f.kernels), f.n_bandwidths, None, N_PERM, section.seed)
    assert (rows["fuse"]["p_value"], rows["fuse"]["statistic"]) == (fuse.p_value, fuse.statistic)
    Z = np.concatenate([rq, lq])
    extra = {f"quantum_fidelity@{b}": quantum_kernel(q, "quantum_fidelity", b).gram(Z) for b in f.quantum_bandwidths}
    fq = mmd_fuse_test(rq, lq, tuple(f.kernels), f.n_bandwidths, extra, N_PERM, section.seed)
    assert (rows["fuse_quantum"]["p_value"], rows["fuse_quantum"]["statistic"]) == (fq.p_value, fq.statistic)
    assert rows["fuse_quantum"]["kernels"][-1] == "quantum_fidelity@0.5"


def test_a_tuned_test_skips_a_window_too_small_to_split(section):
    ref, live = samples(shift=1.0, m=MIN_TUNED_ROWS - 1)
    window = Window(section, ref, live)
    for t in drift_tests(section):
        out = t.run(window)
        if t.name in ("rbf_tuned", "quantum_fidelity", "quantum_projected"):
            assert out.row == {"p_value": None, "alarm": False, "skipped": out.row["skipped"]}
            assert "half to tune" in out.row["skipped"] and out.seconds == 0 and out.resources == []
        else:
            assert out.row["p_value"] is not None


def test_the_window_shares_one_set_of_permutations(section):
    window = Window(section, *samples(shift=0.5))
    assert window.perms == Permutations(section.n_permutations, section.seed)
    assert window.baseline is window.baseline  # rbf and ks read one detect_drift call


def test_a_new_test_is_one_class_and_one_registry_entry(monkeypatch, section):
    class MeanShift(DriftTest):
        """A toy: the largest absolute difference of feature means, p-value over the window's permutations."""

        name = "mean_shift"

        def test(self, window, tuned):
            from qlife.methods.drift import permutations

            Z, n = np.concatenate([window.tested, window.live]), len(window.tested)
            stat = np.abs(Z[:n].mean(0) - Z[n:].mean(0)).max()
            exceed = 0
            for P in permutations(len(Z), n, window.perms.count, window.perms.seed):
                a = P @ Z / n
                b = (1 - P) @ Z / (len(Z) - n)
                exceed += int((np.abs(a - b).max(1) >= stat).sum())
            return {"p_value": (1 + exceed) / (1 + window.perms.count), "statistic": float(stat)}

    monkeypatch.setitem(REGISTRY, "mean_shift", MeanShift)
    custom = Monitor.model_construct(**{**dict(section), "tests": ["rbf", "mean_shift"]})
    window = Window(custom, *samples(shift=1.0))
    rows = {t.name: t.run(window).row for t in drift_tests(custom)}
    assert rows["mean_shift"]["alarm"] and rows["mean_shift"]["p_value"] == 1 / (N_PERM + 1)


def test_halves_are_paired_seeded_and_find_a_planted_shift(section):
    """The verdict's spread: every test decides on the same seeded halves with the same permutations; a shifted
    window is found on every half, a clean one rarely; quantum tests name their classical twin."""
    tests = ["rbf", "ks", "rbf_tuned", "quantum_fidelity"]
    ref, live = samples(shift=1.0, m=60)
    d, outcomes = subsample_decisions(section, ref, live, tests, k=3, n_permutations=50)
    assert all(d[t].shape == (3,) and d[t].all() for t in tests)
    assert all(o.row["n_permutations"] == 50 for o in outcomes["rbf_tuned"])
    # half of the 60 reference rows tested (max_ref) and of the 60 live rows, then the tuned test's test halves
    assert [o.row["n_test"] for o in outcomes["rbf_tuned"]] == [[15, 15]] * 3
    assert outcomes["quantum_fidelity"][0].resources and outcomes["rbf"][0].cpu_seconds > 0
    again, _ = subsample_decisions(section, *samples(shift=0.0, m=60), tests, k=3, n_permutations=50)
    assert sum(int(v.sum()) for v in again.values()) <= 2
    # paired: the halves depend on (monitor.seed, i) only, so two tests on one half see the same rows
    ks_only, _ = subsample_decisions(section, ref, live, ["ks"], k=3, n_permutations=50)
    assert (ks_only["ks"] == d["ks"]).all()
    assert {n: c.twin for n, c in REGISTRY.items() if c.twin} == {
        "quantum_fidelity": "rbf_tuned", "quantum_projected": "rbf_tuned", "fuse_quantum": "fuse"}


def test_ks_max_statistic_is_scipys_per_feature_and_its_permutation_p_value_is_calibrated():
    """The KS test's statistic per feature is scipy's (ties included); its permutation p-value rejects at about
    alpha under no drift even with strongly correlated features (where Bonferroni is conservative), and finds
    one shifted feature of eight."""
    from scipy.stats import binom, ks_2samp

    rng = np.random.default_rng(7)
    X, Y = np.round(rng.normal(size=(80, 3)), 1), np.round(rng.normal(size=(40, 3)), 1)  # ties
    _, _, per = ks_max_permutation_test(X, Y, 20, 0)
    np.testing.assert_allclose(per, [ks_2samp(X[:, j], Y[:, j]).statistic for j in range(3)])
    perm_rej = bonf_rej = 0
    draws = 300
    for d in range(draws):
        r = np.random.default_rng([8, d])
        base = r.normal(size=(90, 1))
        Z = base + 0.3 * r.normal(size=(90, 8))  # eight features, pairwise correlation ~0.9
        _, p, _ = ks_max_permutation_test(Z[:60], Z[60:], 99, d)
        perm_rej += p < 0.05
        bonf_rej += min(1.0, 8 * min(ks_2samp(Z[:60, j], Z[60:, j]).pvalue for j in range(8))) < 0.05
    lo, hi = binom.ppf(0.005, draws, 0.05), binom.ppf(0.995, draws, 0.05)
    assert lo <= perm_rej <= hi, perm_rej
    assert bonf_rej < perm_rej  # Bonferroni over correlated features rejects less often than alpha
    X, Y = rng.normal(size=(200, 8)), rng.normal(size=(100, 8))
    Y[:, 5] += 0.8
    assert ks_max_permutation_test(X, Y, 199, 0)[1] < 0.01


def test_ks_max_permutation_p_value_breaks_ties_at_random_and_stays_exact_on_tied_data():
    """A binary feature makes the KS statistic take a handful of values, so most permutations tie the observed one:
    counting ties as exceedances gave a mean p-value of 0.60 here and rejected 58 of 400 at 0.2 (the old rule);
    the random tie-break keeps the p-values uniform (mean and rates at four levels), and the same window gets the
    same p-value."""
    from scipy.stats import binom

    draws, n = 400, 30
    ps = np.array([ks_max_permutation_test(Z[:n], Z[n:], 99, d)[1] for d in range(draws)
                   for Z in [np.random.default_rng([9, d]).integers(0, 2, size=(50, 1)).astype(float)]])
    assert abs(ps.mean() - 0.5) < 3 * 0.2887 / np.sqrt(draws), ps.mean()
    for a in (0.05, 0.1, 0.2, 0.5):
        assert binom.ppf(0.005, draws, a) <= (ps <= a).sum() <= binom.ppf(0.995, draws, a), (a, (ps <= a).sum())
    Z = np.random.default_rng(1).integers(0, 2, size=(50, 1)).astype(float)
    assert ks_max_permutation_test(Z[:n], Z[n:], 99, 3)[:2] == ks_max_permutation_test(Z[:n], Z[n:], 99, 3)[:2]
