"""Stage 7's drift tests behind one interface: each compares a live window with the training reference and
decides on a p-value from the permutations every test of the window shares.

A test is a `DriftTest` built from the `monitor` params section; `run(window)` tunes where the test tunes (`tune`:
on the tuning half of the split fixed by `monitor.split_seed`), then computes its statistic and its p-value
(`test`: from `window.perms`, the same splits for every test on the same pooled sample), and decides
(p < `monitor.alpha`). `REGISTRY` maps the names `monitor.tests` may hold to the classes; `drift_tests(section)`
builds them in that order. An instance tests one window: it keeps what it tuned and the quantum kernels it ran
(their circuits are charged to the ledger).

- rbf: MMD, RBF kernel at the median-heuristic bandwidth, on the `max_ref` reference subsample (`detect_drift`)
- ks: the largest per-feature Kolmogorov-Smirnov statistic on the whole reference, its p-value from the shared
  permutations (Bonferroni over the features' p-values beside it; alone above `monitor.linear_above` records)
- rbf_tuned: MMD, RBF bandwidth (grid `rbf_grid` in units of the median distance) tuned by the power criterion
- quantum_fidelity, quantum_projected: the same rule over `quantum.bandwidths` with a quantum kernel
- fuse, fuse_quantum: MMD-FUSE over Gaussian and Laplace bandwidths (plus fidelity kernels for fuse_quantum)
- domain_classifier: a cross-fitted reference-vs-window classifier (qlife.methods.domain_classifier): its AUC with a
  permutation p-value, and per-document scores (`Outcome.scores`: which documents made the window drift)
- text_domain_classifier: the domain classifier on the texts (qlife.methods.text_domain_classifier: TF-IDF words,
  cross-fitted ridge), when the window carries its texts and the reference's (`Window.texts`, `reference_texts`)
- rff: MMD on random Fourier features (qlife.methods.linear_mmd), linear in the rows: a day's window of 10^5

Every test but ks, domain_classifier and rff is quadratic in the pooled rows (`DriftTest.quadratic`): on a window
of more than `monitor.linear_above` records it is skipped with the reason, and the linear tests decide.

The tuned, quantum and FUSE tests see the first `quantum.features` columns (one qubit each).
Adding a test: one subclass here, one line in `REGISTRY`, its name in `MonitorTest` (qlife/params.py).

`anomaly_scores(section, reference, window)`: per-document one-class SVM scores for each `monitor.ocsvm` kernel.
`subsample_decisions`: each test's decision on seeded halves of a window (the verdict's spread); a quantum test
names its classical twin (`DriftTest.twin`: rbf_tuned for the tuned quantum kernels, fuse for fuse_quantum), and
`judged_tests(section)` picks the verdict's quantum test, its twin and the classical candidates.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy.stats import ks_2samp

from qlife.methods.domain_classifier import domain_classifier_test
from qlife.methods.drift import (
    DriftReport,
    detect_drift,
    ks_max_permutation_test,
    median_bandwidth,
    rbf_kernel,
    reference_subsample,
)
from qlife.methods.linear_mmd import rff_mmd_test
from qlife.methods.text_domain_classifier import text_domain_classifier_test
from qlife.methods.twosample import (
    GramFn,
    Tuning,
    held_out_test,
    mmd_fuse_test,
    ocsvm_scores,
    rbf_family,
    tune_bandwidth,
)
from qlife.quantum.kernels import ProjectedQuantumKernel, QuantumFidelityKernel, concentration

if TYPE_CHECKING:
    from qlife.params import Monitor, MonitorQuantum

# a tuned test tunes on half of each sample and tests on the other half: 4 rows each at least
MIN_TUNED_ROWS = 8
QUANTUM_KERNELS = {"quantum_fidelity": QuantumFidelityKernel, "quantum_projected": ProjectedQuantumKernel}


def quantum_kernel(section: MonitorQuantum, kind: str, bandwidth: float):
    """A quantum kernel (`kind`: quantum_fidelity or quantum_projected) of the `monitor.quantum` section."""
    if kind not in QUANTUM_KERNELS:
        raise ValueError(f"quantum kernel {kind!r}: one of {sorted(QUANTUM_KERNELS)}")
    return QUANTUM_KERNELS[kind](section.backend, section.features, bandwidth=bandwidth, reps=section.reps,
                                 kind=section.kind, param="monitor.quantum.backend", max_circuits=section.max_circuits)


@dataclass(frozen=True)
class Permutations:
    """The permutations a window's tests share: (count, seed) fix the splits of every pooled sample, so every
    kernel is scored on the same splits (qlife.methods.drift.permutations)."""

    count: int
    seed: int


@dataclass
class Window:
    """One live window against the training reference: what its tests share. `reference` is the whole
    (standardised) reference; `tested` its fixed `max_ref` subsample (drawn by `ref_seed`), which the kernel
    tests use."""

    section: Monitor
    reference: np.ndarray
    live: np.ndarray
    perms: Permutations = field(init=False)
    # the texts of the reference's rows and of the window's (text_domain_classifier reads them; None: not given)
    reference_texts: list[str] | None = None
    texts: list[str] | None = None

    def __post_init__(self) -> None:
        self.perms = Permutations(self.section.n_permutations, self.section.seed)

    @cached_property
    def tested(self) -> np.ndarray:
        return self.reference[reference_subsample(len(self.reference), self.section.max_ref, self.section.ref_seed)]

    @cached_property
    def baseline(self) -> DriftReport:
        """The median-heuristic RBF MMD and KS report every window carries (one call: rbf and ks read it)."""
        s = self.section
        return detect_drift(self.reference, self.live, alpha=s.alpha, n_permutations=self.perms.count,
                            seed=self.perms.seed, max_ref=s.max_ref, ref_seed=s.ref_seed)

    def head(self, features: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `features` columns of the tested reference and of the live window."""
        return self.tested[:, :features], self.live[:, :features]


