"""Memory before work: estimate what a simulation will allocate and refuse, naming the param to change.

A statevector of n qubits is 2^n complex amplitudes; batched training keeps one (batch, 2^n) state per gate for
autograd. The estimate is compared with the memory the machine has available now (`MemAvailable`), of which at
most `share` may be planned: the rest is the process, the model and the OS.
"""

from __future__ import annotations

import os

from qlife.quantum.errors import QuantumBackendError

GIB = 1024**3


class ResourceLimitError(QuantumBackendError):
    """A job that would not fit in memory (or another limit): raised before any allocation."""


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else physical pages x page size."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def statevector_bytes(n_qubits: int, batch: int = 1, states: int = 1, complex_bytes: int = 8) -> int:
    """`states` batched statevectors of `n_qubits` (complex64: 8 bytes per amplitude)."""
    return batch * states * (2**n_qubits) * complex_bytes


def require_memory(need: int, what: str, change: str, share: float = 0.5, available: int | None = None) -> None:
    """Refuse (ResourceLimitError) when `need` bytes exceed `share` of the available memory."""
    have = available_bytes() if available is None else available
    if need > share * have:
        raise ResourceLimitError(f"{what} needs about {need / GIB:.3g} GiB, more than {share:.0%} of the "
                                 f"{have / GIB:.3g} GiB available: {change}")
