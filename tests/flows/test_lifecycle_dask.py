"""The lifecycle flow on Dask (`orchestration.task_runner: dask`, a local cluster of 2 worker processes): every
step's task and the stages' own parallel maps run on the cluster's workers. Slow (the cluster's start and a whole
lifecycle); the default suite runs the same flow on threads (tests/flows/test_lifecycle.py)."""

from __future__ import annotations

import os

import pytest
import yaml

from tests.conftest import tiny_params_dict

pytestmark = pytest.mark.slow

DASK_LOG: dict = {"scheduler": None}


def _recording_runner():
    """prefect-dask's DaskTaskRunner, recording what its scheduler computed before the flow closes it."""
    from prefect_dask import DaskTaskRunner

    class Recording(DaskTaskRunner):
        def __exit__(self, *exc):
            if self._client is not None:
                DASK_LOG["scheduler"] = self._client.run_on_scheduler(
                    lambda dask_scheduler: {k: int(v.state_counts.get("memory", 0))
                                            for k, v in dask_scheduler.task_prefixes.items()})
            return super().__exit__(*exc)

    return Recording


def test_lifecycle_flow_submits_its_tasks_to_dask(tiny_teacher, tmp_path, monkeypatch):
    import prefect_dask
    from prefect.testing.utilities import prefect_test_harness

    from flows.lifecycle import lifecycle_with_runner
    from qlife.stage import STEPS

    raw = tiny_params_dict(tiny_teacher)
    raw["orchestration"] = {"task_runner": "dask", "workers": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QLIFE_PIPELINE_RUN_ID", raising=False)
    monkeypatch.setattr(prefect_dask, "DaskTaskRunner", _recording_runner())
    with prefect_test_harness(server_startup_timeout=120):
        paths = lifecycle_with_runner(params_file="params.yaml", use_dvc=False)
    assert list(paths) == list(STEPS) and os.path.exists(paths["monitor"])
    seen = DASK_LOG["scheduler"]  # the flow's DaskTaskRunner's scheduler, read before the flow closed it
    assert seen is not None and seen.get("run_stage") == len(STEPS), seen  # every step's task ran on Dask
    assert seen.get("curate semdedup clusters", 0) >= 2, seen  # the stages' own maps, on the same cluster
    assert seen.get("monitor windows") == 2, seen
