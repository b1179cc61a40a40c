"""qlife.report_page: reports/index.html is one offline file (no link, script or font from outside; every plot a PNG
data URI), its verdict table has the rows of reports/summary.md, a plot whose data is missing or malformed is one
line naming the file, and the same inputs give the same bytes. A slow test renders it in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qlife.params import parse_params
from qlife.report_page import PNG_MAGIC, load_reports, main, write_page
from qlife.stage import STAGES, STEPS
from qlife.verdict import cost_rows, markdown_row, paired_bootstrap, stage_verdicts, verdict

IMG = re.compile(r'<img [^>]*src="([^"]*)"')
N_PLOTS = 14  # curate 2, encode 1, search 1, train 1, distill 2, deploy 4, monitor 1, energy 2
METHODS = {"curate": ("fidelity_dedup", "cos2_dedup"), "encode": ("amplitude_svm", "pca_svm"),
           "search": ("fmqa", "tpe"), "train": ("quantum_head", "frozen_head"), "distill": ("vqc", "mlp_twin"),
           "deploy": ("qubo_heads", "topk_heads"), "compress": ("mpo_dis", "svd"), "monitor": ("qkernel", "rbf_tuned")}


def step_verdict(step: str, seed: int) -> dict:
    """A real verdict: the quantum method, its twin and a third classical method on the same 200 documents."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    noisy = {m: np.where(rng.random(200) < acc, y, 1 - y) for m, acc in zip((*METHODS[step], "logistic"),
                                                                           (0.85, 0.75, 0.8))}
    q, t = METHODS[step]
    cost = {q: {"wall_s": 2.0, "energy_kwh": 1e-6, "qpu_s_est": 3.5}, t: {"wall_s": 1.0, "energy_kwh": 5e-7}}
    return verdict(paired_bootstrap("macro_f1", y, noisy, n_resamples=200, seed=seed), q, t, cost=cost,
                   note=f"{step} note")


def _png(path: Path, seed: int) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    fig.subplots().plot(np.random.default_rng(seed).random(5))
    fig.savefig(path, format="png", dpi=40, metadata={"Software": None})


PLOTS = {
    "search_best_so_far.json": [{"evaluation": i + 1, "random": 0.5 + 0.01 * i, "tpe": 0.5 + 0.02 * i,
                                 **({"fmqa": 0.6 + 0.01 * i} if i < 4 else {})} for i in range(6)],
    "train_loss.json": [{"step": i, "loss": 1.0 / (i + 1)} for i in range(10)],
    "distill_curve.json": [{"epoch": i, "loss": 1.0 - 0.1 * i, "val_accuracy": 0.6 + 0.05 * i} for i in range(5)],
    "distill_vqc_curve.json": [{"epoch": i, "loss": 1.0 - 0.05 * i, "val_accuracy": 0.55 + 0.04 * i}
                               for i in range(5)],
    "distill_students.json": [{"student": "vqc_student", "input": "teacher", "parameters": 96, "metric": "macro_f1",
                               "test_quality": 0.7, "test_accuracy": 0.8},
                              {"student": "classical_student", "input": "teacher", "parameters": 12000,
                               "metric": "macro_f1", "test_quality": 0.78, "test_accuracy": 0.85}],
    "prune_heads.json": [{"sparsity": s, "metric": "macro_f1", "magnitude": 0.8 - s / 4, "qubo": 0.82 - s / 5}
                         for s in (0.25, 0.5)],
    "prune_ffn.json": [{"sparsity": 0.5, "metric": "macro_f1", "magnitude": 0.7, "wanda": 0.72, "qubo": 0.71}],
    "compress.json": [{"method": m, "ratio": r, "parameters": int(2e7 / r), "metric": "macro_f1",
                       "quality": 0.8 - 0.02 * r - (0.01 if m == "svd" else 0), "accuracy": 0.85}
                      for m in ("svd", "mpo_disentangled") for r in (2.0, 3.0)],
    "serving_pareto.json": [{"model": "teacher", "ms_per_request": 20.0, "quality": 0.85, "pareto": True},
                            {"model": "pruned", "ms_per_request": 12.0, "quality": 0.8, "pareto": True},
                            {"model": "compressed", "ms_per_request": 15.0, "quality": 0.78, "pareto": False},
                            {"model": "student", "ms_per_request": 0.3, "quality": 0.7, "pareto": True}],
}
PAIRS = {"n": 12, **{k: {"min": 0.9, "p10": 0.91, "p25": 0.93, "median": 0.95, "p75": 0.97, "p90": 0.98, "max": 0.99,
                         "mean": 0.95} for k in ("embedding_cosine", "word_jaccard", "tfidf_cosine")}}


