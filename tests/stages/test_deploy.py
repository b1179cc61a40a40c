"""Stage 6's three steps (pruning, compression, serving cost) on a tiny teacher and tokenized splits built in
place: no curate, encode, search, train or distill run here. That each step declares only its own params
(a serving key reruns serving alone) is tests/contract/test_dvc_contract.py's
test_each_deploy_step_depends_on_its_own_params_only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.params import parse_params

MAX_LENGTH = 32
FFN_RANK = 4
HEADS = 4


def _inputs(folder: Path, tiny_teacher: str) -> None:
    """What curate, encode and train would have written: curated texts and labels, the tokenized splits
    (stages/encode.py's format), and the teacher."""
    import datasets

    from qlife.data.generator import generate_corpus
    from qlife.io import write_json, write_jsonl
    from qlife.models import load_tokenizer

    corpus = generate_corpus(seed=0, n_docs=220, exact_dup_frac=0.0, near_dup_frac=0.0, live_size=4)
    docs, labels = corpus.docs, corpus.label_names
    splits = {"train": docs[:140], "val": docs[140:180], "test": docs[180:]}
    for name, rows in splits.items():
        write_jsonl(folder / "data/curated" / f"{name}.jsonl", rows)
    write_json(folder / "data/curated/labels.json", labels)
    tok = load_tokenizer(tiny_teacher)
    parts = {}
    for name, rows in splits.items():
        enc = tok([d["text"] for d in rows], truncation=True, max_length=MAX_LENGTH)
        parts[name] = datasets.Dataset.from_dict({"id": [d["id"] for d in rows], "input_ids": enc["input_ids"],
                                                  "label": [d["label"] for d in rows]})
    datasets.DatasetDict(parts).save_to_disk(str(folder / "data/encoded/tokenized"))
    _teacher(folder / "data/models/teacher", tiny_teacher, tok, labels, parts["train"])


def _teacher(path: Path, tiny_teacher: str, tok, labels: list[str], train) -> None:
    """What train saves (weights, tokenizer, qlife.json), in a second instead of a fine-tune: the tiny BERT's
    config as a sequence classifier with 4 heads per layer (with 2, keeping 1 of each layer's heads leaves the
    QUBO no cross terms to weigh), initialised wider (0.1: at 0.02 its [CLS] output is the same for every
    document), FFN weights of low rank (a decaying spectrum, as trained weights have: something to compress), and
    a logistic-regression head on its pooled output."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import BertConfig, BertForSequenceClassification

    from qlife.io import write_json
    from qlife.methods.finetune import classifier_inputs

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(tiny_teacher, num_labels=len(labels), num_attention_heads=HEADS,
                                        initializer_range=0.1, id2label=dict(enumerate(labels)),
                                        label2id={n: i for i, n in enumerate(labels)})
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            for lin in (layer.intermediate.dense, layer.output.dense):
                u, s, vh = torch.linalg.svd(lin.weight, full_matrices=False)
                lin.weight.copy_(u[:, :FFN_RANK] * s[:FFN_RANK] @ vh[:FFN_RANK])
    x = classifier_inputs(model, train["input_ids"], MAX_LENGTH, tok.pad_token_id)
    head = LogisticRegression(C=100, max_iter=5000).fit(x, train["label"])
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(head.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(head.intercept_, dtype=torch.float32))
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    write_json(path / "qlife.json", {"max_length": MAX_LENGTH, "labels": labels, "base_model": tiny_teacher})


def _params(tiny_teacher: str, **deploy):
    from tests.conftest import tiny_params_dict

    raw = tiny_params_dict(tiny_teacher)
    raw["tracking"] = {"enabled": False}
    raw["deploy"] = {"calib_docs": 32, "energy_samples": 2, "energy_val_docs": 32,
                     "heads": {"solver": {"kind": "exact"}},
                     "ffn": {"solver": {"kind": "swap_tabu", "timeout_ms": 100}},
                     "compress": {"fit_steps": 5, "recovery_steps": 1, "calib_tokens": 256},
                     "serving": {"requests": 4, "batch": 4, "isolate": False}, **deploy}
    return parse_params(raw)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 32-wide model: two torch threads on a shared 2-core machine run the steps 2-5x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def stage6(tmp_path_factory, tiny_teacher):
    """The inputs built once, then the pruning and compression steps run once (their reports written where the
    serving step reads them)."""
    from qlife.io import write_json
    from stages import compress, deploy

    folder = tmp_path_factory.mktemp("stage6")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        _inputs(folder, tiny_teacher)
        params = _params(tiny_teacher)
        reports = {"deploy": deploy.run(params), "compress": compress.run(params)}
        for name, rep in reports.items():
            write_json(folder / "reports" / f"{name}.json", rep)
    return folder, params, reports


def _safetensors_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def test_pruned_teacher_is_saved_smaller_with_the_applied_counts(stage6):
    from qlife.classifiers import load_teacher
    from qlife.methods.pruning import count_parameters, head_counts

    folder, params, report = stage6[0], stage6[1], stage6[2]["deploy"]
    teacher, pruned = load_teacher(folder / params.paths.teacher), load_teacher(folder / params.paths.pruned)
    assert count_parameters(pruned) < count_parameters(teacher)
    assert report["methods"]["pruned"]["parameters"] == count_parameters(pruned)
    assert _safetensors_bytes(folder / params.paths.pruned) < _safetensors_bytes(folder / params.paths.teacher)
    # deploy.apply: half of the 4 heads and half of the 64 FFN neurons of each layer
    assert head_counts(teacher) == [HEADS, HEADS] and head_counts(pruned) == [HEADS // 2, HEADS // 2]
    assert [layer.intermediate.dense.out_features for layer in pruned.bert.encoder.layer] == [32, 32]
    assert report["decision"]["applied"] == "qubo_heads0.5_ffn0.5"
    assert report["summary"]["param_ratio"] == pytest.approx(count_parameters(pruned) / count_parameters(teacher))


def test_every_method_prunes_at_equal_sparsity(stage6):
    units = stage6[2]["deploy"]["units"]
    for kind, per_layer in (("heads", [HEADS // 2] * 2), ("ffn", [32, 32])):
        methods = units[kind]["sparsity"]["0.5"]["methods"]
        assert set(methods) == {"magnitude", "activation", "wanda", "random", "diagonal", "qubo"}
        for name, row in methods.items():
            assert row["kept_per_layer"] == per_layer, (kind, name)


def test_exact_qubo_reaches_the_best_known_energy(stage6):
    heads = stage6[2]["deploy"]["units"]["heads"]
    assert heads["solver"] == "exact"
    at = heads["sparsity"]["0.5"]
    qubo, diagonal = at["methods"]["qubo"], at["methods"]["diagonal"]
    assert at["best_known"] == "exact"
    assert qubo["energy"] == pytest.approx(at["best_known_energy"], rel=1e-9, abs=1e-12)
    assert abs(qubo["energy_gap"]) < 1e-9
    assert qubo["energy"] <= diagonal["energy"] + 1e-12
    assert all(r["energy"] >= at["best_known_energy"] - 1e-12 for r in at["methods"].values())
    assert qubo["energy_vs_accuracy"]["candidates"] >= 1


def test_pruning_decision_offers_the_pruned_teacher_over_a_majority_baseline(stage6):
    folder, params, report = stage6
    report = report["deploy"]
    decision = report["decision"]
    # no reports/distill.json: no students on offer
    assert set(decision["candidates"]) == {"pruned_teacher"}
    cand = decision["candidates"]["pruned_teacher"]
    assert cand["artifacts"] == {"model": params.paths.pruned} and cand["kind"] == "classifier"
    pruned = report["methods"]["pruned"]
    assert cand["metric"] == "macro_f1" and cand["quality"] == pruned["quality"]
    assert cand["accuracy"] == pruned["accuracy"]
    y_train = [json.loads(line)["label"] for line in (folder / "data/curated/train.jsonl").open()]
    majority = report["methods"]["majority_class"]
    assert decision["majority_baseline"] == majority["quality"] == report["summary"]["majority_macro_f1"]
    assert majority["majority_class"] == ["sports", "science", "business", "health"][np.bincount(y_train).argmax()]
    # the teacher beats the constant predictor (else nothing here could tell models apart)
    assert report["methods"]["teacher"]["quality"] > majority["quality"] + 0.1


def test_each_step_gives_a_verdict_in_the_quality_metric(stage6):
    """Pruning: per kind, the QUBO against its diagonal twin and the best of magnitude / activation / wanda /
    random at the applied sparsity, each pruned model's predictions on the same test documents; the step leads with
    the first applied kind (no quantum solver here). Compression: MPO + disentanglers against plain MPO and the best
    of SVD / FFN pruning at x3. Every headline carries the metric's name, never accuracy."""
    folder, params, reports = stage6
    n_test = len((folder / "data/curated/test.jsonl").read_text().splitlines())
    units = reports["deploy"]["units"]
    for kind in ("heads", "ffn"):
        v, rows = units[kind]["verdict"], units[kind]["sparsity"]["0.5"]["methods"]
        assert units[kind]["verdict_sparsity"] == "0.5" and v["metric"] == "macro_f1"
        assert (v["quantum"]["method"], v["twin"]["method"]) == ("qubo", "diagonal")
        best = max(("diagonal", "magnitude", "activation", "wanda", "random"), key=lambda m: rows[m]["quality"])
        assert v["best_classical"]["value"] == pytest.approx(rows[best]["quality"])
        for role in ("quantum", "twin"):
            assert v[role]["value"] == pytest.approx(rows[v[role]["method"]]["quality"])
            assert v[role]["ci95"][0] <= v[role]["value"] <= v[role]["ci95"][1]
            assert v[role]["cost"]["wall_s"] >= 0 and v[role]["cost"]["energy_kwh"] >= 0  # the selection's
        assert v["quantum"]["cost"]["qpu_s_est"] == 0.0  # exact / swap_tabu: solved on the CPU, no QPU
        assert v["spread"] == f"paired bootstrap over {n_test} test documents, 1000 resamples"
        assert len(v["difference"]["quantum_minus_twin"]["ci95"]) == 2
    lead = reports["deploy"]["verdict"]
    assert lead["quantum"] == units["heads"]["verdict"]["quantum"] and "ffn: qubo" in lead["note"]
    comp = reports["compress"]
    v, rows = comp["verdict"], comp["compression"]["ratios"]["3"]["methods"]
    assert comp["compression"]["ratios"]["3"]["verdict"] == v
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("mpo_disentangled", "mpo")
    assert v["best_classical"]["value"] == max(rows[m]["quality"] for m in ("mpo", "prune"))
    assert v["quantum"]["value"] == pytest.approx(rows["mpo_disentangled"]["quality"])
    assert v["quantum"]["cost"]["cpu_s"] > 0 and "x3" in v["note"]
    for name in ("deploy", "compress"):
        assert not [k for k in reports[name]["summary"] if "acc" in k], name
    assert any(k.endswith("_macro_f1") for k in reports["deploy"]["summary"])
    plot = json.loads((folder / "reports/plots/prune_heads.json").read_text())
    assert plot[0]["metric"] == "macro_f1" and plot[0]["qubo"] == units["heads"]["sparsity"]["0.5"]["methods"][
        "qubo"]["quality"]


def test_pruning_rolls_back_a_recovery_that_makes_the_model_worse(stage6, tiny_teacher, monkeypatch):
    """A healing that ruins every pruned model (its classifier zeroed: one class for every document) is rolled back
    and said: each row's figures, the verdict and the saved pruned model are the ones before recovery."""
    import torch

    from qlife.classifiers import load_teacher
    from qlife.teacher_ops import Workbench
    from stages import deploy

    folder = stage6[0]
    monkeypatch.chdir(folder)

    def ruin(self, model, steps, learning_rate, seed):
        with torch.no_grad():
            for p in model.classifier.parameters():
                p.zero_()

    monkeypatch.setattr(Workbench, "recover", ruin)
    params = _params(tiny_teacher, methods=["magnitude", "diagonal", "qubo"], recovery_steps=2, energy_samples=0,
                     heads={"solver": {"kind": "exact"}}, ffn={"sparsity": [0.5], "solver": {"kind": "swap_tabu",
                                                                                             "timeout_ms": 50}})
    params = params.model_copy(update={"paths": params.paths.model_copy(
        update={"pruned": "data/models/pruned_ruined", "reports": "reports_ruined"})})
    report = deploy.run(params)
    for kind in ("heads", "ffn"):
        rows = report["units"][kind]["sparsity"]["0.5"]["methods"]
        for name, row in rows.items():
            assert row["kept"]["recovery"] is False and row["kept"]["val_after"] < row["kept"]["val_before"]
            assert all(row[k] == v for k, v in row["before_recovery"].items()), (kind, name)
            assert row["recovered"]["quality"] <= row["quality"]  # measured, said, not kept
        assert report["units"][kind]["verdict"]["quantum"]["value"] == pytest.approx(rows["qubo"]["quality"])
    assert report["decision"]["recovery"]["recovery"] is False
    assert report["methods"]["pruned"]["quality"] == report["methods"]["pruned"]["recovery"]["before_recovery"][
        "quality"]
    saved = load_teacher(folder / "data/models/pruned_ruined")
    assert saved.classifier.weight.abs().sum() > 0  # the state before healing was restored, then saved


def test_compression_meets_its_budget_and_reloads(stage6):
    import datasets

    from qlife.classifiers import load_teacher
    from qlife.methods.finetune import predict_ids

    folder, params, reports = stage6
    report, cp = reports["compress"], params.deploy.compress
    comp = report["compression"]
    rows = comp["ratios"]["3"]["methods"]
    assert set(rows) == set(cp.methods) == {"mpo", "mpo_disentangled", "prune"}  # svd: its own test below
    for name, row in rows.items():
        assert row["compressed_layer_parameters"] <= comp["dense_parameters"] / 3, name
        assert row["parameters"] < reports["deploy"]["methods"]["teacher"]["parameters"], name
        # healed or not, judged on validation: the row's figures are the kept model's
        kept = row["kept"]
        assert kept["recovery"] == (kept["val_after"] >= kept["val_before"]), name
        chosen = row["after_recovery" if kept["recovery"] else "before_recovery"]
        assert all(row[k] == v for k, v in chosen.items()), name
    applied = report["methods"]["compressed"]
    assert applied["applied"] == "mpo_disentangled_x3" == report["decision"]["applied"]
    assert applied["reload_max_abs_logit_diff"] <= 1e-5 and applied["reload_docs"] > 0
    circuits = rows["mpo_disentangled"]["circuits"]
    assert circuits["circuits"] == applied["circuit_files"] == len(cp.targets) * 2 * 2  # ffn: 2 layers x 2 Linear
    saved = folder / params.paths.compressed
    assert len(list((saved / "circuits").glob("*.qasm"))) == circuits["circuits"]
    assert circuits["statevector_max_abs_diff"] < 1e-5
    # reloaded independently of the step: the same logits as the row it reported, fewer parameters
    model = load_teacher(saved)
    ds = datasets.load_from_disk(str(folder / "data/encoded/tokenized"))
    logits, _ = predict_ids(model, ds["test"]["input_ids"], MAX_LENGTH, 0)
    y = np.array(ds["test"]["label"])
    assert float(np.mean(logits.argmax(1) == y)) == pytest.approx(applied["accuracy"])
    assert sum(p.numel() for p in model.parameters()) == applied["parameters"]
    assert set(report["decision"]["candidates"]) == {"compressed_teacher"}
    assert report["decision"]["candidates"]["compressed_teacher"]["quality"] == applied["quality"]


def test_compression_disabled_is_skipped(tmp_path, tiny_teacher, monkeypatch):
    from stages import compress

    monkeypatch.chdir(tmp_path)
    params = _params(tiny_teacher, compress={"enabled": False})
    report = compress.run(params)
    assert report["decision"]["candidates"] == {} and report["methods"] == {}
    assert report["summary"] == {"compressed": "skipped"}
    folder = tmp_path / params.paths.compressed
    assert folder.is_dir() and (folder / "SKIPPED").read_text().strip() == "deploy.compress.enabled is false"


def test_compression_keeps_the_better_of_before_and_after_healing(stage6, tiny_teacher, monkeypatch):
    """A healing that ruins the model (its classifier zeroed: one class for every document) is not kept: the row
    and the saved model are the fitted one before recovery."""
    import torch

    from qlife.classifiers import load_teacher
    from qlife.teacher_ops import Workbench
    from stages import compress

    folder = stage6[0]
    monkeypatch.chdir(folder)

    def ruin(self, model, steps, learning_rate, seed):
        with torch.no_grad():
            for p in model.classifier.parameters():
                p.zero_()

    monkeypatch.setattr(Workbench, "recover", ruin)
    params = _params(tiny_teacher, compress={"methods": ["svd"], "fit_steps": 5, "recovery_steps": 2,
                                             "calib_tokens": 256, "apply": {"method": "svd", "ratio": 3.0}})
    params = params.model_copy(update={"paths": params.paths.model_copy(
        update={"compressed": "data/models/compressed_ruined", "reports": "reports_ruined"})})
    row = compress.run(params)["compression"]["ratios"]["3"]["methods"]["svd"]
    kept = row["kept"]
    assert kept["recovery"] is False and kept["val_after"] < kept["val_before"]
    assert all(row[k] == v for k, v in row["before_recovery"].items())
    saved = load_teacher(folder / "data/models/compressed_ruined")
    assert saved.classifier.weight.abs().sum() > 0  # the state before healing was restored, then saved


def test_serving_covers_the_teacher_and_every_candidate(stage6):
    """Measured in this process (`deploy.serving.isolate: false`; the fresh process per model,
    qlife.servecost.measure_isolated, is the slow test of tests/reliability/test_serving_static.py)."""
    from stages import serving

    folder, params, reports = stage6
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        report = serving.run(params)
    rows = report["serving"]["models"]
    candidates = {**reports["deploy"]["decision"]["candidates"], **reports["compress"]["decision"]["candidates"]}
    assert set(rows) == {"teacher", *candidates} == {"teacher", "pruned_teacher", "compressed_teacher"}
    for name, row in rows.items():
        assert row["ms_per_request_batch1"] > 0 and row["model_bytes"] > 0, name
        assert row["quality"] == (reports["deploy"]["methods"]["teacher"] if name == "teacher"
                                  else candidates[name])["quality"], name
    front = report["serving"]["pareto"]

    def dominated(name: str) -> bool:  # something at least as good and as fast, better in one of the two
        q, ms = rows[name]["quality"], rows[name]["ms_per_request_batch1"]
        return any(r["quality"] >= q and r["ms_per_request_batch1"] <= ms
                   and (r["quality"] > q or r["ms_per_request_batch1"] < ms) for k, r in rows.items() if k != name)

    assert front and set(front) == {n for n, r in rows.items() if r["pareto"]}
    assert all(not dominated(n) for n in front) and all(dominated(n) for n in set(rows) - set(front))
    plot = json.loads((folder / params.paths.reports / "plots/serving_pareto.json").read_text())
    assert {p["model"]: p["pareto"] for p in plot} == {n: n in front for n in rows}
    # the pruned teacher is smaller on disk than the teacher as the registry would store it
    assert rows["pruned_teacher"]["model_bytes"] < rows["teacher"]["model_bytes"]


def test_serving_disabled_is_skipped(stage6, tiny_teacher):
    from stages import serving

    params = _params(tiny_teacher, serving={"enabled": False})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(stage6[0])
        report = serving.run(params)
    assert report["summary"] == {"serving": "skipped"} and "models" not in report["serving"]
