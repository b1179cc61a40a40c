"""Array helpers shared by methods/ and quantum/ (numpy only, no project imports).

`unit_rows(x, eps)`: each row scaled to unit L2 norm; rows with norm <= eps are returned unchanged, so an
all-zero row stays zero and nothing becomes NaN or inf.
"""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Rows of the 2-D array `x` L2-normalised (a new array); rows with norm <= eps left as they are."""
    x = np.asarray(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > eps, norms, 1.0)
