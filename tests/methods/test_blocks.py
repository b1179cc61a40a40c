"""Transformer block removal (qlife.methods.blocks) on tiny random models, as transformers' own tests build them:
removal equals running the model with the block skipped (its input passed on), a block-pruned classifier reloads
through the one loader and serves the same predictions, the block QUBO's optimum equals brute force (and, for
two blocks, the truly best pair on the calibration data), Block Influence finds a block made an identity map, and
stage 6's planner runs the block kind beside heads and FFN neurons."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from qlife.methods.blocks import (
    block_influence,
    block_list,
    block_magnitude_importance,
    calibrate_blocks,
    evaluate_blocks,
    keep_blocks,
    n_blocks,
    remove_blocks,
    without_blocks,
)
from qlife.methods.selection import QuboSelector, TopKSelector, UnitScores, brute_force_best

BLOCKS, VOCAB = 5, 100
ARCHS = ("bert", "llama", "qwen2", "gpt2")
LM_SIZE = {"vocab_size": 100, "hidden": 32, "layers": BLOCKS, "heads": 4, "kv_heads": 2, "intermediate": 64,
           "max_positions": 64}


def tiny_bert(layers: int = BLOCKS) -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict[str, str]:
    """Tiny random decoders (Llama, Qwen2, GPT-2) of BLOCKS blocks with their tokenizers, saved."""
    from qlife.data.generator import generate_corpus
    from qlife.decoder_lm import save_decoder

    texts = [d["text"] for d in generate_corpus(seed=0, n_docs=60).docs]
    return {a: str(save_decoder(tmp_path_factory.mktemp(a), a, texts, **LM_SIZE)) for a in ARCHS if a != "bert"}


def classifier(arch: str, decoders: dict) -> torch.nn.Module:
    if arch == "bert":
        return tiny_bert()
    if arch == "distilbert":
        from transformers import DistilBertConfig, DistilBertForSequenceClassification

        torch.manual_seed(0)
        return DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=VOCAB, dim=32, n_layers=BLOCKS, n_heads=2, hidden_dim=64, max_position_embeddings=64)).eval()
    from qlife.classifiers import load_classifier

    torch.manual_seed(0)
    return load_classifier(decoders[arch], num_labels=2).eval()


def make_batches(pad_id: int = 0, n: int = 2, batch: int = 4, seq: int = 10, seed: int = 0):
    """Right-padded random batches and labels."""
    g = torch.Generator().manual_seed(seed)
    batches, labels = [], []
    for _ in range(n):
        ids = torch.randint(4, VOCAB, (batch, seq), generator=g)
        lengths = torch.randint(3, seq + 1, (batch,), generator=g)
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        batches.append({"input_ids": ids.masked_fill(mask == 0, pad_id), "attention_mask": mask})
        labels.append(torch.randint(0, 2, (batch,), generator=g))
    return batches, labels



@contextmanager
def skipping(model: torch.nn.Module, remove):
    """The reference: each removed block's forward hands back its own input (the residual passes through)."""

    def passthrough(_mod, args, kwargs, out):
        x = args[0] if args else kwargs["hidden_states"]
        return (x, *out[1:]) if isinstance(out, tuple) else x

    blocks = block_list(model)[2]
    handles = [blocks[i].register_forward_hook(passthrough, with_kwargs=True) for i in remove]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def logits(model, batches) -> torch.Tensor:
    return torch.cat([model(**b).logits for b in batches])


@pytest.mark.parametrize("arch", [a if a == "bert" else pytest.param(a, marks=pytest.mark.slow)  # others: test-slow
                                  for a in [*ARCHS, "distilbert"]])
