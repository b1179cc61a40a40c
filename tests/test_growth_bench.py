"""bench/growth.py: the per-process measurement (peak RSS, CPU seconds of a child), the workspace it builds, and the
fits (qlife.growth.stage_growth) on synthetic points."""

from __future__ import annotations

import json
import sys

import pytest

from bench import growth
from qlife.growth import seen_docs, stage_growth


def test_a_child_allocating_200_mb_peaks_at_200_mb_or_more():
    code = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(0.7)"
    m = growth.run_measured([sys.executable, "-c", code], poll_s=0.1)
    assert m["rc"] == 0 and m["killed"] is None
    assert m["peak_rss_mb"] >= 200
    assert m["tree_rss_peak_mb"] >= 200  # sampled while it sleeps


def test_a_child_burning_half_a_second_of_cpu_is_counted_in_its_grandchild_too():
    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 0.5: pass')"
    direct = growth.run_measured([sys.executable, "-c", burn])
    assert direct["cpu_s"] >= 0.4 and direct["wall_s"] >= 0.4
    nested = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}], check=True)"
    m = growth.run_measured([sys.executable, "-c", nested])
    assert m["rc"] == 0 and m["cpu_s"] >= 0.4  # a descendant it waited for counts


def test_a_child_past_the_rss_limit_is_killed(tmp_path):
    code = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(10)"
    m = growth.run_measured([sys.executable, "-c", code], rss_limit_mb=150, poll_s=0.1, log=tmp_path / "log")
    assert m["rc"] != 0 and "limit" in m["killed"] and m["wall_s"] < 8


def test_the_fit_recovers_known_exponents_and_the_caps_bound_the_extrapolation():
    shares = {"train": 0.5, "val": 0.1, "test": 0.1, "reference": 0.15}
    caps = {"train": 8000, "val": 2000, "test": 2000, "reference": 2000}
    pts = [{"n": n, "wall_s": 2e-3 * n, "cpu_s": 1e-4 * n**1.5, "peak_rss_mb": 500.0, "energy_kwh": 1e-9 * n,
            "seen": seen_docs(n, shares, caps)} for n in (1000, 3000, 10000)]
    f = stage_growth(pts, shares=shares, caps=caps)
    assert f["sizes"] == [1000, 3000, 10000]
    assert f["wall_s"]["b"] == pytest.approx(1.0) and f["cpu_s"]["b"] == pytest.approx(1.5)
    assert f["peak_rss_mb"]["b"] == pytest.approx(0.0, abs=1e-12)
    assert f["cpu_s"]["at"]["1e+06"] == pytest.approx(1e-4 * 1e9)
    seen = seen_docs(1e6, shares, caps)
    assert seen == 14000  # every split at its cap
    # the points have seen proportional to n (no cap binds at 10k): the law in seen docs, evaluated at the caps
    assert f["energy_kwh"]["bounded"]["at"]["1e+06"] == pytest.approx(1e-9 * seen / 0.85)
    assert f["energy_kwh"]["bounded"]["at"]["1e+08"] == f["energy_kwh"]["bounded"]["at"]["1e+06"]
    one = stage_growth(pts[:1])
    assert one["wall_s"]["fit"] is None and "2 distinct" in one["wall_s"]["why"]


