"""Issue 34's per-document check: does the domain classifier find the drifted documents of a window where the
one-class SVM does not?

    python -m bench.doc_scores [--reps 30] [--fractions 0.1 0.2] [--m 200] [--n-ref 600]
                               [--variants held_out in_sample] [--scenarios ...] [--quick]

Goal (issue 34, Checks): "Domain classifier: per-document AUC on the planted drift windows above 0.7 where the
one-class SVM is below 0.5."

Data: bench.drift's four scenarios, the same texts (bench.drift.pools(2000): a reference pool of 2,000 documents
and a drifted pool of 1,000 per scenario: topic and vocabulary from the generator, style and label from SST-2,
../shared/datasets/sst2 read in place), plus `generator`: the generator's own planted live drift
(qlife.data.generator.generate_corpus, n_docs 3000, live_size 400, seeds 0-3): clean rows from window-000, drifted
rows from window-001 (one topic dominant, one absent, drift vocabulary at 0.5), the reference from corpus seed 0's
documents. Every text is embedded once by the pipeline's encoder (train.model, train.pooling, encode.max_length;
cached in bench/.cache/doc_scores_embeddings.npz, ~8 min on one core) and projected to encode.n_features (16)
principal components (qlife.methods.projection.fit_pca, as stage 3), in two variants:
  held_out   the PCA fitted on 800 rows of the reference pool that never enter a reference or a window: the stage's
             case (its reference is curate's held-out sample; live documents are never in the fit); the headline
  in_sample  the PCA fitted on the whole reference pool (bench.drift's features): the reference and the clean
             window rows were in the fit, the drifted rows were not
Per scenario, drift fraction f and repetition (seeded by scenario, f, rep; the draw of bench.drift.draw): a
reference of --n-ref rows and a window of --m rows, round(f m) of them drifted, disjoint; both standardised by the
reference's mean and sd (stage 7). Per window, every scorer's per-document ROC-AUC of drifted vs clean documents
inside the window (higher score = more drift-like):
  domain_classifier  stage 7's test (qlife.methods.drifttests.DomainClassifier's call: cross-fitted ridge on
                     [x, x^2] of all 16 columns, 5 folds, 200 permutations; its window AUC and p-value kept too)
  ocsvm_rbf, ocsvm_quantum_fidelity   stage 7's one-class SVMs (qlife.methods.drifttests.anomaly_scores,
                     monitor.ocsvm: nu 0.05, fitted on a 500-row subsample of the reference, the first
                     monitor.quantum.features = 8 columns); score = -decision_function (higher = more anomalous)
  knn                mean Euclidean distance to the 10 nearest reference rows (all 16 columns): a simple peer
  ocsvm_rbf_16       (diagnostic) the RBF one-class SVM on all 16 columns: is the 8-column cut the reason?
  supervised         (diagnostic, not a method) a logistic regression on [x, x^2] trained on the labelled pools
                     less this window's and reference's rows: how separable the drifted documents are at all in
                     these 16 features (a ceiling for any score of these columns that is linear in [x, x^2])
With the residual (qlife.methods.projection.Residual: the off-subspace norm of the unit-normalised embedding
against a 16-component PCA of the unit-normalised fit rows, fitted on the same rows as the projection; its log is
a 17th column, standardised by the reference like the rest):
  residual           the document's residual itself (no reference needed: a score of its own)
  domain_classifier_res   the domain classifier (the same call) on the 16 features + the log residual
  supervised_res     (diagnostic) the supervised ceiling on the same 17 columns
From the same rows' texts (text_pools: the pools' texts in the same order, window_texts: the same draw):
  text_dc            the domain classifier on the texts (qlife.methods.text_domain_classifier, the stage's
                     text_domain_classifier: TF-IDF of lower-cased \\w+ words fitted on reference + window texts,
                     cross-fitted ridge, 5 folds, 200 permutations; TEXT_DC: word unigrams, ridge 1, chosen by
                     --tune-text over TEXT_GRID on tuning draws seeded apart, the mean per-document AUC over the 10
                     cells: word/1 0.654, word12/1 0.653, word/10 0.650, word12/10 0.650, word/100 0.649, word12/100
                     0.649; bench/results/doc_scores_text_tuning.json; character 2-4-grams were tried on the topic
                     cells only, within 0.01 of words at 2-3x the cost, and left out); its window AUC and p-value kept
  new_words          qlife.methods.window_stats.new_word_scores: the recurring (monitor.stream.min_docs) new words
                     each document holds, against a vocabulary of VOCAB_ROWS training-like rows per data set (the
                     PCA-fit rows + rows outside every pool, vocabulary_texts; as bench.monitoring_lexical), a peer
                     per-document score (no reference needed)
  supervised_text    (diagnostic) a logistic regression on TF-IDF word 1-2-grams trained on the labelled pools less
                     this draw's rows: how separable the drifted documents are in their words
Also `generator` whole windows, as stage 7's document_auc computes it: window-000 (clean, 400) and window-001
(drifted, 400) of corpus seed rep % 4, each scored against the rep's reference on its own, the AUC of window-001's
documents against window-000's.
Per cell: mean AUC with a t 95% interval over windows, the share of windows with AUC > 0.7 (domain classifier) and
< 0.5 (one-class SVMs), the share with domain classifier > 0.7 while the kernel's < 0.5 (Clopper-Pearson 95%), and
the paired mean difference domain classifier - kernel (t 95%). The check holds in a cell where an OCSVM kernel's
mean AUC is below 0.5 if the domain classifier's mean is above 0.7 (firmly: its interval's lower end too).
The check with the text domain classifier (goal's holds_text_dc / firm_text_dc, text_conclusion): where an SVM
kernel is below 0.5, is text_dc's mean above 0.7; where not, the supervised ceilings on the 16 features and on the
words. Writes bench/results/doc_scores.json (--quick: bench/.cache/doc_scores.quick.json; --tune-text:
bench/results/doc_scores_text_tuning.json, which a later run copies under `text_tuning`). One process, one BLAS
thread: ~23 min per variant on a shared, loaded box (2026-12-06) once the embeddings are cached; --keep-variants
runs one variant and keeps the file's other (same settings).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment

CACHE = Path(__file__).parent / ".cache" / "doc_scores_embeddings.npz"
OUT = RESULTS / "doc_scores.json"
TUNING_OUT = RESULTS / "doc_scores_text_tuning.json"
QUICK_OUT = Path(__file__).parent / ".cache" / "doc_scores.quick.json"
POOL = 2000  # bench.drift.pools(POOL): its reference pools (drifted pools of POOL / 2)
FIT_ROWS = 800  # held_out: rows of each reference pool the PCA is fitted on (never in a reference or a window)
GEN_DOCS, GEN_LIVE, GEN_SEEDS = 3000, 400, (0, 1, 2, 3)
SCENARIOS = ("topic", "vocabulary", "style", "label", "generator")
VARIANTS = ("held_out", "in_sample")
KNN_K = 10
VOCAB_ROWS = 10_000  # new_words' vocabulary: rows per data set (the PCA-fit rows and further ones, vocabulary_texts)
TEXT_DC = {"analyzer": "word", "ridge": 1.0}  # the text domain classifier's settings (TEXT_GRID's tuning choice)
TEXT_GRID = {"analyzer": ["word", "word12"], "ridge": [1.0, 10.0, 100.0]}
GOAL_DC, GOAL_OCSVM = 0.7, 0.5
STAGE_DC_PERMUTATIONS = 200  # stage 7's DomainClassifier: min(monitor.n_permutations, 200)


# ----------------------------------------------------------------------------- data

def texts() -> dict[str, list[str]]:
    """Every text embedded: bench.drift's pools (shared reference pools once) and the generator's corpus of seed 0
    and live windows of each seed in GEN_SEEDS."""
    from bench.drift import pools
    from qlife.data.generator import generate_corpus

    p = pools(POOL)
    out = {"gen_ref": p["topic"][0], "gen_topic": p["topic"][1], "gen_vocab": p["vocabulary"][1],
           "sst_ref": p["style"][0], "sst_style": p["style"][1], "sst_label": p["label"][1]}
    assert p["vocabulary"][0] is p["topic"][0] and p["label"][0] is p["style"][0]
    for s in GEN_SEEDS:
        g = generate_corpus(seed=s, n_docs=GEN_DOCS, live_size=GEN_LIVE)
        if s == GEN_SEEDS[0]:
            out["corpus"] = [d["text"] for d in g.docs]
        out[f"live{s}_clean"] = [d["text"] for d in g.live["window-000"]]
        out[f"live{s}_drift"] = [d["text"] for d in g.live["window-001"]]
    return out


def text_pools(tx: dict[str, list[str]], variant: str) -> dict[str, dict]:
    """projected()'s pools as texts (object arrays, the same rows in the same order): scenario -> {"ref", "clean",
    "drift"}, plus "vocab": the new_words vocabulary's texts of the scenario's data set (`vocabulary_texts`)."""
    extra = vocabulary_texts(tx)
    out = {}
    for base, drifts in (("gen_ref", {"topic": "gen_topic", "vocabulary": "gen_vocab"}),
                         ("sst_ref", {"style": "sst_style", "label": "sst_label"}),
                         ("corpus", {"generator": None})):
        X = np.array(tx[base], dtype=object)
        order = np.random.default_rng(zlib.crc32(base.encode())).permutation(len(X))
        pool = X[order[FIT_ROWS:]] if variant == "held_out" else X
        vocab = list(X[order[:FIT_ROWS]]) + extra["sst2" if base == "sst_ref" else "gen"]
        for s, key in drifts.items():
            if key is None:
                out[s] = {"ref": pool, "clean": [np.array(tx[f"live{g}_clean"], dtype=object) for g in GEN_SEEDS],
                          "drift": [np.array(tx[f"live{g}_drift"], dtype=object) for g in GEN_SEEDS]}
            else:
                out[s] = {"ref": pool, "clean": None, "drift": np.array(tx[key], dtype=object)}
            out[s]["vocab"] = vocab
    return out


def vocabulary_texts(tx: dict[str, list[str]]) -> dict[str, list[str]]:
    """new_words' vocabulary beyond each data set's PCA-fit rows (FIT_ROWS, never in a reference or a window):
    VOCAB_ROWS - FIT_ROWS further training-like rows outside every pool (as bench.monitoring_lexical: SST-2 train
    rows whose text is in no pool, in a seeded order; generator documents of seed 105 not in a pool), so that the
    vocabulary stands for a training split of VOCAB_ROWS rows."""
    from bench.drift import sst2_rows
    from qlife.data.generator import draw_docs

    k = VOCAB_ROWS - FIT_ROWS
    used = {t for v in tx.values() for t in v}
    sst = [r["text"] for r in sst2_rows("train") if r["text"] not in used]
    sst = [sst[i] for i in np.random.default_rng(105).permutation(len(sst))[:k]]
    gen = [t for t in (d["text"] for d in draw_docs(105, k + 500)) if t not in used][:k]
    return {"sst2": sst, "gen": gen}


def embeddings() -> dict[str, np.ndarray]:
    """The encoder's pooled embeddings of every text (cached)."""
    from qlife.params import Params

    p = Params()
    stamp = f"{p.train.model}|{p.train.pooling}|{p.encode.max_length}|{POOL}|{GEN_DOCS}|{GEN_LIVE}|{GEN_SEEDS}"
    if CACHE.exists():
        z = np.load(CACHE)
        if str(z["stamp"]) == stamp:
            return {k: z[k] for k in z.files if k != "stamp"}
    import torch

    from qlife.models import encode_texts, load_encoder

    torch.set_num_threads(1)
    model, tok = load_encoder(p.train.model, p.train.pooling)
    out = {}
    with torch.inference_mode():
        for name, t in texts().items():
            t0 = time.perf_counter()
            out[name] = encode_texts(model, tok, t, p.encode.max_length, p.encode.batch_size,
                                     desc=f"embed {name}")[0].astype(np.float32)
            print(f"embedded {name}: {len(t)} texts in {time.perf_counter() - t0:.0f} s", flush=True)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, stamp=stamp, **out)
    return out


