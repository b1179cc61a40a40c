"""Sequence classifiers: load one with a classification head (linear, mlp or the hybrid quantum head), and
rebuild a saved one, pruned attention and tensor-network / low-rank layers included: `load_teacher` is the
classifier branch of `qlife.loading.load_saved`, the one loader deploy, distill, serving and the registry use for
every saved kind (teacher, pruned, compressed, students, the static table).

Where a classifier's parts are, for the training code above it (qlife.methods.finetune, qlife.methods.lora):
`head_module` / `quantum_head_of` (its head) and `backbone` (embeddings and transformer layers).

Apart from qlife.models (names, tokenizers, embedding) so that the stages that only embed text do not depend
on the heads' code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from qlife.methods.tensornet import rebuild_compressed
from qlife.models import load_tokenizer, resolve_model, set_pooling

if TYPE_CHECKING:
    from qlife.methods.qhead import QuantumHead

HEADS = ("linear", "mlp", "quantum")  # classification heads (search.space.head / train.head)
MLP_HIDDEN = 256  # the mlp head's hidden width
HEAD_ATTRS = ("classifier", "score")  # where the head lives: encoders (BERT-likes) | decoders (Llama, GPT-2, ...)


def head_attr(model) -> str:
    """The attribute that holds a sequence classifier's head. A decoder's head (`score`) sees every token's hidden
    state and the model keeps the last real token's logits: per-token heads give the same result as pooling first."""
    for name in HEAD_ATTRS:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ValueError(f"{type(model).__name__} has no classification head ({' or '.join(HEAD_ATTRS)})")


def head_module(model):
    """The head module of a sequence classifier (None for a model without one)."""
    try:
        return getattr(model, head_attr(model))
    except ValueError:
        return None


def quantum_head_of(model: torch.nn.Module) -> QuantumHead | None:
    """The QuantumHead of a classifier (its head: `classifier`, or `score` for a decoder) or the module itself;
    None when it has none."""
    from qlife.methods.qhead import QuantumHead  # lazy: see set_head

    if isinstance(model, QuantumHead):
        return model
    head = head_module(model)
    return head if isinstance(head, QuantumHead) else None


def backbone(model) -> tuple[list[torch.nn.Module], torch.nn.ModuleList]:
    """(embedding modules, transformer layers) of an encoder (BERT-likes: embeddings, encoder.layer; DistilBERT:
    embeddings, transformer.layer) or a decoder (Llama, Qwen2, Mistral: embed_tokens, layers; GPT-2: wte and wpe,
    h), bare or inside a sequence classifier."""
    base = getattr(model, "base_model", model)
    for owner, name in ((getattr(base, "encoder", None), "layer"), (getattr(base, "transformer", None), "layer"),
                        (base, "layers"), (base, "h")):
        layers = getattr(owner, name, None)
        if isinstance(layers, torch.nn.ModuleList):
            break
    else:
        raise ValueError(f"no transformer layers found in {type(model).__name__}")
    embeds = [m for n in ("embeddings", "embed_tokens", "wte", "wpe") if isinstance(m := getattr(base, n, None),
                                                                                   torch.nn.Module)]
    return embeds, layers


def set_head(model, kind: str, hidden: int = MLP_HIDDEN, quantum: dict | None = None):
    """Give a sequence classifier the head `kind`: linear (the model's own: Linear on the pooled output), mlp
    (Linear(h, hidden) -> GELU -> Dropout -> Linear(hidden, labels), freshly initialised) or quantum
    (qlife.methods.qhead.QuantumHead with the QuantumHeadConfig fields in `quantum`). Recorded in the model
    config (`qlife_head`, `qlife_head_hidden`, `qlife_quantum_head`) so that `load_teacher` rebuilds it from a
    saved directory."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; known: {list(HEADS)}")
    model.config.qlife_head = kind
    if kind == "linear":
        return model
    attr = head_attr(model)
    old = getattr(model, attr)
    if not isinstance(old, torch.nn.Linear):
        raise ValueError(f"head {kind} needs a model whose `{attr}` is one Linear layer; "
                         f"{type(model).__name__} has {type(old).__name__}")
    in_dim, n_out = old.in_features, old.out_features
    if kind == "quantum":
        # lazy: the quantum head brings qiskit (+0.35 s, +48 MB peak RSS), which a classifier with a classical head,
        # served through qlife.serving, does not need
        from qlife.methods.qhead import QuantumHead, QuantumHeadConfig

        cfg = QuantumHeadConfig.from_dict(quantum or {})
        setattr(model, attr, QuantumHead(in_dim, n_out, cfg))
        model.config.qlife_quantum_head = cfg.to_dict()
        return model
    torch.manual_seed(0)  # the same initial head for every evaluation of a config
    p = getattr(model.config, "hidden_dropout_prob", 0.1)
    setattr(model, attr, torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), torch.nn.GELU(),
                                           torch.nn.Dropout(p), torch.nn.Linear(hidden, n_out)))
    model.config.qlife_head_hidden = hidden
    return model


def _head_options(config) -> dict:
    """set_head's keyword arguments that rebuild the head a saved config records."""
    return {"hidden": getattr(config, "qlife_head_hidden", MLP_HIDDEN),
            "quantum": getattr(config, "qlife_quantum_head", None)}


