"""Issue 34's stream check: the sequential drift alarm over 30 days of hourly windows, on the pipeline's features.

    python -m bench.monitoring [--reps 100] [--windows 720] [--follow 24] [--n 200] [--n-ref 600]
                               [--permutations 200] [--rbf-null 48] [--seed 0] [--from-cache] [--quick]

(any run but the full default one writes bench/.cache/monitoring.quick.json and windows of its own)

Features: the pipeline's own (train.model MiniLM, mean pooled, encode.max_length 128, then a PCA of 16 components,
qlife.methods.projection.fit_pca) fitted on rows that never enter a reference or a window; each repetition
standardises by its reference's mean and sd, as stage 7 does. Two data sets, each a traffic pool and two drift
pools (embedded once, bench/.cache/monitoring_embeddings.npz, ~6 min on one core):
  sst2  traffic: 8,000 SST-2 train rows (../shared/datasets/sst2, read in place; the PCA on 2,000 others);
        new topic: news documents of the generator (qlife.data.generator.draw_docs);
        new vocabulary: 1,000 further SST-2 rows rewritten in a chat style (bench.drift.chat_style: lower case,
        abbreviations u / r / 2 / 4, a trailing lol / tbh / imo: the content stays, the words change)
  gen   traffic: 5,000 generator documents (4 balanced topics; the PCA on 1,500 others);
        new topic: documents of topics 5 and 6 (technology, politics), absent from the traffic;
        new vocabulary: the drifted live window's vocabulary (drift_vocab 0.5, the traffic's topic mix)
Per repetition (seeded by (--seed, data set, rep)): a reference of --n-ref pool rows, held out of the traffic;
--windows in-distribution windows of --n rows (30 days of hourly windows); per drift type and fraction (5, 10, 20%)
a change at a uniform random hour tau after which --follow windows have that share of drifted rows.
Detectors on the same streams:
  conformal   qlife.methods.sequential (conformal ranks of a per-window statistic, Shiryaev-Roberts e-detector,
              simulated threshold) on the adopted statistic, the kNN divergence of qlife.methods.window_stats
              (k = 20), and on the alternatives: RBF MMD^2 at the reference's median distance (~ the stage's
              statistic), at a quarter of it, a kNN two-sample count; at 0.2 and at 0.1 (the default) false alarms
              per 720 windows. Restarted with history kept after every alarm (a dismissed false alarm).
  rbf@0.05    stage 7's per-window test (qlife.methods.drift.rbf_mmd_test: median heuristic of the pooled sample,
              --permutations permutations, the same seed for every window), computed with two shortcuts that keep
              its verdict (bench.monitoring_stats.rbf_test: permutations stop once p > 0.05 is certain; float32
              exponentials) on the first --rbf-null in-distribution windows of each repetition (its false alarms
              per 30 days: 720 x that repetition's rate) and on the drifted windows up to its first alarm.
False alarms: on the in-distribution stream, per 30 days; the goal: at most one in 95% of repetitions. Delay: windows
from the change to the first alarm at or after it (1 = the first drifted window), '> follow' when none; the goal:
within 6 windows at 10% in 90% of repetitions.
Statistic choice: every candidate of bench.monitoring_stats.NAMES on tuning streams of their own seed (TUNE: seed 1,
10 repetitions of 300 windows) ranked by the normal score of the drifted windows' ranks among the in-distribution
ones at 10% new-topic drift (the smaller of the two data sets); the evaluation streams (seed 0) were not looked at
before the choice. Writes bench/results/monitoring.json (window statistics cached in bench/.cache/monitoring_windows_
{tune,eval}.npz; --from-cache re-reads them). One process, one BLAS thread: ~20 min of one core for the windows.
The residual (`residual` in the JSON): the projection drops the directions new content lives in, so a 17th column,
the log residual (qlife.methods.projection.Residual: the off-subspace norm of the unit-normalised embedding
against a 16-component PCA of the unit-normalised PCA-fit rows), standardised by the reference like the rest.
Its statistics (bench.monitoring_stats.RES_NAMES: the window's mean log residual, the mean of its 20 largest, a
one-sided KS, the kNN divergence with the residual as a 17th column at weights 1, 2, 4) are computed in a second
pass over the same windows (the draws never depend on the features; the pass's kNN divergence on the 16 columns
is checked equal to the first pass's; cached in monitoring_windows_{part}_res.npz), and compared with
combinations with the kNN divergence (one detector on their combined conformal p-value, qlife.methods.sequential,
or one detector each at half the rate) on tuning streams of their own (seed 1, 40 repetitions of 720 windows:
monitoring_windows_tune_res720.npz) by RES_RULE; the choice, res_top, was the stage's statistic (residual_top)
until the lexical statistics below; the kNN divergence stays beside it.
The lexical statistics (`lexical` in the JSON; bench.monitoring_lexical): the features keep little of a new
vocabulary, so the window's texts are read against a fixed vocabulary (per data set the PCA-fit rows plus further
training-like rows that never enter a reference or a window: 10,000 rows): the plain OOV-token rate, the top-20 mean
of per-document OOV rates, and qlife.methods.window_stats.new_words at min_docs 2-5 (the documents holding a new
word that recurs in at least min_docs of the window's). The windows are the same (the draws replayed from the seed,
the change hours checked equal; cached in monitoring_windows_{part}_lex.npz); each alone and combined with res_top
(one detector on the combined conformal p-value) on the residual's tuning streams, the choice by LEX_RULE (nw_m2),
then on the evaluation streams. Its combination with res_top, res_top+nw_m2, is the stage's statistic (ADOPTED:
monitor.stream.statistic new_words+residual_top, min_docs 2) and the adopted row of `goals`; res_top and nw_m2
alone stay beside it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
EMBED_CACHE = Path(__file__).parent / ".cache" / "monitoring_embeddings.npz"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # params.train.model
MAX_LENGTH, BATCH = 128, 64  # params.encode.max_length, batch_size (what stage 7 embeds windows with)
# pool sizes (rows embedded once; ~5 min on one core)
SST2_FIT, SST2_POOL, SST2_CHAT = 2_000, 8_000, 1_000
GEN_FIT, GEN_POOL, GEN_DRIFT = 1_500, 5_000, 1_000
DATASETS = ("sst2", "gen")
DRIFTS = {"topic": "new topic", "vocab": "new vocabulary"}
N_FEATURES = 16  # encode.n_features
GOAL_DELAY = 6
WINDOW_CACHE = Path(__file__).parent / ".cache" / "monitoring_windows_{part}.npz"
QUICK_OUT = Path(__file__).parent / ".cache" / "monitoring.quick.json"  # any run but the full one writes here


def texts() -> dict[str, list[str]]:
    """The texts of every pool: per data set the PCA-fit rows, the traffic pool (reference and windows are drawn
    from it) and the two drift pools."""
    from bench.drift import chat_style
    from qlife.data.generator import draw_docs

    with (SST2 / "train.jsonl").open() as f:
        sst = [json.loads(line)["text"] for line in f]
    order = np.random.default_rng(0).permutation(len(sst))
    sst = [sst[i] for i in order]
    rng = np.random.default_rng(1)
    chat = [chat_style(t, rng) for t in sst[SST2_FIT + SST2_POOL: SST2_FIT + SST2_POOL + SST2_CHAT]]
    gen_fit = [d["text"] for d in draw_docs(100, GEN_FIT)]
    seen = set(gen_fit)
    gen_pool = [t for t in (d["text"] for d in draw_docs(101, GEN_POOL + 50)) if t not in seen][:GEN_POOL]
    return {
        "sst2_fit": sst[:SST2_FIT], "sst2_pool": sst[SST2_FIT: SST2_FIT + SST2_POOL],
        "sst2_topic": [d["text"] for d in draw_docs(104, GEN_DRIFT)],  # news sentences: a new topic
        "sst2_vocab": chat,  # the same kind of sentences in a chat style: a new vocabulary
        "gen_fit": gen_fit, "gen_pool": gen_pool,
        # topics 5 and 6 of the generator (technology, politics), absent from the 4-topic traffic
        "gen_topic": [d["text"] for d in draw_docs(102, GEN_DRIFT, n_topics=6,
                                                   topic_probs=[0, 0, 0, 0, 0.5, 0.5])],
        # the drifted live window's vocabulary (drift_vocab 0.5), the traffic's balanced topics
        "gen_vocab": [d["text"] for d in draw_docs(103, GEN_DRIFT, drift_vocab=0.5)],
    }


def embeddings() -> dict[str, np.ndarray]:
    """MiniLM pooled embeddings of every pool (cached in bench/.cache/monitoring_embeddings.npz)."""
    if EMBED_CACHE.exists():
        z = np.load(EMBED_CACHE)
        return {k: z[k] for k in z.files}
    import torch

    from qlife.models import encode_texts, load_encoder

    torch.set_num_threads(1)
    model, tok = load_encoder(MODEL)
    out = {}
    with torch.inference_mode():
        for name, t in texts().items():
            t0 = time.perf_counter()
            out[name] = encode_texts(model, tok, t, MAX_LENGTH, BATCH, desc=f"embed {name}")[0].astype(np.float32)
            print(f"embedded {name}: {len(t)} texts in {time.perf_counter() - t0:.0f} s", flush=True)
    EMBED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(EMBED_CACHE, **out)
    return out




def features(residual: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """data set -> {"pool", "topic", "vocab"}: MiniLM embeddings projected by a PCA (16 components,
    qlife.methods.projection.fit_pca, as stage 3 fits it) fitted on the data set's own PCA-fit rows, which never
    enter a reference or a window. Not yet standardised: each repetition standardises by its own reference.
    `residual`: a 17th column, the log residual (fit_pca(..., residual=True): the off-subspace norm of the
    unit-normalised embedding against a PCA of the unit-normalised PCA-fit rows)."""
    from qlife.methods.projection import fit_pca

    e = embeddings()
    out = {}
    for d in DATASETS:
        proj = fit_pca(e[f"{d}_fit"].astype(np.float64), N_FEATURES, residual=residual)

        def tf(x: np.ndarray, proj=proj) -> np.ndarray:
            x = x.astype(np.float64)
            return np.column_stack([proj.transform(x), proj.residuals(x)]) if residual else proj.transform(x)

        out[d] = {k: tf(e[f"{d}_{k}"]) for k in ("pool", "topic", "vocab")}
    return out


def stream_job(feats: dict[str, np.ndarray], ds: int, rep: int, a: dict, names: list[str], rbf_null: int,
               rbf_drift: bool, res_names: list[str] | tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """One repetition on one data set, seeded by (seed, data set, rep): a held-out reference of --n-ref pool rows
    (standardised by its own mean and sd, as stage 7 does), `windows` in-distribution windows of --n rows drawn
    from the rest of the pool (without replacement within a window: i.i.d. windows), and per drift type and
    fraction a change hour tau (uniform, so that --follow windows follow it) with --follow windows that have
    round(f n) drifted rows. Every window's statistics `names`; the stage's RBF test (MMD^2 and p-value, nan where
    not run) on the first `rbf_null` in-distribution windows and, with `rbf_drift`, on the drifted windows up to
    its first alarm (p < 0.05) in each drifted stream. With `res_names` the features carry the log residual as a
    17th column (features(residual=True)): `names` read the 16 PCA columns, the residual statistics
    (bench.monitoring_stats.residual_values) all 17, appended after them. The draws do not depend on the
    features: the same seed gives the same rows with or without the residual."""
    from bench.monitoring_stats import RefCache, residual_values, window_values

    rng = np.random.default_rng([a["seed"], ds, rep])
    pool = feats["pool"]
    ref_idx = rng.choice(len(pool), a["n_ref"], replace=False)
    traffic = np.delete(np.arange(len(pool)), ref_idx)
    mu, sd = pool[ref_idx].mean(0), pool[ref_idx].std(0) + 1e-9
    z = {k: (v - mu) / sd for k, v in feats.items()}
    rc = RefCache(z["pool"][ref_idx][:, :N_FEATURES], a["n"], a["permutations"])
    ref17 = z["pool"][ref_idx]
    n, T, F, fr = a["n"], a["windows"], a["follow"], a["fractions"]

    def window(kind: str | None, f: float) -> np.ndarray:
        k = 0 if kind is None else int(round(f * n))
        rows = z["pool"][rng.choice(traffic, n - k, replace=False)]
        return rows if k == 0 else np.concatenate([rows, z[kind][rng.choice(len(z[kind]), k, replace=False)]])

    def one(kind: str | None, f: float, rbf: bool, check: bool = False) -> tuple[np.ndarray, np.ndarray]:
        W17 = window(kind, f)
        W = W17[:, :N_FEATURES]
        v, r = window_values(rc, W, names, rbf)
        if res_names:
            v = np.concatenate([v, residual_values(ref17, W17, res_names)])
        if check and "kl_k20" in names:  # the bench's fast path is the stage's function
            from qlife.methods.window_stats import knn_divergence

            want = knn_divergence(rc.ref, W, 20)
            got = W.shape[1] * v[names.index("kl_k20")] + np.log(len(rc.ref) / (len(W) - 1))
            assert np.isclose(got, want, rtol=1e-9, atol=1e-9), (got, want)
        return v, (np.array(r[:2]) if r else np.full(2, np.nan))

    null = [one(None, 0.0, t < rbf_null, t == 0) for t in range(T)]
    taus = rng.integers(0, T - F + 1, (len(DRIFTS), len(fr)))
    drifted = []
    for kind in DRIFTS:
        drifted.append([])
        for f in fr:
            seen_alarm, cells = False, []
            for _ in range(F):  # the RBF test runs until its first alarm: the delay is all it is read for
                cells.append(one(kind, f, rbf_drift and not seen_alarm))
                seen_alarm = seen_alarm or bool(cells[-1][1][1] < 0.05)
            drifted[-1].append(cells)
    return {"null": np.array([x[0] for x in null]), "null_rbf": np.array([x[1] for x in null]), "taus": taus,
            "drifted": np.array([[[x[0] for x in c] for c in k] for k in drifted]),
            "drifted_rbf": np.array([[[x[1] for x in c] for c in k] for k in drifted])}


def simulate_windows(a: dict, part: str, names: list[str], rbf_null: int, rbf_drift: bool,
                     res_names: list[str] | tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every repetition's window statistics on both data sets, one process, one BLAS thread."""
    from threadpoolctl import threadpool_limits

    feats = features(residual=bool(res_names))
    out: dict[str, list] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        for ds, name in enumerate(DATASETS):
            for rep in range(a["reps"]):
                r = stream_job(feats[name], ds, rep, a, names, rbf_null, rbf_drift, res_names)
                for k, v in r.items():
                    out.setdefault(k, []).append(v)
                print(f"{part} {name} rep {rep}: {time.perf_counter() - t0:.0f} s wall, "
                      f"{time.process_time() - c0:.0f} s cpu", flush=True)
    w = {k: np.stack(v).reshape((len(DATASETS), a["reps"]) + np.shape(v[0])) for k, v in out.items()}
    w["wall_s"], w["cpu_s"] = np.array(time.perf_counter() - t0), np.array(time.process_time() - c0)
    return w


