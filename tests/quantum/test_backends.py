"""The backend layer: one spec -> one runner or dimod sampler; exact vs qiskit's Statevector, seeded shots,
a real device's model with routing counted, the size check before work, credentials and the bill before any
submit (network boundary mocked: nothing is ever sent)."""

from __future__ import annotations

import dimod
import numpy as np
import pytest
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import Statevector

from qlife.params import (
    DeviceBackend,
    DWaveBackendSampler,
    ExactSampler,
    IBMBackend,
    PathIntegralSampler,
    QAOASampler,
    ShotsBackend,
    parse_params,
)
from qlife.quantum import QuantumBackendError
from qlife.quantum.backends import (
    ExactQuboSampler,
    as_runner,
    circuit_backend,
    measured_qubits,
    parse_circuit_backend,
    qubo_sampler,
    solve,
)
from qlife.quantum.billing import CostLimitError
from qlife.quantum.memory import ResourceLimitError
from qlife.quantum.qubo import from_matrix, k_hot_penalty


def _ghz_like(n: int = 3) -> QuantumCircuit:
    x = ParameterVector("x", n)
    qc = QuantumCircuit(n, n)
    for i in range(n):
        qc.ry(x[i], i)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure(range(n), list(reversed(range(n))))  # clbit order differs from qubit order on purpose
    return qc


def test_statevector_frequencies_are_qiskits_probabilities_in_clbit_order():
    qc = _ghz_like()
    values = np.random.default_rng(0).uniform(0, np.pi, (4, 3))
    out = circuit_backend(parse_circuit_backend("statevector"), "t").run(qc, values)
    assert measured_qubits(qc) == [2, 1, 0]
    for row, freq in zip(values, out.frequencies):
        sv = Statevector(qc.remove_final_measurements(inplace=False).assign_parameters(row))
        assert np.allclose(freq, sv.probabilities([2, 1, 0]), atol=1e-12)
    assert out.resources.circuits == 4 and out.resources.executed_on == "cpu"


def test_shots_are_seeded_and_within_sampling_error():
    qc = _ghz_like()
    values = np.full((1, 3), 1.1)
    exact = as_runner("statevector").run(qc, values).frequencies
    a = as_runner({"kind": "shots", "shots": 20000, "seed": 3}).run(qc, values).frequencies
    b = as_runner({"kind": "shots", "shots": 20000, "seed": 3}).run(qc, values).frequencies
    assert np.array_equal(a, b) and np.abs(a - exact).max() < 5 * np.sqrt(0.25 / 20000)


def test_known_probabilities_are_sampled_by_the_runner_as_run_samples_them():
    """The analytic fast path: `sample` on probabilities already known gives what `run` gives on the circuit (same
    seed), with the same resources; a single outcome's binomial is the two-outcome multinomial's draw; the
    statevector runner returns its input; a circuit-running backend refuses (it needs the circuit)."""
    qc = _ghz_like()
    values = np.random.default_rng(1).uniform(0, np.pi, (5, 3))
    probs = as_runner("statevector").run(qc, values).frequencies
    shots = as_runner({"kind": "shots", "shots": 777, "seed": 4})
    ran, sampled = shots.run(qc, values), shots.sample(probs, qc)
    assert np.array_equal(ran.frequencies, sampled.frequencies) and ran.resources == sampled.resources
    assert sampled.resources.circuits == 5 and sampled.resources.shots == 5 * 777
    # one outcome of probability p: Binomial(shots, p) / shots is the first column of multinomial(shots, [p, 1-p])
    p = np.random.default_rng(2).uniform(0, 1, 50)
    two = shots.sample_probabilities(np.stack([p, 1 - p], 1), np.random.default_rng(9))[:, 0]
    assert np.array_equal(shots.sample_outcome(p, np.random.default_rng(9)), two)
    old = np.random.default_rng(9).binomial(777, (1 + (2 * p - 1)) / 2) / 777  # the estimators' former formula
    assert np.array_equal(shots.sample_expectation(2 * p - 1, np.random.default_rng(9)), 2 * old - 1)
    assert np.array_equal(shots.sample_outcome(p), shots.sample_outcome(p))  # default rng: the spec's seed
    exact = as_runner("statevector")
    assert np.array_equal(exact.sample(probs, qc).frequencies, probs) and np.array_equal(exact.sample_outcome(p), p)
    assert not exact.sampled and shots.sampled
    with pytest.raises(QuantumBackendError, match="runs circuits"):
        as_runner({"kind": "aer"}, "x.backend").sample(probs, qc)

