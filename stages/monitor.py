"""Stage 7 — maintenance & monitoring: is the live data still the data the model was trained on?

Inputs: live windows, one per file: the generator's in `paths.live/*.jsonl` (written by curate, with the planted
truth in `paths.live/windows.json`) and the user's in `curate.source.live_path` (JSONL/CSV/Parquet, read here:
records need only text; a known label is kept as feedback, an unknown one dropped and reported);
`paths.curated/labels.json`, `paths.encoded/{projection,features}.npz`, the encoder `train.model` (the one the
projection was fitted on); `paths.curated/train.jsonl` when the stream statistic reads new words (its vocabulary);
`paths.curated/reference.jsonl` when monitor.tests holds text_domain_classifier (the reference rows' texts, cut as
encode cut them: `encode.max_docs.reference`, `encode.seed`).
Method: each window is embedded and projected like the training data (`monitor.features: pca+residual`: with the
log residual, what the projection drops, as a last column: qlife.methods.projection), standardised by the reference
(curate's held-out sample), and tested against it by every test of `monitor.tests` (qlife.methods.drifttests: RBF
MMD, KS, tuned RBF, quantum kernels, MMD-FUSE, the domain classifiers on the features and on the texts; all on the
same permutations), plus one-class SVM anomaly scores per document (and the residual itself as a per-document score).
`monitor.alarm` names the test whose decision (p < `monitor.alpha`) is the window's alarm.
Outputs: `paths.monitor/drift.json` (per window: the RBF/KS report, every test's p-value and alarm, the anomaly
rates), `paths.monitor/rejects.jsonl` (bad records with file and line), and the report (`reports/monitor.json`;
its headline figures in `metrics/monitor.json`), whose `verdict` (qlife.verdict) judges the quantum kernel
test against its twin (rbf_tuned) and the best classical test on seeded halves of the windows with planted
truth (power, false alarms; "no ground truth" without it); its `decision.alarms` is what the monitoring flow
(flows/monitor.py) retrains on and what promote's gate reads (qlife/promote.py: no open drift alarm).
Params: `monitor:` (and the encoder's `train.model`, `train.pooling`, `encode.max_length`, `encode.batch_size`;
`curate.source` for the user's windows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qlife import monitoring, parallel
from qlife.data.sources import is_labelled, live_windows
from qlife.io import DataError, discard, read_jsonl, write_json, write_jsonl
from qlife.ledger import Meter, measure
from qlife.methods.drift import MAX_POOLED_ROWS, reference_subsample
from qlife.methods.drifttests import (
    Outcome,
    Window,
    anomaly_scores,
    drift_tests,
    judged_tests,
    subsample_decisions,
)
from qlife.methods.projection import Projection, project_windows
from qlife.models import load_encoder
from qlife.monitoring import (
    ROW_STATISTICS,
    knn_statistic,
    new_word_report,
    quality_estimates,
    reads_texts,
    reference_fingerprint,
    training_vocabulary,
    update_stream,
    window_hash,
)
from qlife.parallel import pmap
from qlife.params import Monitor, Params
from qlife.stage import Report
from qlife.stage import main as stage_main
from qlife.verdict import no_verdict, paired_bootstrap, verdict


def run(params: Params) -> Report:
    mp = params.monitor
    parallel.timings("monitor", reset=True)
    windows, rejects = live_windows(params)
    truth_file = Path(params.paths.live) / "windows.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    # curate's held-out sample (never deduplicated, trained on or in the projection's fit): it stands for traffic
    reference = reference_features(params)
    residual = mp.features == "pca+residual"
    # one RBF bandwidth for all features: standardise by the reference so no component dominates
    mu, sd = reference.mean(0), reference.std(0) + 1e-9
    reference = (reference - mu) / sd
    testable = {n: docs for n, docs in windows.items() if len(docs) >= 2}
    check_inputs(mp, reference, testable)
    # the training split's words, once per run (before any window is embedded): new_words reads the texts against them
    vocab = training_vocabulary(params) if reads_texts(mp) else None
    ref_texts = reference_texts(params, len(reference)) if "text_domain_classifier" in mp.tests else None
    with measure(params.ledger) as embed_cost:
        feats = {}
        if testable:
            projection = Projection.from_arrays(np.load(Path(params.paths.encoded) / "projection.npz"))
            model, tokenizer = load_encoder(params.train.model, params.train.pooling, params.inference.runtime,
                                            params.inference.precision)
            if residual and projection.residual is None:
                raise DataError(f"{Path(params.paths.encoded) / 'projection.npz'} has no residual basis, which "
                                "monitor.features: pca+residual reads: rerun encode (dvc repro encode)")
            feats = {n: (x - mu) / sd for n, x in project_windows(projection, model, tokenizer, testable,
                                                                  params.encode.max_length,
                                                                  params.encode.batch_size, residual).items()}
    with measure(params.ledger) as test_cost:
        results, scores, per_test_cost = score_windows(params, reference, windows, feats, ref_texts)
        for res in (c["resources"] for c in per_test_cost.values()):
            for rc in res:
                test_cost.add_quantum(rc.to_dict())
        if vocab is not None:
            text_statistics(mp, reference, windows, feats, results, scores, vocab)
    for name, r in results.items():
        r["drift_planted"] = truth.get(name, {}).get("drift_planted")
    hashes = {n: window_hash(docs) for n, docs in windows.items()}
    stream = update_stream(Path(params.paths.state), reference_fingerprint(reference, mp, vocab), results, hashes,
                           mp)
    with measure(params.ledger) as quality_cost:
        quality = quality_estimates(params, {n: windows[n] for n in testable})
    with measure(params.ledger) as verdict_cost:
        stage_verdict = drift_verdict(params, reference, feats, results, per_test_cost, verdict_cost,
                                      (ref_texts, windows) if ref_texts is not None else None)
    # drift.json holds what was decided, not how long it took (the same for any run and placement); the
    # per-window test times go to the report
    timings = {n: {t: row.pop("wall_s") for t, row in r.get("tests", {}).items() if "wall_s" in row}
               for n, r in results.items()}
    out = Path(params.paths.monitor)
    write_json(out / "drift.json", results)
    write_jsonl(out / "rejects.jsonl", rejects)
    discard(out / "retrain.json")  # written by earlier versions (nothing read it): not stale
    report = summarise(mp, results, scores, per_test_cost, len(rejects), stream, quality)
    report["decision"]["window_hashes"] = hashes
    return {**report, "stream": stream, "quality": quality, "verdict": stage_verdict, "wall_s_per_window": timings,
            "inference": params.inference.model_dump(),
            "parallel": {"placement": parallel.placement(params.orchestration).label,
                         "maps": parallel.timings("monitor", reset=True)},
            "cost": {"embed": embed_cost.as_dict(), "tests": test_cost.as_dict(),  # per test: methods.<t>.wall_s
                     "quality": quality_cost.as_dict(), "verdict": verdict_cost.as_dict()}}


def reference_features(params: Params) -> np.ndarray:
    """The reference's features from encode's features.npz: its projected features and, under monitor.features
    pca+residual, its log residual as a last column (a DataError naming the fix for a features.npz without it)."""
    path = Path(params.paths.encoded) / "features.npz"
    with np.load(path) as f:
        reference = f["reference"].astype(np.float64)
        if params.monitor.features == "pca":
            return reference
        if "reference_residual" not in f.files:
            raise DataError(f"{path} has no reference_residual, which monitor.features: pca+residual reads: rerun "
                            "encode (dvc repro encode), or set monitor.features: pca")
        return np.column_stack([reference, f["reference_residual"].astype(np.float64)])


def reference_texts(params: Params, rows: int) -> tuple[str, ...]:
    """The texts of the reference's rows (text_domain_classifier reads them): `paths.curated/reference.jsonl` cut as
    encode cut it (`encode.max_docs.reference`, `encode.seed`: qlife.quality.subsample), in the order of
    features.npz's reference rows (a DataError naming the fix when the counts differ)."""
    from qlife.quality import subsample

    path = Path(params.paths.curated) / "reference.jsonl"
    if not path.exists():
        raise DataError(f"monitor.tests text_domain_classifier reads the reference's texts from {path}, which is not "
                        "there: run curate first (dvc repro curate)")
    docs, _ = subsample(read_jsonl(path), params.encode.max_docs.reference, params.encode.seed)
    if len(docs) != rows:
        raise DataError(f"{path} gives {len(docs)} reference texts for {rows} reference rows in "
                        f"{Path(params.paths.encoded) / 'features.npz'}: rerun encode (dvc repro encode)")
    return tuple(str(d.get("text", "")) for d in docs)


