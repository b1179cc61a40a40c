"""Ground truth of the built-in corpus: determinism, sizes, planted copies, learnability, live drift."""

from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from qlife.data.generator import GeneratedCorpus, generate_corpus
from qlife.data.text import normalize_text


@pytest.fixture(scope="module")
def corpus() -> GeneratedCorpus:
    return generate_corpus(seed=0)


@pytest.fixture(scope="module")
def tfidf(corpus):
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
    X = vec.fit_transform([d["text"] for d in corpus.docs])
    return X, {d["id"]: i for i, d in enumerate(corpus.docs)}


def test_deterministic_for_a_seed():
    a, b = generate_corpus(seed=3, n_docs=400, live_size=40), generate_corpus(seed=3, n_docs=400, live_size=40)
    assert a == b
    assert generate_corpus(seed=4, n_docs=400, live_size=40).docs != a.docs


def test_live_size_does_not_change_the_corpus():
    a, b = generate_corpus(seed=1, n_docs=300, live_size=20), generate_corpus(seed=1, n_docs=300, live_size=50)
    assert a.docs == b.docs and a.near_duplicates == b.near_duplicates


def test_sizes_fractions_and_ids(corpus):
    assert len(corpus.docs) == 3000 and len(corpus.label_names) == 4
    assert len(corpus.exact_duplicates) >= 0.05 * 3000 and len(corpus.near_duplicates) >= 0.05 * 3000
    assert set(corpus.exact_duplicates).isdisjoint(corpus.near_duplicates)
    ids = [d["id"] for d in corpus.docs] + [d["id"] for w in corpus.live.values() for d in w]
    assert len(ids) == len(set(ids))
    assert corpus.docs[0]["id"] == "doc-000000" and corpus.live["window-001"][1]["id"] == "live-001-0001"
    for d in corpus.docs + corpus.live["window-001"]:
        assert set(d) == {"id", "text", "label"} and 0 <= d["label"] < 4
    assert {len(w) for w in corpus.live.values()} == {400}
    assert corpus.live_drift == {"window-000": False, "window-001": True}


def test_documents_look_like_text(corpus):
    lengths = [len(d["text"].split()) for d in corpus.docs]
    assert 18 <= min(lengths) and max(lengths) <= 50 and 25 <= np.mean(lengths) <= 40


def test_label_balance(corpus):
    counts = Counter(d["label"] for d in corpus.docs)
    assert all(abs(c - 750) < 75 for c in counts.values())


def test_exact_copies_normalise_to_the_original(corpus):
    text = {d["id"]: d["text"] for d in corpus.docs}
    for copy, orig in corpus.exact_duplicates.items():
        assert normalize_text(text[copy]) == normalize_text(text[orig])


def test_near_copies_are_paraphrases(corpus, tfidf):
    X, pos = tfidf
    text = {d["id"]: d["text"] for d in corpus.docs}
    cos = []
    for copy, orig in corpus.near_duplicates.items():
        assert normalize_text(text[copy]) != normalize_text(text[orig])
        cos.append((X[pos[copy]] @ X[pos[orig]].T).toarray()[0, 0])
    assert min(cos) >= 0.7 and 0.75 <= np.median(cos) <= 0.95


def test_distinct_documents_are_distinct(corpus, tfidf):
    X, pos = tfidf
    planted = set(corpus.exact_duplicates) | set(corpus.near_duplicates)
    base = [pos[d["id"]] for d in corpus.docs if d["id"] not in planted][:1500]
    assert len({normalize_text(corpus.docs[i]["text"]) for i in base}) == len(base)
    S = (X[base] @ X[base].T).toarray()
    np.fill_diagonal(S, 0)
    assert S.max() < 0.7 and np.median(S.max(1)) < 0.45


def test_topics_learnable_but_not_trivial(corpus):
    texts, y = [d["text"] for d in corpus.docs], np.array([d["label"] for d in corpus.docs])
    vec = TfidfVectorizer(sublinear_tf=True)
    clf = LogisticRegression(max_iter=1000).fit(vec.fit_transform(texts[:2000]), y[:2000])
    acc = clf.score(vec.transform(texts[2000:]), y[2000:])
    assert 0.85 <= acc <= 0.96, acc


