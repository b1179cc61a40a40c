"""Serving cost, measured through the pyfunc models the registry serves (qlife/serving.py), never assumed.

For each model (serving kind + artifacts, as `deploy`'s candidates name them): the pyfunc model is saved with
`mlflow.pyfunc.save_model` from the same code and artifacts `qlife.promote` logs, loaded back with
`mlflow.pyfunc.load_model`, warmed up, then timed in this process with the same torch thread count for every
model:

- batch 1: `requests` requests of one text each: median and p95 milliseconds per request;
- batch `batch`: the same number of texts in requests of `batch`: milliseconds per text and texts per second;
- energy per 1,000 requests under the ledger's model (its CPU seconds and wall seconds of the batch-1 loop);
- model bytes: the saved model folder (what the registry stores and a server downloads);
- memory: with `isolate` (the default of `measure_all`), each model is measured in a fresh process
  (`python -m qlife.servecost`), whose peak resident set (VmHWM) is the serving process's peak memory:
  `peak_rss_mb`, and `peak_rss_growth_mb` over the same process right before the model loads (interpreter,
  torch and mlflow imported); in-process, `rss_growth_mb` only (memory freed by an earlier model is reused).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qlife.ledger import measure
from qlife.params import Ledger


def _peak_rss() -> int:
    """The process's peak resident set in bytes: VmHWM (Linux; a new one per exec, unlike ru_maxrss, which
    execve keeps from the parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def folder_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def save_pyfunc(kind: str, artifacts: dict[str, str], path: str | Path, limits: dict | None = None,
                inference: dict | None = None) -> Path:
    """The pyfunc model exactly as `qlife.tracking.log_text_model` logs it (with params `inference:`), saved to
    a local folder."""
    import mlflow

    from qlife.tracking import pyfunc_model

    spec = pyfunc_model(kind, artifacts, inference)
    if limits:  # the served model's request limits (qlife.serving), raised to what is measured
        spec["model_config"] = {**spec["model_config"], **limits}
    mlflow.pyfunc.save_model(str(path), **spec)
    return Path(path)


def measure_model(kind: str, artifacts: dict[str, str], texts: list[str], ledger: Ledger | None = None,
                  requests: int = 32, batch: int = 32, inference: dict | None = None) -> dict:
    """Latency, throughput, energy, bytes and memory of one served model on `texts` (cycled as needed)."""
    import mlflow
    import torch

    from qlife.serving import MAX_TEXT_BYTES, MAX_TEXTS

    if not texts:
        raise ValueError("measure_model needs at least one text")
    pool = [texts[i % len(texts)] for i in range(max(requests, batch))]
    # the cost of what is measured, not a refusal: a batch or a test text above the served defaults is let in
    limits = {"max_texts": max(MAX_TEXTS, batch),
              "max_text_bytes": max(MAX_TEXT_BYTES, *(len(t.encode("utf-8")) for t in pool))}
    with tempfile.TemporaryDirectory() as tmp:
        path = save_pyfunc(kind, artifacts, Path(tmp) / "model", limits, inference)
        size = folder_bytes(path)
        gc.collect()
        rss0, peak0 = _rss(), _peak_rss()
        t0 = time.perf_counter()
        model = mlflow.pyfunc.load_model(str(path))
        load_s = time.perf_counter() - t0
        model.predict(pool[:2])  # warm-up: lazy imports, first allocations
        one = []
        with measure(ledger) as cost:
            for text in pool[:requests]:
                t = time.perf_counter()
                model.predict([text])
                one.append(time.perf_counter() - t)
        t = time.perf_counter()
        n = 0
        for i in range(0, requests, batch):
            chunk = pool[i:i + batch] if i + batch <= len(pool) else pool[:batch]
            model.predict(chunk)
            n += len(chunk)
        batch_s = time.perf_counter() - t
        rss = _rss() - rss0
        peak = _peak_rss()
        del model
        gc.collect()
    ms = np.asarray(one) * 1e3
    return {"kind": kind, "ms_per_request_batch1": float(np.median(ms)), "p95_ms_batch1": float(np.percentile(ms, 95)),
            f"ms_per_text_batch{batch}": batch_s * 1e3 / max(n, 1), "texts_per_s_batch": n / max(batch_s, 1e-9),
            "batch": batch, "requests": requests, "energy_kwh_per_1000_requests": cost.energy_kwh * 1000 / requests,
            "energy_model": cost.energy_model, "model_bytes": size, "rss_growth_mb": rss / 2**20,
            "load_s": load_s, "torch_threads": torch.get_num_threads(), "_peak": peak, "_rss0": rss0,
            "_peak0": peak0}