def window_items(feats: dict[str, np.ndarray], windows: dict[str, list[dict]], names, with_texts: bool) -> list:
    """What WindowJob / HalvesJob map over: each window's features, with its texts when a test reads them."""
    if not with_texts:
        return [feats[n] for n in names]
    return [(feats[n], tuple(str(d.get("text", "")) for d in windows[n])) for n in names]


def text_statistics(mp: Monitor, reference: np.ndarray, windows: dict[str, list[dict]], feats: dict[str, np.ndarray],
                    results: dict, scores: dict, vocab: frozenset[str]) -> None:
    """For a stream statistic that reads texts (new_words): each tested window's stream number from its rows'
    features and texts (qlife.monitoring.knn_statistic), its recurring new words (`new_words` in its result) and
    per record how many it holds (`scores[window]["new_words"]`: the per-document drift score)."""
    tested = reference[reference_subsample(len(reference), mp.max_ref, mp.ref_seed)]  # drifttests.Window.tested
    for name, live in feats.items():
        texts = [str(d.get("text", "")) for d in windows[name]]
        results[name]["stream_statistic"] = knn_statistic(mp, tested, live, mp.features == "pca+residual", texts,
                                                          vocab)
        results[name]["new_words"], scores[name]["new_words"] = new_word_report(mp, texts, vocab)