@dataclass(frozen=True)
class Outcome:
    row: dict  # p_value, alarm, statistic and what is needed to judge it, wall_s (a skipped test: the reason)
    seconds: float  # wall time (0 when skipped)
    resources: list = field(default_factory=list)  # the quantum kernels' ResourceCount
    cpu_seconds: float = 0.0  # CPU time of the thread that ran it (BLAS is held to that one thread)
    scores: np.ndarray | None = None  # per window document (domain_classifier): higher = more like drift


class DriftTest(ABC):
    """One drift test of stage 7, built from the `monitor` section; an instance tests one window."""

    name: ClassVar[str]
    min_rows: ClassVar[int] = 2  # live rows below which the window is skipped (with the reason)
    twin: ClassVar[str | None] = None  # a quantum test: its classical twin (the verdict's comparison)
    quadratic: ClassVar[bool] = True  # cost ~ (reference + window rows)^2: skipped above monitor.linear_above

    def __init__(self, section: Monitor):
        self.section = section
        self.kernels: list = []  # the quantum kernels run on this window
        self.doc_scores: np.ndarray | None = None  # per-document scores, for a test that gives them

    def tune(self, window: Window) -> Any:
        """What the test chooses on the tuning half before testing; None: nothing to tune."""
        return None

    @abstractmethod
    def test(self, window: Window, tuned: Any) -> dict:
        """The statistic, `p_value` from `window.perms`, and what is needed to judge them (bandwidth, sizes...)."""

    def kernel(self, kind: str, bandwidth: float):
        """A quantum kernel of monitor.quantum, remembered: its circuits are charged to this test."""
        k = quantum_kernel(self.section.quantum, kind, bandwidth)
        self.kernels.append(k)
        return k

    def run(self, window: Window) -> Outcome:
        """tune, test, decide: the window's row for this test and what it cost."""
        if len(window.live) < self.min_rows:
            return Outcome({"p_value": None, "alarm": False, "skipped": self.skip_reason(len(window.live))}, 0.0)
        if self.quadratic and len(window.live) > self.section.linear_above:
            return Outcome({"p_value": None, "alarm": False,
                            "skipped": f"{len(window.live)} records > monitor.linear_above "
                                       f"{self.section.linear_above}: a quadratic test (the linear tests decide)"}, 0.0)
        t0, c0, self.kernels, self.doc_scores = time.perf_counter(), time.thread_time(), [], None
        row = self.test(window, self.tune(window))
        row["alarm"] = bool(row["p_value"] < self.section.alpha)
        seconds, cpu = time.perf_counter() - t0, time.thread_time() - c0
        row["wall_s"] = round(seconds, 3)
        if self.kernels:
            row["circuits"] = int(sum(k.circuits for k in self.kernels))
        return Outcome(row, seconds, [k.resources for k in self.kernels], cpu, self.doc_scores)

    def skip_reason(self, rows: int) -> str:
        return f"{rows} records: the test needs {self.min_rows}"


