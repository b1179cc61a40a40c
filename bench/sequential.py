"""The sequential drift alarm (qlife.methods.sequential) against per-window RBF at alpha 0.05, on real data.

    python -m bench.sequential [--reps 100] [--windows 720] [--n 200] [--n-ref 400] [--permutations 200]
                               [--follow 24] [--fractions 0.05 0.1 0.2] [--workers 2] [--from-cache]

Data: SST-2 (../shared/datasets/sst2, read in place). Features: TF-IDF (sublinear, min_df 2) + truncated SVD to 16
components, fitted on 10,000 train sentences that never enter a stream; the traffic pool is the other ~57,000
train rows (SST-2 phrases and sentences of movie reviews). Drift ("news"): documents of the project's generator
(qlife.data.generator.draw_docs: news sentences on other topics, with their own vocabulary) mixed into each window
at 5, 10 or 20%: a new topic and vocabulary in the traffic.
Per repetition (seeded by (--seed, rep)): a reference of --n-ref pool rows, standardised by its own mean and sd as
stage 7 does, held out of the traffic; a stream of --windows in-distribution windows of --n rows (30 days of hourly
windows by default); per drift fraction a change at a random hour tau (uniform over the stream, so that --follow
windows follow it) after which --follow windows have the drifted share. Every window is tested against the
reference by the project's own RBF MMD permutation test (qlife.methods.drift.rbf_mmd_test: median-heuristic
bandwidth of the pooled sample, --permutations permutations, the same permutation seed for every window as the
stage uses: 200 permutations for speed, a p-value floor of 1/201), which gives its MMD^2 and p-value.
Detectors on the same streams (DETECTORS):
  rbf@0.05 per window   the alarm p < 0.05 of every window (stage 7 today)
  conformal_mmd2 ...    qlife.methods.sequential on the windows' MMD^2, conformal evidence (the default), at 0.1
                        false alarms per 720 windows with the simulated threshold; the same with Doob's bound, at
                        0.3, and with only the power or only the normal-score calibrators
  conformal_p ...       the same on the permutation p-values (ranked: smaller = more drift)
  p_value ...           the windows' own p-values into the e-detector (not ranked: they share the reference)
False alarms: on the in-distribution stream, the detector restarted after every alarm (history kept: the alarm
was false), alarms counted per 30 days. Delay: on the stream with the change, the windows from the change to the
first alarm at or after it (1 = the first drifted window; false alarms before it restart the detector), "> follow"
when none came; also the share within 6 windows for changes after hour 48 (conformal evidence needs past windows).
Writes bench/results/sequential.json (window statistics cached in bench/.cache/sequential_windows.npz:
--from-cache re-runs the detectors only).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache" / "sequential_windows.npz"
OUT = RESULTS / "sequential.json"
FIT_ROWS = 10_000
N_FEATURES = 16
DRIFT_POOL = 3_000
GOAL_DELAY = 6  # windows: detection within 6 windows at 10% in >= 90% of repetitions (issue 34)


def features(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(traffic pool, drift pool) features: TF-IDF + SVD fitted on FIT_ROWS train sentences kept out of both."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from qlife.data.generator import draw_docs

    with (SST2 / "train.jsonl").open() as f:
        texts = [json.loads(line)["text"] for line in f]
    order = np.random.default_rng(seed).permutation(len(texts))
    fit, pool = [texts[i] for i in order[:FIT_ROWS]], [texts[i] for i in order[FIT_ROWS:]]
    vec = TfidfVectorizer(min_df=2, sublinear_tf=True).fit(fit)
    svd = TruncatedSVD(N_FEATURES, random_state=seed).fit(vec.transform(fit))
    news = [d["text"] for d in draw_docs(seed, DRIFT_POOL)]
    return svd.transform(vec.transform(pool)), svd.transform(vec.transform(news))


def rep_job(job: tuple) -> dict[str, np.ndarray]:
    """One repetition: the in-distribution stream's and each drift's windows, tested against one reference."""
    from threadpoolctl import threadpool_limits

    from qlife.methods.drift import rbf_mmd_test

    pool, drift, rep, a = job
    rng = np.random.default_rng([a["seed"], rep])
    ref_idx = rng.choice(len(pool), a["n_ref"], replace=False)
    traffic = np.delete(np.arange(len(pool)), ref_idx)  # the reference is held out of the traffic
    ref = pool[ref_idx]
    mu, sd = ref.mean(0), ref.std(0) + 1e-9

    def test(rows: np.ndarray) -> tuple[float, float]:
        r = rbf_mmd_test((ref - mu) / sd, (rows - mu) / sd, a["permutations"], seed=0, bandwidth_seed=0)
        return r.p_value, r.mmd2

    def window(f: float) -> np.ndarray:
        k = int(round(f * a["n"]))
        return np.concatenate([pool[rng.choice(traffic, a["n"] - k, replace=False)],
                               drift[rng.choice(len(drift), k, replace=False)]])

    with threadpool_limits(1):
        null = np.array([test(window(0.0)) for _ in range(a["windows"])])
        taus = rng.integers(0, a["windows"] - a["follow"] + 1, len(a["fractions"]))
        drifted = np.array([[test(window(f)) for _ in range(a["follow"])] for f in a["fractions"]])
    return {"null": null, "taus": taus, "drifted": drifted}


def simulate_windows(a: dict) -> dict[str, np.ndarray]:
    pool, drift = features(a["seed"])
    jobs = [(pool, drift, rep, a) for rep in range(a["reps"])]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a["workers"]) as ex:
        out = []
        for i, r in enumerate(ex.map(rep_job, jobs)):
            out.append(r)
            print(f"rep {i + 1}/{a['reps']}: {time.perf_counter() - t0:.0f} s", flush=True)
    return {"null": np.stack([r["null"] for r in out]), "taus": np.stack([r["taus"] for r in out]),
            "drifted": np.stack([r["drifted"] for r in out]), "wall_s": np.array(time.perf_counter() - t0)}


DETECTORS = {  # name -> (settings, column of the window statistics: 0 the p-value, 1 MMD^2); None: per window
    "rbf@0.05 per window": None,
    "conformal_mmd2 0.1 simulated (default)": ({}, 1),
    "conformal_mmd2 0.1 bound": ({"calibration": "bound"}, 1),
    "conformal_mmd2 0.2 simulated": ({"false_alarms_per_period": 0.2}, 1),
    "conformal_mmd2 0.1 simulated, power calibrators too": ({"kappas": [0.05, 0.2, 0.5]}, 1),
    "conformal_p 0.1 simulated": ({"larger_is_drift": False}, 0),
    "p_value 0.1 simulated": ({"evidence": "p_value"}, 0),
    "p_value 0.1 bound": ({"evidence": "p_value", "calibration": "bound"}, 0),
}


def alarms(name: str, values: np.ndarray, seed: int) -> np.ndarray:
    """(reps, T) alarms of a detector on streams of window values, restarted (history kept) after each alarm."""
    if DETECTORS[name] is None:
        return values[..., 0] < 0.05
    from qlife.methods.sequential import simulate

    settings, col = DETECTORS[name]
    ties = 1.0 - np.random.default_rng(seed).random(values.shape[:2])  # each stream its own tie-breaking draws
    return simulate(settings, values[..., col], ties=ties)["alarms"]


def summarise(w: dict[str, np.ndarray], a: dict) -> dict:
    from qlife.methods.sequential import describe, threshold

    reps, windows = w["null"].shape[:2]
    out = {}
    for name, spec in DETECTORS.items():
        fa = alarms(name, w["null"], a["seed"]).sum(1) * 720 / windows
        row = {"false_alarms_per_30_days": {
            "mean": float(fa.mean()), "median": float(np.median(fa)), "p95": float(np.percentile(fa, 95)),
            "max": float(fa.max()), "share_0": float((fa == 0).mean()), "share_at_most_1": float((fa <= 1).mean())},
            "goal_at_most_1_in_95pct": bool((fa <= 1).mean() >= 0.95), "delay": {}}
        if spec is not None:
            row["threshold"] = threshold(spec[0])
            row["meaning"] = describe(spec[0], row["threshold"])
        for j, f in enumerate(a["fractions"]):
            delays = []
            for rep in range(reps):
                tau = int(w["taus"][rep, j])
                stream = np.concatenate([w["null"][rep, :tau], w["drifted"][rep, j]])[None]
                hit = np.flatnonzero(alarms(name, stream, a["seed"] * 1000 + rep)[0, tau:])
                delays.append(hit[0] + 1 if hit.size else np.inf)
            d = np.array(delays, dtype=float)
            early = w["taus"][:, j] < 48
            row["delay"][f"{f:g}"] = {
                "median": _num(np.quantile(d, 0.5, method="inverted_cdf"), a["follow"]),
                "p90": _num(np.quantile(d, 0.9, method="inverted_cdf"), a["follow"]),
                "within_6": float((d <= GOAL_DELAY).mean()), "detected_within_follow": float(np.isfinite(d).mean()),
                "within_6_if_change_after_hour_48": float((d[~early] <= GOAL_DELAY).mean()) if (~early).any() else None,
                "changes_before_hour_48": int(early.sum())}
        if "0.1" in row["delay"]:
            row["goal_within_6_at_10pct_in_90pct"] = bool(row["delay"]["0.1"]["within_6"] >= 0.9)
        out[name] = row
    return out


def _num(x: float, follow: int) -> float | str:
    return f"> {follow}" if not np.isfinite(x) else float(x)


def signal(w: dict[str, np.ndarray], a: dict) -> dict:
    """How far drift moves a window's MMD^2, in standard deviations of the in-distribution windows' MMD^2 against
    the same reference (what conformal ranks see), per fraction: median and quartiles over the repetitions, and
    the delay it allows: an e-detector needs about log(c) / (d^2 / 2) windows (Lorden's bound for a Gaussian shift
    d, c ~ 2,800 at the defaults)."""
    null = w["null"][..., 1]
    mu, sd = null.mean(1, keepdims=True), null.std(1, ddof=1, keepdims=True)
    out = {}
    for j, f in enumerate(a["fractions"]):
        d = ((w["drifted"][:, j, :, 1] - mu) / sd).mean(1)
        q = np.percentile(d, [25, 50, 75])
        out[f"{f:g}"] = {"shift_sd_median": float(q[1]), "shift_sd_quartiles": [float(q[0]), float(q[2])],
                         "windows_needed_at_median_shift": float(np.log(2821) / (q[1] ** 2 / 2))}
    return out


def calibration(w: dict[str, np.ndarray]) -> dict:
    """The per-window test's false-alarm rate per reference: its spread across references against the binomial
    spread of 720 independent windows (a shared reference makes the windows' p-values dependent)."""
    rates = (w["null"][..., 0] < 0.05).mean(1)
    t = w["null"].shape[1]
    return {"per_window_false_alarm_rate": float(rates.mean()),
            "sd_across_references": float(rates.std(ddof=1)),
            "binomial_sd_if_independent": float(np.sqrt(0.05 * 0.95 / t)),
            "min": float(rates.min()), "max": float(rates.max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--windows", type=int, default=720)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--n-ref", type=int, default=400)
    p.add_argument("--permutations", type=int, default=200)
    p.add_argument("--follow", type=int, default=24)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-cache", action="store_true")
    a = vars(p.parse_args())
    if a["from_cache"]:
        z = np.load(CACHE, allow_pickle=False)
        w = {k: z[k] for k in z.files}
        a.update(json.loads(str(z["args"])), from_cache=True)
    else:
        w = simulate_windows(a)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, args=json.dumps({k: v for k, v in a.items() if k != "from_cache"}), **w)
    t0 = time.perf_counter()
    result = {"bench": "sequential", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(),
              "config": {**a, "alpha_per_window": 0.05, "features": f"TF-IDF + SVD-{N_FEATURES} fitted on "
                         f"{FIT_ROWS} held-out SST-2 train sentences", "drift": "news documents of "
                         "qlife.data.generator mixed into the window", "window_test": "qlife.methods.drift."
                         f"rbf_mmd_test, {a['permutations']} permutations (p-value floor "
                         f"{1 / (a['permutations'] + 1):.4f})", "windows_wall_s": float(w["wall_s"])},
              "calibration": calibration(w), "signal": signal(w, a), "detectors": summarise(w, a)}
    result["config"]["detectors_wall_s"] = time.perf_counter() - t0
    per_rep = float(w["wall_s"]) / len(w["null"])
    result["notes"] = [
        f"{len(w['null'])} repetitions: the window tests took {float(w['wall_s']):.0f} s on {a['workers']} workers "
        f"({per_rep:.0f} s per repetition of {a['windows'] + a['follow'] * len(a['fractions'])} windows on this "
        "machine's shared cores); 100 repetitions need --reps 100 and ~2.5x the time"
        if len(w["null"]) < 100 else f"{len(w['null'])} repetitions",
        f"{a['permutations']} permutations per window test for speed (the stage's default is more): the per-window "
        f"p-value floor is {1 / (a['permutations'] + 1):.4f}; the conformal detectors on MMD^2 do not use p-values",
        "drift: news documents (qlife.data.generator) mixed into SST-2 movie-review traffic at the given share, "
        "from a random hour on",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    for k, r in result["detectors"].items():
        fa = r["false_alarms_per_30_days"]
        d = "  ".join(f"{f}: med {x['median']} p90 {x['p90']} <=6 {x['within_6']:.2f}" for f, x in r["delay"].items())
        print(f"{k:55s} FA/30d mean {fa['mean']:6.2f} <=1 {fa['share_at_most_1']:.2f} | {d}")
    print(json.dumps(result["calibration"]))
    print(json.dumps(result["signal"]))


if __name__ == "__main__":
    main()