def _quiet_from_pretrained(path: str, **kwargs):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is expected here
    try:
        return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def load_classifier(name: str, num_labels: int | None = None, label_names: list[str] | None = None,
                    head: str = "linear", hidden: int = MLP_HIDDEN, quantum: dict | None = None, seed: int = 0,
                    pooling: str = "auto"):
    """A sequence classifier; a bare encoder or decoder gets a freshly initialised head of `num_labels` (of kind
    `head`; `hidden` for mlp, `quantum` the QuantumHeadConfig fields for quantum), initialised from `seed`: not
    from torch's global RNG, whose state depends on what ran before in the process (a search's first proxy scored
    0.537 and 0.644 in two runs of the same params, and a parallel worker runs the evaluations in another order).
    A model without a pad token id (decoders) gets its tokenizer's (`qlife.models.load_tokenizer`: EOS), which
    the classifier needs to find each text's last token; `pooling` is recorded in the config."""
    torch.manual_seed(seed)
    kwargs = {}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    model = _quiet_from_pretrained(resolve_model(name), **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = load_tokenizer(name).pad_token_id
    return set_head(set_pooling(model, pooling), head, hidden, quantum)


def resize_heads(model, counts: list[int]):
    """Give a freshly built model `counts[i]` attention units in layer i: the shapes of a model whose units
    qlife.methods.pruning.prune_heads removed (a unit is a head of a BERT-like encoder or GPT-2, a key/value group
    with its query heads of Llama / Qwen2 / Mistral; head size unchanged), before its saved weights are loaded.
    Built by pruning the fresh model to its first `counts[i]` units: the values are placeholders the load
    replaces."""
    from qlife.methods.pruning import head_counts, prune_heads  # lazy: pruning imports transformers (~1.5 s)

    layers = len(head_counts(model))
    if len(counts) != layers:
        raise ValueError(f"qlife_attention_heads has {len(counts)} entries for {layers} layers")
    return prune_heads(model, [np.arange(int(c)) for c in counts])


def load_teacher(path: str | Path):
    """A fine-tuned classifier saved by train or deploy, with the head it was trained with, and, for a model
    whose attention heads were pruned (`config.qlife_attention_heads`), its smaller attention layers, and for
    a compressed one (`config.qlife_compressed`), its MPO / low-rank layers."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(path))
    kind = getattr(config, "qlife_head", "linear")
    counts = getattr(config, "qlife_attention_heads", None)
    compressed = getattr(config, "qlife_compressed", None)  # MPO / SVD layers (qlife.methods.tensornet)
    state = {}
    if counts is not None or compressed or kind != "linear":
        for f in sorted(Path(path).glob("*.safetensors")):
            state.update(load_file(str(f)))
    if counts is not None or compressed:  # shapes from_pretrained cannot build: build, reshape, load every weight
        model = AutoModelForSequenceClassification.from_config(config)
        if counts is not None:
            resize_heads(model, list(counts))
        if compressed:
            rebuild_compressed(model, compressed)
        if kind != "linear":
            set_head(model, kind, **_head_options(config))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"{path}: saved weights do not fit the pruned / compressed model (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
        return model.eval()
    model = _quiet_from_pretrained(str(path))
    if kind != "linear":
        set_head(model, kind, **_head_options(model.config))
        attr = head_attr(model)
        head = {k.removeprefix(f"{attr}."): v for k, v in state.items() if k.startswith(f"{attr}.")}
        missing = set(getattr(model, attr).state_dict()) - set(head)
        if missing:
            raise ValueError(f"{path}: the saved {kind} head lacks {sorted(missing)}")
        getattr(model, attr).load_state_dict(head)
    return model.eval()
