"""bench/monitoring.py's residual: its window statistics, and the two ways several statistics share a detector."""

from __future__ import annotations

import numpy as np
import pytest


def test_residual_values_read_the_last_column_and_the_knn_divergence_its_weighted_copy():
    from bench.monitoring_stats import RES_NAMES, TOP, residual_values
    from qlife.methods.window_stats import knn_divergence

    rng = np.random.default_rng(0)
    ref, W = rng.standard_normal((300, 5)), rng.standard_normal((100, 5))
    v = dict(zip(RES_NAMES, residual_values(ref, W)))
    x = W[:, -1]
    assert v["res_mean"] == pytest.approx(x.mean()) and v["res_top"] == pytest.approx(np.sort(x)[-TOP:].mean())
    grid = np.sort(np.r_[ref[:, -1], x])
    ks = max((ref[:, -1] <= g).mean() - (x <= g).mean() for g in grid)
    assert v["res_ks"] == pytest.approx(ks)
    w2 = np.r_[np.ones(4), 2.0]
    assert v["kl_k20_res_w2"] == pytest.approx(knn_divergence(ref * w2, W * w2, 20))
    lifted = W.copy()
    lifted[:10, -1] += 4.0  # a tenth of the window off the subspace
    up = dict(zip(RES_NAMES, residual_values(ref, lifted)))
    assert up["res_top"] > v["res_top"] + 1.0 and up["res_ks"] >= v["res_ks"]
    with pytest.raises(ValueError, match="unknown residual statistic"):
        residual_values(ref, W, ["res_max"])


def test_several_statistics_share_a_detector_in_one_p_value_or_split_the_rate():
    from bench.monitoring import detector

    rng = np.random.default_rng(1)
    values = rng.standard_normal((50, 200, 2))
    values[:, 150:, 1] += 3.0  # the second statistic moves from window 150
    for combine in ("bag", "any"):
        al = detector({"sim_streams": 500}, values, seed=0, combine=combine)
        assert al.shape == (50, 200)
        assert al[:, :150].any(1).mean() <= 0.2  # false alarms: at most the rate (0.1) and its noise
        assert al[:, 150:160].any(1).mean() > 0.9, combine
    one = detector({"sim_streams": 500}, values[..., :1], seed=0)  # one column: the plain detector
    np.testing.assert_array_equal(one, detector({"sim_streams": 500}, values[..., 0], seed=0))


def test_the_lexical_pass_replays_the_feature_pass_windows_and_counts_like_new_words():
    """bench.monitoring_lexical.draws replays stream_job's draws (the same rows, the same change hours), and the
    fast path's statistics equal the definitions (OOV rates, qlife.methods.window_stats.new_words)."""
    from bench.monitoring import stream_job
    from bench.monitoring_lexical import LEX_NAMES, TOP, LexPool, draws
    from qlife.methods.window_stats import new_words, vocabulary, words

    a = {"seed": 3, "n_ref": 40, "n": 30, "windows": 12, "follow": 3, "fractions": [0.1, 0.2], "permutations": 20}
    rng = np.random.default_rng(0)
    # features whose first column is the row's index: stream_job's windows show which rows they drew
    feats = {k: np.column_stack([np.arange(m), rng.standard_normal((m, 2))]) for k, m in
             (("pool", 200), ("topic", 50), ("vocab", 50))}
    z = stream_job(feats, 1, 2, a, ["mean_shift"], 0, False)
    d = draws(a, 1, 2, 200, {"topic": 50, "vocab": 50})
    assert np.array_equal(d["taus"], z["taus"]) and len(d["null"]) == 12
    assert all(k == "pool" and len(i) == 30 for k, i in d["null"][0])
    W = [np.concatenate([feats[k][i] for k, i in w]) for w in d["null"]]
    sd = np.array([feats["pool"][d["reference"]].std(0) + 1e-9])
    mu = feats["pool"][d["reference"]].mean(0)
    assert np.allclose([(((x - mu) / sd).mean(0) ** 2).sum() for x in W], z["null"][:, 0])  # the same windows
    base = [f"w{i}" for i in range(60)]
    vocab = vocabulary(base)
    pools = {"pool": [" ".join(rng.choice(base, 5)) + f" h{i}" for i in range(200)],
             "topic": [f"Brand{i % 4} " + " ".join(rng.choice(base, 5)) for i in range(50)],
             "vocab": ["tbh " + " ".join(rng.choice(base, 4)) for _ in range(50)]}
    lp = LexPool(vocab, pools)
    for w in (d["null"][0], d["drifted"][0][1][0], d["drifted"][1][1][0]):
        texts = [pools[k][j] for k, i in w for j in i]
        v = dict(zip(LEX_NAMES, lp.values(w)))
        toks = [words(t) for t in texts]
        rates = [sum(x not in vocab for x in t) / len(t) for t in toks]
        assert v["oov_rate"] == pytest.approx(sum(x not in vocab for t in toks for x in t) / sum(map(len, toks)))
        assert v["oov_top"] == pytest.approx(np.sort(rates)[-TOP:].mean())
        assert all(v[f"nw_m{m}"] == new_words(vocab, texts, m) for m in (2, 3, 4, 5))
    assert dict(zip(LEX_NAMES, lp.values(d["drifted"][1][1][0])))["nw_m3"] == 6  # 20% of 30: 'tbh' in 6
