"""Stage 7's decisions over time and without labels: stages/monitor.py calls these; the monitoring flow
(flows/monitor.py) and promote's gate (qlife/promote.py) read what they write.

The stream alarm (`update_stream`)
    Each window's number (`monitor.stream.statistic`: the top log residuals' mean or the kNN divergence of
    `window_rows` of its rows, or the number of those rows' texts holding a recurring new word (new_words: against
    the curated training split's words, read once per run, `training_vocabulary`), two of them as one, the
    p-value of `monitor.alarm`'s test, or its RBF MMD^2) goes
    to a conformal e-detector (qlife.methods.sequential) whose threshold bounds P(a false alarm within
    `monitor.stream.period` windows) by `monitor.stream.false_alarms_per_period`. Its state is kept between runs in
    `paths.state/monitor_stream.json`, outside DVC (a stream's history is not an input a run can reproduce): a
    window is counted once (by its name and a hash of its records, in name order: name windows so that they sort
    in time), a rerun on the same windows adds nothing, and a new reference (a retrained model, other monitor
    settings) starts the detector afresh. The per-window tests stay in the report.

Quality without labels (`quality_estimates`)
    Each model of `monitor.quality.models` (the fine-tuned teacher, the served students) scores the validation
    split and every window; its confidences are calibrated on the validation split (qlife.methods.cbpe: temperature
    scaling by default) and the window's accuracy is estimated with a 95% interval, beside the truth on a window's
    labelled records. A quality alarm: the interval's upper end below the validation accuracy minus
    `monitor.quality.max_drop`. CBPE holds under covariate shift, not under label or concept shift (the cbpe
    module's doc): a stable estimate is not proof.

The decision (`decide`) and the way out of it
    `monitor.decide: stream` (default): a window is alarmed when the stream alarm is open and the window is at or
    after the change's estimated start, or when a model's estimated accuracy dropped on it. The flow retrains once
    per alarmed window that has labelled records (it copies them to `paths.incoming`; a window already there is
    answered: no second retraining). An alarmed window blocks promotion (`blocking`) until its labels are trained
    on, or it is acknowledged (`python -m qlife.cli acknowledge WINDOW --reason "..."`, recorded in
    `paths.state/acknowledged.json` with the window's hash: a changed window needs a new acknowledgement), or, when
    only the stream flagged it and `promote.gate.quality_decides`, every estimated quality on it held.
    `monitor.decide: per_window`: `monitor.alarm`'s decision on each window alone (the behaviour before the stream).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from qlife.data.sources import is_labelled
from qlife.io import DataError, read_json, read_jsonl, write_json
from qlife.methods import sequential
from qlife.params import Monitor, Params

STREAM_FILE, ACK_FILE = "monitor_stream.json", "acknowledged.json"


# ----------------------------------------------------------------------------- fingerprints


def window_hash(docs: list[dict]) -> str:
    """12 hex digits of the window's records (texts and labels, in order): a changed file is another window."""
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps([d.get("text"), d.get("label")], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:12]


def reference_fingerprint(reference: np.ndarray, mp: Monitor, vocabulary: frozenset[str] | None = None) -> str:
    """The reference rows and every setting a window's statistic depends on (for new_words the training split's
    vocabulary too): another one means the stream's history is not comparable (the detector starts afresh)."""
    h = hashlib.sha256(np.ascontiguousarray(reference, dtype=np.float64).tobytes())
    h.update(json.dumps([mp.stream.statistic, mp.stream.k, mp.stream.window_rows, mp.alarm, mp.n_permutations,
                         mp.seed, mp.max_ref, mp.ref_seed, mp.stream.period,
                         mp.stream.false_alarms_per_period]).encode())
    if mp.features != "pca" or "residual" in mp.stream.statistic:  # (the fingerprints of older runs stay valid)
        h.update(json.dumps([mp.features, mp.stream.top]).encode())
    if reads_texts(mp):
        if vocabulary is None:
            raise ValueError(f"monitor.stream.statistic {mp.stream.statistic!r} reads the training vocabulary: pass it")
        h.update(json.dumps([mp.stream.min_docs, vocabulary_fingerprint(vocabulary)]).encode())
    return h.hexdigest()[:16]


