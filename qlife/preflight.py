"""One preflight before any work: what can be known without the data, refused naming the param and the way out.

    preflight(params, steps=None)   raises PreflightError, one sentence per refusal (nothing when all pass)
    refusals(params, steps=None)    those sentences

`steps`: DVC steps (the stage modules of qlife.stage.STEPS and `hyperparameters`); None is the whole pipeline
(`python -m qlife.cli check`: `make run` and the `check` step of `dvc repro`, before any stage), where an input
that another step writes is not required yet. A stage run on its own (`qlife.stage.main`: `python -m
stages.<step>`, `dvc repro`) checks its own step. It reads configs, file sizes and the environment, never records,
and takes seconds (a 70B config: about 3 s to count its parameters on the meta device).

  model    `train.model`: a path that does not exist, a folder without config.json, a Hub id neither cached nor
           reachable; its memory counted on the meta device (qlife.models.check_memory: float32 weights, gradients,
           AdamW moments, activations) against `train.max_memory_share` of the available memory: training for
           search, train and deploy (the whole pipeline: deploy's two extra copies), the float32 weights for the
           steps that only embed texts (curate, encode, monitor); the trained teacher for deploy and compress
  quantum  every job qlife.estimate.planned prices, through the backend layer's own checks: the runner's gate
           before a run (simulator memory of the circuit's qubits, a device model's size), the credentials of
           IBM, Braket and D-Wave (a missing token names its variable), the bill against the spec's
           `max_cost_usd` (qlife.quantum.billing.enforce; here the job's whole bill at its upper estimate, where
           the runner enforces each submit's); the circuit caps (`curate.quantum.max_circuits`,
           `monitor.quantum.max_circuits`); QUBOs too large for a simulated solver; the VQC student's simulator
           memory (qlife.distilling.check_vqc_memory) and the quantum head's; the angle encoding's statevectors
  inputs   what the step reads exists (run alone: the upstream steps' outputs; always: `curate.source.path` for
           a files source)
  outputs  the folders the step writes can be written (a read-only folder, a file in the way)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from qlife.io import DataError, read_json
from qlife.params import FMQA_SIMULATED_MAX_BITS, BraketBackend, DWaveBackendSampler, IBMBackend, Params
from qlife.quantum.errors import QuantumBackendError

Check = Callable[[Params], bool]
_ALWAYS: Check = lambda p: True  # noqa: E731
_STATIC: Check = lambda p: "static" in p.distill.inputs  # noqa: E731

# what each step reads that another step writes: (paths key, file or folder under it, needed when, written by)
_LABELS = ("paths.curated", "labels.json", _ALWAYS, "curate")
_TOKENIZED = ("paths.encoded", "tokenized", _ALWAYS, "encode")
_TEACHER = ("paths.teacher", "qlife.json", _ALWAYS, "train")
NEEDS: dict[str, list[tuple[str, str, Check, str]]] = {
    "curate": [],  # its source: `curate.source.path`, checked in every mode (below)
    "encode": [("paths.curated", f"{s}.jsonl", _ALWAYS, "curate") for s in ("train", "val", "test")],
    "search": [_TOKENIZED, _LABELS],
    "hyperparameters": [("paths.search", "best.json", lambda p: p.train.use_search, "search")],
    "train": [_TOKENIZED, _LABELS, ("paths.search", "train_config.json", _ALWAYS, "hyperparameters")],
    "distill": [("paths.features", "teacher.npz", _ALWAYS, "train"), _LABELS,
                ("paths.teacher", "qlife.json", _STATIC, "train"), ("paths.encoded", "tokenized", _STATIC, "encode")],
    "deploy": [_TEACHER, _TOKENIZED],
    "compress": [_TEACHER, _TOKENIZED],
    "serving": [("paths.reports", "deploy.json", _ALWAYS, "deploy"), _TEACHER],
    "monitor": [_LABELS, ("paths.encoded", "features.npz", _ALWAYS, "encode"),
                ("paths.encoded", "projection.npz", _ALWAYS, "encode")],
}
# the folders each step writes (its DVC outs, metrics and plots)
WRITES: dict[str, tuple[str, ...]] = {
    "curate": ("paths.curated", "paths.live", "paths.reports", "paths.metrics"),
    "encode": ("paths.encoded", "paths.reports", "paths.metrics"),
    "search": ("paths.search", "paths.reports", "paths.metrics"),
    "hyperparameters": ("paths.search", "paths.reports"),
    "train": ("paths.teacher", "paths.features", "paths.reports", "paths.metrics"),
    "distill": ("paths.student", "paths.reports", "paths.metrics"),
    "deploy": ("paths.pruned", "paths.reports", "paths.metrics"),
    "compress": ("paths.compressed", "paths.reports", "paths.metrics"),
    "serving": ("paths.reports", "paths.metrics"),
    "monitor": ("paths.monitor", "paths.reports", "paths.metrics"),
}
STEPS = tuple(NEEDS)
EMBEDS = ("curate", "encode", "monitor")  # steps that load train.model to embed texts (inference only)
TRAINS = ("search", "train")  # steps that fine-tune train.model
TEACHER = ("deploy", "compress")  # steps that fine-tune copies of the trained teacher (qlife.teacher_ops.load)


class PreflightError(DataError):
    """Work refused before it starts; `refusals` holds one sentence per problem, each naming its param."""

    def __init__(self, refusals: list[str]):
        self.refusals = refusals
        head = "refused before any work" + (f" ({len(refusals)} problems)" if len(refusals) > 1 else "")
        super().__init__(head + ":\n" + "\n".join("- " + r.replace("\n", "\n  ") for r in refusals))


def preflight(params: Params, steps: Iterable[str] | None = None) -> None:
    """Raise PreflightError when any check of `steps` (None: the whole pipeline) refuses."""
    found = refusals(params, steps)
    if found:
        raise PreflightError(found)


def refusals(params: Params, steps: Iterable[str] | None = None) -> list[str]:
    """Every refusal of `steps` (None: the whole pipeline), each once, in check order."""
    whole = steps is None
    steps = list(STEPS if steps is None else steps)
    unknown = [s for s in steps if s not in NEEDS]
    if unknown:
        raise ValueError(f"no preflight for step(s) {unknown}; known: {list(STEPS)}")
    out: list[str] = []
    for check in (_model, _quantum, _inputs, _outputs):
        for sentence in check(params, steps, whole):
            if sentence not in out:
                out.append(sentence)
    return out


def _refused(fn: Callable[[], Any], param: str | None = None) -> str | None:
    """The sentence of what `fn` refuses (the project's refusal types), led by `param` when it does not already
    start with it; None when nothing is refused."""
    try:
        fn()
    except (DataError, QuantumBackendError, ValueError) as err:
        return str(err) if param is None or str(err).startswith(param) else f"{param}: {err}"
    return None


# --- the model -------------------------------------------------------------------------------------------


def config_problem(name: str, param: str = "train.model") -> str | None:
    """Why the config of model `name` cannot be read (None: it can), as a sentence naming `param`."""
    from qlife.estimate import ModelConfigError, model_config

    try:
        model_config(name)
    except ModelConfigError as err:
        return f"{param}: {err}"
    return None


def _model(params: Params, steps: list[str], whole: bool) -> Iterator[str]:
    from qlife.models import check_memory, count_parameters_of, finetune_mode

    tp = params.train
    embeds = [s for s in steps if s in EMBEDS and (s != "curate" or params.curate.embedder == "teacher")]
    trains = [s for s in steps if s in TRAINS] + ([s for s in steps if s in TEACHER] if whole else [])
    if embeds or trains:
        problem = config_problem(tp.model)
        if problem:
            yield problem
            return
    space = params.search.space
    batch = max([*space.batch_size, tp.batch_size, *([32] if whole else [])])  # the largest any step trains at
    length = max([*space.max_length, tp.max_length])
    if trains:
        names = list(dict.fromkeys(s if s in TRAINS else "deploy" for s in trains))
        where = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        copies = 2 if any(s in TEACHER for s in trains) else 0  # deploy: a candidate and its healing copy
        sentence = _refused(lambda: check_memory(tp.model, where, finetune_mode(tp.model, tp.finetune), batch,
                                                 length, tp.max_memory_share, copies=copies))
        if sentence:
            yield f"train.model: {sentence}"
            return
    if embeds and not trains:
        yield from _inference_memory(tp.model, embeds, tp.max_memory_share, count_parameters_of)
    if not whole:
        yield from _teacher_memory(params, [s for s in steps if s in TEACHER])


def _inference_memory(name: str, steps: list[str], share: float, count: Callable) -> Iterator[str]:
    """The float32 weights (the activations of an embedding batch are small beside them) against the share."""
    from qlife.quantum.memory import GIB, available_bytes

    n, _ = count(name)
    need, have = 4 * n, available_bytes()
    if need > share * have:
        yield (f"train.model: {name} ({n / 1e6:,.0f}M parameters) needs about {need / GIB:.1f} GiB for its float32 "
               f"weights to embed texts in {', '.join(steps)}, more than {share:.0%} of the {have / GIB:.1f} GiB "
               "available: set train.model to a smaller model (or raise train.max_memory_share)")


def _teacher_memory(params: Params, steps: list[str]) -> Iterator[str]:
    """deploy / compress run alone: the trained teacher as qlife.teacher_ops.load checks it, before it loads."""
    from qlife.models import check_memory, finetune_mode

    folder = Path(params.paths.teacher)
    if not steps or not (folder / "qlife.json").exists():
        return
    tp = params.train

    def check() -> None:
        meta = read_json(folder / "qlife.json")
        check_memory(str(folder), " and ".join(steps), finetune_mode(str(folder), tp.finetune), 32,
                     meta["max_length"], tp.max_memory_share, copies=2)

    sentence = _refused(check)
    if sentence:
        yield f"train.model: {sentence}"


# --- quantum jobs ----------------------------------------------------------------------------------------


def _quantum(params: Params, steps: list[str], whole: bool) -> Iterator[str]:
    from qlife.estimate import planned

    for row in planned(params, steps):
        yield from _job(row)
    yield from _sizes(params, steps)


def _job(row: dict) -> Iterator[str]:
    """One priced job: credentials, the bill against the spec's cap, the runner's own gate before a run."""
    from qiskit import QuantumCircuit

    from qlife.quantum.backends import DWaveLeapSampler, circuit_backend
    from qlife.quantum.billing import enforce
    from qlife.quantum.fidelity import raise_too_many

    spec, hi = row["spec"], row["circuits"][1]
    param = row.get("backend_param", row["param"])
    if isinstance(spec, DWaveBackendSampler):
        yield from filter(None, [_refused(lambda: DWaveLeapSampler(spec, param), param)])
    else:
        width = row["qubits"] or 1
        where = f"{row['qubits_param']} or {param}" if row.get("qubits_param") else param

        def gate() -> None:
            runner = circuit_backend(spec, param)  # IBM: the token is checked here
            if isinstance(spec, BraketBackend):
                runner._credentials()
            elif not runner.analytic and not isinstance(spec, IBMBackend):  # a simulator runs the circuits:
                circuit_backend(spec, where)._before(QuantumCircuit(width), hi)  # its memory, a device's size
            if not runner.analytic and row.get("first_round", 0) > params_cap(row):
                raise_too_many(runner, row["first_round"], params_cap(row), param)
            if not runner.analytic and row.get("max_kernel_circuits", 0) > params_cap(row):
                raise QuantumBackendError(
                    f"backend {runner.name!r} would run up to {row['max_kernel_circuits']:,} circuits in one kernel "
                    f"of a live window, over monitor.quantum.max_circuits={params_cap(row)}: raise max_circuits, "
                    f"use a statevector or shots backend in {param}, or fewer rows (monitor.max_ref, smaller windows)")

        yield from filter(None, [_refused(gate, param)])
    if isinstance(spec, (IBMBackend, BraketBackend, DWaveBackendSampler)):
        yield from filter(None, [_refused(lambda: enforce(row["bills"][1], spec.max_cost_usd, spec.confirm,
                                                          f"{param}.max_cost_usd"), param)])


def params_cap(row: dict) -> float:
    """The circuit cap a row's stage holds its circuits against (inf: none)."""
    cap = row.get("max_circuits")
    return float("inf") if cap is None else cap


def _sizes(params: Params, steps: list[str]) -> Iterator[str]:
    """Simulated quantum work the estimate does not price: the VQC student and the quantum head on the batched
    simulator, the angle encoding's statevectors, QUBOs too large for a simulated solver."""
    from qlife.quantum.backends import check_statevector
    from qlife.quantum.memory import require_memory, statevector_bytes

    if "distill" in steps and params.distill.method in ("quantum", "both"):
        from qlife.distilling import check_vqc_memory

        yield from filter(None, [_refused(lambda: check_vqc_memory(params), "distill.qubits")])
    tp, qh = params.train, params.train.quantum_head
    heads = params.search.space.head if tp.use_search else [tp.head]
    if {"search", "train"} & set(steps) and "quantum" in heads:
        batch = max([*params.search.space.batch_size, tp.batch_size])
        pairs = {"linear": qh.qubits - 1, "ring": qh.qubits, "full": qh.qubits * (qh.qubits - 1) // 2}
        gates = qh.qubits + qh.layers * (qh.qubits * (1 + len(qh.rotations)) + pairs[qh.entanglement])
        yield from filter(None, [_refused(lambda: require_memory(
            statevector_bytes(qh.qubits, batch, states=gates + 4),
            f"the quantum head ({qh.qubits} qubits, {gates} gates, batch {batch})",
            "lower train.quantum_head.qubits (each qubit doubles it) or the batch size"), "train.quantum_head.qubits")])
    eq = params.encode.quantum
    if "encode" in steps and params.encode.n_features <= eq.max_angle_qubits:
        yield from filter(None, [_refused(lambda: check_statevector(
            params.encode.n_features, "encode.n_features or encode.quantum.max_angle_qubits", batch=eq.sample),
            "encode.n_features")])
    if "deploy" in steps and "qubo" in params.deploy.methods:
        yield from _deploy_sizes(params)


def _deploy_sizes(params: Params) -> Iterator[str]:
    """The pruning QUBOs' variables against the simulated solvers' limits (qlife.methods.selection refuses the
    same once the teacher is scored)."""
    from qlife.estimate import model_shape

    shape = model_shape(params, teacher=True)
    if shape is None:
        return
    for kind in ("heads", "ffn"):
        units = getattr(params.deploy, kind)
        n = shape[kind] * (1 if units.scope == "layer" else shape["layers"])
        limit = FMQA_SIMULATED_MAX_BITS.get(units.solver.kind)
        if limit is not None and n > limit:
            yield (f"deploy.{kind}.solver: {units.solver.kind} simulates at most {limit} variables here; "
                   f"deploy.{kind} (scope {units.scope}) makes problems of {n} (use tabu, sa, path_integral or dwave, "
                   "or a per-layer scope)")
    blocks = params.deploy.blocks
    limit = FMQA_SIMULATED_MAX_BITS.get(blocks.solver.kind)
    if blocks.enabled and limit is not None and shape["layers"] > limit:
        yield (f"deploy.blocks.solver: {blocks.solver.kind} simulates at most {limit} variables here; the model's "
               f"{shape['layers']} blocks make a problem of {shape['layers']} (use tabu, sa, path_integral or dwave)")


# --- inputs and outputs ----------------------------------------------------------------------------------


def _path(params: Params, key: str) -> Path:
    node: Any = params
    for part in key.split("."):
        node = getattr(node, part)
    return Path(node)


def _inputs(params: Params, steps: list[str], whole: bool) -> Iterator[str]:
    src = params.curate.source
    if "curate" in steps and src.kind == "files":
        from qlife.data.sources import has_data_files

        if not Path(src.path).exists():
            yield f"curate.source.path: {src.path} does not exist: point it at a JSONL/CSV/Parquet file or folder"
        elif not has_data_files(Path(src.path)):
            yield f"curate.source.path: {src.path} holds no .jsonl/.json/.csv/.parquet file: add the corpus there"
    if whole:  # every other input is written by a step that runs first
        return
    for step in steps:
        for key, name, when, writer in NEEDS[step]:
            path = _path(params, key) / name
            if when(params) and not path.exists():
                yield (f"{key}: {step} needs {path}, which {writer} writes: run `dvc repro {step}` (it runs what is "
                       f"missing first), or `python -m {_module(writer)}` first")


def _module(step: str) -> str:
    return "qlife.hyperparameters" if step == "hyperparameters" else f"stages.{step}"


def _outputs(params: Params, steps: list[str], whole: bool) -> Iterator[str]:
    keys = dict.fromkeys(k for s in steps for k in WRITES[s])
    for key in keys:
        why = unwritable(_path(params, key))
        if why:
            writers = ", ".join(s for s in steps if key in WRITES[s])
            yield f"{key}: {_path(params, key)} {why} ({writers} write there): make it writable or set {key} elsewhere"


def unwritable(path: Path) -> str | None:
    """Why files cannot be written into folder `path` (or it cannot be created, where missing), or None."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return "is a file, not a folder" if probe == path else f"cannot be created: {probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return "is not writable" if probe == path else f"cannot be created: {probe} is not writable"
    return None
