"""README.md's `monitoring` block: issue 34's checks of the monitor against their goals, from bench/results/*.json.

One row per check: what was measured, the goal, whether it holds, the command that reproduces it. A JSON that is
missing says "not measured"; one that lacks a figure says so (never a made-up figure). Reads only JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def calibration(d: dict) -> tuple[str, str, str]:
    rows = [r for r in d["results"]["sst2"] if r["regime"] == "held_out"]
    draws = d["check"]["draws"]
    n_refs = sorted({r["n_ref"] for r in rows})
    inside = sum(r["alpha_in_ci"] for r in rows)
    lo, hi = min(r["rate"] for r in rows), max(r["rate"] for r in rows)
    fitted = [r for r in d["results"]["sst2"] if r["regime"] == "fitted"]
    outside = "; outside: " + ", ".join(d["check"]["outside"]) if d["check"]["outside"] else ""
    sim = d["check"].get("simultaneous")
    together = (f", {sum(r['alpha_in_simultaneous_ci'] for r in rows)} of {len(rows)} in the simultaneous 95% "
                f"interval (Bonferroni over the rows: about {0.05 * len(rows):.1f} rows fall outside a 95% interval "
                f"each by chance)" if sim else "")
    features = d["config"].get("features", "pca")
    cols = "the projection + log residual" if features != "pca" else "the projection"
    tests = f"{len({r['test'] for r in rows})} tests on {cols}"
    measured = (f"{tests}, held-out reference: {inside} of {len(rows)} (test, reference size "
                f"{'/'.join(map(str, n_refs))}) "
                f"with alpha in the exact 95% interval of the rate{together}, rates {_f(lo)}–{_f(hi)} over {draws} "
                f"reference draws{outside}")
    if fitted:
        measured += f"; the old reference (rows the projection was fitted on): {_f(min(r['rate'] for r in fitted))}–" \
                    f"{_f(max(r['rate'] for r in fitted))}"
    holds = "yes" if d["check"]["passed"] else "over all rows at once" if sim and sim["passed"] else "no"
    return measured, "every test: alpha = 0.05 in the interval", holds


def cbpe(d: dict) -> tuple[str, str, str]:
    from qlife.params import MonitorQuality

    mq = MonitorQuality()  # the stage's default: its calibration, and the label-shift adjustment
    method = mq.calibration + ("" if mq.prior_shift == "none" else f"+{mq.prior_shift}")
    rows = {(r["windows_set"]): r for r in d["rows"] if r["calibration_split"] == "train-heldout"
            and r["method"] == method and r["metric"] == "accuracy"}
    parts = [f"{k} {_f(r['mae'])}" for k, r in rows.items()]
    worst = max(r["mae"] for r in rows.values())
    how = "temperature scaling" + {"none": "", "em": ", window priors by EM",
                                   "bbse": ", window priors by BBSE"}[mq.prior_shift]
    return (f"MAE of estimated vs true accuracy, windows of {d['window_size']} ({how}): "
            + ", ".join(parts) + f"; the label noise alone of such windows: {_f(rows['in-distribution']['noise_mae'])}",
            "under 0.03", "yes" if worst < 0.03 else "in-distribution and covariate shift only" if
            rows["in-distribution"]["mae"] < 0.03 else "no")


def doc_scores(d: dict) -> tuple[str, str, str]:
    v = d["variants"]["held_out"]
    cells = v["cells"]
    dc = {k: c["scorers"]["domain_classifier"]["mean"] for k, c in cells.items()}
    svm = {k: min(v["mean"] for s, v in c["scorers"].items() if s.startswith("ocsvm")) for k, c in cells.items()}
    where = [k for k in cells if svm[k] < 0.5]
    hold = [k for k in where if dc[k] > 0.7]
    planted, planted_holds = "", None
    whole = v.get("generator_whole_windows")
    if whole:  # the generator's planted drift windows, each scored as stage 7 scores a window (document_auc)
        sc = whole["scorers"]
        w_svm = min(x["mean"] for s, x in sc.items() if s.startswith("ocsvm"))
        w_dc = sc["domain_classifier"]
        planted_holds = w_svm < 0.5 and w_dc["ci95"][0] > 0.7
        extra = "; ".join(f"{label} {_f(sc[k]['mean'])}" for k, label in
                          (("text_dc", "on the texts"), ("residual", "the residual"),
                           ("new_words", "the recurring new words")) if k in sc)
        planted = (f"planted drift windows (the generator's, {whole['window_size']} documents, {whole['reps']} "
                   f"windows): domain classifier {_f(w_dc['mean'])} [{_f(w_dc['ci95'][0])}, {_f(w_dc['ci95'][1])}], "
                   f"one-class SVM {_f(w_svm)}; {extra}. Windows with 10-20% drifted documents, ")
    res = {k: c["scorers"]["residual"]["mean"] for k, c in cells.items() if "residual" in c["scorers"]}
    with_res = ""
    if res:  # bench.doc_scores with the projection's residual (a 17th column, and a score of its own)
        dcr = {k: c["scorers"]["domain_classifier_res"]["mean"] for k, c in cells.items()}
        res_hold = [k for k in where if res[k] > 0.7]
        with_res = (f"; with the residual as a 17th column {sum(dcr[k] > 0.7 for k in where)} (AUC "
                    f"{_f(min(dcr.values()))}–{_f(max(dcr.values()))}); the residual alone {len(res_hold)}: "
                    f"{', '.join(res_hold) or 'none'}")
    text = ""
    if all("text_dc" in c["scorers"] for c in cells.values()):  # bench.doc_scores on the window's texts
        tdc = [k for k in where if cells[k]["scorers"]["text_dc"]["mean"] > 0.7]
        nw = [k for k in where if cells[k]["scorers"]["new_words"]["mean"] > 0.7]
        text = (f"; on the texts (TF-IDF domain classifier) {len(tdc)}: {', '.join(tdc) or 'none'}; the recurring "
                f"new words per document {len(nw)}")
    mixed = "yes" if hold and len(hold) == len(where) else "in part" if hold else "no"
    holds = mixed if planted_holds is None else \
        f"{'yes' if planted_holds else 'no'} on the planted windows; {mixed} in the mixed windows"
    return (f"{planted}domain classifier's per-document AUC {_f(min(dc.values()))}–{_f(max(dc.values()))} over "
            f"{len(cells)} drift cells (one-class SVM {_f(min(svm.values()))}–{_f(max(svm.values()))}); above 0.7 "
            f"where the SVM is below 0.5 in {len(hold)} of {len(where)}: {', '.join(hold) or 'none'}{with_res}{text}",
            "AUC above 0.7 where the SVM is below 0.5", holds)


def linear_mmd(d: dict) -> tuple[str, str, str]:
    t = [r for r in d["rows"] if r["part"] == "timing" and r["n"] == 100_000 and r["test"] == "rff_permutation"
         and r["blas_threads"] == "default"]
    power = {(r["test"], r["shift_per_feature"]): r["rate"] for r in d["rows"] if r["part"] == "power"}
    shifts = sorted({s for _, s in power if s > 0})
    pw = "; ".join(f"shift {s}: rff {_f(power[('rff_permutation', s)], 2)} vs quadratic "
                   f"{_f(power[('quadratic_rbf', s)], 2)}" for s in shifts)
    sec = t[0]["median_s"] if t else None
    return (f"a window of 10^5 against 10^5 reference rows: {_f(sec, 1)} s on 2 cores; power at n = {d['n_power']} "
            f"({d['draws']} draws): {pw}", "under 10 s, power beside the quadratic test's",
            "yes" if sec is not None and sec < 10 else "no")


def _stream_rows(d: dict) -> tuple[dict, dict]:
    g = d["goals"]
    ours = {ds: next(v for k, v in g.items() if k.startswith(f"{ds}: conformal")) for ds in ("sst2", "gen")}
    rbf = {ds: next(v for k, v in g.items() if k.startswith(f"{ds}: per-window")) for ds in ("sst2", "gen")}
    return ours, rbf


STATISTICS = {"res_top": "top log residuals", "kl_k20": "kNN divergence",
              "res_top+nw_m2": "top log residuals + recurring new words"}


def _knn_without_residual(d: dict) -> dict:
    """The kNN divergence's goal rows where the adopted statistic is another (bench.monitoring with the residual)."""
    return {ds: v for ds in ("sst2", "gen") for k, v in d["goals"].items()
            if k.startswith(f"{ds}: conformal kl_k20 (without")}


