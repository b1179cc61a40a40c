"""Structured pruning on SST-2: QUBO selection against the baselines people use, at equal sparsity.

    python -m bench.prune [--seeds 3] [--train 1024] [--eval 436] [--recovery 10] [--quick] [--solvers-only]
                          [--keep-solvers]
                          [--teacher PATH]   (reuse a fine-tuned teacher; else one is fine-tuned and cached)

The teacher (train.model, MiniLM by default) is fine-tuned once on a stratified SST-2 subset
(../shared/datasets/sst2) and cached in bench/.cache/prune_teacher. For every calibration seed (train documents
drawn afresh; the random baseline takes the same seed), both unit kinds (attention heads, FFN neurons), every
sparsity and every method, stages/deploy.py's own code prunes the teacher and scores it on the same stratified
SST-2 validation documents, without and with the same short recovery fine-tune. Then the solver cost on
1,536-variable FFN layer QUBOs: each solver's energy against the best known (the lowest of all runs,
including a long tabu reference) and its wall time.

Writes bench/results/prune.json and prints: per kind and sparsity, the mean +- sd accuracy of every method over
the seeds, the QUBO against the best baseline (paired difference over seeds, paired t-test p), and the solver
table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache" / "prune_teacher"
OUT = RESULTS / "prune.json"
SPARSITY = {"heads": [0.25, 0.5], "ffn": [0.3, 0.5, 0.7]}


def rows(name: str) -> list[dict]:
    with (SST2 / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def sst2(n_train: int, n_eval: int, max_length: int, model: str) -> tuple[dict, list[str]]:
    from qlife.models import load_tokenizer
    from qlife.quality import stratified_subset

    tok = load_tokenizer(model)
    train, val = rows("train"), rows("validation")
    tr = stratified_subset(np.array([r["label"] for r in train]), n_train, 0)
    rest = np.setdiff1d(np.arange(len(train)), tr)
    cal = rest[np.random.default_rng(1).permutation(len(rest))[:4096]]  # calibration pool: not the train subset
    ev = stratified_subset(np.array([r["label"] for r in val]), n_eval, 0)

    def part(rs, idx):
        return {"input_ids": tok([rs[int(i)]["text"] for i in idx], truncation=True, max_length=max_length)[
            "input_ids"], "label": [int(rs[int(i)]["label"]) for i in idx]}

    labels = json.loads((SST2 / "labels.json").read_text())
    # "train" is what recovery fine-tunes on and calibration draws from; "val" scores energy samples; "test" is
    # what every method is judged on (SST-2's labelled validation split: its test split has no labels)
    ds = {"train": part(train, tr), "calib": part(train, cal), "val": part(val, ev[: len(ev) // 2]),
          "test": part(val, ev)}
    return ds, [labels[k] for k in sorted(labels, key=int)]


def teacher_model(path: str | None, ds: dict, labels: list[str], model: str, max_length: int):
    from qlife.classifiers import load_classifier
    from qlife.io import write_json
    from qlife.loading import load_saved
    from qlife.methods.finetune import TrainConfig, finetune
    from qlife.models import load_tokenizer

    where = Path(path) if path else CACHE
    meta = {"max_length": max_length, "labels": labels}  # what train writes beside a teacher: a saved classifier
    if where == CACHE and (where / "config.json").exists() and not (where / "qlife.json").exists():
        write_json(where / "qlife.json", meta)  # a cache written before bench saved qlife.json
    if (where / "config.json").exists():
        return load_saved(where).model
    net = load_classifier(model, num_labels=len(labels), label_names=labels)
    t0 = time.perf_counter()
    finetune(net, ds["train"]["input_ids"], np.array(ds["train"]["label"]),
             TrainConfig(learning_rate=1e-4, epochs=2, max_length=max_length, seed=0), 0, desc="teacher")
    print(f"teacher fine-tuned in {time.perf_counter() - t0:.0f} s")
    where.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(where)
    load_tokenizer(model).save_pretrained(where)
    write_json(where / "qlife.json", meta)
    return load_saved(where).model


def prune_all(teacher, ds: dict, labels: list[str], seeds: list[int], recovery: int, max_length: int,
              quick: bool) -> dict:

    from qlife.deploy_prune import prune_kind
    from qlife.methods.finetune import predict_ids
    from qlife.methods.pruning import calibrate_all
    from qlife.params import parse_params
    from qlife.teacher_ops import Workbench

    test = (ds["test"]["input_ids"], np.array(ds["test"]["label"]))
    logits, _ = predict_ids(teacher, *test[:1], max_length, 0)
    out: dict = {"teacher_accuracy": float((logits.argmax(1) == test[1]).mean()), "seeds": {}}
    sparsity = {"heads": [0.5], "ffn": [0.5]} if quick else SPARSITY
    for seed in seeds:
        params = parse_params({"deploy": {
            "seed": seed, "recovery_steps": recovery, "calib_docs": 128, "energy_samples": 0 if quick else 4,
            "heads": {"sparsity": sparsity["heads"],
                      "solver": {"kind": "qaoa", "p": 1, "restarts": 2, "maxiter": 60, "shots": 1024, "seed": seed}},
            "ffn": {"sparsity": sparsity["ffn"], "solver": {"kind": "swap_tabu", "timeout_ms": 1000, "seed": seed}},
            "apply": {"method": "qubo", "heads": sparsity["heads"][0], "ffn": sparsity["ffn"][0]}},
            "train": {"class_weight": "none"}})
        wb = Workbench(params, teacher, Path(params.paths.teacher), ds, labels, max_length, 0, {})
        cals = calibrate_all(teacher, ("heads", "ffn"), *wb.calibration_batches(128, seed, "calib"))
        seed_out = {}
        for kind in ("heads", "ffn"):
            t0 = time.perf_counter()
            rep, _, _ = prune_kind(wb, kind, cals[kind], test)
            seed_out[kind] = rep
            print(f"seed {seed} {kind}: {time.perf_counter() - t0:.0f} s", flush=True)
            for s, row in rep["sparsity"].items():
                line = "  ".join(f"{m} {r.get('before_recovery', r)['accuracy']:.3f}"
                                 + (f"/{r['recovered']['accuracy']:.3f}"
                                                               if "recovered" in r else "")
                                 for m, r in row["methods"].items())
                print(f"  {kind} {s}: {line}", flush=True)
        out["seeds"][str(seed)] = seed_out
    return out


def summarise(res: dict) -> dict:
    from scipy.stats import ttest_rel

    seeds = list(res["seeds"])
    table: dict = {}
    for kind in ("heads", "ffn"):
        for s in res["seeds"][seeds[0]][kind]["sparsity"]:
            for arm in ("pruned", "recovered"):
                acc: dict[str, list[float]] = {}
                energy: dict[str, list[float]] = {}
                for seed in seeds:
                    for m, r in res["seeds"][seed][kind]["sparsity"][s]["methods"].items():
                        # a row's own figures are the kept state (after recovery unless it was rolled back):
                        # the pruned arm reads the figures before recovery
                        value = (r.get("before_recovery", r)["accuracy"] if arm == "pruned"
                                 else r.get("recovered", {}).get("accuracy"))
                        if value is not None:
                            acc.setdefault(m, []).append(value)
                        energy.setdefault(m, []).append(r["energy_gap"])
                if not acc:
                    continue
                base = {m: v for m, v in acc.items() if m not in ("qubo", "random")}
                best = max(base, key=lambda m: np.mean(base[m]))
                diff = np.array(acc["qubo"]) - np.array(acc[best])
                p = float(ttest_rel(acc["qubo"], acc[best]).pvalue) if len(seeds) > 1 and diff.std() > 0 else None
                table[f"{kind} {s} {arm}"] = {
                    "methods": {m: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                                    "energy_gap_mean": float(np.mean(energy[m]))} for m, v in acc.items()},
                    "best_baseline": best, "qubo_minus_best": float(diff.mean()),
                    "qubo_minus_best_sd": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0, "p_paired_t": p}
    return table


def solver_costs(teacher, ds: dict, max_length: int, layers: list[int], quick: bool) -> dict:
    from qlife.methods.pruning import calibrate_all, layer_scores
    from qlife.methods.selection import QuboSelector
    from qlife.params import PathIntegralSampler, SASampler, SwapTabuSampler, TabuSampler, parse_params
    from qlife.teacher_ops import Workbench

    wb = Workbench(parse_params({}), teacher, Path("."), ds, [], max_length, 0, {})
    cal = calibrate_all(teacher, ("ffn",), *wb.calibration_batches(128, 0, "calib"))["ffn"]
    solvers = {**{f"swap_tabu 1x1000ms seed {s}": SwapTabuSampler(timeout_ms=1000, seed=s) for s in range(3)},
               "swap_tabu 1x1500ms": SwapTabuSampler(timeout_ms=1500),
               "tabu 4x100ms": TabuSampler(num_reads=4, timeout_ms=100),
               "tabu 1x300ms": TabuSampler(num_reads=1, timeout_ms=300),
               "tabu 1x1000ms": TabuSampler(num_reads=1, timeout_ms=1000),
               "tabu 3x500ms": TabuSampler(num_reads=3, timeout_ms=500),
               "sa 4x1000": SASampler(num_reads=4, num_sweeps=1000)}
    slow = {"path_integral 2x500": PathIntegralSampler(num_reads=2, num_sweeps=500)}  # ~95 s: first layer only
    # the best known: the lowest energy of every run, these long ones included
    references = {"reference tabu 8x3000ms": TabuSampler(num_reads=8, timeout_ms=3000),
                  "reference swap_tabu 3x8000ms": SwapTabuSampler(num_reads=3, timeout_ms=8000, seed=100)}
    if quick:
        references = {"reference swap_tabu 1x8000ms": SwapTabuSampler(num_reads=1, timeout_ms=8000, seed=100)}
    out: dict = {}
    for layer in layers:
        sc = layer_scores(cal, None)[layer]
        k = sc.n // 2
        runs = {}
        extra = slow if layer == layers[0] and not quick else {}
        for name, spec in {**solvers, **extra, **references}.items():
            sel = QuboSelector(spec, f"bench.{name}")
            t0 = time.perf_counter()
            sel.select(sc, k)
            runs[name] = {"energy": sel.last.energy, "solver_s": sel.last.wall_s,
                          "select_s": time.perf_counter() - t0, "raw_feasible": sel.last.raw_feasible}
        best = min(r["energy"] for r in runs.values())
        for r in runs.values():
            r["gap"] = (r["energy"] - best) / max(abs(best), 1e-30)
        swap = [r["gap"] for n, r in runs.items() if n.startswith("swap_tabu 1x1000ms")]
        out[str(layer)] = {"variables": sc.n, "keep": k, "runs": runs, "swap_tabu_1s_worst_gap": max(swap),
                           "swap_tabu_1s_worst_solver_s": max(r["solver_s"] for n, r in runs.items()
                                                              if n.startswith("swap_tabu 1x1000ms"))}
        print(f"layer {layer} ({sc.n} variables): " + "  ".join(
            f"{n} gap {r['gap']:.2%} in {r['solver_s']:.2f} s" for n, r in runs.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train", type=int, default=1024)
    ap.add_argument("--eval", type=int, default=436)
    ap.add_argument("--recovery", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--quick", action="store_true", help="one seed, one sparsity per kind, no recovery")
    ap.add_argument("--solvers-only", action="store_true",
                    help="rerun only the solver table and replace it in bench/results/prune.json")
    ap.add_argument("--keep-solvers", action="store_true",
                    help="keep the solver table already in bench/results/prune.json (rerun only the accuracies)")
    args = ap.parse_args()
    from qlife.params import Train

    model = Train().model
    if args.quick:
        args.seeds, args.recovery = 1, 0
    ds, labels = sst2(args.train, args.eval, args.max_length, model)
    teacher = teacher_model(args.teacher, ds, labels, model, args.max_length)
    layers = list(range(teacher.config.num_hidden_layers))  # the solver table: every layer's FFN QUBO
    if args.solvers_only:
        res = json.loads(OUT.read_text())
        res["solvers"] = solver_costs(teacher, ds, args.max_length, layers, False)
        OUT.write_text(json.dumps(res, indent=1, default=float))
        print(f"wrote the solver table into {OUT}")
        return
    t0 = time.perf_counter()
    res = prune_all(teacher, ds, labels, list(range(args.seeds)), args.recovery, args.max_length, args.quick)
    res["summary"] = summarise(res)
    if args.keep_solvers and OUT.exists() and "solvers" in json.loads(OUT.read_text()):
        res["solvers"] = json.loads(OUT.read_text())["solvers"]  # the table of the last --solvers-only run
    else:
        res["solvers"] = solver_costs(teacher, ds, args.max_length, layers if not args.quick else [3], args.quick)
    res["config"] = {**vars(args), "model": model, "sparsity": SPARSITY, "test_docs": len(ds["test"]["label"]),
                     "calib_docs": 128, "wall_s": time.perf_counter() - t0}
    res["environment"] = environment()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1, default=float))
    print(f"teacher accuracy {res['teacher_accuracy']:.4f} on {len(ds['test']['label'])} SST-2 validation docs")
    for key, row in res["summary"].items():
        ms = "  ".join(f"{m} {v['mean']:.3f}+-{v['sd']:.3f}" for m, v in row["methods"].items())
        p = row["p_paired_t"]
        print(f"{key}: {ms} | qubo - {row['best_baseline']} = {row['qubo_minus_best']:+.4f} "
              f"(sd {row['qubo_minus_best_sd']:.4f}, p {p if p is None else f'{p:.3f}'})")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
