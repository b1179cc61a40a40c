"""Structured pruning of a Hugging Face encoder's feed-forward (FFN) neurons, physically removed.

Inputs: a BERT-like model (BERT, RoBERTa, MiniLM, ...: ``encoder.layer[i].intermediate.dense`` /
``.output.dense``) or a DistilBERT (``transformer.layer[i].ffn.lin1`` / ``.lin2``), bare or inside a
``*ForSequenceClassification`` wrapper, and for activation scores an iterable of tokenized batches.
Outputs: per-layer neuron importances (numpy), per-layer kept indices, and the model with smaller
Linear layers and an updated config, so ``save_pretrained`` / ``from_pretrained`` round-trips.

Selection (``topk_keep``, or any other selector such as a QUBO) is kept apart from removal
(``prune_ffn``): every selector returns ``keep``, a list of sorted neuron indices per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

_DROP_KEYS = ("labels", "label")  # the forward pass only needs inputs; a loss is wasted work


@dataclass(frozen=True)
class _FFNSlot:
    """Where one layer's FFN Linear pair lives, so it can be replaced in place."""

    up_owner: nn.Module
    up_name: str
    down_owner: nn.Module
    down_name: str

    @property
    def up(self) -> nn.Linear:
        return getattr(self.up_owner, self.up_name)

    @property
    def down(self) -> nn.Linear:
        return getattr(self.down_owner, self.down_name)