def stream_false_alarms(d: dict) -> tuple[str, str, str]:
    ours, rbf = _stream_rows(d)
    return (f"share of {d['config']['reps']} simulated months (720 hourly windows of {d['config']['n']}) with at most "
            f"one false alarm: stream alarm {_pct(ours['sst2']['at_most_1_false_alarm_in_30_days'])} (SST-2), "
            f"{_pct(ours['gen']['at_most_1_false_alarm_in_30_days'])} (generator); per-window RBF at 0.05 "
            f"{_pct(rbf['sst2']['at_most_1_false_alarm_in_30_days'])}, "
            f"{_pct(rbf['gen']['at_most_1_false_alarm_in_30_days'])}", "95% of months",
            "yes" if all(o["goal_95pct_met"] for o in ours.values()) else "no")


def stream_delay(d: dict) -> tuple[str, str, str]:
    ours, rbf = _stream_rows(d)
    cells = [(ds, kind) for ds in ("sst2", "gen") for kind in ("topic", "vocab")]
    met = [ours[ds][f"goal_90pct_met_{kind}"] for ds, kind in cells]
    names = {"sst2": "SST-2", "gen": "generator", "topic": "new topic", "vocab": "new vocabulary"}
    knn = _knn_without_residual(d)
    parts = "; ".join(f"{names[ds]} {names[kind]} {_pct(ours[ds][f'within_6_at_10pct_{kind}'])} ("
                      + (f"kNN divergence {_pct(knn[ds][f'within_6_at_10pct_{kind}'])}, " if knn else "")
                      + f"per-window RBF {_pct(rbf[ds][f'within_6_at_10pct_{kind}'])})" for ds, kind in cells)
    what = STATISTICS.get(d.get("adopted"), d.get("adopted") or "")
    return (f"drift at 10% of a window found within 6 windows by the stream alarm{f' ({what})' if what else ''}: "
            f"{parts}", "90%",
            "yes" if all(met) else "new topic only" if all(ours[ds]["goal_90pct_met_topic"] for ds in ours) else "no")


