"""Every pipeline step's cost against corpus size (issue 37, item 3): wall, CPU, peak RSS and kWh per step.

For each corpus size n (`--sizes`): a fresh workspace in a temporary folder holding params.yaml (the committed one,
its profile as committed, MLflow tracking off, `encode.max_docs` as `--max-docs` says) and a `files` source: the
first n rows of SST-2 train (`--data`/train.jsonl, read in place), and two live windows of 200 SST-2 validation rows
(the second labelled) for the monitor. Every DVC step then runs in its own process, in dvc.yaml's order and with its
`cmd` (check, curate, encode, search, hyperparameters, train, distill, deploy, compress, serving, monitor),
cwd = the workspace, this tree's code first on PYTHONPATH. Per step:
  wall_s        perf_counter around the process (the machine is shared: wall is inflated by the others' load;
                CPU seconds are the better figure)
  cpu_s         user + system seconds of the process and every descendant it waited for (os.wait4's rusage)
  peak_rss_mb   the largest resident set of any one process of that tree (rusage ru_maxrss: the step's own
                process in a serial run); tree_rss_peak_mb beside it: the sum over the live tree, sampled every
                0.5 s (workers included)
  energy_kwh    qlife.ledger.cpu_model_kwh(cpu_s, wall_s, params `ledger:`), the ledger's CPU model
  stage_*_s     the stage's own meter (reports/<step>.json cost.total: the run without interpreter start and imports)
Curate's near-duplicate embedder on SST-2 (`--sst2-embedder`): params.yaml's (the teacher) below LARGE_N = 50,000
documents, the static table from there on (auto; the teacher embeds ~65 docs/s on 2 cores), its curate row fitted apart.
Curate alone also runs on generated corpora (`--curate-sizes`, the built-in generator at `curate.generator.n_docs`,
its near-duplicate embedder `--curate-embedder`): issue 37's goal, curate on 10^6 generated documents with a peak RSS
under 4 GB.

Fits (qlife.growth.stage_growth): per step, each figure against n as a power law a n^b, its exponent and its value at
10^6 and 10^8 documents; for the steps after curate also `bounded`: the law against the documents the step works on
(encode's splits, each cut at its `encode.max_docs` cap), evaluated at what the caps leave of a 10^6 / 10^8 corpus.
A step whose cost does not follow the caps (it reads curate's uncut splits) is underestimated by `bounded`; the
report says which steps read what. Written: bench/results/growth.json and growth.png (a log-log plot per step);
`--quick` (sizes 300 and 1000, curate on 3,000 generated documents) writes to bench/.cache/ instead. `--merge` keeps
the rows of the existing results for sizes not rerun (same settings), so the larger sizes can run another day.
qlife.energy reads the results into reports/energy.md ("every step's cost against corpus size").

Run: python -m bench.growth [--quick] [--sizes N ...] [--curate-sizes N ...] [--stages STEP ...] [--merge]
     python -m bench.growth --combine A.json B.json  (refit the rows of several runs into --out, measuring nothing)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("QLIFE_SST2", "/work/shared/datasets/sst2"))
RESULTS, CACHE = ROOT / "bench" / "results", ROOT / "bench" / ".cache"
SIZES, CURATE_SIZES = [1000, 10000, 67349], [100000, 1000000]
QUICK_SIZES, QUICK_CURATE_SIZES = [300, 1000], [3000]
MAX_DOCS = {"train": 8000, "val": 2000, "test": 2000, "reference": 2000}
SPLITS = ("train", "val", "test", "reference")
LIVE_ROWS, LIVE_WINDOWS = 200, 2  # the monitor's stream statistic reads 200 rows of a window
GOAL_RSS_MB = 4096.0  # issue 37: curate on 10^6 generated documents under 4 GB
# SST-2 sizes from here on run curate with the static embedder (`--sst2-embedder auto`): the teacher embeds ~65 docs/s
# on 2 cores (67k: ~17 min alone, far more under load), static ~11k/s at near-duplicate F1 within 0.005 of the
# teacher's on the planted corpus (bench/results/embedders.json); the project recommends it for large corpora
LARGE_N, LARGE_EMBEDDER = 50_000, "static"
# what each step reads beyond encode's (cut) splits, from the stages' code: a step listed here does not follow the
# caps in full (the `bounded` extrapolation underestimates it)
READS_UNCUT = {
    "check": "the source corpus (preflight counts its records)",
    "curate": "the whole corpus (it deduplicates every document)",
    "encode": "curate's whole splits (read, then cut; tokenising and encoding the cut ones)",
    "serving": "curate's whole test.jsonl (read for its first requests)",
    "monitor": "curate's whole val.jsonl (qlife.monitoring.quality_estimates: every monitor.quality model scores "
               "the uncut validation split to calibrate)",
}


# --- one measured process ------------------------------------------------------------------------------------

def _tree_rss(pid: int) -> int:
    """Bytes resident in process `pid` and its live descendants now (0 once it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(cmd: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None,
                 log: Path | None = None, timeout_s: float | None = None, rss_limit_mb: float | None = None,
                 poll_s: float = 0.5) -> dict[str, Any]:
    """Run `cmd` in its own process group and measure it: wall seconds, CPU seconds (user + system of the process
    and of every descendant it waited for: os.wait4's rusage), the largest resident set of any one process of the
    tree (ru_maxrss, KiB on Linux), and the live tree's summed RSS sampled every `poll_s`. The group is killed past
    `timeout_s` or when the sampled tree RSS passes `rss_limit_mb` (a shared machine: a run past the goal is not
    let take the others' memory); `killed` says why."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    killed: list[str] = []
    peak = [0]
    done = threading.Event()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def watch() -> None:
            while not done.wait(poll_s):
                rss = _tree_rss(proc.pid)
                peak[0] = max(peak[0], rss)
                why = None
                if rss_limit_mb is not None and rss > rss_limit_mb * 2**20:
                    why = f"tree RSS {rss / 2**20:.0f} MB > limit {rss_limit_mb:.0f} MB"
                elif timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                    why = f"timeout {timeout_s:.0f} s"
                if why:
                    killed.append(why)
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    finally:
        if log is not None:
            out.close()
    try:  # anything of the group left behind (an orphaned worker) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return {"rc": proc.returncode, "wall_s": round(wall, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "user_s": round(ru.ru_utime, 3), "sys_s": round(ru.ru_stime, 3),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "tree_rss_peak_mb": round(peak[0] / 2**20, 1),
            "killed": killed[0] if killed else None}


# --- the workspace -------------------------------------------------------------------------------------------

def pipeline_steps(root: Path = ROOT) -> list[tuple[str, str]]:
    """(step, cmd) of every dvc.yaml stage, in the file's order (the pipeline's)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return [(name, spec["cmd"]) for name, spec in stages.items()]


