"""Amazon Braket via the isolated `.venv-braket` worker.

Fast tests need no braket: the request, the credential and interpreter checks, and the subprocess boundary
(mocked). Slow tests run the real worker on braket_sv: the bit order against qiskit's, and 20 swap tests.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.circuit.library import StatePreparation

from qlife.quantum import braket
from qlife.quantum.braket import BRAKET_PYTHON, WORKER, build_request, circuits_to_qasm, run_qasm
from qlife.quantum.errors import QuantumBackendError

ARN = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
FAKE_KEY, FAKE_SECRET = "AKIAFAKEKEYID0000000", "fake/secret+value0000000000000000000000"
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")
PROGRAM = "OPENQASM 3.0;\nbit[1] c;\nqubit[1] q;\nx q[0];\nc[0] = measure q[0];\n"


@pytest.fixture
def no_aws(monkeypatch):
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_worker(monkeypatch, no_aws):
    """An existing interpreter and a recording stand-in for subprocess.run; set `.reply` to change the answer."""
    monkeypatch.setenv("QLIFE_BRAKET_PYTHON", sys.executable)

    class Fake:
        def __init__(self):
            self.calls = []
            self.reply = (0, json.dumps({"counts": [{"1": 10}], "device": "braket_sv", "task_ids": ["t0"]}), "")

        def __call__(self, argv, **kwargs):
            self.calls.append((argv, kwargs))
            code, out, err = self.reply
            return subprocess.CompletedProcess(argv, code, out, err)

    fake = Fake()
    monkeypatch.setattr(braket.subprocess, "run", fake)
    return fake


# --- fast: no isolated env needed ------------------------------------------------------------------------

def test_build_request_carries_programs_and_settings_but_no_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_PROFILE", "qlife-profile")
    req = build_request(["p0", "p1"], 123, ARN, 7)
    assert req == {"device": ARN, "shots": 123, "seed": 7, "programs": ["p0", "p1"]}
    assert build_request(["p0"], 5)["device"] == "local" and build_request(["p0"], 5)["seed"] is None
    text = json.dumps(req)
    for secret in (FAKE_KEY, FAKE_SECRET, "qlife-profile", "AWS"):
        assert secret not in text


def test_managed_device_needs_aws_credentials_before_anything_starts(no_aws, fake_worker):
    with pytest.raises(QuantumBackendError, match="AWS_ACCESS_KEY_ID") as err:
        run_qasm([PROGRAM], 10, device=ARN)
    assert "AWS_SECRET_ACCESS_KEY" in str(err.value) and "AWS_PROFILE" in str(err.value)
    assert fake_worker.calls == []


def test_partial_credentials_name_the_missing_variable_only(monkeypatch, fake_worker):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    with pytest.raises(QuantumBackendError, match="AWS_SECRET_ACCESS_KEY") as err:
        run_qasm([PROGRAM], 10, device=ARN)
    assert FAKE_KEY not in str(err.value) and "AWS_ACCESS_KEY_ID and" not in str(err.value)


def test_aws_profile_alone_is_enough(monkeypatch, fake_worker):
    monkeypatch.setenv("AWS_PROFILE", "qlife-profile")
    assert run_qasm([PROGRAM], 10, device=ARN) == [{"1": 10}]


def test_missing_interpreter_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setenv("QLIFE_BRAKET_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(QuantumBackendError, match="make braket-env"):
        run_qasm([PROGRAM], 10)


def test_worker_gets_the_request_on_stdin_and_inherits_credentials(monkeypatch, fake_worker):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    assert run_qasm([PROGRAM], 10, device=ARN, seed=3) == [{"1": 10}]
    (argv, kwargs), = fake_worker.calls
    assert argv == [sys.executable, str(WORKER)]
    assert json.loads(kwargs["input"]) == build_request([PROGRAM], 10, ARN, 3)
    assert FAKE_KEY not in kwargs["input"] and FAKE_SECRET not in kwargs["input"]
    assert kwargs.get("env") is None  # the worker inherits the environment (boto3 reads the credentials there)


@pytest.mark.parametrize("reply,match", [
    ((1, json.dumps({"error": "ValueError: boom"}), ""), "boom"),
    ((1, "", "Traceback ... Segfault-ish"), "Segfault-ish"),
    ((0, json.dumps({"counts": [], "device": "braket_sv", "task_ids": []}), ""), "0 results for 1 programs"),
])
def test_worker_failures_become_backend_errors(fake_worker, reply, match):
    fake_worker.reply = reply
    with pytest.raises(QuantumBackendError, match=match):
        run_qasm([PROGRAM], 10)


def test_worker_timeout_is_a_backend_error(monkeypatch, fake_worker):
    def slow(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(braket.subprocess, "run", slow)
    with pytest.raises(QuantumBackendError, match="timed out"):
        run_qasm([PROGRAM], 10, timeout_s=1)


def test_worker_is_standalone_and_reports_errors_as_json():
    imported = set()
    for node in ast.walk(ast.parse(WORKER.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"braket", "io", "json", "numpy", "os", "sys"}, imported
    # run with this env's python (no braket here): a bad request still answers JSON with a non-zero exit
    proc = subprocess.run([sys.executable, str(WORKER)], input="not json", capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "error" in json.loads(proc.stdout)


def test_circuits_to_qasm_writes_builtin_gates_one_register_no_include():
    qr, x, y = QuantumRegister(2, "a"), ClassicalRegister(1, "x"), ClassicalRegister(1, "y")
    qc = QuantumCircuit(qr, x, y)
    qc.h(0)
    qc.cx(0, 1)
    qc.p(0.3, 1)
    qc.measure(0, x[0])
    qc.measure(1, y[0])
    (src,) = circuits_to_qasm([qc])
    assert "include" not in src and "gate " not in src
    assert "bit[2] c;" in src and "c[0] = measure q[0];" in src and "c[1] = measure q[1];" in src
    ops = {line.split()[0].split("(")[0] for line in src.splitlines()[3:] if line and "measure" not in line}
    assert ops <= set(braket.BASIS_GATES), ops


def test_circuits_to_qasm_refuses_unbound_or_unmeasured_circuits():
    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("t"), 0)
    qc.measure(0, 0)
    with pytest.raises(QuantumBackendError, match="unbound"):
        circuits_to_qasm([qc])
    partial = QuantumCircuit(2, 2)
    partial.measure(1, 1)
    with pytest.raises(QuantumBackendError, match=r"never measured: \[0\]"):
        circuits_to_qasm([partial])
    with pytest.raises(QuantumBackendError, match="no measurements"):
        circuits_to_qasm([QuantumCircuit(1)])


# --- slow: the real worker on braket_sv --------------------------------------------------------------------

braket_env = pytest.mark.skipif(not BRAKET_PYTHON.is_file(),
                                reason=f"no isolated Braket interpreter at {BRAKET_PYTHON}: run `make braket-env`")


def _aer_counts(circuits: list[QuantumCircuit], shots: int) -> list[dict[str, int]]:
    from qiskit_aer import AerSimulator

    return [AerSimulator(seed_simulator=0).run(qc, shots=shots).result().get_counts() for qc in circuits]


@pytest.mark.slow
@braket_env
def test_bit_order_matches_qiskit():
    circuits = []
    # X on one of two qubits, then 3-qubit patterns measured through a permutation (c[i] = measure q[perm[i]])
    for flipped in (0, 1):
        qc = QuantumCircuit(2, 2)
        qc.x(flipped)
        qc.measure([0, 1], [0, 1])
        circuits.append(qc)
    for pattern, perm in [((1, 0, 0), (2, 0, 1)), ((1, 1, 0), (1, 2, 0)), ((0, 0, 1), (0, 2, 1))]:
        qc = QuantumCircuit(3, 3)
        for q, bit in enumerate(pattern):
            if bit:
                qc.x(q)
        qc.measure(list(perm), [0, 1, 2])
        circuits.append(qc)
    got = run_qasm(circuits_to_qasm(circuits), shots=50, seed=0)
    assert got[:2] == [{"01": 50}, {"10": 50}]  # classical bit 0 is the rightmost character
    assert got == _aer_counts(circuits, 50)


@pytest.mark.slow
@braket_env
def test_bell_state_with_a_marker_bit():
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.cx(0, 1)
    qc.x(2)  # c[2] = 1 always: qiskit writes it leftmost
    qc.measure([0, 1, 2], [0, 1, 2])
    shots = 2000
    first, again = run_qasm(circuits_to_qasm([qc, qc]), shots, seed=11)
    assert set(first) == {"100", "111"} and sum(first.values()) == shots
    assert abs(first["111"] / shots - 0.5) < 4 * np.sqrt(0.25 / shots)
    assert run_qasm(circuits_to_qasm([qc, qc]), shots, seed=11) == [first, again]  # seeded: reproducible


@pytest.mark.slow
@braket_env
def test_worker_error_reaches_the_caller():
    with pytest.raises(QuantumBackendError, match="line 2, column 6, near 'program'"):
        run_qasm(["OPENQASM 3.0;\nnot a program"], 10)


def _swap_test(a: np.ndarray, b: np.ndarray) -> QuantumCircuit:
    """Ancilla 0 in H, controlled swaps of the two 3-qubit registers, H, measure: P(0) = (1 + |<a|b>|^2) / 2."""
    qc = QuantumCircuit(7, 1)
    qc.append(StatePreparation(a), [1, 2, 3])
    qc.append(StatePreparation(b), [4, 5, 6])
    qc.h(0)
    for k in range(3):
        qc.cswap(0, 1 + k, 4 + k)
    qc.h(0)
    qc.measure(0, 0)
    return qc


@pytest.mark.slow
@braket_env
def test_swap_test_fidelities_match_exact_overlaps():
    rng = np.random.default_rng(2024)
    a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in rng.normal(size=(2, 20, 8)))
    exact = np.einsum("ij,ij->i", a, b) ** 2
    shots = 4000
    counts = run_qasm(circuits_to_qasm([_swap_test(x, y) for x, y in zip(a, b)]), shots, device="local", seed=5)
    p0_hat = np.array([c.get("0", 0) / shots for c in counts])
    p0 = (1 + exact) / 2
    diff = np.abs((2 * p0_hat - 1) - exact)
    tol = 4 * np.sqrt(p0 * (1 - p0) / shots) * 2 + 1e-9  # 4 sigma of F = 2 P0 - 1
    print(f"20 swap tests: max |F - |<a|b>|^2| = {diff.max():.4f} (max tolerance {tol.max():.4f})")
    assert (diff <= tol).all(), list(zip(diff.round(4), tol.round(4)))


@pytest.mark.slow
@braket_env
def test_braket_local_through_the_backend_layer_matches_exact_fidelities():
    """The issue's check: `braket_local` (a backend spec, as a stage names it) reproduces the statevector fidelity
    of 20 random state pairs within shot noise, through the isolated environment."""
    from qlife.quantum.fidelity import fidelity

    rng = np.random.default_rng(7)
    a = rng.normal(size=(20, 8))
    b = a + rng.normal(size=a.shape)
    exact = fidelity(a, b).values
    shots = 4000
    res = fidelity(a, b, {"kind": "braket_local", "shots": shots, "seed": 3})
    sigma = 2 * np.sqrt(np.clip((1 + exact) / 2 * (1 - exact) / 2, 1e-4, None) / shots)  # F = 2 P0 - 1
    assert np.all(np.abs(res.values - exact) <= 4 * sigma + 1e-9), np.abs(res.values - exact).max()
    assert res.backend == "braket_local" and res.resources.circuits == 20 and res.resources.qubits == 7
