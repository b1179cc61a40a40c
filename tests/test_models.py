"""Classification heads: an mlp head survives save_pretrained / load_teacher (and pruning's save)."""

from __future__ import annotations

import pytest
import torch

from qlife.models import load_classifier, load_teacher, set_head


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_head_round_trips_through_a_saved_teacher(tiny_teacher, tmp_path, head):
    model = load_classifier(tiny_teacher, num_labels=3, head=head).eval()
    if head == "mlp":
        assert isinstance(model.classifier, torch.nn.Sequential)
        with torch.no_grad():
            model.classifier[0].weight.add_(0.5)  # trained weights, not a fresh init, must come back
    model.save_pretrained(tmp_path / "m")
    back = load_teacher(tmp_path / "m")
    assert back.config.qlife_head == head
    x = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(back(**x).logits, model(**x).logits)


def test_unknown_head_is_refused(tiny_teacher):
    model = load_classifier(tiny_teacher, num_labels=2)
    with pytest.raises(ValueError, match="unknown head"):
        set_head(model, "transformer")