def drift_streams(w: dict[str, np.ndarray], ds: int, i: int, j: int, col: int | list[int]) -> np.ndarray:
    """(reps, windows) streams of statistic `col` ((reps, windows, len(col)) for a list of them): the
    in-distribution stream with its windows tau .. tau + follow - 1 replaced by the drifted ones (what follows them
    never matters: only alarms from tau to tau + follow - 1 are read; false alarms before tau restart the
    detector)."""
    null, drifted = w["null"][ds][..., col], w["drifted"][ds][:, i, j][..., col]
    out = null.copy()
    for r, tau in enumerate(w["taus"][ds][:, i, j]):
        out[r, tau:tau + drifted.shape[1]] = drifted[r]
    return out


def delays(alarms: np.ndarray, taus: np.ndarray, follow: int) -> np.ndarray:
    """Windows from the change to the first alarm at or after it (1: the first drifted window), inf: none."""
    out = np.full(len(taus), np.inf)
    for r, tau in enumerate(taus):
        hit = np.flatnonzero(alarms[r, tau:tau + follow])
        if hit.size:
            out[r] = hit[0] + 1
    return out


def detector(settings: dict | None, values: np.ndarray, seed: int, combine: str = "bag") -> np.ndarray:
    """(reps, T) alarms of the conformal e-detector on each stream (its own tie-breaking draws), restarted with
    its history kept after every alarm (a dismissed false alarm), as bench/sequential.py does. values (reps, T,
    c), several statistics per window: combine "bag", one detector on their combined conformal p-value
    (qlife.methods.sequential: each window's largest rank among the bag's, ranked); "any", c detectors, one per
    statistic, each at 1/c of the false-alarm rate (a union bound), alarming when any of them does."""
    from qlife.methods.sequential import DEFAULTS, simulate

    if values.ndim == 3 and combine == "any":
        c = values.shape[2]
        rate = dict(settings or {}).get("false_alarms_per_period", DEFAULTS["false_alarms_per_period"])
        split = {**(settings or {}), "false_alarms_per_period": rate / c}
        out = np.zeros(values.shape[:2], dtype=bool)
        for j in range(c):
            ties = 1.0 - np.random.default_rng([seed, 34] + ([j] if j else [])).random(values.shape[:2])
            out |= simulate(split, values[..., j], ties=ties)["alarms"]
        return out
    ties = 1.0 - np.random.default_rng([seed, 34]).random(values.shape[:2])
    return simulate(settings, values, ties=ties)["alarms"]


