"""Decoder teachers (Llama, Qwen2, Mistral, GPT-2) on tiny random configs, as transformers' own tests build them
(vocabulary ~100, hidden 32, 2 layers, a BPE tokenizer trained on the generated corpus): pooling, LoRA, the
memory check, and every stage end to end on each architecture."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from qlife.decoder_lm import ARCHS, save_decoder
from tests.conftest import tiny_params_dict

SIZE = {"vocab_size": 100, "hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 64,
        "max_positions": 128}


def corpus_texts(n: int = 300) -> list[str]:
    from qlife.data.generator import generate_corpus

    return [d["text"] for d in generate_corpus(seed=0, n_docs=n).docs][:n]


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict[str, str]:
    texts = corpus_texts()
    return {a: str(save_decoder(tmp_path_factory.mktemp(a), a, texts, **SIZE)) for a in ARCHS}


def batch_ids(folder: str, n: int = 6) -> tuple[list[list[int]], int]:
    from qlife.models import load_tokenizer

    tok = load_tokenizer(folder)  # sequences of 8 to 30 tokens (under predict_ids' max_length 32: no truncation)
    return [s[: 8 + (3 * i) % 23] for i, s in enumerate(tok(corpus_texts(40)[:n])["input_ids"])], tok.pad_token_id


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_pools_the_last_token_the_classifier_reads(decoders, arch):
    """auto pooling is `last` for a decoder; the pooled feature is the hidden state the head's logits come from."""
    from qlife.classifiers import head_module, load_classifier
    from qlife.methods.finetune import predict_with_head_inputs

    model = load_classifier(decoders[arch], num_labels=3)
    ids, pad = batch_ids(decoders[arch])
    assert model.config.qlife_pooling == "last" and model.config.pad_token_id == pad  # the tokenizer's padding
    assert len({len(s) for s in ids}) > 1  # a padded batch
    logits, pooled, head_in = predict_with_head_inputs(model, ids, 32, pad, output_hidden=True)
    np.testing.assert_allclose(pooled, head_in, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(head_module(model)(torch.as_tensor(pooled)).numpy(), logits, atol=1e-5)
    for i, s in enumerate(ids):  # alone, unpadded: the same logits
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([s]), attention_mask=torch.ones(1, len(s), dtype=torch.long)).logits
        np.testing.assert_allclose(alone.numpy()[0], logits[i], atol=1e-5)


def test_encoder_keeps_mean_pooling(tiny_teacher):
    from qlife.models import is_decoder, load_encoder

    model, _ = load_encoder(tiny_teacher)
    assert not is_decoder(model.config) and model.config.qlife_pooling == "mean"


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_merged_and_unmerged_logits_agree(decoders, arch):
    from qlife.classifiers import load_classifier
    from qlife.methods.finetune import predict_ids
    from qlife.methods.lora import LoraSpec, add_adapters

    model = load_classifier(decoders[arch], num_labels=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapters = add_adapters(model, LoraSpec(r=4), frozen_layers=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("score.") for n in trainable), trainable
    torch.manual_seed(1)
    with torch.no_grad():  # adapters start at B = 0 (no change): give them a real update
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    ids, pad = batch_ids(decoders[arch])
    unmerged, _ = predict_ids(model, ids, 32, pad)
    info = adapters.merge()
    assert not any("lora_" in n for n, _ in model.named_parameters())
    merged, _ = predict_ids(model, ids, 32, pad)
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)
    changed = [n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p)]
    assert changed and info["adapted_modules"] == len({n.rsplit(".", 1)[0] for n in changed if "score" not in n})


def test_finetune_lora_trains_adapters_and_saves_a_plain_model(decoders, tmp_path):
    from qlife.classifiers import load_classifier, load_teacher
    from qlife.methods.finetune import TrainConfig, finetune, predict_ids

    folder = decoders["llama"]
    ids, pad = batch_ids(folder, 16)
    y = np.arange(16) % 2
    model = load_classifier(folder, num_labels=2)
    hist = finetune(model, ids, y, TrainConfig(max_steps=4, batch_size=8, finetune="lora", lora={"r": 4},
                                               learning_rate=1e-2, frozen_layers=1), pad)
    assert hist["lora"]["adapted_modules"] == 7  # layer 1's q k v o gate up down; layer 0 frozen
    assert hist["loss"][-1] != hist["loss"][0]
    model.save_pretrained(tmp_path)
    reloaded = load_teacher(tmp_path)
    np.testing.assert_allclose(predict_ids(reloaded, ids, 32, pad)[0], predict_ids(model, ids, 32, pad)[0], atol=1e-5)


