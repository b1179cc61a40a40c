"""README.md's generated blocks: the default run's verdicts and the benchmark table, from committed JSON.

    python -m qlife.readme snapshot   bench/results/default_run.json from the latest run in this folder: each
                                      stage's verdict (short cells and raw figures), wall and CPU seconds, the
                                      profile, the git commit, the date and what promote decided
    python -m qlife.readme            rewrite every block of README.md between
                                      `<!-- generated: NAME (python -m qlife.readme) -->` and `<!-- end: NAME -->`
    python -m qlife.readme --check    exit 1 naming each block that differs from what would be generated

Blocks: `verdicts` (bench/results/default_run.json; a placeholder row when it is not there), `monitoring` (the
monitor's checks against their goals: qlife/readme_monitoring.py) and `benchmarks`
(every bench/results/*.json: one row per quantum-against-classical comparison, with its command, the figures,
the spread and the verdict, and the date measured). A figure the JSON does not hold is "n/a". Verdict words:
ahead / behind only beyond the spread (a 95% interval that excludes 0, or a paired test at p < 0.05, Holm-adjusted
where a run holds a family of tests: bench.search, bench.drift_regime), tie otherwise; a single run has no spread
and says so. Reads only JSON; writes README.md (or default_run.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qlife.verdict import paired_seeds, short_rows, stage_verdicts, verdict

README = Path("README.md")
RESULTS = Path("bench/results")
SNAPSHOT = "default_run.json"
BEGIN = "<!-- generated: {name} (python -m qlife.readme) -->"
END = "<!-- end: {name} -->"
BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+) \(python -m qlife\.readme\) -->\n(?P<body>.*?)"
                   r"<!-- end: (?P=name) -->", re.S)
MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)


# --- the default run -------------------------------------------------------------------------------------------

def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _raw(v: dict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    d = v["difference"]["quantum_minus_twin"]
    pick = {who: {k: v[key][k] for k in ("method", "value", "ci95")}
            for who, key in (("quantum", "quantum"), ("twin", "twin"), ("best", "best_classical"))}
    return {"metric": v["metric"], "higher_is_better": v["higher_is_better"], **pick,
            "diff": {"value": d["value"], "ci95": d["ci95"]}, "verdict": v["verdict"],
            "verdict_vs_best": v["verdict_vs_best"], "spread": v["spread"]}


def snapshot(params: Any) -> dict[str, Any]:
    """What the README shows of the latest run here (reports/<step>.json, metrics/promote.json)."""
    from qlife.stage import STAGES, STEPS, report_path, stage_reports

    reports = stage_reports(params)
    if not reports:
        raise SystemExit(f"qlife.readme snapshot: no run here ({params.paths.reports}/<step>.json are not there): "
                         "`make run` first")
    verdicts = stage_verdicts(reports)
    rows = short_rows(verdicts, list(verdicts))
    costs = {s: {k: round(float(reports[s].get("cost", {}).get("total", {}).get(k, 0.0)), 1)
                 for k in ("wall_s", "cpu_s")} for s in STAGES if s in reports}
    paths = [report_path(params, s) for s in STEPS]
    newest = max(p.stat().st_mtime for p in paths if p.exists())
    promote_path = Path(params.paths.metrics) / "promote.json"
    promote = None
    if promote_path.exists():
        p = json.loads(promote_path.read_text())
        promote = {"alarms": p.get("alarms", []), "skipped": p.get("skipped"),
                   "models": {name: {k: m.get(k) for k in ("version", "promoted", "reasons", "champion")}
                              for name, m in p.get("models", {}).items()}}
    return {"made_by": "python -m qlife.readme snapshot", "date": dt.date.fromtimestamp(newest).isoformat(),
            "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
            # the run's own outputs (the committed headline metrics) do not make the code dirty
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)metrics")),
            "profile": params.profile, "cpus": os.cpu_count(),
            "verdicts": [{"stage": stage, "cells": row, "figures": _raw(verdicts[stage])}
                         for stage, row in zip(verdicts, rows, strict=True)],
            "stages": costs, "total": {k: round(sum(c[k] for c in costs.values()), 1) for k in ("wall_s", "cpu_s")},
            "promote": promote}


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _promote_line(p: dict | None) -> str:
    if p is None:
        return "Promote: no `metrics/promote.json` in that run."
    if p.get("skipped"):
        return f"Promote: registered nothing ({p['skipped']})."
    models = p.get("models", {})
    champions = [f"{n} v{m['version']}" for n, m in models.items() if m.get("promoted")]
    refused: dict[str, list[str]] = {}
    for n, m in models.items():
        if not m.get("promoted"):
            refused.setdefault("; ".join(m.get("reasons") or ["no reason recorded"]), []).append(n)
    parts = [f"{len(models)} models registered", f"champion: {', '.join(champions) or 'none'}"]
    parts += [f"not promoted ({why}): {', '.join(names)}" for why, names in refused.items()]
    return "Promote: " + "; ".join(parts) + "."


def render_verdicts(snap: dict | None) -> str:
    """The `verdicts` block: one row per stage, the run's stage times, its commit, date and promote decisions."""
    head = ("| stage (metric) | quantum | classical twin | best classical | quantum − twin [95% CI] | verdict "
            "| wall / CPU s |\n|---|---|---|---|---|---|---|\n")
    if snap is None:
        return head + ("| (no snapshot yet: run `make run` then `python -m qlife.readme snapshot`) "
                       "| | | | | | |\n")
    lines = []
    for row in snap["verdicts"]:
        c, cost = row["cells"], snap["stages"].get(row["stage"])
        time = "" if cost is None else f"{cost['wall_s']:.0f} / {cost['cpu_s']:.0f}"
        cells = [c["stage"], c["quantum"], c["twin"], c["best classical"], c["quantum − twin [95% CI]"],
                 c["verdict"], time]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    t = snap["total"]
    dirty = " with uncommitted changes" if snap.get("dirty") else ""
    cpus = f" on {snap['cpus']} cores" if snap.get("cpus") else ""
    run = (f"Run: profile `{snap['profile']}`, commit `{snap['commit']}`{dirty}, {snap['date']}{cpus}; "
           f"stage time {t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} s CPU (the install not counted).")
    return head + "\n".join(lines) + f"\n\n{run}\n{_promote_line(snap.get('promote'))}\n"


