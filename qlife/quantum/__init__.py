"""Quantum engine (DESIGN.md §3): circuits defined once in qiskit, a fast batched torch simulator, every backend
behind one spec, QUBO models and samplers, and the resources, bills and memory checks of every quantum job.

Submodules:
  circuits       parameterized qiskit builders: angle / amplitude encodings, hardware-efficient ansätze
  gates          gate kernels of the torch simulator (fused single-qubit layers, permutation and diagonal runs)
  simulator      batched torch statevector simulator compiled from a qiskit circuit; QuantumLayer; OpenQASM 3 export
  backends       the only place a backend spec becomes something that runs: circuit backends and QUBO samplers
  braket         Amazon Braket through the isolated `.venv-braket` interpreter (OpenQASM 3 over JSON)
  braket_worker  the standalone script that interpreter runs (standard library and braket only, never qlife)
  fidelity       state fidelity and the fidelity (Gram) kernel by swap test, on any circuit backend
  kernels        fidelity and projected quantum kernels for drift tests; kernel concentration
  qubo           dimod QUBO models and helpers: k-hot penalties, matrix and QuadraticProgram conversions
  qaoa           fast QAOA on the diagonal cost vector: state, expectation, angle optimizer, qiskit circuit
  swap_tabu      tabu search over exactly-k selections (swap moves that never leave sum(x) = k)
  qng            block-diagonal Fubini-Study metric and the quantum natural gradient optimizer
  reference      qiskit-optimization's QAOA, the reference the fast QAOA is tested against (with a qiskit 2.6 fix)
  resources      resource counts and the QPU time / energy model behind every quantum figure in the ledger
  billing        the bill before any real-hardware submit (public price lists), refused above its cap
  memory         the memory estimate of a simulation, refused before work, naming the param to change
  errors         QuantumBackendError (a backend cannot run; never a silent fallback) and require_env

Heavy optional backends (qiskit-aer, qiskit-ibm-runtime, D-Wave Leap) are imported lazily inside the functions that
need them; Braket is never imported here (it runs in its own interpreter).
"""

from qlife.quantum.errors import QuantumBackendError

__all__ = ["QuantumBackendError"]