def delay_summary(d: np.ndarray, taus: np.ndarray, follow: int) -> dict:
    late = taus >= 48
    return {"median": _num(np.quantile(d, 0.5, method="inverted_cdf"), follow),
            "p90": _num(np.quantile(d, 0.9, method="inverted_cdf"), follow),
            "within_6": float((d <= GOAL_DELAY).mean()), "detected_within_follow": float(np.isfinite(d).mean()),
            "within_6_if_change_after_hour_48": float((d[late] <= GOAL_DELAY).mean()) if late.any() else None,
            "changes_before_hour_48": int((~late).sum())}


def fa_summary(fa: np.ndarray) -> dict:
    return {"mean": float(fa.mean()), "median": float(np.median(fa)), "max": float(fa.max()),
            "share_0": float((fa == 0).mean()), "share_at_most_1": float((fa <= 1).mean())}


def row(w: dict[str, np.ndarray], a: dict, ds: int, col: int | list[int], settings: dict | None,
        combine: str = "bag") -> dict:
    """False alarms and delays of the conformal e-detector with `settings` on statistic `col`, data set ds (a
    list of columns: several statistics per window, `combine`d as `detector` says)."""
    T, F, seed = w["null"].shape[2], a["follow"], a["seed"]
    fa = detector(settings, w["null"][ds][..., col], seed, combine).sum(1) * 720 / T
    out = {"false_alarms_per_30_days": fa_summary(fa), "goal_at_most_1_in_95pct": bool((fa <= 1).mean() >= 0.95),
           "delay": {}}
    for i, kind in enumerate(DRIFTS):
        for j, f in enumerate(a["fractions"]):
            al = detector(settings, drift_streams(w, ds, i, j, col), seed + 1 + 10 * i + j, combine)
            out["delay"][f"{kind} {f:g}"] = delay_summary(delays(al, w["taus"][ds][:, i, j], F),
                                                          w["taus"][ds][:, i, j], F)
    out["goal_within_6_at_10pct_in_90pct"] = {k: bool(out["delay"][f"{k} 0.1"]["within_6"] >= 0.9) for k in DRIFTS}
    return out


