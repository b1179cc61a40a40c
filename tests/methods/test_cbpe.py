"""Confidence-based performance estimation: calibration and quality estimates on seeded synthetic models.

Synthetic models whose calibration is known: labels are drawn from given probabilities (then the softmax of the
logits is calibrated by construction), or documents from Gaussian classes whose exact Bayes posterior is the
model (then the shifts can be planted: covariate, label, concept).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlife.methods.cbpe import (
    CALIBRATIONS,
    PRIOR_FLOOR,
    Calibrator,
    adjust_priors,
    estimate,
    fit_calibrator,
    realized_metric,
    with_truth,
)


def calibrated_model(n: int, k: int = 3, scale: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels y ~ softmax(z): a perfectly calibrated k-class model."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(p, 1)).sum(1)
    return z, np.minimum(y, k - 1)


MUS = ((-1.0, 0.0), (1.5, 0.0), (0.0, 1.8))
SDS = (1.0, 2.0, 1.0)


def gaussian_docs(n: int, priors, seed: int, shift=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Documents x | y ~ N(mu_y + shift, sd_y^2 I) in 2-d, y ~ priors (k = len(priors) of the classes MUS)."""
    rng = np.random.default_rng(seed)
    k = len(priors)
    y = rng.choice(k, n, p=priors)
    x = np.asarray(MUS[:k])[y] + np.asarray(shift) + rng.normal(size=(n, 2)) * np.asarray(SDS[:k])[y][:, None]
    return x, y


def bayes_logits(x: np.ndarray, priors) -> np.ndarray:
    """log p(y | x) up to a constant under the unshifted classes and ``priors``: the calibrated model."""
    k = len(priors)
    mus, sds = np.asarray(MUS[:k]), np.asarray(SDS[:k])
    d = ((x[:, None, :] - mus[None]) ** 2).sum(2)
    return np.log(priors)[None] - d / (2 * sds**2)[None] - 2 * np.log(sds)[None]


def posterior_labels(x: np.ndarray, priors, seed: int) -> np.ndarray:
    """Labels drawn from the model's own posterior: p(y | x) held fixed whatever p(x) is (covariate shift)."""
    z = bayes_logits(x, priors)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    u = np.random.default_rng(seed).random((len(x), 1))
    return np.minimum((u > np.cumsum(p, 1)).sum(1), len(priors) - 1)


# (1) a calibrated model: the estimate is within 0.02 of the truth over 2,000 documents, inside its interval
@pytest.mark.parametrize("method", ["temperature", "isotonic", "none"])
def test_accuracy_estimate_of_a_calibrated_model(method):
    z_val, y_val = calibrated_model(3000, seed=1)
    z_win, y_win = calibrated_model(2000, seed=2)
    cal = fit_calibrator(z_val, y_val, method=method)
    res = with_truth(estimate(cal, z_win, n_resamples=500, seed=0), cal, z_win, y_win)
    assert set(res) >= {"metric", "estimate", "ci95", "n"}
    assert res["metric"] == "accuracy" and res["n"] == 2000
    assert res["abs_error"] < 0.02
    assert res["in_ci"]
    # the labels interval of accuracy has the Poisson-binomial sd
    p = cal.probs(z_win)[np.arange(len(z_win)), cal.predict(z_win)]  # calibrated p of each prediction
    assert res["sd"] == pytest.approx(np.sqrt((p * (1 - p)).sum()) / len(p), rel=0.1)


def test_interval_covers_the_truth_at_about_95_percent():
    z_val, y_val = calibrated_model(3000, seed=1)
    cal = fit_calibrator(z_val, y_val)
    hits = [with_truth(estimate(cal, z, n_resamples=300, seed=s), cal, z, y)["in_ci"]
            for s in range(60) for z, y in [calibrated_model(200, seed=100 + s)]]
    assert 0.85 <= np.mean(hits) <= 1.0


