"""Stage 1's reports on near-duplicate removal, arrays in, text and dicts out (no I/O, no params).

- `label_removals`, `label_warnings`: removals per class beside the overall rate, and the classes that lose
  disproportionately (plus a warning when a quarter of the corpus goes as near duplicates).
- `removed_pairs`, `pair_stats`: each removed document against the representative it was folded into, with
  what can be known without ground truth: embedding cosine, word Jaccard, plain TF-IDF cosine.
- `agreement`: how far two methods' removals agree. `pairs_markdown`: the readable report.
- `planted_truth`, `aligned_removals`, `dedup_verdict`: the stage's verdict (qlife.verdict), per-document binary F1
  against the planted duplicates through a paired bootstrap over whole planted groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlife.methods.embed import tfidf_pair_cosine, word_jaccard


def agreement(a: np.ndarray, b: np.ndarray, exact: np.ndarray) -> dict:
    """How far two near-dedup decisions agree: Jaccard of the removed sets, and of the documents put in
    any duplicate group (removed + their representatives: independent of which member the keep rule kept)."""
    def jac(x: set, y: set) -> float:
        return len(x & y) / len(x | y) if x | y else 1.0

    ra, rb = (set(np.flatnonzero((d >= 0) & ~exact).tolist()) for d in (a, b))
    ga, gb = ({*r, *(int(d[i]) for i in r)} for r, d in ((ra, a), (rb, b)))
    return {"jaccard_removed": jac(ra, rb), "jaccard_duplicate_docs": jac(ga, gb), "both_removed": len(ra & rb),
            "only_classical": len(ra - rb), "only_quantum": len(rb - ra)}


def planted_truth(n: int, groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per document: 1 for every member of a planted group but its first (a group of s expects s - 1 removals,
    whichever members go), else 0; and its bootstrap group (its planted group, else itself)."""
    y, gid = np.zeros(n, dtype=np.int64), np.arange(n)
    for g in groups:
        members = sorted(g)
        y[members[1:]] = 1
        gid[members] = members[0]
    return y, gid


