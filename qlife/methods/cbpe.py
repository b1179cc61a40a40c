"""Quality without labels: confidence calibration and confidence-based performance estimation (CBPE).

A classifier's confidences are calibrated on a labelled split (the validation split), then an unlabelled live
window's accuracy or macro-F1 is estimated from the calibrated probabilities alone, as NannyML's CBPE does.
Arrays in, plain results out: no paths, no params, no MLflow.

    cal = fit_calibrator(val_logits, y_val, method="temperature")   # or "isotonic", or "none" (raw softmax)
    res = estimate(cal, window_logits, metric="accuracy", n_resamples=1000, seed=0)
    # {"metric", "estimate", "ci95", "n", "sd", "interval", "calibration", "prior_shift"}
    res = estimate(cal, window_logits, prior_shift="em")           # adjusted to the window's class priors
    # ... and "priors": {"calibration", "window", "lr_stat", "p_value", "iterations", "converged"}
    res = with_truth(res, cal, window_logits, y_window)             # where the window has labels

Scores are logits (``inputs="logits"``, the default) or probabilities (``inputs="probs"``, rows summing to 1),
an (n, k) matrix; a 1-d array is a binary classifier's single logit (or positive-class probability). The
calibrator keeps the kind it was fitted on and expects the same kind later. The model's prediction is always the
argmax of its raw scores: calibration changes confidences, never predictions.

Calibration methods (``CALIBRATIONS``):
  none         the raw softmax (or the given probabilities): the uncalibrated baseline.
  temperature  softmax(z / T), one T > 0 fitted by minimising the validation NLL over log T (bounded to
               [1e-2, 1e2]; NLL is convex in 1/T). Keeps the ranking of every row; T > 1 softens an
               over-confident model. With probabilities, z = log p.
  isotonic     an increasing step map g fitted by isotonic regression of correctness (1 if the prediction was
               right) on the raw max-probability; the predicted class gets g(max-prob), and the rest 1 - g is
               shared by the other classes in proportion to their raw probabilities (uniformly when they are
               all 0). Exact for accuracy; for several classes the off-argmax shares are an assumption.

Estimates (``METRICS``), from the calibrated matrix P and the predictions yhat of the window:
  accuracy   mean_i P[i, yhat_i].
  macro_f1   expected confusion entries per class k: E[TP_k] = sum_{yhat_i = k} P[i, k],
             E[FP_k] = sum_{yhat_i = k} (1 - P[i, k]), E[FN_k] = sum_{yhat_i != k} P[i, k];
             F1_k = 2 TP / (2 TP + FP + FN) (0 when the denominator is 0, as qlife.quality counts an absent
             class), macro = mean over the k classes. A ratio of expectations: close to E[F1] for windows of
             hundreds of documents.

Intervals (``ci95``; ``interval=``):
  labels     (default) where the window's true metric would fall if the calibration holds on this window:
             labels are drawn from the calibrated probabilities of these very documents (each y_i ~ P[i]) and
             the metric of the fixed predictions is scored, ``n_resamples`` times. For accuracy its sd is the
             Poisson-binomial sd sqrt(sum_i p_i (1 - p_i)) / n. This is the interval to put beside a labelled
             window's true accuracy.
  bootstrap  the sampling spread of the estimate: the window's documents are resampled with replacement and the
             estimate recomputed. It describes how much the estimate moves with the sample of documents, not
             where this window's realized labels fall (it is narrower than ``labels``: it ignores the label noise
             of each document).
Neither interval covers calibration error: when the window's p(y | x) differs from the validation split's, the
estimate is biased by an amount no interval here sees. CBPE stays about right under covariate shift (p(x)
changes, p(y | x) fixed: the calibration still holds on every document), is biased under label shift (the
priors change, so p(y | x) does) by an amount that grows with the class overlap, unless ``prior_shift="em"``
corrects for it (below), and is wrong under concept shift (the same documents get other labels): the estimate
does not move while the true quality drops. An estimated drop is a reason to look; a stable estimate is not proof
that quality held.

Prior shift (``prior_shift=``, ``PRIOR_SHIFTS``):
  none  (default) the calibrated probabilities as they are.
  em    the EM of Saerens, Latinne & Decaestecker (2002) on the unlabelled window (``adjust_priors``): under a
        label shift (p(x | y) fixed, priors pi(y) moved) p_win(y | x) is proportional to p(y | x) pi_win(y) /
        pi_cal(y); pi_win is the window's mean of the adjusted probabilities, iterated from pi_cal to convergence
        (``EM_TOL``, ``EM_MAX_ITER``), priors clipped to at least ``PRIOR_FLOOR``. The estimate then uses the
        adjusted probabilities (the predictions stay the model's), and the result reports the window's priors.
        The intervals are drawn from the adjusted probabilities: they leave out the uncertainty of the priors.
        Where the classifier is weak on the window its likelihood over the priors is flat and the EM's priors
        wander to the floor (a window of honest 0.6 confidences under a calibration of 0.9 ones, balanced: EM read
        it 97% one class, estimate 0.52 for a true 0.61; the likelihood-ratio test rejected "no shift" there too,
        so gating on it does not help).
  bbse  black-box shift estimation (Lipton, Wang & Smola 2018): the window's share of each predicted class mu
        solves C w = mu, with C the calibration split's joint confusion matrix (P(predicted i, true j)); w >= 0
        is the ratio pi_win(y) / pi_cal(y) (pi_cal the calibration split's label frequencies), and the calibrated
        probabilities are reweighted by it. It reads only the predictions' counts, through a matrix measured on
        labels, so a weak window (low confidences, balanced predictions) reads as unshifted where the EM's flat
        likelihood lets its priors wander; it is consistent under label shift when C is invertible.
        The reference pi_cal is the calibrator's ``priors``: the mean calibrated p(y | x) over the calibration
        split, not its label frequencies. The two differ where a calibration map fixes confidence but not a class
        bias (temperature and isotonic keep the argmax); with the mean the calibration split is a fixed point of
        the EM (its own window priors come out unchanged), with the label frequencies a window drawn like the
        calibration split would already read as shifted (SST-2 calibrated on its test sentences, measured when
        this was chosen: 37% negative for windows that are 49% negative). Under covariate shift the EM may take a
        move of p(x) within a class for a prior change, and it does nothing for concept shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

CALIBRATIONS = ("none", "temperature", "isotonic")
METRICS = ("accuracy", "macro_f1")
INTERVALS = ("labels", "bootstrap")
PRIOR_SHIFTS = ("none", "em", "bbse")
Inputs = Literal["logits", "probs"]

# log T is searched in [log 1e-2, log 1e2]: a T at a bound means the validation split cannot pin it (for example
# every validation prediction right: the NLL falls as T -> 0).
_LOG_T_BOUNDS = (float(np.log(1e-2)), float(np.log(1e2)))
_PROB_ATOL = 1e-4  # rows of given probabilities must sum to 1 within this
_CHUNK = 4_000_000  # resamples x documents held in memory at once
PRIOR_FLOOR = 1e-3  # window priors are kept in [PRIOR_FLOOR, 1]: a class is never declared wholly absent
EM_TOL = 1e-6  # EM stops when no prior moves by more than this in an iteration
EM_MAX_ITER = 1000


def _scores(x: Any, inputs: str, name: str, n_classes: int | None = None) -> np.ndarray:
    """Validate and return an (n, k) float64 score matrix (a 1-d binary input becomes two columns)."""
    if inputs not in ("logits", "probs"):
        raise ValueError(f"inputs must be 'logits' or 'probs'; got {inputs!r}.")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array of scores; it could not be read as one ({e}).") from e
    if a.ndim == 1:  # a binary classifier's single score: the positive class's logit or probability
        a = np.stack([np.zeros_like(a), a], 1) if inputs == "logits" else np.stack([1.0 - a, a], 1)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (n, k) matrix of {inputs} or a 1-d binary score; got shape {a.shape}.")
    if len(a) == 0:
        raise ValueError(f"{name} is empty: there is nothing to calibrate or estimate from.")
    if a.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 class columns; got shape {a.shape}.")
    if n_classes is not None and a.shape[1] != n_classes:
        raise ValueError(f"{name} has {a.shape[1]} class columns but the calibrator was fitted on {n_classes}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values ({int((~np.isfinite(a)).sum())} of them).")
    if inputs == "probs":
        if (a < 0).any() or (a > 1).any():
            raise ValueError(f"{name} was given as probabilities but holds values outside [0, 1].")
        bad = np.abs(a.sum(1) - 1.0) > _PROB_ATOL
        if bad.any():
            raise ValueError(f"{name} was given as probabilities but {int(bad.sum())} rows do not sum to 1; "
                             "pass inputs='logits' for unnormalised scores.")
    return a


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _logits(a: np.ndarray, inputs: str) -> np.ndarray:
    return np.log(np.clip(a, 1e-300, None)) if inputs == "probs" else a


def _raw_probs(a: np.ndarray, inputs: str) -> np.ndarray:
    return a if inputs == "probs" else _softmax(a)


def _nll(z: np.ndarray, y: np.ndarray, log_t: float) -> float:
    s = z / np.exp(log_t)
    m = s.max(1)
    lse = m + np.log(np.exp(s - m[:, None]).sum(1))
    return float(np.mean(lse - s[np.arange(len(y)), y]))


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration map. ``probs(scores)`` gives the calibrated (n, k) probability matrix, ``predict``
    the model's predictions (argmax of the raw scores), ``to_dict`` a JSON-safe summary."""

    method: str  # one of CALIBRATIONS
    n_classes: int
    inputs: str  # "logits" | "probs": the kind of scores the calibrator expects
    temperature: float = 1.0  # fitted T (1.0 unless method == "temperature")
    iso_x: np.ndarray | None = field(default=None, repr=False)  # isotonic map: raw max-prob knots
    iso_y: np.ndarray | None = field(default=None, repr=False)  # isotonic map: calibrated max-prob at the knots
    fit_info: dict = field(default_factory=dict)  # validation figures of the fit
    # mean calibrated p(y | x) over the calibration split: the class priors the calibrated probabilities imply
    # there, the start and reference of the prior-shift adjustment (None: a hand-made calibrator; prior_shift="em"
    # then refuses). Not the label frequencies (fit_info["val_label_priors"]): see the module doc.
    priors: np.ndarray | None = field(default=None, repr=False)

    def _check(self, scores: Any, name: str) -> np.ndarray:
        return _scores(scores, self.inputs, name, self.n_classes)

    def predict(self, scores: Any) -> np.ndarray:
        """The model's predicted class per row: argmax of the raw scores (calibration never changes it)."""
        return self._check(scores, "scores").argmax(1)

    def probs(self, scores: Any) -> np.ndarray:
        """Calibrated class probabilities (n, k); each row sums to 1."""
        return self._probs(self._check(scores, "scores"))

    def _probs(self, a: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return _raw_probs(a, self.inputs).copy()
        if self.method == "temperature":
            return _softmax(_logits(a, self.inputs) / self.temperature)
        raw = _raw_probs(a, self.inputs)
        pred = a.argmax(1)
        rows = np.arange(len(a))
        conf = raw[rows, pred]
        g = np.clip(np.interp(conf, self.iso_x, self.iso_y), 0.0, 1.0)
        rest = raw.copy()
        rest[rows, pred] = 0.0
        mass = rest.sum(1)
        uniform = np.full_like(rest, 1.0 / (self.n_classes - 1))
        uniform[rows, pred] = 0.0
        share = np.where(mass[:, None] > 0, rest / np.where(mass > 0, mass, 1.0)[:, None], uniform)
        out = share * (1.0 - g)[:, None]
        out[rows, pred] = g
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "n_classes": int(self.n_classes), "inputs": self.inputs,
                "temperature": float(self.temperature),
                "isotonic_knots": None if self.iso_x is None else int(len(self.iso_x)),
                "priors": None if self.priors is None else [float(v) for v in self.priors],
                **{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.fit_info.items()}}


