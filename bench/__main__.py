"""Run every benchmark: `python -m bench [name ...] [-- extra args]`, e.g. `python -m bench vqc -- --quick`.

Each entry of BENCHES is a module runnable as `python -m <module>` that writes bench/results/<name>.json;
add yours to the list. Each runs in its own process (its own thread settings and memory).
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = ["bench.vqc", "bench.qaoa", "bench.qubo", "bench.fidelity", "bench.backends", "bench.dedup", "bench.distill",
           "bench.drift_seeds", "bench.drift",
           "bench.embedders",  # issue 37: curate's near-duplicate embedders, the teacher's CPU inference ways
           "bench.search",  # bench.search reads the table bench.search_table builds once
           "bench.prune", "bench.compress", "bench.batching", "bench.head", "bench.scale",
           "bench.calibration",  # issue 34: the per-window drift tests' false-alarm rate on in-distribution windows
           "bench.cbpe", "bench.linear_mmd", "bench.sequential", "bench.monitoring",  # issue 34's monitoring methods
           "bench.drift_regime",  # issue 34: the quantum kernels in MMD-FUSE at few rows and 16 qubits
           "bench.doc_scores",  # issue 34: per-document drift scores, domain classifier vs one-class SVM
           "bench.plan",  # issue 37: curate's unit costs measured here, 10^8 documents on N Dask workers modelled
           "bench.growth",  # issue 37: every pipeline step's cost against corpus size (hours: up to 67k SST-2
                            # documents and curate on 10^6 generated ones); reports/energy.md reads it
           "bench.energy"]  # reports/energy.md (qlife.energy) reads its growth measurements


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    selected = [b for b in BENCHES if not names or b.split(".")[-1] in names or b in names]
    unknown = set(names) - {b.split(".")[-1] for b in BENCHES} - set(BENCHES)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; known: {BENCHES}", file=sys.stderr)
        return 2
    failed = []
    for module in selected:
        t0 = time.perf_counter()
        print(f"== {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module, *extra]) != 0:
            failed.append(module)
        print(f"== {module} done in {time.perf_counter() - t0:.0f} s", flush=True)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
