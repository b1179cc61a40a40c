"""bench/doc_scores.py: its draw is bench.drift's, the scores it compares, and the conclusion from the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from bench.doc_scores import conclude, draw_idx, goal, knn_scores, summarise_cell, supervised_rows, window_rows
from bench.drift import draw


@pytest.mark.parametrize(("m", "f"), [(50, 0.0), (50, 0.1), (200, 0.2)])
def test_draw_is_bench_drift_draw(m, f):
    rng = np.random.default_rng(0)
    feats = {"ref": rng.standard_normal((900, 4)), "drift": rng.standard_normal((300, 4)) + 5}
    idx = draw_idx(900, 300, 600, m, f, seed=11)
    mine = window_rows({**feats, "clean": None}, idx)
    for a, b in zip(mine, draw(feats, 600, m, f, seed=11, truth=True)):
        np.testing.assert_array_equal(a, b)
    assert int(mine[2].sum()) == round(f * m)


def test_separate_clean_pool_and_supervised_rows_leave_the_window_out():
    # every row names itself: reference pool i, clean pool 1000 + i, drifted pool -(i + 1)
    pool = {"ref": np.arange(700.0)[:, None], "clean": [1000 + np.arange(100.0)[:, None]],
            "drift": [-np.arange(1, 101.0)[:, None]]}
    idx = draw_idx(700, 100, 600, 50, 0.2, seed=3, n_clean=100)
    ref, window, mask = window_rows(pool, idx)
    assert (ref >= 0).all() and (ref < 1000).all() and len(set(ref[:, 0])) == 600
    assert ((window[:, 0] < 0) == (mask == 1)).all() and mask.sum() == 10
    assert (window[mask == 0, 0] >= 1000).all()
    clean, drifted = supervised_rows(pool, idx)
    assert not set(clean[:, 0]) & (set(ref[:, 0]) | set(window[:, 0]))
    assert not set(drifted[:, 0]) & set(window[:, 0]) and len(drifted) == 90 and len(clean) == 100 + 60


def test_knn_scores_are_the_mean_distance_to_the_nearest_reference_rows():
    rng = np.random.default_rng(1)
    ref, win = rng.standard_normal((40, 3)), rng.standard_normal((7, 3))
    d = np.linalg.norm(win[:, None] - ref[None], axis=2)
    np.testing.assert_allclose(knn_scores(ref, win, 5), np.sort(d, 1)[:, :5].mean(1), atol=1e-9)


def test_conclusion_follows_the_numbers():
    def cell(dc, oc):
        aucs = {"domain_classifier": dc, "ocsvm_rbf": oc, "ocsvm_quantum_fidelity": oc}
        c = summarise_cell(aucs)
        c["goal"] = goal(c, ["ocsvm_rbf", "ocsvm_quantum_fidelity"])
        return c

    good, bad, clean = cell([0.8, 0.75, 0.78], [0.4, 0.45, 0.3]), cell([0.6, 0.55, 0.62], [0.4, 0.3, 0.45]), \
        cell([0.9, 0.9, 0.9], [0.6, 0.7, 0.65])
    assert good["goal"]["holds"] and good["goal"]["firm"] and not bad["goal"]["holds"]
    assert not clean["goal"]["applies"]
    assert good["vs_ocsvm"]["ocsvm_rbf"]["dc_above_and_ocsvm_below"]["k"] == 3
    assert bad["vs_ocsvm"]["ocsvm_rbf"]["dc_above_and_ocsvm_below"]["k"] == 0
    line = conclude({"variants": {"held_out": {"cells": {"a": good, "b": bad, "c": clean}}}})
    assert "below 0.5 in 2 of 3 cells" in line and "above 0.7 in 1 (a)" in line and "not in 1 (b)" in line
    assert line.endswith("the goal holds only in part.")
    assert conclude({"variants": {"held_out": {"cells": {"a": good, "c": clean}}}}).endswith("the goal holds.")
    assert conclude({"variants": {"held_out": {"cells": {"b": bad}}}}).endswith("the goal does not hold.")


def test_window_scores_rank_a_mean_shift_and_give_every_scorer():
    from bench.doc_scores import auc, window_scores
    from qlife.params import Params

    rng = np.random.default_rng(2)
    ref = rng.standard_normal((120, 16))
    window = np.concatenate([rng.standard_normal((30, 16)), rng.standard_normal((10, 16)) + 3.0])
    mask = np.r_[np.zeros(30), np.ones(10)]
    labelled = (rng.standard_normal((100, 16)), rng.standard_normal((50, 16)) + 3.0)
    scores, dc = window_scores(Params().monitor, ref, window, labelled)
    assert set(scores) == {"domain_classifier", "ocsvm_rbf", "ocsvm_quantum_fidelity", "knn", "ocsvm_rbf_16",
                           "supervised"}
    assert all(v.shape == (40,) for v in scores.values())
    # a plain outlying shift: every scorer finds it, and the window drifts
    for name in ("domain_classifier", "knn", "ocsvm_rbf_16", "supervised"):
        assert auc(mask, scores[name]) > 0.9, name
    assert set(dc) == {"auc", "p_value"}


def test_window_scores_with_the_residual_column_keep_the_pca_scorers_and_add_the_residual_ones():
    from bench.doc_scores import auc, summarise_cell, window_scores
    from qlife.params import Params

    rng = np.random.default_rng(3)
    ref = rng.standard_normal((120, 17))
    window = np.concatenate([rng.standard_normal((30, 17)), rng.standard_normal((10, 17))])
    window[30:, -1] += 3.0  # the drifted rows: off the subspace, not in the 16 PCA columns
    mask = np.r_[np.zeros(30), np.ones(10)]
    labelled = (rng.standard_normal((100, 17)), rng.standard_normal((50, 17)) + np.r_[np.zeros(16), 3.0])
    mp = Params().monitor
    plain, w16 = window_scores(mp, ref[:, :16], window[:, :16], tuple(x[:, :16] for x in labelled))
    both, w = window_scores(mp, ref, window, labelled, residual=True)
    assert set(both) == set(plain) | {"residual", "domain_classifier_res", "supervised_res"}
    for name in plain:
        np.testing.assert_allclose(both[name], plain[name], err_msg=name)
    assert w["auc"] == w16["auc"] and {"auc_res", "p_value_res"} <= set(w)
    for name in ("residual", "domain_classifier_res", "supervised_res"):
        assert auc(mask, both[name]) > 0.9, name
    cell = summarise_cell({k: [auc(mask, v)] * 2 for k, v in both.items()}, [w, w])
    assert {"auc_mean_res", "rejection_rate_0.05_res"} <= set(cell["dc_window"])


def test_window_texts_are_the_same_rows_as_the_features():
    from bench.doc_scores import supervised_text_rows, window_texts

    # every row names itself, as features and as text: reference pool i, clean pool 1000 + i, drifted -(i + 1)
    pool = {"ref": np.arange(700.0)[:, None], "clean": [1000 + np.arange(100.0)[:, None]],
            "drift": [-np.arange(1, 101.0)[:, None]]}
    tpool = {k: [np.array([str(int(x)) for x in p[0][:, 0]], dtype=object)] if isinstance(p, list)
             else np.array([str(int(x)) for x in p[:, 0]], dtype=object) for k, p in pool.items()}
    for n_clean, p, t in ((100, pool, tpool), (None, {**pool, "clean": None, "drift": pool["drift"][0]},
                                               {**tpool, "clean": None, "drift": tpool["drift"][0]})):
        idx = draw_idx(700, 100, 500, 50, 0.2, seed=5, n_clean=n_clean)
        ref, window, _ = window_rows(p, idx)
        ref_t, window_t = window_texts(t, idx)
        assert ref_t == [str(int(x)) for x in ref[:, 0]] and window_t == [str(int(x)) for x in window[:, 0]]
        clean, drifted = supervised_rows(p, idx)
        clean_t, drifted_t = supervised_text_rows(t, idx)
        assert clean_t == [str(int(x)) for x in clean[:, 0]] and drifted_t == [str(int(x)) for x in drifted[:, 0]]


def test_the_text_check_names_the_failing_cells_and_their_ceilings():
    def cell(text, oc):
        aucs = {"domain_classifier": [0.5, 0.5, 0.5], "ocsvm_rbf": oc, "text_dc": text,
                "supervised": [0.66, 0.66, 0.66], "supervised_text": [0.9, 0.9, 0.9]}
        c = summarise_cell(aucs)
        c["goal"] = goal(c, ["ocsvm_rbf"])
        return c

    good, bad = cell([0.9, 0.85, 0.95], [0.4, 0.4, 0.4]), cell([0.6, 0.65, 0.6], [0.4, 0.45, 0.3])
    assert good["goal"]["holds_text_dc"] and good["goal"]["firm_text_dc"] and not bad["goal"]["holds_text_dc"]
    assert good["vs_ocsvm"]["ocsvm_rbf"]["text_dc_above_and_ocsvm_below"]["k"] == 3
    line = conclude({"variants": {"held_out": {"cells": {"a": good, "b": bad}}}})
    assert "text domain classifier" in line and "above 0.7 in 1 of those 2 cells (a;" in line
    assert "it fails in b (0.62: supervised ceiling 0.66 on the 16 features, 0.90 on the words)" in line
