"""The lexical stream statistics of bench/monitoring.py: new vocabulary read from the windows' texts.

The embedding features keep little of a vocabulary change (SST-2 rewritten in a chat style keeps its content: its
residuals move little), so these statistics read the window's words against a fixed vocabulary
(qlife.methods.window_stats.words: lower-cased, \\w+):
  oov_rate     the share of the window's tokens outside the vocabulary (the plain OOV-token rate)
  oov_top      the mean of the window's TOP (20) largest per-document OOV rates
  nw_m{k}      qlife.methods.window_stats.new_words(vocabulary, texts, min_docs=k): the documents holding a new
               word that recurs in at least k of the window's documents (k = 2 .. 5)
The vocabulary (VOCAB_EXTRA, `vocabulary_texts`): per data set 10,000 training-like rows that never enter a
reference or a window: the PCA-fit rows (2,000 SST-2 rows / 1,500 generator documents) plus further rows of the same
source (SST-2 train rows after the pools: rows 11,000-18,999 of the bench's permutation; generator documents of seed
105, any text of the pools left out), as the pipeline's vocabulary is the curated training split.
The windows are the same as bench/monitoring.py's: `draws` replays stream_job's random draws (indices into the
pools: the draws never depend on the features) and the change hours are checked equal to the cached feature pass's.
"""

from __future__ import annotations

import time

import numpy as np

LEX_NAMES = ["oov_rate", "oov_top", "nw_m2", "nw_m3", "nw_m4", "nw_m5"]
MIN_DOCS = {f"nw_m{k}": k for k in (2, 3, 4, 5)}
TOP = 20  # as the residual's top-k: 10% of a window of 200
VOCAB_EXTRA = {"sst2": 8_000, "gen": 8_500}  # beyond the PCA-fit rows: 10,000 vocabulary rows per data set
LEX_LABELS = {
    "oov_rate": "share of the window's tokens outside the training vocabulary (plain OOV-token rate)",
    "oov_top": f"mean of the window's {TOP} largest per-document OOV rates",
    **{n: f"documents holding a new word that recurs in >= {k} of the window's documents "
          "(qlife.methods.window_stats.new_words)" for n, k in MIN_DOCS.items()},
}


def vocabulary_texts(texts: dict[str, list[str]], sst2_rows: list[str]) -> dict[str, list[str]]:
    """data set -> the vocabulary's rows: its PCA-fit rows and VOCAB_EXTRA further training-like rows outside every
    pool (module docstring); `sst2_rows`: the SST-2 train rows in bench.monitoring.texts' order after its pools."""
    from qlife.data.generator import draw_docs

    used = {t for k, v in texts.items() if k.startswith("gen_") for t in v}
    extra_gen = [t for t in (d["text"] for d in draw_docs(105, VOCAB_EXTRA["gen"] + 500)) if t not in used]
    return {"sst2": texts["sst2_fit"] + sst2_rows[:VOCAB_EXTRA["sst2"]],
            "gen": texts["gen_fit"] + extra_gen[:VOCAB_EXTRA["gen"]]}


class LexPool:
    """One data set's pools as arrays: per document its token count and the ids of its distinct new words."""

    def __init__(self, vocab: frozenset[str], pools: dict[str, list[str]]):
        from qlife.methods.window_stats import words

        self.texts, ids, self.n_tok, self.n_oov, self.new = pools, {}, {}, {}, {}
        for key, docs in pools.items():
            n_tok, n_oov, new = [], [], []
            for t in docs:
                w = words(t)
                oov = [x for x in w if x not in vocab]
                n_tok.append(len(w))
                n_oov.append(len(oov))
                new.append(np.array(sorted({ids.setdefault(x, len(ids)) for x in oov}), dtype=np.int64))
            self.n_tok[key], self.n_oov[key], self.new[key] = np.array(n_tok), np.array(n_oov), new
        self.n_words = len(ids)

    def values(self, rows: list[tuple[str, np.ndarray]]) -> np.ndarray:
        """LEX_NAMES of the window made of pool `key`'s documents `idx` for each (key, idx) of rows."""
        tok = np.concatenate([self.n_tok[k][i] for k, i in rows])
        oov = np.concatenate([self.n_oov[k][i] for k, i in rows])
        docs = [self.new[k][j] for k, i in rows for j in i]
        ids = np.concatenate(docs)
        doc_of = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
        df = np.bincount(ids, minlength=self.n_words)[ids] if len(ids) else ids
        rate = oov / np.maximum(tok, 1)
        out = [oov.sum() / max(tok.sum(), 1), np.sort(rate)[-TOP:].mean()]
        out += [np.unique(doc_of[df >= k]).size for k in MIN_DOCS.values()]
        return np.array(out, dtype=np.float64)


