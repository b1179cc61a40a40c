"""Text embedders and pair overlap measures.

- TF-IDF (sublinear tf, word 1-2 grams) reduced by truncated SVD, rows L2-normalised: `tfidf_svd_embed(texts,
  dim, seed)` embeds one set; `TfidfSvdEmbedder(dim, seed).fit(ref).transform(new)` fits on one set and projects
  another. Output is always (n, dim) float64; when
  the vocabulary or the corpus is smaller than `dim`, the missing components are zero columns. Fast and
  lexical: on short texts its low-rank cosines join pairs that share few words.
- `encoder_embed(model, tokenizer, texts, max_length)`: a pretrained encoder's (or decoder's) pooled last hidden
  state (mean, or the last token's: `qlife.models.resolve_pooling`),
  rows L2-normalised, float64 (what SemDeDup uses: embeddings from a pretrained model); `embed_shard` the same
  for a (model name, max_length, texts) shard, the model cached per process (a parallel worker's unit of work).
- `word_jaccard(a, b)`, `tfidf_pair_cosine(texts, a, b)`: lexical overlap of given pairs, to judge removals
  where no ground truth exists.
Used by stage 1 (curate: SemDeDup's embeddings, and the dedup report's overlap of removed pairs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from qlife.arrays import unit_rows  # all-zero rows (no known words, a zero pooling) stay zero


class TfidfSvdEmbedder:
    """TF-IDF + truncated SVD fitted on one corpus, applicable to any other."""

    def __init__(self, dim: int = 64, seed: int = 0):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed
        self.vectorizer: TfidfVectorizer | None = None
        self.svd: TruncatedSVD | None = None

    def fit(self, texts: list[str]) -> TfidfSvdEmbedder:
        if len(texts) == 0:
            raise ValueError("cannot fit an embedder on no texts")
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float64)
        tfidf = self.vectorizer.fit_transform(texts)
        self.svd = None
        if tfidf.shape[1] > self.dim:  # else the vocabulary fits in dim: keep TF-IDF exactly
            k = min(self.dim, tfidf.shape[0])  # rank is at most the number of documents
            with np.errstate(invalid="ignore", divide="ignore"):  # explained variance of a 1-doc corpus
                self.svd = TruncatedSVD(k, algorithm="randomized", random_state=self.seed).fit(tfidf)
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        if self.vectorizer is None:
            raise RuntimeError("TfidfSvdEmbedder.transform called before fit")
        tfidf = self.vectorizer.transform(texts)
        Z = self.svd.transform(tfidf) if self.svd is not None else tfidf.toarray()
        out = np.zeros((tfidf.shape[0], self.dim))
        out[:, : Z.shape[1]] = Z
        return unit_rows(out)

    def fit_transform(self, texts: list[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)


def tfidf_svd_embed(texts: list[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """(n, dim) L2-normalised TF-IDF + SVD embeddings of `texts`, fitted on `texts` themselves."""
    return TfidfSvdEmbedder(dim, seed).fit_transform(texts)


def encoder_embed(model, tokenizer, texts: Sequence[str], max_length: int = 64, batch_size: int = 32
                  ) -> np.ndarray:
    """(n, hidden) float64 unit rows: pooled last hidden states of a Hugging Face encoder or decoder.

    Texts are batched in order of length (`encode_texts`: less padding) and returned in input order. Rows that
    pool to zero stay zero.
    """
    from qlife.models import encode_texts  # torch / transformers only when this embedder is used

    texts = list(texts)
    if not texts:
        return np.zeros((0, int(model.config.hidden_size)))
    pooled, _ = encode_texts(model, tokenizer, texts, max_length=max_length, batch_size=batch_size, desc="embed")
    return unit_rows(pooled.astype(np.float64))


def embed_shard(job: tuple) -> np.ndarray:
    """One shard (model name, max_length, texts, pooling[, runtime, precision]) -> `encoder_embed` rows, the model
    loaded once per process (`qlife.models.cached_encoder`; runtime / precision: `qlife.inference`, default torch
    float32): the unit of `qlife.parallel` work of curate's teacher embedder."""
    from qlife.models import cached_encoder

    name, max_length, texts, pooling, *how = job
    model, tokenizer = cached_encoder(name, pooling, *how)
    return encoder_embed(model, tokenizer, texts, max_length=max_length)


_WORD = re.compile(r"\w+")


def word_set(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def word_jaccard(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """(m,) Jaccard of the casefolded word sets of each pair (a[i], b[i]); 1.0 for two empty texts."""
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        sx, sy = word_set(x), word_set(y)
        out[i] = len(sx & sy) / len(sx | sy) if sx | sy else 1.0
    return out


def tfidf_pair_cosine(texts: Sequence[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) cosine of pairs (texts[a[i]], texts[b[i]]) under plain TF-IDF (sublinear tf, word 1-2 grams, no
    SVD), fitted on `texts`: how much wording a pair really shares. The document frequencies are counted text by
    text (no corpus-wide matrix: memory is the vocabulary's), and only the pairs' texts are vectorised: the values
    of scikit-learn's TfidfVectorizer fitted on `texts`."""
    from collections import Counter

    from scipy.sparse import diags
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        return np.zeros(0)
    analyse = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    df: Counter = Counter()
    for t in texts:
        df.update(set(analyse(t)))
    if not df:  # no word at all in the corpus
        return np.zeros(len(a))
    terms = sorted(df)
    idf = np.log((len(texts) + 1) / (np.array([df[t] for t in terms], dtype=np.float64) + 1)) + 1
    del df
    rows = np.unique(np.concatenate([a, b]))
    counts = CountVectorizer(ngram_range=(1, 2), vocabulary={t: i for i, t in enumerate(terms)})
    T = counts.transform([texts[i] for i in rows]).astype(np.float64)
    np.log(T.data, T.data)
    T.data += 1.0
    T = normalize(T @ diags(idf), norm="l2")
    pa, pb = np.searchsorted(rows, a), np.searchsorted(rows, b)
    return np.asarray(T[pa].multiply(T[pb]).sum(axis=1)).ravel()
