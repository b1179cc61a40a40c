"""FMQA (each QUBO solver) against BOCS, Optuna's GP and TPE samplers and random search: equal evaluation budgets,
30 paired seeds, regret against a stated optimum.

    python -m bench.search [--seeds 30] [--budget 80] [--problems ...] [--searchers ...] [--quick]
    python -m bench.search --summarise            # the JSON from the runs cached so far (bench/.cache)

Four problems (issue 36, item 3):

- `sst2`: the tabular benchmark built by bench/search_table.py: the stage's own proxy fine-tuning on SST-2 over
  120 configurations (learning rate x epochs x frozen layers x head x batch size), evaluated once; a search
  looks its scores up. FMQA and BOCS one-hot encode it in 14 bits. Optimum: the table's best.
- `bqp` (d = 10) and `bqp20` (d = 20): BOCS's binary quadratic problem (Baptista & Poloczek, ICML 2018, arXiv
  1806.08838, sec. 4.1): maximize f(x) = x^T Q x - lambda |x|_1 over x in {0,1}^d, Q_ij = a_ij exp(-(i-j)^2 / L_c^2),
  a_ij ~ N(0, 1), L_c = 10, lambda = 0.01 (the paper's text; its code divides by L_c, not L_c^2); a new Q per
  seed. Optimum by brute force over all 2^d points. A second-order surrogate represents it exactly.
- `contamination` (d = 25): BOCS's contamination control problem (sec. 4.2; Hu et al. 2010; the reference code's
  `Contamination.m` / `contamination_prob.m`): stage i of 25 is treated (x_i = 1, cost 1) or not; the contaminated
  fraction Z_i = Lambda_i (1 - x_i)(1 - Z_{i-1}) + (1 - Gamma_i x_i) Z_{i-1}, Z_0 ~ Beta(1, 30), Lambda ~ Beta(1, 17/3),
  Gamma ~ Beta(1, 3/7), over T = 100 Monte Carlo draws fixed per seed (common random numbers: the objective is
  deterministic); minimise sum x_i - sum_i (P_T(Z_i <= 0.1) - 0.95) + lambda |x|_1 (lambda = 0.01): the score is
  its negative. 2^25 evaluations are out of reach, so the optimum of a seed is the best of (a) simulated annealing
  on the true objective (32 chains x 3000 single flips, then a greedy descent) and (b) every run of every searcher
  on that seed; the JSON says which one set it (`optimum_source`). Its regret is a lower bound on the true one.

Searchers: random, TPE and GP (Optuna 5; `n_startup_trials` = the initial design, 5; the GP told the objective is
deterministic), BOCS (qlife/methods/bocs.py: horseshoe regression on second-order features, Thompson sampling,
SA acquisition; FMQA's encoding and initial design), FMQA with each QUBO solver. Left out, stated in the JSON
(`left_out`): FMQA-QAOA where its state vector has more than QAOA_MAX_BITS qubits (a d = 20 solve took 22 s on
the shared 2 cores, x 75 solves x 30 seeds), FMQA-exact above 24 bits (the enumeration's limit), and the extra
classical QUBO solvers (tabu, path-integral) on the d >= 20 problems (CPU time; on d = 10 they track SA).

Each (problem, searcher, seed) runs `--budget` evaluations through qlife.methods.searchers.run_search; smaller
budgets are prefixes of that run (no searcher is told its budget). Finished runs are appended to
bench/.cache/search_runs.jsonl and skipped when rerun, so a long grid can be stopped and resumed. Seeds are
paired across searchers (the same seed is the same instance), so FMQA vs a peer is a Wilcoxon signed-rank test
on the paired best scores. Regret: mean, sd, median and IQR. Searcher overhead is the wall time of ask + tell per
proposal, against the median wall time of one proxy evaluation in the SST-2 table. Runs go to 2 worker processes
(one BLAS and one torch thread each). Writes bench/results/search.json and search.png.

A run holds up to 3 FMQA solvers x 4 peers x 4 budgets x 4 problems Wilcoxon tests (144 here), so about 7 fall
below p = 0.05 by chance alone. Each test carries its Holm-adjusted p over that family (`holm_p`), and the README's
ahead / behind words come from it; the issue's one pre-stated cell (`goal`: FMQA vs BOCS at 20 on d = 20) is judged
on its raw p. Seeded runs repeat exactly on one machine, not across CPUs: floating-point paths differ, and a
trajectory parts at the first proposal a last bit changes. Between the committed run and the one before it
(another CPU), random and FMQA-exact repeated in every run, FMQA-SA in 115 of 120 and FMQA-QAOA in 24 of 30,
BOCS in 5 of 120 (it parts at its 5th-12th evaluation), GP in 49 and TPE in 58 of 120.
`--replicate REF` sets this run's words beside another run's (a file, or git `REF[:PATH]`) in `replication`.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write
from qlife.verdict import holm

BUDGETS = (10, 20, 40, 80)
N_INIT = 5
QAOA_MAX_BITS = 14  # FMQA-QAOA's state vector: 2^bits amplitudes per circuit evaluation
EXTRA_SOLVERS_MAX_BITS = 14  # tabu and path-integral only where d <= 14 (CPU time)
CACHE = Path(__file__).parent / ".cache" / "search_runs.jsonl"
PROBLEMS = ("sst2", "bqp", "bqp20", "contamination")
SOLVERS: dict[str, dict[str, Any]] = {
    "exact": {"kind": "exact", "num_reads": 16},
    "sa": {"kind": "sa", "num_reads": 50, "num_sweeps": 500},
    "path_integral": {"kind": "path_integral", "num_reads": 20, "num_sweeps": 500},
    "tabu": {"kind": "tabu", "num_reads": 4, "timeout_ms": 10},
    "qaoa": {"kind": "qaoa", "p": 1, "restarts": 2, "maxiter": 60, "shots": 1024},  # the stage default
}
SEARCHERS = ("random", "tpe", "gp", "bocs", *(f"fmqa_{s}" for s in SOLVERS))
PEERS = ("bocs", "gp", "tpe", "random")  # each FMQA solver is tested against each


# --- problems -------------------------------------------------------------------------------------------
def sst2_problem() -> dict:
    from bench.search_table import TABLE, configs

    table = json.loads(TABLE.read_text()) if TABLE.exists() else None
    if table is None or len(table["rows"]) < len(configs()):
        raise SystemExit(f"{TABLE} is missing or incomplete: run `python -m bench.search_table` first "
                         "(~30 min on 2 cores, resumable)")
    space = table["space"]
    scores = {tuple(r[k] for k in space): r["score"] for r in table["rows"]}
    return {"name": "sst2", "space": space, "scores": scores, "optimum": max(scores.values()),
            "eval_wall_s": float(np.median([r["wall_s"] for r in table["rows"]])), "fmqa": {}}  # median: robust to load


def bqp_instance(seed: int, d: int = 10, lc: float = 10.0, lam: float = 0.01) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(10_000 + seed) if d == 10 else np.random.default_rng([10_000 + seed, d])
    i = np.arange(d)
    q = rng.normal(size=(d, d)) * np.exp(-((i[:, None] - i[None, :]) ** 2) / lc**2)
    return q, lam


def bqp_value(q: np.ndarray, lam: float, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x).astype(float)
    return np.einsum("si,ij,sj->s", x, q, x) - lam * x.sum(1)


def bqp_optimum(q: np.ndarray, lam: float) -> float:
    """max over all 2^d points, by qlife's exact enumeration (the minimum energy of -f as a QUBO)."""
    import dimod

    from qlife.quantum.qubo import all_energies

    d = len(q)
    bqm = dimod.BinaryQuadraticModel({i: -(q[i, i] - lam) for i in range(d)},
                                     {(i, j): -(q[i, j] + q[j, i]) for i in range(d) for j in range(i + 1, d)},
                                     0.0, dimod.BINARY)
    return float(-all_energies(bqm).min())