def test_drifted_window_shifts_topic_mix_and_vocabulary(corpus):
    same, drift = corpus.live["window-000"], corpus.live["window-001"]
    mix0 = np.bincount([d["label"] for d in same], minlength=4) / len(same)
    mix1 = np.bincount([d["label"] for d in drift], minlength=4) / len(drift)
    assert mix0.min() > 0.15 and mix1.max() >= 0.5 and mix1.min() == 0.0
    vocab = set(TfidfVectorizer().fit([d["text"] for d in corpus.docs]).vocabulary_)

    def oov(docs):
        toks = [t for d in docs for t in TfidfVectorizer().build_analyzer()(d["text"])]
        return np.mean([t not in vocab for t in toks])

    assert oov(drift) > 3 * oov(same)


def test_more_topics_and_bad_arguments():
    c = generate_corpus(seed=0, n_docs=300, n_topics=6, live_size=30)
    assert len(c.label_names) == 6 and {d["label"] for d in c.docs} == set(range(6))
    with pytest.raises(ValueError, match="n_topics"):
        generate_corpus(n_topics=9)
    with pytest.raises(ValueError, match="fractions"):
        generate_corpus(n_docs=100, exact_dup_frac=0.5, near_dup_frac=0.5)


# sha256 of the default-argument corpus below, taken before `minority_frac` existed: None must not change it
DEFAULT_SHA256 = "7801f837bb9f99ebde3ac00ac8180fc7a1c4c93a4c705ec8cab3dbb5ac2501c0"


def _sha256(c: GeneratedCorpus) -> str:
    import hashlib
    import json

    blob = json.dumps([c.docs, c.live, c.label_names, c.exact_duplicates, c.near_duplicates, c.live_drift],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def test_default_corpus_unchanged_by_minority_frac():
    assert _sha256(generate_corpus(seed=0, n_docs=300, live_size=30)) == DEFAULT_SHA256
    assert _sha256(generate_corpus(seed=0, n_docs=300, live_size=30, minority_frac=None)) == DEFAULT_SHA256


def test_minority_frac_gives_the_requested_class_share():
    c = generate_corpus(seed=0, n_docs=1500, live_size=200, minority_frac=0.13)
    planted = set(c.exact_duplicates) | set(c.near_duplicates)
    base = np.bincount([d["label"] for d in c.docs if d["id"] not in planted], minlength=4)
    assert abs(base[3] - 0.13 * base.sum()) <= 1  # the last topic: exactly its share of the originals
    assert base[:3].max() - base[:3].min() <= 1  # the others share the rest equally
    share = np.mean([d["label"] == 3 for d in c.docs])  # copies drawn uniformly: the corpus keeps the mix
    assert 0.10 <= share <= 0.16, share
    same = np.bincount([d["label"] for d in c.live["window-000"]], minlength=4)
    assert abs(same[3] - 0.13 * 200) <= 1  # the in-distribution window follows the corpus's class mix
    drift = np.bincount([d["label"] for d in c.live["window-001"]], minlength=4)
    assert drift.max() >= 100 and drift.min() == 0  # the drifted window still drifts
    assert c.live_drift == {"window-000": False, "window-001": True}
    # and the source wires it through
    from qlife.data.sources import load_corpus
    from qlife.params import Generator, Source

    loaded = load_corpus(Source(), Generator(n_docs=1500, live_size=200, minority_frac=0.13))
    assert [d["label"] for d in loaded.docs] == [d["label"] for d in c.docs]


def test_minority_frac_out_of_range():
    with pytest.raises(ValueError, match="minority_frac"):
        generate_corpus(n_docs=300, live_size=30, minority_frac=0.5)


def test_draw_docs_pools_for_the_drift_study():
    from qlife.data.generator import draw_docs

    base = draw_docs(3, 40)
    assert len({d["text"] for d in base}) == 40 and sorted({d["label"] for d in base}) == [0, 1, 2, 3]
    assert draw_docs(3, 40) == base  # seeded
    one = draw_docs(4, 20, topic_probs=[0, 1, 0, 0])
    assert {d["label"] for d in one} == {1}
    with pytest.raises(ValueError, match="topic_probs"):
        draw_docs(0, 5, topic_probs=[0.5, 0.5])
    with pytest.raises(ValueError, match="drift_vocab"):
        draw_docs(0, 5, drift_vocab=2.0)
