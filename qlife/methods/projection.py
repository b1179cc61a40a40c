"""PCA feature projection: the reduced features that monitoring and the quantum encoders work on.

`fit_pca` fits it (stage 2, on the training split's pooled embeddings); `project_windows` embeds texts with the
same encoder and applies it (stage 7's live windows, bench.drift_seeds).

The residual (`fit_pca(..., residual=True)`, `Residual`): what the projection drops. A second PCA basis of the same
size fitted on the unit-normalised embeddings u = x / ||x||; a row's residual is its off-subspace norm
|| (u - mean) - P (u - mean) || (the SPE / Q statistic of PCA process monitoring). New content (a new topic, new
words) tends to sit near the centre of the projected features, where density scores miss it, but off the subspace
the training split spans: the residual is large there. The normalisation makes it scale-free (mean-pooled
embeddings of longer texts have smaller norms, which otherwise dominates it); it lies in [0, 2].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlife.models import encode_texts

NORM_FLOOR = 1e-12  # a zero embedding is left at zero by the normalisation
LOG_FLOOR = 1e-6  # log_residual: a row exactly in the subspace reads log(1e-6), not -inf


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean norm (a zero row stays zero)."""
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), NORM_FLOOR)


@dataclass(frozen=True)
class Residual:
    """The off-subspace norm of unit-normalised rows against a PCA basis fitted on unit-normalised rows."""

    mean: np.ndarray  # (d,) mean of the unit-normalised fit rows
    components: np.ndarray  # (k, d), rows orthonormal

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """(n,) || (u - mean) - P (u - mean) || with u = x / ||x|| per row: 0 inside the subspace (through the
        mean), the centred unit row's whole norm orthogonal to it; the same for x and c x (c > 0)."""
        C = unit_rows(np.atleast_2d(X)) - self.mean
        R = C - (C @ self.components.T) @ self.components
        return np.linalg.norm(R, axis=1)

    def log(self, X: np.ndarray) -> np.ndarray:
        """log(max(residual, LOG_FLOOR)): the feature column (its spread is closer to normal than the norm's)."""
        return np.log(np.maximum(self(X), LOG_FLOOR))

    def to_arrays(self, prefix: str = "residual_") -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}components": self.components}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "residual_") -> Residual:
        return cls(np.asarray(arrays[f"{prefix}mean"]), np.asarray(arrays[f"{prefix}components"]))


@dataclass(frozen=True)
class Projection:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), rows orthonormal
    explained_variance_ratio: np.ndarray  # (k,)
    residual: Residual | None = None  # fit_pca(..., residual=True): the off-subspace score of the same embeddings

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components.T

    def residuals(self, X: np.ndarray) -> np.ndarray:
        """(n,) log residual of each embedding row (Residual.log); a ValueError without a residual basis."""
        if self.residual is None:
            raise ValueError("this projection has no residual basis: fit it with fit_pca(..., residual=True)")
        return self.residual.log(X)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean, "components": self.components,
               "explained_variance_ratio": self.explained_variance_ratio}
        return out | (self.residual.to_arrays() if self.residual is not None else {})

    @classmethod
    def from_arrays(cls, arrays) -> Projection:
        names = set(getattr(arrays, "files", None) or arrays.keys())
        res = Residual.from_arrays(arrays) if "residual_components" in names else None
        return cls(np.asarray(arrays["mean"]), np.asarray(arrays["components"]),
                   np.asarray(arrays["explained_variance_ratio"]), res)


def _pca(X: np.ndarray, k: int):
    from sklearn.decomposition import PCA

    pca = PCA(k, svd_solver="full").fit(X)
    comps = pca.components_
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    return pca, comps * signs[:, None]


def fit_residual(X: np.ndarray, k: int) -> Residual:
    """The residual basis: the top-k principal directions of the unit-normalised rows of X."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"fit_residual needs a 2-D array with at least 2 rows, got shape {X.shape}")
    pca, comps = _pca(unit_rows(X), min(k, X.shape[0], X.shape[1]))
    return Residual(pca.mean_, comps)


def fit_pca(X: np.ndarray, k: int, residual: bool = False) -> Projection:
    """Top-k principal directions (scikit-learn's PCA, full SVD); signs fixed (largest |loading| positive) so
    the projection is reproducible. Stored as arrays, applied without scikit-learn. `residual`: also fit the
    residual basis (fit_residual, the same k) on the same rows."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"fit_pca needs a 2-D array with at least 2 rows, got shape {X.shape}")
    k = min(k, X.shape[0], X.shape[1])
    pca, comps = _pca(X, k)
    return Projection(pca.mean_, comps, pca.explained_variance_ratio_, fit_residual(X, k) if residual else None)


def features(projection: Projection, X: np.ndarray, residual: bool = False) -> np.ndarray:
    """Embeddings as the monitor's features: projected, and with `residual` the log residual as a last column."""
    Z = projection.transform(X)
    return np.column_stack([Z, projection.residuals(X)]) if residual else Z


def project_windows(projection: Projection, model, tokenizer, windows: dict[str, list[dict]], max_length: int,
                    batch_size: int, residual: bool = False) -> dict[str, np.ndarray]:
    """Each window's records (`text`) as features: the encoder's pooled embeddings (qlife.models.encode_texts),
    projected; with `residual`, the log residual (Projection.residuals) as a last column."""
    return {name: features(projection, encode_texts(model, tokenizer, [d["text"] for d in docs], max_length,
                                                    batch_size, desc=f"embed {name}")[0], residual)
            for name, docs in windows.items()}
