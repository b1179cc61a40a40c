"""reports/index.html: the whole run on one offline page (DESIGN.md §2, §7: `dvc plots show` needs the internet).

In: the steps' full reports (`paths.reports/<step>.json`), their DVC plot data (`paths.reports/plots/*.json`),
the PNGs already drawn (`plots/encoding_circuits.png`, `plots/energy_stages.png`, `plots/energy_growth.png`) and
the drift results (`paths.monitor/drift.json`). Out: `paths.reports/index.html`, one self-contained file: inline
CSS, every plot a matplotlib PNG embedded as a base64 data URI, no script, no link outside but relative ones to
the full reports. Holds, in order: the verdict table (the rows of reports/summary.md), the cost table, a section
per lifecycle stage with its plots, the energy plots, links to the full reports. A plot whose data is missing or
malformed is one line saying so, naming the file. The same inputs give the same bytes (fixed dpi, no PNG
metadata, no timestamp). Params: `paths`. CLI: `python -m qlife.report_page [--params params.yaml]`.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qlife import ledger
from qlife.io import current, write_text
from qlife.params import PARAMS_FILE, Params, load_params
from qlife.stage import STAGES, STEPS, merge_steps, report_path, steps_of
from qlife.verdict import cost_rows, markdown_row, stage_verdicts

DPI = 90
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RC = {"font.size": 8, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7, "lines.markersize": 4}
MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)
TITLES = {"curate": "Collection and curation", "encode": "Data encoding", "search": "Hyperparameter search",
          "train": "Training", "distill": "Distillation", "deploy": "Deployment: pruning, compression, serving",
          "monitor": "Monitoring: drift"}


class Missing(Exception):
    """A plot's data is absent or unusable: the message (why) is said on the page instead."""


@dataclass(frozen=True)
class Source:
    """One input of a plot: where it is (named on the page) and how to load it (raises Missing)."""

    name: str
    load: Callable[[], Any]


@dataclass(frozen=True)
class Plot:
    """One image: its sources; `draw(fig, data)` with one entry per source (None where missing), or no draw:
    the single source is a PNG embedded as it is."""

    title: str
    sources: tuple[Source, ...]
    draw: Callable[[Any, list[Any]], None] | None = None
    size: tuple[float, float] = (5.6, 3.2)


# ----------------------------------------------------------------------------- inputs

def _json(path: Path, writer: str) -> Source:
    def load() -> Any:
        try:
            data = json.loads(current(path).read_text())
        except FileNotFoundError:
            raise Missing(f"{path} not found: {writer} writes it") from None
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise Missing(f"{path} is malformed: {type(err).__name__}: {err}") from None
        if not data:
            raise Missing(f"{path} holds no rows")
        return data
    return Source(str(path), load)


def _png_file(path: Path, writer: str) -> Source:
    def load() -> bytes:
        try:
            data = current(path).read_bytes()
        except FileNotFoundError:
            raise Missing(f"{path} not found: {writer} writes it") from None
        if not data.startswith(PNG_MAGIC):
            raise Missing(f"{path} is malformed: not a PNG")
        return data
    return Source(str(path), load)


def _part(reports: dict, problems: dict[str, str], params: Params, step: str, *keys: str) -> Source:
    """reports[stage][keys...] of the lifecycle stage `step` belongs to, named by the step's report file."""
    path = report_path(params, step)
    stage = next(s for s in STAGES if step in steps_of(s))

    def load() -> Any:
        if step in problems:
            raise Missing(problems[step])
        node: Any = reports.get(stage)
        if node is None:
            raise Missing(f"{path} not found: the {step} step writes it")
        for k in keys:
            if not isinstance(node, dict) or node.get(k) is None:
                raise Missing(f"{path} holds no {'.'.join(keys)}")
            node = node[k]
        return node
    return Source(str(path), load)


def load_reports(params: Params) -> tuple[dict[str, dict], dict[str, str]]:
    """`qlife.stage.stage_reports`, but a malformed reports/<step>.json is a problem named (step -> why), not a
    crash: (the lifecycle stages' merged reports, problems)."""
    reports, problems = {}, {}
    for stage in STAGES:
        parts = []
        for step in steps_of(stage):
            path = report_path(params, step)
            if not path.exists():
                continue
            try:
                part = json.loads(current(path).read_text())
                if not isinstance(part, dict):
                    raise ValueError(f"a JSON {type(part).__name__}, not an object")
                parts.append(part)
            except (json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError) as err:
                problems[step] = f"{path} is malformed: {type(err).__name__}: {err}"
        if parts:
            reports[stage] = merge_steps(parts)
    return reports, problems


