"""How curate's cost grows with the corpus, serially and on 2 workers (a local pool and a real Dask cluster).

`python -m bench.scale [--sizes 1000 10000 70000] [--configs serial one_core pool dask]` (~35 min on 2 cores).

Corpus: SST-2 train (`../shared/datasets/sst2`, 67,349 sentences) plus the default generated corpus (3,000
documents, planted duplicates), shuffled with seed 0; the first n texts. Each (size, placement) runs in its own
process, the same code as the stage (`qlife.dedup.deduplicate`: exact hash, teacher embedding in shards of
`--shard` texts, classical and quantum SemDeDup with `n_clusters = max(50, n / 250)`):

- serial: `orchestration.workers: 1`, what `make run` does (torch and BLAS on every core in one process);
- one_core: the same with torch and BLAS held at one thread: what one worker does, the base of the scaling;
- pool: `workers: 2`, two local processes with one thread each (loky);
- dask: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1 (`qlife.parallel.LocalProcesses`),
  `orchestration.dask_address` pointing at it; the cluster starts before the clock.

Per run: wall time, documents per second, peak memory (VmHWM of the run's process and of every process under it:
pool or Dask workers, summed: an upper bound of what was resident at once), and where the time goes: embedding
(the shard map), pairwise (the per-cluster map of both SemDeDup variants) and clustering (k-means and q-means,
one process in every placement: the rest of each method's time). The decisions are hashed: every placement must
give the same removals. Speed-ups are per part against serial at the same size. From the largest size it projects
a 1M-document corpus on N workers: the parallel parts divided by N (measured per-document cost), clustering
extrapolated by the power law fitted to the measured sizes (it stays in one process).
Writes bench/results/scale.json and scale.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, table, write

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2" / "train.jsonl"
PARTS = ("embed", "pairwise", "clustering")
CONFIGS = ("serial", "one_core", "pool", "dask")


def corpus_texts(n: int) -> list[str]:
    """The first n of SST-2 train + the generated corpus, shuffled once with seed 0."""
    from qlife.data.generator import generate_corpus

    texts = [json.loads(line)["text"] for line in SST2.read_text().splitlines() if line.strip()] \
        if SST2.exists() else []
    texts += [d["text"] for d in generate_corpus(seed=0, n_docs=3000, live_size=0).docs]
    random.Random(0).shuffle(texts)
    if n > len(texts):
        raise SystemExit(f"--sizes {n}: the corpus has {len(texts)} texts (SST-2 at {SST2} present: {SST2.exists()})")
    return texts[:n]


def peak_rss_mb(root: int) -> float:
    """Sum of VmHWM over `root` and every live process under it (MB)."""
    def children(pid: int) -> list[int]:
        out = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            kids = task / "children"
            if kids.exists():
                out += [int(c) for c in kids.read_text().split()]
        return out

    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
            todo += children(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def child(n: int, config: str, shard: int) -> dict:
    """One (size, placement) run of curate's dedup, in this process."""
    from qlife import parallel
    from qlife.dedup import deduplicate
    from qlife.params import parse_params

    texts = corpus_texts(n)
    orch = {"serial": {}, "one_core": {}, "pool": {"workers": 2}}.get(config)
    if config == "one_core":  # one worker's worth: the per-core baseline the 2-worker runs scale from
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        threadpool_limits(1)
    cluster = parallel.LocalProcesses(2) if config == "dask" else None
    if cluster is not None:
        orch = {"dask_address": cluster.__enter__()}
    try:
        params = parse_params({"curate": {"n_clusters": max(50, n // 250), "embed_shard": shard},
                               "orchestration": orch, "tracking": {"enabled": False}})
        parallel.timings("curate", reset=True)
        t0 = time.perf_counter()
        d = deduplicate(texts, params)
        wall = time.perf_counter() - t0
        maps = parallel.timings("curate", reset=True)
        peak = peak_rss_mb(os.getpid())
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
    embed = maps.get("curate embed shards", {}).get("wall_s", 0.0)
    pairwise = maps.get("curate semdedup clusters", {}).get("wall_s", 0.0)
    methods = d.cost["classical"]["wall_s"] + d.cost["quantum"]["wall_s"]
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(d.dups[m]).tobytes() for m in sorted(d.dups))).hexdigest()
    return {"docs": n, "config": config, "wall_s": wall, "docs_per_s": n / wall, "peak_rss_mb": peak,
            "embed_s": embed, "pairwise_s": pairwise, "clustering_s": methods - pairwise,
            "other_s": wall - embed - methods, "shards": maps.get("curate embed shards", {}).get("items", 0),
            "clusters": params.curate.n_clusters, "removed_quantum": int((d.dups["quantum"] >= 0).sum()),
            "removed_classical": int((d.dups["classical"] >= 0).sum()), "decisions_sha1": digest[:12],
            "cpu_s": d.cost["embed"]["cpu_s"] + d.cost["classical"]["cpu_s"] + d.cost["quantum"]["cpu_s"]}


def speedups(rows: list[dict]) -> None:
    """Per part and overall, each placement against serial at the same size; and whether decisions matched."""
    serial = {r["docs"]: r for r in rows if r["config"] == "serial"}
    one = {r["docs"]: r for r in rows if r["config"] == "one_core"}
    for r in rows:
        if r["docs"] in one and r["config"] in ("pool", "dask"):  # 2 workers against 1 (the scaling per worker)
            o = one[r["docs"]]
            r["speedup_embed_vs_one_core"] = o["embed_s"] / r["embed_s"] if r["embed_s"] else None
        s = serial.get(r["docs"])
        if s is None:
            continue
        r["same_decisions_as_serial"] = r["decisions_sha1"] == s["decisions_sha1"]
        r["speedup_total"] = s["wall_s"] / r["wall_s"]
        parallel_s = r["embed_s"] + r["pairwise_s"]
        r["speedup_parallel_parts"] = (s["embed_s"] + s["pairwise_s"]) / parallel_s if parallel_s else None
        for part in ("embed", "pairwise"):
            r[f"speedup_{part}"] = s[f"{part}_s"] / r[f"{part}_s"] if r[f"{part}_s"] else None


