"""bench/drift_regime.py: the cell's draw and the pooled fidelity kernels it rests on."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift_regime import PoolGrams, cell_draw, conclude, pool_gram
from qlife.params import MonitorQuantum
from qlife.quantum.kernels import QuantumFidelityKernel


@pytest.mark.parametrize(("m", "f"), [(20, 0.0), (20, 0.2), (50, 0.5)])
def test_cell_draw_keeps_reference_and_window_disjoint(m, f):
    # every pool row names itself: reference rows i >= 0, drifted rows -(i + 1)
    pool = {"ref": np.repeat(np.arange(300.0)[:, None], 16, 1),
            "drift": -np.repeat(np.arange(1, 151.0)[:, None], 16, 1)}
    ref, live = cell_draw(pool, m, f, seed=7)
    assert ref.shape == live.shape == (m, 16)
    ids_ref, ids_live = ref[:, 0], live[:, 0]
    assert len(set(ids_ref)) == m and len(set(ids_live)) == m  # no row twice
    assert not set(ids_ref) & set(ids_live)  # no reference row in the window
    assert (ids_ref >= 0).all() and int((ids_live < 0).sum()) == round(f * m)  # the drifted rows: only in the window


def test_pooled_kernel_is_the_registry_kernel():
    q = MonitorQuantum(features=4)
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((12, 4))
    grams = PoolGrams(pool, {0.3: pool_gram(q, 0.3, pool)})
    direct = QuantumFidelityKernel(q.backend, 4, bandwidth=0.3, reps=q.reps, kind=q.kind)
    Z = pool[[5, 0, 9, 3, 11]]
    k = grams.kernel(q, "quantum_fidelity", 0.3)
    np.testing.assert_allclose(k.gram(Z), direct.gram(Z), atol=1e-12)
    assert k.circuits == direct.circuits == 10  # the pairs i < j, counted as the registry kernel counts them
    with pytest.raises(KeyError, match="outside the pool"):
        k.gram(rng.standard_normal((3, 4)))


def test_conclusion_follows_the_numbers():
    def cell(f, fq, fu, a_only, b_only, p):
        pair = {"diff": fq - fu, "a_only": a_only, "b_only": b_only, "mcnemar_p": p, "holm_p": p,
                "bootstrap_95": [0, 0]}
        rates = {"fuse": fu, "fuse_quantum": fq, "fuse_quantum_only": fu, "quantum_fidelity": fu, "rbf_tuned": fu}
        return {"scenario": "s", "f": f, "tests": {t: {"rate": r, "ci95": [0.0, 0.2]} for t, r in rates.items()},
                "paired": {"fuse_quantum-fuse": pair, "fuse_quantum_only-fuse": {**pair, "diff": 0.0, "holm_p": 1.0},
                           "quantum_fidelity-rbf_tuned": {**pair, "diff": 0.0, "holm_p": 1.0}}}

    up = {"a": cell(0.0, 0.05, 0.05, 0, 0, 1.0), "b": cell(0.5, 0.9, 0.6, 30, 0, 1e-6)}
    line, facts = conclude(up, "s", 0.05)
    assert facts["fuse_quantum-fuse"]["verdict"] == "helps" and "MMD-FUSE helps" in line
    down = {"a": cell(0.0, 0.05, 0.05, 0, 0, 1.0), "b": cell(0.5, 0.6, 0.62, 1, 3, 0.6)}
    assert conclude(down, "s", 0.05)[1]["fuse_quantum-fuse"]["verdict"] == "makes no detectable difference"
