"""Stage 2 on a small curated corpus and the tiny teacher: the tokenized splits, the PCA projection (its shape,
and that it reproduces the features), and the encoding report (circuit resources against the qubit count,
fidelities in [0, 1])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.data.generator import generate_corpus
from qlife.params import parse_params

N_FEATURES, MAX_LENGTH, SAMPLE, SHOTS = 8, 24, 6, 256  # 8 features: 3 amplitude qubits, 8 angle qubits


def _curated(folder: Path) -> dict[str, list[dict]]:
    """Curate's output format: {train,val,test,reference}.jsonl of {id, text, label} and labels.json."""
    g = generate_corpus(seed=0, n_docs=140, live_size=10)
    docs = [{"id": d["id"], "text": d["text"], "label": int(d["label"])} for d in g.docs]
    splits = {"train": docs[:80], "val": docs[80:100], "test": docs[100:120], "reference": docs[120:]}
    folder.mkdir(parents=True)
    for name, rows in splits.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "labels.json").write_text(json.dumps(g.label_names))
    return splits


def _params(folder: Path, teacher: str):
    paths = {k: str(folder / k) for k in ("curated", "encoded", "reports", "metrics")}
    return parse_params({"paths": paths, "train": {"model": teacher}, "encode": {
        "max_length": MAX_LENGTH, "n_features": N_FEATURES, "batch_size": 16,
        "quantum": {"sample": SAMPLE, "shots": {"kind": "shots", "shots": SHOTS}, "max_angle_qubits": 8,
                    "sweep_dims": [4, 8, 16],
                    "device_samples": 2, "backends": [{"kind": "shots", "shots": 512},
                                                      {"kind": "aer", "shots": 512,
                                                       "noise": {"p1": 1e-3, "p2": 2e-2, "readout": 2e-2}}]}}})


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, tiny_teacher):
    from stages.encode import run

    folder = tmp_path_factory.mktemp("encode")
    splits = _curated(folder / "curated")
    params = _params(folder, tiny_teacher)
    return folder, splits, params, run(params)


def test_tokenized_splits_are_the_curated_documents(encoded):
    import datasets

    from qlife.models import load_tokenizer

    folder, splits, params, report = encoded
    ds = datasets.load_from_disk(str(folder / "encoded" / "tokenized"))
    assert set(ds) == {"train", "val", "test"} and report["splits"] == {"train": 80, "val": 20, "test": 20}
    assert "reference" not in ds  # the monitor's held-out sample is projected, never tokenized for training
    tok = load_tokenizer(params.train.model)
    for name, docs in ((n, d) for n, d in splits.items() if n != "reference"):
        assert len(ds[name]) == len(docs)
        assert ds[name]["id"] == [d["id"] for d in docs] and ds[name]["label"] == [d["label"] for d in docs]
        assert ds[name]["input_ids"] == tok([d["text"] for d in docs], truncation=True,
                                            max_length=MAX_LENGTH)["input_ids"]
        assert all(2 < len(ids) <= MAX_LENGTH and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
                   for ids in ds[name]["input_ids"])
    stats = report["methods"]["tokenizer"]
    lengths = [len(ids) for ids in ds["train"]["input_ids"]]
    full = [len(ids) for ids in tok([d["text"] for d in splits["train"]])["input_ids"]]
    assert stats["mean_tokens"] == report["summary"]["mean_tokens"] == pytest.approx(np.mean(lengths))
    assert stats["max_tokens"] == max(lengths) == MAX_LENGTH  # the generated texts run past 24 tokens
    assert stats["truncated_frac"] == pytest.approx(np.mean([n > MAX_LENGTH for n in full]))
    assert stats["truncated_frac"] > 0
    assert report["summary"]["docs"] == 120


