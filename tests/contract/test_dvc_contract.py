"""dvc.yaml declares everything each stage reads: code (import closure, checked statically in the default suite),
files (opened during a real run on a tiny files-source corpus) and params (every key touched), both recorded by
running every step (slow: `make test-slow`). A stage that starts reading something new fails here until dvc.yaml
declares it, so `dvc repro` never serves results computed from inputs it did not see."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from qlife import hyperparameters
from qlife.io import write_json, write_jsonl
from qlife.params import parse_params
from qlife.stage import STEPS as STAGE_STEPS
from qlife.stage import headline, metrics_path, report_path
from tests.conftest import tiny_params_dict
from tests.contract.reads import (
    ROOT,
    ParamsRecorder,
    code_closure,
    dvc_stages,
    missing,
    recording_opens,
)

# read by the stage wrapper's logging only (qlife.stage.execute -> MLflow), and the preflight a stage run on its
# own checks first (qlife.stage.main: it refuses or lets the stage run, computes nothing; the `check` step declares
# it and what it imports): no output depends on them, so neither they nor what only they import are stage deps
NOT_A_DEPENDENCY = frozenset({"qlife/tracking.py", "qlife/preflight.py"})
# where work runs, not what it computes: outputs are byte-identical for any placement (tests/test_parallel.py), so
# moving a stage onto a Dask cluster must not make DVC rerun it
NOT_A_DEPENDENCY_PARAMS = ("orchestration.",)
# the monitor's memory across runs (its stream detector's history, the acknowledged windows): kept outside DVC on
# purpose (qlife/monitoring.py), since the monitor rewrites it every run; as a dep every run would be stale
NOT_A_DEPENDENCY_PATHS = ("state",)


def _files_corpus(work: Path) -> dict:
    """A small labelled corpus with string labels, one labelled and one unlabelled live window."""
    from qlife.data.generator import generate_corpus

    g = generate_corpus(seed=1, n_docs=400, live_size=60)
    names = g.label_names
    write_jsonl(work / "corpus" / "part-0.jsonl",
                ({"text": d["text"], "label": names[d["label"]]} for d in g.docs[:200]))
    write_jsonl(work / "corpus" / "part-1.jsonl",
                ({"text": d["text"], "label": names[d["label"]]} for d in g.docs[200:]))
    (a, wa), (b, wb) = g.live.items()
    write_jsonl(work / "live" / f"{a}.jsonl", ({"text": d["text"], "label": names[d["label"]]} for d in wa))
    write_jsonl(work / "live" / f"{b}.jsonl", ({"text": d["text"]} for d in wb))
    return {"kind": "files", "path": "corpus", "live_path": "live"}


# every DVC step but `check`, in order: the stage modules, with the `hyperparameters` step before train
STEPS = [*STAGE_STEPS[:STAGE_STEPS.index("train")], "hyperparameters", *STAGE_STEPS[STAGE_STEPS.index("train"):]]


def test_every_step_declares_its_code():
    """Each step's import closure (imports inside functions included) is among its deps: no run needed."""
    declared = _declared(parse_params({}).model_dump())
    gaps = {s: missing(s, {"code": code_closure(s, NOT_A_DEPENDENCY) - NOT_A_DEPENDENCY}, declared[s]) for s in STEPS}
    assert all(not g for g in gaps.values()), {s: g for s, g in gaps.items() if g}
    assert "qlife/methods/prune_plan.py" in code_closure("compress")  # the closure really follows imports


