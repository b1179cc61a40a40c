"""Block (layer) removal as a QUBO, against the truth: every subset of removed blocks evaluated.

    python -m bench.blocks [--quick] [--seeds 3] [--models minilm llama] [--val-docs 872] [--calib 128]

Arxiv 2602.00161 chooses which transformer blocks to drop as a constrained binary optimisation (each block's and
each pair's measured removal cost: qlife.methods.blocks); a reviewer noted an excited state beat the ground state.
Here the models are small enough to evaluate every one of the C(L, k) subsets on a fixed validation set:

- MiniLM-L6 fine-tuned on SST-2 (bench.prune's cached teacher, bench/.cache/prune_teacher), L = 6, k = 2 (L/4 =
  1.5 rounded half up) and 3 (L/2); truth on SST-2 validation (`--val-docs`, all 872 by default): cross-entropy and
  accuracy of the classifier. Seeds: the calibration draw (`--calib` SST-2 train documents outside the
  fine-tuning subset).
- a 12-block Llama (qlife.decoder_lm: its BPE tokenizer and causal-LM pre-training; width 48, 4 heads, 2 kv
  heads) trained on SST-2 train sentences as a language model, k = 3 (L/4) and 6 (L/2; C(12, 6) = 924 subsets);
  truth on fixed SST-2 validation sentences: next-token cross-entropy and accuracy. 12 blocks, not 16: on the
  shared 2 cores a 16-block model's C(16, 8) = 12,870 subsets (and its pre-training) did not fit the session.
  Seeds: the model's training seed and the calibration draw (`--calib-lm` train sentences).

Per model, seed and k: the Spearman correlation over all subsets of the QUBO energy (loss objective; the KL one
and the diagonal alone beside it) with the true loss; the rank of the ground state, of each solver's answer
(exact, QAOA, SA, tabu, path-integral annealing, through qlife.quantum.backends; D-Wave needs a Leap token) and
of each baseline's (Block Influence, magnitude, the diagonal twin, random) among all subsets by true loss; and
whether a low-energy state (the 10 lowest) beats the ground state in true loss. Goal: the QUBO's answer within the
best 5% of subsets and ahead of Block Influence at k = L/2.

Writes bench/results/blocks.json (after every model, seed and k: a cut run keeps what it measured) and prints the
table. Truth tables are cached in bench/.cache/blocks/ (keyed by model, seed, k and validation set).
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from bench.common import RESULTS, environment

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache" / "blocks"
OUT = RESULTS / "blocks.json"
LOW = 10  # the lowest-energy states looked at for one that beats the ground state
# the decoder: small enough that every one of C(12, 6) subsets evaluates in well under a second
LLAMA = {"hidden": 48, "layers": 12, "heads": 4, "kv_heads": 2, "intermediate": 96, "max_positions": 64}
LLAMA_VOCAB, LLAMA_CONTEXT, LLAMA_STEPS = 512, 32, 600


def _jsonl(name: str) -> list[dict]:
    with (SST2 / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def solvers(seed: int) -> dict:
    from qlife.params import ExactSampler, PathIntegralSampler, QAOASampler, SASampler, TabuSampler

    return {"exact": ExactSampler(), "qaoa": QAOASampler(p=1, restarts=2, maxiter=60, shots=1024, seed=seed),
            "sa": SASampler(num_reads=100, num_sweeps=1000, seed=seed),
            "tabu": TabuSampler(num_reads=10, timeout_ms=100, seed=seed),
            "path_integral": PathIntegralSampler(num_reads=20, num_sweeps=500, seed=seed)}


# ---- truth: every subset evaluated ---------------------------------------------------------------------------


def truth_table(model, batches, targets, n: int, k: int, key: str) -> dict:
    """Every k-subset of removed blocks: true validation loss and accuracy (cached under `key`)."""
    from qlife.methods.blocks import evaluate_blocks

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{key}.npz"
    subsets = list(combinations(range(n), k))
    if path.exists():
        d = np.load(path)
        return {"subsets": subsets, "loss": d["loss"], "accuracy": d["accuracy"], "wall_s": float(d["wall_s"])}
    loss, acc = np.zeros(len(subsets)), np.zeros(len(subsets))
    t0 = time.perf_counter()
    for i, s in enumerate(subsets):
        r = evaluate_blocks(model, batches, targets, s)
        loss[i], acc[i] = r["loss"], r["accuracy"]
        if (i + 1) % 500 == 0:
            print(f"  {key}: {i + 1}/{len(subsets)} subsets ({time.perf_counter() - t0:.0f} s)", flush=True)
    wall = time.perf_counter() - t0
    np.savez(path, loss=loss, accuracy=acc, wall_s=wall)
    return {"subsets": subsets, "loss": loss, "accuracy": acc, "wall_s": wall}


# ---- one model, seed and k: energy against truth --------------------------------------------------------------


def _spearman(x, y) -> float:
    return float(spearmanr(x, y).statistic)


def study(truth: dict, cal, magnitude: np.ndarray, n: int, k: int, seed: int) -> dict:
    """Energies of every subset against its true loss; where each solver's and baseline's answer ranks."""
    from qlife.methods.selection import DiagonalSelector, QuboSelector, RandomSelector, TopKSelector, UnitScores

    subsets, loss, acc = truth["subsets"], truth["loss"], truth["accuracy"]
    index = {s: i for i, s in enumerate(subsets)}
    scores = cal.scores("loss")
    energy = np.array([cal.energy(s, "loss") for s in subsets])
    energy_kl = np.array([cal.energy(s, "kl") for s in subsets])
    diag = np.array([cal.single["loss"][list(s)].sum() for s in subsets])
    order = np.argsort(energy, kind="stable")
    ground = int(order[0])

    def row(i: int, extra: dict | None = None) -> dict:
        return {"removed": list(subsets[i]), "loss": float(loss[i]), "accuracy": float(acc[i]),
                "rank": int((loss < loss[i]).sum()) + 1, "better_share": float((loss < loss[i]).mean()),
                "energy": float(energy[i]), "energy_rank": int((energy < energy[i]).sum()) + 1, **(extra or {})}

    def removed(keep) -> int:
        return index[tuple(i for i in range(n) if i not in set(int(j) for j in keep))]

    answers = {"ground_state": row(ground)}
    for name, spec in solvers(seed).items():
        sel = QuboSelector(spec, f"bench.blocks.{name}", 1.5)
        t0 = time.perf_counter()
        keep = sel.select(scores, n - k)
        answers[name] = row(removed(keep), {"select_s": time.perf_counter() - t0,
                                             "raw_feasible": sel.last.raw_feasible,
                                             "repaired_flips": sel.last.repaired_flips})
    baselines = {"influence": (TopKSelector(), UnitScores(cal.influence)),
                 "magnitude": (TopKSelector(), UnitScores(magnitude)),
                 "diagonal": (DiagonalSelector(), scores), "random": (RandomSelector(seed), scores)}
    for name, (sel, sc) in baselines.items():
        answers[name] = row(removed(sel.select(sc, n - k)))
    low = order[:LOW]
    best_low = int(low[np.argmin(loss[low])])
    best = int(np.argmin(loss))
    gs = answers["ground_state"]
    return {"subsets": len(subsets), "k": k, "blocks": n,
            "spearman_energy_loss": _spearman(energy, loss), "spearman_kl_energy_loss": _spearman(energy_kl, loss),
            "spearman_diagonal_loss": _spearman(diag, loss),
            "spearman_energy_accuracy": _spearman(energy, acc),
            "best": row(best), "answers": answers,
            "low_energy": {"states": LOW, "best_by_loss": row(best_low),
                           "ground_state_is_best": best_low == ground,
                           "loss_gain_over_ground": float(loss[ground] - loss[best_low])},
            "goal": {"ground_in_best_5pct": gs["better_share"] < 0.05,
                     "ground_ahead_of_influence": gs["loss"] < answers["influence"]["loss"],
                     "qaoa_in_best_5pct": answers["qaoa"]["better_share"] < 0.05,
                     "qaoa_ahead_of_influence": answers["qaoa"]["loss"] < answers["influence"]["loss"]},
            "calibration": {"examples": cal.examples, "rows": cal.rows, "base_loss": cal.base_loss,
                            "single_loss": cal.single["loss"].tolist(), "influence": cal.influence.tolist(),
                            "magnitude": magnitude.tolist()},
            "truth_wall_s": truth["wall_s"]}


# ---- the two models -----------------------------------------------------------------------------------------


def _cls_batches(ids, y, max_length: int, pad: int, size: int = 64) -> tuple[list[dict], list[torch.Tensor]]:
    """Batches sorted by length (less padding; every subset sees the same rows)."""
    from qlife.methods.finetune import collate

    order = np.argsort([len(i) for i in ids], kind="stable")
    chunks = [order[j:j + size] for j in range(0, len(order), size)]
    return ([collate([ids[i] for i in c], max_length, pad) for c in chunks],
            [torch.as_tensor(np.asarray(y)[c], dtype=torch.long) for c in chunks])


def minilm(seeds: list[int], val_docs: int, calib: int, quick: bool, record) -> None:
    from bench.prune import sst2, teacher_model
    from qlife.methods.blocks import block_magnitude_importance, calibrate_blocks, n_blocks
    from qlife.params import Train

    name, max_length = Train().model, 64
    ds, labels = sst2(1024, val_docs, max_length, name)  # "test": a stratified val_docs of SST-2 validation
    teacher = teacher_model(None, ds, labels, name, max_length).eval()
    n = n_blocks(teacher)
    val = _cls_batches(ds["test"]["input_ids"], ds["test"]["label"], max_length, 0)
    mag = block_magnitude_importance(teacher)
    for k in ([3] if quick else [2, 3]):  # 2: L/4 = 1.5 rounded half up; 3: L/2
        truth = truth_table(teacher, *val, n, k, f"minilm_k{k}_val{val_docs}")
        print(f"minilm k={k}: {len(truth['subsets'])} subsets in {truth['wall_s']:.0f} s", flush=True)
        for seed in seeds:
            pool = ds["calib"]
            draw = np.random.default_rng(seed).permutation(len(pool["label"]))[:calib]
            cb = _cls_batches([pool["input_ids"][i] for i in draw], np.asarray(pool["label"])[draw], max_length, 0, 32)
            t0 = time.perf_counter()
            cal = calibrate_blocks(teacher, *cb)
            res = study(truth, cal, mag, n, k, seed)
            res["calibration"]["wall_s"] = time.perf_counter() - t0
            record("minilm", seed, k, res)


def _lm_batches(ids: list[list[int]], pad: int, size: int = 128) -> list[dict]:
    out = []
    for j in range(0, len(ids), size):
        rows = ids[j:j + size]
        x = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, :len(r)] = torch.tensor(r)
        out.append({"input_ids": x, "attention_mask": (x != pad).long()})
    return out


def llama_model(seed: int, steps: int):
    """The decoder of this seed: trained once (tokenizer and causal LM on SST-2 train sentences), then cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qlife.decoder_lm import pretrain, save_decoder

    folder = CACHE / f"llama_s{seed}_steps{steps}"
    if not (folder / "pretraining.json").exists():
        train = [r["text"] for r in _jsonl("train")]
        val = [r["text"] for r in _jsonl("validation")][-200:]  # not the truth set (the first sentences)
        save_decoder(folder, "llama", train[:20000], vocab_size=LLAMA_VOCAB, seed=seed, **LLAMA)
        hist = pretrain(folder, train, steps, 32, LLAMA_CONTEXT, learning_rate=3e-3, seed=seed, val_texts=val,
                        log_every=200)
        (folder / "pretraining.json").write_text(json.dumps(hist))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    model.config.use_cache = False
    return model, AutoTokenizer.from_pretrained(folder), json.loads((folder / "pretraining.json").read_text())


