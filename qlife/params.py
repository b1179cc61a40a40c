"""The one typed schema for params.yaml.

Every entry point calls `load_params()` before any work: an unknown key or a bad value prints the
key path and exits with status 2. Models are frozen so a stage cannot mutate what it was given.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = "params.yaml"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- quantum backends: one spec for every stage (built by qlife/quantum/backends.py) -----------------------


class Noise(Section):
    """The one simulated noise model (backend kind `aer`): depolarizing per gate and symmetric readout flips.
    A real device's calibrated noise is kind `device` instead."""

    p1: float = Field(default=1e-3, ge=0, le=1)  # depolarizing, per 1-qubit gate (sx, x)
    p2: float = Field(default=1e-2, ge=0, le=1)  # depolarizing, per 2-qubit gate (cx)
    readout: float = Field(default=2e-2, ge=0, lt=0.5)  # symmetric bit flip at measurement


class _Sampled(Section):
    shots: int = Field(default=1024, ge=1)
    seed: int = 0


class _Billed(_Sampled):
    # real hardware: the bill (circuits, shots, QPU seconds, energy, price) is shown before any submit and the
    # job refused above max_cost_usd unless `confirm: true` (null: nothing is submitted without confirm)
    max_cost_usd: float | None = Field(default=None, ge=0)
    confirm: bool = False


class StatevectorBackend(Section):
    """Exact probabilities (no sampling): what the circuit computes."""

    kind: Literal["statevector"] = "statevector"


class ShotsBackend(_Sampled):
    """Exact probabilities sampled with `shots` shots: ideal hardware."""

    kind: Literal["shots"] = "shots"


class AerBackend(_Sampled):
    """The circuit transpiled to a generic basis (all-to-all) on qiskit-aer, with `noise` (null: noiseless)."""

    kind: Literal["aer"] = "aer"
    noise: Noise | None = Noise()


class DeviceBackend(_Sampled):
    """A real IBM device, offline: its coupling map, basis and calibrated noise (qiskit-ibm-runtime fake backends
    on qiskit-aer); routing SWAPs, depth and two-qubit gates after transpiling are reported."""

    kind: Literal["device"] = "device"
    device: str = "fake_torino"


class IBMBackend(_Billed):
    """IBM Quantum hardware (qiskit-ibm-runtime SamplerV2; token QISKIT_IBM_TOKEN). device null: least busy."""

    kind: Literal["ibm"] = "ibm"
    device: str | None = None


class BraketLocalBackend(_Sampled):
    """Amazon Braket's local state-vector simulator, in its own environment (`make braket-env`)."""

    kind: Literal["braket_local"] = "braket_local"


class BraketBackend(_Billed):
    """An Amazon Braket managed device by ARN (AWS credentials from the environment)."""

    kind: Literal["braket"] = "braket"
    device: str


def _kind_shorthand(value: Any) -> Any:
    return {"kind": value} if isinstance(value, str) else value


# `backend: aer` is shorthand for `backend: {kind: aer}`
CircuitBackend = Annotated[
    StatevectorBackend | ShotsBackend | AerBackend | DeviceBackend | IBMBackend | BraketLocalBackend | BraketBackend,
    Field(discriminator="kind"), BeforeValidator(_kind_shorthand)]


def _shots_spec(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"a finite-shot evaluation is a backend spec, not a bare count: write "
                         f"{{kind: shots, shots: {value}}}")
    return _kind_shorthand(value)


# a finite-shot evaluation of exact probabilities, sampled by qlife/quantum/backends.py: `{kind: shots, shots: 1024}`
# (seed: the spec's, default 0); circuit-running kinds (aer, device, hardware) go in a stage's `backends` list
ShotsSpec = Annotated[ShotsBackend, BeforeValidator(_shots_spec)]


class ExactSampler(Section):
    """Brute force over all 2^n assignments (n <= 24): the reference optimum."""

    kind: Literal["exact"] = "exact"
    num_reads: int = Field(default=1, ge=1)


class QAOASampler(Section):
    """QAOA: angles optimized on the fast statevector simulator, the final state sampled on `backend` (the
    statevector default samples the exact state with `shots`; a device backend runs the bound circuit there)."""

    kind: Literal["qaoa"] = "qaoa"
    p: int = Field(default=2, ge=1)
    restarts: int = Field(default=4, ge=1)
    maxiter: int = Field(default=200, ge=1)
    shots: int = Field(default=1024, ge=1)
    seed: int = 0
    backend: CircuitBackend = StatevectorBackend()


class _Annealing(Section):
    num_reads: int = Field(default=100, ge=1)
    num_sweeps: int = Field(default=1000, ge=1)
    seed: int = 0


class SASampler(_Annealing):
    """Simulated annealing (dwave-samplers)."""

    kind: Literal["sa"] = "sa"


class TabuSampler(Section):
    """Tabu search (dwave-samplers)."""

    kind: Literal["tabu"] = "tabu"
    num_reads: int = Field(default=10, ge=1)
    timeout_ms: int = Field(default=100, ge=1)
    seed: int = 0


class SwapTabuSampler(Section):
    """Tabu search that never leaves the exactly-k set: swap moves from a greedy start, restarts by random kicks
    (qlife.quantum.swap_tabu; classical). Only for problems with an exactly-k constraint (deploy's selection)."""

    kind: Literal["swap_tabu"] = "swap_tabu"
    num_reads: int = Field(default=1, ge=1)
    timeout_ms: int = Field(default=1000, ge=1)  # per read
    tenure: int = Field(default=20, ge=1)
    candidates: int = Field(default=6, ge=1)  # ones of largest field x every zero, every one x zeros of smallest
    stall: int = Field(default=150, ge=1)  # steps without a new best before a kick
    kick: int = Field(default=12, ge=1)  # random swaps from the best at a restart
    # also stop after this many swaps (per read): a set number makes the result independent of machine speed
    max_iterations: int | None = Field(default=None, ge=1)
    seed: int = 0


class PathIntegralSampler(_Annealing):
    """Path-integral (simulated quantum) annealing: transverse-field dynamics by Monte Carlo (dwave-samplers)."""

    kind: Literal["path_integral"] = "path_integral"


class DWaveBackendSampler(_Billed):
    """A D-Wave QPU through Leap (token DWAVE_API_TOKEN); `shots` are reads."""

    kind: Literal["dwave"] = "dwave"
    solver: str | None = None  # e.g. Advantage_system4.1; null: Leap's default (billed at the Advantage rate)
    shots: int = Field(default=100, ge=1)
    annealing_time_us: float = Field(default=20.0, gt=0)


QuboSampler = Annotated[
    ExactSampler | QAOASampler | SASampler | TabuSampler | SwapTabuSampler | PathIntegralSampler
    | DWaveBackendSampler, Field(discriminator="kind"), BeforeValidator(_kind_shorthand)]


class Paths(Section):
    curated: str = "data/curated"
    live: str = "data/live"
    incoming: str = "data/incoming"
    encoded: str = "data/encoded"
    search: str = "data/search"
    teacher: str = "data/models/teacher"
    features: str = "data/features"
    student: str = "data/models/student"
    pruned: str = "data/models/pruned"
    compressed: str = "data/models/compressed"
    monitor: str = "data/monitor"
    # what lives across runs outside DVC: the monitor's stream detector and the windows answered (acknowledged)
    state: str = "data/state"
    metrics: str = "metrics"
    reports: str = "reports"


