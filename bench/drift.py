"""Stage 7 power study: every drift test of stages/monitor.py at a measured false-alarm rate.

    python -m bench.drift [--reps 100] [--sizes 50 100 200] [--fractions 0 0.05 0.1 0.2 0.4] [--n-ref 200]
                          [--permutations 1000] [--scenarios topic vocabulary style label] [--quick]
                          [--part NAME]  (then: python -m bench.drift --merge NAME1 NAME2)

Four drift scenarios, each a pool of reference documents and a pool of drifted ones, embedded once by the
pipeline's encoder (train.model, cached in bench/.cache/drift_features.npz), projected by a PCA fitted on the
reference pool (encode.n_features components) and standardised by it, as the monitor stage does:
  topic       the generator (qlife.data.generator.draw_docs): drifted documents all from one topic (a topic-mix
              change, no new words)
  vocabulary  the generator: balanced topics with the drifted live window's new vocabulary (drift_vocab 0.5)
  style       SST-2 (../shared/datasets/sst2): sentences rewritten in a chat style (lower case, no punctuation,
              u / r / 2 / 4 abbreviations, a trailing lol / tbh / imo): same content, another style
  label       SST-2: drifted documents all negative, the reference balanced (a label shift)
For every repetition, window size m and drift fraction f, a reference sample of --n-ref documents and a window
of m (round(f m) drifted, the rest in-distribution, disjoint from the reference) are drawn with the rep's seed,
and every configured test runs on it (qlife.methods.drifttests: the same permutations for all, --permutations
of them). Reported per scenario, size and fraction: each test's rejection rate at alpha with its binomial standard
error: at f = 0 the false-alarm rate (it must stay <= alpha within 2 standard errors), above it the power. The
quantum and fused tests are compared with the tuned RBF twin by an exact McNemar test on the paired reps.
Per-document anomaly scores: one-class SVMs (RBF and quantum kernels, monitor.ocsvm) fitted on the reference,
their AUC and average precision of flagging the drifted documents of windows with known drift.
Cost per test: wall seconds per window, circuits and the estimated QPU seconds the same Gram matrices would take
on hardware (the resource model of qlife.quantum.resources).

Writes bench/results/drift.json and bench/results/drift.png (power against drift fraction, one panel per
scenario, the largest window size).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache" / "drift_features.npz"
OUT = RESULTS / "drift.json"
SCENARIOS = ("topic", "vocabulary", "style", "label")
QUANTUM_OR_FUSED = ("quantum_fidelity", "quantum_projected", "fuse", "fuse_quantum")
ABBREV = {"you": "u", "are": "r", "to": "2", "for": "4", "and": "&", "great": "gr8", "your": "ur", "please": "pls",
          "people": "ppl", "really": "rly", "because": "bc", "with": "w/"}
TAILS = ("lol", "tbh", "imo", "smh", "ngl")


def chat_style(text: str, rng: np.random.Generator) -> str:
    """The same sentence in a chat style: lower case, no punctuation, common abbreviations, a trailing tag."""
    words = re.sub(r"[^\w\s']", " ", text.lower()).split()
    return " ".join([ABBREV.get(w, w) for w in words] + [str(rng.choice(TAILS))])


def sst2_rows(name: str) -> list[dict]:
    with (SST2 / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def pools(n_pool: int, seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """scenario -> (reference texts, drifted texts)."""
    from qlife.data.generator import draw_docs

    rng = np.random.default_rng(seed)
    ref_gen = [d["text"] for d in draw_docs(seed, n_pool)]
    topic = [d["text"] for d in draw_docs(seed + 1, n_pool // 2, topic_probs=[1.0, 0.0, 0.0, 0.0])]
    vocab = [d["text"] for d in draw_docs(seed + 2, n_pool // 2, drift_vocab=0.5)]
    rows = sst2_rows("train")
    pos = [r["text"] for r in rows if r["label"] == 1]
    neg = [r["text"] for r in rows if r["label"] == 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    half = n_pool // 2
    ref_sst = pos[:half] + neg[:half]  # balanced
    styled = [chat_style(t, rng) for t in pos[half: half + n_pool // 4] + neg[half: half + n_pool // 4]]
    negatives = neg[half + n_pool // 4: half + n_pool // 4 + n_pool // 2]
    return {"topic": (ref_gen, topic), "vocabulary": (ref_gen, vocab), "style": (ref_sst, styled),
            "label": (ref_sst, negatives)}


def features(n_pool: int, model_name: str, n_features: int, max_length: int) -> dict[str, dict[str, np.ndarray]]:
    """scenario -> {"ref", "drift"} standardised projected features (cached)."""
    if CACHE.exists():
        z = np.load(CACHE)
        if int(z["n_pool"]) == n_pool and str(z["model"]) == model_name and int(z["n_features"]) == n_features:
            return {s: {"ref": z[f"{s}_ref"], "drift": z[f"{s}_drift"]} for s in SCENARIOS}
    from transformers import AutoModel

    from qlife.methods.projection import fit_pca
    from qlife.models import encode_texts, load_tokenizer, resolve_model

    tok = load_tokenizer(model_name)
    model = AutoModel.from_pretrained(resolve_model(model_name))
    out, cache, embedded = {}, {}, {}
    for s, (ref, drift) in pools(n_pool).items():
        key = id(ref)
        if key not in embedded:
            embedded[key] = encode_texts(model, tok, ref, max_length, 64, desc=f"embed {s} reference")[0]
        e_ref = embedded[key]
        e_drift = encode_texts(model, tok, drift, max_length, 64, desc=f"embed {s} drifted")[0]
        proj = fit_pca(e_ref, n_features)
        f_ref, f_drift = proj.transform(e_ref), proj.transform(e_drift)
        mu, sd = f_ref.mean(0), f_ref.std(0) + 1e-9
        out[s] = {"ref": (f_ref - mu) / sd, "drift": (f_drift - mu) / sd}
        cache[f"{s}_ref"], cache[f"{s}_drift"] = out[s]["ref"], out[s]["drift"]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, n_pool=n_pool, model=model_name, n_features=n_features, **cache)
    return out


def draw(feats: dict[str, np.ndarray], n_ref: int, m: int, f: float, seed: int,
         truth: bool = False) -> tuple[np.ndarray, ...]:
    """A reference sample and a window of m rows, round(f m) of them drifted; disjoint, by `seed`. With `truth`,
    also the window's 0/1 mask of drifted rows."""
    rng = np.random.default_rng(seed)
    k = int(round(f * m))
    idx = rng.choice(len(feats["ref"]), n_ref + m - k, replace=False)
    ref, clean = feats["ref"][idx[:n_ref]], feats["ref"][idx[n_ref:]]
    drifted = feats["drift"][rng.choice(len(feats["drift"]), k, replace=False)]
    window, mask = np.concatenate([clean, drifted]), np.r_[np.zeros(m - k, int), np.ones(k, int)]
    order = rng.permutation(m)
    return (ref, window[order], mask[order]) if truth else (ref, window[order])


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of paired rejections a vs b."""
    from scipy.stats import binomtest

    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    return 1.0 if n01 + n10 == 0 else float(binomtest(n10, n01 + n10, 0.5).pvalue)


def run(args: argparse.Namespace) -> dict:
    from qlife.methods.drifttests import Window, drift_tests
    from qlife.params import Params, with_overrides

    params = with_overrides(Params(), {"monitor.n_permutations": args.permutations, "monitor.max_ref": None,
                                      "monitor.ocsvm.kernels": ["rbf", "quantum_fidelity", "quantum_projected"]})
    mp = params.monitor
    feats = features(args.pool, params.train.model, params.encode.n_features, params.encode.max_length)
    out: dict = {"cells": {}, "cost": {}}
    t_start = time.perf_counter()
    cost = {t: {"wall_s": 0.0, "resources": []} for t in mp.tests}
    windows = 0
    for s in args.scenarios:
        for m in args.sizes:
            for f in args.fractions:
                rej = {t: [] for t in mp.tests}
                for rep in range(args.reps):
                    ref, window = draw(feats[s], args.n_ref, m, f, seed=zlib.crc32(f"{s}/{m}/{f}/{rep}".encode()))
                    # the rep's permutation seed, the same for every test of this window
                    rep_mp = mp.model_copy(update={"seed": rep})
                    shared = Window(rep_mp, ref, window)
                    windows += 1
                    for test in drift_tests(rep_mp):
                        o = test.run(shared)
                        cost[test.name]["wall_s"] += o.seconds
                        cost[test.name]["resources"] += o.resources
                        p = o.row["p_value"]
                        rej[test.name].append(p is not None and p < mp.alpha)
                cell = {}
                for t, v in rej.items():
                    v = np.array(v)
                    cell[t] = {"rate": float(v.mean()), "se": float(np.sqrt(v.mean() * (1 - v.mean()) / len(v)))}
                twin = np.array(rej["rbf_tuned"]) if "rbf_tuned" in rej else None
                if twin is not None and f > 0:
                    for t in QUANTUM_OR_FUSED:
                        if t in rej:
                            cell[t]["vs_rbf_tuned_p"] = mcnemar(np.array(rej[t]), twin)
                out["cells"][f"{s} m={m} f={f}"] = {"scenario": s, "m": m, "f": f, "reps": args.reps, **cell}
                print(f"{s:10s} m={m:3d} f={f:.2f}: " + "  ".join(f"{t} {c['rate']:.2f}" for t, c in cell.items()),
                      flush=True)
                if args.part:  # a checkpoint: a long study stopped early keeps its finished cells
                    (RESULTS / f"drift.{args.part}.partial.json").write_text(json.dumps(out, default=float))
    for t, c in cost.items():
        res = [rc.to_dict() for rc in c["resources"]]
        out["cost"][t] = {"wall_s_per_window": c["wall_s"] / max(windows, 1),
                          "circuits_per_window": sum(r.get("circuits") or 0 for r in res) / max(windows, 1),
                          "qpu_seconds_est_per_window": sum(r.get("qpu_seconds_est") or 0 for r in res)
                          / max(windows, 1)}
    out["anomaly"] = anomaly_study(feats, mp, args)
    out["config"] = {**vars(args), "alpha": mp.alpha, "monitor": mp.model_dump(mode="json"),
                     "wall_s": time.perf_counter() - t_start}
    out["summary"] = summarise(out, mp.tests, mp.alpha)
    return out


def anomaly_study(feats: dict, mp, args: argparse.Namespace) -> dict:
    """Per-document anomaly scores (qlife.methods.drifttests.anomaly_scores: one-class SVMs fitted on the
    reference, one per monitor.ocsvm kernel) on windows of the largest size with --anomaly-fraction of them
    drifted: per scenario and kernel the AUC and average precision of flagging the drifted documents, mean and
    standard deviation over --anomaly-reps windows (the same windows for every kernel), and the flagged rates."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from qlife.methods.drifttests import anomaly_scores

    m, f, out = max(args.sizes), args.anomaly_fraction, {}
    for s in args.scenarios:
        rows: dict = {k: {"auc": [], "ap": [], "flagged_drifted": [], "flagged_clean": []} for k in mp.ocsvm.kernels}
        for rep in range(args.anomaly_reps):
            ref, window, truth = draw(feats[s], args.n_ref, m, f, seed=zlib.crc32(f"anomaly/{s}/{rep}".encode()),
                                      truth=True)
            _, scores = anomaly_scores(mp, ref, window)
            for k, sc in scores.items():
                rows[k]["auc"].append(roc_auc_score(truth, sc))
                rows[k]["ap"].append(average_precision_score(truth, sc))
                rows[k]["flagged_drifted"].append(float((sc[truth == 1] > 0).mean()))
                rows[k]["flagged_clean"].append(float((sc[truth == 0] > 0).mean()))
        out[s] = {k: {"m": m, "f": f, "reps": args.anomaly_reps, "drifted_share": f,
                      **{f"{n}_mean": float(np.mean(v)) for n, v in r.items()},
                      **{f"{n}_sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for n, v in r.items()}}
                  for k, r in rows.items()}
        print(f"{s:10s} anomaly m={m} f={f}: " + "  ".join(
            f"{k} AUC {r['auc_mean']:.3f}±{r['auc_sd']:.3f} AP {r['ap_mean']:.3f}" for k, r in out[s].items()),
            flush=True)
    return out


def summarise(out: dict, tests: list[str], alpha: float) -> dict:
    """Per scenario: the worst false-alarm rate of each test (with 2 se), its mean power over the drifted cells,
    and the cells where a quantum or fused test beats the tuned twin (McNemar p < 0.05) or loses to it."""
    summary: dict = {}
    for s in {c["scenario"] for c in out["cells"].values()}:
        cells = [c for c in out["cells"].values() if c["scenario"] == s]
        null = [c for c in cells if c["f"] == 0]
        drift = [c for c in cells if c["f"] > 0]
        row: dict = {}
        for t in tests:
            fa = max((c[t]["rate"] for c in null), default=None)
            fa_ok = all(c[t]["rate"] <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / c["reps"]) for c in null)
            row[t] = {"false_alarm_max": fa, "false_alarm_ok": fa_ok,
                      "mean_power": float(np.mean([c[t]["rate"] for c in drift])) if drift else None}
            if t in QUANTUM_OR_FUSED and "rbf_tuned" in tests:
                row[t]["beats_twin"] = sum(c[t]["rate"] > c["rbf_tuned"]["rate"] and c[t].get("vs_rbf_tuned_p", 1)
                                           < 0.05 for c in drift)
                row[t]["loses_to_twin"] = sum(c[t]["rate"] < c["rbf_tuned"]["rate"] and
                                              c[t].get("vs_rbf_tuned_p", 1) < 0.05 for c in drift)
                row[t]["drifted_cells"] = len(drift)
        summary[s] = row
    return summary


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = sorted({c["scenario"] for c in res["cells"].values()}, key=SCENARIOS.index)
    m = max(c["m"] for c in res["cells"].values())
    fig, axes = plt.subplots(1, len(scen), figsize=(4 * len(scen), 3.4), squeeze=False)
    tests = res["config"]["monitor"]["tests"]
    for ax, s in zip(axes[0], scen):
        cells = sorted((c for c in res["cells"].values() if c["scenario"] == s and c["m"] == m), key=lambda c: c["f"])
        fr = [c["f"] for c in cells]
        for t in tests:
            ax.errorbar(fr, [c[t]["rate"] for c in cells], yerr=[2 * c[t]["se"] for c in cells], label=t,
                        marker="o", ms=3, capsize=2, lw=1.2, ls="--" if t in ("rbf_tuned", "rbf", "ks") else "-")
        ax.axhline(res["config"]["alpha"], color="grey", lw=0.8)
        ax.set_title(f"{s} (m = {m})")
        ax.set_xlabel("drifted fraction of the window")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("rejection rate (power; at 0: false alarms)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.4])
    ap.add_argument("--n-ref", type=int, default=200)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--anomaly-reps", type=int, default=20, help="windows per scenario for the one-class SVM AUC")
    ap.add_argument("--anomaly-fraction", type=float, default=0.2, help="drifted share of those windows")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--quick", action="store_true", help="10 reps, m = 100, fractions 0 and 0.2")
    ap.add_argument("--part", default=None,
                    help="write bench/results/drift.<part>.json only (run scenarios in parallel processes)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="PART",
                    help="combine drift.<part>.json files into drift.json and its plot (no tests run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.sizes, args.fractions, args.anomaly_reps = 10, [100], [0.0, 0.2], 3
    if args.merge:
        parts = [json.loads((RESULTS / f"drift.{p}.json").read_text()) for p in args.merge]
        res = {"cells": {k: v for p in parts for k, v in p["cells"].items()},
               "cost": {t: {k: float(np.mean([p["cost"][t][k] for p in parts])) for k in parts[0]["cost"][t]}
                        for t in parts[0]["cost"]},
               "anomaly": {k: v for p in parts for k, v in p.get("anomaly", {}).items()},
               "config": {**parts[0]["config"], "scenarios": [s for p in parts for s in p["config"]["scenarios"]],
                          "wall_s": sum(p["config"]["wall_s"] for p in parts), "parts": args.merge},
               "environment": parts[0]["environment"]}
        res["summary"] = summarise(res, res["config"]["monitor"]["tests"], res["config"]["alpha"])
    else:
        res = run(args)
        res["environment"] = environment()
    out = RESULTS / f"drift.{args.part}.json" if args.part and not args.merge else OUT
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    if out == OUT:
        plot(res, OUT.with_suffix(".png"))
    for s, row in res["summary"].items():
        print(f"{s}: " + "  ".join(
            f"{t} FA {v['false_alarm_max']:.2f}{'' if v['false_alarm_ok'] else '!'} power {v['mean_power']:.2f}"
            + (f" (+{v['beats_twin']}/-{v['loses_to_twin']} of {v['drifted_cells']} vs twin)" if "beats_twin" in v
               else "") for t, v in row.items() if v["mean_power"] is not None))
    print(f"wrote {out}" + (f" and {OUT.with_suffix('.png')}" if out == OUT else ""))


if __name__ == "__main__":
    main()