def report(step: str, seed: int) -> dict:
    r = {"stage": step, "summary": {"x": 1}, "verdict": step_verdict(step, seed),
         "decision": {"why": f"{step} applied its best method"},
         "cost": {f"qubo_{step}": {"wall_s": 1.0, "quantum": {"qpu_seconds_est": 2.0}},
                  "total": {"wall_s": 10.0 + seed, "cpu_s": 8.0, "energy_kwh": 1e-5}}}
    if step == "curate":
        r["methods"] = {m: {"removed": 30, "exact_removed": 10, "near_removed": 20, "f1": 0.9, "pairs": PAIRS}
                        for m in ("classical", "quantum")}
    if step == "monitor":
        r["methods"] = {"rbf": {"p_values": {"w0": 0.4, "w1": 0.001}}, "qkernel": {"p_values": {"w0": 0.6, "w1": 0.01}},
                        "ocsvm": {"rate": 0.1}}
        r["decision"] = {"alpha": 0.05, "alarms": ["w1"]}
    return r


@pytest.fixture
def run(tmp_path: Path):
    """A tmp workdir with every step's report, plot data, PNG and drift.json; returns (params, reports folder)."""
    reports, plots, monitor = tmp_path / "reports", tmp_path / "reports" / "plots", tmp_path / "monitor"
    plots.mkdir(parents=True)
    monitor.mkdir()
    for seed, step in enumerate(s for s in STEPS if s != "serving"):
        (reports / f"{step}.json").write_text(json.dumps(report(step, seed)))
    (reports / "serving.json").write_text(json.dumps({"stage": "serving", "summary": {},
                                                      "cost": {"total": {"wall_s": 3.0, "cpu_s": 2.0}}}))
    for name, rows in PLOTS.items():
        (plots / name).write_text(json.dumps(rows))
    for seed, name in enumerate(("encoding_circuits.png", "energy_stages.png", "energy_growth.png")):
        _png(plots / name, seed)
    (monitor / "drift.json").write_text(json.dumps({"w0": {"drift_planted": False}, "w1": {"drift_planted": True}}))
    (reports / "summary.md").write_text("# summary\n")
    params = parse_params({"paths": {"reports": str(reports), "monitor": str(monitor),
                                     "metrics": str(tmp_path / "metrics"), "curated": str(tmp_path / "curated")}})
    return params, reports


def images(page: str) -> list[bytes]:
    out = []
    for src in IMG.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        out.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return out


def test_page_holds_the_verdict_rows_the_costs_and_links(run):
    params, reports = run
    path = write_page(params)
    assert path == reports / "index.html"
    page = path.read_text()
    rows = re.findall(r'<tr class="(\w+)">((?:<td>[^<]*</td>){7})</tr>', page)
    verdicts = stage_verdicts(load_reports(params)[0])
    assert list(verdicts) == [*STAGES[:6], "deploy/compress", "monitor"]  # summary.md's rows
    assert len(rows) == len(verdicts)
    for (cls, cells), (stage, v) in zip(rows, verdicts.items()):
        cells = [html.unescape(c) for c in re.findall(r"<td>([^<]*)</td>", cells)]
        assert cells == [c.strip() for c in markdown_row(stage, v).strip("| ").split(" | ")], stage
        assert cls == v["verdict"] and cells[0] == f"{stage} (macro_f1)"
        (lo, hi), q = v["quantum"]["ci95"], v["quantum"]
        assert cells[1] == f"{METHODS[stage.split('/')[-1]][0]}: {q['value']:.3f} [{lo:.3f}, {hi:.3f}]"
        assert cells[2].startswith(f"{v['twin']['method']}: {v['twin']['value']:.3f} [")
    d = verdicts["curate"]["difference"]["quantum_minus_twin"]
    assert f"{d['value']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" in page
    assert "wall 2 vs 1 s; 1e-06 vs 5e-07 kWh; QPU 3.5 s est" in page
    assert "curate note" in page and "curate applied its best method" in page
    # the cost table: each stage's totals; deploy's three steps add up (15 + 16 + 3 wall s, 2 + 2 QPU s est)
    assert "<td>deploy</td><td>34.0</td><td>18.0</td><td>2.00e-05</td><td>4</td>" in page
    assert '<a href="curate.json">curate.json</a>' in page and '<a href="summary.md">' in page
    assert 'href="../monitor/drift.json"' in page and "energy.md: not produced by this run" in page
    keys = ("verdicts", "cost", *STAGES, "energy", "reports")  # the contents, in this order
    assert all(f'<a href="#{k}">' in page for k in keys)
    starts = [page.index(f'<section id="{k}">') for k in keys]
    assert starts == sorted(starts)


def test_every_plot_is_an_embedded_png_and_nothing_is_fetched(run):
    params, reports = run
    page = write_page(params).read_text()
    pngs = images(page)
    assert len(pngs) == N_PLOTS and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert (reports / "plots" / "encoding_circuits.png").read_bytes() in pngs  # embedded as it is
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "<script" not in low and "@import" not in low
    assert "not produced by this run" not in page.split('id="reports"')[0]


