"""Local text embedder: TF-IDF (sublinear tf, word 1-2 grams) reduced by truncated SVD, rows L2-normalised.

`tfidf_svd_embed(texts, dim, seed)` embeds one set; `TfidfSvdEmbedder(dim, seed).fit(ref).transform(new)`
fits on one set and projects another (monitoring compares live windows in the reference space).
Output is always (n, dim) float64; when the vocabulary or the corpus is smaller than `dim`, the missing
components are zero columns. Used by stage 1 (curate, SemDeDup) and stage 7 (monitor).
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer


def _l2_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)  # all-zero rows (no known words) stay zero


class TfidfSvdEmbedder:
    """TF-IDF + truncated SVD fitted on one corpus, applicable to any other."""

    def __init__(self, dim: int = 64, seed: int = 0):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed
        self.vectorizer: TfidfVectorizer | None = None
        self.svd: TruncatedSVD | None = None

    def fit(self, texts: list[str]) -> TfidfSvdEmbedder:
        if len(texts) == 0:
            raise ValueError("cannot fit an embedder on no texts")
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float64)
        tfidf = self.vectorizer.fit_transform(texts)
        self.svd = None
        if tfidf.shape[1] > self.dim:  # else the vocabulary fits in dim: keep TF-IDF exactly
            k = min(self.dim, tfidf.shape[0])  # rank is at most the number of documents
            with np.errstate(invalid="ignore", divide="ignore"):  # explained variance of a 1-doc corpus
                self.svd = TruncatedSVD(k, algorithm="randomized", random_state=self.seed).fit(tfidf)
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        if self.vectorizer is None:
            raise RuntimeError("TfidfSvdEmbedder.transform called before fit")
        tfidf = self.vectorizer.transform(texts)
        Z = self.svd.transform(tfidf) if self.svd is not None else tfidf.toarray()
        out = np.zeros((tfidf.shape[0], self.dim))
        out[:, : Z.shape[1]] = Z
        return _l2_rows(out)

    def fit_transform(self, texts: list[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)


def tfidf_svd_embed(texts: list[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """(n, dim) L2-normalised TF-IDF + SVD embeddings of `texts`, fitted on `texts` themselves."""
    return TfidfSvdEmbedder(dim, seed).fit_transform(texts)
