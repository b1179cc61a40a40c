"""reports/energy.md and its plots from qlife.energy's figures (markdown and matplotlib only; no figures made here).

Every number comes from `qlife.energy.figures`, passed in: measured (the ledger, the growth bench) or modelled (the
device models of qlife.energy_models, the growth fits); each table says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qlife.energy_models import (
    DEVICES,
    HOURS,
    ION_BREAK_EVEN_QUBITS,
    LONG_PROMPT_KWH,
    NIGHTS,
    gate_seconds,
    kwh,
)
from qlife.io import atomic_path, write_text
from qlife.params import Params
from qlife.quantum.resources import SECONDS_PER_JOB

GATE_DEVICES = [d for d in DEVICES if d.applies_to == "gate"]
STAGES_PNG, GROWTH_PNG = "plots/energy_stages.png", "plots/energy_growth.png"


def g(x: float | None, digits: int = 3) -> str:
    """Counts as integers with thousands separators (up to 10 digits), everything else to `digits` figures."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) < 1e10 else f"{x:.{digits}g}"


def energy_model_text(figs: dict[str, Any]) -> str:
    cfg = figs["ledger_cfg"]
    if figs["energy_model"] == "codecarbon":
        return "CodeCarbon (RAPL power counters where the machine exposes them, its TDP table otherwise)"
    return (f"the CPU model (no power counters read): E = CPU s x {cfg['cpu_watts_per_core']:g} W + wall s x "
            f"{cfg['base_watts']:g} W (qlife/ledger.py, params `ledger:`)")


def headline(figs: dict[str, Any]) -> str:
    t, growth, sched = figs["totals"], figs["growth"], figs["scheduler"]
    sc, ion = t["quantum_kwh"]["superconducting"], t["quantum_kwh"]["trapped_ion"]
    n_stages = len({r["stage"] for r in figs["rows"]})
    parts = [f"This run's {n_stages} stages used **{g(t['measured_kwh'])} kWh** measured on this CPU "
             f"({figs['energy_model']}, {g(t['cpu_s'])} CPU s). Their quantum methods ran on simulators; on "
             f"hardware the same circuits and shots would take {g(t['qpu_s'])} QPU s: **{g(sc)} kWh** on a "
             f"superconducting system at 25 kW, {g(ion)} kWh under the trapped-ion model (where the ledger has "
             f"the circuits' structure) — "
             f"{g(sc / t['measured_kwh'] if t['measured_kwh'] else None)}x the whole run's measured energy."]
    if t["largest"]:
        parts.append(f"The largest share is {t['largest']['stage']}/{t['largest']['method']} "
                     f"({g(t['largest']['kwh'])} kWh).")
    if growth and growth["studies"]:
        found = {name: [f"{d} from n = {g(v['size'])}" for d, v in s["verdicts"].items() if v.get("size")]
                 for name, s in growth["studies"].items()}
        if any(found.values()):
            parts.append("Break-even with the classical method: " + "; ".join(
                f"{name}: {', '.join(f) or 'none'}" for name, f in found.items()) + ".")
        else:
            parts.append(f"No break-even with the classical method up to n = {g(figs['growth_nmax'])} documents "
                         f"for {' or '.join(found)} under any device model: every circuit costs a fixed number of "
                         "shots, and the circuit counts grow at least as fast as the classical work they replace.")
    sg = figs.get("steps_growth")
    if sg and sg["totals"]["fit"]:
        sizes = ", ".join(f"{n:,}" for n in sg["sizes_ran"].get("sst2", []))
        parts.append(f"Every step measured at n = {sizes} documents (bench.growth) and fitted: the whole pipeline on "
                     f"10^6 documents would use {g(sg['totals']['fit']['1e+06'])} kWh by the fits, "
                     f"{g(sg['totals']['bounded']['1e+06'])} kWh with encode.max_docs's caps.")
    if sched:
        parts.append(scheduler_headline(sched))
    return " ".join(parts)


POLICY_NAMES = {"nightly": "nightly retraining",
                "per_window": "retrain on every per-window alarm at alpha",
                "stream": "retrain once per stream alarm"}


