"""Static token embeddings distilled from the teacher: the documented computation, the saved table, serving."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    from transformers import AutoModel

    from qlife.models import load_tokenizer

    return AutoModel.from_pretrained(tiny_teacher).eval(), load_tokenizer(tiny_teacher)


TEXTS = ["the film is a delight", "a dull , tedious film", "delight delight", "the the the"]


def _ids(tok, texts):
    return [tok(t, truncation=True, max_length=64)["input_ids"] for t in texts]


def test_features_equal_the_documented_computation(teacher):
    from qlife.methods.static_embed import distill_static

    model, tok = teacher
    corpus = _ids(tok, TEXTS)
    emb = distill_static(model, tok, corpus, dims=8, vocabulary="corpus", sif_a=1e-2)
    # by hand: token vectors from [CLS] t [SEP], PCA over the corpus's ordinary tokens, SIF weights, weighted mean
    special = set(tok.all_special_ids)
    vocab = sorted({t for d in corpus for t in d if t not in special})
    with torch.no_grad():
        h = np.stack([model(input_ids=torch.tensor([[tok.cls_token_id, t, tok.sep_token_id]]),
                            output_hidden_states=True).hidden_states[-1][0].mean(0).numpy() for t in vocab])
    c = h - h.mean(0)
    vt = np.linalg.svd(c, full_matrices=False)[2][:8]
    hand = c @ vt.T
    # a principal axis is defined up to its sign: align each of ours to the table's, once for all documents
    hand *= np.sign((hand * emb.vectors[vocab]).sum(0))
    proj = dict(zip(vocab, hand))
    counts = {}
    for d in corpus:
        for t in d:
            counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values())
    for text, doc in zip(TEXTS, corpus):
        toks = [t for t in doc if t not in special]
        w = np.array([1e-2 / (1e-2 + counts[t] / total) for t in toks])
        want = (w[:, None] * np.stack([proj[t] for t in toks])).sum(0) / w.sum()
        got = emb.encode_ids([doc])[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=text)
    # special tokens carry no weight; an all-special or unseen document is the zero vector
    assert (emb.weights[list(special)] == 0).all()
    assert not emb.encode_ids([[tok.cls_token_id, tok.sep_token_id]]).any()


def test_the_table_is_deterministic(teacher):
    from qlife.methods.static_embed import distill_static

    model, tok = teacher
    corpus = _ids(tok, TEXTS)
    emb = distill_static(model, tok, corpus, dims=4, vocabulary="corpus")
    a = distill_static(model, tok, corpus, dims=4, vocabulary="corpus")
    np.testing.assert_array_equal(emb.encode_ids(corpus), a.encode_ids(corpus))  # deterministic


def test_saved_table_serves_texts_without_the_teacher(teacher, tmp_path, monkeypatch):
    from qlife.methods.static_embed import StaticEmbedding, distill_static

    model, tok = teacher
    corpus = _ids(tok, TEXTS)
    emb = distill_static(model, tok, corpus, dims=6, vocabulary="full")
    assert emb.vectors.shape == (tok.vocab_size, 6)
    emb.save(tmp_path, tok)
    import transformers

    monkeypatch.setattr(transformers, "AutoModel", None)  # nothing of the teacher is needed any more
    back = StaticEmbedding.load(tmp_path)
    np.testing.assert_array_equal(back.encode_texts(TEXTS), emb.encode_ids(corpus))


def test_unseen_tokens_weigh_one_and_bad_vocabulary_is_refused(teacher):
    from qlife.methods.static_embed import distill_static, sif_weights

    w = sif_weights([[5, 5, 6]], 10, a=0.5)
    assert w[7] == 1.0 and w[5] < w[6] < 1.0
    model, tok = teacher
    with pytest.raises(ValueError, match="vocabulary"):
        distill_static(model, tok, [[1, 2]], vocabulary="some")