def rbf_row(w: dict[str, np.ndarray], a: dict, ds: int) -> dict:
    """The per-window RBF test at alpha 0.05 (stage 7 today) on the same streams: false alarms per 30 days
    extrapolated from the in-distribution windows it ran on (720 x the per-window rate of each repetition), the
    delay to its first alarm at or after the change."""
    p = w["null_rbf"][ds][..., 1]
    ran = np.isfinite(p[0])
    rate = (p[:, ran] < 0.05).mean(1)
    fa = rate * 720
    out = {"false_alarms_per_30_days": {**fa_summary(fa), "extrapolated_from_windows_per_rep": int(ran.sum())},
           "per_window_false_alarm_rate": float(rate.mean()),
           "per_window_rate_sd_across_references": float(rate.std(ddof=1)),
           "goal_at_most_1_in_95pct": bool((fa <= 1).mean() >= 0.95), "delay": {}}
    for i, kind in enumerate(DRIFTS):
        for j, f in enumerate(a["fractions"]):
            al = w["drifted_rbf"][ds][:, i, j, :, 1] < 0.05  # nan (not run after the first alarm) reads False
            d = np.array([np.flatnonzero(x)[0] + 1 if x.any() else np.inf for x in al])
            out["delay"][f"{kind} {f:g}"] = {**delay_summary(d, w["taus"][ds][:, i, j], a["follow"]),
                                             "power_first_drifted_window": float(al[:, 0].mean())}
    out["goal_within_6_at_10pct_in_90pct"] = {k: bool(out["delay"][f"{k} 0.1"]["within_6"] >= 0.9) for k in DRIFTS}
    return out


def _num(x: float, follow: int) -> float | str:
    return f"> {follow}" if not np.isfinite(x) else float(x)


def signal(w: dict[str, np.ndarray], a: dict, ds: int, col: int) -> dict:
    """How far drift moves each drifted window's statistic among the same repetition's in-distribution windows,
    as the normal score of its rank (what the conformal detector's calibrators read; capped near 3.2 by the 720
    null windows): the median over repetitions of the mean over the drifted windows, per drift and fraction."""
    from bench.monitoring_stats import rank_z

    out = {}
    for i, kind in enumerate(DRIFTS):
        for j, f in enumerate(a["fractions"]):
            z = [rank_z(w["null"][ds, r, :, col], w["drifted"][ds, r, i, j, :, col]).mean()
                 for r in range(w["null"].shape[1])]
            out[f"{kind} {f:g}"] = float(np.median(z))
    return out


TUNE = {"seed": 1, "reps": 10, "windows": 300, "follow": 24, "n": 200, "n_ref": 600, "permutations": 200,
        "fractions": [0.05, 0.1, 0.2]}


def tune_windows(names: list[str] | None = None, part: str = "tune") -> dict[str, np.ndarray]:
    """The tuning streams (seed 1: references and windows disjoint in seed from the evaluation's seed 0): every
    candidate statistic, no RBF test (cached)."""
    from bench.monitoring_stats import NAMES

    path = Path(str(WINDOW_CACHE).format(part=part))
    if path.exists():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    w = simulate_windows(TUNE, part, list(names or NAMES), 0, False)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **w)
    return w


SETTINGS = {  # detector settings compared on the tuning streams (qlife.methods.sequential)
    "rate 0.1, shifts 1,2,3 (default)": {},
    "rate 0.2, shifts 1,2,3": {"false_alarms_per_period": 0.2},
    "rate 0.1, shifts 2,3": {"shifts": [2.0, 3.0]},
    "rate 0.2, shifts 2,3": {"false_alarms_per_period": 0.2, "shifts": [2.0, 3.0]},
}


def tune_report(w: dict[str, np.ndarray]) -> dict:
    """Per candidate statistic: its signal (bench.monitoring.signal) and the detector's share within 6 windows at
    each drift on the tuning streams, per data set, under each of SETTINGS."""
    from bench.monitoring_stats import NAMES

    out = {}
    for c, name in enumerate(NAMES):
        out[name] = {}
        for ds, d in enumerate(DATASETS):
            cell = {"signal": signal(w, TUNE, ds, c), "within_6": {}}
            for sname, st in SETTINGS.items():
                r = row(w, TUNE, ds, c, st)
                cell["within_6"][sname] = {k: v["within_6"] for k, v in r["delay"].items()}
                cell["within_6"][sname]["false_alarms_per_30_days"] = r["false_alarms_per_30_days"]["mean"]
            out[name][d] = cell
    return out


EVAL_NAMES = ["kl_k20", "mmd2_s1", "mmd2_s0.25", "knn2s_k40"]  # the statistic adopted before the residual first
# the stage's (monitor.stream.statistic new_words+residual_top, min_docs 2): the residual's choice (RES_RULE) with
# the lexical statistic chosen by LEX_RULE, one combined conformal p-value
ADOPTED = "res_top+nw_m2"
RECOMMENDED = "rate 0.1, shifts 1,2,3 (sequential.DEFAULTS; recommended)"
EVAL_SETTINGS = {RECOMMENDED: {}, "rate 0.2, shifts 1,2,3": {"false_alarms_per_period": 0.2}}
LABELS = {
    "kl_k20": "kNN divergence, k = 20 (qlife.methods.window_stats.knn_divergence; adopted before the residual)",
    "mmd2_s1": "RBF MMD^2, bandwidth = the reference's median distance (~ the stage's statistic)",
    "mmd2_s0.25": "RBF MMD^2, bandwidth = 1/4 of the reference's median distance",
    "knn2s_k40": "kNN two-sample count, k = 40",
}


