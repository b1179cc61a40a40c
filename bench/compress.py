"""Tensor-network compression on SST-2: MPO, MPO + disentanglers, truncated SVD and FFN pruning at equal
parameters, compression ratios 2x, 3x, 5x on the compressed (feed-forward) layers, 3 seeds.

    python -m bench.compress [--seeds 3] [--ratios 2 3 5] [--train 1024] [--eval 436] [--recovery 30]
                             [--fit-steps 50] [--targets ffn] [--teacher PATH] [--quick]

The teacher (train.model, MiniLM by default) is fine-tuned once on a stratified SST-2 subset
(../shared/datasets/sst2) and cached in bench/.cache/prune_teacher (shared with bench.prune). For each seed
(calibration documents drawn afresh, the fit and the recovery fine-tune seeded with it) stages/deploy.py's own
`compress_teacher` compresses the teacher by every method at every ratio, with the same layer-wise fit and the
same recovery fine-tune, and scores it on the same stratified SST-2 validation documents.

Writes bench/results/compress.json and prints, per ratio: mean +- sd accuracy of every method over the seeds,
MPO + disentanglers minus SVD (paired over seeds), and the gap to the uncompressed teacher. The goals of the
issue: MPO + disentanglers above SVD at every ratio, within 3% of the teacher at 3x.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment
from bench.prune import sst2, teacher_model

OUT = RESULTS / "compress.json"


def run_seed(teacher, ds: dict, labels: list[str], seed: int, args) -> dict:
    from qlife.deploy_compress import compress_all
    from qlife.params import parse_params
    from qlife.teacher_ops import Workbench

    params = parse_params({"deploy": {
        "seed": seed, "calib_docs": 128,
        "ffn": {"sparsity": [0.5], "solver": {"kind": "swap_tabu", "timeout_ms": 1000, "seed": seed}},
        "apply": {"method": "qubo", "heads": 0.0, "ffn": 0.5},
        "compress": {"ratios": args.ratios, "targets": args.targets, "recovery_steps": args.recovery,
                     "fit_steps": args.fit_steps, "apply": {"method": "mpo_disentangled", "ratio": args.ratios[0]}}},
        "train": {"class_weight": "none"}})
    wb = Workbench(params, teacher, Path(params.paths.teacher), ds, labels, args.max_length, 0, {})
    test = wb.split("test")
    with tempfile.TemporaryDirectory() as scratch:
        rep, _, _ = compress_all(wb, test, Path(scratch) / "circuits", calibration_split="calib")
    for r, row in rep["ratios"].items():
        line = "  ".join(f"{m} {v['before_recovery']['quality']:.3f}/{v['quality']:.3f}"
                         for m, v in row["methods"].items() if "accuracy" in v)
        print(f"seed {seed} x{r} (before/after recovery): {line}", flush=True)
    return rep


def summarise(res: dict, teacher_acc: float) -> dict:
    from scipy.stats import ttest_rel

    out = {}
    seeds = list(res["seeds"].values())
    for r in seeds[0]["ratios"]:
        methods = {}
        for m in seeds[0]["ratios"][r]["methods"]:
            acc = [s["ratios"][r]["methods"][m].get("accuracy") for s in seeds]
            if any(a is None for a in acc):
                continue
            row0 = seeds[0]["ratios"][r]["methods"][m]
            methods[m] = {"mean": float(np.mean(acc)), "sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                          "values": acc, "before_recovery_mean": float(np.mean(
                              [s["ratios"][r]["methods"][m]["before_recovery"]["accuracy"] for s in seeds])),
                          "compressed_layer_parameters": row0["compressed_layer_parameters"],
                          "ratio_achieved": row0["ratio_achieved"], "parameters": row0["parameters"],
                          "ms_per_doc": float(np.mean([s["ratios"][r]["methods"][m]["ms_per_doc"] for s in seeds]))}
            if "fit" in row0:
                methods[m]["fit_relative_error"] = float(np.mean(
                    [s["ratios"][r]["methods"][m]["fit"]["mean_relative_error_after"] for s in seeds]))
        row = {"methods": methods, "teacher_accuracy": teacher_acc}
        if "mpo_disentangled" in methods and "svd" in methods:
            a, b = methods["mpo_disentangled"]["values"], methods["svd"]["values"]
            d = np.subtract(a, b)
            row["mpo_dis_minus_svd"] = float(d.mean())
            row["mpo_dis_minus_svd_sd"] = float(d.std(ddof=1)) if len(d) > 1 else 0.0
            row["p_paired_t"] = float(ttest_rel(a, b).pvalue) if len(d) > 1 and d.std() > 0 else None
            row["mpo_dis_gap_to_teacher"] = teacher_acc - methods["mpo_disentangled"]["mean"]
        if "mpo_disentangled" in methods and "mpo" in methods:
            row["disentangler_gain"] = methods["mpo_disentangled"]["mean"] - methods["mpo"]["mean"]
        out[r] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ratios", type=float, nargs="+", default=[2.0, 3.0, 5.0])
    ap.add_argument("--train", type=int, default=1024)
    ap.add_argument("--eval", type=int, default=436)
    ap.add_argument("--recovery", type=int, default=30)
    ap.add_argument("--fit-steps", type=int, default=50)
    ap.add_argument("--targets", nargs="+", default=["ffn"])
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--quick", action="store_true", help="one seed, ratio 3, no recovery")
    args = ap.parse_args()
    from qlife.methods.finetune import predict_ids
    from qlife.params import Train

    if args.quick:
        args.seeds, args.ratios, args.recovery = 1, [3.0], 0
    model = Train().model
    ds, labels = sst2(args.train, args.eval, args.max_length, model)
    teacher = teacher_model(args.teacher, ds, labels, model, args.max_length)
    logits, _ = predict_ids(teacher, ds["test"]["input_ids"], args.max_length, 0)
    teacher_acc = float((logits.argmax(1) == np.array(ds["test"]["label"])).mean())
    t0 = time.perf_counter()
    res: dict = {"teacher_accuracy": teacher_acc, "seeds": {}}
    for seed in range(args.seeds):
        s0 = time.perf_counter()
        res["seeds"][str(seed)] = run_seed(teacher, ds, labels, seed, args)
        print(f"seed {seed}: {time.perf_counter() - s0:.0f} s", flush=True)
    res["summary"] = summarise(res, teacher_acc)
    res["config"] = {**vars(args), "model": model, "test_docs": len(ds["test"]["label"]),
                     "wall_s": time.perf_counter() - t0}
    res["environment"] = environment()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1, default=float))
    print(f"teacher accuracy {teacher_acc:.4f} on {len(ds['test']['label'])} SST-2 validation docs")
    for r, row in res["summary"].items():
        ms = "  ".join(f"{m} {v['mean']:.3f}+-{v['sd']:.3f} ({v['compressed_layer_parameters']:,} p)"
                       for m, v in row["methods"].items())
        extra = ""
        if "mpo_dis_minus_svd" in row:
            p = row["p_paired_t"]
            extra = (f" | mpo_dis - svd {row['mpo_dis_minus_svd']:+.4f} (sd {row['mpo_dis_minus_svd_sd']:.4f}, "
                     f"p {p if p is None else f'{p:.3f}'}); gap to teacher {row['mpo_dis_gap_to_teacher']:+.4f}")
        print(f"x{r}: {ms}{extra}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