def test_bootstrap_interval_is_the_sampling_spread_of_the_estimate_and_narrower():
    z_val, y_val = calibrated_model(3000, seed=1)
    z_win, _ = calibrated_model(1000, seed=3)
    cal = fit_calibrator(z_val, y_val)
    lab = estimate(cal, z_win, n_resamples=500, interval="labels")
    boot = estimate(cal, z_win, n_resamples=500, interval="bootstrap")
    assert lab["estimate"] == boot["estimate"]
    p = cal.probs(z_win)[np.arange(len(z_win)), cal.predict(z_win)]
    assert boot["sd"] == pytest.approx(p.std() / np.sqrt(len(p)), rel=0.15)  # sd of a mean of documents
    assert boot["sd"] < lab["sd"]  # it leaves out the label noise of each document


# (2) temperature scaling recovers a planted temperature
def test_temperature_scaling_recovers_a_planted_temperature():
    z, y = calibrated_model(5000, k=4, scale=2.0, seed=4)
    cal = fit_calibrator(z * 2.5, y, method="temperature")  # the model's logits are 2.5 x the calibrated ones
    assert cal.temperature == pytest.approx(2.5, rel=0.10)
    assert cal.fit_info["val_nll"] < cal.fit_info["val_nll_raw"]
    assert not cal.fit_info["temperature_at_bound"]
    under = fit_calibrator(z / 2.0, y, method="temperature")  # an under-confident model: T < 1
    assert under.temperature == pytest.approx(0.5, rel=0.10)


# (3) an over-confident model: raw max-prob over-estimates, the calibrated estimate is close
@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_over_confident_model_is_corrected(method):
    z_val, y_val = calibrated_model(3000, scale=1.5, seed=5)
    z_win, y_win = calibrated_model(2000, scale=1.5, seed=6)
    raw = fit_calibrator(z_val * 3, y_val, method="none")
    cal = fit_calibrator(z_val * 3, y_val, method=method)
    r_raw = with_truth(estimate(raw, z_win * 3, n_resamples=200), raw, z_win * 3, y_win)
    r_cal = with_truth(estimate(cal, z_win * 3, n_resamples=200), cal, z_win * 3, y_win)
    assert r_raw["error"] > 0.1  # raw confidence claims far more accuracy than there is
    assert r_cal["abs_error"] < 0.03
    assert cal.fit_info["val_confidence"] == pytest.approx(cal.fit_info["val_accuracy"], abs=0.02)


# (4) macro-F1 on an imbalanced 3-class window when calibration holds
@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_macro_f1_estimate_on_an_imbalanced_window(method):
    priors = np.array([0.7, 0.2, 0.1])
    x_val, y_val = gaussian_docs(3000, priors, seed=7)
    x_win, y_win = gaussian_docs(2000, priors, seed=8)
    # an over-confident model (2x the Bayes logits), calibrated on the validation split
    cal = fit_calibrator(2 * bayes_logits(x_val, priors), y_val, method=method)
    z = 2 * bayes_logits(x_win, priors)
    res = with_truth(estimate(cal, z, metric="macro_f1", n_resamples=300, seed=0), cal, z, y_win)
    assert 0.3 < res["true"] < 0.9  # a window where macro-F1 is far from accuracy and from 1
    assert res["abs_error"] < 0.03
    assert res["in_ci"]
    acc = with_truth(estimate(cal, z, n_resamples=100), cal, z, y_win)
    assert acc["true"] - res["true"] > 0.1  # the imbalance: accuracy flatters, macro-F1 does not


def test_macro_f1_expected_confusion_by_hand():
    # two documents, both predicted class 0 with calibrated p = (0.8, 0.2) and (0.6, 0.4)
    cal = fit_calibrator(np.log([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]), [0, 1, 1, 0], method="none")
    res = estimate(cal, np.log([[0.8, 0.2], [0.6, 0.4]]), metric="macro_f1", n_resamples=10)
    tp0, fp0, fn0 = 1.4, 0.6, 0.0
    tp1, fp1, fn1 = 0.0, 0.0, 0.6
    f1 = [2 * tp0 / (2 * tp0 + fp0 + fn0), 2 * tp1 / (2 * tp1 + fp1 + fn1)]
    assert res["estimate"] == pytest.approx(np.mean(f1))


