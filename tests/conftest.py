"""Shared fixtures: a tiny randomly initialised teacher and tiny params in a scratch folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with random weights and the bundled MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from qlife.models import load_tokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-teacher")
    tok = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def tiny_params_dict(teacher: str) -> dict:
    return {
        # tfidf: the tiny teacher's random weights embed every text alike (dedup would remove them all)
        "curate": {"generator": {"n_docs": 600, "live_size": 120}, "n_clusters": 8, "embedder": "tfidf"},
        "encode": {"max_length": 48, "n_features": 8},
        "search": {"budget": 2, "proxy_train_size": 32, "proxy_val_size": 32,
                   "space": {"learning_rate": [1e-3, 3e-3], "epochs": [1], "max_length": [32],
                             "batch_size": [16], "frozen_layers": [0]}},
        "train": {"model": teacher, "epochs": 1},
        "distill": {"epochs": 15, "patience": 5, "qubits": 4, "layers": 1, "vqc_epochs": 5,
                    "hardware_samples": 20,
                    "backends": [{"kind": "aer", "shots": 256}, {"kind": "device", "shots": 256}],
                    "qasm_check_samples": 20},
        # serving cost in this process: a fresh process per model (peak memory) costs ~7 s each; the isolated
        # path has its own tests (tests/reliability/test_serving_static.py, tests/stages/test_deploy.py)
        "deploy": {"calib_docs": 32, "serving": {"isolate": False}},
        "monitor": {"n_permutations": 100, "stream": {"window_rows": 100}},  # live windows of 120 records
        "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "qlife-test"},
    }


@pytest.fixture()
def tiny_workdir(tmp_path: Path, tiny_teacher: str, monkeypatch) -> Path:
    """A scratch project folder (cwd) holding a tiny params.yaml."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(tiny_teacher)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QLIFE_PIPELINE_RUN_ID", raising=False)
    return tmp_path
