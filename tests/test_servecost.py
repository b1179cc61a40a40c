"""Serving latency: every model warm, interleaved over rounds, the speed-up with its range over rounds."""

from __future__ import annotations

import time

import pytest

from qlife import servecost


class _Sleepy:
    def __init__(self, ms: float, log: list[str], name: str):
        self.ms, self.log, self.name = ms, log, name
        self.calls = 0

    def predict(self, texts):
        self.calls += 1
        if self.calls == 1:  # a cold first call: must not reach the figures
            time.sleep(0.05)
        self.log.append(self.name)
        time.sleep(self.ms / 1e3)
        return [0] * len(texts)


def test_latency_is_warm_interleaved_and_the_speedup_has_its_range(monkeypatch, tmp_path):
    log: list[str] = []
    speeds = {"teacher": 6.0, "small": 2.0}
    import mlflow.pyfunc

    names = iter(speeds)  # each saved model's "path" is its name, which the loader gets back
    monkeypatch.setattr(servecost, "save_pyfunc", lambda *a, **k: next(names))
    monkeypatch.setattr(mlflow.pyfunc, "load_model", lambda name: _Sleepy(speeds[name], log, name))
    models = {name: {"kind": "classifier", "artifacts": {}} for name in speeds}
    rows = servecost.interleaved_latency(models, ["a text"], requests=20, rounds=5, seed=1)
    for name, ms in speeds.items():
        assert rows[name]["ms_per_request_batch1"] == pytest.approx(ms, abs=1.5), name  # the cold call left out
        assert len(rows[name]["round_median_ms"]) == 5
    lo, hi = rows["small"]["speedup_vs_teacher_range"]
    assert lo <= rows["small"]["speedup_vs_teacher"] <= hi and 2.0 < rows["small"]["speedup_vs_teacher"] < 4.0
    assert rows["teacher"]["speedup_vs_teacher"] == 1.0
    # interleaved: after the two warm-ups, the models take turns round by round, in more than one order
    timed = log[2:]
    blocks = [timed[i] for i in range(0, len(timed), 4)]
    assert len(blocks) == 10 and blocks.count("teacher") == 5
    firsts = [blocks[2 * r] for r in range(5)]
    assert len(set(firsts)) == 2  # the order is shuffled per round