def current_policy(s: dict[str, Any]) -> str:
    """What flows/monitor.py does now, in words (monitor.decide)."""
    if s["current"] == "stream":
        st = s["stream"]
        return ("retrains when the stream alarm (a conformal e-detector over the hourly windows: P(a false alarm "
                f"within {st['period']} windows) <= {st['rate']:g}) flags windows whose labels are not yet trained "
                "on: one retraining on them, never a second on a window already answered, and the retrained "
                "model's new reference restarts the detector")
    return (f"retrains when the per-window test flags a window at alpha = {s['alpha']:g} (monitor.decide: "
            "per_window) whose labels are not yet trained on, never twice on a window already answered")


def delay_text(p: dict[str, Any], goal: int) -> str:
    if p["delay_median"] is None:
        return "no drift to find"
    return f"a drift found in a median {g(p['delay_median'])} windows ({p['within_goal']:.0%} within {goal})"


def scheduler_headline(s: dict[str, Any]) -> str:
    now = s["policies"][s["current"]]
    other = s["policies"]["per_window" if s["current"] == "stream" else "stream"]
    other_text = (f"retraining on every per-window alarm at alpha = {s['alpha']:g} would retrain "
                  f"{g(other['mean'])} times ({g(other['false_mean'])} of them with no drift: at alpha per hourly "
                  f"window the false alarms alone average {HOURS * s['alpha']:.1f} a week)"
                  if s["current"] == "stream" else
                  f"the stream alarm (monitor.decide: stream) would retrain {g(other['mean'])} times "
                  f"({g(other['false_mean'])} with no drift)")
    power = "power assumed 1" if s["power_assumed"] else f"the per-window test's measured power {g(s['power'])}"
    return (f"The scheduler: flows/monitor.py {current_policy(s)}. In {s['weeks']:,} simulated weeks of hourly "
            f"windows with {s['drift_events']} drift a week (an assumption; {power}) it retrains "
            f"{g(now['mean'])} times a week ({g(now['false_mean'])} with no drift in progress), "
            f"{delay_text(now, s['goal_delay'])}, against {NIGHTS} nightly retrains: {versus_nightly(now)}. "
            f"Per week, {other_text}: "
            f"{versus_nightly(other)}. The hourly monitoring itself costs {g(s['monitoring_kwh'])} kWh a week.")


def versus_nightly(p: dict[str, float]) -> str:
    if p["avoided"] >= 0:
        return f"{g(p['avoided'])} retrains avoided, {g(p['saved_lifecycle_kwh'])} kWh of the lifecycle saved"
    return f"{g(-p['avoided'])} more retrains, {g(-p['saved_lifecycle_kwh'])} kWh more of the lifecycle"


def measured_table(figs: dict[str, Any]) -> list[str]:
    lines = ["| stage | method | kind | wall s | CPU s | energy kWh | energy model |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in figs["rows"]:
        lines.append(f"| {r['stage']} | {r['method']} | {r['kind']} | {g(r['wall_s'])} | {g(r['cpu_s'])} | "
                     f"{g(r['energy_kwh'])} | {r['energy_model']} |")
    return lines


def quantum_table(figs: dict[str, Any]) -> list[str]:
    head = "| stage | method | backend (ran on) | qubits | depth | 2q gates | circuits | shots | simulated here kWh |"
    sep = "|---|---|---|---:|---:|---:|---:|---:|---:|"
    for d in DEVICES:
        head += f" {d.name} QPU s | {d.name} kWh |"
        sep += "---:|---:|"
    head += " classical baseline (kWh) | ratio superconducting | ratio trapped ion |"
    sep += "---|---:|---:|"
    lines = [head, sep]
    for q in figs["quantum"]:
        rec = q["quantum"]
        cells = [q["stage"], q["method"], f"{rec.get('backend')} ({rec.get('executed_on', '?')})",
                 g(rec.get("qubits")), g(rec.get("depth")), g(rec.get("two_qubit_gates")), g(rec.get("circuits")),
                 g(rec.get("shots")), g(q["energy_kwh"])]
        for d in DEVICES:
            dv = q["devices"][d.name]
            lower = "≥ " if d.applies_to == "qubo" and dv["qpu_s"] is not None else ""
            cells += [lower + g(dv["qpu_s"]), lower + g(dv["kwh"])]
        base = f"{q['baseline']}{' (itself)' if q['self_baseline'] else ''} ({g(q['baseline_kwh'])})"
        cells += [base, g(q["devices"]["superconducting"]["ratio"]), g(q["devices"]["trapped_ion"]["ratio"])]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{q['stage']}/{q['method']}, {d}: {q['devices'][d]['note']}" for q in figs["quantum"]
             for d in q["devices"] if q["devices"][d]["note"] not in ("", "the ledger's estimate")]
    return lines + ([""] + [f"- {n}" for n in notes] if notes else [])