# ----------------------------------------------------------------------------- drawing

def _png(draw: Callable[[Any], None], size: tuple[float, float]) -> bytes:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})  # no version, no date: same bytes
    return buf.getvalue()


def render(plot: Plot) -> tuple[bytes | None, list[str]]:
    """The plot's PNG (None when nothing could be drawn) and a line per source that is missing or malformed."""
    data, notes = [], []
    for s in plot.sources:
        try:
            data.append(s.load())
        except Missing as why:
            data.append(None)
            notes.append(str(why))
        except MALFORMED as err:  # a file of the wrong shape
            data.append(None)
            notes.append(f"{s.name} is malformed: {type(err).__name__}: {err}")
    if all(d is None for d in data):
        return None, notes
    if plot.draw is None:
        return data[0], notes
    try:
        return _png(lambda fig: plot.draw(fig, data), plot.size), notes
    except Missing as why:
        return None, [*notes, str(why)]
    except MALFORMED as err:
        named = ", ".join(s.name for s, d in zip(plot.sources, data) if d is not None)
        return None, [*notes, f"{named} is malformed: {type(err).__name__}: {err}"]


def _series(rows: list[dict], x: str, skip: Sequence[str] = ()) -> dict[str, list[tuple[float, float]]]:
    """One line per key other than x (first-seen order): its (x, y) points where the row holds it."""
    keys = dict.fromkeys(k for r in rows for k in r if k != x and k not in skip)
    return {k: [(float(r[x]), float(r[k])) for r in rows if r.get(k) is not None] for k in keys}


def draw_lines(x: str, ylabel: str, title: str, skip: Sequence[str] = ()) -> Callable[[Any, list], None]:
    """One line per series against x; a single x value (one sparsity) is a point per series, side by side."""
    def draw(fig: Any, data: list) -> None:
        rows, ax = data[0], fig.subplots()
        y = str(rows[0].get("metric", ylabel)) if "metric" in skip else ylabel
        series = _series(rows, x, skip)
        xs = {p[0] for pts in series.values() for p in pts}
        if len(xs) == 1:  # one point per series: side by side, values written, the axis not stretched to 0
            names, ys = list(series), [pts[0][1] for pts in series.values()]
            _labelled(ax, [(i, v, f"{v:.3f}") for i, v in enumerate(ys)], color="#4c72b0")
            ax.set_xticks(range(len(names)), names)
            ax.set(xlabel=f"{x.replace('_', ' ')} {xs.pop():g}", ylabel=y, title=title)
            return
        for name, pts in series.items():
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.set(xlabel=x.replace("_", " "), ylabel=y, title=title)
        ax.legend()
    return draw


def draw_removals(fig: Any, data: list) -> None:
    methods, ax = data[0], fig.subplots()
    names = list(methods)
    exact = [int(methods[m]["exact_removed"]) for m in names]
    near = [int(methods[m]["near_removed"]) for m in names]
    ax.bar(names, exact, width=0.5, label="exact hash", color="#999999")
    ax.bar(names, near, width=0.5, bottom=exact, label="near duplicate", color="#4c72b0")
    ax.grid(axis="x", visible=False)
    for i, m in enumerate(names):
        f1 = methods[m].get("f1")
        ax.annotate("no ground truth" if f1 is None else f"F1 {float(f1):.3f}", (i, exact[i] + near[i]),
                    ha="center", va="bottom")
    ax.set(ylabel="documents removed", title="Removals per method (F1 against the planted duplicates)")
    ax.legend()


PAIR_MEASURES = (("embedding_cosine", "embedding cosine"), ("word_jaccard", "word Jaccard"),
                 ("tfidf_cosine", "TF-IDF cosine"))


def draw_similarity(fig: Any, data: list) -> None:
    methods = data[0]
    if not any((m.get("pairs") or {}).get("n") for m in methods.values()):
        raise Missing("no method removed a near-duplicate pair")
    for ax, (key, label) in zip(fig.subplots(1, len(PAIR_MEASURES)), PAIR_MEASURES):
        stats = [{"label": m, "med": d["median"], "q1": d["p25"], "q3": d["p75"], "whislo": d["p10"],
                  "whishi": d["p90"], "mean": d["mean"], "fliers": [d["min"], d["max"]]}
                 for m, q in methods.items() if (d := (q.get("pairs") or {}).get(key))]
        if stats:
            ax.bxp(stats, showmeans=True)
        ax.set(title=label, ylim=(0, 1.05))
    fig.suptitle("Removed pairs: similarity (box p25-p75, whiskers p10-p90, dots min / max, triangle mean)")


