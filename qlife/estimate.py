"""The bill for the whole pipeline, before running anything: `python -m qlife.cli estimate [--json]`.

For every quantum job the params plan, one row per backend spec of every stage (`planned(params)`): the circuits
and shots it implies, the estimated QPU seconds and energy (qlife.quantum.resources) and the price under the
providers' public lists (qlife.quantum.billing: simulators cost 0 USD and show the energy the same work would take
on hardware). The jobs, by stage:
  curate   quantum k-means + SemDeDup swap tests (`curate.quantum.backend`), the same-pairs comparison
           (`curate.quantum.compare.backends[i]`)
  encode   the prepared-vs-target swap tests (`encode.quantum.shots`), amplitude loading on each
           `encode.quantum.backends[i]`
  search   FMQA's QUBO solves (`search.fmqa.solver`: QAOA sampled on its backend, or D-Wave)
  train    the quantum head's training circuits, hardware-equivalent (it runs on the simulator: no backend param)
  distill  the VQC student's finite-shot readouts (`distill.shots[i]`) and hardware runs (`distill.backends[i]`)
  deploy   the pruning QUBOs per layer and sparsity (`deploy.heads.solver`, `deploy.ffn.solver`: QAOA, D-Wave),
           and with `deploy.blocks.enabled` one block-removal QUBO per sparsity (`deploy.blocks.solver`)
  monitor  the quantum kernels' circuits over every live window (`monitor.quantum.backend`)
Classical solvers (sa, tabu, swap_tabu, path_integral, exact) plan no quantum job.

Sizes that depend on the data are bounded from the params and file sizes, never from reading records: n is the
generator's `n_docs`, or the records in the source files (lines counted, a header row per CSV file subtracted;
Parquet row counts from the file footer), or `curate.source.max_docs`; the splits are n x their fractions (before
dedup: an upper bound). Curate's quantum k-means needs n x k swap tests per round (1 round .. `max_iter` rounds)
plus the within-cluster pairs (about n^2 / 2k) and one fidelity to the centroid per document. Model shapes
(hidden size, layers, heads, FFN width) come from the config of `train.model` (or the trained teacher), read
without weights.

A row: stage, what, param (the spec's place in params.yaml), spec, circuits (low, high), qubits (the circuit's
width where it runs, None when unknown) and qubits_param (the param that sets it), kind, bills (low, high);
`backend_param` where the circuits run on a spec nested in the row's (QAOA's `backend`); curate's `first_round`
and monitor's `max_kernel_circuits` with the `max_circuits` the stage holds them against.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from qlife.params import (
    BraketBackend,
    DWaveBackendSampler,
    IBMBackend,
    Params,
    QAOASampler,
    StatevectorBackend,
    fmqa_bits,
)
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.quantum.billing import Bill, anneal_bill, gate_bill, local_bill

Row = dict[str, Any]
QUANTUM_TESTS = ("quantum_fidelity", "quantum_projected", "fuse_quantum")


# --- sizes from the params and the files' sizes ----------------------------------------------------------


def record_counts(path: str | Path) -> list[int]:
    """Records per data file of `path` (a file, or the folder's files as the loader lists them): lines of
    JSONL/JSON, lines minus the header of CSV, the footer's row count of Parquet. Nothing is parsed."""
    from qlife.data.sources import SUFFIXES

    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) \
        if path.is_dir() else []
    counts = []
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            counts.append(pq.ParquetFile(f).metadata.num_rows)
            continue
        with f.open("rb") as fh:
            counts.append(max(0, sum(1 for line in fh if line.strip()) - (f.suffix == ".csv")))
    return counts


def corpus_size(params: Params) -> int | None:
    """Records the corpus holds before dedup (None for a Hugging Face dataset without `max_docs`)."""
    src = params.curate.source
    if src.kind == "generator":
        n = params.curate.generator.n_docs
    elif src.kind == "files":
        n = sum(record_counts(src.path)) if Path(src.path).exists() else None
    else:
        n = None
    return min(n, src.max_docs) if n is not None and src.max_docs else (n or src.max_docs)


