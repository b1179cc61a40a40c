"""Calibration of stage 7's per-window drift tests: their false-alarm rate on in-distribution windows of real data.

    python -m bench.calibration [--draws 200] [--generator-draws 200] [--pool 10000] [--generator-pool 6000]
                                [--n 200] [--n-refs 600 300] [--fit-rows 2000] [--permutations 1000] [--quick]
                                [--datasets sst2 generator] [--from-cache] [--features pca+residual]
                                [--tests ...] [--regimes fitted held_out]

Data: SST-2 (../shared/datasets/sst2/train.jsonl, read in place): a seeded sample of --pool train rows, not
deduplicated; and the project's generator (qlife.data.generator.draw_docs(seed, --generator-pool)). Each pool is
embedded once by the pipeline's encoder (train.model with train.pooling, through qlife.models.load_encoder /
encode_texts; cached in bench/.cache/calibration_<dataset>_<pool>.npz).
Per draw (seeded by (--seed, dataset, draw)), four disjoint random row sets of the pool: a window W of --n rows,
a reference R of max(--n-refs) rows, O of --fit-rows - |R| rows and E of |R| rows. Two regimes, the same W and R:
  fitted    the PCA projection (qlife.methods.projection.fit_pca, encode.n_features components) is fitted on
            R + O (--fit-rows rows): the reference rows are rows the projection was fitted on, as the pipeline
            did until now (encode fitted on the train split, ~1,860 rows in the quick run, and monitor tested
            against a 600-row subsample of that split);
  held_out  the PCA is fitted on O + E (as many rows, none of them in R): the reference is a random sample
            held out of the fit and not deduplicated, the contract stage 7 is moving to (curate holds out a raw
            reference sample; encode projects it without fitting on it).
The window is never in the fit (live traffic is new). For each reference size in --n-refs (the first rows of R),
the projected reference and window are standardised by the reference's mean and sd, as stages/monitor.py does,
and tested through the stage's own code path: stages.monitor.WindowJob(mp, reference, svm_ref)(window), with
mp = qlife.params.Monitor() (the quick defaults: every test of monitor.tests, recorded in the JSON: rbf, ks,
rbf_tuned, quantum_fidelity, fuse, and where the params have them domain_classifier and rff; alpha 0.05;
monitor.seed 0: the same permutations for every window, as the stage uses) and --permutations permutations.
The one-class SVM scores WindowJob also computes do not enter any test's decision: only its RBF kernel is kept
(monitor.ocsvm.kernels = [rbf]) to save time.
Under both regimes W and R are disjoint random samples of the same pool, so every window is in-distribution;
in held_out, W and R are exchangeable given the projection, so an exact permutation test rejects at most alpha.
Features (--features, default monitor.features): `pca`, the projected columns only; `pca+residual`, the stage's
default, the log residual (qlife.methods.projection.Residual, fitted on the same rows as the projection) as a last
column, standardised with the rest, and WindowJob(..., residual=True). Tests (--tests): by default every test
either profile runs (the quick monitor.tests and the full profile's quantum_projected, fuse_quantum and
text_domain_classifier; the latter reads the rows' texts: WindowJob(..., reference_texts=...)((window, texts))).
Reported per dataset, regime, reference size and test: rejections at alpha / draws, the rate, its exact
(Clopper-Pearson) 95% interval, whether alpha lies inside it (the issue's check: "every per-window test's
false-alarm rate on in-distribution windows of SST-2 over at least 200 reference draws lies within the binomial
interval of alpha"), the central 95% range of rejections a test at exactly alpha would give, and the rates at
0.01 and 0.1 (the p-values' shape). Per-draw p-values are kept in bench/.cache/calibration_pvalues.npz
(--from-cache re-summarises them).
Writes bench/results/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment, table

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache"
PVALUES = CACHE / "calibration_pvalues.npz"  # --features pca; pca+residual: calibration_pvalues_residual.npz
OUT = RESULTS / "calibration.json"
QUICK = CACHE / "calibration_quick"  # --quick writes here (.json, _pvalues.npz), not over the committed result
DATASETS = ("sst2", "generator")
REGIMES = ("fitted", "held_out")
LEVELS = (0.01, 0.05, 0.1)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k / n."""
    from scipy.stats import beta

    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def binomial_range(n: int, p: float, confidence: float = 0.95) -> tuple[int, int]:
    """Central range of Binomial(n, p): the rejections a test at exactly p gives in n draws, 95% of the time."""
    from scipy.stats import binom

    a = 1.0 - confidence
    return int(binom.ppf(a / 2, n, p)), int(binom.ppf(1 - a / 2, n, p))