def eval_part(a: dict) -> str:
    """The evaluation streams' cache name: `eval` for the full run (100 repetitions of 720 windows, seed 0), a
    name of its own for any other (--quick, --reps 20: they never overwrite the full run's windows)."""
    full = (a["reps"], a["windows"], a["seed"], a["rbf_null"]) == (100, 720, 0, 48) and not a["quick"]
    return "eval" if full else f"eval_{a['reps']}x{a['windows']}_s{a['seed']}_rbf{a['rbf_null']}"


def eval_windows(a: dict) -> dict[str, np.ndarray]:
    path = Path(str(WINDOW_CACHE).format(part=eval_part(a)))
    if a["from_cache"] and path.exists():
        z = np.load(path)
        return {k: z[k] for k in z.files}
    w = simulate_windows(a, "eval", EVAL_NAMES, a["rbf_null"], True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **w)
    return w


def residual_windows(a: dict, part: str, base: dict[str, np.ndarray], base_names: list[str],
                     use_cache: bool = True) -> dict[str, np.ndarray]:
    """`base` with the residual statistics (bench.monitoring_stats.RES_NAMES) appended as columns, computed in a
    second pass over the same draws (the same seed and sizes: the rows drawn never depend on the features) with the
    log residual as a 17th column, no RBF test; cached in bench/.cache/monitoring_windows_{part}_res.npz. The pass
    recomputes kl_k20 on the 16 columns, which must equal base's (and the change hours too): the same windows."""
    from bench.monitoring_stats import RES_NAMES

    names = ["kl_k20", *RES_NAMES]
    path = Path(str(WINDOW_CACHE).format(part=f"{part}_res"))
    r = None
    if use_cache and path.exists():
        z = np.load(path)
        if list(z["names"]) == names and z["null"].shape[:3] == base["null"].shape[:3]:
            r = {k: z[k] for k in z.files}
    if r is None:
        r = simulate_windows(a, f"{part}_res", ["kl_k20"], 0, False, RES_NAMES)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, names=np.array(names), **r)
    k = base_names.index("kl_k20")
    same = (np.array_equal(r["taus"], base["taus"]) and np.allclose(r["null"][..., 0], base["null"][..., k])
            and np.allclose(r["drifted"][..., 0], base["drifted"][..., k]))
    if not same:
        raise RuntimeError(f"{path}: the residual pass's windows are not {part}'s (delete it and rerun)")
    out = dict(base)
    for key in ("null", "drifted"):
        out[key] = np.concatenate([base[key], r[key][..., 1:]], axis=-1)
    out["res_wall_s"], out["res_cpu_s"] = r["wall_s"], r["cpu_s"]
    return out


TUNE_RES = {**TUNE, "reps": 40, "windows": 720}  # the residual's tuning streams: seed 1, as long as the evaluation's
RES_CANDIDATES: dict[str, tuple[list[str], str]] = {  # name -> (statistics, how several are combined)
    "kl_k20": (["kl_k20"], "bag"),
    **{n: ([n], "bag") for n in ("res_mean", "res_top", "res_ks", "kl_k20_res_w1", "kl_k20_res_w2",
                                 "kl_k20_res_w4")},
    "kl_k20+res_top": (["kl_k20", "res_top"], "bag"),
    "kl_k20+res_mean": (["kl_k20", "res_mean"], "bag"),
    "kl_k20+res_ks": (["kl_k20", "res_ks"], "bag"),
    "kl_k20+res_top+res_mean": (["kl_k20", "res_top", "res_mean"], "bag"),
    "kl_k20|res_top": (["kl_k20", "res_top"], "any"),
}
RES_LABELS = {
    "res_mean": "the window's mean log residual",
    "res_top": f"the mean of the window's {20} largest log residuals (bench.monitoring_stats.residual_values)",
    "res_ks": "one-sided KS of the window's log residuals against the reference's",
    "kl_k20_res_w1": "kNN divergence (k = 20) on the 16 columns + the log residual",
    "kl_k20_res_w2": "kNN divergence (k = 20) on the 16 columns + 2 x the log residual",
    "kl_k20_res_w4": "kNN divergence (k = 20) on the 16 columns + 4 x the log residual",
    "+": "one detector on the statistics' combined conformal p-value (qlife.methods.sequential: each window's "
         "largest rank among the bag's)",
    "|": "one detector per statistic at half the false-alarm rate, alarming when either does",
}
RES_RULE = ("on the residual's tuning streams (seed 1, 40 repetitions of 720 windows, the default detector "
            "settings): among the candidates with at most one false alarm in 30 days in at least 95% of the "
            "repetitions of both data sets, the largest mean share within 6 windows at 10% drift over the four "
            "cells (SST-2, generator x new topic, new vocabulary); near ties (within 0.02) go to a candidate that "
            "keeps the kNN divergence (it also reads density changes inside the subspace, which the residual "
            "misses), then to fewer statistics")


def residual_tune_windows() -> dict[str, np.ndarray]:
    """The residual's tuning streams (TUNE_RES: seed 1, 40 repetitions of 720 windows; kl_k20 and RES_NAMES;
    cached in bench/.cache/monitoring_windows_tune_res720.npz)."""
    from bench.monitoring_stats import RES_NAMES

    names = ["kl_k20", *RES_NAMES]
    path = Path(str(WINDOW_CACHE).format(part="tune_res720"))
    if path.exists():
        z = np.load(path)
        if list(z["names"]) == names:
            return {k: z[k] for k in z.files if k != "names"}
    w = simulate_windows(TUNE_RES, "tune_res720", ["kl_k20"], 0, False, RES_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array(names), **w)
    return w


def res_columns(names: list[str], candidate: str) -> tuple[int | list[int], str]:
    stats, combine = RES_CANDIDATES[candidate]
    cols = [names.index(x) for x in stats]
    return (cols[0] if len(cols) == 1 else cols), combine


