"""Backends side by side on the same inputs: exact, ideal shots, noisy aer and real devices' models (offline).

Three workloads, each small enough for a device model, each on the same inputs for every backend:
  fidelity  curate's swap test: 20 seeded pairs of 3-qubit amplitude-encoded vectors (7-qubit circuits),
            half near-duplicates (b = a + 0.2 noise) and half unrelated; error |F - F_exact| and whether the
            backend takes the same "duplicate" decision at F > (1 - 0.09)^2 (curate's default threshold)
  vqc       distill's VQC readout: a 4-qubit, 2-layer circuit with seeded random weights on 50 seeded inputs;
            error of <Z> per qubit against exact
  qaoa      the QAOA sampler: p = 2 angles optimized on the simulator for a 6-variable k-hot selection QUBO
            (bench.problems.selection_qubo), the final state sampled 2,000 times on each backend; the
            probability of the optimum and the best sampled energy's gap
Devices: fake_torino (IBM Heron r1, 133 qubits, CZ) and fake_kyiv (IBM Eagle r3, 127 qubits, ECR), both
qiskit-ibm-runtime snapshots with their calibrated noise. Every row carries routed depth, two-qubit gates and
SWAPs. Writes bench/results/backends.json. Run: python -m bench.backends [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import table, write
from bench.problems import selection_qubo
from qlife.arrays import unit_rows
from qlife.params import QAOASampler
from qlife.quantum.backends import as_runner, solve
from qlife.quantum.circuits import variational_circuit
from qlife.quantum.fidelity import FidelityKernel, exact_pairs
from qlife.quantum.qubo import all_energies
from qlife.quantum.simulator import bind_weights

SHOTS = 2000
THRESHOLD = (1 - 0.09) ** 2


def backends(devices: list[str]) -> list[dict]:
    return [{"kind": "statevector"}, {"kind": "shots", "shots": SHOTS, "seed": 0},
            {"kind": "aer", "shots": SHOTS, "seed": 0},
            *({"kind": "device", "device": d, "shots": SHOTS, "seed": 0} for d in devices)]


def _row(workload: str, name: str, res, seconds: float, **figures) -> dict:
    return {"workload": workload, "backend": name, "device": res.device, "depth": res.depth,
            "two_qubit_gates": res.two_qubit_gates, "swaps": res.swaps, "seconds": round(seconds, 2), **figures}


def fidelity_rows(specs: list[dict], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(20, 8))
    b = np.vstack([a[:10] + 0.2 * rng.normal(size=(10, 8)), rng.normal(size=(10, 8))])
    a, b = unit_rows(a), unit_rows(b)
    exact = exact_pairs(a, b, "amplitude")
    rows = []
    for spec in specs:
        kernel = FidelityKernel(spec, "amplitude", 3, "bench")
        t0 = time.perf_counter()
        est = kernel.pairs(a, b)
        rows.append(_row("fidelity", kernel.runner.name, kernel.resources, time.perf_counter() - t0,
                         mean_abs_error=float(np.abs(est - exact).mean()),
                         decision_agreement=float(np.mean((est > THRESHOLD) == (exact > THRESHOLD)))))
    return rows


def vqc_rows(specs: list[dict], seed: int = 0) -> list[dict]:
    vc = variational_circuit(4, 2)
    rng = np.random.default_rng(seed)
    qc = bind_weights(vc, rng.uniform(-np.pi, np.pi, vc.num_weights))
    qc.measure_all()
    x = rng.uniform(-np.pi, np.pi, (50, 4))
    signs = 1 - 2 * ((np.arange(16)[:, None] >> np.arange(4)) & 1)  # <Z_q> from bitstring frequencies
    exact = as_runner("statevector").run(qc, x).frequencies @ signs
    rows = []
    for spec in specs:
        runner = as_runner(spec, "bench")
        t0 = time.perf_counter()
        out = runner.run(qc, x)
        z = out.frequencies @ signs
        rows.append(_row("vqc", runner.name, out.resources, time.perf_counter() - t0,
                         mean_abs_error=float(np.abs(z - exact).mean())))
    return rows


def qaoa_rows(specs: list[dict], seed: int = 0) -> list[dict]:
    bqm = selection_qubo(6, seed)
    energies = all_energies(bqm)
    best = float(energies.min())
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        res = solve(bqm, QAOASampler(p=2, restarts=2, shots=SHOTS, seed=seed, backend=spec), "bench")
        record = res.sampleset.record
        p_opt = float(record.num_occurrences[np.isclose(record.energy, best)].sum() / SHOTS)
        rows.append(_row("qaoa", res.info["backend"], res.resources, time.perf_counter() - t0,
                         p_optimum=p_opt, best_gap=(res.energy - best) / abs(best)))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fake_torino only")
    args = ap.parse_args(argv)
    specs = backends(["fake_torino"] if args.quick else ["fake_torino", "fake_kyiv"])
    rows = []
    cols = ["workload", "backend", "mean_abs_error", "decision_agreement", "p_optimum", "depth",
            "two_qubit_gates", "swaps", "seconds"]
    for fn in (fidelity_rows, vqc_rows, qaoa_rows):
        rows += fn(specs)
        print(table([r for r in rows if r["workload"] == rows[-1]["workload"]], cols), flush=True)
    meta = {"shots": SHOTS, "threshold": THRESHOLD, "seed": 0,
            "devices": "qiskit-ibm-runtime fake backends (calibration snapshots) on qiskit-aer",
            "aer_noise": "params Noise defaults: p1 1e-3, p2 1e-2, readout 2e-2, all-to-all"}
    path = write("backends", rows, meta)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