def aligned_removals(removed: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """A method's removals as predictions against `planted_truth`: in a planted group its r removals fill the s - 1
    expected places first (which member went does not matter), an r-th = s-th removal is the kept place (a false
    positive); outside the groups as removed. Binary F1 against planted_truth equals `semdedup.dedup_scores`'."""
    pred = np.asarray(removed, dtype=bool).astype(np.int64)
    for g in groups:
        members = sorted(g)
        r = int(pred[members].sum())
        pred[members] = 0
        pred[members[1:][: min(r, len(g) - 1)]] = 1
        pred[members[0]] = int(r == len(g))
    return pred


def dedup_verdict(removed: dict[str, np.ndarray], groups: list[list[int]], quantum: str, twin: str,
                  cost: dict[str, dict], note: str, n_resamples: int = 1000, seed: int = 0) -> dict:
    """The verdict of near-duplicate removal: each method's removed mask (same documents) scored in binary F1
    against the planted duplicates, paired bootstrap over whole planted groups (a document outside them: its own)."""
    from qlife.verdict import paired_bootstrap, verdict

    y, gid = planted_truth(len(next(iter(removed.values()))), groups)
    preds = {m: aligned_removals(r, groups) for m, r in removed.items()}
    spread = paired_bootstrap("f1", y, preds, n_resamples=n_resamples, seed=seed, groups=gid, labels=[0, 1],
                              pos_label=1)
    return verdict(spread, quantum, twin, cost=cost, note=note)


def label_removals(dup: np.ndarray, exact: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Removals per class beside the overall figures, keyed by label id (a user's label names need not make
    valid MLflow metric names), each with its name. `near_share`: near-duplicate removals over the docs of that
    class that reached near-duplicate removal (after the exact hash); `removed_share`: all removals over all
    its docs."""
    near, entered = (dup >= 0) & ~exact, ~exact

    def row(m: np.ndarray) -> dict:
        n, n_in, n_near, n_exact = int(m.sum()), int((entered & m).sum()), int((near & m).sum()), int((exact & m).sum())
        return {"docs": n, "exact_removed": n_exact, "near_in": n_in, "near_removed": n_near,
                "removed": n_exact + n_near, "removed_share": (n_exact + n_near) / n if n else 0.0,
                "near_share": n_near / n_in if n_in else 0.0}

    ys = sorted(set(range(len(names))) | set(np.unique(labels).tolist()))
    return {"labels": {str(y): {"label": names[y] if 0 <= y < len(names) else str(y), **row(labels == y)}
                       for y in ys},
            "overall": row(np.ones(len(labels), dtype=bool))}


EXTREME_NEAR_SHARE = 0.25  # a quarter of a corpus as near duplicates is rarely real; say so


def label_warnings(method: str, table: dict, ratio: float) -> list[str]:
    """A warning for each class whose near-duplicate removal rate exceeds `ratio` x the overall rate."""
    overall = table["overall"]
    if overall["near_removed"] == 0:
        return []
    heavy = [f"{method}: near-duplicate removal took {overall['near_share']:.1%} of the documents left after the "
             "exact hash: check the "
             "embedder (curate.embedder) and curate.eps against the pairs in dedup_pairs.md"
             ] if overall["near_share"] > EXTREME_NEAR_SHARE else []
    return heavy + [f"{method}: near-duplicate removal took {r['near_share']:.1%} of class '{r['label']}' "
            f"({r['near_removed']} of {r['near_in']}) vs {overall['near_share']:.1%} overall "
            f"({overall['near_removed']} of {overall['near_in']}), over {ratio:g}x the overall rate"
            for r in table["labels"].values() if r["near_share"] > ratio * overall["near_share"]]


# ----------------------------------------------------------------------------- removed pairs

@dataclass
class Pairs:
    """Near-duplicate removals of one method: removed doc -> its kept representative, and how alike they are."""

    removed: np.ndarray  # indices into the texts
    kept: np.ndarray
    embedding_cosine: np.ndarray  # in the embedding both methods saw
    word_jaccard: np.ndarray  # casefolded word sets
    tfidf_cosine: np.ndarray  # plain TF-IDF (word 1-2 grams, no SVD)


def removed_pairs(dup: np.ndarray, exact: np.ndarray, rest: np.ndarray, X: np.ndarray, texts: list[str]) -> Pairs:
    """`dup`: duplicate_of over all texts; `rest`: the texts that reached near-duplicate removal, `X` their
    embeddings (unit rows)."""
    a = np.flatnonzero((dup >= 0) & ~exact)
    b = dup[a]
    pos = np.full(len(texts), -1)
    pos[rest] = np.arange(len(rest))
    cos = np.einsum("ij,ij->i", X[pos[a]], X[pos[b]]) if len(a) else np.zeros(0)
    rest_texts = [texts[i] for i in rest]
    return Pairs(a, b, cos, word_jaccard([texts[i] for i in a], [texts[i] for i in b]),
                 tfidf_pair_cosine(rest_texts, pos[a], pos[b]))


def _distribution(v: np.ndarray) -> dict | None:
    if len(v) == 0:
        return None
    q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"min": float(v.min()), "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
            "p75": float(q[3]), "p90": float(q[4]), "max": float(v.max()), "mean": float(v.mean())}


def pair_stats(pairs: Pairs, labels: np.ndarray) -> dict:
    """What can be known about removed pairs without ground truth: similarity and lexical overlap."""
    n = len(pairs.removed)
    return {"n": n, "embedding_cosine": _distribution(pairs.embedding_cosine),
            "word_jaccard": _distribution(pairs.word_jaccard), "tfidf_cosine": _distribution(pairs.tfidf_cosine),
            "share_jaccard_below_0.5": float((pairs.word_jaccard < 0.5).mean()) if n else None,
            "share_tfidf_cosine_below_0.5": float((pairs.tfidf_cosine < 0.5).mean()) if n else None,
            "share_cross_label": float((labels[pairs.removed] != labels[pairs.kept]).mean()) if n else None}


def _short(text: str, n: int = 200) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1].rstrip() + "…"


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def pairs_markdown(docs: list[dict], names: list[str], embedder: dict, methods: dict, tables: dict,
                   pairs: dict[str, Pairs], warnings: list[str], eps: float, applied: str, n_pairs: int,
                   seed: int) -> str:
    """The readable dedup report: per-label table, pair statistics, a seeded sample of `n_pairs` removed pairs."""
    label = {i: n for i, n in enumerate(names)}
    out = ["# Near-duplicate removals", "",
           f"Embedder: {embedder['kind']} ({embedder['model']}, {embedder['dim']} dims); eps {eps:g} "
           f"(cosine > {1 - eps:g}); applied: {applied}. Exact-hash copies are not listed here. Near share: "
           "a class's near-duplicate removals over its documents left after the exact hash; removed share: all its "
           "removals over all its documents. Pairs: each removed document against the representative it was "
           "folded into (word Jaccard of casefolded word sets; TF-IDF cosine of word 1-2 grams, no SVD).", ""]
    if warnings:
        out += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    for m, q in methods.items():
        st, t = q["pairs"], tables[m]
        pr = ("no ground truth: precision / recall unknown" if q.get("precision") is None else
              f"precision {q['precision']:.3f}, recall {q['recall']:.3f}, F1 {q['f1']:.3f} vs planted duplicates")
        out += [f"## {m}", "", f"{q['near_removed']} near-duplicate removals, {q['exact_removed']} exact; {pr}.", "",
                "| class | docs | exact removed | near removed | near share | removed share |",
                "|---|---:|---:|---:|---:|---:|"]
        for name, r in [*((r["label"], r) for r in t["labels"].values()), ("**all**", t["overall"])]:
            out.append(f"| {name} | {r['docs']} | {r['exact_removed']} | {r['near_removed']} "
                       f"| {r['near_share']:.1%} | {r['removed_share']:.1%} |")
        out += ["", "| pair figure | min | p10 | median | p90 | mean |", "|---|---:|---:|---:|---:|---:|"]
        for key in ("embedding_cosine", "word_jaccard", "tfidf_cosine"):
            dist = st[key] or {}
            out.append(f"| {key} | " + " | ".join(_fmt(dist.get(k)) for k in ("min", "p10", "median", "p90", "mean"))
                       + " |")
        out += ["", f"Pairs with word Jaccard < 0.5: {_fmt(st['share_jaccard_below_0.5'], '.1%')}; plain TF-IDF "
                f"cosine < 0.5: {_fmt(st['share_tfidf_cosine_below_0.5'], '.1%')}; different labels: "
                f"{_fmt(st['share_cross_label'], '.1%')}.", ""]
        p = pairs[m]
        k = min(n_pairs, len(p.removed))
        pick = np.random.default_rng(seed).choice(len(p.removed), size=k, replace=False) if k else []
        pick = sorted(pick, key=lambda i: (p.embedding_cosine[i], i))  # least similar first
        out += [f"### {k} of {len(p.removed)} removed pairs (seed {seed}, least similar first)", ""]
        for n, i in enumerate(pick, 1):
            a, b = docs[p.removed[i]], docs[p.kept[i]]
            out += [f"{n}. embedding cosine {p.embedding_cosine[i]:.3f} · word Jaccard {p.word_jaccard[i]:.2f} · "
                    f"TF-IDF cosine {p.tfidf_cosine[i]:.2f} · labels {label.get(a['label'], a['label'])} / "
                    f"{label.get(b['label'], b['label'])}",
                    f"   - removed `{a['id']}`: {_short(a['text'])}", f"   - kept `{b['id']}`: {_short(b['text'])}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
