"""Compression at equal bytes on SST-2 (CompactifAI, arXiv 2401.14109, on its own terms): MPO, MPO +
disentanglers, truncated SVD and FFN pruning, each healed by the same fine-tune and then quantized to int8,
beside the teacher quantized alone, compared at equal bytes of the served model with served latency; 3 seeds.

    python -m bench.compress [--seeds 3] [--first-seed 0] [--targets 4 4.5 5 5.25] [--methods ...] [--heal 20]
                             [--fit-steps 50] [--train 1024] [--eval 436] [--latency-docs 256] [--rounds 3]
                             [--teacher PATH] [--out FILE] [--control-only | --skip-control] [--quick]
    python -m bench.compress --merge A.json B.json ... [--out FILE]   (runs of the same settings, other cells)

The teacher (train.model, MiniLM by default) is fine-tuned once on a stratified SST-2 subset
(../shared/datasets/sst2) and cached in bench/.cache/prune_teacher (shared with bench.prune). Every model is
served by qlife.methods.int8: compressed layers as nn.Linear chains (`servable`), then torch's dynamic int8
quantization of every Linear (weights per output channel) and every embedding (per row); LayerNorms, biases and
disentangler generators stay float32. Bytes: `served_bytes` of that stored form (int8 entries + a float32 scale
per channel / scale and offset per embedding row + every float tensor at its width), embeddings included and
reported apart. Served compute (accuracy, latency): `materialize`: an MPO layer whose site-by-site contraction
costs more multiply-adds than the dense product is contracted at load from its int8 cores (and disentangler) into
a dense int8 Linear (it then takes the teacher's memory at run time; the bytes stored are the cores').

A target is a ratio of the float32 teacher's bytes to the served model's (4 = 4x fewer bytes). For each target,
method and seed the FFN compression ratio is chosen (bisection on the layer plans) so that the int8 model's
bytes are the largest the method reaches at or under the target; the compressed layers are the FFN ones for
every method. Per seed (calibration documents, layer-wise fit, healing batches seeded with it): compress with
qlife.methods.compressors (the layer-wise fit as stage 6), heal with `--heal` fine-tune steps on the same
training documents at the same learning rate (healing before quantization, as the paper does; the steps are
counted by an optimizer hook), quantize, score on the same SST-2 validation documents. Latency: texts/s of every
served model and both teachers on the same fixed batches at 1 thread, interleaved in rounds, after each seed.

Writes bench/results/compress.json (after every cell) and compress.png; prints a table per target: accuracy
mean +- sd over seeds, bytes, texts/s, and paired differences.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, environment
from bench.prune import CACHE, sst2, teacher_model

OUT = RESULTS / "compress.json"
METHODS = ("mpo", "mpo_disentangled", "svd", "prune")
TEACHER_INT8 = "teacher_int8"


def heal(model, ids, y, steps: int, learning_rate: float, seed: int, max_length: int, pad_id: int) -> int:
    """The healing fine-tune (every method alike: these documents, steps, rate and seed); returns the optimizer
    steps observed by a global step hook."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from qlife.methods.finetune import TrainConfig, finetune

    if steps <= 0:
        return 0
    count = [0]
    hook = register_optimizer_step_post_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        epochs = math.ceil(steps / math.ceil(len(ids) / 32))
        finetune(model, ids, np.asarray(y), TrainConfig(learning_rate=learning_rate, epochs=epochs, max_steps=steps,
                                                        max_length=max_length, seed=seed), pad_id, desc="heal")
    finally:
        hook.remove()
    return count[0]


def _int8_bytes(module) -> int:
    from torch import nn

    from qlife.methods.int8 import quantize_int8, servable, served_bytes

    return served_bytes(quantize_int8(servable(nn.Sequential(module))))["total"]