def _describe(model: nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return f"model_type {model_type!r} ({type(model).__name__})"


def _slots(model: nn.Module) -> tuple[list[_FFNSlot], str]:
    """The FFN slots of every layer and the config attribute that holds the intermediate size."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is not None and all(
        hasattr(getattr(b, "intermediate", None), "dense") and hasattr(getattr(b, "output", None), "dense")
        for b in layers
    ):
        slots = [_FFNSlot(b.intermediate, "dense", b.output, "dense") for b in layers]
        size_attr = "intermediate_size"
    else:
        layers = getattr(getattr(base, "transformer", None), "layer", None)
        if layers is None or not all(hasattr(getattr(b, "ffn", None), "lin2") for b in layers):
            raise ValueError(
                "FFN pruning supports BERT-like encoders (encoder.layer[i].intermediate/output: BERT, "
                f"RoBERTa, MiniLM) and DistilBERT (transformer.layer[i].ffn); got {_describe(model)}"
            )
        slots = [_FFNSlot(b.ffn, "lin1", b.ffn, "lin2") for b in layers]
        size_attr = "hidden_dim"
    for s in slots:
        if not (isinstance(s.up, nn.Linear) and isinstance(s.down, nn.Linear)):
            raise TypeError(f"unexpected FFN modules in {_describe(model)}: {type(s.up)}, {type(s.down)}")
    return slots, size_attr


def ffn_pairs(model: nn.Module) -> list[tuple[nn.Linear, nn.Linear]]:
    """(up-projection H->I, down-projection I->H) Linear pair of each transformer layer."""
    return [(s.up, s.down) for s in _slots(model)[0]]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def _column_norms(down: nn.Linear) -> np.ndarray:
    # Column j of W_down (H x I) is how much neuron j can move the residual stream.
    return down.weight.detach().float().norm(dim=0).cpu().numpy()


def ffn_magnitude_importance(model: nn.Module) -> list[np.ndarray]:
    """Weight-only score per neuron: ||W_up row j|| * ||W_down column j||."""
    return [
        up.weight.detach().float().norm(dim=1).cpu().numpy() * _column_norms(down)
        for up, down in ffn_pairs(model)
    ]


@contextmanager
def _capture_ffn_inputs(model: nn.Module, layers: list[int]) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the input of each chosen down-projection: the FFN activation after the nonlinearity."""
    pairs = ffn_pairs(model)
    store: dict[int, list[torch.Tensor]] = {i: [] for i in layers}

    def hook(i: int) -> Callable[[nn.Module, tuple], None]:
        # A list per forward: with chunk_size_feed_forward the FFN runs once per sequence chunk.
        return lambda _mod, args: store[i].append(args[0].detach())

    handles = [pairs[i][1].register_forward_pre_hook(hook(i)) for i in layers]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _inference(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode and no grad for the block, restoring the model's training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def _inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items() if k not in _DROP_KEYS}


def _masked_rows(chunks: list[torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
    """(tokens x I) activations of the real (unpadded) tokens of one batch."""
    acts = torch.cat(chunks, dim=1)  # re-join sequence chunks
    chunks.clear()
    if mask is None:
        return acts.reshape(-1, acts.shape[-1]).float()
    return acts[mask.bool()].float()


def ffn_activation_importance(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], max_batches: int | None = 32
) -> list[np.ndarray]:
    """Per layer: mean over real tokens of |activation_j| times ||W_down column j||."""
    pairs = ffn_pairs(model)
    sums = [torch.zeros(up.out_features) for up, _ in pairs]
    tokens = 0
    with _capture_ffn_inputs(model, list(range(len(pairs)))) as store, _inference(model) as device:
        for b, batch in enumerate(batches):
            if max_batches is not None and b >= max_batches:
                break
            inputs = _inputs(batch, device)
            model(**inputs)
            for i, s in enumerate(sums):
                rows = _masked_rows(store[i], inputs.get("attention_mask"))
                s += rows.abs().sum(0).cpu()
            tokens += len(rows)  # the same real tokens in every layer
    if tokens == 0:
        raise ValueError("no tokens seen: batches is empty or every attention_mask is zero")
    return [(s / tokens).numpy() * _column_norms(down) for s, (_, down) in zip(sums, pairs)]


def ffn_activations(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], layer: int, max_tokens: int = 4096
) -> np.ndarray:
    """(tokens x I) post-nonlinearity FFN activations of one layer, real tokens only, up to ``max_tokens``."""
    n_layers = len(ffn_pairs(model))
    if not 0 <= layer < n_layers:
        raise IndexError(f"layer {layer} out of range for a model with {n_layers} layers")
    rows: list[torch.Tensor] = []
    seen = 0
    with _capture_ffn_inputs(model, [layer]) as store, _inference(model) as device:
        for batch in batches:
            inputs = _inputs(batch, device)
            model(**inputs)
            rows.append(_masked_rows(store[layer], inputs.get("attention_mask")).cpu())
            seen += len(rows[-1])
            if seen >= max_tokens:
                break
    if seen == 0:
        raise ValueError("no tokens seen: batches is empty or every attention_mask is zero")
    return torch.cat(rows)[:max_tokens].numpy()


def topk_keep(importances: list[np.ndarray], keep_ratio: float) -> list[np.ndarray]:
    """Indices of the k most important neurons per layer, k = max(1, round(keep_ratio * I)), sorted."""
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1]; got {keep_ratio}")
    keep = []
    for imp in importances:
        imp = np.asarray(imp)
        k = max(1, round(keep_ratio * len(imp)))
        # Stable sort on -imp: ties go to the lower index, so selection is deterministic.
        keep.append(np.sort(np.argsort(-imp, kind="stable")[:k]))
    return keep


def _sliced_linear(old: nn.Linear, idx: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear holding the rows (dim 0: outputs) or columns (dim 1: inputs) ``idx`` of ``old``."""
    w = old.weight.detach().index_select(dim, idx)
    out_f, in_f = w.shape
    new = nn.Linear(in_f, out_f, bias=old.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if old.bias is not None:
            # Output bias belongs to the outputs: sliced with the rows, kept whole for columns.
            new.bias.copy_(old.bias.detach().index_select(0, idx) if dim == 0 else old.bias.detach())
    new.train(old.training)
    new.weight.requires_grad_(old.weight.requires_grad)
    return new


def _check_keep(keep: list[np.ndarray], slots: list[_FFNSlot]) -> int:
    if len(keep) != len(slots):
        raise ValueError(f"keep has {len(keep)} entries for {len(slots)} layers")
    sizes = {len(k) for k in keep}
    if len(sizes) != 1 or any(len(k) != len(np.unique(k)) for k in keep):
        raise ValueError(
            f"every layer must keep the same number of distinct neurons (one config size); "
            f"got {[len(k) for k in keep]}"
        )
    for i, (k, s) in enumerate(zip(keep, slots)):
        size = s.up.out_features
        if len(k) == 0 or np.min(k) < 0 or np.max(k) >= size:
            raise ValueError(f"layer {i}: keep indices must be non-empty and in [0, {size}); got {k}")
    return sizes.pop()


def prune_ffn(model: nn.Module, keep: list[np.ndarray]) -> nn.Module:
    """Remove every FFN neuron not in ``keep[i]`` (physically) and set the config's intermediate size."""
    slots, size_attr = _slots(model)
    k = _check_keep(keep, slots)
    for s, kept in zip(slots, keep):
        idx = torch.as_tensor(np.sort(np.asarray(kept)), dtype=torch.long, device=s.up.weight.device)
        setattr(s.up_owner, s.up_name, _sliced_linear(s.up, idx, dim=0))
        setattr(s.down_owner, s.down_name, _sliced_linear(s.down, idx, dim=1))
    setattr(model.config, size_attr, k)
    return model
