"""Quality without labels on real data: CBPE accuracy and macro-F1 estimates against the truth on SST-2 windows.

    python -m bench.cbpe [--train 4000] [--cal 2000] [--windows 20] [--size 200] [--resamples 500] [--seed 0]

A quick classifier (TF-IDF unigrams + bigrams, logistic regression) is trained on --train sentences of the SST-2
train split (`../shared/datasets/sst2`, read in place). Its confidences are calibrated (qlife.methods.cbpe:
none = raw softmax, temperature, isotonic; each also as METHOD+em and METHOD+bbse, the same calibration with the
window's class priors re-estimated, by EM or by BBSE, and the probabilities adjusted to them: prior_shift="em" |
"bbse", the stage's default monitor.quality.prior_shift) on one of two labelled splits:
  train-heldout   --cal further rows of the train split, disjoint from the training rows (the pipeline's case:
                  validation held out of the training data). SST-2 train is mostly phrases (median 7 words);
  test-sentences  up to --cal sentences of the SST-2 test split (all 1,821 at the default; full sentences, like
                  the windows).
Windows (--windows of --size documents each, drawn without replacement within a window, windows may overlap;
labels used only to score the estimate) from the SST-2 validation split (872 sentences, GLUE dev):
  in-distribution  any validation sentence;
  short            only sentences of at most 14 words (276 of them: windows overlap heavily);
  negative-only    one class removed (a label shift; 428 negatives);
  chat-style       the sentences rewritten in a chat style (bench.drift.chat_style: lower case, no punctuation,
                   abbreviations, a trailing tag): the vocabulary moves, the labels do not.
Per window: the estimate, its 95% `labels` interval (where the truth falls if the calibration holds), the true
value. Reported per calibration split x method x window set: mean absolute error, the MAE label noise alone would
give if the calibration held (noise_mae: sd of the interval x sqrt(2/pi)), mean signed error (bias), largest
error, interval coverage, mean true value and mean estimate, the windows' mean true class shares and (+em) the
mean of EM's estimated window priors; and the same over all drifted windows. The windows
of a set share documents (the pools hold 276-872 sentences), so their errors are correlated: 20 windows are not
20 independent measurements. Macro-F1 counts an absent class as 0 (qlife.quality): on negative-only windows the
true macro-F1 is at most 0.5 whatever the model; the plain estimate cannot know the class is gone, the +em one
comes close (EM drives the window's positive prior towards 0).
The +em rows correct a label shift (negative-only) and should change little elsewhere; the EM's reference priors
are the mean calibrated probabilities on the calibration split (qlife.methods.cbpe says why), and nothing in the EM
is tuned on these windows. Writes bench/results/cbpe.json. About 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import table, write
from qlife.methods.cbpe import CALIBRATIONS, PRIOR_SHIFTS, estimate, fit_calibrator, with_truth

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
SHORT_WORDS = 14


def rows(name: str) -> list[dict]:
    with (SST2 / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def window_sets(val: list[dict], n_windows: int, size: int, seed: int) -> dict[str, list[tuple[list[str], np.ndarray]]]:
    from bench.drift import chat_style

    rng = np.random.default_rng(seed)
    text = [r["text"] for r in val]
    y = np.array([r["label"] for r in val])
    pools = {
        "in-distribution": (text, y),
        "short": ([t for t in text if len(t.split()) <= SHORT_WORDS], y[[len(t.split()) <= SHORT_WORDS for t in text]]),
        "negative-only": ([t for t, lab in zip(text, y) if lab == 0], y[y == 0]),
        "chat-style": ([chat_style(t, rng) for t in text], y),
    }
    out = {}
    for name, (t, lab) in pools.items():
        if len(t) < size:
            raise ValueError(f"the {name} pool has {len(t)} sentences, fewer than a window of {size}.")
        picks = [rng.choice(len(t), size, replace=False) for _ in range(n_windows)]
        out[name] = [([t[i] for i in idx], lab[idx]) for idx in picks]
    return out


def summarise(results: list[dict], labels: list[np.ndarray], k: int = 2) -> dict:
    err = np.array([r["error"] for r in results])
    est_priors = [r["priors"]["window"] for r in results if "priors" in r]
    return {"true_priors_mean": [float(v) for v in np.mean([np.bincount(y, minlength=k) / len(y) for y in labels], 0)],
            "est_priors_mean": [float(v) for v in np.mean(est_priors, 0)] if est_priors else None,
            "mae": float(np.abs(err).mean()), "bias": float(err.mean()), "max_abs_error": float(np.abs(err).max()),
            "coverage": float(np.mean([r["in_ci"] for r in results])),
            "true_mean": float(np.mean([r["true"] for r in results])),
            "estimate_mean": float(np.mean([r["estimate"] for r in results])),
            # what the MAE would be from label noise alone if the calibration held: E|N(0, sd)| per window
            "noise_mae": float(np.mean([r["sd"] for r in results]) * np.sqrt(2 / np.pi)), "windows": len(results)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=4000, help="training sentences (SST-2 train)")
    ap.add_argument("--cal", type=int, default=2000, help="calibration sentences per calibration split")
    ap.add_argument("--windows", type=int, default=20, help="windows per window set")
    ap.add_argument("--size", type=int, default=200, help="documents per window")
    ap.add_argument("--resamples", type=int, default=500, help="label draws for each window's interval")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not SST2.exists():
        print(f"SST-2 not found at {SST2}; this benchmark needs ../shared/datasets/sst2.")
        return 2
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    rng = np.random.default_rng(a.seed)
    train = rows("train")
    order = rng.permutation(len(train))
    fit_rows = [train[i] for i in order[: a.train]]
    held = [train[i] for i in order[a.train: a.train + a.cal]]
    test = rows("test")
    test_rows = [test[i] for i in rng.permutation(len(test))[: a.cal]]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X = vec.fit_transform([r["text"] for r in fit_rows])
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(X, [r["label"] for r in fit_rows])

    def logits(texts: list[str]) -> np.ndarray:
        return clf.decision_function(vec.transform(texts))  # one logit per sentence: the positive class

    splits = {"train-heldout": held, "test-sentences": test_rows}
    sets = window_sets(rows("validation"), a.windows, a.size, a.seed)
    window_logits = {name: [(logits(t), y) for t, y in ws] for name, ws in sets.items()}
    out_rows, calibrators = [], {}
    for split, cal_rows in splits.items():
        z_cal, y_cal = logits([r["text"] for r in cal_rows]), np.array([r["label"] for r in cal_rows])
        for method in CALIBRATIONS:
            cal = fit_calibrator(z_cal, y_cal, method=method)
            calibrators[f"{split}/{method}"] = cal.to_dict()
            for shift in PRIOR_SHIFTS:
                label = method if shift == "none" else f"{method}+{shift}"
                for metric in ("accuracy", "macro_f1"):
                    drifted, drifted_y = [], []
                    for name, ws in window_logits.items():
                        res = [with_truth(estimate(cal, z, metric, a.resamples, seed=a.seed + i, prior_shift=shift),
                                          cal, z, y) for i, (z, y) in enumerate(ws)]
                        ys = [y for _, y in ws]
                        if name != "in-distribution":
                            drifted, drifted_y = drifted + res, drifted_y + ys
                        out_rows.append({"calibration_split": split, "method": label, "metric": metric,
                                         "windows_set": name, **summarise(res, ys)})
                    out_rows.append({"calibration_split": split, "method": label, "metric": metric,
                                     "windows_set": "all drifted", **summarise(drifted, drifted_y)})
    wall = time.perf_counter() - t0
    cols = ["calibration_split", "method", "windows_set", "mae", "noise_mae", "bias", "max_abs_error", "coverage",
            "true_mean", "estimate_mean"]
    for metric in ("accuracy", "macro_f1"):
        print(f"\n{metric}: estimate vs truth over {a.windows} windows of {a.size} per set")
        print(table([r for r in out_rows if r["metric"] == metric], cols))
    meta = {"data": str(SST2), "classifier": "TF-IDF (1-2 grams, min_df 2, sublinear tf) + logistic regression C=4",
            "train_rows": a.train, "calibration_rows": a.cal, "windows": a.windows, "window_size": a.size,
            "resamples": a.resamples, "seed": a.seed, "short_words": SHORT_WORDS, "wall_s": wall,
            "calibrators": calibrators,
            "note": "error = estimate - true on labelled windows; coverage = share of windows whose truth lies in the "
                    "95% labels interval (which does not cover calibration error); METHOD+em = prior_shift='em' "
                    "(EM re-estimation of the window's class priors, Saerens et al. 2002); true_priors_mean / "
                    "est_priors_mean = the windows' mean class shares, true and as EM estimated them"}
    path = write("cbpe", out_rows, meta)
    print(f"\nwrote {path} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