def devices_section() -> list[str]:
    lines = []
    for d in DEVICES:
        lines.append(f"- **{d.name}** ({'circuits and shots' if d.applies_to == 'gate' else 'QUBOs, anneal reads'}"
                     f", {d.power_kw:g} kW while the QPU works): {d.shot}. Source: {d.sources}.")
    return lines


CAVEAT = ("**Attributional caveat.** Every QPU figure here charges the system's full wall power (~25 kW) to "
          "the seconds a job holds the QPU. That is an attributional share: the dilution refrigerator, compressor "
          "and control electronics run whether or not the job does, so the marginal energy of one more job on an "
          "already-cold, otherwise idle system is far smaller, and a lightly used system costs far more per job "
          "than its share. The measured CPU figures are likewise the job's share of a machine that idles at "
          "some power anyway. Neither includes cooling of the building, networking or manufacturing.")


def growth_section(figs: dict[str, Any]) -> list[str]:
    growth = figs["growth"]
    if not growth or not growth["studies"]:
        return ["No growth measurements found (`bench/results/energy.json`): run `python -m bench.energy` "
                "(part of `make bench`)."]
    env = growth["environment"]
    lines = [f"Classical points measured by `python -m bench.energy` on {growth['created']} ({env.get('cpus')} "
             f"CPUs, load {g(env.get('load_avg_1m'))}; energy by {growth['ledger'] or figs['energy_model']}), "
             f"stored in `{growth['path']}`. Quantum circuit counts at the same sizes come from the project's "
             "own code (the counts its simulators report for the same inputs); beyond them, from a fit of those "
             f"counts. Shots per circuit: 1/eps^2 for a target standard error eps (see qlife/growth.py).",
             f"![growth of each cost]({GROWTH_PNG})", ""]
    for name, s in growth["studies"].items():
        lines += study_section(name, s)
    return lines


def study_section(name: str, s: dict[str, Any]) -> list[str]:
    st, fit, circ = s["study"], s["fit"], s["circuits"]
    lines = [f"### {name}: {st['quantum']} vs {st['classical']}", "", st.get("notes", ""), "",
             f"Circuit: {st['structure']['qubits']} qubits, depth {st['structure']['depth']}, "
             f"{st['structure']['two_qubit_gates']} two-qubit gates (generic basis); {s['shots']:,} shots per circuit "
             f"for a target error of {s['eps']:.3g} (10x smaller error: 100x the shots).", "",
             "| n | wall s | energy kWh (measured) | circuits (counted) | simulated here kWh |",
             "|---:|---:|---:|---:|---:|"]
    for p in s["points"]:
        lines.append(f"| {p['n']:,} | {g(p['wall_s'])} | {g(p['energy_kwh'])} | {p['circuits']:,} | "
                     f"{g(p.get('sim_energy_kwh'))} |")
    lines += ["", f"Classical fit: E(n) = {fit.a:.3g} n^{fit.b:.2f} kWh (R^2 {fit.r2:.3f}, fitted on n = "
              f"{s['points'][0]['n']:,}..{s['points'][-1]['n']:,}). Circuits (fit of the counts): "
              f"{circ.alpha:.4g} n + {circ.beta:.3g} n^2.",
              "", "| n | classical kWh (fit) | circuits | " + " | ".join(f"{d.name} kWh" for d in GATE_DEVICES) + " |",
              "|---:|---:|---:|" + "---:|" * len(GATE_DEVICES)]
    for n in sorted({float(s["points"][0]["n"]), float(s["points"][-1]["n"]), 1e5, 1e7, float(s["grid"][-1])}):
        qs = [g(s["curves"][d.name](np.array([n]))[0]) for d in GATE_DEVICES]
        lines.append(f"| {g(float(n))} | {g(float(fit(n)))} | {g(float(circ(np.array([n]))[0]))} | "
                     + " | ".join(qs) + " |")
    last = s["points"][-1]
    at = ", ".join(f"{g(s['curves'][d.name](np.array([last['n']]))[0] / last['energy_kwh'])}x ({d.name})"
                   for d in GATE_DEVICES)
    lines += ["", f"At the largest measured size (n = {last['n']:,}), where the classical cost is measured and the "
              f"circuits counted, quantum / classical = {at}: a break-even needs the classical cost to outgrow the "
              "quantum one by that factor. The fit describes the measured range only.", ""]
    if last.get("pairs"):
        lines += [per_pair_bound(s, last), ""]
    lines += ["Break-even (quantum energy at or below the classical method's):", ""]
    lines += [f"- {d}: {v['why']}" for d, v in s["verdicts"].items()]
    return lines + [""]