def bqp_problem(seed: int, d: int = 10) -> dict:
    q, lam = bqp_instance(seed, d)
    return {"name": "bqp" if d == 10 else f"bqp{d}", "space": {f"x{i}": [0, 1] for i in range(d)}, "q": q,
            "lam": lam, "fmqa": {"domain_wall_min_levels": 2}}


def contamination_instance(seed: int, d: int = 25, draws: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z_0 (draws,), Lambda (d, draws), Gamma (d, draws) of one seed (Contamination.m's Beta parameters)."""
    rng = np.random.default_rng([20_000 + seed, d])
    return rng.beta(1, 30, draws), rng.beta(1, 17 / 3, (d, draws)), rng.beta(1, 3 / 7, (d, draws))


def contamination_value(inst: tuple, x: np.ndarray, lam: float = 0.01, limit: float = 0.1,
                        epsilon: float = 0.05) -> np.ndarray:
    """Score (to maximise) of rows x (n, d): -(sum x - sum_i (P(Z_i <= limit) - (1 - epsilon)) + lam |x|_1)."""
    z0, rate, restore = inst
    x = np.atleast_2d(x).astype(float)
    z = np.broadcast_to(z0, (len(x), len(z0)))
    within = np.zeros(len(x))
    for i in range(x.shape[1]):
        u = x[:, i: i + 1]
        z = rate[i] * (1 - u) * (1 - z) + (1 - restore[i] * u) * z
        within += (z <= limit).mean(1) - (1 - epsilon)
    return -(x.sum(1) - within + lam * x.sum(1))


def contamination_reference(seed: int, chains: int = 32, steps: int = 3000) -> tuple[float, list[int]]:
    """A long SA on the true objective (single flips, T from 1 to 1e-3 geometric), then greedy single-flip
    descent from the best state: (best score, its x)."""
    inst = contamination_instance(seed)
    d = inst[1].shape[0]
    rng = np.random.default_rng(30_000 + seed)
    x = rng.integers(0, 2, (chains, d))
    f = contamination_value(inst, x)
    best_f, best_x = f.copy(), x.copy()
    rows = np.arange(chains)
    for t in np.geomspace(1.0, 1e-3, steps):
        new = x.copy()
        new[rows, rng.integers(0, d, chains)] ^= 1
        g = contamination_value(inst, new)
        acc = (g > f) | (rng.random(chains) < np.exp((g - f) / t))
        x[acc], f[acc] = new[acc], g[acc]
        up = f > best_f
        best_x[up], best_f[up] = x[up], f[up]
    xb = best_x[int(np.argmax(best_f))].copy()
    fb = float(best_f.max())
    while True:  # greedy: the best single flip while it improves
        nbr = np.repeat(xb[None], d, 0)
        nbr[np.arange(d), np.arange(d)] ^= 1
        g = contamination_value(inst, nbr)
        if g.max() <= fb + 1e-12:
            return fb, [int(v) for v in xb]
        xb, fb = nbr[int(np.argmax(g))], float(g.max())


def contamination_problem(seed: int, d: int = 25) -> dict:
    return {"name": "contamination", "space": {f"x{i}": [0, 1] for i in range(d)},
            "inst": contamination_instance(seed, d), "fmqa": {"domain_wall_min_levels": 2}}


def make_problem(name: str, seed: int) -> dict:
    if name == "sst2":
        return sst2_problem()
    if name == "bqp":
        return bqp_problem(seed, 10)
    if name == "bqp20":
        return bqp_problem(seed, 20)
    if name == "contamination":
        return contamination_problem(seed)
    raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}")


def problem_bits(name: str) -> int:
    return {"sst2": 14, "bqp": 10, "bqp20": 20, "contamination": 25}[name]


def left_out(problem: str, searcher: str) -> str | None:
    """Why a (problem, searcher) pair is not run, or None."""
    bits = problem_bits(problem)
    if searcher == "fmqa_qaoa" and bits > QAOA_MAX_BITS:
        return (f"FMQA-QAOA: {bits} qubits, 2^{bits} amplitudes per circuit evaluation; one p = 1 solve (2 restarts x "
                f"60 iterations) took 22 s at d = 20 on the shared 2 cores: 75 solves x 30 seeds is out of reach")
    if searcher == "fmqa_exact" and bits > 24:
        return f"FMQA-exact: {bits} bits, over the exact enumeration's 24-variable limit"
    if searcher in ("fmqa_tabu", "fmqa_path_integral") and bits > EXTRA_SOLVERS_MAX_BITS:
        return "CPU time on the shared 2 cores: FMQA-SA and FMQA-exact stand for the classical QUBO solvers here"
    return None


# --- one run --------------------------------------------------------------------------------------------
def run_one(task: tuple[str, str, int, int, dict]) -> dict:
    import torch

    from qlife.methods.searchers import make_searcher, run_search
    from qlife.params import parse_params

    torch.set_num_threads(1)
    problem_name, searcher, seed, budget, extra = task
    prob = make_problem(problem_name, seed)
    space = prob["space"]
    if problem_name == "sst2":
        def evaluate(c: dict) -> float:
            return prob["scores"][tuple(c[k] for k in space)]
    elif problem_name == "contamination":
        def evaluate(c: dict) -> float:
            return float(contamination_value(prob["inst"], np.array([c[k] for k in space]))[0])
    else:
        def evaluate(c: dict) -> float:
            return float(bqp_value(prob["q"], prob["lam"], np.array([c[k] for k in space]))[0])
    warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning (deterministic_objective): a worker process
    if searcher.startswith("fmqa_"):
        solver_spec = {**SOLVERS[searcher[5:]], **({} if searcher == "fmqa_exact" else {"seed": seed})}
        solver = parse_params({"search": {"fmqa": {"solver": solver_spec}}}).search.fmqa.solver
        options = {"n_init": N_INIT, "solver": solver, **prob["fmqa"], **extra}
        s = make_searcher("fmqa", space, seed, options)
    elif searcher == "bocs":  # FMQA's encoding and initial design size
        s = make_searcher("bocs", space, seed, {"n_init": N_INIT, **prob["fmqa"]})
    elif searcher in ("tpe", "gp"):
        s = make_searcher(searcher, space, seed, {"n_startup_trials": N_INIT, **(
            {"deterministic_objective": True} if searcher == "gp" else {})})
    else:
        s = make_searcher(searcher, space, seed, {})
    t0 = time.perf_counter()
    history, stats = run_search([s], evaluate, budget, log=None)
    res = s.resources()
    return {"problem": problem_name, "searcher": searcher, "seed": seed, "budget": budget, "options": extra,
            "scores": [h["score"] for h in history], "overhead_s": [h["overhead_s"] for h in history],
            "wall_s": time.perf_counter() - t0,
            "violations": res.get("violations"), "neighbour_proposals": res.get("neighbour_proposals"),
            "random_proposals": res.get("random_proposals"), "duplicates": res.get("duplicate_proposals")}


# --- statistics -----------------------------------------------------------------------------------------
def paired_test(a: list[dict], c: list[dict], b: int) -> dict | None:
    """Wilcoxon signed-rank on the best of the first b scores, over the seeds both reached b on."""
    from scipy.stats import wilcoxon

    x_by = {r["seed"]: max(r["scores"][:b]) for r in a if len(r["scores"]) >= b}
    y_by = {r["seed"]: max(r["scores"][:b]) for r in c if len(r["scores"]) >= b}
    seeds = sorted(set(x_by) & set(y_by))
    if len(seeds) < 2:
        return None
    x, y = np.array([x_by[s] for s in seeds]), np.array([y_by[s] for s in seeds])
    diff = x - y
    p = 1.0 if np.allclose(diff, 0) else float(wilcoxon(x, y, zero_method="zsplit").pvalue)
    return {"budget": b, "pairs": len(x), "median_difference": float(np.median(diff)),
            "mean_difference": float(diff.mean()), "fmqa_wins": int((diff > 1e-12).sum()),
            "ties": int((np.abs(diff) <= 1e-12).sum()), "peer_wins": int((diff < -1e-12).sum()), "wilcoxon_p": p}


def summarize(runs: list[dict], eval_wall_s: float,
              budgets: tuple[int, ...] = BUDGETS) -> tuple[list[dict], list[dict]]:
    """Rows per (problem, searcher, budget): best and regret (median, IQR, mean, sd) over the seeds that reached the
    budget, and an overhead row; tests: each FMQA solver against each peer (PEERS) at each budget. Every run
    carries its seed's `optimum`."""
    rows, tests = [], []
    by: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        by.setdefault((r["problem"], r["searcher"]), []).append(r)
    for (prob, name), rs in sorted(by.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        for b in budgets:
            reached = [r for r in rs if len(r["scores"]) >= b]
            if not reached:
                continue
            best = np.array([max(r["scores"][:b]) for r in reached])
            regret = np.array([r["optimum"] for r in reached]) - best
            q1, med, q3 = np.percentile(best, [25, 50, 75])
            r1, rmed, r3 = np.percentile(regret, [25, 50, 75])
            rows.append({"problem": prob, "searcher": name, "budget": b, "seeds": len(reached),
                         "median_best": float(med), "iqr_best": [float(q1), float(q3)],
                         "median_regret": float(rmed), "iqr_regret": [float(r1), float(r3)],
                         "mean_regret": float(regret.mean()), "sd_regret": float(regret.std(ddof=1))
                         if len(regret) > 1 else 0.0,
                         "found_optimum": float(np.mean(regret <= 1e-12))})
        overhead = np.concatenate([r["overhead_s"] for r in rs])
        rows.append({"problem": prob, "searcher": name, "budget": "overhead",
                     "overhead_per_proposal_s": float(overhead.mean()),
                     "overhead_p95_s": float(np.percentile(overhead, 95)),
                     "overhead_vs_one_proxy_evaluation": float(overhead.mean() / eval_wall_s),
                     "violations": int(sum(r["violations"] or 0 for r in rs)),
                     "neighbour_proposals": int(sum(r["neighbour_proposals"] or 0 for r in rs)),
                     "random_proposals": int(sum(r["random_proposals"] or 0 for r in rs))})
    for prob in sorted({p for p, _ in by}):
        for name in [s for s in SEARCHERS if s.startswith("fmqa_")]:
            for peer in PEERS:
                if (prob, name) not in by or (prob, peer) not in by:
                    continue
                for b in budgets:
                    t = paired_test(by[(prob, name)], by[(prob, peer)], b)
                    if t is not None:
                        tests.append({"problem": prob, "fmqa": name, "vs": peer, **t})
    for t, h in zip(tests, holm([t["wilcoxon_p"] for t in tests]) if tests else []):
        t["holm_p"] = h  # the family: every FMQA-vs-peer test of this run; the README's words come from it
    return rows, tests


def word(t: dict, key: str = "holm_p") -> str:
    """ahead / behind where the test's p (Holm-adjusted by default) is below 0.05, in the direction of more wins."""
    return ("ahead" if t["fmqa_wins"] > t["peer_wins"] else "behind") if t[key] < 0.05 else "tie"


def replication(tests: list[dict], other: dict, source: str) -> dict:
    """This run's tests beside another run's on the same problems, seeds and budgets (e.g. the same grid on another
    CPU, where BOCS, GP and TPE follow other trajectories from the same seeds: floating-point paths differ): each
    common test's p-values and words in both, raw (p < 0.05) and Holm-adjusted over each run's own family."""
    theirs = other["tests"]
    if theirs and "holm_p" not in theirs[0]:
        theirs = [{**t, "holm_p": h} for t, h in zip(theirs, holm([t["wilcoxon_p"] for t in theirs]))]
    key = lambda t: (t["problem"], t["fmqa"], t["vs"], t["budget"])  # noqa: E731
    by = {key(t): t for t in theirs}
    rows = [{"problem": t["problem"], "fmqa": t["fmqa"], "vs": t["vs"], "budget": t["budget"],
             "p": [t["wilcoxon_p"], by[key(t)]["wilcoxon_p"]], "holm_p": [t["holm_p"], by[key(t)]["holm_p"]],
             "raw": [word(t, "wilcoxon_p"), word(by[key(t)], "wilcoxon_p")],
             "holm": [word(t), word(by[key(t)])]} for t in tests if key(t) in by]
    differ = {k: [f"{r['problem']} {r['fmqa']} vs {r['vs']} @{r['budget']}: {r[k][0]} here, {r[k][1]} there"
                  for r in rows if r[k][0] != r[k][1]] for k in ("raw", "holm")}
    return {"source": source, "other_created": other.get("created"), "other_environment": other.get("environment"),
            "common_tests": len(rows), "family_sizes": [len(tests), len(theirs)],
            "raw_agree": len(rows) - len(differ["raw"]), "holm_agree": len(rows) - len(differ["holm"]),
            "raw_differ": differ["raw"], "holm_differ": differ["holm"],
            "holm_not_tie_in_both": [f"{r['problem']} {r['fmqa']} vs {r['vs']} @{r['budget']}: {r['holm'][0]}"
                                     for r in rows if r["holm"][0] == r["holm"][1] != "tie"],
            "tests": rows}


def load_other(spec: str) -> dict:
    """A results JSON by path, or `REF` / `REF:PATH` from git (default path bench/results/search.json)."""
    path = Path(spec)
    if path.exists():
        return json.loads(path.read_text())
    import subprocess

    ref, _, inner = spec.partition(":")
    out = subprocess.run(["git", "show", f"{ref}:{inner or 'bench/results/search.json'}"], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"--replicate {spec}: neither a file nor a git object ({out.stderr.strip()})")
    return json.loads(out.stdout)


def goal(rows: list[dict], tests: list[dict], problem: str = "bqp20", budget: int = 20) -> dict:
    """Issue 36's goal: FMQA at least equal to BOCS at 20 evaluations on d = 20. Met by a solver when BOCS is not
    ahead by the paired test (Wilcoxon p < 0.05 with more BOCS wins)."""
    out = {"problem": problem, "budget": budget, "rule": "met unless BOCS is ahead: Wilcoxon p < 0.05 and more "
           "seeds where BOCS found the better score", "solvers": {}}
    reg = {r["searcher"]: r for r in rows if r["problem"] == problem and r["budget"] == budget}
    for t in tests:
        if t["problem"] == problem and t["vs"] == "bocs" and t["budget"] == budget:
            behind = t["wilcoxon_p"] < 0.05 and t["peer_wins"] > t["fmqa_wins"]
            ahead = t["wilcoxon_p"] < 0.05 and t["fmqa_wins"] > t["peer_wins"]
            out["solvers"][t["fmqa"]] = {
                "met": not behind, "verdict": "behind" if behind else "ahead" if ahead else "tie",
                "fmqa_mean_regret": reg[t["fmqa"]]["mean_regret"], "bocs_mean_regret": reg["bocs"]["mean_regret"],
                **{k: t[k] for k in ("pairs", "median_difference", "mean_difference", "fmqa_wins", "ties",
                                     "peer_wins", "wilcoxon_p")}}
    return out


def plot(runs: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = sorted({r["problem"] for r in runs})
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4), squeeze=False)
    for ax, prob in zip(axes[0], problems):
        for name in SEARCHERS:
            rs = [r for r in runs if r["problem"] == prob and r["searcher"] == name]
            if not rs:
                continue
            n = min(len(r["scores"]) for r in rs)
            reg = np.array([[r["optimum"] - v for v in np.maximum.accumulate(r["scores"][:n])] for r in rs])
            t = np.arange(1, reg.shape[1] + 1)
            med = np.median(reg, 0)
            ax.plot(t, med, label=name, lw=2 if name in ("tpe", "random", "fmqa_sa") else 1)
            ax.fill_between(t, *np.percentile(reg, [25, 75], 0), alpha=0.12)
        seeds = len({r["seed"] for r in runs if r["problem"] == prob})
        ax.set(title=f"{prob}: median regret (IQR), {seeds} seeds", xlabel="evaluations", ylabel="regret",
               yscale="symlog" if prob.startswith("bqp") else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def load_cache(path: Path = CACHE) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def select_runs(cached: list[dict], problems, searchers, seeds: int, options: dict) -> list[dict]:
    """Per (problem, searcher, seed) the cached run with the largest budget, with these FMQA options."""
    pick: dict[tuple, dict] = {}
    for r in cached:
        key = (r["problem"], r["searcher"], r["seed"])
        if (r["problem"] in problems and r["searcher"] in searchers and r["seed"] < seeds
                and r.get("options", {}) == options and (key not in pick or r["budget"] > pick[key]["budget"])):
            pick[key] = r
    return list(pick.values())


def contamination_optima(seeds: list[int], cache: Path = CACHE, workers: int = 2) -> dict[int, float]:
    """The long-SA reference of each seed, cached beside the runs (deterministic: seeded)."""
    path = cache.with_name("contamination_reference.json")
    known = {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}
    todo = [s for s in seeds if s not in known]
    if todo:
        with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
            known.update({s: r[0] for s, r in zip(todo, pool.map(contamination_reference, todo))})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known))
    return known


