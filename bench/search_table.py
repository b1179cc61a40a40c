"""The tabular SST-2 search benchmark's table: the stage's own proxy fine-tuning, every configuration once.

    python -m bench.search_table [--train 160] [--val 200]

Tabular HPO benchmarks (HPO-B, NAS-Bench) evaluate a whole discrete space once so that searchers can be
repeated over many seeds for free: a search then looks its scores up. The evaluator is
`qlife.methods.finetune.make_evaluator` (the search stage's proxy fine-tuning of the MiniLM teacher on a
stratified subset of 160 SST-2 train phrases, macro-F1 on 200 SST-2 validation sentences; ~10-20 s per
configuration on 2 cores), the space
`SPACE` below (120 configurations: learning rate x epochs x frozen layers x head x batch size; max_length 64).
Rows are appended as they finish to bench/results/search_table_sst2.json, so an interrupted run resumes where
it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
TABLE = RESULTS / "search_table_sst2.json"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SPACE: dict[str, list] = {
    "learning_rate": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
    "epochs": [1, 2],
    "frozen_layers": [0, 2, 4],
    "head": ["linear", "mlp"],
    "batch_size": [16, 32],
}
FIXED = {"max_length": 64}


def configs() -> list[dict]:
    keys = list(SPACE)
    return [dict(zip(keys, v)) for v in itertools.product(*(SPACE[k] for k in keys))]


def sst2_proxy(n_train: int, n_val: int, seed: int = 0):
    from qlife.methods.finetune import ProxyData
    from qlife.models import load_tokenizer
    from qlife.quality import stratified_subset

    def rows(name: str) -> list[dict]:
        with (SST2 / f"{name}.jsonl").open() as f:
            return [json.loads(line) for line in f]

    tok = load_tokenizer(MODEL)
    train, val = rows("train"), rows("validation")
    tr = stratified_subset(np.array([r["label"] for r in train]), n_train, seed)
    va = stratified_subset(np.array([r["label"] for r in val]), n_val, seed + 1)

    def ids(rs: list[dict], idx: np.ndarray) -> list[list[int]]:
        return tok([rs[int(i)]["text"] for i in idx], truncation=True, max_length=128)["input_ids"]

    labels = json.loads((SST2 / "labels.json").read_text())
    return ProxyData(ids(train, tr), np.array([train[int(i)]["label"] for i in tr]), ids(val, va),
                     np.array([val[int(i)]["label"] for i in va]), [labels[k] for k in sorted(labels, key=int)],
                     tok.pad_token_id or 0)


def load_table() -> dict | None:
    return json.loads(TABLE.read_text()) if TABLE.exists() else None


def build(n_train: int = 160, n_val: int = 200, seed: int = 0) -> dict:
    from qlife.methods.finetune import make_evaluator
    from qlife.params import Quality

    meta = {"space": SPACE, "fixed": FIXED, "model": MODEL, "train_docs": n_train, "val_docs": n_val, "seed": seed,
            "metric": "macro_f1",
            "evaluator": "qlife.methods.finetune.make_evaluator (the search stage's proxy fine-tuning)"}
    table = load_table()
    if table is None or {k: table.get(k) for k in meta} != json.loads(json.dumps(meta)):
        table = {**meta, "environment": environment(), "rows": []}
    done = {json.dumps({k: r[k] for k in SPACE}, sort_keys=True) for r in table["rows"]}
    evaluate = make_evaluator(MODEL, sst2_proxy(n_train, n_val, seed), seed, "balanced", Quality(), FIXED)
    todo = [c for c in configs() if json.dumps(c, sort_keys=True) not in done]
    print(f"search table: {len(table['rows'])} of {len(configs())} done, {len(todo)} to go", flush=True)
    for c in todo:
        t0, c0 = time.perf_counter(), time.process_time()
        score = evaluate(c)
        row = {**c, "score": score, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
        table["rows"].append(row)
        RESULTS.mkdir(parents=True, exist_ok=True)
        tmp = TABLE.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(table, indent=1))
        tmp.replace(TABLE)
        print(f"  {len(table['rows'])}/{len(configs())} {c} -> {score:.4f} ({row['wall_s']:.1f} s)", flush=True)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=160)
    ap.add_argument("--val", type=int, default=200)
    args = ap.parse_args()
    build(args.train, args.val)


if __name__ == "__main__":
    main()