class Source(Section):
    # files: JSONL/CSV/Parquet files in `path` (a file or a folder; may be outside the repo) and live windows in
    # `live_path`, one file per window. Both are DVC dependencies of curate (dvc.yaml: ${curate.source.*}),
    # so they must exist: the defaults are the tracked placeholder folders under data/source/.
    kind: Literal["generator", "files", "hf"] = "generator"
    path: str = "data/source/corpus"
    live_path: str = "data/source/live"
    name: str | None = None  # hf: dataset name on the hub (or a local dataset script/folder)
    config: str | None = None
    data_files: str | None = None  # hf: optional data_files
    revision: str | None = None  # hf: pin a dataset revision (DVC cannot see a hub dataset change otherwise)
    split: str = "train"
    text_field: str = "text"
    label_field: str = "label"
    # the classes, declared (any other label is a reject with its reason) or null: learned from the data, where a
    # label seen on fewer than `min_label_docs` records is a reject ("sprots", a stray 99), not a new class
    labels: list[str] | None = Field(default=None, min_length=2)
    min_label_docs: int = Field(default=5, ge=1)
    max_docs: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> Source:
        if self.kind == "hf" and not self.name:
            raise ValueError("source.kind 'hf' needs source.name")
        if not self.path or not self.live_path:
            raise ValueError("source.path and source.live_path must name a file or folder (DVC dependencies)")
        return self


class Generator(Section):
    seed: int = 0
    n_docs: int = Field(default=1500, ge=100)  # the full profile: 3000
    n_topics: int = Field(default=4, ge=2, le=6)
    exact_dup_frac: float = Field(default=0.06, ge=0, lt=0.5)
    near_dup_frac: float = Field(default=0.06, ge=0, lt=0.5)
    live_size: int = Field(default=400, ge=20)
    # share of the last topic (a minority class); null: balanced topics. Imbalance ground truth.
    minority_frac: float | None = Field(default=None, gt=0, lt=0.5)


class Splits(Section):
    val: float = Field(default=0.15, gt=0, lt=0.5)
    test: float = Field(default=0.15, gt=0, lt=0.5)
    # the monitor's reference: this share of the corpus (feedback included), drawn before any dedup and stratified
    # by label, is held out of training, dedup and the encoder's projection fit: it stands for live traffic
    # (which is never deduplicated), so the per-window drift tests reject at their alpha (bench/calibration.py)
    reference: float = Field(default=0.15, gt=0, lt=0.5)


class CurateCompare(Section):
    """Exact beside each backend on the same sampled pairs (half the pairs called duplicates, half random within a
    cluster). A circuit-running backend costs one circuit per pair: the default is ideal shots; a device model of
    the 7-qubit amplitude swap test (15 qubits, hundreds of routed two-qubit gates) takes minutes per pair here."""

    pairs: int = Field(default=20, ge=0)
    backends: list[CircuitBackend] = [ShotsBackend()]


class CurateQuantum(Section):
    """Quantum SemDeDup (qlife/methods/qkmeans.py): q-means + within-cluster swap-test fidelity."""

    encoding: Literal["amplitude", "angle"] = "amplitude"
    # null: amplitude ceil(log2(embed_dim)) qubits (no reduction beyond the embedding), angle min(embed_dim, 16)
    qubits: int | None = Field(default=None, ge=1, le=24)
    # where the swap tests run (a backend spec; `backend: shots` is shorthand for {kind: shots}); circuit-running
    # kinds (aer, device, ibm, braket*) execute one circuit per fidelity: small corpora only (max_circuits)
    backend: CircuitBackend = StatevectorBackend()
    threshold: float | None = Field(default=None, gt=0, lt=1)  # null: (1 - eps)^2, i.e. cosine > 1 - eps
    max_iter: int = Field(default=100, ge=1)
    tol: float = Field(default=1e-3, ge=0, lt=1)  # converged: share of points changing cluster <= tol
    patience: int = Field(default=5, ge=1)  # stop when that share makes no new low (shot-noise floor)
    max_circuits: int = Field(default=20000, ge=1)  # circuit-running backends: refuse beyond this many
    compare: CurateCompare = CurateCompare()

    @model_validator(mode="after")
    def _size(self) -> CurateQuantum:
        if self.encoding == "amplitude" and self.qubits is not None and self.qubits > 12:
            raise ValueError("curate.quantum.qubits: amplitude encoding is limited to 12 qubits (4096 dims)")
        return self


class CurateStatic(Section):
    """curate.embedder static (qlife.methods.static_embed.teacher_table): the teacher's token vectors, PCA to
    `dims`, SIF weights of the corpus; the vectors cached on disk per teacher and settings."""

    dims: int = Field(default=128, ge=2)
    vocabulary: Literal["full", "corpus"] = "corpus"  # corpus: only the corpus's tokens get a vector (seconds)
    # 1e-2, not distill.static's 1e-3: the best near-duplicate F1 on bench/embedders.py's tuning corpora (a small
    # corpus's frequent tokens weigh too little at 1e-3)
    sif_a: float = Field(default=1e-2, gt=0)
    batch_size: int = Field(default=1024, ge=1)  # one-token documents per teacher forward pass


class Curate(Section):
    source: Source = Source()
    generator: Generator = Generator()
    method: Literal["classical", "quantum", "both"] = "both"
    # whose removals are written to the splits; null: the method run (with both: quantum)
    apply: Literal["classical", "quantum"] | None = None
    # near-duplicate embedder: the teacher's encoder (train.model, mean-pooled, as SemDeDup uses a pretrained
    # model), TF-IDF + SVD (fast, lexical; `embed_dim` components) or static (a token table distilled from the
    # teacher before curation, `curate.static`: a lookup and a SIF-weighted mean per document, no encoder run)
    embedder: Literal["teacher", "tfidf", "static"] = "teacher"
    embed_dim: int = Field(default=128, ge=2)
    embed_max_length: int = Field(default=64, ge=8)  # teacher and static embedders: tokens per document
    static: CurateStatic = CurateStatic()
    # teacher embedder: texts per shard, the unit of parallel work (qlife.parallel); the rows do not depend on it
    # being run serially or on workers, but they may in the last bits on the shard size (batches are formed per
    # shard), so it is a curate param
    embed_shard: int = Field(default=4096, ge=1)
    n_clusters: int = Field(default=50, ge=1)
    # a corpus of more than n_clusters x cluster_docs documents gets more clusters, about cluster_docs each (the
    # within-cluster pairs then grow as n, not n^2); null: n_clusters whatever the size
    cluster_docs: int | None = Field(default=5000, ge=2)
    # k-means / q-means centroids and the tfidf embedder's TF-IDF+SVD fitted on a seeded sample of this many documents
    # when the corpus is larger, every document then embedded and assigned in shards (SemDeDup at scale); null: fitted
    # on every document
    fit_sample: int | None = Field(default=100_000, ge=100)
    eps: float = Field(default=0.09, gt=0, lt=1)
    keep: Literal["hard", "easy", "random"] = "hard"
    quantum: CurateQuantum = CurateQuantum()
    splits: Splits = Splits()
    # a class whose removal rate exceeds this multiple of the overall rate is warned about in the report
    label_loss_warn_ratio: float = Field(default=2.0, gt=1)
    # refuse (exit 1) when near-duplicate removal would take more than this share of the texts that reach it:
    # the embedder sees every text alike (a raw LM's anisotropic hidden states), or eps is too wide; null: never
    max_near_dup_frac: float | None = Field(default=0.5, gt=0, le=1)
    report_pairs: int = Field(default=30, ge=0)  # removed pairs sampled into reports/dedup_pairs.md
    seed: int = 0

    @model_validator(mode="after")
    def _apply_runs(self) -> Curate:
        if self.apply is not None and self.method not in ("both", self.apply):
            raise ValueError(f"curate.apply {self.apply!r} needs curate.method {self.apply!r} or 'both'")
        return self

    @property
    def applied(self) -> str:
        return self.apply or ("quantum" if self.method == "both" else self.method)


