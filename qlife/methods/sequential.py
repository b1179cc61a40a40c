"""A drift alarm with a false-alarm guarantee over time: an e-detector over the stream of live windows.

Stage 7 decides each window on its own at alpha; left running hourly that is ~36 false alarms in 30 days. This
module turns the windows' evidence into one alarm whose false alarms are bounded per period of windows.

Inputs: one number per window, in order: the window's drift statistic against the fixed reference (e.g. the RBF
MMD^2 of qlife.methods.drift; larger = more drift) or its permutation p-value. Outputs: a JSON state (the caller
persists it between runs) and per window a decision: alarm, the detector's value, its threshold and what the
threshold means in words. No params file: the caller passes `settings` (a dict, validated here, DEFAULTS).

The math
--------
1. A p-value per window, uniform when nothing drifted.
   - evidence="conformal" (default): the rank of the window's statistic S_t among the windows since the history
     was last cleared, Vovk's smoothed conformal p-value with ties broken by theta_t ~ U(0, 1] drawn from
     (seed, update count):  p_t = (#{s < t: S_s > S_t} + theta_t (#{s < t: S_s = S_t} + 1)) / t.
     If the windows are exchangeable given the reference (i.i.d. traffic, one fixed reference, the same test and
     window size), p_1, p_2, ... are *exactly* independent U(0, 1) (Vovk, Gammerman & Shafer, "Algorithmic
     learning in a random world", ch. 8 "testing exchangeability"; Vovk et al. 2021, "Retrain or not retrain:
     conformal test martingales for change-point detection"), whatever the reference is: a reference that sits
     apart from the traffic lifts every S_t alike and the ranks remove it.
   - several statistics per window (a list of numbers, the same count every window): one conformal p-value
     for them all. Each window's combined score is its largest rank, over the statistics, among the windows
     since the history was last cleared (mid-ranks for ties): alpha_s = max_j #{r: S_r,j < S_s,j} + #{r != s:
     S_r,j = S_s,j} / 2 over the bag of windows 1..t, recomputed as the bag grows; p_t is the rank of alpha_t
     among alpha_1..alpha_t, smoothed as above. A score that depends on the bag (the unordered set of windows)
     and the window is a conformity measure in Vovk's sense, so these p-values are again exactly independent
     U(0, 1) under exchangeability (Vovk, Gammerman & Shafer ch. 2, 8), with no split of the false-alarm rate
     across the statistics; a window extreme in any one statistic gets a small p-value. With one statistic it is
     the p-value above.
   - evidence="p_value": the window's own permutation p-value (p = 0 from an underflowed test read as 1e-16: a
     smaller e-value, conservative). Valid for each window, but see "Limits": with a shared reference the
     p-values are dependent and, given that reference, not uniform.
2. E-values by calibrators f with E[f(U)] = 1 for U ~ U(0, 1): the normal-score calibrators exp(d z - d^2 / 2)
   with z = Phi^-1(1 - p) (`shifts`, default d = 1, 2, 3: the likelihood ratio of a shift d of the statistic's
   normal score; a share f of new documents moves MMD^2 by f^2 MMD^2(P, Q), a shift), and the power calibrators
   k p^(k - 1), 0 < k < 1 (`kappas`, none by default: the likelihood ratio of Beta(k, 1) p-values, for p-values
   that pile up near 0, which conformal ranks never do: they are >= ~1/t). On SST-2 (bench/sequential.py) the
   normal-score calibrators alone found 10% drift as fast as or faster than with power calibrators added.
3. Detector: per calibrator the Shiryaev-Roberts e-detector R_t = e_t (1 + R_{t-1}), R_0 = 0, the sum over every
   possible change time j <= t of the product of e-values since j; the alarm statistic is their mean over the
   calibrators (a mixture: it adapts to weak and strong drift at a cost of log K). Alarm when it reaches c (Shin,
   Ramdas & Rinaldo, "E-detectors: a nonparametric framework for sequential change detection", 2023).
4. Guarantee. With independent U(0, 1) p-values, E[R_t | past] = 1 + R_{t-1}: R_t - t is a martingale, R_t a
   non-negative submartingale with E[R_t] = t. Hence for any threshold c:
   - Doob's maximal inequality: P(a false alarm within m windows) <= m / c;
   - optional stopping: on average at least c windows before a false alarm (ARL0 >= c);
   - with restarts (reset after each alarm, history kept when it was false), the sum of R at the alarms plus the
     running R, minus t, is again a martingale: E[false alarms in m windows] <= m / c. And since conformal
     p-values after an alarm are independent of those before it, the times between false alarms are i.i.d.:
     P(k or more false alarms within m windows) <= P(one within m)^k.
   calibration="bound" sets c = period / false_alarms_per_period from these alone. calibration="simulated"
   (default) uses the fact that conformal p-values are exactly i.i.d. uniform, so the detector's null law is
   known and free of the data: c is the (1 - rate) quantile of max_{t <= period} R_t over `sim_streams` simulated
   streams (taken at an order statistic that exceeds the true quantile with 95% probability): P(a false alarm
   within a period) <= rate, exactly up to that Monte Carlo confidence, at a threshold ~2.5x below Doob's
   (2,821 vs 7,200 at the defaults), so drift is found sooner. The defaults (0.1 per 720 windows) give P(any false alarm
   in 30 days of hourly windows) <= 0.1 and P(two or more) <= 0.01 (issue 34's goal: at most one in 30 days in
   95% of months, i.e. P(two or more) <= 0.05, holds for any rate up to 0.22).
5. The change's start: per calibrator the CUSUM C_t = e_t max(1, C_{t-1}) restarts where it falls below 1; the
   window where the largest one last restarted is reported as the likely first drifted window.

Limits (say them where the alarm is shown)
------------------------------------------
- Conformal evidence tests *change within the stream*, not difference from the reference: a stream that differs
  from the reference from the first window after a reset never alarms (the per-window tests, kept in the report,
  see it), and a drift that starts soon after a reset has few windows to be ranked against (after t clean
  windows a drifted window's p-value is >= ~1/(t + 1)): detection is slow for the first ~50 windows.
- Exchangeability: hourly traffic with a daily cycle, or windows of different sizes, are not exchangeable; feed a
  size-free statistic (the permutation p-value, larger_is_drift=False) when window sizes vary.
- evidence="p_value": the bounds need p-values independent and uniform given the past. Given a fixed reference
  they are i.i.d. but not uniform (a reference that happens to sit apart from the traffic makes every window's
  p-value small): E[e | reference] > 1 for such references, and the detector then drifts to a false alarm however
  high c is. tests/methods/test_sequential.py shows it on simulated p-values, bench/sequential.py on real data.
- A reset that clears the history (retrained model, new reference, drifted traffic accepted as the new normal)
  starts the guarantee afresh; keeping the history is right only when nothing changed (a false alarm).

API: `init_state(settings) -> state`, `update(state, value, window_id) -> (state, decision)`, `reset(state,
reason, keep_history=False) -> state`, `decide(state)` (the standing without a new window); `simulate(settings,
values)` runs the same arithmetic on many streams at once (vectorised numpy: tests, benches); `validate_settings`,
`threshold`, `describe`.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np

STATE_VERSION = 1
EVIDENCE = ("conformal", "p_value")
CALIBRATION = ("simulated", "bound")
DEFAULTS: dict[str, Any] = {
    "evidence": "conformal",  # conformal ranks of the statistic among past windows, or the window's own p-value
    "larger_is_drift": True,  # conformal: True for a statistic (MMD^2), False when the values are p-values
    "period": 720,  # windows in the period the false-alarm rate is stated for (30 days of hourly windows)
    "false_alarms_per_period": 0.1,  # simulated: P(any false alarm in a period); bound: expected false alarms
    "calibration": "simulated",  # the threshold: simulated on uniform p-values, or Doob's bound period / rate
    "kappas": [],  # power calibrators k p^(k-1) (e.g. [0.05, 0.2, 0.5]: p-values that pile up near 0)
    "shifts": [1.0, 2.0, 3.0],  # normal-score calibrators exp(d z - d^2 / 2), z = Phi^-1(1 - p)
    "seed": 0,  # conformal tie-breaking and the threshold's simulation
    "sim_streams": 2000,  # streams simulated for the threshold
}
P_FLOOR = 1e-16  # a p-value of 0 (an underflowed test) is read as this: a smaller e-value, still valid
MAX_RESETS_KEPT = 50  # the reset log keeps the latest ones
CONFIDENCE = 0.95  # the simulated threshold holds its rate at this confidence over the Monte Carlo draw


# ----------------------------------------------------------------------------- settings


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _whole(x: Any, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def validate_settings(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings with defaults filled in; a ValueError sentence for anything unknown or out of range."""
    given = dict(settings or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sequential setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    s = {**copy.deepcopy(DEFAULTS), **given}
    if s["evidence"] not in EVIDENCE:
        raise ValueError(f"evidence must be one of {list(EVIDENCE)}; got {s['evidence']!r}")
    if s["calibration"] not in CALIBRATION:
        raise ValueError(f"calibration must be one of {list(CALIBRATION)}; got {s['calibration']!r}")
    if not isinstance(s["larger_is_drift"], bool):
        raise ValueError(f"larger_is_drift must be true or false; got {s['larger_is_drift']!r}")
    if not _whole(s["period"], 1):
        raise ValueError(f"period must be a whole number of windows >= 1; got {s['period']!r}")
    rate, top = s["false_alarms_per_period"], 1 if s["calibration"] == "simulated" else s["period"]
    if not _number(rate) or not 0 < rate < top:
        what = ("a probability in (0, 1): the chance of any false alarm within a period" if top == 1 else
                f"a number in (0, period = {s['period']}): expected false alarms per period, so that the "
                "threshold period / rate exceeds 1")
        raise ValueError(f"false_alarms_per_period must be {what}; got {rate!r}")
    for key, ok, what in (("kappas", lambda x: 0 < x < 1, "exponents in (0, 1)"),
                          ("shifts", lambda x: 0 < x <= 10, "shifts in (0, 10]")):
        v = s[key]
        if not isinstance(v, list | tuple) or not all(_number(x) and ok(x) for x in v) or len(set(v)) != len(v):
            raise ValueError(f"{key} must be a list of distinct calibrator {what}; got {v!r}")
        s[key] = [float(x) for x in v]
    if not s["kappas"] and not s["shifts"]:
        raise ValueError("kappas and shifts are both empty: the detector needs at least one calibrator")
    if not _whole(s["seed"], 0):
        raise ValueError(f"seed must be a non-negative integer; got {s['seed']!r}")
    if not _whole(s["sim_streams"], 100) or s["sim_streams"] > 1_000_000:
        raise ValueError(f"sim_streams must be a whole number in [100, 1,000,000]; got {s['sim_streams']!r}")
    s["false_alarms_per_period"] = float(rate)
    return s


def threshold(settings: dict[str, Any]) -> float:
    """The alarm threshold c: period / rate (bound), or the simulated one (`simulated_threshold`)."""
    s = validate_settings(settings)
    if s["calibration"] == "bound":
        return s["period"] / s["false_alarms_per_period"]
    return simulated_threshold(s)


def simulated_threshold(settings: dict[str, Any]) -> float:
    """(see _simulated_threshold; cached per settings within a process)"""
    s = validate_settings(settings)
    return _simulated_threshold(s["period"], s["false_alarms_per_period"], tuple(s["kappas"]), tuple(s["shifts"]),
                                s["seed"], s["sim_streams"])


@functools.lru_cache(maxsize=32)
def _simulated_threshold(period: int, rate: float, kappas: tuple[float, ...], shifts: tuple[float, ...], seed: int,
                         n: int) -> float:
    """The c at which `sim_streams` streams of `period` independent U(0, 1] p-values (what conformal p-values are
    under exchangeability) reach R_t >= c within the period in at most a share `false_alarms_per_period`, at 95%
    confidence over the simulation (an order statistic of the simulated maxima). Linear arithmetic, streams in
    blocks."""
    from scipy.special import bdtrc  # P(Binomial > k); scipy.stats takes seconds to import

    rng = np.random.default_rng([seed, 20_250_934])
    maxima, block = [], max(1, 2_000_000 // (period * (len(kappas) + len(shifts))))
    for start in range(0, n, block):
        with np.errstate(over="ignore"):  # a stream far above every threshold may overflow to inf: still above
            e = np.exp(log_e_values(1.0 - rng.random((min(block, n - start), period)), list(kappas), list(shifts)))
        r, top = np.zeros((e.shape[0], e.shape[2])), np.zeros(e.shape[0])
        for t in range(period):
            r = e[:, t] * (1.0 + r)
            np.maximum(top, r.mean(1), out=top)
        maxima.append(top)
    m = np.sort(np.concatenate(maxima))[::-1]  # m[j - 1]: the j-th largest maximum
    # m[j - 1] is at or above the true (1 - rate) quantile of the maximum iff at least j of the n streams reached
    # that quantile, a Binomial(n, rate) count: take the smallest threshold for which that has probability 95%
    j = np.arange(1, n + 1)
    ok = bdtrc(j - 1, n, rate) >= CONFIDENCE
    if not ok.any():
        raise ValueError(f"sim_streams = {n} cannot resolve a false-alarm rate of {rate:g}: raise sim_streams")
    return float(max(m[int(j[ok].max()) - 1], 1.0 + 1e-9))


def describe(settings: dict[str, Any], c: float) -> str:
    """What the threshold `c` means, in words."""
    s = validate_settings(settings)
    rate, m = s["false_alarms_per_period"], s["period"]
    cal = "; ".join(([f"exp(d z - d^2/2), z = Phi^-1(1 - p), d in {{{', '.join(f'{d:g}' for d in s['shifts'])}}}"]
                     if s["shifts"] else [])
                    + ([f"k p^(k-1), k in {{{', '.join(f'{k:g}' for k in s['kappas'])}}}"] if s["kappas"] else []))
    source = ("the rank of each window's statistic among the windows since the last reset (conformal p-value)"
              if s["evidence"] == "conformal" else "each window's own p-value")
    if s["calibration"] == "simulated":
        how = (f"{c:,.0f}, set by simulating {s['sim_streams']:,} streams of independent uniform p-values so that "
               f"P(a false alarm within {m} windows) <= {rate:g} (at {CONFIDENCE:.0%} confidence over the "
               f"simulation); for any threshold Doob's inequality also proves at most {m / c:.2g} false alarms "
               f"expected per {m} windows, and on average at least {c:,.0f} windows before one")
    else:
        how = (f"{c:,.0f} = {m} windows / {rate:g}: at most {rate:g} false alarms expected per {m} windows (so "
               f"P(any false alarm within {m} windows) <= {rate:g}, Doob), and on average at least {c:,.0f} "
               "windows before one")
    out = (f"alarm when the Shiryaev-Roberts e-detector on {source}, averaged over the calibrators ({cal}), "
           f"reaches {how}; restarted after each false alarm, P(k or more within {m} windows) <= {rate:g}^k")
    if s["evidence"] == "conformal":
        return out + "; valid if the windows are exchangeable given the reference (same reference, test, window size)"
    return out + ("; valid only if the p-values are independent and uniform given the past: p-values that share "
                  "one reference are not, and the bound can fail (bench/sequential.py measures it)")


# ----------------------------------------------------------------------------- the arithmetic (shared by update
# and simulate, so that one window at a time and many streams at once compute the same numbers)


def theta(seed: int, i: int) -> float:
    """The tie-breaking draw of the i-th update, in (0, 1]."""
    return 1.0 - float(np.random.default_rng([seed, i]).random())


def bag_ranks(bag: np.ndarray) -> np.ndarray:
    """(t, c) statistics of a bag of windows -> (t,) each window's combined score: its largest mid-rank over the
    columns within the bag, #{others below} + #{others equal} / 2 (the module's point 1)."""
    bag = np.asarray(bag, dtype=np.float64)
    srt = np.sort(bag, axis=0)
    ranks = np.empty_like(bag)
    for j in range(bag.shape[1]):
        lo = np.searchsorted(srt[:, j], bag[:, j], side="left")
        hi = np.searchsorted(srt[:, j], bag[:, j], side="right")
        ranks[:, j] = lo + (hi - lo - 1) / 2.0
    return ranks.max(axis=1)


def conformal_p_value(past: np.ndarray, score: float | np.ndarray, tie: float) -> float:
    """Smoothed conformal p-value of `score` among the `past` scores (larger = more extreme). Several statistics
    (score (c,), past (t, c)): of the window's combined score among the bag's (bag_ranks)."""
    past = np.asarray(past, dtype=np.float64)
    if np.ndim(score) == 1:
        alpha = bag_ranks(np.concatenate([past.reshape(-1, len(score)), np.asarray(score, float)[None]]))
        past, score = alpha[:-1], alpha[-1]
    gt, eq = int((past > score).sum()), int((past == score).sum())
    return (gt + tie * (eq + 1)) / (len(past) + 1)


def conformal_p_values(scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """conformal_p_value along the windows' axis of `scores` (streams, T), each window against its stream's past;
    (streams, T, c): several statistics per window, combined by their ranks in the bag (conformal_p_value)."""
    scores, ties = np.asarray(scores, dtype=np.float64), np.asarray(ties, dtype=np.float64)
    if scores.ndim == 3:
        return _combined_p_values(scores, ties)
    p = np.empty_like(scores)
    for t in range(scores.shape[-1]):
        past, now = scores[..., :t], scores[..., t:t + 1]
        gt, eq = (past > now).sum(-1), (past == now).sum(-1)
        p[..., t] = (gt + ties[..., t] * (eq + 1)) / (t + 1)
    return p


def _combined_p_values(scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """conformal_p_values of (streams, T, c) statistics: every window's mid-rank per column within the bag kept up
    to date as each window joins it (as integers: twice the mid-rank), the bag's combined scores their maximum."""
    n, t_max, c = scores.shape
    cols = np.ascontiguousarray(np.moveaxis(scores, -1, 0))  # (c, streams, T)
    ranks = np.zeros((c, n, t_max), dtype=np.int64)
    alpha = np.empty((n, t_max), dtype=np.int64)
    p = np.empty((n, t_max))
    for t in range(t_max):
        for j in range(c):
            past, now = cols[j, :, :t], cols[j, :, t:t + 1]
            gt, eq = past > now, past == now
            r = ranks[j, :, :t]
            r += 2 * gt  # the new window is below these windows: their rank rises by one (a half if equal)
            r += eq
            ranks[j, :, t] = 2 * t - 2 * gt.sum(1) - eq.sum(1)  # 2 #{below} + #{equal}
        np.max(ranks[:, :, :t + 1], axis=0, out=alpha[:, :t + 1])
        past_a, now_a = alpha[:, :t], alpha[:, t:t + 1]
        p[:, t] = ((past_a > now_a).sum(1) + ties[:, t] * ((past_a == now_a).sum(1) + 1)) / (t + 1)
    return p


def log_e_values(p: np.ndarray | float, kappas: list[float], shifts: list[float]) -> np.ndarray:
    """log e of every calibrator (last axis: the power ones, then the normal-score ones) at p-values `p`:
    log k + (k - 1) log p, and d z - d^2 / 2 with z = Phi^-1(1 - p) (-inf at p = 1)."""
    from scipy.special import ndtri

    p = np.clip(np.asarray(p, dtype=np.float64), P_FLOOR, 1.0)[..., None]
    k, d = np.asarray(kappas, dtype=np.float64), np.asarray(shifts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -ndtri(p)
        normal = np.where(np.isneginf(z), -np.inf, d * z - d * d / 2.0)
    return np.concatenate([np.log(k) + (k - 1.0) * np.log(p), normal], axis=-1)


def sr_step(log_r: np.ndarray, log_e: np.ndarray) -> np.ndarray:
    """log R_t = log e_t + log(1 + R_{t-1}) (log R_0 = -inf)."""
    return log_e + np.logaddexp(0.0, log_r)


def cusum_step(log_c: np.ndarray, log_e: np.ndarray) -> np.ndarray:
    """log C_t = log e_t + max(0, log C_{t-1})."""
    return log_e + np.maximum(0.0, log_c)


def mixture(log_r: np.ndarray) -> np.ndarray:
    """log of the mean over the calibrators (last axis); -inf where every one is 0."""
    top = np.max(log_r, axis=-1, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (shift + np.log(np.exp(log_r - shift).sum(-1, keepdims=True)))[..., 0] - math.log(log_r.shape[-1])


def _dump(x: np.ndarray) -> list[float | None]:
    """JSON has no -infinity: a zero detector (log -inf) is stored as null."""
    return [float(v) if np.isfinite(v) else None for v in x]


def _load(x: list[float | None] | None, k: int) -> np.ndarray:
    return np.full(k, -np.inf) if x is None else np.array([-np.inf if v is None else v for v in x], dtype=np.float64)


# ----------------------------------------------------------------------------- one window at a time


def init_state(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fresh detector (JSON-serialisable: persist it between runs, pass it back to `update`). The simulated
    threshold is computed here once (~1 s at the defaults) and kept in the state."""
    s = validate_settings(settings)
    c = threshold(s)
    return {"version": STATE_VERSION, "settings": s, "threshold": c, "meaning": describe(s, c),
            "updates": 0, "since_reset": 0, "history": [], "log_sr": None, "log_cusum": None, "cusum_start": None,
            "alarm": None, "last": None, "resets": []}


def _check_state(state: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a sequential detector state of version {STATE_VERSION}: start one with init_state")
    validate_settings(state["settings"])
    return state


def _number_value(settings: dict[str, Any], value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"the window's value must be a number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"the window's value must be finite; got {v}")
    if (settings["evidence"] == "p_value" or not settings["larger_is_drift"]) and not 0.0 <= v <= 1.0:
        raise ValueError(f"a p-value must lie in [0, 1]; got {v}")
    return v


def _value(settings: dict[str, Any], value: Any, history: list) -> float | list[float]:
    """The window's value as a float (p-values are checked to lie in [0, 1]), or several statistics as a list of
    floats (evidence 'conformal' only; as many as every window in the history has)."""
    if not isinstance(value, list | tuple | np.ndarray):
        v: float | list[float] = _number_value(settings, value)
    else:
        if settings["evidence"] != "conformal" or len(value) < 1:
            raise ValueError("several statistics per window need evidence 'conformal' and at least one of them; "
                             f"got {value!r}")
        v = [_number_value(settings, x) for x in value]
    if history and isinstance(history[0][1], list) != isinstance(v, list) or (
            history and isinstance(v, list) and len(history[0][1]) != len(v)):
        raise ValueError(f"the window's value {v!r} has another shape than the counted windows' ({history[0][1]!r}): "
                         "one stream, one statistic (or the same statistics); reset the state for another")
    return v


def update(state: dict[str, Any], value: float, window_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Count one window: its statistic (evidence='conformal', larger = more drift unless larger_is_drift=False)
    or its p-value (evidence='p_value'). Returns the new state (the one given is not changed) and the decision.
    The alarm latches: it stays open until `reset`. A window already counted since the history was last cleared
    is not counted twice (the decision says `counted_before`); the same window with another value is refused."""
    state = copy.deepcopy(_check_state(state))
    s, wid, v = state["settings"], str(window_id), _value(state["settings"], value, state["history"])
    for old_id, old_v in state["history"]:
        if old_id == wid:
            if old_v != v:
                raise ValueError(f"window {wid!r} was counted with value {old_v!r}, now {v!r}: this state belongs to "
                                 "another reference or test; reset it (reset(state, reason)) or use its own state")
            return state, {**decide(state, wid), "counted_before": True}
    if s["evidence"] == "conformal":
        sign = 1.0 if s["larger_is_drift"] else -1.0
        past = sign * np.array([h[1] for h in state["history"]], dtype=np.float64)
        p = conformal_p_value(past, sign * np.asarray(v), theta(s["seed"], state["updates"]))
    else:
        p = v
    log_e = log_e_values(p, s["kappas"], s["shifts"])
    k = log_e.shape[-1]
    prev_c = _load(state["log_cusum"], k)
    log_c = cusum_step(prev_c, log_e)
    starts = state["cusum_start"] or [wid] * k
    state["cusum_start"] = [wid if not c > 0.0 else st for c, st in zip(prev_c, starts)]
    state["log_sr"], state["log_cusum"] = _dump(sr_step(_load(state["log_sr"], k), log_e)), _dump(log_c)
    state["history"].append([wid, v])
    state["updates"] += 1
    state["since_reset"] += 1
    state["last"] = {"window_id": wid, "value": v}
    raised = state["alarm"] is None and _log_stat(state) >= math.log(state["threshold"])
    if raised:
        state["alarm"] = {"window_id": wid, "log10_statistic": _log_stat(state) / math.log(10),
                          "change_start": _change_start(state)}
    with np.errstate(over="ignore"):
        e_mean = float(np.exp(log_e).mean())
    return state, {**decide(state, wid), "raised": raised, "p_value": p, "e_value": min(e_mean, 1e300)}


def _log_stat(state: dict[str, Any]) -> float:
    if state["log_sr"] is None:
        return -math.inf
    return float(mixture(_load(state["log_sr"], len(state["log_sr"]))))


def _change_start(state: dict[str, Any]) -> str | None:
    """Where the largest CUSUM last restarted: the likely first drifted window."""
    if state["log_cusum"] is None:
        return None
    return state["cusum_start"][int(np.argmax(_load(state["log_cusum"], len(state["log_cusum"]))))]


def decide(state: dict[str, Any], window_id: str | None = None) -> dict[str, Any]:
    """The detector's standing: alarm (open until reset), its statistic and threshold, what they mean."""
    log_stat = _log_stat(state)
    return {"window_id": window_id, "alarm": state["alarm"] is not None, "raised": False, "counted_before": False,
            "statistic": math.exp(min(log_stat, 690.0)),  # capped at ~1e300: JSON has no infinity
            "log10_statistic": None if log_stat == -math.inf else log_stat / math.log(10),
            "threshold": state["threshold"], "log10_threshold": math.log10(state["threshold"]),
            "meaning": state["meaning"], "evidence": state["settings"]["evidence"],
            "windows_since_reset": state["since_reset"], "history": len(state["history"]),
            "change_start": _change_start(state), "open_alarm": state["alarm"]}


def reset(state: dict[str, Any], reason: str, keep_history: bool = False) -> dict[str, Any]:
    """Restart the detector after an alarm is answered (or at any time), with the reason logged. Clear the history
    (default) when the reference or the traffic changed: retrained model, new reference, drift accepted as the new
    normal. Keep it (`keep_history=True`) only when nothing changed: the alarm was false."""
    state = copy.deepcopy(_check_state(state))
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a reset needs a reason (e.g. 'retrained on windows 120-130', 'false alarm dismissed')")
    state["resets"] = (state["resets"] + [{
        "after_window": None if state["last"] is None else state["last"]["window_id"], "reason": reason.strip(),
        "history_kept": bool(keep_history), "windows_since_previous": state["since_reset"],
        "alarm": state["alarm"]}])[-MAX_RESETS_KEPT:]
    state.update(since_reset=0, log_sr=None, log_cusum=None, cusum_start=None, alarm=None)
    if not keep_history:
        state["history"] = []
    return state


# ----------------------------------------------------------------------------- many streams at once


def simulate(settings: dict[str, Any] | None, values: np.ndarray, ties: np.ndarray | None = None,
             restart: bool = True, threshold_value: float | None = None) -> dict[str, np.ndarray]:
    """The detector on many streams (rows of `values`, windows in columns) at once, with `update`'s arithmetic.
    `ties`: the conformal tie-breaking draws (streams, T); None: every stream uses `theta(seed, i)` as `update`
    does. values (streams, T, c): several statistics per window (evidence 'conformal'). restart=True resets the
    detector (history kept) after every alarm, as a dismissed false alarm would; False: the first alarm only.
    `threshold_value`: c (None: `threshold(settings)`, simulated if so set).
    Returns alarms (streams, T) bool, first (streams,) the first alarm's window index or -1, count (streams,),
    log_stat (streams, T) the log of the alarm statistic, p (streams, T) the p-values fed to the calibrators,
    threshold c."""
    s = validate_settings(settings)
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    if x.ndim == 3 and s["evidence"] != "conformal":
        raise ValueError("several statistics per window need evidence 'conformal'")
    n, t_max = x.shape[:2]
    if (s["evidence"] == "p_value" or not s["larger_is_drift"]) and ((x < 0) | (x > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    if s["evidence"] == "conformal":
        if ties is None:
            ties = np.broadcast_to([theta(s["seed"], i) for i in range(t_max)], (n, t_max))
        p = conformal_p_values(x if s["larger_is_drift"] else -x, ties)
    else:
        p = x
    c = threshold(s) if threshold_value is None else float(threshold_value)
    log_c = math.log(c)
    log_r = np.full((n, len(s["kappas"]) + len(s["shifts"])), -np.inf)
    alarms, log_stat = np.zeros((n, t_max), dtype=bool), np.empty((n, t_max))
    live = np.ones(n, dtype=bool)
    for t in range(t_max):
        log_r = sr_step(log_r, log_e_values(p[:, t], s["kappas"], s["shifts"]))
        log_stat[:, t] = mixture(log_r)
        hit = (log_stat[:, t] >= log_c) & live
        alarms[:, t] = hit
        if restart:
            log_r[hit] = -np.inf
        else:
            live &= ~hit
    first = np.where(alarms.any(1), alarms.argmax(1), -1)
    return {"alarms": alarms, "first": first, "count": alarms.sum(1), "log_stat": log_stat, "p": p, "threshold": c}
