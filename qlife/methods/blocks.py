"""Transformer block (layer) removal: which of a model's L blocks to drop, as a QUBO and by the usual baselines.

Removing a block means the model runs without it: its input passes straight on to the next block (the residual
stream with the block's whole update left out), and the saved model holds L - k blocks (its config says how many,
and `qlife_blocks_kept`, which of the original ones), so it reloads through `qlife.loading.load_saved` like any
other saved classifier. Layouts: BERT-like encoders (`encoder.layer`), DistilBERT (`transformer.layer`), Llama /
Qwen2 / Mistral (`layers`), GPT-2 (`h`).

The QUBO (as arXiv 2602.00161 builds it): z_i = 1 when block i is removed,

    E(z) = sum_i c_i z_i + sum_{i<j} (c_ij - c_i - c_j) z_i z_j,   subject to sum(z) = k,

with c_i the increase of the calibration loss (or the KL divergence of the outputs from the full model's) when
block i alone is removed, c_ij when i and j are removed together: exact for k <= 2, a second-order model beyond.
`BlockCalibration.scores()` gives it as `qlife.methods.selection.UnitScores` (importance: c_i), so the k-hot
selectors of qlife.methods.selection solve it (QUBO through the backend layer; its diagonal twin: the top-k of
c_i alone). Baselines: Block Influence (ShortGPT, arXiv 2403.03853: BI_i = 1 - E_tokens[cos(x_in, x_out)], the
k lowest removed) and magnitude (the norm of the projections through which a block writes to the residual; not
for DistilBERT, whose attention layout qlife.methods.pruning does not read).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch import nn

from qlife.methods.pruning import _inputs, _weight, residual_projections
from qlife.methods.selection import UnitScores

# where the blocks live under the base model: BERT-likes, DistilBERT, Llama / Qwen2 / Mistral, GPT-2
_LAYOUTS = ("encoder.layer", "transformer.layer", "layers", "h")
OBJECTIVES = ("loss", "kl")


def block_list(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(owner, attribute, the ModuleList of blocks) of a bare model or one inside a task head."""
    base = getattr(model, "base_model", model)
    for path in _LAYOUTS:
        *up, name = path.split(".")
        owner = base
        for part in up:
            owner = getattr(owner, part, None)
        layers = getattr(owner, name, None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return owner, name, layers
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    raise ValueError("block removal supports BERT-like encoders (encoder.layer), DistilBERT (transformer.layer), "
                     f"Llama / Qwen2 / Mistral (layers) and GPT-2 (h); got model_type {model_type!r} "
                     f"({type(model).__name__})")


def n_blocks(model: nn.Module) -> int:
    return len(block_list(model)[2])


def _checked(model: nn.Module, remove: Iterable[int]) -> list[int]:
    """The blocks kept when `remove` goes (at least one must stay)."""
    n = n_blocks(model)
    gone = sorted({int(i) for i in remove})
    if gone and (gone[0] < 0 or gone[-1] >= n):
        raise ValueError(f"blocks to remove must lie in [0, {n}); got {gone}")
    if len(gone) >= n:
        raise ValueError(f"cannot remove all {n} blocks")
    if getattr(model.config, "scale_attn_by_inverse_layer_idx", False):
        raise ValueError("GPT-2 with scale_attn_by_inverse_layer_idx scales attention by the block's position: a "
                         "block moved by removal would change; block removal refuses it")
    return [i for i in range(n) if i not in gone]


def _config_changes(config, kept: list[int]) -> dict:
    """The config attributes a model of only the `kept` blocks needs (block count, per-block lists cut down)."""
    out = {"num_hidden_layers": len(kept)}
    for attr in ("layer_types", "qlife_attention_heads"):  # per-block lists (Qwen2's attention types, pruned heads)
        value = getattr(config, attr, None)
        if isinstance(value, (list, tuple)) and value:
            out[attr] = [value[i] for i in kept]
    return out


def _layer_indices(block: nn.Module) -> list[nn.Module]:
    """Submodules that index a KV cache by their block's position (`layer_idx`)."""
    return [m for m in block.modules() if isinstance(getattr(m, "layer_idx", None), int)]


def _renumber(blocks: Sequence[nn.Module]) -> list[tuple[nn.Module, int]]:
    """Give each block's attention its new position; returns what to restore."""
    old = []
    for pos, block in enumerate(blocks):
        for m in _layer_indices(block):
            old.append((m, m.layer_idx))
            m.layer_idx = pos
    return old


@contextmanager
def without_blocks(model: nn.Module, remove: Iterable[int]) -> Iterator[nn.Module]:
    """The model with the `remove` blocks taken out for the duration (nothing computed for them; restored after):
    what `remove_blocks` makes permanent, at no copy."""
    kept = _checked(model, remove)
    owner, name, blocks = block_list(model)
    changes = _config_changes(model.config, kept)
    before = {k: getattr(model.config, k) for k in changes}
    setattr(owner, name, nn.ModuleList([blocks[i] for i in kept]))
    old = _renumber([blocks[i] for i in kept])
    for k, v in changes.items():
        setattr(model.config, k, v)
    try:
        yield model
    finally:
        setattr(owner, name, blocks)
        for m, idx in old:
            m.layer_idx = idx
        for k, v in before.items():
            setattr(model.config, k, v)


def remove_blocks(model: nn.Module, remove: Iterable[int]) -> nn.Module:
    """Remove the `remove` blocks for good: the config holds the new block count (and per-block lists cut to the
    kept blocks) and `qlife_blocks_kept`, the kept blocks' indices in the original model (a second removal maps
    through the first), so that a saved copy reloads with its shapes."""
    kept = _checked(model, remove)
    owner, name, blocks = block_list(model)
    original = list(getattr(model.config, "qlife_blocks_kept", None) or range(len(blocks)))
    setattr(owner, name, nn.ModuleList([blocks[i] for i in kept]))
    _renumber([blocks[i] for i in kept])
    for k, v in _config_changes(model.config, kept).items():
        setattr(model.config, k, v)
    model.config.qlife_blocks_kept = [original[i] for i in kept]
    return model


def keep_blocks(model: nn.Module, keep: list[np.ndarray]) -> nn.Module:
    """`remove_blocks` in the pruning kinds' terms: `keep[0]`, the blocks kept (one problem over the whole stack)."""
    if len(keep) != 1:
        raise ValueError(f"blocks are one selection over the whole stack: keep has {len(keep)} entries, expected 1")
    kept = {int(i) for i in np.asarray(keep[0]).ravel()}
    return remove_blocks(model, [i for i in range(n_blocks(model)) if i not in kept])


def block_magnitude_importance(model: nn.Module) -> np.ndarray:
    """Per block: the Frobenius norm of the weights through which it writes to the residual stream (attention
    output and FFN down projection together); the baseline removes the smallest."""
    return np.array([float(torch.sqrt(_weight(o).float().pow(2).sum() + _weight(d).float().pow(2).sum()))
                     for o, d in residual_projections(model)])


# ---- calibration: loss and KL of the model without some blocks, Block Influence -------------------------------


def _rows(model: nn.Module, inputs: dict, target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(logit rows, their targets): a classifier's logits per example against its labels; a causal LM's (no
    labels given) logits per real position against the next real token."""
    logits = model(**inputs).logits.float()
    if target is not None:
        return logits, target.to(logits.device)
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    real = (mask[:, 1:] if mask is not None else torch.ones_like(ids[:, 1:])).bool()
    return logits[:, :-1][real], ids[:, 1:][real]


@torch.no_grad()
def evaluate_blocks(model: nn.Module, batches: Sequence[dict], targets: Sequence[torch.Tensor] | None,
                    remove: Iterable[int] = (), reference: list[torch.Tensor] | None = None) -> dict:
    """Mean cross-entropy, accuracy and (given the full model's log-probabilities `reference`, one tensor per
    batch) mean KL(full || pruned) over the rows (`_rows`) of `batches`, with the `remove` blocks taken out."""
    model.eval()
    device = next(model.parameters()).device
    loss = kl = 0.0
    hits = rows = 0
    with without_blocks(model, remove):
        for b, batch in enumerate(batches):
            logits, y = _rows(model, _inputs(batch, device), None if targets is None else targets[b])
            logp = torch.log_softmax(logits, -1)
            loss += float(nn.functional.nll_loss(logp, y, reduction="sum"))
            hits += int((logits.argmax(-1) == y).sum())
            rows += len(y)
            if reference is not None:
                kl += float((reference[b].exp() * (reference[b] - logp)).sum())
    if rows == 0:
        raise ValueError("no rows to evaluate: the batches are empty (or every attention_mask is zero)")
    return {"loss": loss / rows, "accuracy": hits / rows, "kl": kl / rows if reference is not None else None,
            "rows": rows}


@torch.no_grad()
def reference_logprobs(model: nn.Module, batches: Sequence[dict], targets: Sequence[torch.Tensor] | None
                       ) -> list[torch.Tensor]:
    """The full model's log-probability rows per batch (what `evaluate_blocks` measures KL against)."""
    model.eval()
    device = next(model.parameters()).device
    return [torch.log_softmax(_rows(model, _inputs(b, device), None if targets is None else targets[i])[0], -1)
            for i, b in enumerate(batches)]


@torch.no_grad()
def block_influence(model: nn.Module, batches: Sequence[dict]) -> np.ndarray:
    """ShortGPT's Block Influence per block: 1 - the mean over real tokens of cos(block input, block output)."""
    model.eval()
    device = next(model.parameters()).device
    _, _, blocks = block_list(model)
    sums, tokens = np.zeros(len(blocks)), 0
    seen: dict[int, torch.Tensor] = {}
    mask: list[torch.Tensor | None] = [None]

    def pre(i):
        def f(_mod, args, kwargs):
            seen[i] = args[0] if args else kwargs["hidden_states"]
        return f

    def post(i):
        def f(_mod, _args, _kwargs, out):
            y = out[0] if isinstance(out, tuple) else out
            cos = nn.functional.cosine_similarity(seen[i].float(), y.float(), dim=-1)
            sums[i] += float(cos[mask[0]].sum()) if mask[0] is not None else float(cos.sum())
        return f

    handles = [h for i, blk in enumerate(blocks)
               for h in (blk.register_forward_pre_hook(pre(i), with_kwargs=True),
                         blk.register_forward_hook(post(i), with_kwargs=True))]
    try:
        for batch in batches:
            inputs = _inputs(batch, device)
            m = inputs.get("attention_mask")
            mask[0] = m.bool() if m is not None else None
            tokens += int(m.sum()) if m is not None else inputs["input_ids"].numel()
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return 1.0 - sums / max(tokens, 1)


@dataclass
class BlockCalibration:
    """Measured on calibration batches: the full model's loss, each block's removal cost alone (`single`, (L,))
    and each pair's together (`pair`, (L, L), symmetric, its diagonal the single costs), in loss increase and in
    KL from the full model's outputs; Block Influence per block; the rows (examples or tokens) behind them."""

    base_loss: float
    single: dict[str, np.ndarray]  # objective -> (L,)
    pair: dict[str, np.ndarray]  # objective -> (L, L)
    influence: np.ndarray
    examples: int
    rows: int
    kind: str = "blocks"

    @property
    def n(self) -> int:
        return len(self.influence)

    def scores(self, objective: str = "loss") -> UnitScores:
        """The removal QUBO as UnitScores: h_i = c_i, J_ij = c_ij - c_i - c_j (curvature H = 2 diag(c) + J + J^T,
        no gradient, which `UnitScores.removal_qubo` turns back into h and J); importance c_i."""
        if objective not in OBJECTIVES:
            raise ValueError(f"block objective must be one of {OBJECTIVES}; got {objective!r}")
        c, cc = self.single[objective], self.pair[objective]
        j = cc - c[:, None] - c[None, :]
        np.fill_diagonal(j, 0.0)
        return UnitScores(c.copy(), None, j + np.diag(2.0 * c))

    def energy(self, remove: Iterable[int], objective: str = "loss") -> float:
        """E(z) of removing `remove` (the QUBO's value; exact for one or two blocks)."""
        gone = sorted({int(i) for i in remove})
        s = self.scores(objective)
        return s.loss_increase(np.array([i for i in range(self.n) if i not in gone], dtype=np.int64))


def calibrate_blocks(model: nn.Module, batches: Iterable[dict], targets: Iterable[torch.Tensor] | None = None,
                     pairs: bool = True) -> BlockCalibration:
    """One pass of the full model (its loss, its output log-probabilities, Block Influence), then one pass with
    each block removed and, with `pairs`, one with each pair removed: 1 + L + L(L-1)/2 passes, each without the
    removed blocks' compute. `targets`: a classifier's labels per batch; None: a causal LM (next token)."""
    batches = list(batches)
    targets = None if targets is None else list(targets)
    ref = reference_logprobs(model, batches, targets)
    full = evaluate_blocks(model, batches, targets, (), ref)
    n = n_blocks(model)
    single = {o: np.zeros(n) for o in OBJECTIVES}
    pair = {o: np.zeros((n, n)) for o in OBJECTIVES}
    for remove in [(i,) for i in range(n)] + (list(combinations(range(n), 2)) if pairs and n > 2 else []):
        r = evaluate_blocks(model, batches, targets, remove, ref)
        for o, v in (("loss", r["loss"] - full["loss"]), ("kl", r["kl"])):
            if len(remove) == 1:
                single[o][remove[0]] = v
            else:
                pair[o][remove] = pair[o][remove[::-1]] = v
    for o in OBJECTIVES:
        if not pairs or n <= 2:  # no pair measured: no interaction
            pair[o] = single[o][:, None] + single[o][None, :]
        np.fill_diagonal(pair[o], single[o])
    examples = sum(int(b["input_ids"].shape[0]) for b in batches)
    return BlockCalibration(full["loss"], single, pair, block_influence(model, batches), examples, full["rows"])
