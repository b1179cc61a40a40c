"""VQC student: gradients, training, shots, aer and the OpenQASM 3 round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlife.methods.distill import accuracy, count_trainable, distillation_loss, predict, train_student
from qlife.methods.vqc import (
    VQCConfig,
    VQCStudent,
    circuit_from_qasm,
    exact_probs,
    export_qasm,
    head_logits,
    input_angles,
    parameter_split,
    predict_backend,
    qasm_readout,
    readout_backend,
    readout_from_frequencies,
    trained_circuit,
)


def _data(n: int = 200, d: int = 12, c: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 2
    out = {}
    for split in ("train", "val", "test"):
        y = rng.integers(0, c, n)
        x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
        out.update({f"{split}_x": x, f"{split}_y": y, f"{split}_logits": (x @ centers.T).astype(np.float32)})
    return out


def _student(n_qubits: int = 3, layers: int = 2, d: int = 12, c: int = 3, **kw) -> VQCStudent:
    return VQCStudent(VQCConfig(d, c, n_qubits, layers, **kw))


@pytest.fixture(scope="module")
def trained() -> tuple[VQCStudent, dict]:
    data = _data()
    student = _student(4, 2, entanglement="ring")
    student.set_scaler(data["train_x"])
    train_student(student, data, 0.5, 2.0, 8, 3e-2, 32, 8, seed=0)
    return student, data


def test_gradients_reach_projection_and_circuit():
    data = _data(16)
    student = _student()
    student.set_scaler(data["train_x"])
    x, y = torch.as_tensor(data["train_x"]), torch.as_tensor(data["train_y"])
    loss = distillation_loss(student(x), torch.as_tensor(data["train_logits"]), y, 0.5, 2.0)
    loss.backward()
    for name in ("proj.weight", "circuit.weights", "head.weight"):
        grad = dict(student.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("reupload", [False, True])
def test_loss_decreases_on_a_tiny_batch(reupload):
    data = _data(32)
    student = _student(reupload=reupload)
    student.set_scaler(data["train_x"])
    x, y, t = (torch.as_tensor(data[k]) for k in ("train_x", "train_y", "train_logits"))
    opt = torch.optim.Adam(student.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        loss = distillation_loss(student(x), t, y, 0.5, 2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_parameter_split_and_config_round_trip(trained):
    student, data = trained
    split = parameter_split(student)
    assert split["quantum"] == 2 * 4 * 2 and split["total"] == count_trainable(student)
    assert split["classical"] == (12 * 4 + 4) + (4 * 3 + 3)
    clone = VQCStudent.from_config(student.config())
    clone.load_state_dict(student.state_dict())
    np.testing.assert_allclose(predict(clone, data["test_x"]), predict(student, data["test_x"]), atol=1e-6)


def test_training_beats_chance(trained):
    student, data = trained
    assert (predict(student, data["test_x"]).argmax(1) == data["test_y"]).mean() > 0.6


def test_exported_qasm_reimported_gives_the_same_predictions(trained):
    """qiskit.qasm3.loads + Statevector on the exported text: the student's readout and predictions, and the same
    unitary as the trained circuit for any input angles."""
    from qiskit.quantum_info import Operator

    student, data = trained
    qasm = export_qasm(student)
    assert qasm.startswith("OPENQASM 3") and "input float" in qasm
    x = data["test_x"][:100]
    expected = predict(student, x).argmax(1)
    readout = qasm_readout(qasm, input_angles(student, x), "expval")
    np.testing.assert_allclose(readout, student.circuit(torch.as_tensor(input_angles(student, x)).float())
                               .detach().numpy(), atol=1e-4)
    assert (head_logits(student, readout).argmax(1) == expected).all()
    qc = circuit_from_qasm(qasm)
    assert qc.num_qubits == 4 and len(qc.parameters) == 4
    ours = trained_circuit(student)
    values = np.linspace(-1, 1, 4)
    bind = lambda c: c.assign_parameters(dict(zip(sorted(c.parameters, key=lambda p: p.name), values)))  # noqa: E731
    assert Operator(bind(qc)).equiv(Operator(bind(ours)))


def test_shots_converge_to_exact(trained):
    student, data = trained
    exact = readout_from_frequencies(exact_probs(student, data["test_x"]), "expval")
    errors = [np.abs(readout_backend(student, data["test_x"], {"kind": "shots", "shots": s})[0] - exact).mean()
              for s in (64, 1024, 16384)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01
    expected = predict(student, data["test_x"]).argmax(1)
    agree = [(predict_backend(student, data["test_x"], {"kind": "shots", "shots": s, "seed": 1})[0].argmax(1)
              == expected).mean() for s in (16, 100_000)]
    assert agree[1] >= agree[0] and agree[1] > 0.97


def test_shots_readout_is_the_runners_sample_of_the_exact_probabilities(trained, monkeypatch):
    """A `shots` spec: the simulator's exact probabilities sampled by the backend layer (the former seeded
    multinomial, drawn there), with the resources the runner counts; the student's own `shots` mode too."""
    from qlife.quantum import backends

    student, data = trained
    x = data["test_x"][:30]
    probs = exact_probs(student, x)
    made = []
    monkeypatch.setattr(backends, "circuit_backend",
                        lambda spec, param, made=made, real=backends.circuit_backend: made.append(param)
                        or real(spec, param))
    readout, res = readout_backend(student, x, {"kind": "shots", "shots": 256, "seed": 2}, "d.shots[0]",
                                   {"qubits": 4, "depth": 9, "two_qubit_gates": 4})
    former = np.random.default_rng(2).multinomial(256, probs / probs.sum(1, keepdims=True)) / 256
    assert np.array_equal(readout, readout_from_frequencies(former, "expval"))
    assert made == ["d.shots[0]"] and (res.backend, res.circuits, res.shots, res.depth) == ("shots", 30, 30 * 256, 9)
    student.eval()
    student.shots, student._rng = 64, np.random.default_rng(3)
    try:
        with torch.no_grad():
            sampled = student(torch.as_tensor(x)).numpy()
    finally:
        student.shots = None
    former = np.random.default_rng(3).multinomial(64, probs / probs.sum(1, keepdims=True)) / 64
    assert made[-1] == "student.shots"
    np.testing.assert_allclose(sampled, head_logits(student, readout_from_frequencies(former, "expval")), atol=1e-6)


