"""Stage 6 — pruning, inference & deployment: the serving-cost step (`dvc repro serving`).

Inputs: `paths.reports/deploy.json` and `compress.json` (the candidates and the teacher's test figures), the
models they name, `paths.curated/test.jsonl` (the request texts).
Method: the teacher and every candidate saved as the pyfunc the registry serves, loaded back and timed
(qlife.servecost): batch-1 and batch-`batch` latency, throughput, energy per 1,000 requests, bytes, peak memory;
the Pareto front of quality against batch-1 latency.
Outputs: `reports/plots/serving_pareto.json`.
Params: `deploy.serving`, `quality`, `ledger`.
"""

from __future__ import annotations

from pathlib import Path

from qlife.io import read_json, read_jsonl, write_json
from qlife.ledger import measure
from qlife.params import Params
from qlife.servecost import measure_all
from qlife.stage import Report, report_path
from qlife.stage import main as stage_main


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of (quality, cost) points that no other point dominates (at least as good and as cheap, better in
    one of the two)."""
    return {name for name, (q, c) in points.items()
            if not any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for k, (q2, c2) in points.items() if k != name)}


def offered(params: Params) -> tuple[dict, dict]:
    """(the teacher's test figures, every candidate of deploy's pruning and compression steps)."""
    deploy = read_json(report_path(params, "deploy"))
    compress = read_json(report_path(params, "compress")) if report_path(params, "compress").exists() else {}
    candidates = {**deploy["decision"]["candidates"], **compress.get("decision", {}).get("candidates", {})}
    return deploy["methods"]["teacher"], candidates


def serving_rows(params: Params, teacher: dict, candidates: dict, texts: list[str]) -> dict:
    """Serving cost of the teacher and every candidate, each row with its quality and the Pareto flag."""
    sc = params.deploy.serving
    how = params.inference.model_dump()  # the teacher encoder runs as the registered models will serve it
    models = {"teacher": {"kind": "classifier", "artifacts": {"model": params.paths.teacher}, "inference": how},
              **{role: {"kind": c["kind"], "artifacts": c["artifacts"], "inference": how}
                 for role, c in candidates.items()}}
    rows = measure_all(models, texts, params.ledger, sc.requests, sc.batch, isolate=sc.isolate)
    figures = {"teacher": teacher, **candidates}
    for name, row in rows.items():
        row.update({k: figures[name][k] for k in ("quality", "accuracy", "teacher_agreement") if k in figures[name]})
    front = pareto_front({k: (r["quality"], r["ms_per_request_batch1"]) for k, r in rows.items()})
    for name, row in rows.items():
        row["pareto"] = name in front
    return rows


def run(params: Params) -> Report:
    sc, metric = params.deploy.serving, params.quality.name
    if not sc.enabled:
        return {"summary": {"serving": "skipped"}, "serving": {"skipped": "deploy.serving.enabled is false"}}
    test = Path(params.paths.curated) / "test.jsonl"
    texts = [r["text"] for r in read_jsonl(test)][: max(sc.requests, sc.batch)] if test.exists() else []
    if not texts:
        return {"summary": {"serving": "skipped"}, "serving": {"skipped": f"no texts in {test}"}}
    teacher, candidates = offered(params)
    with measure(params.ledger) as cost:
        rows = serving_rows(params, teacher, candidates, texts)
    front = sorted(name for name, r in rows.items() if r["pareto"])
    write_json(Path(params.paths.reports) / "plots" / "serving_pareto.json",
               [{"model": k, "ms_per_request": r["ms_per_request_batch1"], "quality": r["quality"],
                 "pareto": r["pareto"]} for k, r in rows.items()])
    worth = "; ".join(f"{k} ({metric} {rows[k]['quality']:.3f}, {rows[k]['ms_per_request_batch1']:.2f} ms per "
                      f"request, {rows[k]['speedup_vs_teacher']:.1f}x the teacher's speed "
                      f"[{rows[k]['speedup_vs_teacher_range'][0]:.1f}, {rows[k]['speedup_vs_teacher_range'][1]:.1f}] "
                      f"over {rows[k]['latency_rounds']} interleaved rounds)" for k in front)
    return {"summary": {f"{name}_ms_per_request": r["ms_per_request_batch1"] for name, r in rows.items()}
            | {f"{name}_speedup_vs_teacher": r["speedup_vs_teacher"] for name, r in rows.items() if name != "teacher"},
            "serving": {"models": rows, "metric": metric, "texts": len(texts), "pareto": front,
                        "worth_deploying": "on the front of quality against batch-1 latency (nothing else is both "
                                           f"at least as good and as fast): {worth}"},
            "cost": {"serving_cost": cost.as_dict()}}


def main() -> None:
    stage_main("serving", run)


if __name__ == "__main__":
    main()