def projected(emb: dict[str, np.ndarray], variant: str, n_features: int = 16) -> dict[str, dict]:
    """scenario -> {"ref": reference pool rows, "clean": clean window pool or None (= the reference pool),
    "drift": drifted pool (a list of pools for `generator`, one per corpus seed)}, projected, not standardised:
    n_features PCA columns and the log residual (Projection.residuals, the basis fitted on the same rows) last."""
    from qlife.methods.projection import fit_pca

    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: one of {VARIANTS}")
    out = {}
    for base, drifts in (("gen_ref", {"topic": "gen_topic", "vocabulary": "gen_vocab"}),
                         ("sst_ref", {"style": "sst_style", "label": "sst_label"}),
                         ("corpus", {"generator": None})):
        X = emb[base].astype(np.float64)
        order = np.random.default_rng(zlib.crc32(base.encode())).permutation(len(X))
        fit, pool = (X[order[:FIT_ROWS]], X[order[FIT_ROWS:]]) if variant == "held_out" else (X, X)
        proj = fit_pca(fit, n_features, residual=True)

        def tf(x: np.ndarray, proj=proj) -> np.ndarray:
            x = x.astype(np.float64)
            return np.column_stack([proj.transform(x), proj.residuals(x)])

        for s, key in drifts.items():
            if key is None:
                out[s] = {"ref": tf(pool), "clean": [tf(emb[f"live{g}_clean"]) for g in GEN_SEEDS],
                          "drift": [tf(emb[f"live{g}_drift"]) for g in GEN_SEEDS]}
            else:
                out[s] = {"ref": tf(pool), "clean": None, "drift": tf(emb[key])}
    return out


