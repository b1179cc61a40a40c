"""QUBO solvers: time and gap on k-of-n selection QUBOs (the pruning shape).

n = 8..24: exact, sa, tabu and qaoa (up to QAOA_MAX_N), gap to the exact optimum. n = 100, 500, 2,000:
sa and tabu, gap to the best known energy (the best of a long tabu run and every solver here).
dwave-samplers defaults unless stated; seeds fixed. Run: python -m bench.qubo [--quick]
"""

from __future__ import annotations

import argparse

import torch
from pydantic import TypeAdapter

from bench.common import table, write
from bench.problems import selection_qubo
from qlife.params import QuboSampler
from qlife.quantum.backends import solve as solve_spec

SMALL = [8, 12, 16, 20, 24]
LARGE = [100, 500, 2000]
QAOA_MAX_N = 20
OPTIONS = {
    "sa": {"num_reads": 10},
    "tabu": {"num_reads": 1, "timeout_ms": 100},
    "qaoa": {"p": 2, "restarts": 2, "maxiter": 60, "shots": 1024},
}


def solve(bqm, kind: str, **settings):
    """A sampler spec of `kind` with `settings` (the exact sampler takes no seed)."""
    if kind == "exact":
        settings.pop("seed", None)
    return solve_spec(bqm, TypeAdapter(QuboSampler).validate_python({"kind": kind, **settings}), "bench")


def _row(n: int, solver: str, res, ref: float, ref_kind: str) -> dict:
    return {
        "n": n,
        "solver": solver,
        "seconds": res.wall_s,
        "energy": res.energy,
        "reference": ref,
        "reference_kind": ref_kind,
        "gap": res.gap(ref),
        "feasible": int(res.x.sum()) == max(1, n // 4),
    }


def small(n: int, seed: int = 0) -> list[dict]:
    bqm = selection_qubo(n, seed)
    exact = solve(bqm, "exact")
    rows = [_row(n, "exact", exact, exact.energy, "exact")]
    for solver in ("sa", "tabu", "qaoa"):
        if solver == "qaoa" and n > QAOA_MAX_N:
            continue
        rows.append(_row(n, solver, solve(bqm, solver, seed=seed, **OPTIONS[solver]), exact.energy, "exact"))
    return rows


def large(n: int, seed: int = 0) -> list[dict]:
    bqm = selection_qubo(n, seed)
    results = {s: solve(bqm, s, seed=seed, **OPTIONS[s]) for s in ("sa", "tabu")}
    long_run = solve(bqm, "tabu", seed=seed + 1, num_reads=4, timeout_ms=2000)
    best = min([long_run.energy] + [r.energy for r in results.values()])
    return [_row(n, s, r, best, "best_known") for s, r in results.items()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n <= 16 and 100 only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (qaoa)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes_s, sizes_l = ([8, 12, 16], [100]) if args.quick else (SMALL, LARGE)
    rows = []
    cols = ["n", "solver", "seconds", "gap", "feasible"]
    for n in sizes_s:
        rows += small(n)
        print(table([r for r in rows if r["n"] == n], cols), flush=True)
    for n in sizes_l:
        rows += large(n)
        print(table(rows[-2:], cols), flush=True)
    meta = {
        "problem": "k-of-n selection QUBO, k = n/4, penalty 1.3 + max w, R ~ U(0, 0.3)/k (bench.problems)",
        "options": OPTIONS,
        "gap": "(E - E_ref) / |E_ref|",
    }
    path = write("qubo", rows, meta)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
