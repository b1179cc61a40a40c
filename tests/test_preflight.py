"""The preflight refuses, before any work, what can be known without the data: `python -m qlife.cli check` (the
whole pipeline) and each stage run on its own exit 1 with one sentence per refusal naming the param."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qlife.params import parse_params
from qlife.preflight import NEEDS, STEPS, WRITES, PreflightError, preflight, refusals

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def llama_70b(tmp_path_factory) -> str:
    """A config-only folder of a 70B Llama (no weights: nothing could load it, everything must refuse it)."""
    from transformers import LlamaConfig

    path = tmp_path_factory.mktemp("llama-70b")
    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(path)
    return str(path)


def _set(workdir: Path, **sections) -> dict:
    """Merge `sections` into the tiny params.yaml (tracking off) and return the whole dict."""
    raw = yaml.safe_load((workdir / "params.yaml").read_text())
    for name, values in {**sections, "tracking": {"enabled": False}}.items():
        raw[name] = {**raw.get(name, {}), **values}
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    return raw


def _check(capsys) -> str:
    from qlife.cli import main

    with pytest.raises(SystemExit) as code:
        main(["check"])
    assert code.value.code == 1
    return capsys.readouterr().err


def _stage(step: str, capsys) -> str:
    import importlib

    with pytest.raises(SystemExit) as code:
        importlib.import_module(f"stages.{step}").main()
    assert code.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_tiny_params_pass_the_whole_preflight_in_seconds(tiny_workdir):
    params = parse_params(_set(tiny_workdir))
    refusals(params)  # imports and configs read once
    t0 = time.perf_counter()
    assert refusals(params) == []
    assert time.perf_counter() - t0 < 5
    preflight(params, ["curate"])  # a stage alone: curate needs nothing another step writes


def test_a_70b_config_is_refused_by_check_and_curate_naming_train_model(tiny_workdir, llama_70b, capsys):
    _set(tiny_workdir, train={"model": llama_70b}, curate={"embedder": "teacher"})
    t0 = time.perf_counter()
    err = _check(capsys)
    assert "- train.model: " in err and "GiB" in err and "search, train and deploy" in err
    err = _stage("curate", capsys)
    assert time.perf_counter() - t0 < 30
    assert err.startswith("curate: refused before any work") and "- train.model:" in err and "69,503M" in err
    assert not (tiny_workdir / "data").exists() and not (tiny_workdir / "metrics").exists()  # nothing embedded


@pytest.mark.parametrize("model, says", [("missing/folder/model", "does not exist"), ("", "has no config.json")])
def test_a_model_path_without_config_is_a_sentence(tiny_workdir, capsys, model, says):
    empty = tiny_workdir / "empty-model"
    empty.mkdir()
    _set(tiny_workdir, train={"model": model or str(empty)})
    assert f"train.model: {model or empty} {says}" in _check(capsys)


def test_a_hub_id_offline_is_refused_at_once(tiny_workdir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    params = parse_params(_set(tiny_workdir, train={"model": "qlife-tests/never-cached-model"}))
    t0 = time.perf_counter()
    found = refusals(params, ["encode"])
    assert time.perf_counter() - t0 < 5  # not transformers' 26 s of retries
    assert any(r.startswith("train.model: 'qlife-tests/never-cached-model' is not a local folder") and
               "HF_HUB_OFFLINE" in r for r in found)


def test_a_49_qubit_swap_test_is_refused_before_curate_embeds(tiny_workdir, capsys):
    # angle encoding of 24 features: two registers and an ancilla, simulated gate by gate on aer
    _set(tiny_workdir, curate={"quantum": {"encoding": "angle", "qubits": 24, "backend": "aer"}})
    err = _check(capsys)
    assert "49-qubit" in err and "curate.quantum.qubits" in err
    err = _stage("curate", capsys)
    assert "49-qubit" in err and "curate.quantum.qubits" in err
    assert not (tiny_workdir / "data" / "curated").exists()


def test_a_20_qubit_vqc_is_refused_before_any_student_trains(tiny_workdir, capsys):
    _set(tiny_workdir, distill={"qubits": 20})
    assert "- distill.qubits: the VQC student (20 qubits" in _check(capsys)
    err = _stage("distill", capsys)  # alone, without its inputs: every refusal at once
    assert "distill.qubits" in err and "paths.features: distill needs data/features/teacher.npz" in err
    assert not (tiny_workdir / "data" / "models").exists()


def test_a_missing_token_names_its_variable_and_the_bill_its_cap(tiny_workdir, monkeypatch, capsys):
    for var in ("QISKIT_IBM_TOKEN", "DWAVE_API_TOKEN", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    _set(tiny_workdir, distill={"backends": [{"kind": "ibm", "device": "ibm_torino", "confirm": True}]})
    err = _check(capsys)
    assert "distill.backends[0]: backend 'ibm' needs an API token: set the environment variable QISKIT_IBM_TOKEN" \
        in err and "refusing to submit" not in err  # confirmed: the bill passes
    err = _stage("distill", capsys)
    assert "QISKIT_IBM_TOKEN" in err

    params = parse_params(_set(tiny_workdir, distill={"backends": [{"kind": "ibm", "max_cost_usd": 0.5}]},
                               deploy={"ffn": {"solver": {"kind": "dwave"}}},
                               encode={"quantum": {"backends": [{"kind": "braket", "device": "Aria-1",
                                                                 "confirm": True}]}}))
    found = refusals(params)
    assert any("DWAVE_API_TOKEN" in r and r.startswith("deploy.ffn.solver") for r in found)
    assert any("AWS_ACCESS_KEY_ID" in r and r.startswith("encode.quantum.backends[0]") for r in found)
    bill = next(r for r in found if "refusing to submit" in r)  # the whole job's bill over its cap
    assert bill.startswith("distill.backends[0]") and "distill.backends[0].max_cost_usd to at least" in bill
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "not-a-real-token")
    monkeypatch.setenv("DWAVE_API_TOKEN", "not-a-real-token")
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    ok = parse_params(_set(tiny_workdir, distill={"backends": [{"kind": "ibm", "max_cost_usd": 1000}]},
                           deploy={"ffn": {"solver": {"kind": "dwave", "confirm": True}}}))
    left = refusals(ok)
    assert not any("token" in r or "refusing to submit" in r or "AWS" in r for r in left), left


def test_circuit_caps_and_simulated_qubo_sizes_are_refused_first(tiny_workdir):
    params = parse_params(_set(tiny_workdir, monitor={"quantum": {"backend": {"kind": "aer"}}},
                               curate={"method": "quantum", "quantum": {"backend": "aer", "max_circuits": 1000}},
                               deploy={"ffn": {"solver": {"kind": "qaoa"}}}))
    found = refusals(params)
    assert any(r.startswith("monitor.quantum.backend") and "monitor.quantum.max_circuits=100000" in r for r in found)
    assert any(r.startswith("curate.quantum.backend") and "max_circuits=1000" in r for r in found)
    assert any(r.startswith("deploy.ffn.solver: qaoa simulates at most 20 variables") and "64" in r for r in found)


def test_a_block_qubo_wider_than_the_simulator_is_refused(tiny_workdir, monkeypatch):
    """deploy.blocks: one variable per block; QAOA simulates 20 at most, so a 24-block teacher is refused before any
    stage (the tiny teacher's config is read as 24 blocks), and tabu is not."""
    import qlife.estimate

    shape = {"hidden": 32, "layers": 24, "heads": 2, "ffn": 64}
    monkeypatch.setattr(qlife.estimate, "model_shape", lambda params, teacher=False: shape)
    found = refusals(parse_params(_set(tiny_workdir, deploy={"blocks": {"enabled": True}})))
    assert any(r.startswith("deploy.blocks.solver: qaoa simulates at most 20 variables") and "24 blocks" in r
               for r in found), found
    ok = refusals(parse_params(_set(tiny_workdir, deploy={"blocks": {"enabled": True, "solver": {"kind": "tabu"}}})))
    assert not any(r.startswith("deploy.blocks") for r in ok)


def test_inputs_a_step_needs_alone_and_the_source_always(tiny_workdir):
    params = parse_params(_set(tiny_workdir))
    assert refusals(params) == []  # the whole pipeline: every step's input is written by a step before it
    alone = refusals(params, ["distill"])
    assert any(r.startswith("paths.teacher: distill needs data/models/teacher/qlife.json, which train writes: "
                            "run `dvc repro distill`") for r in alone)  # distill.inputs has static
    teacher_only = parse_params(_set(tiny_workdir, distill={"inputs": ["teacher"]}))
    assert not [r for r in refusals(teacher_only, ["distill"]) if r.startswith("paths.teacher")]
    files = parse_params(_set(tiny_workdir, curate={"source": {"kind": "files", "path": "no/such/corpus"}}))
    assert "curate.source.path: no/such/corpus does not exist" in refusals(files)[0]


def test_an_output_folder_that_cannot_be_written_is_refused(tiny_workdir):
    (tiny_workdir / "blocker").write_text("a file where monitor's folder would go")
    params = parse_params(_set(tiny_workdir, paths={"monitor": "blocker/monitor"}))
    found = refusals(params, ["monitor"])
    assert any(r.startswith("paths.monitor: blocker/monitor cannot be created: blocker is a file") for r in found)
    assert not any(r.startswith("paths.monitor") for r in refusals(params, ["curate"]))
    if os.geteuid() != 0:  # root writes into read-only folders: the mode check means nothing there
        (tiny_workdir / "ro").mkdir(mode=0o555)
        params = parse_params(_set(tiny_workdir, paths={"monitor": "ro"}))
        assert any(r.startswith("paths.monitor: ro is not writable") for r in refusals(params, ["monitor"]))


def test_preflight_error_is_a_data_error_with_one_line_per_refusal():
    from qlife.io import DataError

    err = PreflightError(["a.b: one", "c.d: two"])
    assert isinstance(err, DataError) and err.refusals == ["a.b: one", "c.d: two"]
    assert str(err).splitlines() == ["refused before any work (2 problems):", "- a.b: one", "- c.d: two"]
    with pytest.raises(ValueError, match="no preflight for step"):
        refusals(parse_params({}), ["nope"])


def test_tables_follow_dvc_yaml():
    """Every DVC step has a preflight; what it needs is among its dvc.yaml deps, what it writes among its outs."""
    from tests.contract.reads import covered, dvc_stages

    params = parse_params({}).model_dump()
    declared = dvc_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()), params)
    assert set(STEPS) == set(declared) - {"check"}
    at = lambda key: params["paths"][key.split(".")[1]]  # noqa: E731
    for step in STEPS:
        for key, name, _, writer in NEEDS[step]:
            path = f"{at(key)}/{name}"
            assert covered(path, declared[step]["deps"]) or any(covered(d, [path]) for d in declared[step]["deps"]), \
                (step, path)
            assert any(covered(path, [o]) or covered(o, [path]) for o in declared[writer]["outs"]), (writer, path)
        for key in WRITES[step]:
            assert any(covered(o, [at(key)]) for o in declared[step]["outs"]), (step, key)


def test_the_check_step_declares_the_preflights_code(monkeypatch):
    from tests.contract import reads

    monkeypatch.setitem(reads.ENTRIES, "check", "qlife/preflight.py")
    params = parse_params({}).model_dump()
    declared = reads.dvc_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()), params)["check"]
    code = reads.code_closure("check") | {"qlife/cli.py"}
    assert not [c for c in sorted(code) if not reads.covered(c, declared["deps"])]


@pytest.mark.slow
@pytest.mark.parametrize("entry, params, says", [
    ("qlife.cli", {"distill": {"qubits": 20}}, "distill.qubits"),
    ("stages.curate", {"curate": {"quantum": {"encoding": "angle", "qubits": 24, "backend": "aer"}}},
     "curate.quantum.qubits"),
    ("stages.curate", {"train": {"model": "LLAMA"}, "curate": {"embedder": "teacher"}}, "train.model"),
])
def test_entry_points_exit_1_within_30_s(tiny_workdir, llama_70b, entry, params, says):
    if "train" in params:
        params = {**params, "train": {"model": llama_70b}}
    _set(tiny_workdir, **params)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", entry, *(["check"] if entry == "qlife.cli" else [])],
                          cwd=tiny_workdir, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert time.perf_counter() - t0 < 30