class EncodeQuantum(Section):
    """Encoding report (qlife/methods/qencoding.py): amplitude and angle circuits of the reduced features."""

    sample: int = Field(default=32, ge=1)  # documents whose circuits are built and checked
    shots: ShotsSpec = ShotsBackend()  # the prepared-vs-target swap tests' finite-shot backend (its seed, shots)
    max_angle_qubits: int = Field(default=16, ge=1, le=20)  # angle encoding is checked up to this many features
    sweep_dims: list[int] = Field(default=[4, 8, 16, 32, 64], min_length=1)  # depth / 2q gates vs dimension
    seed: int = 0
    # the amplitude-loading circuit on hardware: a swap test of two copies of each of `device_samples` loaded
    # documents (exact F = 1; what a backend returns below 1 is the loading circuit's noise), on each backend
    device_samples: int = Field(default=4, ge=0)
    backends: list[CircuitBackend] = [ShotsBackend()]  # the full profile adds DeviceBackend()

    @model_validator(mode="after")
    def _dims(self) -> EncodeQuantum:
        if any(d < 2 or d > 1024 for d in self.sweep_dims):
            raise ValueError("encode.quantum.sweep_dims: each dimension must be in 2..1024")
        return self


class EncodeMaxDocs(Section):
    """A large corpus's stratified subsample: the most documents of each curated split that encode tokenizes and
    embeds (null: all). Every later stage reads encode's splits, so search, train, distill, deploy and the
    serving cost work on these; curate still deduplicates the whole corpus, and the monitor's reference is
    `reference` rows of curate's held-out sample."""

    train: int | None = Field(default=None, gt=0)
    val: int | None = Field(default=None, gt=0)
    test: int | None = Field(default=None, gt=0)
    reference: int | None = Field(default=None, gt=0)


class Encode(Section):
    max_length: int = Field(default=128, ge=8, le=4096)
    n_features: int = Field(default=16, ge=2)
    batch_size: int = Field(default=64, ge=1)
    max_docs: EncodeMaxDocs = EncodeMaxDocs()
    seed: int = 0  # the subsample's
    quantum: EncodeQuantum = EncodeQuantum()


class SearchSpace(Section):
    """The discrete space: hyperparameters and architecture choices (frozen layers, the head). A name
    outside these is a params error."""

    learning_rate: list[float] = [2e-5, 5e-5, 1e-4]
    epochs: list[int] = [1]  # [1, 2] for real runs: 2 epochs double train's time (304 s in make run)
    max_length: list[int] = [32, 64]
    batch_size: list[int] = [32]  # 16 doubles train's steps (~1 s each on 2 cores): over make run's budget
    frozen_layers: list[int] = [0, 2, 4]
    head: list[Literal["linear", "mlp", "quantum"]] = ["linear"]  # quantum: train.quantum_head's circuit

    @model_validator(mode="after")
    def _non_empty(self) -> SearchSpace:
        for name, values in self:
            if not values:
                raise ValueError(f"search.space.{name} is empty")
            if len(set(values)) != len(values):
                raise ValueError(f"search.space.{name} repeats a level: {values}")
        return self


SEARCHERS = ("random", "tpe", "fmqa")


class TPE(Section):
    """Optuna TPE (Optuna 5 defaults otherwise: multivariate for one objective)."""

    n_startup_trials: int | None = Field(default=None, ge=1)  # null: FMQA's initial design size (same start)


class FMQA(Section):
    """Factorization machine + QUBO (qlife/methods/fmqa.py)."""

    rank: int = Field(default=4, ge=1)  # K of the factorization machine
    n_init: int | None = Field(default=None, ge=1)  # initial design; null: the most levels of any choice
    domain_wall_min_levels: int | None = Field(default=None, ge=2)  # ordinal choices with >= this many levels
    # use domain-wall bits; null: one-hot everywhere
    epochs: int = Field(default=300, ge=1)  # full-batch Adam steps per fit
    learning_rate: float = Field(default=0.03, gt=0)
    weight_decay: float = Field(default=1e-3, ge=0)
    penalty_scale: float = Field(default=1.2, gt=1.0)  # constraint strength over the FM's largest bit flip
    window: int | None = Field(default=None, ge=2)  # fit on the last `window` evaluations; null: all
    subsample: int | None = Field(default=None, ge=2)  # or a random subset of this many
    # QAOA on the exact simulator for the default space's 12 bits; sa / path_integral / tabu / dwave beyond ~20 bits
    solver: QuboSampler = QAOASampler(p=1, restarts=2, maxiter=60, shots=1024)

    @field_validator("solver")
    @classmethod
    def _unconstrained(cls, v: Any) -> Any:
        if v.kind == "swap_tabu":
            raise ValueError("swap_tabu keeps exactly k bits set; FMQA's proposals have one-hot groups, not one "
                             "cardinality (use tabu, sa, path_integral, qaoa or dwave)")
        return v


FMQA_SIMULATED_MAX_BITS = {"exact": 24, "qaoa": 20}  # 2^n states enumerated / simulated per proposal


def fmqa_bits(space: dict[str, list], domain_wall_min_levels: int | None) -> int:
    """Bits of the FMQA encoding (qlife.methods.fmqa.BitEncoding): one-hot L per choice of L > 1 levels, L - 1
    for a domain-wall (ordinal, L >= domain_wall_min_levels) choice."""
    n = 0
    for levels in space.values():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels)
        if domain_wall_min_levels is not None and numeric and len(levels) >= domain_wall_min_levels:
            n += len(levels) - 1
        elif len(levels) > 1:
            n += len(levels)
    return n


