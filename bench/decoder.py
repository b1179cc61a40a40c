"""A decoder teacher, offline (`make decoder`, `python -m bench.decoder`).

1. Trains a small Llama-architecture causal LM with `qlife.decoder_lm`: a byte-level BPE tokenizer trained on the
   default generated corpus plus SST-2 train text (`../shared/datasets/sst2`, when present), then next-token
   training. Cached in bench/.cache/llama-small (`--retrain` to redo).
2. Copies the committed project into bench/.cache/decoder-run, points `train.model` at that model and runs
   `python -m qlife.cli run` there: `dvc repro` of all seven stages, promotion and the summary, exactly as
   `make run` does with MiniLM.
3. Writes bench/results/decoder.json: the model's pre-training, what each stage reports about the teacher
   (architecture, pooling, LoRA), quality, deploy's pruned size and serving, stage wall times, beside the same
   figures of the working folder's last `make run` (the MiniLM encoder), when there is one.

No PyPI package ships decoder weights: a real Llama / Qwen / Mistral checkpoint needs the hub or a local copy
(`train.model: /path/to/checkpoint`); this model only shows what the pipeline does with a decoder teacher.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from qlife.params import parse_params
from qlife.stage import STEPS, stage_reports

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "datasets" / "sst2" / "train.jsonl"
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "decoder.json"


def build_model(folder: Path, retrain: bool, steps: int) -> dict:
    if retrain or not (folder / "pretraining.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        from qlife.decoder_lm import main as train_lm

        train_lm(["--out", str(folder), "--steps", str(steps), *(["--text", str(SST2)] if SST2.exists() else [])])
    return json.loads((folder / "pretraining.json").read_text())


def scratch_project(run_dir: Path, model: Path, finetune: str, learning_rates: list[float] | None) -> None:
    """The committed files of the project in `run_dir` (a git repository of its own), train.model -> model."""
    shutil.rmtree(run_dir, ignore_errors=True)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (run_dir / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, run_dir / f)
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    params["train"]["model"] = str(model)
    # this 2M-parameter LM's hidden states are anisotropic (median pairwise cosine 0.97 on the default corpus, last
    # token or mean; MiniLM 0.16): every text is a "near duplicate" of every other and curate refuses them
    # (curate.max_near_dup_frac); near-duplicates are found on TF-IDF here, every other stage uses the decoder
    params["curate"]["embedder"] = "tfidf"
    # measured (1,200 documents, 2 epochs): LoRA r=8 at 1e-3 stays at chance (accuracy 0.33), full fine-tuning at
    # 1e-3 reaches 0.83: a 2M-parameter LM needs its weights changed, and higher rates than MiniLM's
    params["train"]["finetune"] = finetune
    if learning_rates:
        params["search"]["space"]["learning_rate"] = learning_rates
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=bench@qlife", "-c", "user.name=bench"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "decoder teacher run"]):
        subprocess.run(git + cmd, cwd=run_dir, check=True)


def figures(reports: Path) -> dict:
    """What the stages' reports say about the teacher and its products."""
    m = stage_reports(parse_params({"paths": {"reports": str(reports)}}))  # deploy's steps merged
    if not m:
        return {}
    tr, dp = m.get("train", {}), m.get("deploy", {})
    ft = tr.get("methods", {}).get("finetune", {})
    pruned, teacher = dp.get("methods", {}).get("pruned", {}), dp.get("methods", {}).get("teacher", {})
    return {
        "teacher": tr.get("teacher"),
        "curate_embedder": m.get("curate", {}).get("embedder") or m.get("curate", {}).get("embedding"),
        "finetune": ft.get("finetune"), "lora": ft.get("lora"),
        "trainable": ft.get("trainable"),
        "search_best": m.get("search", {}).get("summary", {}).get("best_score"),
        "train_test_macro_f1": tr.get("summary", {}).get("test_macro_f1"),
        "train_test_accuracy": tr.get("summary", {}).get("test_accuracy"),
        "distill": {k: v for k, v in m.get("distill", {}).get("summary", {}).items() if isinstance(v, (int, float))},
        "deploy": {"teacher_parameters": teacher.get("parameters"), "pruned_parameters": pruned.get("parameters"),
                   "teacher_quality": teacher.get("quality"), "pruned_quality": pruned.get("quality"),
                   "applied": pruned.get("applied"),
                   "serving": {k: {x: r.get(x) for x in ("ms_per_request_batch1", "model_bytes", "requests")}
                               for k, r in ((dp.get("serving") or {}).get("models") or {}).items()}},
        "monitor": {k: v for k, v in m.get("monitor", {}).get("summary", {}).items()},
        "wall_s": {s: round(r.get("cost", {}).get("total", {}).get("wall_s", 0.0), 1) for s, r in m.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrain", action="store_true", help="train the small Llama again")
    ap.add_argument("--steps", type=int, default=600, help="pre-training steps")
    ap.add_argument("--finetune", default="full", choices=["auto", "full", "lora"], help="train.finetune")
    ap.add_argument("--lr", type=float, nargs="*", default=[3e-4, 1e-3, 3e-3], help="search.space.learning_rate")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    model = CACHE / "llama-small"
    pre = build_model(model, a.retrain, a.steps)
    run_dir = CACHE / "decoder-run"
    scratch_project(run_dir, model, a.finetune, a.lr)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qlife.cli", "run"], cwd=run_dir, env=env, text=True,
                          capture_output=True)
    wall = time.perf_counter() - t0
    (CACHE / "decoder-run.log").write_text(proc.stdout + proc.stderr)
    ran = [s for s in STEPS if f"Running stage '{s}'" in proc.stdout]
    out = {"model": {k: pre.get(k) for k in ("arch", "parameters", "texts", "files", "vocab", "hidden", "layers",
                                             "heads", "kv_heads", "intermediate", "steps", "batch", "context",
                                             "wall_s", "val_perplexity_before", "val_perplexity_after")},
           "run": {"command": "python -m qlife.cli run (dvc repro, promote, summary)", "exit": proc.returncode,
                   "stages_run": ran, "wall_s": round(wall, 1), "log": str(CACHE / "decoder-run.log")},
           "decoder": figures(run_dir / "reports"),
           "encoder_last_make_run": figures(ROOT / "reports"),
           "params": {"train.finetune": a.finetune, "search.space.learning_rate": a.lr,
                      "curate.embedder": "tfidf"},
           "measured": time.strftime("%Y-%m-%d")}
    Path(a.out).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({"run": out["run"], "teacher": out["decoder"].get("teacher"),
                      "test_macro_f1": out["decoder"].get("train_test_macro_f1"),
                      "deploy": out["decoder"].get("deploy")}, indent=1, default=str))
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