def test_projection_shape_and_it_reproduces_the_features(encoded):
    from qlife.methods.projection import Projection
    from qlife.models import encode_texts, load_encoder, load_tokenizer
    from stages.encode import run

    folder, splits, params, report = encoded
    with np.load(folder / "encoded" / "projection.npz") as f:
        proj = Projection.from_arrays(f)
    assert proj.components.shape == (N_FEATURES, 32) and proj.mean.shape == (32,)  # the tiny BERT's width
    np.testing.assert_allclose(proj.components @ proj.components.T, np.eye(N_FEATURES), atol=1e-10)
    evr = proj.explained_variance_ratio
    assert evr.shape == (N_FEATURES,) and np.all(np.diff(evr) <= 0) and 0 < evr.sum() <= 1
    assert report["summary"]["pca_explained"] == pytest.approx(evr.sum())
    assert report["methods"]["projection"] == {"n_features": N_FEATURES, "input_dim": 32,
                                               "explained_variance": pytest.approx(evr.sum()),
                                               "float32_bytes_per_doc": 4 * N_FEATURES}
    # features.npz is the projection applied to the teacher's pooled embeddings, centred on the train split
    model, _ = load_encoder(params.train.model, params.train.pooling)
    tok = load_tokenizer(params.train.model)
    feats = np.load(folder / "encoded" / "features.npz")
    for name, docs in splits.items():
        pooled = encode_texts(model, tok, [d["text"] for d in docs], MAX_LENGTH, 16)[0]
        assert feats[name].shape == (len(docs), N_FEATURES) and feats[name].dtype == np.float32
        np.testing.assert_allclose(feats[name], proj.transform(pooled), atol=1e-4)
        np.testing.assert_array_equal(feats[f"{name}_label"], [d["label"] for d in docs])
    np.testing.assert_allclose(feats["train"].mean(0), 0, atol=1e-4)
    # the residual basis travels with the projection (fitted on train's unit-normalised embeddings); every split's
    # log residual, the reference's too, is stored beside its features (the monitor's extra column)
    assert proj.residual is not None and proj.residual.components.shape == (N_FEATURES, 32)
    for name, docs in splits.items():
        pooled = encode_texts(model, tok, [d["text"] for d in docs], MAX_LENGTH, 16)[0]
        assert feats[f"{name}_residual"].shape == (len(docs),) and feats[f"{name}_residual"].dtype == np.float32
        np.testing.assert_allclose(feats[f"{name}_residual"], proj.residuals(pooled), atol=1e-4)
    assert feats["reference_residual"].shape == (len(feats["reference"]),)
    # the reference is projected, not fitted on: refitting with it changes the projection
    assert abs(feats["reference"].mean(0)).max() > 1e-3
    # the same inputs give the same projection
    again = run(_params(folder, params.train.model))
    with np.load(folder / "encoded" / "projection.npz") as f:
        np.testing.assert_allclose(f["components"], proj.components, atol=1e-9)
        np.testing.assert_allclose(f["mean"], proj.mean, atol=1e-9)
    assert again["methods"]["amplitude_encoding"] == report["methods"]["amplitude_encoding"]  # seeded