# (5) shifts: what CBPE does when the window is not the validation split
def test_covariate_shift_is_followed():
    """p(x) moves towards the class boundary, p(y | x) is kept: calibration still holds on each document, so the
    estimate follows the true accuracy down."""
    priors = np.array([0.5, 0.5])
    x_val, y_val = gaussian_docs(3000, priors, seed=9)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val)
    x_in, y_in = gaussian_docs(2000, priors, seed=10)
    x_cov = np.random.default_rng(11).normal(loc=(0.2, 0.0), scale=0.6, size=(2000, 2))  # near the boundary
    y_cov = posterior_labels(x_cov, priors, seed=12)
    r_in = with_truth(estimate(cal, bayes_logits(x_in, priors), n_resamples=200), cal, bayes_logits(x_in, priors), y_in)
    z_cov = bayes_logits(x_cov, priors)
    r_cov = with_truth(estimate(cal, z_cov, n_resamples=200), cal, z_cov, y_cov)
    assert r_in["true"] - r_cov["true"] > 0.1  # a real drop
    assert r_cov["abs_error"] < 0.03  # and the estimate sees it


def test_label_shift_biases_the_estimate():
    """Class priors change from 50/50 to 10/90 with p(x | y) fixed: p(y | x) changes with them, so the
    calibration no longer holds. Here (the positive class is the wide one) the true accuracy rises (most documents
    are now of the class the model gets right more often) while the estimate falls (those documents lie in the
    region where the model was unsure): off by more than 0.05, in the wrong direction. CBPE needs a prior
    correction to follow a label shift: prior_shift="em" (tested below); the default does not do one."""
    priors = np.array([0.5, 0.5])
    x_val, y_val = gaussian_docs(4000, priors, seed=13)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val)
    x_in, y_in = gaussian_docs(5000, priors, seed=14)
    x_ls, y_ls = gaussian_docs(5000, [0.1, 0.9], seed=15)
    z_in, z_ls = bayes_logits(x_in, priors), bayes_logits(x_ls, priors)
    r_in = with_truth(estimate(cal, z_in, n_resamples=100), cal, z_in, y_in)
    r_ls = with_truth(estimate(cal, z_ls, n_resamples=100), cal, z_ls, y_ls)
    assert r_in["abs_error"] < 0.02
    assert r_ls["abs_error"] > 0.05
    assert not r_ls["in_ci"]  # the interval does not cover calibration error
    assert (r_ls["true"] - r_in["true"]) * (r_ls["estimate"] - r_in["estimate"]) < 0  # opposite directions


# (5b) label shift corrected: EM re-estimation of the window's priors (Saerens, Latinne & Decaestecker 2002)
@pytest.mark.parametrize("cal_priors, win_priors", [
    ([0.5, 0.5], [0.1, 0.9]),  # the case above, where the plain estimate goes the wrong way
    ([0.5, 0.5], [0.95, 0.05]),
    ([0.4, 0.3, 0.3], [0.1, 0.2, 0.7]),
])
@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_em_recovers_shifted_priors_and_corrects_the_estimate(cal_priors, win_priors, method):
    x_val, y_val = gaussian_docs(4000, cal_priors, seed=30)
    cal = fit_calibrator(bayes_logits(x_val, cal_priors), y_val, method=method)
    x_win, y_win = gaussian_docs(4000, win_priors, seed=31)
    z = bayes_logits(x_win, cal_priors)
    plain = with_truth(estimate(cal, z, n_resamples=100), cal, z, y_win)
    em = with_truth(estimate(cal, z, n_resamples=100, prior_shift="em"), cal, z, y_win)
    assert em["prior_shift"] == "em" and "priors" not in plain
    pri = em["priors"]
    np.testing.assert_allclose(pri["window"], win_priors, atol=0.04)
    assert pri["converged"] and pri["p_value"] < 1e-6  # the shift is plain to the likelihood-ratio test
    assert em["abs_error"] < plain["abs_error"]
    assert em["abs_error"] < 0.02
    assert em["n"] == plain["n"] and em["ci95"][0] <= em["estimate"] <= em["ci95"][1]


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_em_on_a_window_with_the_calibration_priors_changes_little(method):
    priors = [0.5, 0.5]
    x_val, y_val = gaussian_docs(4000, priors, seed=32)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val, method=method)
    moved = []
    for seed in range(33, 38):
        x_win, y_win = gaussian_docs(1000, priors, seed=seed)
        z = bayes_logits(x_win, priors)
        plain = estimate(cal, z, n_resamples=50)
        em = estimate(cal, z, n_resamples=50, prior_shift="em")
        moved.append(abs(em["estimate"] - plain["estimate"]))
        # EM follows the window's own sampled class shares (a few points off 50/50 at 1,000 documents)
        np.testing.assert_allclose(em["priors"]["window"], em["priors"]["calibration"], atol=0.06)
        assert with_truth(em, cal, z, y_win)["abs_error"] < 0.03
    assert max(moved) < 0.015 and np.mean(moved) < 0.005


