"""Structured pruning of tiny random decoder classifiers (Llama, Qwen2, Mistral, GPT-2, built by
qlife.decoder_lm): FFN neurons (gated MLPs; GPT-2's Conv1D) and attention units (a head; a key/value group with
its query heads under grouped-query attention) physically removed, equal to masking, reloaded by load_teacher,
calibrated (the Gram identity of Calibration), scored, and handed to the tensor-network compressor."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from qlife.classifiers import load_classifier, load_teacher
from qlife.decoder_lm import ARCHS, save_decoder
from qlife.methods.pruning import (
    _gate_targets,
    calibrate_all,
    count_parameters,
    ffn_magnitude_importance,
    ffn_neuron_cost,
    ffn_projections,
    head_counts,
    head_magnitude_importance,
    linear_targets,
    masked,
    prune_ffn,
    prune_heads,
    unit_counts,
)

LAYERS, HIDDEN, HEADS, KV, INTER = 2, 32, 4, 2, 64
SIZE = {"vocab_size": 100, "hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "kv_heads": KV,
        "intermediate": INTER, "max_positions": 64}
D = HIDDEN // HEADS  # head size


def units(arch: str) -> int:
    """Attention units per layer: kv groups for the Llama family, heads for GPT-2 (multi-head only)."""
    return HEADS if arch == "gpt2" else KV


def unit_parameters(arch: str) -> int:
    """Parameters one attention unit holds in a layer (what removing it must take away)."""
    if arch == "gpt2":  # q, k, v columns of c_attn (+ their biases) and rows of c_proj
        return 3 * D * (HIDDEN + 1) + D * HIDDEN
    q, kv = (HEADS // KV) * D, D  # the group's query heads; its one key and one value head
    bias = 1 if arch == "qwen2" else 0  # Qwen2: q/k/v biases, o_proj without
    return (q + 2 * kv) * (HIDDEN + bias) + q * HIDDEN


def neuron_parameters(arch: str) -> int:
    return 2 * HIDDEN + 1 if arch == "gpt2" else 3 * HIDDEN  # c_fc column + bias, c_proj row | gate, up, down


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, torch.nn.Module]:
    from qlife.data.generator import generate_corpus

    texts = [d["text"] for d in generate_corpus(seed=0, n_docs=60).docs]
    out = {}
    for arch in ARCHS:
        folder = save_decoder(tmp_path_factory.mktemp(arch), arch, texts, **SIZE)
        out[arch] = load_classifier(str(folder), num_labels=2).eval()
    return out


def fresh(models: dict, arch: str, double: bool = False) -> torch.nn.Module:
    model = copy.deepcopy(models[arch])
    return model.double() if double else model


def make_batches(pad_id: int, n_batches: int = 2, batch: int = 3, seq: int = 10, seed: int = 0) -> list[dict]:
    """Right-padded batches (the pad id where the mask is 0) of random ids, with labels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(4, 100, (batch, seq), generator=g)
        lengths = torch.randint(3, seq + 1, (batch,), generator=g)
        lengths[0] = seq - 2  # always some padding
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        out.append({"input_ids": ids.masked_fill(mask == 0, pad_id), "attention_mask": mask,
                    "labels": torch.randint(0, 2, (batch,), generator=g)})
    return out


def outputs(model: torch.nn.Module, batches: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, final hidden states of the real tokens): hidden states are O(1) after the final norm, so a wrong
    removal shows far above float noise even where the tiny head's logits are small."""
    logits, hidden = [], []
    with torch.no_grad():
        for b in batches:
            x = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
            logits.append(model(**x).logits)
            hidden.append(model.base_model(**x).last_hidden_state[b["attention_mask"].bool()])
    return torch.cat(logits), torch.cat(hidden)


def assert_same(a: tuple, b: tuple, atol: float = 1e-5) -> None:
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=atol)


def random_ffn_keep(k: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(INTER, k, replace=False)) for _ in range(LAYERS)]


def layered_unit_keep(arch: str) -> list[np.ndarray]:
    """A different number of units per layer."""
    return [np.array([0, 2, 3]), np.array([1])] if arch == "gpt2" else [np.array([1]), np.array([0, 1])]