def per_pair_bound(s: dict[str, Any], last: dict[str, Any]) -> str:
    """Far out both methods are dominated by the within-cluster pairs: one cosine vs one swap test each."""
    classical = last["energy_kwh"] / last["pairs"]
    one = {d.name: kwh(gate_seconds(d, 1, s["shots"], s["study"]["structure"]) - SECONDS_PER_JOB, d)
           for d in GATE_DEVICES}
    return (f"Per compared pair, the term both grow by far out (n^2/2k pairs): classical <= {g(classical)} kWh (all "
            f"of the measured energy at n = {last['n']:,} over its {last['pairs']:,} pairs), one swap test "
            + ", ".join(f"{g(v)} kWh ({k})" for k, v in one.items())
            + f": at least {g(min(one.values()) / classical)}x per pair, at any size.")


STEP_COLUMNS = (("wall_s", "wall s"), ("cpu_s", "CPU s"), ("peak_rss_mb", "peak RSS MB"), ("energy_kwh", "kWh"))


def _at(entry: dict[str, Any] | None, target: str) -> float | None:
    return (entry or {}).get("at", {}).get(target)


def _v(x: float | None) -> str:
    """A measured figure: whole numbers with separators from 100 up, else three significant digits."""
    return "n/a" if x is None else f"{x:,.0f}" if abs(x) >= 100 else g(x)


def _b(x: float | None) -> str:
    """An exponent to two decimals (-0.00 is 0.00)."""
    return "n/a" if x is None else f"{round(float(x), 2) + 0.0:.2f}"


