"""Classification heads: an mlp head survives save_pretrained / load_teacher (and pruning's save)."""

from __future__ import annotations

import pytest
import torch

from qlife.classifiers import load_classifier, load_teacher, set_head


@pytest.mark.parametrize("head", ["linear", "mlp", "quantum"])
def test_head_round_trips_through_a_saved_teacher(tiny_teacher, tmp_path, head):
    model = load_classifier(tiny_teacher, num_labels=3, head=head,
                            quantum={"qubits": 3, "layers": 2, "entanglement": "linear", "seed": 5}).eval()
    if head == "mlp":
        assert isinstance(model.classifier, torch.nn.Sequential)
        with torch.no_grad():
            model.classifier[0].weight.add_(0.5)  # trained weights, not a fresh init, must come back
    if head == "quantum":
        from qlife.methods.qhead import QuantumHead

        assert isinstance(model.classifier, QuantumHead) and model.classifier.cfg.qubits == 3
        with torch.no_grad():  # trained circuit and projection weights, not a fresh init, must come back
            model.classifier.circuit.weights.add_(0.7)
            model.classifier.proj.weight.mul_(3.0)
    model.save_pretrained(tmp_path / "m")
    back = load_teacher(tmp_path / "m")
    assert back.config.qlife_head == head
    x = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(back(**x).logits, model(**x).logits, rtol=0, atol=0)
    if head == "quantum":  # and from a pruned model's path (from_config, reshaped attention)
        model.config.qlife_attention_heads = [2, 2]
        model.save_pretrained(tmp_path / "p")
        with torch.no_grad():
            torch.testing.assert_close(load_teacher(tmp_path / "p")(**x).logits, model(**x).logits, rtol=0, atol=0)


def test_unknown_head_is_refused(tiny_teacher):
    model = load_classifier(tiny_teacher, num_labels=2)
    with pytest.raises(ValueError, match="unknown head"):
        set_head(model, "transformer")


def test_length_ordered_inference_returns_rows_in_input_order(tiny_teacher):
    """encode_texts / predict_ids batch by length; each row must equal that text run alone (no padding)."""
    from qlife.methods.finetune import predict_ids
    from qlife.models import encode_texts, load_tokenizer

    torch.manual_seed(0)
    model = load_classifier(tiny_teacher, num_labels=3).eval()
    tok = load_tokenizer(tiny_teacher)
    texts = ["a b c d e f g h", "a", "hello there world", "b c", "x y z w v u t s r q p", "d"]
    pooled, logits = encode_texts(model, tok, texts, max_length=32, batch_size=4)
    ids = tok(texts, truncation=True, max_length=32)["input_ids"]
    plogits, phidden = predict_ids(model, ids, 32, tok.pad_token_id or 0, batch_size=4, output_hidden=True)
    for i, t in enumerate(texts):
        one_pooled, one_logits = encode_texts(model, tok, [t], max_length=32, batch_size=1)
        torch.testing.assert_close(torch.from_numpy(pooled[i]), torch.from_numpy(one_pooled[0]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(logits[i]), torch.from_numpy(one_logits[0]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(plogits[i]), torch.from_numpy(one_logits[0]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(phidden[i]), torch.from_numpy(one_pooled[0]), atol=1e-5, rtol=1e-4)
    empty, none = encode_texts(model, tok, [], max_length=32)
    assert empty.shape == (0, model.config.hidden_size) and none is None
    with pytest.raises(ValueError, match="no sequences"):
        predict_ids(model, [], 32, 0)
