"""Stage 7 — maintenance & monitoring: is the live data still the data the model was trained on?

Inputs: live windows, one per file: the generator's in `paths.live/*.jsonl` (written by curate) and the user's
in `curate.source.live_path` (JSONL/CSV/Parquet, read here: records need only text; a known label is kept as
feedback, an unknown one dropped and reported in `paths.monitor/rejects.jsonl`); `paths.curated/labels.json`,
`paths.encoded/{projection,features}.npz`, the encoder `train.model` (the same one the projection was fitted on).
Method: each window is embedded and projected like the training data, then compared with the training
reference (the whole train split, or a subsample fixed once by `monitor.ref_seed` when `monitor.max_ref` is
set) by an RBF-kernel MMD permutation test (the alarm; median-heuristic bandwidth from the pooled sample,
`monitor.seed` draws the permutations only) and per-feature KS tests (Bonferroni, reported beside it).
Outputs: `paths.monitor/drift.json` (per window p-values and alarms) and `paths.monitor/retrain.json`
(`{"retrain", "windows"}`: the flag the monitoring flow and the promotion gate act on). Params: `monitor:`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qlife.data.sources import load_live
from qlife.io import DataError, read_json, read_jsonl, write_json, write_jsonl
from qlife.ledger import measure
from qlife.methods.drift import MAX_POOLED_ROWS, detect_drift, reference_subsample
from qlife.methods.projection import Projection
from qlife.models import encode_texts, load_tokenizer, resolve_model
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main

RULE = "MMD permutation p < alpha"


def live_windows(params: Params) -> tuple[dict[str, list[dict]], list[dict]]:
    """The generator's windows (written by curate to `paths.live`) and the user's (`curate.source.live_path`,
    read here with labels optional, validated against the training labels); rejects with file and line."""
    folder = Path(params.paths.live)
    windows = {f.stem: read_jsonl(f) for f in sorted(folder.glob("*.jsonl"))}
    labels = read_json(Path(params.paths.curated) / "labels.json")
    user, rejects = load_live(params.curate.source, labels)
    clash = sorted(set(windows) & set(user))
    if clash:
        raise DataError(f"live windows {clash} exist both in {folder} and in {params.curate.source.live_path}")
    return {**windows, **user}, rejects


def is_labelled(doc: dict) -> bool:
    """Live records may carry no label (no key, or None): only labelled ones are feedback for retraining."""
    return doc.get("label") is not None


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
    windows, rejects = live_windows(params)
    truth_file = live / "windows.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    reference = np.load(Path(params.paths.encoded) / "features.npz")["train"].astype(np.float64)
    # one RBF bandwidth for all features: standardise by the reference so no component dominates
    mu, sd = reference.mean(0), reference.std(0) + 1e-9
    reference = (reference - mu) / sd
    counts = {n: {"n": len(docs), "n_labelled": sum(map(is_labelled, docs))} for n, docs in windows.items()}
    testable = {n: docs for n, docs in windows.items() if len(docs) >= 2}
    n_ref = len(reference_subsample(len(reference), mp.max_ref, mp.ref_seed))
    widest = max((len(d) for d in testable.values()), default=0)
    if n_ref + widest > MAX_POOLED_ROWS:
        raise DataError(f"{n_ref} reference rows + a {widest}-record window exceed {MAX_POOLED_ROWS} pooled rows "
                        "for the MMD kernel matrix: set monitor.max_ref (a fixed reference subsample) or use "
                        "smaller live windows")
    with measure(params.ledger) as embed_cost:
        feats = {n: (x - mu) / sd for n, x in project_windows(params, testable).items()} if testable else {}
    results = {}
    with measure(params.ledger) as test_cost:
        for name in windows:
            if name in feats:
                r = detect_drift(reference, feats[name], alpha=mp.alpha, n_permutations=mp.n_permutations,
                                 seed=mp.seed, max_ref=mp.max_ref, ref_seed=mp.ref_seed).to_dict()
            else:  # an empty (e.g. all records rejected) or one-record window: nothing to test
                r = {"alarm": False, "skipped": f"{len(windows[name])} record(s): a test needs at least 2"}
            results[name] = {**counts[name], **r, "drift_planted": truth.get(name, {}).get("drift_planted")}
    alarms = [n for n, r in results.items() if r["alarm"]]
    planted = {n: r["drift_planted"] for n, r in results.items() if r["drift_planted"] is not None}
    correct = sum(results[n]["alarm"] == p for n, p in planted.items())
    out = Path(params.paths.monitor)
    write_json(out / "drift.json", results)
    write_jsonl(out / "rejects.jsonl", rejects)
    write_json(out / "retrain.json", {"retrain": bool(alarms), "windows": alarms})
    summary = {"windows": len(results), "alarms": len(alarms), "retrain": bool(alarms), "rejects": len(rejects)}
    if planted:
        summary["planted_correct"] = f"{correct}/{len(planted)}"
    decision = {"retrain": bool(alarms), "alarms": alarms, "rule": RULE, "alpha": mp.alpha,
                "n_permutations": mp.n_permutations, "p_value_floor": 1.0 / (mp.n_permutations + 1),
                "skipped": [n for n, r in results.items() if "skipped" in r],
                "feedback_windows": [n for n in alarms if results[n]["n_labelled"] > 0]}
    return {"summary": summary, "methods": {"rbf_mmd": results}, "decision": decision,
            "cost": {"embed": embed_cost.as_dict(), "rbf_mmd": test_cost.as_dict()}}


def main() -> None:
    stage_main("monitor", run)


if __name__ == "__main__":
    main()
