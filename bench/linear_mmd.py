"""Linear-time MMD tests (qlife.methods.linear_mmd) for windows of a day's traffic: cost per window against its
size, and power beside the quadratic-time RBF MMD permutation test (qlife.methods.drift.rbf_mmd_test).

    python -m bench.linear_mmd [--sizes 1000 10000 100000] [--draws 50] [--n-power 2000]
                               [--shifts 0 0.02 0.03] [--repeats 3] [--quick]

Synthetic data: d = 16 standard normal features (the projection's width), reference and window of the same size n
(pooled 2n rows). RFF tests at the default D = 128 frequencies, and D = 512 (the RFF statistic approaches the
Gaussian MMD as D grows: its power too). Timing: wall seconds per window (median and min of --repeats), BLAS held
to one thread (a shared 2-core box: threads oversubscribe it, see qlife/dedup.py), plus the default threads for the
RFF tests at the largest size. The quadratic test is timed where its pooled Gram matrix fits
(qlife.methods.drift.MAX_POOLED_ROWS).
Power: at n = --n-power, --draws seeded draws per shift (0: the false-alarm rate), a mean shift of each feature of
the window; every test sees the same draw; rejection rate at alpha 0.05 with its Clopper-Pearson 95% interval, and
an exact McNemar test of each linear test against the quadratic one on the paired draws.
Writes bench/results/linear_mmd.json (with its date and environment).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from scipy.stats import binomtest
from threadpoolctl import threadpool_limits

from bench.common import write
from qlife.methods.drift import MAX_POOLED_ROWS, rbf_mmd_test
from qlife.methods.linear_mmd import block_mmd_test, rff_mmd_test

D_FEATURES = 16
ALPHA = 0.05
N_PERMUTATIONS = 500  # power study: both permutation tests


def tests(n: int, n_permutations: int) -> dict[str, Callable]:
    """name -> test(X, Y, seed) -> p-value holder; `n` sizes the block test's sqrt(n) block."""
    b = max(2, int(np.sqrt(n)))
    return {
        "rff_permutation": lambda X, Y, s: rff_mmd_test(X, Y, n_permutations=n_permutations, seed=s),
        "rff_asymptotic": lambda X, Y, s: rff_mmd_test(X, Y, null="asymptotic", seed=s),
        "rff_permutation_D512": lambda X, Y, s: rff_mmd_test(X, Y, n_frequencies=512, n_permutations=n_permutations,
                                                             seed=s),
        "block_2": lambda X, Y, s: block_mmd_test(X, Y, seed=s),
        f"block_{b}": lambda X, Y, s: block_mmd_test(X, Y, block_size=b, seed=s),
        "quadratic_rbf": lambda X, Y, s: rbf_mmd_test(X, Y, n_permutations=n_permutations, seed=s),
    }


def draw(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([2026, seed])
    return rng.normal(size=(n, D_FEATURES)), rng.normal(size=(n, D_FEATURES)) + shift


def seconds(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def timing(sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        X, Y = draw(n, 0.0, seed=0)
        for name, test in tests(n, 200).items():  # the RFF test's default: 200 permutations
            if name == "quadratic_rbf" and 2 * n > MAX_POOLED_ROWS:
                rows.append({"n": n, "test": name, "refused": f"pooled {2 * n} rows > {MAX_POOLED_ROWS}"})
                continue
            run = partial(test, X, Y, 0)
            with threadpool_limits(1):
                t = seconds(run, repeats)
            rows.append({"n": n, "test": name, "blas_threads": 1, "median_s": float(np.median(t)),
                         "min_s": min(t), "repeats": repeats})
            if n == max(sizes) and name.startswith("rff"):
                t = seconds(run, repeats)
                rows.append({"n": n, "test": name, "blas_threads": "default", "median_s": float(np.median(t)),
                             "min_s": min(t), "repeats": repeats})
            print(rows[-1], flush=True)
    return rows


def interval(k: int, n: int) -> list[float]:
    ci = binomtest(k, n).proportion_ci(0.95)
    return [float(ci.low), float(ci.high)]


def power(n: int, shifts: list[float], draws: int) -> list[dict]:
    rows = []
    for shift in shifts:
        rejected: dict[str, list[bool]] = {}
        wall: dict[str, float] = {}
        for s in range(draws):
            X, Y = draw(n, shift, seed=1000 * (1 + s))
            for name, test in tests(n, N_PERMUTATIONS).items():
                t0 = time.perf_counter()
                with threadpool_limits(1):
                    rejected.setdefault(name, []).append(bool(test(X, Y, s).p_value < ALPHA))
                wall[name] = wall.get(name, 0.0) + time.perf_counter() - t0
        quad = np.array(rejected["quadratic_rbf"])
        for name, r in rejected.items():
            r = np.array(r)
            k = int(r.sum())
            row = {"n": n, "shift_per_feature": shift, "shift_norm": float(shift * np.sqrt(D_FEATURES)), "test": name,
                   "draws": draws, "rejections": k, "rate": k / draws, "ci95": interval(k, draws),
                   "mean_wall_s": wall[name] / draws}
            if name != "quadratic_rbf":
                b, c = int((r & ~quad).sum()), int((~r & quad).sum())
                row["mcnemar_vs_quadratic"] = {"only_this": b, "only_quadratic": c,
                                               "p": float(binomtest(b, b + c).pvalue) if b + c else 1.0}
            rows.append(row)
            print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--n-power", type=int, default=2000)
    ap.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.02, 0.03])
    ap.add_argument("--quick", action="store_true", help="sizes 1000 10000, 5 draws at n = 500")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.draws, a.n_power, a.repeats = [1000, 10_000], 5, 500, 1
    t0 = time.perf_counter()
    rows = [{"part": "timing", **r} for r in timing(a.sizes, a.repeats)]
    rows += [{"part": "power", **r} for r in power(a.n_power, a.shifts, a.draws)]
    meta = {"features": D_FEATURES, "alpha": ALPHA, "reference_size": "= window size n (pooled 2n rows)",
            "rff": {"n_frequencies": "128 (the default; rff_permutation_D512: 512)", "timing_permutations": 200,
                    "power_permutations": N_PERMUTATIONS},
            "quadratic": {"test": "qlife.methods.drift.rbf_mmd_test", "n_permutations": N_PERMUTATIONS},
            "draws": a.draws, "n_power": a.n_power, "shifts": a.shifts, "wall_s": time.perf_counter() - t0}
    print(write("linear_mmd", rows, meta))


if __name__ == "__main__":
    main()
