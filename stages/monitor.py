"""Stage 7 — maintenance & monitoring: is the live data still the data the model was trained on?

Inputs: `paths.live/*.jsonl` (one file per window), `paths.encoded/{projection,features}.npz`, the
encoder `train.model` (the same one the projection was fitted on).
Method: each window is embedded and projected like the training data, then compared with the
training reference by an RBF-kernel MMD permutation test (the alarm) and per-feature KS tests
(Bonferroni, reported beside it).
Outputs: `paths.monitor/drift.json` (per window p-values and alarms) and `paths.monitor/retrain.json`
(the retrain flag the monitoring flow acts on). Params: `monitor:`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qlife.io import DataError, read_jsonl, write_json
from qlife.ledger import measure
from qlife.methods.drift import detect_drift
from qlife.methods.projection import Projection
from qlife.models import encode_texts, load_tokenizer, resolve_model
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main


def live_windows(folder: Path) -> dict[str, list[dict]]:
    windows = {f.stem: read_jsonl(f) for f in sorted(folder.glob("*.jsonl"))}
    if not windows:
        raise DataError(f"no live window (*.jsonl) in {folder}")
    return windows


def project_windows(params: Params, windows: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    from transformers import AutoModel

    enc = Path(params.paths.encoded)
    proj = Projection.from_arrays(np.load(enc / "projection.npz"))
    tokenizer = load_tokenizer(params.train.model)
    model = AutoModel.from_pretrained(resolve_model(params.train.model))
    return {name: proj.transform(encode_texts(model, tokenizer, [d["text"] for d in docs],
                                              params.encode.max_length, params.encode.batch_size,
                                              desc=f"embed {name}")[0])
            for name, docs in windows.items()}


def run(params: Params) -> Report:
    mp, live = params.monitor, Path(params.paths.live)
    windows = live_windows(live)
    truth_file = live / "windows.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    reference = np.load(Path(params.paths.encoded) / "features.npz")["train"].astype(np.float64)
    # one RBF bandwidth for all features: standardise by the reference so no component dominates
    mu, sd = reference.mean(0), reference.std(0) + 1e-9
    reference = (reference - mu) / sd
    with measure(params.ledger) as embed_cost:
        feats = {n: (x - mu) / sd for n, x in project_windows(params, windows).items()}
    results = {}
    with measure(params.ledger) as test_cost:
        for name, X in feats.items():
            r = detect_drift(reference, X, alpha=mp.alpha, n_permutations=mp.n_permutations, seed=mp.seed,
                             max_ref=mp.max_ref).to_dict()
            r["drift_planted"] = truth.get(name, {}).get("drift_planted")
            results[name] = r
    alarms = [n for n, r in results.items() if r["alarm"]]
    planted = {n: r["drift_planted"] for n, r in results.items() if r["drift_planted"] is not None}
    correct = sum(results[n]["alarm"] == p for n, p in planted.items())
    out = Path(params.paths.monitor)
    write_json(out / "drift.json", results)
    write_json(out / "retrain.json", {"retrain": bool(alarms), "windows": alarms})
    summary = {"windows": len(results), "alarms": len(alarms), "retrain": bool(alarms)}
    if planted:
        summary["planted_correct"] = f"{correct}/{len(planted)}"
    return {"summary": summary, "methods": {"rbf_mmd": results}, "retrain": bool(alarms),
            "cost": {"embed": embed_cost.as_dict(), "rbf_mmd": test_cost.as_dict()}}


def main() -> None:
    stage_main("monitor", run)


if __name__ == "__main__":
    main()