def vocabulary_fingerprint(vocabulary: frozenset[str]) -> str:
    """16 hex digits of the vocabulary's words (sorted): another training split's words, another stream."""
    return hashlib.sha256("\n".join(sorted(vocabulary)).encode()).hexdigest()[:16]


def reads_texts(mp: Monitor) -> bool:
    """Whether the stream's statistic reads the windows' texts (new_words) besides their features."""
    return "new_words" in mp.stream.statistic.split("+")


def training_vocabulary(params: Params) -> frozenset[str]:
    """The words of the curated training split (`paths.curated/train.jsonl`, what the model was trained on), the
    fixed vocabulary of the new_words statistic (qlife.methods.window_stats.words: lower-cased, \\w+)."""
    from qlife.methods.window_stats import vocabulary

    path = Path(params.paths.curated) / "train.jsonl"
    if not path.exists():
        raise DataError(f"monitor.stream.statistic {params.monitor.stream.statistic!r} reads the training split's "
                        f"words from {path}, which is not there: run curate first (dvc repro curate)")
    return vocabulary(d.get("text", "") for d in read_jsonl(path))


# ----------------------------------------------------------------------------- the stream alarm


def stream_settings(mp: Monitor) -> dict[str, Any]:
    return {"evidence": "conformal", "larger_is_drift": mp.stream.statistic != "p_value", "period": mp.stream.period,
            "false_alarms_per_period": mp.stream.false_alarms_per_period, "seed": mp.seed}


ROW_STATISTICS = ("residual_top", "knn_divergence", "knn_divergence+residual_top", "new_words",
                  "new_words+residual_top")  # read from window_rows rows (new_words: their texts)


def stream_rows(mp: Monitor, live: np.ndarray) -> np.ndarray | None:
    """The `window_rows` rows of a window the stream's statistic reads (drawn by a seed from its features, in
    order, so a window always gives the same rows); None for a window with fewer rows."""
    n = mp.stream.window_rows
    if len(live) < n:
        return None
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(live, dtype=np.float64).tobytes()).digest()[:8], "little")
    return np.sort(np.random.default_rng(seed).choice(len(live), n, replace=False))


def knn_statistic(mp: Monitor, reference: np.ndarray, live: np.ndarray, residual: bool = False,
                  texts: list[str] | None = None, vocabulary: frozenset[str] | None = None
                  ) -> float | list[float] | None:
    """The stream's number from `window_rows` rows of the window (`stream_rows`): knn_divergence against the
    tested reference (on the projected columns), residual_top (the last column, the log residual: `residual` says
    it is there), new_words (the rows' `texts` against the training split's `vocabulary`,
    qlife.methods.window_stats.new_words with monitor.stream.min_docs), or several as a list in the statistic's
    order; None for a window with fewer rows, for a residual statistic without the residual column, or for
    new_words without texts or vocabulary."""
    from qlife.methods.window_stats import knn_divergence, new_words, residual_top

    s = mp.stream
    idx = stream_rows(mp, live)
    if idx is None or ("residual" in s.statistic and not residual):
        return None
    if reads_texts(mp) and (texts is None or vocabulary is None):
        return None
    if texts is not None and len(texts) != len(live):
        raise ValueError(f"{len(texts)} texts for a window of {len(live)} rows")
    rows = live[idx]
    pca = reference.shape[1] - int(residual)  # the kNN divergence reads the projected features alone
    out = {"knn_divergence": lambda: knn_divergence(reference[:, :pca], rows[:, :pca], k=s.k),
           "residual_top": lambda: residual_top(rows[:, -1], s.top),
           "new_words": lambda: new_words(vocabulary, [texts[i] for i in idx], s.min_docs)}
    values = [out[name]() for name in s.statistic.split("+")]
    return values[0] if len(values) == 1 else values


def new_word_report(mp: Monitor, texts: list[str], vocabulary: frozenset[str], shown: int = 20
                    ) -> tuple[dict, np.ndarray]:
    """Over the whole window (all its records, not only the stream's rows): the recurring new words (in at least
    monitor.stream.min_docs records, outside the training vocabulary; the `shown` most frequent with their record
    counts), the records holding one, and per record how many it holds (its drift score)."""
    from qlife.methods.window_stats import new_word_scores

    scores, recurring = new_word_scores(vocabulary, texts, mp.stream.min_docs)
    return {"records_with_recurring_new_words": int((scores > 0).sum()), "recurring_new_words": len(recurring),
            "most_frequent": dict(list(recurring.items())[:shown])}, scores.astype(np.float64)