def residual_tuning(rtw: dict[str, np.ndarray]) -> dict:
    """Every residual candidate on the residual's tuning streams at the default settings: false alarms, shares
    within 6 windows, the rank signal of single statistics; the choice by RES_RULE."""
    from bench.monitoring_stats import RES_NAMES

    names = ["kl_k20", *RES_NAMES]
    out: dict = {"config": {**TUNE_RES, "note": "seed 1, as the statistic's tuning streams; the evaluation's seed "
                            "(0) was not looked at before the choice"}, "rule": RES_RULE, "candidates": {}}
    for cand in RES_CANDIDATES:
        col, combine = res_columns(names, cand)
        cell = {}
        for ds, d in enumerate(DATASETS):
            r = row(rtw, TUNE_RES, ds, col, {}, combine)
            cell[d] = {"false_alarms_at_most_1": r["false_alarms_per_30_days"]["share_at_most_1"],
                       "within_6": {k: v["within_6"] for k, v in r["delay"].items()}}
            if isinstance(col, int):
                cell[d]["signal_rank_z"] = signal(rtw, TUNE_RES, ds, col)
        cell["score"] = float(np.mean([cell[d]["within_6"][f"{k} 0.1"] for d in DATASETS for k in DRIFTS]))
        cell["false_alarm_goal"] = all(cell[d]["false_alarms_at_most_1"] >= 0.95 for d in DATASETS)
        out["candidates"][cand] = cell
    ok = {c: v for c, v in out["candidates"].items() if v["false_alarm_goal"]}
    best = max(v["score"] for v in ok.values())
    near = [c for c, v in ok.items() if v["score"] >= best - 0.02]
    out["chosen"] = min(near, key=lambda c: ("kl_k20" not in RES_CANDIDATES[c][0], len(RES_CANDIDATES[c][0]),
                                             -ok[c]["score"]))
    return out


LEX_RULE = ("on the residual's tuning streams (seed 1, 40 repetitions of 720 windows, the default detector "
            "settings) with the lexical statistics (bench.monitoring_lexical) computed from the same windows' texts: "
            "among the lexical statistics that keep the false-alarm goal (at most one in 30 days in at least 95% of "
            "the repetitions of both data sets) alone and combined with res_top, the one whose combination with "
            "res_top has the largest mean share within 6 windows at 10% drift over the four cells; near ties (within "
            "0.02) go to the larger mean share at 10% new vocabulary of the statistic alone, then to the smaller "
            "min_docs")


