"""Every quantum backend, built from one spec (qlife.params: `CircuitBackend`, `QuboSampler`).

Stages and methods never switch on backend strings: they name a spec in params and call what this module
builds.

Circuit backends (`circuit_backend(spec, param)` -> `CircuitRunner`) share one call shape, as qiskit's
Sampler primitive does: `run(circuit, values)` runs one parameterized circuit with measurements for each row
of `values` (or a list of bound circuits) and returns `RunResult(frequencies (B, 2^m), resources)`, where m is
the number of classical bits and column index = sum_i c_i 2^i (qiskit's bit order: clbit 0 is the rightmost
character of a count key).

  statevector   exact probabilities of the measured bits (qiskit `Statevector`): what the circuit computes
  shots         the same probabilities sampled with `shots` shots (multinomial): ideal hardware
  aer           transpiled to a generic basis (rz, sx, x, cx; all-to-all) on qiskit-aer with `Noise`
  device        a real IBM device, offline: transpiled to its coupling map and basis (routing SWAPs counted),
                simulated with its calibrated noise (qiskit-ibm-runtime fake backend on qiskit-aer)
  ibm           IBM Quantum hardware (SamplerV2), QISKIT_IBM_TOKEN; the bill is enforced before submit
  braket_local  Amazon Braket's local simulator in its own environment (qlife.quantum.braket)
  braket        an Amazon Braket device by ARN, AWS credentials; the bill is enforced before submit

The analytic backends (statevector, shots) also take outcome probabilities that are already known (from the
batched torch simulator, or a closed form), so that no circuit has to be rebuilt in qiskit: this is the one
place where finite shots are sampled.
  runner.sample(probs, qc | structure)   frequencies (B, 2^m) and resources, as `run` returns them
  runner.sample_probabilities(probs)      the frequencies only: multinomial(shots, p) per row on `shots`
  runner.sample_outcome(p)                the frequency of one outcome of probability p (any shape):
                                          Binomial(shots, p) / shots, the marginal of that multinomial, drawn
                                          as numpy draws it (a two-outcome multinomial is one binomial draw)
  runner.sample_expectation(e)            a +-1 observable's mean from its exact value e:
                                          2 Binomial(shots, (1 + e) / 2) / shots - 1 (a swap test's ancilla:
                                          e = F; a Bloch component)
On statevector each returns its input (exact); `rng` defaults to a fresh generator from the spec's seed (pass
one to continue a stream). Circuit-running kinds refuse: they need the circuit (`run`).

`runner.cost(circuit, n)` counts what n runs need (structure after transpiling for that backend, circuits,
shots, estimated QPU seconds) without running anything; `ResourceCount.hardware_equivalent` marks counts that
were not executed on a QPU. Exact backends are charged `EQUIVALENT_SHOTS` per circuit in the estimate.

QUBO samplers (`qubo_sampler(spec, param)`) are `dimod.Sampler`s: `exact` (numpy brute force), `qaoa` (angles on
the fast simulator, final sampling on the spec's circuit backend), `sa` / `tabu` / `path_integral`
(dwave-samplers), `swap_tabu` (qlife.quantum.swap_tabu: exactly-k problems only; `solve(..., num_ones=m)`),
`dwave` (Leap QPU, DWAVE_API_TOKEN). `solve(bqm, spec, param)` samples with the spec's
settings and returns a `QuboResult` with resources.

Before any work, `check_statevector(n, batch, param)` refuses a simulation that would not fit in memory, naming
the param; tokens come only from the environment and a missing one names its variable; nothing falls back to
another backend.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
from qiskit import QuantumCircuit, transpile

from qlife.params import (
    AerBackend,
    BraketBackend,
    BraketLocalBackend,
    DeviceBackend,
    DWaveBackendSampler,
    ExactSampler,
    IBMBackend,
    Noise,
    PathIntegralSampler,
    QAOASampler,
    SASampler,
    ShotsBackend,
    StatevectorBackend,
    SwapTabuSampler,
    TabuSampler,
)
from qlife.quantum.errors import QuantumBackendError, require_env
from qlife.quantum.memory import require_memory, statevector_bytes
from qlife.quantum.qubo import EXACT_MAX_VARIABLES, all_energies, as_binary, bits
from qlife.quantum.resources import (
    BASIS_GATES,
    ResourceCount,
    anneal_qpu_seconds,
    circuit_resources,
    energy_kwh,
    gate_qpu_seconds,
)

EQUIVALENT_SHOTS = 1024  # what an exact result would cost on hardware, per circuit, in the QPU estimate
EXECUTED_ON = {"statevector": "cpu", "shots": "cpu", "aer": "aer", "device": "aer", "ibm": "ibm",
               "braket_local": "braket_local", "braket": "braket"}


# --- size check ------------------------------------------------------------------------------------------


def check_statevector(n_qubits: int, param: str, batch: int = 1, complex_bytes: int = 16) -> None:
    """Refuse (ResourceLimitError) a simulation of `batch` n-qubit states that would not fit, naming `param`."""
    require_memory(statevector_bytes(n_qubits, batch, complex_bytes=complex_bytes),
                   f"simulating {batch} x {n_qubits}-qubit statevector(s)",
                   f"lower the qubits, or choose a smaller job in {param}")


# --- circuit backends ------------------------------------------------------------------------------------


@dataclass
class RunResult:
    frequencies: np.ndarray  # (B, 2^m) over the measured classical bits
    resources: ResourceCount


def measured_qubits(qc: QuantumCircuit) -> list[int]:
    """Qubit index measured into each classical bit, in clbit order (every clbit must be measured)."""
    where: dict[int, int] = {}
    for inst in qc.data:
        if inst.operation.name == "measure":
            where[qc.find_bit(inst.clbits[0]).index] = qc.find_bit(inst.qubits[0]).index
    if sorted(where) != list(range(qc.num_clbits)) or not where:
        raise ValueError("the circuit must measure every classical bit (e.g. measure_all())")
    return [where[c] for c in range(qc.num_clbits)]


def counts_to_frequencies(counts: dict[str, int], n_bits: int) -> np.ndarray:
    """qiskit counts (bitstring keys, clbit 0 rightmost; spaces between registers) -> frequencies."""
    freq = np.zeros(2**n_bits)
    for key, c in counts.items():
        freq[int(key.replace(" ", ""), 2)] += c
    return freq / max(freq.sum(), 1)


def _bindings(circuits: QuantumCircuit | Sequence[QuantumCircuit], values: Any) -> list[QuantumCircuit]:
    if isinstance(circuits, QuantumCircuit):
        if values is None:
            return [circuits]
        values = np.atleast_2d(np.asarray(values, dtype=float))
        if values.shape[1] != circuits.num_parameters:
            raise ValueError(f"values have {values.shape[1]} columns, the circuit {circuits.num_parameters} "
                             f"parameters")
        return [circuits.assign_parameters(row) for row in values]
    if values is not None:
        raise ValueError("values go with one parameterized circuit, not a list of circuits")
    return list(circuits)


class CircuitRunner:
    """One circuit backend. Subclasses implement `_frequencies(bound circuits)` (and `_structure`)."""

    kind = "statevector"
    analytic = True  # statevector / shots: outcome distributions computed, not simulated gate by gate

    def __init__(self, spec: Any, param: str):
        self.spec, self.param = spec, param
        self.shots = getattr(spec, "shots", None)
        self.seed = getattr(spec, "seed", 0)

    @property
    def name(self) -> str:
        device = getattr(self.spec, "device", None)
        return f"{self.kind}:{device}" if device else self.kind

    def run(self, circuits: QuantumCircuit | Sequence[QuantumCircuit], values: Any = None) -> RunResult:
        """Run one parameterized circuit per row of `values` (or each bound circuit); frequencies (B, 2^m)."""
        template = circuits if isinstance(circuits, QuantumCircuit) else circuits[0]
        n = 1 if values is None and isinstance(circuits, QuantumCircuit) else \
            (len(np.atleast_2d(values)) if values is not None else len(circuits))
        self._before(template, n)
        freq = self._run(circuits, values)
        return RunResult(freq, self.cost(template, n))

    def _before(self, template: QuantumCircuit, n: int) -> None:
        check_statevector(template.num_qubits, self.param)

    def _run(self, circuits, values) -> np.ndarray:
        from qiskit.quantum_info import Statevector

        out = []
        for qc in _bindings(circuits, values):
            qargs = measured_qubits(qc)
            out.append(Statevector(qc.remove_final_measurements(inplace=False)).probabilities(qargs))
        return np.stack(out)

    def structure(self, qc: QuantumCircuit) -> dict[str, Any]:
        """Qubits, depth, two-qubit gates of one circuit as this backend runs it (generic basis here)."""
        return _generic_structure(qc)

    # --- the analytic fast path: outcome probabilities already known, sampled here (see the module docstring)

    sampled = False  # shots: finite-shot estimates of exact outcome probabilities

    def _rng(self, rng: np.random.Generator | None) -> np.random.Generator:
        if not self.analytic:
            raise QuantumBackendError(f"backend {self.name!r} runs circuits: it cannot sample known probabilities "
                                      f"(give it the circuit: run), or choose statevector / shots in {self.param}")
        return np.random.default_rng(self.seed) if rng is None else rng

    def sample_probabilities(self, probs: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frequencies (B, 2^m) this backend returns for circuits whose exact outcome probabilities are `probs`."""
        self._rng(rng)
        return np.atleast_2d(np.asarray(probs, dtype=np.float64))

    def sample_outcome(self, p: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """The measured frequency of one outcome of exact probability `p` (an array of any shape)."""
        self._rng(rng)
        return np.asarray(p)

    def sample_expectation(self, e: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """The estimate of a +-1 observable's mean (e.g. a swap test's ancilla <Z> = F) from its exact value."""
        self._rng(rng)
        return np.asarray(e)

    def sample(self, probs: Any, qc: QuantumCircuit | None = None, structure: dict[str, Any] | None = None,
               rng: np.random.Generator | None = None) -> RunResult:
        """`run`'s result for B circuits shaped like `qc` (or of `structure`) whose exact outcome probabilities
        (B, 2^m) are known: the frequencies this backend returns and the resources of B runs."""
        freq = self.sample_probabilities(probs, rng)
        return RunResult(freq, self.cost(qc, len(freq), structure))

    def cost(self, qc: QuantumCircuit | None, n: int, structure: dict[str, Any] | None = None) -> ResourceCount:
        """What `n` runs of circuits shaped like `qc` (or of the given `structure`) use, or would use on
        hardware."""
        s = structure if structure is not None else self.structure(qc)
        shots = self.shots or EQUIVALENT_SHOTS
        est = gate_qpu_seconds(n, shots)
        hardware = self.kind not in ("ibm", "braket")
        return ResourceCount(self.name, EXECUTED_ON[self.kind], hardware, s.get("qubits", 0), s.get("depth", 0),
                             s.get("two_qubit_gates", 0), n, n * shots, None, est, energy_kwh(est),
                             device=s.get("device"), swaps=s.get("swaps", 0))


def _generic_structure(qc: QuantumCircuit) -> dict[str, Any]:
    return circuit_resources(qc.remove_final_measurements(inplace=False))


class ShotsRunner(CircuitRunner):
    kind = "shots"
    sampled = True

    def _run(self, circuits, values) -> np.ndarray:
        return self.sample_probabilities(super()._run(circuits, values))

    def sample_probabilities(self, probs: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """multinomial(shots, p) / shots per row (p clipped at 0 and renormalized)."""
        rng = self._rng(rng)
        p = np.clip(np.atleast_2d(np.asarray(probs, dtype=np.float64)), 0.0, None)
        return np.stack([rng.multinomial(self.shots, row / row.sum()) for row in p]) / self.shots

    def sample_outcome(self, p: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Binomial(shots, p) / shots elementwise (p clipped to [0, 1])."""
        rng = self._rng(rng)
        return rng.binomial(self.shots, np.clip(p, 0.0, 1.0)) / self.shots

    def sample_expectation(self, e: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """2 Binomial(shots, (1 + e) / 2) / shots - 1: the +1 outcome's frequency mapped back to [-1, 1]."""
        return 2.0 * self.sample_outcome((1.0 + np.asarray(e)) / 2.0, rng) - 1.0


def noise_model(noise: Noise) -> Any:
    """The one simulated noise model: depolarizing on 1-qubit (sx, x) and cx gates, symmetric readout flips."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    model = NoiseModel(basis_gates=list(BASIS_GATES))
    model.add_all_qubit_quantum_error(depolarizing_error(noise.p1, 1), ["sx", "x"])
    model.add_all_qubit_quantum_error(depolarizing_error(noise.p2, 2), ["cx"])
    r = noise.readout
    model.add_all_qubit_readout_error(ReadoutError([[1 - r, r], [r, 1 - r]]))
    return model


class AerRunner(CircuitRunner):
    kind = "aer"
    analytic = False

    def _simulator(self) -> Any:
        from qiskit_aer import AerSimulator

        noise = self.spec.noise
        # shot branching: shots share one simulation until a noise event splits them
        return AerSimulator(method="statevector", noise_model=noise_model(noise) if noise else None,
                            seed_simulator=self.seed, shot_branching_enable=True,
                            shot_branching_sampling_enable=True)

    def _transpile(self, qc: QuantumCircuit) -> QuantumCircuit:
        return transpile(qc, basis_gates=list(BASIS_GATES), optimization_level=1, seed_transpiler=0)

    def _run(self, circuits, values) -> np.ndarray:
        if isinstance(circuits, QuantumCircuit):  # transpile the template once, bind after
            bound = _bindings(self._transpile(circuits), values)
        else:
            bound = [self._transpile(qc) for qc in circuits]
        counts = self._simulator().run(bound, shots=self.shots).result().get_counts()
        counts = counts if isinstance(counts, list) else [counts]
        return np.stack([counts_to_frequencies(c, qc.num_clbits) for c, qc in zip(counts, bound)])


@functools.cache
def fake_device(name: str) -> Any:
    """A qiskit-ibm-runtime fake backend by name (`fake_torino`): a real device's snapshot, offline."""
    try:
        from qiskit_ibm_runtime import fake_provider
    except ImportError as err:  # pragma: no cover - pinned
        raise QuantumBackendError("backend 'device' needs `pip install qiskit-ibm-runtime`") from err
    cls = getattr(fake_provider, "Fake" + name.removeprefix("fake_").capitalize(), None)
    if cls is not None and name.startswith("fake_"):
        return cls()
    known = sorted(b.name for b in fake_provider.FakeProviderForBackendV2().backends())
    raise QuantumBackendError(f"unknown device {name!r}: choose one of {', '.join(known)}")


class DeviceRunner(AerRunner):
    kind = "device"

    @property
    def backend(self) -> Any:
        return fake_device(self.spec.device)

    def _before(self, template: QuantumCircuit, n: int) -> None:
        if template.num_qubits > self.backend.num_qubits:
            raise QuantumBackendError(f"{template.num_qubits} qubits do not fit {self.spec.device} "
                                      f"({self.backend.num_qubits} qubits): change {self.param}")
        check_statevector(template.num_qubits, self.param)  # aer simulates only the qubits in use

    def _simulator(self) -> Any:
        from qiskit_aer import AerSimulator

        return AerSimulator.from_backend(self.backend, seed_simulator=self.seed)

    def _transpile(self, qc: QuantumCircuit) -> QuantumCircuit:
        return _device_pass_manager(self.spec.device, self.seed).run(qc)

    def structure(self, qc: QuantumCircuit) -> dict[str, Any]:
        return _device_structure(qc, self.spec.device, self.seed)


@functools.cache
def _device_pass_manager(device: str, seed: int) -> Any:
    from qiskit.transpiler import generate_preset_pass_manager

    return generate_preset_pass_manager(optimization_level=1, backend=fake_device(device), seed_transpiler=seed)


def _device_structure(qc: QuantumCircuit, device: str, seed: int) -> dict[str, Any]:
    """Depth and two-qubit gates after transpiling to the device, and the routing SWAPs it inserted."""
    qc = qc.remove_final_measurements(inplace=False)
    if qc.parameters:
        qc = qc.assign_parameters(np.random.default_rng(0).uniform(0.1, 3.0, qc.num_parameters))
    pm = _device_pass_manager(device, seed)
    routed = pm.routing.run(pm.layout.run(pm.init.run(qc))) if pm.routing is not None else qc
    tqc = pm.run(qc)
    two_q = sum(1 for ci in tqc.data if ci.operation.num_qubits == 2)
    return {"qubits": qc.num_qubits, "depth": tqc.depth(), "two_qubit_gates": two_q,
            "swaps": int(routed.count_ops().get("swap", 0)), "device": device, "ops": dict(tqc.count_ops())}


class _BilledRunner(CircuitRunner):
    """Real hardware: the bill is shown and enforced before anything is submitted."""

    provider = ""
    analytic = False

    def bill(self, qc: QuantumCircuit, n: int):
        from qlife.quantum.billing import gate_bill

        return gate_bill(self.provider, self.spec.device or "payg", n, self.shots)

    def _before(self, template: QuantumCircuit, n: int) -> None:
        from qlife.quantum.billing import enforce

        self._credentials()
        enforce(self.bill(template, n), self.spec.max_cost_usd, self.spec.confirm, f"{self.param}.max_cost_usd")


class IBMRunner(_BilledRunner):
    kind, provider = "ibm", "ibm"

    def __init__(self, spec: IBMBackend, param: str):
        super().__init__(spec, param)
        self._credentials()  # fail before any work

    def _credentials(self) -> str:
        return require_env("QISKIT_IBM_TOKEN", "ibm", "qiskit-ibm-runtime", "qiskit_ibm_runtime")

    def _service_backend(self) -> Any:
        from qiskit_ibm_runtime import QiskitRuntimeService

        service = QiskitRuntimeService(channel="ibm_quantum_platform", token=self._credentials(),
                                       instance=os.environ.get("QISKIT_IBM_INSTANCE"))
        return service.backend(self.spec.device) if self.spec.device else \
            service.least_busy(operational=True, simulator=False)

    def _run(self, circuits, values) -> np.ndarray:
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_ibm_runtime import SamplerV2

        backend = self._service_backend()
        pm = generate_preset_pass_manager(optimization_level=1, backend=backend)
        pubs = [(pm.run(circuits), np.atleast_2d(values))] if isinstance(circuits, QuantumCircuit) and \
            values is not None else [(pm.run(qc),) for qc in _bindings(circuits, values)]
        job = SamplerV2(mode=backend).run(pubs, shots=self.shots)
        rows = []
        for res in job.result():  # one pub: a BitArray of shape (B,) (bindings) or () (one circuit)
            data = res.join_data()
            for loc in (range(data.shape[0]) if data.shape else [None]):
                rows.append(counts_to_frequencies(data.get_counts(loc), data.num_bits))
        return np.stack(rows)


class BraketRunner(_BilledRunner):
    kind, provider = "braket", "braket"

    def _credentials(self) -> None:
        if self.kind == "braket_local":
            return
        if not os.environ.get("AWS_PROFILE") and not (os.environ.get("AWS_ACCESS_KEY_ID")
                                                       and os.environ.get("AWS_SECRET_ACCESS_KEY")):
            raise QuantumBackendError("backend 'braket' needs AWS credentials: set AWS_ACCESS_KEY_ID and "
                                      "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")

    def _run(self, circuits, values) -> np.ndarray:
        from qlife.quantum.braket import circuits_to_qasm, run_qasm

        bound = _bindings(circuits, values)
        device = "local" if self.kind == "braket_local" else self.spec.device
        counts = run_qasm(circuits_to_qasm(bound), self.shots, device, self.seed)
        return np.stack([counts_to_frequencies(c, qc.num_clbits) for c, qc in zip(counts, bound)])


class BraketLocalRunner(BraketRunner):
    kind = "braket_local"

    def _before(self, template: QuantumCircuit, n: int) -> None:
        check_statevector(template.num_qubits, self.param)


_RUNNERS = {StatevectorBackend: CircuitRunner, ShotsBackend: ShotsRunner, AerBackend: AerRunner,
            DeviceBackend: DeviceRunner, IBMBackend: IBMRunner, BraketLocalBackend: BraketLocalRunner,
            BraketBackend: BraketRunner}


def parse_circuit_backend(value: Any) -> Any:
    """A CircuitBackend spec from a dict or a kind string ("aer", {"kind": "device", "device": "fake_kyiv"})."""
    from pydantic import TypeAdapter

    from qlife.params import CircuitBackend

    return TypeAdapter(CircuitBackend).validate_python(value)


def as_runner(backend: Any, param: str = "backend") -> CircuitRunner:
    """A runner from a runner, a spec, or what `parse_circuit_backend` takes."""
    if isinstance(backend, CircuitRunner):
        return backend
    if not isinstance(backend, tuple(_RUNNERS)):
        try:
            backend = parse_circuit_backend(backend)
        except ValueError as err:
            raise QuantumBackendError(f"{param}: not a circuit backend: {backend!r} ({err})") from None
    return circuit_backend(backend, param)


def circuit_backend(spec: Any, param: str) -> CircuitRunner:
    """The runner for a `CircuitBackend` spec; `param` is where the spec sits in params.yaml (for messages)."""
    try:
        return _RUNNERS[type(spec)](spec, param)
    except KeyError:
        raise QuantumBackendError(f"{param}: not a circuit backend spec: {spec!r}") from None


# --- QUBO samplers ---------------------------------------------------------------------------------------

class ExactQuboSampler(dimod.Sampler):
    """Brute force in numpy (n <= 24): the `num_reads` lowest-energy assignments (ties by index)."""

    parameters = {"num_reads": []}
    properties: dict[str, Any] = {"max_variables": EXACT_MAX_VARIABLES}

    def sample(self, bqm: dimod.BinaryQuadraticModel, num_reads: int = 1) -> dimod.SampleSet:
        bqm = as_binary(bqm)
        e = all_energies(bqm)
        best = np.argsort(e, kind="stable")[:num_reads]
        return dimod.SampleSet.from_samples((bits(best, len(bqm)), list(bqm.variables)), dimod.BINARY, e[best])


class QAOADimodSampler(dimod.Sampler):
    """QAOA: (gamma, beta) optimized on the fast statevector simulator (qlife.quantum.qaoa), then the final
    state sampled `shots` times on the circuit backend of the spec: the exact state on `statevector`, the
    bound qiskit circuit on every other backend (aer, a device model, hardware)."""

    parameters = {"num_reads": [], "seed": []}
    properties: dict[str, Any] = {}

    def __init__(self, spec: QAOASampler, param: str):
        from qlife.quantum.qaoa import QAOAOptimizer

        self.spec, self.param = spec, param
        self.optimizer = QAOAOptimizer(spec.p, spec.restarts, spec.maxiter, seed=spec.seed)
        self.runner = circuit_backend(spec.backend, f"{param}.backend")

    def sample(self, bqm: dimod.BinaryQuadraticModel, num_reads: int | None = None,
               seed: int | None = None) -> dimod.SampleSet:
        from qlife.quantum.qaoa import qaoa_circuit

        bqm = as_binary(bqm)
        n = len(bqm)
        check_statevector(n, self.param)
        shots = num_reads or self.spec.shots
        energies = all_energies(bqm)
        fit = self.optimizer.fit(energies)
        structure = self.runner.structure(qaoa_circuit(bqm, self.spec.p))
        exact = self.runner.analytic
        if exact:  # the exact final state (statevector and shots: the same sampling of it)
            probs = fit.probabilities
        else:  # the bound circuit on the backend
            qc = qaoa_circuit(bqm, self.spec.p, fit.gammas, fit.betas)
            qc.measure_all()
            probs = self.runner.run(qc).frequencies[0]
        rng = np.random.default_rng(self.spec.seed + 1 if seed is None else seed)
        idx, counts = np.unique(rng.choice(len(probs), size=shots, p=probs / probs.sum()), return_counts=True)

        def count(circuits: int, where: str) -> ResourceCount:
            est = gate_qpu_seconds(circuits, shots)
            return ResourceCount(f"qaoa/{self.runner.name}", where, True, structure["qubits"], structure["depth"],
                                 structure["two_qubit_gates"], circuits, circuits * shots, None, est,
                                 energy_kwh(est), structure.get("device"), structure.get("swaps", 0))

        # the optimization loop ran on the simulator (on hardware each evaluation is a circuit with shots),
        # the final sampling where the backend runs
        resources = count(fit.nfev, "cpu") + count(1, "cpu" if exact else EXECUTED_ON[self.runner.kind])
        if self.runner.kind in ("ibm", "braket"):
            resources.hardware_equivalent = False
        info = {"gammas": fit.gammas.tolist(), "betas": fit.betas.tolist(), "expectation": fit.expectation,
                "nfev": fit.nfev, "p": self.spec.p, "backend": self.runner.name,
                "p_best_sample": float(probs[idx[np.argmin(energies[idx])]]),
                "resources": resources}
        return dimod.SampleSet.from_samples((bits(idx, n), list(bqm.variables)), dimod.BINARY, energies[idx],
                                            info=info, num_occurrences=counts)


class DWaveLeapSampler(dimod.Sampler):
    """A D-Wave QPU through Leap: EmbeddingComposite(DWaveSampler()); token from DWAVE_API_TOKEN; the bill is
    enforced before the problem is submitted."""

    parameters = {"num_reads": [], "annealing_time": []}
    properties: dict[str, Any] = {}

    def __init__(self, spec: DWaveBackendSampler, param: str):
        self.spec, self.param = spec, param
        self.token = require_env("DWAVE_API_TOKEN", "dwave", "dwave-system", "dwave.system")

    def bill(self, reads: int):
        from qlife.quantum.billing import anneal_bill

        return anneal_bill(self.spec.solver or "Advantage_system", 1, reads, self.spec.annealing_time_us)

    def sample(self, bqm: dimod.BinaryQuadraticModel, num_reads: int | None = None,
               annealing_time: float | None = None) -> dimod.SampleSet:
        from qlife.quantum.billing import enforce

        reads = num_reads or self.spec.shots
        enforce(self.bill(reads), self.spec.max_cost_usd, self.spec.confirm, f"{self.param}.max_cost_usd")
        from dwave.system import DWaveSampler, EmbeddingComposite

        sampler = EmbeddingComposite(DWaveSampler(token=self.token, solver=self.spec.solver))
        return sampler.sample(bqm, num_reads=reads, return_embedding=True,
                              annealing_time=annealing_time or self.spec.annealing_time_us)


def qubo_sampler(spec: Any, param: str) -> tuple[dimod.Sampler, dict[str, Any]]:
    """(dimod sampler, the keyword arguments the spec sets) for a `QuboSampler` spec."""
    if isinstance(spec, ExactSampler):
        return ExactQuboSampler(), {"num_reads": spec.num_reads}
    if isinstance(spec, QAOASampler):
        return QAOADimodSampler(spec, param), {}
    if isinstance(spec, (SASampler, PathIntegralSampler)):
        from dwave.samplers import PathIntegralAnnealingSampler, SimulatedAnnealingSampler

        cls = SimulatedAnnealingSampler if isinstance(spec, SASampler) else PathIntegralAnnealingSampler
        return cls(), {"num_reads": spec.num_reads, "num_sweeps": spec.num_sweeps, "seed": spec.seed}
    if isinstance(spec, TabuSampler):
        from dwave.samplers import TabuSampler as Tabu

        return Tabu(), {"num_reads": spec.num_reads, "timeout": spec.timeout_ms, "seed": spec.seed}
    if isinstance(spec, SwapTabuSampler):
        from qlife.quantum.swap_tabu import SwapTabuSampler as Swap

        return Swap(), {k: getattr(spec, k) for k in ("num_reads", "timeout_ms", "tenure", "candidates", "stall",
                                                       "kick", "seed", "max_iterations")}
    if isinstance(spec, DWaveBackendSampler):
        return DWaveLeapSampler(spec, param), {}
    raise QuantumBackendError(f"{param}: not a QUBO sampler spec: {spec!r}")


@dataclass
class QuboResult:
    sample: dict[Hashable, int]
    x: np.ndarray  # the best sample in `list(bqm.variables)` order
    energy: float
    solver: str
    wall_s: float
    resources: ResourceCount
    num_reads: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    sampleset: dimod.SampleSet | None = field(default=None, repr=False)

    def gap(self, best_energy: float) -> float:
        """Relative gap to a reference (e.g. exact) energy: (E - E*) / |E*|."""
        return (self.energy - best_energy) / max(abs(best_energy), 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"energy": self.energy, "solver": self.solver, "wall_s": self.wall_s, "num_reads": self.num_reads,
                "x": self.x.tolist(), "resources": self.resources.to_dict(),
                "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str, list, bool))}}


def _sampler_resources(kind: str, bqm: dimod.BinaryQuadraticModel, ss: dimod.SampleSet,
                       reads: int) -> ResourceCount:
    if kind == "qaoa":
        return ss.info["resources"]
    if kind != "dwave":
        return ResourceCount(kind, executed_on="cpu", hardware_equivalent=False, qubits=0)
    timing = ss.info.get("timing", {})
    measured = timing.get("qpu_access_time")
    embedding = ss.info.get("embedding_context", {}).get("embedding", {})
    qubits = sum(len(chain) for chain in embedding.values()) or len(bqm)
    est = anneal_qpu_seconds(reads)
    qpu = measured * 1e-6 if measured is not None else None
    return ResourceCount("dwave", executed_on="dwave", hardware_equivalent=False, qubits=qubits, circuits=1,
                         shots=reads, qpu_seconds=qpu, qpu_seconds_est=est,
                         energy_kwh_est=energy_kwh(qpu if qpu is not None else est))


def solve(bqm: dimod.BinaryQuadraticModel, spec: Any, param: str, **overrides: Any) -> QuboResult:
    """Minimize `bqm` with the sampler of `spec`; `overrides` go to `sample` (e.g. num_reads)."""
    bqm = as_binary(bqm)
    sampler, kwargs = qubo_sampler(spec, param)
    t0 = time.perf_counter()
    ss = sampler.sample(bqm, **{**kwargs, **overrides})
    wall = time.perf_counter() - t0
    first = ss.first
    variables = list(bqm.variables)
    x = np.array([first.sample[v] for v in variables], dtype=np.int8)
    reads = int(ss.record.num_occurrences.sum())
    info = {k: v for k, v in ss.info.items() if k not in ("resources", "embedding_context")}
    return QuboResult(dict(first.sample), x, float(bqm.energy(first.sample)), spec.kind, wall,
                      _sampler_resources(spec.kind, bqm, ss, reads), reads, info, ss)
