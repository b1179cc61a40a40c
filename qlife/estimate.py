"""The bill for the whole pipeline, before running anything: `python -m qlife.cli estimate [--json]`.

For every quantum job the params plan (each stage's backend spec), the circuits and shots it implies, the
estimated QPU seconds and energy (qlife.quantum.resources) and the price under the providers' public lists
(qlife.quantum.billing: simulators cost 0 USD and show the energy the same work would take on hardware).
Sizes that depend on the data are bounded from the params: curate's quantum k-means needs n x k swap tests per
round (1 round .. `max_iter` rounds) plus the within-cluster pairs (about n^2 / 2k) and one fidelity to the
centroid per document; n is the generator's `n_docs`, or the records in the source files (lines counted, a
header row per CSV file subtracted), or `curate.source.max_docs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qlife.params import BraketBackend, DWaveBackendSampler, IBMBackend, Params, QAOASampler
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.quantum.billing import Bill, anneal_bill, gate_bill, local_bill


def corpus_size(params: Params) -> int | None:
    src = params.curate.source
    if src.kind == "generator":
        n = params.curate.generator.n_docs
    elif src.kind == "files":
        path = Path(src.path)
        files = sorted(p for p in ([path] if path.is_file() else path.rglob("*"))
                       if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".csv", ".tsv"))
        n = 0
        for f in files:
            with f.open("rb") as fh:
                n += sum(1 for line in fh if line.strip()) - (f.suffix.lower() in (".csv", ".tsv"))
    else:
        n = None
    return min(n, src.max_docs) if n is not None and src.max_docs else (n or src.max_docs)


def bill_for(spec: Any, circuits: int) -> Bill:
    shots = getattr(spec, "shots", None) or EQUIVALENT_SHOTS
    if isinstance(spec, IBMBackend):
        return gate_bill("ibm", spec.device or "payg", circuits, shots)
    if isinstance(spec, BraketBackend):
        return gate_bill("braket", spec.device, circuits, shots)
    return local_bill(spec.kind, circuits, shots)


def planned(params: Params) -> list[dict[str, Any]]:
    """One row per planned quantum job: stage, what, the spec's param, circuits (low, high) and the bills."""
    rows = []
    cp, q = params.curate, params.curate.quantum
    n = corpus_size(params)
    if cp.method in ("quantum", "both") and n:
        k = min(cp.n_clusters, n)
        tail = n * n // (2 * k) + n  # within-cluster pairs + one fidelity to the centroid per document
        rows.append({"stage": "curate", "what": f"quantum k-means + SemDeDup swap tests, {n} docs, k={k}",
                     "param": "curate.quantum.backend", "spec": q.backend,
                     "circuits": (n * k + tail, n * k * q.max_iter + tail)})
    eq = params.encode.quantum
    rows.append({"stage": "encode", "what": f"prepared-vs-target swap tests, {eq.sample} documents x 2 encodings",
                 "param": "encode.quantum.shots", "spec": eq.shots,
                 "circuits": (2 * eq.sample, 2 * eq.sample)})
    for i, spec in enumerate(eq.backends if eq.device_samples else []):
        rows.append({"stage": "encode", "what": f"amplitude loading swap tests, {eq.device_samples} documents",
                     "param": f"encode.quantum.backends[{i}]", "spec": spec,
                     "circuits": (eq.device_samples, eq.device_samples)})
    sp = params.search
    solver = sp.fmqa.solver
    levels = [len(v) for v in sp.space.model_dump().values()]
    rounds = max(0, sp.budget - (sp.fmqa.n_init or max(levels)))  # one QUBO solve per proposal after the design
    if "fmqa" in sp.method and rounds and isinstance(solver, (QAOASampler, DWaveBackendSampler)):
        row = {"stage": "search", "what": f"FMQA QUBO solves, {rounds} proposals", "param": "search.fmqa.solver",
               "spec": solver, "circuits": (rounds, rounds), "kind": solver.kind}
        if isinstance(solver, DWaveBackendSampler):
            bill = anneal_bill(solver.solver or "Advantage_system", rounds, solver.shots, solver.annealing_time_us)
        else:  # the final state sampled where the backend runs (the angle search runs on the simulator)
            bill = bill_for(solver.backend, rounds)
            row["kind"] = f"qaoa/{solver.backend.kind}"
        row["bills"] = [bill, bill]
        rows.append(row)
    dp = params.distill
    if dp.method in ("quantum", "both"):
        for i, spec in enumerate(dp.backends):
            rows.append({"stage": "distill", "what": f"VQC student readout on {dp.hardware_samples} test inputs",
                         "param": f"distill.backends[{i}]", "spec": spec,
                         "circuits": (dp.hardware_samples, dp.hardware_samples)})
    for row in rows:
        if "bills" in row:
            continue
        low, high = row["circuits"]
        spec = row["spec"]
        row["bills"] = [bill_for(spec, c) for c in (low, high)]
        row["kind"] = spec.kind
    return rows


def _span(a: float, b: float, fmt: str) -> str:
    return fmt.format(a) if a == b else f"{fmt.format(a)} .. {fmt.format(b)}"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| stage | job | param | backend | circuits | est. QPU s | energy kWh | price USD |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    total = [0.0, 0.0]
    for r in rows:
        lo, hi = r["bills"]
        lines.append(f"| {r['stage']} | {r['what']} | {r['param']} | {r['kind']} | "
                     f"{_span(lo.circuits, hi.circuits, '{:,}')} | "
                     f"{_span(lo.qpu_seconds_est, hi.qpu_seconds_est, '{:.3g}')} | "
                     f"{_span(lo.energy_kwh_est, hi.energy_kwh_est, '{:.3g}')} | "
                     f"{_span(lo.price_usd_est, hi.price_usd_est, '{:.2f}')} |")
        total[0] += lo.price_usd_est
        total[1] += hi.price_usd_est
    lines.append(f"\nTotal price: {total[0]:.2f} .. {total[1]:.2f} USD (simulators: 0; the QPU seconds and energy "
                 "are what the same work would take on hardware)")
    for r in rows:
        if r["bills"][1].price_usd_est > 0:
            lines.append(f"\n{r['param']}:\n{r['bills'][1].format()}")
    return "\n".join(lines)