def _labels(y: Any, n: int, n_classes: int, name: str) -> np.ndarray:
    try:
        a = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be integer class indices; it could not be read as numbers ({e}).") from e
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} must be a 1-d array of {n} class indices (one per row of scores); "
                         f"got shape {a.shape}.")
    if not np.isfinite(a).all() or (a != np.round(a)).any():
        raise ValueError(f"{name} must hold integer class indices; it holds NaN or fractional values.")
    if (a < 0).any() or (a >= n_classes).any():
        raise ValueError(f"{name} must hold class indices in [0, {n_classes}); got values from {int(a.min())} "
                         f"to {int(a.max())}.")
    return a.astype(np.int64)


def fit_calibrator(val_scores: Any, y_val: Any, method: str = "temperature", inputs: Inputs = "logits") -> Calibrator:
    """Fit a calibration map on a labelled split (the validation split, never the training split).

    ``val_scores``: (n, k) logits or probabilities (``inputs``), or a 1-d binary score; ``y_val``: n class indices
    in [0, k). ``method``: "temperature", "isotonic" or "none". Raises ValueError on empty, non-finite or
    mis-shaped input, labels out of range, or validation labels of a single class.
    """
    if method not in CALIBRATIONS:
        raise ValueError(f"method must be one of {CALIBRATIONS}; got {method!r}.")
    a = _scores(val_scores, inputs, "val_scores")
    n, k = a.shape
    y = _labels(y_val, n, k, "y_val")
    if len(np.unique(y)) < 2:
        raise ValueError(f"y_val holds a single class ({int(y[0])}): calibration needs validation documents of at "
                         "least two classes, or it learns nothing about the model's mistakes.")
    raw = _raw_probs(a, inputs)
    pred = a.argmax(1)
    correct = (pred == y).astype(np.float64)
    info: dict[str, Any] = {"n_val": int(n), "val_accuracy": float(correct.mean()),
                            "val_confidence_raw": float(raw.max(1).mean())}
    temperature, iso_x, iso_y = 1.0, None, None
    if method == "temperature":
        from scipy.optimize import minimize_scalar

        z = _logits(a, inputs)
        res = minimize_scalar(lambda t: _nll(z, y, t), bounds=_LOG_T_BOUNDS, method="bounded",
                              options={"xatol": 1e-6})
        temperature = float(np.exp(res.x))
        info.update(val_nll_raw=_nll(z, y, 0.0), val_nll=_nll(z, y, float(res.x)),
                    temperature_at_bound=bool(min(abs(res.x - b) for b in _LOG_T_BOUNDS) < 1e-3))
    elif method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw.max(1), correct)
        iso_x, iso_y = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
    cal = Calibrator(method, k, inputs, temperature, iso_x, iso_y, info)
    P = cal._probs(a)
    info["val_confidence"] = float(P[np.arange(n), pred].mean())  # calibrated p of the prediction
    info["val_label_priors"] = [float(v) for v in np.bincount(y, minlength=k) / n]
    # the joint confusion C[i, j] = P(predicted i, true j) on the calibration split: what "bbse" inverts
    info["val_confusion"] = (np.bincount(pred * k + y, minlength=k * k).reshape(k, k) / n).tolist()
    return replace(cal, priors=P.mean(0))


