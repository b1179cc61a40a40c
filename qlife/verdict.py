"""Verdicts: a stage's quantum method against its classical twin and the run's best classical method.

In: arrays only. `paired_bootstrap` takes test labels and each method's predictions on the same documents;
`paired_seeds` takes each method's score per seed (paired by position). Both return a JSON-ready spread:
`{"metric", "spread" (a sentence), "methods": {m: {"value", "ci95", "sd"}}, "differences": {a: {b: {...}}}}`
with a - b paired per resample or per seed. `verdict(spread, quantum, twin, ...)` turns one into the stage's
verdict dict (ahead / tie / behind from the quantum-minus-twin 95% interval, costs kept as given); `no_verdict`
gives the same keys for a comparison that cannot be judged (no ground truth), its reason as the verdict;
`markdown_table` and `plain_rows` render the stages' verdicts for reports/summary.md, Prefect table artifacts
and MLflow tags. No paths, no MLflow, no params file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

STAGES = ("curate", "encode", "search", "train", "distill", "deploy", "monitor")
COST_KEYS = ("wall_s", "cpu_s", "energy_kwh", "qpu_s_est")
Metric = str | Callable[[np.ndarray, np.ndarray], float]
_CHUNK = 4_000_000  # resamples x documents held in memory at once


def _f1_per_class(C: np.ndarray) -> np.ndarray:
    """F1 per label from counts C (R, K+1, K+1), true x predicted; the last column is 'predicted no label'.
    sklearn's f1_score(labels=..., zero_division=0): 2tp / (2tp + fp + fn), 0 when a label is absent."""
    K = C.shape[1] - 1
    tp = np.diagonal(C, axis1=1, axis2=2)[:, :K]
    denom = C.sum(2)[:, :K] + C.sum(1)[:, :K]
    return np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)


def _balanced_accuracy(C: np.ndarray) -> np.ndarray:
    """Mean recall over the labels present (sklearn's balanced_accuracy_score): drift power and 1 - false alarms."""
    K = C.shape[1] - 1
    n = C.sum(2)[:, :K]
    recall = np.divide(np.diagonal(C, axis1=1, axis2=2)[:, :K], n, out=np.zeros(n.shape), where=n > 0)
    return recall.sum(1) / np.maximum((n > 0).sum(1), 1)


METRICS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "macro_f1": lambda C, pos: _f1_per_class(C).mean(1),
    "f1": lambda C, pos: _f1_per_class(C)[:, pos],
    "accuracy": lambda C, pos: np.trace(C, axis1=1, axis2=2) / C.sum((1, 2)),
    "balanced_accuracy": lambda C, pos: _balanced_accuracy(C),
}


