"""Issue 34, item 6: the quantum kernels in the regime where a published result finds them useful inside MMD-FUSE
(Terada et al., arXiv 2511.20941: "with appropriate hyperparameter tuning, MMD-FUSE with quantum kernels
consistently improves test power over classical counterparts, especially for small and high-dimensional data";
and the hybrid of classical and quantum kernels is robust across data).

    python -m bench.drift_regime [--reps 200] [--sizes 20 50 100] [--fractions 0 0.2 0.5] [--scenarios topic style]
                                 [--bandwidths 0.05 0.1 0.2 0.4] [--permutations 1000] [--pool-ref 1000]
                                 [--pool-drift 500] [--check 1] [--boot 2000] [--quick]

The cell: few samples, many features. A reference and a window of the same small size n = m (--sizes), on 16
features, one qubit each: the 16 PCA components of bench/drift.py's features (MiniLM embeddings of a scenario's
reference and drifted pools, projected and standardised by a PCA fitted on the reference pool;
bench/.cache/drift_features.npz). A drifted fraction f of the window comes from the drifted pool (f = 0: the
false-alarm rate). Draws: bench/drift.py's `draw` (reference and window disjoint rows of the reference pool, the
drifted rows from the drifted pool), seeded per scenario, size, fraction and repetition, from a seeded subset of
each pool (--pool-ref and --pool-drift rows: what the statevectors are computed for).

Tests (qlife.methods.drifttests; one permutation seed per window, shared by every test: fuse, fuse_quantum and
fuse_quantum_only are scored on identical permutations of the identical pooled sample):
  fuse               MMD-FUSE over Gaussian and Laplace kernels at monitor.fuse.n_bandwidths bandwidths each
  fuse_quantum       the same plus fidelity kernels at every bandwidth of --bandwidths (the paper's hybrid)
  fuse_quantum_only  MMD-FUSE over the fidelity kernels alone (the paper's "MMD-FUSE with quantum kernels"; a bench
                     test: fuse_quantum without the classical kernels)
  quantum_fidelity   MMD with the fidelity kernel, its bandwidth tuned over --bandwidths by the power criterion on
                     a tuning half, tested on the other half
  rbf_tuned          its classical twin (RBF, monitor.rbf_grid in units of the median distance, the same rule)
The quantum kernel is monitor.quantum's (reuploading map, 2 layers, exact statevector fidelities). Bandwidth: at 16
qubits the default grid (0.1 ... 1.0) reaches the concentrated regime (mean off-diagonal fidelity ~0.001 at 1.0 on
these features), so the grid here, tuned by scale, spans the range where the kernel is neither almost constant nor
concentrated; each bandwidth's concentration on the pool is reported ("concentration").

Exact statevector fidelities are computed once per scenario and bandwidth for every row of the pool (`pool_grams`:
the statevectors, then |<psi_i|psi_j>|^2 by one Hermitian rank-k update) and a window's quantum kernels look their
entries up (`PooledFidelityKernel`: the registry's QuantumFidelityKernel with `exact` read from the pooled Gram;
its symmetric Gram, unit diagonal and circuit count are the class's own). The same numbers as fresh states per
window, at a fraction of the cost: --check windows per scenario and size (the first repetitions at the largest
fraction) run through the registry's own tests and kernels as well; their p-values must equal the pooled path's
("check"), and their wall time is the cost per window reported ("cost.direct"; 16-qubit states on one core).

Reported per cell: each test's rejection rate at alpha with its Clopper-Pearson 95% interval (and its alarms per
repetition, "1" / "0"); the paired differences fuse_quantum - fuse, fuse_quantum_only - fuse and
quantum_fidelity - rbf_tuned: the difference of rates, the discordant pairs, the exact McNemar p-value, the
paired bootstrap 95% interval over the repetitions (--boot resamples), and the McNemar p-value Holm-adjusted over
the scenario's drifted cells. Per scenario a conclusion written from those numbers. One process, one BLAS thread.
Writes bench/results/drift_regime.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import zlib

import numpy as np
from scipy.linalg.blas import zherk

from bench.common import RESULTS, environment
from bench.drift import CACHE, draw, features, mcnemar
from qlife.methods.drifttests import REGISTRY, FuseQuantum, Window
from qlife.methods.twosample import mmd_fuse_test
from qlife.quantum.kernels import QuantumFidelityKernel
from qlife.verdict import holm

OUT = RESULTS / "drift_regime.json"
GRAM_CACHE = CACHE.parent / "drift_regime_grams.npz"
QUBITS = 16
TESTS = ("fuse", "fuse_quantum", "fuse_quantum_only", "quantum_fidelity", "rbf_tuned")
REGISTERED = ("rbf_tuned", "quantum_fidelity", "fuse", "fuse_quantum")  # the registry's own (the direct check)
PAIRS = (("fuse_quantum", "fuse"), ("fuse_quantum_only", "fuse"), ("quantum_fidelity", "rbf_tuned"))
POOLED = ("quantum_fidelity", "fuse_quantum", "fuse_quantum_only")  # the tests whose kernels read the pooled Grams


# ----------------------------------------------------------------------------- the pooled fidelity kernels


class PoolGrams:
    """Exact fidelity Gram matrices over every row of a pool, one per bandwidth; `rows(A)` finds A's rows in it."""

    def __init__(self, pool: np.ndarray, grams: dict[float, np.ndarray]):
        self.pool = np.ascontiguousarray(pool, dtype=np.float64)
        self.grams = grams
        self.index = {r.tobytes(): i for i, r in enumerate(self.pool)}

    def rows(self, A: np.ndarray) -> np.ndarray:
        A = np.ascontiguousarray(A, dtype=np.float64)
        try:
            return np.fromiter((self.index[r.tobytes()] for r in A), dtype=np.intp, count=len(A))
        except KeyError:
            raise KeyError("a row outside the pool: the pooled Gram covers only the pool's rows") from None

    def kernel(self, section, kind: str, bandwidth: float):
        """The pooled twin of qlife.methods.drifttests.quantum_kernel(section, kind, bandwidth)."""
        if kind != "quantum_fidelity":
            raise ValueError(f"pooled kernels: quantum_fidelity only, not {kind!r}")
        return PooledFidelityKernel(self, section.backend, section.features, bandwidth=bandwidth, reps=section.reps,
                                    kind=section.kind, param="monitor.quantum.backend",
                                    max_circuits=section.max_circuits)