def test_student_shots_mode_samples_in_eval_only(trained):
    student, data = trained
    x = torch.as_tensor(data["test_x"][:50])
    student.eval()
    exact = student(x)
    student.shots = 64
    try:
        sampled = student(x)
    finally:
        student.shots = None
    assert sampled.shape == exact.shape and not torch.allclose(sampled, exact)


def test_aer_matches_exact_without_noise_and_noise_shrinks_the_signal(trained):
    student, data = trained
    x = data["test_x"][:12]
    exact = readout_from_frequencies(exact_probs(student, x), "expval")
    assert np.allclose(readout_backend(student, x, "statevector")[0], exact, atol=1e-10)  # exact, no sampling
    clean, res = readout_backend(student, x, {"kind": "aer", "shots": 4000, "noise": None})
    assert np.abs(clean - exact).max() < 0.08 and res.circuits == 12 and res.executed_on == "aer"
    noisy, _ = readout_backend(student, x, {"kind": "aer", "shots": 4000,
                                            "noise": {"p1": 0.01, "p2": 0.05, "readout": 0.1}})
    assert np.abs(noisy).mean() < np.abs(clean).mean()


def test_probs_readout_trains():
    data = _data(64)
    student = _student(readout="probs")
    student.set_scaler(data["train_x"])
    assert student.head.in_features == 2**3
    result = train_student(student, data, 0.5, 2.0, 3, 3e-2, 32, 3, seed=0)
    # the best epoch's weights are the ones kept, and they beat the majority class on held-out data
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    assert accuracy(student, data["val_x"], data["val_y"]) == result.best_val_accuracy
    majority = np.bincount(data["test_y"]).max() / len(data["test_y"])
    assert (predict(student, data["test_x"]).argmax(1) == data["test_y"]).mean() > majority + 0.2


# --- ablations: frozen circuit, classical twin, fixed PCA projection, the circuit's own learning rate ---------


