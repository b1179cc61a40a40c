"""The plan past one machine (issue 37, item 4): curate's unit costs measured here, a model of 10^8 documents on N
Dask workers built from them, and the model checked against what bench.growth measured.

Run: python -m bench.plan [--quick] [--docs 1e8] [--workers 1 8 32 128 512] [--bandwidth-gbs 1.0]

1. Units (`measure`): each cost the curate stage's code pays, timed with the project's own functions, serially, one
   BLAS / torch thread, CPU seconds (time.process_time: the machine is shared, wall time is inflated by the others'
   load), seeded, each at 2-3 sizes and fitted as seconds = intercept + slope x units (the slope is the unit cost;
   `spread` is the largest over the smallest seconds-per-unit of the points: near 1, linear):
     generate      qlife.data.generator.generate_corpus, per document (validation only: the generated corpora)
     exact_hash    qlife.methods.semdedup.exact_duplicate_of (normalise, sha1, first-seen dict), per document
     tfidf_fit     qlife.methods.embed.TfidfSvdEmbedder.fit (curate.embed_dim), per sample document
     tfidf_embed   its transform, per document
     static_table  qlife.methods.static_embed.teacher_table (not cached): the teacher run on each vocabulary token
     static_embed  the table's tokenisation + encode_texts + unit rows, as qlife.dedup.static_embed, per document
     kmeans_lloyd  qlife.methods.semdedup.kmeans (scikit-learn Lloyd): per (row x centroid) per iteration, from the
                   difference of max_iter 6 and 2 (tol 0); kmeans_init: the rest, per (row x centroid x trial),
                   trials = 2 + ln k (greedy k-means++); kmeans_iterations: Lloyd iterations at the defaults
     assign        semdedup.assign_nearest as kmeans calls it, per (document x centroid)
     pair          semdedup.ClusterJob (cosine, the row-block path past 4,096 members), per within-cluster pair
     qpair         the same with the quantum similarity (qkmeans.ClusterFidelity, statevector, amplitude), per pair
     qmeans_lloyd  qkmeans.qkmeans per (row x centroid) per iteration; qmeans_init per (row x centroid x trial)
     merge         qlife.dedup._merge, per document; split: stages.curate.hold_out_reference + split, per document;
     write         qlife.io.write_jsonl of the records, per document
     dask_*        a distributed.LocalCluster of 2 worker processes (qlife.parallel's): its start, the wall seconds
                   per tiny task (scheduler throughput, a few hundred tasks), per qlife.parallel.pmap call (scatter +
                   8 chunks), and this process's RSS per task held (scheduler + client: noisy)
   Memory units: exact_hash_bytes (tracemalloc peak of exact_duplicate_of per document), text_bytes (a generated
   record in Python), and bench/results/growth.json's peak RSS against n (curate, generator, tfidf: the stage's
   bytes per document as it holds a corpus today, and its intercept, a process's base).
   From earlier results (not rerun): growth.json's within-cluster pairs over the uniform-cluster count (the skew)
   and its runs; scale.json's 2-worker vs one-core speed-up (what 2 cores give over one); embedders.json's teacher
   docs/s on 2 cores; the 67k SST-2 curate report's per-phase CPU seconds (`curate_report_67k`: bench.growth's row, its
   workspace while it lasts, or the copy the committed plan.json kept).
2. Validation (`validate`): the units predict curate's stage CPU seconds at bench.growth's sizes (generator 10^4,
   10^5, 10^6 with tfidf, method both; SST-2 67k with static, per phase from its report) against what was measured.
3. Model (`plan_phases`, `at_workers`): 10^8 documents on N workers (a worker: 2 cores, 24 GB), phase by phase:
   parallel CPU / (N x worker speed-up), serial seconds, bytes moved over a `bandwidth` network (the exact-hash
   shuffle, the embeddings' shuffle to the worker owning each top-level cluster, broadcasts from the driver), Dask
   per-task overhead x tasks (the scheduler is one process), and memory per worker and on the driver. The centroid
   fit is the serial part that does not scale: `centroid_options` models today's (k = n / 5000 clusters fitted on
   curate.fit_sample rows), distributed Lloyd on a larger sample, and the two-level k-means the plan uses.
Writes bench/results/plan.json (`--quick`: bench/.cache/plan_quick.json, smaller sizes) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, environment, table

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
SST2 = Path(os.environ.get("QLIFE_SST2", "/work/shared/datasets/sst2")) / "train.jsonl"
GROWTH_REPORT_67K = Path("/tmp/gwork/qlife-growth-67349-104_qd1g/reports/curate.json")  # bench.growth's workspace
WORKERS = (1, 8, 32, 128, 512)
GB = 1e9

# what the model assumes (named, in plan.json); every cost comes from `measure`'s units
ASSUMPTIONS: dict[str, Any] = {
    "docs": 100_000_000,
    "worker_cores": 2,
    "worker_ram_gb": 24.0,  # this machine's RAM
    "bandwidth_gbs": 1.0,  # per worker NIC and the driver's, full duplex; latency not modelled
    "reference_share": 0.15,  # curate.splits.reference: held out (by hash of id in the plan) before dedup
    "exact_dup_share": 0.06,  # the generator's planted exact copies (curate.generator.exact_dup_frac); corpus-dependent
    "embed_dim": 128,  # curate.embed_dim / curate.static.dims: embeddings float64 as the code holds them
    "embedder": "static",  # the project's choice for large corpora (bench.growth LARGE_EMBEDDER)
    "static_vocabulary": 30522,  # the teacher tokenizer's vocabulary: the most tokens a table ever embeds (once)
    "cluster_docs": 5000,  # curate.cluster_docs
    "n_clusters": 50,  # curate.n_clusters
    "fit_sample": 100_000,  # curate.fit_sample
    "partition_rows": 32768,  # qlife.dedup.EMBED_ROWS: documents per input partition (one task per phase each)
    "digest_bytes": 28,  # exact-hash shuffle: sha1 (20 B) + document index (8 B)
    "block_elems": 1 << 24,  # semdedup.BLOCK_ELEMS: similarities per cluster block (float64)
    "batch_rows": 1 << 17,  # semdedup.BATCH_ROWS
    "assign_rows": 1 << 15,  # semdedup.ASSIGN_ROWS: rows scored against every centroid at once (scores + temp)
    "distributed_lloyd_rows_per_centroid": 700,  # option B's sample: as two-level's 100,000 / 142 at each level
    "distributed_lloyd_init_passes": 5,  # option B: k-means|| init, as this many Lloyd passes (not in the code)
    "input_io": "reading the corpus from storage is not modelled (the generator's cost is validation only)",
}


# ----------------------------------------------------------------------------- measuring

def cpu_s(fn, repeat: int = 1) -> tuple[float, Any]:
    """Least CPU seconds of this process over `repeat` calls of fn() (one BLAS thread), and its last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def fit_line(units: list[float], seconds: list[float], unit: str, how: str = "") -> dict[str, Any]:
    """seconds = intercept + slope x units (least squares); `s_per_unit` is the slope (the largest point's
    seconds per unit if the slope is not positive: noise), `spread` the largest over the smallest point's seconds
    per unit (1: exactly linear through the origin)."""
    x, t = np.asarray(units, float), np.asarray(seconds, float)
    per = t / x
    slope, icept = (np.polyfit(x, t, 1) if len(x) >= 2 and np.ptp(x) > 0 else (per[-1], 0.0))
    use = float(slope) if slope > 0 else float(per[-1])
    return {"unit": unit, "how": how, "units": x.tolist(), "seconds": t.tolist(), "s_per_unit_points": per.tolist(),
            "slope": float(slope), "intercept_s": float(icept), "s_per_unit": use,
            "spread": float(per.max() / per.min()) if per.min() > 0 else None}


def _texts_generated(n: int) -> tuple[list[dict], float]:
    from qlife.data.generator import generate_corpus

    t, corpus = cpu_s(lambda: generate_corpus(seed=0, n_docs=n, live_size=0))
    return corpus.docs, t