def test_removing_blocks_equals_running_the_model_with_them_skipped(arch, decoders):
    model = classifier(arch, decoders)
    batches, _ = make_batches(model.config.pad_token_id or 0)
    full = logits(model, batches)
    for remove in [(0,), (2,), (1, 3), (0, 2, 4)]:
        with skipping(model, remove):
            ref = logits(model, batches)
        with without_blocks(model, remove):
            assert n_blocks(model) == BLOCKS - len(remove)
            temp = logits(model, batches)
        pruned = remove_blocks(copy.deepcopy(model), remove)
        assert n_blocks(pruned) == pruned.config.num_hidden_layers == BLOCKS - len(remove)
        assert pruned.config.qlife_blocks_kept == [i for i in range(BLOCKS) if i not in remove]
        torch.testing.assert_close(temp, ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(logits(pruned, batches), ref, rtol=0, atol=1e-5)
        assert (ref - full).abs().max() > 1e-4  # removing a block changed the outputs: the check has teeth
    assert n_blocks(model) == BLOCKS and torch.equal(logits(model, batches), full)  # the context restored it


def test_a_second_removal_maps_to_the_original_blocks_and_one_block_must_stay():
    model = remove_blocks(remove_blocks(tiny_bert(), [1]), [0, 2])  # original 0, 1, 2, 3, 4 -> 0, 2, 3, 4 -> 2, 4
    assert model.config.qlife_blocks_kept == [2, 4] and n_blocks(model) == 2
    with pytest.raises(ValueError, match="cannot remove all"):
        remove_blocks(model, [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        remove_blocks(model, [5])
    with pytest.raises(ValueError, match="one selection"):
        keep_blocks(model, [np.array([0]), np.array([1])])


LABELS = ["neg", "neutral", "pos"]
TEXTS = ["a fine film", "dull and slow", "great acting , bad plot", "the music", "what a ride"]


@pytest.fixture(scope="module")
def saved_teachers(decoders, tmp_path_factory) -> dict[str, Path]:
    """Classifiers saved as train saves them (weights, tokenizer, qlife.json): a 5-block BERT with the bundled
    MiniLM tokenizer, and the tiny decoders."""
    from qlife.classifiers import load_classifier
    from qlife.io import write_json
    from qlife.models import load_tokenizer

    out = {}
    for arch in ARCHS:
        folder = tmp_path_factory.mktemp(f"teacher_{arch}")
        if arch == "bert":
            tok = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
            torch.manual_seed(0)
            base = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=BLOCKS,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                              initializer_range=0.2)
            BertForSequenceClassification(base).bert.save_pretrained(folder / "base")
            tok.save_pretrained(folder / "base")
            source = str(folder / "base")
        else:
            source = decoders[arch]
        torch.manual_seed(1)
        model = load_classifier(source, num_labels=3, label_names=LABELS).eval()
        model.save_pretrained(folder)
        load_tokenizer(source).save_pretrained(folder)
        write_json(folder / "qlife.json", {"max_length": 24, "labels": LABELS})
        out[arch] = folder
    return out


def serve(folder: Path, texts: list[str]) -> list[dict]:
    from types import SimpleNamespace

    from qlife.serving import QlifeTextModel

    served = QlifeTextModel()
    served.load_context(SimpleNamespace(model_config={"kind": "classifier"}, artifacts={"model": str(folder)}))
    return served.predict(None, texts)


@pytest.mark.parametrize("arch", [a if a == "bert" else pytest.param(a, marks=pytest.mark.slow) for a in ARCHS])
def test_a_block_pruned_model_reloads_through_the_one_loader_and_serves(arch, saved_teachers, tmp_path):
    from qlife.loading import load_saved
    from qlife.methods.pruning import head_counts, prune_heads
    from qlife.teacher_ops import save_model

    teacher = load_saved(saved_teachers[arch])
    tok = teacher.tokenizer
    batch = tok(TEXTS, truncation=True, max_length=24, padding=True, return_tensors="pt")
    pruned = remove_blocks(copy.deepcopy(teacher.model), [1, 3])
    save_model(pruned, saved_teachers[arch], tmp_path / "pruned")
    saved = load_saved(tmp_path / "pruned")
    assert saved.kind == "pruned" and saved.serving_kind == "classifier" and saved.labels == LABELS
    assert n_blocks(saved.model) == 3 and saved.model.config.qlife_blocks_kept == [0, 2, 4]
    expect = logits(pruned, [batch])
    torch.testing.assert_close(logits(saved.model, [batch]), expect, rtol=0, atol=1e-6)
    served = serve(tmp_path / "pruned", TEXTS)
    probs = torch.softmax(expect, -1)
    assert [r["label"] for r in served] == expect.argmax(-1).tolist()
    assert [r["label_name"] for r in served] == [LABELS[i] for i in expect.argmax(-1).tolist()]
    np.testing.assert_allclose([r["score"] for r in served], probs.max(-1).values.numpy(), atol=1e-6)
    # heads pruned first, then blocks: the per-block head counts follow the kept blocks
    both = prune_heads(copy.deepcopy(teacher.model), [np.array([i % 2]) for i in range(BLOCKS)])
    remove_blocks(both, [0])
    save_model(both, saved_teachers[arch], tmp_path / "both")
    again = load_saved(tmp_path / "both")
    assert again.kind == "pruned" and head_counts(again.model) == [1] * (BLOCKS - 1)
    torch.testing.assert_close(logits(again.model, [batch]), logits(both, [batch]), rtol=0, atol=1e-6)


def test_the_block_qubo_optimum_equals_brute_force_and_two_blocks_are_exact():
    """The QUBO through the backend layer (exact, tabu) finds the brute-force optimum of its energy at every k;
    at k <= 2 its energy is the measured loss increase, so its optimum is the truly best subset on the
    calibration data."""
    from qlife.params import ExactSampler, TabuSampler

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=BLOCKS, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2, initializer_range=0.3)).eval()
    batches, labels = make_batches(n=3, batch=6)
    cal = calibrate_blocks(model, batches, labels)
    scores = cal.scores("loss")
    assert cal.examples == 18 and np.allclose(cal.pair["loss"], cal.pair["loss"].T)
    for k in (1, 2, 3):
        keep_bf, e_bf = brute_force_best(scores, BLOCKS - k)
        energies = {s: cal.energy(s) for s in combinations(range(BLOCKS), k)}
        assert min(energies.values()) == pytest.approx(e_bf, abs=1e-12)
        for spec in (ExactSampler(), TabuSampler(num_reads=4, timeout_ms=50)):
            sel = QuboSelector(spec, "test.blocks", 1.5)
            np.testing.assert_array_equal(sel.select(scores, BLOCKS - k), keep_bf)
            assert sel.last.energy == pytest.approx(e_bf, abs=1e-12)
        if k <= 2:  # the energy is the measured loss increase: the optimum is the best subset by true loss
            truth = {s: evaluate_blocks(model, batches, labels, s)["loss"] - cal.base_loss for s in energies}
            for s in energies:
                assert energies[s] == pytest.approx(truth[s], abs=1e-9)
            best = min(truth, key=truth.get)
            assert tuple(i for i in range(BLOCKS) if i not in keep_bf) == best
    # the pair terms matter: the interactions are not all zero
    j = cal.pair["loss"] - cal.single["loss"][:, None] - cal.single["loss"][None, :]
    assert np.abs(j[np.triu_indices(BLOCKS, 1)]).max() > 1e-4


