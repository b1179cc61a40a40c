"""FFN pruning on tiny randomly initialised BERT and DistilBERT classifiers: real removal, exact outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from qlife.methods.pruning import (
    count_parameters,
    ffn_magnitude_importance,
    ffn_pairs,
    prune_ffn,
)
from qlife.methods.selection import TopKSelector, UnitScores

HIDDEN, INTER, LAYERS, VOCAB = 32, 64, 2, 100


def topk_keep(importances: list[np.ndarray], keep_ratio: float) -> list[np.ndarray]:
    """Per layer, the kept indices of deploy's top-k selector at `keep_ratio`."""
    return [TopKSelector().select(UnitScores(imp), max(1, round(keep_ratio * len(imp)))) for imp in importances]


def tiny_bert(hidden_act: str = "gelu") -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=INTER,
        max_position_embeddings=64,
        hidden_act=hidden_act,
        num_labels=2,
    )
    return BertForSequenceClassification(cfg).eval()


def tiny_distilbert() -> DistilBertForSequenceClassification:
    torch.manual_seed(0)
    cfg = DistilBertConfig(
        vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=2, hidden_dim=INTER, max_position_embeddings=64
    )
    return DistilBertForSequenceClassification(cfg).eval()


BUILDERS: dict[str, Callable[[], torch.nn.Module]] = {"bert": tiny_bert, "distilbert": tiny_distilbert}


def make_batches(n_batches: int = 3, batch: int = 4, seq: int = 12, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(1, VOCAB, (batch, seq), generator=g)
        lengths = torch.randint(3, seq + 1, (batch,), generator=g)
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        labels = torch.randint(0, 2, (batch,), generator=g)
        out.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return out


def logits(model: torch.nn.Module, batches: list[dict]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits for b in batches]
        )


def hidden(model: torch.nn.Module, batches: list[dict]) -> torch.Tensor:
    """Final hidden states: O(1) values, so a wrong removal shows far above float noise (unlike logits)."""
    with torch.no_grad():
        return torch.cat(
            [
                model.base_model(
                    input_ids=b["input_ids"], attention_mask=b["attention_mask"]
                ).last_hidden_state
                for b in batches
            ]
        )


@pytest.mark.parametrize("arch", BUILDERS)
def test_pairs_shapes(arch: str) -> None:
    pairs = ffn_pairs(BUILDERS[arch]())
    assert len(pairs) == LAYERS
    for up, down in pairs:
        assert (up.in_features, up.out_features, down.in_features, down.out_features) == (
            HIDDEN,
            INTER,
            INTER,
            HIDDEN,
        )


@pytest.mark.parametrize("arch", BUILDERS)
def test_prune_removes_exactly_the_dropped_weights(arch: str) -> None:
    model = BUILDERS[arch]()
    before = count_parameters(model)
    keep = topk_keep(ffn_magnitude_importance(model), 0.5)
    k = INTER // 2
    assert all(len(kk) == k and np.all(np.diff(kk) > 0) for kk in keep)
    prune_ffn(model, keep)
    removed = LAYERS * (INTER - k) * (2 * HIDDEN + 1)  # up rows + up biases + down columns
    assert before - count_parameters(model) == removed
    for up, down in ffn_pairs(model):
        assert up.weight.shape == (k, HIDDEN) and up.bias.shape == (k,)
        assert down.weight.shape == (HIDDEN, k) and down.bias.shape == (HIDDEN,)
    size_attr = "intermediate_size" if arch == "bert" else "hidden_dim"
    assert getattr(model.config, size_attr) == k