def lexical_windows(a: dict, part: str, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`base` (a feature pass's windows of the same seed and sizes) with the lexical statistics
    (bench.monitoring_lexical.LEX_NAMES) appended as columns, computed from the texts of the same draws; cached in
    bench/.cache/monitoring_windows_{part}_lex.npz. The replayed change hours must equal base's (the same
    windows)."""
    import json

    from bench.monitoring_lexical import LEX_NAMES, lexical_pass, vocabulary_texts

    path = Path(str(WINDOW_CACHE).format(part=f"{part}_lex"))
    r = None
    if path.exists():
        z = np.load(path)
        if list(z["names"]) == LEX_NAMES and z["null"].shape[:3] == base["null"].shape[:3]:
            r = {k: z[k] for k in z.files if k != "names"}
    if r is None:
        tx = texts()
        with (SST2 / "train.jsonl").open() as f:
            sst = [json.loads(line)["text"] for line in f]
        order = np.random.default_rng(0).permutation(len(sst))[SST2_FIT + SST2_POOL + SST2_CHAT:]  # texts' order
        pools = {d: {"pool": tx[f"{d}_pool"], **{k: tx[f"{d}_{k}"] for k in DRIFTS}} for d in DATASETS}
        r = lexical_pass(a, base["null"].shape[1], pools, vocabulary_texts(tx, [sst[i] for i in order]))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, names=np.array(LEX_NAMES), **r)
    if not np.array_equal(r["taus"], base["taus"]):
        raise RuntimeError(f"{path}: the replayed draws are not {part}'s (delete it and rerun)")
    out = dict(base)
    for key in ("null", "drifted"):
        out[key] = np.concatenate([base[key], r[key]], axis=-1)
    out["lex_wall_s"], out["lex_cpu_s"], out["lex_vocabulary_words"] = r["wall_s"], r["cpu_s"], r["vocabulary_words"]
    return out


def lex_candidates() -> dict[str, tuple[list[str], str]]:
    """Each lexical statistic alone and combined with res_top (one detector on the combined conformal p-value)."""
    from bench.monitoring_lexical import LEX_NAMES

    return {**{n: ([n], "bag") for n in LEX_NAMES}, **{f"res_top+{n}": (["res_top", n], "bag") for n in LEX_NAMES}}


def lexical_tuning(rtw: dict[str, np.ndarray]) -> dict:
    """Every lexical candidate (alone, with res_top) on the residual's tuning streams at the default settings: false
    alarms, shares within 6 windows at every drift, the rank signal; the choice by LEX_RULE."""
    from bench.monitoring_lexical import LEX_NAMES, MIN_DOCS
    from bench.monitoring_stats import RES_NAMES

    names = ["kl_k20", *RES_NAMES, *LEX_NAMES]
    out: dict = {"config": {**TUNE_RES, "note": "seed 1, as the statistic's tuning streams; the evaluation's seed "
                            "(0) was not looked at before the choice"}, "rule": LEX_RULE, "candidates": {}}
    for cand, (stats, combine) in lex_candidates().items():
        cols = [names.index(x) for x in stats]
        col = cols[0] if len(cols) == 1 else cols
        cell: dict = {}
        for ds, d in enumerate(DATASETS):
            r = row(rtw, TUNE_RES, ds, col, {}, combine)
            cell[d] = {"false_alarms_at_most_1": r["false_alarms_per_30_days"]["share_at_most_1"],
                       "within_6": {k: v["within_6"] for k, v in r["delay"].items()}}
            if isinstance(col, int):
                cell[d]["signal_rank_z"] = signal(rtw, TUNE_RES, ds, col)
        cell["score"] = float(np.mean([cell[d]["within_6"][f"{k} 0.1"] for d in DATASETS for k in DRIFTS]))
        cell["score_vocab"] = float(np.mean([cell[d]["within_6"]["vocab 0.1"] for d in DATASETS]))
        cell["false_alarm_goal"] = all(cell[d]["false_alarms_at_most_1"] >= 0.95 for d in DATASETS)
        out["candidates"][cand] = cell
    c = out["candidates"]
    ok = [n for n in LEX_NAMES if c[n]["false_alarm_goal"] and c[f"res_top+{n}"]["false_alarm_goal"]]
    best = max(c[f"res_top+{n}"]["score"] for n in ok)
    near = [n for n in ok if c[f"res_top+{n}"]["score"] >= best - 0.02]
    out["chosen"] = min(near, key=lambda n: (-c[n]["score_vocab"], MIN_DOCS.get(n, 0)))
    out["combination"] = f"res_top+{out['chosen']}"
    return out


def main() -> None:
    import argparse

    from bench.common import RESULTS, environment
    from bench.monitoring_lexical import LEX_LABELS, LEX_NAMES, VOCAB_EXTRA
    from bench.monitoring_stats import NAMES, RES_NAMES
    from qlife.methods.sequential import describe, threshold

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--windows", type=int, default=720)
    p.add_argument("--follow", type=int, default=24)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--n-ref", type=int, default=600)
    p.add_argument("--permutations", type=int, default=200)
    p.add_argument("--rbf-null", type=int, default=48)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-cache", action="store_true")
    p.add_argument("--quick", action="store_true", help="3 repetitions of 240 windows: a smoke run (its windows "
                   "and JSON in bench/.cache: the full run's are never overwritten)")
    a = vars(p.parse_args())
    if a["quick"]:
        a.update(reps=3, windows=240, rbf_null=24)
    if a["seed"] == TUNE["seed"]:
        raise SystemExit(f"--seed {TUNE['seed']} is the tuning streams' seed: pick another")
    t0, c0 = time.perf_counter(), time.process_time()
    tw = tune_windows()
    w = eval_windows(a)
    rtw = residual_tune_windows()
    res_tuning = residual_tuning(rtw)
    w = residual_windows(a, eval_part(a), w, EVAL_NAMES, use_cache=a["from_cache"])
    print(f"residual: chosen on the tuning streams: {res_tuning['chosen']}", flush=True)
    rtw = lexical_windows(TUNE_RES, "tune_res720", rtw)
    lex_tuning = lexical_tuning(rtw)
    w = lexical_windows(a, eval_part(a), w)
    print(f"lexical: chosen on the tuning streams: {lex_tuning['chosen']} ({lex_tuning['combination']})", flush=True)
    tuning = {"config": {**TUNE, "note": "seed 1 (the evaluation uses --seed, 0 by default): other references, "
                         "windows and change hours"},
              "rule": "adopt the statistic with the largest smaller-of-the-two-data-sets median rank score at 10% "
                      "new-topic drift; near ties (within 0.05) go to the larger score at 10% new vocabulary",
              "signal_rank_z": {}, "within_6": {}}
    for c, name in enumerate(NAMES):
        tuning["signal_rank_z"][name] = {d: signal(tw, TUNE, ds, c) for ds, d in enumerate(DATASETS)}
    for name in ["mmd2_s1", "mmd2_s0.25", "knn2s_k40", "knn2s_k10_top", "kl_k10", "kl_k20", "kl_k30",
                 "klavg_k30", "kl_k5_top"]:
        c = NAMES.index(name)
        tuning["within_6"][name] = {
            sname: {d: {k: v["within_6"] for k, v in row(tw, TUNE, ds, c, st)["delay"].items()}
                    for ds, d in enumerate(DATASETS)} for sname, st in SETTINGS.items()}
    result = {"bench": "monitoring", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(),
              "config": {**a, "n_features": N_FEATURES, "model": MODEL, "max_length": MAX_LENGTH,
                         "pools": {"sst2": {"pca_fit": SST2_FIT, "traffic_and_reference": SST2_POOL,
                                            "new_topic": GEN_DRIFT, "new_vocabulary": SST2_CHAT},
                                   "gen": {"pca_fit": GEN_FIT, "traffic_and_reference": GEN_POOL,
                                           "new_topic": GEN_DRIFT, "new_vocabulary": GEN_DRIFT}},
                         "window_wall_s": float(w["wall_s"]), "window_cpu_s": float(w["cpu_s"]),
                         "tuning_window_cpu_s": float(tw["cpu_s"]),
                         "residual_window_wall_s": float(w["res_wall_s"]),
                         "residual_window_cpu_s": float(w["res_cpu_s"]),
                         "residual_tuning_window_cpu_s": float(rtw["cpu_s"]),
                         "lexical_window_wall_s": float(w["lex_wall_s"]), "lexical_window_cpu_s": float(w["lex_cpu_s"]),
                         "lexical_tuning_window_cpu_s": float(rtw["lex_cpu_s"])},
              "detectors": {}, "tuning": tuning, "adopted": ADOPTED,
              "residual": {"what": "the projection's residual (qlife.methods.projection.Residual: the log off-"
                                   "subspace norm of the unit-normalised embedding against a 16-component PCA of the "
                                   "unit-normalised PCA-fit rows) as a 17th column, standardised by the reference; "
                                   "its window statistics computed in a second pass over the same windows",
                           "labels": RES_LABELS, "tuning": res_tuning, "chosen": res_tuning["chosen"]},
              "lexical": {"what": "new vocabulary read from the window's texts (bench.monitoring_lexical; "
                                  "qlife.methods.window_stats.words: lower-cased, \\w+) against a fixed vocabulary",
                          "vocabulary": {"rows": {d: f"the {d} PCA-fit rows + {VOCAB_EXTRA[d]:,} further training-like "
                                                     "rows outside every pool (never a reference or window row)"
                                                  for d in DATASETS},
                                         "words": {d: int(x) for d, x in zip(DATASETS, w["lex_vocabulary_words"])}},
                          "labels": {**LEX_LABELS, "res_top+": RES_LABELS["+"]}, "tuning": lex_tuning,
                          "chosen": lex_tuning["chosen"], "combination": lex_tuning["combination"]}}
    for name, st in EVAL_SETTINGS.items():
        c = threshold(st)
        result["detectors"][name] = {"settings": st, "threshold": c, "meaning": describe(st, c)}
    for ds, d in enumerate(DATASETS):
        cell = {"per_window_rbf_0.05": rbf_row(w, a, ds), "conformal": {}, "signal_rank_z": {}}
        for c, name in enumerate(EVAL_NAMES):
            cell["signal_rank_z"][name] = signal(w, a, ds, c)
            cell["conformal"][name] = {"label": LABELS[name], **{
                sname: row(w, a, ds, c, st) for sname, st in EVAL_SETTINGS.items()}}
        cell["residual"] = {}
        for cand in RES_CANDIDATES:
            col, combine = res_columns([*EVAL_NAMES, *RES_NAMES], cand)
            cell["residual"][cand] = {RECOMMENDED: row(w, a, ds, col, {}, combine)}
            if isinstance(col, int):
                cell["residual"][cand]["signal_rank_z"] = signal(w, a, ds, col)
        cell["lexical"] = {}
        for cand, (stats, combine) in lex_candidates().items():
            cols = [[*EVAL_NAMES, *RES_NAMES, *LEX_NAMES].index(x) for x in stats]
            col = cols[0] if len(cols) == 1 else cols
            cell["lexical"][cand] = {RECOMMENDED: row(w, a, ds, col, {}, combine)}
            if isinstance(col, int):
                cell["lexical"][cand]["signal_rank_z"] = signal(w, a, ds, col)
        stage = np.isfinite(w["null_rbf"][ds][..., 0])
        cell["mmd2_s1_vs_stage_mmd2_spearman"] = _spearman(w["null_rbf"][ds][..., 0][stage],
                                                            w["null"][ds][..., EVAL_NAMES.index("mmd2_s1")][stage])
        result[d] = cell
    result["goals"] = goals(result)
    result["config"]["this_run_wall_s"] = time.perf_counter() - t0
    result["config"]["this_run_cpu_s"] = time.process_time() - c0
    result["notes"] = notes(a, w)
    out = QUICK_OUT if a["quick"] or eval_part(a) != "eval" else RESULTS / "monitoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(result, a)
    print(f"wrote {out}")


def conformal_cell(r: dict, d: str, name: str) -> dict:
    """The conformal detector's row at the recommended settings for a statistic (EVAL_NAMES) or a residual
    candidate (RES_CANDIDATES)."""
    for part in ("conformal", "residual", "lexical"):
        if name in r[d].get(part, {}):
            return r[d][part][name][RECOMMENDED]
    raise KeyError(name)


def goals(r: dict) -> dict:
    """Issue 34's two goals for the adopted statistic at the recommended settings (first: the stage's), the kNN
    divergence without the residual, the residual candidate chosen on the tuning streams (when it is not the
    adopted one), and the per-window test."""
    out = {}
    chosen = r.get("residual", {}).get("chosen")
    for d in DATASETS:
        rows = [("conformal " + ADOPTED, conformal_cell(r, d, ADOPTED))]
        if ADOPTED != "kl_k20":
            rows.append(("conformal kl_k20 (without the residual)", conformal_cell(r, d, "kl_k20")))
        if chosen and chosen != ADOPTED:
            rows.append((f"conformal {chosen} (residual, chosen on the tuning streams)", conformal_cell(r, d, chosen)))
        lex = r.get("lexical", {})
        for name, what in ((lex.get("chosen"), "lexical, chosen on the tuning streams"),
                           (lex.get("combination"), "residual + lexical, one combined p-value"),
                           ("res_top", "the residual alone")):
            if name and name != ADOPTED and all(name != x[0].split(" ")[1] for x in rows):
                rows.append((f"conformal {name} ({what})", conformal_cell(r, d, name)))
        for label, x in (*rows, ("per-window RBF@0.05", r[d]["per_window_rbf_0.05"])):
            out[f"{d}: {label}"] = {
                "at_most_1_false_alarm_in_30_days": x["false_alarms_per_30_days"]["share_at_most_1"],
                "goal_95pct_met": x["goal_at_most_1_in_95pct"],
                **{f"within_6_at_10pct_{k}": x["delay"][f"{k} 0.1"]["within_6"] for k in DRIFTS},
                **{f"goal_90pct_met_{k}": x["goal_within_6_at_10pct_in_90pct"][k] for k in DRIFTS}}
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def notes(a: dict, w: dict[str, np.ndarray]) -> list[str]:
    return [
        f"{w['null'].shape[1]} repetitions per data set, {a['windows']} hourly in-distribution windows of {a['n']} "
        f"each against a reference of {a['n_ref']} held-out rows; per drift type and fraction a change at a uniform "
        f"random hour with {a['follow']} drifted windows after it (delays beyond {a['follow']} read '> "
        f"{a['follow']}')",
        "conformal detectors: qlife.methods.sequential.simulate on each stream, restarted with history kept after "
        "every alarm; false alarms counted on the in-distribution stream and scaled to 720 windows",
        f"per-window RBF at 0.05: the stage's test (median heuristic of the pooled sample, {a['permutations']} "
        "permutations, seed 0 for every window) on every drifted window and on the first "
        f"{a['rbf_null']} in-distribution windows of each repetition: its false alarms per 30 days are 720 x "
        "that repetition's per-window rate (an extrapolation; its share with at most one is therefore coarse). "
        "Shortcuts that keep its verdict: permutations stop once 10 of them reach the observed MMD^2 (then p > "
        "0.05 whatever the rest give), the kernel's exponentials in float32",
        "the conformal MMD^2 baseline uses the reference's median distance as bandwidth (fixed per reference) "
        "instead of the pooled sample's (which moves with the window); mmd2_s1_vs_stage_mmd2_spearman gives their "
        "rank agreement on the in-distribution windows where the stage's test ran",
        "settings: rate 0.2 per 720 windows was as fast or slightly faster on the tuning streams; on the "
        "evaluation streams it left 94% of the SST-2 repetitions with at most one false alarm (the bound "
        "P(two or more) <= 0.04 allows this by chance, but it is under the 95% goal) and detected 10% new topics "
        "within 6 windows no more often than the default 0.1, which keeps a margin: the default is recommended",
        "per-window RBF 'within 6' includes its false alarms: at 5% per window, 1 - 0.95^6 = 26% of streams alarm "
        "within 6 windows with no drift at all",
        "rank_z signal: the normal score of each drifted window's rank among the same repetition's in-distribution "
        "windows, averaged over the drifted windows, median over repetitions (capped near 3.2 with 720 windows, "
        "2.7 with the tuning's 300)",
    ]


def print_table(r: dict, a: dict) -> None:
    for d in DATASETS:
        print(f"== {d}")
        rb = r[d]["per_window_rbf_0.05"]
        cells = [("per-window RBF@0.05", rb)] + [
            (f"{n} [{s.split(',')[0]}]", r[d]["conformal"][n][s]) for n in EVAL_NAMES for s in EVAL_SETTINGS] + [
            (f"{n} [rate 0.1]", x[RECOMMENDED]) for n, x in r[d].get("residual", {}).items()] + [
            (f"{n} [rate 0.1]", x[RECOMMENDED]) for n, x in r[d].get("lexical", {}).items()]
        for label, x in cells:
            fa = x["false_alarms_per_30_days"]
            dl = "  ".join(f"{k}: {v['median']}/{v['within_6']:.2f}" for k, v in x["delay"].items())
            print(f"{label:32s} FA/30d {fa['mean']:6.2f} <=1 {fa['share_at_most_1']:.2f} | {dl}")


if __name__ == "__main__":
    main()