# --- the benchmarks --------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One comparison: cells of the table, and whether the quantum side is ahead / behind beyond the spread."""

    command: str
    compared: str
    quantum: str
    peer: str
    spread: str
    verdict: str
    date: str
    words: tuple[str, ...] = ()  # every judged comparison's word (ahead / tie / behind), for the summary line
    label: str = ""


def f3(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def sgn(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _date(data: dict) -> str:
    for key in ("created", "measured"):
        if isinstance(data.get(key), str):
            return data[key][:10]
    return "n/a"


def by_p(p: float, ahead: bool) -> str:
    """A paired test's word: ahead / behind at p < 0.05 in the direction given, tie otherwise."""
    return ("ahead" if ahead else "behind") if p < 0.05 else "tie"


def counts(words: Iterable[str]) -> str:
    words = list(words)
    parts = [f"{w} {words.count(w)}" for w in ("ahead", "tie", "behind") if words.count(w)]
    return ", ".join(parts) + f" of {len(words)}"


def seed_verdict(values: dict[str, list[float]], quantum: str, twin: str, classical: Sequence[str]) -> dict:
    """qlife.verdict's rule on per-seed values (paired by position): t-interval of each difference."""
    return verdict(paired_seeds(values, "accuracy"), quantum, twin, classical=list(classical))


def _seeds_row(cmd: str, compared: str, v: dict, names: dict[str, str], date: str, label: str) -> Row:
    q, t, b, d = v["quantum"], v["twin"], v["best_classical"], v["difference"]["quantum_minus_twin"]
    n = v["spread"].split(" ")[0]
    return Row(cmd, compared, f"{names.get(q['method'], q['method'])} {f3(q['value'])}",
               f"twin {f3(t['value'])}; best " + ("the twin" if b["method"] == t["method"] else
                                                 f"{names.get(b['method'], b['method'])} {f3(b['value'])}"),
               f"{n} paired seeds; q − twin {sgn(d['value'])}{_ci(d['ci95'])}",
               f"vs twin: {v['verdict']}; vs best: {v['verdict_vs_best']}", date,
               (v["verdict"], v["verdict_vs_best"]), label)


def dedup(data: dict, cmd: str) -> list[Row]:
    rows = {(r["corpus"], r["method"]): r for r in data["rows"]}
    corpora = list(dict.fromkeys(r["corpus"] for r in data["rows"]))

    def f1(method: str) -> str:
        return " / ".join(f3(rows[(c, method)]["f1"]) for c in corpora)

    q, t = "quantum SemDeDup (statevector)", "classical k-means SemDeDup"
    diffs = " / ".join(sgn(rows[(c, q)]["f1"] - rows[(c, t)]["f1"]) for c in corpora)
    return [Row(cmd, f"quantum SemDeDup vs SemDeDup (twin), MinHash-LSH; F1 on planted duplicates, "
                     f"{' / '.join(corpora)}", f"quantum {f1(q)}",
                f"twin {f1(t)}; MinHash {f1('MinHash-LSH (datasketch)')}", "one run, no spread",
                f"not judged (no spread): q − twin {diffs}", _date(data), label="dedup")]


PROBLEMS = {"sst2": "tabular SST-2 (macro-F1)", "bqp": "BOCS binary quadratic problem, d = 10",
            "bqp20": "BOCS binary quadratic problem, d = 20", "contamination": "BOCS contamination control, d = 25"}


def search(data: dict, cmd: str) -> list[Row]:
    """One row per problem: FMQA (QAOA where it ran, else its first solver) against each peer the run has (BOCS,
    Optuna's GP sampler, TPE), Wilcoxon on the paired seeds per budget; the words from its p Holm-adjusted over
    every test of the run (the run's own `holm_p`, else computed here), raw p in the spread cell."""
    from qlife.verdict import holm

    out = []
    budgets = data["budgets"]
    if data["tests"] and "holm_p" not in data["tests"][0]:
        data = {**data, "tests": [{**t, "holm_p": h} for t, h in
                                  zip(data["tests"], holm([t["wilcoxon_p"] for t in data["tests"]]))]}
    family = len(data["tests"])
    opts = data.get("fmqa_options")
    variant = f", FMQA {', '.join(f'{k} {v}' for k, v in opts.items())}" if opts else ""
    names = {"bocs": "BOCS", "gp": "GP", "tpe": "TPE"}
    for problem in dict.fromkeys(t["problem"] for t in data["tests"]):
        fmqas = [t["fmqa"] for t in data["tests"] if t["problem"] == problem]
        fmqa = "fmqa_qaoa" if "fmqa_qaoa" in fmqas else fmqas[0]
        peers = [q for q in names if any(t["problem"] == problem and t["fmqa"] == fmqa and t["vs"] == q
                                         for t in data["tests"])]
        tests = {(t["vs"], t["budget"]): t for t in data["tests"] if t["problem"] == problem and t["fmqa"] == fmqa}
        best = {(r["searcher"], r["budget"]): r["median_best"] for r in data["rows"] if r["problem"] == problem
                and r["budget"] != "overhead"}
        words = {q: tuple(by_p(tests[q, b]["holm_p"], tests[q, b]["fmqa_wins"] > tests[q, b]["peer_wins"])
                          for b in budgets) for q in peers}
        name = fmqa.replace("fmqa_", "FMQA-").replace("qaoa", "QAOA")
        at = "/".join(map(str, budgets))
        vs = ", ".join(names[q] for q in peers)
        out.append(Row(cmd, f"{name} vs {vs}, median best at {at} evaluations: {PROBLEMS.get(problem, problem)}"
                            f"{variant}",
                       f"{name} " + " / ".join(f3(best.get((fmqa, b))) for b in budgets),
                       "; ".join(f"{names[q]} " + " / ".join(f3(best.get((q, b))) for b in budgets) for q in peers),
                       f"{data['seeds']} paired seeds; Wilcoxon p " + "; ".join(
                           f"{names[q]} " + " / ".join(f"{tests[q, b]['wilcoxon_p']:.2g}" for b in budgets)
                           for q in peers) + f" (words: Holm over the run's {family} tests)",
                       "; ".join(f"vs {names[q]}: {' / '.join(words[q])}" for q in peers), _date(data),
                       tuple(w for q in peers for w in words[q]),
                       f"FMQA on the {PROBLEMS.get(problem, problem)}{variant} "
                       f"({', '.join(_standing(words[q], names[q]) for q in peers)})"))
    return out


def _standing(words: Sequence[str], peer: str) -> str:
    """'ahead of TPE', 'tie with BOCS', 'behind GP' or 'mixed against X' over a row's budgets."""
    if "ahead" in words:
        return f"ahead of {peer}" if "behind" not in words else f"mixed against {peer}"
    return f"behind {peer}" if "behind" in words else f"tie with {peer}"


def _search_command(name: str) -> Callable[[dict], str]:
    def command(data: dict) -> str:
        searchers = sorted({r["searcher"] for r in data["rows"]})
        return (f"python -m bench.search --problems {' '.join(data.get('problems') or [])} --searchers "
                f"{' '.join(searchers)} --fmqa '{json.dumps(data.get('fmqa_options') or {})}' "
                f"--tag {name.removeprefix('search_')}")
    return command


def head(data: dict, cmd: str) -> list[Row]:
    out = []
    parts = {"frozen": ("quantum 4q adam", "quantum 4q frozen circuit", ["linear", "mlp_matched (h=4)"],
                        "frozen MiniLM features"),
             "finetune": ("quantum adam", "quantum frozen circuit",
                          ["linear", "linear, head lr 3e-3", "mlp_matched (h=4), head lr 3e-3"], "short fine-tune")}
    for part, (q, t, classical, what) in parts.items():
        runs = data[part]["runs"]
        values = {m: [r["test_accuracy"] for r in sorted(runs[m], key=lambda r: r["seed"])] for m in (q, t, *classical)}
        v = seed_verdict(values, q, t, classical)
        names = {q: "quantum head", "mlp_matched (h=4)": "matched MLP",
                 "mlp_matched (h=4), head lr 3e-3": "matched MLP"}
        out.append(_seeds_row(cmd, f"quantum head vs its frozen circuit (twin), linear / MLP heads; SST-2 accuracy, "
                                   f"{what}", v, names, _date(data), f"quantum head ({what})"))
    return out


def distill(data: dict, cmd: str) -> list[Row]:
    words, below, best = [], 0, None
    by_cfg: dict[tuple, dict[str, list[float]]] = {}
    for r in sorted(data["rows"], key=lambda r: r["seed"]):
        cfg = by_cfg.setdefault((r["n_qubits"], r["layers"]), {"vqc": [], "mlp": []})
        cfg["vqc"].append(r["vqc_accuracy"])
        cfg["mlp"].append(r["mlp_accuracy"])
    for (nq, layers), values in by_cfg.items():
        s = paired_seeds(values, "accuracy")
        words.append(by_ci(s["differences"]["vqc"]["mlp"]["ci95"]))
        below += s["methods"]["vqc"]["value"] < s["methods"]["mlp"]["value"]
        if best is None or s["methods"]["vqc"]["value"] > best[1]:
            best = (f"{nq}q×{layers}L", s["methods"]["vqc"]["value"], s["methods"]["mlp"]["value"])
    seeds = len(next(iter(by_cfg.values()))["vqc"])
    return [Row(cmd, f"VQC student vs same-size MLP student (peer), {len(by_cfg)} circuit sizes; SST-2 accuracy",
                f"best VQC ({best[0]}) {f3(best[1])}", f"its MLP {f3(best[2])}",
                f"{seeds} paired seeds per size, t-interval",
                f"{counts(words)} sizes (VQC's mean below its MLP's in {below})", _date(data), tuple(words),
                "VQC student vs same-size MLP")]


def by_ci(ci: Sequence[float] | None) -> str:
    if ci is None:
        return "not enough seeds"
    return "ahead" if ci[0] > 0 else "behind" if ci[1] < 0 else "tie"


def distill_students(data: dict, cmd: str) -> list[Row]:
    out = []
    for inp, what in (("teacher", "on the teacher's features"), ("static", "on static token vectors")):
        rows = sorted((r for r in data["rows"] if r["input"] == inp), key=lambda r: r["seed"])
        values: dict[str, list[float]] = {}
        for r in rows:
            values.setdefault(r["student"], []).append(r["accuracy"])
        values = {m: values[m] for m in ("vqc_trained", "vqc_twin", "vqc_frozen", "mlp")}
        v = seed_verdict(values, "vqc_trained", "vqc_twin", ["mlp"])
        names = {"vqc_trained": "VQC", "vqc_twin": "twin", "mlp": "MLP"}
        row = _seeds_row(cmd, f"VQC student vs its classical twin (cos of the same angles), frozen circuit, MLP; "
                              f"SST-2 accuracy {what}", v, names, _date(data), f"VQC student {what}")
        frozen = sum(values["vqc_frozen"]) / len(values["vqc_frozen"])
        row.peer = row.peer.replace("; best", f"; frozen circuit {f3(frozen)}; best")
        out.append(row)
    return out


def _cells_row(cmd: str, compared: str, verdicts: dict[str, dict], qname: str, date: str, label: str) -> Row:
    """One row for several cells (sparsities, ratios) judged alike: ranges, and the words counted."""
    vs = list(verdicts.values())
    diffs = [v["difference"]["quantum_minus_twin"]["value"] for v in vs]
    bests = sorted({v["best_classical"]["method"] for v in vs})
    tw, bw = [v["verdict"] for v in vs], [v["verdict_vs_best"] for v in vs]
    return Row(cmd, compared, f"{qname} {_range(vs, 'quantum')}",
               f"twin {_range(vs, 'twin')}; best ({', '.join(bests)}) {_range(vs, 'best_classical')}",
               f"{vs[0]['spread'].split(' ')[0]} paired seeds; q − twin {min(diffs):+.3f} to {max(diffs):+.3f}",
               f"vs twin: {counts(tw)}; vs best: {counts(bw)}", date, (*tw, *bw), label)


def _range(vs: list[dict], who: str) -> str:
    xs = [v[who]["value"] for v in vs]
    return f3(xs[0]) if len(xs) == 1 else f"{min(xs):.3f}–{max(xs):.3f}"


def prune(data: dict, cmd: str) -> list[Row]:
    seeds = sorted(data["seeds"], key=int)
    methods = ("qubo", "diagonal", "magnitude", "activation", "wanda", "random")
    verdicts = {}
    for kind, sparsities in data["config"]["sparsity"].items():
        for s in sparsities:
            cells = [data["seeds"][i][kind]["sparsity"][f"{s:g}"]["methods"] for i in seeds]
            values = {m: [c[m]["accuracy"] for c in cells] for m in methods}
            verdicts[f"{kind} {s:.0%}"] = seed_verdict(values, "qubo", "diagonal", methods[2:])
    return [_cells_row(cmd, f"keep-k QUBO vs its diagonal twin, magnitude / activation / Wanda / random; SST-2 "
                            f"accuracy at {len(verdicts)} sparsities ({', '.join(verdicts)}), no recovery",
                       verdicts, "QUBO", _date(data), "QUBO pruning")]


def compress(data: dict, cmd: str) -> list[Row]:
    verdicts = {}
    for ratio, cell in data["summary"].items():
        values = {m: cell["methods"][m]["values"] for m in ("mpo_disentangled", "mpo", "svd", "prune")}
        verdicts[f"{ratio}x"] = seed_verdict(values, "mpo_disentangled", "mpo", ["svd", "prune"])
    cfg = data.get("config") or {}
    lr = f"learning rate {cfg['heal_lr']:g}" if cfg.get("heal_lr") else "the stage's recovery learning rate"
    return [_cells_row(cmd, f"MPO + disentanglers vs plain MPO (twin), truncated SVD, FFN pruning, each healed alike "
                            f"({cfg.get('heal', 'n/a')} steps, {lr}) then int8 (embeddings too), at equal served "
                            f"bytes: {', '.join(verdicts)} fewer than float32; SST-2 accuracy",
                       verdicts, "MPO + disentanglers", _date(data), "MPO + disentanglers")]


def blocks(data: dict, cmd: str) -> list[Row]:
    """bench.blocks: where each method's answer ranks among every subset of blocks by true validation loss."""
    cells = data["summary"]
    mean = {c: {m: sum(v["better_share"][m]) / len(v["better_share"][m]) for m in v["better_share"]}
            for c, v in cells.items()}

    def shares(m: str) -> str:
        return " / ".join(f"{100 * mean[c][m]:.1f}%" for c in cells)

    half = {c: v for c, v in cells.items() if int(c.split("k=")[1]) * 2 == v["blocks"]}  # k = L/2: the goal
    goal = "; ".join(f"{c.split(' ')[0]} {min(v['in_best_5pct']['qaoa'], v['ahead_of_influence']['qaoa'])} of "
                     f"{v['seeds']}" for c, v in half.items())
    twin = sum(a < b for v in cells.values() for a, b in zip(v["better_share"]["qaoa"], v["better_share"]["diagonal"]))
    seeds = sum(v["seeds"] for v in cells.values())
    rho = " / ".join(f"{sum(v['spearman_energy_loss']) / len(v['spearman_energy_loss']):.2f}" for v in cells.values())
    return [Row(cmd, "block removal as a QUBO (QAOA's answer) vs its diagonal twin, Block Influence (ShortGPT), "
                     "magnitude, random; share of all C(L, k) subsets with a lower true validation loss, "
                     f"{' / '.join(c.replace('minilm', 'MiniLM-L6').replace('llama', 'Llama-12') for c in cells)}",
                f"QAOA {shares('qaoa')}",
                f"twin {shares('diagonal')}; Block Influence {shares('influence')}; random {shares('random')}",
                f"{seeds // len(cells)} seeds; Spearman(energy, loss) {rho}",
                f"not judged (ranks, no test): goal at k = L/2 (best 5%, ahead of Block Influence) {goal} seeds; "
                f"better than its twin in {twin} of {seeds} seed-cells", _date(data), (), "block-removal QUBO")]


def drift(data: dict, cmd: str) -> list[Row]:
    summary = data["summary"]
    scenarios = list(summary)

    def power(test: str) -> float:
        return sum(summary[s][test]["mean_power"] for s in scenarios) / len(scenarios)

    cells = sum(summary[s]["quantum_fidelity"]["drifted_cells"] for s in scenarios)
    classical = [t for t in ("rbf", "ks", "fuse") if t in summary[scenarios[0]]]
    best = max(classical, key=power)
    words, said = [], []
    for t, name in (("quantum_fidelity", "fidelity"), ("quantum_projected", "projected")):
        ahead = sum(summary[s][t]["beats_twin"] for s in scenarios)
        behind = sum(summary[s][t]["loses_to_twin"] for s in scenarios)
        words += ["ahead"] * ahead + ["behind"] * behind + ["tie"] * (cells - ahead - behind)
        said.append(f"{name} ahead {ahead}, behind {behind}")
    fq = max(abs(c["fuse_quantum"]["rate"] - c["fuse"]["rate"]) for c in data["cells"].values())
    fa = max(summary[s][t]["false_alarm_max"] for s in scenarios for t in summary[s])
    return [Row(cmd, f"tuned quantum kernels (fidelity, projected) vs the tuned RBF twin, {best.upper()} and MMD-FUSE;"
                     f" mean power over {cells} drifted cells ({', '.join(scenarios)})",
                f"fidelity {f3(power('quantum_fidelity'))}, projected {f3(power('quantum_projected'))}; "
                f"FUSE + quantum {f3(power('fuse_quantum'))}",
                f"twin {f3(power('rbf_tuned'))}; best {best} {f3(power(best))}; FUSE {f3(power('fuse'))}",
                f"{data['config']['reps']} windows per cell, McNemar p < 0.05 per cell; false alarms ≤ {fa:.2f}",
                f"of {cells} cells vs twin: {'; '.join(said)}; FUSE + quantum within {fq:.2f} of FUSE in every cell",
                _date(data), tuple(words), "quantum drift kernels")]


def drift_regime(data: dict, cmd: str) -> list[Row]:
    facts = data["facts"]
    scenarios = list(facts)
    cfg = data["config"]

    def mean(key: str, side: str) -> float:
        return sum(facts[s][key][side] for s in scenarios) / len(scenarios)

    fq, fqo = "fuse_quantum-fuse", "fuse_quantum_only-fuse"
    cells = sum(facts[s]["drifted_cells"] for s in scenarios)
    gains = sum(facts[s][k]["wins"] for s in scenarios for k in (fq, fqo))
    losses = {k: sum(facts[s][k]["losses"] for s in scenarios) for k in (fq, fqo)}
    words = ["ahead"] * gains + ["behind"] * sum(losses.values()) + ["tie"] * (2 * cells - gains - sum(losses.values()))
    sizes = "/".join(str(n) for n in cfg.get("sizes", []))
    return [Row(cmd, f"MMD-FUSE with quantum fidelity kernels (and quantum kernels alone) vs classical MMD-FUSE in the "
                     f"regime of arXiv 2511.20941: n = m = {sizes}, {cfg.get('qubits', 16)} qubits, bandwidth tuned;"
                     f" mean power over {cells} drifted cells ({', '.join(scenarios)})",
                f"FUSE + quantum {f3(mean(fq, 'mean_power_a'))}; quantum only {f3(mean(fqo, 'mean_power_a'))}",
                f"FUSE {f3(mean(fq, 'mean_power_b'))}",
                f"{cfg.get('reps', 'n/a')} paired windows per cell, exact McNemar, Holm over cells",
                f"FUSE + quantum: behind in {losses[fq]}, tie in {cells - losses[fq]} of {cells}; quantum only: behind "
                f"in {losses[fqo]}; ahead nowhere",
                _date(data), tuple(words), "quantum kernels in MMD-FUSE")]


def qubo(data: dict, cmd: str) -> list[Row]:
    gaps: dict[str, dict[int, float]] = {}
    for r in data["rows"]:
        gaps.setdefault(r["solver"], {})[r["n"]] = r["gap"]
    ns = sorted(gaps["qaoa"])
    at = "/".join(map(str, ns))
    word = "behind" if any(gaps["qaoa"][n] > gaps["tabu"][n] for n in ns) else "tie"
    return [Row(cmd, f"QAOA vs tabu and simulated annealing on k-of-n QUBOs, gap to the optimum at n = {at}",
                "QAOA " + " / ".join(f"{gaps['qaoa'][n]:.3f}" for n in ns),
                "tabu " + " / ".join(f"{gaps['tabu'][n]:.3f}" for n in ns) + "; SA " +
                " / ".join(f"{gaps['sa'][n]:.3f}" for n in ns), "one run per size, no spread",
                f"not judged (no spread): QAOA's gap {'above' if word == 'behind' else 'equal to'} tabu's", _date(data),
                label="QAOA vs tabu")]


def energy(data: dict, cmd: str) -> list[Row]:
    import numpy as np

    from qlife.energy import growth_study

    ratios, none = [], []
    for name, study in data["studies"].items():
        s = growth_study(name, study, [r for r in data["rows"] if r["study"] == name])
        last = s["points"][-1]
        q = float(s["curves"]["superconducting"](np.array([float(last["n"])]))[0])
        ratios.append(f"{name} {q / last['energy_kwh']:.1e}x at n = {last['n']:,}")
        none.append(s["verdicts"]["superconducting"]["size"] is None)
    return [Row(cmd, "estimated QPU energy of curate's swap tests and distill's VQC (superconducting model, "
                     "`qlife.energy`) vs the classical method's measured energy",
                "quantum / classical kWh: " + "; ".join(ratios), "classical: measured (CPU model)",
                f"{data['repeat']} repeats of the classical timing; the quantum side is a model",
                "behind: no break-even up to a billion documents" if all(none) else "a break-even exists: see "
                "`reports/energy.md`", _date(data), ("behind",) * len(ratios), "QPU energy")]


def decoder(data: dict, cmd: str) -> list[Row]:
    d = data["decoder"]["distill"]
    best = max(("student_accuracy", "MLP student"), ("mlp_same_budget_accuracy", "same-size MLP"),
               ("logistic_projected_accuracy", "logistic"), key=lambda k: d[k[0]])
    ft = data["decoder"]["finetune"]
    diff = d["vqc_accuracy"] - d["vqc_classical_twin_accuracy"]
    lr = (data.get("params") or {}).get("search.space.learning_rate")
    lrs = "search learning rates n/a (not in the JSON)" if lr is None else \
        f"search learning rates {', '.join(f'{x:g}' for x in lr) or 'of params.yaml'}"
    return [Row(cmd, f"the pipeline with a small Llama teacher ({ft} fine-tune, {lrs}; teacher "
                     f"{f3(d['teacher_accuracy'])}): VQC student vs its classical twin and the best classical "
                     "student; test accuracy",
                f"VQC {f3(d['vqc_accuracy'])}; static input {f3(d['vqc_student_static_accuracy'])}",
                f"twin {f3(d['vqc_classical_twin_accuracy'])}; best {best[1]} {f3(d[best[0]])}; static MLP "
                f"{f3(d['classical_student_static_accuracy'])}", "one run, no spread",
                f"not judged (no spread): q − twin {sgn(diff)}", _date(data), label=f"decoder ({ft})")]


def _decoder_command(out: str | None) -> Callable[[dict], str]:
    def command(data: dict) -> str:
        ft, lr = data["decoder"]["finetune"], (data.get("params") or {}).get("search.space.learning_rate")
        return ("python -m bench.decoder" + ("" if ft == "full" else f" --finetune {ft}") +
                ("" if lr in (None, [3e-4, 1e-3, 3e-3]) else f" --lr {' '.join(f'{x:g}' for x in lr)}") +
                (f" --out {out}" if out else ""))
    return command


def vqc(data: dict, cmd: str) -> list[Row]:
    rows = data["rows"]
    qs = "/".join(str(r["qubits"]) for r in rows)
    diff = max(max(r["max_abs_diff_grad_qiskit_ml"], r["max_abs_diff_grad_pennylane"]) for r in rows)
    return [Row(cmd, f"our batched VQC simulator vs qiskit-machine-learning and PennyLane lightning (adjoint), "
                     f"forward + backward at {qs} qubits",
                "ours " + " / ".join(f"{r['ours_s']:.3f}" for r in rows) + " s",
                "qiskit-ml " + " / ".join(f"{r['ratio_qiskit_ml_same_batch']:,.0f}x" for r in rows) +
                " slower (same batch); PennyLane " + " / ".join(f"{r['ratio_pennylane']:.0f}x" for r in rows),
                f"one run; gradients agree to {diff:.1e}", "ours faster at every size", _date(data))]


def qaoa(data: dict, cmd: str) -> list[Row]:
    rows = [r for r in data["rows"] if r.get("ratio") is not None]
    ns = sorted({r["n"] for r in rows})
    ratios = [r["ratio"] for r in rows]
    lower = all(r["same_or_lower_energy"] for r in rows)
    ps = " and ".join(map(str, sorted({r["p"] for r in rows})))
    return [Row(cmd, f"our QAOA vs qiskit-optimization's (same COBYLA budget), k-of-n QUBOs, n = "
                     f"{'/'.join(map(str, ns))}, p = {ps}",
                "ours: gap " + "–".join(f"{x:.3f}" for x in (min(r["ours_gap"] for r in rows),
                                                              max(r["ours_gap"] for r in rows))),
                f"qiskit: gap {min(r['qiskit_gap'] for r in rows):.3f}–{max(r['qiskit_gap'] for r in rows):.3f}; "
                f"{min(ratios):.0f}–{max(ratios):.0f}x slower", "one run per size",
                f"ours faster{', same or lower energy everywhere' if lower else ''}", _date(data))]


def fidelity(data: dict, cmd: str) -> list[Row]:
    rows = [r for r in data["rows"] if "mean_abs_err" in r]
    err = {b: [r["mean_abs_err"] for r in rows if r["backend"] == b] for b in ("shots", "aer", "aer_noisy")}
    rate = {b: [r["pairs_per_s"] for r in rows if r["backend"] == b] for b in ("statevector", "aer_noisy")}
    rng = lambda xs, spec=".3f": f"{min(xs):{spec}}–{max(xs):{spec}}"  # noqa: E731
    qs = sorted({r["qubits"] for r in rows})
    return [Row(cmd, f"swap-test fidelity on shots, aer and noisy aer vs exact, {qs[0]}–{qs[-1]} qubits per state",
                f"error: shots {rng(err['shots'])}, aer {rng(err['aer'])}, noisy {rng(err['aer_noisy'])}",
                f"exact (statevector): {rng(rate['statevector'], ',.0f')} pairs/s; noisy "
                f"{rng(rate['aer_noisy'], '.1f')} pairs/s", "pairs per backend: see the JSON",
                f"behind exact: noise's error {min(err['aer_noisy']) / max(err['shots']):.0f}–"
                f"{max(err['aer_noisy']) / min(err['shots']):.0f}x the shots'", _date(data))]


def backends(data: dict, cmd: str) -> list[Row]:
    fid = {r["backend"]: r for r in data["rows"] if r["workload"] == "fidelity"}
    noisy = [b for b in fid if b not in ("statevector", "shots")]
    return [Row(cmd, "the same swap tests on exact, shots, noisy aer and a real device's model (fake_torino): "
                     "near-duplicate decisions at curate's threshold",
                "agreement with exact: " + ", ".join(f"{b} {fid[b]['decision_agreement']:.2f}" for b in fid),
                "|F − exact|: " + ", ".join(f"{b} {fid[b]['mean_abs_error']:.3f}" for b in fid),
                f"{data['shots']} shots, one run",
                f"behind exact: {' and '.join(noisy)} agree on {min(fid[b]['decision_agreement'] for b in noisy):.0%} "
                "of decisions", _date(data))]


# name -> (command, rows, group): "classical" compares a quantum method with classical twins or peers; "engine"
# compares the quantum engine with other quantum software or with noise
BENCHES: dict[str, tuple[str | Callable[[dict], str], Callable[[dict, str], list[Row]], str]] = {
    "dedup": ("python -m bench.dedup", dedup, "classical"),
    "search": ("python -m bench.search", search, "classical"),
    "search_dw3": (_search_command("search_dw3"), search, "classical"),
    "search_rank8": (_search_command("search_rank8"), search, "classical"),
    "head": ("python -m bench.head", head, "classical"),
    "distill": ("python -m bench.distill", distill, "classical"),
    "distill_students": ("python -m bench.distill --students --seeds 3", distill_students, "classical"),
    "prune": ("python -m bench.prune --recovery 8", prune, "classical"),
    "compress": ("python -m bench.compress --targets 4 5 --heal 10 --latency-docs 128", compress, "classical"),
    "compress_heal_lr": ("python -m bench.compress --targets 4 5 --heal 10 --heal-lr 1e-5 --latency-docs 128 --out "
                         "bench/results/compress_heal_lr.json", compress, "classical"),
    "blocks": ("python -m bench.blocks", blocks, "classical"),
    "drift": ("python -m bench.drift", drift, "classical"),
    "drift_regime": ("python -m bench.drift_regime", drift_regime, "classical"),
    "qubo": ("python -m bench.qubo", qubo, "classical"),
    "energy": ("python -m bench.energy", energy, "classical"),
    "decoder": (_decoder_command(None), decoder, "classical"),
    "decoder_lora": (_decoder_command("bench/results/decoder_lora.json"), decoder, "classical"),
    "vqc": ("python -m bench.vqc", vqc, "engine"),
    "qaoa": ("python -m bench.qaoa", qaoa, "engine"),
    "fidelity": ("python -m bench.fidelity", fidelity, "engine"),
    "backends": ("python -m bench.backends", backends, "engine"),
}
# results that are not a quantum-against-classical comparison, and why
OTHER = {"batching": "length-grouped batches (no quantum method)",
         "embedders": "curate's near-duplicate embedders and the teacher's CPU inference ways (no quantum method)",
         **{n: "the monitoring block above" for n in ("calibration", "cbpe", "doc_scores", "linear_mmd", "monitoring")},
         "scale": "curate's placements: serial, pool, Dask (no quantum method)",
         "plan": "curate's unit costs and 10^8 documents on N workers (docs/scale-out.md)",
         "growth": "every step's cost against corpus size (reports/energy.md)",
         "drift_seeds": "the monitor's p-value across seeds (no quantum method)",
         "search_table_sst2": "the table `bench.search` replays",
         "distill_plot": "plot data of `distill`",
         "drift.gen": "a part of `drift`", "drift.sst": "a part of `drift`",
         "sequential": "the first stream study (TF-IDF features), superseded by `monitoring.json`",
         SNAPSHOT.removesuffix(".json"): "the default run (the verdicts block)"}


def benchmark_rows(results: Path = RESULTS) -> tuple[dict[str, list[Row]], list[str]]:
    """Rows by group from every JSON in `results`, and a line for each JSON not in the table."""
    groups: dict[str, list[Row]] = {"classical": [], "engine": []}
    present = {p.name.removesuffix(".json"): p for p in sorted(results.glob("*.json"))}
    others = [f"`{p.name}`: {OTHER.get(n, 'not summarised here yet')}" for n, p in present.items() if n not in BENCHES]
    for name in (n for n in BENCHES if n in present):
        path = present[name]
        command, make_rows, group = BENCHES[name]
        try:
            data = json.loads(path.read_text())
            cmd = command(data) if callable(command) else command
            rows = make_rows(data, f"`{cmd}`")
        except MALFORMED as err:
            cmd = command if isinstance(command, str) else f"python -m bench.{name.split('_')[0]}"
            rows = [Row(f"`{cmd}`", f"`{path.name}`", "n/a", "n/a", "n/a",
                        f"n/a: the JSON lacks what this row needs ({type(err).__name__}: {err})", "n/a")]
        groups[group] += rows
    return groups, others


def _table(rows: list[Row]) -> str:
    head = ("| benchmark | compared | quantum | classical twin / peer | spread | verdict | measured |\n"
            "|---|---|---|---|---|---|---|\n")
    return head + "\n".join("| " + " | ".join(_cell(c) if i else c for i, c in enumerate(
        (r.command, r.compared, r.quantum, r.peer, r.spread, r.verdict, r.date))) + " |" for r in rows) + "\n"


def render_benchmarks(results: Path = RESULTS) -> str:
    groups, others = benchmark_rows(results)
    judged = [r for r in groups["classical"] if r.words]
    ahead = [r.label for r in judged if "ahead" in r.words and "behind" not in r.words]
    mixed = [r.label for r in judged if "ahead" in r.words and "behind" in r.words]
    summary = (f"Ahead of its classical twin or peer beyond the spread, and behind nowhere: "
               f"{'; '.join(ahead) or 'none'}. Ahead somewhere and behind elsewhere: {'; '.join(mixed) or 'none'}. "
               f"Every other judged row is a tie or behind; rows of one run are not judged.")
    return ("**A quantum method against its classical twin or peer**\n\n" + _table(groups["classical"]) +
            f"\n{summary}\n\n**The quantum engine against other quantum software, and against noise**\n\n" +
            _table(groups["engine"]) + "\nNot in the tables: " + "; ".join(others) + ".\n")


# --- the README ------------------------------------------------------------------------------------------------

def blocks(results: Path = RESULTS) -> dict[str, str]:
    snap = results / SNAPSHOT
    from qlife import readme_monitoring

    return {"verdicts": render_verdicts(json.loads(snap.read_text()) if snap.exists() else None),
            "monitoring": readme_monitoring.render(results),
            "benchmarks": render_benchmarks(results)}


def fill(text: str, generated: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with each generated block replaced; the names of those that changed. A block the text lacks, or a
    marker without its end, is an error naming it."""
    found = [m.group("name") for m in BLOCK.finditer(text)]
    missing = [n for n in generated if n not in found]
    if missing:
        raise ValueError(f"README has no block {', '.join(missing)}: add `{BEGIN.format(name=missing[0])}` ... "
                         f"`{END.format(name=missing[0])}`")
    changed = []

    def swap(m: re.Match) -> str:
        name = m.group("name")
        if name not in generated:
            return m.group(0)
        body = generated[name] if generated[name].endswith("\n") else generated[name] + "\n"
        if m.group("body") != body:
            changed.append(name)
        return f"{BEGIN.format(name=name)}\n{body}{END.format(name=name)}"

    return BLOCK.sub(swap, text), changed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.readme", description=__doc__.split("\n")[0])
    ap.add_argument("cmd", nargs="?", choices=["snapshot"], help="snapshot: write bench/results/default_run.json")
    ap.add_argument("--check", action="store_true", help="exit 1 when a generated block is not what it would be")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.cmd == "snapshot":
        from qlife.params import load_params

        out = args.results / SNAPSHOT
        out.write_text(json.dumps(snapshot(load_params()), indent=1, ensure_ascii=False) + "\n")
        print(f"{out}: the default run's verdicts; `python -m qlife.readme` puts them in {args.readme}")
        return
    text = args.readme.read_text()
    try:
        new, changed = fill(text, blocks(args.results))
    except ValueError as err:
        print(f"qlife.readme: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.check:
        if changed:
            print(f"{args.readme}: generated blocks out of date: {', '.join(changed)} "
                  "(`python -m qlife.readme` rewrites them)", file=sys.stderr)
            raise SystemExit(1)
        print(f"{args.readme}: generated blocks up to date")
        return
    if new != text:
        args.readme.write_text(new)
    print(f"{args.readme}: {', '.join(changed) or 'no block'} rewritten")


if __name__ == "__main__":
    main()
