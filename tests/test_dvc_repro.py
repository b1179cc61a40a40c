"""`dvc repro` on a copy of the repository with tiny params and a files source (slow: fresh Python processes
per stage): all seven stages run and a second repro runs none; a changed corpus row makes curate stale and
reruns everything downstream; a new live window makes monitor stale; `dvc exp run` never moves an alias."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qlife.params import parse_params
from qlife.stage import STEPS
from tests.conftest import tiny_params_dict

ROOT = Path(__file__).resolve().parents[1]
STAGES = STEPS  # the DVC steps (deploy's pruning, compression and serving cost among them)
pytestmark = pytest.mark.slow


def sh(*cmd: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("QLIFE_PIPELINE_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def ran(out: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in out}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_teacher) -> Path:
    """A committed copy of the repository whose params point curate at a small JSONL corpus."""
    from qlife.data.generator import generate_corpus
    from qlife.io import write_jsonl

    tmp = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for f in files:
        if (ROOT / f).exists():
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, tmp / f)
    g = generate_corpus(seed=0, n_docs=600, live_size=120)
    write_jsonl(tmp / "data/source/corpus/corpus.jsonl",
                ({"text": d["text"], "label": g.label_names[d["label"]]} for d in g.docs))
    for name, window in g.live.items():  # production traffic: no labels
        write_jsonl(tmp / f"data/source/live/{name}.jsonl", ({"text": d["text"]} for d in window))
    raw = tiny_params_dict(tiny_teacher)
    raw["curate"]["source"] = {"kind": "files"}
    # promote something on this tiny run (window-001 drifts by design and would block every promotion), so
    # the exp-run test below has aliases to keep
    raw["promote"] = {"gate": {"block_on_open_drift": False, "min_margin_over_majority": 0.0}}
    full = parse_params(raw).model_dump()  # dvc.yaml interpolates ${paths.*}: write the whole params
    (tmp / "params.yaml").write_text(yaml.safe_dump(full))
    sh("git", "init", "-q", cwd=tmp)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A", cwd=tmp)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x", cwd=tmp)
    out = sh(sys.executable, "-m", "qlife.cli", "run", cwd=tmp)  # `make run`: repro, promote, summary
    assert ran(out.stdout) == set(STAGES)
    return tmp


def aliases(repo: Path) -> list[tuple]:
    with sqlite3.connect(repo / "mlflow.db") as db:
        return sorted(db.execute("select name, alias, version from registered_model_aliases").fetchall())


def test_second_repro_runs_nothing_and_metrics_are_listed(repo):
    assert ran(sh("dvc", "repro", cwd=repo).stdout) == set()
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    metrics = next(iter(shown.values()))["data"]
    assert {Path(p).stem for p in metrics} >= set(STAGES)


def test_unlabelled_live_windows_are_scored(repo):
    drift = json.loads((repo / "data/monitor/drift.json").read_text())
    assert set(drift) == {"window-000", "window-001"}
    assert all(r["n_live"] == 120 for r in drift.values())


def test_dvc_exp_run_leaves_registry_aliases_unchanged(repo):
    before = aliases(repo)
    assert before, "make run should have promoted at least one model"
    out = sh("dvc", "exp", "run", "-S", "distill.qubits=3", cwd=repo)  # the tiny params use 4
    assert "Running stage 'distill'" in out.stdout
    assert aliases(repo) == before
    sh("dvc", "exp", "remove", "--all", cwd=repo, ok=False)
    sh("git", "checkout", "--", "params.yaml", cwd=repo)
    sh("dvc", "repro", cwd=repo)  # back to the committed params' outputs


def test_a_search_overridden_train_param_retrains_nothing(repo):
    # train.use_search is on: the search decides the epochs, so a new train.epochs in params.yaml reruns the
    # hyperparameters step (which says so), and train, whose input train_config.json is unchanged, not at all
    params_file = repo / "params.yaml"
    good = params_file.read_text()
    decided = json.loads((repo / "data/search/train_config.json").read_text())
    assert decided["source"] == "search"
    try:
        data = yaml.safe_load(good)
        data["train"]["epochs"] = decided["config"]["epochs"] + 1
        params_file.write_text(yaml.safe_dump(data))
        out = sh("dvc", "repro", cwd=repo)
        assert "Running stage 'hyperparameters'" in out.stdout and ran(out.stdout) == set()
        assert f"train.epochs = {data['train']['epochs']} in params.yaml is overridden" in out.stderr
        report = json.loads((repo / "reports/hyperparameters.json").read_text())
        assert report["overridden_by_search"]["epochs"]["params"] == data["train"]["epochs"]
        data["train"]["use_search"] = False  # now params.yaml decides: train reruns with its value
        params_file.write_text(yaml.safe_dump(data))
        out = sh("dvc", "repro", "train", cwd=repo)
        assert "train" in ran(out.stdout)
        assert json.loads((repo / "reports/train.json").read_text())["hyperparameters"]["epochs"] == \
            data["train"]["epochs"]
    finally:
        params_file.write_text(good)
        sh("dvc", "repro", cwd=repo)


def test_a_serving_param_reruns_the_serving_step_alone(repo):
    params_file = repo / "params.yaml"
    good = params_file.read_text()
    try:
        data = yaml.safe_load(good)
        data["deploy"]["serving"]["requests"] += 1
        params_file.write_text(yaml.safe_dump(data))
        assert ran(sh("dvc", "repro", cwd=repo).stdout) == {"serving"}
        rows = json.loads((repo / "reports/serving.json").read_text())["serving"]["models"]
        assert {r["requests"] for r in rows.values()} == {data["deploy"]["serving"]["requests"]}
        data["deploy"]["compress"]["fit_steps"] += 1  # a compression param: compression, then serving cost
        params_file.write_text(yaml.safe_dump(data))
        assert ran(sh("dvc", "repro", cwd=repo).stdout) == {"compress", "serving"}
    finally:
        params_file.write_text(good)
        sh("dvc", "repro", cwd=repo)


def test_changed_corpus_row_reruns_curate_and_downstream(repo):
    corpus = repo / "data/source/corpus/corpus.jsonl"
    lines = corpus.read_text().splitlines()
    row = json.loads(lines[5])
    # at the start: an edit past encode.max_length tokens changes nothing downstream (DVC rightly stops there)
    lines[5] = json.dumps({**row, "text": "edited: " + row["text"]})
    corpus.write_text("\n".join(lines) + "\n")
    status = sh("dvc", "status", cwd=repo).stdout
    assert "curate:\n\tchanged deps:\n\t\tmodified:           data/source/corpus" in status, status
    assert ran(sh("dvc", "repro", cwd=repo).stdout) == set(STAGES)


def test_new_live_window_makes_monitor_stale(repo):
    sh("dvc", "repro", cwd=repo)
    window = repo / "data/source/live/window-002.jsonl"
    window.write_text("".join(json.dumps({"text": f"breaking news number {i} about the match"}) + "\n"
                              for i in range(40)))
    status = sh("dvc", "status", cwd=repo).stdout
    assert "monitor:" in status and "curate:" not in status
    assert ran(sh("dvc", "repro", cwd=repo).stdout) == {"monitor"}
    drift = json.loads((repo / "data/monitor/drift.json").read_text())
    assert drift["window-002"]["n_live"] == 40


def test_bad_params_stop_dvc_before_any_output_is_touched(repo):
    watched = [*sorted((repo / "metrics").glob("*.json")), *sorted((repo / "reports").glob("*.json")),
               repo / "data/models/pruned/config.json",
               repo / "data/curated/train.jsonl"]
    before = {p: p.read_bytes() for p in watched}
    good = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(good + "\nunknown_section: {x: 1}\n")
        proc = sh("dvc", "repro", cwd=repo, ok=False)
        assert proc.returncode != 0 and "unknown_section" in proc.stdout + proc.stderr
        (repo / "params.yaml").write_text(good)
        proc = sh("dvc", "exp", "run", "-S", "distill.alpha=7", cwd=repo, ok=False)
        assert proc.returncode != 0 and "distill.alpha" in proc.stdout + proc.stderr
        assert "git checkout -- params.yaml" in proc.stdout + proc.stderr  # the way back is printed
        assert {p: p.read_bytes() for p in watched} == before  # nothing removed, nothing rewritten
    finally:
        (repo / "params.yaml").write_text(good)
        sh("dvc", "exp", "remove", "--all", cwd=repo, ok=False)
