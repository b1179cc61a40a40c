"""bench/plan.py's model on fixed unit costs: the arithmetic of N workers (no measuring, no timing)."""

from __future__ import annotations

import json
import math

import pytest

from bench import plan

UNITS = {name: {"s_per_unit": v} for name, v in {
    "exact_hash": 2e-5, "static_embed": 2e-5, "static_table": 1e-3, "teacher_load": 3.0, "tfidf_fit": 1e-4,
    "tfidf_embed": 4e-5, "kmeans_lloyd": 1e-8, "kmeans_init": 2e-8, "assign": 1e-8, "pair": 2e-8, "cluster": 4e-3,
    "merge": 5e-9, "split": 1e-6, "write": 7e-6, "report_pairs": 1e-4, "qpair": 2e-8, "qmeans_lloyd": 5e-8,
    "qmeans_init": 8e-8, "dask_task": 3e-3, "dask_map": 0.1, "classical_fixed": 0.1, "quantum_fixed": 1.0,
    "qcluster": 5e-3}.items()}
CFG = dict(plan.ASSUMPTIONS, iterations=20, skew=1.3, worker_speedup=1.5, exact_hash_bytes_per_doc=130.0,
           text_record_bytes=680.0, base_bytes=7e8, today_bytes_per_doc=2700.0, dask_task_bytes=7000.0,
           teacher_docs_per_s=20.0)


def run(N: int, units=UNITS, cfg=CFG, extra=()):
    return plan.at_workers(plan.plan_phases(units, cfg) + list(extra), N, cfg, units)


def test_doubling_the_workers_halves_the_parallel_part_and_leaves_the_serial_part():
    a, b = run(8), run(16)
    assert b["parallel_s"] == pytest.approx(a["parallel_s"] / 2)
    assert b["serial_s"] == a["serial_s"] > 0
    assert b["dask_s"] == a["dask_s"]  # one scheduler: its per-task cost does not split
    assert b["time_s"] < a["time_s"]


def test_memory_per_worker_falls_with_the_workers_and_one_worker_does_not_fit():
    mem = [run(N)["worker_gb"] for N in (1, 8, 32, 128)]
    assert mem == sorted(mem, reverse=True) and len(set(mem)) == 4
    assert not run(1)["fits_worker"]  # 10^8 embeddings alone are ~80 GB
    assert run(128)["fits_worker"]
    assert run(8)["today_layout_gb"] == pytest.approx(run(1)["today_layout_gb"] / 8 + 0.7 * 7 / 8, rel=1e-6)


def test_a_phase_that_costs_nothing_adds_nothing():
    zero = {"phase": "nothing", "cpu_s": 0.0, "serial_s": 0.0, "shuffle_bytes": 0.0, "broadcast_bytes": 0.0,
            "gather_bytes": 0.0, "tasks": 0, "maps": 0, "worker_bytes_per_doc": 0.0, "worker_fixed_bytes": 0.0,
            "driver_bytes": 0.0, "parallel_tasks": None}
    for N in (1, 32):
        a, b = run(N), run(N, extra=[zero])
        for key in ("time_s", "parallel_s", "serial_s", "network_s", "dask_s", "worker_gb", "driver_gb"):
            assert b[key] == a[key]


def test_a_unit_set_to_zero_removes_exactly_its_share():
    units = {**UNITS, "write": {"s_per_unit": 0.0}}
    a, b = run(32), run(32, units=units)
    share = UNITS["write"]["s_per_unit"] * CFG["docs"] / (32 * CFG["worker_speedup"])
    assert a["parallel_s"] - b["parallel_s"] == pytest.approx(share)


def test_no_network_on_one_worker_and_a_shuffle_share_that_falls_with_n():
    assert run(1)["network_s"] == 0.0
    shuffle = [next(p for p in run(N)["phases"] if p["phase"].startswith("shuffle"))["network_s"] for N in (8, 64)]
    assert shuffle[1] < shuffle[0]


def test_a_phase_with_fewer_tasks_than_workers_uses_only_that_many():
    phases = plan.plan_phases(UNITS, CFG)
    k1 = phases[0]["_meta"]["k1"]
    level2 = next(p for p in phases if p["phase"].startswith("centroids level 2"))
    assert level2["parallel_tasks"] == k1
    t = {N: next(p for p in run(N)["phases"] if p["phase"].startswith("centroids level 2"))["parallel_s"]
         for N in (k1, 4 * k1)}
    assert t[4 * k1] == t[k1] > 0


def test_clusters_follow_cluster_docs_in_two_levels():
    meta = plan.plan_phases(UNITS, CFG)[0]["_meta"]
    n_rest = CFG["docs"] * (1 - CFG["reference_share"]) * (1 - CFG["exact_dup_share"])
    assert meta["n_rest"] == pytest.approx(n_rest)
    assert meta["k"] == math.ceil(n_rest / CFG["cluster_docs"])
    assert meta["k1"] == math.ceil(math.sqrt(meta["k"])) and meta["k1"] * meta["k2"] >= meta["k"]
    assert meta["pairs"] == pytest.approx(CFG["skew"] * n_rest**2 / (2 * meta["k1"] * meta["k2"]))