class RBF(DriftTest):
    """MMD permutation test, RBF kernel at the median-heuristic bandwidth of the pooled sample: the alarm by
    default (and alibi-detect's default)."""

    name = "rbf"

    def test(self, window: Window, tuned: None) -> dict:
        b = window.baseline.to_dict()
        return {"p_value": b["mmd_p_value"], "mmd2": b["mmd2"], "bandwidth": b["bandwidth"],
                "features": window.tested.shape[1], "n_ref": b["n_ref"]}


class KS(DriftTest):
    """Per-feature two-sample KS on the whole reference: the largest statistic, its p-value from the window's
    permutations (exact; `ks_max_permutation_test`), the Bonferroni p-value over the features beside it. Above
    `monitor.linear_above` records the Bonferroni p-value decides (no permutations of a day's window)."""

    name = "ks"
    quadratic = False

    def test(self, window: Window, tuned: None) -> dict:
        p = np.array([ks_2samp(window.reference[:, j], window.live[:, j]).pvalue
                      for j in range(window.live.shape[1])])
        bonferroni = float(min(1.0, p.min() * len(p)))
        row = {"bonferroni_p": bonferroni, "min_p": float(p.min()), "features": window.live.shape[1],
               "n_ref": len(window.reference)}
        if len(window.live) > self.section.linear_above:
            return {"p_value": bonferroni, "p_value_from": "bonferroni", **row}
        stat, p_perm, _ = ks_max_permutation_test(window.reference, window.live, window.perms.count,
                                                  window.perms.seed)
        return {"p_value": p_perm, "p_value_from": "permutations", "statistic": stat, **row}


class TunedMMD(DriftTest):
    """MMD with the kernel of `family(b)`, b in `grid()` chosen by the power criterion on the tuning half and
    tested on the held-out half (qlife.methods.twosample.tuned_mmd_test); concentration of the tested Gram."""

    min_rows = MIN_TUNED_ROWS

    @abstractmethod
    def grid(self) -> list[float]: ...

    @abstractmethod
    def family(self, window: Window) -> Callable[[float], GramFn]: ...

    def describe(self) -> dict:
        return {"features": self.section.quantum.features}

    def tune(self, window: Window) -> Tuning:
        rq, lq = window.head(self.section.quantum.features)
        return tune_bandwidth(rq, lq, self.family(window), self.grid(), self.section.split_seed)

    def test(self, window: Window, tuned: Tuning) -> dict:
        rq, lq = window.head(self.section.quantum.features)
        r = held_out_test(rq, lq, self.family(window), tuned, window.perms.count, window.perms.seed,
                          diagnose=concentration)
        return {**r.to_dict(), **self.describe()}

    def skip_reason(self, rows: int) -> str:
        return f"{rows} records: a tuned test needs {self.min_rows} (half to tune the bandwidth, half to test)"


class RBFTuned(TunedMMD):
    """The quantum kernels' classical twin: an RBF kernel, grid in units of the pooled median distance."""

    name = "rbf_tuned"
    unit: float

    def grid(self) -> list[float]:
        return self.section.rbf_grid

    def tune(self, window: Window) -> Tuning:
        self.unit = median_bandwidth(*window.head(self.section.quantum.features), seed=self.section.ref_seed)
        return super().tune(window)

    def family(self, window: Window) -> Callable[[float], GramFn]:
        return rbf_family(self.unit)

    def describe(self) -> dict:
        return {"median_distance": self.unit, **super().describe()}


