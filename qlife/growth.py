"""How a cost grows with problem size: power-law fits, quantum resource curves, and where two curves cross.

Arrays and callables in, numbers out; no I/O (qlife.energy writes the report, bench/energy.py measures).

- `fit_power_law(x, y)`: y = a x^b by least squares on log-log points (b, a and R^2).
- `fit_circuits(n, circuits)`: circuits = alpha n + beta n^2 (non-negative least squares): the shape of every
  circuit count here (per-document circuits, plus within-cluster pairs ~ n^2 / 2k for quantum SemDeDup).
- `shots_for_error(eps)`: shots so that a probability estimated from them has standard error <= eps: p(1-p)/S
  <= 1/(4S) for a readout probability; the swap-test fidelity F = 2 P(0) - 1 and a <Z> expectation = 2 P(0) - 1
  double it, so S = 1 / eps^2 (their standard error is <= 1/sqrt(S)).
- `break_even(sizes, classical, quantum)`: the smallest size in range where the quantum cost is at or below the
  classical one, else why there is none (growth exponents at the end of the range, and where the curves would
  cross if the quantum curve grows more slowly).
- `stage_growth(points, ...)`: one pipeline step's measured costs (bench/growth.py: wall, CPU, peak RSS, kWh at
  several corpus sizes) fitted against the corpus size, extrapolated, and, for a step that works on encode's
  splits, extrapolated again with `encode.max_docs`'s caps (`seen_docs`); `pipeline_growth(rows, caps)`: every
  step's, from bench/growth.py's rows (bench.growth and qlife.energy both fit through it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

Curve = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PowerLaw:
    a: float
    b: float
    r2: float

    def __call__(self, x: Any) -> np.ndarray:
        return self.a * np.asarray(x, dtype=float) ** self.b

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """y = a x^b on log-log axes; needs >= 2 distinct positive x and positive y."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(lx) < 2 or np.ptp(lx) == 0 or not np.all(np.isfinite(ly)):
        raise ValueError("a power-law fit needs >= 2 distinct positive sizes and positive costs")
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerLaw(float(math.exp(log_a)), float(b), r2)


@dataclass(frozen=True)
class CircuitCurve:
    """circuits(n) = alpha n + beta n^2."""

    alpha: float
    beta: float

    def __call__(self, n: Any) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        return self.alpha * n + self.beta * n**2

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_circuits(n: Sequence[float], circuits: Sequence[float], quadratic: bool = True) -> CircuitCurve:
    """Non-negative least squares of the counts on [n, n^2] (or [n] alone), relative error weighted."""
    n_arr, c = np.asarray(n, dtype=float), np.asarray(circuits, dtype=float)
    cols = [n_arr, n_arr**2] if quadratic else [n_arr]
    A = np.stack(cols, 1) / c[:, None]  # each row divided by its count: relative residuals, small sizes count
    coef, _ = nnls(A, np.ones_like(c))
    return CircuitCurve(float(coef[0]), float(coef[1]) if quadratic else 0.0)


def shots_for_error(eps: float) -> int:
    if not 0 < eps < 1:
        raise ValueError(f"target error must be in (0, 1), got {eps}")
    return math.ceil(round(1.0 / eps**2, 9))


def local_exponent(curve: Curve, n: float) -> float:
    """d log cost / d log n at n (a central difference over +-1%)."""
    lo, hi = curve(np.array([n / 1.01]))[0], curve(np.array([n * 1.01]))[0]
    return float(math.log(hi / lo) / math.log(1.01**2))


def break_even(sizes: Sequence[float], classical: Curve, quantum: Curve, beyond: float = 1e30) -> dict[str, Any]:
    """Where quantum(n) <= classical(n) first happens on the grid `sizes` (ascending).

    Returns {"size": first size or None, "ratio_at_start", "ratio_at_end" (quantum / classical), "exponents"
    (classical, quantum at the end of the range), "why"}; with no crossing in range, "extrapolated" is the
    size where the curves would cross further out (searched up to `beyond`), or None when the quantum curve
    grows at least as fast as the classical one.
    """
    grid = np.asarray(sizes, dtype=float)
    c, q = classical(grid), quantum(grid)
    ratio = q / c
    out: dict[str, Any] = {"size": None, "ratio_at_start": float(ratio[0]), "ratio_at_end": float(ratio[-1]),
                           "exponents": {"classical": local_exponent(classical, grid[-1]),
                                         "quantum": local_exponent(quantum, grid[-1])}, "extrapolated": None}
    hit = np.flatnonzero(ratio <= 1.0)
    if hit.size:
        out["size"] = float(grid[hit[0]])
        out["why"] = (f"quantum is cheaper from n = {grid[hit[0]]:,.0f}"
                      if hit[0] else f"quantum is already cheaper at the smallest size (n = {grid[0]:,.0f})")
        return out
    ec, eq = out["exponents"]["classical"], out["exponents"]["quantum"]
    if eq >= ec - 1e-9:
        out["why"] = (f"no break-even at any size: quantum is {ratio[-1]:.3g}x the classical cost at n = "
                      f"{grid[-1]:,.0g} and grows as fast or faster (n^{eq:.2f} vs n^{ec:.2f})")
        return out
    far = np.geomspace(grid[-1], beyond, 400)
    cross = np.flatnonzero(quantum(far) <= classical(far))
    if cross.size:
        out["extrapolated"] = float(far[cross[0]])
    where = (f"they would cross only near n = {out['extrapolated']:.2g}" if out["extrapolated"] else
             f"they would not cross before n = {beyond:.0g}")
    out["why"] = (f"no break-even up to n = {grid[-1]:,.0g}: quantum is {ratio[-1]:.3g}x the classical cost there; "
                  f"it grows more slowly (n^{eq:.2f} vs n^{ec:.2f}), but {where}")
    return out