class Search(Section):
    # one searcher or several, run side by side on the same evaluator and budget; the objective is
    # `quality.metric` on the proxy validation subset
    method: list[Literal["random", "tpe", "fmqa"]] = ["random", "tpe", "fmqa"]
    budget: int = Field(default=4, ge=1)  # evaluations per searcher (make run's budget: bench/search.py compares)
    # proposals per round: each searcher asks this many distinct configurations at once (FMQA: distinct low-energy
    # states of one QUBO; TPE: constant liar; random: more draws), evaluated in parallel through qlife.parallel
    # (orchestration); 1: ask, evaluate, tell one at a time
    batch: int = Field(default=1, ge=1)
    seed: int = 0
    # every searcher starts from the same seeded Latin design (FMQA's n_init points, trained once and charged to
    # each): the searchers differ only in their model-based proposals; false: each its own start
    shared_design: bool = True
    proxy_train_size: int = Field(default=128, ge=8)
    proxy_val_size: int = Field(default=128, ge=8)
    space: SearchSpace = SearchSpace()
    tpe: TPE = TPE()
    fmqa: FMQA = FMQA()

    @field_validator("method", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("method")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("search.method names no searcher")
        if len(set(v)) != len(v):
            raise ValueError(f"search.method repeats a searcher: {v}")
        return v

    @model_validator(mode="after")
    def _fmqa_fits(self) -> Search:
        space = self.space.model_dump()
        most = max(len(v) for v in space.values())
        fm = self.fmqa
        if "fmqa" not in self.method:
            return self
        if fm.n_init is not None and fm.n_init < most:
            raise ValueError(f"search.fmqa.n_init = {fm.n_init} cannot set every bit: a choice of search.space has "
                             f"{most} levels (use >= {most}, or null)")
        limit = FMQA_SIMULATED_MAX_BITS.get(fm.solver.kind)
        bits = fmqa_bits(space, fm.domain_wall_min_levels)
        if limit is not None and bits > limit:
            raise ValueError(f"search.fmqa.solver: {fm.solver.kind} works on all 2^n states and search.space encodes "
                             f"{bits} bits (limit {limit}); use sa, path_integral, tabu or dwave, or "
                             "domain_wall_min_levels to spend fewer bits")
        return self


class QuantumHead(Section):
    """train.head: quantum (qlife.methods.qhead): pooled output -> Linear(h, qubits) -> pi tanh -> `layers` x
    (RY re-upload, `rotations`, CNOTs on `entanglement` pairs) -> <Z> per qubit -> Linear(qubits, labels)."""

    qubits: int = Field(default=4, ge=1, le=16)
    layers: int = Field(default=2, ge=1)
    entanglement: Literal["linear", "ring", "full"] = "ring"
    rotations: list[Literal["rx", "ry", "rz"]] = Field(default=["ry", "rz"], min_length=1)
    init_scale: float = Field(default=0.1, ge=0)  # circuit weights ~ U(-1, 1) * init_scale * pi
    seed: int = 0
    # input angles = angle_scale * pi * tanh(projection): 0.25 keeps `layers` re-uploads of an angle within the
    # range where <Z> is monotonic in it (1.0 learnt to 0.61 test accuracy on frozen SST-2 in 10 epochs, 0.25: 0.77)
    angle_scale: float = Field(default=0.25, gt=0)
    # before the first encoding: plus (H on every qubit: <Z> = -sin(angle), odd in the projection) | zero (|0>:
    # cos(angle), even: the projection's sign is lost at initialisation)
    start: Literal["plus", "zero"] = "plus"
    # AdamW's learning rate for the circuit weights (train.quantum_optimizer: adam): angles need larger steps
    # than a pretrained encoder
    learning_rate: float = Field(default=1e-2, gt=0)
    # the head's classical parameters (projection, readout) when train.head_learning_rate is null: at the
    # encoder's 1e-4 the fresh projection did not learn through tanh and the circuit in make run's 59 steps
    # (test accuracy 0.69 against the linear head's 0.89; head-only on the same features: 0.92)
    head_learning_rate: float = Field(default=3e-3, gt=0)
    qng_learning_rate: float = Field(default=0.05, gt=0)  # quantum_optimizer: qng
    qng_regularization: float = Field(default=1e-3, ge=0)  # Tikhonov term added to the metric
    qng_metric_rows: int = Field(default=16, ge=1)  # rows of each batch the metric is averaged over
    freeze_circuit: bool = False  # the ablation: the circuit stays at its initialisation

    def head_config(self) -> dict:
        return {k: getattr(self, k) for k in ("qubits", "layers", "entanglement", "rotations", "init_scale", "seed",
                                              "angle_scale", "start")}

    def training(self, optimizer: str) -> dict:
        """TrainConfig's fields for the circuit weights."""
        return {"quantum_optimizer": optimizer, "circuit_learning_rate": self.learning_rate,
                "quantum_head_learning_rate": self.head_learning_rate,
                "qng_learning_rate": self.qng_learning_rate, "qng_regularization": self.qng_regularization,
                "qng_metric_rows": self.qng_metric_rows, "freeze_circuit": self.freeze_circuit}


class Lora(Section):
    """LoRA adapters (peft) on the teacher's linear layers; merged into the weights after training."""

    r: int = Field(default=8, ge=1)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    # module names (suffixes) that get adapters; null: every attention and MLP projection of the architecture
    target_modules: list[str] | None = None


class Train(Section):
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    # a text's feature for curate, encode, distill and monitor: mean of the last hidden states | last (the last
    # real token's) | auto: last for a decoder (Llama, Qwen2, Mistral, GPT-2), mean for an encoder
    pooling: Literal["auto", "mean", "last"] = "auto"
    # full: every weight trained (AdamW) | lora: adapters only, merged after training | auto: lora for a
    # decoder, full for an encoder
    finetune: Literal["auto", "full", "lora"] = "auto"
    lora: Lora = Lora()
    # refuse a model whose estimated training memory exceeds this share of the machine's available memory
    max_memory_share: float = Field(default=0.8, gt=0, le=1)
    use_search: bool = True
    learning_rate: float = Field(default=5e-5, gt=0)
    epochs: int = Field(default=2, ge=1)
    max_length: int = Field(default=64, ge=8)
    batch_size: int = Field(default=32, ge=1)
    frozen_layers: int = Field(default=0, ge=0)
    head: Literal["linear", "mlp", "quantum"] = "linear"  # classification head (qlife.classifiers.set_head)
    quantum_head: QuantumHead = QuantumHead()
    # the circuit weights of a quantum head: adam (AdamW, quantum_head.learning_rate) | qng (quantum natural
    # gradient, block-diagonal Fubini-Study metric: qlife.quantum.qng); the classical parameters keep AdamW
    quantum_optimizer: Literal["adam", "qng"] = "adam"
    # the head's classical parameters (`classifier.*`): null = learning_rate for linear / mlp heads and
    # quantum_head.head_learning_rate for a quantum head
    head_learning_rate: float | None = Field(default=None, gt=0)
    # validation loss this many times during training (steps to the best validation loss; 0: never)
    eval_points: int = Field(default=4, ge=0)
    # same-run head baselines on the fine-tuned encoder's pooled features (linear, param-matched MLP, frozen
    # circuit when the head is quantum): head-only training, seconds
    head_baselines: bool = True
    # balanced: cross-entropy weighted by inverse class frequency (imbalanced labels); none: plain
    class_weight: Literal["balanced", "none"] = "balanced"
    max_train_docs: int | None = Field(default=None, gt=0)
    # batches of similar length in random order (less padding, faster steps); false: plain random batches
    group_by_length: bool = True
    seed: int = 0


class StaticInput(Section):
    """The cheap student input (qlife.methods.static_embed): the teacher's token vectors, PCA, SIF-weighted mean."""

    dims: int = Field(default=64, ge=1)
    vocabulary: Literal["full", "corpus"] = "corpus"  # corpus: only the training texts' tokens get a vector (full)
    sif_a: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=1024, ge=1)


