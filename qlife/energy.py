"""The energy answer: per stage and method, what the classical and the quantum method cost, today and as the
work grows. `python -m qlife.energy` (run by `make run` after the pipeline, and by the lifecycle flow).

Reads (nothing is re-measured here):
  metrics/ledger.json            every stage's measured wall, CPU and energy per method, and the quantum
                                 resource records (circuits, shots, structure, QPU-second estimate); rebuilt
                                 from reports/<step>.json when absent
  <paths.monitor>/drift.json     the per-window alarms and planted drift (the scheduler's part: the per-window
                                 test's power, which the simulated policies use)
  bench/results/energy.json      classical methods measured at several problem sizes with their quantum
                                 circuit counts (`python -m bench.energy`, committed, dated)
  bench/results/growth.json      every pipeline step's wall, CPU, peak RSS and energy at several corpus sizes
                                 (`python -m bench.growth`, committed, dated), fitted here (qlife.growth)
Writes reports/energy.md and reports/plots/energy_stages.png, energy_growth.png (qlife.energy_report).
Params: `paths`, `ledger` (which energy model the measured figures used), `monitor.alpha`, `monitor.stream`,
`monitor.seed`, `monitor.decide` (the scheduler's simulated policies).

Device models (qlife.energy_models): the gate-model and annealer time models of qlife.quantum.resources (the ones
the ledger's QPU estimates and the bills use), plus a trapped-ion time model from published gate times; every
figure of a model is stated with its source in the report.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from qlife import ledger as ledger_mod
from qlife.energy_models import (
    DEVICES,
    DRIFT_EVENTS_PER_WEEK,
    HOURS,
    NIGHTS,
    DeviceModel,
    gate_seconds,
    ion_shot_seconds,
    kwh,
)
from qlife.energy_report import render, write
from qlife.growth import (
    GROWTH_TARGETS,
    break_even,
    fit_circuits,
    fit_power_law,
    pipeline_growth,
    shots_for_error,
)
from qlife.methods import sequential
from qlife.params import Params, read_params
from qlife.quantum import resources as qres
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.stage import STAGES, stage_reports

GROWTH_RESULTS = Path("bench/results/energy.json")
STEP_GROWTH_RESULTS = Path("bench/results/growth.json")
N_MAX = 1e9  # growth curves and break-even searched up to this many documents
TARGET_ERROR = 1.0 / np.sqrt(EQUIVALENT_SHOTS)  # the shots behind every hardware-equivalent count: 1/eps^2 = 1024

# The classical method each quantum method stands beside (same data, same run); a quantum entry not listed is
# compared with its own entry's measured CPU energy (the simulation plus whatever classical work it metered).
BASELINES = {("curate", "quantum"): "classical", ("encode", "encoding_circuits"): "projection",
             ("search", "fmqa"): "tpe", ("distill", "vqc_student"): "classical_student",
             ("distill", "vqc_student_static"): "classical_student_static"}
QUBO_BACKENDS = ("qaoa", "dwave", "sa", "tabu", "swap_tabu", "path_integral", "exact")


def is_qubo(record: dict) -> bool:
    return str(record.get("backend", "")).split("/")[0].split("+")[0] in QUBO_BACKENDS


def device_seconds(device: DeviceModel, record: dict) -> tuple[float | None, str]:
    """(QPU seconds, note) of one ledger quantum record under `device`; None where the model does not apply."""
    circuits, shots = float(record.get("circuits") or 0), float(record.get("shots") or 0)
    if device.applies_to == "qubo":
        if not is_qubo(record):
            return None, "not a QUBO"
        reads = shots / circuits if circuits else EQUIVALENT_SHOTS
        return qres.anneal_qpu_seconds(int(reads)), f"per QUBO, {reads:,.0f} reads (the ledger does not count QUBOs)"
    ledger_s = record.get("qpu_seconds_est")
    if device.name == "superconducting":
        if ledger_s is not None:
            return float(ledger_s), "the ledger's estimate"
        return gate_seconds(device, circuits, shots, record), "computed here (the ledger has no estimate)"
    s = gate_seconds(device, circuits, shots, record)
    if s is None:
        return None, "no circuit structure in the ledger"
    if ledger_s is not None:  # the ledger's job and circuit overheads, the ion's shot time
        s = float(ledger_s) + shots * (ion_shot_seconds(record["depth"], record["two_qubit_gates"])
                                       - qres.SECONDS_PER_SHOT)
    return s, ""


def load_ledger(params: Params) -> dict[str, Any]:
    path = Path(params.paths.metrics) / "ledger.json"
    if path.exists():
        return json.loads(path.read_text())
    return ledger_mod.summarize(stage_reports(params))


def measured_kwh(entry: dict, params: Params) -> tuple[float | None, str]:
    """The entry's energy as the ledger has it; an entry that recorded only time gets the CPU model's figure."""
    if entry.get("energy_kwh") is not None:
        return float(entry["energy_kwh"]), entry.get("energy_model", params.ledger.energy)
    if "cpu_s" in entry and "wall_s" in entry:
        return ledger_mod.cpu_model_kwh(entry["cpu_s"], entry["wall_s"], params.ledger), "cpu_model (computed here)"
    return None, "not recorded"


def stage_rows(led: dict[str, Any], params: Params) -> list[dict[str, Any]]:
    """One row per stage and method of the ledger (its `total` left out), in pipeline order."""
    order = [s for s in STAGES if s in led["stages"]] + [s for s in led["stages"] if s not in STAGES]
    rows = []
    for stage in order:
        for method, entry in led["stages"][stage].items():
            if method == "total" or not isinstance(entry, dict):
                continue
            energy, model = measured_kwh(entry, params)
            rows.append({"stage": stage, "method": method, "kind": "quantum" if "quantum" in entry else "classical",
                         "wall_s": entry.get("wall_s"), "cpu_s": entry.get("cpu_s"), "energy_kwh": energy,
                         "energy_model": model, "quantum": entry.get("quantum")})
    return rows


def quantum_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each quantum method under every device model, beside its classical baseline."""
    by_key = {(r["stage"], r["method"]): r for r in rows}
    out = []
    for r in rows:
        if r["kind"] != "quantum":
            continue
        base_name = BASELINES.get((r["stage"], r["method"]))
        base = by_key.get((r["stage"], base_name)) if base_name else None
        base = base if base is not None and base["energy_kwh"] else r
        devices = {}
        for d in DEVICES:
            s, note = device_seconds(d, r["quantum"])
            e = kwh(s, d)
            devices[d.name] = {"qpu_s": s, "kwh": e, "note": note,
                               "ratio": e / base["energy_kwh"] if e is not None and base["energy_kwh"] else None}
        out.append({**r, "baseline": base["method"], "baseline_kwh": base["energy_kwh"],
                    "self_baseline": base is r, "devices": devices})
    return out