def split_rows(n_pool: int, n: int, n_ref: int, fit_rows: int, seed: list[int]) -> dict[str, np.ndarray]:
    """Disjoint row indices of the pool for one draw: window, reference, the rest of the fitted regime's fit set
    (other) and the rows the held-out regime fits on in the reference's place (extra)."""
    if fit_rows <= n_ref:
        raise ValueError(f"--fit-rows {fit_rows} must exceed the reference's {n_ref} rows")
    need = n + n_ref + fit_rows
    if need > n_pool:
        raise ValueError(f"a draw needs {need} distinct rows; the pool has {n_pool}")
    idx = np.random.default_rng(seed).permutation(n_pool)[:need]
    cuts = np.cumsum([n, n_ref, fit_rows - n_ref])
    window, ref, other, extra = np.split(idx, cuts)
    return {"window": window, "reference": ref, "other": other, "extra": extra}


def fit_set(rows: dict[str, np.ndarray], regime: str) -> np.ndarray:
    return np.concatenate([rows["reference"] if regime == "fitted" else rows["extra"], rows["other"]])


def texts(dataset: str, n_pool: int, seed: int) -> list[str]:
    if dataset == "sst2":
        with (SST2 / "train.jsonl").open() as f:
            rows = [json.loads(line)["text"] for line in f]
        pick = np.random.default_rng(seed).choice(len(rows), n_pool, replace=False)
        return [rows[i] for i in pick]
    from qlife.data.generator import draw_docs

    return [d["text"] for d in draw_docs(seed, n_pool)]


def embeddings(dataset: str, n_pool: int, seed: int) -> tuple[np.ndarray, float]:
    """The pool's pooled encoder embeddings (cached) and the seconds embedding took (0 from the cache)."""
    from qlife.params import Params

    p = Params()
    path = CACHE / f"calibration_{dataset}_{n_pool}.npz"
    key = f"{dataset}/{n_pool}/{seed}/{p.train.model}/{p.train.pooling}/{p.encode.max_length}"
    if path.exists():
        z = np.load(path)
        if str(z["key"]) == key:
            return z["x"], 0.0
    import torch

    from qlife.models import encode_texts, load_encoder

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model, tok = load_encoder(p.train.model, p.train.pooling)
    with torch.inference_mode():
        x = encode_texts(model, tok, texts(dataset, n_pool, seed), p.encode.max_length, p.encode.batch_size,
                         desc=f"embed {dataset}")[0]
    wall = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=key, x=x)
    print(f"embedded {n_pool} {dataset} texts in {wall:.0f} s", flush=True)
    return x, wall


def profile_tests() -> list[str]:
    """Every per-window test either profile runs: the quick monitor.tests, then the full profile's additions."""
    import yaml

    from qlife.params import PARAMS_FILE, parse_params

    data = yaml.safe_load(Path(PARAMS_FILE).read_text())
    quick = list(parse_params({**data, "profile": "quick"}).monitor.tests)
    full = list(parse_params({**data, "profile": "full"}).monitor.tests)
    return quick + [t for t in full if t not in quick]


def monitor_section(permutations: int, tests: list[str] | None = None, features: str | None = None):
    from qlife.params import Monitor

    mp = Monitor()
    return mp.model_copy(update={"n_permutations": permutations,
                                 "ocsvm": mp.ocsvm.model_copy(update={"kernels": ["rbf"]}),
                                 **({"tests": list(tests)} if tests else {}),
                                 **({"features": features} if features else {})})


