"""Near-duplicate embedders and the teacher's CPU inference: speed and quality, on the same texts in one run.

Embedders (curate.embedder, qlife/dedup.py): the teacher (train.model, mean-pooled, curate.embed_max_length
tokens) run four ways through qlife.inference (torch float32, the reference; torch int8: dynamic quantization of
its nn.Linear layers; ONNX Runtime float32; ONNX Runtime int8: dynamic quantization of its MatMuls), static
(curate's: a token table distilled from the teacher before curation, qlife.methods.static_embed.teacher_table,
with curate.static's settings) and tfidf (TF-IDF + SVD, curate.embed_dim components, fitted on each corpus).

Corpora, each an evaluation corpus and a separate tuning corpus (where each embedder's own best eps is chosen):
(a) planted: the generator's default corpus (bench.dedup.generated_corpus: 1,500 documents, 6% exact and 6% near
    copies, seed 0); tuning: the same generator at seed 1 with 600 documents.
(b) SST-2 with planted paraphrases: the 1,821 test sentences plus a paraphrase of 10% of those with >= 6 words;
    tuning: 600 train rows of >= 8 words (distinct, none inside another) plus 10%. A paraphrase (seeded, numpy):
    1-2 word edits, each one of: drop a word, swap two adjacent words, a typo in a word of >= 4 letters (two
    letters swapped, one dropped or one doubled); then, each with probability 1/2, a case change (the first
    letter capitalised, or the whole text upper-cased) and a punctuation change (the final mark dropped or " ."
    added, or a " ," removed or inserted). No synonyms: the copy keeps the original's words but for the edits.
Near-duplicate precision / recall / F1: the exact hash first (as curate), then classical SemDeDup (k-means with
curate.n_clusters, curate.keep, curate.seed; one clustering per embedding, every eps on it) at curate.eps and at
the embedder's best eps on the tuning corpus (grid 0.01..0.30), per document against the planted near-duplicate
groups among the texts that reach SemDeDup (a group of s members expects s - 1 removals, bench.dedup's scoring).
Speed: documents per second on each evaluation corpus's texts (tokenisation included), torch and ONNX Runtime
at 2 threads (BLAS at 1); static and tfidf best of --repeat (static: its word cache emptied each time), the
teacher one pass after a warm-up batch; the teacher ways take turns on each set of texts, and their speed-up is
judged on their totals over every pass (teacher_totals: less at the mercy of the shared machine's load). The
static table's one-off build (teacher forward passes of one-token documents, PCA) is reported apart (build_s).
Teacher quality cost: each way's cosine to torch float32's embedding of every evaluation text, and a logistic
regression (scikit-learn, C = 1, on the unit embeddings) trained on the labelled SST-2 originals of both SST-2
corpora and scored on the 872 validation sentences: accuracy, and agreement with float32's predictions; and, the
goal's figure, the same regression cross-fitted over all those labelled sentences (10 folds, the same for every
way: ~3x the scored sentences, cross_fitted_accuracy), the paired difference with its 95% bootstrap interval.
Goals (issue 37): static >= 5,000 docs/s on 2 cores with planted-corpus near-duplicate F1 within 0.05 of the
teacher's (float32, each at its best eps and at curate.eps); a teacher way >= 2x torch float32's docs/s with
validation accuracy within 0.005 of float32's (and mean cosine >= 0.99).
The machine is shared: docs/s moves with the other jobs on it (the load average is recorded per row).

    python -m bench.embedders [--quick] [--repeat 5]   -> bench/results/embedders.json (--quick: a tiny run,
                                                           bench/.cache/embedders_quick.json, git-ignored)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bench import common
from bench.common import table, write
from bench.dedup import generated_corpus
from qlife.arrays import unit_rows
from qlife.data.generator import generate_corpus
from qlife.data.text import normalize_text
from qlife.methods.embed import TfidfSvdEmbedder
from qlife.methods.semdedup import (
    cosine_similarity_matrix,
    dedup_scores,
    exact_duplicate_of,
    kmeans,
    planted_groups,
    semdedup,
)
from qlife.params import Params

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
THREADS = 2
EPS_GRID = np.round(np.arange(0.01, 0.301, 0.01), 3)
WAYS = [("torch", "float32"), ("torch", "int8"), ("onnxruntime", "float32"), ("onnxruntime", "int8")]


# ----------------------------------------------------------------------------- corpora

def _typo(rng: np.random.Generator, word: str) -> str:
    i = int(rng.integers(len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def paraphrase(rng: np.random.Generator, text: str) -> str:
    """1-2 word edits (drop, adjacent swap, typo), then maybe a case and a punctuation change (module doc)."""
    words = text.split()
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(3))
        long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if kind == 0 and len(words) > 4:
            words.pop(int(rng.integers(len(words))))
        elif kind == 1 and len(words) > 2:
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        elif long:
            i = int(rng.choice(long))
            words[i] = _typo(rng, words[i])
    out = " ".join(words)
    if rng.random() < 0.5:
        out = out.upper() if rng.random() < 0.3 else out[:1].upper() + out[1:]
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            out = out[:-2] if out.endswith((" .", " !", " ?")) else out + " ."
        else:
            out = out.replace(" ,", "", 1) if " ," in out else out.replace(" ", " , ", 1)
    return out


def plant(texts: list[str], labels: list[int], frac: float, seed: int) -> dict:
    """`texts` + a paraphrase of `frac` of them (those of >= 6 words), shuffled; truth copy -> original."""
    rng = np.random.default_rng(seed)
    candidates = [i for i, t in enumerate(texts) if len(t.split()) >= 6]
    out, lab, truth = list(texts), list(labels), {}
    for i in rng.choice(candidates, size=min(round(frac * len(texts)), len(candidates)), replace=False):
        for _ in range(20):
            copy = paraphrase(rng, texts[i])
            if normalize_text(copy) != normalize_text(texts[i]):
                truth[len(out)] = int(i)
                out.append(copy)
                lab.append(None)  # a copy is no labelled original
                break
    order = rng.permutation(len(out))
    pos = np.empty(len(out), dtype=int)
    pos[order] = np.arange(len(out))
    return {"texts": [out[j] for j in order], "labels": [lab[j] for j in order],
            "truth": {int(pos[c]): int(pos[o]) for c, o in truth.items()}}


def _read(split: str) -> list[dict]:
    with (SST2 / f"{split}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def sst2_corpora(n_eval: int | None, n_tune: int, n_val: int | None, seed: int) -> tuple[dict, dict, dict] | None:
    if not (SST2 / "test.jsonl").exists():
        return None
    test = _read("test")[:n_eval]
    seen, tune = set(), []
    rows = [r for r in _read("train") if len(r["text"].split()) >= 8]
    for j in np.random.default_rng(seed).permutation(len(rows)):
        key = normalize_text(rows[j]["text"])
        if key not in seen and not any(key in s or s in key for s in seen):
            seen.add(key)
            tune.append(rows[j])
            if len(tune) == n_tune:
                break
    val = _read("validation")[:n_val]
    ev = plant([r["text"] for r in test], [r["label"] for r in test], 0.10, seed)
    tu = plant([r["text"] for r in tune], [r["label"] for r in tune], 0.10, seed + 1)
    ev.update(name=f"sst2-test-{len(ev['texts'])}", notes=f"{len(test)} test sentences + {len(ev['truth'])} "
              "paraphrases")
    tu.update(name=f"sst2-train-tune-{len(tu['texts'])}", notes=f"{len(tune)} train rows + {len(tu['truth'])} "
              "paraphrases")
    return ev, tu, {"texts": [r["text"] for r in val], "labels": [r["label"] for r in val]}


def generator_corpora(quick: bool) -> tuple[dict, dict]:
    from qlife.params import Curate

    g = Curate().generator.model_dump()
    if quick:
        ev = generate_corpus(**{**g, "n_docs": 300})
        ev = {"texts": [d["text"] for d in ev.docs], "truth": _truth(ev), "name": f"generated-{len(ev.docs)}",
              "notes": "quick"}
    else:
        ev = generated_corpus()
    tu = generate_corpus(**{**g, "seed": 1, "n_docs": 200 if quick else 600})
    tu = {"texts": [d["text"] for d in tu.docs], "truth": _truth(tu), "name": f"generated-seed1-{len(tu.docs)}",
          "notes": "tuning"}
    return ev, tu


def _truth(c) -> dict[int, int]:
    pos = {d["id"]: i for i, d in enumerate(c.docs)}
    return {pos[k]: pos[v] for k, v in {**c.exact_duplicates, **c.near_duplicates}.items()}


# ----------------------------------------------------------------------------- scoring

def near_dup_setup(corpus: dict) -> dict:
    """The texts that reach SemDeDup (after the exact hash) and the planted groups among them."""
    texts = corpus["texts"]
    rest = np.flatnonzero(exact_duplicate_of(texts) < 0)
    ids = [str(i) for i in rest]
    groups = [g for g in planted_groups(ids, {str(k): str(v) for k, v in corpus["truth"].items()}) if len(g) > 1]
    return {"rest": rest, "texts": [texts[i] for i in rest], "groups": groups}


def scores_over_eps(X: np.ndarray, groups: list, p: Params, grid: np.ndarray) -> dict[float, dict]:
    cp = p.curate
    with threadpool_limits(1):
        labels, centroids = kmeans(X, min(cp.n_clusters, len(X)), seed=cp.seed)
        out = {}
        for eps in grid:
            r = semdedup(X, labels, cosine_similarity_matrix, 1.0 - eps, keep=cp.keep, seed=cp.seed,
                         centroids=centroids)
            out[float(eps)] = dedup_scores(r.removed, groups)
    return out


# ----------------------------------------------------------------------------- embedders

def _load() -> float:
    return round(os.getloadavg()[0], 2)


def teacher_ways(p: Params, ways: list[tuple[str, str]]) -> dict:
    from qlife.models import load_encoder

    out = {}
    for rt, pr in ways:
        t0 = time.perf_counter()
        model, tok = load_encoder(p.train.model, p.train.pooling, rt, pr)
        out[f"{rt}/{pr}"] = {"model": model, "tok": tok, "load_s": time.perf_counter() - t0}
    return out


def teacher_embed(way: dict, texts: list[str], p: Params) -> tuple[np.ndarray, float]:
    from qlife.models import encode_texts

    encode_texts(way["model"], way["tok"], texts[:64], p.curate.embed_max_length, 64, desc="warm-up")
    t0 = time.perf_counter()
    X, _ = encode_texts(way["model"], way["tok"], texts, p.curate.embed_max_length, 64, desc="bench")
    return unit_rows(X.astype(np.float64)), time.perf_counter() - t0


def static_embed(texts: list[str], p: Params, repeat: int) -> tuple[np.ndarray, float, dict]:
    """Curate's static embedder: the table built (uncached: its real build time) on these texts, then timed."""
    from qlife.methods.static_embed import teacher_table

    cp, st = p.curate, p.curate.static
    t0 = time.perf_counter()
    table, info = teacher_table(p.train.model, p.train.pooling, texts, st.dims, st.vocabulary, st.sif_a,
                                cp.embed_max_length, st.batch_size, cache=False)
    info["build_s"] = time.perf_counter() - t0

    def run() -> np.ndarray:  # tokenise, SIF weights of this corpus, lookup and weighted mean, unit rows
        table._ids = None  # its word cache starts empty each time, as in a fresh curate process
        ids = table.token_ids(texts)
        return unit_rows(table.reweighted(ids, st.sif_a).encode_ids(ids).astype(np.float64))

    best, X = _best(run, repeat)
    return X, best, info