@pytest.mark.parametrize("arch", BUILDERS)
def test_removing_zeroed_neurons_keeps_logits(arch: str) -> None:
    model = BUILDERS[arch]()
    batches = make_batches()
    rng = np.random.default_rng(1)
    keep = [np.sort(rng.choice(INTER, INTER // 2, replace=False)) for _ in range(LAYERS)]
    # Zero the down-projection columns of the neurons about to go: they then contribute nothing.
    with torch.no_grad():
        for (_, down), kept in zip(ffn_pairs(model), keep):
            drop = np.setdiff1d(np.arange(INTER), kept)
            down.weight[:, torch.as_tensor(drop)] = 0.0
    expected, expected_hidden = logits(model, batches), hidden(model, batches)
    prune_ffn(model, keep)
    torch.testing.assert_close(logits(model, batches), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden(model, batches), expected_hidden, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", BUILDERS)
def test_save_load_round_trip(arch: str, tmp_path) -> None:
    model = BUILDERS[arch]()
    batches = make_batches(n_batches=2)
    prune_ffn(model, topk_keep(ffn_magnitude_importance(model), 0.5))
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert count_parameters(loaded) == count_parameters(model)
    torch.testing.assert_close(logits(loaded, batches), logits(model, batches), rtol=0, atol=0)


@pytest.mark.parametrize("arch", BUILDERS)
def test_keep_all_is_a_no_op(arch: str) -> None:
    model = BUILDERS[arch]()
    batches = make_batches(n_batches=1)
    before, expected = count_parameters(model), logits(model, batches)
    keep = topk_keep(ffn_magnitude_importance(model), 1.0)
    assert all(np.array_equal(kk, np.arange(INTER)) for kk in keep)
    prune_ffn(model, keep)
    assert count_parameters(model) == before
    torch.testing.assert_close(logits(model, batches), expected, rtol=0, atol=0)


def test_unsupported_architecture_names_model_type() -> None:
    from transformers import OPTConfig, OPTForSequenceClassification  # GPT-2 is supported now: OPT is not

    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
                    word_embed_proj_dim=HIDDEN, max_position_embeddings=32)
    model = OPTForSequenceClassification(cfg)
    with pytest.raises(ValueError, match="opt"):
        ffn_pairs(model)
    with pytest.raises(ValueError, match="opt"):
        prune_ffn(model, [np.arange(4)])


def test_unequal_or_bad_keep_raises() -> None:
    model = tiny_bert()
    with pytest.raises(ValueError, match="same number"):
        prune_ffn(model, [np.arange(10), np.arange(12)])
    with pytest.raises(ValueError, match="same number"):
        prune_ffn(model, [np.array([1, 1, 2]), np.array([1, 2, 3])])
    with pytest.raises(ValueError, match="layers"):
        prune_ffn(model, [np.arange(10)])
    with pytest.raises(ValueError, match="in \\[0, 64\\)"):
        prune_ffn(model, [np.arange(10), np.arange(60, 70)])
    assert ffn_pairs(model)[0][0].out_features == INTER  # nothing was touched


def test_magnitude_importance_formula() -> None:
    model = tiny_distilbert()
    (up, down), *_ = ffn_pairs(model)
    expected = (up.weight.norm(dim=1) * down.weight.norm(dim=0)).detach().numpy()
    np.testing.assert_allclose(ffn_magnitude_importance(model)[0], expected, rtol=1e-6)


def test_pruned_model_can_still_train() -> None:
    model = tiny_bert().train()
    prune_ffn(model, topk_keep(ffn_magnitude_importance(model), 0.25))
    batch = make_batches(n_batches=1)[0]
    loss = model(**batch).loss
    loss.backward()
    assert all(p.grad is not None for pair in ffn_pairs(model) for lin in pair for p in lin.parameters())


# ---- heads, masks, calibration ----------------------------------------------------------------------------


def tiny_bert_heads(heads: int = 4, hidden_size: int = 32) -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=hidden_size, num_hidden_layers=LAYERS,
                     num_attention_heads=heads, intermediate_size=INTER, max_position_embeddings=64, num_labels=3)
    return BertForSequenceClassification(cfg).eval()


def test_head_removal_equals_masking_and_shrinks_the_model() -> None:
    from qlife.methods.pruning import head_counts, masked, prune_heads

    model = tiny_bert_heads()
    batches = make_batches()
    keep = [np.array([0, 2, 3]), np.array([1])]  # layers may keep different numbers of heads
    with masked(model, "heads", keep):
        expected, expected_hidden = logits(model, batches), hidden(model, batches)
    before = count_parameters(model)
    prune_heads(model, keep)
    assert head_counts(model) == [3, 1] and model.config.qlife_attention_heads == [3, 1]
    # q, k, v rows (+bias) and output columns of 4 removed heads of size 8 in a 32-wide model
    assert before - count_parameters(model) == 4 * 8 * (3 * (32 + 1) + 32)
    torch.testing.assert_close(logits(model, batches), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden(model, batches), expected_hidden, rtol=1e-5, atol=1e-5)


def test_neuron_removal_equals_masking() -> None:
    from qlife.methods.pruning import masked

    model = tiny_bert()
    batches = make_batches()
    rng = np.random.default_rng(3)
    keep = [np.sort(rng.choice(INTER, 20, replace=False)) for _ in range(LAYERS)]
    with masked(model, "ffn", keep):
        expected = hidden(model, batches)
    prune_ffn(model, keep)
    torch.testing.assert_close(hidden(model, batches), expected, rtol=1e-5, atol=1e-5)


def test_a_head_pruned_teacher_round_trips_through_load_teacher(tmp_path) -> None:
    from qlife.classifiers import load_teacher, set_head
    from qlife.methods.pruning import head_counts, prune_heads

    model = set_head(tiny_bert_heads(), "mlp").eval()
    prune_heads(model, [np.array([1, 3]), np.array([0, 1, 2])])
    prune_ffn(model, [np.arange(0, INTER, 2)] * LAYERS)
    model.save_pretrained(tmp_path)
    back = load_teacher(tmp_path)
    assert head_counts(back) == [2, 3] and count_parameters(back) == count_parameters(model)
    batches = make_batches(n_batches=1)
    torch.testing.assert_close(logits(back, batches), logits(model, batches), rtol=0, atol=0)


def test_calibration_gradients_are_per_example_gate_derivatives() -> None:
    """Row n of G is dL_n/dm at m = 1, checked against a finite difference of one example's loss."""
    from qlife.methods.pruning import calibrate, masked

    model = tiny_bert_heads().double()  # float64: the finite difference is far above rounding
    batches = make_batches(n_batches=2, batch=3)
    cal = calibrate(model, "heads", batches, [b["labels"] for b in batches])
    assert cal.examples == 6 and cal.grads[0].shape == (6, 4)
    b = batches[1]
    n, layer, head, eps = 2, 1, 2, 1e-3

    def loss_of_example(scale: float) -> float:
        keep = [np.arange(4), np.arange(4)]
        with masked(model, "heads", keep):  # all ones; then scale one head's output by hand
            out = model.bert.encoder.layer[layer].attention.output.dense
            d = 8
            h = out.register_forward_pre_hook(lambda _m, a: (torch.cat([a[0][..., :head * d],
                                                                         a[0][..., head * d:(head + 1) * d] * scale,
                                                                         a[0][..., (head + 1) * d:]], -1),))
            try:
                with torch.no_grad():
                    lg = model(input_ids=b["input_ids"][n:n + 1], attention_mask=b["attention_mask"][n:n + 1]).logits
            finally:
                h.remove()
        return float(torch.nn.functional.cross_entropy(lg, b["labels"][n:n + 1]))

    fd = (loss_of_example(1 + eps) - loss_of_example(1 - eps)) / (2 * eps)
    assert abs(fd) > 1e-7
    assert cal.grads[layer][3 + n, head] == pytest.approx(fd, rel=1e-4)
    assert cal.fisher(0).shape == (4, 4) and np.allclose(cal.fisher(0), cal.fisher(0).T)
    g, f = cal.all_layers()
    assert g.shape == (8,) and f.shape == (8, 8)
    assert all(len(x) == 4 for x in cal.wanda_importance() + cal.activation_importance())


@pytest.mark.parametrize("kind", ["heads", "ffn"])
def test_reconstruction_gram_gives_the_exact_output_error_of_a_removal(kind) -> None:
    """z^T Q z equals the summed squared change of the projection's output over the calibration tokens."""
    from qlife.methods.pruning import _gate_targets, calibrate, masked

    model = tiny_bert_heads().double()
    batches = make_batches(n_batches=2, batch=3)
    cal = calibrate(model, kind, batches, [b["labels"] for b in batches])
    layer = 1
    target = _gate_targets(model, kind)[0][layer]
    n = cal.gram[layer].shape[0]
    keep = np.sort(np.random.default_rng(0).choice(n, n // 2, replace=False))
    z = np.ones(n)
    z[keep] = 0

    def outputs(keep_layer):
        seen = []
        h = target.register_forward_hook(lambda _m, _a, out: seen.append(out.detach()))
        keeps = [np.arange(n), np.arange(n)]
        keeps[layer] = keep_layer
        try:
            with masked(model, kind, keeps), torch.no_grad():
                for b in batches:
                    model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        finally:
            h.remove()
        return seen

    # the same inputs to the layer (its own units only are removed; the layers before are intact)
    full, cut = outputs(np.arange(n)), outputs(keep)
    err = sum(float(((f - c)[b["attention_mask"].bool()] ** 2).sum()) for f, c, b in zip(full, cut, batches))
    assert z @ cal.gram[layer] @ z == pytest.approx(err, rel=1e-9)
    assert cal.reconstruction(layer).sum() == pytest.approx(1.0)


def test_calibrating_both_kinds_in_one_pass_equals_each_alone() -> None:
    from qlife.methods.pruning import calibrate, calibrate_all

    model = tiny_bert_heads().double()
    batches = make_batches(n_batches=2, batch=3)
    ys = [b["labels"] for b in batches]
    both = calibrate_all(model, ("heads", "ffn"), batches, ys)
    for kind in ("heads", "ffn"):
        alone = calibrate(model, kind, batches, ys)
        for a, b in zip(alone.grads + alone.gram, both[kind].grads + both[kind].gram):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