def _expected_f1(P: np.ndarray, pred: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Expected macro-F1 from the calibrated matrix; ``w`` (R, n) document weights gives one value per row."""
    k = P.shape[1]
    onehot = np.eye(k)[pred]  # (n, k)
    tp_doc = onehot * P  # P[i, k] where yhat_i = k
    if w is None:
        w = np.ones((1, len(P)))
    tp = w @ tp_doc
    pred_count = w @ onehot  # TP + FP
    mass = w @ P  # TP + FN
    denom = pred_count + mass  # 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(1)


def _realized(metric: str, pred: np.ndarray, Y: np.ndarray, k: int) -> np.ndarray:
    """The metric of fixed predictions against label rows Y (R, n): one value per row."""
    if metric == "accuracy":
        return (Y == pred[None, :]).mean(1)
    f1 = np.zeros((len(Y), k))
    for c in range(k):
        is_c, pred_c = Y == c, pred == c
        tp = (is_c & pred_c[None, :]).sum(1)
        denom = is_c.sum(1) + pred_c.sum()
        f1[:, c] = np.divide(2 * tp, denom, out=np.zeros(len(Y)), where=denom > 0)
    return f1.mean(1)


def realized_metric(metric: str, pred: Any, y_true: Any, n_classes: int) -> float:
    """Accuracy or macro-F1 of predictions against true labels (macro over all ``n_classes``, absent ones 0)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    pred = np.asarray(pred, dtype=np.int64)
    y = _labels(y_true, len(pred), n_classes, "y_true")
    return float(_realized(metric, pred, y[None, :], n_classes)[0])


def _reweight(P: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Rows of P times ratio (k,), renormalised: Bayes' rule for p(y | x) under priors moved by ratio."""
    Q = P * ratio[None, :]
    return Q / Q.sum(1, keepdims=True)


def _window_loglik(P: np.ndarray, ratio: np.ndarray) -> float:
    """Log-likelihood of the window's documents under priors ratio * pi_train, relative to pi_train:
    sum_i log sum_y P[i, y] ratio_y (0 at ratio = 1)."""
    return float(np.log(np.clip(P @ ratio, 1e-300, None)).sum())


def _floored(pi: np.ndarray, floor: float) -> np.ndarray:
    """pi (summing to 1) with every entry at least floor and the sum kept at 1: the mass above the floor is
    rescaled into 1 - k floor."""
    above = np.clip(pi / pi.sum() - floor, 0.0, None)
    if above.sum() <= 0:
        return np.full_like(pi, 1.0 / len(pi))
    return floor + above * (1.0 - len(pi) * floor) / above.sum()


def _bbse(P: np.ndarray, pred: np.ndarray, calibrator: Calibrator) -> tuple[np.ndarray, dict[str, Any]]:
    """BBSE (module doc): the importance weights w = pi_win / pi_cal from C w = mu (least squares, w >= 0), the
    window's priors pi_cal w (floored, summing to 1), and P reweighted by their ratio to pi_cal."""
    from scipy.optimize import nnls

    k = P.shape[1]
    C = np.asarray(calibrator.fit_info["val_confusion"], dtype=np.float64)
    base = _floored(np.asarray(calibrator.fit_info["val_label_priors"], dtype=np.float64), PRIOR_FLOOR)
    mu = np.bincount(pred, minlength=k) / max(len(pred), 1)
    w, _ = nnls(C, mu)
    pi = _floored(w * base, PRIOR_FLOOR) if (w * base).sum() > 0 else base
    return _reweight(P, pi / base), {"calibration": [float(v) for v in base], "window": [float(v) for v in pi],
                                     "method": "bbse", "predicted_shares": [float(v) for v in mu],
                                     "confusion_condition": float(np.linalg.cond(C))}


def adjust_priors(P: Any, train_priors: Any, tol: float = EM_TOL, max_iter: int = EM_MAX_ITER,
                  floor: float = PRIOR_FLOOR) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """EM re-estimation of a window's class priors (Saerens, Latinne & Decaestecker 2002).

    ``P``: (n, k) calibrated p(y | x) of the window's documents, valid under ``train_priors`` (k,). Starting from
    pi = train_priors: p_new(y | x) = P[x, y] pi(y) / pi_train(y), renormalised per row; pi = mean of p_new over
    the window; repeated until no prior moves by more than ``tol`` or ``max_iter`` iterations. Every prior is kept at
    ``floor`` or above, the sum at 1 (``_floored``): a tiny or one-class window cannot drive a prior to 0, where
    its ratio would stay stuck. Away from the floor each step does not lower the window's likelihood, and the fixed
    point is its maximum-likelihood priors; they are the window's true priors when p(x | y) is the calibration
    split's (a label shift) and P is calibrated there.

    Returns (adjusted P, window priors, info) with info = {"iterations", "converged", "loglik_ratio"}: the
    log-likelihood gain of the window priors over train_priors (twice it is the likelihood-ratio statistic of
    "no prior shift", chi-square with k - 1 degrees of freedom when there is none).
    """
    P = np.asarray(P, dtype=np.float64)
    base = np.asarray(train_priors, dtype=np.float64)
    if P.ndim != 2 or base.shape != (P.shape[1],):
        raise ValueError(f"P must be an (n, k) matrix and train_priors k values; got {P.shape} and {base.shape}.")
    if not 0 < floor < 1 / P.shape[1]:
        raise ValueError(f"floor must be in (0, 1/k) = (0, {1 / P.shape[1]:.3g}); got {floor}.")
    base = _floored(base, floor)
    pi, converged, it = base.copy(), False, 0
    while it < int(max_iter) and not converged:
        new = _floored(_reweight(P, pi / base).mean(0), floor)
        converged = bool(np.abs(new - pi).max() <= tol)
        pi, it = new, it + 1
    ratio = pi / base
    return _reweight(P, ratio), pi, {"iterations": it, "converged": converged,
                                     "loglik_ratio": _window_loglik(P, ratio)}


def _resample_values(metric: str, P: np.ndarray, pred: np.ndarray, interval: str, n_resamples: int,
                     seed: int) -> np.ndarray:
    n, k = P.shape
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    out = []
    step = max(1, _CHUNK // (n * (k if metric == "macro_f1" else 1)))
    for start in range(0, n_resamples, step):
        r = min(step, n_resamples - start)
        if interval == "bootstrap":
            w = rng.multinomial(n, np.full(n, 1.0 / n), size=r).astype(np.float64)
            if metric == "accuracy":
                out.append(w @ P[rows, pred] / n)
            else:
                out.append(_expected_f1(P, pred, w))
        elif metric == "accuracy":  # labels: document i is right with probability P[i, yhat_i]
            out.append((rng.random((r, n)) < P[rows, pred][None, :]).mean(1))
        else:  # labels: y_i ~ Categorical(P[i])
            cum = np.cumsum(P, 1)
            cum[:, -1] = 1.0
            u = rng.random((r, n, 1))
            Y = (u > cum[None, :, :]).sum(2)
            out.append(_realized(metric, pred, Y, k))
    return np.concatenate(out)


def estimate(calibrator: Calibrator, window_scores: Any, metric: str = "accuracy", n_resamples: int = 1000,
             seed: int = 0, interval: str = "labels", prior_shift: str = "none") -> dict[str, Any]:
    """Estimated ``metric`` of the model on an unlabelled window, with a 95% interval (see the module doc:
    ``labels`` = where the true metric falls if calibration holds; ``bootstrap`` = sampling spread of the
    estimate; neither covers calibration error).

    ``prior_shift`` (``PRIOR_SHIFTS``): "none" uses the calibrated probabilities as they are; "em" first moves them
    to the window's class priors estimated by EM (``adjust_priors``, from and relative to ``calibrator.priors``);
    "bbse" moves them to the priors that the window's predicted-class counts imply through the calibration
    split's confusion matrix (``_bbse``).

    Returns ``{"metric", "estimate", "ci95": [lo, hi], "n", "sd", "interval", "calibration", "prior_shift"}``
    (builtin types); with a prior shift also ``"priors": {"calibration", "window", "method", ...}``: the reference
    priors, the window's estimated priors (one per class, summing to 1: "the window looks 97% negative"); for em
    the likelihood-ratio statistic of "no prior shift" and its chi-square (k - 1) p-value (valid when the
    calibration holds) and how EM ended ("lr_stat", "p_value", "iterations", "converged"); for bbse the window's
    predicted-class shares and the confusion matrix's condition number ("predicted_shares", "confusion_condition").
    """
    if not isinstance(calibrator, Calibrator):
        raise ValueError(f"calibrator must be a Calibrator from fit_calibrator; got {type(calibrator).__name__}.")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}; got {interval!r}.")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}.")
    if prior_shift not in PRIOR_SHIFTS:
        raise ValueError(f"prior_shift must be one of {PRIOR_SHIFTS}; got {prior_shift!r}.")
    if prior_shift == "bbse" and "val_confusion" not in calibrator.fit_info:
        raise ValueError("prior_shift 'bbse' needs the calibration split's confusion matrix: fit the calibrator with "
                         "fit_calibrator.")
    if prior_shift != "none" and calibrator.priors is None:
        raise ValueError("prior_shift needs the calibration split's class priors, and this calibrator has none: "
                         "fit it with fit_calibrator.")
    a = calibrator._check(window_scores, "window_scores")
    P = calibrator._probs(a)
    pred = a.argmax(1)
    priors = None
    if prior_shift == "bbse":
        P, priors = _bbse(P, pred, calibrator)
    elif prior_shift != "none":
        from scipy.stats import chi2

        adjusted, pi, info = adjust_priors(P, calibrator.priors)
        lr = max(0.0, 2.0 * info["loglik_ratio"])
        priors = {"calibration": [float(v) for v in calibrator.priors], "window": [float(v) for v in pi],
                  "method": "em", "lr_stat": lr, "p_value": float(chi2.sf(lr, P.shape[1] - 1)),
                  "iterations": int(info["iterations"]), "converged": bool(info["converged"])}
        P = adjusted
    if metric == "accuracy":
        point = float(P[np.arange(len(P)), pred].mean())
    else:
        point = float(_expected_f1(P, pred)[0])
    vals = _resample_values(metric, P, pred, interval, int(n_resamples), seed)
    lo, hi = np.percentile(vals, [2.5, 97.5])
    out = {"metric": metric, "estimate": point, "ci95": [float(lo), float(hi)], "n": int(len(a)),
           "sd": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, "interval": interval,
           "calibration": calibrator.method, "prior_shift": prior_shift}
    if priors is not None:
        out["priors"] = priors
    return out


def with_truth(result: dict[str, Any], calibrator: Calibrator, window_scores: Any, y_true: Any) -> dict[str, Any]:
    """``result`` of ``estimate`` with the labelled window's truth beside it: ``true``, ``error`` (estimate -
    true), ``abs_error`` and ``in_ci`` (the true value inside ``ci95``)."""
    pred = calibrator.predict(window_scores)
    if len(pred) != result.get("n"):
        raise ValueError(f"the window has {len(pred)} rows but the estimate was made on {result.get('n')}.")
    true = realized_metric(result["metric"], pred, y_true, calibrator.n_classes)
    lo, hi = result["ci95"]
    return {**result, "true": true, "error": result["estimate"] - true, "abs_error": abs(result["estimate"] - true),
            "in_ci": bool(lo <= true <= hi)}