def check_inputs(mp: Monitor, reference: np.ndarray, testable: dict[str, list[dict]]) -> None:
    """Refuse, before any window is embedded, what cannot run: an unknown test, a pooled sample too large for
    the kernel matrix, more quantum features than the projection has."""
    try:
        drift_tests(mp)
    except ValueError as err:
        raise DataError(str(err)) from None
    n_ref = len(reference_subsample(len(reference), mp.max_ref, mp.ref_seed))
    widest = max((len(d) for d in testable.values() if len(d) <= mp.linear_above), default=0)
    if n_ref + widest > MAX_POOLED_ROWS:
        raise DataError(f"{n_ref} reference rows + a {widest}-record window exceed {MAX_POOLED_ROWS} pooled rows "
                        "for the MMD kernel matrix: set monitor.max_ref (a fixed reference subsample) or a smaller "
                        "monitor.linear_above (larger windows go to the linear tests)")
    big = [n for n, d in testable.items() if len(d) > mp.linear_above]
    linear = [t.name for t in drift_tests(mp) if not t.quadratic]
    if big and not linear:
        raise DataError(f"windows {big[:3]} have more than monitor.linear_above = {mp.linear_above} records and "
                        "monitor.tests has no linear test to decide them: add rff (or ks, domain_classifier)")
    if mp.quantum.features > reference.shape[1]:
        raise DataError(f"monitor.quantum.features = {mp.quantum.features}: the projection has only "
                        f"{reference.shape[1]} features (encode.n_features)")


def score_windows(params: Params, reference: np.ndarray, windows: dict[str, list[dict]],
                  feats: dict[str, np.ndarray], ref_texts: tuple[str, ...] | None = None
                  ) -> tuple[dict, dict, dict]:
    """Every window's result (a window of fewer than 2 records: skipped, with the reason), the one-class SVM
    scores per window and kernel, and per test its wall seconds and quantum resources summed over windows.
    `ref_texts`: the reference rows' texts (then every window's texts go with its features: text tests)."""
    mp = params.monitor
    ref = reference[reference_subsample(len(reference), mp.max_ref, mp.ref_seed)]
    svm_ref = ref[reference_subsample(len(ref), mp.ocsvm.max_ref, mp.ref_seed)]
    # the windows are independent: qlife.parallel runs them serially, on local workers or on Dask
    job = WindowJob(mp, reference, svm_ref, residual=mp.features == "pca+residual", reference_texts=ref_texts)
    items = window_items(feats, windows, list(feats), ref_texts is not None)
    tested = dict(zip(feats, pmap(job, items, params.orchestration, "monitor windows")))
    results, scores, cost = {}, {}, {t: {"wall_s": 0.0, "cpu_s": 0.0, "resources": []} for t in mp.tests}
    for name, docs in windows.items():
        counts = {"n": len(docs), "n_labelled": sum(map(is_labelled, docs))}
        if name in tested:
            r, scores[name], window_cost = tested[name]
            for t, c in window_cost.items():
                cost[t]["wall_s"] += c.seconds
                cost[t]["cpu_s"] += c.cpu_seconds
                cost[t]["resources"] += c.resources
        else:  # an empty (e.g. all records rejected) or one-record window: nothing to test
            r = {"alarm": False, "skipped": f"{len(docs)} record(s): a test needs at least 2"}
        results[name] = {**counts, **r}
    return results, scores, cost