def test_quantum_head_on_a_decoder(decoders):
    from qlife.classifiers import load_classifier
    from qlife.methods.finetune import TrainConfig, finetune, predict_ids

    folder = decoders["qwen2"]
    ids, pad = batch_ids(folder, 8)
    model = load_classifier(folder, num_labels=2, head="quantum", quantum={"qubits": 2, "layers": 1})
    finetune(model, ids, np.arange(8) % 2, TrainConfig(max_steps=2, batch_size=4, finetune="lora", head="quantum"),
             pad)
    logits, _ = predict_ids(model, ids, 32, pad)
    assert logits.shape == (8, 2) and np.isfinite(logits).all()


def test_a_model_too_large_is_refused_before_loading(tmp_path, monkeypatch):
    """A 70B-parameter Llama config (no weights at all in the folder): refused, naming the param."""
    from transformers import LlamaConfig

    from qlife.models import ModelTooLarge, check_memory

    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(tmp_path)
    with pytest.raises(ModelTooLarge, match="train.model") as err:
        check_memory(str(tmp_path), "train", "lora", 32, 64, 0.8)
    assert "GiB" in str(err.value)
    with pytest.raises(ModelTooLarge, match="train.finetune: lora"):
        check_memory(str(tmp_path), "train", "full", 32, 64, 0.8)


def test_train_stage_refuses_a_too_large_model_with_exit_1(tmp_path, monkeypatch, capsys, tiny_workdir):
    from transformers import LlamaConfig

    from stages import train

    big = tmp_path / "big"
    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(big)
    raw = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    raw["train"].update(model=str(big), use_search=False)
    raw["tracking"] = {"enabled": False}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    from qlife import hyperparameters
    from qlife.params import load_params

    hyperparameters.write(load_params())  # train's only input read before the check (no corpus, no weights)
    with pytest.raises(SystemExit) as code:
        train.main()
    assert code.value.code == 1
    assert "train.model" in capsys.readouterr().err


def serve(model_dir: str, texts: list[str]) -> list[dict]:
    """Requests through the served pyfunc model's code (qlife.serving), in process (deploy's serving-cost
    measurement starts one process per model: covered by the MiniLM tests)."""
    from types import SimpleNamespace

    from qlife.serving import QlifeTextModel

    served = QlifeTextModel()
    served.load_context(SimpleNamespace(model_config={"kind": "classifier"}, artifacts={"model": model_dir}))
    return served.predict(None, texts)


def decoder_params(teacher: str) -> dict:
    """The tiny pipeline, trimmed to what a decoder changes (the quantum parts have their own tests)."""
    raw = tiny_params_dict(teacher)
    raw["curate"].update(generator={"n_docs": 240, "live_size": 60}, n_clusters=4, embedder="teacher", eps=1e-4,
                         method="classical")
    raw["encode"]["quantum"] = {"sample": 2, "shots": {"kind": "shots", "shots": 64}, "max_angle_qubits": 4,
                                "sweep_dims": [4], "device_samples": 0}
    raw["search"].update(budget=1, method=["random"], proxy_train_size=16, proxy_val_size=16)
    raw["train"].update(max_train_docs=64, eval_points=0, lora={"r": 4})
    raw["distill"].update(method="classical", epochs=3, inputs=["teacher", "static"])
    raw["deploy"].update(methods=["magnitude", "qubo"], calib_docs=16, energy_samples=2, energy_val_docs=16,
                         serving={"enabled": False}, compress={"enabled": False},
                         heads={"sparsity": [0.5], "scope": "layer", "solver": {"kind": "exact"}},
                         ffn={"sparsity": [0.5], "scope": "layer", "solver": {"kind": "swap_tabu", "timeout_ms": 50}})
    raw["monitor"].update(n_permutations=50, tests=["rbf", "ks"], ocsvm={"kernels": ["rbf"]})
    raw["tracking"] = {"enabled": False}
    return raw