def _make_identity(model: torch.nn.Module, block: int) -> None:
    """Zero the block's output projections (attention and FFN): it adds nothing to the residual stream."""
    from qlife.methods.pruning import residual_projections

    with torch.no_grad():
        for proj in residual_projections(model)[block]:
            proj.weight.zero_()
            if proj.bias is not None:
                proj.bias.zero_()


@pytest.mark.parametrize("arch", ["bert", pytest.param("llama", marks=pytest.mark.slow),
                                  pytest.param("gpt2", marks=pytest.mark.slow)])
def test_block_influence_finds_a_block_that_is_an_identity_map(arch, decoders):
    """ShortGPT's defining property: BI = 1 - cos(input, output) is ~0 for a block that passes its input through
    unchanged, and that block is removed first (by BI, by magnitude, and by its own removal cost: zero)."""
    model = classifier(arch, decoders)
    _make_identity(model, 2)
    batches, labels = make_batches(model.config.pad_token_id or 0)
    bi = block_influence(model, batches)
    assert bi[2] == pytest.approx(0.0, abs=1e-5) and np.delete(bi, 2).min() > 10 * max(bi[2], 1e-7)
    assert TopKSelector().select(UnitScores(bi), BLOCKS - 1).tolist() == [0, 1, 3, 4]
    assert block_magnitude_importance(model)[2] == 0.0
    cal = calibrate_blocks(model, batches, labels)
    assert abs(cal.single["loss"][2]) < 1e-5 and cal.single["kl"][2] < 1e-6
    np.testing.assert_allclose(cal.influence, bi)


