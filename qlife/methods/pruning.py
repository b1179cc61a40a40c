"""Structured pruning of a Hugging Face transformer's feed-forward (FFN) neurons and attention heads, physically
removed.

Inputs: a model, bare or inside a ``*ForSequenceClassification`` wrapper, of one of these layouts:

- BERT-like encoders (BERT, RoBERTa, MiniLM, ...: ``encoder.layer[i].intermediate.dense`` / ``.output.dense``,
  heads in ``attention.self.query/key/value`` and ``attention.output.dense``);
- DistilBERT (``transformer.layer[i].ffn.lin1`` / ``.lin2``; FFN only);
- gated-MLP decoders (Llama, Qwen2, Mistral: ``layers[i].mlp.gate_proj/up_proj/down_proj``, a neuron is a row of
  gate_proj and of up_proj and a column of down_proj; attention ``self_attn.q_proj/k_proj/v_proj/o_proj``, pruned
  by key/value group: kv head g with its query heads, so grouped-query attention stays consistent);
- GPT-2 (``h[i].mlp.c_fc`` / ``.c_proj`` and ``attn.c_attn`` / ``.c_proj``: transformers' Conv1D, whose weight is
  stored transposed, (in, out)).

For activation scores and calibration: an iterable of tokenized batches. Outputs: per-layer importances (numpy),
per-layer kept indices, and the model with smaller projections and an updated config (FFN: the config's
intermediate size; heads: ``config.qlife_attention_heads``, which ``qlife.classifiers.load_teacher`` reads), so
that a saved model reloads.

Selection (``qlife.methods.selection``: top-k, QUBO, ...) is kept apart from removal (``prune_ffn`` /
``prune_heads``): every selector returns ``keep``, a list of sorted unit indices per layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

_DROP_KEYS = ("labels", "label")  # the forward pass only needs inputs; a loss is wasted work

Projection = nn.Linear | Conv1D  # a dense layer y = x W^T + b; Conv1D (GPT-2) stores W transposed


def _weight(mod: Projection) -> torch.Tensor:
    """A projection's weight as (out, in), detached, whatever its storage."""
    w = mod.weight.detach()
    return w.T if isinstance(mod, Conv1D) else w


def _out_features(mod: Projection) -> int:
    return _weight(mod).shape[0]


def _in_features(mod: Projection) -> int:
    return _weight(mod).shape[1]


def _module_at(root: nn.Module, path: str) -> nn.Module | None:
    """root.a.b for path "a.b"; None where a step is missing."""
    for part in path.split("."):
        root = getattr(root, part, None)
    return root