def draw_distill_curves(fig: Any, data: list) -> None:
    ax = fig.subplots()
    for rows, label in zip(data, ("student (distill_curve.json)", "VQC student (distill_vqc_curve.json)")):
        if rows:
            ax.plot([float(r["epoch"]) for r in rows], [float(r["val_accuracy"]) for r in rows], marker="o",
                    label=label)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Distillation: validation accuracy per epoch")
    ax.legend()


def _log_x(ax: Any, xs: Sequence[float]) -> None:
    """A log x axis where the values span more than 20x (parameters, latency); else linear."""
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")


def _labelled(ax: Any, pts: list[tuple[float, float, str]], **style: Any) -> None:
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], **style)
    ax.margins(0.08, 0.12)  # room for the labels
    for x, y, name in pts:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)


def draw_students(fig: Any, data: list) -> None:
    rows, ax = data[0], fig.subplots()
    _labelled(ax, [(float(r["parameters"]), float(r["test_quality"]), str(r["student"])) for r in rows])
    _log_x(ax, [float(r["parameters"]) for r in rows])
    ax.set(xlabel="parameters", ylabel=f"test {rows[0].get('metric', 'quality')}",
           title="Students: quality against parameters")


def draw_compress(fig: Any, data: list) -> None:
    rows, ax = data[0], fig.subplots()
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((float(r["parameters"]), float(r["quality"]), f"x{float(r['ratio']):g}")
                     for r in rows if r["method"] == method)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        for px, py, ratio in pts:
            ax.annotate(ratio, (px, py), textcoords="offset points", xytext=(4, 3), fontsize=6)
    _log_x(ax, [float(r["parameters"]) for r in rows])
    ax.set(xlabel="parameters", ylabel=rows[0].get("metric", "quality"),
           title="Compression: quality against parameters, one line per method")
    ax.legend()


def draw_pareto(fig: Any, data: list) -> None:
    rows, ax = data[0], fig.subplots()
    pts = [(float(r["ms_per_request"]), float(r["quality"]), str(r["model"])) for r in rows]
    front = sorted(p for p, r in zip(pts, rows) if r.get("pareto"))
    _labelled(ax, [p for p, r in zip(pts, rows) if not r.get("pareto")], color="#999999", label="dominated")
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#c44e52", alpha=0.6)
        _labelled(ax, front, color="#c44e52", label="Pareto front")
    _log_x(ax, [p[0] for p in pts])
    ax.set(xlabel="ms per request (batch 1)", ylabel="quality",
           title="Serving: quality against latency, the front highlighted")
    ax.legend()


def draw_drift(fig: Any, data: list) -> None:
    d, ax = data[0], fig.subplots()
    windows = list(dict.fromkeys(w for ps in d["p_values"].values() for w in ps))
    tests = list(d["p_values"])
    for i, test in enumerate(tests):
        off = (i - (len(tests) - 1) / 2) * 0.6 / max(len(tests), 1)
        pts = [(j + off, float(d["p_values"][test][w]) or 1e-16) for j, w in enumerate(windows)
               if d["p_values"][test].get(w) is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=test, marker="os^vDP*X"[i % 8])
    if d.get("alpha") is not None:
        ax.axhline(float(d["alpha"]), color="#c44e52", linestyle="--", label=f"alpha {float(d['alpha']):g}")
    planted = d.get("planted", {})
    ax.set_xticks(range(len(windows)), [w + (" (drift planted)" if planted.get(w) else "") for w in windows],
                  rotation=30, ha="right")
    ax.set(yscale="log", ylabel="p-value", title="Drift: p-value per live window and test (below alpha: alarm)")
    ax.legend(ncol=2)


def _drift(reports: dict, problems: dict[str, str], params: Params) -> Source:
    """p-values per test and window from the monitor report (else paths.monitor/drift.json), alpha, and which
    windows had drift planted (drift.json)."""
    drift_file = _json(Path(params.paths.monitor) / "drift.json", "the monitor step")
    report = _part(reports, problems, params, "monitor", "methods")

    def load() -> dict:
        try:
            results, results_why = drift_file.load(), None
        except Missing as why:
            results, results_why = {}, str(why)
        planted = {w: r.get("drift_planted") for w, r in results.items()}
        try:
            methods = report.load()
            p_values = {t: m["p_values"] for t, m in methods.items() if isinstance(m, dict) and "p_values" in m}
            alpha = reports["monitor"].get("decision", {}).get("alpha")
        except Missing as why:
            if results_why:
                raise Missing(f"{why}; {results_why}") from None
            p_values, alpha = {}, None
            for w, r in results.items():
                for t, row in r.get("tests", {}).items():
                    p_values.setdefault(t, {})[w] = row["p_value"]
        if not p_values:
            raise Missing("no drift test was run on a window")
        return {"p_values": p_values, "alpha": alpha, "planted": planted}
    return Source(f"{report.name} / {drift_file.name}", load)