def test_the_workspace_holds_the_first_n_rows_and_two_live_windows(tmp_path):
    data = tmp_path / "sst2"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n"
                                              for i in range(50)))
    (data / "validation.jsonl").write_text("".join(json.dumps({"text": f"v{i}", "label": i % 2}) + "\n"
                                                   for i in range(500)))
    ws = tmp_path / "ws"
    ws.mkdir()
    raw = growth.sst2_workspace(ws, 30, {"train": 10, "val": None, "test": None, "reference": None}, data)
    assert raw["tracking"]["enabled"] is False and raw["curate"]["source"]["kind"] == "files"
    assert raw["encode"]["max_docs"]["train"] == 10
    corpus = (ws / "data/source/corpus/corpus.jsonl").read_text().splitlines()
    assert len(corpus) == 30 and json.loads(corpus[-1])["text"] == "t29"
    w0, w1 = (ws / f"data/source/live/window-00{i}.jsonl" for i in (0, 1))
    rows0, rows1 = ([json.loads(x) for x in w.read_text().splitlines()] for w in (w0, w1))
    assert len(rows0) == len(rows1) == growth.LIVE_ROWS
    assert "label" not in rows0[0] and rows1[0] == {"text": "v200", "label": 0}
    steps = [s for s, _ in growth.pipeline_steps()]
    assert steps[:3] == ["check", "curate", "encode"] and steps[-1] == "monitor"
    cmd = growth.command(dict(growth.pipeline_steps())["check"], raw)
    assert cmd[0] == sys.executable and cmd[-1] == "metrics/params_check.json"


def test_merging_keeps_the_sizes_not_rerun_and_refuses_other_settings():
    settings = {"profile": "quick", "max_docs": growth.MAX_DOCS, "ledger": {"cpu_watts_per_core": 10.0}}
    old = {"settings": settings, "rows": [{"kind": "sst2", "n": 1000, "step": "curate", "cpu_s": 1.0},
                                          {"kind": "sst2", "n": 10000, "step": "curate", "cpu_s": 9.0}]}
    new = [{"kind": "sst2", "n": 10000, "step": "curate", "cpu_s": 10.0}]
    rows = growth.merge_rows(old, new, settings)
    assert [(r["n"], r["cpu_s"]) for r in rows] == [(1000, 1.0), (10000, 10.0)]
    with pytest.raises(SystemExit, match="max_docs"):
        growth.merge_rows(old, new, {**settings, "max_docs": {**growth.MAX_DOCS, "train": 100}})
    gen = {"settings": settings, "rows": [{"kind": "generator", "n": 10**4, "step": "curate", "embedder": "teacher"}]}
    with pytest.raises(SystemExit, match="embedder"):
        growth.merge_rows(gen, [{"kind": "generator", "n": 10**5, "step": "curate", "embedder": "tfidf"}], settings)


def test_the_rss_estimate_adds_the_linear_growth_and_one_quadratic_cluster_matrix():
    rows = [{"kind": "generator", "n": n, "step": "curate", "ok": True, "peak_rss_mb": 700.0 + n / 1000,
             "pairs_compared": {"classical": 50 * (n // 50) ** 2 // 2, "quantum": 1}} for n in (10_000, 100_000)]
    est = growth.rss_at(rows, n_clusters=50)
    assert est["linear_mb"] == pytest.approx(1700.0)
    assert est["rms_cluster_docs"] == 20_000  # 10^6 / 50 (equal clusters)
    assert est["cluster_mb"] == pytest.approx(10 * 20_000**2 / 2**20)
    goal = growth.rss_goal(rows, {}, 50)
    assert goal["measured"] is False and goal["holds"] is False  # 1.7 GB + 3.8 GB


def test_large_sst2_runs_take_the_static_embedder_and_are_fitted_apart():
    assert growth.sst2_embedder(1000, "auto") is None and growth.sst2_embedder(67349, "auto") == growth.LARGE_EMBEDDER
    assert growth.sst2_embedder(67349, "teacher") == "teacher"
    base = {"kind": "sst2", "step": "curate", "ok": True, "wall_s": 1.0, "peak_rss_mb": 500.0, "energy_kwh": 1e-6}
    rows = [{**base, "n": 1000, "cpu_s": 10.0}, {**base, "n": 10000, "cpu_s": 100.0},
            {**base, "n": 67349, "cpu_s": 20.0, "embedder": "static"}]
    f = growth.fits(rows, growth.MAX_DOCS)
    assert f["sst2/curate"]["sizes"] == [1000, 10000]  # the teacher's law, not bent by the static run
    assert f["sst2/curate"]["cpu_s"]["b"] == pytest.approx(1.0)
    assert "sst2/curate (static embedder)" not in f  # one size: no law
