"""Stage 7 verdict stability: the same live windows tested under ten `monitor.seed` values, a seed-free protocol
(whole reference, bandwidth fixed, 2,000 permutations; the monitor's default now fixes a 600-row subsample by
`monitor.ref_seed`, equally seed-free) against the former one (reference subsampled to 1,000 rows by the seed,
500 permutations), on the features the last `dvc repro` wrote.

    python -m bench.drift_seeds [--seeds 10]

Needs `data/encoded/` and the live windows of a finished run (`make run`). Writes bench/results/drift_seeds.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import table, write
from qlife.data.sources import live_windows
from qlife.methods.drift import detect_drift
from qlife.methods.projection import Projection, project_windows
from qlife.models import load_encoder
from qlife.params import load_params

PROTOCOLS = {"now: whole reference, 2000 permutations": {"max_ref": None, "n_permutations": 2000, "ref": False},
             "before: 1000-row reference by seed, 500 permutations": {"max_ref": 1000, "n_permutations": 500,
                                                                       "ref": True}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    params = load_params()
    reference = np.load(Path(params.paths.encoded) / "features.npz")["train"].astype(np.float64)
    mu, sd = reference.mean(0), reference.std(0) + 1e-9
    reference = (reference - mu) / sd
    windows, _ = live_windows(params)
    projection = Projection.from_arrays(np.load(Path(params.paths.encoded) / "projection.npz"))
    model, tokenizer = load_encoder(params.train.model, params.train.pooling)
    projected = project_windows(projection, model, tokenizer, windows, params.encode.max_length,
                                params.encode.batch_size)
    feats = {n: (x - mu) / sd for n, x in projected.items()}
    rows = []
    for name, X in feats.items():
        for label, p in PROTOCOLS.items():
            ps = [detect_drift(reference, X, n_permutations=p["n_permutations"], seed=s, max_ref=p["max_ref"],
                               ref_seed=s if p["ref"] else 0).mmd.p_value for s in range(args.seeds)]
            rows.append({"window": name, "protocol": label, "p_min": min(ps), "p_max": max(ps),
                         "spread": max(ps) - min(ps), "alarms": sum(x < params.monitor.alpha for x in ps),
                         "seeds": args.seeds, "n_ref": len(reference), "n_live": len(X)})
    print(table(rows, ["window", "protocol", "p_min", "p_max", "spread", "alarms", "seeds", "n_ref", "n_live"]))
    write("drift_seeds", rows, {"alpha": params.monitor.alpha})


if __name__ == "__main__":
    main()
