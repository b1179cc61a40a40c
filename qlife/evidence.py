"""The evidence a registered model version carries: what made it, the verdicts of the steps it came through, and
the data and code it came from. `evidence(params, role, candidate, code())` gives (tags, record): `qlife.promote`
puts the tags on the version (and its logged model) and the record as `evidence.json` on the version's run.

Reads the full step reports (`reports/<step>.json`, qlife.stage.report_path), one step at a time: deploy's two
model-making steps (pruning `deploy`, compression `compress`) each have their own decision and verdict. A step
that has not run, or whose report cannot be read, is said so in its tag; nothing here refuses a promote.

Lineage per role (`LINEAGE`): a pruned teacher came through curate, encode, search, train and deploy (pruning); a
compressed teacher through curate .. train and compress; a student through curate .. train, distill and deploy
(which offered it). Monitor's verdict (the drift tests on this run's live windows) goes on every version.

Tags (values short, at most `MAX_TAG` characters; MLflow guarantees 5,000):
- `qlife.method`: how the model was made, e.g. "pruning qubo: heads 0.5, ffn 0.3 (qubo_heads0.5_ffn0.3)",
  "compression mpo_disentangler_x4", "distillation: vqc student, 8 qubits, 2 layers, input teacher";
- `qlife.student_kind` (students): mlp | vqc;
- `qlife.lineage`: the steps, each with what it applied, e.g. "curate (classical) > encode > search (found by
  fmqa) > train (head linear, finetune full) > deploy (qubo_heads0.5_ffn0.3); monitor" (a student's deploy:
  "offered");
- `qlife.verdict.<step>`: that step's verdict in one line, e.g. "ahead: qubo 0.913 vs diagonal 0.900 (+0.013
  [+0.002, +0.025]) macro_f1; vs best classical wanda 0.905: tie";
- `qlife.code_hash`: md5 over the files of qlife/ and stages/ (`__pycache__` left out) as DVC hashes a file (the
  md5 of its bytes, dvc.lock's `md5`): the md5 of the lines `<md5>  <path>` in path order, i.e.
  `find qlife stages -type f ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs md5sum | md5sum` in the project
  root; first 12 hex digits. The same source gives the same hash in any clone, committed or not;
- `qlife.code_state`: "clean at git <commit>", "uncommitted changes in qlife/, stages/ since git <commit>", or
  "not a git checkout". The full commit and the data hash (qlife.stage.data_hash) are promote's `git_commit` and
  `data_hash` tags.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from qlife.io import DataError, read_json
from qlife.params import Params
from qlife.stage import report_path

MAX_TAG = 500
CODE_ROOTS = ("qlife", "stages")
ROOT = Path(__file__).resolve().parent.parent  # the project the running code is from
_TEACHER = ("curate", "encode", "search", "train")
LINEAGE = {"pruned_teacher": (*_TEACHER, "deploy"), "compressed_teacher": (*_TEACHER, "compress"),
           **{role: (*_TEACHER, "distill", "deploy")
              for role in ("student", "vqc_student", "student_static", "vqc_student_static")}}
ALWAYS = ("monitor",)  # a verdict every version carries
STUDENT_KIND = {"student": "mlp", "vqc_student": "vqc", "student_static": "mlp", "vqc_student_static": "vqc"}


def _short(text: str, limit: int = MAX_TAG) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def step_reports(params: Params, steps: tuple[str, ...]) -> dict[str, dict | str]:
    """Each step's full report, or a sentence saying why there is none."""
    out: dict[str, dict | str] = {}
    for step in steps:
        path = report_path(params, step)
        try:
            out[step] = read_json(path) if path.exists() else f"(not run: no {path})"
        except DataError as err:
            out[step] = f"(report unreadable: {err})"
    return out