def run_dataset(dataset: str, x: np.ndarray, draws: int, a: dict, only: list[str] | None = None
                ) -> tuple[np.ndarray, float]:
    """p-values (draws, regimes, n_refs, tests) of every test on every draw, and the wall seconds. `only`: just
    these tests, each through its class of the stage's registry on the same Window (--recompute)."""
    from threadpoolctl import threadpool_limits

    from qlife.methods.drift import reference_subsample
    from qlife.methods.drifttests import REGISTRY, Window
    from qlife.methods.projection import fit_pca
    from stages.monitor import WindowJob

    mp = monitor_section(a["permutations"], a.get("tests"), a.get("features"))
    names = list(only) if only else list(mp.tests)
    regimes = a.get("regimes") or list(REGIMES)
    residual = mp.features == "pca+residual"
    pool_texts = texts(dataset, len(x), a["seed"]) if "text_domain_classifier" in names else None
    p = np.full((draws, len(regimes), len(a["n_refs"]), len(names)), np.nan)
    t0 = time.perf_counter()
    with threadpool_limits(1):
        for d in range(draws):
            rows = split_rows(len(x), a["n"], max(a["n_refs"]), a["fit_rows"],
                              [a["seed"], zlib.crc32(dataset.encode()), d])
            w_texts = None if pool_texts is None else tuple(pool_texts[i] for i in rows["window"])
            for i, regime in enumerate(regimes):
                proj = fit_pca(x[fit_set(rows, regime)], a["n_features"], residual=residual)
                ref_all, live_raw = features(proj, x[rows["reference"]]), features(proj, x[rows["window"]])
                for j, n_ref in enumerate(a["n_refs"]):
                    ref = ref_all[:n_ref]
                    mu, sd = ref.mean(0), ref.std(0) + 1e-9  # stages/monitor.py: standardised by the reference
                    ref, live = (ref - mu) / sd, (live_raw - mu) / sd
                    r_texts = None if pool_texts is None else tuple(pool_texts[i] for i in rows["reference"][:n_ref])
                    if only:
                        window = Window(mp, ref, live, reference_texts=r_texts, texts=w_texts)
                        result = {"tests": {t: REGISTRY[t](mp).run(window).row for t in names}}
                    else:
                        svm_ref = ref[reference_subsample(len(ref), mp.ocsvm.max_ref, mp.ref_seed)]
                        job = WindowJob(mp, ref, svm_ref, residual=residual, reference_texts=r_texts)
                        result, _, _ = job(live if w_texts is None else (live, w_texts))
                    for k, t in enumerate(names):
                        row = result["tests"][t]
                        if row.get("p_value") is None:
                            raise RuntimeError(f"{t} gave no p-value on {dataset} draw {d}: {row}")
                        if bool(row["alarm"]) != (row["p_value"] < mp.alpha):
                            raise RuntimeError(f"{t}: alarm {row['alarm']} but p = {row['p_value']}")
                        p[d, i, j, k] = row["p_value"]
            if d == 0 or (d + 1) % 10 == 0:
                el = time.perf_counter() - t0
                print(f"{dataset} draw {d + 1}/{draws}: {el:.0f} s ({el / (d + 1):.1f} s per draw)", flush=True)
    return p, time.perf_counter() - t0


def features(proj, x: np.ndarray) -> np.ndarray:
    """The stage's columns for embeddings x: the projection, and the log residual last where the projection has one
    (monitor.features pca+residual; stages.monitor.project_windows)."""
    z = proj.transform(x)
    return z if proj.residual is None else np.column_stack([z, proj.residuals(x)])


def summarise(p: np.ndarray, tests: list[str], n_refs: list[int], alpha: float,
              regimes: list[str] | tuple[str, ...] = REGIMES) -> list[dict]:
    """Per regime, reference size and test: the rejections at alpha with their exact interval, the rates at the
    other LEVELS, the mean p-value and the KS test of the p-values against the uniform distribution."""
    from scipy.stats import kstest

    out = []
    draws = len(p)
    lo_k, hi_k = binomial_range(draws, alpha)
    for i, regime in enumerate(regimes):
        for j, n_ref in enumerate(n_refs):
            for k, t in enumerate(tests):
                v = p[:, i, j, k]
                rej = int((v < alpha).sum())
                lo, hi = clopper_pearson(rej, draws)
                out.append({"regime": regime, "n_ref": n_ref, "test": t, "rejections": rej, "draws": draws,
                            "rate": rej / draws, "ci95": [lo, hi], "alpha_in_ci": bool(lo <= alpha <= hi),
                            "expected_rejections_at_alpha_95": [lo_k, hi_k],
                            **{f"rate_at_{lv:g}": float((v < lv).mean()) for lv in LEVELS if lv != alpha},
                            "mean_p": float(v.mean()), "uniform_ks_p": float(kstest(v, "uniform").pvalue)})
    return out


