"""qlife.loading.load_saved: every kind the pipeline saves, written by the project's own savers (train's layout,
qlife.teacher_ops.save_model, stages.distill.save_students, StaticEmbedding.save), comes back with the same logits;
a folder that is none of them, and no path at all, get an error that names them and what was expected."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from qlife.loading import NotASavedModel, load_saved

LABELS = ["neg", "neutral", "pos"]
TEXTS = ["a fine film", "dull and slow", "great acting , bad plot", "the music"]
MAX_LENGTH = 24


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def teacher(tiny_teacher, tmp_path_factory):
    """A fine-tuned-like classifier (mlp head, moved weights) saved as train saves it: weights, tokenizer,
    qlife.json."""
    from qlife.classifiers import load_classifier
    from qlife.io import write_json
    from qlife.models import load_tokenizer

    model = load_classifier(tiny_teacher, num_labels=3, label_names=LABELS, head="mlp").eval()
    with torch.no_grad():
        model.classifier[0].weight.add_(0.3)
    folder = tmp_path_factory.mktemp("loading") / "teacher"
    model.save_pretrained(folder)
    tok = load_tokenizer(tiny_teacher)
    tok.save_pretrained(folder)
    write_json(folder / "qlife.json", {"max_length": MAX_LENGTH, "labels": LABELS, "base_model": tiny_teacher})
    batch = tok(TEXTS, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    return model, folder, batch


@torch.no_grad()
def _logits(model, batch) -> torch.Tensor:
    return model(**batch).logits


def test_teacher(teacher):
    model, folder, batch = teacher
    saved = load_saved(folder)
    assert (saved.kind, saved.input, saved.serving_kind) == ("teacher", "text", "classifier")
    assert saved.labels == LABELS and saved.max_length == MAX_LENGTH and saved.static is None
    assert saved.meta["base_model"] and not saved.model.training
    again = saved.tokenizer(TEXTS, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    assert torch.equal(again["input_ids"], batch["input_ids"])
    _same(_logits(saved.model, batch), _logits(model, batch))


def test_pruned_and_compressed(teacher, tmp_path):
    from qlife.methods import tensornet as tn
    from qlife.methods.pruning import head_counts, linear_targets, prune_heads
    from qlife.teacher_ops import save_model

    model, folder, batch = teacher
    pruned = prune_heads(copy.deepcopy(model), [np.array([1]), np.array([0])])
    save_model(pruned, folder, tmp_path / "pruned")
    saved = load_saved(tmp_path / "pruned")
    assert saved.kind == "pruned" and head_counts(saved.model) == [1, 1] and saved.labels == LABELS
    _same(_logits(saved.model, batch), _logits(pruned, batch))

    compressed = copy.deepcopy(model)
    tn.compress_model(compressed, "mpo_disentangled", 2.0, linear_targets(compressed, ["ffn"]), sites=2)
    with torch.no_grad():
        for layer in tn.compressed_layers(compressed).values():
            layer.disentangler.generators.normal_()
    save_model(compressed, folder, tmp_path / "compressed")
    saved = load_saved(tmp_path / "compressed")
    assert saved.kind == "compressed" and saved.max_length == MAX_LENGTH
    _same(_logits(saved.model, batch), _logits(compressed, batch))

    both = copy.deepcopy(pruned)  # pruned, then compressed: a compressed model
    tn.compress_model(both, "svd", 2.0, linear_targets(both, ["ffn"]))
    save_model(both, folder, tmp_path / "both")
    saved = load_saved(tmp_path / "both")
    assert saved.kind == "compressed" and head_counts(saved.model) == [1, 1]
    _same(_logits(saved.model, batch), _logits(both, batch))


@pytest.fixture(scope="module")
def students(tiny_teacher, tmp_path_factory):
    """Every student distill saves (save_students): mlp and VQC on the teacher's features at the top and in vqc/,
    the static table with its mlp student in static/ and its VQC in static/vqc/."""
    from transformers import AutoModel

    from qlife.methods.distill import MLPStudent
    from qlife.methods.static_embed import distill_static
    from qlife.methods.vqc import VQCConfig, VQCStudent, export_qasm
    from qlife.models import load_tokenizer
    from qlife.params import parse_params
    from stages.distill import save_students

    tok = load_tokenizer(tiny_teacher)
    ids = [tok(t)["input_ids"] for t in TEXTS]
    emb = distill_static(AutoModel.from_pretrained(tiny_teacher), tok, ids, dims=4, vocabulary="corpus")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    xs = emb.encode_ids(ids)

    def vqc(in_dim: int, X: np.ndarray) -> dict:
        student = VQCStudent(VQCConfig(in_dim=in_dim, n_classes=3, n_qubits=3, layers=1, seed=1))
        student.set_scaler(X)
        with torch.no_grad():
            student.circuit.weights.add_(0.4)
        return {"student": student.eval(), "qasm": export_qasm(student)}

    torch.manual_seed(0)
    mlp, mlp_s = MLPStudent(32, 8, 3), MLPStudent(emb.dims, 4, 3)
    mlp.set_scaler(x)
    mlp_s.set_scaler(xs)
    v, v_s = vqc(32, x), vqc(emb.dims, xs)
    folder = tmp_path_factory.mktemp("loading") / "student"
    save_students(folder, LABELS, parse_params({}), mlp.eval(), v,
                  {"static": {"embedding": emb, "tokenizer": tok}, "mlp": mlp_s.eval(), "vqc": v_s})
    return folder, torch.as_tensor(x), {"mlp": mlp, "vqc": v["student"], "mlp_static": mlp_s,
                                        "vqc_static": v_s["student"]}, emb


@pytest.mark.parametrize("where,kind,name", [("", "student", "mlp"), ("vqc", "vqc_student", "vqc")])
def test_students_on_teacher_features(students, where, kind, name):
    folder, x, models, _ = students
    saved = load_saved(folder / where)
    assert (saved.kind, saved.input, saved.serving_kind) == (kind, "teacher", "student")
    assert saved.labels == LABELS and saved.static is None and saved.tokenizer is None and saved.max_length is None
    with torch.no_grad():
        _same(saved.model(x), models[name](x))


@pytest.mark.parametrize("where,kind,name", [("static", "student", "mlp_static"),
                                             ("static/vqc", "vqc_student", "vqc_static")])
def test_students_on_the_static_table(students, where, kind, name):
    folder, _, models, emb = students
    saved = load_saved(folder / where)  # static/vqc: the table is the folder above
    assert (saved.kind, saved.input, saved.serving_kind) == (kind, "static", "static_student")
    assert saved.labels == LABELS and saved.max_length == emb.max_length
    np.testing.assert_array_equal(saved.static.vectors, emb.vectors)
    assert saved.tokenizer.encode(TEXTS[0]).ids  # the table's own tokenizer (tokenizers), no transformers model
    feats = torch.as_tensor(saved.static.encode_texts(TEXTS))
    with torch.no_grad():
        _same(saved.model(feats), models[name](feats))
    # the table named explicitly (serving's artifacts "static" and "student")
    assert load_saved(folder / where, static=folder / "static").static.dims == emb.dims


def test_vqc_shots_and_the_static_table_alone(students, tmp_path):
    folder, x, models, emb = students
    sampled = load_saved(folder / "vqc", shots=64).model
    assert sampled.shots == 64 and load_saved(folder / "vqc").model.shots is None
    emb = load_saved(folder / "static").static  # (the fixture's table points at save_students' temporary folder)
    emb.save(tmp_path / "table")
    saved = load_saved(tmp_path / "table")
    assert (saved.kind, saved.model, saved.serving_kind, saved.labels) == ("static", None, None, [])
    np.testing.assert_array_equal(saved.static.weights, emb.weights)
    np.testing.assert_allclose(saved.static.encode_texts(TEXTS), emb.encode_texts(TEXTS), rtol=0, atol=1e-6)


def test_a_folder_that_is_no_saved_kind_is_named(tmp_path, tiny_teacher):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(NotASavedModel, match=rf"{tmp_path} is not a saved model: it holds notes.txt; expected .*"
                                             r"qlife.json \+ config.json .*student.json .*static.json"):
        load_saved(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotASavedModel, match="holds nothing"):
        load_saved(tmp_path / "empty")
    with pytest.raises(NotASavedModel, match="does not exist"):
        load_saved(tmp_path / "missing")
    with pytest.raises(NotASavedModel, match="is a file"):
        load_saved(tmp_path / "notes.txt")
    with pytest.raises(NotASavedModel, match="bare Hugging Face model.*load_classifier"):
        load_saved(tiny_teacher)  # a base model: config.json, no qlife.json


@pytest.mark.parametrize("path", ["", "  ", None])
def test_no_path_is_refused(path):
    with pytest.raises(NotASavedModel, match="no path given.*expected a saved model folder"):
        load_saved(path)


def test_a_static_student_without_its_table_and_an_unknown_student(students, tmp_path):
    import shutil

    folder = students[0]
    shutil.copytree(folder / "static" / "vqc", tmp_path / "vqc")
    with pytest.raises(NotASavedModel, match="static input.*pass static="):
        load_saved(tmp_path / "vqc")
    (tmp_path / "odd").mkdir()
    shutil.copy(folder / "student.safetensors", tmp_path / "odd")
    (tmp_path / "odd" / "student.json").write_text(json.dumps({"kind": "forest", "input": "teacher"}))
    with pytest.raises(NotASavedModel, match="unknown student kind 'forest'"):
        load_saved(tmp_path / "odd")
