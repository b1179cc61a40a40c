"""Near-duplicate removal: quantum SemDeDup (statevector, shots) vs classical k-means SemDeDup vs MinHash-LSH.

Corpora: the default generated corpus (params defaults) and SST-2 train from `../shared/datasets/sst2` (first
20,000 rows, natural exact duplicates dropped, ~5% near duplicates planted with the generator's edit model:
synonym swaps from its table, a filler word added/dropped, a fronted phrase moved, casing/punctuation; a copy
is kept only if it stays TF-IDF-close (cosine >= 0.75) yet is no normalised copy, as in the generator). SST-2 is
read in place, never copied into the project; without it that corpus is skipped.
Every method runs after the same exact-hash dedup; both SemDeDups cluster the same TF-IDF+SVD embeddings, and
their docs/s is over the clustering + dedup step alone (the embedding time is reported once, beside them).
MinHash-LSH works on the texts. Times are best of `--repeat` runs (noisy shared machine).
SST-2's train split is phrase-level: many rows are sub-phrases of other rows, and 1-3 word phrases crowd
together in a 128-d SVD space, so every method removes far more than the planted copies
(`removed_outside_planted`); precision against the planted truth is a floor there, recall is the figure.

    python -m bench.dedup [--rows 20000] [--repeat 3]   -> bench/results/dedup.json + a README table row
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import table, timed, write
from qlife.data.generator import GENERAL, _idf, _swap_words, _tfidf_cosine, generate_corpus
from qlife.data.text import normalize_text
from qlife.methods.embed import tfidf_svd_embed
from qlife.methods.qkmeans import qsemdedup
from qlife.methods.semdedup import (
    dedup_scores,
    exact_duplicate_of,
    minhash_lsh_duplicates,
    planted_groups,
    semdedup_classical,
)
from qlife.params import Curate

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2" / "train.jsonl"
FILLERS = GENERAL["f"]


def _edit(rng: np.random.Generator, text: str) -> str:
    """The generator's paraphrase edits, applied to free text."""
    words = text.split()
    if rng.random() < 0.7:  # a filler word dropped or inserted
        hit = [i for i, w in enumerate(words) if w.lower() in FILLERS]
        if hit:
            words.pop(int(rng.choice(hit)))
        else:
            words.insert(int(rng.integers(1, len(words))), FILLERS[int(rng.integers(len(FILLERS)))])
    if rng.random() < 0.4:  # a leading phrase moved to the end
        cut = int(rng.integers(1, max(2, len(words) // 3)))
        words = words[cut:] + words[:cut]
    text = _swap_words(rng, " ".join(words), int(rng.integers(1, 4)))
    if rng.random() < 0.3:
        text = text.replace(" ,", "", 1) if rng.random() < 0.5 else text.upper()
    return text


def plant_near_duplicates(texts: list[str], frac: float, seed: int) -> tuple[list[str], dict[int, int]]:
    """Unique `texts` + ~frac near copies of documents with >= 6 words; returns texts and copy -> original."""
    rng = np.random.default_rng(seed)
    idf = _idf(texts)
    candidates = [i for i, t in enumerate(texts) if len(t.split()) >= 6]
    out, truth = list(texts), {}
    for i in rng.choice(candidates, size=min(round(frac * len(texts)), len(candidates)), replace=False):
        for _ in range(30):
            copy = _edit(rng, texts[i])
            if normalize_text(copy) != normalize_text(texts[i]) and _tfidf_cosine(copy, texts[i], idf) >= 0.75:
                truth[len(out)] = int(i)
                out.append(copy)
                break
    order = rng.permutation(len(out))
    pos = np.empty(len(out), dtype=int)
    pos[order] = np.arange(len(out))
    return [out[j] for j in order], {int(pos[c]): int(pos[o]) for c, o in truth.items()}


def sst2_corpus(rows: int, seed: int = 0) -> dict | None:
    if not SST2.exists():
        return None
    with SST2.open() as f:
        raw = [json.loads(line)["text"] for _, line in zip(range(rows), f)]
    unique, seen = [], set()
    for t in raw:
        if (key := normalize_text(t)) not in seen:
            seen.add(key)
            unique.append(t)
    texts, truth = plant_near_duplicates(unique, 0.05, seed)
    return {
        "name": f"sst2-train-{rows}",
        "texts": texts,
        "truth": truth,
        "notes": f"{len(raw) - len(unique)} natural exact duplicates dropped; {len(truth)} near copies planted",
    }


def generated_corpus() -> dict:
    c = generate_corpus(**Curate().generator.model_dump())
    pos = {d["id"]: i for i, d in enumerate(c.docs)}
    truth = {pos[k]: pos[v] for k, v in {**c.exact_duplicates, **c.near_duplicates}.items()}
    return {
        "name": f"generated-{len(c.docs)}",
        "texts": [d["text"] for d in c.docs],
        "truth": truth,
        "notes": f"{len(c.exact_duplicates)} exact + {len(c.near_duplicates)} near copies planted",
    }


def bench_corpus(corpus: dict, repeat: int) -> list[dict]:
    cp = Curate()
    texts, n = corpus["texts"], len(corpus["texts"])
    groups = planted_groups([str(i) for i in range(n)], {str(k): str(v) for k, v in corpus["truth"].items()})
    in_group = np.zeros(n, dtype=bool)
    in_group[[i for g in groups for i in g]] = True
    dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    k = min(cp.n_clusters, len(rest))
    embed_s, X = timed(
        lambda: tfidf_svd_embed([texts[i] for i in rest], dim=cp.embed_dim, seed=cp.seed), repeat=1, warmup=0
    )

    def scored(name: str, seconds: float, near: np.ndarray, extra: dict | None = None) -> dict:
        removed = dup >= 0
        removed[rest[near]] = True
        s = dedup_scores(removed, groups)
        return {
            "corpus": corpus["name"],
            "method": name,
            "docs": n,
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1"],
            "removed": s["removed"],
            "expected": s["expected"],
            "removed_outside_planted": int((removed & ~in_group).sum()),
            "seconds": seconds,
            "docs_per_s": len(rest) / seconds,
            "embed_s": embed_s,
            **(extra or {}),
        }

    rows = []
    t, res = timed(lambda: semdedup_classical(X, k, cp.eps, cp.seed, cp.keep), repeat)
    rows.append(scored("classical k-means SemDeDup", t, res.removed))
    for backend in ("statevector", "shots"):
        t, q = timed(
            lambda b=backend: qsemdedup(X, k, cp.eps, keep=cp.keep, seed=cp.seed, backend=b, shots=1024),
            repeat,
        )
        r = q.resources
        rows.append(
            scored(
                f"quantum SemDeDup ({backend}{', 1024 shots' if backend == 'shots' else ''})",
                t,
                q.result.removed,
                {
                    "qubits": r.qubits,
                    "circuits": r.circuits,
                    "shots": r.shots,
                    "kmeans_iterations": q.kmeans.n_iter,
                    "qpu_seconds_est": r.qpu_seconds_est,
                },
            )
        )
    kept = [texts[i] for i in rest]
    t, removed = timed(lambda: minhash_lsh_duplicates(kept, seed=cp.seed), repeat=1, warmup=0)
    rows.append(scored("MinHash-LSH (datasketch)", t, removed))
    return rows


def readme_row(rows: list[dict]) -> str:
    by = {
        (
            r["corpus"].split("-")[0],
            r["method"].split(" (")[0] + (" shots" if "shots" in r["method"] else ""),
        ): r
        for r in rows
    }
    parts = []
    for corpus in ("generated", "sst2"):
        q, s = by.get((corpus, "quantum SemDeDup")), by.get((corpus, "quantum SemDeDup shots"))
        c, m = by.get((corpus, "classical k-means SemDeDup")), by.get((corpus, "MinHash-LSH"))
        if q and c:
            parts.append(
                f"{corpus}: F1 quantum {q['f1']:.3f} / shots {s['f1']:.3f} / classical {c['f1']:.3f} / "
                f"MinHash {m['f1']:.3f}; docs/s quantum {q['docs_per_s']:,.0f} vs classical "
                f"{c['docs_per_s']:,.0f} ({q['docs_per_s'] / c['docs_per_s']:.2f}x)"
            )
    return "| dedup (stage 1) | " + " | ".join(parts) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows, notes = [], {}
    with threadpool_limits(1):  # small matrices on a shared 2-core box: one BLAS thread is fastest
        for corpus in (generated_corpus(), sst2_corpus(args.rows)):
            if corpus is None:
                print(f"skipped SST-2: {SST2} not found")
                continue
            notes[corpus["name"]] = corpus["notes"]
            rows += bench_corpus(corpus, args.repeat)
    checks = {}
    for name in notes:
        r = {x["method"]: x for x in rows if x["corpus"] == name}
        q, c = r["quantum SemDeDup (statevector)"], r["classical k-means SemDeDup"]
        checks[name] = {
            "throughput_ratio_quantum_over_classical": q["docs_per_s"] / c["docs_per_s"],
            "throughput_at_least_one_third": q["docs_per_s"] >= c["docs_per_s"] / 3,
            "f1_shots_minus_statevector": r["quantum SemDeDup (shots, 1024 shots)"]["f1"] - q["f1"],
        }
    path = write(
        "dedup",
        rows,
        {
            "corpora": notes,
            "checks": checks,
            "params": Curate().model_dump(include={"embed_dim", "n_clusters", "eps", "keep", "seed"}),
        },
    )
    print(table(rows, ["corpus", "method", "docs", "precision", "recall", "f1", "docs_per_s", "seconds"]))
    print(json.dumps(checks, indent=1))
    print(readme_row(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
