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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qlife import parallel
from qlife.data.sources import load_live
from qlife.io import DataError, read_json, read_jsonl, write_json, write_jsonl
from qlife.ledger import measure
from qlife.methods.drift import MAX_POOLED_ROWS, detect_drift, median_bandwidth, reference_subsample
from qlife.methods.projection import Projection
from qlife.methods.twosample import mmd_fuse_test, ocsvm_scores, rbf_family, tuned_mmd_test
from qlife.models import encode_texts, load_encoder
from qlife.parallel import pmap
from qlife.params import Monitor, Params
from qlife.quantum.kernels import ProjectedQuantumKernel, QuantumFidelityKernel, concentration
from qlife.stage import Report
from qlife.stage import main as stage_main


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
    enc = Path(params.paths.encoded)
    proj = Projection.from_arrays(np.load(enc / "projection.npz"))
    model, tokenizer = load_encoder(params.train.model, params.train.pooling)
    return {name: proj.transform(encode_texts(model, tokenizer, [d["text"] for d in docs],
                                              params.encode.max_length, params.encode.batch_size,
                                              desc=f"embed {name}")[0])
            for name, docs in windows.items()}


def run(params: Params) -> Report:
    mp, live = params.monitor, Path(params.paths.live)
    parallel.timings("monitor", reset=True)
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
    if mp.quantum.features > reference.shape[1]:
        raise DataError(f"monitor.quantum.features = {mp.quantum.features}: the projection has only "
                        f"{reference.shape[1]} features (encode.n_features)")
    with measure(params.ledger) as embed_cost:
        feats = {n: (x - mu) / sd for n, x in project_windows(params, testable).items()} if testable else {}
    results, scores, per_test_cost = {}, {}, new_cost(mp)
    ref = reference[reference_subsample(len(reference), mp.max_ref, mp.ref_seed)]
    svm_ref = ref[reference_subsample(len(ref), mp.ocsvm.max_ref, mp.ref_seed)]
    with measure(params.ledger) as test_cost:
        # the windows are independent: qlife.parallel runs them serially, on local workers or on Dask
        tested = dict(zip(feats, pmap(WindowJob(mp, reference, svm_ref), list(feats.values()), params.orchestration,
                                      "monitor windows")))
        for name in windows:
            if name in tested:
                r, scores[name], cost = tested[name]
                for t, c in cost.items():
                    per_test_cost[t]["wall_s"] += c["wall_s"]
                    per_test_cost[t]["resources"] += c["resources"]
            else:  # an empty (e.g. all records rejected) or one-record window: nothing to test
                r = {"alarm": False, "skipped": f"{len(windows[name])} record(s): a test needs at least 2"}
            results[name] = {**counts[name], **r, "drift_planted": truth.get(name, {}).get("drift_planted")}
        for res in (c["resources"] for c in per_test_cost.values()):
            for rc in res:
                test_cost.add_quantum(rc.to_dict())
    # drift.json holds what was decided, not how long it took (the same for any run and placement); the
    # per-window test times go to the report
    timings = {n: {t: row.pop("wall_s") for t, row in r.get("tests", {}).items() if "wall_s" in row}
               for n, r in results.items()}
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
    methods = {t: {"p_values": {n: r["tests"][t]["p_value"] for n, r in results.items() if "tests" in r},
                   "alarms": [n for n, r in results.items() if "tests" in r and r["tests"][t]["alarm"]],
                   "wall_s": round(per_test_cost[t]["wall_s"], 3),
                   "planted_correct": planted_correct(results, planted, t)} for t in mp.tests}
    methods["ocsvm"] = ocsvm_summary(mp, results, scores, planted)
    decision = {"retrain": bool(alarms), "alarms": alarms, "rule": f"{mp.alarm}: p < alpha", "alarm_test": mp.alarm,
                "alpha": mp.alpha,
                "n_permutations": mp.n_permutations, "p_value_floor": 1.0 / (mp.n_permutations + 1),
                "skipped": [n for n, r in results.items() if "skipped" in r],
                "feedback_windows": [n for n in alarms if results[n]["n_labelled"] > 0]}
    summary["alarm_test"] = mp.alarm
    return {"summary": summary, "methods": methods, "decision": decision, "wall_s_per_window": timings,
            "parallel": {"placement": parallel.placement(params.orchestration).label,
                         "maps": parallel.timings("monitor", reset=True)},
            "cost": {"embed": embed_cost.as_dict(), "tests": test_cost.as_dict()}}  # per test: methods.<t>.wall_s


