"""Fine-tuning a sequence classifier on pre-tokenized ids (AdamW, linear warmup/decay, seeded), and training a
head alone on fixed features.

- `finetune`: the encoder and its head (full, or LoRA adapters through qlife.methods.lora), a quantum head's
  circuit by AdamW or QNG. Works on lists of token ids (what stage 2 writes), truncating to `max_length` while
  keeping the final special token, so the search can vary the length without re-tokenizing.
- `make_evaluator`: the search's proxy evaluation (a short `finetune` on a `ProxyData` subset, scored on its
  validation part: a `ProxyScore`, the score with its predictions).
- `fit_head`: head-only training on fixed features (same-run baselines of train, bench/head.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from qlife.classifiers import backbone, head_module, load_classifier, quantum_head_of
from qlife.methods.lora import LoraSpec, add_adapters
from qlife.models import length_order, pool, resolve_pooling, unsort
from qlife.params import QuantumHead as QuantumHeadParams
from qlife.quality import evaluate as quality_eval


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 5e-5
    epochs: int = 2
    batch_size: int = 32
    max_length: int = 64
    frozen_layers: int = 0
    head: str = "linear"  # linear | mlp | quantum (qlife.classifiers.set_head): applied when the classifier is loaded
    seed: int = 0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_steps: int | None = None
    class_weight: str = "none"  # balanced: inverse class frequency in the loss (imbalanced labels)
    group_by_length: bool = True  # batches of similar length (less padding), in random order: epoch_batches
    finetune: str = "full"  # full | lora (qlife.methods.lora: adapters above frozen_layers, merged after training)
    lora: dict | None = None  # LoraSpec fields (r, alpha, dropout, target_modules)
    # the head's classical parameters (`classifier.*`, freshly initialised): None = learning_rate for a linear or
    # mlp head, quantum_head_learning_rate for a quantum head
    head_learning_rate: float | None = None
    quantum_head_learning_rate: float = 3e-3
    # a quantum head's circuit weights (qlife.methods.qhead): AdamW at circuit_learning_rate, or QNG
    quantum_optimizer: str = "adam"  # adam | qng
    circuit_learning_rate: float = 1e-2
    qng_learning_rate: float = 0.05
    qng_regularization: float = 1e-3
    qng_metric_rows: int = 16
    freeze_circuit: bool = False
    eval_points: int = 0  # validation loss this many times (evenly spaced steps, the last one included)


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
    """Freeze embeddings and the first n transformer layers; returns how many layers were frozen."""
    if n_layers <= 0:
        return 0
    embeds, layers = backbone(model)
    n = min(n_layers, len(layers))
    for module in [*embeds, *layers[:n]]:
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
    for chunk in perm.split(MEGABATCH * batch_size):
        out += list(chunk[torch.argsort(lens[chunk], stable=True)].split(batch_size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


class Optimizers:
    """AdamW over the classical parameters (the encoder, a head's linear layers) and, for a quantum head, its
    circuit weights either in a second AdamW group at circuit_learning_rate or under QNG (qlife.quantum.qng);
    one warmup/decay schedule scales every learning rate. `qng` is the QNG optimizer (None without)."""

    def __init__(self, model, cfg: TrainConfig, total: int):
        if cfg.quantum_optimizer not in ("adam", "qng"):
            raise ValueError(f"quantum_optimizer must be adam or qng, got {cfg.quantum_optimizer!r}")
        self.head = quantum_head_of(model)
        if self.head is not None and cfg.freeze_circuit:
            self.head.freeze_circuit()
        circuit = [self.head.circuit.weights] if self.head is not None and not cfg.freeze_circuit else []
        ids = {id(p) for p in circuit}
        head_ids = {id(p) for p in (head_module(model) or torch.nn.Module()).parameters()} - ids
        classical = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        self.params = classical + circuit
        head_lr = cfg.head_learning_rate
        if head_lr is None and self.head is not None:
            head_lr = cfg.quantum_head_learning_rate
        if head_lr is None:
            groups = [{"params": classical}]
        else:
            groups = [{"params": [p for p in classical if id(p) not in head_ids]},
                      {"params": [p for p in classical if id(p) in head_ids], "lr": head_lr}]
        if circuit and cfg.quantum_optimizer == "adam":
            groups.append({"params": circuit, "lr": cfg.circuit_learning_rate, "weight_decay": 0.0})
        self.adam = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.qng = None
        if circuit and cfg.quantum_optimizer == "qng":
            from qlife.quantum.qng import QNG, BlockDiagMetric  # lazy: qiskit, for a quantum head only

            self.qng = QNG(circuit[0], BlockDiagMetric(self.head.vc), cfg.qng_learning_rate, cfg.qng_regularization)
        self.metric_rows = cfg.qng_metric_rows
        warmup = max(1, int(cfg.warmup_ratio * total))
        self.lam = lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
        self.sched = [torch.optim.lr_scheduler.LambdaLR(self.adam, self.lam)]
        if self.qng is not None:
            self.sched.append(torch.optim.lr_scheduler.LambdaLR(self.qng, self.lam))
        self._angles: torch.Tensor | None = None
        self._hook = None
        if self.qng is not None:  # the circuit's inputs of the current batch: what the metric is computed at
            self._hook = self.head.register_forward_hook(self._keep_angles)

    def close(self) -> None:
        """Detach the QNG input hook from the head (the trained model keeps no trace of its optimizer)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _keep_angles(self, module, args, output) -> None:
        if module.training:
            self._angles = module.angles(args[0][: self.metric_rows]).detach()

    def zero_grad(self) -> None:
        self.adam.zero_grad()
        if self.qng is not None:
            self.qng.zero_grad()

    def step(self) -> None:
        self.adam.step()
        if self.qng is not None:
            self.qng.step(self._angles)
        for s in self.sched:
            s.step()

    def cost(self) -> dict:
        """The metric's cost (QNG only): calls, blocks, statevectors computed, circuits hardware would run."""
        return self.qng.metric.cost() if self.qng is not None else {}


def _val_loss(model, ids: list[list[int]], y: np.ndarray, cfg: TrainConfig, pad_id: int,
              weight: torch.Tensor | None) -> float:
    logits, _ = predict_ids(model, ids, cfg.max_length, pad_id)
    return float(torch.nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(y, dtype=torch.long),
                                                   weight=weight))


