"""QAOA: our diagonal-phase statevector QAOA vs qiskit-optimization's QAOA (StatevectorSampler).

Same problem (k-of-n selection QUBO), same optimizer (COBYLA), same iteration budget, same initial point
(a linear ramp), one start each; both return the best sampled bitstring. Reports seconds, the ratio, the
energy each found and its gap to the exact optimum. Run: python -m bench.qaoa [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.common import table, write
from bench.problems import selection_qubo
from qlife.quantum.qaoa import QAOAOptimizer
from qlife.quantum.qubo import all_energies
from qlife.quantum.reference import qiskit_qaoa

MAXITER = {8: 30, 12: 30, 16: 30, 20: 30}
SHOTS = 1024
PEER_MAX_N = 16  # qiskit needs ~1 min per evaluation at 20 variables here: --peer20 to measure it


def run(n: int, p: int, maxiter: int, seed: int = 0, peer: bool = True) -> dict:
    bqm = selection_qubo(n, seed)
    energies = all_energies(bqm)
    exact = float(energies.min())
    ramp = (np.arange(p) + 0.5) / p
    gam, bet = 0.8 * ramp, 0.8 * (1 - ramp)  # standardized units (cost / std)
    std = float(energies.std())
    t0 = time.perf_counter()
    fit = QAOAOptimizer(p, restarts=1, maxiter=maxiter, seed=seed, initial_point=np.r_[gam, bet]).fit(energies)
    # what the sampler returns: the best of SHOTS samples of the final state
    sample = np.random.default_rng(seed + 1).choice(len(energies), SHOTS, p=fit.probabilities / fit.probabilities.sum())
    ours_energy = float(energies[sample].min())
    t_ours = time.perf_counter() - t0
    t_ref, e_ref, nfev_ref = None, None, None
    if peer:
        t0 = time.perf_counter()
        _, e_ref, nfev_ref = qiskit_qaoa(
            bqm, p, maxiter, seed, initial_point=np.r_[bet, gam / std]
        )  # β first
        t_ref = time.perf_counter() - t0

    def gap(e: float | None) -> float | None:
        return None if e is None else (e - exact) / abs(exact)

    return {
        "n": n,
        "p": p,
        "maxiter": maxiter,
        "ours_s": t_ours,
        "qiskit_s": t_ref,
        "ratio": None if t_ref is None else t_ref / t_ours,
        "ours_energy": ours_energy,
        "qiskit_energy": e_ref,
        "exact_energy": exact,
        "ours_gap": gap(ours_energy),
        "qiskit_gap": gap(e_ref),
        "ours_nfev": fit.nfev,
        "qiskit_nfev": nfev_ref,
        "same_or_lower_energy": None if e_ref is None else ours_energy <= e_ref + 1e-9,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8, 12 and 16 variables, p = 1 only")
    ap.add_argument("--peer20", action="store_true", help="also run qiskit at 20 variables (~10 min per p)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes, depths = ([8, 12, 16], [1]) if args.quick else ([8, 12, 16, 20], [1, 2])
    rows = []
    cols = ["n", "p", "maxiter", "ours_s", "qiskit_s", "ratio", "ours_gap", "qiskit_gap"]
    for n in sizes:
        for p in depths:
            rows.append(run(n, p, MAXITER[n], peer=n <= PEER_MAX_N or args.peer20))
            print(table(rows[-1:], cols), flush=True)
    meta = {
        "problem": "k-of-n selection QUBO (bench.problems.selection_qubo, seed 0, k = n/4)",
        "peer": "qiskit-optimization 0.7 QAOA + MinimumEigenOptimizer, StatevectorSampler, COBYLA",
        "ratio": "qiskit seconds / ours seconds",
        "peer_max_n": PEER_MAX_N,
        "sampler_shots": SHOTS,
    }
    path = write("qaoa", rows, meta)
    print(table(rows, cols))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