def llama(seeds: list[int], val_sents: int, calib: int, steps: int, quick: bool, record) -> None:
    from qlife.decoder_lm import encode_lm
    from qlife.methods.blocks import block_magnitude_importance, calibrate_blocks, n_blocks

    val_texts = [r["text"] for r in _jsonl("validation")][:val_sents]
    train = [r["text"] for r in _jsonl("train") if len(r["text"].split()) >= 8]
    for seed in seeds:
        model, tok, hist = llama_model(seed, steps)
        n, pad = n_blocks(model), tok.pad_token_id
        val = _lm_batches(encode_lm(tok, val_texts, LLAMA_CONTEXT), pad)
        draw = np.random.default_rng(1000 + seed).permutation(len(train))[:calib]
        cb = _lm_batches(encode_lm(tok, [train[i] for i in draw], LLAMA_CONTEXT), pad, 64)
        t0 = time.perf_counter()
        cal = calibrate_blocks(model, cb, None)
        cal_s = time.perf_counter() - t0
        mag = block_magnitude_importance(model)
        for k in ([n // 4] if quick else [n // 4, n // 2]):
            truth = truth_table(model, val, None, n, k, f"llama_s{seed}_steps{steps}_k{k}_val{val_sents}")
            print(f"llama seed {seed} k={k}: {len(truth['subsets'])} subsets in {truth['wall_s']:.0f} s", flush=True)
            res = study(truth, cal, mag, n, k, seed)
            res["calibration"]["wall_s"] = cal_s
            res["model"] = {**LLAMA, "vocab": LLAMA_VOCAB, "steps": steps, "context": LLAMA_CONTEXT,
                            "parameters": hist.get("parameters"),
                            "val_perplexity_after": hist.get("val_perplexity_after")}
            record("llama", seed, k, res)


# ---- summary and table ----------------------------------------------------------------------------------------

SHOWN = ("ground_state", "qaoa", "sa", "tabu", "path_integral", "influence", "magnitude", "diagonal", "random")


def summarise(runs: dict) -> dict:
    """Per model and k, over the seeds: mean Spearman, each answer's mean better-share and how often it is in the
    best 5% / ahead of Block Influence, how often a low-energy state beats the ground state."""
    out = {}
    for model, by_k in runs.items():
        for k, by_seed in by_k.items():
            rs = list(by_seed.values())
            out[f"{model} k={k}"] = {
                "seeds": len(rs), "subsets": rs[0]["subsets"], "blocks": rs[0]["blocks"],
                "spearman_energy_loss": [r["spearman_energy_loss"] for r in rs],
                "spearman_kl_energy_loss": [r["spearman_kl_energy_loss"] for r in rs],
                "spearman_diagonal_loss": [r["spearman_diagonal_loss"] for r in rs],
                "better_share": {a: [r["answers"][a]["better_share"] for r in rs] for a in SHOWN},
                "in_best_5pct": {a: sum(r["answers"][a]["better_share"] < 0.05 for r in rs) for a in SHOWN},
                "ahead_of_influence": {a: sum(r["answers"][a]["loss"] < r["answers"]["influence"]["loss"]
                                              for r in rs) for a in SHOWN},
                "low_energy_beats_ground": sum(not r["low_energy"]["ground_state_is_best"] for r in rs),
                "best_energy_rank": [r["best"]["energy_rank"] for r in rs]}
    return out


def table(summary: dict) -> str:
    lines = [f"{'model / k':<14} {'N':>6} {'rho(E,loss)':>12} {'rho(diag)':>10} {'rho(KL E)':>10}  "
             + "  ".join(f"{a[:9]:>9}" for a in SHOWN) + "  low<ground"]
    for key, s in summary.items():
        share = "  ".join(f"{100 * np.mean(s['better_share'][a]):8.1f}%" for a in SHOWN)
        lines.append(f"{key:<14} {s['subsets']:>6} {np.mean(s['spearman_energy_loss']):>12.3f} "
                     f"{np.mean(s['spearman_diagonal_loss']):>10.3f} {np.mean(s['spearman_kl_energy_loss']):>10.3f}  "
                     f"{share}  {s['low_energy_beats_ground']}/{s['seeds']}")
    lines.append("cells: mean over seeds of the share of subsets with a strictly lower true loss than the answer "
                 "(0% = the best subset)")
    lines.append("goal (seeds where it holds): in the best 5% / strictly ahead of Block Influence in true loss")
    for key, s in summary.items():
        rho = s["spearman_energy_loss"]
        lines.append(f"  {key:<14} rho(E,loss) {min(rho):.3f}..{max(rho):.3f}; "
                     + "; ".join(f"{a} {s['in_best_5pct'][a]}/{s['seeds']} / {s['ahead_of_influence'][a]}/{s['seeds']}"
                                 for a in ("ground_state", "qaoa", "diagonal")))
    return "\n".join(lines)


def merge(files: list[Path], out: Path) -> None:
    """One result file from several (each model run in its own process): runs, configs and wall times side by
    side, the summary and table recomputed."""
    parts = [json.loads(f.read_text()) for f in files]
    runs: dict = {}
    for p in parts:
        for model, by_k in p["runs"].items():
            for k, by_seed in by_k.items():
                runs.setdefault(model, {}).setdefault(k, {}).update(by_seed)
    res = {"config": {f.name: p["config"] for f, p in zip(files, parts)}, "runs": runs,
           "summary": summarise(runs), "wall_s": {f.name: p.get("wall_s") for f, p in zip(files, parts)},
           "environment": environment()}
    out.write_text(json.dumps(res, indent=1, default=float))
    print(table(res["summary"]))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["minilm", "llama"], choices=["minilm", "llama"])
    ap.add_argument("--val-docs", type=int, default=872, help="MiniLM truth: SST-2 validation documents")
    ap.add_argument("--val-sents", type=int, default=96, help="decoder truth: SST-2 validation sentences")
    ap.add_argument("--calib", type=int, default=128, help="MiniLM calibration documents per seed")
    ap.add_argument("--calib-lm", type=int, default=64, help="decoder calibration sentences per seed")
    ap.add_argument("--steps", type=int, default=LLAMA_STEPS, help="decoder pre-training steps")
    ap.add_argument("--quick", action="store_true", help="one seed, k = L/2 (MiniLM) / L/4 (decoder), small sets")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--merge", nargs="+", default=None,
                    help="combine the runs of these result files (one per model, run side by side) into --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.merge:
        merge([Path(f) for f in args.merge], Path(args.out))
        return
    if args.quick:
        args.seeds, args.val_docs, args.val_sents, args.calib, args.calib_lm = 1, 128, 32, 32, 16
    out = Path(args.out)
    res: dict = {"config": vars(args), "runs": {}, "environment": environment()}
    t0 = time.perf_counter()

    def record(model: str, seed: int, k: int, r: dict) -> None:
        res["runs"].setdefault(model, {}).setdefault(str(k), {})[str(seed)] = r
        res["summary"] = summarise(res["runs"])
        res["wall_s"] = time.perf_counter() - t0
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))
        a = r["answers"]
        print(f"{model} seed {seed} k={k}: {r['subsets']} subsets, spearman(E, loss) {r['spearman_energy_loss']:.3f}; "
              f"better share: " + ", ".join(f"{m} {100 * a[m]['better_share']:.1f}%" for m in SHOWN)
              + f"; low-energy state beats ground: {not r['low_energy']['ground_state_is_best']}", flush=True)

    seeds = list(range(args.seeds))
    if "minilm" in args.models:
        minilm(seeds, args.val_docs, args.calib, args.quick, record)
    if "llama" in args.models:
        llama(seeds, args.val_sents, args.calib_lm, args.steps, args.quick, record)
    print(table(res["summary"]))
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
