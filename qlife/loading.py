"""One loader for every model the pipeline saves: `load_saved(folder)` tells the kind by what the folder holds and
returns a `Saved` (kind, model, labels, max_length, the static table and the tokenizer where they apply).

- qlife.json + config.json: a classifier, kind teacher (train), pruned (`config.qlife_attention_heads`, or
  `config.qlife_blocks_kept`: transformer blocks removed) or
  compressed (`config.qlife_compressed`) (deploy's pruning and compression: qlife.teacher_ops.save_model);
- student.json + student.safetensors: a distilled student, kind student (mlp) or vqc_student
  (stages.distill.save_students);
- static.json + static.safetensors: kind static, the static token table alone (qlife.methods.static_embed).

A student's `input` says what it classifies: "teacher" (the fine-tuned teacher's pooled features: the teacher is
another saved folder) or "static" (the static table's features: the table is loaded with it, from `static=`, the
student's own folder, or the folder above it: distill writes `static/` with its mlp student and `static/vqc/`). A
classifier's input is "text" (its own tokenizer). `Saved.serving_kind` is the pyfunc kind that serves it
(qlife.serving: classifier, student, static_student).

Not saved kinds, so not here: a base model with a fresh head (qlife.classifiers.load_classifier) and the bare
encoder (qlife.models.load_encoder). Every import below the standard library is inside a function: qlife.serving
imports this module and stays light to import; a static student never imports the classifier code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from qlife.methods.static_embed import StaticEmbedding

KINDS = ("teacher", "pruned", "compressed", "student", "vqc_student", "static")
CLASSIFIER_FILES = ("qlife.json", "config.json")
STUDENT_FILES = ("student.json", "student.safetensors")
STATIC_FILES = ("static.json", "static.safetensors")  # qlife.methods.static_embed.META, TABLE


class NotASavedModel(ValueError):
    """A path that holds none of the saved kinds (or no path at all)."""


@dataclass
class Saved:
    kind: str  # one of KINDS
    folder: Path
    model: torch.nn.Module | None  # the classifier or the student, in eval mode; None for a table alone
    labels: list[str]
    max_length: int | None  # a classifier's (qlife.json) or the static table's; None for a teacher-input student
    input: str  # text | teacher | static
    static: StaticEmbedding | None = None  # the token table (input "static", kind "static")
    meta: dict[str, Any] = field(default_factory=dict)  # qlife.json, student.json or static.json as saved
    _tokenizer: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def serving_kind(self) -> str | None:
        """The qlife.serving kind that serves it: classifier, student, static_student (None: a table alone)."""
        if self.input == "text":
            return "classifier"
        if self.model is None:
            return None
        return "static_student" if self.input == "static" else "student"

    @property
    def tokenizer(self):
        """A classifier's Hugging Face tokenizer (qlife.models.load_tokenizer, loaded on first use), the static
        table's `tokenizers.Tokenizer` for the static input; None for a teacher-input student (the teacher's)."""
        if self._tokenizer is None:
            if self.input == "text":
                from qlife.models import load_tokenizer

                self._tokenizer = load_tokenizer(str(self.folder))
            elif self.static is not None:
                self._tokenizer = self.static._tokenizer()
        return self._tokenizer


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / n).is_file() for n in names)


def _expected() -> str:
    return (f"expected a saved model folder: {' + '.join(CLASSIFIER_FILES)} (a classifier: teacher, pruned, "
            f"compressed), {' + '.join(STUDENT_FILES)} (a distilled student: mlp or vqc) or "
            f"{' + '.join(STATIC_FILES)} (a static token table)")


def load_saved(folder: str | Path, *, shots: int | None = None, static: str | Path | None = None) -> Saved:
    """The saved model in `folder`, recognised by its files (module doc). `shots`: a VQC student's readout is
    sampled with that many shots (None: exact); `static`: the static table's folder for a static-input student
    (default: the student's folder, else the folder above it). NotASavedModel names the folder and what was
    expected when it is none of the kinds."""
    if folder is None or not str(folder).strip():
        raise NotASavedModel(f"no path given ({folder!r}); {_expected()}")
    from qlife.io import current

    folder = current(folder)  # a publish cut by a kill is completed first; inside one, the staged copy
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise NotASavedModel(f"{folder} {what}; {_expected()}")
    if _has(folder, CLASSIFIER_FILES):
        return _classifier(folder)
    if (folder / STUDENT_FILES[0]).is_file():
        return _student(folder, shots, static)
    if _has(folder, STATIC_FILES):
        from qlife.methods.static_embed import StaticEmbedding

        emb = StaticEmbedding.load(folder)
        return Saved("static", folder, None, [], emb.max_length, "static", emb, _read(folder / STATIC_FILES[0]))
    held = sorted(p.name for p in folder.iterdir())
    hint = ""
    if "config.json" in held:
        hint = (" (config.json without qlife.json: a bare Hugging Face model, not one the pipeline saved; a base model "
                "loads with qlife.classifiers.load_classifier or qlife.models.load_encoder)")
    shown = ", ".join(held[:12]) + (f" and {len(held) - 12} more" if len(held) > 12 else "")
    raise NotASavedModel(f"{folder} is not a saved model: it holds {shown or 'nothing'}{hint}; {_expected()}")


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _classifier(folder: Path) -> Saved:
    from qlife.classifiers import load_teacher  # the classifier branch: heads, pruned attention, MPO layers

    meta = _read(folder / "qlife.json")
    model = load_teacher(folder)
    config = model.config
    kind = ("compressed" if getattr(config, "qlife_compressed", None)
            else "pruned" if getattr(config, "qlife_attention_heads", None) is not None
            or getattr(config, "qlife_blocks_kept", None) is not None else "teacher")
    labels = meta.get("labels") or [config.id2label[i] for i in range(config.num_labels)]
    return Saved(kind, folder, model, list(labels), meta.get("max_length"), "text", meta=meta)


def _student(folder: Path, shots: int | None, static: str | Path | None) -> Saved:
    cfg = _read(folder / STUDENT_FILES[0])
    if not (folder / STUDENT_FILES[1]).is_file():
        raise NotASavedModel(f"{folder} holds {STUDENT_FILES[0]} but no {STUDENT_FILES[1]} (the student's weights)")
    table = None
    if static is not None:
        table = Path(static)
    elif cfg.get("input", "static" if _has(folder, STATIC_FILES) else "teacher") == "static":
        table = next((f for f in (folder, folder.parent) if _has(f, STATIC_FILES)), None)
        if table is None:
            raise NotASavedModel(f"{folder}: a student on the static input, but neither it nor {folder.parent} holds "
                                 f"the table ({' + '.join(STATIC_FILES)}); pass static=<the table's folder>")
    emb = None
    if table is not None:
        from qlife.methods.static_embed import StaticEmbedding

        if not _has(table, STATIC_FILES):
            raise NotASavedModel(f"{table}: no static table ({' + '.join(STATIC_FILES)}) for the student {folder}")
        emb = StaticEmbedding.load(table)
    model = _load_student(folder, cfg, shots)
    kind = "vqc_student" if cfg["kind"] == "vqc" else "student"
    return Saved(kind, folder, model, list(cfg.get("labels", [])), emb.max_length if emb else None,
                 "static" if emb else "teacher", emb, cfg)


def _load_student(folder: Path, cfg: dict, shots: int | None) -> torch.nn.Module:
    """The student module of student.json + student.safetensors: an MLP, or the VQC (projection -> circuit on the
    torch simulator, or `shots` samples of it -> head)."""
    from safetensors.torch import load_file

    if cfg.get("kind") == "vqc":
        from qlife.methods.vqc import VQCStudent

        student = VQCStudent.from_config(cfg)
        student.shots = shots
    elif cfg.get("kind") == "mlp":
        from qlife.methods.distill import MLPStudent

        student = MLPStudent(cfg["in_dim"], cfg["hidden"], cfg["n_classes"])
    else:
        raise NotASavedModel(f"{folder}: unknown student kind {cfg.get('kind')!r} in {STUDENT_FILES[0]} "
                             "(known: mlp, vqc)")
    student.load_state_dict(load_file(str(folder / STUDENT_FILES[1])))
    return student.eval()