def summarise(mp: Monitor, results: dict, scores: dict, cost: dict, rejects: int, stream: dict,
              quality: dict) -> dict:
    """summary, methods (per test: p-values, alarms, wall time, planted drift found; per-document scores) and the
    decision (qlife.monitoring.decide): the alarms the monitoring flow retrains on and promote's gate reads."""
    planted = {n: r["drift_planted"] for n, r in results.items() if r["drift_planted"] is not None}
    decision = monitoring.decide(mp, results, stream, quality)
    alarms = decision["alarms"]
    summary = {"windows": len(results), "alarms": len(alarms), "retrain": bool(alarms), "rejects": rejects,
               "per_window_alarms": len(decision["per_window_alarms"]), "stream_alarm": stream["alarm"],
               "stream_windows": stream["windows_since_reset"],
               "quality_drops": sum("quality_drop" in r for r in decision["reasons"].values())}
    if planted:
        correct = sum(results[n]["alarm"] == p for n, p in planted.items())
        summary["planted_correct"] = f"{correct}/{len(planted)}"
    errors = monitoring.quality_error(quality)
    if errors:
        summary["quality_mae"] = {role: e["mae"] for role, e in errors.items()}
    methods = {t: {"p_values": {n: r["tests"][t]["p_value"] for n, r in results.items() if "tests" in r},
                   "alarms": [n for n, r in results.items() if "tests" in r and r["tests"][t]["alarm"]],
                   "wall_s": round(cost[t]["wall_s"], 3),
                   "planted_correct": planted_correct(results, planted, t)} for t in mp.tests}
    methods["ocsvm"] = ocsvm_summary(mp, results, scores, planted)
    for t in ("domain_classifier", "text_domain_classifier"):  # per-document scores: drifted vs clean windows
        if t in mp.tests:
            methods[t]["per_document"] = document_auc(scores, planted, t)
    if any("new_words" in r for r in results.values()):  # the recurring new words, per window and per document
        methods["new_words"] = {"min_docs": mp.stream.min_docs,
                                "windows": {n: r["new_words"] for n, r in results.items() if "new_words" in r},
                                "per_document": document_auc(scores, planted, "new_words")}
    if mp.features == "pca+residual":  # the log residual itself, per document (no reference needed)
        methods["residual"] = {"mean_standardised": {n: r["residual_mean"] for n, r in results.items()
                                                     if "residual_mean" in r},
                               "per_document": document_auc(scores, planted, "residual")}
    decision.update({"retrain": bool(alarms), "alarm_test": mp.alarm, "alpha": mp.alpha,
                     "n_permutations": mp.n_permutations, "p_value_floor": 1.0 / (mp.n_permutations + 1),
                     "skipped": [n for n, r in results.items() if "skipped" in r],
                     "feedback_windows": [n for n in alarms if results[n]["n_labelled"] > 0],
                     "quality_mae": errors})
    summary["alarm_test"] = mp.alarm
    return {"summary": summary, "methods": methods, "decision": decision}


def document_auc(scores: dict, planted: dict, key: str) -> dict | None:
    """ROC-AUC of per-document scores: the documents of windows with planted drift against those of clean windows
    (None without both)."""
    from sklearn.metrics import roc_auc_score

    drifted = [scores[n][key] for n, p in planted.items() if p and key in scores.get(n, {})]
    clean = [scores[n][key] for n, p in planted.items() if not p and key in scores.get(n, {})]
    if not (drifted and clean):
        return None
    s_d, s_c = np.concatenate(drifted), np.concatenate(clean)
    return {"auc_drifted_vs_clean": float(roc_auc_score(np.r_[np.ones(len(s_d)), np.zeros(len(s_c))],
                                                         np.r_[s_d, s_c]))}