def draw_idx(n_pool: int, n_drift: int, n_ref: int, m: int, f: float, seed: int,
             n_clean: int | None = None) -> dict[str, np.ndarray]:
    """bench.drift.draw's draw, as indices: the reference's pool rows, the window's clean rows (from the reference
    pool, or from a separate clean pool of `n_clean` rows), its drifted rows, and the window's order over
    [clean, drifted]. With n_clean None the rows (and the random stream) are exactly bench.drift.draw's."""
    rng = np.random.default_rng(seed)
    k = int(round(f * m))
    if n_clean is None:
        idx = rng.choice(n_pool, n_ref + m - k, replace=False)
        ref, clean = idx[:n_ref], idx[n_ref:]
    else:
        ref, clean = rng.choice(n_pool, n_ref, replace=False), rng.choice(n_clean, m - k, replace=False)
    drifted = rng.choice(n_drift, k, replace=False)
    return {"ref": ref, "clean": clean, "drift": drifted, "order": rng.permutation(m)}


def window_rows(pool: dict, idx: dict, g: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, window, 0/1 mask of drifted window rows) of a draw_idx draw; `g`: the generator's corpus seed."""
    drift = pool["drift"][g] if isinstance(pool["drift"], list) else pool["drift"]
    clean = pool["ref"] if pool["clean"] is None else pool["clean"][g]
    window = np.concatenate([clean[idx["clean"]], drift[idx["drift"]]])
    mask = np.r_[np.zeros(len(idx["clean"]), int), np.ones(len(idx["drift"]), int)]
    return pool["ref"][idx["ref"]], window[idx["order"]], mask[idx["order"]]