def test_aer_without_noise_matches_exact_and_with_noise_does_not():
    qc = _ghz_like()
    values = np.full((2, 3), 0.7)
    exact = as_runner("statevector").run(qc, values).frequencies
    clean = as_runner({"kind": "aer", "shots": 20000, "noise": None}).run(qc, values).frequencies
    noisy = as_runner({"kind": "aer", "shots": 20000, "noise": {"p1": 0.05, "p2": 0.2, "readout": 0.1}}
                      ).run(qc, values).frequencies
    assert np.abs(clean - exact).max() < 0.02 and np.abs(noisy - exact).max() > 0.05


def test_device_model_routes_on_the_coupling_map_and_counts_it():
    # 4 qubits all talking to each other: a heavy-hex / square lattice device needs SWAPs
    qc = QuantumCircuit(4, 4)
    qc.h(0)
    for a in range(4):
        for b in range(a + 1, 4):
            qc.cx(a, b)
    qc.measure(range(4), range(4))
    out = as_runner({"kind": "device", "device": "fake_torino", "shots": 2000, "seed": 0}).run(qc)
    res = out.resources
    assert res.device == "fake_torino" and res.backend == "device:fake_torino" and res.swaps >= 1
    generic = as_runner("statevector").cost(qc, 1)
    assert res.two_qubit_gates > generic.two_qubit_gates and res.depth > 0
    assert out.frequencies.shape == (1, 16) and out.frequencies.sum() == pytest.approx(1.0)


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(QuantumBackendError, match="unknown device 'fake_nowhere'.*fake_torino"):
        as_runner({"kind": "device", "device": "fake_nowhere"}).run(_ghz_like(), np.zeros((1, 3)))


def test_a_too_large_statevector_job_fails_before_work_naming_the_param(monkeypatch):
    import qlife.quantum.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)  # 1 MiB free
    qc = QuantumCircuit(20, 1)
    qc.measure(0, 0)
    with pytest.raises(ResourceLimitError, match="curate.quantum.backend"):
        circuit_backend(parse_circuit_backend("statevector"), "curate.quantum.backend").run(qc)
    with pytest.raises(ResourceLimitError, match="deploy.quantum.sampler"):
        solve(from_matrix(np.eye(20)), QAOASampler(), "deploy.quantum.sampler")


def test_specs_accept_the_kind_shorthand_and_refuse_unknown_kinds():
    p = parse_params({"curate": {"quantum": {"backend": "shots"}}})
    assert isinstance(p.curate.quantum.backend, ShotsBackend) and p.curate.quantum.backend.shots == 1024
    with pytest.raises(Exception, match="curate.quantum.backend"):
        parse_params({"curate": {"quantum": {"backend": "magic"}}})
    with pytest.raises(ValidationError):
        DeviceBackend(device="fake_torino", noise=None)  # a device brings its own noise


# --- QUBO samplers --------------------------------------------------------------------------------------


def test_samplers_are_dimod_samplers_and_agree_with_brute_force():
    rng = np.random.default_rng(0)
    bqm = from_matrix(rng.normal(size=(8, 8)))
    best = min(dimod.ExactSolver().sample(bqm).record.energy)
    sampler = ExactQuboSampler()
    assert isinstance(sampler, dimod.Sampler) and "num_reads" in sampler.parameters
    q, offset = bqm.to_qubo()
    assert sampler.sample_qubo(q).first.energy + offset == pytest.approx(best)  # dimod's own entry points
    for spec in (ExactSampler(), QAOASampler(restarts=2, maxiter=100), PathIntegralSampler(num_reads=50)):
        assert solve(bqm, spec, "t").energy == pytest.approx(best), spec.kind
    s, kwargs = qubo_sampler(QAOASampler(), "t")
    assert isinstance(s, dimod.Sampler)
    with pytest.raises(TypeError):
        s.sample(bqm, no_such_argument=1)


