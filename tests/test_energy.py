"""qlife.energy / qlife.growth / qlife.energy_report: the figures in reports/energy.md equal the ledger's, one row
per stage and method, device models and sources stated, growth fits and break-even logic on known curves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from qlife import energy, energy_report
from qlife.growth import break_even, fit_circuits, fit_power_law, shots_for_error
from qlife.methods import sequential
from qlife.params import Monitor, parse_params
from qlife.quantum import resources as qres

SWAP = {"backend": "statevector", "executed_on": "cpu", "hardware_equivalent": True, "qubits": 15, "depth": 675,
        "two_qubit_gates": 308, "circuits": 1000, "shots": 1024000, "qpu_seconds": None,
        "qpu_seconds_est": qres.gate_qpu_seconds(1000, 1024), "energy_kwh_est": 0.0}
QAOA = {"backend": "qaoa/statevector", "executed_on": "cpu", "qubits": 12, "depth": 40, "two_qubit_gates": 24,
        "circuits": 122, "shots": 122 * 1024, "qpu_seconds_est": qres.gate_qpu_seconds(122, 1024)}


def entry(cpu_s: float, wall_s: float, quantum: dict | None = None) -> dict:
    e = {"wall_s": wall_s, "cpu_s": cpu_s, "energy_kwh": (cpu_s * 10 + wall_s * 5) / 3.6e6, "energy_model": "cpu_model"}
    return {**e, "quantum": quantum} if quantum else e


LEDGER = {"stages": {
    "curate": {"exact_hash": entry(0.1, 0.1), "classical": entry(2.0, 2.0), "quantum": entry(3.0, 3.0, SWAP),
               "total": entry(5.1, 5.1)},
    "search": {"random": {"wall_s": 1.0, "cpu_s": 1.0}, "tpe": {"wall_s": 1.5, "cpu_s": 1.4},
               "total": entry(2.4, 2.5)},
    "train": {"finetune": entry(60.0, 40.0), "total": entry(60.0, 40.0)},
    "deploy": {"prune_heads": entry(1.0, 1.0, QAOA), "total": entry(1.0, 1.0)},
    "monitor": {"tests": entry(8.0, 8.0), "total": entry(9.0, 9.0)}},
    "total": {"wall_s": 57.6, "cpu_s": 77.5, "energy_kwh": 2.5e-4, "qpu_seconds_est": 500.0}}
N_ENTRIES = 8  # entries that are not a stage's total


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("energy")
    params = parse_params({"paths": {"metrics": str(tmp_path / "metrics"), "reports": str(tmp_path / "reports"),
                                     "monitor": str(tmp_path / "monitor")}})
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "ledger.json").write_text(json.dumps(LEDGER))
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "drift.json").write_text(json.dumps({
        "window-000": {"alarm": False, "drift_planted": False}, "window-001": {"alarm": True, "drift_planted": True},
        "window-002": {"alarm": False, "drift_planted": True}}))
    rng = np.random.default_rng(0)
    rows = [{"study": "curate", "n": n, "wall_s": 1.0, "cpu_s": 1.0, "energy_kwh": 1e-9 * n**1.3,
             "circuits": int(60 * n + n * n / 100)} for n in (1000, 4000, 16000)]
    rows += [{"study": "distill", "n": n, "wall_s": 1.0, "cpu_s": 1.0,
              "energy_kwh": 2e-9 * n * float(np.exp(rng.normal(0, 0.01))), "circuits": 556 * n}
             for n in (500, 1000, 2000)]
    growth = tmp_path / "energy.json"
    growth.write_text(json.dumps({
        "created": "2026-12-03T12:00:00", "environment": {"cpus": 2}, "ledger": "cpu_model", "rows": rows,
        "studies": {"curate": {"classical": "cosine", "quantum": "swap tests", "size": "documents", "pairs": True,
                               "structure": {"qubits": 15, "depth": 675, "two_qubit_gates": 308}},
                    "distill": {"classical": "MLP", "quantum": "VQC", "size": "documents", "pairs": False,
                                "structure": {"qubits": 11, "depth": 9, "two_qubit_gates": 10}}}}))
    text, figs = energy.write_report(params, growth, step_growth_file(tmp_path))
    return params, text, figs, tmp_path


CAPS = {"train": 8000, "val": 2000, "test": 2000, "reference": 2000}


def step_growth_file(tmp_path) -> object:
    """bench.growth's results for three steps at two SST-2 sizes (no cap binds there) and curate alone on two
    generated corpora."""
    rows = []
    for n in (1000, 10000):
        curated = {"train": 0.55 * n, "val": 0.1 * n, "test": 0.1 * n, "reference": 0.15 * n}
        seen = sum(curated.values())
        rows += [{"kind": "sst2", "n": n, "step": "curate", "ok": True, "wall_s": 0.02 * n, "cpu_s": 0.01 * n,
                  "peak_rss_mb": 800.0, "energy_kwh": 1e-8 * n, "curated": curated, "seen": n},
                 {"kind": "sst2", "n": n, "step": "train", "ok": True, "wall_s": 0.1 * n, "cpu_s": 0.05 * n,
                  "peak_rss_mb": 1200.0, "energy_kwh": 1e-7 * n, "seen": seen},
                 {"kind": "sst2", "n": n, "step": "hyperparameters", "ok": True, "wall_s": 1.0, "cpu_s": 0.5,
                  "peak_rss_mb": 100.0, "energy_kwh": 2e-6, "seen": seen}]
    rows += [{"kind": "generator", "n": n, "step": "curate", "ok": True, "wall_s": 1e-3 * n, "cpu_s": 1e-3 * n,
              "peak_rss_mb": 0.01 * n, "energy_kwh": 1e-9 * n, "embedder": "tfidf"} for n in (10000, 100000)]
    path = tmp_path / "growth.json"
    path.write_text(json.dumps({"created": "2026-12-06T10:00:00", "environment": {"cpus": 2, "load_avg_1m": 3.0},
                                "settings": {"profile": "quick", "max_docs": CAPS},
                                "sizes_requested": [1000, 10000, 67349], "sizes_ran": {"sst2": [1000, 10000]},
                                "goal": {"measured": False, "holds": False, "n_clusters": 50,
                                         "power_law_mb": 1500.0,
                                         "estimate": {"linear_mb": 4000.0, "cluster_mb": 3000.0,
                                                      "from": [10000, 100000], "rms_cluster_docs": 17000,
                                                      "estimate_mb": 7000.0}},
                                "reads_uncut": {"curate": "the whole corpus"}, "rows": rows}))
    return path


def test_every_step_is_fitted_and_the_caps_bound_the_steps_after_curate(run):
    _, text, figs, _ = run
    sg = figs["steps_growth"]
    train, curate = sg["fits"]["sst2/train"], sg["fits"]["sst2/curate"]
    assert train["energy_kwh"]["b"] == pytest.approx(1.0) and train["cpu_s"]["b"] == pytest.approx(1.0)
    assert train["energy_kwh"]["at"]["1e+06"] == pytest.approx(0.1)
    seen = sum(CAPS.values())  # every split at its cap at 10^6 documents; 0.9 of n is seen below the caps
    assert train["energy_kwh"]["bounded"]["at"]["1e+06"] == pytest.approx(1e-7 * seen / 0.9)
    assert train["energy_kwh"]["bounded"]["at"]["1e+08"] == pytest.approx(1e-7 * seen / 0.9)
    assert "bounded" not in curate["energy_kwh"]  # curate sees the whole corpus
    assert sg["fits"]["sst2/hyperparameters"]["energy_kwh"]["b"] == pytest.approx(0.0, abs=1e-12)
    total = 1e-8 * 1e6 + 0.1 + 2e-6
    assert sg["totals"]["fit"]["1e+06"] == pytest.approx(total)
    section = text.split("## Every step's cost against corpus size")[1].split("\n## ")[0]
    assert "not yet: 67,349" in section and "| train | 1,000 |" in section.split("| train | 10,000 |")[0]
    assert "| curate | 1.00 | 1.00 | 0.00 | 1.00 | 0.01 | 1 | the whole corpus | the whole corpus | 800 |" in section
    assert "| hyperparameters | 0.00 | 0.00 | 0.00 | 0.00 | 2e-06 | 2e-06 | 2e-06 | 2e-06 | 100 |" in section
    assert "Curate alone on the built-in generator's corpora (near-duplicate embedder tfidf)" in section
    assert "not measured at 10^6 yet; estimated 7,000 MB there, over the goal: 4,000 MB growing" in section
    assert "grows to 17,000 documents" in section and "says 1,500 MB" in section
    headline = text.split("## Headline\n\n")[1].split("\n")[0]
    assert f"the whole pipeline on 10^6 documents would use {energy_report.g(total)} kWh" in headline


def test_without_step_growth_results_the_section_says_how_to_make_them(run, tmp_path):
    params, *_ = run
    params = params.model_copy(update={"paths": params.paths.model_copy(update={"reports": str(tmp_path)})})
    text, figs = energy.write_report(params, tmp_path / "none.json", tmp_path / "absent.json")
    assert figs["steps_growth"] is None
    assert "No per-step growth measurements (`bench/results/growth.json`): run `python -m bench.growth`" in text


def test_one_row_per_stage_and_method_with_the_ledgers_figures(run):
    params, text, figs, _ = run
    assert len(figs["rows"]) == N_ENTRIES
    table = text.split("## Per stage and method: measured")[1].split("## ")[0]
    for stage, methods in LEDGER["stages"].items():
        for method, e in methods.items():
            if method == "total":
                continue
            row = next(r for r in figs["rows"] if (r["stage"], r["method"]) == (stage, method))
            expected = e.get("energy_kwh", (e["cpu_s"] * 10 + e["wall_s"] * 5) / 3.6e6)  # CPU model where absent
            assert row["energy_kwh"] == pytest.approx(expected, rel=1e-12)
            assert row["kind"] == ("quantum" if "quantum" in e else "classical")
            assert re.search(rf"\| {stage} \| {method} \| {row['kind']} \|.*\| {energy_report_g(expected)} \|", table)
    assert figs["totals"]["measured_kwh"] == LEDGER["total"]["energy_kwh"]


def energy_report_g(x: float) -> str:
    from qlife.energy_report import g

    return re.escape(g(x))


def test_quantum_figures_recomputed_from_the_ledger(run):
    _, text, figs, _ = run
    swap = next(q for q in figs["quantum"] if q["method"] == "quantum")
    sc = swap["devices"]["superconducting"]
    assert sc["qpu_s"] == SWAP["qpu_seconds_est"]  # the ledger's own estimate
    assert sc["kwh"] == pytest.approx(SWAP["qpu_seconds_est"] * 25 / 3600)
    ion_shot = 308 * 600e-6 + (675 - 308) * 135e-6 + 100e-6 + 25e-6
    ion_s = 2.0 + 1000 * 0.1 + 1024000 * ion_shot
    assert swap["devices"]["trapped_ion"]["qpu_s"] == pytest.approx(ion_s)
    assert swap["devices"]["annealer"]["qpu_s"] is None  # swap tests are not a QUBO
    assert swap["baseline"] == "classical"
    assert sc["ratio"] == pytest.approx(sc["kwh"] / LEDGER["stages"]["curate"]["classical"]["energy_kwh"])
    qaoa = next(q for q in figs["quantum"] if q["method"] == "prune_heads")
    assert qaoa["devices"]["annealer"]["qpu_s"] == pytest.approx(qres.anneal_qpu_seconds(1024))
    assert qaoa["self_baseline"]
    for d in ("superconducting", "trapped_ion"):
        assert energy_report_g(swap["devices"][d]["kwh"]).replace("\\", "") in text
    assert figs["totals"]["qpu_s"] == LEDGER["total"]["qpu_seconds_est"]


def test_device_models_sources_anchors_and_caveat_are_stated(run):
    _, text, _, tmp_path = run
    for needle in ("superconducting", "trapped_ion", "annealer", "provider-ionq", "rep_delay", "D-Wave",
                   "2505.09598", "2605.02798", "25 kW", "Attributional caveat", "cryogenic"):
        assert needle in text, needle
    assert (tmp_path / "reports" / "energy.md").read_text() == text
    for png in ("energy_stages.png", "energy_growth.png"):
        assert (tmp_path / "reports" / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_growth_section_fits_and_states_break_even(run):
    _, text, figs, _ = run
    curate = figs["growth"]["studies"]["curate"]
    assert curate["fit"].b == pytest.approx(1.3, abs=1e-9)
    assert curate["circuits"].alpha == pytest.approx(60, rel=1e-6)
    assert curate["circuits"].beta == pytest.approx(0.01, rel=1e-6)
    for name in ("curate", "distill"):
        assert figs["growth"]["studies"][name]["verdicts"]["superconducting"]["size"] is None
        assert f"### {name}" in text
    assert "Break-even" in text and "no break-even" in text


def test_scheduler_counts_retrains_against_nightly(run):
    _, text, figs, _ = run
    s = figs["scheduler"]
    assert (s["drifted"], s["detected"], s["clean"], s["false_alarms"]) == (2, 1, 1, 0)
    assert s["power"] == 0.5 and s["alpha"] == 0.05 and not s["power_assumed"]
    assert s["train_kwh"] == LEDGER["stages"]["train"]["total"]["energy_kwh"]
    assert list(s["policies"]) == ["nightly", "per_window", "stream"] and s["current"] == "stream"
    assert s["stream"]["period"] == 720 and s["stream"]["rate"] == 0.1
    assert s["stream"]["threshold"] == sequential.threshold(energy.stream_policy_settings(Monitor()))
    for p in s["policies"].values():
        assert p["saved_train_kwh"] == pytest.approx((7 - p["mean"]) * s["train_kwh"])
    assert s["policies"]["nightly"]["mean"] == 7
    section = text.split("## The scheduler's part")[1]
    for k, name in energy_report.POLICY_NAMES.items():
        p = s["policies"][k]
        assert re.search(rf"\| {re.escape(name)}[^|]* \| {energy_report_g(p['mean'])} \(", section), k
    assert "retrain once per stream alarm (flows/monitor.py)" in section
    assert "(an assumption, DRIFT_EVENTS_PER_WEEK)" in section and "1/2 planted drift windows" in section
    headline = text.split("## Headline\n\n")[1].split("\n")[0]
    stream = s["policies"]["stream"]
    assert "flows/monitor.py retrains when the stream alarm" in headline
    assert "never a second on a window already answered" in headline
    assert f"it retrains {energy_report.g(stream['mean'])} times a week" in headline
    assert "retrains on every alarm" not in text and "as flows/monitor.py does" not in text


@pytest.fixture(scope="module")
def weeks():
    """The default simulation (2,000 weeks, production stream settings) at power 1 and 0.5, and without drift."""
    st = energy.stream_policy_settings(Monitor())
    return {"power 1": energy.simulate_weeks(0.05, 1.0, st), "power 0.5": energy.simulate_weeks(0.05, 0.5, st),
            "no drift": energy.simulate_weeks(0.05, 1.0, st, drift_events=0)}


def test_without_drift_per_window_alarms_retrain_8_4_times_a_week_and_the_stream_keeps_its_guarantee(weeks):
    sim = weeks["no drift"]
    assert sim["nightly"]["mean"] == 7 and sim["nightly"]["false_mean"] == 7
    assert sim["per_window"]["mean"] == pytest.approx(168 * 0.05, abs=0.25)  # 8.4 false alarms a week
    assert sim["per_window"]["false_mean"] == sim["per_window"]["mean"]
    stream = sim["stream"]
    assert stream["mean"] == stream["false_mean"] and stream["episodes"] == 0 and stream["delay_median"] is None
    # P(a false alarm within 720 windows) <= 0.1 with a fresh detector after each: ~0.1 false retrains per 720
    # windows (2,000 weeks: ~47 of them, a Poisson spread of +-15%)
    assert 0.05 <= stream["false_per_window"] * 720 <= 0.14


def test_with_a_test_that_sees_every_drifted_window(weeks):
    sim = weeks["power 1"]
    per_window, stream = sim["per_window"], sim["stream"]
    assert per_window["delay_median"] == 1 and per_window["within_goal"] == 1.0
    assert per_window["mean"] == pytest.approx(168 * 0.05 + 1, abs=0.4)
    assert stream["drift_events"] == 2000
    assert 0.9 <= stream["mean"] <= 1.05  # about one retrain per drift event
    assert stream["false_mean"] < 0.05
    assert stream["delay_median"] <= 4 and stream["within_goal"] >= 0.9
    assert stream["episodes"] >= 0.9 * stream["drift_events"] and stream["found"] >= 0.99


def test_a_weaker_test_finds_drift_later_and_nightly_is_the_same_whatever_the_test(weeks):
    strong, weak = weeks["power 1"]["stream"], weeks["power 0.5"]["stream"]
    assert weak["delay_median"] > strong["delay_median"] and weak["within_goal"] < strong["within_goal"]
    assert weeks["power 1"]["nightly"] == weeks["power 0.5"]["nightly"]  # the same seeded weeks
    assert weeks["power 0.5"]["nightly"]["delay_median"] == 13  # the median hour's drift waits for the night
    assert weeks["power 0.5"]["nightly"]["within_goal"] == pytest.approx(6 / 24, abs=0.03)


def test_drifted_p_values_have_the_power_asked_for():
    u = np.random.default_rng(0).random(200_000)
    for power in (0.05, 0.2, 0.5, 0.9):
        assert (energy.drifted_p_values(u, 0.05, power) < 0.05).mean() == pytest.approx(power, abs=0.005)
    assert (energy.drifted_p_values(u, 0.05, 1.0) == 0).all() and (energy.drifted_p_values(u, 0.05, 0.0) == 1).all()


def test_simulation_is_seeded_and_pure():
    a = energy.simulate_weeks(0.05, 0.5, weeks=40, seed=3)
    assert a == energy.simulate_weeks(0.05, 0.5, weeks=40, seed=3)
    assert a != energy.simulate_weeks(0.05, 0.5, weeks=40, seed=4)
    with pytest.raises(ValueError, match="alpha"):
        energy.simulate_weeks(1.0, 0.5)


@pytest.mark.parametrize("c", [None, 20.0])
def test_stream_policy_equals_the_detector_one_window_at_a_time(c):
    """The rounds of whole segments give the alarms of sequential.update with a reset (history cleared) after each
    alarm, as a retrain's new reference does; c = 20: many false alarms, so many resets."""
    settings = sequential.validate_settings(energy.stream_policy_settings(Monitor()))
    c = sequential.threshold(settings) if c is None else c
    n, t_max = 3, 300
    rng = np.random.default_rng(5)
    starts = np.zeros((n, t_max), dtype=bool)
    starts[0, [40, 150, 160, 260]] = True
    starts[1, [5, 200]] = True
    p_clean = rng.random((n, t_max))
    p_drift = energy.drifted_p_values(rng.random((n, t_max)), 0.05, 0.6)
    ties = np.broadcast_to([sequential.theta(settings["seed"], i) for i in range(t_max)], (n, t_max))
    retrain, drifted_at = energy._stream_policy(settings, c, starts, p_clean, p_drift, ties)
    for s in range(n):
        state, drifted, alarms = {**sequential.init_state(settings), "threshold": c}, False, []
        for t in range(t_max):
            drifted |= bool(starts[s, t])
            assert drifted_at[s, t] == drifted
            state, d = sequential.update(state, float(p_drift[s, t] if drifted else p_clean[s, t]), f"w{t}")
            if d["raised"]:
                alarms.append(t)
                state, drifted = sequential.reset(state, "retrained"), False
        assert np.flatnonzero(retrain[s]).tolist() == alarms
    assert retrain.sum() >= (2 if c > 100 else 10)


