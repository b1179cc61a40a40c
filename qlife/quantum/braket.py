"""Amazon Braket from the project env: qiskit circuits -> OpenQASM 3 -> `braket_worker.py` in `.venv-braket`.

amazon-braket-sdk (cloudpickle==2.2.1) and amazon-braket-default-simulator (antlr4-python3-runtime==4.13.2) clash
with this env's dask and DVC, so braket is never imported here: `make braket-env` builds the isolated interpreter
`.venv-braket` (pinned by constraints-braket.txt) and `run_qasm` talks to the worker over JSON on stdin/stdout.
Counts come back in qiskit's bit order (classical bit 0 rightmost). AWS credentials stay in the environment the
worker inherits; they are checked for presence here but never read into the request, logged or printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qlife.quantum.errors import QuantumBackendError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

REPO_ROOT = Path(__file__).resolve().parents[2]
BRAKET_PYTHON = Path(os.environ.get("QLIFE_BRAKET_PYTHON") or REPO_ROOT / ".venv-braket" / "bin" / "python")
WORKER = Path(__file__).with_name("braket_worker.py")
# gates that qiskit and braket_sv's OpenQASM both know by the same name (qiskit's `cx` is Braket's `cnot`, so
# it is not here and transpiles to h-cz-h); they are written as builtins, without gate definitions
BASIS_GATES = ("rx", "ry", "rz", "h", "x", "y", "z", "s", "t", "cz", "swap", "cswap")


def build_request(programs: list[str], shots: int, device: str = "local", seed: int | None = None) -> dict[str, Any]:
    """The JSON request the worker reads: programs and run settings only, never credentials."""
    return {"device": device, "shots": int(shots), "seed": None if seed is None else int(seed),
            "programs": list(programs)}


def _require_aws_credentials(device: str) -> None:
    """AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; otherwise a QuantumBackendError naming them."""
    if os.environ.get("AWS_PROFILE"):
        return
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
    if missing:
        raise QuantumBackendError(
            f"backend 'braket' device {device!r} needs AWS credentials: set the environment variables "
            f"{' and '.join(missing)} (or AWS_PROFILE for a configured profile)")


def run_qasm(programs: list[str], shots: int, device: str = "local", seed: int | None = None,
             timeout_s: float = 600) -> list[dict[str, int]]:
    """Run OpenQASM 3 `programs` on Braket `device` ("local" = braket_sv, or a device ARN): counts per program.

    `seed` makes the local simulator reproducible; managed devices have no seed and ignore it.
    """
    if device != "local":
        _require_aws_credentials(device)  # before anything is started
    python = Path(os.environ.get("QLIFE_BRAKET_PYTHON") or BRAKET_PYTHON)
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise QuantumBackendError(f"backend 'braket' needs its isolated interpreter {python}: run `make braket-env`")
    if not programs:
        return []
    request = build_request(programs, shots, device, seed)
    try:
        proc = subprocess.run([str(python), str(WORKER)], input=json.dumps(request), capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise QuantumBackendError(f"braket worker ({device}) timed out after {timeout_s:g} s") from None
    try:
        reply = json.loads(proc.stdout)
    except json.JSONDecodeError:
        reply = {"error": f"no JSON reply (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"}
    if proc.returncode != 0 or "error" in reply:
        raise QuantumBackendError(f"braket worker ({device}) failed: {reply.get('error', proc.stderr[-2000:])}")
    counts = reply["counts"]
    if len(counts) != len(programs):
        raise QuantumBackendError(f"braket worker returned {len(counts)} results for {len(programs)} programs")
    return [{str(k): int(v) for k, v in c.items()} for c in counts]


def circuits_to_qasm(circuits: list[QuantumCircuit]) -> list[str]:
    """Bound qiskit circuits with measurements -> OpenQASM 3 that braket_sv accepts.

    Each circuit is flattened onto one qubit and one bit register (braket_sv accepts a single measured register;
    qiskit's bit order is kept), transpiled to BASIS_GATES, and exported without `include "stdgates.inc"` (Braket
    resolves includes as files and has no such file; the basis gates are its builtins). Every classical bit must
    be measured: Braket drops unmeasured bits from its bitstrings, which would shift qiskit's bit positions.
    """
    from qiskit import QuantumCircuit, qasm3, transpile

    flat = []
    for i, qc in enumerate(circuits):
        where = f"circuit {i} ({qc.name})"
        if qc.parameters:
            raise QuantumBackendError(f"{where} has unbound parameters {sorted(p.name for p in qc.parameters)}")
        measured = {qc.find_bit(b).index for inst in qc.data if inst.operation.name == "measure" for b in inst.clbits}
        if not qc.num_clbits or len(measured) != qc.num_clbits:
            unmeasured = sorted(set(range(qc.num_clbits)) - measured)
            raise QuantumBackendError(f"{where}: Braket needs every classical bit measured "
                                      f"({qc.num_clbits} bits, never measured: {unmeasured or 'no measurements'})")
        one = QuantumCircuit(qc.num_qubits, qc.num_clbits, name=qc.name, global_phase=qc.global_phase)
        flat.append(one.compose(qc, qubits=range(qc.num_qubits), clbits=range(qc.num_clbits)))
    if not flat:
        return []
    transpiled = transpile(flat, basis_gates=list(BASIS_GATES), optimization_level=1, seed_transpiler=0)
    return [qasm3.dumps(qc, includes=(), basis_gates=BASIS_GATES) for qc in transpiled]