@dataclass(frozen=True)
class WindowJob:
    """One live window's drift tests (monitor.tests, from qlife.methods.drifttests.REGISTRY) and one-class SVM
    scores, picklable for a worker: features -> (result, per-document scores, per-test Outcome). Everything random
    in it is seeded by monitor params, not by the window's position."""

    mp: Monitor
    reference: np.ndarray
    svm_ref: np.ndarray
    residual: bool = False  # the last column is the (standardised) log residual (monitor.features pca+residual)
    reference_texts: tuple[str, ...] | None = None  # the reference rows' texts (text_domain_classifier)

    def __call__(self, item: np.ndarray | tuple[np.ndarray, tuple[str, ...]]) -> tuple[dict, dict, dict[str, Outcome]]:
        """`item`: the window's features, or (features, texts) (window_items)."""
        from threadpoolctl import threadpool_limits

        live, texts = item if isinstance(item, tuple) else (item, None)

        # one BLAS thread wherever it runs: OpenBLAS rounds some products ((256, 2300) x (2300, 2300), a
        # permutation chunk) differently on 1 and 2 threads, and a window's p-values must not depend on placement
        with threadpool_limits(1):
            window = Window(self.mp, self.reference, live, reference_texts=self.reference_texts, texts=texts)
            outcomes = {t.name: t.run(window) for t in drift_tests(self.mp)}
            r = window.baseline.to_dict()  # the RBF MMD and KS report (rbf and ks read the same one)
            r["tests"] = {t: o.row for t, o in outcomes.items()}
            r["alarm"] = r["tests"][self.mp.alarm]["alarm"]  # monitor.alarm's decision
            if self.mp.stream.statistic in ROW_STATISTICS and not reads_texts(self.mp):  # the stream's number
                # (a statistic that reads the texts too: text_statistics, after the tests)
                r["stream_statistic"] = knn_statistic(self.mp, window.tested, live, self.residual)
            r["ocsvm"], scores = anomaly_scores(self.mp, self.svm_ref, live)
            scores.update({t: o.scores for t, o in outcomes.items() if o.scores is not None})
            if self.residual:
                scores["residual"] = live[:, -1]
                r["residual_mean"] = float(live[:, -1].mean())
        return r, scores, outcomes


def planted_correct(results: dict, planted: dict, test: str) -> str | None:
    """'right/tested' over the windows with known drift, for one test's alarms."""
    tested = [n for n in planted if "tests" in results[n]]
    if not tested:
        return None
    return f"{sum(results[n]['tests'][test]['alarm'] == planted[n] for n in tested)}/{len(tested)}"


def ocsvm_summary(mp: Monitor, results: dict, scores: dict, planted: dict) -> dict:
    """Anomaly rate per window and kernel; where windows with and without planted drift exist, the AUC of the
    documents' scores (drifted-window documents against clean-window documents)."""
    out: dict = {}
    for kname in mp.ocsvm.kernels:
        row = {"anomaly_rate": {n: r["ocsvm"][kname]["anomaly_rate"] for n, r in results.items() if "ocsvm" in r}}
        auc = document_auc(scores, planted, kname)
        if auc:
            row.update(auc)
        out[kname] = row
    return out


VERDICT_HALVES = 10  # seeded halves of each window with planted truth: the verdict's spread (K)
VERDICT_PERMUTATIONS = 200  # per half, at most (the stage's own decisions keep monitor.n_permutations)


@dataclass(frozen=True)
class HalvesJob:
    """A window's seeded halves for the verdict (drifttests.subsample_decisions), picklable for a worker."""

    mp: Monitor
    reference: np.ndarray
    tests: tuple[str, ...]
    reference_texts: tuple[str, ...] | None = None  # the reference rows' texts (text_domain_classifier)

    def __call__(self, item: np.ndarray | tuple[np.ndarray, tuple[str, ...]]) -> tuple[dict, dict]:
        from threadpoolctl import threadpool_limits

        live, texts = item if isinstance(item, tuple) else (item, None)
        with threadpool_limits(1):  # as WindowJob: decisions must not depend on placement
            return subsample_decisions(self.mp, self.reference, live, list(self.tests), VERDICT_HALVES,
                                       min(self.mp.n_permutations, VERDICT_PERMUTATIONS),
                                       self.reference_texts, texts)


def method_costs(params: Params, per_test_cost: dict) -> dict:
    """Per test, on the full windows: wall and CPU seconds summed over windows, energy by the CPU model (None under
    codecarbon: it meters the stage, not a test), estimated QPU seconds of its quantum kernels."""
    from qlife.ledger import cpu_model_kwh

    cpu_model = params.ledger.energy == "cpu_model"
    return {t: {"wall_s": round(c["wall_s"], 3), "cpu_s": round(c["cpu_s"], 3),
                "energy_kwh": cpu_model_kwh(c["cpu_s"], c["wall_s"], params.ledger) if cpu_model else None,
                "qpu_s_est": sum(r.qpu_seconds_est for r in c["resources"]) if c["resources"] else None}
            for t, c in per_test_cost.items()}