def test_missing_and_malformed_data_are_one_line_each(run):
    params, reports = run
    plots = reports / "plots"
    (plots / "train_loss.json").unlink()
    (plots / "energy_growth.png").unlink()
    (plots / "prune_ffn.json").write_text("{not json")
    (plots / "compress.json").write_text(json.dumps([{"method": "svd", "ratio": 2}]))  # no parameters
    (plots / "serving_pareto.json").write_text("[]")
    (plots / "energy_stages.png").write_text("not a png")
    (reports / "search.json").write_text("[1, 2")
    page = write_page(params).read_text()
    assert len(images(page)) == N_PLOTS - 6
    lines = re.findall(r'<p class="missing">([^<]*)</p>', page)
    expect = {"Training: loss per step": f"{plots / 'train_loss.json'} not found: the train step writes it",
              "Energy growth with size": f"{plots / 'energy_growth.png'} not found",
              "Pruning FFN neurons: quality against sparsity":
                  f"{plots / 'prune_ffn.json'} is malformed: JSONDecodeError",
              "Compression: quality against parameters": f"{plots / 'compress.json'} is malformed: KeyError",
              "Serving: Pareto front": f"{plots / 'serving_pareto.json'} holds no rows",
              "Energy per stage": f"{plots / 'energy_stages.png'} is malformed: not a PNG"}
    for title, why in expect.items():
        assert any(ln.startswith(f"{title}: not produced by this run ({why}") for ln in lines), (title, lines)
    assert f"{reports / 'search.json'} is malformed" in page  # the verdict table names it; search: not run
    assert re.search(r'<tr class="other"><td>search</td><td>[^<]*search.json is malformed', page)


@pytest.mark.slow  # ~25 s: make test-slow
def test_drift_plot_falls_back_on_drift_json(run):
    """Without the monitor report the p-values come from paths.monitor/drift.json; one of the wrong shape is named."""
    params, reports = run
    (reports / "monitor.json").unlink()
    drift = Path(params.paths.monitor) / "drift.json"
    drift.write_text(json.dumps({w: {"drift_planted": w == "w1", "tests": {"rbf": {"p_value": p, "alarm": p < 0.05}}}
                                 for w, p in (("w0", 0.3), ("w1", 0.002))}))
    monitor = write_page(params).read_text().split('<section id="monitor">')[1].split("</section>")[0]
    assert len(images(monitor)) == 1 and "not produced" not in monitor
    drift.write_text("[1, 2]")
    monitor = write_page(params).read_text().split('<section id="monitor">')[1].split("</section>")[0]
    assert images(monitor) == [] and f"{drift} is malformed: AttributeError" in monitor


def test_an_empty_run_gives_a_page_of_not_produced_lines(tmp_path):
    params = parse_params({"paths": {"reports": str(tmp_path / "reports"), "monitor": str(tmp_path / "monitor")}})
    page = write_page(params).read_text()
    assert images(page) == [] and page.count("(not run)") == 2 * len(STAGES)  # verdict and cost tables
    assert page.count("not produced by this run (") == N_PLOTS + 1  # the distillation curves: one per file
    assert "reports/curate.json not found" in page.replace(str(tmp_path) + "/", "")


@pytest.mark.slow  # ~27 s: make test-slow
def test_same_inputs_same_bytes(run):
    params, _ = run
    first = write_page(params).read_bytes()
    assert write_page(params).read_bytes() == first


def test_cost_cells_agree_with_the_summarys(run):
    """The page's cost cells are reports/summary.md's (both from qlife.verdict.cost_rows)."""
    from qlife.pipeline import cost_table

    params, _ = run
    reports = load_reports(params)[0]
    md = [[c.strip() for c in line.strip("|").split("|")] for line in cost_table(reports).splitlines()[2:]]
    assert md == cost_rows(reports)


def test_cli_writes_the_page_and_prints_its_path(run, tmp_path, capsys):
    params, reports = run
    (tmp_path / "p.yaml").write_text(json.dumps({"paths": params.paths.model_dump()}))
    main(["--params", str(tmp_path / "p.yaml")])
    assert capsys.readouterr().out.strip() == str(reports / "index.html")
    assert (reports / "index.html").exists()


def browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.slow
@pytest.mark.skipif(browser() is None, reason="no headless browser (chromium, chromium-browser, google-chrome)")
def test_headless_browser_renders_the_page(run, tmp_path):
    """Chromium, offline, draws the page: the screenshot is a PNG that is not one flat colour."""
    from PIL import Image

    params, _ = run
    path, shot = write_page(params), tmp_path / "shot.png"
    subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", path.as_uri()], check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1200)
    assert img.std() > 10 and (img < 128).mean() > 0.01  # text, tables and plots, not a blank page