class QuantumFidelity(TunedMMD):
    """The fidelity kernel |<phi(x)|phi(y)>|^2 of monitor.quantum's feature map, bandwidth tuned."""

    name = "quantum_fidelity"
    twin = "rbf_tuned"

    def grid(self) -> list[float]:
        return self.section.quantum.bandwidths

    def family(self, window: Window) -> Callable[[float], GramFn]:
        return lambda b: self.kernel(self.name, b).gram

    def describe(self) -> dict:
        return {**super().describe(), "qubits": self.section.quantum.features}


class QuantumProjected(QuantumFidelity):
    """The projected quantum kernel (one-qubit reduced states), bandwidth tuned."""

    name = "quantum_projected"


class Fuse(DriftTest):
    """MMD-FUSE: monitor.fuse's classical kernels at several bandwidths fused in one permutation test."""

    name = "fuse"

    def extra(self, rq: np.ndarray, lq: np.ndarray) -> dict[str, np.ndarray]:
        """Pooled Gram matrices fused beside the classical kernels."""
        return {}

    def test(self, window: Window, tuned: None) -> dict:
        f, rq, lq = self.section.fuse, *window.head(self.section.quantum.features)
        r = mmd_fuse_test(rq, lq, tuple(f.kernels), f.n_bandwidths, self.extra(rq, lq), window.perms.count,
                          window.perms.seed)
        return {**r.to_dict(), "features": self.section.quantum.features}


class FuseQuantum(Fuse):
    """MMD-FUSE with fidelity kernels at monitor.fuse.quantum_bandwidths added."""

    name = "fuse_quantum"
    twin = "fuse"

    def extra(self, rq: np.ndarray, lq: np.ndarray) -> dict[str, np.ndarray]:
        Z = np.concatenate([rq, lq])
        return {f"quantum_fidelity@{b}": self.kernel("quantum_fidelity", b).gram(Z)
                for b in self.section.fuse.quantum_bandwidths}


class DomainClassifier(DriftTest):
    """A cross-fitted ridge classifier of reference vs window on [x, x^2] (qlife.methods.domain_classifier): its AUC
    with a permutation p-value (at most 200 permutations: the AUC's null is smooth), and per-document scores.
    Finds drift a density detector misses (new documents near the reference's centre)."""

    name = "domain_classifier"
    quadratic = False
    min_rows = 5  # one per cross-fitting fold

    def test(self, window: Window, tuned: None) -> dict:
        r = domain_classifier_test(window.reference, window.live, n_folds=5,
                                   n_permutations=min(window.perms.count, 200), seed=window.perms.seed,
                                   split_seed=self.section.split_seed)
        self.doc_scores = r.scores
        return r.to_dict()


class TextDomainClassifier(DriftTest):
    """The domain classifier on the texts (qlife.methods.text_domain_classifier: TF-IDF words, cross-fitted ridge,
    its AUC with a permutation p-value on the window's shared permutations, at most 200) of the whole reference
    against the window, as DomainClassifier on the features; per-document scores. Reads `window.reference_texts`
    and `window.texts`: skipped, with the reason, without them."""

    name = "text_domain_classifier"
    min_rows = 5  # one per cross-fitting fold

    def run(self, window: Window) -> Outcome:
        if window.texts is None or window.reference_texts is None:
            return Outcome({"p_value": None, "alarm": False, "skipped": "no texts for the reference or the window"},
                           0.0)
        return super().run(window)

    def test(self, window: Window, tuned: None) -> dict:
        if len(window.texts) != len(window.live) or len(window.reference_texts) != len(window.reference):
            raise ValueError(f"{len(window.reference_texts)} reference texts and {len(window.texts)} window texts for "
                             f"{len(window.reference)} and {len(window.live)} rows")
        r = text_domain_classifier_test(window.reference_texts, window.texts, n_folds=5,
                                        n_permutations=min(window.perms.count, 200), seed=window.perms.seed,
                                        split_seed=self.section.split_seed)
        self.doc_scores = r.scores
        return r.to_dict()


class RFF(DriftTest):
    """MMD on random Fourier features of the whole reference and the window (qlife.methods.linear_mmd), its
    permutation null on the feature rows: linear in the rows, for windows of a day's traffic."""

    name = "rff"
    quadratic = False

    def test(self, window: Window, tuned: None) -> dict:
        r = rff_mmd_test(window.reference, window.live, n_permutations=window.perms.count, seed=window.perms.seed,
                         bandwidth_seed=self.section.ref_seed)
        return r.to_dict()