def eval_steps(total: int, points: int) -> set[int]:
    """`points` evenly spaced steps in 1..total, the last one included."""
    return set() if points <= 0 else {max(1, round(total * (i + 1) / points)) for i in range(points)}


def finetune(model, ids: list[list[int]], labels: np.ndarray, cfg: TrainConfig, pad_id: int,
             desc: str = "train", val: tuple[list[list[int]], np.ndarray] | None = None) -> dict[str, list]:
    """Train in place. History: `loss` per step; with `val` and cfg.eval_points, `val_loss` as [step, loss]
    pairs; `metric` the QNG metric's cost for a quantum head under QNG; `lora` the adapters' size (LoRA: trained
    as adapters, merged into the weights before this returns)."""
    torch.manual_seed(cfg.seed)
    adapters = None
    if cfg.finetune == "lora":
        adapters = add_adapters(model, LoraSpec.from_dict(cfg.lora or {}), cfg.frozen_layers)
    elif cfg.finetune == "full":
        freeze_bottom(model, cfg.frozen_layers)
    else:
        raise ValueError(f"finetune must be full or lora, got {cfg.finetune!r}")
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps,
                                                                             steps_per_epoch * cfg.epochs)
    opt = Optimizers(model, cfg, total)
    params = opt.params
    gen = torch.Generator().manual_seed(cfg.seed)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    weight = class_weights(labels, cfg.class_weight, model.config.num_labels)
    history: dict[str, list] = {"loss": [], "val_loss": []}
    checks = eval_steps(total, cfg.eval_points) if val is not None else set()
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
            history["loss"].append(loss.item())
            step += 1
            bar.update(1)
            if step in checks:
                history["val_loss"].append([step, _val_loss(model, val[0], val[1], cfg, pad_id, weight)])
                model.train()
            if step >= total:
                break
    bar.close()
    opt.close()
    model.eval()
    history["metric"] = opt.cost()
    if adapters is not None:
        history["lora"] = adapters.merge()
    return history