def tfidf_embed(texts: list[str], p: Params, repeat: int) -> tuple[np.ndarray, float]:
    def run() -> np.ndarray:
        return TfidfSvdEmbedder(p.curate.embed_dim, p.curate.seed).fit_transform(texts)

    with threadpool_limits(1):  # as curate runs it
        return _best(run, repeat)


def _best(fn, repeat: int):
    out, best = fn(), float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ----------------------------------------------------------------------------- run

def run(quick: bool, repeat: int, p: Params) -> dict:
    torch.set_num_threads(THREADS)
    seed = p.curate.seed
    gen_eval, gen_tune = generator_corpora(quick)
    sst = sst2_corpora(300 if quick else None, 200 if quick else 600, 200 if quick else None, seed)
    corpora = {"planted": (gen_eval, gen_tune)}
    if sst is None:
        print(f"skipped SST-2: {SST2} not found")
    else:
        corpora["sst2"] = sst[:2]
    ways = teacher_ways(p, WAYS)
    embedders = [f"teacher {w}" for w in ways] + ["static", "tfidf"]
    X: dict[tuple[str, str, str], np.ndarray] = {}  # (embedder, corpus, eval|tune) -> rows
    speed: dict[tuple[str, str], dict] = {}
    static_info = {}
    totals: dict[str, dict] = {}  # each teacher way over every pass (the ways take turns on each set of texts)
    setups = {(c, part): near_dup_setup(corpus) for c, pair in corpora.items()
              for part, corpus in zip(("eval", "tune"), pair)}
    for (c, part), s in setups.items():
        texts = s["texts"]
        print(f"{c} {part}: {len(texts)} texts reach SemDeDup, {len(s['groups'])} planted groups", flush=True)
        for w, way in ways.items():
            load = _load()
            X[f"teacher {w}", c, part], sec = teacher_embed(way, texts, p)
            total = totals.setdefault(f"teacher {w}", {"docs": 0, "seconds": 0.0})
            total["docs"] += len(texts)
            total["seconds"] += sec
            if part == "eval":
                speed[f"teacher {w}", c] = {"seconds": sec, "docs_per_s": len(texts) / sec, "load_avg": load}
            print(f"  teacher {w}: {len(texts) / sec:,.0f} docs/s (load {load})", flush=True)
        load = _load()
        X["static", c, part], sec, info = static_embed(texts, p, repeat)
        static_info[c, part] = info
        if part == "eval":
            speed["static", c] = {"seconds": sec, "docs_per_s": len(texts) / sec, "load_avg": load,
                                  "build_s": info["build_s"], "table_tokens": info["table_tokens"]}
        print(f"  static: {len(texts) / sec:,.0f} docs/s, table built in {info['build_s']:.1f} s", flush=True)
        load = _load()
        sec, X["tfidf", c, part] = tfidf_embed(texts, p, repeat)
        if part == "eval":
            speed["tfidf", c] = {"seconds": sec, "docs_per_s": len(texts) / sec, "load_avg": load}

    rows, eps0 = [], p.curate.eps
    for c in corpora:
        for e in embedders:
            tune = scores_over_eps(X[e, c, "tune"], setups[c, "tune"]["groups"], p, EPS_GRID)
            best_eps = max(tune, key=lambda k: (round(tune[k]["f1"], 6), -k))  # ties: the smaller eps
            ev = scores_over_eps(X[e, c, "eval"], setups[c, "eval"]["groups"], p, np.array([eps0, best_eps]))
            at0, atb = ev[float(eps0)], ev[float(best_eps)]
            rows.append({"corpus": c, "embedder": e, "docs": len(setups[c, "eval"]["texts"]),
                         **{k: v for k, v in speed[e, c].items()},
                         "precision": at0["precision"], "recall": at0["recall"], "f1": at0["f1"],
                         "best_eps": best_eps, "tune_f1": tune[best_eps]["f1"],
                         "precision_best": atb["precision"], "recall_best": atb["recall"], "f1_best": atb["f1"],
                         "removed": at0["removed"], "expected": at0["expected"]})
    quality = teacher_quality(X, corpora, ways, sst, setups, p)
    for r in rows:
        q = quality.get(r["embedder"])
        if q:
            r["cosine_mean"], r["cosine_min"] = q["cosine_mean"][r["corpus"]], q["cosine_min"][r["corpus"]]
    for t in totals.values():
        t["docs_per_s"] = t["docs"] / t["seconds"]
    notes = {f"{c} {part}": corpus["notes"] for c, pair in corpora.items()
             for part, corpus in zip(("eval", "tune"), pair)}
    return {"rows": rows, "quality": quality, "teacher_totals": totals, "corpora": notes,
            "static_tables": {f"{c} {part}": {k: v for k, v in info.items() if k != "cache"}
                              for (c, part), info in static_info.items()}}