def interpolate(cmd: str, raw: dict[str, Any]) -> str:
    """dvc.yaml's ${a.b} from the params dict."""
    def value(m: re.Match) -> str:
        node: Any = raw
        for key in m.group(1).split("."):
            node = node[key]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", value, cmd)


def head_lines(path: Path, n: int, skip: int = 0) -> list[str]:
    """Lines skip..skip+n of a JSONL file (blank lines skipped), as they are."""
    out: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            out.append(line if line.endswith("\n") else line + "\n")
            if len(out) == n:
                break
    return out


def set_key(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def workspace_params(overrides: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """The committed params.yaml with `overrides` (dotted keys), validated by the project's schema."""
    from qlife.params import parse_params

    raw = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in {"tracking.enabled": False, **overrides}.items():
        set_key(raw, key, value)
    parse_params(raw)  # a bad override fails here, naming the key, before any process starts
    return raw


def sst2_embedder(n: int, choice: str | None) -> str | None:
    """curate.embedder for an SST-2 run of n documents: `choice`, or with "auto" (or None) params.yaml's below
    LARGE_N and LARGE_EMBEDDER from there on (None: params.yaml's)."""
    if choice in (None, "auto"):
        return LARGE_EMBEDDER if n >= LARGE_N else None
    return choice


def sst2_workspace(folder: Path, n: int, max_docs: dict[str, int | None], data: Path = SST2,
                   embedder: str | None = None) -> dict[str, Any]:
    """A workspace whose corpus is the first n rows of SST-2 train and whose live windows are SST-2 validation
    rows (the first window unlabelled, the second labelled), curate.embedder `embedder` (None: params.yaml's);
    returns its params."""
    rows = head_lines(data / "train.jsonl", n)
    if len(rows) < n:
        raise SystemExit(f"{data / 'train.jsonl'} has {len(rows)} rows, fewer than n = {n}")
    corpus, live = folder / "data/source/corpus", folder / "data/source/live"
    corpus.mkdir(parents=True)
    live.mkdir(parents=True)
    (corpus / "corpus.jsonl").write_text("".join(rows), encoding="utf-8")
    val = head_lines(data / "validation.jsonl", LIVE_ROWS * LIVE_WINDOWS)
    for w in range(LIVE_WINDOWS):
        part = [json.loads(line) for line in val[w * LIVE_ROWS: (w + 1) * LIVE_ROWS]]
        labelled = w == LIVE_WINDOWS - 1
        (live / f"window-{w:03d}.jsonl").write_text("".join(
            json.dumps({"text": r["text"], **({"label": r["label"]} if labelled else {})}) + "\n" for r in part))
    over: dict[str, Any] = {"curate.source.kind": "files", "curate.source.path": "data/source/corpus",
                            "curate.source.live_path": "data/source/live", "encode.max_docs": dict(max_docs)}
    if embedder:
        over["curate.embedder"] = embedder
    raw = workspace_params(over)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def generator_workspace(folder: Path, n: int, embedder: str | None) -> dict[str, Any]:
    """A workspace whose corpus is the built-in generator's n documents (curate alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    over: dict[str, Any] = {"curate.source.kind": "generator", "curate.generator.n_docs": int(n)}
    if embedder:
        over["curate.embedder"] = embedder
    raw = workspace_params(over)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLIFE_")}
    path = env.get("PYTHONPATH")
    return {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "TOKENIZERS_PARALLELISM": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def command(cmd: str, raw: dict[str, Any]) -> list[str]:
    words = interpolate(cmd, raw).split()
    return [sys.executable, *words[1:]] if words[0] == "python" else words


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def stage_cost(folder: Path, raw: dict[str, Any], step: str) -> dict[str, Any]:
    """The stage's own meter (reports/<step>.json cost.total), where it writes one."""
    path = folder / raw["paths"]["reports"] / f"{step}.json"
    try:
        total = json.loads(path.read_text()).get("cost", {}).get("total", {})
    except (OSError, ValueError):
        return {}
    return {"stage_wall_s": total.get("wall_s"), "stage_cpu_s": total.get("cpu_s")}


def curate_report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """What bench.plan models curate's phases from: the report's CPU seconds per phase, the documents in and left
    after exact hashing, the within-cluster pairs (classical, quantum), q-means' iterations, the static embedder's
    table, and the quantum path's circuits and estimated QPU seconds."""
    q, c = report["methods"]["quantum"], report["methods"]["classical"]
    emb = report.get("embedder") or {}
    return {"cost": {k: v["cpu_s"] for k, v in report["cost"].items()}, "docs_in": report["summary"]["docs_in"],
            "rest": report["summary"]["docs_in"] - c["exact_removed"], "pairs": c["n_pairs_compared"],
            "qpairs": q["n_pairs_compared"], "qmeans_iterations": q["kmeans_iterations"],
            "table_tokens": emb.get("table_tokens"), "static_build_s_wall": emb.get("build_s"),
            "circuits": q["circuits"], "qpu_seconds_est": q["qpu_seconds_est"],
            "quantum_cpu_s_per_pair": report["cost"]["quantum"]["cpu_s"] / max(q["n_pairs_compared"], 1)}


def curate_figures(folder: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """What curate's report says of the work that grows fastest: the within-cluster pairs each SemDeDup compared
    (sum of m(m-1)/2 over its clusters: time; memory is bounded by row blocks, qlife.methods.semdedup), the clusters
    (curate.cluster_docs), the documents k-means was fitted on (curate.fit_sample) and the removals."""
    try:
        report = json.loads((folder / raw["paths"]["reports"] / "curate.json").read_text())
    except (OSError, ValueError):
        return {}
    methods = report.get("methods", {})
    try:  # the phases bench.plan models from (kept in the row: a workspace does not outlive the run)
        phases = {"report": curate_report_figures(report)}
    except (KeyError, TypeError, ZeroDivisionError):
        phases = {}
    return {**phases,
            "pairs_compared": {k: m.get("n_pairs_compared") for k, m in methods.items() if isinstance(m, dict)},
            "removed": {k: m.get("removed") for k, m in methods.items() if isinstance(m, dict)},
            "embedder_kind": (report.get("embedder") or {}).get("kind"),
            "n_clusters": next((m["n_clusters"] for m in methods.values() if isinstance(m, dict) and "n_clusters" in m),
                               raw["curate"]["n_clusters"]),
            "kmeans_fit_docs": next((m["kmeans_fit_docs"] for m in methods.values()
                                     if isinstance(m, dict) and "kmeans_fit_docs" in m), None)}


def tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def measure_step(kind: str, n: int, step: str, cmd: str, folder: Path, raw: dict[str, Any], args,
                 t_start: float) -> dict[str, Any]:
    log = folder / "logs" / f"{step}.log"
    log.parent.mkdir(exist_ok=True)
    print(f"  [{time.perf_counter() - t_start:7.0f} s] {kind} n={n:,} {step} ...", flush=True)
    load = os.getloadavg()[0]  # the machine's load as the step starts (wall seconds grow with it)
    m = run_measured(command(cmd, raw), cwd=folder, env=child_env(), log=log, timeout_s=args.timeout,
                     rss_limit_mb=args.rss_limit_gb * 1024 if args.rss_limit_gb else None)
    from qlife.ledger import cpu_model_kwh
    from qlife.params import Ledger

    row = {"kind": kind, "n": n, "step": step, "ok": m["rc"] == 0, **m, "load_avg_1m": round(load, 2),
           "energy_kwh": cpu_model_kwh(m["cpu_s"], m["wall_s"], Ledger(**raw.get("ledger", {}))),
           **stage_cost(folder, raw, step)}
    if step == "curate" and row["ok"]:
        row.update(curate_figures(folder, raw))
    if not row["ok"]:
        row["log_tail"] = tail(log)
    print(f"  [{time.perf_counter() - t_start:7.0f} s] {kind} n={n:,} {step}: {'ok' if row['ok'] else 'FAILED'} "
          f"wall {m['wall_s']:.1f} s, CPU {m['cpu_s']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB "
          f"(tree {m['tree_rss_peak_mb']:.0f} MB){', killed: ' + m['killed'] if m['killed'] else ''}", flush=True)
    return row


def run_size(n: int, steps: list[tuple[str, str]], keep: set[str], args, t_start: float) -> list[dict[str, Any]]:
    """Every step of the pipeline (up to the last kept) on an SST-2 workspace of n documents."""
    folder = Path(tempfile.mkdtemp(prefix=f"qlife-growth-{n}-", dir=args.workdir))
    rows: list[dict[str, Any]] = []
    try:
        raw = sst2_workspace(folder, n, args.max_docs_dict, Path(args.data), sst2_embedder(n, args.sst2_embedder))
        curated: dict[str, int] | None = None
        failed = None
        for step, cmd in steps:
            if failed:
                rows.append({"kind": "sst2", "n": n, "step": step, "ok": False, "skipped": f"{failed} failed"})
                continue
            row = measure_step("sst2", n, step, cmd, folder, raw, args, t_start)
            if step == "curate":
                row["embedder"] = raw["curate"]["embedder"]
            if step == "curate" and row["ok"]:
                cdir = folder / raw["paths"]["curated"]
                curated = {s: count_lines(cdir / f"{s}.jsonl") for s in SPLITS if (cdir / f"{s}.jsonl").exists()}
                row["curated"] = curated
            if curated is not None and step != "check":
                row["seen"] = curated_seen(curated, args.max_docs_dict) if step != "curate" else n
            rows.append(row)
            if not row["ok"]:
                failed = step
        return [r for r in rows if r["step"] in keep]
    finally:
        if args.keep_workspaces:
            print(f"  workspace kept: {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def curated_seen(curated: dict[str, int], caps: dict[str, int | None]) -> int:
    """Documents encode keeps of curate's splits (each cut at its cap): what the steps after it work on."""
    return int(sum(min(c, caps[s]) if caps.get(s) is not None else c for s, c in curated.items()))


def run_curate_generated(n: int, curate_cmd: str, args, t_start: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"qlife-growth-gen-{n}-", dir=args.workdir))
    try:
        raw = generator_workspace(folder, n, args.curate_embedder)
        row = measure_step("generator", n, "curate", curate_cmd, folder, raw, args, t_start)
        row["embedder"] = raw["curate"]["embedder"]
        row["goal_rss_mb"] = GOAL_RSS_MB
        row["under_goal"] = bool(row["ok"] and row["peak_rss_mb"] < GOAL_RSS_MB
                                 and row["tree_rss_peak_mb"] < GOAL_RSS_MB)
        return row
    finally:
        if not args.keep_workspaces:
            shutil.rmtree(folder, ignore_errors=True)


# --- fits, table, plot -----------------------------------------------------------------------------------------

def fits(rows: list[dict[str, Any]], caps: dict[str, int | None]) -> dict[str, Any]:
    """Per (kind, step) with successful runs at >= 2 sizes: qlife.growth.stage_growth (pipeline_growth). An SST-2
    curate row whose embedder is not the teacher (`--sst2-embedder`) is fitted apart, as "curate (EMBEDDER
    embedder)": one law over two embedders would read the embedder's speed-up as a growth exponent."""
    from qlife.growth import pipeline_growth

    def apart(r: dict[str, Any]) -> dict[str, Any]:
        other = r["kind"] == "sst2" and r["step"] == "curate" and r.get("embedder") not in (None, "teacher")
        return {**r, "step": f"curate ({r['embedder']} embedder)"} if other else r

    return pipeline_growth([apart(r) for r in rows], caps)


def g(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def table_text(rows: list[dict[str, Any]], fitted: dict[str, Any]) -> str:
    from bench.common import table

    out = [table([{**r, "peak_rss_mb": r.get("peak_rss_mb"), "status": "ok" if r.get("ok") else
                   (r.get("skipped") or r.get("killed") or f"rc {r.get('rc')}")} for r in rows],
                 ["kind", "n", "step", "status", "wall_s", "cpu_s", "peak_rss_mb", "tree_rss_peak_mb", "energy_kwh",
                  "stage_cpu_s", "seen"])]
    if fitted:
        frows = []
        for key, f in fitted.items():
            e = f["energy_kwh"]
            frows.append({"step": key, "sizes": ",".join(map(str, f["sizes"])),
                          "b_wall": f["wall_s"].get("b"), "b_cpu": f["cpu_s"].get("b"),
                          "b_rss": f["peak_rss_mb"].get("b"), "b_kwh": e.get("b"),
                          "cpu_s@1e6": f["cpu_s"].get("at", {}).get("1e+06"),
                          "kwh@1e6": e.get("at", {}).get("1e+06"), "kwh@1e8": e.get("at", {}).get("1e+08"),
                          "kwh@1e6 capped": e.get("bounded", {}).get("at", {}).get("1e+06"),
                          "kwh@1e8 capped": e.get("bounded", {}).get("at", {}).get("1e+08"),
                          "rss_mb@1e6": f["peak_rss_mb"].get("at", {}).get("1e+06")})
        out.append("\nfits: cost = a n^b against corpus size n (b: exponent); 'capped': fitted against the "
                   "documents the step works on, evaluated at what encode.max_docs leaves of the corpus")
        out.append(table(frows, list(frows[0])))
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], fitted: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = (("wall_s", "wall s (shared machine: inflated)"), ("cpu_s", "CPU s"), ("peak_rss_mb", "peak RSS MB"))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    keys = list(dict.fromkeys((r["kind"], r["step"]) for r in rows))
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(keys))]
    for ax, (metric, label) in zip(axes, panels):
        for i, ((kind, step), color) in enumerate(zip(keys, colors)):
            pts = sorted((r["n"], r[metric]) for r in rows
                         if (r["kind"], r["step"]) == (kind, step) and r.get("ok") and r.get(metric))
            if not pts:
                continue
            embedder = next((r.get("embedder") for r in rows if r["kind"] == kind), None)
            name = step if kind == "sst2" else f"curate (generated, {embedder} embedder)"
            marker = "s" if kind != "sst2" else "o" if i < 10 else "^"
            ax.plot(*zip(*pts), marker, color=color, label=name)
            f = fitted.get(f"{kind}/{step}", {}).get(metric, {}).get("fit")
            if f:
                x = np.geomspace(pts[0][0], max(pts[-1][0], 1e6), 50)
                ax.plot(x, f["a"] * x ** f["b"], "-" if kind == "sst2" else "--", color=color, lw=1,
                        alpha=0.7)
        if metric == "peak_rss_mb":
            ax.axhline(GOAL_RSS_MB, color="red", ls=":", lw=1, label="goal: 4 GB (curate at 10^6)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("corpus documents n")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.2)
    axes[0].legend(fontsize=7, ncol=2)
    axes[2].legend(fontsize=7, loc="lower right")
    fig.suptitle("Every pipeline step's cost against corpus size (points measured; lines: power-law fits, "
                 "extended to 10^6 without the encode.max_docs caps)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(path)


# --- main ------------------------------------------------------------------------------------------------------

def parse_max_docs(values: list[str] | None) -> dict[str, int | None]:
    """`train=8000 val=2000 ...` (none: no cap) over the defaults."""
    out: dict[str, int | None] = dict(MAX_DOCS)
    for item in values or []:
        split, _, v = item.partition("=")
        if split not in SPLITS or not v:
            raise SystemExit(f"--max-docs takes SPLIT=N or SPLIT=none with SPLIT in {SPLITS}; got {item!r}")
        out[split] = None if v.lower() in ("none", "null") else int(v)
    return out


SHARED_SETTINGS = ("profile", "max_docs", "ledger")  # rows measured under other values are not comparable


def code_version() -> dict[str, Any]:
    """The commit the measured code is at, and whether the tree had other changes (None outside a git tree)."""
    def git(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def merge_rows(old: dict[str, Any] | None, new: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict]:
    """The rows of `old` (a results payload) whose (kind, n) `new` does not have, and `new`'s; refused when the
    two were measured under other settings, or their generated curate runs used other embedders."""
    if not old:
        return new
    was = old.get("settings", {})
    mismatch = {k: (was.get(k), settings.get(k)) for k in SHARED_SETTINGS if was.get(k) != settings.get(k)}
    embedders = {r.get("embedder") for r in [*old.get("rows", []), *new] if r["kind"] == "generator"}
    if len(embedders) > 1:
        mismatch["curate embedder (generated runs)"] = sorted(map(str, embedders))
    if mismatch:
        raise SystemExit(f"merging results measured under other settings {mismatch}: rerun every size, or use the "
                         "same settings")
    rerun = {(r["kind"], r["n"]) for r in new}
    kept = [r for r in old.get("rows", []) if (r["kind"], r["n"]) not in rerun]
    return sorted(kept + new, key=lambda r: (r["kind"] != "sst2", r["n"]))


def rss_at(rows: list[dict[str, Any]], n_clusters: int, target: float = 1e6) -> dict[str, Any] | None:
    """Curate's peak RSS at `target` generated documents from the two largest generated runs: the part that grows
    linearly (texts, records, embeddings, the quantum path's 2^q-amplitude states: the slope between the two runs)
    plus one within-cluster similarity matrix of the mean-square cluster size, from the pairs SemDeDup compared at
    the largest run scaled by (target / n)^2 (k fixed: the pairs grow as n^2), float64, and its boolean pairs twice.
    The largest cluster is at least that size: a lower bound on that term."""
    gen = sorted((r for r in rows if r["kind"] == "generator" and r.get("ok")), key=lambda r: r["n"])
    if len(gen) < 2:
        return None
    (n1, r1), (n2, r2) = ((r["n"], r["peak_rss_mb"]) for r in gen[-2:])
    linear = r2 + (r2 - r1) / (n2 - n1) * (target - n2)
    pairs = max((v for v in (gen[-1].get("pairs_compared") or {}).values() if v), default=None)
    if pairs is None:
        return {"linear_mb": round(linear, 1), "from": [n1, n2]}
    m2 = 2.0 * pairs / n_clusters * (target / n2) ** 2  # mean of m^2 over the clusters, at the target
    cluster = (8.0 + 2.0) * m2 / 2**20
    return {"linear_mb": round(linear, 1), "cluster_mb": round(cluster, 1), "rms_cluster_docs": round(m2 ** 0.5),
            "estimate_mb": round(linear + cluster, 1), "from": [n1, n2]}


def rss_goal(rows: list[dict[str, Any]], fitted: dict[str, Any], n_clusters: int) -> dict[str, Any]:
    """Issue 37's goal: curate on 10^6 generated documents with peak RSS under 4 GB, measured or estimated."""
    goal: dict[str, Any] = {"goal": "curate on 10^6 generated documents with peak RSS under 4 GB",
                            "limit_mb": GOAL_RSS_MB, "n_clusters": n_clusters}
    gen = [r for r in rows if r["kind"] == "generator" and r.get("ok")]
    at_goal = [r for r in gen if r["n"] >= 1_000_000]
    if at_goal:
        r = max(at_goal, key=lambda r: r["n"])
        goal.update(measured=True, n=r["n"], peak_rss_mb=r["peak_rss_mb"], tree_rss_peak_mb=r["tree_rss_peak_mb"],
                    holds=r["under_goal"], n_clusters=r.get("n_clusters", n_clusters),
                    kmeans_fit_docs=r.get("kmeans_fit_docs"), cpu_s=r.get("cpu_s"), embedder=r.get("embedder"))
        return goal
    failed = [r for r in rows if r["kind"] == "generator" and r["n"] >= 1_000_000 and not r.get("ok")]
    if failed:
        r = max(failed, key=lambda r: r["n"])
        goal.update(measured=True, n=r["n"], holds=False, note=f"curate failed at n = {r['n']:,}: "
                    f"{r.get('killed') or 'exit ' + str(r.get('rc'))}")
        return goal
    est = rss_at(rows, n_clusters)
    power = fitted.get("generator/curate", {}).get("peak_rss_mb", {}).get("at", {}).get("1e+06")
    goal.update(measured=False, power_law_mb=power, estimate=est,
                holds=None if not est or "estimate_mb" not in est else bool(est["estimate_mb"] < GOAL_RSS_MB),
                note="not measured at 10^6. estimate: the linear growth between the two largest generated runs plus "
                     "one within-cluster similarity matrix of the mean-square cluster size at 10^6 (from the pairs "
                     "SemDeDup compared, growing as n^2 with curate.n_clusters fixed), float64 with its boolean "
                     "pairs twice; the largest cluster is at least that big. power_law_mb: the power-law fit of the "
                     "peak RSS, which cannot see the quadratic term coming (an underestimate)")
    return goal


def finish(rows: list[dict[str, Any]], settings: dict[str, Any], meta: dict[str, Any], runs: list[dict[str, Any]],
           out: Path, n_clusters: int) -> None:
    """Fit, write the results JSON and the plot, print the table."""
    from bench.common import environment

    fitted = fits(rows, settings["max_docs"])
    ran = {kind: sorted({r["n"] for r in rows if r["kind"] == kind and r.get("ok")}) for kind in ("sst2", "generator")}
    goal = rss_goal(rows, fitted, n_clusters)
    embedder = next((r.get("embedder") for r in rows if r["kind"] == "generator"), None)
    payload = {"bench": "growth", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "environment": environment(),
               **meta, "settings": {**settings, "curate_embedder_generated": embedder}, "sizes_ran": ran,
               "runs": runs,
               "source": {"corpus": "SST-2 train, first n rows", "live": f"{LIVE_WINDOWS} windows of {LIVE_ROWS} "
                          "SST-2 validation rows (the second labelled)",
                          "generated": "curate alone on the built-in generator (curate.generator.n_docs = n)"},
               "notes": ["wall_s is inflated by the shared machine's load (the runs' load_avg_1m): cpu_s is the better "
                         "figure; energy_kwh uses both (qlife.ledger.cpu_model_kwh)",
                         "peak_rss_mb: the largest single process of the step's tree (ru_maxrss); tree_rss_peak_mb: "
                         "the live tree's sum sampled every 0.5 s"],
               "reads_uncut": READS_UNCUT, "goal": goal, "fits": fitted, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(out)
    print(table_text(rows, fitted))
    if any(r.get("ok") for r in rows):
        plot(rows, fitted, out.with_suffix(".png"))
    print(f"goal (curate, 10^6 generated, peak RSS < 4 GB): {goal}")
    print(f"written: {out} and {out.with_suffix('.png')}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help=f"SST-2 corpus sizes (default {SIZES})")
    ap.add_argument("--curate-sizes", type=int, nargs="*", default=None,
                    help=f"generated corpus sizes for curate alone (default {CURATE_SIZES}; none: skip)")
    ap.add_argument("--curate-embedder", choices=["teacher", "tfidf", "static"], default=None,
                    help="curate.embedder for the generated runs (default: params.yaml's)")
    ap.add_argument("--sst2-embedder", choices=["auto", "teacher", "tfidf", "static"], default="auto",
                    help=f"curate.embedder for the SST-2 runs (auto: params.yaml's below {LARGE_N:,} documents, "
                         f"{LARGE_EMBEDDER} from there on)")
    ap.add_argument("--stages", nargs="*", default=None,
                    help="steps to keep (the pipeline runs up to the last of them: its inputs are the earlier "
                         "steps' outputs); the generated curate runs only when curate is among them")
    ap.add_argument("--max-docs", nargs="*", metavar="SPLIT=N",
                    help=f"encode.max_docs per split (default {MAX_DOCS})")
    ap.add_argument("--quick", action="store_true",
                    help=f"sizes {QUICK_SIZES}, curate sizes {QUICK_CURATE_SIZES}; written to bench/.cache/")
    ap.add_argument("--merge", action="store_true", help="keep the existing results' rows of sizes not rerun")
    ap.add_argument("--combine", nargs="+", metavar="JSON", default=None,
                    help="measure nothing: the rows of these results files (a later file's size replaces an "
                         "earlier's), refitted and written to --out")
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/growth.json)")
    ap.add_argument("--data", default=str(SST2), help="folder of SST-2's train.jsonl and validation.jsonl")
    ap.add_argument("--workdir", default=None, help="where the temporary workspaces go (default: the system's)")
    ap.add_argument("--keep-workspaces", action="store_true")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per step before it is killed")
    ap.add_argument("--rss-limit-gb", type=float, default=10.0,
                    help="kill a step whose process tree's RSS passes this (0: no limit)")
    args = ap.parse_args(argv)
    sizes = args.sizes if args.sizes is not None else (QUICK_SIZES if args.quick else SIZES)
    curate_sizes = (args.curate_sizes if args.curate_sizes is not None
                    else (QUICK_CURATE_SIZES if args.quick else CURATE_SIZES))
    args.max_docs_dict = parse_max_docs(args.max_docs)
    out = Path(args.out) if args.out else (CACHE if args.quick else RESULTS) / "growth.json"
    raw0 = workspace_params({})
    settings = {"profile": raw0.get("profile"), "max_docs": args.max_docs_dict, "ledger": raw0.get("ledger")}
    n_clusters = int(raw0["curate"]["n_clusters"])
    if args.combine:
        rows: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        first: dict[str, Any] | None = None
        for f in args.combine:
            data = json.loads(Path(f).read_text())
            these = {k: data.get("settings", {}).get(k) for k in SHARED_SETTINGS}
            first = first or these
            rows = merge_rows({"settings": first, "rows": rows}, data["rows"], these)
            runs += data.get("runs") or [{"file": str(f), "created": data.get("created"),
                                          "sizes": sorted({(r["kind"], r["n"]) for r in data["rows"]}),
                                          "load_avg_1m": data.get("environment", {}).get("load_avg_1m"),
                                          "this_run_s": data.get("this_run_s")}]
        meta = {"quick": False, "combined_from": args.combine, "sizes_requested": SIZES,
                "curate_sizes_requested": CURATE_SIZES}
        finish(rows, first or settings, meta, runs, out, n_clusters)
        return
    all_steps = pipeline_steps()
    names = [s for s, _ in all_steps]
    keep = set(args.stages or names)
    if keep - set(names):
        raise SystemExit(f"unknown steps {sorted(keep - set(names))}; dvc.yaml's: {names}")
    last = max(names.index(s) for s in keep)
    steps = all_steps[: last + 1]
    print(f"bench.growth: SST-2 sizes {sizes}, generated curate sizes {curate_sizes if 'curate' in keep else []}, "
          f"steps {[s for s, _ in steps if s in keep]}, profile {settings['profile']}, encode.max_docs "
          f"{args.max_docs_dict}; wall times on a shared machine are inflated by its load: CPU seconds are the "
          "better figure", flush=True)
    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        rows += run_size(n, steps, keep, args, t_start)
        print(f"n={n:,}: {time.perf_counter() - t0:.0f} s", flush=True)
    if "curate" in keep:
        curate_cmd = dict(all_steps)["curate"]
        for n in curate_sizes:
            rows.append(run_curate_generated(n, curate_cmd, args, t_start))
    total_s = time.perf_counter() - t_start
    runs = [{"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "sizes": sorted({(r["kind"], r["n"]) for r in rows}),
             "this_run_s": round(total_s, 1), "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
             "argv": sys.argv[1:] if argv is None else argv, **code_version()}]
    old = json.loads(out.read_text()) if args.merge and out.exists() else None
    rows = merge_rows(old, rows, settings)
    runs = [*(old or {}).get("runs", []), *runs]
    meta = {"quick": args.quick, "sizes_requested": sizes,
            "curate_sizes_requested": curate_sizes if "curate" in keep else [],
            "steps": [s for s, _ in steps if s in keep]}
    finish(rows, settings, meta, runs, out, n_clusters)
    print(f"this run: {total_s:.0f} s")


if __name__ == "__main__":
    main()