def draws(a: dict, ds: int, rep: int, n_pool: int, n_drift: dict[str, int]) -> dict:
    """bench.monitoring.stream_job's random draws, replayed without the features: the reference's pool rows, each
    window's rows as [(pool key, indices)], and the change hours (the same generator calls in the same order;
    n_drift: the drift pools' sizes in bench.monitoring.DRIFTS' order)."""
    rng = np.random.default_rng([a["seed"], ds, rep])
    ref_idx = rng.choice(n_pool, a["n_ref"], replace=False)
    traffic = np.delete(np.arange(n_pool), ref_idx)
    n, T, F, fr = a["n"], a["windows"], a["follow"], a["fractions"]

    def window(kind: str | None, f: float) -> list[tuple[str, np.ndarray]]:
        k = 0 if kind is None else int(round(f * n))
        rows = [("pool", rng.choice(traffic, n - k, replace=False))]
        return rows if k == 0 else rows + [(kind, rng.choice(n_drift[kind], k, replace=False))]

    null = [window(None, 0.0) for _ in range(T)]
    taus = rng.integers(0, T - F + 1, (len(n_drift), len(fr)))
    drifted = [[[window(kind, f) for _ in range(F)] for f in fr] for kind in n_drift]
    return {"reference": ref_idx, "null": null, "taus": taus, "drifted": drifted}


def lexical_pass(a: dict, reps: int, pools: dict[str, dict[str, list[str]]],
                 vocab_texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """LEX_NAMES of every window of `reps` repetitions per data set (pools: data set -> {"pool", then the drift
    pools in bench.monitoring.DRIFTS' order}, data sets in bench.monitoring.DATASETS' order), the same windows as
    stream_job's (`draws`). The fast path is checked against qlife.methods.window_stats.new_words on each
    repetition's first in-distribution window and first 10% drifted windows."""
    from qlife.methods.window_stats import new_words, vocabulary

    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, list] = {"null": [], "drifted": [], "taus": []}
    vocab_words = []
    for ds, (d, p) in enumerate(pools.items()):
        vocab = vocabulary(vocab_texts[d])
        vocab_words.append(len(vocab))
        lp = LexPool(vocab, p)
        kinds = {k: len(v) for k, v in p.items() if k != "pool"}
        nulls, drifts, taus = [], [], []
        for rep in range(reps):
            dr = draws(a, ds, rep, len(p["pool"]), kinds)
            nulls.append(np.array([lp.values(w) for w in dr["null"]]))
            drifts.append(np.array([[[lp.values(w) for w in cell] for cell in kind] for kind in dr["drifted"]]))
            taus.append(dr["taus"])
            j = a["fractions"].index(0.1) if 0.1 in a["fractions"] else 0
            for w in (dr["null"][0], *(kind[j][0] for kind in dr["drifted"])):
                window_texts = [p[k][i] for k, idx in w for i in idx]
                for name, m in MIN_DOCS.items():
                    assert lp.values(w)[LEX_NAMES.index(name)] == new_words(vocab, window_texts, m), (d, rep, name)
        out["null"].append(nulls)
        out["drifted"].append(drifts)
        out["taus"].append(taus)
        print(f"lexical {d}: {time.perf_counter() - t0:.0f} s wall, vocabulary {len(vocab)} words", flush=True)
    r = {k: np.array(v) for k, v in out.items()}
    r["wall_s"], r["cpu_s"] = np.array(time.perf_counter() - t0), np.array(time.process_time() - c0)
    r["vocabulary_words"] = np.array(vocab_words)
    return r