def _num(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def short_verdict(v: dict | None) -> str:
    """One line: the verdict word, quantum vs twin in the metric, the difference with its 95% interval, and the
    best classical method when it is not the twin."""
    if not v:
        return "(no verdict in this step's report)"
    try:
        q, t, b = v["quantum"], v["twin"], v["best_classical"]
        if q["value"] is None or t["value"] is None:
            return _short(f"{v['verdict']}: {q['method']} vs {t['method']} not judged")
        d = v["difference"]["quantum_minus_twin"]
        ci = "" if not d.get("ci95") else f" [{_num(d['ci95'][0], '+.3f')}, {_num(d['ci95'][1], '+.3f')}]"
        text = (f"{v['verdict']}: {q['method']} {_num(q['value'])} vs {t['method']} {_num(t['value'])} "
                f"({_num(d['value'], '+.3f')}{ci}) {v['metric']}")
        if not v.get("higher_is_better", True):
            text += " (lower is better)"
        if b.get("method") and b["method"] != t["method"]:
            text += f"; vs best classical {b['method']} {_num(b['value'])}: {v['verdict_vs_best']}"
    except (KeyError, TypeError, ValueError, IndexError) as err:
        return f"(verdict unreadable: {type(err).__name__} {err})"
    return _short(text)


def applied(step: str, report: dict | str) -> str:
    """What the step applied, from its decision (or summary), in a few words; '' when it says nothing."""
    if not isinstance(report, dict):
        return ""
    d, s = report.get("decision") or {}, report.get("summary") or {}
    if step in ("curate", "deploy", "compress"):
        return str(d.get("applied") or "")
    if step == "search":
        return f"found by {d['found_by']}" if d.get("found_by") else ""
    if step == "train":
        return ", ".join(f"{k} {s[k]}" for k in ("head", "finetune") if s.get(k) is not None)
    return ""


def _student_config(cand: dict) -> dict:
    """The student's saved config (`student.json` in its artifact folder), {} when it is not there."""
    folder = cand.get("artifacts", {}).get("student")
    path = Path(folder) / "student.json" if folder else None
    try:
        return read_json(path) if path is not None and path.exists() else {}
    except DataError:
        return {}


def method(role: str, cand: dict, reports: dict[str, dict | str]) -> tuple[str, dict]:
    """(`qlife.method`, the student's saved config when there is one)."""
    if role == "pruned_teacher":
        d = reports.get("deploy")
        d = d.get("decision", {}) if isinstance(d, dict) else {}
        if not d.get("method"):
            return "pruning", {}
        text = (f"pruning {d['method']}: heads {d.get('heads_sparsity', 0):g}, ffn {d.get('ffn_sparsity', 0):g} "
                f"({d.get('applied')})")
        if d.get("recovery_steps"):
            text += f", recovery {d['recovery_steps']} steps (kept: {d.get('recovery')})"
        return text, {}
    if role == "compressed_teacher":
        c = reports.get("compress")
        return (f"compression {c['decision'].get('applied')}" if isinstance(c, dict) and c.get("decision")
                else "compression"), {}
    config = _student_config(cand)
    kind = config.get("kind") or STUDENT_KIND.get(role, role)
    parts = ([f"{config['n_qubits']} qubits", f"{config.get('layers')} layers"] if "n_qubits" in config
             else [f"hidden {config['hidden']}"] if "hidden" in config else [])
    parts += [f"input {config['input']}"] if config.get("input") else []
    return ", ".join([f"distillation: {kind} student", *parts]), config


def code_hash(root: Path = ROOT, roots: tuple[str, ...] = CODE_ROOTS) -> tuple[str, int]:
    """(md5 of the `<md5>  <path>` lines of every file under `roots`, path order, first 12 hex; the file count)."""
    files = sorted((p.relative_to(root).as_posix(), p) for r in roots if (root / r).is_dir()
                   for p in (root / r).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    h = hashlib.md5()
    for rel, path in files:
        h.update(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n".encode())
    return h.hexdigest()[:12], len(files)


def _git(*args: str, root: Path = ROOT) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_state(root: Path = ROOT) -> str:
    commit = _git("rev-parse", "--short=12", "HEAD", root=root)
    if not commit:
        return "not a git checkout"
    changes = _git("status", "--porcelain", "--", *CODE_ROOTS, root=root)
    if changes:
        return f"uncommitted changes in {', '.join(f'{r}/' for r in CODE_ROOTS)} since git {commit}"
    return f"clean at git {commit}"


def code() -> dict[str, Any]:
    digest, n = code_hash()
    return {"code_hash": digest, "files": n, "code_state": code_state(),
            "code_hash_of": f"md5 of the lines `<md5>  <path>` of the {n} files under {', '.join(CODE_ROOTS)} "
                            "(__pycache__ left out), in path order: `find qlife stages -type f ! -path "
                            "'*/__pycache__/*' | LC_ALL=C sort | xargs md5sum | md5sum`"}


def evidence(params: Params, role: str, cand: dict, code_info: dict[str, Any]) -> tuple[dict[str, str], dict]:
    """(the version's tags, the `evidence.json` record) for one candidate."""
    steps = LINEAGE.get(role, ())
    reports = step_reports(params, (*steps, *ALWAYS))
    made_by, config = method(role, cand, reports)
    done = {s: applied(s, reports[s]) for s in steps}
    if role in STUDENT_KIND and "deploy" in done:
        done["deploy"] = "offered"  # a student is offered by deploy, not pruned by it
    chain = " > ".join(f"{s} ({a})" if a else s for s, a in done.items())
    tags = {"qlife.method": _short(made_by), "qlife.lineage": _short(f"{chain}; {', '.join(ALWAYS)}"),
            "qlife.code_hash": code_info["code_hash"], "qlife.code_state": code_info["code_state"]}
    if role in STUDENT_KIND:
        tags["qlife.student_kind"] = str(config.get("kind") or STUDENT_KIND[role])
    for step, rep in reports.items():
        tags[f"qlife.verdict.{step}"] = short_verdict(rep.get("verdict")) if isinstance(rep, dict) else _short(rep)
    record = {"role": role, "method": made_by, "student": config or None, "candidate": cand,
              "lineage": [{"step": s, "report": str(report_path(params, s)), "applied": done.get(s, ""),
                           "verdict": reports[s].get("verdict") if isinstance(reports[s], dict) else reports[s]}
                          for s in (*steps, *ALWAYS)],
              "code": code_info, "tags": tags}
    return tags, record