def test_the_calibration_split_is_a_fixed_point_of_the_em():
    """The reference priors are the mean calibrated probabilities on the calibration split, so EM on that split
    moves nothing, even where the calibration map leaves a class bias (here a model that favours class 1)."""
    priors = [0.6, 0.4]
    x_val, y_val = gaussian_docs(3000, priors, seed=38)
    z_val = bayes_logits(x_val, priors) + np.array([0.0, 0.7])  # biased towards class 1
    cal = fit_calibrator(z_val, y_val)
    np.testing.assert_allclose(cal.priors, cal.probs(z_val).mean(0))
    assert cal.priors[1] > cal.fit_info["val_label_priors"][1] + 0.03  # the bias survives temperature scaling
    P = cal.probs(z_val)
    P_adj, pi, info = adjust_priors(P, cal.priors)
    np.testing.assert_allclose(pi, cal.priors, atol=1e-9)
    np.testing.assert_allclose(P_adj, P, atol=1e-9)
    assert info["converged"] and info["iterations"] == 1 and abs(info["loglik_ratio"]) < 1e-9
    res = estimate(cal, z_val, n_resamples=20, prior_shift="em")
    assert res["estimate"] == pytest.approx(estimate(cal, z_val, n_resamples=20)["estimate"])
    assert res["priors"]["p_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("n, win_priors", [(3, [0.5, 0.5]), (30, [1.0, 0.0]), (500, [0.0, 1.0]), (200, [0.3, 0.7])])
def test_em_priors_are_a_distribution_even_for_tiny_or_one_class_windows(n, win_priors):
    priors = [0.5, 0.5]
    x_val, y_val = gaussian_docs(2000, priors, seed=39)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val)
    x_win, _ = gaussian_docs(n, win_priors, seed=40)
    res = estimate(cal, bayes_logits(x_win, priors), n_resamples=50, prior_shift="em")
    pri = res["priors"]
    assert len(pri["window"]) == 2 and sum(pri["window"]) == pytest.approx(1.0)
    assert sum(pri["calibration"]) == pytest.approx(1.0)
    assert min(pri["window"]) >= PRIOR_FLOOR - 1e-12  # kept away from 0
    assert 0.0 <= res["estimate"] <= 1.0 and 0.0 <= pri["p_value"] <= 1.0
    assert pri["iterations"] <= 1000
    json.dumps(res)
    if win_priors == [0.0, 1.0]:  # one class: EM reads the window as (nearly) all class 1
        assert pri["window"][1] > 0.9


def test_em_corrects_macro_f1_under_label_shift():
    priors = [0.5, 0.5]
    x_val, y_val = gaussian_docs(4000, priors, seed=41)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val)
    x_win, y_win = gaussian_docs(4000, [0.1, 0.9], seed=42)
    z = bayes_logits(x_win, priors)
    plain = with_truth(estimate(cal, z, "macro_f1", n_resamples=50), cal, z, y_win)
    em = with_truth(estimate(cal, z, "macro_f1", n_resamples=50, prior_shift="em"), cal, z, y_win)
    assert plain["abs_error"] > 0.1
    assert em["abs_error"] < 0.03


def test_concept_shift_is_not_seen():
    """The same documents, other labels: in a region (x_0 > 0.5) the labels flip. The model's confidences do not
    change, so the estimate stays where it was while the true accuracy collapses: the limitation, measured."""
    priors = np.array([0.5, 0.5])
    x_val, y_val = gaussian_docs(3000, priors, seed=16)
    cal = fit_calibrator(bayes_logits(x_val, priors), y_val)
    x_win, y_win = gaussian_docs(2000, priors, seed=17)
    y_flip = np.where(x_win[:, 0] > 0.5, 1 - y_win, y_win)
    z = bayes_logits(x_win, priors)
    before = with_truth(estimate(cal, z, n_resamples=200), cal, z, y_win)
    after = with_truth(estimate(cal, z, n_resamples=200), cal, z, y_flip)
    assert before["abs_error"] < 0.03
    assert after["estimate"] == before["estimate"]
    assert after["abs_error"] > 0.1
    assert not after["in_ci"]


