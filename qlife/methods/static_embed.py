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

`teacher_table` builds one before any training, from the teacher `train.model` as it comes (curate's `static`
near-duplicate embedder: stage 5's table comes later, from the fine-tuned teacher), its vectors cached on disk
(`qlife.inference.cache_dir("static")`) under a key of the teacher's files and the settings, so a second run
loads them; the SIF weights are always those of the corpus at hand (`StaticEmbedding.reweighted`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
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
    _ids: WordIds | None = field(default=None, init=False, repr=False, compare=False)  # its word cache

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])

    def encode_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """(N, dims): each document's SIF-weighted mean of its tokens' vectors (step 4 of the module doc)."""
        from scipy.sparse import csr_matrix  # one sparse (N, V) weight matrix times the table: no per-document loop

        V, n = len(self.weights), len(ids)
        lens = np.fromiter((min(len(d), self.max_length) for d in ids), dtype=np.int64, count=n)
        flat = np.fromiter(chain.from_iterable(d[: self.max_length] for d in ids), dtype=np.int64,
                           count=int(lens.sum()))
        rows = np.repeat(np.arange(n), lens)
        ok = (flat >= 0) & (flat < V)
        flat, rows = flat[ok], rows[ok]
        W = csr_matrix((self.weights[flat], (rows, flat)), shape=(n, V), dtype=np.float32)
        total = np.asarray(W.sum(1), dtype=np.float32).ravel()
        out = np.asarray(W @ self.vectors, dtype=np.float32).reshape(n, self.dims)
        has = total > 0
        out[has] /= total[has, None]
        out[~has] = 0.0
        return out

    def encode_texts(self, texts: Iterable[str]) -> np.ndarray:
        return self.encode_ids(self.token_ids(texts))

    def token_ids(self, texts: Iterable[str]) -> list[list[int]]:
        """The tokenizer's ids of each text (special tokens included: they weigh 0), truncated at max_length."""
        if self._ids is None:
            self._ids = WordIds(self._tokenizer())
        return self._ids(texts)

    def reweighted(self, corpus_ids: Iterable[Sequence[int]], a: float = 1e-3) -> StaticEmbedding:
        """The same table with SIF weights (step 3) of another corpus: tokens without a vector (weight 0) stay 0."""
        weights = np.where(self.weights > 0, sif_weights(corpus_ids, len(self.weights), a), 0).astype(np.float32)
        out = StaticEmbedding(self.vectors, weights, self.max_length, self.tokenizer_file)
        out._tok, out._ids = self._tok, self._ids
        return out

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
            self.tokenizer_file, self._tok, self._ids = str(folder / TOKENIZER), None, None
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


def _encode(tokenizer, texts: list[str], **kw) -> list[list[int]]:
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch  # fast: no char offsets
    return [e.ids for e in encode(texts, **kw)] if texts else []


class WordIds:
    """A `tokenizers.Tokenizer`'s ids of many texts, each distinct word tokenized once.

    Exact for a BERT-style tokenizer (BertNormalizer, BertPreTokenizer: lowercasing, splitting on whitespace and
    punctuation, WordPiece within a word) on printable ASCII text: there the ids of a text are its space-separated
    words' ids, concatenated, truncated and wrapped in the special tokens as the tokenizer's truncation and
    post-processor say. Any other tokenizer, or text, goes through the tokenizer whole (tests check both agree)."""

    def __init__(self, tokenizer):
        from tokenizers import normalizers, pre_tokenizers

        self.tokenizer = tokenizer
        self.word_split = (isinstance(tokenizer.normalizer, normalizers.BertNormalizer)
                           and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer))
        trunc = tokenizer.truncation
        self.max_length = int(trunc["max_length"]) if trunc else None
        if tokenizer.padding or (trunc and (trunc.get("direction", "right") != "right" or trunc.get("stride", 0))):
            self.word_split = False
        full, plain = tokenizer.encode("a").ids, tokenizer.encode("a", add_special_tokens=False).ids
        at = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
        if at is None:
            self.word_split = False
        else:
            self.prefix, self.suffix = full[:at], full[at + len(plain):]
        self.words: dict[str, list[int] | None] = {}  # None: a word the truncation may have cut (whole text, then)

    def __call__(self, texts: Iterable[str]) -> list[list[int]]:
        texts = list(texts)
        if not self.word_split:
            return _encode(self.tokenizer, texts)
        words = self.words
        fast = [t.isascii() and t.isprintable() for t in texts]
        new = sorted({w for t, f in zip(texts, fast) if f for w in t.split(" ") if w and w not in words})
        for w, ids in zip(new, _encode(self.tokenizer, new, add_special_tokens=False)):
            words[w] = ids if self.max_length is None or len(ids) < self.max_length else None
        room = None if self.max_length is None else max(self.max_length - len(self.prefix) - len(self.suffix), 0)
        out: list[list[int] | None] = []
        for t, f in zip(texts, fast):
            parts = [words[w] for w in t.split(" ") if w] if f else [None]
            if any(p is None for p in parts):
                out.append(None)
                continue
            ids = [i for p in parts for i in p]
            out.append(self.prefix + (ids if room is None else ids[:room]) + self.suffix)
        slow = [i for i, ids in enumerate(out) if ids is None]
        for i, ids in zip(slow, _encode(self.tokenizer, [texts[i] for i in slow])):
            out[i] = ids
        return out