REGISTRY: dict[str, type[DriftTest]] = {cls.name: cls for cls in (
    RBF, KS, RBFTuned, QuantumFidelity, QuantumProjected, Fuse, FuseQuantum, DomainClassifier, TextDomainClassifier,
    RFF)}


def drift_tests(section: Monitor) -> list[DriftTest]:
    """The tests `section.tests` names, in that order, built from `REGISTRY`."""
    unknown = [t for t in section.tests if t not in REGISTRY]
    if unknown:
        raise ValueError(f"monitor.tests: unknown drift test(s) {unknown}; registered: {sorted(REGISTRY)}")
    return [REGISTRY[t](section) for t in section.tests]


def judged_tests(section: Monitor) -> tuple[str | None, str | None, list[str]]:
    """The verdict's quantum test (monitor.alarm if it is one, else the first quantum test run), its classical
    twin, and the classical tests run (the candidates for best classical)."""
    quantum = [t for t in section.tests if REGISTRY[t].twin]
    q = section.alarm if section.alarm in quantum else next(iter(quantum), None)
    return q, REGISTRY[q].twin if q else None, [t for t in section.tests if not REGISTRY[t].twin]


def subsample_decisions(section: Monitor, reference: np.ndarray, live: np.ndarray, tests: list[str], k: int,
                        n_permutations: int, reference_texts: list[str] | None = None,
                        texts: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, list[Outcome]]]:
    """Each of `tests`' decisions (p < alpha) on `k` seeded halves of the problem, half of the tested reference
    (the `max_ref` subsample) against half of the live window, with `n_permutations` shared permutations: the same
    halves and permutations for every test (paired). Half i is drawn by (monitor.seed, i) alone, never by the
    window's name or position. The texts of the rows (`reference_texts`, `texts`), when given, are halved alike
    (text_domain_classifier reads them). Returns the decisions (k,) and the outcomes per test."""
    pick = reference_subsample(len(reference), section.max_ref, section.ref_seed)
    tested = reference[pick]
    tested_texts = None if reference_texts is None else [reference_texts[i] for i in pick]
    sub = section.model_copy(update={"tests": list(tests), "n_permutations": n_permutations, "max_ref": None})
    decisions, outcomes = {t: np.zeros(k, dtype=bool) for t in tests}, {t: [] for t in tests}
    for i in range(k):
        rng = np.random.default_rng([section.seed, i])
        ref, half = (np.sort(rng.choice(len(x), len(x) // 2, replace=False)) for x in (tested, live))
        window = Window(sub, tested[ref], live[half],
                        reference_texts=None if tested_texts is None else [tested_texts[i] for i in ref],
                        texts=None if texts is None else [texts[i] for i in half])
        for test in drift_tests(sub):
            o = test.run(window)
            decisions[test.name][i] = o.row["alarm"]
            outcomes[test.name].append(o)
    return decisions, outcomes


def anomaly_scores(section: Monitor, svm_ref: np.ndarray, live: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Per-document one-class SVM scores (fitted on a fixed reference subsample) for each `monitor.ocsvm` kernel:
    the window's anomaly rate, and the scores themselves (for the AUC across windows with known drift)."""
    o, out, scores = section.ocsvm, {}, {}
    rq, lq = svm_ref[:, :section.quantum.features], live[:, :section.quantum.features]
    for kname in o.kernels:
        if kname == "rbf":
            g = 1.0 / (2.0 * median_bandwidth(rq, rq, seed=section.ref_seed) ** 2)
            k_ref, k_live = rbf_kernel(rq, rq, g), rbf_kernel(lq, rq, g)
        else:
            k = quantum_kernel(section.quantum, kname, o.bandwidth)
            if kname == "quantum_projected":
                k.fit(rq)
            k_ref, k_live = k.gram(rq), k.gram(lq, rq)
        res = ocsvm_scores(k_ref, k_live, o.nu)
        out[kname] = res.to_dict()
        scores[kname] = res.scores
    return out, scores