# (6) bad input raises ValueError with a sentence
GOOD_Z, GOOD_Y = calibrated_model(50, k=3, seed=18)


@pytest.mark.parametrize("call, match", [
    (lambda: fit_calibrator(np.zeros((0, 3)), np.zeros(0)), "empty"),
    (lambda: fit_calibrator(np.where(np.eye(50, 3) > 0, np.nan, GOOD_Z), GOOD_Y), "NaN"),
    (lambda: fit_calibrator(GOOD_Z[:, :, None], GOOD_Y), "matrix"),
    (lambda: fit_calibrator(GOOD_Z, GOOD_Y[:-1]), "one per row"),
    (lambda: fit_calibrator(GOOD_Z, np.full(50, 2)), "single class"),
    (lambda: fit_calibrator(GOOD_Z, GOOD_Y + 3), r"class indices in \[0, 3\)"),
    (lambda: fit_calibrator(GOOD_Z, GOOD_Y.astype(float) + 0.5), "integer"),
    (lambda: fit_calibrator(GOOD_Z, GOOD_Y, method="platt"), "method must be one of"),
    (lambda: fit_calibrator(np.full((50, 3), 0.5), GOOD_Y, inputs="probs"), "do not sum to 1"),
    (lambda: fit_calibrator(GOOD_Z[:, :1], GOOD_Y), "at least 2 class columns"),
])
def test_bad_calibration_input(call, match):
    with pytest.raises(ValueError, match=match) as e:
        call()
    assert str(e.value).endswith(".")


@pytest.mark.parametrize("window, kwargs, match", [
    (np.zeros((0, 3)), {}, "empty"),
    (np.array([[0.0, np.nan, 1.0]]), {}, "NaN"),
    (GOOD_Z[:, :2], {}, "fitted on 3"),
    (GOOD_Z, {"metric": "auc"}, "metric must be one of"),
    (GOOD_Z, {"interval": "normal"}, "interval must be one of"),
    (GOOD_Z, {"n_resamples": 0}, "at least 1"),
    (GOOD_Z, {"prior_shift": "saerens"}, "prior_shift must be one of"),
])
def test_bad_window_input(window, kwargs, match):
    cal = fit_calibrator(GOOD_Z, GOOD_Y)
    with pytest.raises(ValueError, match=match) as e:
        estimate(cal, window, **kwargs)
    assert str(e.value).endswith(".")


def test_prior_shift_needs_the_calibration_priors():
    cal = fit_calibrator(GOOD_Z, GOOD_Y)
    bare = Calibrator(cal.method, cal.n_classes, cal.inputs, cal.temperature)  # made by hand: no priors
    assert estimate(bare, GOOD_Z, n_resamples=10)["estimate"] == estimate(cal, GOOD_Z, n_resamples=10)["estimate"]
    with pytest.raises(ValueError, match="no(ne)?") as e:
        estimate(bare, GOOD_Z, prior_shift="em")
    assert "fit_calibrator" in str(e.value) and str(e.value).endswith(".")
    with pytest.raises(ValueError, match="confusion matrix"):
        estimate(bare, GOOD_Z, prior_shift="bbse")
    with pytest.raises(ValueError, match="train_priors"):
        adjust_priors(cal.probs(GOOD_Z), [0.5, 0.5])


def test_truth_must_match_the_window():
    cal = fit_calibrator(GOOD_Z, GOOD_Y)
    res = estimate(cal, GOOD_Z, n_resamples=10)
    with pytest.raises(ValueError, match="one per row"):
        with_truth(res, cal, GOOD_Z, GOOD_Y[:-1])
    with pytest.raises(ValueError, match="estimate was made on 50"):
        with_truth(res, cal, GOOD_Z[:10], GOOD_Y[:10])