def token_ids(tokenizer, texts: Iterable[str]) -> list[list[int]]:
    """Each text's ids under a `tokenizers.Tokenizer` (its truncation and post-processing): `WordIds`."""
    return WordIds(tokenizer)(texts)


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


TABLE_CACHE_VERSION = 1  # bump when distill_static's computation of the vectors changes


def teacher_table(name: str, pooling: str, texts: Sequence[str], dims: int = 128, vocabulary: str = "corpus",
                  sif_a: float = 1e-3, max_length: int = 64, batch_size: int = 1024,
                  cache: bool = True) -> tuple[StaticEmbedding, dict]:
    """A static table of the teacher `name` (as it comes: no fine-tuning) and what it took: steps 1-3 of the
    module doc, SIF weights of `texts`. Its vectors are cached (`cache`) under a key of the teacher's files, the
    pooling, dims and vocabulary (with `vocabulary="corpus"`, also the corpus's set of tokens: a new token
    rebuilds it); a cached table is loaded, not rebuilt. Returns (table, info: kind, vocabulary, dims, tokens
    with a vector, build / load seconds, cached, cache folder)."""
    import hashlib
    import os
    import shutil
    import tempfile
    import time

    from tokenizers import Tokenizer

    from qlife.inference import cache_dir, files_fingerprint
    from qlife.models import cached_encoder, load_tokenizer, resolve_model

    if vocabulary not in ("full", "corpus"):
        raise ValueError(f"vocabulary must be 'full' or 'corpus', got {vocabulary!r}")
    t0 = time.perf_counter()
    tok = load_tokenizer(name)
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.enable_truncation(max_length)
    backend.no_padding()
    words = WordIds(backend)
    ids = words(texts)
    key = {"teacher": files_fingerprint(resolve_model(name)), "pooling": pooling, "dims": dims,
           "vocabulary": vocabulary, "version": TABLE_CACHE_VERSION}
    if vocabulary == "corpus":
        special = set(tok.all_special_ids or [])
        tokens = sorted({int(t) for d in ids for t in d} - special)
        key["tokens"] = hashlib.blake2b(np.asarray(tokens, dtype=np.int64).tobytes(), digest_size=16).hexdigest()
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=16).hexdigest()
    folder = cache_dir("static") / digest
    cached = cache and (folder / TABLE).exists() and (folder / META).exists()
    if not cached:
        model, _ = cached_encoder(name, pooling)
        table = distill_static(model, tok, ids, dims, vocabulary, sif_a, max_length, batch_size)
        if cache:  # written beside, renamed in: a concurrent run keeps whichever lands first
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
            table.save(tmp, tok)
            (tmp / "key.json").write_text(json.dumps({**key, "teacher_name": name}, indent=1))
            try:
                os.replace(tmp, folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
    if cache:
        table = StaticEmbedding.load(folder)
    table.max_length = max_length
    table._tok, table._ids = backend, words  # the same tokenizer (truncation at max_length) and its word cache
    table = table.reweighted(ids, sif_a)
    info = {"kind": "static", "vocabulary": vocabulary, "dims": table.dims,
            "table_tokens": int((table.weights > 0).sum()), "table_rows": len(table.weights),
            "cached": bool(cached), ("load_s" if cached else "build_s"): round(time.perf_counter() - t0, 3),
            "cache": str(folder) if cache else None}
    return table, info