def test_encoding_report_resources_follow_the_qubits(encoded):
    folder, _, _, report = encoded
    amp, ang = report["methods"]["amplitude_encoding"], report["methods"]["angle_encoding"]
    # amplitude: 8 features on log2 8 = 3 qubits, a tree of 2^3 - 1 RY and at most 2^3 - 2 CNOTs;
    # angle: one qubit per feature, a product state (no two-qubit gate)
    assert amp["qubits"] == 3 and amp["amplitudes_loaded"] == 8 and amp["parameters"] == 7
    assert 0 < amp["two_qubit_gates"] <= 6 and amp["depth"] > 0
    assert ang["qubits"] == N_FEATURES and ang["parameters"] == N_FEATURES and ang["two_qubit_gates"] == 0
    assert report["summary"]["amplitude_qubits"] == 3 and report["summary"]["amplitude_2q_gates"] == amp[
        "two_qubit_gates"]
    for e in (amp, ang):
        assert e["samples"] == e["swap_test_circuits"] == SAMPLE and e["shots"] == SAMPLE * SHOTS
        assert e["classical_bytes_float32"] == 4 * N_FEATURES
        # the loading circuit prepares its target state: exact fidelity 1, the swap test's estimate in [0, 1]
        assert 1 - 1e-9 <= e["fidelity_exact_min"] <= e["fidelity_exact_mean"] <= 1 + 1e-9
        assert 0 <= e["fidelity_shots_min"] <= e["fidelity_shots_mean"] <= 1
    # the swap tests as the backend layer counts them: 2n + 1 qubits for two n-qubit states, an estimate of QPU time
    q = report["cost"]["encoding_circuits"]["quantum"]
    assert q["circuits"] == 2 * SAMPLE and q["shots"] == 2 * SAMPLE * SHOTS and q["qubits"] == 2 * N_FEATURES + 1
    assert q["backend"] == "shots" and q["hardware_equivalent"] and q["qpu_seconds_est"] > 0
    # the sweep: qubits from the dimension, amplitude's two-qubit gates growing with it, angle's none
    sweep = {(r["dim"], r["encoding"]): r for r in report["encoding_sweep"]}
    assert set(sweep) == {(d, e) for d in (4, 8, 16) for e in ("amplitude", "angle")}
    for d in (4, 8, 16):
        assert sweep[d, "amplitude"]["qubits"] == int(np.log2(d)) and sweep[d, "angle"]["qubits"] == d
        assert sweep[d, "angle"]["two_qubit_gates"] == 0 and sweep[d, "amplitude"]["two_qubit_gates"] <= d - 2
    assert [sweep[d, "amplitude"]["two_qubit_gates"] for d in (4, 8, 16)] == sorted(
        {sweep[d, "amplitude"]["two_qubit_gates"] for d in (4, 8, 16)})
    assert sweep[8, "amplitude"]["two_qubit_gates"] == amp["two_qubit_gates"]
    # the same loaded documents on each backend: exact F = 1, the backends' estimates in [0, 1]
    hw = report["amplitude_loading_on_backends"]
    assert hw["pairs"] == 2 and hw["exact_mean"] == pytest.approx(1.0)
    backends = {k: v for k, v in hw.items() if isinstance(v, dict)}
    assert len(backends) == 2
    for name, row in backends.items():
        assert 0 <= row["mean"] <= 1 and row["mean_abs_error"] == pytest.approx(1 - row["mean"]), name
        assert row["qubits"] == 2 * 3 + 1 and row["circuits"] == 2, name  # a swap test of two 3-qubit states
    png = folder / "reports" / "plots" / "encoding_circuits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdict_sets_the_fidelity_kernel_beside_its_cos2_twin(encoded):
    folder, splits, _, report = encoded
    v = report["verdict"]
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("amplitude_fidelity_svm", "cos2_svm")
    assert v["best_classical"]["method"] in {"cos2_svm", "rbf_svm", "logistic"} and v["metric"] == "macro_f1"
    assert v["verdict"] in {"ahead", "tie", "behind"} and "20 test documents" in v["spread"]
    for who in ("quantum", "twin", "best_classical"):
        e = v[who]
        assert 0 <= e["ci95"][0] <= e["value"] <= e["ci95"][1] <= 1 and e["cost"]["wall_s"] >= 0
    d = v["difference"]["quantum_minus_twin"]
    assert d["ci95"][0] <= d["value"] <= d["ci95"][1]
    # the swap tests of the kernel: the 80 x 79 / 2 distinct train pairs and 20 x 80 test x train, at SHOTS each
    k = report["methods"]["loading_kernel_classifiers"]
    assert k["swap_tests"]["circuits"] == 80 * 79 // 2 + 20 * 80 and k["swap_tests"]["qubits"] == 2 * 3 + 1
    assert k["swap_tests"]["shots"] == k["swap_tests"]["circuits"] * SHOTS
    assert v["quantum"]["cost"]["qpu_s_est"] == k["cost"]["amplitude_fidelity_svm"]["qpu_s_est"] > 0
    assert v["twin"]["cost"]["qpu_s_est"] == 0.0 and "cos²" in v["note"]
    assert report["cost"]["verdict_classifiers"]["wall_s"] < 5


def test_exact_amplitude_fidelity_is_cos2_a_tie_at_exactly_zero():
    """Planted: on a statevector backend the fidelity kernel of amplitude-encoded rows is cos² of the rows, so the
    two SVMs predict alike and the paired difference is 0 on every resample; with 8 shots per entry they differ."""
    from qlife.methods.qencoding import loading_classifiers
    from qlife.params import Quality
    from qlife.quality import document_verdict

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6))
    y, yt = rng.integers(0, 3, 150), rng.integers(0, 3, 60)
    X, Xt = centres[y] + rng.normal(size=(150, 6)), centres[yt] + rng.normal(size=(60, 6))
    exact = loading_classifiers("statevector")
    preds = {m: exact[m](X, y, Xt)[0] for m in ("amplitude_fidelity_svm", "cos2_svm", "logistic")}
    np.testing.assert_array_equal(preds["amplitude_fidelity_svm"], preds["cos2_svm"])
    v = document_verdict(yt, preds, ["a", "b", "c"], Quality(), "amplitude_fidelity_svm", "cos2_svm")
    assert v["verdict"] == "tie" and v["quantum"]["value"] == v["twin"]["value"]
    assert v["difference"]["quantum_minus_twin"] == {"value": 0.0, "ci95": [0.0, 0.0]}
    noisy, used = loading_classifiers({"kind": "shots", "shots": 8})["amplitude_fidelity_svm"](X, y, Xt)
    assert (noisy != preds["cos2_svm"]).any() and used.circuits == 150 * 149 // 2 + 60 * 150