def test_k_hot_penalty_is_dimods_combinations():
    bqm = k_hot_penalty(range(5), 2, 3.0)
    for x in range(32):
        sample = {i: (x >> i) & 1 for i in range(5)}
        assert bqm.energy(sample) == pytest.approx(3.0 * (sum(sample.values()) - 2) ** 2)


@pytest.mark.slow  # a device model (fake_torino) simulated: the default suite keeps one such test
def test_qaoa_final_sampling_on_a_device_model_sits_beside_exact():
    bqm = from_matrix(np.random.default_rng(2).normal(size=(4, 4)))
    exact = solve(bqm, ExactSampler(), "t")
    ideal = solve(bqm, QAOASampler(restarts=2), "t")
    device = solve(bqm, QAOASampler(restarts=2, backend={"kind": "device", "device": "fake_torino"}), "t")
    assert ideal.energy == pytest.approx(exact.energy)
    res = device.resources
    assert res.device == "fake_torino" and res.two_qubit_gates > 0 and res.backend == "qaoa/device:fake_torino"
    assert res.executed_on == "cpu+aer" and device.info["backend"] == "device:fake_torino"
    assert device.energy >= exact.energy - 1e-9  # a sample of a noisy device: never below the optimum


# --- credentials and the bill: nothing is sent --------------------------------------------------------