@pytest.mark.parametrize("arch", ARCHS)
def test_ffn_removal_equals_masking_and_reloads(models, arch, tmp_path) -> None:
    model = fresh(models, arch)
    batches = make_batches(model.config.pad_token_id)
    keep = random_ffn_keep(40)
    full = outputs(model, batches)
    with masked(model, "ffn", keep):
        expected = outputs(model, batches)
    assert not torch.allclose(expected[1], full[1], atol=1e-3)  # the mask really removes something
    before = count_parameters(model)
    prune_ffn(model, keep)
    assert before - count_parameters(model) == LAYERS * (INTER - 40) * neuron_parameters(arch)
    assert ffn_neuron_cost(models[arch])[0] == neuron_parameters(arch)
    assert getattr(model.config, "n_inner" if arch == "gpt2" else "intermediate_size") == 40
    assert_same(outputs(model, batches), expected)
    model.save_pretrained(tmp_path)
    back = load_teacher(tmp_path)
    assert count_parameters(back) == count_parameters(model)
    assert_same(outputs(back, batches), outputs(model, batches), atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_unit_removal_equals_masking_with_per_layer_counts(models, arch) -> None:
    model = fresh(models, arch)
    batches = make_batches(model.config.pad_token_id)
    assert unit_counts(model, "heads") == head_counts(model) == [units(arch)] * LAYERS
    keep = layered_unit_keep(arch)
    with masked(model, "heads", keep):
        expected = outputs(model, batches)
    assert not torch.allclose(expected[1], outputs(model, batches)[1], atol=1e-3)
    before = count_parameters(model)
    prune_heads(model, keep)
    removed = sum(units(arch) - len(k) for k in keep)
    assert before - count_parameters(model) == removed * unit_parameters(arch)
    assert head_counts(model) == model.config.qlife_attention_heads == [len(k) for k in keep]
    assert model.config.qlife_attention_unit == ("head" if arch == "gpt2" else "kv_group")
    assert_same(outputs(model, batches), expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_both_kinds_together_round_trip_through_load_teacher(models, arch, tmp_path) -> None:
    model = fresh(models, arch)
    batches = make_batches(model.config.pad_token_id, seed=2)
    heads, ffn = layered_unit_keep(arch)[::-1], random_ffn_keep(24, seed=3)
    with masked(model, "heads", heads), masked(model, "ffn", ffn):
        expected = outputs(model, batches)
    prune_ffn(prune_heads(model, heads), ffn)
    assert_same(outputs(model, batches), expected)
    model.save_pretrained(tmp_path)
    back = load_teacher(tmp_path)
    assert head_counts(back) == [len(k) for k in heads]
    assert count_parameters(back) == count_parameters(model)
    assert_same(outputs(back, batches), outputs(model, batches), atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_calibration_gram_gives_the_exact_output_error_of_a_removal(models, arch) -> None:
    """For both kinds at once: z^T Q z is the summed squared change of the gated projection's output."""
    model = fresh(models, arch, double=True)
    batches = make_batches(model.config.pad_token_id)
    cals = calibrate_all(model, ("heads", "ffn"), batches, [b["labels"] for b in batches])
    layer = 1
    for kind, n in (("heads", units(arch)), ("ffn", INTER)):
        cal = cals[kind]
        assert cal.examples == 6 and [g.shape for g in cal.grads] == [(6, n)] * LAYERS
        assert all(x.shape == (n,) for x in cal.wanda_importance() + cal.activation_importance())
        assert cal.gram[layer].shape == (n, n)
        target = _gate_targets(model, kind)[0][layer]
        keep = np.sort(np.random.default_rng(0).choice(n, n // 2, replace=False))
        z = np.ones(n)
        z[keep] = 0

        def gated_outputs(keep_layer, kind=kind, n=n, target=target):
            seen = []
            h = target.register_forward_hook(lambda _m, _a, out: seen.append(out.detach()))
            keeps = [np.arange(n)] * LAYERS
            keeps[layer] = keep_layer
            try:
                with masked(model, kind, keeps), torch.no_grad():
                    for b in batches:
                        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
            finally:
                h.remove()
            return seen

        full, cut = gated_outputs(np.arange(n)), gated_outputs(keep)
        err = sum(float(((f - c)[b["attention_mask"].bool()] ** 2).sum()) for f, c, b in zip(full, cut, batches))
        assert err > 0 and z @ cal.gram[layer] @ z == pytest.approx(err, rel=1e-9)
        assert cal.reconstruction(layer).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_importances_have_one_score_per_unit(models, arch) -> None:
    model = fresh(models, arch)
    for imp, n in ((ffn_magnitude_importance(model), INTER), (head_magnitude_importance(model), units(arch))):
        assert [x.shape for x in imp] == [(n,)] * LAYERS and all(np.all(x >= 0) for x in imp)
    ins, down = ffn_projections(model)[0]
    assert len(ins) == (1 if arch == "gpt2" else 2)  # gate and up of a gated MLP
    if arch != "gpt2":  # ||gate row|| * ||up row|| * ||down column||
        expected = (ins[0].weight.norm(dim=1) * ins[1].weight.norm(dim=1) * down.weight.norm(dim=0)).detach()
        np.testing.assert_allclose(ffn_magnitude_importance(model)[0], expected.numpy(), rtol=1e-5)


def test_gqa_unit_magnitude_is_its_value_head_times_its_output_columns(models) -> None:
    model = fresh(models, "llama")
    attn = model.model.layers[1].self_attn
    g, w = 1, (HEADS // KV) * D
    v = attn.v_proj.weight.detach()[g * D:(g + 1) * D].norm()
    o = attn.o_proj.weight.detach()[:, g * w:(g + 1) * w].norm()
    assert head_magnitude_importance(model)[1][g] == pytest.approx(float(v * o), rel=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_compressor_takes_every_gated_projection_and_reloads(models, arch, tmp_path) -> None:
    from qlife.methods import tensornet as tn

    model = fresh(models, arch)
    names = linear_targets(model, ["ffn", "attention"])
    assert len(names) == LAYERS * (3 + 4)  # gate, up, down; q, k, v, o
    assert names[:3] == [f"model.layers.0.mlp.{p}_proj" for p in ("gate", "up", "down")]
    tn.compress_model(model, "svd", 2.0, names)
    batches = make_batches(model.config.pad_token_id)
    model.save_pretrained(tmp_path)
    assert_same(outputs(load_teacher(tmp_path), batches), outputs(model, batches), atol=0)


def test_gpt2_conv1d_is_refused_by_the_compressor(models) -> None:
    for targets in (["ffn"], ["attention"]):
        with pytest.raises(ValueError, match="Conv1D"):
            linear_targets(models["gpt2"], targets)


def test_gpt2_without_n_inner_prunes_and_reloads(tmp_path) -> None:
    """n_inner None means 4 * n_embd; pruning sets it, so from_pretrained builds the pruned MLP."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=100, n_embd=16, n_layer=2, n_head=2, n_positions=32, n_inner=None,
                     pad_token_id=0, bos_token_id=1, eos_token_id=1)
    model = GPT2ForSequenceClassification(cfg).eval()
    prune_ffn(model, [np.arange(0, 64, 3)] * 2)
    assert model.config.n_inner == 22
    model.save_pretrained(tmp_path)
    batches = make_batches(0, n_batches=1)
    assert_same(outputs(load_teacher(tmp_path), batches), outputs(model, batches), atol=0)


def test_bad_unit_keep_is_refused(models) -> None:
    model = fresh(models, "mistral")
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        prune_heads(model, [np.array([0]), np.array([2])])
    with pytest.raises(ValueError, match="layers"):
        prune_heads(model, [np.array([0])])
    assert head_counts(model) == [KV] * LAYERS  # nothing was touched


def test_load_teacher_rejects_counts_for_other_layers(models, tmp_path: Path) -> None:
    model = fresh(models, "llama")
    prune_heads(model, [np.array([0]), np.array([1])])
    model.config.qlife_attention_heads = [1, 1, 1]
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="3 entries for 2 layers"):
        load_teacher(tmp_path)