def projection(rows: list[dict], target: int = 1_000_000, workers: tuple[int, ...] = (2, 8, 32, 128)) -> dict:
    """A `target`-document corpus on N workers (one core each), from what was measured: the parallel parts
    (embedding, pairwise) at the 2-worker placement's cost per document and worker at the largest size, divided
    by N (they are independent shards and clusters); clustering (one process) by the power law fitted to the
    serial runs' clustering times; the rest (exact hash, merging) linear from the largest serial run."""
    serial = sorted((r for r in rows if r["config"] == "serial"), key=lambda r: r["docs"])
    two = [r for r in rows if r["config"] != "serial" and r["docs"] == max(r["docs"] for r in rows)]
    if len(serial) < 2 or not two:
        return {}
    best = min(two, key=lambda r: r["embed_s"] + r["pairwise_s"])
    worker_s_per_doc = 2 * (best["embed_s"] + best["pairwise_s"]) / best["docs"]
    n = np.array([r["docs"] for r in serial], float)
    slope, icept = np.polyfit(np.log(n), np.log([max(r["clustering_s"], 1e-3) for r in serial]), 1)
    clustering = float(np.exp(icept) * target ** slope)
    other = serial[-1]["other_s"] / serial[-1]["docs"] * target
    out = {"docs": target, "from_placement": best["config"], "worker_s_per_doc": worker_s_per_doc,
           "clustering_growth_exponent": float(slope), "clustering_s": clustering, "other_s": other,
           "embeddings_gb_float64": target * 384 * 8 / 1e9, "by_workers": {}}
    for w in workers:
        par = worker_s_per_doc * target / w
        out["by_workers"][str(w)] = {"parallel_parts_s": par, "total_s": par + clustering + other,
                                     "total_h": (par + clustering + other) / 3600}
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for config in ("serial", "one_core", "pool", "dask"):
        rs = sorted((r for r in rows if r["config"] == config), key=lambda r: r["docs"])
        if rs:
            a.plot([r["docs"] for r in rs], [r["docs_per_s"] for r in rs], "o-", label=config)
    a.set(xscale="log", xlabel="documents", ylabel="documents / s (curate dedup, wall)",
          title="throughput: serial vs 2 workers")
    a.legend()
    sizes = sorted({r["docs"] for r in rows})
    configs = [c for c in ("serial", "one_core", "pool", "dask") if any(r["config"] == c for r in rows)]
    width = 0.8 / max(len(configs), 1)
    for j, config in enumerate(configs):
        bottom = np.zeros(len(sizes))
        for part, colour in zip(PARTS, ("tab:blue", "tab:orange", "tab:green")):
            vals = np.array([next((r[f"{part}_s"] for r in rows if r["docs"] == s and r["config"] == config), 0)
                             for s in sizes])
            b.bar(np.arange(len(sizes)) + j * width, vals, width, bottom=bottom, color=colour,
                  label=part if j == 0 else None, edgecolor="k", linewidth=0.3)
            bottom += vals
    b.set_xticks(np.arange(len(sizes)) + width * (len(configs) - 1) / 2, [f"{s:,}\n{'/'.join(configs)}"
                                                                         for s in sizes])
    b.set(ylabel="seconds", title="where the time goes")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 70000])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--shard", type=int, default=1024, help="curate.embed_shard")
    ap.add_argument("--one-core-max", type=int, default=10000, help="run one_core only up to this size (it is slow)")
    ap.add_argument("--update", action="store_true",
                    help="keep the other rows of bench/results/scale.json, replace only the (size, config) runs now")
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.shard)))
        return
    rows = []
    for n in args.sizes:
        for config in args.configs:
            if config == "one_core" and n > args.one_core_max:
                continue
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "bench.scale", "--child", str(n), config, "--shard",
                                   str(args.shard)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{n} {config} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{n:>7} {config:<6} {time.perf_counter() - t0:6.0f} s: {rows[-1]['docs_per_s']:.0f} docs/s, "
                  f"peak {rows[-1]['peak_rss_mb']:.0f} MB", flush=True)
    if args.update and (RESULTS / "scale.json").exists():
        ran = {(r["docs"], r["config"]) for r in rows}
        old = json.loads((RESULTS / "scale.json").read_text())["rows"]
        kept = [r for r in old if (r["docs"], r["config"]) not in ran]
        rows = sorted(kept + rows, key=lambda r: (r["docs"], CONFIGS.index(r["config"])))
    speedups(rows)
    proj = projection(rows)
    print(table(rows, ["docs", "config", "wall_s", "docs_per_s", "peak_rss_mb", "embed_s", "pairwise_s",
                       "clustering_s", "speedup_embed", "speedup_pairwise", "speedup_parallel_parts",
                       "speedup_total", "speedup_embed_vs_one_core", "same_decisions_as_serial"]))
    print(json.dumps(proj, indent=1))
    write("scale", rows, {"config": vars(args), "projection_1m": proj})
    plot(rows, RESULTS / "scale.png")


if __name__ == "__main__":
    main()