def teacher_quality(X: dict, corpora: dict, ways: dict, sst, setups: dict, p: Params) -> dict:
    """Each way against torch float32: cosine per evaluation text; SST-2 validation accuracy of a logistic
    regression on its embeddings (trained on the labelled SST-2 originals of both SST-2 corpora)."""
    from sklearn.linear_model import LogisticRegression

    ref = "teacher torch/float32"
    out = {}
    val_X = {}
    if sst is not None:
        val = sst[2]
        for w, way in ways.items():
            val_X[w] = teacher_embed(way, val["texts"], p)[0]
    for w in ways:
        e = f"teacher {w}"
        cos = {c: np.einsum("ij,ij->i", X[e, c, "eval"], X[ref, c, "eval"]) for c in corpora}
        q = {"cosine_mean": {c: float(v.mean()) for c, v in cos.items()},
             "cosine_min": {c: float(v.min()) for c, v in cos.items()}}
        if sst is not None:
            feats, ys = [], []
            for part, corpus in zip(("eval", "tune"), sst[:2]):
                s = setups["sst2", part]
                lab = [corpus["labels"][i] for i in s["rest"]]
                keep = np.array([y is not None for y in lab])
                feats.append(X[e, "sst2", part][keep])
                ys.append(np.array([y for y in lab if y is not None]))
            clf = LogisticRegression(C=1.0, max_iter=2000).fit(np.concatenate(feats), np.concatenate(ys))
            q["train_docs"] = int(sum(len(y) for y in ys))
            q["val_pred"] = clf.predict(val_X[w])
            q["val_accuracy"] = float((q["val_pred"] == np.array(sst[2]["labels"])).mean())
        out[e] = q
    if sst is not None:
        for q in out.values():
            q["val_agreement_with_float32"] = float((q["val_pred"] == out[ref]["val_pred"]).mean())
        for q in out.values():
            q["val_accuracy_minus_float32"] = q["val_accuracy"] - out[ref]["val_accuracy"]
            del q["val_pred"]
        cv = cross_fitted_accuracy({w: _labelled(X, f"teacher {w}", sst, setups) + (val_X[w],) for w in ways},
                                   np.array(sst[2]["labels"]))
        for w in ways:
            out[f"teacher {w}"].update(cv[w])
    return out


