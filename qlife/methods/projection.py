"""PCA feature projection: the reduced features that monitoring and the quantum encoders work on.

`fit_pca` fits it (stage 2, on the training split's pooled embeddings); `project_windows` embeds texts with the
same encoder and applies it (stage 7's live windows, bench.drift_seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlife.models import encode_texts


@dataclass(frozen=True)
class Projection:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), rows orthonormal
    explained_variance_ratio: np.ndarray  # (k,)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components.T

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "components": self.components,
                "explained_variance_ratio": self.explained_variance_ratio}

    @classmethod
    def from_arrays(cls, arrays) -> Projection:
        return cls(np.asarray(arrays["mean"]), np.asarray(arrays["components"]),
                   np.asarray(arrays["explained_variance_ratio"]))


def fit_pca(X: np.ndarray, k: int) -> Projection:
    """Top-k principal directions (scikit-learn's PCA, full SVD); signs fixed (largest |loading| positive) so
    the projection is reproducible. Stored as arrays, applied without scikit-learn."""
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"fit_pca needs a 2-D array with at least 2 rows, got shape {X.shape}")
    k = min(k, X.shape[0], X.shape[1])
    pca = PCA(k, svd_solver="full").fit(X)
    comps = pca.components_
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    return Projection(pca.mean_, comps * signs[:, None], pca.explained_variance_ratio_)


def project_windows(projection: Projection, model, tokenizer, windows: dict[str, list[dict]], max_length: int,
                    batch_size: int) -> dict[str, np.ndarray]:
    """Each window's records (`text`) as features: the encoder's pooled embeddings (qlife.models.encode_texts),
    projected."""
    return {name: projection.transform(encode_texts(model, tokenizer, [d["text"] for d in docs], max_length,
                                                    batch_size, desc=f"embed {name}")[0])
            for name, docs in windows.items()}