# --- every pipeline step's cost against corpus size (bench/growth.py measures, qlife.energy reports) -----------

GROWTH_METRICS = ("wall_s", "cpu_s", "peak_rss_mb", "energy_kwh")
GROWTH_TARGETS = (1e6, 1e8)


def seen_docs(n: float, shares: dict[str, float], caps: dict[str, int | None]) -> float:
    """Documents a step after encode works on at corpus size `n`: each split's measured share of the corpus
    (curated split size / corpus size) times n, cut at its cap (`encode.max_docs`; None: no cap)."""
    return float(sum(min(share * n, math.inf if caps.get(s) is None else float(caps[s]))
                     for s, share in shares.items()))


def stage_growth(points: Sequence[dict[str, Any]], metrics: Sequence[str] = GROWTH_METRICS,
                 targets: Sequence[float] = GROWTH_TARGETS, shares: dict[str, float] | None = None,
                 caps: dict[str, int | None] | None = None) -> dict[str, Any]:
    """Per metric: the power law against the corpus size n of `points` ({"n", metric, optionally "seen"}: the
    documents the step worked on), its exponent and its value at each target size. With `shares` and `caps`
    (a step that works on encode's splits), also `bounded`: the law fitted against the documents seen, evaluated
    at `seen_docs(target)`, i.e. what the caps leave of a target-sized corpus. A metric measured at fewer than two
    distinct sizes (or not positive) has no fit (`None`, with `why`)."""
    out: dict[str, Any] = {"sizes": sorted({int(p["n"]) for p in points})}
    for m in metrics:
        pts = [p for p in points if p.get(m) is not None and float(p[m]) > 0]
        try:
            fit = fit_power_law([p["n"] for p in pts], [p[m] for p in pts])
        except ValueError as err:
            out[m] = {"fit": None, "why": str(err)}
            continue
        entry: dict[str, Any] = {"fit": fit.to_dict(), "b": fit.b,
                                 "at": {f"{t:g}": float(fit(t)) for t in targets}}
        seen = [p.get("seen") for p in pts]
        if shares and caps is not None and all(s is not None and s > 0 for s in seen):
            try:
                by_seen = fit_power_law(seen, [p[m] for p in pts])
            except ValueError:
                by_seen = None
            if by_seen is not None:
                entry["bounded"] = {"fit": by_seen.to_dict(),
                                    "at": {f"{t:g}": float(by_seen(seen_docs(t, shares, caps))) for t in targets},
                                    "seen_at": {f"{t:g}": seen_docs(t, shares, caps) for t in targets}}
        out[m] = entry
    return out


UNCAPPED_STEPS = ("check", "curate")  # they see the whole corpus: no `bounded` extrapolation


def corpus_shares(rows: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Each curated split's share of the corpus (split size / n) at the largest SST-2 size whose curate ran."""
    cur = [r for r in rows if r.get("kind") == "sst2" and r.get("step") == "curate" and r.get("curated")]
    if not cur:
        return None
    big = max(cur, key=lambda r: r["n"])
    return {s: c / big["n"] for s, c in big["curated"].items()}


def pipeline_growth(rows: Sequence[dict[str, Any]], caps: dict[str, int | None] | None,
                    targets: Sequence[float] = GROWTH_TARGETS) -> dict[str, Any]:
    """`stage_growth` of every (kind, step) of bench/growth.py's rows with successful runs at >= 2 sizes, keyed
    "kind/step" in the rows' order; the SST-2 steps after curate also bounded by `caps` (encode.max_docs)."""
    shares = corpus_shares(rows)
    out: dict[str, Any] = {}
    for kind, step in dict.fromkeys((r["kind"], r["step"]) for r in rows):
        pts = [r for r in rows if (r["kind"], r["step"]) == (kind, step) and r.get("ok")]
        if len({p["n"] for p in pts}) < 2:
            continue
        bounded = kind == "sst2" and step not in UNCAPPED_STEPS and caps is not None
        out[f"{kind}/{step}"] = stage_growth(pts, targets=targets, shares=shares if bounded else None,
                                             caps=caps if bounded else None)
    return out
