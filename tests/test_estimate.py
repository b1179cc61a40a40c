"""`qlife.cli estimate`: the bill of every planned quantum job, without running anything."""

from __future__ import annotations

import json

import pytest
import yaml

from qlife.cli import main
from qlife.estimate import corpus_size, planned
from qlife.params import parse_params
from qlife.quantum.resources import gate_qpu_seconds


def test_simulators_cost_nothing_but_show_the_hardware_time():
    rows = planned(parse_params({}))
    assert {r["stage"] for r in rows} == {"curate", "encode", "search", "distill", "deploy", "monitor"}
    assert all(r["bills"][1].price_usd_est == 0 for r in rows)  # every default backend is a simulator
    search = next(r for r in rows if r["stage"] == "search")  # FMQA's QAOA on the simulator: 1 proposal after 3
    assert search["kind"] == "qaoa/statevector" and search["circuits"] == (1, 1)
    assert search["bills"][0].price_usd_est == 0 and search["bills"][0].qpu_seconds_est > 0
    curate = next(r for r in rows if r["stage"] == "curate")
    lo, hi = curate["bills"]
    n, k = parse_params({}).curate.generator.n_docs, 50
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
    ibm = next(r for r in rows if r["param"] == "distill.backends[0]")
    assert ibm["bills"][0]["provider"] == "ibm" and ibm["bills"][0]["price_usd_est"] > 0


def test_corpus_size_counts_records_in_source_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n{"text": "y"}\n\n')
    (tmp_path / "b.csv").write_text("text,label\nx,a\ny,b\nz,a\n")
    (tmp_path / "notes.txt").write_text("not a data file: the loader skips it\n")
    params = parse_params({"curate": {"source": {"kind": "files", "path": str(tmp_path)}}})
    assert corpus_size(params) == 5
    capped = parse_params({"curate": {"source": {"kind": "files", "path": str(tmp_path), "max_docs": 3}}})
    assert corpus_size(capped) == 3


# a cloud backend on each stage that has a backend param (train's quantum head runs on the simulator only): the
# param -> (params that set it, what the row prices)
CLOUD = {
    "curate.quantum.backend": {"curate": {"method": "quantum", "quantum": {"backend": {"kind": "ibm"}}}},
    "curate.quantum.compare.backends[0]": {"curate": {"quantum": {"compare": {"backends": [
        {"kind": "braket", "device": "Aria-1"}]}}}},
    "encode.quantum.backends[0]": {"encode": {"quantum": {"backends": [{"kind": "ibm", "device": "ibm_torino"}]}}},
    "search.fmqa.solver": {"search": {"budget": 6, "fmqa": {"solver": {"kind": "dwave"}}}},
    "distill.backends[0]": {"distill": {"backends": [{"kind": "braket", "device": "Garnet"}]}},
    "deploy.heads.solver": {"deploy": {"heads": {"solver": {"kind": "qaoa", "backend": {"kind": "ibm"}}}}},
    "deploy.ffn.solver": {"deploy": {"ffn": {"solver": {"kind": "dwave"}}}},
    "deploy.blocks.solver": {"deploy": {"blocks": {"enabled": True, "solver": {"kind": "dwave"}}}},
    "monitor.quantum.backend": {"monitor": {"quantum": {"backend": {"kind": "ibm"}}}},
}


@pytest.mark.parametrize("param", CLOUD)
def test_a_cloud_backend_on_each_stage_is_priced(param):
    rows = [r for r in planned(parse_params(CLOUD[param])) if r["param"] == param]
    assert len(rows) == 1 and rows[0]["bills"][0].price_usd_est > 0, rows
    assert rows[0]["bills"][0].provider in ("ibm", "braket", "dwave")
    assert rows[0]["qubits"]  # the circuit's (or the QUBO's) width, from the params and the model's config


def test_the_quantum_head_is_listed_at_its_hardware_equivalent_cost():
    row = next(r for r in planned(parse_params({"train": {"use_search": False, "head": "quantum"}}))
               if r["stage"] == "train")
    assert row["param"] == "train.quantum_head" and row["kind"] == "statevector" and row["qubits"] == 4
    assert row["bills"][0].price_usd_est == 0 and row["bills"][0].qpu_seconds_est > 0  # no backend param to price
    assert not [r for r in planned(parse_params({})) if r["stage"] == "train"]  # a linear head: no quantum job