class Distill(Section):
    method: Literal["classical", "quantum", "both"] = "both"
    # student inputs: teacher (the fine-tuned teacher's pooled hidden state: the teacher runs at serving time)
    # and static (static token embeddings: no encoder at serving time); every student trains on each
    inputs: list[Literal["teacher", "static"]] = Field(default=["teacher", "static"], min_length=1)
    static: StaticInput = StaticInput()
    alpha: float = Field(default=0.5, ge=0, le=1)
    temperature: float = Field(default=2.0, gt=0)
    hidden: int = Field(default=32, ge=1)
    epochs: int = Field(default=60, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)
    patience: int = Field(default=10, ge=1)
    seed: int = 0
    # VQC student (method quantum/both): projection -> angle encoding -> ansatz -> <Z> -> head
    qubits: int = Field(default=11, ge=1, le=20)
    layers: int = Field(default=2, ge=1)
    entanglement: Literal["linear", "ring", "full"] = "linear"
    rotations: list[Literal["rx", "ry", "rz"]] = Field(default=["ry", "rz"], min_length=1)
    reupload: bool = False
    readout: Literal["expval", "probs"] = "expval"
    init_scale: float = Field(default=0.1, ge=0)  # circuit weights ~ U(-1, 1) * init_scale * pi
    vqc_learning_rate: float = Field(default=2e-3, gt=0)  # angles are periodic: a gentler step than the MLP
    vqc_batch_size: int = Field(default=128, ge=1)  # the simulator is overhead-bound at small batches
    vqc_epochs: int = Field(default=12, ge=1)  # the full profile: 40
    circuit_learning_rate: float | None = Field(default=None, gt=0)  # the circuit's angles (None: vqc_learning_rate)
    projection: Literal["learned", "pca"] = "learned"  # pca: fixed whitened principal components, not trained
    # the same VQC with its circuit frozen at initialisation and its classical twin (cos of the angles), in the
    # same run on the same data and seed: does the circuit do any of the work?
    ablations: bool = True
    # finite-shot evaluation on the whole test split: each a `shots` backend spec ({kind: shots, shots: 256}) that
    # samples the simulator's exact probabilities (the report keys them by shot count: one spec per count)
    shots: list[ShotsSpec] = Field(default=[ShotsBackend(shots=1024)], min_length=1)  # full: 256, 1024, 4096
    # test inputs on which exact, every shot count and every backend below are compared (0: skip the backends);
    # a device model costs ~2-3 s per input at 11 qubits here (calibrated noise on every gate), aer ~0.3 s
    hardware_samples: int = Field(default=4, ge=0)  # the full profile: 20
    backends: list[CircuitBackend] = [AerBackend()]  # the full profile adds DeviceBackend()
    qasm_check_samples: int = Field(default=20, ge=0)  # the full profile: 100

    @model_validator(mode="after")
    def _distinct_shots(self) -> Distill:
        counts = [s.shots for s in self.shots]
        if len(set(counts)) != len(counts):
            raise ValueError(f"distill.shots: one spec per shot count, got counts {counts}")
        return self


class Quality(Section):
    """The one quality metric: search objective, promotion gate, headlines."""

    metric: Literal["macro_f1", "accuracy", "f1"] = "macro_f1"
    label: str | None = None  # metric f1: the class (label name) whose F1 counts

    @model_validator(mode="after")
    def _label(self) -> Quality:
        if self.metric == "f1" and not self.label:
            raise ValueError("quality.metric 'f1' needs quality.label (a class name)")
        if self.metric != "f1" and self.label:
            raise ValueError("quality.label is only used with quality.metric 'f1'")
        return self

    @property
    def name(self) -> str:
        return f"f1_{self.label}" if self.metric == "f1" else self.metric


class Gate(Section):
    # the candidate's quality metric must beat the majority-class baseline on the same test split by this much
    min_margin_over_majority: float = Field(default=0.05, ge=0, le=1)
    min_quality: float = Field(default=0.0, ge=0, le=1)  # and reach this absolute floor
    max_drop_vs_champion: float = Field(default=0.02, ge=0, le=1)
    # no promotion while this run's monitor has an alarmed window that is not trained on nor acknowledged
    # (qlife.monitoring.blocking)
    block_on_open_drift: bool = True
    # a window only the stream alarm flagged does not block while every estimated quality on it held
    quality_decides: bool = True


class Promote(Section):
    """`python -m qlife.promote`, after `dvc repro` (never inside a DVC stage): registry and aliases."""

    register_models: bool = True
    gate: Gate = Gate()
    student_model_name: str = "qlife-student"
    vqc_model_name: str = "qlife-vqc-student"
    pruned_model_name: str = "qlife-teacher-pruned"
    compressed_model_name: str = "qlife-teacher-compressed"


PRUNE_METHODS = ("magnitude", "activation", "wanda", "random", "diagonal", "qubo")
# transformer blocks: influence (ShortGPT's Block Influence) instead of activation / wanda (defined on units)
BLOCK_METHODS = ("influence", "magnitude", "random", "diagonal", "qubo")


class PruneUnits(Section):
    """One unit kind (attention heads or FFN neurons): the sparsities evaluated (fraction removed), how the
    budget is spread, and the QUBO solver."""

    sparsity: list[float] = [0.5]
    # layer: the same fraction of every layer, one QUBO per layer; global: one QUBO over every layer's units
    # (the layer budget chosen by the QUBO; heads only: FFN neurons stay per layer, config-uniform)
    scope: Literal["layer", "global"] = "layer"
    solver: QuboSampler = TabuSampler(num_reads=1, timeout_ms=300)

    @model_validator(mode="after")
    def _sparsities(self) -> PruneUnits:
        if not self.sparsity or any(not 0 <= v < 1 for v in self.sparsity):
            raise ValueError(f"sparsity must be a non-empty list of fractions in [0, 1); got {self.sparsity}")
        return self


class PruneBlocks(Section):
    """Transformer blocks (layers) removed whole (qlife.methods.blocks): one selection over the stack, k =
    round(sparsity x L) blocks removed (Python's round: half to even), scored by `methods` (their own list: Block
    Influence replaces activation / wanda). The QUBO's costs: each block's and each pair's removal measured on
    the calibration documents, 1 + L + L(L-1)/2 forward passes (`objective`: loss increase, or KL from the full
    model's outputs)."""

    # the full profile: true (measured on the quick profile's MiniLM teacher under load: +230 s of deploy, 200 s of
    # them the 22 calibration passes; the quick profile allows ~3 s)
    enabled: bool = False
    sparsity: list[float] = [0.5]
    methods: list[Literal["influence", "magnitude", "random", "diagonal", "qubo"]] = list(BLOCK_METHODS)
    objective: Literal["loss", "kl"] = "loss"
    solver: QuboSampler = QAOASampler(p=1, restarts=2, maxiter=60, shots=1024)  # <= 20 blocks: a qubit each

    @model_validator(mode="after")
    def _sparsities(self) -> PruneBlocks:
        if not self.sparsity or any(not 0 <= v < 1 for v in self.sparsity):
            raise ValueError(f"sparsity must be a non-empty list of fractions in [0, 1); got {self.sparsity}")
        if not self.methods:
            raise ValueError("methods must name at least one block selector")
        return self