def window_texts(tpool: dict, idx: dict, g: int = 0) -> tuple[list[str], list[str]]:
    """window_rows' draw as texts: (reference texts, window texts), the same rows in the same order."""
    drift = tpool["drift"][g] if isinstance(tpool["drift"], list) else tpool["drift"]
    clean = tpool["ref"] if tpool["clean"] is None else tpool["clean"][g]
    window = np.concatenate([clean[idx["clean"]], drift[idx["drift"]]])
    return list(tpool["ref"][idx["ref"]]), list(window[idx["order"]])


def supervised_text_rows(tpool: dict, idx: dict, g: int = 0) -> tuple[list[str], list[str]]:
    """supervised_rows as texts: the labelled (clean, drifted) texts less this draw's rows."""
    drift = tpool["drift"][g] if isinstance(tpool["drift"], list) else tpool["drift"]
    used = np.r_[idx["ref"], idx["clean"]] if tpool["clean"] is None else idx["ref"]
    clean = list(np.delete(tpool["ref"], used))
    if tpool["clean"] is not None:
        clean += list(np.delete(tpool["clean"][g], idx["clean"]))
    return clean, list(np.delete(drift, idx["drift"]))


def supervised_rows(pool: dict, idx: dict, g: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows the supervised diagnostic trains on: clean = the clean pool less this draw's reference and
    window rows, drifted = the drifted pool less this window's drifted rows."""
    drift = pool["drift"][g] if isinstance(pool["drift"], list) else pool["drift"]
    used = np.r_[idx["ref"], idx["clean"]] if pool["clean"] is None else idx["ref"]
    clean = np.delete(pool["ref"], used, axis=0)
    if pool["clean"] is not None:  # the generator: window-000's other rows are clean too
        clean = np.concatenate([clean, np.delete(pool["clean"][g], idx["clean"], axis=0)])
    return clean, np.delete(drift, idx["drift"], axis=0)


# ----------------------------------------------------------------------------- scores

def auc(mask: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(mask, scores))


def knn_scores(ref: np.ndarray, window: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Mean Euclidean distance of each window row to its k nearest reference rows (higher = farther out)."""
    d2 = (window**2).sum(1)[:, None] + (ref**2).sum(1)[None] - 2 * window @ ref.T
    return np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, :k], 0)).mean(1)


def window_scores(mp, ref: np.ndarray, window: np.ndarray, labelled: tuple[np.ndarray, np.ndarray] | None = None,
                  residual: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Every scorer's per-document scores of one window (both standardised here by the reference, as stage 7)
    and the domain classifier's window result. `labelled`: (clean, drifted) rows for the supervised diagnostic.
    `residual`: the last column is the log residual (projected()): the PCA scorers read the others, and the
    residual scorers are added (`residual`, `domain_classifier_res`, `supervised_res`; dc_window gains
    `auc_res`, `p_value_res`)."""
    from qlife.methods.domain_classifier import domain_classifier_test

    mu, sd = ref.mean(0), ref.std(0) + 1e-9
    ref, window = (ref - mu) / sd, (window - mu) / sd
    if labelled is not None:
        labelled = tuple((x - mu) / sd for x in labelled)
    full = (ref, window, labelled)
    if residual:
        ref, window = ref[:, :-1], window[:, :-1]
        labelled = None if labelled is None else tuple(x[:, :-1] for x in labelled)
    scores, w = _pca_scores(mp, ref, window, labelled)
    if residual:
        ref, window, labelled = full
        dc = domain_classifier_test(ref, window, n_folds=5, n_permutations=min(mp.n_permutations,
                                                                              STAGE_DC_PERMUTATIONS),
                                    seed=mp.seed, split_seed=mp.split_seed)
        scores |= {"residual": window[:, -1], "domain_classifier_res": dc.scores}
        w |= {"auc_res": dc.auc, "p_value_res": dc.p_value}
        if labelled is not None:
            scores["supervised_res"] = _supervised(labelled, window)
    return scores, w


def text_scores(mp, ref_texts: list[str], window: list[str], vocab: frozenset[str],
                labelled: tuple[list[str], list[str]] | None = None, **dc) -> tuple[dict[str, np.ndarray], dict]:
    """The window's per-document scores from its texts: the text domain classifier (`text_dc`: qlife.methods.
    text_domain_classifier, TEXT_DC unless `dc` overrides; its window AUC and p-value returned too), new_words'
    per-document score (`new_words`: recurring new words held, monitor.stream.min_docs) and, with `labelled`, the
    supervised text diagnostic (`supervised_text`)."""
    from qlife.methods.text_domain_classifier import text_domain_classifier_test
    from qlife.methods.window_stats import new_word_scores

    r = text_domain_classifier_test(ref_texts, window, n_folds=5, n_permutations=dc.pop("n_permutations", min(
        mp.n_permutations, STAGE_DC_PERMUTATIONS)), seed=mp.seed, split_seed=mp.split_seed, **(TEXT_DC | dc))
    out = {"text_dc": r.scores, "new_words": new_word_scores(vocab, window, mp.stream.min_docs)[0].astype(float)}
    if labelled is not None:
        out["supervised_text"] = _supervised_text(labelled, window)
    return out, {"auc_text": r.auc, "p_value_text": r.p_value}


def _supervised_text(labelled: tuple[list[str], list[str]], window: list[str]) -> np.ndarray:
    """(diagnostic) a logistic regression on TF-IDF word unigrams and bigrams trained on the labelled pools less
    this draw's rows: how separable the drifted documents are in their words (not a method: it sees labels)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    clean, drifted = labelled
    vec = TfidfVectorizer(token_pattern=r"(?u)\w+", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    F = vec.fit_transform(clean + drifted)
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(F, np.r_[np.zeros(len(clean)), np.ones(len(drifted))])
    return clf.decision_function(vec.transform(window))


def _supervised(labelled: tuple[np.ndarray, np.ndarray], window: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    from qlife.methods.domain_classifier import expand

    clean, drifted = labelled
    F = expand(np.concatenate([clean, drifted]), "quadratic")
    fm, fs = F.mean(0), F.std(0) + 1e-12
    clf = LogisticRegression(max_iter=2000).fit((F - fm) / fs, np.r_[np.zeros(len(clean)), np.ones(len(drifted))])
    return clf.decision_function((expand(window, "quadratic") - fm) / fs)


def _pca_scores(mp, ref: np.ndarray, window: np.ndarray, labelled: tuple[np.ndarray, np.ndarray] | None
                ) -> tuple[dict[str, np.ndarray], dict]:
    """window_scores on the (standardised) PCA columns alone."""
    from qlife.methods.domain_classifier import domain_classifier_test
    from qlife.methods.drift import reference_subsample
    from qlife.methods.drifttests import anomaly_scores

    dc = domain_classifier_test(ref, window, n_folds=5, n_permutations=min(mp.n_permutations,
                                                                          STAGE_DC_PERMUTATIONS),
                                seed=mp.seed, split_seed=mp.split_seed)
    svm_ref = ref[reference_subsample(len(ref), mp.ocsvm.max_ref, mp.ref_seed)]
    _, oc = anomaly_scores(mp, svm_ref, window)
    wide = mp.model_copy(update={"quantum": mp.quantum.model_copy(update={"features": ref.shape[1]}),
                                 "ocsvm": mp.ocsvm.model_copy(update={"kernels": ["rbf"]})})
    _, oc16 = anomaly_scores(wide, svm_ref, window)
    scores = {"domain_classifier": dc.scores, **{f"ocsvm_{k}": v for k, v in oc.items()},
              "knn": knn_scores(ref, window), "ocsvm_rbf_16": oc16["rbf"]}
    if labelled is not None:
        scores["supervised"] = _supervised(labelled, window)
    return scores, {"auc": dc.auc, "p_value": dc.p_value}


# ----------------------------------------------------------------------------- summaries

def t_interval(x) -> list[float]:
    from scipy.stats import t

    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return [float(x.mean()), float(x.mean())]
    h = float(t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return [float(x.mean() - h), float(x.mean() + h)]


def share(hits) -> dict:
    from scipy.stats import binomtest

    hits = np.asarray(hits, dtype=bool)
    k, n = int(hits.sum()), len(hits)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"share": k / n, "k": k, "n": n, "ci95": [float(ci.low), float(ci.high)]}


def summarise_cell(aucs: dict[str, list[float]], dc_window: list[dict] | None = None) -> dict:
    """Mean AUC per scorer (t 95%), the shares against the goal's thresholds, the paired differences, and the
    domain classifier's window-level AUC and rejection rate at 0.05."""
    dc = np.asarray(aucs["domain_classifier"])
    out: dict = {"reps": len(dc), "scorers": {}}
    for name, v in aucs.items():
        v = np.asarray(v)
        out["scorers"][name] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                "ci95": t_interval(v), "above_0.7": float((v > GOAL_DC).mean()),
                                "below_0.5": float((v < GOAL_OCSVM).mean())}
    out["vs_ocsvm"] = {}
    for name in (n for n in aucs if n.startswith("ocsvm_")):
        k = np.asarray(aucs[name])
        out["vs_ocsvm"][name] = {"dc_above_and_ocsvm_below": share((dc > GOAL_DC) & (k < GOAL_OCSVM)),
                                 "dc_minus_ocsvm": {"mean": float((dc - k).mean()), "ci95": t_interval(dc - k)},
                                 "dc_wins": float((dc > k).mean())}
        if "text_dc" in aucs:
            t = np.asarray(aucs["text_dc"])
            out["vs_ocsvm"][name] |= {"text_dc_above_and_ocsvm_below": share((t > GOAL_DC) & (k < GOAL_OCSVM)),
                                      "text_dc_minus_ocsvm": {"mean": float((t - k).mean()),
                                                              "ci95": t_interval(t - k)}}
    if dc_window:
        out["dc_window"] = {"auc_mean": float(np.mean([w["auc"] for w in dc_window])),
                            "rejection_rate_0.05": float(np.mean([w["p_value"] < 0.05 for w in dc_window]))}
        if "auc_res" in dc_window[0]:  # the domain classifier with the log residual as a 17th column
            out["dc_window"] |= {"auc_mean_res": float(np.mean([w["auc_res"] for w in dc_window])),
                                 "rejection_rate_0.05_res": float(np.mean([w["p_value_res"] < 0.05
                                                                           for w in dc_window]))}
        if "auc_text" in dc_window[0]:  # the text domain classifier's window AUC and rejections at 0.05
            out["dc_window"] |= {"auc_mean_text": float(np.mean([w["auc_text"] for w in dc_window])),
                                 "rejection_rate_0.05_text": float(np.mean([w["p_value_text"] < 0.05
                                                                            for w in dc_window]))}
    return out


def goal(cell: dict, kernels: list[str]) -> dict:
    """The check in one cell: the kernels whose mean AUC is below 0.5, and whether the domain classifier's mean
    is above 0.7 (holds) and its interval's lower end too (firm)."""
    s = cell["scorers"]
    below = [k for k in kernels if s[k]["mean"] < GOAL_OCSVM]
    dc = s["domain_classifier"]
    out = {"ocsvm_below_0.5": below, "applies": bool(below), "dc_mean": dc["mean"],
           "holds": bool(below) and dc["mean"] > GOAL_DC, "firm": bool(below) and dc["ci95"][0] > GOAL_DC}
    for name, key in (("domain_classifier_res", "dc_res"), ("residual", "residual"), ("text_dc", "text_dc"),
                      ("new_words", "new_words")):  # the same check, with them
        if name in s:
            out |= {f"{key}_mean": s[name]["mean"], f"holds_{key}": bool(below) and s[name]["mean"] > GOAL_DC,
                    f"firm_{key}": bool(below) and s[name]["ci95"][0] > GOAL_DC}
    return out


def conclude(res: dict, variant: str | None = None) -> str:
    """One plain line from a variant's cells (and the generator's whole windows, stage 7's AUC); default the
    headline variant (held_out)."""
    variant = variant or ("held_out" if "held_out" in res["variants"] else next(iter(res["variants"])))
    v = res["variants"][variant]
    cells = dict(v["cells"])
    if v.get("generator_whole_windows"):
        cells["generator whole windows"] = v["generator_whole_windows"]
    applies = {n: c for n, c in cells.items() if c["goal"]["applies"]}
    holds = [n for n, c in applies.items() if c["goal"]["holds"]]
    fails = [n for n in applies if n not in holds]
    oc = [c["scorers"][k]["mean"] for c in cells.values() for k in c["scorers"] if k.startswith("ocsvm_")
          and k != "ocsvm_rbf_16"]
    dc = [c["scorers"]["domain_classifier"]["mean"] for c in cells.values()]
    line = (f"{variant}: a one-class SVM kernel's mean per-document AUC is below 0.5 in {len(applies)} of "
            f"{len(cells)} cells (kernel means {min(oc):.2f}-{max(oc):.2f}); there the domain classifier's mean "
            f"is above 0.7 in {len(holds)} ({', '.join(holds) or 'none'})")
    if fails:
        line += f" and not in {len(fails)} ({', '.join(fails)})"
    line += f"; its means over all cells {min(dc):.2f}-{max(dc):.2f}"
    sup = [c["scorers"]["supervised"]["mean"] for c in cells.values() if "supervised" in c["scorers"]]
    if sup:
        line += f"; a supervised classifier on the same 16 features reaches {min(sup):.2f}-{max(sup):.2f}"
    verdict = "the goal holds" if applies and not fails else ("the goal does not hold" if not holds
                                                              else "the goal holds only in part")
    out = f"{line}: {verdict}."
    out += text_conclusion(cells, applies)
    for key, what in (("dc_res", "with the log residual as a 17th column the domain classifier's mean"),
                      ("residual", "the residual alone"), ("new_words", "new_word_scores (a per-document score)")):
        if all(f"holds_{key}" in c["goal"] for c in cells.values()):
            h = [n for n, c in applies.items() if c["goal"][f"holds_{key}"]]
            means = [c["goal"][f"{key}_mean"] for c in cells.values()]
            out += (f" {what[0].upper() + what[1:]} is above 0.7 in {len(h)} of those {len(applies)} cells "
                    f"({', '.join(h) or 'none'}; means {min(means):.2f}-{max(means):.2f}).")
    return out


def text_conclusion(cells: dict, applies: dict) -> str:
    """The check with the text domain classifier: in how many cells where an SVM kernel is below 0.5 its mean
    per-document AUC is above 0.7, and in the others its AUC and the supervised ceilings (16 features, words)."""
    if not all("holds_text_dc" in c["goal"] for c in cells.values()):
        return ""
    holds = [n for n, c in applies.items() if c["goal"]["holds_text_dc"]]
    firm = [n for n, c in applies.items() if c["goal"]["firm_text_dc"]]
    fails = [n for n in applies if n not in holds]
    means = [c["goal"]["text_dc_mean"] for c in cells.values()]

    def ceiling(c: dict, name: str) -> str:
        return f"{c['scorers'][name]['mean']:.2f}" if name in c["scorers"] else "n/a"

    out = (f" The text domain classifier (TF-IDF of the texts, cross-fitted ridge): its mean per-document AUC is above "
           f"0.7 in {len(holds)} of those {len(applies)} cells ({', '.join(holds) or 'none'}; the interval's lower end "
           f"too in {len(firm)}); means {min(means):.2f}-{max(means):.2f}")
    if fails:
        out += "; it fails in " + "; ".join(
            f"{n} ({applies[n]['goal']['text_dc_mean']:.2f}: supervised ceiling {ceiling(applies[n], 'supervised')} "
            f"on the 16 features, {ceiling(applies[n], 'supervised_text')} on the words)" for n in fails)
    return out + "."


def tune_text(mp, tx: dict, args: argparse.Namespace) -> dict:
    """The text domain classifier's settings (TEXT_GRID) on tuning draws (seeded "doc_scores_tune/...", apart from
    the evaluation's), held_out pools, every scenario and fraction, 1 permutation (the p-value does not enter):
    the mean per-document AUC per setting and cell; the choice is the best mean over the cells."""
    import itertools

    tpools = text_pools(tx, "held_out")
    grid = [dict(zip(TEXT_GRID, v)) for v in itertools.product(*TEXT_GRID.values())]
    res: dict[str, dict[str, float]] = {}
    for s in args.scenarios:
        tpool = tpools[s]
        for f in args.fractions:
            aucs: dict[str, list[float]] = {}
            for rep in range(args.tune_reps):
                g = rep % len(GEN_SEEDS) if s == "generator" else 0
                n_drift = len(tpool["drift"][g]) if s == "generator" else len(tpool["drift"])
                idx = draw_idx(len(tpool["ref"]), n_drift, args.n_ref, args.m, f,
                               seed=zlib.crc32(f"doc_scores_tune/{s}/{f}/{rep}".encode()),
                               n_clean=len(tpool["clean"][g]) if s == "generator" else None)
                ref_t, window_t = window_texts(tpool, idx, g)
                mask = np.r_[np.zeros(len(idx["clean"]), int), np.ones(len(idx["drift"]), int)][idx["order"]]
                for cfg in grid:
                    sc, _ = text_scores(mp, ref_t, window_t, frozenset(), n_permutations=1, **cfg)
                    aucs.setdefault(f"{cfg['analyzer']}/{cfg['ridge']:g}", []).append(auc(mask, sc["text_dc"]))
            for k, v in aucs.items():
                res.setdefault(k, {})[f"{s} f={f}"] = float(np.mean(v))
            print(f"tune {s} f={f}: " + "  ".join(f"{k} {np.mean(v):.3f}" for k, v in aucs.items()), flush=True)
    means = {k: float(np.mean(list(v.values()))) for k, v in res.items()}
    best = max(means, key=means.get)
    return {"reps": args.tune_reps, "grid": TEXT_GRID, "mean_over_cells": means, "cells": res, "best": best,
            "used": f"{TEXT_DC['analyzer']}/{TEXT_DC['ridge']:g}"}


# ----------------------------------------------------------------------------- run

def run_variant(mp, emb: dict, tx: dict, variant: str, args: argparse.Namespace) -> dict:
    from qlife.methods.window_stats import vocabulary

    feats, tpools = projected(emb, variant, args.n_features), text_pools(tx, variant)
    cells, whole = {}, None
    for s in args.scenarios:
        pool, tpool = feats[s], tpools[s]
        vocab = vocabulary(tpool["vocab"])
        for f in args.fractions:
            aucs: dict[str, list[float]] = {}
            dcw = []
            for rep in range(args.reps):
                g = rep % len(GEN_SEEDS) if s == "generator" else 0
                n_drift = len(pool["drift"][g]) if s == "generator" else len(pool["drift"])
                idx = draw_idx(len(pool["ref"]), n_drift, args.n_ref, args.m, f,
                               seed=zlib.crc32(f"doc_scores/{s}/{f}/{rep}".encode()),
                               n_clean=len(pool["clean"][g]) if s == "generator" else None)
                ref, window, mask = window_rows(pool, idx, g)
                sc, w = window_scores(mp, ref, window, supervised_rows(pool, idx, g), residual=True)
                ref_t, window_t = window_texts(tpool, idx, g)
                assert len(window_t) == len(window) and len(ref_t) == len(ref)
                sc_t, w_t = text_scores(mp, ref_t, window_t, vocab, supervised_text_rows(tpool, idx, g))
                sc, w = sc | sc_t, w | w_t
                for name, v in sc.items():
                    aucs.setdefault(name, []).append(auc(mask, v))
                dcw.append(w)
            cell = {"scenario": s, "f": f, "m": args.m, "n_ref": args.n_ref, **summarise_cell(aucs, dcw),
                    "aucs": {n: [round(x, 4) for x in v] for n, v in aucs.items()}}
            cell["goal"] = goal(cell, [f"ocsvm_{k}" for k in mp.ocsvm.kernels])
            cells[f"{s} f={f}"] = cell
            sc_ = cell["scorers"]
            print(f"{variant:9s} {s:10s} f={f:.2f}: " + "  ".join(
                f"{n} {v['mean']:.3f}" for n, v in sc_.items()) + f"  goal {cell['goal']}", flush=True)
        if s == "generator":
            whole = generator_whole_windows(mp, feats[s], tpool, vocab, args)
            print(f"{variant:9s} generator whole windows: " + "  ".join(
                f"{n} {v['mean']:.3f}" for n, v in whole["scorers"].items()), flush=True)
    return {"cells": cells, "generator_whole_windows": whole}


def generator_whole_windows(mp, pool: dict, tpool: dict, vocab: frozenset[str], args: argparse.Namespace) -> dict:
    """Stage 7's document_auc on the generator: per rep, window-000 and window-001 of corpus seed rep % 4 scored
    against the rep's reference separately; the AUC of window-001's documents against window-000's."""
    aucs: dict[str, list[float]] = {}
    for rep in range(args.reps):
        g = rep % len(GEN_SEEDS)
        rng = np.random.default_rng(zlib.crc32(f"doc_scores/generator/whole/{rep}".encode()))
        pick = rng.choice(len(pool["ref"]), args.n_ref, replace=False)
        ref, ref_t = pool["ref"][pick], list(tpool["ref"][pick])
        clean, _ = window_scores(mp, ref, pool["clean"][g], residual=True)
        drift, _ = window_scores(mp, ref, pool["drift"][g], residual=True)
        clean |= text_scores(mp, ref_t, list(tpool["clean"][g]), vocab)[0]
        drift |= text_scores(mp, ref_t, list(tpool["drift"][g]), vocab)[0]
        for name in clean:
            aucs.setdefault(name, []).append(auc(np.r_[np.zeros(len(clean[name])), np.ones(len(drift[name]))],
                                                 np.r_[clean[name], drift[name]]))
    out = {"window_size": GEN_LIVE, "n_ref": args.n_ref, **summarise_cell(aucs),
           "aucs": {n: [round(x, 4) for x in v] for n, v in aucs.items()}}
    out["goal"] = goal(out, [f"ocsvm_{k}" for k in mp.ocsvm.kernels])
    return out


SAME = ("reps", "fractions", "m", "n_ref", "n_features", "scenarios")  # what a kept variant's run must share


def kept_variants(args: argparse.Namespace) -> tuple[dict, float | None]:
    """--keep-variants: the variants of the results file this run does not run, when its run had the same settings
    (SAME, the text domain classifier's) and its wall seconds; ({}, None) otherwise."""
    if not OUT.exists():
        return {}, None
    old = json.loads(OUT.read_text())
    c = old.get("config", {})
    if any(c.get(k) != getattr(args, k) for k in SAME) or c.get("text_dc") != TEXT_DC:
        print("--keep-variants: the results file's settings differ: not kept", flush=True)
        return {}, None
    return {v: r for v, r in old["variants"].items() if v not in args.variants}, c.get("wall_s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument("--m", type=int, default=200)
    ap.add_argument("--n-ref", type=int, default=600)
    ap.add_argument("--n-features", type=int, default=16, help="encode.n_features")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--quick", action="store_true", help="3 reps, f = 0.2, held_out only (bench/.cache)")
    ap.add_argument("--tune-text", action="store_true", help="tune the text domain classifier (TEXT_GRID) on tuning "
                    "draws and write bench/results/doc_scores_text_tuning.json; nothing else")
    ap.add_argument("--tune-reps", type=int, default=3)
    ap.add_argument("--keep-variants", action="store_true", help="keep the variants of bench/results/doc_scores.json "
                    "that this run does not run (its settings checked equal): one variant per run, one file")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.fractions, args.variants = 3, [0.2], ["held_out"]
    from threadpoolctl import threadpool_limits

    from qlife.params import Params

    mp = Params().monitor
    t0 = time.perf_counter()
    with threadpool_limits(1):
        tx = texts()
        if args.tune_text:
            TUNING_OUT.write_text(json.dumps({**tune_text(mp, tx, args), "wall_s": time.perf_counter() - t0,
                                              "environment": environment()}, indent=1))
            print(f"wrote {TUNING_OUT}")
            return
        emb = embeddings()
        t_embed = time.perf_counter() - t0
        res = {"variants": {v: run_variant(mp, emb, tx, v, args) for v in args.variants}}
    kept, kept_wall = kept_variants(args) if args.keep_variants else ({}, None)
    res["variants"] = {v: kept.get(v) or res["variants"][v] for v in VARIANTS if v in kept or v in res["variants"]}
    if TUNING_OUT.exists():
        res["text_tuning"] = {k: v for k, v in json.loads(TUNING_OUT.read_text()).items() if k != "environment"}
    res["conclusion"] = conclude(res)
    res["conclusions"] = {v: conclude(res, v) for v in res["variants"]}
    res["config"] = {**vars(args), "pool": POOL, "fit_rows": FIT_ROWS, "gen_docs": GEN_DOCS, "gen_live": GEN_LIVE,
                     "gen_seeds": list(GEN_SEEDS), "knn_k": KNN_K, "goal": {"dc_above": GOAL_DC,
                                                                            "ocsvm_below": GOAL_OCSVM},
                     "dc_permutations": min(mp.n_permutations, STAGE_DC_PERMUTATIONS),
                     "text_dc": TEXT_DC, "vocab_rows": VOCAB_ROWS, "new_words_min_docs": mp.stream.min_docs,
                     "ocsvm": mp.ocsvm.model_dump(mode="json"), "quantum_features": mp.quantum.features,
                     "wall_s": time.perf_counter() - t0, "embed_wall_s": t_embed,
                     "kept_variants": sorted(kept), "kept_wall_s": kept_wall}
    res["environment"] = environment()
    out = QUICK_OUT if args.quick else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(res["conclusion"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
