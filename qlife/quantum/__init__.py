"""Quantum engine: circuits defined once in qiskit, a fast batched torch simulator, fidelity estimators,
QUBO models and solvers, and resource/cost accounting (DESIGN.md §3).

Submodules: `circuits`, `simulator`, `fidelity`, `qubo`, `resources`. Heavy optional backends (IBM runtime,
D-Wave Leap) are imported lazily inside the functions that need them.
"""

from qlife.quantum.errors import QuantumBackendError

__all__ = ["QuantumBackendError"]
