"""qlife.energy / qlife.growth / qlife.energy_report: the figures in reports/energy.md equal the ledger's, one row
per stage and method, device models and sources stated, growth fits and break-even logic on known curves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from qlife import energy
from qlife.growth import break_even, fit_circuits, fit_power_law, shots_for_error
from qlife.params import parse_params
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
    text, figs = energy.write_report(params, growth)
    return params, text, figs, tmp_path


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
    assert s["power"] == 0.5 and s["alpha"] == 0.05
    assert s["train_kwh"] == LEDGER["stages"]["train"]["total"]["energy_kwh"]
    on_alarm = s["policies"]["on_alarm"]
    assert on_alarm["saved_train_kwh"] == pytest.approx((7 - on_alarm["mean"]) * s["train_kwh"])
    assert "nightly retraining" in text


def test_simulated_week_with_a_perfect_monitor_retrains_once():
    sim = energy.simulate_weeks(alpha=0.0, power=1.0, drift_events=1, weeks=50)
    assert sim["on_alarm"] == {"mean": 1.0, "p5": 1.0, "p95": 1.0}
    assert sim["nightly_if_alarm"]["mean"] == pytest.approx(1.0, abs=0.05)  # a drift in the last night's hour waits
    noisy = energy.simulate_weeks(alpha=0.05, power=1.0, weeks=400)
    assert noisy["on_alarm"]["mean"] == pytest.approx(168 * 0.05 + 1, abs=0.6)
    assert noisy["nightly_if_alarm"]["mean"] <= 7


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
