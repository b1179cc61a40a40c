"""Train's same-run head baselines, its verdict and the quantum head's hardware cost, on a tiny model."""

from __future__ import annotations

import numpy as np

from qlife.classifiers import load_classifier
from qlife.methods.finetune import TrainConfig, classifier_inputs
from qlife.params import Params
from stages.train import SHOTS_EST, head_baselines, heads_verdict, quantum_training_cost


def _split(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    ids = [[101, *rng.integers(1000, 1100, rng.integers(3, 9)).tolist(), 102] for _ in range(n)]
    return {"input_ids": ids, "label": (np.arange(n) % 2).tolist()}


def _features(model, ds: dict) -> tuple[dict, dict]:
    return ({s: classifier_inputs(model, d["input_ids"], 16, 0) for s, d in ds.items()},
            {s: np.array(d["label"]) for s, d in ds.items()})


def test_classifier_inputs_are_what_the_head_sees_in_input_order(tiny_teacher):
    import torch

    model = load_classifier(tiny_teacher, num_labels=2).eval()
    ids = _split(9, 0)["input_ids"]
    feats = classifier_inputs(model, ids, 32, 0, batch_size=4)
    with torch.no_grad():
        direct = model.classifier(torch.as_tensor(feats)).numpy()
        from qlife.methods.finetune import predict_ids

        logits, _ = predict_ids(model, ids, 32, 0)
    np.testing.assert_allclose(direct, logits, atol=1e-5)


def test_head_baselines_of_a_quantum_head(tiny_teacher):
    model = load_classifier(tiny_teacher, num_labels=2, head="quantum", quantum={"qubits": 2, "layers": 1}).eval()
    ds = {"train": _split(40, 0), "val": _split(12, 1), "test": _split(12, 2)}
    cfg = TrainConfig(max_length=16, head="quantum")
    feats, ys = _features(model, ds)
    out, preds, cost = head_baselines(model, feats, ys, cfg, ["a", "b"], Params())
    assert set(out) == {"linear", "mlp_matched", "quantum", "quantum_frozen_circuit", "features"}
    assert out["features"]["dim"] == 32
    assert out["quantum_frozen_circuit"]["trainable"]["head_quantum"] == 0
    assert out["quantum"]["trainable"]["head_quantum"] == 2 * 2  # 1 layer x 2 qubits x (ry, rz)
    trained = out["quantum"]["trainable"]["head"]
    assert abs(out["mlp_matched"]["trainable"]["head"] - trained) <= 32 + 3  # one hidden unit's worth
    for name in ("linear", "mlp_matched", "quantum", "quantum_frozen_circuit"):
        assert 0.0 <= out[name]["test_accuracy"] <= 1.0 and out[name]["steps"] >= out[name]["best_step"] >= 1
        assert preds[name].shape == (12,) and cost[name]["wall_s"] >= 0 and cost[name]["energy_kwh"] > 0
    # hardware: per example and epoch 1 forward + 2 x (4 weights + 2 angles) shifts (frozen: the angles' only),
    # one circuit per validation document each epoch and per test document
    for name, trained in (("quantum", 4), ("quantum_frozen_circuit", 0)):
        epochs = -(-out[name]["steps"] // 1)  # 40 examples: one batch of 128 per epoch
        assert out[name]["hardware_circuits"] == epochs * (40 * (1 + 2 * (trained + 2)) + 12) + 12
        assert cost[name]["qpu_s_est"] > 0
    assert cost["linear"]["qpu_s_est"] == cost["mlp_matched"]["qpu_s_est"] == 0.0
    v = heads_verdict(ys["test"], preds, cost, ["a", "b"], cfg, Params(), 0.5)
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("quantum", "quantum_frozen_circuit")
    assert v["best_classical"]["method"] in {"linear", "mlp_matched", "quantum_frozen_circuit"}
    assert v["quantum"]["cost"]["qpu_s_est"] == cost["quantum"]["qpu_s_est"] and f"{SHOTS_EST} shots" in v["note"]
    d = v["difference"]["quantum_minus_twin"]
    assert d["ci95"][0] <= d["value"] <= d["ci95"][1] and v["verdict"] in {"ahead", "tie", "behind"}


def test_a_linear_teacher_still_gets_the_quantum_heads_of_train_quantum_head(tiny_teacher):
    model = load_classifier(tiny_teacher, num_labels=2).eval()
    ds = {"train": _split(30, 0), "val": _split(10, 1), "test": _split(10, 2)}
    params = Params.model_validate({"train": {"quantum_head": {"qubits": 3, "layers": 1}}})
    out, _, _ = head_baselines(model, *_features(model, ds), TrainConfig(max_length=16), ["a", "b"], params)
    assert set(out) == {"linear", "mlp_matched", "quantum", "quantum_frozen_circuit", "features"}
    assert out["quantum"]["trainable"]["head_quantum"] == 3 * 2  # train.quantum_head's circuit: 3 qubits x (ry, rz)


def test_verdict_of_planted_heads():
    """The same predictions: a tie at exactly 0; a quantum head right where its frozen twin is wrong: ahead."""
    y = np.arange(40) % 2
    cost = {m: {"wall_s": 1.0} for m in ("quantum", "quantum_frozen_circuit", "linear", "mlp_matched")}
    same = {m: y.copy() for m in cost} | {"linear": 1 - y}
    v = heads_verdict(y, same, cost, ["a", "b"], TrainConfig(), Params(), 0.9)
    assert v["verdict"] == "tie" and v["difference"]["quantum_minus_twin"] == {"value": 0.0, "ci95": [0.0, 0.0]}
    assert v["best_classical"]["method"] in ("quantum_frozen_circuit", "mlp_matched") and v["quantum"]["value"] == 1
    apart = same | {"quantum_frozen_circuit": 1 - y}
    v = heads_verdict(y, apart, cost, ["a", "b"], TrainConfig(), Params(), 0.9)
    assert v["verdict"] == "ahead" and v["difference"]["quantum_minus_twin"]["value"] == 1.0
    assert v["best_classical"]["method"] == "mlp_matched" and v["verdict_vs_best"] == "tie"


def test_quantum_training_cost_counts_parameter_shift_and_metric_circuits(tiny_teacher):
    model = load_classifier(tiny_teacher, num_labels=2, head="quantum", quantum={"qubits": 3, "layers": 2})
    qh = model.classifier
    adam = quantum_training_cost(qh, 10, TrainConfig(batch_size=8))
    # per example: 1 forward + 2 x (12 circuit weights + 6 re-uploaded angles)
    assert adam == {"hardware_circuits_gradient": 10 * 8 * (1 + 2 * (12 + 6)), "hardware_circuits_metric": 0,
                    "metric_vs_gradient_circuits": 0.0}
    qng = quantum_training_cost(qh, 10, TrainConfig(batch_size=8, quantum_optimizer="qng", qng_metric_rows=4))
    assert qng["hardware_circuits_metric"] == 10 * 4 * 4  # 4 blocks (2 layers x ry, rz) x 4 rows per step


def test_max_train_docs_keeps_a_stratified_sample_in_order():
    """train.max_train_docs on an imbalanced split: each label's share kept (the minority too), the split's
    order kept, seeded; no cap keeps everything."""
    import datasets

    from stages.train import train_subsample

    labels = [int(i % 10 == 0) for i in range(300)]  # a 10% minority
    ds = datasets.Dataset.from_dict({"id": [str(i) for i in range(300)], "label": labels})
    cut, info = train_subsample(ds, 40, seed=5)
    assert info == {"kept": 40, "of": 300, "stratified_by": "label", "seed": 5}
    assert cut["label"].count(1) == 4 and len(cut) == 40
    ids = [int(i) for i in cut["id"]]
    assert ids == sorted(ids)
    assert train_subsample(ds, 40, seed=5)[0]["id"] == cut["id"]
    assert train_subsample(ds, None, seed=5) == (ds, {"kept": 300, "of": 300})
