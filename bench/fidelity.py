"""Fidelity estimators: pairs per second for each backend at 3-6 qubits, and error vs exact.

Random complex state pairs (seeded); backends statevector, shots (1024), aer (1024 shots, noiseless and with
the default params Noise, up to NOISY_MAX_N qubits). Error: mean |F_est - F_exact|.
Run: python -m bench.fidelity [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import table, write
from qlife.params import Noise
from qlife.quantum.fidelity import fidelity

PAIRS = {"statevector": 2000, "shots": 2000, "aer": 40, "aer_noisy": 10}
NOISY_MAX_N = 4  # noisy Aer costs ~10 s per circuit at 5 qubits (11-qubit swap test) on this machine
SHOTS = 1024


def run(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed + n)
    m = max(PAIRS.values())
    a = rng.normal(size=(m, 2**n)) + 1j * rng.normal(size=(m, 2**n))
    b = a + 1.2 * (rng.normal(size=a.shape) + 1j * rng.normal(size=a.shape))
    exact = fidelity(a, b).values
    rows = []
    for name, pairs in PAIRS.items():
        if name == "aer_noisy" and n > NOISY_MAX_N:
            rows.append({"qubits": n, "backend": name, "skipped": f"n > {NOISY_MAX_N}: too slow to simulate"})
            continue
        spec = {"kind": "aer", "shots": SHOTS, "seed": seed, "noise": Noise().model_dump() if name == "aer_noisy"
                else None} if name.startswith("aer") else {"kind": name} if name == "statevector" else \
            {"kind": name, "shots": SHOTS, "seed": seed}
        fidelity(a[:2], b[:2], spec)  # warm-up (imports, transpiler)
        t0 = time.perf_counter()
        res = fidelity(a[:pairs], b[:pairs], spec)
        sec = time.perf_counter() - t0
        rows.append(
            {
                "qubits": n,
                "backend": name,
                "pairs": pairs,
                "shots": SHOTS,
                "seconds": sec,
                "pairs_per_s": pairs / sec,
                "mean_abs_err": float(np.abs(res.values - exact[:pairs]).mean()),
                "swap_test_qubits": res.resources.qubits,
                "two_qubit_gates": res.resources.two_qubit_gates,
                "qpu_seconds_est_per_pair": res.resources.qpu_seconds_est / pairs,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 and 4 qubits only")
    args = ap.parse_args(argv)
    rows = []
    cols = ["qubits", "backend", "pairs_per_s", "mean_abs_err", "two_qubit_gates"]
    for n in [3, 4] if args.quick else [3, 4, 5, 6]:
        rows += run(n)
        print(table(rows[-len(PAIRS) :], cols), flush=True)
    meta = {
        "states": "random complex pairs, b = a + 1.2 noise, normalized",
        "noise": Noise().model_dump(),
        "error": "mean |F_est - F_exact| over the pairs",
    }
    path = write("fidelity", rows, meta)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
