"""Stage 2 — preprocessing & encoding.

Inputs: `paths.curated/{train,val,test,reference}.jsonl` and `labels.json`; the teacher's tokenizer and encoder
(`train.model`).
Outputs in `paths.encoded/`: `tokenized/` (HF `datasets` DatasetDict on disk: input_ids, label, id),
`projection.npz` (PCA of the encoder's pooled embeddings (`train.pooling`), fitted on train, and its residual basis:
a PCA of the same size of the unit-normalised embeddings, qlife.methods.projection.Residual) and `features.npz`
(projected features per split for the quantum encoders, and `reference`: curate's held-out sample, projected
without being part of the fit, the monitor's reference; `<split>_residual`: each row's log residual, what the
projection drops, the monitor's extra column under `monitor.features: pca+residual`);
`paths.reports/plots/encoding_circuits.png` (depth and two-qubit gates of the amplitude and angle encodings
against feature dimension; a DVC plot, logged to MLflow).
A large corpus: `encode.max_docs` keeps at most that many documents of a split (stratified by label, seeded by
`encode.seed`, in the curated file's order); every later stage works on encode's splits, and the report's
`subsample` says what was kept of what.
Params: `encode:` (`encode.quantum:` the encoding report). Report: token statistics, truncation, bytes,
explained variance; per encoding of the reduced features (`amplitude_encoding`, `angle_encoding`): qubits,
transpiled depth and two-qubit gates, prepared-vs-target fidelity (exact and with shots), classical bytes.
Verdict (`quality:` metric on the test split, paired bootstrap over its documents): an SVM on the swap-test
fidelity kernel of the amplitude-encoded features (`encode.quantum.shots`) against the same SVM on cos² of the
same features (the twin: for exact amplitude encoding F = cos², the same mathematics) and the best of an RBF SVM
and a logistic regression, all trained on the train split's features (qlife/methods/qencoding.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qlife.io import atomic_path, read_json, read_jsonl, save_npz, write_json
from qlife.ledger import measure
from qlife.methods.projection import fit_pca
from qlife.methods.qencoding import (
    encode,
    encoding_report,
    loading_classifiers,
    n_qubits_for,
    plot_sweep,
    resource_sweep,
)
from qlife.models import architecture, encode_texts, load_encoder, load_tokenizer
from qlife.params import Params
from qlife.quality import SUBSAMPLE_FILE, document_verdict, subsample
from qlife.quantum.fidelity import compare_backends
from qlife.stage import Report
from qlife.stage import main as stage_main

SPLITS = ("train", "val", "test")


def load_splits(params: Params) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """The curated splits and the monitor's reference, each cut to `encode.max_docs` (stratified), and what was
    kept of each."""
    out, kept = {}, {}
    for s in (*SPLITS, "reference"):
        docs = read_jsonl(Path(params.paths.curated) / f"{s}.jsonl")
        out[s], kept[s] = subsample(docs, getattr(params.encode.max_docs, s), params.encode.seed)
    return out, kept


def tokenize(tokenizer, splits: dict[str, list[dict]], max_length: int):
    import datasets

    parts = {}
    for name, docs in splits.items():
        enc = tokenizer([d["text"] for d in docs], truncation=True, max_length=max_length)
        parts[name] = datasets.Dataset.from_dict({"id": [d["id"] for d in docs],
                                                  "input_ids": enc["input_ids"],
                                                  "label": [d["label"] for d in docs]})
    return datasets.DatasetDict(parts)


def token_stats(tokenizer, ds, splits: dict[str, list[dict]], max_length: int) -> dict:
    lengths = np.array([len(x) for x in ds["train"]["input_ids"]])
    full = tokenizer([d["text"] for d in splits["train"]], truncation=False)["input_ids"]
    unk = tokenizer.unk_token_id
    n_tok = sum(len(x) for x in full)
    return {"mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()),
            "truncated_frac": float(np.mean([len(x) > max_length for x in full])),
            "unk_rate": float(sum(t == unk for x in full for t in x) / max(1, n_tok)),
            "vocab_size": int(tokenizer.vocab_size),
            "token_bytes_per_doc": float(lengths.mean() * 4)}  # int32 ids


def plot_path(params: Params) -> Path:
    return Path(params.paths.reports) / "plots" / "encoding_circuits.png"


def encoding_circuits(params: Params, feats: np.ndarray) -> dict:
    """Amplitude and angle circuits for a seeded sample of reduced features, the depth/2q-gate sweep
    against feature dimension (plotted), and the swap-test circuits/shots the fidelity checks imply."""
    eq = params.encode.quantum
    rng = np.random.default_rng(eq.seed)
    idx = np.sort(rng.choice(len(feats), size=min(eq.sample, len(feats)), replace=False))
    encodings, resources = encoding_report(feats[idx], eq.shots, eq.max_angle_qubits, "encode.quantum.shots")
    sweep = resource_sweep(tuple(eq.sweep_dims))
    plot_sweep(sweep, plot_path(params))
    out = {"encodings": encodings, "sweep": sweep, "resources": resources.to_dict()}  # as the backend counts them
    if eq.device_samples and eq.backends:  # exact (F = 1) beside each backend on the same loaded documents
        q = encodings["amplitude"]["qubits"]
        rows = encode(feats[idx[: eq.device_samples]], "amplitude", q)
        out["amplitude_loading_on_backends"] = compare_backends(rows, rows, "amplitude", q, list(eq.backends),
                                                                "encode.quantum.backends")
    return out


def loading_verdict(params: Params, X: dict[str, np.ndarray], y: dict[str, np.ndarray], labels: list[str]
                    ) -> tuple[dict, dict]:
    """The verdict of stage 2 (see the module docstring); each classifier's cost (the quantum one's swap tests)."""
    shots = params.encode.quantum.shots
    preds, cost, used = {}, {}, None
    for name, classify in loading_classifiers(shots, "encode.quantum.shots").items():
        with measure(params.ledger) as meter:
            preds[name], res = classify(X["train"], y["train"], X["test"])
        cost[name] = {k: meter.as_dict()[k] for k in ("wall_s", "cpu_s", "energy_kwh")} | {"qpu_s_est": 0.0}
        if res is not None:
            used = res
            cost[name] |= {"qpu_s_est": res.qpu_seconds_est, "qpu_energy_kwh_est": res.energy_kwh_est}
    d = X["train"].shape[1]
    q = n_qubits_for("amplitude", d)
    note = (f"{d} PCA features amplitude-encoded on {q} qubits (zero-padded to {2 ** q}, unit norm): their exact "
            "fidelity IS cos² of the features, the twin's kernel (the same mathematics), so quantum and twin differ "
            f"only by the swap tests' shot noise (a gap between them is that noise, not a property of the encoding; "
            f"{shots.shots} shots per kernel entry, {used.circuits} swap tests "
            f"for {len(X['train'])} train and {len(X['test'])} test documents, whose QPU seconds are a "
            "hardware-equivalent estimate, not in the ledger). Every classifier is trained on the train split's "
            "features, classes weighted by inverse frequency.")
    v = document_verdict(y["test"], preds, labels, params.quality, "amplitude_fidelity_svm", "cos2_svm",
                         classical=["rbf_svm", "logistic"], cost=cost, seed=params.encode.quantum.seed, note=note)
    same = float(np.mean(preds["amplitude_fidelity_svm"] == preds["cos2_svm"]))
    return v, {"cost": cost, "swap_tests": used.to_dict(), "quantum_twin_same_prediction": same}


def run(params: Params) -> Report:
    enc, out = params.encode, Path(params.paths.encoded)
    splits, kept = load_splits(params)
    reference = splits.pop("reference")
    with measure(params.ledger) as tok_cost:
        tokenizer = load_tokenizer(params.train.model)
        ds = tokenize(tokenizer, splits, enc.max_length)
        with atomic_path(out / "tokenized", is_dir=True) as tmp:
            ds.save_to_disk(str(tmp))
            write_json(Path(tmp) / SUBSAMPLE_FILE, kept)  # search, train and distill state it
    with measure(params.ledger) as feat_cost:
        model, _ = load_encoder(params.train.model, params.train.pooling, params.inference.runtime,
                                params.inference.precision)
        pooled = {s: encode_texts(model, tokenizer, [d["text"] for d in docs], enc.max_length,
                                  enc.batch_size, desc=f"embed {s}")[0] for s, docs in splits.items()}
        proj = fit_pca(pooled["train"], enc.n_features, residual=True)
        # the monitor's reference (curate's held-out sample): projected, never part of the fit
        ref_emb = encode_texts(model, tokenizer, [d["text"] for d in reference], enc.max_length, enc.batch_size,
                               desc="embed reference")[0]
        save_npz(out / "projection.npz", **proj.to_arrays())
        save_npz(out / "features.npz", **{s: proj.transform(x).astype(np.float32) for s, x in pooled.items()},
                 **{f"{s}_residual": proj.residuals(x).astype(np.float32) for s, x in pooled.items()},
                 **{f"{s}_label": np.array([d["label"] for d in docs]) for s, docs in splits.items()},
                 reference=proj.transform(ref_emb).astype(np.float32),
                 reference_residual=proj.residuals(ref_emb).astype(np.float32),
                 reference_label=np.array([d["label"] for d in reference]))
    with measure(params.ledger) as q_cost:
        circuits = encoding_circuits(params, proj.transform(pooled["train"]))
        q_cost.add_quantum(circuits.pop("resources"))
    with measure(params.ledger) as v_cost:
        verdict, kernels = loading_verdict(
            params, {s: proj.transform(x) for s, x in pooled.items()},
            {s: np.array([d["label"] for d in docs]) for s, docs in splits.items()},
            read_json(Path(params.paths.curated) / "labels.json"))
    stats = token_stats(tokenizer, ds, splits, enc.max_length)
    evr = float(proj.explained_variance_ratio.sum())
    return {"summary": {"docs": sum(len(v) for v in splits.values()), "mean_tokens": stats["mean_tokens"],
                        "truncated_frac": stats["truncated_frac"], "pca_explained": evr,
                        "amplitude_qubits": circuits["encodings"]["amplitude"]["qubits"],
                        "amplitude_2q_gates": circuits["encodings"]["amplitude"]["two_qubit_gates"]},
            "teacher": {"model": params.train.model, **architecture(model)},
            "methods": {"tokenizer": stats,
                        "projection": {"n_features": int(proj.components.shape[0]),
                                       "input_dim": int(proj.components.shape[1]),
                                       "explained_variance": evr,
                                       "float32_bytes_per_doc": int(proj.components.shape[0] * 4)},
                        **{f"{k}_encoding": v for k, v in circuits["encodings"].items()},
                        "loading_kernel_classifiers": kernels},
            "verdict": verdict,
            "encoding_sweep": circuits["sweep"],
            "amplitude_loading_on_backends": circuits.get("amplitude_loading_on_backends"),
            "cost": {"tokenizer": tok_cost.as_dict(), "projection": feat_cost.as_dict(),
                     "encoding_circuits": q_cost.as_dict(), "verdict_classifiers": v_cost.as_dict()},
            "splits": {k: len(v) for k, v in splits.items()}, "subsample": kept,
            "inference": params.inference.model_dump()}


def main() -> None:
    stage_main("encode", run, artifacts=lambda p: [plot_path(p)])


if __name__ == "__main__":
    main()