# ----------------------------------------------------------------------------- the page

def stage_plots(params: Params, reports: dict, problems: dict[str, str]) -> dict[str, list[Plot]]:
    """Per section (the seven stages, then energy): its plots, drawn from what the steps wrote."""
    plots = Path(params.paths.reports) / "plots"

    def j(name: str, step: str) -> Source:
        return _json(plots / name, f"the {step} step")

    curate_methods = _part(reports, problems, params, "curate", "methods")
    energy = "qlife.energy (after the steps)"
    return {
        "curate": [Plot("Deduplication: removals per method", (curate_methods,), draw_removals),
                   Plot("Deduplication: similarity of the removed pairs", (curate_methods,), draw_similarity,
                        (8.0, 3.0))],
        "encode": [Plot("Data-loading circuits: depth and two-qubit gates",
                        (_png_file(plots / "encoding_circuits.png", "the encode step"),))],
        "search": [Plot("Search: best proxy score so far, per searcher", (j("search_best_so_far.json", "search"),),
                        draw_lines("evaluation", "best score so far", "Same evaluator, same budget"))],
        "train": [Plot("Training: loss per step", (j("train_loss.json", "train"),),
                       draw_lines("step", "loss", "Teacher fine-tuning loss"))],
        "distill": [Plot("Distillation curves", (j("distill_curve.json", "distill"),
                                                 j("distill_vqc_curve.json", "distill")), draw_distill_curves),
                    Plot("Distilled students", (j("distill_students.json", "distill"),), draw_students)],
        "deploy": [Plot("Pruning attention heads: quality against sparsity", (j("prune_heads.json", "deploy"),),
                        draw_lines("sparsity", "quality", "Attention heads removed, per method", ("metric",))),
                   Plot("Pruning FFN neurons: quality against sparsity", (j("prune_ffn.json", "deploy"),),
                        draw_lines("sparsity", "quality", "FFN neurons removed, per method", ("metric",))),
                   Plot("Compression: quality against parameters", (j("compress.json", "compress"),), draw_compress),
                   Plot("Serving: Pareto front", (j("serving_pareto.json", "serving"),), draw_pareto)],
        "monitor": [Plot("Drift: p-values per window and test", (_drift(reports, problems, params),), draw_drift,
                         (7.0, 3.6))],
        "energy": [Plot("Energy per stage", (_png_file(plots / "energy_stages.png", energy),)),
                   Plot("Energy growth with size", (_png_file(plots / "energy_growth.png", energy),))],
    }


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def verdict_row(stage: str, v: dict | None) -> tuple[list[str], str]:
    """The cells of one stage's row, as reports/summary.md has them (`qlife.verdict.markdown_row`), and its note:
    how the spread was measured and what the stage says about it."""
    cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", markdown_row(stage, v))[1:-1]]
    note = "" if v is None else f"{v.get('spread') or ''}. {v.get('note') or ''}".strip(" .")
    return cells, note + "." if note else ""


def verdict_table(reports: dict, problems: dict[str, str]) -> str:
    head = ("stage (metric)", "quantum [95% CI]", "classical twin [95% CI]", "best classical",
            "quantum − twin [95% CI]", "verdict", "cost (quantum vs twin)")
    body, notes = [], []
    for stage, v in stage_verdicts(reports).items():
        try:
            cells, note = verdict_row(stage, v)
            word = v["verdict"] if v is not None else "not run"
        except MALFORMED as err:
            cells, note, word = [stage, f"malformed verdict ({type(err).__name__}: {err})", *[""] * 5], "", ""
        problem = problems.get(stage.split("/")[-1])
        if v is None and problem:
            cells[1] = problem
        cls = word if word in ("ahead", "tie", "behind") else "other"
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        if note:
            notes.append(f"<li><b>{_e(stage)}</b>: {_e(note)}</li>")
    table = ("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>\n" + "\n".join(body) + "</table>")
    bad = "".join(f'<p class="missing">{_e(why)}: its rows are missing</p>' for why in problems.values())
    return bad + table + (f"\n<ul class=\"notes\">{''.join(notes)}</ul>" if notes else "")