def split_size(params: Params, split: str) -> int | None:
    """Documents of a curated split, before dedup (an upper bound)."""
    n, s = corpus_size(params), params.curate.splits
    if n is None:
        return None
    share = {"val": s.val, "test": s.test}.get(split, 1.0 - s.val - s.test)
    return int(n * share)


def live_window_sizes(params: Params) -> list[int]:
    """Records per live window: the generator's two windows, and one per file of `curate.source.live_path`."""
    src = params.curate.source
    sizes = [params.curate.generator.live_size] * 2 if src.kind == "generator" else []
    return sizes + (record_counts(src.live_path) if Path(src.live_path).exists() else [])


class ModelConfigError(OSError):
    """A model whose config cannot be read; the message says why and what to give instead (no param named)."""


HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # `name` or `namespace/name`


def model_config(name: str):
    """The Hugging Face config of a model id or folder, without weights; ModelConfigError says why not. A Hub id
    comes from the local cache, or from the Hub when it can be reached (offline: refused at once, not after
    transformers' retries)."""
    config, why = _model_config(name)
    if why:
        raise ModelConfigError(why)
    return config


@functools.lru_cache(maxsize=8)
def _model_config(name: str) -> tuple[Any, str | None]:
    from transformers import AutoConfig

    from qlife.models import BUNDLED, resolve_model

    path = Path(name).expanduser()
    if path.is_file():
        return None, f"{name} is a file: give a model folder (with config.json) or a Hugging Face id"
    if path.is_dir() and not (path / "config.json").exists():
        return None, (f"{name} has no config.json: give a folder written by `save_pretrained` (config.json and "
                      "weights) or a Hugging Face id")
    if not path.exists() and name not in BUNDLED:
        if not HUB_ID.fullmatch(name):
            return None, f"{name} does not exist: give an existing model folder or a Hugging Face id"
        try:
            return AutoConfig.from_pretrained(name, local_files_only=True), None
        except Exception:  # noqa: BLE001 - not in the cache: the Hub itself, if it can be reached
            why = _hub_unreachable()
            if why:
                return None, (f"{name!r} is not a local folder and not in the Hugging Face cache, and {why}: give a "
                              f"local model folder, or download it once (`huggingface-cli download {name}`)")
    try:
        return AutoConfig.from_pretrained(resolve_model(name)), None
    except Exception as err:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError... for a bad config
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return None, f"the config of {name} cannot be read ({first}): fix the folder or choose another model"