@dataclass(frozen=True)
class WindowJob:
    """One live window's tests and one-class SVM scores, picklable for a worker: features -> (result, per-document
    scores, per-test cost). Everything random in it is seeded by monitor params, not by the window's position."""

    mp: Monitor
    reference: np.ndarray
    svm_ref: np.ndarray

    def __call__(self, live: np.ndarray) -> tuple[dict, dict, dict]:
        from threadpoolctl import threadpool_limits

        cost = new_cost(self.mp)
        # one BLAS thread wherever it runs: OpenBLAS rounds some products ((256, 2300) x (2300, 2300), a
        # permutation chunk) differently on 1 and 2 threads, and a window's p-values must not depend on placement
        with threadpool_limits(1):
            r = test_window(self.mp, self.reference, live, cost)
            r["ocsvm"], scores = anomaly_scores(self.mp, self.svm_ref, live)
        return r, scores, cost


TUNED = ("rbf_tuned", "quantum_fidelity", "quantum_projected")
MIN_TUNED_ROWS = 8


def planted_correct(results: dict, planted: dict, test: str) -> str | None:
    """'right/tested' over the windows with known drift, for one test's alarms."""
    tested = [n for n in planted if "tests" in results[n]]
    if not tested:
        return None
    return f"{sum(results[n]['tests'][test]['alarm'] == planted[n] for n in tested)}/{len(tested)}"


def quantum_kernel(mp: Monitor, kind: str, bandwidth: float, cost: list):
    """A quantum kernel of monitor.quantum at `bandwidth`, remembered in `cost` (its circuits are charged)."""
    q = mp.quantum
    cls = QuantumFidelityKernel if kind == "quantum_fidelity" else ProjectedQuantumKernel
    k = cls(q.backend, q.features, bandwidth=bandwidth, reps=q.reps, kind=q.kind, param="monitor.quantum.backend",
            max_circuits=q.max_circuits)
    cost.append(k)
    return k


def new_cost(mp: Monitor) -> dict:
    """Per test: wall seconds and the quantum kernels' resource counts, summed over windows."""
    return {t: {"wall_s": 0.0, "resources": []} for t in mp.tests}


def test_window(mp: Monitor, reference: np.ndarray, live: np.ndarray, cost: dict) -> dict:
    """A window against the reference: detect_drift's report (the RBF MMD on the monitor.max_ref subsample, KS
    on all of it) plus `tests`, every test of monitor.tests; `alarm` is monitor.alarm's decision."""
    t0 = time.perf_counter()
    r = detect_drift(reference, live, alpha=mp.alpha, n_permutations=mp.n_permutations, seed=mp.seed,
                     max_ref=mp.max_ref, ref_seed=mp.ref_seed).to_dict()
    base_s = time.perf_counter() - t0  # the RBF test's time (KS, in the same call, is negligible)
    ref = reference[reference_subsample(len(reference), mp.max_ref, mp.ref_seed)]
    r["tests"] = window_tests(mp, ref, live, r, cost)
    if "rbf" in r["tests"]:
        r["tests"]["rbf"]["wall_s"] = round(base_s, 3)
        cost["rbf"]["wall_s"] += base_s
    r["alarm"] = r["tests"][mp.alarm]["alarm"]
    return r