def totals(rows: list[dict[str, Any]], qrows: list[dict[str, Any]], led: dict[str, Any]) -> dict[str, Any]:
    t = led.get("total", {})
    by_device = {d.name: sum(q["devices"][d.name]["kwh"] or 0.0 for q in qrows) for d in DEVICES}
    top = max(qrows, key=lambda q: q["devices"]["superconducting"]["kwh"] or 0.0, default=None)
    return {"measured_kwh": float(t.get("energy_kwh", sum(r["energy_kwh"] or 0 for r in rows))),
            "wall_s": float(t.get("wall_s", 0.0)), "cpu_s": float(t.get("cpu_s", 0.0)),
            "qpu_s": float(t.get("qpu_seconds_est", 0.0)), "quantum_kwh": by_device,
            "max_qubits": max((int(q["quantum"].get("qubits") or 0) for q in qrows), default=0),
            "largest": top and {"stage": top["stage"], "method": top["method"],
                                "kwh": top["devices"]["superconducting"]["kwh"]}}


# --- how each cost grows ---------------------------------------------------------------------------------------

def growth_study(name: str, study: dict[str, Any], points: list[dict[str, Any]],
                 eps: float = TARGET_ERROR, n_max: float = N_MAX) -> dict[str, Any]:
    """Fit the classical points, extend the quantum circuit count, and find the break-even per device model."""
    n = np.array([p["n"] for p in points], dtype=float)
    fit = fit_power_law(n, [p["energy_kwh"] for p in points])
    circ = fit_circuits(n, [p["circuits"] for p in points], quadratic=study.get("pairs", False))
    shots = shots_for_error(eps)
    structure = study["structure"]
    grid = np.geomspace(n.min(), n_max, 241)
    curves, verdicts = {}, {}
    for d in DEVICES:
        if d.applies_to != "gate":
            verdicts[d.name] = {"size": None, "why": "does not apply: these are gate-model circuits, not a QUBO"}
            continue

        def q_kwh(x: np.ndarray, d: DeviceModel = d) -> np.ndarray:
            c = circ(x)
            return np.array([kwh(gate_seconds(d, ci, ci * shots, structure), d) for ci in c])

        curves[d.name] = q_kwh
        verdicts[d.name] = break_even(grid, fit, q_kwh)
    return {"name": name, "study": study, "points": points, "fit": fit, "circuits": circ, "shots": shots,
            "eps": eps, "grid": grid, "curves": curves, "verdicts": verdicts}


