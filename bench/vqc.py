"""VQC forward+backward: our torch simulator vs qiskit-machine-learning and PennyLane lightning.qubit.

Circuit: angle encoding (RY) + 3-layer hardware-efficient ansatz (RY, RZ, linear CX), <Z_i> on every
qubit, loss = sum of outputs, gradients w.r.t. the weights. Batch 256 for ours and PennyLane (adjoint).
qiskit-machine-learning's EstimatorQNN + TorchConnector (default parameter-shift gradient) costs minutes per
sample here, so it is measured on a reduced batch (`peer_batch_measured`); the JSON gives the ratio at that
same batch (both sides measured) and, marked `extrapolated: true`, its time scaled linearly to batch 256.
Outputs and gradients are compared on the measured rows. Run: python -m bench.vqc [--quick] [--full]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.common import table, timed, write
from qlife.quantum.circuits import VariationalCircuit, variational_circuit
from qlife.quantum.simulator import compile_circuit

BATCH = 256
PEER_BATCH = {4: 16, 8: 8, 11: 4}


def ours(vc: VariationalCircuit, x: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    sim = compile_circuit(vc)
    xt = torch.tensor(x, dtype=torch.float32)

    def step() -> tuple[np.ndarray, np.ndarray]:
        wt = torch.tensor(w, dtype=torch.float32, requires_grad=True)
        out = sim.expval_z(xt, wt)
        out.sum().backward()
        return out.detach().numpy(), wt.grad.numpy()

    sec, (out, grad) = timed(step, repeat=5)  # best of 5: the machine is shared
    return sec, out, grad


def qiskit_ml(vc: VariationalCircuit, x: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_machine_learning.connectors import TorchConnector
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    n = vc.num_qubits
    obs = [SparsePauliOp("I" * (n - 1 - i) + "Z" + "I" * i) for i in range(n)]
    qnn = EstimatorQNN(
        circuit=vc.circuit, observables=obs, input_params=list(vc.inputs), weight_params=list(vc.weights)
    )
    model = TorchConnector(qnn, initial_weights=w)
    t0 = time.perf_counter()
    out = model(torch.tensor(x))
    out.sum().backward()
    return time.perf_counter() - t0, out.detach().numpy(), model.weight.grad.numpy()


def pennylane(vc: VariationalCircuit, x: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    import pennylane as qml

    n = vc.num_qubits
    dev = qml.device("lightning.qubit", wires=n)
    pos = {p: ("x", i) for i, p in enumerate(vc.inputs)} | {p: ("w", i) for i, p in enumerate(vc.weights)}
    gates = {"ry": qml.RY, "rz": qml.RZ, "rx": qml.RX, "cx": qml.CNOT, "cz": qml.CZ}
    ops = [
        (
            ci.operation.name,
            [vc.circuit.find_bit(q).index for q in ci.qubits],
            [pos[p] for p in ci.operation.params],
        )
        for ci in vc.circuit.data
    ]

    @qml.qnode(dev, interface="torch", diff_method="adjoint")
    def circuit(xs, ws):
        for name, wires, params in ops:
            angles = [xs[:, i] if kind == "x" else ws[i] for kind, i in params]
            gates[name](*angles, wires=wires)
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    xt = torch.tensor(x)

    def step() -> tuple[np.ndarray, np.ndarray]:
        wt = torch.tensor(w, requires_grad=True)
        out = torch.stack(circuit(xt, wt), dim=1)
        out.sum().backward()
        return out.detach().numpy(), wt.grad.numpy()

    sec, (out, grad) = timed(step, repeat=1)
    return sec, out, grad


def run_size(n: int, peer_batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    vc = variational_circuit(n, 3)
    x, w = rng.uniform(-np.pi, np.pi, (BATCH, n)), rng.uniform(-np.pi, np.pi, vc.num_weights)
    t_ours, out, grad = ours(vc, x, w)
    t_small, out_s, grad_s = ours(vc, x[:peer_batch], w)
    t_peer, out_p, grad_p = qiskit_ml(vc, x[:peer_batch], w)
    row = {
        "qubits": n,
        "layers": 3,
        "batch": BATCH,
        "ours_s": t_ours,
        "peer_batch_measured": peer_batch,
        "ours_s_at_peer_batch": t_small,
        "qiskit_ml_s_measured": t_peer,
        "ratio_qiskit_ml_same_batch": t_peer / t_small,
        "qiskit_ml_s_batch256": t_peer * BATCH / peer_batch,
        "extrapolated": peer_batch != BATCH,
        "ratio_qiskit_ml_batch256": t_peer * BATCH / peer_batch / t_ours,
        "max_abs_diff_out_qiskit_ml": float(np.abs(out_s - out_p).max()),
        "max_abs_diff_grad_qiskit_ml": float(np.abs(grad_s - grad_p).max()),
    }
    try:
        t_pl, out_pl, grad_pl = pennylane(vc, x, w)
        row |= {
            "pennylane_s": t_pl,
            "ratio_pennylane": t_pl / t_ours,
            "max_abs_diff_out_pennylane": float(np.abs(out - out_pl).max()),
            "max_abs_diff_grad_pennylane": float(np.abs(grad - grad_pl).max() / max(1.0, np.abs(grad).max())),
        }
    except ImportError as err:
        row |= {"pennylane_s": None, "pennylane_error": str(err)}
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 and 8 qubits only")
    ap.add_argument("--full", action="store_true", help="measure qiskit-ml at the full batch (hours)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: same footing as the peers)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [4, 8] if args.quick else [4, 8, 11]
    rows = []
    for n in sizes:
        rows.append(run_size(n, BATCH if args.full else PEER_BATCH[n]))
        print(
            table(
                rows[-1:],
                [
                    "qubits",
                    "ours_s",
                    "ratio_qiskit_ml_same_batch",
                    "ratio_qiskit_ml_batch256",
                    "pennylane_s",
                    "ratio_pennylane",
                    "max_abs_diff_grad_qiskit_ml",
                ],
            ),
            flush=True,
        )
    meta = {
        "circuit": "angle RY encoding + 3 x (RY, RZ, linear CX), <Z_i> outputs, grads wrt weights",
        "peer": "qiskit-machine-learning EstimatorQNN + TorchConnector (default gradient); "
        "PennyLane lightning.qubit diff_method=adjoint",
        "ratio": "peer seconds / ours seconds (>1: ours faster)",
        "note": "pennylane grad diff is relative to max |grad|; qiskit-ml diffs absolute, measured rows",
    }
    path = write("vqc", rows, meta)
    print(
        table(
            rows,
            [
                "qubits",
                "ours_s",
                "qiskit_ml_s_batch256",
                "ratio_qiskit_ml_batch256",
                "pennylane_s",
                "ratio_pennylane",
            ],
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