def test_stage_6_plans_blocks_beside_heads_and_ffn(saved_teachers, tmp_path, monkeypatch):
    """The block kind through deploy's own code (KindPlan, prune_kind, apply_pruning): every block method at the
    same k, the QUBO at the exact optimum, the verdict rows, and the applied model saved and reloaded."""
    from qlife.deploy_prune import apply_pruning, prune_kind
    from qlife.loading import load_saved
    from qlife.methods.prune_plan import KindPlan, calibrate_kinds
    from qlife.params import parse_params
    from qlife.teacher_ops import Workbench

    monkeypatch.chdir(tmp_path)
    folder = saved_teachers["bert"]
    teacher = load_saved(folder)
    tok = teacher.tokenizer
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "slow", "fine", "great", "dull", "music", "acting"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(48)]
    y = rng.integers(0, 3, len(texts))
    ds = {s: {"input_ids": tok(texts[i::3], truncation=True, max_length=24)["input_ids"],
              "label": y[i::3].tolist()} for i, s in enumerate(("train", "val", "test"))}
    params = parse_params({"deploy": {
        "calib_docs": 16, "energy_samples": 2, "energy_val_docs": 16,
        "blocks": {"enabled": True, "sparsity": [0.4], "solver": {"kind": "exact"}},
        "apply": {"method": "qubo", "heads": 0, "ffn": 0, "blocks": 0.4}}, "quality": {"metric": "accuracy"}})
    wb = Workbench(params, teacher.model, folder, ds, LABELS, 24, tok.pad_token_id, {})
    cals = calibrate_kinds(teacher.model, ("heads", "blocks"), *wb.calibration_batches(16, 0))
    assert set(cals) == {"heads", "blocks"} and cals["blocks"].examples == 16
    plan = KindPlan(teacher.model, "blocks", cals["blocks"], params.deploy)
    assert plan.methods == ["influence", "magnitude", "random", "diagonal", "qubo"] and plan.counts == [BLOCKS]
    test = (ds["test"]["input_ids"], np.array(ds["test"]["label"]))
    report, plot, keep = prune_kind(wb, "blocks", cals["blocks"], test)
    rows = report["sparsity"]["0.4"]["methods"]
    assert set(rows) == set(plan.methods) and all(r["kept_per_layer"] == [3] for r in rows.values())
    assert rows["qubo"]["energy_gap"] == pytest.approx(0.0, abs=1e-12) and report["sparsity"]["0.4"][
        "best_known"] == "exact"
    assert rows["qubo"]["energy_vs_accuracy"]["candidates"] >= 1
    v = report["verdict"]
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("qubo", "diagonal")
    assert v["best_classical"]["method"] in ("diagonal", "influence", "magnitude", "random")
    assert plot[0]["qubo"] == rows["qubo"]["quality"] and len(keep) == 1 and len(keep[0]) == 3
    q = apply_pruning(wb, {"blocks": keep}, test)
    saved = load_saved(params.paths.pruned)
    assert saved.kind == "pruned" and n_blocks(saved.model) == 3
    assert saved.model.config.qlife_blocks_kept == keep[0].tolist()
    assert q["quality"] == pytest.approx(rows["qubo"]["quality"])


def test_params_refuse_blocks_applied_but_not_run_and_unit_methods_for_blocks():
    from qlife.params import ParamsError, parse_params

    with pytest.raises(ParamsError, match="blocks.enabled"):
        parse_params({"deploy": {"apply": {"blocks": 0.5}}})
    with pytest.raises(ParamsError, match="blocks.methods"):
        parse_params({"deploy": {"blocks": {"enabled": True, "methods": ["wanda", "qubo"]}}})
    with pytest.raises(ParamsError, match="blocks.methods"):
        parse_params({"deploy": {"methods": ["magnitude", "activation", "qubo"], "apply": {
            "method": "activation", "blocks": 0.5}, "blocks": {"enabled": True}}})
    ok = parse_params({"deploy": {"blocks": {"enabled": True}, "apply": {"blocks": 0.5}}})
    assert ok.deploy.blocks.solver.kind == "qaoa" and ok.deploy.apply.blocks == 0.5