def window_statistic(result: dict, mp: Monitor) -> float | list[float] | None:
    """The number (or numbers) the stream ranks for one window's result (None: the window was not tested)."""
    if mp.stream.statistic in ROW_STATISTICS:
        return result.get("stream_statistic")
    row = result.get("tests", {}).get("rbf" if mp.stream.statistic == "mmd2" else mp.alarm)
    if row is None or row.get("p_value") is None:
        return None
    return float(row["mmd2"] if mp.stream.statistic == "mmd2" else row["p_value"])


def load_stream(state_dir: Path, fingerprint: str, mp: Monitor) -> tuple[dict, str | None]:
    """The stream's state for this reference, and why it (re)started (None: it goes on)."""
    path = state_dir / STREAM_FILE
    old = read_json(path) if path.exists() else None
    if old is not None and old.get("reference") == fingerprint:
        return old, None
    why = "first run" if old is None else "a new reference (a retrained model or other monitor settings)"
    return {"reference": fingerprint, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "why_started": why,
            "previous_alarm": None if old is None else old["detector"].get("alarm"),
            "detector": sequential.init_state(stream_settings(mp))}, why


def update_stream(state_dir: Path, fingerprint: str, results: dict[str, dict], hashes: dict[str, str],
                  mp: Monitor) -> dict:
    """Count every tested window not yet counted (name order), persist the state, return the stream's report:
    per window its conformal p-value and e-value (or counted before), the standing, what the threshold means."""
    state, restarted = load_stream(state_dir, fingerprint, mp)
    values = {n: window_statistic(results[n], mp) for n in sorted(results)}
    counted = dict(state["detector"]["history"])
    if any(counted.get(f"{n}@{hashes[n]}", v) != v for n, v in values.items() if v is not None):
        # the same records and settings gave another statistic: the code changed; the history is not comparable
        previous_alarm = state["detector"].get("alarm")
        state, _ = load_stream(state_dir / "-", fingerprint, mp)  # a fresh state
        restarted = "a counted window's statistic changed (other code): the stream starts afresh"
        state.update(why_started=restarted, previous_alarm=previous_alarm)
    det, rows = state["detector"], {}
    for name, value in values.items():
        if value is None:
            why = results[name].get("skipped") or (f"fewer than monitor.stream.window_rows = {mp.stream.window_rows} "
                                                   "records" if "tests" in results[name] else "not tested")
            rows[name] = {"counted": False, "why": why}
            continue
        det, d = sequential.update(det, value, f"{name}@{hashes[name]}")
        rows[name] = {"counted": not d["counted_before"], "value": value, "raised": d["raised"],
                      "p_value": d.get("p_value"), "e_value": d.get("e_value"),
                      "log10_statistic": d["log10_statistic"]}
    state["detector"] = det
    write_json(state_dir / STREAM_FILE, state)
    standing = sequential.decide(det)
    return {"state_file": str(state_dir / STREAM_FILE), "restarted": restarted, "windows": rows,
            "alarm": standing["alarm"], "open_alarm": standing["open_alarm"],
            "log10_statistic": standing["log10_statistic"], "log10_threshold": standing["log10_threshold"],
            "windows_since_reset": standing["windows_since_reset"], "change_start": standing["change_start"],
            "meaning": standing["meaning"], "statistic": mp.stream.statistic,
            "history": [h[0] for h in det["history"]]}


def stream_alarmed(stream: dict, names: list[str]) -> list[str]:
    """The windows of this run at or after the open alarm's estimated change start."""
    if not stream["alarm"]:
        return []
    start = (stream["open_alarm"] or {}).get("change_start") or stream["change_start"]
    hist = stream["history"]
    after = hist[hist.index(start):] if start in hist else hist
    names_after = {h.rsplit("@", 1)[0] for h in after}
    return [n for n in names if n in names_after]