def _sst2_texts(n: int) -> list[str] | None:
    if not SST2.exists():
        return None
    out = []
    with SST2.open() as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["text"])
            if len(out) >= n:
                break
    return out


def measure(quick: bool = False) -> dict[str, Any]:
    """Every unit (see the module doc); `quick`: smaller sizes."""
    import torch
    from threadpoolctl import threadpool_limits

    from qlife.dedup import _merge
    from qlife.io import write_jsonl
    from qlife.methods import semdedup as sd
    from qlife.methods.embed import TfidfSvdEmbedder
    from qlife.params import parse_params
    from stages.curate import hold_out_reference, split

    threadpool_limits(1)
    torch.set_num_threads(1)
    params = parse_params({})
    cp, units, t_all = params.curate, {}, time.perf_counter()
    small, big = (2000, 6000) if quick else (5000, 20000)

    def log(name: str, src: dict | None = None) -> None:
        u = (src or units)[name]
        print(f"  {name:<16} {u['s_per_unit']:.3g} s per {u['unit']} (spread {u['spread'] or 0:.2f}; "
              f"{time.perf_counter() - t_all:.0f} s so far)", file=sys.stderr, flush=True)

    docs_small, t_small = _texts_generated(small)
    docs, t_big = _texts_generated(big)
    units["generate"] = fit_line([small, big], [t_small, t_big], "document", "generate_corpus(n_docs, live_size=0)")
    log("generate")
    texts = [d["text"] for d in docs]
    sizes = [big // 4, big // 2, big]
    units["exact_hash"] = fit_line(sizes, [cpu_s(lambda n=n: sd.exact_duplicate_of(texts[:n]), 2)[0] for n in sizes],
                                   "document", "exact_duplicate_of on generated texts")
    log("exact_hash")

    import tracemalloc

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    sd.exact_duplicate_of(texts[:small])
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    text_bytes = float(np.mean([sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())
                                for d in docs[:2000]]))
    memory = {"exact_hash_bytes_per_doc": peak / small, "text_record_bytes": text_bytes,
              "text_chars_mean": float(np.mean([len(t) for t in texts]))}

    fits = {}
    for n in (small, big):
        fits[n] = cpu_s(lambda n=n: TfidfSvdEmbedder(cp.embed_dim, cp.seed).fit(texts[:n]))
    units["tfidf_fit"] = fit_line([small, big], [fits[small][0], fits[big][0]], "sample document",
                                  "TfidfSvdEmbedder.fit (1-2-grams, randomized SVD to embed_dim)")
    log("tfidf_fit")
    model = fits[big][1]
    units["tfidf_embed"] = fit_line(sizes, [cpu_s(lambda n=n: model.transform(texts[:n]), 2)[0] for n in sizes],
                                    "document", "TfidfSvdEmbedder.transform")
    log("tfidf_embed")
    X = model.transform(texts)

    static, X_static = _static_units(params, small, big, quick, log)
    units.update(static)

    # k-means: Lloyd iterations from the difference of max_iter 13 and 3 (tol 0; the iterations scikit-learn ran are
    # read back: a strict convergence stops it early), the rest of the max_iter 3 run is the k-means++ init
    configs = [(big // 2, 100), (big, 100), (big // 2, 300)] if not quick else [(big // 2, 50), (big, 50)]
    lloyd, init = [], []
    sd.kmeans(X[:1000], 10, seed=0, max_iter=2)  # warm the import
    for s, k in configs:
        with kmeans_iterations_seen() as seen:
            t_a = cpu_s(lambda s=s, k=k: sd.kmeans(X[:s], k, seed=cp.seed, max_iter=3, tol=0.0))[0]
            t_b = cpu_s(lambda s=s, k=k: sd.kmeans(X[:s], k, seed=cp.seed, max_iter=13, tol=0.0))[0]
        d_it = max(seen[1] - seen[0], 1)
        per = max(t_b - t_a, 1e-9) / (d_it * s * k)
        lloyd.append((s * k * d_it, max(t_b - t_a, 1e-9)))
        init.append((s * k * (2 + math.log(k)), max(t_a - seen[0] * per * s * k, 1e-9)))
    units["kmeans_lloyd"] = fit_line(*zip(*lloyd), "row x centroid x iteration",
                                     "kmeans max_iter 13 minus max_iter 3 (tol 0, iterations read back)")
    units["kmeans_init"] = fit_line(*zip(*init), "row x centroid x trial", "kmeans max_iter 3 minus its iterations")
    log("kmeans_lloyd")
    units["kmeans_iterations"] = _kmeans_iterations({"generated texts, tfidf": X, "SST-2 train, static": X_static},
                                                    cp)

    k_assign = (100, 400) if quick else (200, 800)
    pts = []
    for k in k_assign:
        C = X[:k].copy()
        cc = (C * C).sum(1)
        pts.append((big * k, cpu_s(lambda C=C, cc=cc: sd.assign_nearest(big, lambda s, e: X[s:e],
                                                                          lambda A: 2.0 * (A @ C.T) - cc), 2)[0]))
    units["assign"] = fit_line(*zip(*pts), "document x centroid", "assign_nearest as kmeans(sample=...) calls it")
    log("assign")

    ms = (1500, 3000, 4500) if quick else (2500, 5000, 8000)
    job = sd.ClusterJob(sd.CosineSimilarity(), sd.cosine_to_centroid, 1.0 - cp.eps, cp.keep)

    def cluster(job, Z, m):
        return job((0, Z[:m], Z[:m].mean(0), sd.cluster_seed(0, 0)))

    units["pair"] = fit_line([m * (m - 1) / 2 for m in ms], [cpu_s(lambda m=m: cluster(job, X, m), 2)[0] for m in ms],
                             "within-cluster pair", f"ClusterJob cosine, clusters of {ms} (row blocks past 4,096)")
    log("pair")
    many = (100, 300)
    units["cluster"] = fit_line(many, [cpu_s(lambda c=c: [cluster(job, X[i * 8:], 8) for i in range(c)], 2)[0]
                                       for c in many], "cluster", "ClusterJob cosine on clusters of 8: per call")
    units.update(_fixed_units())
    units.update(_quantum_units(X, params, ms[:2], big, quick, log, cluster))

    def merge_inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # exact dups, the rest, near dups
        rng = np.random.default_rng(0)
        exact = np.where(rng.random(n) < 0.06, 0, -1)
        rest = np.flatnonzero(exact < 0)
        return exact, rest, np.where(rng.random(len(rest)) < 0.1, 0, -1)

    sizes_m = (5 * big, 20 * big)
    inputs = [merge_inputs(n) for n in sizes_m]
    units["merge"] = fit_line(sizes_m, [cpu_s(lambda a=a: _merge(*a), 3)[0] for a in inputs],
                              "document", "qlife.dedup._merge (6% exact, 10% near duplicates)")
    sp = parse_params({"curate": {"seed": 0}})
    units["split"] = fit_line([small, big], [cpu_s(lambda d=d: split(hold_out_reference(d, sp)[1], sp), 2)[0]
                                             for d in (docs_small, docs)], "document", "hold_out_reference + split")
    with tempfile.TemporaryDirectory() as tmp:
        units["write"] = fit_line([small, big], [cpu_s(lambda d=d: write_jsonl(Path(tmp) / "w.jsonl", d), 2)[0]
                                                 for d in (docs_small, docs)], "document", "write_jsonl of the records")
    log("write")
    from qlife.methods.embed import tfidf_pair_cosine

    pa, pb = np.arange(0, 200, 2), np.arange(1, 200, 2)
    units["report_pairs"] = fit_line([small, big], [cpu_s(lambda n=n: tfidf_pair_cosine(texts[:n], pa, pb))[0]
                                                    for n in (small, big)], "document",
                                     "tfidf_pair_cosine (the report's removed-pair statistics: document frequencies "
                                     "over every text that reached near-dup removal), 100 pairs")
    log("report_pairs")
    units.update(_dask_units(quick, log))
    return {"units": units, "memory": memory, "measure_wall_s": time.perf_counter() - t_all,
            "sizes": {"small": small, "big": big, "clusters": list(ms)}}


@contextmanager
def kmeans_iterations_seen():
    """The Lloyd iterations of every scikit-learn KMeans fitted meanwhile (semdedup.kmeans imports it on each call:
    a subclass that records n_iter_ stands in for it, nothing else changed)."""
    import sklearn.cluster

    seen, orig = [], sklearn.cluster.KMeans

    class Recording(orig):
        def fit(self, *a, **kw):
            out = super().fit(*a, **kw)
            seen.append(int(self.n_iter_))
            return out

    sklearn.cluster.KMeans = Recording
    try:
        yield seen
    finally:
        sklearn.cluster.KMeans = orig


def _kmeans_iterations(embeddings: dict[str, np.ndarray | None], cp) -> dict[str, Any]:
    """Lloyd iterations semdedup.kmeans runs at its defaults (max_iter 100, tol 1e-4) with k = curate.n_clusters
    on each set of embeddings measured here; the model takes the largest."""
    from qlife.methods import semdedup as sd

    per = {}
    for name, X in embeddings.items():
        if X is None:
            continue
        with kmeans_iterations_seen() as seen:
            sd.kmeans(X, min(cp.n_clusters, len(X)), seed=cp.seed)
        per[name] = {"iterations": seen[0], "docs": len(X), "k": min(cp.n_clusters, len(X))}
    return {"unit": "iterations", "by_embeddings": per, "iterations": max(v["iterations"] for v in per.values()),
            "how": "semdedup.kmeans at its defaults (max_iter 100, tol 1e-4), k = curate.n_clusters; the largest",
            "s_per_unit": None, "spread": None}


def _static_units(params, small: int, big: int, quick: bool, log) -> tuple[dict[str, Any], np.ndarray | None]:
    """static_table (teacher seconds per vocabulary token) and static_embed (per document) on SST-2 train texts
    (generated ones if SST-2 is absent): teacher_table uncached at two corpus sizes, then the table's per-document
    path as qlife.dedup.static_embed runs it. Without the teacher: embedders.json's static docs/s, said so."""
    import torch

    from qlife.arrays import unit_rows
    from qlife.methods.static_embed import WordIds, teacher_table
    from qlife.models import cached_encoder

    cp, st, out = params.curate, params.curate.static, {}
    texts = _sst2_texts(big) or [d["text"] for d in _texts_generated(big)[0]]
    try:
        t_load = cpu_s(lambda: cached_encoder(params.train.model, params.train.pooling))[0]
        out["teacher_load"] = {"unit": "process", "s_per_unit": t_load, "spread": None,
                               "how": f"cached_encoder({params.train.model}): once per process building a table"}
        pts, table = [], None
        for n in ((100, 400) if quick else (500, 2000)):
            t, (table, info) = cpu_s(lambda n=n: teacher_table(params.train.model, params.train.pooling, texts[:n],
                                                               st.dims, st.vocabulary, st.sif_a, cp.embed_max_length,
                                                               st.batch_size, cache=False))
            pts.append((info["table_tokens"], t))
        out["static_table"] = fit_line(*zip(*pts), "vocabulary token",
                                       f"teacher_table({params.train.model}, cache=False): teacher on one-token docs")
        torch.set_num_threads(2)  # as curate runs it (torch's threads: this machine's 2 cores)
        try:
            t2, (_, info2) = cpu_s(lambda: teacher_table(params.train.model, params.train.pooling, texts[:n], st.dims,
                                                         st.vocabulary, st.sif_a, cp.embed_max_length, st.batch_size,
                                                         cache=False))
        finally:
            torch.set_num_threads(1)
        out["static_table_2_threads"] = {"unit": "vocabulary token", "s_per_unit": t2 / info2["table_tokens"],
                                         "spread": None, "how": f"the same, {n} texts, torch on 2 threads (curate's "
                                                                "setting): CPU seconds of both threads"}
        log("static_table", out)
    except Exception as err:  # no teacher here (offline): the earlier measurement, said so
        out["static_table"] = {"unit": "vocabulary token", "s_per_unit": None, "spread": None,
                               "how": f"not measured ({type(err).__name__}: {err}); the 67k report's build_s used"}
        table = None
    if table is None:
        emb = json.loads((RESULTS / "embedders.json").read_text())
        rate = np.mean([r["docs_per_s"] for r in emb["rows"] if r["embedder"] == "static"])
        out["static_embed"] = {"unit": "document", "s_per_unit": 2.0 / rate, "spread": None,
                               "how": "bench/results/embedders.json static docs/s on 2 cores (x2 core-seconds)"}
        return out, None

    def encode(n: int) -> np.ndarray:
        table._ids = WordIds(table._tokenizer())  # a fresh word cache: teacher_table tokenises the corpus first
        table.token_ids(texts[:n])
        return unit_rows(table.encode_texts(texts[:n]).astype(np.float64))

    out["static_embed"] = fit_line([small, big], [cpu_s(lambda n=n: encode(n), 2)[0] for n in (small, big)],
                                   "document", "WordIds tokenisation + encode_texts + unit_rows on "
                                   + ("SST-2 train" if SST2.exists() else "generated") + " texts")
    log("static_embed", out)
    return out, encode(big)


FIXED_CODE = """
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from qlife.dedup import quantum_dedup  # the stage imports qlife.dedup before its meters start
from qlife.methods.semdedup import semdedup_classical
from qlife.params import parse_params
p = parse_params({})
X = np.random.default_rng(0).standard_normal((300, 128))
X /= np.linalg.norm(X, axis=1, keepdims=True)
out = {}
with threadpool_limits(1):
    for name, fn in (("classical_fixed", lambda: semdedup_classical(X, 5, p.curate.eps, p.curate.seed, p.curate.keep)),
                     ("quantum_fixed", lambda: quantum_dedup(X, 5, p))):
        t = time.process_time()
        fn()
        out[name] = time.process_time() - t
print(json.dumps(out))
"""


def _fixed_units() -> dict[str, Any]:
    """What each SemDeDup pays once per run, whatever the corpus: its first call on 300 random unit rows (k = 5) in a
    fresh process that has imported qlife.dedup, as the stage has (lazy imports; the quantum path's circuit
    resources, transpiled once, and its shots comparison on 20 pairs)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", FIXED_CODE], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"the fixed-cost child failed: {proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    how = {"classical_fixed": "semdedup_classical, first call in a fresh process, 300 rows, k = 5",
           "quantum_fixed": "qlife.dedup.quantum_dedup, first call in a fresh process, 300 rows, k = 5"}
    return {k: {"unit": "run", "s_per_unit": v, "spread": None, "how": how[k]} for k, v in got.items()}


def _quantum_units(X: np.ndarray, params, ms, big: int, quick: bool, log, cluster) -> dict[str, Any]:
    from qlife.methods import semdedup as sd
    from qlife.methods.qencoding import StateEncoder
    from qlife.methods.qkmeans import ClusterFidelity, default_threshold, qkmeans
    from qlife.quantum.fidelity import FidelityKernel

    q, out, cp = 7, {}, params.curate  # amplitude: 2^7 = 128 = embed_dim
    S = StateEncoder.fit(X, "amplitude", q)(X)
    est = FidelityKernel("statevector", "amplitude", q)
    job = sd.ClusterJob(ClusterFidelity(est), sd.cosine_to_centroid, default_threshold("amplitude", cp.eps), cp.keep)
    out["qpair"] = fit_line([m * (m - 1) / 2 for m in ms], [cpu_s(lambda m=m: cluster(job, S, m), 2)[0] for m in ms],
                            "within-cluster pair", "ClusterJob with ClusterFidelity (statevector, amplitude, 7 qubits)")
    log("qpair", out)
    many = (100, 300)
    out["qcluster"] = fit_line(many, [cpu_s(lambda c=c: [cluster(job, S[i * 8:], 8) for i in range(c)], 2)[0]
                                      for c in many], "cluster", "ClusterJob fidelity on clusters of 8: per call")
    lloyd, init = [], []
    for s, k in ([(big // 2, 50)] if quick else [(big // 2, 50), (big, 50)]):
        runs = {}
        for it in (2, 6):
            t, r = cpu_s(lambda s=s, k=k, it=it: qkmeans(S[:s], k, est, seed=cp.seed, max_iter=it, tol=0.0,
                                                          patience=100))
            runs[it] = (t, r.n_iter)
        d_it = runs[6][1] - runs[2][1]
        per = max(runs[6][0] - runs[2][0], 1e-9) / max(d_it, 1)
        lloyd.append((s * k * max(d_it, 1), runs[6][0] - runs[2][0]))
        init.append((s * k * (2 + int(math.log(k))), max(runs[2][0] - runs[2][1] * per, 1e-9)))
    out["qmeans_lloyd"] = fit_line(*zip(*lloyd), "row x centroid x iteration", "qkmeans max_iter 6 - 2")
    out["qmeans_init"] = fit_line(*zip(*init), "row x centroid x trial", "qkmeans fidelity k-means++ init")
    log("qmeans_lloyd", out)
    return out


def _dask_units(quick: bool, log) -> dict[str, Any]:
    """A LocalCluster of 2 worker processes (qlife.parallel's own): start, wall per tiny task, per pmap call, and
    this process's RSS per task held (the scheduler and client live here)."""
    import psutil

    from qlife import parallel

    where = parallel.Placement("local_dask", 2)
    t0 = time.perf_counter()
    client = parallel._client(where)
    start = time.perf_counter() - t0
    client.gather(client.map(abs, range(20), pure=False))  # warm
    pts = []
    for n in ((50, 150) if quick else (100, 300)):
        t0 = time.perf_counter()
        client.gather(client.map(abs, range(-n, 0), pure=False))
        pts.append((n, time.perf_counter() - t0))
    maps = 3 if quick else 6
    items = [[i] * 8 for i in range(64)]
    t0 = time.perf_counter()
    for _ in range(maps):
        parallel._pmap(len, items, where, "bench plan")
    per_map = (time.perf_counter() - t0) / maps
    n_held = 300 if quick else 1000
    rss0 = psutil.Process().memory_info().rss
    held = client.map(abs, range(10**6, 10**6 + n_held), pure=False)
    client.gather(held)
    per_task_bytes = max(psutil.Process().memory_info().rss - rss0, 0) / n_held
    del held
    parallel.close()
    out = {"dask_task": fit_line(*zip(*pts), "task", "client.map of a no-op on a LocalCluster of 2 processes (wall)"),
           "dask_map": {"unit": "map", "s_per_unit": per_map, "spread": None,
                        "how": f"qlife.parallel pmap of 64 tiny items (8 chunks: scatter + gather), {maps} calls, "
                               "wall"},
           "dask_start": {"unit": "cluster", "s_per_unit": start, "spread": None, "how": "LocalCluster(2 processes)"},
           "dask_task_bytes": {"unit": "task held", "s_per_unit": None, "bytes": per_task_bytes, "spread": None,
                               "how": f"RSS of the client + scheduler process over {n_held} finished futures held"}}
    log("dask_task", out)
    return out


# ----------------------------------------------------------------------------- earlier measurements

def curate_report_67k(growth: dict, earlier_plan: Path | None = None) -> dict[str, Any] | None:
    """The largest SST-2 curate run's phases, from the first of: bench.growth's row (`report`, recorded since
    bench.growth keeps it), the run's workspace if it is still there (GROWTH_REPORT_67K), the committed plan.json's
    earlier copy (`via` then names it; `file` stays the first source). None when none has it."""
    from bench.growth import curate_report_figures

    rows = sorted((r for r in growth["rows"] if r["kind"] == "sst2" and r["step"] == "curate" and r.get("ok")),
                  key=lambda r: r["n"])
    if rows and rows[-1].get("report"):
        return {"file": f"bench/results/growth.json (sst2 curate, n = {rows[-1]['n']})", **rows[-1]["report"]}
    if GROWTH_REPORT_67K.exists():
        return {"file": str(GROWTH_REPORT_67K), **curate_report_figures(json.loads(GROWTH_REPORT_67K.read_text()))}
    path = earlier_plan or RESULTS / "plan.json"
    try:
        plan = json.loads(path.read_text())
        kept = dict(plan["earlier"]["report_67k"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    name = "bench/results/plan.json" if earlier_plan is None else str(path)
    kept.setdefault("via", f"{name}, as its run of {plan.get('created', '?')} read it")  # `file`: the first source
    return kept


def earlier_results() -> dict[str, Any]:
    """What the model takes from results already measured (files named): growth's RSS per document and base, its
    pairs skew; scale's 2-core speed-up; embedders' teacher docs/s; the 67k report's phases."""
    growth = json.loads((RESULTS / "growth.json").read_text())
    gen = sorted((r for r in growth["rows"] if r["kind"] == "generator" and r["step"] == "curate" and r["ok"]),
                 key=lambda r: r["n"])
    a, b = gen[-2], gen[-1]
    rss_slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 1e6 / (b["n"] - a["n"])
    rest_share = np.mean([r["kmeans_fit_docs"] / r["n"] for r in gen if r["kmeans_fit_docs"] < 100_000])
    skews = []
    for r in gen:
        rest = r["kmeans_fit_docs"] if r["kmeans_fit_docs"] < 100_000 else rest_share * r["n"]
        skews.append({"n": r["n"], "k": r["n_clusters"], "rest_est": rest,
                      "pairs": r["pairs_compared"]["classical"],
                      "skew": r["pairs_compared"]["classical"] / (rest * rest / (2 * r["n_clusters"]))})
    scale = json.loads((RESULTS / "scale.json").read_text())
    speedups = [r["speedup_embed_vs_one_core"] for r in scale["rows"] if r.get("speedup_embed_vs_one_core")]
    emb = json.loads((RESULTS / "embedders.json").read_text())
    teacher = {k: v["docs_per_s"] for k, v in emb["teacher_totals"].items()}
    report_67k = curate_report_67k(growth)
    out = {"growth_rss": {"from": f"bench/results/growth.json generator curate n = {a['n']} and {b['n']}",
                          "bytes_per_doc": rss_slope, "base_mb": a["peak_rss_mb"] - rss_slope * a["n"] / 1e6},
           "rest_share": float(rest_share), "pairs_skew": skews, "skew": skews[-1]["skew"],
           "worker_speedup": {"from": "bench/results/scale.json speedup_embed_vs_one_core (pool/dask, 2 workers on "
                                      "2 cores vs one core)", "values": speedups, "used": max(speedups)},
           "teacher_docs_per_s_2_cores": teacher, "report_67k": report_67k}
    return out


# ----------------------------------------------------------------------------- the model

def u(units: dict, name: str) -> float:
    """A unit's cost (0 when it was not measured: e.g. teacher_load without the teacher)."""
    return float((units.get(name) or {}).get("s_per_unit") or 0.0)


def kmeans_fit_s(units: dict, rows: float, k: float, iterations: float, prefix: str = "kmeans") -> float:
    """CPU seconds of a k-means fit: k-means++ init (rows x k x (2 + ln k)) plus iterations x rows x k."""
    if rows <= 0 or k <= 0:
        return 0.0
    return (u(units, f"{prefix}_init") * rows * k * (2 + math.log(k))
            + u(units, f"{prefix}_lloyd") * rows * k * iterations)


def today_cpu(units: dict, n_in: float, n_rest: float, cfg: dict, embedder: str, methods: tuple[str, ...],
              pairs: dict | None = None, iterations: dict | None = None, table_tokens: float = 0.0) -> dict[str, float]:
    """Single-core CPU seconds per phase of curate's dedup as the code runs it today (one process): n_in texts into
    deduplicate, n_rest after the exact hash. `pairs`: measured within-cluster pairs per method (else the skewed
    uniform count); `iterations`: Lloyd iterations per method."""
    from qlife.methods.semdedup import cluster_count

    k = cluster_count(int(n_rest), cfg["n_clusters"], cfg["cluster_docs"])
    s = min(n_rest, cfg["fit_sample"])
    sampled = n_rest > cfg["fit_sample"]
    uniform = cfg.get("skew", 1.0) * n_rest * n_rest / (2 * k)
    pairs, iterations = pairs or {}, iterations or {}
    out = {"exact_hash": u(units, "exact_hash") * n_in}
    if embedder == "tfidf":
        out["embed"] = u(units, "tfidf_fit") * s + u(units, "tfidf_embed") * n_rest
    elif embedder == "static":  # the table as curate builds it: torch on this machine's threads
        table = "static_table_2_threads" if u(units, "static_table_2_threads") else "static_table"
        out["embed"] = (u(units, "teacher_load") + u(units, table) * table_tokens
                        + u(units, "static_embed") * n_rest)
    if "classical" in methods:
        out["classical"] = (u(units, "classical_fixed") + u(units, "cluster") * k
                            + kmeans_fit_s(units, s, k, iterations.get("classical", 10))
                            + (u(units, "assign") * n_rest * k if sampled else 0.0)
                            + u(units, "pair") * pairs.get("classical", uniform))
    if "quantum" in methods:
        out["quantum"] = (u(units, "quantum_fixed") + u(units, "qcluster") * k
                          + kmeans_fit_s(units, s, k, iterations.get("quantum", 10), "qmeans")
                          + (u(units, "qmeans_lloyd") * n_rest * k if sampled else 0.0)
                          + u(units, "qpair") * pairs.get("quantum", uniform))
    return out


def plan_phases(units: dict, cfg: dict) -> list[dict[str, Any]]:
    """The 10^8 plan, phase by phase: single-core CPU seconds that split over workers (`cpu_s`, at most `tasks`
    ways), seconds on the driver (`serial_s`), bytes shuffled all-to-all, broadcast from / gathered to the driver,
    Dask tasks and maps (barriers), and memory: bytes per document of a worker's share held while the phase runs
    (`worker_bytes_per_doc`), fixed bytes per worker, bytes on the driver. Clustering is two-level k-means: k1 =
    ceil(sqrt(k)) centroids fitted on the driver on curate.fit_sample rows, then k2 = ceil(k / k1) inside each
    top-level cluster (fitted on up to fit_sample of its rows, one task each, on the worker owning it)."""
    n = cfg["docs"]
    n_in = n * (1 - cfg["reference_share"])
    n_rest = n_in * (1 - cfg["exact_dup_share"])
    d, s = cfg["embed_dim"], cfg["fit_sample"]
    k = max(cfg["n_clusters"], math.ceil(n_rest / cfg["cluster_docs"]))
    k1 = math.ceil(math.sqrt(k))
    k2 = math.ceil(k / k1)
    s2 = min(s, n_rest / k1)
    it = cfg["iterations"]
    parts = math.ceil(n / cfg["partition_rows"])
    emb = 8 * d  # float64 row
    pairs = cfg["skew"] * n_rest * n_rest / (2 * k1 * k2)
    exact_b = cfg["exact_hash_bytes_per_doc"]
    part_texts = cfg["partition_rows"] * cfg["text_record_bytes"]
    if cfg["embedder"] == "static":
        embed_cpu = u(units, "static_embed") * n_rest
        embed_serial = u(units, "teacher_load") + u(units, "static_table") * cfg["static_vocabulary"]
        embed_bcast = cfg["static_vocabulary"] * d * 4
    elif cfg["embedder"] == "tfidf":
        embed_cpu, embed_serial, embed_bcast = u(units, "tfidf_embed") * n_rest, u(units, "tfidf_fit") * s, 0.0
    else:  # teacher: docs/s measured on 2 cores = one worker
        embed_cpu = n_rest / cfg["teacher_docs_per_s"] * cfg["worker_speedup"]
        embed_serial, embed_bcast = 0.0, 0.0
    block = cfg["block_elems"] * 8 + cfg["batch_rows"] * emb
    P = [
        {"phase": "exact hash (partitions, then shuffle by hash)", "cpu_s": u(units, "exact_hash") * n_in,
         "serial_s": 0.0, "shuffle_bytes": cfg["digest_bytes"] * n_in, "tasks": 2 * parts, "maps": 2,
         "worker_bytes_per_doc": exact_b, "worker_fixed_bytes": part_texts},
        {"phase": f"embed ({cfg['embedder']})", "cpu_s": embed_cpu, "serial_s": embed_serial,
         "broadcast_bytes": embed_bcast, "tasks": parts, "maps": 1, "worker_bytes_per_doc": emb,
         "worker_fixed_bytes": part_texts},
        {"phase": f"centroids level 1 (k1 = {k1}, driver, {s:,.0f} rows)", "cpu_s": 0.0,
         "serial_s": kmeans_fit_s(units, s, k1, it), "gather_bytes": s * emb, "broadcast_bytes": k1 * emb,
         "tasks": 1, "maps": 1, "worker_bytes_per_doc": emb, "driver_bytes": 3 * s * emb},
        {"phase": "assign level 1", "cpu_s": u(units, "assign") * n_rest * k1, "tasks": parts, "maps": 1,
         "worker_bytes_per_doc": emb, "worker_fixed_bytes": 2 * cfg["assign_rows"] * k1 * 8},
        {"phase": "shuffle embeddings to top-cluster owners", "cpu_s": 0.0, "shuffle_bytes": n_rest * (emb + 8),
         "tasks": 2 * parts, "maps": 1, "worker_bytes_per_doc": 2 * emb},
        {"phase": f"centroids level 2 (k2 = {k2} in each, {s2:,.0f} rows)",
         "cpu_s": k1 * kmeans_fit_s(units, s2, k2, it),
         "parallel_tasks": k1, "tasks": k1, "maps": 1, "worker_bytes_per_doc": emb},
        {"phase": "assign level 2", "cpu_s": u(units, "assign") * n_rest * k2, "tasks": k1, "maps": 1,
         "worker_bytes_per_doc": emb, "worker_fixed_bytes": 2 * cfg["assign_rows"] * k2 * 8},
        {"phase": f"within-cluster similarity ({k1 * k2:,} clusters)",
         "cpu_s": u(units, "pair") * pairs + u(units, "cluster") * k1 * k2,
         "tasks": k1 * k2, "maps": 1, "worker_bytes_per_doc": emb, "worker_fixed_bytes": block},
        {"phase": "merge decisions (per worker; counts to the driver)", "cpu_s": u(units, "merge") * n_in,
         "tasks": parts, "maps": 1, "worker_bytes_per_doc": 16},
        {"phase": "splits by hash of id + write part files", "cpu_s": (u(units, "split") + u(units, "write")) * n,
         "tasks": parts, "maps": 1, "worker_bytes_per_doc": 0.0, "worker_fixed_bytes": part_texts},
        {"phase": "report: removed-pair statistics (document frequencies per partition)",
         "cpu_s": u(units, "report_pairs") * n_rest, "tasks": parts, "maps": 1, "worker_bytes_per_doc": emb,
         "worker_fixed_bytes": part_texts},
        {"phase": "model registry (promote: one writer, O(1) per model)", "cpu_s": 0.0, "serial_s": 0.0,
         "tasks": 0, "maps": 0},
    ]
    for p in P:
        for key in ("serial_s", "shuffle_bytes", "broadcast_bytes", "gather_bytes", "tasks", "maps",
                    "worker_bytes_per_doc", "worker_fixed_bytes", "driver_bytes"):
            p.setdefault(key, 0.0)
        p.setdefault("parallel_tasks", None)
    meta = {"n_in": n_in, "n_rest": n_rest, "k": k, "k1": k1, "k2": k2, "pairs": pairs, "partitions": parts}
    return [dict(p, **{"_meta": meta}) for p in P]


def at_workers(phases: list[dict], N: int, cfg: dict, units: dict) -> dict[str, Any]:
    """Wall seconds and memory of the phases on N workers: per phase cpu / (N' x worker speed-up) (N' = N, or the
    phase's independent tasks if fewer) + serial + network (a worker's share of a shuffle, (N-1)/N of it leaves,
    over `bandwidth`; broadcasts N x bytes and gathers through the driver's link; none on one worker) + tasks x
    Dask per-task seconds + maps x per-map seconds. Memory per worker: base + the largest phase's share of
    documents x its bytes per document + its fixed bytes; the driver: base + its largest phase + Dask's bytes per
    task x all tasks."""
    bw = cfg["bandwidth_gbs"] * GB
    n_docs = phases[0]["_meta"]["n_rest"] if phases else 0.0
    rows, par, ser, net, dask = [], 0.0, 0.0, 0.0, 0.0
    tasks_total = 0.0
    worker_peak, driver_peak = 0.0, 0.0
    for p in phases:
        ways = N if p["parallel_tasks"] is None else max(1, min(N, p["parallel_tasks"]))
        t_par = p["cpu_s"] / (ways * cfg["worker_speedup"])
        t_net = 0.0 if N == 1 else (p["shuffle_bytes"] * (N - 1) / N / N + p["broadcast_bytes"] * N
                                    + p["gather_bytes"]) / bw
        t_dask = p["tasks"] * u(units, "dask_task") + p["maps"] * u(units, "dask_map")
        par, ser, net, dask = par + t_par, ser + p["serial_s"], net + t_net, dask + t_dask
        tasks_total += p["tasks"]
        mem = p["worker_bytes_per_doc"] * n_docs / N + p["worker_fixed_bytes"]
        worker_peak, driver_peak = max(worker_peak, mem), max(driver_peak, p["driver_bytes"])
        rows.append({"phase": p["phase"], "parallel_s": t_par, "serial_s": p["serial_s"], "network_s": t_net,
                     "dask_s": t_dask, "worker_gb": mem / GB})
    base = cfg["base_bytes"]
    driver = base + driver_peak + tasks_total * cfg["dask_task_bytes"]
    worker = base + worker_peak
    total = par + ser + net + dask
    today = base + cfg["today_bytes_per_doc"] * cfg["docs"] / N  # growth's RSS per corpus document
    return {"workers": N, "time_s": total, "time_h": total / 3600, "parallel_s": par, "serial_s": ser,
            "network_s": net, "dask_s": dask, "serial_share": (ser + dask) / total if total else 0.0,
            "worker_gb": worker / GB, "fits_worker": worker <= cfg["worker_ram_gb"] * GB,
            "today_layout_gb": today / GB, "driver_gb": driver / GB, "tasks": tasks_total, "phases": rows}


def centroid_options(units: dict, cfg: dict, workers: tuple[int, ...]) -> list[dict[str, Any]]:
    """The serial part that does not scale, three ways, for k = n_rest / cluster_docs clusters: (A) today's code,
    k-means on the driver on curate.fit_sample rows, every document then scored against all k centroids; (B) Lloyd
    distributed over the workers on rows_per_centroid x k rows (partial sums reduced each iteration: k x d floats
    per worker), init as a few passes; (C) two-level (the plan: `plan_phases`). CPU in core-seconds; wall of fit +
    assignment at each N; the assignment's score block per worker (ASSIGN_ROWS x k, float64, with its temporary)."""
    n_rest = cfg["docs"] * (1 - cfg["reference_share"]) * (1 - cfg["exact_dup_share"])
    k = max(cfg["n_clusters"], math.ceil(n_rest / cfg["cluster_docs"]))
    k1, s, it, sp = math.ceil(math.sqrt(k)), cfg["fit_sample"], cfg["iterations"], cfg["worker_speedup"]
    k2 = math.ceil(k / k1)
    s2 = min(s, n_rest / k1)
    emb = 8 * cfg["embed_dim"]
    bw = cfg["bandwidth_gbs"] * GB
    sb = cfg["distributed_lloyd_rows_per_centroid"] * k
    out = []
    a_fit, a_assign = kmeans_fit_s(units, s, k, it), u(units, "assign") * n_rest * k
    out.append({"option": f"A today: k-means on the driver, {s:,} rows for {k:,} centroids "
                          f"({s / k:.1f} rows each)", "serial_s": a_fit, "parallel_cpu_s": a_assign,
                "assign_block_gb": 2 * cfg["assign_rows"] * k * 8 / GB,
                "wall_s": {str(N): a_fit + a_assign / (N * sp) + (k * emb * N / bw if N > 1 else 0) for N in workers}})
    b_iter = u(units, "kmeans_lloyd") * sb * k
    b_cpu = b_iter * (it + cfg["distributed_lloyd_init_passes"])
    out.append({"option": f"B distributed Lloyd on {sb:,.0f} rows ({cfg['distributed_lloyd_rows_per_centroid']} "
                          f"per centroid), init {cfg['distributed_lloyd_init_passes']} passes", "serial_s": 0.0,
                "parallel_cpu_s": b_cpu + a_assign, "assign_block_gb": 2 * cfg["assign_rows"] * k * 8 / GB,
                "wall_s": {str(N): (b_cpu + a_assign) / (N * sp)
                           + ((it + cfg["distributed_lloyd_init_passes"]) * 2 * k * emb / bw if N > 1 else 0)
                           for N in workers}})
    c_fit1 = kmeans_fit_s(units, s, k1, it)
    c_par = k1 * kmeans_fit_s(units, s2, k2, it) + u(units, "assign") * n_rest * (k1 + k2)
    out.append({"option": f"C two-level (the plan): {k1} x {k2} centroids, each level on up to {s:,} rows",
                "serial_s": c_fit1, "parallel_cpu_s": c_par,
                "assign_block_gb": 2 * cfg["assign_rows"] * max(k1, k2) * 8 / GB,
                "wall_s": {str(N): c_fit1 + k1 * kmeans_fit_s(units, s2, k2, it) / (min(N, k1) * sp)
                           + u(units, "assign") * n_rest * (k1 + k2) / (N * sp) for N in workers}})
    return out


def today_serial(units: dict, cfg: dict) -> list[dict[str, Any]]:
    """What curate's code as it is would do in its one process at cfg['docs'] (only the teacher's embedding shards
    and the per-cluster similarity go through qlife.parallel.pmap today): CPU seconds and bytes held of each part,
    and where the plan puts it."""
    n = cfg["docs"]
    n_in = n * (1 - cfg["reference_share"])
    n_rest = n_in * (1 - cfg["exact_dup_share"])
    k = max(cfg["n_clusters"], math.ceil(n_rest / cfg["cluster_docs"]))
    emb = 8 * cfg["embed_dim"]
    emb_s = {"static": u(units, "static_embed"), "tfidf": u(units, "tfidf_embed")}.get(cfg["embedder"], 0.0)
    rows = [
        ("exact hash: one first-seen dict of every document", u(units, "exact_hash") * n_in,
         cfg["exact_hash_bytes_per_doc"] * n_in, "per partition, then shuffled by hash: each worker owns a range"),
        (f"embed ({cfg['embedder']}) into one (n, d) float64 array", emb_s * n_rest, emb * n_rest,
         "per partition on the workers"),
        (f"centroid fit: {cfg['fit_sample']:,} rows for k = {k:,}", kmeans_fit_s(units, cfg["fit_sample"], k,
                                                                                cfg["iterations"]),
         3 * cfg["fit_sample"] * emb, "two-level k-means: the driver fits only sqrt(k) centroids"),
        ("assign every document to its nearest centroid", u(units, "assign") * n_rest * k,
         2 * cfg["assign_rows"] * k * 8, "per partition against sqrt(k), then inside its top-level cluster"),
        ("merge decisions (qlife.dedup._merge)", u(units, "merge") * n_in, 16 * n_in, "per worker"),
        ("stratified split + hold-out over all documents", u(units, "split") * n, cfg["text_record_bytes"] * n,
         "by hash of the id, per partition (a stratified split becomes per partition)"),
        ("write the splits (one file each)", u(units, "write") * n, 0.0, "part files per partition"),
        ("report: removed-pair statistics over every text", u(units, "report_pairs") * n_rest, 0.0,
         "document frequencies per partition, counts merged"),
        ("model registry: promote", 0.0, 0.0, "stays serial: one writer, O(1) per model, not per document"),
    ]
    return [{"part": a, "cpu_s": b, "bytes_gb": c / GB, "plan": d} for a, b, c, d in rows]


def quantum_plan(units: dict, cfg: dict, phases: list[dict], earlier: dict, workers: tuple[int, ...]) -> dict:
    """Quantum SemDeDup at 10^8, simulated classically (statevector): the within-cluster fidelities (qpair) and
    q-means on the same two levels (qmeans units), and what the 67k report's phase cost per pair and QPU estimate
    per circuit say. Not in the plan's default (curate.method classical)."""
    m = phases[0]["_meta"]
    it = (earlier.get("report_67k") or {}).get("qmeans_iterations", cfg["iterations"])
    s, s2 = cfg["fit_sample"], min(cfg["fit_sample"], m["n_rest"] / m["k1"])
    cpu = (u(units, "qpair") * m["pairs"] + kmeans_fit_s(units, s, m["k1"], it, "qmeans")
           + m["k1"] * kmeans_fit_s(units, s2, m["k2"], it, "qmeans")
           + u(units, "qmeans_lloyd") * m["n_rest"] * (m["k1"] + m["k2"]))
    out = {"pairs": m["pairs"], "qmeans_iterations": it, "cpu_s": cpu,
           "wall_s": {str(N): cpu / (N * cfg["worker_speedup"]) for N in workers},
           "circuits": m["pairs"] + m["n_rest"] * (m["k1"] + m["k2"])}
    r = earlier.get("report_67k")
    if r:
        out["cpu_s_from_67k_report_per_pair"] = r["quantum_cpu_s_per_pair"] * m["pairs"]
        out["qpu_seconds_est"] = r["qpu_seconds_est"] / r["circuits"] * out["circuits"]
        out["qpu_years_est"] = out["qpu_seconds_est"] / (365.25 * 86400)
    return out


def model_cfg(measured: dict, earlier: dict, args) -> dict[str, Any]:
    """ASSUMPTIONS with what was measured folded in (each named in plan.json)."""
    mem = measured["memory"]
    cfg = dict(ASSUMPTIONS, docs=int(args.docs), bandwidth_gbs=args.bandwidth_gbs,
               iterations=measured["units"]["kmeans_iterations"]["iterations"], skew=earlier["skew"],
               worker_speedup=earlier["worker_speedup"]["used"],
               exact_hash_bytes_per_doc=mem["exact_hash_bytes_per_doc"],
               text_record_bytes=mem["text_record_bytes"], base_bytes=earlier["growth_rss"]["base_mb"] * 1e6,
               today_bytes_per_doc=earlier["growth_rss"]["bytes_per_doc"],
               dask_task_bytes=measured["units"]["dask_task_bytes"]["bytes"],
               teacher_docs_per_s=earlier["teacher_docs_per_s_2_cores"].get("teacher onnxruntime/int8", 20.0))
    if args.embedder:
        cfg["embedder"] = args.embedder
    return cfg


# ----------------------------------------------------------------------------- validation

def rerun_curate(n: int) -> dict[str, Any]:
    """Curate on n generated documents (tfidf, params.yaml's method both) now, in its own process, as bench.growth
    runs it (its workspace and measurement): the stage's own per-phase CPU seconds from its report, at this
    machine's load now (bench.growth's runs were at another load)."""
    import shutil

    from bench import growth

    folder = Path(tempfile.mkdtemp(prefix=f"qlife-plan-curate-{n}-"))
    try:
        raw = growth.generator_workspace(folder, n, "tfidf")
        cmd = dict(growth.pipeline_steps())["curate"]
        load = os.getloadavg()[0]
        m = growth.run_measured(growth.command(cmd, raw), cwd=folder, env=growth.child_env(),
                                log=folder / "curate.log", timeout_s=900)
        if m["rc"] != 0:
            return {"n": n, "ok": False, "log_tail": growth.tail(folder / "curate.log")}
        report = json.loads((folder / raw["paths"]["reports"] / "curate.json").read_text())
        methods = report["methods"]
        return {"n": n, "ok": True, "load_avg_1m": load, "process_cpu_s": m["cpu_s"], "peak_rss_mb": m["peak_rss_mb"],
                "cost": {k: v["cpu_s"] for k, v in report["cost"].items()},
                "docs_in": report["summary"]["docs_in"], "rest": report["summary"]["docs_in"]
                - methods["classical"]["exact_removed"],
                "pairs": {k: methods[k]["n_pairs_compared"] for k in ("classical", "quantum")},
                "qmeans_iterations": methods["quantum"]["kmeans_iterations"],
                "n_clusters": methods["classical"]["n_clusters"]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _its(units: dict, which: str, q_iterations: float) -> dict[str, float]:
    by = units["kmeans_iterations"]["by_embeddings"]
    return {"classical": by.get(which, {}).get("iterations", units["kmeans_iterations"]["iterations"]),
            "quantum": q_iterations}


def validate(units: dict, cfg: dict, earlier: dict, rerun: dict | None = None) -> list[dict[str, Any]]:
    """Predicted single-core CPU seconds of curate against measured stage CPU (the stage's own meter, which
    includes what the units leave out: the report's removed-pair statistics, the verdict, the encoders' fits):
    `rerun` (generated, tfidf, both methods, now), bench.growth's generated corpora (the same at 10^4-10^6, at the
    load of those runs) and, from the 67k report, SST-2's phases (static). The measured pairs per method and
    q-means iterations are used (the run's own, or the 67k report's); k-means iterations as measured here."""
    growth = json.loads((RESULTS / "growth.json").read_text())
    r67 = earlier.get("report_67k")
    q_it = r67["qmeans_iterations"] if r67 else cfg["iterations"]
    rows = []

    def outside(corpus: str, n: int, n_rest: float) -> dict[str, float]:  # what the stage does beside the phases
        return {"generate": u(units, "generate") * n if "generator" in corpus else 0.0,
                "split+write": (u(units, "split") + u(units, "write")) * n,
                "report pairs": u(units, "report_pairs") * n_rest * 2}  # once per method (both)

    def total_row(corpus: str, n: int, n_rest: float, ph: dict, measured: float, load: float | None) -> dict:
        extra = outside(corpus, n, n_rest)
        pred = sum(ph.values()) + sum(extra.values())
        return {"corpus": corpus, "phase": "stage total", "measured_cpu_s": measured, "predicted_cpu_s": pred,
                "ratio": pred / measured, "load_avg_1m": load, "predicted_parts": {**ph, **extra}}

    def phase_rows(corpus: str, n: int, n_rest: float, ph: dict, cost: dict, load: float | None) -> list[dict]:
        rows = [{"corpus": corpus, "phase": name, "measured_cpu_s": cost[name], "predicted_cpu_s": ph[name],
                 "ratio": ph[name] / cost[name], "load_avg_1m": load} for name in ph if cost.get(name)]
        rest_s = cost["total"] - sum(cost.get(name, 0.0) for name in ph)  # load, split, write, report, verdict
        pred = sum(outside(corpus, n, n_rest).values())
        rows.append({"corpus": corpus, "phase": "the rest (load, split, write, report pairs; verdict unmodelled)",
                     "measured_cpu_s": rest_s, "predicted_cpu_s": pred, "ratio": pred / rest_s, "load_avg_1m": load})
        return rows

    if rerun and rerun.get("ok"):
        corpus = f"generator {rerun['n']:,} (tfidf), rerun now"
        ph = today_cpu(units, rerun["docs_in"], rerun["rest"], cfg, "tfidf", ("classical", "quantum"), rerun["pairs"],
                       _its(units, "generated texts, tfidf", rerun["qmeans_iterations"]))
        rows += phase_rows(corpus, rerun["n"], rerun["rest"], ph, rerun["cost"], rerun["load_avg_1m"])
        rows.append(total_row(corpus, rerun["n"], rerun["rest"], ph, rerun["cost"]["total"], rerun["load_avg_1m"]))
    for r in sorted((r for r in growth["rows"] if r["step"] == "curate" and r["ok"] and r["kind"] == "generator"),
                    key=lambda r: r["n"]):
        n_in = r["n"] * (1 - cfg["reference_share"])
        rest = r["kmeans_fit_docs"] if r["kmeans_fit_docs"] < cfg["fit_sample"] else earlier["rest_share"] * r["n"]
        ph = today_cpu(units, n_in, rest, cfg, "tfidf", ("classical", "quantum"), r["pairs_compared"],
                       _its(units, "generated texts, tfidf", q_it))
        rows.append(total_row(f"generator {r['n']:,} (tfidf), growth.json", r["n"], rest, ph, r["stage_cpu_s"],
                              r.get("load_avg_1m")))
    if r67:
        corpus = "SST-2 67,349 (static), growth's report"
        ph = today_cpu(units, r67["docs_in"], r67["rest"], cfg, "static", ("classical", "quantum"),
                       {"classical": r67["pairs"], "quantum": r67["qpairs"]}, _its(units, "SST-2 train, static", q_it),
                       r67["table_tokens"] or 0)
        rows += phase_rows(corpus, 67349, r67["rest"], ph, r67["cost"], None)
        rows.append(total_row(corpus, 67349, r67["rest"], ph, r67["cost"]["total"], None))
    return rows


def per_doc_check(rerun: dict | None) -> list[dict[str, Any]]:
    """Curate's stage CPU per document: the rerun now against bench.growth's generated runs (same settings, other
    loads): how much the CPU seconds of the same work moved with the machine's load."""
    growth = json.loads((RESULTS / "growth.json").read_text())
    rows = [{"run": f"growth.json generator {r['n']:,}", "load_avg_1m": r.get("load_avg_1m"),
             "stage_cpu_ms_per_doc": 1e3 * r["stage_cpu_s"] / r["n"]}
            for r in growth["rows"] if r["step"] == "curate" and r["ok"] and r["kind"] == "generator"]
    if rerun and rerun.get("ok"):
        rows.insert(0, {"run": f"rerun now, generator {rerun['n']:,}", "load_avg_1m": rerun["load_avg_1m"],
                        "stage_cpu_ms_per_doc": 1e3 * rerun["cost"]["total"] / rerun["n"]})
    return rows


# ----------------------------------------------------------------------------- main

def summary_rows(by_n: list[dict]) -> list[dict]:
    return [{"N": r["workers"], "time_h": r["time_h"], "parallel_h": r["parallel_s"] / 3600,
             "serial_min": r["serial_s"] / 60, "network_min": r["network_s"] / 60, "dask_min": r["dask_s"] / 60,
             "serial_share": r["serial_share"], "worker_gb": r["worker_gb"], "fits_24gb": r["fits_worker"],
             "today_layout_gb": r["today_layout_gb"], "driver_gb": r["driver_gb"]} for r in by_n]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes; writes bench/.cache/plan_quick.json")
    ap.add_argument("--docs", type=float, default=ASSUMPTIONS["docs"])
    ap.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    ap.add_argument("--bandwidth-gbs", type=float, default=ASSUMPTIONS["bandwidth_gbs"])
    ap.add_argument("--embedder", choices=("static", "tfidf", "teacher"), default=None)
    args = ap.parse_args(argv)
    print("measuring unit costs (serial, one thread, CPU seconds) ...", file=sys.stderr, flush=True)
    measured = measure(args.quick)
    earlier = earlier_results()
    cfg = model_cfg(measured, earlier, args)
    units = measured["units"]
    workers = tuple(args.workers)
    if units["static_table"]["s_per_unit"] is None and earlier.get("report_67k"):
        r = earlier["report_67k"]  # the teacher was not here: the 67k report's table build (wall, under load)
        units["static_table"]["s_per_unit"] = r["static_build_s_wall"] / r["table_tokens"]
    phases = plan_phases(units, cfg)
    by_n = [at_workers(phases, N, cfg, units) for N in workers]
    embedders = {e: [at_workers(plan_phases(units, dict(cfg, embedder=e)), N, cfg, units)["time_h"] for N in workers]
                 for e in ("static", "tfidf", "teacher")}
    options = centroid_options(units, cfg, workers)
    quantum = quantum_plan(units, cfg, phases, earlier, workers)
    print("rerunning curate on generated documents for the validation ...", file=sys.stderr, flush=True)
    rerun = rerun_curate(3000 if args.quick else 20000)
    serial_today = today_serial(units, cfg)
    checks = validate(units, cfg, earlier, rerun)
    load_check = per_doc_check(rerun)
    meta = phases[0]["_meta"]

    print(table([{"unit": k, "s_per_unit": v.get("s_per_unit"), "per": v["unit"], "spread": v.get("spread"),
                  "how": v.get("how", "")[:60]} for k, v in units.items()],
                ["unit", "s_per_unit", "per", "spread", "how"]))
    print("\nvalidation (single-core CPU s; ratio = predicted / measured)")
    print(table(checks, ["corpus", "phase", "measured_cpu_s", "predicted_cpu_s", "ratio", "load_avg_1m"]))
    print(table(load_check, ["run", "load_avg_1m", "stage_cpu_ms_per_doc"]))
    print(f"\n{cfg['docs']:.0e} documents ({meta['n_rest']:,.0f} after hold-out and exact hash), embedder "
          f"{cfg['embedder']}, k = {meta['k']:,} clusters ({meta['k1']} x {meta['k2']}), {meta['pairs']:.3g} pairs, "
          f"{meta['partitions']:,} partitions; a worker = {cfg['worker_cores']} cores ({cfg['worker_speedup']:.2f}x "
          f"one core), {cfg['worker_ram_gb']:g} GB; network {cfg['bandwidth_gbs']:g} GB/s")
    print(table(summary_rows(by_n), ["N", "time_h", "parallel_h", "serial_min", "network_min", "dask_min",
                                     "serial_share", "worker_gb", "fits_24gb", "today_layout_gb", "driver_gb"]))
    print(f"\nper phase at N = {workers[min(3, len(workers) - 1)]}:")
    print(table(by_n[min(3, len(workers) - 1)]["phases"], ["phase", "parallel_s", "serial_s", "network_s", "dask_s",
                                                           "worker_gb"]))
    print(f"\ncentroid fit options (k = {meta['k']:,}):")
    print(table([{"option": o["option"], "serial_s": o["serial_s"], "parallel_cpu_s": o["parallel_cpu_s"],
                  "assign_block_gb": o["assign_block_gb"],
                  **{f"wall_h@{N}": o["wall_s"][str(N)] / 3600 for N in workers}}
                 for o in options], ["option", "serial_s", "parallel_cpu_s", "assign_block_gb",
                                     *[f"wall_h@{N}" for N in workers]]))
    print(f"\ncurate's code as it is at {cfg['docs']:.0e} documents: its serial parts (one process)")
    print(table(serial_today, ["part", "cpu_s", "bytes_gb", "plan"]))
    print(f"\nembedders, total hours by N {list(workers)}: "
          + "; ".join(f"{e} {', '.join(f'{h:.3g}' for h in hs)}" for e, hs in embedders.items()))
    print(f"quantum SemDeDup (statevector on CPU, not in the default): {quantum['cpu_s'] / 3600:.3g} core-hours "
          f"({quantum['pairs']:.3g} pairs); "
          + ", ".join(f"N={N}: {s / 3600:.3g} h" for N, s in quantum["wall_s"].items())
          + (f"; as hardware: {quantum['circuits']:.3g} circuits, {quantum['qpu_years_est']:.3g} QPU-years"
             if "qpu_years_est" in quantum else ""))

    payload = {"bench": "plan", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(),
               "quick": args.quick, "command": "python -m bench.plan" + (" --quick" if args.quick else ""),
               "assumptions": cfg, "measured": measured, "earlier": earlier, "validation": checks, "rerun": rerun,
               "load_check": load_check,
               "plan": {**meta, "phases": [{k: v for k, v in p.items() if k != "_meta"} for p in phases],
                        "by_workers": by_n, "summary": summary_rows(by_n),
                        "embedders_time_h": {e: dict(zip(map(str, workers), hs)) for e, hs in embedders.items()},
                        "centroid_options": options, "quantum": quantum, "today_serial": serial_today}}
    out = (CACHE / "plan_quick.json") if args.quick else (RESULTS / "plan.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    tmp.replace(out)
    print(f"\nwrote {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