def _labelled(X: dict, e: str, sst, setups: dict) -> tuple[np.ndarray, np.ndarray]:
    """The labelled SST-2 originals of both SST-2 corpora (the paraphrases have no label): rows and labels."""
    feats, ys = [], []
    for part, corpus in zip(("eval", "tune"), sst[:2]):
        lab = [corpus["labels"][i] for i in setups["sst2", part]["rest"]]
        keep = np.array([y is not None for y in lab])
        feats.append(X[e, "sst2", part][keep])
        ys.append(np.array([y for y in lab if y is not None]))
    return np.concatenate(feats), np.concatenate(ys)


def cross_fitted_accuracy(data: dict, val_y: np.ndarray, folds: int = 10, seed: int = 0,
                          resamples: int = 2000) -> dict:
    """Accuracy of a logistic regression on every labelled SST-2 sentence, each predicted by a model that did not
    see it (stratified 10-fold over the originals and the validation sentences pooled, the same folds for every
    way), and each way's paired difference from torch float32 with a 95% bootstrap interval over the sentences.
    The single validation split (val_accuracy) scores 872 sentences, where one sentence is 0.0011 of accuracy and
    two ways that disagree on ~2% of them differ by +-0.005 by chance; this scores ~3x as many."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    ways = list(data)
    ref = "torch/float32"
    pooled = {w: (np.concatenate([Xtr, Xval]), np.concatenate([ytr, val_y])) for w, (Xtr, ytr, Xval) in data.items()}
    y = pooled[ref][1]
    split = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(pooled[ref][0], y))
    right = {}
    for w in ways:
        X = pooled[w][0]
        pred = np.empty_like(y)
        for tr, te in split:
            pred[te] = LogisticRegression(C=1.0, max_iter=2000).fit(X[tr], y[tr]).predict(X[te])
        right[w] = (pred == y).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    out = {}
    for w in ways:
        d = right[w] - right[ref]
        boot = d[idx].mean(1)
        out[w] = {"cv_docs": int(len(y)), "cv_folds": folds, "cv_accuracy": float(right[w].mean()),
                  "cv_accuracy_minus_float32": float(d.mean()),
                  "cv_accuracy_minus_float32_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}
    return out


def checks(res: dict) -> dict:
    by = {(r["corpus"], r["embedder"]): r for r in res["rows"]}
    out = {}
    st, te = by.get(("planted", "static")), by.get(("planted", "teacher torch/float32"))
    if st and te:
        sst_static = by.get(("sst2", "static"), st)
        out["static"] = {
            "docs_per_s_min": min(st["docs_per_s"], sst_static["docs_per_s"]),
            "docs_per_s_at_least_5000": min(st["docs_per_s"], sst_static["docs_per_s"]) >= 5000,
            "planted_f1_minus_teacher_at_curate_eps": st["f1"] - te["f1"],
            "planted_f1_minus_teacher_at_best_eps": st["f1_best"] - te["f1_best"],
            "planted_f1_within_0.05_at_curate_eps": st["f1"] >= te["f1"] - 0.05,
            "planted_f1_within_0.05_at_best_eps": st["f1_best"] >= te["f1_best"] - 0.05,
        }
    q = res["quality"]
    for w in ("torch/int8", "onnxruntime/float32", "onnxruntime/int8"):
        e = f"teacher {w}"
        if e not in q:
            continue
        rows = [r for r in res["rows"] if r["embedder"] == e]
        ref = {r["corpus"]: r for r in res["rows"] if r["embedder"] == "teacher torch/float32"}
        speedup = {r["corpus"]: r["docs_per_s"] / ref[r["corpus"]]["docs_per_s"] for r in rows}
        tot = res["teacher_totals"]
        speedup["all_passes"] = tot[e]["docs_per_s"] / tot["teacher torch/float32"]["docs_per_s"]
        acc, cv = q[e].get("val_accuracy_minus_float32"), q[e].get("cv_accuracy_minus_float32")
        cos = min(q[e]["cosine_mean"].values())
        out[e] = {"speedup": speedup, "at_least_2x": speedup["all_passes"] >= 2,
                  "val_accuracy_minus_float32": acc,
                  "val_accuracy_within_0.005": None if acc is None else abs(acc) <= 0.005,
                  # the goal's figure: the cross-fitted difference over ~3x the sentences (cross_fitted_accuracy)
                  "cv_accuracy_minus_float32": cv,
                  "cv_accuracy_minus_float32_ci95": q[e].get("cv_accuracy_minus_float32_ci95"),
                  "accuracy_within_0.005": None if cv is None else abs(cv) <= 0.005,
                  "cosine_mean_min_over_corpora": cos, "cosine_at_least_0.99": cos >= 0.99,
                  "f1_minus_float32": {r["corpus"]: r["f1"] - ref[r["corpus"]]["f1"] for r in rows},
                  "f1_best_minus_float32": {r["corpus"]: r["f1_best"] - ref[r["corpus"]]["f1_best"] for r in rows}}
    return out


def static_speed(repeat: int, p: Params) -> None:
    """--static-speed: the static embedder timed again on the same eval texts (the same seeds and corpora, its table
    rebuilt), its rows' docs/s and the static check rewritten in bench/results/embedders.json; every other figure
    (the quality figures do not depend on timing) stays as that run measured it, and `static_speed_retimed` says when
    and at what load the new figures were measured. For a quiet machine: the full run's timings shared the 2 cores."""
    path = common.RESULTS / "embedders.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run python -m bench.embedders first")
    res = json.loads(path.read_text())
    torch.set_num_threads(THREADS)  # as run(): the table's build embeds its vocabulary with the teacher
    seed = p.curate.seed
    gen_eval, _ = generator_corpora(False)
    sst = sst2_corpora(None, 600, None, seed)
    corpora = {"planted": gen_eval, **({"sst2": sst[0]} if sst is not None else {})}
    retimed = {}
    for c, corpus in corpora.items():
        texts = near_dup_setup(corpus)["texts"]
        load = _load()
        _, sec, info = static_embed(texts, p, repeat)
        retimed[c] = {"seconds": sec, "docs_per_s": len(texts) / sec, "load_avg": load, "docs": len(texts),
                      "build_s": info["build_s"], "was_docs_per_s": None}
        for r in res["rows"]:
            if r["corpus"] == c and r["embedder"] == "static":
                if r["docs"] != len(texts):
                    raise SystemExit(f"{c}: {len(texts)} texts now, {r['docs']} in {path}: not the same corpus")
                retimed[c]["was_docs_per_s"] = r["docs_per_s"]
                r.update(seconds=sec, docs_per_s=len(texts) / sec, load_avg=load, build_s=info["build_s"])
        print(f"{c}: static {len(texts) / sec:,.0f} docs/s (was {retimed[c]['was_docs_per_s']:,.0f}; load {load})",
              flush=True)
    res["checks"]["static"] = checks(res)["static"]
    res["static_speed_retimed"] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeat": repeat,
                                   "environment": common.environment(), "corpora": retimed}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2, default=float))
    tmp.replace(path)
    print(json.dumps(res["checks"]["static"], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--static-speed", action="store_true",
                    help="time the static embedder again and update its docs/s in bench/results/embedders.json")
    ap.add_argument("--quick", action="store_true", help="tiny corpora: a smoke run (embedders_quick.json)")
    ap.add_argument("--repeat", type=int, default=5, help="static / tfidf timings: best of this many")
    ap.add_argument("--ways", default=",".join(f"{r}/{p}" for r, p in WAYS),
                    help="teacher ways, runtime/precision, comma-separated (torch/float32, the reference, always runs)")
    args = ap.parse_args()
    ways = [tuple(w.split("/")) for w in args.ways.split(",") if w]
    unknown = set(ways) - set(WAYS)
    if unknown:
        ap.error(f"unknown ways {sorted(unknown)}; known: {[f'{r}/{p}' for r, p in WAYS]}")
    WAYS[:] = [w for w in WAYS if w in ways or w == ("torch", "float32")]
    t0 = time.perf_counter()
    p = Params()
    if args.static_speed:
        static_speed(args.repeat, p)
        return
    res = run(args.quick, 1 if args.quick else args.repeat, p)
    ch = checks(res)
    wall = time.perf_counter() - t0
    meta = {"corpora": res["corpora"], "quality": res["quality"], "teacher_totals": res["teacher_totals"],
            "static_tables": res["static_tables"],
            "checks": ch, "wall_s": wall, "threads": {"torch": THREADS, "onnxruntime": THREADS, "blas": 1},
            "params": {"model": p.train.model, "max_length": p.curate.embed_max_length, "eps": p.curate.eps,
                       "n_clusters": p.curate.n_clusters, "keep": p.curate.keep, "embed_dim": p.curate.embed_dim,
                       "static": p.curate.static.model_dump(), "eps_grid": [float(e) for e in EPS_GRID]}}
    if args.quick:  # a smoke run: kept out of bench/results (and so out of the README)
        common.RESULTS = Path(__file__).parent / ".cache"
    path = write("embedders_quick" if args.quick else "embedders", res["rows"], meta)
    print(table(res["rows"], ["corpus", "embedder", "docs", "docs_per_s", "precision", "recall", "f1", "best_eps",
                              "precision_best", "recall_best", "f1_best", "cosine_mean", "load_avg"]))
    print(json.dumps({"quality": res["quality"], "checks": ch}, indent=1, default=float))
    print(f"wall {wall:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