@pytest.fixture(scope="module")
def recorded(tiny_teacher, tmp_path_factory):
    """Each stage run in process on the tiny corpus: {stage: {"files", "params"}} plus the params dict."""
    import os

    work = tmp_path_factory.mktemp("contract")
    raw = tiny_params_dict(tiny_teacher)
    raw["curate"]["source"] = _files_corpus(work)
    params = parse_params(raw)
    old = os.getcwd()
    os.chdir(work)
    reads = {}
    try:
        for stage in STEPS:
            run = hyperparameters.write if stage == "hyperparameters" else \
                importlib.import_module(f"stages.{stage}").run
            log: set[str] = set()
            with recording_opens(work) as opened:
                report = run(ParamsRecorder(params, log))
            if stage in STAGE_STEPS:
                write_json(report_path(params, stage), report)  # as qlife.stage.execute does, unrecorded
                write_json(metrics_path(params, stage), headline(report))
            files = {f for f in opened["read"] if f not in opened["written"] and f != "params.yaml"}
            reads[stage] = {"files": files, "params": log}
    finally:
        os.chdir(old)
    return reads, params.model_dump()


@pytest.mark.slow
def test_train_does_not_depend_on_what_the_search_decides(recorded):
    # train.epochs & co. are inputs of the hyperparameters step only: changing one that the search overrides
    # must not retrain (train_config.json keeps its content, so DVC skips train)
    reads, params = recorded
    declared = _declared(params)
    hp = {f"train.{k}" for k in hyperparameters.HP_KEYS}
    assert not hp & set(declared["train"]["params"]) and "train" not in declared["train"]["params"]
    assert not hp & reads["train"]["params"]
    assert hp <= set(declared["hyperparameters"]["params"])


def _declared(params: dict) -> dict:
    return dvc_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()), params)


def _paths_as_files(stage_reads: dict, params: dict) -> dict:
    """`paths.x` read by a stage is a file location: check it like a file (declared dep or out)."""
    out = {"files": set(stage_reads["files"]), "params": set()}
    kept_out = [Path(params["paths"][k]) for k in NOT_A_DEPENDENCY_PATHS]
    out["files"] = {f for f in out["files"] if not any(Path(f) == d or d in Path(f).parents for d in kept_out)}
    for key in stage_reads["params"]:
        if key.startswith("paths.") and key.split(".")[1] in NOT_A_DEPENDENCY_PATHS:
            continue
        if key.startswith("paths."):
            out["files"].add(params["paths"][key.split(".")[1]])
        elif not key.startswith(NOT_A_DEPENDENCY_PARAMS):
            out["params"].add(key)
    return out


def _check(stage: str, reads: dict, declared: dict, params: dict) -> list[str]:
    r = _paths_as_files(reads, params)
    code = code_closure(stage, NOT_A_DEPENDENCY) - NOT_A_DEPENDENCY
    st = declared[stage]
    gaps = missing(stage, {"code": code, "params": r["params"], "files": set()}, st)
    # a file read is covered by a declared dep or own out; a paths.x location also when a dep/out lies under it
    for f in sorted(r["files"]):
        under = any(Path(f) == Path(d) or Path(f) in Path(d).parents or Path(d) in Path(f).parents
                    for d in st["deps"] + st["outs"])
        if not under:
            gaps.append(f"file {f}")
    return gaps


@pytest.mark.slow
def test_stages_declare_everything_they_read(recorded):
    reads, params = recorded
    declared = _declared(params)
    assert set(declared) == {"check", *STEPS}
    # the params check runs before anything: curate (upstream of every other stage) depends on its stamp
    assert declared["check"]["outs"][0] in declared["curate"]["deps"]
    gaps = {s: _check(s, reads[s], declared, params) for s in STEPS}
    assert all(not g for g in gaps.values()), {s: g for s, g in gaps.items() if g}
    # the recording saw real reads: the user corpus, another stage's outputs, params sections
    assert any(f.startswith("corpus/") for f in reads["curate"]["files"])
    assert any(f.startswith("live/") for f in reads["monitor"]["files"])
    assert any(f.startswith("data/encoded/") for f in reads["deploy"]["files"])
    assert "reports/distill.json" in reads["deploy"]["files"]
    assert "train.model" in reads["monitor"]["params"]
    assert "paths.state" in reads["monitor"]["params"]  # the exemption above is for something the monitor reads


