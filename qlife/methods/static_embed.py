"""Static token embeddings distilled from the teacher: a student input that needs no encoder at serving time.

The model2vec idea, written with the teacher's own vocabulary and tokenizer:

1. token vectors: every token t of the vocabulary (or of the training corpus, `vocabulary="corpus"`) is run
   through the teacher alone, as a one-token document: [CLS] t [SEP] for an encoder, <s> t for a decoder (the
   special tokens its tokenizer adds); its vector is the teacher's pooling of the last hidden state (the mean
   over those positions, or for a decoder pooling the last token, t's own);
2. PCA (scikit-learn's, full SVD): the token vectors are centred and projected on their first `dims` principal
   components (signs as scikit-learn fixes them: each component's largest |loading| positive);
3. weights: SIF (Arora et al. 2017), w_t = a / (a + p(t)) with p(t) the token's frequency in the training
   corpus (0 for a token it never saw, so w_t = 1): frequent tokens count less;
4. a document's features: x = sum_t w_t v_t / sum_t w_t over its tokens (the tokenizer's ids, truncated at
   `max_length`), special tokens and tokens without a vector left out; a document with none of its tokens
   left is the zero vector.

Serving it is a table lookup and a mean: `StaticEmbedding.encode_texts` needs the tokenizer
(`tokenizers`, no transformers model) and the (V, dims) table, nothing of the teacher.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

TABLE = "static.safetensors"
META = "static.json"
TOKENIZER = "tokenizer.json"


@dataclass
class StaticEmbedding:
    vectors: np.ndarray  # (V, dims) float32; rows of tokens without a vector are zero
    weights: np.ndarray  # (V,) float32 SIF weights; 0: special token or token without a vector
    max_length: int = 64
    tokenizer_file: str | None = None  # tokenizer.json beside the table, for encode_texts
    _tok: object | None = field(default=None, init=False, repr=False, compare=False)  # loaded on first use

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])

    def encode_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """(N, dims): each document's SIF-weighted mean of its tokens' vectors (step 4 of the module doc)."""
        out = np.zeros((len(ids), self.dims), dtype=np.float32)
        V = len(self.weights)
        for i, doc in enumerate(ids):
            t = np.asarray([j for j in doc[: self.max_length] if 0 <= j < V], dtype=np.int64)
            w = self.weights[t] if len(t) else np.zeros(0, dtype=np.float32)
            if w.sum() > 0:
                out[i] = (w[:, None] * self.vectors[t]).sum(0) / w.sum()
        return out

    def encode_texts(self, texts: Iterable[str]) -> np.ndarray:
        return self.encode_ids([e.ids for e in self._tokenizer().encode_batch(list(texts))])

    def _tokenizer(self):
        if self._tok is None:
            if not self.tokenizer_file:
                raise ValueError("this static embedding was built without a tokenizer file: use encode_ids")
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(self.tokenizer_file)
            tok.enable_truncation(self.max_length)
            tok.no_padding()
            self._tok = tok
        return self._tok

    def save(self, folder: str | Path, tokenizer=None) -> None:
        """The table (safetensors), its metadata and the fast tokenizer's tokenizer.json into `folder`."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": np.ascontiguousarray(self.vectors, dtype=np.float32),
                   "weights": np.ascontiguousarray(self.weights, dtype=np.float32)}, str(folder / TABLE))
        (folder / META).write_text(json.dumps({"kind": "static", "dims": self.dims, "vocabulary": len(self.weights),
                                               "max_length": self.max_length, "tokenizer": TOKENIZER}))
        if tokenizer is not None:
            backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
            backend.save(str(folder / TOKENIZER))
            self.tokenizer_file, self._tok = str(folder / TOKENIZER), None
        elif self.tokenizer_file and Path(self.tokenizer_file) != folder / TOKENIZER:
            (folder / TOKENIZER).write_bytes(Path(self.tokenizer_file).read_bytes())

    @classmethod
    def load(cls, folder: str | Path) -> StaticEmbedding:
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = json.loads((folder / META).read_text())
        table = load_file(str(folder / TABLE))
        tok = folder / meta.get("tokenizer", TOKENIZER)
        return cls(table["vectors"], table["weights"], int(meta["max_length"]), str(tok) if tok.exists() else None)


def wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text ([CLS] / [SEP], <s> / nothing, ...)."""
    probe = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("a"))
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(probe) + 1):
        if full[i:i + len(probe)] == probe:
            return full[:i], full[i + len(probe):]
    return [], []


@torch.no_grad()
def token_vectors(model, token_ids: np.ndarray, prefix: Sequence[int] = (), suffix: Sequence[int] = (),
                  batch_size: int = 1024) -> np.ndarray:
    """(len(token_ids), hidden): the teacher's pooled last hidden state (`qlife.models.resolve_pooling`) on
    prefix t suffix. `model` is a Hugging Face encoder, decoder or sequence classifier."""
    from qlife.models import pool, resolve_pooling

    model.eval()
    how = resolve_pooling(model.config)
    out = []
    for i in range(0, len(token_ids), batch_size):
        t = torch.as_tensor(token_ids[i:i + batch_size], dtype=torch.long)
        ids = torch.cat([torch.as_tensor(list(prefix), dtype=torch.long).expand(len(t), -1), t[:, None],
                         torch.as_tensor(list(suffix), dtype=torch.long).expand(len(t), -1)], 1)
        res = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        out.append(pool(res.hidden_states[-1].float(), torch.ones_like(ids), how).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def sif_weights(corpus_ids: Iterable[Sequence[int]], vocab_size: int, a: float = 1e-3) -> np.ndarray:
    """w_t = a / (a + p(t)), p(t) the token's relative frequency in `corpus_ids` (0 if unseen: w_t = 1)."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for doc in corpus_ids:
        np.add.at(counts, np.asarray(doc, dtype=np.int64), 1)
    p = counts / max(counts.sum(), 1.0)
    return (a / (a + p)).astype(np.float32)


def distill_static(model, tokenizer, corpus_ids: Sequence[Sequence[int]], dims: int = 64,
                   vocabulary: str = "full", sif_a: float = 1e-3, max_length: int = 64,
                   batch_size: int = 1024) -> StaticEmbedding:
    """Steps 1-3 of the module doc. `corpus_ids`: the training documents' token ids (SIF frequencies and,
    with vocabulary "corpus", the only tokens given a vector)."""
    from sklearn.decomposition import PCA  # fitting only: serving a saved table needs no scikit-learn

    if vocabulary not in ("full", "corpus"):
        raise ValueError(f"vocabulary must be 'full' or 'corpus', got {vocabulary!r}")
    V = int(getattr(tokenizer, "vocab_size", None) or model.config.vocab_size)
    V = max(V, len(tokenizer)) if hasattr(tokenizer, "__len__") else V
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    if vocabulary == "full":
        ids = np.arange(V)
    else:
        ids = np.unique(np.concatenate([np.asarray(d, dtype=np.int64) for d in corpus_ids] or [np.zeros(0, int)]))
    ids = np.asarray([i for i in ids if i not in special and i < V], dtype=np.int64)
    if len(ids) < 2:
        raise ValueError(f"static embedding: {len(ids)} tokens to embed; the corpus has no ordinary tokens")
    h = token_vectors(model, ids, *wrapping(tokenizer), batch_size=batch_size).astype(np.float64)
    k = min(dims, h.shape[1], len(ids))
    vectors = np.zeros((V, k), dtype=np.float32)
    vectors[ids] = PCA(k, svd_solver="full").fit_transform(h).astype(np.float32)
    weights = np.zeros(V, dtype=np.float32)
    weights[ids] = sif_weights(corpus_ids, V, sif_a)[ids]
    return StaticEmbedding(vectors, weights, max_length)
