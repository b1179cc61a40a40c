"""`qlife.cli estimate`: the bill of every planned quantum job, without running anything."""

from __future__ import annotations

import json

import pytest

from qlife.cli import main
from qlife.estimate import corpus_size, planned
from qlife.params import parse_params
from qlife.quantum.resources import gate_qpu_seconds


def test_simulators_cost_nothing_but_show_the_hardware_time():
    rows = planned(parse_params({}))
    assert {r["stage"] for r in rows} == {"curate", "encode", "search", "distill"}
    search = next(r for r in rows if r["stage"] == "search")  # FMQA's QAOA on the simulator: 1 proposal after 3
    assert search["kind"] == "qaoa/statevector" and search["circuits"] == (1, 1)
    assert search["bills"][0].price_usd_est == 0 and search["bills"][0].qpu_seconds_est > 0
    curate = next(r for r in rows if r["stage"] == "curate")
    lo, hi = curate["bills"]
    n, k = 3000, 50
    assert lo.circuits == n * k + n * n // (2 * k) + n and hi.circuits > lo.circuits  # 1 .. max_iter rounds
    assert lo.price_usd_est == 0 and lo.qpu_seconds_est == pytest.approx(gate_qpu_seconds(lo.circuits, 1024))


def test_an_ibm_backend_is_priced_and_its_bill_printed(capsys):
    params = parse_params({"distill": {"hardware_samples": 10,
                                       "backends": [{"kind": "ibm", "device": "ibm_torino", "shots": 1000}]}})
    row = next(r for r in planned(params) if r["param"] == "distill.backends[0]")
    bill = row["bills"][0]
    # IBM pay-as-you-go, per QPU second, on the estimated time of 10 circuits x 1000 shots
    assert bill.circuits == 10 and bill.price_usd_est == pytest.approx(1.6 * gate_qpu_seconds(10, 1000))


def test_fmqa_on_dwave_or_ibm_is_billed_per_proposal():
    from qlife.quantum.billing import anneal_bill

    params = parse_params({"search": {"budget": 10, "fmqa": {"solver": {"kind": "dwave", "shots": 100}}}})
    row = next(r for r in planned(params) if r["stage"] == "search")
    assert row["circuits"] == (7, 7)  # 10 evaluations - 3 initial design points (3 levels at most)
    assert row["bills"][0].price_usd_est == pytest.approx(anneal_bill("Advantage_system", 7, 100).price_usd_est)
    params = parse_params({"search": {"budget": 10, "fmqa": {"solver": {
        "kind": "qaoa", "backend": {"kind": "ibm", "device": "ibm_torino", "shots": 1000}}}}})
    row = next(r for r in planned(params) if r["stage"] == "search")
    assert row["kind"] == "qaoa/ibm" and row["bills"][0].price_usd_est == pytest.approx(1.6 * gate_qpu_seconds(7, 1000))
    sa = parse_params({"search": {"fmqa": {"solver": "sa"}}})
    assert not [r for r in planned(sa) if r["stage"] == "search"]  # SA: no quantum job


def test_estimate_command_prints_the_table_and_json(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("distill: {backends: [{kind: ibm, shots: 100}]}\n")
    main(["estimate"])
    out = capsys.readouterr().out
    assert "| distill |" in out and "distill.backends[0]:" in out and "USD" in out
    main(["estimate", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["bills"][0]["provider"] == "ibm" and rows[-1]["bills"][0]["price_usd_est"] > 0


def test_corpus_size_counts_records_in_source_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n{"text": "y"}\n\n')
    (tmp_path / "b.csv").write_text("text,label\nx,a\ny,b\nz,a\n")
    params = parse_params({"curate": {"source": {"kind": "files", "path": str(tmp_path)}}})
    assert corpus_size(params) == 5
    capped = parse_params({"curate": {"source": {"kind": "files", "path": str(tmp_path), "max_docs": 3}}})
    assert corpus_size(capped) == 3