def test_power_law_fit_recovers_a_known_exponent():
    rng = np.random.default_rng(1)
    x = np.array([100, 300, 1000, 3000, 10000], dtype=float)
    y = 4e-7 * x**1.7 * np.exp(rng.normal(0, 0.02, len(x)))
    fit = fit_power_law(x, y)
    assert fit.b == pytest.approx(1.7, abs=0.03)
    assert fit.r2 > 0.999
    with pytest.raises(ValueError):
        fit_power_law([5, 5], [1, 2])


def test_circuit_fit_and_shots():
    n = np.array([10, 100, 1000])
    c = fit_circuits(n, 3 * n + 0.5 * n**2)
    assert (c.alpha, c.beta) == (pytest.approx(3), pytest.approx(0.5))
    assert fit_circuits(n, 7 * n, quadratic=False).alpha == pytest.approx(7)
    assert shots_for_error(1 / 32) == 1024 and shots_for_error(0.01) == 10_000


def test_break_even_exists_where_quantum_grows_more_slowly():
    grid = np.geomspace(1, 1e6, 601)
    v = break_even(grid, lambda n: n**2.0, lambda n: 100.0 * n)
    assert v["size"] == pytest.approx(100, rel=0.03)
    assert "cheaper from n" in v["why"]
    assert break_even(grid, lambda n: 10 * n, lambda n: n)["size"] == 1.0  # cheaper from the start


def test_break_even_absent_in_range_explains_why():
    grid = np.geomspace(1e3, 1e6, 100)
    same = break_even(grid, lambda n: n**2.0, lambda n: 1e4 * n**2.0)
    assert same["size"] is None and same["extrapolated"] is None
    assert "grows as fast or faster" in same["why"]
    slower = break_even(grid, lambda n: n**1.5, lambda n: 1e6 * n)
    assert slower["size"] is None
    assert slower["extrapolated"] == pytest.approx(1e12, rel=0.1)
    assert "would cross only near" in slower["why"]


def test_main_without_a_ledger_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    with pytest.raises(SystemExit, match="make run"):
        energy.main([])
