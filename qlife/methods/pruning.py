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


def linear_targets(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Module names of the Linear layers to compress: `ffn` (each layer's up and down projection, as pruning
    finds them) and/or `attention` (query, key, value and output projections of a BERT-like encoder)."""
    names = {id(m): n for n, m in model.named_modules()}
    out: list[str] = []
    targets = list(targets)
    unknown = set(targets) - {"ffn", "attention"}
    if unknown:
        raise ValueError(f"unknown compression targets {sorted(unknown)}; known: ffn, attention")
    if "ffn" in targets:
        for up, down in ffn_pairs(model):
            out += [names[id(up)], names[id(down)]]
    if "attention" in targets:
        layers = getattr(getattr(getattr(model, "base_model", model), "encoder", None), "layer", None)
        if layers is None:
            raise ValueError("attention compression needs a BERT-like encoder (encoder.layer[i].attention)")
        for b in layers:
            a = b.attention
            out += [names[id(m)] for m in (a.self.query, a.self.key, a.self.value, a.output.dense)]
    return out


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


# ---- attention heads (BERT-like encoders) --------------------------------------------------------------


@dataclass(frozen=True)
class _HeadSlot:
    attn: nn.Module  # BertSelfAttention-like: query, key, value, num_attention_heads, attention_head_size
    out_owner: nn.Module  # holds `dense`, the output projection whose input columns are the heads' outputs

    @property
    def out(self) -> nn.Linear:
        return self.out_owner.dense

    @property
    def heads(self) -> int:
        return int(self.attn.num_attention_heads)

    @property
    def head_size(self) -> int:
        return int(self.attn.attention_head_size)


def _head_slots(model: nn.Module) -> list[_HeadSlot]:
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    ok = layers is not None and all(
        all(hasattr(getattr(getattr(b, "attention", None), "self", None), a)
            for a in ("query", "key", "value", "num_attention_heads", "attention_head_size"))
        and hasattr(getattr(b.attention, "output", None), "dense") for b in layers)
    if not ok:
        raise ValueError("head pruning supports BERT-like encoders (encoder.layer[i].attention.self.query/key/value"
                         f" and attention.output.dense: BERT, RoBERTa, MiniLM); got {_describe(model)}")
    return [_HeadSlot(b.attention.self, b.attention.output) for b in layers]


def head_counts(model: nn.Module) -> list[int]:
    return [s.heads for s in _head_slots(model)]


def prune_heads(model: nn.Module, keep: list[np.ndarray]) -> nn.Module:
    """Remove every attention head not in ``keep[i]`` (physically: smaller query/key/value outputs and output
    projection inputs; the head size is unchanged, so scores are scaled as before). Layers may keep different
    numbers of heads (>= 1 each); the per-layer counts are recorded as ``config.qlife_attention_heads`` so that
    ``qlife.classifiers.load_teacher`` rebuilds the shapes (``resize_heads``) before loading the weights."""
    slots = _head_slots(model)
    if len(keep) != len(slots):
        raise ValueError(f"keep has {len(keep)} entries for {len(slots)} layers")
    for i, (s, kept) in enumerate(zip(slots, keep)):
        kept = np.sort(np.asarray(kept, dtype=np.int64))
        if len(kept) == 0 or len(np.unique(kept)) != len(kept) or kept[0] < 0 or kept[-1] >= s.heads:
            raise ValueError(f"layer {i}: keep must be >= 1 distinct heads in [0, {s.heads}); got {kept.tolist()}")
        d = s.head_size
        idx = torch.as_tensor(np.concatenate([np.arange(h * d, (h + 1) * d) for h in kept]), dtype=torch.long,
                              device=s.out.weight.device)
        for name in ("query", "key", "value"):
            setattr(s.attn, name, _sliced_linear(getattr(s.attn, name), idx, dim=0))
        s.out_owner.dense = _sliced_linear(s.out, idx, dim=1)
        s.attn.num_attention_heads = len(kept)
        s.attn.all_head_size = len(kept) * d
    model.config.qlife_attention_heads = head_counts(model)
    return model


def head_magnitude_importance(model: nn.Module) -> list[np.ndarray]:
    """Weight-only score per head: ||W_v rows of h|| * ||W_o columns of h|| (Frobenius)."""
    out = []
    for s in _head_slots(model):
        d = s.head_size
        v = s.attn.value.weight.detach().float().reshape(s.heads, d, -1).flatten(1).norm(dim=1)
        o = s.out.weight.detach().float().reshape(-1, s.heads, d).transpose(0, 1).flatten(1).norm(dim=1)
        out.append((v * o).cpu().numpy())
    return out


# ---- gates: masks, and calibration statistics with per-example gradients -----------------------------------


def _gate_targets(model: nn.Module, kind: str) -> tuple[list[nn.Linear], list[int], int]:
    """(module whose input is gated, units per layer, features per unit) for `kind` ffn | heads."""
    if kind == "ffn":
        pairs = ffn_pairs(model)
        return [down for _, down in pairs], [up.out_features for up, _ in pairs], 1
    if kind == "heads":
        slots = _head_slots(model)
        return [s.out for s in slots], [s.heads for s in slots], slots[0].head_size
    raise ValueError(f"unit kind must be ffn or heads; got {kind!r}")


@contextmanager
def masked(model: nn.Module, kind: str, keep: list[np.ndarray]) -> Iterator[nn.Module]:
    """The model with the units not in ``keep[i]`` zeroed at their output (what removal must equal)."""
    targets, units, width = _gate_targets(model, kind)
    handles = []
    for mod, n, kept in zip(targets, units, keep, strict=True):
        m = torch.zeros(n)
        m[torch.as_tensor(np.asarray(kept, dtype=np.int64))] = 1.0
        m = m.repeat_interleave(width)
        handles.append(mod.register_forward_pre_hook(lambda _mod, args, m=m: (args[0] * m.to(args[0].dtype),)))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@dataclass
class Calibration:
    """Per layer, for one unit kind: the per-example gate gradients G (examples x units: dL_n/dm_i at m = 1);
    per unit the mean over real tokens of the norm of its output (|a| for a neuron) and the L2 norm of its
    columns of the output projection; per input feature of that projection (a neuron: 1, a head: head_size)
    the L2 norm over real tokens and the L1 norm of its weight column (structured Wanda); and per layer the
    units' output Gram matrix Q (Q_ij = sum over tokens of <unit i's contribution, unit j's contribution> to
    the projection's output), so that removing the units of z changes that output by exactly z^T Q z (squared,
    summed over the calibration tokens)."""

    kind: str
    grads: list[np.ndarray]
    act_mean: list[np.ndarray]
    w_l2: list[np.ndarray]
    feat_l2: list[np.ndarray]
    feat_w_l1: list[np.ndarray]
    gram: list[np.ndarray]
    examples: int

    def reconstruction(self, layer: int) -> np.ndarray:
        """Q of one layer divided by the layer's output energy (sum of Q): the relative squared output error of
        a removal is z^T Q z."""
        q = self.gram[layer]
        return q / max(float(q.sum()), 1e-30)

    def activation_importance(self) -> list[np.ndarray]:
        """Mean output norm x output-projection norm (today's deploy default for neurons)."""
        return [a * w for a, w in zip(self.act_mean, self.w_l2)]

    def wanda_importance(self) -> list[np.ndarray]:
        """Structured Wanda (Sun et al. 2023, per input column |W| x ||X||_2), summed over the unit's columns."""
        return [(f * w).reshape(len(a), -1).sum(1) for f, w, a in zip(self.feat_l2, self.feat_w_l1, self.act_mean)]

    def gradient(self, layer: int) -> np.ndarray:
        return self.grads[layer].mean(0)

    def fisher(self, layer: int) -> np.ndarray:
        g = self.grads[layer]
        return g.T @ g / len(g)

    def all_layers(self) -> tuple[np.ndarray, np.ndarray]:
        """(gradient, Fisher) over every unit of every layer (cross-layer terms included)."""
        g = np.concatenate(self.grads, axis=1)
        return g.mean(0), g.T @ g / len(g)


def calibrate(model: nn.Module, kind: str, batches: Iterable[dict[str, torch.Tensor]],
              labels: Iterable[torch.Tensor]) -> Calibration:
    """`calibrate_all` for one unit kind."""
    return calibrate_all(model, (kind,), batches, labels)[kind]


def calibrate_all(model: nn.Module, kinds: Iterable[str], batches: Iterable[dict[str, torch.Tensor]],
                  labels: Iterable[torch.Tensor]) -> dict[str, Calibration]:
    """One forward/backward per calibration batch with a gate (B x units, all ones) on every layer's units of
    every kind: the summed cross-entropy's gradient in the gates is each example's dL_n/dm (rows of G), all in
    one backward (gates at one change nothing, so the kinds do not disturb each other)."""
    kinds = tuple(kinds)
    targets, units, width, owner = [], [], [], []
    for kind in kinds:
        t, u, w = _gate_targets(model, kind)
        targets += t
        units += u
        width += [w] * len(t)
        owner += [kind] * len(t)
    grads: list[list[np.ndarray]] = [[] for _ in targets]
    abs_sum = [torch.zeros(n) for n in units]
    sq_sum = [torch.zeros(n * w) for n, w in zip(units, width)]
    feat_gram = [torch.zeros(n * w, n * w, dtype=torch.float64) for n, w in zip(units, width)]
    tokens = examples = 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for batch, y in zip(batches, labels, strict=True):
            inputs = _inputs(batch, device)
            mask = inputs.get("attention_mask")
            b = inputs["input_ids"].shape[0]
            gates = [torch.ones(b, 1, n, device=device, requires_grad=True) for n in units]
            seen: list[torch.Tensor | None] = [None] * len(targets)

            def hook(i: int, seen=seen, gates=gates):
                def f(_mod, args):
                    x = args[0]
                    seen[i] = x.detach()
                    return (x * gates[i].repeat_interleave(width[i], dim=-1).to(x.dtype),)
                return f

            handles = [mod.register_forward_pre_hook(hook(i)) for i, mod in enumerate(targets)]
            try:
                logits = model(**inputs).logits
                loss = nn.functional.cross_entropy(logits if logits.dtype == torch.float64 else logits.float(),
                                                   y.to(device), reduction="sum")
                loss.backward()
            finally:
                for h in handles:
                    h.remove()
            model.zero_grad(set_to_none=True)
            for i, (g, x) in enumerate(zip(gates, seen)):
                grads[i].append(g.grad.reshape(b, -1).cpu().double().numpy())
                rows = (x[mask.bool()] if mask is not None else x.reshape(-1, x.shape[-1])).cpu()
                feat_gram[i] += (rows.T @ rows).double()  # in the model's precision, summed in float64
                rows = rows.float()
                abs_sum[i] += rows.reshape(len(rows), units[i], width[i]).norm(dim=-1).sum(0)  # |a| per unit
                sq_sum[i] += (rows ** 2).sum(0)
            tokens += len(rows)
            examples += b
    finally:
        model.train(was_training)
    if examples == 0 or tokens == 0:
        raise ValueError("no calibration examples: batches is empty or every attention_mask is zero")
    per: dict[str, dict[str, list]] = {k: {f: [] for f in ("g", "a", "wl2", "fl2", "wl1", "q")} for k in kinds}
    for i, (mod, n, w_, fg) in enumerate(zip(targets, units, width, feat_gram)):
        w = mod.weight.detach().float()
        d = per[owner[i]]
        d["g"].append(np.concatenate(grads[i]))
        d["a"].append((abs_sum[i] / tokens).numpy())
        d["wl2"].append(w.reshape(mod.out_features, n, w_).norm(dim=(0, 2)).cpu().numpy())
        d["fl2"].append(sq_sum[i].sqrt().numpy())
        d["wl1"].append(w.abs().sum(0).cpu().numpy())
        w64 = mod.weight.detach().double().cpu()
        d["q"].append((fg * (w64.T @ w64)).reshape(n, w_, n, w_).sum(dim=(1, 3)).numpy())
    return {k: Calibration(k, d["g"], d["a"], d["wl2"], d["fl2"], d["wl1"], d["q"], examples)
            for k, d in per.items()}


# ---- which units to keep: a method, a sparsity, a scope -------------------------------------------------------


def unit_counts(model: nn.Module, kind: str) -> list[int]:
    return _gate_targets(model, kind)[1]


def kept_per_layer(n: int, sparsity: float) -> int:
    """Units a layer of n keeps at `sparsity` (fraction removed): at least one."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1); got {sparsity}")
    return max(1, n - round(sparsity * n))


def method_importance(model: nn.Module, kind: str, method: str, cal: Calibration,
                      objective: str = "reconstruction") -> list[np.ndarray]:
    """Per-layer importance (higher: keep) of a top-k baseline: magnitude (weights only), activation (mean
    output norm x output weights: today's deploy default), wanda (structured |W| x ||X||); for diagonal,
    random and qubo the objective's own diagonal (each unit's cost removed alone)."""
    if method == "magnitude":
        return head_magnitude_importance(model) if kind == "heads" else ffn_magnitude_importance(model)
    if method == "activation":
        return cal.activation_importance()
    if method == "wanda":
        return cal.wanda_importance()
    return [s.removal_qubo()[0] for s in layer_scores(cal, None, objective)]


OBJECTIVES = ("reconstruction", "fisher")


def _layer_model(cal: Calibration, layer: int, objective: str) -> tuple[np.ndarray | None, np.ndarray]:
    """(gradient, curvature) of the removal model dL(z) = -g . z + 1/2 z^T H z of one layer: reconstruction —
    no gradient, H = 2 Q / energy (exact: the relative squared error of the layer's output); fisher — the mean
    gate gradient and the empirical Fisher (a second-order Taylor model of the loss)."""
    if objective == "reconstruction":
        return None, 2.0 * cal.reconstruction(layer)
    if objective == "fisher":
        return cal.gradient(layer), cal.fisher(layer)
    raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")


def layer_scores(cal: Calibration, importance: list[np.ndarray] | None, objective: str = "reconstruction") -> list:
    from qlife.methods.selection import UnitScores

    out = []
    for i in range(len(cal.grads)):
        g, h = _layer_model(cal, i, objective)
        imp = importance[i] if importance is not None else np.diag(h).copy()
        out.append(UnitScores(imp, g, h))
    return out


def global_scores(cal: Calibration, importance: list[np.ndarray], objective: str = "reconstruction"):
    """One model over every layer's units: fisher — the full Fisher (cross-layer terms); reconstruction — the
    layers' relative output errors side by side (block diagonal: each layer's error counts the same)."""
    from scipy.linalg import block_diag

    from qlife.methods.selection import UnitScores

    if objective == "fisher":
        g, f = cal.all_layers()
        return UnitScores(np.concatenate(importance), g, f)
    blocks = [_layer_model(cal, i, objective)[1] for i in range(len(cal.grads))]
    return UnitScores(np.concatenate(importance), None, block_diag(*blocks))


def split_global(keep: np.ndarray, counts: list[int], scores) -> tuple[list[np.ndarray], int]:
    """A global selection cut into per-layer keeps; a layer left empty gets its unit of largest own cost to
    remove, paid for by the kept unit (in a layer with > 1) of smallest cost. Returns (keeps, such swaps)."""
    h, _ = scores.removal_qubo()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    kept = set(int(i) for i in keep)
    swaps = 0
    for layer in range(len(counts)):
        lo, hi = offsets[layer], offsets[layer + 1]
        if any(lo <= i < hi for i in kept):
            continue
        donors = [i for i in kept if sum(1 for j in kept if _layer_of(j, offsets) == _layer_of(i, offsets)) > 1]
        drop = min(donors, key=lambda i: h[i])
        kept.discard(drop)
        kept.add(int(lo + np.argmax(h[lo:hi])))
        swaps += 1
    out = [np.array(sorted(i - offsets[layer] for i in kept if offsets[layer] <= i < offsets[layer + 1]),
                    dtype=np.int64) for layer in range(len(counts))]
    return out, swaps


def _layer_of(i: int, offsets: np.ndarray) -> int:
    return int(np.searchsorted(offsets, i, side="right") - 1)


def prune_units(model: nn.Module, kind: str, keep: list[np.ndarray]) -> nn.Module:
    return prune_heads(model, keep) if kind == "heads" else prune_ffn(model, keep)