def variance_ratio(dataset: str, x: np.ndarray, draws: int, a: dict) -> dict:
    """Per regime, over the draws: the window's variance over the reference's along each PCA component (the
    first max(--n-refs) reference rows), averaged over the components: below 1, the projection spreads its fit rows
    more than new rows of the same distribution (a PCA fitted on the reference overfits it)."""
    from qlife.methods.projection import fit_pca

    ratios = {r: [] for r in REGIMES}
    for d in range(draws):
        rows = split_rows(len(x), a["n"], max(a["n_refs"]), a["fit_rows"],
                          [a["seed"], zlib.crc32(dataset.encode()), d])
        for regime in REGIMES:
            proj = fit_pca(x[fit_set(rows, regime)], a["n_features"])
            w, r = proj.transform(x[rows["window"]]), proj.transform(x[rows["reference"]])
            ratios[regime].append(float((w.var(0) / r.var(0)).mean()))
    return {r: {"mean": float(np.mean(v)), "p5": float(np.percentile(v, 5)), "p95": float(np.percentile(v, 95))}
            for r, v in ratios.items()}


def cached_variance_ratio(dataset: str, pool: int, draws: int, a: dict) -> dict:
    """variance_ratio, kept in bench/.cache/calibration_variance.json by its inputs (800 PCA fits: minutes)."""
    path = CACHE / "calibration_variance.json"
    key = json.dumps([dataset, pool, draws, a["seed"], a["n"], a["n_refs"], a["fit_rows"], a["n_features"]])
    seen = json.loads(path.read_text()) if path.exists() else {}
    if key not in seen:
        seen[key] = variance_ratio(dataset, embeddings(dataset, pool, a["seed"])[0], draws, a)
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(seen))
    return seen[key]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--draws", type=int, default=200, help="reference draws on SST-2")
    p.add_argument("--generator-draws", type=int, default=200, help="reference draws on the generator")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--pool", type=int, default=10_000, help="SST-2 train rows embedded")
    p.add_argument("--generator-pool", type=int, default=6_000, help="generator documents embedded (longer texts)")
    p.add_argument("--n", type=int, default=200, help="window rows")
    p.add_argument("--n-refs", type=int, nargs="+", default=[600, 300], help="reference rows")
    p.add_argument("--fit-rows", type=int, default=2000, help="rows each regime's PCA is fitted on")
    p.add_argument("--n-features", type=int, default=16, help="PCA components (encode.n_features)")
    p.add_argument("--permutations", type=int, default=1000, help="monitor.n_permutations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", choices=["pca", "pca+residual"], default=None,
                   help="the columns tested (default: monitor.features)")
    p.add_argument("--tests", nargs="+", default=None, help="default: every test of the quick and full profiles")
    p.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES))
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 draws, a 3,000-text pool, 200 perms")
    p.add_argument("--from-cache", action="store_true", help="re-summarise the cached p-values")
    p.add_argument("--recompute", nargs="+", default=[], metavar="TEST",
                   help="with the cache: run these tests again on the same draws (their code changed), keep the rest")
    a = vars(p.parse_args())
    if a["quick"]:
        a.update(draws=min(a["draws"], 4), generator_draws=min(a["generator_draws"], 4), pool=3000,
                 generator_pool=3000, permutations=200)
    from qlife.params import Monitor

    a["features"] = a["features"] or Monitor().features
    a["tests"] = a["tests"] or profile_tests()
    pvalues_path, out = (QUICK.with_name(QUICK.name + "_pvalues.npz"), QUICK.with_suffix(".json")) if a["quick"] \
        else (PVALUES, OUT)
    if a["features"] != "pca":
        pvalues_path = pvalues_path.with_name(pvalues_path.stem + "_residual.npz")
    mp = monitor_section(a["permutations"], a["tests"], a["features"])
    code = _code()  # at the start: the modules are imported once, so later edits to the files do not count
    t_start = time.perf_counter()
    pvals, walls = {}, {}
    if a["from_cache"]:
        z = np.load(pvalues_path)
        cached = json.loads(str(z["args"]))
        a.update({k: v for k, v in cached.items() if k not in ("from_cache", "recompute")}, from_cache=True)
        a.setdefault("regimes", list(REGIMES))  # an older cache: both regimes
        a["features"] = cached.get("features", "pca")
        if "code" not in a and out.exists():  # an older cache: the code its run recorded in its JSON
            a["code"] = json.loads(out.read_text())["config"].get("code")
        pvals = {d: z[d] for d in a["datasets"] if d in z.files}
        walls = json.loads(str(z["walls"]))
    else:
        a.update(monitor=mp.model_dump(mode="json"), code=code)
        for ds in a["datasets"]:
            x, embed_s = embeddings(ds, a["pool"] if ds == "sst2" else a["generator_pool"], a["seed"])
            draws = a["draws"] if ds == "sst2" else a["generator_draws"]
            pvals[ds], test_s = run_dataset(ds, x, draws, a)
            walls[ds] = {"embed_s": embed_s, "tests_s": test_s, "per_draw_s": test_s / max(draws, 1)}
            CACHE.mkdir(parents=True, exist_ok=True)
            np.savez(pvalues_path, args=json.dumps(a), walls=json.dumps(walls), **pvals)
    if a["recompute"]:  # the cached draws (same seeds, rows, projections), the named tests run again
        if not a["from_cache"]:
            p.error("--recompute needs --from-cache (the other tests' p-values come from the cache)")
        tests = a.get("tests") or list(mp.tests)
        a["tests"] = tests  # the cache's column order, kept with it
        unknown = [t for t in a["recompute"] if t not in tests]
        if unknown:
            p.error(f"--recompute {unknown}: not among the cached tests {tests}")
        for ds in pvals:
            x, _ = embeddings(ds, a["pool"] if ds == "sst2" else a["generator_pool"], a["seed"])
            fresh, secs = run_dataset(ds, x, len(pvals[ds]), a, only=a["recompute"])
            pvals[ds] = pvals[ds].copy()
            for k, t in enumerate(a["recompute"]):
                pvals[ds][..., tests.index(t)] = fresh[..., k]
            walls[ds][f"recompute_{'_'.join(a['recompute'])}_s"] = secs
        a["recomputed"] = {"tests": a["recompute"], "code": code,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        np.savez(pvalues_path, args=json.dumps({k: v for k, v in a.items() if k != "recompute"}),
                 walls=json.dumps(walls), **pvals)
    tests = a.get("tests") or list(mp.tests)  # a cache of an older run: the tests it ran
    results = {ds: summarise(v, tests, a["n_refs"], mp.alpha, a["regimes"]) for ds, v in pvals.items()}
    pools = {ds: a["pool"] if ds == "sst2" else a["generator_pool"] for ds in pvals}
    spread = {ds: cached_variance_ratio(ds, pools[ds], len(v), a) for ds, v in pvals.items()}
    sst2_check = [r for r in results.get("sst2", []) if r["regime"] == "held_out"]
    # every row at 95% on its own: with 14 rows about 0.7 fall outside by chance even if every test is exact
    # (P(all 14 inside) ~ 0.49); the simultaneous interval (Bonferroni over the rows) is the one a check of every
    # row at once can hold at 95%
    level = 1 - 0.05 / max(len(sst2_check), 1)
    for r in sst2_check:
        lo, hi = clopper_pearson(r["rejections"], r["draws"], level)
        r["ci_simultaneous"], r["alpha_in_simultaneous_ci"] = [lo, hi], bool(lo <= mp.alpha <= hi)
    result = {
        "bench": "calibration", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(),
        "config": {"alpha": mp.alpha, "tests": tests, "monitor": a.get("monitor") or mp.model_dump(mode="json"), **a,
                   "encoder": _encoder(), "code": a.get("code") or code,
                   "window_job": "stages.monitor.WindowJob(mp, reference, svm_ref)(window)",
                   "permutation_seed": "monitor.seed 0 for every window (the stage's)",
                   "wall_s": walls, "total_wall_s": time.perf_counter() - t_start if not a["from_cache"] else
                   sum(w["embed_s"] + w["tests_s"] for w in walls.values())},
        "check": {"rule": "every per-window test's false-alarm rate on in-distribution SST-2 windows over >= 200 "
                          "reference draws has alpha inside its exact 95% interval (held_out regime: the "
                          "reference the stage is moving to)",
                  "draws": int(len(pvals["sst2"])) if "sst2" in pvals else 0,
                  "passed": bool(sst2_check) and all(r["alpha_in_ci"] for r in sst2_check)
                  and len(pvals["sst2"]) >= 200,
                  "outside": [f"{r['test']} n_ref={r['n_ref']} {r['rate']:.3f}" for r in sst2_check
                              if not r["alpha_in_ci"]],
                  "simultaneous": {
                      "rule": f"alpha inside every row's exact {100 * level:.2f}% interval (95% over the "
                              f"{len(sst2_check)} rows at once, Bonferroni)",
                      "passed": bool(sst2_check) and all(r["alpha_in_simultaneous_ci"] for r in sst2_check)
                      and len(pvals["sst2"]) >= 200,
                      "outside": [f"{r['test']} n_ref={r['n_ref']} {r['rate']:.3f}" for r in sst2_check
                                  if not r["alpha_in_simultaneous_ci"]]}},
        "window_over_reference_variance": spread,
        "results": results,
    }
    result["notes"] = [
        f"{a['permutations']} permutations per test (monitor.n_permutations; the quick default is 1000), the same "
        "permutations (monitor.seed 0) for every draw, as the stage uses; the one-class SVM's quantum kernel off "
        "(it decides nothing)",
        "draws: " + ", ".join(f"{ds} {len(v)}" for ds, v in pvals.items()) + "; at 200 draws alpha = 0.05 lies in "
        "the exact interval exactly when 4 to 16 windows were rejected; with "
        f"{len(tests) * len(a['n_refs'])} (test, size) rows per dataset and regime, about "
        f"{0.05 * len(tests) * len(a['n_refs']):.0f} row(s) outside the interval are expected by chance even if every "
        "test is exact",
        f"features: {a['features']}" + (" (the projection's columns and the log residual last, standardised by the "
                                         "reference like the rest: the stage's default)"
                                         if a["features"] == "pca+residual" else " (the projection's columns only)"),
        "window_over_reference_variance: below 1 in the fitted regime, the PCA spreads the rows it was fitted on "
        "more than new rows: the in-distribution window looks narrower than its reference (the fitted regime's excess "
        "of false alarms for the tests that see the spread: RBF, domain classifier, rff)",
        "ks: its p-value from permutations of the largest per-feature statistic (qlife.methods.drift."
        "ks_max_permutation_test) since " + ("this run" if not a.get("recomputed") else
                                           f"the recompute of {a['recomputed']['created']}") +
        "; Bonferroni over the features before it rejected almost the same windows (PCA features are uncorrelated; "
        "its p-values pile up at 1, so their uniformity is rejected, not its rate at alpha)",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    for ds, rows in results.items():
        print(f"\n{ds}: rejections at alpha {mp.alpha} on in-distribution windows of {a['n']} rows")
        print(table([{**r, "rej/draws": f"{r['rejections']}/{r['draws']}",
                      "95% CI": f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]",
                      "alpha in CI": "yes" if r["alpha_in_ci"] else "NO"} for r in rows],
                    ["regime", "n_ref", "test", "rej/draws", "rate", "95% CI", "alpha in CI", "rate_at_0.01",
                     "rate_at_0.1"]))
    print(f"\ncheck (SST-2, held_out): {'passed' if result['check']['passed'] else 'FAILED'} "
          f"{result['check']['outside']}; wrote {out}")


def _code() -> dict:
    """The commit and the content hashes of the files whose code decided (the working tree may hold edits)."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[1]
    files = ["stages/monitor.py", "qlife/methods/drifttests.py", "qlife/methods/drift.py", "qlife/params.py"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=root, capture_output=True,
                               text=True).stdout.split()[1::2]
    except OSError:
        head, dirty = None, None
    return {"commit": head, "modified_in_working_tree": dirty,
            "sha256_12": {f: hashlib.sha256((root / f).read_bytes()).hexdigest()[:12] for f in files}}


def _encoder() -> dict:
    from qlife.params import Params

    p = Params()
    return {"model": p.train.model, "pooling": p.train.pooling, "max_length": p.encode.max_length}


if __name__ == "__main__":
    main()