def growth_studies(path: Path = GROWTH_RESULTS) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    studies = {}
    for name, study in data["studies"].items():
        points = [r for r in data["rows"] if r["study"] == name]
        if len({p["n"] for p in points}) >= 2:
            studies[name] = growth_study(name, study, points)
    return {"created": data.get("created"), "environment": data.get("environment", {}),
            "ledger": data.get("ledger"), "studies": studies, "path": str(path)}


def step_growth(path: Path = STEP_GROWTH_RESULTS) -> dict[str, Any] | None:
    """bench.growth's measurements (every pipeline step at several corpus sizes), fitted by qlife.growth, and the
    pipeline's total energy at each target size (the sum of the steps' fits, without and with the caps)."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    rows, settings = data["rows"], data.get("settings", {})
    fits = pipeline_growth(rows, settings.get("max_docs"))
    totals: dict[str, dict[str, float]] = {"fit": {}, "bounded": {}}
    steps = [k for k in fits if k.startswith("sst2/")]
    for t in (f"{t:g}" for t in GROWTH_TARGETS):
        e = [fits[k]["energy_kwh"] for k in steps]
        if e and all(x.get("at") for x in e):
            totals["fit"][t] = sum(x["at"][t] for x in e)
            totals["bounded"][t] = sum((x.get("bounded") or x)["at"][t] for x in e)
    return {"created": data.get("created"), "environment": data.get("environment", {}), "settings": settings,
            "sizes_ran": data.get("sizes_ran", {}), "sizes_requested": data.get("sizes_requested"),
            "curate_sizes_requested": data.get("curate_sizes_requested"), "rows": rows, "fits": fits,
            "totals": totals, "goal": data.get("goal"), "reads_uncut": data.get("reads_uncut", {}),
            "runs": data.get("runs") or [],
            "path": str(path)}


# --- the scheduler's part ----------------------------------------------------------------------------------------

POLICIES = ("nightly", "per_window", "stream")
SIM_WEEKS = 2000  # weeks counted in the simulation
COUNTED_WEEKS = 4  # weeks counted per simulated stream, after a week of burn-in and before a week of follow-up
LOOKAHEAD = 48  # windows past a drift's start that a round of the stream policy simulates first
GOAL_DELAY = 6  # windows: issue 34's goal, a drift found within 6 windows


def monitor_inputs(params: Params) -> dict[str, Any] | None:
    """Alarm level and the run's per-window alarms (planted drift where the generator knows it)."""
    path = Path(params.paths.monitor) / "drift.json"
    if not path.exists():
        return None
    windows = {k: v for k, v in json.loads(path.read_text()).items() if isinstance(v, dict) and "alarm" in v}
    drifted = [w for w in windows.values() if w.get("drift_planted") is True]
    clean = [w for w in windows.values() if w.get("drift_planted") is False]
    return {"alpha": float(params.monitor.alpha), "windows": len(windows),
            "alarms": sum(bool(w["alarm"]) for w in windows.values()),
            "drifted": len(drifted), "detected": sum(bool(w["alarm"]) for w in drifted),
            "clean": len(clean), "false_alarms": sum(bool(w["alarm"]) for w in clean)}


def drifted_p_values(u: np.ndarray, alpha: float, power: float) -> np.ndarray:
    """Per-window p-values of drifted windows from uniforms `u`: Beta(a, 1) by its inverse CDF u^(1/a), with
    a = log(power) / log(alpha) so that P(p < alpha) = alpha^a = power. Power 1: every p-value 0; power 0: every
    p-value 1; power <= alpha: a >= 1, p-values no smaller than a clean window's (a drift the test cannot see)."""
    u = np.asarray(u, dtype=np.float64)
    if power >= 1.0:
        return np.zeros_like(u)
    if power <= 0.0:
        return np.ones_like(u)
    return u ** (math.log(alpha) / math.log(power))


