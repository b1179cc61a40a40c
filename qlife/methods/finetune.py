"""Fine-tuning a sequence classifier on pre-tokenized ids (AdamW, linear warmup/decay, seeded).

Works on lists of token ids (what stage 2 writes), truncating to `max_length` while keeping the final
special token, so the search can vary the length without re-tokenizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 5e-5
    epochs: int = 2
    batch_size: int = 32
    max_length: int = 64
    frozen_layers: int = 0
    head: str = "linear"  # linear | mlp (qlife.models.set_head): applied when the classifier is loaded
    seed: int = 0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_steps: int | None = None
    class_weight: str = "none"  # balanced: inverse class frequency in the loss (imbalanced labels)
    group_by_length: bool = True  # batches of similar length (less padding), in random order: epoch_batches


def class_weights(labels: np.ndarray, mode: str, n_classes: int) -> torch.Tensor | None:
    """sklearn's 'balanced' weights n / (k * count_c); classes absent from `labels` get weight 0."""
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(w, dtype=torch.float32)


def collate(ids: list[list[int]], max_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch; an over-long sequence keeps its first max_length-1 tokens and its last one ([SEP])."""
    cut = [s if len(s) <= max_length else s[: max_length - 1] + s[-1:] for s in ids]
    width = max(len(s) for s in cut)
    input_ids = torch.full((len(cut), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(cut), width), dtype=torch.long)
    for i, s in enumerate(cut):
        input_ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def freeze_bottom(model, n_layers: int) -> int:
    """Freeze embeddings and the first n encoder layers; returns how many layers were frozen."""
    if n_layers <= 0:
        return 0
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None) or base.transformer.layer
    n = min(n_layers, len(layers))
    for module in [base.embeddings, *layers[:n]]:
        for p in module.parameters():
            p.requires_grad_(False)
    return n


MEGABATCH = 50  # batches per length-sorted pool (Hugging Face's LengthGroupedSampler uses 50 too)


def epoch_batches(lengths: list[int], batch_size: int, gen: torch.Generator,
                  group_by_length: bool = True) -> list[torch.Tensor]:
    """One epoch's batches of indices: a seeded permutation split into batches; with `group_by_length`, the
    permutation is cut into pools of MEGABATCH batches, each pool sorted by length before it is split (batches
    of similar length pad less: ~1.5x faster steps on short, varied texts), and the batches are then shuffled
    so that no length order (a curriculum) is imposed. Every index appears once; the number of batches is
    ceil(n / batch_size) either way."""
    perm = torch.randperm(len(lengths), generator=gen)
    if not group_by_length:
        return list(perm.split(batch_size))
    lens = torch.as_tensor(lengths)
    out = []
    for pool in perm.split(MEGABATCH * batch_size):
        out += list(pool[torch.argsort(lens[pool], stable=True)].split(batch_size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


def finetune(model, ids: list[list[int]], labels: np.ndarray, cfg: TrainConfig, pad_id: int,
             desc: str = "train") -> dict[str, list[float]]:
    torch.manual_seed(cfg.seed)
    freeze_bottom(model, cfg.frozen_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps,
                                                                             steps_per_epoch * cfg.epochs)
    warmup = max(1, int(cfg.warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    gen = torch.Generator().manual_seed(cfg.seed)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    weight = class_weights(labels, cfg.class_weight, model.config.num_labels)
    history: dict[str, list[float]] = {"loss": []}
    model.train()
    bar = tqdm(total=total, desc=desc, leave=False, mininterval=5)
    step = 0
    lengths = [min(len(s), cfg.max_length) for s in ids]
    while step < total:
        for idx in epoch_batches(lengths, cfg.batch_size, gen, cfg.group_by_length):
            batch = collate([ids[i] for i in idx.tolist()], cfg.max_length, pad_id)
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            history["loss"].append(loss.item())
            step += 1
            bar.update(1)
            if step >= total:
                break
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict_ids(model, ids: list[list[int]], max_length: int, pad_id: int, batch_size: int = 64,
                output_hidden: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits and (optionally) mean-pooled last hidden states for token-id sequences, in input order (batched
    by length: less padding)."""
    from qlife.models import length_order, mean_pool, unsort

    if not len(ids):
        raise ValueError("predict_ids: no sequences")
    model.eval()
    order = length_order([len(s) for s in ids])
    logits, pooled = [], []
    for i in range(0, len(ids), batch_size):
        batch = collate([ids[j] for j in order[i:i + batch_size]], max_length, pad_id)
        out = model(**batch, output_hidden_states=output_hidden)
        logits.append(out.logits.float().numpy())
        if output_hidden:
            pooled.append(mean_pool(out.hidden_states[-1], batch["attention_mask"]).float().numpy())
    return unsort(np.concatenate(logits), order), (unsort(np.concatenate(pooled), order) if output_hidden else None)