def test_max_docs_keeps_a_stratified_subsample_of_each_split_in_order(tmp_path, tiny_teacher):
    """A large corpus: encode.max_docs cuts each split to a stratified sample, in the curated order; the tokenized
    splits, the features and the reference follow it, and the report says what was kept of what."""
    import datasets

    from stages.encode import run, subsample

    splits = _curated(tmp_path / "curated")
    raw = _params(tmp_path, tiny_teacher).model_dump()
    raw["encode"]["max_docs"] = {"train": 30, "val": 10, "test": None, "reference": 8}
    report = run(parse_params(raw))
    ds = datasets.load_from_disk(str(tmp_path / "encoded" / "tokenized"))
    assert report["subsample"]["train"] == {"kept": 30, "of": 80, "stratified_by": "label", "seed": 0}
    assert report["subsample"]["test"] == {"kept": 20, "of": 20}
    assert report["splits"] == {"train": 30, "val": 10, "test": 20}
    # beside the tokenized splits, for search, train and distill to state in their reports
    from qlife.quality import corpus_subsample

    assert corpus_subsample(tmp_path / "encoded" / "tokenized") == report["subsample"]
    assert corpus_subsample(tmp_path / "nowhere") == {}
    feats = np.load(tmp_path / "encoded" / "features.npz")
    assert feats["train"].shape[0] == 30 and feats["reference"].shape[0] == 8
    for name, n in (("train", 30), ("val", 10)):
        ids, order = ds[name]["id"], [d["id"] for d in splits[name]]
        assert len(ids) == n and ids == [i for i in order if i in set(ids)]  # a subsequence: the curated order
        full = np.bincount([d["label"] for d in splits[name]], minlength=4) / len(splits[name])
        kept = np.bincount(ds[name]["label"], minlength=4) / n
        assert np.abs(full - kept).max() <= 1.5 / n + 1e-9, (full, kept)  # each label's share, to a document
    docs = [{"id": str(i), "label": int(i % 10 == 0)} for i in range(200)]  # a 10% minority
    cut, info = subsample(docs, 20, seed=3)
    assert [d["label"] for d in cut].count(1) == 2 and info["kept"] == 20
    assert subsample(docs, 20, seed=3)[0] == cut and subsample(docs, 200, seed=3) == (docs, {"kept": 200, "of": 200})


@pytest.mark.slow  # two encode runs (~30 s)
def test_inference_settings_reach_the_encoder_and_the_report(tmp_path, tiny_teacher):
    """`inference:` runs encode's teacher through qlife.inference (here torch int8): the features differ from the
    float32 run's only by the quantization error, and the report says how the teacher ran."""
    from stages.encode import run

    _curated(tmp_path / "a" / "curated")
    _curated(tmp_path / "b" / "curated")
    plain = run(_params(tmp_path / "a", tiny_teacher))
    raw = _params(tmp_path / "b", tiny_teacher).model_dump()
    raw["inference"] = {"runtime": "torch", "precision": "int8"}
    quant = run(parse_params(raw))
    assert plain["inference"] == {"runtime": "torch", "precision": "float32"}
    assert quant["inference"] == {"runtime": "torch", "precision": "int8"}
    fa, fb = (np.load(tmp_path / k / "encoded" / "features.npz") for k in ("a", "b"))
    assert not np.array_equal(fa["train"], fb["train"])  # the quantized encoder ran, not the float32 one
    # the same projection up to a component's sign; the quantization moves the features little
    sign = np.sign((fa["train"] * fb["train"]).sum(0))
    err = np.abs(fa["train"] - fb["train"] * sign).max() / np.abs(fa["train"]).max()
    assert err < 0.2, err