@torch.no_grad()
def predict_ids(model, ids: list[list[int]], max_length: int, pad_id: int, batch_size: int = 64,
                output_hidden: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits and (optionally) pooled last hidden states (the model's pooling: mean, or the last real token's) for
    token-id sequences, in input order (batched by length: less padding)."""
    if not len(ids):
        raise ValueError("predict_ids: no sequences")
    model.eval()
    order = length_order([len(s) for s in ids])
    logits, pooled = [], []
    how = resolve_pooling(model.config)
    for i in range(0, len(ids), batch_size):
        batch = collate([ids[j] for j in order[i:i + batch_size]], max_length, pad_id)
        out = model(**batch, output_hidden_states=output_hidden)
        logits.append(out.logits.float().numpy())
        if output_hidden:
            pooled.append(pool(out.hidden_states[-1], batch["attention_mask"], how).float().numpy())
    return unsort(np.concatenate(logits), order), (unsort(np.concatenate(pooled), order) if output_hidden else None)


@torch.no_grad()
def predict_with_head_inputs(model, ids: list[list[int]], max_length: int, pad_id: int, batch_size: int = 64,
                             output_hidden: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """predict_ids plus what the model's head sees for each sequence (for BERT: the pooler output; for a decoder,
    whose head sees every token: the last real token's hidden state, the one its logits come from), in input order,
    from the same forward passes: the features head-only baselines train on."""
    seen: list[np.ndarray] = []
    pad = model.config.pad_token_id
    ids_in: list[torch.Tensor] = []

    def keep(mod, args) -> None:
        x = args[0]
        if x.dim() == 3:  # a decoder: the rightmost non-pad token of each row (the model's own rule)
            real = (ids_in[-1] != pad).to(torch.long)
            x = x[torch.arange(x.shape[0]), (torch.arange(x.shape[1]) * real).argmax(1)]
        seen.append(x.float().numpy())

    hooks = [model.register_forward_pre_hook(lambda mod, args, kw: ids_in.append(kw["input_ids"]), with_kwargs=True),
             head_module(model).register_forward_pre_hook(keep)]
    try:
        logits, hidden = predict_ids(model, ids, max_length, pad_id, batch_size, output_hidden)
    finally:
        for h in hooks:
            h.remove()
    return logits, hidden, unsort(np.concatenate(seen), length_order([len(s) for s in ids]))


def classifier_inputs(model, ids: list[list[int]], max_length: int, pad_id: int, batch_size: int = 64) -> np.ndarray:
    """What the model's head sees for each sequence (predict_with_head_inputs), in input order."""
    return predict_with_head_inputs(model, ids, max_length, pad_id, batch_size)[2]


class ProxyScore(float):
    """A proxy evaluation's score (a float, as searchers are told) carrying the validation predictions it came from
    (`predictions`): the search's verdict compares searchers' best configurations on the same documents."""

    predictions: np.ndarray

    def __new__(cls, score: float, predictions: np.ndarray) -> ProxyScore:
        out = super().__new__(cls, score)
        out.predictions = np.asarray(predictions)
        return out

    def __reduce__(self):  # through a worker process or a Dask cluster, predictions included
        return ProxyScore, (float(self), self.predictions)


@dataclass
class ProxyData:
    """The search's fixed proxy subsets: token ids and labels of a training and a validation part."""

    train_ids: list[list[int]]
    train_y: np.ndarray
    val_ids: list[list[int]]
    val_y: np.ndarray
    labels: list[str]
    pad_id: int


def make_evaluator(model: str, data: ProxyData, seed: int, class_weight: str, quality: Any,
                   defaults: dict[str, Any] | None = None, group_by_length: bool = True,
                   quantum_head: Any = None, quantum_optimizer: str = "adam",
                   head_learning_rate: float | None = None, tuning: dict | None = None,
                   pooling: str = "auto") -> Callable[[dict[str, Any]], float]:
    """A short fine-tuning of `model` on the proxy training subset, scored on the proxy validation subset (a
    `ProxyScore`: the score with the validation predictions); a key the config lacks takes `defaults`
    (TrainConfig's own otherwise). A config with head quantum builds `quantum_head`'s circuit (train.quantum_head;
    its defaults when None) and trains it as train would."""
    qh = quantum_head if quantum_head is not None else QuantumHeadParams()

    def evaluate(cfg: dict[str, Any]) -> float:
        c = {**(defaults or {}), **cfg}
        tc = TrainConfig(seed=seed, class_weight=class_weight, group_by_length=group_by_length,
                         head_learning_rate=head_learning_rate, **qh.training(quantum_optimizer),
                         **(tuning or {}),
                         **{k: (str(v) if k == "head" else float(v) if k == "learning_rate" else int(v))
                            for k, v in c.items()})
        net = load_classifier(model, num_labels=len(data.labels), head=tc.head, quantum=qh.head_config(), seed=seed,
                              pooling=pooling)
        finetune(net, data.train_ids, data.train_y, tc, data.pad_id, desc="proxy")
        logits, _ = predict_ids(net, data.val_ids, tc.max_length, data.pad_id)
        pred = logits.argmax(1)
        return ProxyScore(quality_eval(data.val_y, pred, data.labels, quality)["quality"], pred)

    return evaluate


@dataclass(frozen=True)
class HeadFit:
    """Head-only training on fixed features (same-run baselines, bench/head.py)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3  # the classical parameters (AdamW)
    weight_decay: float = 0.0
    circuit_learning_rate: float = 1e-2
    quantum_optimizer: str = "adam"  # adam | qng
    qng_learning_rate: float = 0.05
    qng_regularization: float = 1e-3
    qng_metric_rows: int = 16
    freeze_circuit: bool = False
    class_weight: str = "none"
    patience: int | None = None  # stop after this many epochs without a better validation loss
    seed: int = 0


def fit_head(head: nn.Module, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
             n_classes: int, cfg: HeadFit = HeadFit()) -> dict[str, Any]:
    """Train `head` (any module (B, d) -> (B, classes); a QuantumHead's circuit by cfg.quantum_optimizer) on
    standardised features; keeps the weights of the best validation loss. History: train loss and wall
    seconds per step, validation loss per epoch; `best_step` is the step count at the best validation loss."""
    if cfg.quantum_optimizer not in ("adam", "qng"):
        raise ValueError(f"quantum_optimizer must be adam or qng, got {cfg.quantum_optimizer!r}")
    torch.manual_seed(cfg.seed)
    mean, std = X.mean(0), X.std(0) + 1e-6
    Xt = torch.as_tensor((X - mean) / std, dtype=torch.float32)
    Xv = torch.as_tensor((X_val - mean) / std, dtype=torch.float32)
    yt, yv = torch.as_tensor(y, dtype=torch.long), torch.as_tensor(y_val, dtype=torch.long)
    weight = class_weights(y, cfg.class_weight, n_classes)
    qh = quantum_head_of(head)
    if qh is not None and cfg.freeze_circuit:
        qh.freeze_circuit()
    circuit = [qh.circuit.weights] if qh is not None and not cfg.freeze_circuit else []
    classical = [p for p in head.parameters() if p.requires_grad and all(p is not c for c in circuit)]
    groups = [{"params": classical}]
    if circuit and cfg.quantum_optimizer == "adam":
        groups.append({"params": circuit, "lr": cfg.circuit_learning_rate})
    adam = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    qng = None
    if circuit and cfg.quantum_optimizer == "qng":
        from qlife.quantum.qng import QNG, BlockDiagMetric  # lazy: qiskit, for a quantum head only

        qng = QNG(circuit[0], BlockDiagMetric(qh.vc), cfg.qng_learning_rate, cfg.qng_regularization)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist: dict[str, list] = {"loss": [], "wall_s": [], "val_loss": []}
    best, best_state, best_step, since = math.inf, None, 0, 0
    t0 = time.perf_counter()
    for _epoch in range(cfg.epochs):
        head.train()
        for idx in torch.randperm(len(Xt), generator=gen).split(cfg.batch_size):
            xb = Xt[idx]
            loss = nn.functional.cross_entropy(head(xb), yt[idx], weight=weight)
            adam.zero_grad()
            if qng is not None:
                qng.zero_grad()
            loss.backward()
            adam.step()
            if qng is not None:
                with torch.no_grad():
                    qng.step(qh.angles(xb[: cfg.qng_metric_rows]))
            hist["loss"].append(loss.item())
            hist["wall_s"].append(time.perf_counter() - t0)
        head.eval()
        with torch.no_grad():
            v = float(nn.functional.cross_entropy(head(Xv), yv, weight=weight))
        hist["val_loss"].append(v)
        if v < best - 1e-6:
            best, best_step, since = v, len(hist["loss"]), 0
            best_state = {k: t.detach().clone() for k, t in head.state_dict().items()}
        else:
            since += 1
            if cfg.patience is not None and since >= cfg.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return {"history": hist, "best_val_loss": best, "best_step": best_step, "steps": len(hist["loss"]),
            "wall_s": time.perf_counter() - t0, "metric": qng.metric.cost() if qng is not None else {},
            "scaler": (mean, std)}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Hold torch at `n` intra-op threads in the block, then restore. Head-only training is many tiny ops (a
    quantum head's circuit simulation above all): on 2 busy cores one thread ran the default quantum head's 300
    steps in 7-9 s where two took 55-70 s and 8x the CPU, spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def head_logits(head: nn.Module, X: np.ndarray, scaler: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    head.eval()
    return head(torch.as_tensor((X - scaler[0]) / scaler[1], dtype=torch.float32)).numpy()
