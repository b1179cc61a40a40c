"""Growth of the classical methods' energy with problem size, beside the quantum methods' circuit counts.

Two studies, each at >= 3 sizes on seeded synthetic inputs, every point metered by qlife.ledger (the energy model
of params `ledger:`), the classical method and the quantum method's simulation both timed:
  curate   k-means SemDeDup with cosine (semdedup_classical) vs quantum SemDeDup (q-means + swap tests,
           qsemdedup on the exact simulator, which counts the swap-test circuits hardware would run) on n unit
           vectors of 384 dims (the MiniLM teacher's, curate's default embedder; amplitude encoding on 9 qubits as
           curate chooses it: 19-qubit swap tests); params curate.n_clusters, eps and quantum.max_iter / tol
  distill  the MLP student (params distill: hidden) trained on n documents of 384 teacher features, vs the VQC
           student's circuits for the same epochs (qlife.methods.vqc.training_resources: one forward plus two
           parameter-shift circuits per weight and input angle, per example and epoch); the VQC is counted, not
           trained here (minutes at 11 qubits; the run's ledger has its simulation's energy)
qlife.energy reads bench/results/energy.json, fits the classical growth and extends the circuit counts.
Run: python -m bench.energy [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

from bench.common import table, write
from qlife.arrays import unit_rows
from qlife.ledger import measure
from qlife.params import load_params

CURATE_SIZES, DISTILL_SIZES = [2000, 8000, 32000, 128000], [500, 1000, 2000, 4000, 8000]
DIM, FEATURES, CLASSES, EPOCHS = 384, 384, 4, 5


def metered(fn, cfg, repeat: int) -> tuple[dict, object]:
    """The least-disturbed of `repeat` runs of fn() (lowest energy: the machine is shared); wall, CPU, energy, out."""
    runs = []
    for _ in range(repeat):
        with measure(cfg) as m:
            out = fn()
        runs.append((m.energy_kwh, m, out))
    runs.sort(key=lambda r: r[0])
    _, m, out = runs[0]
    return {"wall_s": round(m.wall_s, 4), "cpu_s": round(m.cpu_s, 4), "energy_kwh": m.energy_kwh}, out


def embeddings(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 200 topic centres, 6% of them near-copies of another row (something to deduplicate)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM))
    X = centres[rng.integers(0, 200, n)] + rng.normal(scale=0.8, size=(n, DIM))
    dup = rng.choice(n, n * 6 // 100, replace=False)
    X[dup] = X[rng.integers(0, n, len(dup))] + rng.normal(scale=0.02, size=(len(dup), DIM))
    return unit_rows(X)


def curate_study(params, sizes: list[int], repeat: int) -> tuple[dict, list[dict]]:
    from qlife.methods.qencoding import n_qubits_for
    from qlife.methods.qkmeans import qsemdedup
    from qlife.methods.semdedup import semdedup_classical

    cp = params.curate
    n_qubits = cp.quantum.qubits or min(n_qubits_for("amplitude", DIM), 12)  # as qlife.dedup chooses
    rows, structure = [], None
    semdedup_classical(embeddings(300, seed=0), cp.n_clusters, cp.eps)  # warm-up: imports, BLAS threads
    for n in sizes:
        X = embeddings(n, seed=n)
        cost, _ = metered(lambda X=X: semdedup_classical(X, cp.n_clusters, cp.eps, seed=0), params.ledger, repeat)
        sim, q = metered(lambda X=X: qsemdedup(X, cp.n_clusters, cp.eps, n_qubits=n_qubits, backend="statevector",
                                                max_circuits=None, max_iter=cp.quantum.max_iter, tol=cp.quantum.tol,
                                                patience=cp.quantum.patience), params.ledger, 1)
        r = q.resources
        structure = {"qubits": r.qubits, "depth": r.depth, "two_qubit_gates": r.two_qubit_gates}
        rows.append({"study": "curate", "n": n, **cost, "circuits": r.circuits, "qmeans_iterations": q.kmeans.n_iter,
                     "pairs": q.result.n_pairs_compared, "sim_energy_kwh": sim["energy_kwh"],
                     "sim_wall_s": sim["wall_s"]})
        print(f"curate n={n}: classical {cost['wall_s']:.2f} s, quantum sim {sim['wall_s']:.2f} s, "
              f"{r.circuits:,} swap tests", flush=True)
    study = {"classical": "k-means SemDeDup, cosine", "quantum": "q-means + swap-test SemDeDup", "size": "documents",
             "pairs": True, "structure": structure,
             "fixed": {"dim": DIM, "n_qubits": n_qubits, "encoding": "amplitude", "k": cp.n_clusters, "eps": cp.eps},
             "notes": "Both scale with the within-cluster pairs (~n^2/2k) once n >> k^2; below that the "
                      "assignment rounds (n x k per q-means iteration) dominate the quantum count."}
    return study, rows


def distill_data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_val = max(CLASSES * 4, round(n * 0.15 / 0.70))
    w = rng.normal(size=(FEATURES, CLASSES))
    out = {}
    for split, m in (("train", n), ("val", n_val)):
        x = rng.normal(size=(m, FEATURES)).astype(np.float32)
        logits = (x @ w / np.sqrt(FEATURES)).astype(np.float32)
        out |= {f"{split}_x": x, f"{split}_logits": logits, f"{split}_y": logits.argmax(1)}
    return out


def distill_study(params, sizes: list[int], repeat: int) -> tuple[dict, list[dict]]:
    import torch

    from qlife.methods.distill import MLPStudent, train_student
    from qlife.methods.vqc import VQCConfig, VQCStudent, training_resources
    from qlife.quantum.resources import circuit_resources

    dp = params.distill
    cfg = VQCConfig(FEATURES, CLASSES, dp.qubits, dp.layers, tuple(dp.rotations), dp.entanglement, dp.reupload,
                    dp.readout, dp.init_scale, dp.seed)
    vqc = VQCStudent(cfg)  # counted, not trained: its simulation at 11 qubits is minutes (the ledger has one run's)
    structure = circuit_resources(vqc.vc.circuit)
    rows = []
    for n in sizes:
        data = distill_data(n, seed=n)

        def fit(student, lr, batch, data=data):
            torch.manual_seed(0)
            student.set_scaler(data["train_x"])
            return train_student(student, data, dp.alpha, dp.temperature, EPOCHS, lr, batch, EPOCHS, dp.seed)

        if not rows:  # warm-up: torch's first backward pass
            fit(MLPStudent(FEATURES, dp.hidden, CLASSES), dp.learning_rate, dp.batch_size)
        cost, _ = metered(lambda: fit(MLPStudent(FEATURES, dp.hidden, CLASSES), dp.learning_rate, dp.batch_size),
                          params.ledger, repeat)
        res = training_resources(vqc, structure, EPOCHS, n, len(data["val_y"]), 1)
        rows.append({"study": "distill", "n": n, **cost, "circuits": res.circuits})
        print(f"distill n={n}: MLP {cost['wall_s']:.2f} s, {res.circuits:,} VQC circuits", flush=True)
    study = {"classical": f"MLP student (hidden {dp.hidden})", "quantum": f"VQC student ({dp.qubits} qubits, "
             f"{dp.layers} layers)", "size": "training documents", "pairs": False,
             "structure": {k: structure[k] for k in ("qubits", "depth", "two_qubit_gates")},
             "fixed": {"features": FEATURES, "classes": CLASSES, "epochs": EPOCHS, "n_qubits": dp.qubits},
             "notes": f"Both train {EPOCHS} epochs (no early stopping) on the same data; both grow linearly in n. "
                      "The VQC on hardware needs one forward and two parameter-shift circuits per weight and input "
                      "angle, per example and epoch (qlife/methods/vqc.py training_resources)."}
    return study, rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the three smallest sizes per study, one repeat")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    params = load_params()
    repeat = 1 if args.quick else 3
    c_sizes, d_sizes = (CURATE_SIZES[:3], DISTILL_SIZES[:3]) if args.quick else (CURATE_SIZES, DISTILL_SIZES)
    curate, c_rows = curate_study(params, c_sizes, repeat)
    distill, d_rows = distill_study(params, d_sizes, repeat)
    rows = c_rows + d_rows
    print(table(rows, ["study", "n", "wall_s", "energy_kwh", "circuits", "sim_wall_s"]))
    ratio = statistics.median(r["sim_energy_kwh"] / r["energy_kwh"] for r in c_rows)
    print(f"curate: median simulated-quantum / classical energy {ratio:.3g}")
    path = write("energy", rows, {"ledger": params.ledger.energy, "repeat": repeat, "quick": args.quick,
                                  "studies": {"curate": curate, "distill": distill}})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