def drift_verdict(params: Params, reference: np.ndarray, feats: dict, results: dict, per_test_cost: dict,
                  meter: Meter, texts: tuple[tuple[str, ...], dict[str, list[dict]]] | None = None) -> dict:
    """The quantum test against its twin and the best classical test: balanced accuracy of the decisions on
    VERDICT_HALVES seeded halves of each window with planted truth (power and false alarms), a paired bootstrap
    over the halves within each window. Unlabelled windows: "no ground truth"."""
    mp = params.monitor
    quantum, twin, classical = judged_tests(mp)
    cost, metric = method_costs(params, per_test_cost), "balanced_accuracy"
    if quantum is None or twin not in mp.tests:
        return no_verdict(quantum or "(no quantum test)", twin or "(no twin)", "not compared", cost, metric=metric,
                          note="monitor.tests runs " + ("no quantum test" if quantum is None else f"no {twin}"))
    planted = {n: bool(r["drift_planted"]) for n, r in results.items()
               if r["drift_planted"] is not None and n in feats}
    if not planted:
        tested = [r for r in results.values() if "tests" in r]
        same = sum(r["tests"][quantum]["alarm"] == r["tests"][twin]["alarm"] for r in tested)
        return no_verdict(quantum, twin, "no ground truth", cost, metric=metric,
                          note=f"no planted drift: {quantum} and {twin} decide alike on {same} of {len(tested)} "
                          "windows")
    tests = (quantum, *classical)
    ref_texts, windows = texts if texts is not None else (None, {})
    halves = pmap(HalvesJob(mp, reference, tests, ref_texts), window_items(feats, windows, planted, texts is not None),
                  params.orchestration, "monitor verdict halves")
    for o in (o for _, outs in halves for t in tests for o in outs[t]):
        for rc in o.resources:
            meter.add_quantum(rc.to_dict())
    k, perms = VERDICT_HALVES, min(mp.n_permutations, VERDICT_PERMUTATIONS)
    y = np.repeat(np.array(list(planted.values()), dtype=int), k)
    preds = {t: np.concatenate([d[t] for d, _ in halves]).astype(int) for t in tests}
    spread = paired_bootstrap(metric, y, preds, seed=mp.seed, labels=[0, 1],
                              strata=np.repeat(np.arange(len(planted)), k))
    spread["spread"] = (f"paired bootstrap over {len(y)} window halves ({k} per window, {len(planted)} windows with "
                        f"planted truth), resampled within each window, {spread['n_resamples']} resamples")
    rates = {t: {"power": float(p[y == 1].mean()) if (y == 1).any() else None,
                 "false_alarm": float(p[y == 0].mean()) if (y == 0).any() else None} for t, p in preds.items()}
    v = verdict(spread, quantum, twin, classical=classical, cost={t: cost[t] for t in tests},
                note=halves_note(mp, quantum, twin, rates, y, perms))
    v["rates"] = rates
    v["subsamples"] = {"per_window": k, "rows": {n: len(feats[n]) // 2 for n in planted},
                       "reference_rows": len(reference_subsample(len(reference), mp.max_ref, mp.ref_seed)) // 2,
                       "n_permutations": perms, "drifted": int((y == 1).sum()), "clean": int((y == 0).sum())}
    return v


def halves_note(mp: Monitor, quantum: str, twin: str, rates: dict, y: np.ndarray, perms: int) -> str:
    r = {t: {k: "n/a" if x is None else f"{x:.2f}" for k, x in rates[t].items()} for t in (quantum, twin)}
    return (f"balanced accuracy of the decision p < {mp.alpha:g} = (power + 1 - false-alarm rate) / 2 on "
            f"{VERDICT_HALVES} seeded halves per window with planted drift truth (half the reference rows tested "
            f"against half the window), the same halves and {perms} permutations for every test (the stage's own "
            f"decisions: {mp.n_permutations}): power {quantum} {r[quantum]['power']} vs {twin} {r[twin]['power']} "
            f"on {int((y == 1).sum())} drifted halves, false alarms {r[quantum]['false_alarm']} vs "
            f"{r[twin]['false_alarm']} on {int((y == 0).sum())} clean halves. Halves of one window share its "
            "documents: the interval covers halves of these windows, not new traffic. Costs: each test on the full "
            "windows (wall and CPU of its thread, summed over the windows)")


def main() -> None:
    stage_main("monitor", run)


if __name__ == "__main__":
    main()
