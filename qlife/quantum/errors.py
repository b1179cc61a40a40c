"""Errors raised by the quantum engine."""


class QuantumBackendError(RuntimeError):
    """A backend cannot run: missing token or package, too many qubits, unsupported gate.

    Raised instead of ever falling back silently to another backend or a classical method.
    """


def require_env(var: str, backend: str, package: str | None = None, module: str | None = None) -> str:
    """Env var `var`, or a QuantumBackendError naming it (and `package` if `module` is absent)."""
    import importlib.util
    import os

    value = os.environ.get(var, "")
    try:
        missing_pkg = module is not None and importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # parent package absent
        missing_pkg = True
    if not value:
        msg = f"backend {backend!r} needs an API token: set the environment variable {var}"
        if missing_pkg:
            msg += f" and `pip install {package}`"
        raise QuantumBackendError(msg)
    if missing_pkg:
        raise QuantumBackendError(f"backend {backend!r} needs the package: `pip install {package}`")
    return value