def attach_optima(runs: list[dict], cache: Path = CACHE, workers: int = 2) -> dict:
    """Each run gets its seed's optimum; returns {problem: {seed: source}}."""
    sources: dict[str, dict[int, str]] = {}
    cont = contamination_optima(sorted({r["seed"] for r in runs if r["problem"] == "contamination"}), cache, workers)
    bqp: dict[tuple, float] = {}
    for r in runs:
        prob, seed = r["problem"], r["seed"]
        if prob == "contamination":
            found = max(max(x["scores"]) for x in runs if x["problem"] == prob and x["seed"] == seed)
            r["optimum"] = max(cont[seed], found)
            src = "long SA" if cont[seed] >= found - 1e-12 else "a searcher's run (above the long SA)"
        elif prob == "sst2":
            r["optimum"], src = max(sst2_problem()["scores"].values()), "the table's best"
        else:
            if (prob, seed) not in bqp:
                q, lam = bqp_instance(seed, problem_bits(prob))
                bqp[(prob, seed)] = bqp_optimum(q, lam)
            r["optimum"], src = bqp[(prob, seed)], "brute force"
        sources.setdefault(prob, {})[seed] = src
    return sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    ap.add_argument("--searchers", nargs="+", default=list(SEARCHERS))
    ap.add_argument("--quick", action="store_true", help="5 seeds, a smoke run")
    ap.add_argument("--summarise", action="store_true", help="no new runs: the JSON from the cached runs")
    ap.add_argument("--fmqa", type=json.loads, default={}, help='FMQA options, e.g. \'{"rank": 8}\'')
    ap.add_argument("--tag", default="", help="write search_<tag>.json / .png (a variant beside the default)")
    ap.add_argument("--cache", type=Path, default=CACHE, help="the runs file (JSON lines), appended and reused")
    ap.add_argument("--replicate", default="", help="another run's JSON (a path, or a git REF[:PATH]) to set this "
                    "run's verdicts beside (the `replication` block)")
    args = ap.parse_args()
    seeds = 5 if args.quick else args.seeds
    sst2 = sst2_problem() if "sst2" in args.problems else None
    skipped = {f"{p} {s}": why for p in args.problems for s in args.searchers if (why := left_out(p, s))}
    cached = load_cache(args.cache)
    done = {(r["problem"], r["searcher"], r["seed"]) for r in cached
            if r["budget"] >= args.budget and r.get("options", {}) == args.fmqa}
    # the goal problem first, then the rest; within a problem, seed by seed (every searcher of a seed)
    order = sorted(args.problems, key=lambda p: (p != "bqp20", args.problems.index(p)))
    tasks = [(p, s, seed, args.budget, args.fmqa) for p in order for seed in range(seeds) for s in args.searchers
             if f"{p} {s}" not in skipped and (p, s, seed) not in done]
    for k, why in skipped.items():
        print(f"  left out: {k}: {why}")
    t0 = time.perf_counter()
    if tasks and not args.summarise:
        print(f"bench.search: {len(tasks)} runs to do ({order} x {args.searchers} x {seeds} seeds, budget "
              f"{args.budget}) on {args.workers} workers; {len(done)} cached", flush=True)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(args.workers, initializer=_one_thread) as pool, args.cache.open("a") as out:
            futures = [pool.submit(run_one, t) for t in tasks]
            for i, fut in enumerate(futures):
                r = fut.result()
                out.write(json.dumps(r) + "\n")
                out.flush()
                print(f"  {i + 1}/{len(tasks)} {r['problem']} {r['searcher']} seed {r['seed']}: best "
                      f"{max(r['scores']):.4f} in {r['wall_s']:.0f} s ({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = select_runs(load_cache(args.cache), args.problems, args.searchers, seeds, args.fmqa)
    if not runs:
        raise SystemExit("no runs cached for these problems and searchers")
    ran = {(r["problem"], r["searcher"]) for r in runs}
    for p in args.problems:  # asked for, not left out by rule, and no run cached: say so
        for name in args.searchers:
            if f"{p} {name}" not in skipped and (p, name) not in ran:
                skipped[f"{p} {name}"] = "not run in this round (CPU time on the shared 2 cores)"
    sources = attach_optima(runs, args.cache, args.workers)
    eval_wall = sst2["eval_wall_s"] if sst2 else float("nan")
    budgets = tuple(b for b in BUDGETS if b <= args.budget) or (args.budget,)
    rows, tests = summarize(runs, eval_wall, budgets)
    reached = {p: sorted({r["budget"] for r in rows if r["problem"] == p and r["budget"] != "overhead"})
               for p in sorted({r["problem"] for r in runs})}
    common = [b for b in budgets if all(b in v for v in reached.values())]
    aim = goal(rows, tests)
    report(rows, tests, aim)
    rep = replication(tests, load_other(args.replicate), args.replicate) if args.replicate else None
    if rep:
        print(f"  beside {args.replicate} ({rep['common_tests']} common tests): raw words agree in "
              f"{rep['raw_agree']}, Holm words in {rep['holm_agree']}; not a tie in both (Holm): "
              f"{'; '.join(rep['holm_not_tie_in_both']) or 'none'}")
        for k in ("raw_differ", "holm_differ"):
            for line in rep[k]:
                print(f"    {k}: {line}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"search_{args.tag}" if args.tag else "search"
    plot(runs, RESULTS / f"{name}.png")
    write(name, rows, {"fmqa_options": args.fmqa, "problems": sorted(reached),
                       "seeds": seeds, "budget": args.budget, "budgets": common, "budgets_by_problem": reached,
                       "n_init": N_INIT, "solvers": SOLVERS, "proxy_eval_wall_s": eval_wall, "tests": tests,
                       "goal": aim, "left_out": skipped,
                       "optimum": {"sst2": "the table's best", "bqp": "brute force over 2^10",
                                   "bqp20": "brute force over 2^20",
                                   "contamination": "the best of a long SA on the true objective (32 chains x 3000 "
                                   "flips + greedy descent) and of every searcher's runs on the seed: regret is a "
                                   "lower bound"},
                       "optimum_source": {p: {str(k): v for k, v in d.items()} for p, d in sources.items()},
                       "runs": {f"{p} {s}": sum(1 for r in runs if r["problem"] == p and r["searcher"] == s)
                                for p, s in sorted({(r["problem"], r["searcher"]) for r in runs})},
                       "replication": rep,
                       "wall_s": time.perf_counter() - t0,
                       "curves": [{k: r[k] for k in ("problem", "searcher", "seed", "scores", "optimum")}
                                  for r in runs]})


def _one_thread() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def report(rows: list[dict], tests: list[dict], aim: dict) -> None:
    for row in rows:
        if row["budget"] == "overhead":
            print(f"  {row['problem']:13s} {row['searcher']:18s} overhead/proposal "
                  f"{row['overhead_per_proposal_s']:.3f} s")
        else:
            print(f"  {row['problem']:13s} {row['searcher']:18s} @{row['budget']:<3d} n={row['seeds']:2d} "
                  f"regret mean {row['mean_regret']:.4f} sd {row['sd_regret']:.4f} median {row['median_regret']:.4f} "
                  f"IQR [{row['iqr_regret'][0]:.4f}, {row['iqr_regret'][1]:.4f}] optimum found "
                  f"{row['found_optimum']:.0%}")
    for t in tests:
        print(f"  {t['problem']:13s} {t['fmqa']} vs {t['vs']} @{t['budget']}: mean diff {t['mean_difference']:+.4f}, "
              f"median {t['median_difference']:+.4f}, wins {t['fmqa_wins']}/{t['ties']}/{t['peer_wins']} "
              f"(fmqa/tie/peer), Wilcoxon p = {t['wilcoxon_p']:.3g}, Holm {t['holm_p']:.3g}: {word(t)}")
    print(f"  goal (FMQA at least equal to BOCS at {aim['budget']} evaluations on {aim['problem']}):")
    for name, g in aim["solvers"].items():
        print(f"    {name}: {'met' if g['met'] else 'NOT met'} ({g['verdict']}): mean regret "
              f"{g['fmqa_mean_regret']:.4f} vs BOCS {g['bocs_mean_regret']:.4f}, "
              f"wins {g['fmqa_wins']}/{g['ties']}/{g['peer_wins']}, "
              f"p = {g['wilcoxon_p']:.3g}")


if __name__ == "__main__":
    main()
