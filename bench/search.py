"""FMQA (each QUBO solver) against Optuna TPE and random search, equal evaluation budgets, many seeds.

    python -m bench.search [--seeds 30] [--budget 40] [--quick]

Two problems, both with a known optimum, so the figure is regret (optimum - best found):

- `sst2`: the tabular benchmark built by bench/search_table.py: the stage's own proxy fine-tuning on SST-2 over
  120 configurations (learning rate x epochs x frozen layers x head x batch size), evaluated once; a search
  looks its scores up. FMQA one-hot encodes it in 14 bits.
- `bqp`: BOCS's binary quadratic problem (Baptista & Poloczek, ICML 2018, arXiv 1806.08838, sec. 4.1):
  maximize f(x) = x^T Q x - lambda |x|_1 over x in {0,1}^10, Q_ij = a_ij exp(-(i-j)^2 / L_c^2), a_ij ~ N(0, 1),
  L_c = 10, lambda = 0.01; a new Q per seed, the optimum by brute force over 1024 points. A second-order
  surrogate can represent it exactly: where FMQA is expected to shine. FMQA uses one bit per variable.

Each (problem, searcher, seed) runs `--budget` evaluations through qlife.methods.searchers.run_search; budgets
10, 20, 40 are prefixes of that run (no searcher is told its budget). Seeds are paired across searchers (the same
seed is the same BQP instance), so FMQA vs TPE is a Wilcoxon signed-rank test on the paired best scores.
TPE starts from as many random points as FMQA's initial design (5). Searcher overhead is the wall time of
ask + tell per proposal, against the median wall time of one proxy evaluation in the SST-2 table.
Runs go to 2 worker processes (one torch thread each). Writes bench/results/search.json and search.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from bench.common import RESULTS, write

BUDGETS = (10, 20, 40)
N_INIT = 5
SOLVERS: dict[str, dict[str, Any]] = {
    "exact": {"kind": "exact", "num_reads": 16},
    "sa": {"kind": "sa", "num_reads": 50, "num_sweeps": 500},
    "path_integral": {"kind": "path_integral", "num_reads": 20, "num_sweeps": 500},
    "tabu": {"kind": "tabu", "num_reads": 4, "timeout_ms": 10},
    "qaoa": {"kind": "qaoa", "p": 1, "restarts": 2, "maxiter": 60, "shots": 1024},  # the stage default
}
SEARCHERS = ("random", "tpe", *(f"fmqa_{s}" for s in SOLVERS))


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
    rng = np.random.default_rng(10_000 + seed)
    i = np.arange(d)
    q = rng.normal(size=(d, d)) * np.exp(-((i[:, None] - i[None, :]) ** 2) / lc**2)
    return q, lam


def bqp_value(q: np.ndarray, lam: float, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x).astype(float)
    return np.einsum("si,ij,sj->s", x, q, x) - lam * x.sum(1)


def bqp_problem(seed: int) -> dict:
    q, lam = bqp_instance(seed)
    d = len(q)
    grid = np.array(list(itertools.product([0, 1], repeat=d)))
    return {"name": "bqp", "space": {f"x{i}": [0, 1] for i in range(d)}, "q": q, "lam": lam,
            "optimum": float(bqp_value(q, lam, grid).max()), "fmqa": {"domain_wall_min_levels": 2}}


# --- one run --------------------------------------------------------------------------------------------
def run_one(task: tuple[str, str, int, int, dict]) -> dict:
    import torch

    from qlife.methods.searchers import make_searcher, run_search
    from qlife.params import parse_params

    torch.set_num_threads(1)
    problem_name, searcher, seed, budget, extra = task
    prob = sst2_problem() if problem_name == "sst2" else bqp_problem(seed)
    space = prob["space"]
    if problem_name == "sst2":
        def evaluate(c: dict) -> float:
            return prob["scores"][tuple(c[k] for k in space)]
    else:
        def evaluate(c: dict) -> float:
            return float(bqp_value(prob["q"], prob["lam"], np.array([c[k] for k in space]))[0])
    if searcher.startswith("fmqa_"):
        solver_spec = {**SOLVERS[searcher[5:]], **({} if searcher == "fmqa_exact" else {"seed": seed})}
        solver = parse_params({"search": {"fmqa": {"solver": solver_spec}}}).search.fmqa.solver
        options = {"n_init": N_INIT, "solver": solver, **prob["fmqa"], **extra}
        s = make_searcher("fmqa", space, seed, options)
    else:
        s = make_searcher(searcher, space, seed, {"n_startup_trials": N_INIT} if searcher == "tpe" else {})
    t0 = time.perf_counter()
    history, stats = run_search([s], evaluate, budget, log=None)
    res = s.resources()
    return {"problem": problem_name, "searcher": searcher, "seed": seed, "optimum": prob["optimum"],
            "scores": [h["score"] for h in history], "overhead_s": [h["overhead_s"] for h in history],
            "wall_s": time.perf_counter() - t0,
            "violations": res.get("violations"), "neighbour_proposals": res.get("neighbour_proposals"),
            "random_proposals": res.get("random_proposals"), "duplicates": res.get("duplicate_proposals")}


# --- statistics -----------------------------------------------------------------------------------------
def summarize(runs: list[dict], eval_wall_s: float,
              budgets: tuple[int, ...] = BUDGETS) -> tuple[list[dict], list[dict]]:
    from scipy.stats import wilcoxon

    rows, tests = [], []
    by: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        by.setdefault((r["problem"], r["searcher"]), []).append(r)
    for (prob, name), rs in sorted(by.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        for b in budgets:
            best = np.array([max(r["scores"][:b]) for r in rs])
            regret = np.array([r["optimum"] for r in rs]) - best
            q1, med, q3 = np.percentile(best, [25, 50, 75])
            r1, rmed, r3 = np.percentile(regret, [25, 50, 75])
            rows.append({"problem": prob, "searcher": name, "budget": b, "seeds": len(rs),
                         "median_best": float(med), "iqr_best": [float(q1), float(q3)],
                         "median_regret": float(rmed), "iqr_regret": [float(r1), float(r3)],
                         "found_optimum": float(np.mean(regret <= 1e-12))})
        overhead = np.concatenate([r["overhead_s"] for r in rs])
        rows.append({"problem": prob, "searcher": name, "budget": "overhead",
                     "overhead_per_proposal_s": float(overhead.mean()),
                     "overhead_p95_s": float(np.percentile(overhead, 95)),
                     "overhead_vs_one_proxy_evaluation": float(overhead.mean() / eval_wall_s),
                     "violations": int(sum(r["violations"] or 0 for r in rs)),
                     "neighbour_proposals": int(sum(r["neighbour_proposals"] or 0 for r in rs)),
                     "random_proposals": int(sum(r["random_proposals"] or 0 for r in rs))})
    problems = sorted({p for p, _ in by})
    for prob in problems:
        for name in [s for s in SEARCHERS if s.startswith("fmqa_")]:
            for peer in ("tpe", "random"):
                if (prob, name) not in by or (prob, peer) not in by:
                    continue
                a = sorted(by[(prob, name)], key=lambda r: r["seed"])
                c = sorted(by[(prob, peer)], key=lambda r: r["seed"])
                for b in budgets:
                    x = np.array([max(r["scores"][:b]) for r in a])
                    y = np.array([max(r["scores"][:b]) for r in c])
                    diff = x - y
                    p = 1.0 if np.allclose(diff, 0) else float(wilcoxon(x, y, zero_method="zsplit").pvalue)
                    tests.append({"problem": prob, "fmqa": name, "vs": peer, "budget": b, "pairs": len(x),
                                  "median_difference": float(np.median(diff)), "fmqa_wins": int((diff > 1e-12).sum()),
                                  "ties": int((np.abs(diff) <= 1e-12).sum()), "peer_wins": int((diff < -1e-12).sum()),
                                  "wilcoxon_p": p})
    return rows, tests


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
            reg = np.array([[r["optimum"] - v for v in np.maximum.accumulate(r["scores"])] for r in rs])
            t = np.arange(1, reg.shape[1] + 1)
            med = np.median(reg, 0)
            ax.plot(t, med, label=name, lw=2 if name in ("tpe", "random", "fmqa_sa") else 1)
            ax.fill_between(t, *np.percentile(reg, [25, 75], 0), alpha=0.12)
        ax.set(title=f"{prob}: median regret (IQR), {len(rs)} seeds", xlabel="evaluations", ylabel="regret",
               yscale="symlog" if prob == "bqp" else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--problems", nargs="+", default=["sst2", "bqp"])
    ap.add_argument("--searchers", nargs="+", default=list(SEARCHERS))
    ap.add_argument("--quick", action="store_true", help="5 seeds, a smoke run")
    ap.add_argument("--fmqa", type=json.loads, default={}, help='FMQA options, e.g. \'{"rank": 8}\'')
    ap.add_argument("--tag", default="", help="write search_<tag>.json / .png (a variant beside the default)")
    args = ap.parse_args()
    seeds = 5 if args.quick else args.seeds
    sst2 = sst2_problem() if "sst2" in args.problems else None
    tasks = [(p, s, seed, args.budget, args.fmqa) for p in args.problems for s in args.searchers
             for seed in range(seeds)]
    print(f"bench.search: {len(tasks)} runs ({args.problems} x {args.searchers} x {seeds} seeds, budget "
          f"{args.budget}) on {args.workers} workers", flush=True)
    t0 = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, r in enumerate(pool.map(run_one, tasks, chunksize=1)):
            runs.append(r)
            if (i + 1) % max(1, len(tasks) // 20) == 0:
                print(f"  {i + 1}/{len(tasks)} runs, {time.perf_counter() - t0:.0f} s", flush=True)
    eval_wall = sst2["eval_wall_s"] if sst2 else float("nan")
    budgets = tuple(b for b in BUDGETS if b <= args.budget) or (args.budget,)
    rows, tests = summarize(runs, eval_wall, budgets)
    for row in rows:
        if row["budget"] == "overhead":
            print(f"  {row['problem']:5s} {row['searcher']:20s} overhead/proposal "
                  f"{row['overhead_per_proposal_s']:.3f} s "
                  f"= {row['overhead_vs_one_proxy_evaluation']:.1%} of one proxy evaluation")
        else:
            print(f"  {row['problem']:5s} {row['searcher']:20s} @{row['budget']:<3d} "
                  f"median best {row['median_best']:.4f} "
                  f"IQR [{row['iqr_best'][0]:.4f}, {row['iqr_best'][1]:.4f}] regret {row['median_regret']:.4f} "
                  f"optimum found {row['found_optimum']:.0%}")
    for t in tests:
        print(f"  {t['problem']:5s} {t['fmqa']} vs {t['vs']} @{t['budget']}: "
              f"median diff {t['median_difference']:+.4f}, "
              f"wins {t['fmqa_wins']}/{t['ties']}/{t['peer_wins']} (fmqa/tie/peer), Wilcoxon p = {t['wilcoxon_p']:.3g}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"search_{args.tag}" if args.tag else "search"
    plot(runs, RESULTS / f"{name}.png")
    write(name, rows, {"fmqa_options": args.fmqa, "problems": args.problems,
                       "seeds": seeds, "budget": args.budget, "budgets": list(budgets), "n_init": N_INIT,
                       "solvers": SOLVERS, "proxy_eval_wall_s": eval_wall, "tests": tests,
                       "wall_s": time.perf_counter() - t0,
                       "curves": [{k: r[k] for k in ("problem", "searcher", "seed", "scores", "optimum")}
                                  for r in runs]})


if __name__ == "__main__":
    main()