# the API around it
@pytest.mark.parametrize("method", CALIBRATIONS)
def test_calibrated_probabilities_are_distributions_and_keep_the_prediction(method):
    z, y = calibrated_model(500, k=4, seed=19)
    cal = fit_calibrator(z * 2, y, method=method)
    P = cal.probs(z * 2)
    assert P.shape == (500, 4) and (P >= 0).all()
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(cal.predict(z * 2), z.argmax(1))
    json.dumps(cal.to_dict())


def test_probabilities_and_binary_scores_are_accepted():
    z, y = calibrated_model(1000, k=2, seed=20)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    from_logits = fit_calibrator(z, y)
    from_probs = fit_calibrator(p, y, inputs="probs")
    from_margin = fit_calibrator(z[:, 1] - z[:, 0], y)  # one logit per document
    from_positive = fit_calibrator(p[:, 1], y, inputs="probs")
    for cal in (from_probs, from_margin, from_positive):
        assert cal.temperature == pytest.approx(from_logits.temperature, rel=1e-4)
    a = estimate(from_logits, z, seed=3)
    assert estimate(from_margin, z[:, 1] - z[:, 0], seed=3)["estimate"] == pytest.approx(a["estimate"])
    assert estimate(from_positive, p[:, 1], seed=3)["estimate"] == pytest.approx(a["estimate"])


def test_same_seed_same_result_and_realized_metric():
    z, y = calibrated_model(300, seed=21)
    cal = fit_calibrator(z, y, method="isotonic")
    assert isinstance(cal, Calibrator)
    for metric in ("accuracy", "macro_f1"):
        assert estimate(cal, z, metric, seed=5) == estimate(cal, z, metric, seed=5)
    from sklearn.metrics import f1_score

    pred = z.argmax(1)
    assert realized_metric("macro_f1", pred, y, 3) == pytest.approx(f1_score(y, pred, average="macro"))
    assert realized_metric("macro_f1", np.zeros(4, int), [0, 0, 1, 1], 3) == pytest.approx((2 / 3) / 3)


def test_bbse_holds_a_weak_unshifted_window_where_em_wanders_and_finds_a_shift():
    """A model weak on the window (honest 0.6 confidences, calibrated on honest 0.9 ones): the EM's likelihood
    over the priors is flat and its priors run to the floor; BBSE reads the balanced predicted counts through the
    calibration confusion matrix and stays near the truth. On a plainly shifted window of a good model both find
    the shift."""
    rng = np.random.default_rng(40)

    def honest(n, c):  # right with probability c on every document: calibrated by construction
        y = (rng.random(n) >= 0.5).astype(int)
        pred = np.where(rng.random(n) < c, y, 1 - y)
        return np.where(pred[:, None] == np.arange(2)[None], c, 1 - c), y

    P_val, y_val = honest(2000, 0.9)
    cal = fit_calibrator(P_val, y_val, method="temperature", inputs="probs")
    err = {"bbse": [], "em": []}
    for _ in range(5):
        P, y = honest(400, 0.6)
        truth = realized_metric("accuracy", P.argmax(1), y, 2)
        for shift in err:
            r = estimate(cal, P, n_resamples=50, prior_shift=shift)
            err[shift].append(abs(r["estimate"] - truth))
            if shift == "bbse":
                assert abs(r["priors"]["window"][0] - 0.5) < 0.1 and r["priors"]["method"] == "bbse"
    assert np.mean(err["bbse"]) < 0.03 < np.mean(err["em"]), err
    x_val, y2 = gaussian_docs(4000, [0.5, 0.5], seed=41)
    cal2 = fit_calibrator(bayes_logits(x_val, [0.5, 0.5]), y2, method="temperature")
    x_win, y_win = gaussian_docs(4000, [0.95, 0.05], seed=42)
    z = bayes_logits(x_win, [0.5, 0.5])
    plain = with_truth(estimate(cal2, z, n_resamples=50), cal2, z, y_win)
    bbse = with_truth(estimate(cal2, z, n_resamples=50, prior_shift="bbse"), cal2, z, y_win)
    np.testing.assert_allclose(bbse["priors"]["window"], [0.95, 0.05], atol=0.04)
    assert bbse["abs_error"] < plain["abs_error"] and bbse["abs_error"] < 0.02