def measure_isolated(kind: str, artifacts: dict[str, str], texts: list[str], ledger: Ledger | None = None,
                     requests: int = 32, batch: int = 32, inference: dict | None = None,
                     timeout_s: float = 600) -> dict:
    """`measure_model` in a fresh process: the same figures plus its peak resident memory."""
    spec = {"kind": kind, "artifacts": artifacts, "texts": texts, "requests": requests, "batch": batch,
            "ledger": (ledger or Ledger()).model_dump(mode="json"), "inference": inference}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = subprocess.run([sys.executable, "-m", "qlife.servecost", f.name], capture_output=True, text=True,
                              timeout=timeout_s)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"serving-cost process for {kind} {artifacts} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _finish(row: dict, isolated: bool) -> dict:
    peak, rss0, peak0 = row.pop("_peak"), row.pop("_rss0"), row.pop("_peak0")
    if isolated:
        row.update(peak_rss_mb=peak / 2**20, peak_rss_growth_mb=(peak - max(rss0, peak0)) / 2**20)
    row["isolated"] = isolated
    return row


def interleaved_latency(models: dict[str, dict], texts: list[str], requests: int = 32, rounds: int = 5,
                        reference: str = "teacher", seed: int = 0) -> dict[str, dict]:
    """Batch-1 latency of every model, all loaded and warmed in this process, in `rounds` rounds that each time
    each model answers `requests // rounds` (at least 4) single-text requests, the models' order shuffled per
    round: drift of the machine (another process, a cache, the clock) falls on every model alike. Per model: the
    median over all its requests and the median per round; `speedup_vs_<reference>` is the median over rounds of
    the reference's round median over the model's, with the range over rounds."""
    import mlflow

    rng = np.random.default_rng(seed)
    per_round = max(requests // rounds, 4)
    pool = [texts[i % len(texts)] for i in range(per_round)]
    limits = {"max_texts": 256, "max_text_bytes": max(65536, *(len(t.encode("utf-8")) for t in pool))}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {}
        for i, (name, m) in enumerate(models.items()):
            loaded[name] = mlflow.pyfunc.load_model(str(save_pyfunc(m["kind"], m["artifacts"], Path(tmp) / str(i),
                                                                    limits, m.get("inference"))))
            loaded[name].predict(pool[:2])  # warm-up: lazy imports, first allocations
        times: dict[str, list[list[float]]] = {name: [] for name in loaded}
        names = list(loaded)
        for _ in range(rounds):
            for j in rng.permutation(len(names)):
                name, lap = names[j], []
                for text in pool:
                    t = time.perf_counter()
                    loaded[name].predict([text])
                    lap.append((time.perf_counter() - t) * 1e3)
                times[name].append(lap)
        del loaded
        gc.collect()
    out = {}
    for name, laps in times.items():
        med = [float(np.median(lap)) for lap in laps]
        out[name] = {"ms_per_request_batch1": float(np.median(np.concatenate(laps))),
                     "p95_ms_batch1": float(np.percentile(np.concatenate(laps), 95)), "round_median_ms": med}
    if reference in out:
        ref = out[reference]["round_median_ms"]
        for row in out.values():
            ratios = np.asarray(ref) / np.maximum(row["round_median_ms"], 1e-9)
            row[f"speedup_vs_{reference}"] = float(np.median(ratios))
            row[f"speedup_vs_{reference}_range"] = [float(ratios.min()), float(ratios.max())]
    return {name: {**row, "latency_rounds": rounds, "requests_per_round": per_round} for name, row in out.items()}


def measure_all(models: dict[str, dict], texts: list[str], ledger: Ledger | None = None, requests: int = 32,
                batch: int = 32, reference: str = "teacher", isolate: bool = True, rounds: int = 5) -> dict:
    """`models`: name -> {"kind", "artifacts"[, "inference"]} (inference: params `inference:`). Bytes,
    throughput, energy and memory: each measured in turn (each in its own process with `isolate`, its peak
    memory). Batch-1 latency and `speedup_vs_<reference>`: measured again, on warm models, interleaved over
    `rounds` (`interleaved_latency`), which replaces the one-model-at-a-time figures: a speed-up is never a cold
    model against warm ones, nor two different moments of the machine."""
    run = measure_isolated if isolate else (
        lambda *a: _finish(measure_model(*a), False))
    out = {name: run(m["kind"], m["artifacts"], texts, ledger, requests, batch, m.get("inference"))
           for name, m in models.items()}
    for name, row in interleaved_latency(models, texts, requests, rounds, reference).items():
        out[name].update(row)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m qlife.servecost SPEC.json`: measure one model (the spec `measure_isolated` writes) in this
    fresh process; the last line of stdout is the JSON row."""
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    row = measure_model(spec["kind"], spec["artifacts"], spec["texts"], Ledger(**spec["ledger"]),
                        spec["requests"], spec["batch"], spec.get("inference"))
    print(json.dumps(_finish(row, True)))


if __name__ == "__main__":
    main()