def reset_stream(state_dir: Path, reason: str, keep_history: bool) -> bool:
    """Reset the stream detector (an answered alarm); False when there is no state yet."""
    path = state_dir / STREAM_FILE
    if not path.exists():
        return False
    state = read_json(path)
    state["detector"] = sequential.reset(state["detector"], reason, keep_history=keep_history)
    write_json(path, state)
    return True


# ----------------------------------------------------------------------------- quality without labels


def served_model(role: str, params: Params):
    """The model of `role` as qlife.serving serves it (QlifeTextModel), or a DataError naming what is missing."""
    from qlife.inference import served_config
    from qlife.serving import QlifeTextModel

    paths, static = params.paths, Path(params.paths.student) / "static"
    kind, artifacts = {"teacher": ("classifier", {"model": paths.teacher}),
                       "student": ("student", {"model": paths.teacher, "student": paths.student}),
                       "student_static": ("static_student", {"static": str(static), "student": str(static)})}[role]
    missing = [a for a in artifacts.values() if not Path(a).exists()]
    if missing:
        raise DataError(f"monitor.quality.models names {role}, whose model is not there ({missing[0]}): run the "
                        "train and distill steps first (dvc repro), or leave it out of monitor.quality.models")
    model = QlifeTextModel()
    config = {"kind": kind, **served_config(params.inference.model_dump())}  # as promote logs it
    model.load_context(SimpleNamespace(model_config=config, artifacts=artifacts))
    return model


def quality_estimates(params: Params, windows: dict[str, list[dict]]) -> dict:
    """Per model of monitor.quality.models: its calibration on the validation split and, per window, the estimated
    accuracy with its 95% interval, the quality alarm, and on the labelled records the estimate beside the truth."""
    from qlife.methods.cbpe import estimate, fit_calibrator, with_truth

    mq, seed = params.monitor.quality, params.monitor.seed
    if not mq.models:
        return {}
    val = read_jsonl(Path(params.paths.curated) / "val.jsonl")
    y_val = np.array([d["label"] for d in val])
    out: dict[str, Any] = {}
    for role in mq.models:
        model = served_model(role, params)
        p_val = model.probabilities([d["text"] for d in val])
        cal = fit_calibrator(p_val, y_val, method=mq.calibration, inputs="probs")
        val_acc = cal.fit_info["val_accuracy"]
        rows = {}
        for name, docs in windows.items():
            if not docs:
                rows[name] = {"skipped": "no records"}
                continue
            p = model.probabilities([d["text"] for d in docs])
            row = estimate(cal, p, "accuracy", n_resamples=1000, seed=seed, prior_shift=mq.prior_shift)
            row["drop_alarm"] = bool(row["ci95"][1] < val_acc - mq.max_drop)
            lab = [i for i, d in enumerate(docs) if is_labelled(d)]
            if len(lab) >= 2:
                y = np.array([docs[i]["label"] for i in lab])
                part = estimate(cal, p[lab], "accuracy", n_resamples=1000, seed=seed, prior_shift=mq.prior_shift)
                row["labelled"] = {k: v for k, v in with_truth(part, cal, p[lab], y).items()
                                   if k in ("n", "estimate", "ci95", "true", "abs_error", "in_ci")}
            rows[name] = row
        out[role] = {"val_accuracy": val_acc, "calibration": cal.to_dict(), "prior_shift": mq.prior_shift,
                     "max_drop": mq.max_drop, "windows": rows}
    return out


def quality_error(quality: dict) -> dict | None:
    """Mean absolute error of the estimates against the truth over windows with labelled records, per model."""
    out = {}
    for role, q in quality.items():
        errs = [r["labelled"]["abs_error"] for r in q["windows"].values() if "labelled" in r]
        if errs:
            out[role] = {"windows": len(errs), "mae": float(np.mean(errs)),
                         "in_ci": sum(r["labelled"]["in_ci"] for r in q["windows"].values() if "labelled" in r)}
    return out or None


# ----------------------------------------------------------------------------- the decision


