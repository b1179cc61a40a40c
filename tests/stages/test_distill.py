"""Stage 5 on synthetic teacher features: every method in one report, the VQC exported, the modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.params import parse_params


def _features(folder: Path, d: int = 16, c: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 2
    arrays = {}
    for split, n in (("train", 240), ("val", 60), ("test", 60)):
        y = rng.integers(0, c, n)
        x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
        logits = (x @ centers.T).astype(np.float32)
        arrays.update({f"{split}_hidden": x, f"{split}_label": y, f"{split}_logits": logits})
    (folder / "features").mkdir()
    np.savez(folder / "features" / "teacher.npz", **arrays)
    (folder / "curated").mkdir()
    (folder / "curated" / "labels.json").write_text(json.dumps(["a", "b", "c"]))


def _params(folder: Path, method: str):
    paths = {k: str(folder / k) for k in ("features", "curated", "student", "reports", "metrics", "teacher")}
    return parse_params({"paths": paths, "distill": {
        "method": method, "inputs": ["teacher"], "ablations": method != "classical",
        "epochs": 4, "vqc_epochs": 4, "patience": 2, "qubits": 3, "layers": 1,
        "vqc_learning_rate": 0.02, "shots": [{"kind": "shots", "shots": 64}, {"kind": "shots", "shots": 4096}],
        "hardware_samples": 10,
        "backends": [{"kind": "aer", "shots": 512}, {"kind": "device", "device": "fake_torino", "shots": 512}],
        "qasm_check_samples": 20}})


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from stages.distill import run

    folder = tmp_path_factory.mktemp("distill")
    _features(folder)
    return folder, run(_params(folder, "both"))


def test_report_has_the_vqc_and_its_baselines(both):
    folder, report = both
    methods = report["methods"]
    assert set(methods) == {"teacher", "classical_student", "vqc_student", "mlp_same_budget",
                            "logistic_projected", "logistic_pca", "vqc_frozen_circuit", "vqc_classical_twin"}
    vqc = methods["vqc_student"]
    assert vqc["parameters"] == vqc["parameters_classical"] + vqc["parameters_quantum"]
    assert vqc["parameters_quantum"] == 3 * 1 * 2
    assert methods["mlp_same_budget"]["parameters"] <= vqc["parameters"]
    assert vqc["resources"]["qubits"] == 3 and vqc["resources"]["two_qubit_gates"] == 2
    assert set(vqc["shots"]) == {"64", "4096"}
    # exact, each shot count, aer and the device model on the same 10 test inputs
    same = vqc["same_inputs"]
    assert same["inputs"] == 10 and {"exact", "shots_64", "shots_4096", "aer", "device:fake_torino"} <= set(same)
    device = same["device:fake_torino"]
    assert device["device"] == "fake_torino" and device["two_qubit_gates"] >= 2 and device["depth"] > 0
    assert 0 <= device["agreement_with_exact"] <= 1 and same["aer"]["device"] is None
    assert vqc["qasm_roundtrip"] == {"inputs": 20, "prediction_agreement": 1.0}
    # a separable seeded set (3 Gaussian classes in 16 dims, the teacher's logits exact): the students learn it
    y = np.load(folder / "features" / "teacher.npz")["test_label"]
    majority = np.bincount(y).max() / len(y)  # 23 of 60
    assert methods["teacher"]["accuracy"] == 1.0
    assert methods["classical_student"]["accuracy"] > 0.9 and methods["logistic_projected"]["accuracy"] > 0.9
    assert methods["vqc_student"]["accuracy"] > majority + 0.2  # 3 qubits, 4 epochs
    for name in ("classical_student", "vqc_student", "mlp_same_budget", "logistic_projected"):
        # the teacher is always right here: agreeing with it is being right
        assert methods[name]["teacher_agreement"] == pytest.approx(methods[name]["accuracy"]), name
    train_q, eval_q = report["cost"]["vqc_student"]["quantum"], report["cost"]["vqc_evaluation"]["quantum"]
    assert train_q["hardware_equivalent"] and train_q["circuits"] > 240 and train_q["qpu_seconds_est"] > 0
    assert eval_q["circuits"] == 60 + 60 + 10 + 10 and "aer" in eval_q["executed_on"]
    assert report["summary"]["vqc_macro_f1"] == vqc["quality"]


def test_verdict_pairs_the_vqc_with_its_twin_and_the_best_classical_student(both):
    """The VQC student against vqc_classical_twin (the circuit replaced by cos of the same angles) and the best
    MLP / logistic student, in the quality metric with a paired interval over the same 60 test documents; each
    with its training cost (the VQC's QPU estimate, 0 for classical ones). Headlines carry the metric's name."""
    _, report = both
    v, methods = report["verdict"], report["methods"]
    assert v["metric"] == "macro_f1" and v["spread"] == "paired bootstrap over 60 test documents, 1000 resamples"
    assert v["quantum"]["method"] == "vqc_student" and v["twin"]["method"] == "vqc_classical_twin"
    pool = ("classical_student", "mlp_same_budget", "logistic_projected", "logistic_pca", "vqc_classical_twin")
    best = max(pool, key=lambda m: methods[m]["quality"])
    assert v["best_classical"]["method"] == best
    for role in ("quantum", "twin", "best_classical"):
        e = v[role]
        assert e["value"] == pytest.approx(methods[e["method"]]["quality"])  # the report's own figure, paired
        assert e["ci95"][0] <= e["value"] <= e["ci95"][1]
        assert e["cost"]["wall_s"] > 0 and e["cost"]["energy_kwh"] > 0
    assert v["quantum"]["cost"]["qpu_s_est"] > 0 and v["twin"]["cost"]["qpu_s_est"] == 0.0
    d = v["difference"]["quantum_minus_twin"]
    assert d["ci95"][0] <= d["value"] <= d["ci95"][1] and v["verdict"] in ("ahead", "tie", "behind")
    assert not [k for k in report["summary"] if "acc" in k]
    assert report["summary"]["vqc_classical_twin_macro_f1"] == methods["vqc_classical_twin"]["quality"]


def test_outputs_written(both):
    folder, report = both
    vqc = folder / "student" / "vqc"
    assert (folder / "student" / "student.json").exists()
    assert json.loads((vqc / "student.json").read_text())["kind"] == "vqc"
    assert (vqc / "circuit.qasm").read_text().startswith("OPENQASM 3")
    plots = folder / "reports" / "plots"
    points = json.loads((plots / "distill_students.json").read_text())
    assert {p["student"] for p in points} >= {"vqc_student", "mlp_same_budget", "classical_student"}
    curve, vqc_report = json.loads((plots / "distill_vqc_curve.json").read_text()), report["methods"]["vqc_student"]
    assert [p["epoch"] for p in curve] == list(range(vqc_report["epochs_run"]))
    assert curve[vqc_report["best_epoch"]]["val_accuracy"] == vqc_report["val_accuracy"] == max(
        p["val_accuracy"] for p in curve)  # the kept weights are the best epoch's


def test_saved_students_reload_to_the_reported_figures(both):
    """Each saved student, reloaded as serving loads it, gives the report's accuracy and teacher agreement; the
    exported OpenQASM 3, re-imported and simulated, gives the reloaded VQC's logits; shots sample around them."""
    import torch

    from qlife.loading import load_saved
    from qlife.methods.vqc import head_logits, input_angles, qasm_readout

    folder, report = both
    f = np.load(folder / "features" / "teacher.npz")
    x, y, teacher = torch.as_tensor(f["test_hidden"]), f["test_label"], f["test_logits"].argmax(1)
    for name, sub in (("classical_student", folder / "student"), ("vqc_student", folder / "student" / "vqc")):
        with torch.no_grad():
            pred = load_saved(sub).model(x).argmax(1).numpy()
        assert float((pred == y).mean()) == pytest.approx(report["methods"][name]["accuracy"]), name
        assert float((pred == teacher).mean()) == pytest.approx(report["methods"][name]["teacher_agreement"]), name
    vqc = load_saved(folder / "student" / "vqc").model
    with torch.no_grad():
        exact = vqc(x).numpy()
    qasm = (folder / "student" / "vqc" / "circuit.qasm").read_text()
    readout = qasm_readout(qasm, input_angles(vqc, f["test_hidden"]), vqc.cfg.readout)
    np.testing.assert_allclose(head_logits(vqc, readout), exact, atol=1e-4)
    sampled = load_saved(folder / "student" / "vqc", shots=128).model
    with torch.no_grad():
        noisy = sampled(x).numpy()
    assert sampled.shots == 128 and noisy.shape == (60, 3) and not np.allclose(noisy, exact)
    assert (noisy.argmax(1) == exact.argmax(1)).mean() > 0.7


@pytest.mark.slow  # ~25 s: make test-slow
def test_classical_only_and_quantum_only(tmp_path):
    from stages.distill import run

    _features(tmp_path)
    classical = run(_params(tmp_path, "classical"))
    assert "vqc_student" not in classical["methods"] and not (tmp_path / "student" / "vqc").exists()
    assert classical["verdict"] is None  # no quantum method ran
    quantum = run(_params(tmp_path, "quantum"))
    assert "classical_student" not in quantum["methods"] and "mlp_same_budget" in quantum["methods"]
    assert not (tmp_path / "student" / "student.json").exists()
    assert (tmp_path / "student" / "vqc" / "student.json").exists()
    assert quantum["verdict"]["best_classical"]["method"] in ("mlp_same_budget", "logistic_projected",
                                                              "logistic_pca", "vqc_classical_twin")


def test_bad_method_is_a_params_error():
    from qlife.params import ParamsError

    with pytest.raises(ParamsError, match="distill.method"):
        parse_params({"distill": {"method": "qaoa"}})
    with pytest.raises(ParamsError, match=r"distill\.shots\.0: .*\{kind: shots, shots: 256\}"):
        parse_params({"distill": {"shots": [256]}})  # the former bare counts name the spec to write
    for bad in ([{"kind": "shots", "shots": 0}], [{"kind": "aer"}], [{"kind": "shots"}, {"kind": "shots"}]):
        with pytest.raises(ParamsError, match=r"distill\.shots"):
            parse_params({"distill": {"shots": bad}})
    assert parse_params({"distill": {"shots": ["shots"]}}).distill.shots[0].shots == 1024


def test_finite_shot_evaluation_goes_through_the_backend_layer(tmp_path, monkeypatch):
    """Each spec of distill.shots builds its runner in qlife.quantum.backends (named by its param), which samples
    the simulator's exact probabilities on the whole test split and counts the resources; at a million shots the
    accuracy is the exact one."""
    from qlife.distilling import evaluate, hardware_evaluation, vqc_config
    from qlife.methods.distill import predict, train_student
    from qlife.methods.vqc import VQCStudent
    from qlife.quantum import backends
    from qlife.quantum.resources import circuit_resources
    from stages.distill import load_features

    _features(tmp_path)
    params = _params(tmp_path, "quantum").model_copy(update={"distill": parse_params({"distill": {
        "qubits": 3, "layers": 1, "hardware_samples": 0,
        "shots": [{"kind": "shots", "shots": 64}, {"kind": "shots", "shots": 1_000_000, "seed": 5}]}}).distill})
    data = {**load_features(params), "label_names": np.array(["a", "b", "c"])}
    student = VQCStudent(vqc_config(params, data["train_x"].shape[1], 3))
    student.set_scaler(data["train_x"])
    train_student(student, data, 0.5, 2.0, 3, 0.02, 32, 3, seed=0)
    made = []
    real = backends.circuit_backend
    monkeypatch.setattr(backends, "circuit_backend",
                        lambda spec, param: made.append((param, spec.shots)) or real(spec, param))
    structure = circuit_resources(student.vc.circuit)
    out, res = hardware_evaluation(student, data, params, structure)
    assert made == [("distill.shots[0]", 64), ("distill.shots[1]", 1_000_000)]
    exact = evaluate(predict(student, data["test_x"]), data)["accuracy"]
    assert abs(out["shots"]["1000000"]["accuracy"] - exact) <= 2 / 60 and out["shots"]["64"]["inputs"] == 60
    assert (res.backend, res.circuits, res.shots) == ("shots", 120, 60 * (64 + 1_000_000))
    assert (res.qubits, res.depth, res.hardware_equivalent) == (3, structure["depth"], True)


def test_ablations_share_seed_and_report_movement(both):
    _, report = both
    m = report["methods"]
    assert m["vqc_student"]["circuit_weight_movement"]["l2"] > 0
    for name in ("vqc_frozen_circuit", "vqc_classical_twin"):
        assert m[name]["circuit_weight_movement"]["l2"] == 0 and m[name]["parameters_quantum"] == 0
        assert m[name]["parameters"] == m["vqc_student"]["parameters_classical"]
        assert m[name]["vs_trained"] == pytest.approx(m[name]["quality"] - m["vqc_student"]["quality"])
    assert "verdict" in m["vqc_student"]["circuit_matters"]


@pytest.mark.slow  # ~25 s: make test-slow
def test_static_input_students_beside_teacher_features(tmp_path, tiny_teacher):
    """Students on the static input train on the same labels and teacher logits; their table and tokenizer are
    saved with them and give the stage's own features back from raw text."""
    import datasets
    from transformers import AutoModelForSequenceClassification

    from qlife.loading import load_saved
    from qlife.models import load_tokenizer
    from stages.distill import run

    _features(tmp_path)
    teacher = tmp_path / "teacher"
    AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=3).save_pretrained(teacher)
    tok = load_tokenizer(tiny_teacher)
    tok.save_pretrained(teacher)
    (teacher / "qlife.json").write_text(json.dumps({"max_length": 32, "labels": ["a", "b", "c"]}))
    words = ["good", "bad", "film", "plot", "dull", "great", "the", "a", "acting", "music"]
    rng = np.random.default_rng(0)
    texts, splits = {}, {}
    for split, n in (("train", 240), ("val", 60), ("test", 60)):
        texts[split] = [" ".join(rng.choice(words, 5)) for _ in range(n)]
        splits[split] = datasets.Dataset.from_dict(
            {"input_ids": [tok(t, truncation=True, max_length=32)["input_ids"] for t in texts[split]]})
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "encoded" / "tokenized"))
    params = _params(tmp_path, "both")
    params = parse_params({**params.model_dump(mode="json"), "distill": {
        **params.distill.model_dump(mode="json"), "inputs": ["teacher", "static"], "ablations": False,
        "static": {"dims": 8, "vocabulary": "corpus"}}, "paths": {**params.paths.model_dump(mode="json"),
                                                                    "encoded": str(tmp_path / "encoded")}})
    report = run(params)
    m = report["methods"]
    for name in ("classical_student_static", "vqc_student_static"):
        assert m[name]["input"] == "static" and 0 <= m[name]["teacher_agreement"] <= 1
        assert m[name]["input_info"]["dims"] == 8 and m[name]["input_info"]["tokens_with_vector"] == len(words)
    assert m["classical_student"]["input"] == "teacher"
    assert report["summary"]["classical_student_static_macro_f1"] == m["classical_student_static"]["quality"]
    # ablations off: the twin is the same-budget MLP; the static students compete as best classical
    v = report["verdict"]
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("vqc_student", "mlp_same_budget")
    assert v["best_classical"]["value"] >= m["classical_student_static"]["quality"]  # a candidate for best
    saved = load_saved(tmp_path / "student" / "static")  # the table with its classical student
    emb = saved.static
    assert saved.kind == "student" and saved.input == "static" and saved.serving_kind == "static_student"
    vqc = load_saved(tmp_path / "student" / "static" / "vqc")  # its table: the folder above
    assert vqc.kind == "vqc_student" and vqc.input == "static" and vqc.static.dims == 8
    assert emb.encode_texts(texts["test"]).shape == (60, 8)
    assert json.loads((tmp_path / "student" / "static" / "student.json").read_text())["input"] == "static"
    assert (tmp_path / "student" / "static" / "vqc" / "circuit.qasm").exists()