def window_tests(mp: Monitor, ref: np.ndarray, live: np.ndarray, base: dict, cost: dict) -> dict:
    """Every test of monitor.tests on one window: p-value, alarm (p < alpha), wall time and what it needs to
    judge the test (bandwidth chosen, the tuning criterion, kernel concentration). The same permutation seed
    for all: every kernel is scored on the same splits. `base` is detect_drift's report of the window (rbf, ks:
    computed there once)."""
    q, out = mp.quantum, {}
    rq, lq = ref[:, :q.features], live[:, :q.features]
    for t in mp.tests:
        t0, kernels = time.perf_counter(), []
        if t in TUNED and len(live) < MIN_TUNED_ROWS:
            out[t] = {"p_value": None, "alarm": False,
                      "skipped": f"{len(live)} records: a tuned test needs {MIN_TUNED_ROWS} (half to tune the "
                                 "bandwidth, half to test)"}
            continue
        if t == "rbf":
            row = {"p_value": base["mmd_p_value"], "mmd2": base["mmd2"], "bandwidth": base["bandwidth"],
                   "features": ref.shape[1], "n_ref": base["n_ref"]}
        elif t == "ks":  # on the whole reference: it is cheap
            row = {"p_value": base["ks_bonferroni_p"], "min_p": base["ks_min_p"], "features": ref.shape[1],
                   "n_ref": base["n_ref_available"]}
        elif t == "rbf_tuned":
            unit = median_bandwidth(rq, lq, seed=mp.ref_seed)
            r = tuned_mmd_test(rq, lq, rbf_family(unit), mp.rbf_grid, mp.n_permutations, mp.seed, mp.split_seed,
                               diagnose=concentration)
            row = {**r.to_dict(), "median_distance": unit, "features": q.features}
        elif t in ("quantum_fidelity", "quantum_projected"):
            def family(b, t=t, kernels=kernels):
                return quantum_kernel(mp, t, b, kernels).gram
            r = tuned_mmd_test(rq, lq, family, q.bandwidths, mp.n_permutations, mp.seed, mp.split_seed,
                               diagnose=concentration)
            row = {**r.to_dict(), "features": q.features, "qubits": q.features}
        else:  # fuse, fuse_quantum
            extra = {}
            if t == "fuse_quantum":
                Z = np.concatenate([rq, lq])
                extra = {f"quantum_fidelity@{b}": quantum_kernel(mp, "quantum_fidelity", b, kernels).gram(Z)
                         for b in mp.fuse.quantum_bandwidths}
            r = mmd_fuse_test(rq, lq, tuple(mp.fuse.kernels), mp.fuse.n_bandwidths, extra, mp.n_permutations,
                              mp.seed)
            row = {**r.to_dict(), "features": q.features}
        row["alarm"] = bool(row["p_value"] < mp.alpha)
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        if kernels:
            row["circuits"] = int(sum(k.circuits for k in kernels))
            cost[t]["resources"] += [k.resources for k in kernels]
        cost[t]["wall_s"] += time.perf_counter() - t0
        out[t] = row
    return out


def anomaly_scores(mp: Monitor, svm_ref: np.ndarray, live: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Per-document one-class SVM scores (fitted on a fixed reference subsample) for each monitor.ocsvm kernel:
    the window's anomaly rate, and the scores themselves (for the AUC across windows with known drift)."""
    from qlife.methods.drift import rbf_kernel

    o, out, scores = mp.ocsvm, {}, {}
    rq, lq = svm_ref[:, :mp.quantum.features], live[:, :mp.quantum.features]
    for kname in o.kernels:
        if kname == "rbf":
            g = 1.0 / (2.0 * median_bandwidth(rq, rq, seed=mp.ref_seed) ** 2)
            k_ref, k_live = rbf_kernel(rq, rq, g), rbf_kernel(lq, rq, g)
        else:
            kernels: list = []
            k = quantum_kernel(mp, kname, o.bandwidth, kernels)
            if kname == "quantum_projected":
                k.fit(rq)
            k_ref, k_live = k.gram(rq), k.gram(lq, rq)
        res = ocsvm_scores(k_ref, k_live, o.nu)
        out[kname] = res.to_dict()
        scores[kname] = res.scores
    return out, scores


def ocsvm_summary(mp: Monitor, results: dict, scores: dict, planted: dict) -> dict:
    """Anomaly rate per window and kernel; where windows with and without planted drift exist, the AUC of the
    documents' scores (drifted-window documents against clean-window documents)."""
    from sklearn.metrics import roc_auc_score

    out: dict = {}
    for kname in mp.ocsvm.kernels:
        row = {"anomaly_rate": {n: r["ocsvm"][kname]["anomaly_rate"] for n, r in results.items() if "ocsvm" in r}}
        drifted = [scores[n][kname] for n, p in planted.items() if p and n in scores]
        clean = [scores[n][kname] for n, p in planted.items() if not p and n in scores]
        if drifted and clean:
            s_d, s_c = np.concatenate(drifted), np.concatenate(clean)
            row["auc_drifted_vs_clean"] = float(roc_auc_score(np.r_[np.ones(len(s_d)), np.zeros(len(s_c))],
                                                              np.r_[s_d, s_c]))
        out[kname] = row
    return out


def main() -> None:
    stage_main("monitor", run)


if __name__ == "__main__":
    main()