def _array(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array, got shape {a.shape}")
    if a.dtype.kind in "fc" and np.isnan(a).any():
        raise ValueError(f"{name} holds NaN")
    return a


def _scorer(metric: Metric, y: np.ndarray, preds: dict[str, np.ndarray], labels: Sequence | None,
            pos_label: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function of resample weights W (R, n) -> each method's metric per resample."""
    idx = np.arange(len(y))
    if callable(metric):
        return lambda W: {m: np.array([metric(y[np.repeat(idx, w)], p[np.repeat(idx, w)]) for w in W], float)
                          for m, p in preds.items()}
    classes = np.unique(y if labels is None else np.asarray(labels))
    if not np.isin(y, classes).all():
        raise ValueError(f"y_true holds values outside labels {classes.tolist()}")
    if metric == "f1" and pos_label not in classes:
        raise ValueError(f"pos_label {pos_label!r} is not a class of y_true ({classes.tolist()})")
    pos = int(np.searchsorted(classes, pos_label)) if metric == "f1" else 0
    k1 = len(classes) + 1  # one more predicted column: a label outside `classes` (never a match)
    cells = {m: np.searchsorted(classes, y) * k1 + np.where(np.isin(p, classes), np.searchsorted(classes, p), k1 - 1)
             for m, p in preds.items()}

    def score(W: np.ndarray) -> dict[str, np.ndarray]:
        offsets = np.arange(len(W))[:, None] * k1 * k1
        return {m: METRICS[metric](np.bincount((offsets + c).ravel(), weights=W.ravel(), minlength=len(W) * k1 * k1)
                                   .reshape(len(W), k1, k1), pos) for m, c in cells.items()}
    return score


def _pools(gid: np.ndarray, strata: Any) -> list[np.ndarray] | None:
    """The group ids of each stratum (a group must lie in one stratum); None without strata."""
    if strata is None:
        return None
    sid = np.unique(_array(strata, "strata"), return_inverse=True)[1]
    if len(sid) != len(gid):
        raise ValueError(f"strata has {len(sid)} values, y_true {len(gid)}")
    of_group = np.zeros(int(gid.max()) + 1, dtype=np.int64)
    of_group[gid] = sid
    if (of_group[gid] != sid).any():
        raise ValueError("a group spans several strata")
    return [np.flatnonzero(of_group == k) for k in range(int(sid.max()) + 1)]


def _weight_chunks(n: int, n_resamples: int, seed: int, groups: Any = None, strata: Any = None
                   ) -> Iterator[np.ndarray]:
    """How often each document is drawn, (r, n) per chunk; with groups, whole groups are drawn; with strata, each
    stratum's groups are drawn as many times as it has groups (a fixed design: K subsamples per window)."""
    gid = np.arange(n) if groups is None else np.unique(_array(groups, "groups"), return_inverse=True)[1]
    if len(gid) != n:
        raise ValueError(f"groups has {len(gid)} values, y_true {n}")
    G, rng, pools = int(gid.max()) + 1, np.random.default_rng(seed), _pools(gid, strata)
    step = max(1, _CHUNK // n)
    for start in range(0, n_resamples, step):
        r = min(step, n_resamples - start)
        draw = (rng.integers(0, G, size=(r, G)) if pools is None else
                np.concatenate([p[rng.integers(0, len(p), size=(r, len(p)))] for p in pools], axis=1))
        draw = draw + np.arange(r)[:, None] * G
        yield np.bincount(draw.ravel(), minlength=r * G).reshape(r, G)[:, gid]


def resample_weights(n: int, n_resamples: int = 1000, seed: int = 0, groups: Any = None,
                     strata: Any = None) -> np.ndarray:
    """The (n_resamples, n) draw counts `paired_bootstrap` uses for the same arguments."""
    return np.concatenate(list(_weight_chunks(n, n_resamples, seed, groups, strata)))


def _pairs(points: dict[str, float], samples: dict[str, np.ndarray],
           summarise: Callable[[float, np.ndarray], dict]) -> tuple[dict, dict]:
    methods = {m: summarise(points[m], samples[m]) for m in points}
    diffs = {a: {b: summarise(points[a] - points[b], samples[a] - samples[b]) for b in points if b != a}
             for a in points}
    return methods, diffs


def _percentile(point: float, vals: np.ndarray) -> dict:
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return {"value": float(point), "ci95": [float(lo), float(hi)], "sd": float(vals.std(ddof=1))}


def _inputs(metric: Metric, y_true: Any, preds: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if isinstance(metric, str) and metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {sorted(METRICS)} or a callable")
    if not preds:
        raise ValueError("preds is empty: no method to score")
    y = _array(y_true, "y_true")
    arrays = {m: _array(p, f"preds[{m!r}]") for m, p in preds.items()}
    for m, p in arrays.items():
        if len(p) != len(y):
            raise ValueError(f"preds[{m!r}] has {len(p)} values, y_true {len(y)}")
    return y, arrays


def resample_scores(metric: Metric, y_true: Any, preds: Mapping[str, Any], weights: Any, *,
                    labels: Sequence | None = None, pos_label: Any = 1) -> dict[str, np.ndarray]:
    """Each method's metric on each resample, given draw counts (R, n) as `resample_weights` makes."""
    y, arrays = _inputs(metric, y_true, preds)
    W = np.atleast_2d(np.asarray(weights))
    if W.ndim != 2 or W.shape[1] != len(y):
        raise ValueError(f"weights must have shape (resamples, {len(y)}), got {W.shape}")
    return _scorer(metric, y, arrays, labels, pos_label)(W)


def paired_bootstrap(metric: Metric, y_true: Any, preds: Mapping[str, Any], n_resamples: int = 1000,
                     seed: int = 0, groups: Any = None, *, labels: Sequence | None = None,
                     pos_label: Any = 1, strata: Any = None) -> dict:
    """Every method scored on the same resampled documents (or whole groups; within each stratum when given).
    metric: a METRICS name or f(y_true, y_pred) -> float. macro_f1 averages over `labels` (default: the classes
    of y_true)."""
    y, arrays = _inputs(metric, y_true, preds)
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be at least 2, got {n_resamples}")
    score = _scorer(metric, y, arrays, labels, pos_label)
    points = {m: float(v[0]) for m, v in score(np.ones((1, len(y)), dtype=np.int64)).items()}
    chunks = [score(W) for W in _weight_chunks(len(y), n_resamples, seed, groups, strata)]
    samples = {m: np.concatenate([c[m] for c in chunks]) for m in arrays}
    if not all(np.isfinite(v).all() for v in samples.values()) or not np.isfinite(list(points.values())).all():
        raise ValueError("the metric returned NaN or inf on some resample")
    methods, diffs = _pairs(points, samples, _percentile)
    n_groups = None if groups is None else len(np.unique(groups))
    unit = f"{len(y)} test documents" if groups is None else f"{n_groups} groups ({len(y)} test documents)"
    return {"metric": metric if isinstance(metric, str) else getattr(metric, "__name__", "custom"),
            "spread": f"paired bootstrap over {unit}, {n_resamples} resamples", "n": len(y), "n_groups": n_groups,
            "n_resamples": n_resamples, "seed": seed, "methods": methods, "differences": diffs}


def paired_seeds(values: Mapping[str, Sequence[float]], metric: str = "score") -> dict:
    """Mean, sd and 95% t-interval per method and per paired difference over seeds (position i = seed i)."""
    from scipy import stats

    if not values:
        raise ValueError("values is empty: no method to score")
    arrays = {m: _array(v, f"values[{m!r}]").astype(float) for m, v in values.items()}
    n = {len(v) for v in arrays.values()}
    if len(n) > 1:
        raise ValueError(f"methods have different numbers of seeds: { {m: len(v) for m, v in arrays.items()} }")
    n_seeds = n.pop()

    def t_interval(point: float, x: np.ndarray) -> dict:
        if n_seeds < 2:
            return {"value": float(point), "ci95": None, "sd": None}
        sd = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.975, n_seeds - 1)) * sd / np.sqrt(n_seeds)
        return {"value": float(point), "ci95": [float(point - half), float(point + half)], "sd": sd}

    methods, diffs = _pairs({m: float(v.mean()) for m, v in arrays.items()}, arrays, t_interval)
    spread = f"{n_seeds} seeds, t-interval" if n_seeds > 1 else "1 seed, no interval"
    return {"metric": metric, "spread": spread, "n_seeds": n_seeds, "methods": methods, "differences": diffs}


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone; family-wise error at the level the adjusted p is held to):
    the i-th smallest of m is multiplied by m - i + 1, capped at 1, and never below the one before it."""
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("holm: p-values must be a flat sequence of numbers in [0, 1]")
    out, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def _word(ci: Sequence[float] | None, higher_is_better: bool) -> str:
    if ci is None:
        return "not enough seeds"
    lo, hi = ci if higher_is_better else (-ci[1], -ci[0])
    return "ahead" if lo > 0 else "behind" if hi < 0 else "tie"


def verdict(spread: dict, quantum: str, twin: str, *, classical: Sequence[str] | None = None,
            cost: Mapping[str, Mapping[str, Any]] | None = None, higher_is_better: bool = True,
            note: str | None = None) -> dict:
    """The stage's verdict from a `paired_bootstrap` / `paired_seeds` result. classical: the candidates for
    best classical (default: every method but the quantum one; the twin always counts). cost: per method."""
    methods, cost = spread["methods"], dict(cost or {})
    for name in (quantum, twin, *(classical or ()), *cost):
        if name not in methods:
            raise ValueError(f"unknown method {name!r}: the spread holds {sorted(methods)}")
    if quantum == twin:
        raise ValueError(f"the quantum method and its twin are both {quantum!r}")
    pool = [twin, *(m for m in (methods if classical is None else classical) if m not in (quantum, twin))]
    best = max(pool, key=lambda m: methods[m]["value"] * (1 if higher_is_better else -1))  # ties: the twin

    def entry(m: str) -> dict:
        return {"method": m, **{k: methods[m][k] for k in ("value", "ci95", "sd")},
                "cost": {**dict.fromkeys(COST_KEYS), **cost.get(m, {})}}

    d_twin, d_best = (spread["differences"][quantum][m] for m in (twin, best))
    return {"metric": spread["metric"], "higher_is_better": higher_is_better,
            "quantum": entry(quantum), "twin": entry(twin), "best_classical": entry(best),
            "difference": {"quantum_minus_twin": {"value": d_twin["value"], "ci95": d_twin["ci95"]},
                           "quantum_minus_best": {"value": d_best["value"], "ci95": d_best["ci95"]}},
            "verdict": _word(d_twin["ci95"], higher_is_better),
            "verdict_vs_best": _word(d_best["ci95"], higher_is_better),
            "spread": spread["spread"], "note": note}


def no_verdict(quantum: str, twin: str, reason: str, cost: Mapping[str, Mapping[str, Any]] | None = None, *,
               metric: str | None = None, higher_is_better: bool = True, note: str | None = None) -> dict:
    """A verdict that cannot be judged (e.g. `reason` "no ground truth": a user's unlabelled data): `verdict`'s
    keys, every figure None, `verdict` the reason, the costs as given; `note` says what is known instead."""
    cost = dict(cost or {})

    def entry(m: str | None) -> dict:
        return {"method": m, "value": None, "ci95": None, "sd": None,
                "cost": {**dict.fromkeys(COST_KEYS), **(cost.get(m, {}) if m else {})}}

    none = {"value": None, "ci95": None}
    return {"metric": metric, "higher_is_better": higher_is_better, "quantum": entry(quantum), "twin": entry(twin),
            "best_classical": entry(None), "difference": {"quantum_minus_twin": none, "quantum_minus_best": none},
            "verdict": reason, "verdict_vs_best": reason, "spread": f"{reason}: not judged", "note": note}


def _f(x: float | None, spec: str = ".3f") -> str:  # costs span 1e-7 kWh to 1e3 s: ".3g" for them
    return "n/a" if x is None else format(x, spec)


def _ci(ci: Sequence[float] | None, spec: str = ".3f") -> str:
    return "" if ci is None else f" [{_f(ci[0], spec)}, {_f(ci[1], spec)}]"


def _cost_cell(q: Mapping[str, Any], t: Mapping[str, Any]) -> str:
    if all(c[k] is None for c in (q, t) for k in COST_KEYS):
        return "n/a"
    both = {k: f"{_f(q[k], '.3g')} vs {_f(t[k], '.3g')}" for k in ("wall_s", "energy_kwh")}
    cell = f"wall {both['wall_s']} s; {both['energy_kwh']} kWh"
    return cell + ("" if q["qpu_s_est"] is None else f"; QPU {_f(q['qpu_s_est'], '.3g')} s est")


def markdown_row(stage: str, v: dict | None) -> str:
    """One table row: short cells, metric values to 3 decimals."""
    if v is None:
        return f"| {stage} | (not run) | | | | | |"
    q, t, b, d = v["quantum"], v["twin"], v["best_classical"], v["difference"]["quantum_minus_twin"]
    word = v["verdict"] + ("" if v["verdict_vs_best"] == v["verdict"] else f" (vs best: {v['verdict_vs_best']})")
    if q["value"] is None and v.get("note"):  # not judged (no_verdict): what is known instead
        word += f": {v['note']}"
    cells = [f"{stage} ({v['metric']}{'' if v['higher_is_better'] else ', lower is better'})",
             f"{q['method']}: {_f(q['value'])}{_ci(q['ci95'])}", f"{t['method']}: {_f(t['value'])}{_ci(t['ci95'])}",
             "n/a" if b["method"] is None else f"{b['method']}: {_f(b['value'])}",
             f"{_f(d['value'], '+.3f')}{_ci(d['ci95'], '+.3f')}", word,
             _cost_cell(q["cost"], t["cost"])]
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _order(verdicts: Mapping[str, dict | None], stages: Sequence[str]) -> list[str]:
    return [*stages, *(s for s in verdicts if s not in stages)]


def markdown_table(verdicts: Mapping[str, dict | None], stages: Sequence[str] = STAGES) -> str:
    """The verdict table: one row per stage (the seven, then any other stage given); a missing one is '(not run)'."""
    header = ("| stage | quantum | classical twin | best classical | quantum − twin [95% CI] | verdict "
              "| cost (quantum vs twin) |\n|---|---|---|---|---|---|---|")
    return "\n".join([header, *(markdown_row(s, verdicts.get(s)) for s in _order(verdicts, stages))]) + "\n"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def plain_rows(verdicts: Mapping[str, dict | None], stages: Sequence[str] = STAGES) -> list[dict[str, str | float]]:
    """Flat rows, same keys in each, every value a short string or a number ('' when missing)."""
    rows = []
    for stage in _order(verdicts, stages):
        v = verdicts.get(stage)
        if v is None:
            rows.append({"stage": stage, "verdict": "(not run)"})
            continue
        q, t, d = v["quantum"], v["twin"], v["difference"]["quantum_minus_twin"]
        row: dict[str, Any] = {"stage": stage, "metric": v["metric"]}
        for who, e in (("quantum", q), ("twin", t), ("best", v["best_classical"])):
            row |= {who: e["method"], f"{who}_value": _round(e["value"]), f"{who}_ci95": _ci(e["ci95"]).strip()}
        rows.append({**row, "diff": _round(d["value"]), "diff_ci95": _ci(d["ci95"], "+.3f").strip(),
                     "verdict": v["verdict"], "verdict_vs_best": v["verdict_vs_best"], "spread": v["spread"],
                     **{f"{who}_{k}": e["cost"][k] for who, e in (("quantum", q), ("twin", t)) for k in COST_KEYS},
                     "note": v["note"]})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: "" if r.get(k) is None else r[k] for k in keys} for r in rows]


def stage_verdicts(reports: Mapping[str, dict]) -> dict[str, dict | None]:
    """Each lifecycle stage's verdict from its (merged) report, in pipeline order; a stage of several steps with a
    verdict each (deploy: pruning, compression) gives one row per step, `stage/step` after the first."""
    out: dict[str, dict | None] = {}
    for stage in STAGES:
        r = reports.get(stage, {})
        steps = r.get("verdicts") or {stage: r.get("verdict")}
        for i, (step, v) in enumerate(steps.items()):
            out[stage if i == 0 else f"{stage}/{step}"] = v
    return out


def cost_rows(reports: Mapping[str, dict]) -> list[list[str]]:
    """Per stage: wall s, CPU s, kWh, estimated QPU s (summed over methods, as the ledger does), as strings."""
    rows = []
    for stage in STAGES:
        if stage not in reports:
            rows.append([stage, "(not run)", "", "", ""])
            continue
        cost = reports[stage].get("cost", {})
        t = cost.get("total", {})
        qpu = sum(float(m.get("quantum", {}).get("qpu_seconds_est", 0.0)) for m in cost.values())
        rows.append([stage, f"{t.get('wall_s', 0):.1f}", f"{t.get('cpu_s', 0):.1f}", f"{t.get('energy_kwh', 0):.2e}",
                     f"{qpu:.3g}"])
    return rows


def short_rows(verdicts: Mapping[str, dict | None], stages: Sequence[str] = STAGES) -> list[dict[str, str]]:
    """Six short cells per stage (stage, quantum, twin, best classical, quantum − twin [95% CI], verdict): the
    verdict table in a form a UI shows whole (a Prefect table artifact, an MLflow tag per stage)."""
    rows = []
    for stage in _order(verdicts, stages):
        cells = [c.replace("\\|", "|") for c in markdown_row(stage, verdicts.get(stage)).strip("| ").split(" | ")]
        rows.append(dict(zip(("stage", "quantum", "twin", "best classical", "quantum − twin [95% CI]", "verdict"),
                             [*cells[:6], *[""] * (6 - len(cells[:6]))], strict=True)))
    return rows