def test_the_two_level_fit_is_a_smaller_serial_part_than_todays():
    a, _, c = plan.centroid_options(UNITS, CFG, (1, 128))
    assert c["serial_s"] < a["serial_s"] / 50
    assert c["assign_block_gb"] < a["assign_block_gb"] / 50
    assert c["wall_s"]["128"] < c["wall_s"]["1"]


def test_kmeans_cost_is_init_plus_linear_iterations():
    base = plan.kmeans_fit_s(UNITS, 1000, 10, 0)
    assert base == pytest.approx(2e-8 * 1000 * 10 * (2 + math.log(10)))
    assert plan.kmeans_fit_s(UNITS, 1000, 10, 4) - base == pytest.approx(4 * 1e-8 * 1000 * 10)
    assert plan.kmeans_fit_s(UNITS, 0, 10, 4) == 0.0


def test_todays_cost_adds_the_assignment_only_past_the_fit_sample():
    small = plan.today_cpu(UNITS, 50_000, 50_000, CFG, "tfidf", ("classical",), {"classical": 1e6})
    big = plan.today_cpu(UNITS, 200_000, 200_000, CFG, "tfidf", ("classical",), {"classical": 1e6})
    k = max(CFG["n_clusters"], math.ceil(200_000 / CFG["cluster_docs"]))
    fit = plan.kmeans_fit_s(UNITS, CFG["fit_sample"], k, 10)
    assign = 1e-8 * 200_000 * k
    assert big["classical"] == pytest.approx(0.1 + 4e-3 * k + fit + assign + 2e-8 * 1e6)
    assert small["classical"] == pytest.approx(0.1 + 4e-3 * 50 + plan.kmeans_fit_s(UNITS, 50_000, 50, 10) + 2e-8 * 1e6)


def test_fit_line_recovers_a_known_unit_cost():
    f = plan.fit_line([1000, 2000, 4000], [0.5 + 1e-3 * x for x in (1000, 2000, 4000)], "doc")
    assert f["slope"] == pytest.approx(1e-3) and f["intercept_s"] == pytest.approx(0.5)
    assert f["s_per_unit"] == pytest.approx(1e-3)
    exact = plan.fit_line([10, 20], [1.0, 2.0], "doc")
    assert exact["spread"] == pytest.approx(1.0) and exact["intercept_s"] == pytest.approx(0.0, abs=1e-12)


REPORT = {"cost": {"exact_hash": {"cpu_s": 1.0}, "embed": {"cpu_s": 40.0}, "classical": {"cpu_s": 5.0},
                   "quantum": {"cpu_s": 10.0}, "total": {"cpu_s": 56.0}},
          "summary": {"docs_in": 1000},
          "methods": {"classical": {"exact_removed": 10, "n_pairs_compared": 400},
                      "quantum": {"n_pairs_compared": 500, "kmeans_iterations": 7, "circuits": 900,
                                  "qpu_seconds_est": 3.0}},
          "embedder": {"kind": "static", "table_tokens": 123, "build_s": 8.0}}


def test_the_curate_phases_come_from_growths_row_then_the_workspace_then_the_committed_plan(tmp_path, monkeypatch):
    """The 67k phases outlive bench.growth's workspace: read from its row when recorded there, else from the
    workspace, else from the plan.json an earlier run wrote (naming it), else none."""
    from bench.growth import curate_report_figures

    fig = curate_report_figures(REPORT)
    assert fig["rest"] == 990 and fig["cost"]["total"] == 56.0 and fig["quantum_cpu_s_per_pair"] == 10.0 / 500
    assert (fig["pairs"], fig["qpairs"], fig["table_tokens"], fig["static_build_s_wall"]) == (400, 500, 123, 8.0)
    row = {"kind": "sst2", "step": "curate", "ok": True, "n": 67349}
    missing = tmp_path / "gone" / "curate.json"
    monkeypatch.setattr(plan, "GROWTH_REPORT_67K", missing)
    earlier = tmp_path / "plan.json"
    earlier.write_text(json.dumps({"created": "then", "earlier": {"report_67k": {**fig, "file": "/tmp/x.json"}}}))
    rows = [{**row, "n": 1000, "report": {**fig, "docs_in": 1}}, {**row, "report": fig}]
    got = plan.curate_report_67k({"rows": rows}, earlier)
    assert got["docs_in"] == 1000 and got["file"] == "bench/results/growth.json (sst2 curate, n = 67349)"
    assert plan.curate_report_67k({"rows": [row]}, earlier) == {**fig, "file": "/tmp/x.json",
                                                                "via": f"{earlier}, as its run of then read it"}
    missing.parent.mkdir()
    missing.write_text(json.dumps(REPORT))
    assert plan.curate_report_67k({"rows": [row]}, earlier) == {"file": str(missing), **fig}
    missing.unlink()
    assert plan.curate_report_67k({"rows": [row]}, tmp_path / "none.json") is None