class PruneApply(Section):
    """The pruned model deploy saves and promotion serves: one method at one sparsity per unit kind (each must
    be among the evaluated ones)."""

    method: Literal["magnitude", "activation", "wanda", "random", "diagonal", "qubo"] = "qubo"
    heads: float = Field(default=0.5, ge=0, lt=1)
    ffn: float = Field(default=0.5, ge=0, lt=1)
    blocks: float = Field(default=0.0, ge=0, lt=1)  # 0: no block removed


class ServingCost(Section):
    """Serving cost of the teacher and of every candidate, through the served pyfunc (qlife.servecost)."""

    enabled: bool = True
    requests: int = Field(default=16, ge=1)  # (full: 32) batch-1 requests timed per model (texts of the test split)
    batch: int = Field(default=32, ge=1)
    # each model in a fresh process (its peak memory measured, ~7 s of start-up per model on 2 cores); false: in
    # this process, one after another (no peak memory: memory an earlier model freed is reused)
    isolate: bool = False  # the full profile: True


COMPRESS_METHODS = ("mpo", "mpo_disentangled", "svd", "prune")
CompressMethod = Literal["mpo", "mpo_disentangled", "svd", "prune"]


class CompressApply(Section):
    """The compressed model deploy saves and offers for promotion (an evaluated method and ratio)."""

    method: Literal["mpo", "mpo_disentangled", "svd"] = "mpo_disentangled"
    ratio: float = Field(default=3.0, ge=1)


class Compress(Section):
    """Tensor-network compression of the teacher beside pruning (qlife.methods.tensornet): each target Linear
    layer as an MPO (TT-SVD), an MPO after a disentangler circuit, or a truncated SVD, at `ratios` (dense
    parameters / compressed, on the compressed layers); `prune` removes FFN neurons (deploy.apply.method's
    selector) down to the same parameter count. Every method: the same layer-wise fit and recovery fine-tune."""

    enabled: bool = True
    methods: list[CompressMethod] = ["mpo", "mpo_disentangled", "prune"]  # the full profile: + svd
    ratios: list[float] = [3.0]
    targets: list[Literal["ffn", "attention"]] = ["ffn"]
    sites: int = Field(default=3, ge=2, le=8)  # MPO sites (cores) per layer
    disentangler_layers: int = Field(default=1, ge=1)  # brick-wall layers of two-qubit gates (full: 2)
    calib_tokens: int = Field(default=512, ge=16)  # real tokens of the calibration docs the fit sees (full: 1024)
    fit_steps: int = Field(default=12, ge=0)  # (full: 50)  # layer-wise Adam steps on the relative output error
    fit_learning_rate: float = Field(default=1e-3, gt=0)
    disentangler_learning_rate: float = Field(default=1e-2, gt=0)
    recovery_steps: int = Field(default=3, ge=0)  # (full: 10) whole-model fine-tune steps after the fit, every method
    recovery_learning_rate: float = Field(default=5e-5, gt=0)
    apply: CompressApply = CompressApply()

    @model_validator(mode="after")
    def _apply_is_evaluated(self) -> Compress:
        if not self.methods or not self.ratios or any(r < 1 for r in self.ratios):
            raise ValueError(f"methods and ratios must be non-empty, ratios >= 1; got {self.methods}, {self.ratios}")
        if not self.targets:
            raise ValueError("targets must name ffn and/or attention")
        if self.enabled and (self.apply.method not in self.methods
                             or not any(abs(self.apply.ratio - r) < 1e-9 for r in self.ratios)):
            raise ValueError(f"apply ({self.apply.method} at {self.apply.ratio}) is not among methods "
                             f"{self.methods} x ratios {self.ratios}")
        return self


class Deploy(Section):
    serving: ServingCost = ServingCost()
    compress: Compress = Compress()
    methods: list[Literal["magnitude", "activation", "wanda", "random", "diagonal", "qubo"]] = list(
        PRUNE_METHODS)
    heads: PruneUnits = PruneUnits(solver=QAOASampler(p=1, restarts=2, maxiter=60, shots=1024))
    ffn: PruneUnits = PruneUnits(solver=SwapTabuSampler(timeout_ms=1000))
    blocks: PruneBlocks = PruneBlocks()
    apply: PruneApply = PruneApply()
    # the QUBO's removal cost: reconstruction (exact relative squared error of each layer's output) | fisher
    # (second-order Taylor model of the loss, the empirical Fisher of per-example gate gradients)
    objective: Literal["reconstruction", "fisher"] = "reconstruction"
    calib_docs: int = Field(default=128, ge=1)  # train documents: activations and per-example gate gradients
    recovery_steps: int = Field(default=0, ge=0)  # a short fine-tune after pruning, the same for every method
    recovery_learning_rate: float = Field(default=3e-5, gt=0)
    energy_samples: int = Field(default=2, ge=0)  # QUBO low-energy selections scored on val (full: 4)
    energy_val_docs: int = Field(default=128, ge=1)  # validation documents each of those is scored on
    penalty_scale: float = Field(default=1.5, gt=1)  # exactly-k penalty = this x the largest one-flip change
    seed: int = 0

    @model_validator(mode="after")
    def _apply_is_evaluated(self) -> Deploy:
        if self.apply.method not in self.methods:
            raise ValueError(f"apply.method {self.apply.method!r} is not in methods {self.methods}")
        for kind in ("heads", "ffn"):
            value, units = getattr(self.apply, kind), getattr(self, kind)
            if value > 0 and not any(abs(value - v) < 1e-9 for v in units.sparsity):
                raise ValueError(f"apply.{kind} = {value} is not among {kind}.sparsity {units.sparsity}")
        if self.apply.blocks > 0:
            b = self.blocks
            if not b.enabled or not any(abs(self.apply.blocks - v) < 1e-9 for v in b.sparsity):
                raise ValueError(f"apply.blocks = {self.apply.blocks} needs blocks.enabled and a value among "
                                 f"blocks.sparsity {b.sparsity}")
            if self.apply.method not in b.methods:
                raise ValueError(f"apply.method {self.apply.method!r} is not in blocks.methods {b.methods}")
        if self.ffn.scope == "global":
            raise ValueError("ffn.scope: global is not supported (a config has one intermediate size: FFN "
                             "neurons are pruned per layer); use layer")
        return self


# rbf: median-heuristic RBF MMD on every feature (alibi-detect MMDDrift's default); ks: per-feature KS,
# Bonferroni; the rest see the first monitor.quantum.features features: rbf_tuned (the classical twin: RBF
# bandwidth tuned by the power criterion on a held-out half), quantum_fidelity / quantum_projected (the same
# rule over monitor.quantum.bandwidths), fuse (MMD-FUSE over Gaussian + Laplace bandwidths), fuse_quantum
# (the same plus quantum fidelity kernels)
MONITOR_TESTS = ("rbf", "ks", "rbf_tuned", "quantum_fidelity", "quantum_projected", "fuse", "fuse_quantum",
                 "domain_classifier", "text_domain_classifier", "rff")
MonitorTest = Literal["rbf", "ks", "rbf_tuned", "quantum_fidelity", "quantum_projected", "fuse", "fuse_quantum",
                      "domain_classifier", "text_domain_classifier", "rff"]


