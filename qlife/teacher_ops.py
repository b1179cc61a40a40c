"""What deploy's steps (pruning, compression) do to the fine-tuned teacher: load it with its token splits,
score a candidate (its figures and its predictions, which the steps' verdicts pair), calibrate, heal it with a
short fine-tune kept only when validation does not get worse, save it beside the teacher's tokenizer.

`load(params, step)` checks memory before any weight is read (the teacher plus two candidate copies), then
returns a `Workbench`: the teacher, the tokenized splits (`paths.encoded/tokenized`) and the labels.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qlife.io import atomic_path, current, read_json
from qlife.loading import load_saved
from qlife.methods.finetune import TrainConfig, collate, finetune, predict_ids
from qlife.methods.pruning import count_parameters
from qlife.models import check_memory, finetune_mode, finetune_options, load_tokenizer
from qlife.params import Params
from qlife.quality import evaluate as quality_eval

QUALITY_KEYS = ("quality", "metric", "accuracy", "macro_f1", "ms_per_doc", "parameters")


@dataclass
class Workbench:
    """The teacher, its tokenized splits and what scoring and healing a candidate needs."""

    params: Params
    teacher: Any
    teacher_dir: Path
    ds: Any
    labels: list[str]
    max_length: int
    pad_id: int
    memory: dict

    def split(self, name: str, n: int | None = None, seed: int = 0) -> tuple[list[list[int]], np.ndarray]:
        """Token ids and labels of a split (a seeded random `n` of them when given)."""
        ids, y = self.ds[name]["input_ids"], np.array(self.ds[name]["label"])
        if n is None or n >= len(ids):
            return ids, y
        idx = np.sort(np.random.default_rng(seed).permutation(len(ids))[:n])
        return [ids[i] for i in idx], y[idx]

    def scored(self, model, ids: list[list[int]], y: np.ndarray) -> tuple[dict, np.ndarray]:
        """`evaluate`'s figures and the predicted label of each document (what a verdict pairs methods on)."""
        t0 = time.perf_counter()
        logits, _ = predict_ids(model, ids, self.max_length, self.pad_id)
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(ids))
        pred = logits.argmax(1)
        return {**quality_eval(y, pred, self.labels, self.params.quality), "ms_per_doc": ms,
                "parameters": count_parameters(model)}, pred

    def evaluate(self, model, ids: list[list[int]], y: np.ndarray) -> dict:
        """The quality metric, accuracy, macro-F1, milliseconds per document and parameters of `model`."""
        return self.scored(model, ids, y)[0]

    def calibration_batches(self, n: int, seed: int, split: str = "train") -> tuple[list[dict], list]:
        """`n` seeded documents of a split in batches of 32: (model inputs, labels)."""
        import torch

        ids, y = self.split(split)
        order = np.random.default_rng(seed).permutation(len(ids))[:n]
        chunks = [order[j:j + 32] for j in range(0, len(order), 32)]
        return ([collate([ids[i] for i in c], self.max_length, self.pad_id) for c in chunks],
                [torch.as_tensor(y[c], dtype=torch.long) for c in chunks])

    def recover(self, model, steps: int, learning_rate: float, seed: int) -> None:
        """The recovery ("healing") fine-tune on the training split, in train's fine-tuning mode."""
        if steps <= 0:
            return
        tp = self.params.train
        ids, y = self.split("train")
        cfg = TrainConfig(learning_rate=learning_rate, epochs=1, max_steps=steps, max_length=self.max_length,
                          seed=seed, class_weight=tp.class_weight, group_by_length=tp.group_by_length,
                          **finetune_options(str(self.teacher_dir), tp.finetune, tp.lora.model_dump()))
        finetune(model, ids, y, cfg, self.pad_id, desc="recover")

    def recover_kept(self, model, steps: int, learning_rate: float, test, before: tuple[dict, np.ndarray]
                     ) -> tuple[dict, np.ndarray]:
        """The recovery fine-tune, kept only when it does not lower the quality metric on validation
        (`deploy.energy_val_docs` seeded documents): a short healing can collapse a model on imbalanced data. The
        model ends in the kept state. `before`: `scored(model, *test)` before healing. Returns {"before_recovery",
        "after_recovery" (test figures), "kept": {"recovery", "val_before", "val_after", "steps"}} and the kept
        model's test predictions ({} and before's predictions when steps <= 0)."""
        if steps <= 0:
            return {}, before[1]
        dp = self.params.deploy
        val = self.split("val", dp.energy_val_docs, dp.seed)
        state, val_before = copy.deepcopy(model.state_dict()), self.evaluate(model, *val)["quality"]
        self.recover(model, steps, learning_rate, dp.seed)
        after, pred_after = self.scored(model, *test)
        val_after = self.evaluate(model, *val)["quality"]
        kept = val_after >= val_before
        if not kept:
            model.load_state_dict(state)
            print(f"recovery rolled back: validation {after['metric']} {val_before:.4f} before {steps} steps, "
                  f"{val_after:.4f} after", flush=True)
        return ({"before_recovery": quality_fields(before[0]), "after_recovery": quality_fields(after),
                 "kept": {"recovery": kept, "val_before": val_before, "val_after": val_after, "steps": steps}},
                pred_after if kept else before[1])

    def teacher_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.teacher_dir.glob("*.safetensors"))


def load(params: Params, step: str) -> Workbench:
    """The teacher and its splits; refuses (ModelTooLarge) before loading weights when the teacher, a candidate
    and its healing fine-tune would not fit `train.max_memory_share` of the memory."""
    import datasets

    teacher_dir = Path(params.paths.teacher)
    meta = read_json(teacher_dir / "qlife.json")
    tp = params.train
    memory = check_memory(str(teacher_dir), step, finetune_mode(str(teacher_dir), tp.finetune), 32,
                          meta["max_length"], tp.max_memory_share, copies=2)
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    pad_id = load_tokenizer(str(teacher_dir)).pad_token_id or 0
    return Workbench(params, load_saved(teacher_dir).model, teacher_dir, ds, meta["labels"], meta["max_length"],
                     pad_id, memory)


def quality_fields(q: dict) -> dict:
    """The figures a report row keeps of an evaluation."""
    return {k: q[k] for k in QUALITY_KEYS if k in q}


def weight_bytes(model) -> int:
    """Bytes of the model's weights (each tensor once: what its safetensors file holds, less the header)."""
    seen, total = set(), 0
    for t in model.state_dict().values():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def save_model(model, source_dir: Path, target: str | Path, circuits: Path | None = None) -> int:
    """save_pretrained plus the tokenizer and qlife.json copied from the teacher (and a folder of circuits, when
    given, as `circuits/`), swapped in whole; returns weight bytes."""
    with atomic_path(target, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        for f in source_dir.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "special_tokens", "qlife")):
                shutil.copy(f, tmp / f.name)
        if circuits is not None and circuits.exists():
            shutil.copytree(circuits, tmp / "circuits")
    return sum(f.stat().st_size for f in current(target).glob("*.safetensors"))  # staged until the stage ends