def test_every_place_a_cloud_spec_can_go_is_billed():
    """Walk params for every backend spec (and list of specs); set each to IBM hardware (circuits) or D-Wave and
    QAOA-on-IBM (QUBOs); each must come back as a priced row of its own param."""
    from pydantic import BaseModel

    from qlife.params import Params, ParamsError
    from tests.contract.reads import BACKEND_SPECS

    def places(model, prefix=""):
        for name, value in model:
            key = f"{prefix}{name}"
            items = value if isinstance(value, list) else [value]
            if items and all(isinstance(v, BACKEND_SPECS) for v in items):
                yield key, isinstance(value, list), items[0]
            elif isinstance(value, BaseModel):
                yield from places(value, key + ".")

    def nested(key, value):
        out = value
        for part in reversed(key.split(".")):
            out = {part: out}
        return out

    def switched_on(key, data):
        """The spec's section switched on where it is off by default (deploy.blocks): an off job is not billed."""
        node, d = Params(), data
        for part in key.split(".")[:-1]:
            node, d = getattr(node, part), d[part]
            if getattr(node, "enabled", True) is False:
                d["enabled"] = True
        return data

    found = 0
    for key, is_list, spec in places(Params()):
        if spec.kind in ("statevector", "shots", "aer", "device", "ibm", "braket", "braket_local"):
            options = [({"kind": "ibm"}, key)]
        else:
            options = [({"kind": "dwave"}, key), ({"kind": "qaoa", "backend": {"kind": "ibm"}}, key)]
        for value, param in options:
            try:
                params = parse_params(switched_on(key, nested(key, [value] if is_list else value)))
            except ParamsError:  # a place for one kind only (distill.shots: finite-shot sampling)
                continue
            param += "[0]" if is_list else ""
            rows = [r for r in planned(params) if r["param"] == param]
            assert rows and rows[0]["bills"][1].price_usd_est > 0, (param, value)
            found += 1
    assert found >= 13  # curate x2, encode, search x2, distill, deploy x6, monitor (the finite-shot specs refuse ibm)


def test_the_issue_case_is_billed_by_the_command(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "monitor": {"quantum": {"backend": {"kind": "ibm", "device": "ibm_torino"}}},
        "deploy": {"heads": {"solver": {"kind": "qaoa", "backend": {"kind": "ibm"}}},
                   "ffn": {"solver": {"kind": "dwave"}}}}))
    main(["estimate"])
    out = capsys.readouterr().out
    for param in ("monitor.quantum.backend", "deploy.heads.solver", "deploy.ffn.solver"):
        assert f"| {param} |" in out and f"\n{param}:\n" in out  # a row and its bill
    total = float(out.split("Total price: ")[1].split(" ..")[0])
    assert total > 1000  # monitor's kernels: millions of circuits on a QPU
    main(["estimate", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert {r["param"] for r in rows if r["bills"][0]["price_usd_est"] > 0} == {
        "monitor.quantum.backend", "deploy.heads.solver", "deploy.ffn.solver"}


def test_monitor_circuits_are_what_its_kernels_count():
    """One window through monitor's own tests and one-class SVM: the circuits each quantum kernel object counted
    are what the estimate plans (one kernel per bandwidth tried, per fused bandwidth, per SVM kernel)."""
    import numpy as np

    from qlife.estimate import monitor_kernel_circuits
    from qlife.methods import drifttests

    params = parse_params({"monitor": {"n_permutations": 20, "quantum": {"features": 3, "bandwidths": [0.5, 1.0]},
                                       "fuse": {"quantum_bandwidths": [0.2]},
                                       "ocsvm": {"kernels": ["quantum_fidelity", "quantum_projected"], "max_ref": 12}}})
    built = []
    make = drifttests.quantum_kernel

    def counting(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    rng = np.random.default_rng(0)
    ref, live = rng.normal(size=(20, 4)), rng.normal(size=(11, 4))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(drifttests, "quantum_kernel", counting)
        from stages.monitor import WindowJob

        WindowJob(params.monitor, ref, ref[:12])(live)  # the one-class SVM sees ocsvm.max_ref rows
    assert sorted(k.circuits for k in built) == sorted(monitor_kernel_circuits(params, 20, 11))
    assert monitor_kernel_circuits(params, 20, 1) == []  # a one-record window is skipped