@pytest.mark.parametrize("ablation,projection,trains", [
    ("trained", "learned", {"proj.weight", "circuit.weights", "head.weight"}),
    ("frozen", "learned", {"proj.weight", "head.weight"}),
    ("twin", "learned", {"proj.weight", "head.weight"}),
    ("trained", "pca", {"circuit.weights", "head.weight"}),
])
def test_gradients_reach_exactly_what_each_variant_trains(ablation, projection, trains):
    data = _data(32)
    student = _student(ablation=ablation, projection=projection)
    student.set_scaler(data["train_x"])
    loss = distillation_loss(student(torch.as_tensor(data["train_x"])), torch.as_tensor(data["train_logits"]),
                             torch.as_tensor(data["train_y"]), 0.5, 2.0)
    loss.backward()
    params = dict(student.named_parameters())
    for name in ("proj.weight", "circuit.weights", "head.weight"):
        grad = params[name].grad
        if name in trains:
            assert params[name].requires_grad and grad is not None and grad.abs().sum() > 0, name
        else:
            assert not params[name].requires_grad and grad is None, name
    assert parameter_split(student)["quantum"] == (student.circuit.weights.numel() if ablation == "trained" else 0)


@pytest.mark.parametrize("readout", ["expval", "probs"])
def test_twin_is_the_encoding_alone_on_qiskit_statevector(readout):
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    student = _student(3, 1, readout=readout, ablation="twin")
    angles = torch.tensor([[0.3, -1.2, 2.5], [np.pi, 0.0, -0.7]])
    got = student.twin_readout(angles).numpy()
    for row, a in zip(got, angles.numpy()):
        qc = QuantumCircuit(3)
        for q, v in enumerate(a):
            qc.ry(float(v), q)
        p = Statevector(qc).probabilities()  # little-endian: bit q of the index is qubit q, as z_signs
        want = readout_from_frequencies(p[None], readout)[0]
        np.testing.assert_allclose(row, want, atol=1e-6)


def test_three_ablations_train_on_the_same_data_and_seed():
    data = _data(120)
    moved, starts, heads = {}, {}, {}
    for ablation in ("trained", "frozen", "twin"):
        student = _student(3, 1, ablation=ablation)
        student.set_scaler(data["train_x"])
        starts[ablation] = student.initial_weights.clone()
        heads[ablation] = (student.proj.weight.detach().clone(), student.head.weight.detach().clone())
        res = train_student(student, data, 0.5, 2.0, 3, 3e-2, 32, 3, seed=0, circuit_lr=0.1)
        # early stopping keeps the best epoch, and each variant learns the separable set (majority ~0.41)
        assert res.history[res.best_epoch]["val_accuracy"] == res.best_val_accuracy == max(
            h["val_accuracy"] for h in res.history)
        assert res.best_val_accuracy > np.bincount(data["val_y"]).max() / len(data["val_y"]) + 0.2, ablation
        moved[ablation] = student.weight_movement()
    # same initialisation of the circuit, the projection and the head for all three
    for ablation in ("frozen", "twin"):
        assert torch.equal(starts[ablation], starts["trained"])
        assert all(torch.equal(a, b) for a, b in zip(heads[ablation], heads["trained"]))
    assert moved["trained"]["l2"] > 0 and moved["frozen"]["l2"] == 0 and moved["twin"]["l2"] == 0


def test_pca_projection_is_fixed_and_whitened():
    data = _data(200, d=12)
    student = _student(4, 1, projection="pca")
    student.set_scaler(data["train_x"])
    w0 = student.proj.weight.detach().clone()
    z = student.proj((torch.as_tensor(data["train_x"]) - student.mean) / student.std).detach().numpy()
    np.testing.assert_allclose(z.std(0, ddof=1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.corrcoef(z.T), np.eye(4), atol=1e-3)
    train_student(student, data, 0.5, 2.0, 2, 3e-2, 32, 2, seed=0)
    assert torch.equal(w0, student.proj.weight)


def test_circuit_learning_rate_is_its_own_group():
    student = _student()
    groups = student.optimizer_groups(1e-3, 5e-2)
    assert [g["lr"] for g in groups] == [1e-3, 5e-2]
    assert groups[1]["params"] == [student.circuit.weights]
    with pytest.raises(ValueError, match="ablation"):
        _student(ablation="none")
