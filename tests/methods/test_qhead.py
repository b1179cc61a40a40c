"""The hybrid quantum head: trains on features and end to end, under Adam or QNG, and its circuit can be frozen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlife.methods.finetune import HeadFit, fit_head, head_logits
from qlife.methods.qhead import QuantumHead, QuantumHeadConfig, mlp_head, mlp_hidden_matching, parameter_split


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 12)) + 1.5 * (2 * y[:, None] - 1) * (np.arange(12) < 3)
    return X.astype(np.float32), y


def test_config_is_validated():
    with pytest.raises(ValueError, match="qubits"):
        QuantumHeadConfig(qubits=0)
    with pytest.raises(ValueError, match="entanglement"):
        QuantumHeadConfig(entanglement="star")
    with pytest.raises(ValueError, match="rotations"):
        QuantumHeadConfig(rotations=("ry", "u3"))
    assert QuantumHeadConfig.from_dict(QuantumHeadConfig(qubits=3).to_dict()) == QuantumHeadConfig(qubits=3)


def test_same_seed_same_head_whatever_ran_before():
    a = QuantumHead(12, 2, QuantumHeadConfig(qubits=3, seed=4))
    torch.rand(100)
    b = QuantumHead(12, 2, QuantumHeadConfig(qubits=3, seed=4))
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, msg=n)


@pytest.mark.parametrize("optimizer", ["adam", "qng"])
def test_the_quantum_head_learns_a_separable_problem(optimizer):
    X, y = _blobs(400, 0)
    Xv, yv = _blobs(200, 1)
    head = QuantumHead(12, 2, QuantumHeadConfig(qubits=3, layers=2))
    w0 = head.circuit.weights.detach().clone()
    res = fit_head(head, X, y, Xv, yv, 2, HeadFit(epochs=15, learning_rate=1e-2, quantum_optimizer=optimizer, seed=0))
    acc = (head_logits(head, Xv, res["scaler"]).argmax(1) == yv).mean()
    assert acc > 0.9
    assert res["history"]["val_loss"][-1] < res["history"]["val_loss"][0]
    assert not torch.equal(head.circuit.weights.detach(), w0)  # the circuit was trained
    if optimizer == "qng":
        assert res["metric"]["metric_calls"] == res["steps"] and res["metric"]["metric_blocks"] == 4
    else:
        assert res["metric"] == {}


def test_a_frozen_circuit_stays_at_its_initialisation():
    X, y = _blobs(200, 0)
    head = QuantumHead(12, 2, QuantumHeadConfig(qubits=3))
    w0 = head.circuit.weights.detach().clone()
    fit_head(head, X, y, X, y, 2, HeadFit(epochs=2, freeze_circuit=True))
    assert torch.equal(head.circuit.weights.detach(), w0)
    assert parameter_split(head)["head_quantum"] == 0


def test_parameter_split_and_the_matched_mlp():
    head = QuantumHead(384, 2, QuantumHeadConfig(qubits=4, layers=2, rotations=("ry", "rz")))
    split = parameter_split(head)
    assert split == {"encoder": 0, "head_classical": 384 * 4 + 4 + 4 * 2 + 2, "head_quantum": 16,
                     "head": 1566, "total": 1566}
    h = mlp_hidden_matching(split["head"], 384, 2)
    mlp = sum(p.numel() for p in mlp_head(384, h, 2).parameters())
    assert h == 4 and abs(mlp - split["head"]) <= 384 + 3


@pytest.mark.parametrize("optimizer", ["adam", "qng"])
def test_finetune_trains_a_quantum_head_end_to_end(tiny_teacher, optimizer):
    from qlife.classifiers import load_classifier
    from qlife.methods.finetune import TrainConfig, finetune

    model = load_classifier(tiny_teacher, num_labels=2, head="quantum", quantum={"qubits": 3, "layers": 1})
    w0 = model.classifier.circuit.weights.detach().clone()
    enc0 = model.base_model.embeddings.word_embeddings.weight.detach().clone()
    rng = np.random.default_rng(0)
    ids = [[101, *rng.integers(1000, 1100, rng.integers(3, 9)).tolist(), 102] for _ in range(40)]
    y = rng.integers(0, 2, 40)
    cfg = TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3, head="quantum", quantum_optimizer=optimizer,
                      eval_points=2)
    hist = finetune(model, ids, y, cfg, 0, val=(ids[:10], y[:10]))
    assert len(hist["loss"]) == 5 and [s for s, _ in hist["val_loss"]] == [2, 5]
    assert not torch.equal(model.classifier.circuit.weights.detach(), w0)
    assert not torch.equal(model.base_model.embeddings.word_embeddings.weight.detach(), enc0)  # end to end
    if optimizer == "qng":
        assert hist["metric"]["metric_calls"] == 5 and hist["metric"]["metric_statevectors"] == 5 * 8 * 2
    assert not model.classifier._forward_hooks  # the QNG input hook is gone with the optimizer
    frozen = load_classifier(tiny_teacher, num_labels=2, head="quantum", quantum={"qubits": 3, "layers": 1})
    w1 = frozen.classifier.circuit.weights.detach().clone()
    finetune(frozen, ids, y, TrainConfig(epochs=1, batch_size=8, freeze_circuit=True), 0)
    assert torch.equal(frozen.classifier.circuit.weights.detach(), w1)


def test_head_learning_rates_reach_the_right_parameter_groups(tiny_teacher):
    from qlife.classifiers import load_classifier
    from qlife.methods.finetune import Optimizers, TrainConfig

    def lrs(model, **kw) -> dict[int, float]:
        opt = Optimizers(model, TrainConfig(learning_rate=1e-4, **kw), 10)
        return {id(p): g["initial_lr"] for g in opt.adam.param_groups for p in g["params"]}

    q = load_classifier(tiny_teacher, num_labels=2, head="quantum", quantum={"qubits": 2, "layers": 1})
    got = lrs(q, quantum_head_learning_rate=3e-3, circuit_learning_rate=1e-2)
    assert got[id(q.classifier.proj.weight)] == got[id(q.classifier.out.bias)] == 3e-3
    assert got[id(q.classifier.circuit.weights)] == 1e-2
    assert got[id(q.base_model.embeddings.word_embeddings.weight)] == 1e-4
    lin = load_classifier(tiny_teacher, num_labels=2)
    assert set(lrs(lin).values()) == {1e-4}  # a linear head keeps the encoder's rate unless told
    assert lrs(lin, head_learning_rate=2e-3)[id(lin.classifier.weight)] == 2e-3