def _hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be asked (offline mode, no route to it), or None (a proxy: assume it can)."""
    import os
    import socket

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is set (HF_HUB_OFFLINE)"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = re.sub(r"^https?://", "", constants.ENDPOINT).split("/")[0].split(":")[0]
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"{host} cannot be reached ({err.strerror or err})"
    return None


def model_shape(params: Params, teacher: bool = False) -> dict[str, int] | None:
    """hidden, layers, heads, ffn of `train.model` (or of the trained teacher in `paths.teacher`, if there);
    None when its config cannot be read (the preflight says why)."""
    folder = Path(params.paths.teacher)
    name = str(folder) if teacher and (folder / "config.json").exists() else params.train.model
    try:
        c = model_config(name)
    except ModelConfigError:  # the preflight refuses it with the reason
        return None
    hidden = int(getattr(c, "hidden_size", 0) or getattr(c, "n_embd", 0))
    return {"hidden": hidden, "layers": int(getattr(c, "num_hidden_layers", 0) or getattr(c, "n_layer", 0)),
            "heads": int(getattr(c, "num_attention_heads", 0) or getattr(c, "n_head", 0)),
            "ffn": int(getattr(c, "intermediate_size", 0) or getattr(c, "n_inner", 0) or 4 * hidden)}


# --- bills -----------------------------------------------------------------------------------------------


def bill_for(spec: Any, circuits: int) -> Bill:
    """The bill of `circuits` circuits on a circuit backend spec (hardware priced, simulators free)."""
    shots = getattr(spec, "shots", None) or EQUIVALENT_SHOTS
    if isinstance(spec, IBMBackend):
        return gate_bill("ibm", spec.device or "payg", circuits, shots)
    if isinstance(spec, BraketBackend):
        return gate_bill("braket", spec.device, circuits, shots)
    return local_bill(spec.kind, circuits, shots)


def _circuits(stage: str, what: str, param: str, spec: Any, circuits: int | tuple[int, int],
              qubits: int | None, qubits_param: str | None = None) -> Row:
    lo, hi = (circuits, circuits) if isinstance(circuits, int) else circuits
    return {"stage": stage, "what": what, "param": param, "spec": spec, "circuits": (lo, hi), "qubits": qubits,
            "qubits_param": qubits_param}


def _qubo(stage: str, what: str, param: str, solver: Any, problems: int, variables: int | None,
          variables_param: str | None = None) -> Row | None:
    """A QUBO solver's row: QAOA (the final state sampled on its backend, one circuit per problem; the angle
    search runs on the simulator) or D-Wave (one anneal job of `shots` reads per problem); classical: None."""
    if isinstance(solver, QAOASampler):
        row = _circuits(stage, what, param, solver.backend, problems, variables, variables_param)
        row.update(kind=f"qaoa/{solver.backend.kind}", backend_param=f"{param}.backend")
        return row
    if isinstance(solver, DWaveBackendSampler):
        bill = anneal_bill(solver.solver or "Advantage_system", problems, solver.shots, solver.annealing_time_us)
        return {**_circuits(stage, what, param, solver, problems, variables, variables_param), "kind": "dwave",
                "bills": [bill, bill]}
    return None


# --- the jobs, stage by stage ----------------------------------------------------------------------------


def _curate(params: Params) -> list[Row]:
    cp, q = params.curate, params.curate.quantum
    n = corpus_size(params)
    if cp.method not in ("quantum", "both") or not n:
        return []
    from qlife.dedup import embedding_qubits

    shape = model_shape(params) if cp.embedder == "teacher" else {"hidden": cp.embed_dim}
    width = 2 * embedding_qubits(params, shape["hidden"]) + 1 if shape else None  # the swap test
    k = min(cp.n_clusters, n)
    tail = n * n // (2 * k) + n  # within-cluster pairs + one fidelity to the centroid per document
    rows = [_circuits("curate", f"quantum k-means + SemDeDup swap tests, {n} docs, k={k}", "curate.quantum.backend",
                      q.backend, (n * k + tail, n * k * q.max_iter + tail), width, "curate.quantum.qubits")]
    # what qkmeans holds against curate.quantum.max_circuits before it starts: one assignment round
    rows[0].update(first_round=n * k, max_circuits=q.max_circuits)
    if q.compare.pairs:
        rows += [_circuits("curate", f"the same {q.compare.pairs} pairs compared with exact",
                           f"curate.quantum.compare.backends[{i}]", spec, q.compare.pairs, width,
                           "curate.quantum.qubits")
                 for i, spec in enumerate(q.compare.backends)]
    return rows


def _encode(params: Params) -> list[Row]:
    from qlife.methods.qencoding import n_qubits_for

    eq, d = params.encode.quantum, params.encode.n_features
    amp = n_qubits_for("amplitude", d)
    checked = 1 + (d <= eq.max_angle_qubits)  # the angle encoding is checked up to max_angle_qubits features
    rows = [_circuits("encode", f"prepared-vs-target swap tests, {eq.sample} documents x {checked} encoding(s)",
                      "encode.quantum.shots", eq.shots, checked * eq.sample, 2 * (d if checked > 1 else amp) + 1,
                      "encode.n_features")]
    if eq.device_samples:
        rows += [_circuits("encode", f"amplitude loading swap tests, {eq.device_samples} documents",
                           f"encode.quantum.backends[{i}]", spec, eq.device_samples, 2 * amp + 1, "encode.n_features")
                 for i, spec in enumerate(eq.backends)]
    return rows


def _search(params: Params) -> list[Row]:
    sp = params.search
    space = sp.space.model_dump()
    rounds = max(0, sp.budget - (sp.fmqa.n_init or max(len(v) for v in space.values())))  # one QUBO solve per
    # proposal after the initial design
    if "fmqa" not in sp.method or not rounds:
        return []
    row = _qubo("search", f"FMQA QUBO solves, {rounds} proposals", "search.fmqa.solver", sp.fmqa.solver, rounds,
                fmqa_bits(space, sp.fmqa.domain_wall_min_levels), "search.space")
    return [row] if row else []


def _train(params: Params) -> list[Row]:
    """The quantum head trains on the batched simulator: what the same training would run on hardware (one
    forward circuit per example and epoch, two parameter-shift circuits per circuit weight and input angle)."""
    tp, qh = params.train, params.train.quantum_head
    heads = params.search.space.head if tp.use_search else [tp.head]
    n = split_size(params, "train")
    if "quantum" not in heads or not n:
        return []
    n = min(n, tp.max_train_docs or n)
    epochs = max([*params.search.space.epochs, tp.epochs]) if tp.use_search else tp.epochs
    weights, angles = qh.layers * qh.qubits * len(qh.rotations), qh.layers * qh.qubits
    circuits = epochs * n * (1 + 2 * (weights + angles))
    return [_circuits("train", f"quantum head training, {n} docs x {epochs} epoch(s) (simulated: no backend "
                      "param; hardware-equivalent circuits)", "train.quantum_head", StatevectorBackend(), circuits,
                      qh.qubits, "train.quantum_head.qubits")]


def _distill(params: Params) -> list[Row]:
    dp = params.distill
    if dp.method not in ("quantum", "both") or "teacher" not in dp.inputs:  # the readouts: teacher input only
        return []
    n_test = split_size(params, "test") or dp.hardware_samples
    same = dp.hardware_samples if dp.backends else 0  # each shot count again on the hardware-sample inputs
    rows = [_circuits("distill", f"VQC student readout, {n_test} test inputs", f"distill.shots[{i}]", spec,
                      n_test + same, dp.qubits, "distill.qubits") for i, spec in enumerate(dp.shots)]
    if dp.hardware_samples:
        rows += [_circuits("distill", f"VQC student readout on {dp.hardware_samples} test inputs",
                           f"distill.backends[{i}]", spec, dp.hardware_samples, dp.qubits, "distill.qubits")
                 for i, spec in enumerate(dp.backends)]
    return rows


def _deploy(params: Params) -> list[Row]:
    dp = params.deploy
    shape = model_shape(params, teacher=True)
    rows = []
    if dp.blocks.enabled and "qubo" in dp.blocks.methods:  # one problem over the whole stack per sparsity
        layers = shape["layers"] if shape else 0
        what = (f"block removal QUBOs: {len(dp.blocks.sparsity)} problem(s) of {layers} variables" if shape else
                "block removal QUBOs (model shape unknown: its config cannot be read)")
        row = _qubo("deploy", what, "deploy.blocks.solver", dp.blocks.solver, len(dp.blocks.sparsity), layers or None)
        rows += [row] if row else []
    if "qubo" not in dp.methods:
        return rows
    for kind in ("heads", "ffn"):
        units = getattr(dp, kind)
        per_layer = shape[kind] if shape else 0
        layers = shape["layers"] if shape else 0
        scoped = units.scope == "layer"
        problems = len(units.sparsity) * (layers if scoped else 1)
        variables = per_layer if scoped else per_layer * layers
        what = (f"{kind} pruning QUBOs: {len(units.sparsity)} sparsit{'y' if len(units.sparsity) == 1 else 'ies'}"
                f" x {layers if scoped else 1} problem(s) of {variables} variables" if shape else
                f"{kind} pruning QUBOs (model shape unknown: its config cannot be read)")
        row = _qubo("deploy", what, f"deploy.{kind}.solver", units.solver, problems, variables or None,
                    f"deploy.{kind}.scope")
        rows += [row] if row else []
    return rows


def monitor_kernel_circuits(params: Params, n_ref: int, m: int) -> list[int]:
    """Circuits each quantum kernel object of one window runs, as monitor's tests build them (one kernel per
    bandwidth tried): compute-uncompute circuits per pair (a symmetric Gram: pairs i < j), or 3 basis
    measurements per row for the projected kernel."""
    from qlife.methods.drifttests import MIN_TUNED_ROWS

    mp = params.monitor
    if m < 2:
        return []
    pairs = lambda rows: rows * (rows - 1) // 2  # noqa: E731
    h = min(n_ref // 2, m // 2)
    tune, test = 2 * h, (n_ref - n_ref // 2) + (m - m // 2)
    out = []
    tuned = n_ref >= MIN_TUNED_ROWS and m >= MIN_TUNED_ROWS
    if "quantum_fidelity" in mp.tests and tuned:
        out += [pairs(tune)] * len(mp.quantum.bandwidths) + [pairs(test)]
    if "quantum_projected" in mp.tests and tuned:
        out += [3 * tune] * len(mp.quantum.bandwidths) + [3 * test]
    if "fuse_quantum" in mp.tests:
        out += [pairs(n_ref + m)] * len(mp.fuse.quantum_bandwidths)
    r = min(mp.ocsvm.max_ref, n_ref)
    if "quantum_fidelity" in mp.ocsvm.kernels:
        out.append(pairs(r) + m * r)
    if "quantum_projected" in mp.ocsvm.kernels:
        out.append(3 * (3 * r + m))  # fit on the reference, its Gram, the window against it
    return out


def _monitor(params: Params) -> list[Row]:
    mp = params.monitor
    if not (set(QUANTUM_TESTS) & set(mp.tests) or {"quantum_fidelity", "quantum_projected"} & set(mp.ocsvm.kernels)):
        return []
    train = split_size(params, "train")
    n_ref = min(x for x in (mp.max_ref, train) if x is not None) if (mp.max_ref or train) else 0
    windows = live_window_sizes(params)
    per_window = [monitor_kernel_circuits(params, n_ref, m) for m in windows]
    total = sum(sum(k) for k in per_window)
    row = _circuits("monitor", f"quantum kernels, {len(windows)} live window(s) of up to {max(windows, default=0)} "
                    f"records against {n_ref} reference rows", "monitor.quantum.backend", mp.quantum.backend, total,
                    mp.quantum.features, "monitor.quantum.features")
    row.update(max_kernel_circuits=max((c for k in per_window for c in k), default=0),
               max_circuits=mp.quantum.max_circuits)
    return [row]


STAGE_JOBS = {"curate": _curate, "encode": _encode, "search": _search, "train": _train, "distill": _distill,
              "deploy": _deploy, "monitor": _monitor}


def planned(params: Params, stages: list[str] | tuple[str, ...] | None = None) -> list[Row]:
    """One row per planned quantum job of `stages` (default: all seven), with its bills (low, high)."""
    rows = [row for stage, jobs in STAGE_JOBS.items() if stages is None or stage in stages for row in jobs(params)]
    for row in rows:
        if "bills" not in row:
            row["bills"] = [bill_for(row["spec"], c) for c in row["circuits"]]
        row.setdefault("kind", row["spec"].kind)
    return rows


def _span(a: float, b: float, fmt: str) -> str:
    return fmt.format(a) if a == b else f"{fmt.format(a)} .. {fmt.format(b)}"


def format_table(rows: list[Row]) -> str:
    lines = ["| stage | job | param | backend | qubits | circuits | est. QPU s | energy kWh | price USD |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    total = [0.0, 0.0]
    for r in rows:
        lo, hi = r["bills"]
        lines.append(f"| {r['stage']} | {r['what']} | {r['param']} | {r['kind']} | {r.get('qubits') or '?'} | "
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
