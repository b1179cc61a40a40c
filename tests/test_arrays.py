"""qlife.arrays.unit_rows: the one row normaliser."""

import numpy as np

from qlife.arrays import unit_rows


def test_rows_have_unit_norm_and_direction_is_kept():
    x = np.random.default_rng(0).normal(size=(50, 7)) * np.logspace(-6, 6, 50)[:, None]
    u = unit_rows(x)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(u * np.linalg.norm(x, axis=1, keepdims=True), x, rtol=1e-12)
    assert u is not x and u.shape == x.shape


def test_zero_and_tiny_rows_stay_finite():
    x = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1e-320, 0.0, 0.0], [1e-13, 0.0, 0.0]])
    u = unit_rows(x)
    assert np.isfinite(u).all()
    assert (u[0] == 0).all()
    np.testing.assert_allclose(u[1], [0.6, 0.8, 0.0])
    np.testing.assert_allclose(unit_rows(x, eps=1e-12)[3], x[3])  # at or below eps: left as it is
    with np.errstate(all="raise"):  # no division by zero, no invalid value
        unit_rows(np.zeros((4, 2)))


def test_float32_stays_float32():
    assert unit_rows(np.ones((2, 3), dtype=np.float32)).dtype == np.float32