@pytest.mark.slow  # a whole pipeline per architecture: the default suite runs one pipeline (tests/flows)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_stage_runs_on_a_decoder_teacher(decoders, arch, tmp_path, monkeypatch):
    import importlib

    from qlife.params import parse_params
    from qlife.stage import STEPS, execute

    monkeypatch.chdir(tmp_path)
    params = parse_params(decoder_params(decoders[arch]))
    warnings.filterwarnings("ignore")
    from qlife import hyperparameters

    reports = {}
    for s in STEPS:
        reports[s] = execute(s, importlib.import_module(f"stages.{s}").run, params)
        if s == "search":  # dvc.yaml's hyperparameters step
            hyperparameters.write(params)
    teacher = reports["train"]["teacher"]
    assert teacher["model_type"] == arch and teacher["decoder"] and teacher["pooling"] == "last"
    assert reports["train"]["summary"]["finetune"] == "lora"
    ft = reports["train"]["methods"]["finetune"]
    # every attention and MLP projection of both layers (search space: frozen_layers 0): 7 a layer for a gated MLP
    # (q k v o gate up down), 4 for GPT-2 (c_attn, attn.c_proj, c_fc, mlp.c_proj)
    assert ft["lora"]["adapted_modules"] == (8 if arch == "gpt2" else 14)
    assert ft["trainable"]["encoder"] == ft["lora"]["adapter_parameters"] > 0
    assert reports["encode"]["teacher"]["pooling"] == "last"
    assert reports["deploy"]["teacher"]["model_type"] == arch
    pruned = reports["deploy"]["methods"]["pruned"]
    assert pruned["parameters"] < reports["deploy"]["methods"]["teacher"]["parameters"]
    saved = sum(f.stat().st_size for f in Path(params.paths.pruned).glob("*.safetensors"))
    assert 0 < saved < sum(f.stat().st_size for f in Path(params.paths.teacher).glob("*.safetensors"))
    served = serve(params.paths.pruned, ["a short request", "another one, a little longer than the first"])
    labels = json.loads((Path(params.paths.curated) / "labels.json").read_text())
    assert len(served) == 2 and all(r["label_name"] == labels[r["label"]] and 0 < r["score"] <= 1 for r in served)
    # what the flow and promote read: the per-window alarms are the windows drift.json flags; the decision's alarms
    # are the windows with a reason (monitor.decide: stream: the stream alarm or a quality drop), retrain follows them
    drift = json.loads((Path(params.paths.monitor) / "drift.json").read_text())
    decision = reports["monitor"]["decision"]
    assert set(drift) == {"window-000", "window-001"} and all(r["n_live"] == 60 for r in drift.values())
    assert decision["per_window_alarms"] == [w for w, r in drift.items() if r["alarm"]]
    assert decision["alarms"] == [w for w in drift if w in decision["reasons"]]
    assert decision["retrain"] == reports["monitor"]["summary"]["retrain"] == bool(decision["alarms"])


def test_lora_with_every_layer_frozen_trains_the_head_alone(decoders):
    """frozen_layers >= layers (the search space's 4 on a 4-layer model): no adapter, only the head trains."""
    from qlife.classifiers import load_classifier
    from qlife.methods.lora import LoraSpec, add_adapters

    model = load_classifier(decoders["mistral"], num_labels=2)
    adapters = add_adapters(model, LoraSpec(), frozen_layers=2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"score.weight"}
    assert adapters.merge()["adapted_modules"] == 0
    with pytest.raises(ValueError, match="target_modules"):
        add_adapters(load_classifier(decoders["mistral"], num_labels=2), LoraSpec(target_modules=("nope",)))


def test_curate_refuses_to_remove_most_of_the_corpus(tiny_workdir, capsys):
    """The tiny random BERT embeds every text alike: near-duplicate removal would take most of the corpus, and
    curate says so (exit 1, naming the param and the embedder) instead of writing a corpus of a few documents."""
    from stages import curate

    raw = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    raw["curate"].update(embedder="teacher", method="classical")
    raw["tracking"] = {"enabled": False}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as code:
        curate.main()
    assert code.value.code == 1
    err = capsys.readouterr().err
    assert "curate.max_near_dup_frac" in err and "median pairwise cosine" in err
    assert not (tiny_workdir / "data" / "curated" / "train.jsonl").exists()