class PooledFidelityKernel(QuantumFidelityKernel):
    """The registry's QuantumFidelityKernel with its exact values read from a PoolGrams (statevector backend
    only): `gram` (symmetric, unit diagonal, circuits counted) is the class's own."""

    def __init__(self, pool: PoolGrams, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.analytic or self.sampled:
            raise ValueError("pooled fidelities stand for the exact statevector backend only")
        if self.bandwidth not in pool.grams:
            raise KeyError(f"no pooled Gram at bandwidth {self.bandwidth}; pooled: {sorted(pool.grams)}")
        self.pool, self.K = pool, pool.grams[self.bandwidth]

    def exact(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return self.K[np.ix_(self.pool.rows(A), self.pool.rows(B))]


def pool_gram(section, bandwidth: float, rows: np.ndarray) -> np.ndarray:
    """|<psi(b x_i)|psi(b x_j)>|^2 over every pair of `rows` (monitor.quantum's map, exact statevectors):
    the states once, then one Hermitian rank-k update (zherk); the lower triangle mirrored, clipped to [0, 1]."""
    k = QuantumFidelityKernel(section.backend, section.features, bandwidth=bandwidth, reps=section.reps,
                              kind=section.kind)
    S = k.statevectors(rows)  # (P, 2^n) complex128
    C = zherk(1.0, S.T, trans=2)  # upper triangle of S^T-conjugate products: |C_ij| = |<psi_i|psi_j>|
    del S
    G = np.abs(np.triu(C)) ** 2
    del C
    G = G + np.triu(G, 1).T
    return np.clip(G, 0.0, 1.0)


def concentration(G: np.ndarray) -> dict:
    off = G[np.triu_indices(len(G), 1)]
    return {"mean": float(off.mean()), "sd": float(off.std()), "min": float(off.min()),
            "share_below_1e-3": float((off < 1e-3).mean())}


def scenario_grams(s: str, pool: np.ndarray, section, bandwidths: list[float], use_cache: bool
                   ) -> tuple[PoolGrams, dict, dict]:
    """The pool's Gram per bandwidth (bench/.cache/drift_regime_grams.npz, keyed by the pool's rows and the
    map), the seconds each took to compute, and each one's concentration."""
    q = section
    grams, seconds = {}, {}
    stored = dict(np.load(GRAM_CACHE)) if use_cache and GRAM_CACHE.exists() else {}
    for b in bandwidths:
        key = hashlib.sha1(pool.tobytes() + f"{q.kind}/{q.reps}/{q.features}/{b}".encode()).hexdigest()[:16]
        if f"G_{key}" in stored:
            grams[b], seconds[b] = stored[f"G_{key}"], float(stored[f"s_{key}"])
            print(f"{s}: pooled Gram at bandwidth {b} from the cache ({seconds[b]:.0f} s to compute)", flush=True)
            continue
        t0 = time.perf_counter()
        grams[b] = pool_gram(q, b, pool)
        seconds[b] = time.perf_counter() - t0
        print(f"{s}: pooled Gram at bandwidth {b}: {len(pool)} rows, {seconds[b]:.0f} s", flush=True)
        if use_cache:
            stored[f"G_{key}"], stored[f"s_{key}"] = grams[b], np.float64(seconds[b])
            GRAM_CACHE.parent.mkdir(parents=True, exist_ok=True)
            np.savez(GRAM_CACHE, **stored)
    return PoolGrams(pool, grams), seconds, {str(b): concentration(g) for b, g in grams.items()}


# ----------------------------------------------------------------------------- the tests


class FuseQuantumOnly(FuseQuantum):
    """MMD-FUSE over the fidelity kernels at monitor.fuse.quantum_bandwidths alone (no classical kernel)."""

    name = "fuse_quantum_only"

    def test(self, window: Window, tuned: None) -> dict:
        f, rq, lq = self.section.fuse, *window.head(self.section.quantum.features)
        r = mmd_fuse_test(rq, lq, (), f.n_bandwidths, self.extra(rq, lq), window.perms.count, window.perms.seed)
        return {**r.to_dict(), "features": self.section.quantum.features}


def drift_test_classes(grams: PoolGrams | None) -> dict[str, type]:
    """name -> DriftTest class; with `grams`, the quantum tests read their kernels from the pooled Grams."""
    classes = {**{t: REGISTRY[t] for t in REGISTERED}, "fuse_quantum_only": FuseQuantumOnly}
    if grams is None:
        return classes

    def pooled(cls: type) -> type:
        def kernel(self, kind: str, bandwidth: float):
            k = grams.kernel(self.section.quantum, kind, bandwidth)
            self.kernels.append(k)
            return k

        return type(f"Pooled{cls.__name__}", (cls,), {"kernel": kernel})

    return {t: pooled(c) if t in POOLED else c for t, c in classes.items()}


def section(args: argparse.Namespace):
    from qlife.params import Params, with_overrides

    p = with_overrides(Params(), {
        "monitor.n_permutations": args.permutations, "monitor.max_ref": None, "monitor.quantum.features": QUBITS,
        "monitor.quantum.bandwidths": args.bandwidths, "monitor.fuse.quantum_bandwidths": args.bandwidths,
        "monitor.tests": list(REGISTERED), "monitor.alarm": "fuse"})
    return p, p.monitor


def run_window(classes: dict[str, type], mp, ref: np.ndarray, live: np.ndarray, tests=TESTS) -> dict:
    """Every test of `tests` on one window (the same Window: the same permutations): name -> Outcome."""
    shared = Window(mp, ref, live)
    return {t: classes[t](mp).run(shared) for t in tests}


def cell_draw(pool: dict[str, np.ndarray], m: int, f: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference of m rows and a window of m rows, round(f m) of them drifted (bench/drift.py's draw: the
    reference and the window's clean rows are disjoint rows of the reference pool)."""
    return draw(pool, m, m, f, seed)


def seed_of(s: str, m: int, f: float, rep: int) -> int:
    return zlib.crc32(f"regime/{s}/{m}/{f}/{rep}".encode())


# ----------------------------------------------------------------------------- statistics


def clopper_pearson(k: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def paired(a: np.ndarray, b: np.ndarray, boot: int, seed: int) -> dict:
    """Rate difference a - b on paired repetitions: discordant pairs, exact McNemar p, paired bootstrap 95%."""
    d = a.astype(float) - b.astype(float)
    idx = np.random.default_rng(seed).integers(0, len(d), (boot, len(d)))
    means = d[idx].mean(1)
    return {"diff": float(d.mean()), "a_only": int((a & ~b).sum()), "b_only": int((~a & b).sum()),
            "mcnemar_p": mcnemar(a, b), "bootstrap_95": [float(np.percentile(means, 2.5)),
                                                           float(np.percentile(means, 97.5))]}


def cell_stats(alarms: dict[str, np.ndarray], boot: int, seed: int) -> dict:
    n = len(next(iter(alarms.values())))
    tests = {t: {"rate": float(v.mean()), "ci95": clopper_pearson(int(v.sum()), n),
                 "alarms": "".join("1" if x else "0" for x in v)} for t, v in alarms.items()}
    pairs = {f"{a}-{b}": paired(alarms[a], alarms[b], boot, seed) for a, b in PAIRS}
    return {"tests": tests, "paired": pairs}


def verdict(wins: int, losses: int) -> str:
    if wins and not losses:
        return "helps"
    if losses and not wins:
        return "hurts"
    if wins and losses:
        return "is mixed"
    return "makes no detectable difference"


def conclude(cells: dict, scenario: str, alpha: float) -> tuple[str, dict]:
    """A one-line conclusion for one scenario from its cells (Holm-adjusted McNemar over its drifted cells), and
    the numbers it rests on."""
    mine = [c for c in cells.values() if c["scenario"] == scenario]
    drifted = [c for c in mine if c["f"] > 0]
    null = [c for c in mine if c["f"] == 0]
    facts: dict = {"drifted_cells": len(drifted)}
    for a, b in PAIRS:
        key = f"{a}-{b}"
        diffs = [c["paired"][key]["diff"] for c in drifted]
        wins = sum(c["paired"][key]["diff"] > 0 and c["paired"][key]["holm_p"] < 0.05 for c in drifted)
        losses = sum(c["paired"][key]["diff"] < 0 and c["paired"][key]["holm_p"] < 0.05 for c in drifted)
        facts[key] = {"mean_diff": float(np.mean(diffs)) if diffs else None,
                      "min_diff": float(min(diffs)) if diffs else None,
                      "max_diff": float(max(diffs)) if diffs else None,
                      "wins": int(wins), "losses": int(losses), "verdict": verdict(wins, losses),
                      "mean_power_a": float(np.mean([c["tests"][a]["rate"] for c in drifted])) if drifted else None,
                      "mean_power_b": float(np.mean([c["tests"][b]["rate"] for c in drifted])) if drifted else None}
    calibrated = {t: all(c["tests"][t]["ci95"][0] <= alpha <= c["tests"][t]["ci95"][1] for c in null)
                  for t in TESTS}
    facts["false_alarm_max"] = {t: max((c["tests"][t]["rate"] for c in null), default=None) for t in TESTS}
    facts["alpha_in_ci_at_f0"] = calibrated
    h, q, t = facts["fuse_quantum-fuse"], facts["fuse_quantum_only-fuse"], facts["quantum_fidelity-rbf_tuned"]
    if not drifted:
        return f"{scenario}: no drifted cells", facts
    off = [name for name, ok in calibrated.items() if not ok]
    fa = ", ".join(f"{k} {v:.2f}" for k, v in facts["false_alarm_max"].items() if v is not None)
    line = (f"{scenario}: adding quantum kernels to MMD-FUSE {h['verdict']} (power fuse_quantum {h['mean_power_a']:.2f}"
            f" vs fuse {h['mean_power_b']:.2f} over {len(drifted)} drifted cells; paired difference "
            f"{h['mean_diff']:+.3f}, from {h['min_diff']:+.2f} to {h['max_diff']:+.2f}; {h['wins']} significant gains, "
            f"{h['losses']} losses, exact McNemar, Holm over the cells); quantum-only FUSE {q['verdict']} "
            f"({q['mean_power_a']:.2f} vs {q['mean_power_b']:.2f}, {q['wins']} gains, {q['losses']} losses); "
            f"the tuned fidelity kernel vs its RBF twin {t['verdict']} ({t['mean_power_a']:.2f} vs "
            f"{t['mean_power_b']:.2f}, {t['wins']} gains, {t['losses']} losses). Largest false-alarm rate at f = 0: "
            f"{fa}" + (f"; alpha outside the 95% interval for {', '.join(off)}" if off else
                       "; alpha inside every test's 95% interval") + ".")
    return line, facts


# ----------------------------------------------------------------------------- the bench


def pools_of(feats: dict, args: argparse.Namespace) -> dict[str, dict[str, np.ndarray]]:
    """scenario -> {"ref", "drift"}: seeded subsets of bench/drift.py's pools, the first QUBITS features."""
    rng = np.random.default_rng(args.pool_seed)
    out = {}
    for s in args.scenarios:
        ref, drift = (np.ascontiguousarray(feats[s][k][:, :QUBITS], dtype=np.float64) for k in ("ref", "drift"))
        out[s] = {"ref": ref[np.sort(rng.choice(len(ref), min(args.pool_ref, len(ref)), replace=False))],
                  "drift": drift[np.sort(rng.choice(len(drift), min(args.pool_drift, len(drift)), replace=False))]}
    return out


def run(args: argparse.Namespace) -> dict:
    params, mp = section(args)
    t_start = time.perf_counter()
    feats = features(args.pool, params.train.model, params.encode.n_features, params.encode.max_length)
    if feats[args.scenarios[0]]["ref"].shape[1] < QUBITS:
        raise ValueError(f"encode.n_features must give at least {QUBITS} components")
    pools = pools_of(feats, args)
    out: dict = {"cells": {}, "concentration": {}, "precompute_s": {}, "check": {}, "cost": {}}
    pooled_s = {m: {t: [] for t in TESTS} for m in args.sizes}
    direct_s: dict = {m: {t: [] for t in REGISTERED} for m in args.sizes}
    circuits: dict = {m: {} for m in args.sizes}
    for s in args.scenarios:
        pool = np.concatenate([pools[s]["ref"], pools[s]["drift"]])
        grams, secs, conc = scenario_grams(s, pool, mp.quantum, sorted(set(args.bandwidths)), not args.no_cache)
        out["precompute_s"][s], out["concentration"][s] = {str(b): v for b, v in secs.items()}, conc
        classes, direct = drift_test_classes(grams), drift_test_classes(None)
        # the direct check: the registry's own tests and kernels on the first windows of the largest fraction
        f_check = max(args.fractions)
        for m in args.sizes:
            for rep in range(args.check):
                ref, live = cell_draw(pools[s], m, f_check, seed_of(s, m, f_check, rep))
                rep_mp = mp.model_copy(update={"seed": rep})
                a = run_window(direct, rep_mp, ref, live, REGISTERED)
                b = run_window(classes, rep_mp, ref, live, REGISTERED)
                dp = {t: abs(a[t].row["p_value"] - b[t].row["p_value"]) for t in REGISTERED}
                out["check"][f"{s} n={m} f={f_check} rep={rep}"] = {
                    "direct_p": {t: a[t].row["p_value"] for t in REGISTERED},
                    "max_abs_p_diff": max(dp.values()),
                    "same_decisions": all(a[t].row["alarm"] == b[t].row["alarm"] for t in REGISTERED),
                    "direct_wall_s": {t: round(a[t].seconds, 3) for t in REGISTERED}}
                for t in REGISTERED:
                    direct_s[m][t].append(a[t].seconds)
                    circuits[m][t] = a[t].row.get("circuits", 0)
                print(f"{s} n={m}: direct check rep {rep}: max |p diff| {max(dp.values()):.2g}, wall "
                      + " ".join(f"{t} {a[t].seconds:.1f}s" for t in REGISTERED), flush=True)
        for m in args.sizes:
            for f in args.fractions:
                alarms = {t: np.zeros(args.reps, dtype=bool) for t in TESTS}
                for rep in range(args.reps):
                    ref, live = cell_draw(pools[s], m, f, seed_of(s, m, f, rep))
                    res = run_window(classes, mp.model_copy(update={"seed": rep}), ref, live)
                    for t, o in res.items():
                        alarms[t][rep] = o.row["alarm"]
                        pooled_s[m][t].append(o.seconds)
                cell = {"scenario": s, "n": m, "m": m, "f": f, "reps": args.reps,
                        **cell_stats(alarms, args.boot, seed_of(s, m, f, -1))}
                out["cells"][f"{s} n={m} f={f}"] = cell
                fq = cell["paired"]["fuse_quantum-fuse"]
                print(f"{s:6s} n=m={m:3d} f={f:.1f}: " + "  ".join(
                    f"{t} {c['rate']:.2f}" for t, c in cell["tests"].items())
                    + f"  | fuse_quantum-fuse {fq['diff']:+.2f} p {fq['mcnemar_p']:.2g}", flush=True)
    for s in args.scenarios:  # Holm over each scenario's drifted cells, per comparison
        drifted = [c for c in out["cells"].values() if c["scenario"] == s and c["f"] > 0]
        for a, b in PAIRS:
            key = f"{a}-{b}"
            for c, p in zip(drifted, holm([c["paired"][key]["mcnemar_p"] for c in drifted])):
                c["paired"][key]["holm_p"] = p
        for c in out["cells"].values():
            if c["scenario"] == s and c["f"] == 0:
                for key in c["paired"]:
                    c["paired"][key]["holm_p"] = None  # no drift: the difference of false-alarm rates, not power
    n_windows = len(args.sizes) * len(args.fractions) * args.reps  # per scenario
    out["cost"] = {
        "pooled_wall_s_per_window": {str(m): {t: float(np.mean(v)) for t, v in d.items()} for m, d in pooled_s.items()},
        "direct_wall_s_per_window": {str(m): {t: float(np.mean(v)) if v else None for t, v in d.items()}
                                     for m, d in direct_s.items()},
        "direct_note": "the registry's own tests with fresh 16-qubit statevectors per window (one core); "
                       "fuse_quantum_only computes the same fidelity Grams as fuse_quantum",
        "circuits_per_window": {str(m): d for m, d in circuits.items()},
        "precompute_s_per_pooled_window": {s: float(sum(v.values()) / n_windows)
                                           for s, v in out["precompute_s"].items()},
    }
    checks = list(out["check"].values())
    out["check_summary"] = {"windows": len(checks),
                            "max_abs_p_diff": max((c["max_abs_p_diff"] for c in checks), default=None),
                            "same_decisions": all(c["same_decisions"] for c in checks)}
    out["conclusions"], out["facts"] = {}, {}
    for s in args.scenarios:
        out["conclusions"][s], out["facts"][s] = conclude(out["cells"], s, mp.alpha)
    out["config"] = {**vars(args), "qubits": QUBITS, "alpha": mp.alpha, "tests": list(TESTS),
                     "monitor": mp.model_dump(mode="json"), "wall_s": time.perf_counter() - t_start}
    return out


def table(res: dict) -> str:
    head = (f"{'cell':22s} " + " ".join(f"{t:>17s}" for t in TESTS)
            + "   fq-fuse  McNemar p  boot 95%        fqo-fuse  p")
    lines = [head]
    for k, c in res["cells"].items():
        pq, po = c["paired"]["fuse_quantum-fuse"], c["paired"]["fuse_quantum_only-fuse"]
        lines.append(f"{k:22s} " + " ".join(
            f"{c['tests'][t]['rate']:.2f} [{c['tests'][t]['ci95'][0]:.2f},{c['tests'][t]['ci95'][1]:.2f}]"
            for t in TESTS) + f"   {pq['diff']:+.2f}    {pq['mcnemar_p']:8.3g}  [{pq['bootstrap_95'][0]:+.2f},"
            f"{pq['bootstrap_95'][1]:+.2f}]   {po['diff']:+.2f}  {po['mcnemar_p']:.3g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100], help="n = m: reference and window")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.2, 0.5])
    ap.add_argument("--scenarios", nargs="+", default=["topic", "style"],
                    choices=["topic", "vocabulary", "style", "label"])
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4],
                    help="the fidelity kernels' bandwidths: fuse_quantum's and quantum_fidelity's tuning grid")
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=2000, help="bench/drift.py's pool (its feature cache)")
    ap.add_argument("--pool-ref", type=int, default=1000, help="reference-pool rows drawn from (states computed)")
    ap.add_argument("--pool-drift", type=int, default=500, help="drifted-pool rows drawn from")
    ap.add_argument("--pool-seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=1, help="windows per scenario and size run on fresh states too")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--no-cache", action="store_true", help="recompute the pooled Grams (and do not store them)")
    ap.add_argument("--quick", action="store_true", help="10 reps, n = 20 and 50, f = 0 and 0.5, pools 300 + 150")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.sizes, args.fractions, args.pool_ref, args.pool_drift = 10, [20, 50], [0.0, 0.5], 300, 150
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        res = run(args)
    res["environment"] = environment()
    res["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    out = CACHE.parent / "drift_regime.quick.json" if args.quick else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(table(res))
    for line in res["conclusions"].values():
        print(line)
    print(f"check: {res['check_summary']}; wall {res['config']['wall_s']:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