class MonitorQuantum(Section):
    """The quantum kernels (qlife.quantum.kernels) on the first `features` standardised projected features (one
    qubit each)."""

    features: int = Field(default=8, ge=1, le=20)
    kind: Literal["reuploading", "zz", "angle"] = "reuploading"
    reps: int = Field(default=2, ge=1)
    backend: CircuitBackend = StatevectorBackend()
    bandwidths: list[float] = [0.1, 0.2, 0.5, 1.0]  # the grid the tuned quantum tests choose from
    # circuit-running backends: refuse a window whose kernels need more circuits than this (pairs: (n + m)^2 / 2)
    max_circuits: int | None = Field(default=100_000, ge=1)

    @field_validator("bandwidths")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(b <= 0 for b in v):
            raise ValueError(f"bandwidths must be a non-empty list of positive numbers; got {v}")
        return v


class MonitorFuse(Section):
    kernels: list[Literal["gaussian", "laplace"]] = ["gaussian", "laplace"]
    n_bandwidths: int = Field(default=4, ge=2)  # per classical kernel (the paper uses 10; 4 keeps make run short)
    quantum_bandwidths: list[float] = [0.2, 0.5]  # fidelity kernels fuse_quantum adds


class MonitorOCSVM(Section):
    """Per-document anomaly scores: a one-class SVM on the reference (a fixed subsample of `max_ref` rows)."""

    kernels: list[Literal["rbf", "quantum_fidelity", "quantum_projected"]] = ["rbf", "quantum_fidelity"]
    nu: float = Field(default=0.05, gt=0, le=1)  # ~ the share of the reference itself flagged
    bandwidth: float = Field(default=0.5, gt=0)  # the quantum kernels' bandwidth (fitted on the reference only)
    max_ref: int = Field(default=500, ge=10)


