"""PCA through scikit-learn reproduces the hand-written SVD fits it replaced, up to each component's sign."""

import numpy as np
import pytest
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


def test_residual_is_zero_inside_the_subspace_and_the_normalised_norm_orthogonal_to_it():
    """Unit rows in a 3-d subspace of R^12 (through the origin): the residual basis of 3 components holds them;
    a row inside it reads ~0, a unit row orthogonal to it reads ~|| u - mean ||, the part of it off the subspace."""
    from qlife.methods.projection import fit_residual, unit_rows

    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    inside = rng.normal(size=(200, 3)) @ basis[:, :3].T
    res = fit_residual(inside * rng.uniform(0.5, 3.0, size=(200, 1)), 3)
    # the unit rows of a 3-d subspace lie on its sphere, which the fitted mean and 3 directions span
    probe = rng.normal(size=(5, 3)) @ basis[:, :3].T
    np.testing.assert_allclose(res(probe), 0.0, atol=1e-8)
    ortho = basis[:, 5][None]  # a unit row orthogonal to the subspace
    off = unit_rows(ortho) - res.mean
    off -= (off @ res.components.T) @ res.components
    np.testing.assert_allclose(res(ortho), np.linalg.norm(off, axis=1), atol=1e-10)
    # the mean is inside the subspace, so the orthogonal row's residual is its whole (unit) norm
    np.testing.assert_allclose(res(ortho), 1.0, atol=1e-8)
    np.testing.assert_allclose(res(7.5 * ortho), res(ortho), atol=1e-12)


def test_residual_is_scale_free_travels_with_the_projection_and_is_stored_as_arrays():
    from qlife.methods.projection import Residual

    X = _data(seed=4, n=150, d=20)
    proj = fit_pca(X, 5, residual=True)
    assert isinstance(proj.residual, Residual) and proj.residual.components.shape == (5, 20)
    np.testing.assert_allclose(proj.transform(X), fit_pca(X, 5).transform(X), atol=1e-12)  # features unchanged
    Y = _data(seed=5, n=30, d=20)
    scale = np.random.default_rng(6).uniform(0.1, 10.0, size=(30, 1))
    np.testing.assert_allclose(proj.residual(Y * scale), proj.residual(Y), atol=1e-12)
    r = proj.residual(Y)
    assert ((r >= 0) & (r <= 2)).all()
    np.testing.assert_allclose(proj.residuals(Y), np.log(r))
    arrays = proj.to_arrays()
    assert {"residual_mean", "residual_components"} <= set(arrays)
    again = Projection.from_arrays(arrays)
    np.testing.assert_array_equal(again.residual(Y), r)
    plain = Projection.from_arrays(fit_pca(X, 5).to_arrays())  # an older projection.npz: no residual
    assert plain.residual is None and "residual_mean" not in plain.to_arrays()
    with pytest.raises(ValueError, match="no residual basis"):
        plain.residuals(Y)


def test_residual_separates_rows_off_the_training_subspace():
    """Rows that add a direction the fit never saw score higher than fresh rows of the fit's own law."""
    from qlife.methods.projection import fit_residual

    rng = np.random.default_rng(7)
    d, k = 30, 4
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]

    def law(n: int) -> np.ndarray:
        spread = rng.normal(size=(n, k)) * [4, 3, 2, 1] @ basis[:, :k].T
        return spread + 0.1 * rng.normal(size=(n, d)) + 3 * basis[:, 0]

    res = fit_residual(law(500), k)
    clean, new = law(200), law(200) + 2.0 * basis[:, 10]
    assert res(new).mean() > 2 * res(clean).mean()


def test_monitor_features_append_the_log_residual_as_a_last_column():
    from qlife.methods.projection import features

    X = _data(seed=8, n=60, d=20)
    proj = fit_pca(X, 4, residual=True)
    F = features(proj, X, residual=True)
    assert F.shape == (60, 5)
    np.testing.assert_allclose(F[:, :4], proj.transform(X))
    np.testing.assert_allclose(F[:, 4], proj.residuals(X))
    np.testing.assert_allclose(features(proj, X), proj.transform(X))