def _describe(model: nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return f"model_type {model_type!r} ({type(model).__name__})"


# ---- FFN neurons ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FFNSlot:
    """Where one layer's FFN lives, so it can be replaced in place: the projections whose outputs are the neurons
    (``ins``: the up projection; a gated MLP's gate and up projections) and the down projection they feed."""

    in_owner: nn.Module
    in_names: tuple[str, ...]
    down_owner: nn.Module
    down_name: str

    @property
    def ins(self) -> list[Projection]:
        return [getattr(self.in_owner, n) for n in self.in_names]

    @property
    def up(self) -> Projection:
        return self.ins[-1]

    @property
    def down(self) -> Projection:
        return getattr(self.down_owner, self.down_name)

    @property
    def size(self) -> int:
        return _out_features(self.ins[0])


# (layers under the base model, owner of the neuron projections, their names, owner of the down projection, its
# name, the config attribute holding the intermediate size)
_FFN_LAYOUTS = (
    ("encoder.layer", "intermediate", ("dense",), "output", "dense", "intermediate_size"),  # BERT-likes
    ("transformer.layer", "ffn", ("lin1",), "ffn", "lin2", "hidden_dim"),  # DistilBERT
    ("layers", "mlp", ("gate_proj", "up_proj"), "mlp", "down_proj", "intermediate_size"),  # Llama, Qwen2, Mistral
    ("h", "mlp", ("c_fc",), "mlp", "c_proj", "n_inner"),  # GPT-2 (Conv1D; n_inner None means 4 * n_embd)
)


def _slots(model: nn.Module) -> tuple[list[_FFNSlot], str]:
    """The FFN slots of every layer and the config attribute that holds the intermediate size."""
    base = getattr(model, "base_model", model)
    for layout in _FFN_LAYOUTS:
        path, owner, ins, down_owner, down, size_attr = layout
        layers = _module_at(base, path)
        if layers is not None and all(
            all(hasattr(getattr(b, owner, None), n) for n in ins) and hasattr(getattr(b, down_owner, None), down)
            for b in layers
        ):
            break
    else:
        raise ValueError(
            "FFN pruning supports BERT-like encoders (encoder.layer[i].intermediate/output: BERT, RoBERTa, MiniLM), "
            "DistilBERT (transformer.layer[i].ffn), gated-MLP decoders (layers[i].mlp.gate_proj/up_proj/down_proj: "
            f"Llama, Qwen2, Mistral) and GPT-2 (h[i].mlp.c_fc/c_proj); got {_describe(model)}"
        )
    slots = [_FFNSlot(getattr(b, owner), ins, getattr(b, down_owner), down) for b in layers]
    for s in slots:
        if not all(isinstance(m, Projection) for m in [*s.ins, s.down]):
            raise TypeError(f"unexpected FFN modules in {_describe(model)}: {[type(m) for m in [*s.ins, s.down]]}")
    return slots, size_attr


def ffn_pairs(model: nn.Module) -> list[tuple[Projection, Projection]]:
    """(up-projection H->I, down-projection I->H) of each transformer layer; a gated MLP's up_proj (its gate_proj,
    of the same shape, is in `ffn_projections`); GPT-2's are Conv1D (weight stored (in, out))."""
    return [(s.up, s.down) for s in _slots(model)[0]]


def ffn_projections(model: nn.Module) -> list[tuple[list[Projection], Projection]]:
    """Per layer: (the projections whose output rows are the neurons: [up], or [gate, up] for a gated MLP; down)."""
    return [(s.ins, s.down) for s in _slots(model)[0]]


def ffn_neuron_cost(model: nn.Module) -> tuple[int, int]:
    """(parameters one FFN neuron holds in a layer: its rows and biases of every neuron projection and its column
    of the down projection; parameters of a layer's FFN that no neuron holds: the down projection's bias)."""
    s = _slots(model)[0][0]
    per = sum(_in_features(m) + (m.bias is not None) for m in s.ins) + _out_features(s.down)
    return per, _out_features(s.down) if s.down.bias is not None else 0


def linear_targets(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Module names of the Linear layers to compress: `ffn` (each layer's neuron projections, a gated MLP's gate
    and up, and its down projection, as pruning finds them) and/or `attention` (query, key, value and output
    projections: BERT-likes, Llama / Qwen2 / Mistral). GPT-2's Conv1D layers are refused (ValueError): the
    tensor-network compressor replaces nn.Linear layers only."""
    names = {id(m): n for n, m in model.named_modules()}
    targets = list(targets)
    unknown = set(targets) - {"ffn", "attention"}
    if unknown:
        raise ValueError(f"unknown compression targets {sorted(unknown)}; known: ffn, attention")
    mods: list[nn.Module] = []
    if "ffn" in targets:
        mods += [m for s in _slots(model)[0] for m in (*s.ins, s.down)]
    if "attention" in targets:
        mods += [m for s in _head_slots(model) for m in s.projections()]
    conv = [names[id(m)] for m in mods if isinstance(m, Conv1D)]
    if conv:
        raise ValueError(f"tensor-network compression replaces nn.Linear layers; {_describe(model)} has Conv1D "
                         f"layers (GPT-2's transposed linear layers: {conv[0]}, ...), which it does not support")
    return [names[id(m)] for m in mods]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def _column_norms(down: Projection) -> np.ndarray:
    # Column j of W_down (H x I) is how much neuron j can move the residual stream.
    return _weight(down).float().norm(dim=0).cpu().numpy()


def ffn_magnitude_importance(model: nn.Module) -> list[np.ndarray]:
    """Weight-only score per neuron: ||W_up row j|| * ||W_down column j||; for a gated MLP
    ||W_gate row j|| * ||W_up row j|| * ||W_down column j||."""
    # A product over the gate too, not a sum: the neuron's output act(g_j . x) (u_j . x) W_down[:, j] is (where
    # SiLU is near the identity) trilinear in the three weight vectors, so scaling any one of them scales it and
    # any one at zero silences it, which the product says and a sum (a dead up row scored by its gate) does not.
    out = []
    for s in _slots(model)[0]:
        score = _column_norms(s.down)
        for m in s.ins:
            score = score * _weight(m).float().norm(dim=1).cpu().numpy()
        out.append(score)
    return out


def _inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items() if k not in _DROP_KEYS}


def _sliced(old: Projection, idx: torch.Tensor, dim: int) -> Projection:
    """A new projection of the same kind (Linear or Conv1D) holding the outputs (dim 0) or inputs (dim 1) ``idx``
    of ``old``, in (out, in) terms whatever the storage."""
    w = _weight(old).index_select(dim, idx)
    out_f, in_f = w.shape
    if isinstance(old, Conv1D):
        new = Conv1D(out_f, in_f).to(device=w.device, dtype=w.dtype)  # always has a bias, like GPT-2's
    else:
        new = nn.Linear(in_f, out_f, bias=old.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w.T if isinstance(old, Conv1D) else w)
        if old.bias is not None:
            # Output bias belongs to the outputs: sliced with the rows, kept whole for columns.
            new.bias.copy_(old.bias.detach().index_select(0, idx) if dim == 0 else old.bias.detach())
            new.bias.requires_grad_(old.bias.requires_grad)
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
        if len(k) == 0 or np.min(k) < 0 or np.max(k) >= s.size:
            raise ValueError(f"layer {i}: keep indices must be non-empty and in [0, {s.size}); got {k}")
    return sizes.pop()


def prune_ffn(model: nn.Module, keep: list[np.ndarray]) -> nn.Module:
    """Remove every FFN neuron not in ``keep[i]`` (physically: rows of the up projection, and of the gate of a
    gated MLP, columns of the down projection) and set the config's intermediate size, so that
    ``from_pretrained`` builds the pruned shapes."""
    slots, size_attr = _slots(model)
    k = _check_keep(keep, slots)
    for s, kept in zip(slots, keep):
        idx = torch.as_tensor(np.sort(np.asarray(kept)), dtype=torch.long, device=s.down.weight.device)
        for name in s.in_names:
            setattr(s.in_owner, name, _sliced(getattr(s.in_owner, name), idx, dim=0))
        setattr(s.down_owner, s.down_name, _sliced(s.down, idx, dim=1))
        if hasattr(s.in_owner, "intermediate_size"):  # Llama's MLP keeps a copy (unused by its forward)
            s.in_owner.intermediate_size = k
    setattr(model.config, size_attr, k)
    return model


# ---- attention units: heads, or key/value groups ---------------------------------------------------------------


@dataclass(frozen=True)
class _HeadSlot:
    """One layer's attention as units of the output projection's input: a head (layouts `bert`, `gpt2`), or for
    `gqa` (Llama, Qwen2, Mistral) a key/value group: kv head g and its query heads g*n_rep .. (g+1)*n_rep-1,
    contiguous columns of o_proj (a single head where kv heads == heads)."""

    layout: str  # bert | gqa | gpt2
    attn: nn.Module  # holds the query / key / value projections (and, but for bert, the output one)
    out_owner: nn.Module
    out_name: str

    @property
    def out(self) -> Projection:
        return getattr(self.out_owner, self.out_name)

    @property
    def head_dim(self) -> int:
        return int(self.attn.attention_head_size if self.layout == "bert" else self.attn.head_dim)

    @property
    def width(self) -> int:
        """Input features of the output projection per unit: n_rep * head_dim (n_rep = 1 but for gqa)."""
        return (int(self.attn.num_key_value_groups) if self.layout == "gqa" else 1) * self.head_dim

    @property
    def units(self) -> int:
        return _in_features(self.out) // self.width

    def projections(self) -> list[Projection]:
        a = self.attn
        if self.layout == "bert":
            return [a.query, a.key, a.value, self.out]
        if self.layout == "gqa":
            return [a.q_proj, a.k_proj, a.v_proj, a.o_proj]
        return [a.c_attn, a.c_proj]

    def value_rows(self) -> torch.Tensor:
        """(units, -1): each unit's rows ((out, in) layout) of the value projection, flattened (a kv group: its one
        value head, shared by its query heads)."""
        a = self.attn
        if self.layout == "gpt2":  # c_attn's outputs are q | k | v, split_size each
            return _weight(a.c_attn)[2 * a.split_size:3 * a.split_size].reshape(self.units, -1)
        return _weight(a.value if self.layout == "bert" else a.v_proj).reshape(self.units, -1)

    def prune(self, kept: np.ndarray) -> None:
        """Keep the units ``kept`` (sorted, distinct): slice the projections and set what the forward reads."""
        a, d = self.attn, self.head_dim
        feats = _features(kept, self.width, self.out.weight.device)
        if self.layout == "bert":
            for name in ("query", "key", "value"):
                setattr(a, name, _sliced(getattr(a, name), feats, dim=0))
            a.num_attention_heads, a.all_head_size = len(kept), len(feats)
        elif self.layout == "gqa":  # the forward infers the head counts from the projections (view(..., -1, d))
            a.q_proj = _sliced(a.q_proj, feats, dim=0)
            kv = _features(kept, d, feats.device)
            a.k_proj, a.v_proj = _sliced(a.k_proj, kv, dim=0), _sliced(a.v_proj, kv, dim=0)
        else:  # gpt2: the forward splits c_attn's output by split_size and views heads as (-1, head_dim)
            a.c_attn = _sliced(a.c_attn, torch.cat([feats + j * a.split_size for j in range(3)]), dim=0)
            a.split_size, a.num_heads = len(feats), len(kept)  # embed_dim stays the residual width
        setattr(self.out_owner, self.out_name, _sliced(self.out, feats, dim=1))


def _features(kept: np.ndarray, width: int, device: torch.device) -> torch.Tensor:
    """The feature indices u*width .. (u+1)*width-1 of each unit u in ``kept``, in order."""
    idx = (np.asarray(kept, dtype=np.int64)[:, None] * width + np.arange(width)).ravel()
    return torch.as_tensor(idx, dtype=torch.long, device=device)


def _bert_attention(b: nn.Module) -> _HeadSlot | None:
    a = getattr(getattr(b, "attention", None), "self", None)
    ok = all(hasattr(a, n) for n in ("query", "key", "value", "num_attention_heads", "attention_head_size"))
    out = getattr(getattr(b, "attention", None), "output", None)
    return _HeadSlot("bert", a, out, "dense") if ok and hasattr(out, "dense") else None


def _gqa_attention(b: nn.Module) -> _HeadSlot | None:
    a = getattr(b, "self_attn", None)
    ok = all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "num_key_value_groups"))
    return _HeadSlot("gqa", a, a, "o_proj") if ok else None


def _gpt2_attention(b: nn.Module) -> _HeadSlot | None:
    a = getattr(b, "attn", None)
    ok = all(hasattr(a, n) for n in ("c_attn", "c_proj", "split_size", "num_heads", "head_dim"))
    return _HeadSlot("gpt2", a, a, "c_proj") if ok and not getattr(a, "is_cross_attention", False) else None


_HEAD_LAYOUTS = (("encoder.layer", _bert_attention), ("layers", _gqa_attention), ("h", _gpt2_attention))


def _head_slots(model: nn.Module) -> list[_HeadSlot]:
    base = getattr(model, "base_model", model)
    for path, find in _HEAD_LAYOUTS:
        layers = _module_at(base, path)
        slots = [find(b) for b in layers] if layers is not None else [None]
        if slots and all(s is not None for s in slots):
            return slots
    raise ValueError("head pruning supports BERT-like encoders (encoder.layer[i].attention.self.query/key/value and "
                     "attention.output.dense: BERT, RoBERTa, MiniLM), Llama / Qwen2 / Mistral (layers[i].self_attn."
                     f"q_proj/k_proj/v_proj/o_proj) and GPT-2 (h[i].attn.c_attn/c_proj); got {_describe(model)}")


def residual_projections(model: nn.Module) -> list[tuple[Projection, Projection]]:
    """Per layer: (attention output projection, FFN down projection), the weights through which a block writes to
    the residual stream (qlife.methods.blocks' magnitude baseline)."""
    return [(h.out, f.down) for h, f in zip(_head_slots(model), _slots(model)[0], strict=True)]


def head_counts(model: nn.Module) -> list[int]:
    """Attention units per layer: heads, or key/value groups for Llama / Qwen2 / Mistral."""
    return [s.units for s in _head_slots(model)]


def attention_unit(model: nn.Module) -> str:
    """What one attention unit of `model` is: `head`, or `kv_group` (a kv head with its query heads)."""
    return "kv_group" if _head_slots(model)[0].layout == "gqa" else "head"


def prune_heads(model: nn.Module, keep: list[np.ndarray]) -> nn.Module:
    """Remove every attention unit not in ``keep[i]`` (physically: smaller query/key/value outputs and output
    projection inputs; the head size is unchanged, so scores are scaled as before). A unit is a head, or for
    Llama / Qwen2 / Mistral a key/value group (its k and v rows, its query heads' q rows and o_proj columns), so
    grouped-query attention stays consistent. Layers may keep different numbers of units (>= 1 each); the
    per-layer counts are recorded as ``config.qlife_attention_heads`` (and the unit as
    ``config.qlife_attention_unit``) so that ``qlife.classifiers.load_teacher`` rebuilds the shapes
    (``resize_heads``) before loading the weights."""
    slots = _head_slots(model)
    if len(keep) != len(slots):
        raise ValueError(f"keep has {len(keep)} entries for {len(slots)} layers")
    for i, (s, kept) in enumerate(zip(slots, keep)):
        kept = np.sort(np.asarray(kept, dtype=np.int64))
        if len(kept) == 0 or len(np.unique(kept)) != len(kept) or kept[0] < 0 or kept[-1] >= s.units:
            raise ValueError(f"layer {i}: keep must be >= 1 distinct heads in [0, {s.units}); got {kept.tolist()}")
    for s, kept in zip(slots, keep):
        s.prune(np.sort(np.asarray(kept, dtype=np.int64)))
    model.config.qlife_attention_heads = head_counts(model)
    model.config.qlife_attention_unit = attention_unit(model)
    return model


def head_magnitude_importance(model: nn.Module) -> list[np.ndarray]:
    """Weight-only score per unit: ||W_v rows of the unit|| * ||W_o columns of the unit|| (Frobenius; a kv group:
    its value head's rows and its query heads' output columns)."""
    out = []
    for s in _head_slots(model):
        v = s.value_rows().float().norm(dim=1)
        o = _weight(s.out).float().reshape(-1, s.units, s.width).transpose(0, 1).flatten(1).norm(dim=1)
        out.append((v * o).cpu().numpy())
    return out


# ---- gates: masks, and calibration statistics with per-example gradients -----------------------------------


def _gate_targets(model: nn.Module, kind: str) -> tuple[list[Projection], list[int], int]:
    """(module whose input is gated, units per layer, features per unit) for `kind` ffn | heads."""
    if kind == "ffn":
        slots = _slots(model)[0]
        return [s.down for s in slots], [s.size for s in slots], 1
    if kind == "heads":
        slots = _head_slots(model)
        return [s.out for s in slots], [s.units for s in slots], slots[0].width
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
    columns of the output projection; per input feature of that projection (a neuron: 1, a head: head_dim, a
    key/value group: n_rep * head_dim) the L2 norm over real tokens and the L1 norm of its weight column
    (structured Wanda); and per layer the units' output Gram matrix Q (Q_ij = sum over tokens of <unit i's
    contribution, unit j's contribution> to the projection's output), so that removing the units of z changes
    that output by exactly z^T Q z (squared, summed over the calibration tokens)."""

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
        w = _weight(mod).float()  # (out, in)
        d = per[owner[i]]
        d["g"].append(np.concatenate(grads[i]))
        d["a"].append((abs_sum[i] / tokens).numpy())
        d["wl2"].append(w.reshape(len(w), n, w_).norm(dim=(0, 2)).cpu().numpy())
        d["fl2"].append(sq_sum[i].sqrt().numpy())
        d["wl1"].append(w.abs().sum(0).cpu().numpy())
        w64 = _weight(mod).double().cpu()
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