def test_missing_tokens_name_the_variable(monkeypatch):
    for var in ("QISKIT_IBM_TOKEN", "DWAVE_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(QuantumBackendError, match="QISKIT_IBM_TOKEN"):
        as_runner("ibm")
    with pytest.raises(QuantumBackendError, match="DWAVE_API_TOKEN"):
        solve(from_matrix(np.eye(3)), DWaveBackendSampler(), "deploy.quantum.sampler")
    runner = as_runner({"kind": "braket", "device": "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1"})
    with pytest.raises(QuantumBackendError, match="AWS_ACCESS_KEY_ID"):
        runner.run(_ghz_like(), np.zeros((1, 3)))


def _forbid_network(monkeypatch):
    """Any attempt to reach IBM or D-Wave fails the test."""
    import dwave.system
    import qiskit_ibm_runtime

    def boom(*a, **k):
        raise AssertionError("a request would have been sent")

    for name in ("QiskitRuntimeService", "SamplerV2"):
        monkeypatch.setattr(qiskit_ibm_runtime, name, boom)
    for name in ("DWaveSampler", "EmbeddingComposite"):
        monkeypatch.setattr(dwave.system, name, boom)


def test_jobs_over_max_cost_are_refused_with_the_bill(monkeypatch, capsys):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-ibm-token")
    monkeypatch.setenv("DWAVE_API_TOKEN", "secret-dwave-token")
    _forbid_network(monkeypatch)
    ibm = circuit_backend(IBMBackend(shots=4000, max_cost_usd=1.0), "distill.backends[2]")
    with pytest.raises(CostLimitError) as err:
        ibm.run(_ghz_like(), np.zeros((50, 3)))
    text = str(err.value)
    assert "distill.backends[2].max_cost_usd" in text and "USD" in text and "50 (200,000 shots)" in text
    with pytest.raises(CostLimitError, match="deploy.quantum.sampler.max_cost_usd"):
        solve(from_matrix(np.eye(3)), DWaveBackendSampler(shots=1000), "deploy.quantum.sampler")
    # no cap: nothing is submitted without confirm
    with pytest.raises(CostLimitError, match="confirm"):
        circuit_backend(IBMBackend(), "x").run(_ghz_like(), np.zeros((1, 3)))
    out = capsys.readouterr()
    assert "secret" not in text + out.out + out.err


def test_confirmed_ibm_job_sends_the_transpiled_circuits_and_no_token(monkeypatch):
    """The request that would be sent to IBM (SamplerV2.run) is built from the device's ISA circuits; the token
    only reaches QiskitRuntimeService, never the payload."""
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-ibm-token")
    sent = {}
    fake_backend = DeviceBackend(device="fake_torino")

    class Service:
        def __init__(self, channel, token, instance):
            sent["service"] = {"channel": channel, "token_given": token == "secret-ibm-token"}

        def backend(self, name):
            from qlife.quantum.backends import fake_device

            return fake_device(fake_backend.device)

    class Sampler:
        def __init__(self, mode):
            pass

        def run(self, pubs, shots):
            sent["pubs"], sent["shots"] = pubs, shots
            raise RuntimeError("stop here: nothing leaves the machine")

    import qiskit_ibm_runtime

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    monkeypatch.setattr(qiskit_ibm_runtime, "SamplerV2", Sampler)
    runner = circuit_backend(IBMBackend(device="ibm_torino", shots=100, confirm=True), "x")
    with pytest.raises(RuntimeError, match="stop here"):
        runner.run(_ghz_like(), np.full((3, 3), 0.2))
    (isa, values), = sent["pubs"]
    assert sent["shots"] == 100 and values.shape == (3, 3) and isa.num_qubits == 133
    assert sent["service"] == {"channel": "ibm_quantum_platform", "token_given": True}
    assert "secret" not in repr(sent["pubs"])


def test_confirmed_dwave_job_sends_the_bqm_and_no_token(monkeypatch):
    import dwave.system

    monkeypatch.setenv("DWAVE_API_TOKEN", "secret-dwave-token")
    sent = {}

    class Sampler:
        def __init__(self, token, solver):
            sent["token_given"], sent["solver"] = token == "secret-dwave-token", solver

    class Composite:
        def __init__(self, child):
            pass

        def sample(self, bqm, **kwargs):
            sent["bqm"], sent["kwargs"] = bqm, kwargs
            return dimod.ExactSolver().sample(bqm).truncate(1)

    monkeypatch.setattr(dwave.system, "DWaveSampler", Sampler)
    monkeypatch.setattr(dwave.system, "EmbeddingComposite", Composite)
    bqm = from_matrix(np.random.default_rng(0).normal(size=(4, 4)))
    res = solve(bqm, DWaveBackendSampler(shots=200, confirm=True), "deploy.quantum.sampler")
    assert sent["token_given"] and sent["bqm"] == bqm
    assert sent["kwargs"] == {"num_reads": 200, "return_embedding": True, "annealing_time": 20.0}
    assert "secret" not in repr(sent["kwargs"]) + repr(res.to_dict())
    assert res.resources.executed_on == "dwave" and res.resources.qpu_seconds_est > 0


def test_ibm_result_is_read_per_binding(monkeypatch):
    """SamplerV2's PrimitiveResult (a BitArray of shape (B,) per pub) becomes one frequency row per binding."""
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult, SamplerPubResult

    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-ibm-token")

    class Service:
        def __init__(self, channel, token, instance):
            pass

        def backend(self, name):
            from qlife.quantum.backends import fake_device

            return fake_device("fake_torino")

    class Sampler:
        def __init__(self, mode):
            pass

        def run(self, pubs, shots):
            (_, values), = pubs
            b = len(values)
            raw = np.zeros((b, shots, 1), dtype=np.uint8)
            for i in range(b):
                raw[i, : shots // 4 * (i + 1), 0] = i + 1  # binding i: outcome i+1 on (i+1)/4 of the shots
            bits = BitArray(raw, num_bits=3)

            class Job:
                def result(self):
                    return PrimitiveResult([SamplerPubResult(DataBin(meas=bits, shape=(b,)))])

            return Job()

    import qiskit_ibm_runtime

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", Service)
    monkeypatch.setattr(qiskit_ibm_runtime, "SamplerV2", Sampler)
    runner = circuit_backend(IBMBackend(device="ibm_torino", shots=100, confirm=True), "x")
    freq = runner.run(_ghz_like(), np.full((3, 3), 0.2)).frequencies
    assert freq.shape == (3, 8)
    for i in range(3):
        share = (100 // 4 * (i + 1)) / 100
        assert freq[i, 0] == pytest.approx(1 - share) and freq[i, i + 1] == pytest.approx(share)
