"""PCA through scikit-learn reproduces the hand-written SVD fits it replaced, up to each component's sign."""

import numpy as np
from sklearn.decomposition import PCA

from qlife.methods.projection import Projection, fit_pca


def _data(seed: int = 0, n: int = 300, d: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)  # correlated, off-centre


def _hand_pca(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The old fit: centre, full SVD, top-k right singular vectors; (mean, components, scores)."""
    mean = X.mean(0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, vt[:k], (X - mean) @ vt[:k].T


def test_fit_pca_equals_the_hand_svd_up_to_sign_and_fixes_signs():
    X = _data()
    proj = fit_pca(X, 8)
    mean, comps, scores = _hand_pca(X, 8)
    signs = np.sign((proj.components * comps).sum(1))
    np.testing.assert_allclose(proj.mean, mean, atol=1e-12)
    np.testing.assert_allclose(proj.components, comps * signs[:, None], atol=1e-10)
    np.testing.assert_allclose(proj.transform(X), scores * signs, atol=1e-8)
    lead = proj.components[np.arange(8), np.abs(proj.components).argmax(1)]
    assert (lead > 0).all()  # the stored sign convention: each component's largest |loading| positive
    again = Projection.from_arrays(fit_pca(X, 8).to_arrays())
    np.testing.assert_array_equal(again.components, proj.components)


def test_sklearn_scores_equal_the_hand_svd_up_to_sign():
    """static_embed's fit: PCA(k, svd_solver="full").fit_transform vs the centred data on the old vt[:k]."""
    X = _data(seed=1, n=120, d=16)
    got = PCA(6, svd_solver="full").fit_transform(X)
    _, _, want = _hand_pca(X, 6)
    signs = np.sign((got * want).sum(0))
    assert set(signs.tolist()) <= {-1.0, 1.0}
    np.testing.assert_allclose(got, want * signs, atol=1e-8)