def steps_growth_section(figs: dict[str, Any]) -> list[str]:
    """Every pipeline step's measured cost at each corpus size (bench.growth), its fits and extrapolations."""
    sg = figs.get("steps_growth")
    if not sg:
        return ["No per-step growth measurements (`bench/results/growth.json`): run `python -m bench.growth` "
                "(every step of the pipeline at several corpus sizes).", ""]
    env, st = sg["environment"], sg["settings"]
    caps = st.get("max_docs") or {}
    ran, asked = sg["sizes_ran"], sg.get("sizes_requested") or []
    missing = [f"{n:,}" for n in asked if n not in ran.get("sst2", [])]
    missing += [f"curate on {n:,} generated" for n in sg.get("curate_sizes_requested") or []
                if n not in ran.get("generator", [])]
    runs = sg.get("runs") or [{"created": sg["created"], "load_avg_1m": env.get("load_avg_1m")}]
    when = "; ".join(f"{r.get('created')}, load {'-'.join(g(x) for x in np.atleast_1d(r.get('load_avg_1m')))}"
                     for r in runs if r.get("created"))
    lines = [f"Every step of the pipeline, each in its own process, measured by `python -m bench.growth` ({when}; "
             f"{env.get('cpus')} CPUs; profile "
             f"{st.get('profile')}) on the first n documents of SST-2 train: wall and CPU seconds of the step's "
             "process tree, its largest process's peak RSS, and energy by the CPU model above. The machine was "
             "shared: wall seconds (and the base-power part of each kWh) are inflated by the others' load, CPU "
             "seconds much less so. `encode.max_docs` "
             + ", ".join(f"{k} {g(v) if v is not None else 'uncut'}" for k, v in caps.items())
             + f". Sizes measured: {', '.join(f'{n:,}' for n in ran.get('sst2', [])) or 'none'}"
             + (f" (not yet: {', '.join(missing)})" if missing else "") + f". Data: `{sg['path']}`.",
             "", "| step | n | wall s | CPU s | peak RSS MB | kWh |", "|---|---:|---:|---:|---:|---:|"]
    order = {step: i for i, step in enumerate(dict.fromkeys(r["step"] for r in sg["rows"]))}
    for r in sorted((r for r in sg["rows"] if r.get("kind") == "sst2"), key=lambda r: (order[r["step"]], r["n"])):
        if not r.get("ok"):
            lines.append(f"| {r['step']} | {r['n']:,} | {r.get('skipped') or r.get('killed') or 'failed'} | | | |")
            continue
        step = r["step"] + (f" ({r['embedder']} embedder)" if r.get("embedder") not in (None, "teacher") else "")
        lines.append(f"| {step} | {r['n']:,} | " + " | ".join(_v(r.get(k)) for k, _ in STEP_COLUMNS) + " |")
    fits = {k.split("/", 1)[1]: f for k, f in sg["fits"].items() if k.startswith("sst2/")}
    lines += [""]
    if not fits:
        lines += ["Fewer than two sizes measured: no fit yet.", ""]
    else:
        lines += ["Fits: each figure = a n^b against the corpus size n (qlife.growth.fit_power_law on the measured "
                  "sizes), and extrapolated. *With the caps*: the steps after curate work on encode's splits, each "
                  "cut at its `encode.max_docs` cap, so their fit against the documents they work on is evaluated "
                  "at what the caps leave of a 10^6 or 10^8 corpus (a step that reads curate's uncut splits, listed "
                  "below, still grows beyond it). The fits describe the measured range; far beyond it they are a "
                  "power law's guess, and a low one where a step's fixed start-up (interpreter, imports, model "
                  "loads: 10-30 CPU s each) weighs on the smaller sizes: the work itself grows faster than b says. "
                  "Wall exponents also carry the load's changes between the runs: read the CPU ones.", "",
                  "| step | b (wall) | b (CPU) | b (peak RSS) | b (kWh) | kWh at 10^6 | kWh at 10^8 | kWh at 10^6, "
                  "with the caps | kWh at 10^8, with the caps | peak RSS MB at 10^6 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for step, f in fits.items():
            e = f["energy_kwh"]
            bounded = e.get("bounded")
            lines.append(f"| {step} | " + " | ".join(_b(f[k].get("b")) for k, _ in STEP_COLUMNS) + " | "
                         f"{g(_at(e, '1e+06'))} | {g(_at(e, '1e+08'))} | "
                         f"{g(_at(bounded, '1e+06')) if bounded else 'the whole corpus'} | "
                         f"{g(_at(bounded, '1e+08')) if bounded else 'the whole corpus'} | "
                         f"{_v(_at(f['peak_rss_mb'], '1e+06'))} |")
        tot = sg["totals"]
        if tot["fit"]:
            lines.append(f"| **all steps** | | | | | {g(tot['fit'].get('1e+06'))} | {g(tot['fit'].get('1e+08'))} | "
                         f"{g(tot['bounded'].get('1e+06'))} | {g(tot['bounded'].get('1e+08'))} | |")
        lines += [""]
    if sg["reads_uncut"]:
        lines += ["What each step reads beyond encode's cut splits (its cost grows with the corpus whatever the caps): "
                  + "; ".join(f"{k}: {v}" for k, v in sg["reads_uncut"].items()) + ".", ""]
    gen = [r for r in sg["rows"] if r.get("kind") == "generator"]
    if gen:
        lines += ["Curate alone on the built-in generator's corpora (near-duplicate embedder "
                  f"{gen[0].get('embedder')}):", "", "| n | wall s | CPU s | peak RSS MB | kWh |",
                  "|---:|---:|---:|---:|---:|"]
        for r in gen:
            cells = (" | ".join(_v(r.get(k)) for k, _ in STEP_COLUMNS) if r.get("ok")
                     else (r.get("killed") or "failed") + " | | |")
            lines.append(f"| {r['n']:,} | {cells} |")
        goal = sg.get("goal") or {}
        est = goal.get("estimate") or {}
        if goal.get("measured"):
            verdict = (f"measured at n = {goal['n']:,}: " + (f"peak RSS {_v(goal['peak_rss_mb'])} MB, " if
                       goal.get("peak_rss_mb") is not None else f"{goal.get('note')}, ")
                       + f"{'under' if goal['holds'] else 'over'} the 4 GB goal"
                       + (f" ({goal['embedder']} embedder, {goal['n_clusters']} clusters, centroids fitted on "
                          f"{goal['kmeans_fit_docs']:,} documents: curate.cluster_docs, curate.fit_sample)"
                          if goal.get("kmeans_fit_docs") else ""))
        elif est.get("estimate_mb") is not None:
            verdict = (f"not measured at 10^6 yet; estimated {_v(est['estimate_mb'])} MB there, "
                       f"{'under' if goal['holds'] else 'over'} the goal: {_v(est['linear_mb'])} MB growing linearly "
                       f"(the slope between n = {est['from'][0]:,} and {est['from'][1]:,}) plus "
                       f"{_v(est['cluster_mb'])} MB for one within-cluster similarity matrix and its boolean pairs "
                       f"(SemDeDup holds a cluster's whole matrix; with curate.n_clusters = {goal.get('n_clusters')} "
                       f"fixed the mean-square cluster grows to {est['rms_cluster_docs']:,} documents; the largest "
                       "is at least that big). A power law through the measured peaks says "
                       f"{_v(goal.get('power_law_mb'))} MB, blind to the quadratic term")
        else:
            verdict = "not measured at 10^6 yet, too few sizes for an estimate"
        lines += ["", f"Issue 37's goal, curate on 10^6 generated documents with peak RSS under 4 GB: {verdict}.", ""]
    return lines


def anchors_section(figs: dict[str, Any]) -> list[str]:
    t = figs["totals"]
    sc = t["quantum_kwh"]["superconducting"]
    return ["| anchor | source | this pipeline |", "|---|---|---|",
            f"| > {LONG_PROMPT_KWH * 1e3:g} Wh per long prompt, largest reasoning models | arXiv 2505.09598 | "
            f"the whole run measured {g(t['measured_kwh'] * 1e3)} Wh = {g(t['measured_kwh'] / LONG_PROMPT_KWH)} long "
            f"prompts; its quantum work on hardware {g(sc)} kWh = {g(sc / LONG_PROMPT_KWH)} long prompts |",
            f"| ~25 kW per cryogenic system | IBM and D-Wave figures, qlife/quantum/resources.py | "
            f"{g(t['qpu_s'])} QPU s x 25 kW = {g(sc)} kWh |",
            f"| trapped-ion energy break-even vs classical simulation around {ION_BREAK_EVEN_QUBITS} qubits (measured) "
            f"| arXiv 2605.02798, as cited in issue 19 (not checked against a stored copy here) | our circuits use "
            f"at most {t['max_qubits']} qubits, where simulating them is cheap: the simulators' measured CPU energy "
            "sits beside each QPU estimate in the table above |"]


def scheduler_section(figs: dict[str, Any]) -> list[str]:
    s = figs["scheduler"]
    if not s:
        return ["No monitor output (drift.json) or train entry in this run's ledger: nothing to count."]
    st, goal = s["stream"], s["goal_delay"]
    if s["power_assumed"]:
        power = "an assumption: this run has no window with known drift, so a drift is taken to be one the test sees"
    else:
        power = f"this run's measured power: {s['detected']}/{s['drifted']} planted drift windows alarmed at alpha"
    a = ("0 (every drifted p-value 0)" if s["power"] >= 1 else "infinite (every drifted p-value 1)"
         if s["power"] <= 0 else f"{np.log(s['power']) / np.log(s['alpha']):.3g}")
    now = "flows/monitor.py now" if s["current"] == "stream" else "monitor.decide: stream"
    before = "before the stream alarm" if s["current"] == "stream" else "flows/monitor.py now: monitor.decide"
    lines = ["The served schedule (flows/serve.py) runs the monitor hourly and the lifecycle nightly. flows/monitor.py "
             f"{current_policy(s)}. A window without labels is never trained on (it blocks promotion until labelled "
             "or acknowledged); an estimated quality drop (monitor.quality) also starts a retraining, not simulated "
             "here.", "",
             f"Simulated: {s['weeks']:,} seeded weeks of {HOURS} hourly windows (streams of several weeks, after a "
             f"week of burn-in); {s['drift_events']} drift event a week at a random hour (an assumption, "
             "DRIFT_EVENTS_PER_WEEK) that lasts until a retrain. Each window has a p-value of the per-window test: "
             f"uniform when clean; when drifted, Beta(a, 1) with a = log(power) / log(alpha) = {a}, so that "
             f"P(p < alpha = {s['alpha']:g}) = power = {g(s['power'])} ({power}). The same p-values feed every "
             "policy:", "",
             "- **nightly retraining**: a retrain every night at the day's last window, whatever the data;",
             f"- **per-window alarm** ({before}): a retrain at every window with p < alpha (this run: "
             f"{s['false_alarms']}/{s['clean']} clean windows alarmed);",
             f"- **stream alarm** ({now}): the conformal e-detector of qlife.methods.sequential with monitor.stream's "
             f"settings on the windows' p-values (threshold {g(st['threshold'])}: P(a false alarm within "
             f"{st['period']} windows) <= {st['rate']:g}); one retrain per alarm, whose new reference restarts the "
             "detector with its history cleared and ends the drift. Every alarmed window is assumed to have labelled "
             "feedback (without it the flow does not retrain), and the estimated-quality alarm is left out.", "",
             f"A retrain costs the train stage's measured {g(s['train_kwh'])} kWh (the whole lifecycle short of "
             f"monitor: {g(s['lifecycle_kwh'])} kWh: new feedback changes curate's inputs, so DVC reruns every "
             "stage). \"Nightly retraining\" is a retrain every night whatever the data; the served nightly "
             "lifecycle itself reruns only stale stages, so a night without new data costs little there.", "",
             "| policy | retrains / week (mean, 5-95%) | with no drift in progress / week | delay to the retrain, "
             f"windows (median) | found within {goal} windows | avoided vs nightly | train kWh saved | "
             "lifecycle kWh saved |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k, p in s["policies"].items():
        name = POLICY_NAMES[k] + (" (flows/monitor.py)" if k == s["current"] else "")
        within = "n/a" if p["within_goal"] is None else f"{p['within_goal']:.0%}"
        lines.append(f"| {name} | {g(p['mean'])} ({g(p['p5'])}-{g(p['p95'])}) | {g(p['false_mean'])} | "
                     f"{g(p['delay_median'])} | {within} | {g(p['avoided'])} | {g(p['saved_train_kwh'])} | "
                     f"{g(p['saved_lifecycle_kwh'])} |")
    sp = s["policies"]["stream"]
    lines += ["", "Delay: windows from a drift's first window to the retrain that ends it (1: the first drifted "
              "window). The stream alarm's false retrains are "
              f"{g(sp['false_per_window'] * st['period'])} per {st['period']} windows (its guarantee: P(any within "
              f"{st['period']}) <= {st['rate']:g})."]
    if sp["drift_events"]:
        merged = 1 - sp["episodes"] / sp["drift_events"]
        lost = (f"; {1 - sp['found']:.1%} of its drifts were still not found when the simulated stream ended (a "
                "week after the counted weeks)" if sp["found"] is not None and sp["found"] < 1 else "")
        lines[-1] += (f" Under the stream alarm {merged:.0%} of the drift events began while an earlier one was "
                      f"still unanswered (one retrain answers both){lost}. Its ranks compare each window with those "
                      "since the last retrain: a drift that starts soon after one has few clean windows to stand "
                      "out from and is found slowly.")
    lines += ["", f"Watching costs energy too: {HOURS} monitor windows a week at this run's {g(s['window_kwh'])} kWh "
              f"per window (every test of monitor.tests, not only the alarm test) = {g(s['monitoring_kwh'])} kWh a "
              f"week. Negative savings mean more retrains than nightly: at alpha = {s['alpha']:g} per hourly window "
              f"the per-window alarm's false alarms alone average {HOURS * s['alpha']:.1f} a week."]
    return lines


def render(figs: dict[str, Any], params: Params) -> str:
    figs = {**figs, "growth_nmax": max((float(s["grid"][-1]) for s in (figs["growth"] or {}).get("studies", {})
                                        .values()), default=0.0)}
    parts = ["# Energy: what each stage's classical and quantum methods cost", "",
             "Generated by `python -m qlife.energy` after every `make run` from `metrics/ledger.json`. **Measured**: "
             f"wall, CPU and energy of every method (energy by {energy_model_text(figs)}). **Modelled**: every QPU "
             "second and kWh (the device models below, applied to the circuits and shots each quantum method "
             "counted), and the growth curves beyond the measured sizes.", "",
             "## Headline", "", headline(figs), "", f"![energy per stage]({STAGES_PNG})", "",
             "## Per stage and method: measured", "", *measured_table(figs), "",
             "## Quantum methods on hardware: modelled", "",
             "Ratio: the quantum method's modelled QPU energy over the measured energy of its classical baseline in "
             "the same run (where a stage has no separate baseline entry, the quantum entry's own measured energy: "
             "the simulation plus the classical work it metered). Superconducting QPU seconds are the ledger's own "
             "estimates; the other models use the same circuits, shots and structure. Annealer figures are per "
             "QUBO (a lower bound).",
             "", *quantum_table(figs), "",
             "## Device models and their sources", "", *devices_section(), "", CAVEAT, "",
             "## How each cost grows", "", *growth_section(figs),
             "## Every step's cost against corpus size", "", *steps_growth_section(figs),
             "## Anchors", "", *anchors_section(figs), "",
             "## The scheduler's part: retraining only on drift", "", *scheduler_section(figs), ""]
    return "\n".join(parts)


def plot_stages(figs: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(r["stage"] for r in figs["rows"]))
    led = figs["ledger"]["stages"]
    series = {"whole stage, measured (ledger total)": [float(led[s].get("total", {}).get("energy_kwh") or 0)
                                                       for s in stages],
              "quantum methods simulated here, measured": [sum(q["energy_kwh"] or 0 for q in figs["quantum"]
                                                               if q["stage"] == s) for s in stages]}
    for d in GATE_DEVICES:
        series[f"quantum on hardware, {d.name} (model)"] = [
            sum(q["devices"][d.name]["kwh"] or 0 for q in figs["quantum"] if q["stage"] == s) for s in stages]
    fig, ax = plt.subplots(figsize=(10, 5.2))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series.items()):
        v = np.array(vals, dtype=float)
        ax.bar(np.arange(len(stages)) + (i - (len(series) - 1) / 2) * width, np.where(v > 0, v, np.nan), width,
               label=label)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(stages)), stages)
    ax.set_ylabel("kWh")
    ax.set_title("Energy per stage: measured on this CPU vs modelled QPU time at 25 kW")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_growth(figs: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = figs["growth"]["studies"]
    fig, axes = plt.subplots(1, len(studies), figsize=(6 * len(studies), 4.5), squeeze=False)
    for ax, (name, s) in zip(axes[0], studies.items()):
        n = np.array([p["n"] for p in s["points"]], dtype=float)
        ax.plot(n, [p["energy_kwh"] for p in s["points"]], "ko", label=f"{s['study']['classical']} (measured)")
        ax.plot(s["grid"], s["fit"](s["grid"]), "k--", label=f"fit {s['fit'].a:.2g} n^{s['fit'].b:.2f}")
        sim = [p.get("sim_energy_kwh") for p in s["points"]]
        if all(v is not None for v in sim):
            ax.plot(n, sim, "s", color="gray", label="quantum method simulated here (measured)")
        for d in GATE_DEVICES:
            ax.plot(s["grid"], s["curves"][d.name](s["grid"]), label=f"quantum on {d.name} (model)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{s['study']['size']} (n)")
        ax.set_ylabel("kWh")
        ax.set_title(f"{name}: {s['study']['quantum']}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write(figs: dict[str, Any], text: str, params: Params) -> None:
    reports = Path(params.paths.reports)
    (reports / "plots").mkdir(parents=True, exist_ok=True)
    if figs["rows"]:
        plot_stages(figs, reports / STAGES_PNG)
    if figs["growth"] and figs["growth"]["studies"]:
        plot_growth(figs, reports / GROWTH_PNG)
    write_text(reports / "energy.md", text)