CHECKS: list[tuple[str, str, str, Callable[[dict], tuple[str, str, str]]]] = [
    ("calibration", "per-window false alarms, SST-2", "python -m bench.calibration", calibration),
    ("monitoring", "false alarms over a month", "python -m bench.monitoring", stream_false_alarms),
    ("monitoring", "drift found within 6 windows", "python -m bench.monitoring", stream_delay),
    ("cbpe", "quality without labels, SST-2", "python -m bench.cbpe", cbpe),
    ("doc_scores", "drifted documents found", "python -m bench.doc_scores", doc_scores),
    ("linear_mmd", "a day's window in linear time", "python -m bench.linear_mmd", linear_mmd),
]


def rows(results: Path) -> list[dict[str, Any]]:
    out = []
    for name, check, cmd, make in CHECKS:
        path = results / f"{name}.json"
        if not path.exists():
            out.append({"check": check, "measured": "not measured", "goal": "", "holds": "n/a", "command": cmd})
            continue
        try:
            measured, goal, holds = make(json.loads(path.read_text()))
        except MALFORMED as err:
            measured, goal, holds = f"the JSON lacks a figure ({type(err).__name__}: {err})", "", "n/a"
        out.append({"check": check, "measured": measured, "goal": goal, "holds": holds, "command": cmd})
    return out


def render(results: Path) -> str:
    lines = ["| check | measured | goal | holds | command |", "|---|---|---|---|---|"]
    for r in rows(results):
        lines.append(f"| {r['check']} | {r['measured']} | {r['goal']} | {r['holds']} | `{r['command']}` |")
    return "\n".join(lines) + "\n"