def decide(mp: Monitor, results: dict, stream: dict, quality: dict) -> dict:
    """decision.alarms (what the flow retrains on and the gate reads) with each window's reasons."""
    names = list(results)
    per_window = [n for n, r in results.items() if r["alarm"]]
    reasons: dict[str, dict] = {}
    if mp.decide == "per_window":
        for n in per_window:
            reasons[n] = {"per_window": f"{mp.alarm}: p < {mp.alpha:g}"}
    else:
        for n in stream_alarmed(stream, names):
            reasons.setdefault(n, {})["stream"] = (
                f"stream alarm (10^{stream['log10_statistic']:.1f} >= threshold 10^{stream['log10_threshold']:.1f}"
                f"; change estimated to start at {str(stream['change_start']).rsplit('@', 1)[0]})")
        for role, q in quality.items():
            for n, row in q["windows"].items():
                if row.get("drop_alarm"):
                    lo, hi = row["ci95"]
                    reasons.setdefault(n, {}).setdefault("quality_drop", []).append(
                        f"{role}: estimated accuracy {row['estimate']:.3f} [{lo:.3f}, {hi:.3f}] < validation "
                        f"{q['val_accuracy']:.3f} - {q['max_drop']:g}")
    alarms = [n for n in names if n in reasons]
    return {"alarms": alarms, "reasons": reasons, "per_window_alarms": per_window, "decide": mp.decide,
            "rule": RULE[mp.decide].format(alarm=mp.alarm, alpha=mp.alpha, drop=mp.quality.max_drop)}


RULE = {
    "stream": ("a window is alarmed when the stream alarm over the windows (qlife.methods.sequential; the "
               "threshold's meaning is in `stream.meaning`) is open and the window is at or after the change's "
               "estimated start, or when a model's estimated accuracy on it (CBPE) fell more than {drop:g} below its "
               "validation accuracy beyond its 95% interval. Each per-window test ({alarm} at p < {alpha:g} and the "
               "others) stays in the report, undecisive"),
    "per_window": "a window is alarmed when {alarm}'s permutation p-value is below {alpha:g} (each window alone)",
}


# ----------------------------------------------------------------------------- acknowledgements


def acknowledged(state_dir: Path) -> dict:
    path = state_dir / ACK_FILE
    return read_json(path) if path.exists() else {}


def acknowledge(params: Params, window: str, reason: str, false_alarm: bool = False) -> dict:
    """Record that a person has answered a window's alarm without labels; reset the stream detector (its history
    kept for a false alarm, cleared when the drift is accepted as the new normal). Refuses an unknown window or
    an empty reason."""
    from qlife.data.sources import live_windows

    if not reason or not reason.strip():
        raise DataError("say why (--reason \"...\"): it is recorded beside the window")
    windows, _ = live_windows(params)
    if window not in windows:
        raise DataError(f"no live window named {window!r}; there are {sorted(windows)}")
    state_dir = Path(params.paths.state)
    acks = acknowledged(state_dir)
    acks[window] = {"hash": window_hash(windows[window]), "reason": reason.strip(), "false_alarm": false_alarm,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(state_dir / ACK_FILE, acks)
    what = "false alarm" if false_alarm else "drift accepted as the new normal"
    reset = reset_stream(state_dir, f"{window} acknowledged ({what}): {reason.strip()}", keep_history=false_alarm)
    return {"window": window, **acks[window], "stream_reset": reset}


def blocking(params: Params, monitor_report: dict, quality_decides: bool) -> list[tuple[str, str]]:
    """(window, why) for every alarmed window of this run's monitor that blocks promotion: not trained on (its
    labels in paths.incoming), not acknowledged (for its current records), and not cleared by estimated quality
    (only the stream flagged it, quality_decides, and no model's estimate dropped)."""
    from qlife.data.sources import live_windows

    decision = monitor_report.get("decision", {})
    alarms = decision.get("alarms", [])
    if not alarms:
        return []
    acks = acknowledged(Path(params.paths.state))
    hashes = decision.get("window_hashes") or {}
    if not hashes and any(w in acks for w in alarms):
        windows, _ = live_windows(params)
        hashes = {w: window_hash(d) for w, d in windows.items()}
    out = []
    for w in alarms:
        if (Path(params.paths.incoming) / f"{w}.jsonl").exists():
            continue
        if w in acks and acks[w]["hash"] == hashes.get(w):
            continue
        why = decision.get("reasons", {}).get(w, {})
        if quality_decides and set(why) == {"stream"}:
            continue
        text = "; ".join(v if isinstance(v, str) else "; ".join(v) for v in why.values()) or "drift alarm"
        out.append((w, text))
    return out
