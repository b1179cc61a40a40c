"""Run OpenQASM 3 programs on Amazon Braket: a standalone script for the isolated interpreter `.venv-braket`.

Why a separate process: amazon-braket-sdk pins cloudpickle==2.2.1 (dask needs >= 3) and its local simulator pins
antlr4-python3-runtime==4.13.2 (DVC's hydra needs 4.9), so braket cannot live in the project env. `make braket-env`
builds `.venv-braket` from constraints-braket.txt and `qlife.quantum.braket` runs this file with it. It therefore
imports only the standard library and braket (plus numpy, which braket brings) — never qlife.

Protocol (one request, one reply, both JSON):
  stdin   {"device": "local" | "<device ARN>", "shots": int, "seed": int | null, "programs": ["OPENQASM 3.0; ..."]}
  stdout  {"counts": [{bitstring: count}, ...], "device": name, "task_ids": [...]}
          or {"error": "..."} with exit code 1.
AWS credentials are never part of the request: boto3 reads them from the environment this process inherits.

Bit order: for a program measuring into one bit register, Braket's `measurement_counts` keys list the register's
measured elements left to right (character i = c[i]: X on q[0] of `c[0] = measure q[0]; c[1] = measure q[1];`
gives "10"). Qiskit puts classical bit 0 rightmost ("01"), so every key is reversed here. Elements that are never
measured are dropped by Braket, so callers must measure every bit of the register (`circuits_to_qasm` checks).
"""

import json
import os
import sys

# Python puts this script's directory first on sys.path, and that directory holds qlife's own `braket.py`, which
# would shadow the braket package: drop it before anything imports braket
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]


def _local_simulator(seed: int | None):
    """`braket_sv`; with a seed, a subclass whose simulations all draw shots from one seeded numpy Generator.

    The simulator has no seed option: each StateVectorSimulation samples from its own unseeded
    `np.random.default_rng()` (`_rng_generator`, its only randomness), created in `initialize_simulation`.
    """
    from braket.devices import LocalSimulator

    if seed is None:
        return LocalSimulator("braket_sv")
    import numpy as np
    from braket.default_simulator.state_vector_simulator import StateVectorSimulator

    rng = np.random.default_rng(seed)

    class SeededStateVectorSimulator(StateVectorSimulator):
        def initialize_simulation(self, **kwargs):
            simulation = super().initialize_simulation(**kwargs)
            if not hasattr(simulation, "_rng_generator"):  # braket changed its internals: refuse, don't ignore
                raise RuntimeError("cannot seed this braket_sv version (no StateVectorSimulation._rng_generator)")
            simulation._rng_generator = rng
            return simulation

    return LocalSimulator(SeededStateVectorSimulator())


def run(request: dict) -> dict:
    """Execute `request` (see the module docstring) and return the reply dict."""
    from braket.ir.openqasm import Program

    device_id, shots, seed, programs = request["device"], request["shots"], request.get("seed"), request["programs"]
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    if not isinstance(programs, list) or not all(isinstance(p, str) for p in programs):
        raise ValueError("programs must be a list of OpenQASM 3 source strings")
    if device_id == "local":
        device = _local_simulator(seed)
    else:  # a managed device (simulator or QPU); it has no seed, so `seed` does not apply
        from braket.aws import AwsDevice

        device = AwsDevice(device_id)
    # submit everything first (managed tasks then queue in parallel), then wait for the results in order
    tasks = [device.run(Program(source=src), shots=shots) for src in programs]
    counts = []
    for task in tasks:
        result = task.result()
        if result is None:  # a managed task that FAILED or was CANCELLED returns no result
            reason = task.metadata().get("failureReason") if hasattr(task, "metadata") else None
            raise RuntimeError(f"task {task.id} ended {task.state()}: {reason or 'no reason given'}")
        counts.append({key[::-1]: int(n) for key, n in result.measurement_counts.items()})
    name = "braket_sv" if device_id == "local" else device.name
    return {"counts": counts, "device": name, "task_ids": [task.id for task in tasks]}


def _describe(exc: BaseException) -> str:
    """`Type: message`, plus where ANTLR stopped: openqasm3's QASM3ParsingError often carries no text, the
    offending token sits on the RecognitionException inside its cause."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        for item in (cause, *cause.args):
            token = getattr(item, "offendingToken", None)
            if token is not None:
                return f"{text} at line {token.line}, column {token.column}, near {token.text!r}"
        cause = cause.__cause__ or cause.__context__
    return text


def main() -> int:
    import io

    # anything braket prints (ANTLR puts its parse errors on stderr) is captured: it must not corrupt the JSON
    # reply, and its tail makes error messages useful (a QASM3ParsingError carries no text of its own)
    stdout, stderr, captured = sys.stdout, sys.stderr, io.StringIO()
    sys.stdout = sys.stderr = captured
    try:
        reply, code = run(json.loads(sys.stdin.read())), 0
    except Exception as exc:  # every failure becomes a JSON error for the caller
        log = " | ".join(captured.getvalue().strip().splitlines()[-5:])
        reply, code = {"error": _describe(exc) + (f" [{log}]" if log else "")}, 1
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    stderr.write(captured.getvalue())
    json.dump(reply, stdout)
    stdout.write("\n")
    stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
