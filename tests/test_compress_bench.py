"""bench/compress.py: the same healing budget for every method, byte targets met by the plans, and the summary."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench import compress
from qlife.methods import int8
from qlife.methods import tensornet as tn
from qlife.methods.compressors import Budget
from qlife.methods.pruning import count_parameters, linear_targets, prune_units


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared machine: one thread avoids spinning on contended cores (as the bench runs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=96, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


def _budget(model) -> Budget:
    names = linear_targets(model, ["ffn"])
    dense = {n: model.get_submodule(n) for n in names}
    return Budget(ratio=1.0, names=names, dense=dense, inputs={n: torch.randn(40, m.in_features)
                                                               for n, m in dense.items()},
                  dense_parameters=sum(tn.dense_parameters(m.out_features, m.in_features) for m in dense.values()),
                  teacher_parameters=count_parameters(model), sites=2, disentangler_layers=2, fit_steps=3)


def test_every_method_is_healed_by_the_same_number_of_optimizer_steps():
    teacher = _tiny_bert()
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(5, 60, rng.integers(4, 12))) for _ in range(20)]
    y = rng.integers(0, 2, 20)
    b = _budget(teacher).at(2.0)
    models = {}
    for method in ("mpo", "mpo_disentangled", "svd"):
        m = copy.deepcopy(teacher)
        tn.compress_model(m, method, b.ratio, b.names, b.sites, b.disentangler_layers)
        models[method] = m
    models["prune"] = prune_units(copy.deepcopy(teacher), "ffn", [np.arange(48)] * 2)
    steps = {}
    for method, m in models.items():
        before = [p.detach().clone() for p in m.parameters()]
        steps[method] = compress.heal(m, ids, y, 3, 1e-3, 0, 16, 0)  # 20 docs: one batch an epoch, so 3 epochs
        assert any(not torch.equal(a, p) for a, p in zip(before, m.parameters()))
    assert steps == {"mpo": 3, "mpo_disentangled": 3, "svd": 3, "prune": 3}
    assert compress.heal(models["svd"], ids, y, 0, 1e-3, 0, 16, 0) == 0


@pytest.mark.parametrize("method", ["mpo", "mpo_disentangled", "svd", "prune"])
def test_the_planned_ratio_is_the_smallest_that_meets_the_byte_target_and_the_built_model_has_those_bytes(method):
    teacher = _tiny_bert(1)
    b = _budget(teacher)
    planner = compress.BytePlanner(teacher, b)
    full = planner.teacher_int8
    assert planner.bytes_at(method, 1.0) <= full or method != "prune"
    target = full - 0.5 * planner.dense  # half of the FFN's int8 bytes saved
    ratio = planner.ratio_for(method, target)
    assert ratio is not None and ratio > 1
    assert planner.bytes_at(method, ratio) <= target < planner.bytes_at(method, ratio / 1.001)
    model = copy.deepcopy(teacher)
    if method == "prune":
        model = prune_units(model, "ffn", [np.arange(planner.keep(ratio))] * 2)
    else:
        tn.compress_model(model, method, ratio, b.names, b.sites, b.disentangler_layers)
    assert int8.served_bytes(int8.quantize_int8(int8.servable(model)))["total"] == planner.bytes_at(method, ratio)
    assert planner.ratio_for(method, 1000) is None  # below the embeddings and attention: out of reach


def test_summary_pairs_seeds_and_names_the_methods_within_three_points():
    def cell(acc: float) -> dict:
        return {"accuracy": acc, "float_after_healing": acc + 0.01, "float_before_healing": acc - 0.05,
                "bytes": {"total": 100, "body": 40}, "bytes_ratio": 4.0, "ffn_ratio": 2.0, "healing_steps": 20}

    accs = {"mpo": [0.80, 0.82, 0.81], "mpo_disentangled": [0.81, 0.84, 0.82], "svd": [0.75, 0.76, 0.74],
            "prune": [0.79, 0.80, 0.78]}
    res = {"teacher_accuracy": 0.83, "teacher_int8": {"accuracy": 0.82}, "targets": {"4": 4.0},
           "seeds": {str(s): {"cells": {"4": {m: cell(v[s]) for m, v in accs.items()}},
                              "texts_per_s": {f"4/{m}": 100.0 + s for m in accs}} for s in range(3)}}
    row = compress.summarise(res)["4"]
    assert row["methods"]["svd"]["mean"] == pytest.approx(0.75)
    assert row["methods"]["mpo"]["healing_steps"] == [20]
    assert row["methods"]["prune"]["texts_per_s"] == pytest.approx(101.0)
    d = row["mpo_disentangled_minus_mpo"]
    assert d["mean"] == pytest.approx(np.mean([0.01, 0.02, 0.01])) and d["n"] == 3
    assert row["methods"]["mpo_disentangled"]["minus_teacher_int8"]["mean"] == pytest.approx(0.01 / 3)
    assert row["best"] == "mpo_disentangled"
    assert row["within_3_points_of_teacher"] == ["mpo", "mpo_disentangled"]  # prune 0.79: 4 points below


def test_latency_times_every_model_on_the_same_batches_and_merge_joins_targets():
    teacher = _tiny_bert(2)
    served = int8.quantize_int8(teacher)
    ds = {"test": {"input_ids": [list(range(5, 5 + n)) for n in (3, 9, 12, 7) * 10]}}

    class Args:
        latency_docs, max_length = 40, 16

    batches = compress.latency_batches(ds, Args)
    assert [len(b["input_ids"]) for b in batches] == [32, 8]
    speed = compress.latency({"teacher_fp32": teacher, "0/svd": served}, batches, rounds=2)
    assert set(speed) == {"teacher_fp32", "0/svd"} and all(v > 0 for v in speed.values())
    cfg = {"seeds": 1, "heal": 2, "fit_steps": 1, "train": 8, "eval": 8, "latency_docs": 8, "rounds": 1,
           "max_length": 16, "wall_s": 1.0}
    part = {"teacher_accuracy": 0.8, "teacher_bytes": {}, "teacher_int8": {}, "created": "x", "environment": {},
            "config": cfg}
    old = {"5": {"teacher_fp32": [3.0], "teacher_int8": [4.0]}}  # the teachers' texts/s as runs kept them first
    a = {**part, "targets": {"5": 5.0}, "latency": old, "seeds": {"0": {"cells": {"5": {"svd": {}}},
                                                                         "texts_per_s": {"5/svd": 1.0}}}}
    b = {**part, "targets": {"4": 4.0}, "seeds": {"0": {"cells": {"4": {"svd": {}}}, "texts_per_s": {
        "4/svd": 2.0, "4/teacher_fp32": 5.0}}}}
    m = compress.merge([a, b])
    assert list(m["targets"]) == ["4", "5"] and set(m["seeds"]["0"]["cells"]) == {"4", "5"}
    assert m["seeds"]["0"]["texts_per_s"] == {"5/svd": 1.0, "4/svd": 2.0, "5/teacher_fp32": 3.0,
                                              "5/teacher_int8": 4.0, "4/teacher_fp32": 5.0}
    with pytest.raises(ValueError, match="differ"):
        compress.merge([a, {**b, "config": {**cfg, "heal": 3}}])


def test_summary_rows_use_the_seeds_every_method_ran_at_and_list_the_others():
    def cell(acc: float) -> dict:
        return {"accuracy": acc, "float_after_healing": acc, "float_before_healing": acc, "healing_steps": 1,
                "bytes": {"total": 1, "body": 1}, "bytes_ratio": 4.0, "ffn_ratio": 1.0}

    res = {"teacher_accuracy": 0.8, "teacher_int8": {"accuracy": 0.8}, "targets": {"4": 4.0},
           "seeds": {"0": {"cells": {"4": {"mpo": cell(0.7), "svd": cell(0.75)}}},
                     "1": {"cells": {"4": {"svd": cell(0.79)}}}}}
    row = compress.summarise(res)["4"]
    assert row["seeds_used"] == ["0"] and row["methods"]["svd"]["values"] == [0.75]
    assert row["incomplete_seeds"] == {"1": {"svd": 0.79}}
