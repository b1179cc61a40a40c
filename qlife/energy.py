"""The energy answer: per stage and method, what the classical and the quantum method cost, today and as the
work grows. `python -m qlife.energy` (run by `make run` after the pipeline, and by the lifecycle flow).

Reads (nothing is re-measured here):
  metrics/ledger.json            every stage's measured wall, CPU and energy per method, and the quantum
                                 resource records (circuits, shots, structure, QPU-second estimate); rebuilt
                                 from reports/<step>.json when absent
  reports/monitor.json, <paths.monitor>/drift.json
                                 the monitor's alarm level and per-window alarms (the scheduler's part)
  bench/results/energy.json      classical methods measured at several problem sizes with their quantum
                                 circuit counts (`python -m bench.energy`, committed, dated)
Writes reports/energy.md and reports/plots/energy_stages.png, energy_growth.png (qlife.energy_report).
Params: `paths`, `ledger` (which energy model the measured figures used), `monitor.alpha`.

Device models (qlife.energy_models): the gate-model and annealer time models of qlife.quantum.resources (the ones
the ledger's QPU estimates and the bills use), plus a trapped-ion time model from published gate times; every
figure of a model is stated with its source in the report.
"""

from __future__ import annotations

import argparse
import json
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
from qlife.growth import break_even, fit_circuits, fit_power_law, shots_for_error
from qlife.params import Params, read_params
from qlife.quantum import resources as qres
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.stage import STAGES, stage_reports

GROWTH_RESULTS = Path("bench/results/energy.json")
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


# --- the scheduler's part ----------------------------------------------------------------------------------------

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


def simulate_weeks(alpha: float, power: float, drift_events: int = DRIFT_EVENTS_PER_WEEK, weeks: int = 2000,
                   seed: int = 0) -> dict[str, Any]:
    """Hourly windows for `weeks` weeks: clean windows alarm with probability `alpha` (the test's level), drifted
    ones with `power`; drift starts at `drift_events` random hours a week and lasts until a retrain. Two
    policies: `on_alarm` retrains at every alarm (flows/monitor.py); `nightly_if_alarm` retrains at night when
    that day had an alarm. Returns retrains per week (mean, 5th and 95th percentile) for each policy."""
    rng = np.random.default_rng(seed)
    counts = {"on_alarm": [], "nightly_if_alarm": []}
    for _ in range(weeks):
        starts = set(rng.choice(HOURS, size=drift_events, replace=False).tolist())
        u = rng.random(HOURS)
        for policy in counts:
            drifted, retrains, day_alarm = False, 0, False
            for h in range(HOURS):
                drifted = drifted or h in starts
                if u[h] < (power if drifted else alpha):
                    if policy == "on_alarm":
                        retrains, drifted = retrains + 1, False
                    else:
                        day_alarm = True
                if policy == "nightly_if_alarm" and h % 24 == 23 and day_alarm:
                    retrains, drifted, day_alarm = retrains + 1, False, False
            counts[policy].append(retrains)
    return {p: {"mean": float(np.mean(c)), "p5": float(np.percentile(c, 5)), "p95": float(np.percentile(c, 95))}
            for p, c in counts.items()}


def scheduler(led: dict[str, Any], params: Params) -> dict[str, Any] | None:
    mon = monitor_inputs(params)
    stages = led.get("stages", {})
    if mon is None or "train" not in stages:
        return None
    power = mon["detected"] / mon["drifted"] if mon["drifted"] else 1.0
    sim = simulate_weeks(mon["alpha"], power)
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
            "train_kwh": e_train, "lifecycle_kwh": e_lifecycle, "window_kwh": e_window,
            "monitoring_kwh": HOURS * e_window, "policies": policies}


# --- everything together -------------------------------------------------------------------------------------------

def figures(params: Params, growth_path: Path = GROWTH_RESULTS) -> dict[str, Any]:
    led = load_ledger(params)
    rows = stage_rows(led, params)
    qrows = quantum_rows(rows)
    return {"ledger": led, "rows": rows, "quantum": qrows, "totals": totals(rows, qrows, led),
            "growth": growth_studies(growth_path), "scheduler": scheduler(led, params),
            "energy_model": params.ledger.energy, "ledger_cfg": params.ledger.model_dump()}


def write_report(params: Params, growth_path: Path = GROWTH_RESULTS) -> tuple[str, dict[str, Any]]:
    """Compute the figures, write reports/energy.md and the plots; returns (markdown, figures)."""
    figs = figures(params, growth_path)
    text = render(figs, params)
    write(figs, text, params)
    return text, figs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.energy", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--growth", default=str(GROWTH_RESULTS), help="bench.energy results (growth measurements)")
    args = ap.parse_args(argv)
    params = read_params(args.params)
    if not (Path(params.paths.metrics) / "ledger.json").exists() and not any(
            (Path(params.paths.reports) / f"{s}.json").exists() for s in STAGES):
        raise SystemExit(f"no ledger: {params.paths.metrics}/ledger.json and the stage reports are missing; "
                         "run `make run` (or `dvc repro`) first")
    text, _ = write_report(params, Path(args.growth))
    print(text.split("## Headline\n\n", 1)[1].split("\n", 1)[0])
    print(f"written: {Path(params.paths.reports) / 'energy.md'}")


if __name__ == "__main__":
    main()