def stream_policy_settings(mp: Any) -> dict[str, Any]:
    """The production detector's settings (qlife.monitoring.stream_settings), fed per-window p-values (smaller =
    more drift). With `monitor.stream.statistic: mmd2` production ranks the MMD^2 instead: the same ranks where the
    p-value falls as the MMD^2 grows (windows of one size)."""
    from qlife.monitoring import stream_settings

    return {**stream_settings(mp), "larger_is_drift": False}


def _episodes(retrain: np.ndarray, drifted_at: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per drift episode (from its first drifted window to the retrain that ends it): stream, start, delay
    (windows from the start to the retrain, 1: the first drifted window; inf: not retrained by the end)."""
    ongoing = np.pad(drifted_at & ~retrain, ((0, 0), (1, 0)))[:, :-1]  # in progress when the window begins
    rows, cols = np.nonzero(starts & ~ongoing)
    delay = np.full(len(rows), np.inf)
    for i, (s, t) in enumerate(zip(rows.tolist(), cols.tolist())):
        hit = np.flatnonzero(retrain[s, t:])
        if hit.size:
            delay[i] = hit[0] + 1
    return {"stream": rows, "start": cols, "delay": delay}


def _loop(starts: np.ndarray, fires) -> tuple[np.ndarray, np.ndarray]:
    """A policy that decides window by window: `fires(t, drifted)` -> which streams retrain at window t. Returns
    retrain (streams, T) and drifted (streams, T): whether the drift was in progress at the window (before its
    retrain, which ends it)."""
    n, t_max = starts.shape
    retrain, drifted_at = np.zeros((n, t_max), dtype=bool), np.zeros((n, t_max), dtype=bool)
    drifted = np.zeros(n, dtype=bool)
    for t in range(t_max):
        drifted |= starts[:, t]
        drifted_at[:, t] = drifted
        retrain[:, t] = fires(t, drifted)
        drifted &= ~retrain[:, t]
    return retrain, drifted_at


def _stream_policy(settings: dict[str, Any], c: float, starts: np.ndarray, p_clean: np.ndarray,
                   p_drift: np.ndarray, ties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stream alarm with a retrain at each alarm: the retrain ends the drift and gives a new reference, so the
    detector restarts with its history cleared. Between two retrains a stream's windows are known in advance
    (clean until the next drift start, drifted from it on), so each round runs every stream's segment since its
    last retrain through sequential.simulate (first alarm only) and the next segment starts after that alarm. A
    segment is simulated up to LOOKAHEAD windows past its next drift start (the end of the horizon if none); one
    without an alarm there is run again from the same window, looking 4x as far (the same windows and draws: the
    same numbers up to where the shorter run stopped). Returns what _loop returns."""
    n, t_max = starts.shape
    retrain = np.zeros((n, t_max), dtype=bool)
    nxt = np.minimum.accumulate(np.where(starts, np.arange(t_max), t_max)[:, ::-1], axis=1)[:, ::-1]  # next start
    begin, look, todo = np.zeros(n, dtype=np.int64), np.full(n, LOOKAHEAD), np.arange(n)
    while todo.size:
        need = np.minimum(nxt[todo, begin[todo]] + look[todo], t_max) - begin[todo]
        short = need <= 2 * np.median(need)  # long segments in a call of their own: the short ones stay short
        more = []
        for active, length in ((todo[short], need[short]), (todo[~short], need[~short])):
            if not active.size:
                continue
            b, length = begin[active], int(length.max())
            first = _segments(settings, c, (starts, p_clean, p_drift, ties), active, b, length)
            hit = first >= 0
            at = b[hit] + first[hit]
            retrain[active[hit], at] = True
            begin[active[hit]], look[active[hit]] = at + 1, LOOKAHEAD
            again = ~hit & (b + length < t_max)  # no alarm within the look-ahead: look further from the same window
            look[active[again]] *= 4
            more += [active[hit][at + 1 < t_max], active[again]]
        todo = np.concatenate(more)
    return _loop(starts, lambda t, drifted: retrain[:, t])


def _segments(settings: dict[str, Any], c: float, draws: tuple[np.ndarray, ...], active: np.ndarray,
              begin: np.ndarray, length: int) -> np.ndarray:
    """sequential.simulate (first alarm only) on `length` windows of each `active` stream from its `begin`, the
    drift in progress from its first start there on. Returns the alarm's offset from `begin`, -1: none before the
    horizon's end."""
    starts, p_clean, p_drift, ties = draws
    t_max = starts.shape[1]
    cols = begin[:, None] + np.arange(length)
    inside = cols < t_max
    cols = np.minimum(cols, t_max - 1)

    def take(x: np.ndarray) -> np.ndarray:
        return np.take_along_axis(x[active], cols, axis=1)

    drifted = np.logical_or.accumulate(take(starts) & inside, axis=1)
    values = np.where(inside, np.where(drifted, take(p_drift), take(p_clean)), 1.0)  # 1: padding, no evidence
    first = sequential.simulate(settings, values, ties=take(ties), restart=False, threshold_value=c)["first"]
    return np.where((first >= 0) & inside[np.arange(active.size), np.maximum(first, 0)], first, -1)


def _summary(retrain: np.ndarray, drifted_at: np.ndarray, starts: np.ndarray, lo: int, hi: int) -> dict[str, Any]:
    """Retrains per counted week (windows lo..hi), false retrains (no drift in progress), delays of the drift
    episodes that started in the counted weeks (a drift that starts while an earlier one is still in progress joins
    its episode: one retrain answers both)."""
    n = retrain.shape[0]
    weeks = retrain[:, lo:hi].reshape(n, -1, HOURS).sum(-1).ravel()
    false = (retrain & ~drifted_at)[:, lo:hi].reshape(n, -1, HOURS).sum(-1).ravel()
    ep = _episodes(retrain, drifted_at, starts)
    d = ep["delay"][(ep["start"] >= lo) & (ep["start"] < hi)]
    events = int(starts[:, lo:hi].sum())
    median = float(np.quantile(d, 0.5, method="inverted_cdf")) if d.size else math.nan
    return {"mean": float(weeks.mean()), "p5": float(np.percentile(weeks, 5)), "p95": float(np.percentile(weeks, 95)),
            "false_mean": float(false.mean()), "false_per_window": float(false.sum() / (hi - lo) / n),
            "drift_events": events, "episodes": int(d.size), "delay_median": median if math.isfinite(median) else None,
            "within_goal": float((d <= GOAL_DELAY).mean()) if d.size else None,
            "found": float(np.isfinite(d).mean()) if d.size else None}


def simulate_weeks(alpha: float, power: float, stream: dict[str, Any] | None = None,
                   drift_events: int = DRIFT_EVENTS_PER_WEEK, weeks: int = SIM_WEEKS, seed: int = 0) -> dict[str, Any]:
    """Three retraining policies on the same seeded hourly windows. Streams of COUNTED_WEEKS weeks (after a week of
    burn-in, so the detector does not start empty, and before a week of follow-up, so a late drift's delay is
    seen), `weeks` counted weeks in all. Each week `drift_events` drifts start at random hours (an assumption) and
    last until a retrain. Each window has a p-value: uniform when clean, Beta(a, 1) with P(p < alpha) = `power`
    when drifted (`drifted_p_values`).
    - nightly: a retrain every night at the day's last window, whatever the data;
    - per_window: a retrain at every window whose p-value is below alpha (the alarm before the stream);
    - stream: the e-detector of qlife.methods.sequential with `stream` settings (None: sequential's defaults, p-values
      as values) over the same p-values; a retrain at each of its alarms (flows/monitor.py retrains once per
      alarmed window, and every alarmed window is assumed to have labels), the retrain's new reference restarts the
      detector with its history cleared.
    Returns per policy retrains per week (mean, 5th and 95th percentile), false retrains (no drift in progress) per
    week and per window, and of the drift episodes the delay to the retrain that ends them (windows, 1: the first
    drifted window; median, share within GOAL_DELAY, share found by the end)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    if not isinstance(weeks, int) or weeks < 1:
        raise ValueError(f"weeks must be a whole number >= 1; got {weeks!r}")
    if not 0 <= drift_events <= HOURS:
        raise ValueError(f"drift_events must be a whole number of hours in a week; got {drift_events!r}")
    settings = sequential.validate_settings({"larger_is_drift": False} if stream is None else stream)
    n = max(1, math.ceil(weeks / COUNTED_WEEKS))
    lo, hi, t_max = HOURS, (1 + COUNTED_WEEKS) * HOURS, (2 + COUNTED_WEEKS) * HOURS
    rng = np.random.default_rng([seed, 34])
    order = rng.random((n, t_max // HOURS, HOURS)).argsort(-1)[..., :drift_events]
    starts = np.zeros((n, t_max // HOURS, HOURS), dtype=bool)
    np.put_along_axis(starts, order, True, axis=-1)
    starts = starts.reshape(n, t_max)
    p_clean = rng.random((n, t_max))
    p_drift = drifted_p_values(rng.random((n, t_max)), alpha, power)
    ties = 1.0 - rng.random((n, t_max))
    runs = {"nightly": _loop(starts, lambda t, drifted: np.full(n, t % 24 == 23)),
            "per_window": _loop(starts, lambda t, drifted: np.where(drifted, p_drift[:, t], p_clean[:, t]) < alpha),
            "stream": _stream_policy(settings, sequential.threshold(settings), starts, p_clean, p_drift, ties)}
    return {name: _summary(*runs[name], starts, lo, hi) for name in POLICIES}


def scheduler(led: dict[str, Any], params: Params) -> dict[str, Any] | None:
    """The three retraining policies of `simulate_weeks` at this run's alpha and measured power (the share of its
    planted drift windows that the per-window test alarmed; 1, an assumption, where none was planted), the
    stream detector with the production settings (monitor.stream), priced with this run's measured energy."""
    mon = monitor_inputs(params)
    stages = led.get("stages", {})
    if mon is None or "train" not in stages:
        return None
    power = mon["detected"] / mon["drifted"] if mon["drifted"] else 1.0
    stream = stream_policy_settings(params.monitor)
    sim = simulate_weeks(mon["alpha"], power, stream)
    e_train = float(stages["train"].get("total", {}).get("energy_kwh", 0.0))
    e_lifecycle = sum(float(c.get("total", {}).get("energy_kwh", 0.0)) for s, c in stages.items() if s != "monitor")
    e_window = (float(stages.get("monitor", {}).get("total", {}).get("energy_kwh", 0.0)) / mon["windows"]
                if mon["windows"] else 0.0)
    policies = {}
    for name, r in sim.items():
        avoided = NIGHTS - r["mean"]
        policies[name] = {**r, "avoided": avoided, "saved_train_kwh": avoided * e_train,
                          "saved_lifecycle_kwh": avoided * e_lifecycle}
    return {**mon, "power": power, "power_assumed": not mon["drifted"], "drift_events": DRIFT_EVENTS_PER_WEEK,
            "weeks": SIM_WEEKS, "goal_delay": GOAL_DELAY, "current": params.monitor.decide,
            "stream": {"period": stream["period"], "rate": stream["false_alarms_per_period"],
                       "threshold": sequential.threshold(stream)},
            "train_kwh": e_train, "lifecycle_kwh": e_lifecycle, "window_kwh": e_window,
            "monitoring_kwh": HOURS * e_window, "policies": policies}