class BytePlanner:
    """Bytes of the int8 served teacher with its FFN layers replaced by a method at a ratio, from the layer plans
    (uninitialised layers of the planned shapes, served and counted like the real ones)."""

    def __init__(self, teacher, budget):
        from torch import nn

        from qlife.methods.int8 import quantize_int8, served_bytes
        from qlife.methods.pruning import ffn_neuron_cost, unit_counts

        self.teacher, self.b = teacher, budget
        self.teacher_int8 = served_bytes(quantize_int8(teacher))["total"]
        self.dense = sum(_int8_bytes(nn.Linear(m.in_features, m.out_features)) for m in budget.dense.values())
        self.per, self.fixed = ffn_neuron_cost(teacher)
        self.counts = unit_counts(teacher, "ffn")
        self._memo: dict = {}

    def layer(self, method: str, m, ratio: float) -> int:
        from torch import nn

        from qlife.methods import tensornet as tn

        if method == "prune":
            k = self.keep(ratio)
            shape = (m.in_features, k) if m.out_features == self.counts[0] else (k, m.out_features)
            return _int8_bytes(nn.Linear(*shape))
        p = tn.plan_layer("x", m, method, ratio, self.b.sites, self.b.disentangler_layers)
        spec = {"kind": "svd", "in_features": m.in_features, "out_features": m.out_features, "rank": p.rank} \
            if method == "svd" else {"kind": "mpo", "in_modes": p.in_modes, "out_modes": p.out_modes,
                                     "ranks": p.ranks}
        if p.disentangler_layers:
            spec["disentangler"] = {"in_modes": p.in_modes, "layers": p.disentangler_layers}
        return _int8_bytes(tn.build_layer(spec))

    def keep(self, ratio: float) -> int:
        """FFN neurons per layer prune_to_budget keeps at `ratio` (its own formula)."""
        n = self.counts[0]
        return int(max(1, min(n, (self.b.dense_parameters / len(self.counts) / ratio - self.fixed) // self.per)))

    def bytes_at(self, method: str, ratio: float) -> int:
        out = self.teacher_int8 - self.dense
        for m in self.b.dense.values():
            key = (method, m.in_features, m.out_features, ratio)
            if key not in self._memo:
                self._memo[key] = self.layer(method, m, ratio)
            out += self._memo[key]
        return out

    def ratio_for(self, method: str, target: float, hi: float = 256.0) -> float | None:
        """The smallest FFN ratio whose served bytes are at or under `target` (None: unreachable)."""
        if self.bytes_at(method, hi) > target:
            return None
        lo = 1.0
        if self.bytes_at(method, lo) <= target:
            return lo
        for _ in range(30):
            mid = math.sqrt(lo * hi)
            if self.bytes_at(method, mid) <= target:
                hi = mid
            else:
                lo = mid
        return hi


def latency(models: dict, batches: list[dict], rounds: int) -> dict[str, float]:
    """Texts/s of each model on the same batches, the models interleaved in `rounds` (median over rounds)."""
    import torch

    docs = sum(len(b["input_ids"]) for b in batches)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(**batches[0])  # warm-up
        for _ in range(rounds):
            for k, m in models.items():
                t0 = time.perf_counter()
                for b in batches:
                    m(**b)
                times[k].append(time.perf_counter() - t0)
    return {k: docs / float(np.median(v)) for k, v in times.items()}


def accuracy(model, ids, y, max_length: int) -> float:
    from qlife.methods.finetune import predict_ids

    return float((predict_ids(model, ids, max_length, 0)[0].argmax(1) == y).mean())


def seed_setup(teacher, ds: dict, labels: list[str], seed: int, args) -> dict:
    """What every cell of a seed shares: the calibration (layer inputs, the FFN pruning planner) drawn with the
    seed, the byte planner, the healing learning rate."""
    from qlife.deploy_compress import make_budget
    from qlife.params import parse_params
    from qlife.teacher_ops import Workbench

    params = parse_params({"deploy": {
        "seed": seed, "calib_docs": 128,
        "ffn": {"sparsity": [0.5], "solver": {"kind": "swap_tabu", "timeout_ms": 1000, "seed": seed}},
        "apply": {"method": "qubo", "heads": 0.0, "ffn": 0.5},
        "compress": {"methods": list(METHODS), "targets": ["ffn"], "fit_steps": args.fit_steps,
                     "disentangler_layers": 2, "calib_tokens": 1024, "recovery_steps": args.heal,
                     "apply": {"method": "mpo_disentangled", "ratio": 3.0}, "ratios": [3.0]}},
        "train": {"class_weight": "none"}})
    budget = make_budget(Workbench(params, teacher, CACHE, ds, labels, args.max_length, 0, {}), "calib")
    return {"budget": budget, "planner": BytePlanner(teacher, budget),
            "learning_rate": args.heal_lr or params.deploy.compress.recovery_learning_rate}


def run_cell(teacher, ds: dict, setup: dict, seed: int, method: str, target: float, teacher_total: int, args
             ) -> tuple[dict, object]:
    """One method at one byte target and seed: compressed (with the layer-wise fit), healed, quantized, scored;
    (its row, the served int8 model)."""
    from qlife.methods.compressors import COMPRESSORS
    from qlife.methods.int8 import materialize, quantize_int8, servable, served_bytes

    planner = setup["planner"]
    ratio = planner.ratio_for(method, target)
    if ratio is None:
        return {"skipped": "target bytes out of reach"}, None
    test_ids, y = ds["test"]["input_ids"], np.array(ds["test"]["label"])
    t0 = time.perf_counter()
    model, row = COMPRESSORS[method](teacher, setup["budget"].at(ratio))
    before = accuracy(model, test_ids, y, args.max_length)
    steps = heal(model, ds["train"]["input_ids"], np.array(ds["train"]["label"]), args.heal, setup["learning_rate"],
                 seed, args.max_length, 0)
    healed = accuracy(model, test_ids, y, args.max_length)
    stored = quantize_int8(servable(model))
    size = served_bytes(stored)
    q, paths = materialize(stored)
    cell = {"ffn_ratio": ratio, "accuracy": accuracy(q, test_ids, y, args.max_length),
            "mpo_served_as": sorted(set(paths.values())),
            "float_before_healing": before, "float_after_healing": healed, "healing_steps": steps,
            "bytes": size, "bytes_planned": planner.bytes_at(method, ratio),
            "bytes_ratio": teacher_total / size["total"], "wall_s": time.perf_counter() - t0,
            **{k: v for k, v in row.items() if k in ("layout", "pruning")}}
    if "fit" in row:
        cell["fit_relative_error"] = row["fit"]["mean_relative_error_after"]
    print(f"seed {seed} {method}: ffn ratio {ratio:.2f}, {size['total'] / 1e6:.2f} MB ({cell['bytes_ratio']:.2f}x), "
          f"accuracy {before:.3f} -> healed {healed:.3f} -> int8 {cell['accuracy']:.3f} ({steps} steps, "
          f"{cell['wall_s']:.0f} s)", flush=True)
    return cell, q


def teacher_healed(teacher, ds: dict, seed: int, args) -> dict:
    """The control: the teacher healed by the same fine-tune (steps, documents, rate, seed) as every method, then
    quantized: what healing alone does."""
    import copy

    from qlife.methods.int8 import quantize_int8

    test_ids, y = ds["test"]["input_ids"], np.array(ds["test"]["label"])
    model = copy.deepcopy(teacher)
    steps = heal(model, ds["train"]["input_ids"], np.array(ds["train"]["label"]), args.heal,
                 args.heal_lr, seed, args.max_length, 0)
    row = {"float_after_healing": accuracy(model, test_ids, y, args.max_length), "healing_steps": steps,
           "accuracy": accuracy(quantize_int8(model), test_ids, y, args.max_length)}
    print(f"seed {seed} teacher healed: float {row['float_after_healing']:.3f}, int8 {row['accuracy']:.3f}",
          flush=True)
    return row


def run_target(teacher, teacher_int8, ds: dict, labels: list[str], label: str, res: dict, setups: dict, args,
               save) -> None:
    """Every seed and method at one byte target (results saved after every cell); after each seed, the latency of
    its served models beside both teachers, interleaved on the same batches."""
    target = res["teacher_bytes"]["total"] / res["targets"][label]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if seed not in setups:
            setups[seed] = seed_setup(teacher, ds, labels, seed, args)
        cur, served = res["seeds"].setdefault(str(seed), {"cells": {}, "texts_per_s": {}}), {}
        for method in args.methods:
            print(f"{label}x:", end=" ", flush=True)
            cell, q = run_cell(teacher, ds, setups[seed], seed, method, target, res["teacher_bytes"]["total"], args)
            cur["cells"].setdefault(label, {})[method] = cell
            if q is not None:
                served[method] = q
            save()
        speed = latency({"teacher_fp32": teacher, TEACHER_INT8: teacher_int8, **served}, latency_batches(ds, args),
                        args.rounds)
        cur["texts_per_s"].update({f"{label}/{m}": v for m, v in speed.items()})
        print(f"{label}x seed {seed} texts/s (1 thread): " + ", ".join(f"{m} {v:.0f}" for m, v in speed.items()),
              flush=True)
        save()


def latency_batches(ds: dict, args) -> list[dict]:
    from qlife.methods.finetune import collate

    ids = ds["test"]["input_ids"][: args.latency_docs]
    return [{k: v for k, v in collate(ids[i:i + 32], args.max_length, 0).items() if k not in ("labels", "label")}
            for i in range(0, len(ids), 32)]


def _paired(a: list[float], b: list[float]) -> dict:
    from scipy.stats import ttest_rel

    d = np.subtract(a, b)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    p = float(ttest_rel(a, b).pvalue) if len(d) > 1 and sd > 0 else None
    return {"mean": float(d.mean()), "sd": sd, "p_paired_t": p, "n": len(d)}


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def summarise(res: dict) -> dict:
    """Per target: every method's int8 accuracy over the seeds every method was run at (mean, sd, values: paired
    by position), bytes, texts/s; paired differences (seeds) against the int8 teacher and MPO + disentanglers
    against the others. Seeds some method lacks are left out of the row and listed under `incomplete_seeds`
    (their accuracies there); with no complete seed, every seed counts."""
    t8, t32 = res["teacher_int8"]["accuracy"], res["teacher_accuracy"]
    out = {}
    for label in res["targets"]:
        ran = {k: s for k, s in res["seeds"].items() if label in s.get("cells", {})}
        present = {k: {m for m, c in s["cells"][label].items() if "accuracy" in c} for k, s in ran.items()}
        every = set().union(*present.values()) if present else set()
        complete = [k for k in ran if present[k] == every]
        seeds = [ran[k] for k in complete] if complete else list(ran.values())
        incomplete = {k: {m: ran[k]["cells"][label][m]["accuracy"] for m in present[k]} for k in ran
                      if k not in complete}
        methods = {}
        for m in METHODS:
            cells = [s["cells"][label][m] for s in seeds if "accuracy" in s["cells"].get(label, {}).get(m, {})]
            if not cells:
                continue
            acc = [c["accuracy"] for c in cells]
            methods[m] = {"mean": float(np.mean(acc)), "sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                          "values": acc, "gap_to_teacher": t32 - float(np.mean(acc)),
                          "float_after_healing_mean": float(np.mean([c["float_after_healing"] for c in cells])),
                          "float_before_healing_mean": float(np.mean([c["float_before_healing"] for c in cells])),
                          "bytes": int(np.mean([c["bytes"]["total"] for c in cells])),
                          "bytes_without_embeddings": int(np.mean([c["bytes"]["body"] for c in cells])),
                          "bytes_ratio": float(np.mean([c["bytes_ratio"] for c in cells])),
                          "ffn_ratio": float(np.mean([c["ffn_ratio"] for c in cells])),
                          "healing_steps": sorted({c["healing_steps"] for c in cells}),
                          "texts_per_s": _mean([s["texts_per_s"][f"{label}/{m}"] for s in seeds
                                                if f"{label}/{m}" in s.get("texts_per_s", {})]),
                          "minus_teacher_int8": _paired(acc, [t8] * len(acc))}
        teachers = {k: _mean([s["texts_per_s"][f"{label}/{k}"] for s in seeds
                              if f"{label}/{k}" in s.get("texts_per_s", {})]) for k in ("teacher_fp32", TEACHER_INT8)}
        row: dict = {"target_bytes_ratio": res["targets"][label], "methods": methods,
                     "teacher_texts_per_s": {k: v for k, v in teachers.items() if v is not None},
                     "seeds_used": complete or list(ran), "incomplete_seeds": incomplete}
        if "mpo_disentangled" in methods:
            for other in ("mpo", "svd", "prune"):
                if other in methods and len(methods[other]["values"]) == len(methods["mpo_disentangled"]["values"]):
                    row[f"mpo_disentangled_minus_{other}"] = _paired(methods["mpo_disentangled"]["values"],
                                                                     methods[other]["values"])
        if methods:
            best = max(methods, key=lambda k: methods[k]["mean"])
            row["best"] = best
            row["within_3_points_of_teacher"] = sorted(k for k, v in methods.items() if v["gap_to_teacher"] <= 0.03)
        out[label] = row
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        pts = [(row["methods"][m]["bytes"] / 1e6, row["methods"][m]["mean"], row["methods"][m]["sd"])
               for row in res["summary"].values() if m in row["methods"]]
        if pts:
            x, y, e = zip(*sorted(pts))
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"{m} + int8")
    ax.scatter([res["teacher_int8"]["bytes"]["total"] / 1e6], [res["teacher_int8"]["accuracy"]], marker="s",
               color="k", label="teacher int8")
    healed = [h["accuracy"] for h in res.get("teacher_healed", {}).values()]
    if healed:
        ax.errorbar([res["teacher_int8"]["bytes"]["total"] / 1e6], [np.mean(healed)],
                    yerr=[np.std(healed, ddof=1) if len(healed) > 1 else 0.0], marker="^", color="k", capsize=3,
                    label="teacher healed alike + int8 (control)")
    ax.axhline(res["teacher_accuracy"], color="grey", ls="--",
               label=f"teacher float32 ({res['teacher_bytes']['total'] / 1e6:.0f} MB)")
    ax.axhline(res["teacher_accuracy"] - 0.03, color="grey", ls=":", label="teacher - 3 points")
    ax.set_xlabel("served bytes (MB, embeddings included)")
    ax.set_ylabel("SST-2 validation accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(res: dict) -> None:
    tb, t8 = res["teacher_bytes"], res["teacher_int8"]
    print(f"teacher float32: accuracy {res['teacher_accuracy']:.4f}, {tb['total'] / 1e6:.2f} MB (embeddings "
          f"{tb['embeddings'] / tb['total']:.1%}); teacher int8: {t8['accuracy']:.4f}, {t8['bytes']['total'] / 1e6:.2f}"
          f" MB ({tb['total'] / t8['bytes']['total']:.2f}x; embeddings {t8['bytes']['embeddings'] / 1e6:.2f} MB)")
    healed = list(res.get("teacher_healed", {}).values())
    if healed:
        print(f"control, the teacher healed alike ({len(healed)} seeds): float32 "
              f"{np.mean([h['float_after_healing'] for h in healed]):.4f}, int8 "
              f"{np.mean([h['accuracy'] for h in healed]):.4f}")
    for label, row in res["summary"].items():
        print(f"\n{label}x fewer bytes than float32 (target {tb['total'] / row['target_bytes_ratio'] / 1e6:.2f} MB):")
        ts = row.get("teacher_texts_per_s", {})
        if ts:
            print(f"  texts/s in the same rounds (1 thread): teacher float32 {ts['teacher_fp32']:.0f}, teacher int8 "
                  f"{ts[TEACHER_INT8]:.0f}")
        print(f"  {'method + int8':18s} {'accuracy':>15s} {'- teacher int8':>15s} {'MB':>6s} {'MB w/o emb':>10s} "
              f"{'ratio':>6s} {'ffn x':>6s} {'texts/s':>8s} {'fp32 before / after healing':>27s}")
        for m, v in row["methods"].items():
            d = v["minus_teacher_int8"]
            print(f"  {m:18s} {v['mean']:.4f} +- {v['sd']:.4f} {d['mean']:+.4f} (n {d['n']})  "
                  f"{v['bytes'] / 1e6:6.2f} {v['bytes_without_embeddings'] / 1e6:10.2f} {v['bytes_ratio']:6.2f} "
                  f"{v['ffn_ratio']:6.2f} {v['texts_per_s'] or float('nan'):8.0f} "
                  f"{v['float_before_healing_mean']:18.4f} / {v['float_after_healing_mean']:.4f}")
        for k in ("mpo_disentangled_minus_mpo", "mpo_disentangled_minus_svd", "mpo_disentangled_minus_prune"):
            if k in row:
                p = row[k]["p_paired_t"]
                print(f"  {k}: {row[k]['mean']:+.4f} (sd {row[k]['sd']:.4f}, p {'n/a' if p is None else f'{p:.3f}'})")
        for k, accs in row.get("incomplete_seeds", {}).items():
            print(f"  seed {k}, left out (not every method ran): " + ", ".join(f"{m} {a:.4f}" for m, a in accs.items()))
        within = ", ".join(row.get("within_3_points_of_teacher", [])) or "none"
        print(f"  within 3 points of the float32 teacher: {within}")


def main() -> None:
    import torch

    from qlife.methods.int8 import quantize_int8, served_bytes
    from qlife.params import Compress, Train

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--targets", type=float, nargs="+", default=[4.0, 4.5, 5.0, 5.25])
    ap.add_argument("--heal", type=int, default=20)
    ap.add_argument("--heal-lr", type=float, default=None,
                    help="the healing's peak learning rate (default: the stage's recovery_learning_rate)")
    ap.add_argument("--fit-steps", type=int, default=50)
    ap.add_argument("--train", type=int, default=1024)
    ap.add_argument("--eval", type=int, default=436)
    ap.add_argument("--latency-docs", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--quick", action="store_true", help="one seed, target 5, 2 healing / 5 fit steps, 64 eval docs")
    ap.add_argument("--control-only", action="store_true", help="only the healed-teacher control")
    ap.add_argument("--skip-control", action="store_true", help="no healed-teacher control")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--merge", nargs="+", help="combine result files of the same settings (other targets), then "
                                               "summarise, plot and print into --out")
    args = ap.parse_args()
    if args.merge:
        finish(merge([json.loads(Path(f).read_text()) for f in args.merge]), Path(args.out))
        return
    torch.set_num_threads(1)
    args.heal_lr = args.heal_lr or Compress().recovery_learning_rate  # recorded in the config as used
    if args.quick:
        args.seeds, args.targets, args.heal, args.eval, args.latency_docs, args.rounds = 1, [5.0], 2, 64, 64, 1
        args.fit_steps = 5
    model = Train().model
    ds, labels = sst2(args.train, args.eval, args.max_length, model)
    teacher = teacher_model(args.teacher, ds, labels, model, args.max_length).eval()
    y = np.array(ds["test"]["label"])
    tb = served_bytes(teacher)
    t8 = quantize_int8(teacher)
    res: dict = {"teacher_accuracy": accuracy(teacher, ds["test"]["input_ids"], y, args.max_length),
                 "teacher_bytes": tb, "teacher_int8": {"accuracy": accuracy(t8, ds["test"]["input_ids"], y,
                                                                             args.max_length),
                                                       "bytes": served_bytes(t8)},
                 "targets": {f"{t:g}": t for t in args.targets}, "seeds": {},
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}
    out = Path(args.out)
    t0 = time.perf_counter()

    def save() -> None:
        res["summary"] = summarise(res)
        res["config"] = {**vars(args), "model": model, "test_docs": len(y), "wall_s": time.perf_counter() - t0,
                         "compressed_layers": "ffn (every method)", "healing": "before quantization"}
        res["environment"] = environment()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))

    res["teacher_healed"] = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds) if not args.skip_control else ():
        # the control: healing alone, without compression
        res["teacher_healed"][str(seed)] = teacher_healed(teacher, ds, seed, args)
        save()
    if args.control_only:
        return
    setups: dict = {}
    for label in res["targets"]:
        run_target(teacher, t8, ds, labels, label, res, setups, args, save)
    save()
    finish(res, out, plot_too=not args.quick)