def cost_table(reports: dict) -> str:
    try:
        rows = cost_rows(reports)
        t = ledger.summarize(reports)["total"]
        rows.append(["total", f"{t['wall_s']:.1f}", f"{t['cpu_s']:.1f}", f"{t['energy_kwh']:.2e}",
                     f"{t['qpu_seconds_est']:.3g}"])
    except MALFORMED as err:
        return f'<p class="missing">Not produced by this run (a cost section is malformed: {_e(err)})</p>'
    head = "".join(f"<th>{h}</th>" for h in ("stage", "wall s", "CPU s", "energy kWh", "QPU s (est.)"))
    return (f"<table class=\"num\"><tr>{head}</tr>\n"
            + "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def section(key: str, title: str, plots: list[Plot], why: str | None = None) -> str:
    out = [f'<section id="{key}"><h2>{_e(title)}</h2>']
    if why:
        out.append(f'<p class="why">{_e(why)}</p>')
    for plot in plots:
        png, notes = render(plot)
        if png is not None:
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img alt="{_e(plot.title)}" src="{src}"><figcaption>{_e(plot.title)}'
                       "</figcaption></figure>")
        out += [f'<p class="missing">{_e(plot.title)}: not produced by this run ({_e(n)})</p>' for n in notes]
    return "\n".join(out) + "</section>"


def links(params: Params) -> str:
    reports = Path(params.paths.reports)
    files = [*(report_path(params, s) for s in STEPS), *(reports / n for n in ("summary.md", "energy.md",
                                                                               "dedup_pairs.md")),
             Path(params.paths.monitor) / "drift.json"]
    items = []
    for f in files:
        rel = Path(os.path.relpath(f.absolute(), reports.absolute())).as_posix()
        items.append(f'<li><a href="{_e(quote(rel))}">{_e(rel)}</a></li>' if f.exists()
                     else f"<li>{_e(rel)}: not produced by this run</li>")
    return "<ul>" + "".join(items) + "</ul>"


CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f0f0f0}table.num td+td{text-align:right}
tr.ahead td:nth-child(6){background:#dff0d8}tr.behind td:nth-child(6){background:#f2dede}
tr.tie td:nth-child(6){background:#f5f5f5}img{max-width:100%;border:1px solid #eee}
figure{display:inline-block;vertical-align:top;margin:.5em 1em .5em 0;max-width:100%}
figcaption{font-size:12px;color:#555}.missing{color:#8a6d3b}.why{color:#555;font-size:13px}
.notes{font-size:12px;color:#444}nav li{display:inline;margin-right:1em}"""


INTRO = ("Each stage's quantum method beside its classical twin and the run's best classical method, on the same "
         "data in the same run; every figure comes from the reports linked at the end.")


def page(params: Params) -> str:
    """The page's HTML."""
    reports, problems = load_reports(params)
    plots = stage_plots(params, reports, problems)
    titles = {"verdicts": "Verdicts", "cost": "Cost", **{s: f"{i}. {TITLES[s]}" for i, s in enumerate(STAGES, 1)},
              "energy": "Energy", "reports": "Full reports"}
    parts = [f'<section id="verdicts"><h2>Verdicts: each stage\'s quantum method against its classical twin</h2>'
             f"{verdict_table(reports, problems)}</section>",
             f'<section id="cost"><h2>Cost</h2>{cost_table(reports)}</section>']
    for key in (*STAGES, "energy"):
        decision = reports.get(key, {}).get("decision")
        why = decision.get("why") if isinstance(decision, dict) else None
        parts.append(section(key, titles[key], plots[key], why if isinstance(why, str) else None))
    parts.append(f'<section id="reports"><h2>Full reports</h2>{links(params)}</section>')
    toc = "".join(f'<li><a href="#{k}">{_e(t)}</a></li>' for k, t in titles.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qlife run report</title>"
            f"<style>{CSS}</style></head><body>\n<h1>qlife run report</h1>\n<p>{INTRO}</p>\n"
            f"<nav><ul>{toc}</ul></nav>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_page(params: Params) -> Path:
    """Write `paths.reports/index.html` from what the run wrote; returns its path."""
    path = Path(params.paths.reports) / "index.html"
    write_text(path, page(params))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.report_page",
                                 description="Write reports/index.html (offline, plots embedded) from the run.")
    ap.add_argument("--params", default=PARAMS_FILE, help="the params file (default: %(default)s)")
    print(write_page(load_params(ap.parse_args(argv).params)))


if __name__ == "__main__":
    main()