class MonitorStream(Section):
    """The alarm over time (qlife.methods.sequential, qlife/monitoring.py): each new window's `statistic` is ranked
    among the windows seen since the detector was last reset (conformal p-values: exactly uniform while the traffic
    is exchangeable, whatever the reference), turned into e-values and summed in a Shiryaev-Roberts detector whose
    threshold is simulated so that P(a false alarm within `period` windows) <= `false_alarms_per_period`. Its state
    lives in `paths.state` between runs; a new reference (a retrained model) starts it afresh."""

    # the window's number, read from `window_rows` rows of each window drawn by its content: residual_top (the mean
    # of the `top` largest log residuals, monitor.features pca+residual: chosen on bench/monitoring.py's tuning
    # streams among the feature statistics), knn_divergence (the kNN estimate of KL(window || reference), k = `k`,
    # on the projected features), knn_divergence+residual_top (both, one conformal p-value:
    # qlife.methods.sequential), new_words (the records holding a new word, outside the curated training split's
    # words, that recurs in >= `min_docs` of them: qlife.methods.window_stats), new_words+residual_top (both, one
    # conformal p-value; the default: the only one that finds a new vocabulary as well as a new topic,
    # bench/monitoring.py), or over the whole window the p-value of monitor.alarm's test or the RBF MMD^2
    statistic: Literal["residual_top", "knn_divergence", "knn_divergence+residual_top", "new_words",
                       "new_words+residual_top", "p_value", "mmd2"] = "new_words+residual_top"
    k: int = Field(default=20, ge=1)
    min_docs: int = Field(default=2, ge=1)  # new_words: a new word recurs in at least this many of the rows'
                                            # records (bench/monitoring.py's tuning choice)
    top: int = Field(default=20, ge=1)  # residual_top: the largest log residuals averaged (10% of window_rows)
    # knn_divergence: every window is cut to this many rows (the statistic's scale depends on it; smaller windows
    # are not counted)
    window_rows: int = Field(default=200, ge=10)
    period: int = Field(default=720, ge=1)  # windows: 720 = 30 days of hourly windows
    false_alarms_per_period: float = Field(default=0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _top_fits(self) -> MonitorStream:
        if "residual_top" in self.statistic and self.top > self.window_rows:
            raise ValueError(f"monitor.stream.top = {self.top} exceeds monitor.stream.window_rows = "
                             f"{self.window_rows}: the largest `top` of `window_rows` residuals are averaged")
        return self


class MonitorQuality(Section):
    """Quality without labels (qlife.methods.cbpe): each model's confidences calibrated on the validation split,
    its expected accuracy per window with a 95% interval (beside the truth where a window has labels)."""

    # teacher: the fine-tuned classifier; student / student_static: distill's classical students (the served ones)
    models: list[Literal["teacher", "student", "student_static"]] = ["teacher", "student_static"]
    calibration: Literal["temperature", "isotonic", "none"] = "temperature"
    # a label shift: each window's class shares estimated and the confidences adjusted to them (qlife.methods.cbpe);
    # bbse: from its predicted-class counts through the validation confusion matrix (Lipton et al. 2018); em: the
    # EM of Saerens et al. 2002 (wanders where the model is weak); none: as calibrated. bench.cbpe compares them
    prior_shift: Literal["bbse", "em", "none"] = "bbse"
    # a quality alarm: the interval's upper end below the validation accuracy minus this
    max_drop: float = Field(default=0.05, ge=0, lt=1)


class Monitor(Section):
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # p-value floor 1 / (n_permutations + 1); its Monte Carlo error ~ sqrt(p (1 - p) / n_permutations)
    n_permutations: int = Field(default=1000, ge=10)  # the full profile: 2000
    max_ref: int | None = Field(default=600, ge=10)  # null: the whole reference (curate's held-out sample)
    ref_seed: int = 0  # the fixed subsample when max_ref cuts the reference (chosen once, not per window)
    seed: int = 0  # permutations (the same for every test of a window)
    tests: list[MonitorTest] = ["rbf", "ks", "rbf_tuned", "quantum_fidelity", "fuse", "domain_classifier",
                                "rff"]  # full: MONITOR_TESTS
    alarm: MonitorTest = "rbf"  # the test whose decision raises the alarm (and the retrain flag)
    rbf_grid: list[float] = [0.25, 0.5, 1.0, 2.0, 4.0]  # rbf_tuned: bandwidths in units of the median distance
    split_seed: int = 0  # the tuned tests' tuning / test halves (the same for every tuned test)
    quantum: MonitorQuantum = MonitorQuantum()
    fuse: MonitorFuse = MonitorFuse()
    ocsvm: MonitorOCSVM = MonitorOCSVM()
    # windows of more records than this skip the quadratic tests (rbf, tuned, quantum, fuse): ks,
    # domain_classifier and rff decide (a day's traffic, 10^5 records, in seconds)
    linear_above: int = Field(default=5000, ge=10)
    # the features every window is tested on: pca (encode's projected features) or pca+residual (and the log
    # residual, what the projection drops: qlife.methods.projection.Residual; new topics and new words lie off the
    # training split's subspace, often near the centre of the projected features: bench/doc_scores.py,
    # bench/monitoring.py)
    features: Literal["pca", "pca+residual"] = "pca+residual"
    stream: MonitorStream = MonitorStream()
    quality: MonitorQuality = MonitorQuality()
    # what raises the monitor's alarm (decision.alarms: the flow retrains on it, the gate reads it):
    # stream = the stream alarm or an estimated quality drop; per_window = monitor.alarm's test on each window
    decide: Literal["stream", "per_window"] = "stream"

    @model_validator(mode="after")
    def _alarm_is_run(self) -> Monitor:
        if not self.tests or len(set(self.tests)) != len(self.tests):
            raise ValueError(f"monitor.tests must name each test once; got {self.tests}")
        if self.alarm not in self.tests:
            raise ValueError(f"monitor.alarm {self.alarm!r} is not among monitor.tests {self.tests}")
        if "residual" in self.stream.statistic and self.features != "pca+residual":
            raise ValueError(f"monitor.stream.statistic {self.stream.statistic!r} reads the residual: it needs "
                             "monitor.features: pca+residual")
        return self


class Tracking(Section):
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "qlife"
    # where a new experiment stores artifacts; null: <project>/mlartifacts. A store shared by two clones keeps the
    # first clone's location: the second is refused with a message instead of writing into the other folder
    artifact_location: str | None = None


class Ledger(Section):
    energy: Literal["cpu_model", "codecarbon"] = "cpu_model"
    # cpu_model: E = cpu_seconds * cpu_watts_per_core + wall_seconds * base_watts (see qlife/ledger.py)
    cpu_watts_per_core: float = Field(default=10.0, ge=0)
    base_watts: float = Field(default=5.0, ge=0)


class Orchestration(Section):
    """Where work runs (qlife/parallel.py, flows/): never what it computes. Outputs are byte-identical for any
    of these settings, so no DVC stage depends on this section (tests/test_parallel.py holds that)."""

    # Prefect flows: thread (ThreadPoolTaskRunner) | dask (prefect-dask's DaskTaskRunner: dask_address, or a
    # local cluster of `workers` processes)
    task_runner: Literal["thread", "dask"] = "thread"
    # tcp://host:8786: the stages' parallel work (curate's shards and clusters, monitor's windows, deploy's
    # per-layer QUBOs) and the flows' Dask tasks run on this cluster
    dask_address: str | None = None
    workers: int = Field(default=1, ge=1)  # without an address: 1 = serial in the stage's process; n = n processes
    local: Literal["pool", "dask"] = "pool"  # the local workers: a process pool, or a Dask LocalCluster
    threads_per_worker: int = Field(default=0, ge=0)  # BLAS / torch threads per worker; 0: cores // workers
    retries: int = Field(default=1, ge=0)

    @field_validator("dask_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(tcp|tls|inproc|ucx)://[^/\s]+$", v):
            raise ValueError(f"orchestration.dask_address must look like tcp://host:8786, got {v!r}")
        return v


class Inference(Section):
    """How the teacher encoder runs on the CPU wherever it embeds texts through qlife.models.load_encoder /
    cached_encoder (curate's teacher embedder; encode, monitor and serving where they pass these): qlife/inference.py.
    torch float32 is the model as loaded; onnxruntime exports it once (cached per model content); int8: dynamic
    quantization of its linear layers. bench/embedders.py measures each one's speed and quality cost."""

    runtime: Literal["torch", "onnxruntime"] = "torch"
    precision: Literal["float32", "int8"] = "float32"


# every stage seed that params.yaml leaves out or sets to null takes the root `seed` (solver specs keep their own)
SEED_PATHS = (("curate", "generator", "seed"), ("curate", "seed"), ("encode", "seed"), ("encode", "quantum", "seed"),
              ("search", "seed"),
              ("train", "seed"), ("train", "quantum_head", "seed"), ("distill", "seed"), ("deploy", "seed"),
              ("monitor", "seed"), ("monitor", "ref_seed"), ("monitor", "split_seed"))


class Params(Section):
    seed: int = 0  # the root seed: the same params give the same metrics
    # the profile applied over the sections below: `profiles[profile]` (dotted keys), applied by parse_params;
    # quick: the sections as written (`make run`); full: the whole comparison grid (`make run PROFILE=full`)
    profile: str = "quick"
    profiles: dict[str, dict[str, Any]] = {}
    paths: Paths = Paths()
    curate: Curate = Curate()
    encode: Encode = Encode()
    search: Search = Search()
    train: Train = Train()
    distill: Distill = Distill()
    deploy: Deploy = Deploy()
    monitor: Monitor = Monitor()
    quality: Quality = Quality()
    promote: Promote = Promote()
    tracking: Tracking = Tracking()
    ledger: Ledger = Ledger()
    orchestration: Orchestration = Orchestration()
    inference: Inference = Inference()

    @model_validator(mode="before")
    @classmethod
    def _derive_seeds(cls, data: Any) -> Any:
        """Fill each stage seed that is missing or null with the root seed (a section given as something other
        than a mapping is left for validation to name)."""
        if not isinstance(data, dict):
            return data
        root = data.get("seed", 0)
        data = dict(data)
        for *sections, key in SEED_PATHS:
            node = data
            for name in sections:
                child = node.get(name, {}) if isinstance(node, dict) else None
                if child is None:
                    child = {}
                if not isinstance(child, dict):
                    break
                node[name] = child = dict(child)
                node = child
            else:
                if node.get(key) is None:
                    node[key] = root
        return data


class ParamsError(ValueError):
    """A params file that does not fit the schema; the message names each bad key."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {key}: {e['msg']}" + (f" (got {e['input']!r})" if e["type"] != "missing" else ""))
    return "invalid params:\n" + "\n".join(lines)


def _set(data: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ParamsError(f"invalid params:\n  {where}: {dotted!r} goes through {key!r}, which is not a section")
        node[key] = child = dict(child)
        node = child
    node[leaf] = value


def apply_profile(data: dict[str, Any]) -> dict[str, Any]:
    """The params with `profiles[profile]` (dotted keys) set over the sections; a profile that is not defined,
    or a key it sets that is not a param, is a ParamsError naming it."""
    data = dict(data)
    name, profiles = data.get("profile", "quick"), data.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict | None) for v in profiles.values()):
        raise ParamsError("invalid params:\n  profiles: a mapping of profile name -> {dotted.key: value}")
    if name != "quick" and name not in profiles:
        raise ParamsError(f"invalid params:\n  profile: {name!r} is not defined (known: "
                          f"{', '.join(sorted({'quick', *profiles}))})")
    for dotted, value in (profiles.get(name) or {}).items():
        _set(data, str(dotted), value, f"profiles.{name}")
    return data


def parse_params(data: dict[str, Any] | None, profile: bool = True) -> Params:
    """Validated params; `profile`: apply `profiles[profile]` first (False: `data` already has it applied)."""
    data = data or {}
    try:
        return Params.model_validate(apply_profile(data) if profile else data)
    except ValidationError as err:
        msg = _format(err)
        if profile and data.get("profile", "quick") in (data.get("profiles") or {}):
            msg += f"\n  (profile {data['profile']!r} sets: {', '.join(data['profiles'][data['profile']] or {})})"
        raise ParamsError(msg) from None


def read_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    return parse_params(data)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """For entry points: read and validate, or print the problem and exit 2 before any work."""
    try:
        return read_params(path)
    except ParamsError as err:
        # a refused `dvc exp run -S key=value` leaves its value in params.yaml: say how to get back
        print(f"{path}: {err}\nNothing was run. Fix the value, or go back to the committed params with "
              f"`git checkout -- {path}`.", file=sys.stderr)
        raise SystemExit(2) from None


def with_overrides(params: Params, overrides: dict[str, Any]) -> Params:
    """A validated copy with dotted-key overrides, e.g. {"train.epochs": 1}."""
    data = params.model_dump()
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_params(data, profile=False)  # the dump holds the profile's values already