@pytest.mark.slow
@pytest.mark.parametrize("stage, kind, entry", [
    ("curate", "deps", "corpus"),  # the files source: appending a row must make curate stale
    ("monitor", "deps", "live"),  # a new live window
    ("deploy", "deps", "data/encoded/tokenized"),
    ("search", "deps", "data/curated/labels.json"),
    ("monitor", "params", "train.model"),
    ("monitor", "params", "encode.max_length"),
    ("distill", "deps", "qlife/quantum"),
    ("train", "params", "quality"),
    ("train", "deps", "data/search/train_config.json"),
    ("hyperparameters", "params", "train.epochs"),
    ("hyperparameters", "deps", "data/search/best.json"),
])
def test_contract_fails_when_a_declared_dependency_is_removed(recorded, stage, kind, entry):
    reads, params = recorded
    declared = _declared(params)
    assert not _check(stage, reads[stage], declared, params)
    assert entry in declared[stage][kind], f"{entry} not declared for {stage}"
    declared[stage][kind] = [d for d in declared[stage][kind] if d != entry]
    assert _check(stage, reads[stage], declared, params), f"removing {entry} from {stage} went unnoticed"


def test_every_declared_param_exists():
    # DVC refuses a stage whose declared param is missing from params.yaml (a removed section): catch it here
    from tests.contract.reads import _lookup

    params = parse_params({}).model_dump()

    def exists(key: str) -> bool:
        try:
            _lookup(params, key)
        except (KeyError, TypeError):
            return False
        return True

    missing_keys = {s: [k for k in st["params"] if not exists(k)] for s, st in _declared(params).items()}
    assert not any(missing_keys.values()), missing_keys
    assert not exists("quantum.shots")  # the check can fail: a removed section is missing


def test_dvc_lock_is_not_git_ignored():
    """DVC refuses to write a git-ignored dvc.lock ("'dvc.lock' is git-ignored"): `make run` would fail on a
    fresh clone while every test passes."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "-q", "dvc.lock"], cwd=root)
    assert proc.returncode == 1, "dvc.lock is git-ignored: remove it from .gitignore (dvc repro refuses to run)"


def _closure(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {}
    for s in graph:
        seen, todo = set(), list(graph[s])
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo += graph.get(u, ())
        out[s] = seen
    return out


def test_flow_dag_is_dvc_yamls():
    """qlife.stage.UPSTREAM (what the Prefect flow waits for before submitting a stage) is dvc.yaml's DAG: a stage
    depends on another when one of its deps is (or lies under, or above) one of the other's outs."""
    from qlife.stage import UPSTREAM
    from tests.contract.reads import covered

    declared = _declared(parse_params({}).model_dump())
    graph = {s: {o for o, od in declared.items() if o != s and any(
        covered(dep, od["outs"]) or any(covered(x, [dep]) for x in od["outs"]) for dep in d["deps"])}
        for s, d in declared.items()}
    dvc = {s: ups - {"check", "hyperparameters"} for s, ups in _closure(graph).items() if s in STAGE_STEPS}
    assert dvc == _closure({s: set(u) for s, u in UPSTREAM.items()})
    # the check can fail: monitor estimates the served models' quality, but waits for no step after distill
    assert "distill" in dvc["monitor"] and not {"deploy", "compress", "serving"} & dvc["monitor"]
    assert "distill" not in dvc["compress"]  # compression needs the teacher, not the students


def test_each_deploy_step_depends_on_its_own_params_only():
    """Changing a serving-cost param reruns the serving step alone, a compression param the compression step (and
    serving, which measures its model) alone: no other step declares them."""
    declared = _declared(parse_params({}).model_dump())
    for key, owner in (("deploy.serving", "serving"), ("deploy.compress", "compress")):
        users = {s for s, d in declared.items() if any(p == key or p.startswith(key + ".") or key.startswith(p + ".")
                                                       for p in d["params"])}
        assert users == {owner}, (key, users)
    assert not any(p in ("deploy", "train") for p in declared["deploy"]["params"])