def finish(res: dict, out: Path, plot_too: bool = True) -> None:
    res["summary"] = summarise(res)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    if plot_too:
        plot(res, out.with_suffix(".png"))
    print_table(res)
    print(f"wrote {out}")


def merge(parts: list[dict]) -> dict:
    """Runs of the same teacher and settings at other targets, as one result (cells, latencies, configs)."""
    res = {k: parts[0][k] for k in ("teacher_accuracy", "teacher_bytes", "teacher_int8", "created", "environment")}
    res["teacher_healed"] = {k: v for p in parts for k, v in p.get("teacher_healed", {}).items()}
    keep = ("heal", "heal_lr", "fit_steps", "train", "eval", "latency_docs", "rounds", "max_length")
    if any({k: p["config"].get(k) for k in keep} != {k: parts[0]["config"].get(k) for k in keep} for p in parts):
        raise ValueError(f"merge: the runs differ in their settings ({keep})")
    labels = sorted({k: v for p in parts for k, v in p["targets"].items()}.items(), key=lambda kv: kv[1])
    res["targets"], res["seeds"] = dict(labels), {}
    for p in parts:
        for label, lat in p.get("latency", {}).items():  # runs before the teachers' texts/s went per seed
            ran = sorted((k for k in p["seeds"] if label in p["seeds"][k].get("cells", {})), key=int)
            for k, fp32, i8 in zip(ran, lat["teacher_fp32"], lat[TEACHER_INT8]):
                p["seeds"][k]["texts_per_s"].update({f"{label}/teacher_fp32": fp32, f"{label}/{TEACHER_INT8}": i8})
        for seed, s in p["seeds"].items():
            cur = res["seeds"].setdefault(seed, {"cells": {}, "texts_per_s": {}})
            for label, cells in s["cells"].items():
                cur["cells"].setdefault(label, {}).update(cells)
            cur["texts_per_s"].update(s.get("texts_per_s", {}))
    res["config"] = {**parts[0]["config"], "targets": [v for _, v in labels], "merged": len(parts),
                     "wall_s": [p["config"]["wall_s"] for p in parts]}
    return res


if __name__ == "__main__":
    main()