# --- everything together -------------------------------------------------------------------------------------------

def figures(params: Params, growth_path: Path = GROWTH_RESULTS,
            step_growth_path: Path = STEP_GROWTH_RESULTS) -> dict[str, Any]:
    led = load_ledger(params)
    rows = stage_rows(led, params)
    qrows = quantum_rows(rows)
    return {"ledger": led, "rows": rows, "quantum": qrows, "totals": totals(rows, qrows, led),
            "growth": growth_studies(growth_path), "steps_growth": step_growth(step_growth_path),
            "scheduler": scheduler(led, params),
            "energy_model": params.ledger.energy, "ledger_cfg": params.ledger.model_dump()}


def write_report(params: Params, growth_path: Path = GROWTH_RESULTS,
                 step_growth_path: Path = STEP_GROWTH_RESULTS) -> tuple[str, dict[str, Any]]:
    """Compute the figures, write reports/energy.md and the plots; returns (markdown, figures)."""
    figs = figures(params, growth_path, step_growth_path)
    text = render(figs, params)
    write(figs, text, params)
    return text, figs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.energy", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--growth", default=str(GROWTH_RESULTS), help="bench.energy results (growth measurements)")
    ap.add_argument("--step-growth", default=str(STEP_GROWTH_RESULTS),
                    help="bench.growth results (every step's cost against corpus size)")
    args = ap.parse_args(argv)
    params = read_params(args.params)
    if not (Path(params.paths.metrics) / "ledger.json").exists() and not any(
            (Path(params.paths.reports) / f"{s}.json").exists() for s in STAGES):
        raise SystemExit(f"no ledger: {params.paths.metrics}/ledger.json and the stage reports are missing; "
                         "run `make run` (or `dvc repro`) first")
    text, _ = write_report(params, Path(args.growth), Path(args.step_growth))
    print(text.split("## Headline\n\n", 1)[1].split("\n", 1)[0])
    print(f"written: {Path(params.paths.reports) / 'energy.md'}")


if __name__ == "__main__":
    main()
