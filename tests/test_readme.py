"""README.md: its generated blocks are what qlife.readme renders from the committed JSON; it is short, its links
stay in the repository, and no figure is written by hand; the renderers on small synthetic inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from qlife import readme
from qlife.params import parse_params
from qlife.verdict import paired_bootstrap, verdict

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results"
PUBLIC_DOCS = {"arxiv.org"}  # the only hosts a README link may point to
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
AUTOLINK = re.compile(r"<(https?://[^>]+)>")


def _prose(text: str) -> str:
    """The hand-written part: no generated block, fenced code, inline code or link target."""
    text = readme.BLOCK.sub("", text)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.sub("", text)


def test_generated_blocks_are_what_the_committed_json_renders():
    new, changed = readme.fill(README.read_text(), readme.blocks(RESULTS))
    assert not changed, f"README.md's blocks {changed} differ from bench/results: run `python -m qlife.readme`"


def test_readme_fits_in_250_lines():
    assert len(README.read_text().splitlines()) < 250


def test_every_link_stays_in_the_repository_and_exists():
    text = README.read_text()
    targets = LINK.findall(text) + AUTOLINK.findall(text)
    assert targets, "the README links its architecture document at least"
    for target in targets:
        if target.startswith(("http://", "https://")):
            host = re.match(r"https?://([^/:]+)", target).group(1)
            assert host in PUBLIC_DOCS, f"{target}: a link outside the repository that is not public documentation"
            continue
        path = target.split("#")[0]
        assert not path.startswith(("/", "~", "file:")) and ".." not in Path(path).parts, f"{target} leaves the repo"
        resolved = (ROOT / path).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{target}: no such file in the repository"
    assert not re.search(r"(?<![\w.])\.\./", text), "a relative path out of the repository"
    assert not re.search(r"(?<![\w:/.])/(?:work|home|tmp|root|Users)/", text), "an absolute filesystem path"


def test_no_decimal_figure_outside_generated_blocks_and_code():
    found = [line for line in _prose(README.read_text()).splitlines() if re.search(r"\d\.\d", line)]
    assert not found, f"figures written by hand (generate them, or put them in code): {found}"


def test_the_architecture_document_is_in_the_repository():
    assert "](docs/DESIGN.md)" in README.read_text() and (ROOT / "docs" / "DESIGN.md").exists()


# --- the renderers ---------------------------------------------------------------------------------------------

def _planted(tmp_path: Path):
    """A run folder: curate's report with a planted verdict (quantum right on 95% of 400 documents, its twin on
    70%), encode's with none, a promote decision; params pointing at it."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    preds = {m: np.where(rng.random(400) < acc, y, 1 - y) for m, acc in (("qdedup", 0.95), ("cosdedup", 0.7),
                                                                         ("minhash", 0.8))}
    v = verdict(paired_bootstrap("macro_f1", y, preds, n_resamples=200), "qdedup", "cosdedup")
    reports, metrics = tmp_path / "reports", tmp_path / "metrics"
    reports.mkdir()
    metrics.mkdir()
    (reports / "curate.json").write_text(json.dumps(
        {"stage": "curate", "verdict": v, "cost": {"total": {"wall_s": 12.34, "cpu_s": 20.6}}}))
    (reports / "encode.json").write_text(json.dumps({"stage": "encode", "cost": {"total": {"wall_s": 3.0,
                                                                                             "cpu_s": 4.0}}}))
    (metrics / "promote.json").write_text(json.dumps({"alarms": ["window-001"], "models": {
        "qlife-student": {"version": 3, "promoted": False, "reasons": ["open drift alarm on window-001"],
                          "champion": None},
        "qlife-teacher-pruned": {"version": 2, "promoted": True, "reasons": [], "champion": 2}}}))
    params = parse_params({"paths": {"reports": str(reports), "metrics": str(metrics)}})
    return params, v


def test_a_planted_verdict_shows_up_with_its_numbers(tmp_path):
    params, v = _planted(tmp_path)
    snap = json.loads(json.dumps(readme.snapshot(params)))  # what default_run.json holds
    assert snap["profile"] == "quick" and snap["stages"]["curate"] == {"wall_s": 12.3, "cpu_s": 20.6}
    assert snap["verdicts"][0]["figures"]["verdict"] == v["verdict"] == "ahead"
    table = readme.render_verdicts(snap)
    row = next(line for line in table.splitlines() if line.startswith("| curate"))
    d = v["difference"]["quantum_minus_twin"]
    for figure in (f"{v['quantum']['value']:.3f}", f"{v['twin']['value']:.3f}", f"{d['value']:+.3f}",
                   f"{d['ci95'][0]:+.3f}", f"{d['ci95'][1]:+.3f}", "qdedup", "cosdedup", "minhash", "| ahead",
                   "| 12 / 21 |"):
        assert figure in row, (figure, row)
    assert "| encode | (not run) |" in table  # a stage without a verdict is said, not dropped
    assert f"commit `{snap['commit']}`" in table and "profile `quick`" in table and "15 s wall" in table
    assert "champion: qlife-teacher-pruned v2" in table
    assert "not promoted (open drift alarm on window-001): qlife-student" in table


def test_no_snapshot_is_a_placeholder_row_and_no_run_a_sentence(tmp_path):
    assert "(no snapshot yet: run `make run` then `python -m qlife.readme snapshot`)" in readme.render_verdicts(None)
    params = parse_params({"paths": {"reports": str(tmp_path / "none"), "metrics": str(tmp_path / "m")}})
    with pytest.raises(SystemExit, match="no run here"):
        readme.snapshot(params)


def test_a_benchmark_json_becomes_a_row_and_a_broken_one_says_n_a(tmp_path):
    dedup = {"created": "2030-01-02T03:04:05", "rows": [
        {"corpus": "c", "method": "classical k-means SemDeDup", "f1": 0.9},
        {"corpus": "c", "method": "quantum SemDeDup (statevector)", "f1": 0.925},
        {"corpus": "c", "method": "MinHash-LSH (datasketch)", "f1": 0.8}]}
    (tmp_path / "dedup.json").write_text(json.dumps(dedup))
    (tmp_path / "prune.json").write_text(json.dumps({"seeds": {}}))  # lacks what its row needs
    (tmp_path / "mystery.json").write_text("{}")
    text = readme.render_benchmarks(tmp_path)
    row = next(line for line in text.splitlines() if "bench.dedup" in line)
    for cell in ("quantum 0.925", "twin 0.900", "MinHash 0.800", "+0.025", "no spread", "2030-01-02"):
        assert cell in row, (cell, row)
    broken = next(line for line in text.splitlines() if "bench.prune" in line)
    assert "n/a: the JSON lacks" in broken
    assert "`mystery.json`: not summarised here yet" in text


def test_the_search_verdict_follows_the_holm_adjusted_paired_test(tmp_path):
    def test(b: int, p: float, wins: int, peer: int) -> dict:
        return {"problem": "bqp", "fmqa": "fmqa_qaoa", "vs": "tpe", "budget": b, "wilcoxon_p": p,
                "fmqa_wins": wins, "peer_wins": peer}

    data = {"created": "2030-01-01", "seeds": 30, "budgets": [10, 20], "tests": [test(10, 0.001, 25, 5),
                                                                                 test(20, 0.4, 12, 10)],
            "rows": [{"problem": "bqp", "searcher": s, "budget": b, "median_best": x}
                     for s, b, x in (("fmqa_qaoa", 10, 5.0), ("fmqa_qaoa", 20, 6.0), ("tpe", 10, 4.0),
                                     ("tpe", 20, 6.0))]}
    (tmp_path / "search.json").write_text(json.dumps(data))
    text = readme.render_benchmarks(tmp_path)
    assert "| vs TPE: ahead / tie |" in text and "FMQA-QAOA 5.000 / 6.000" in text and "TPE 4.000 / 6.000" in text
    assert "TPE 0.001 / 0.4 (words: Holm over the run's 2 tests)" in text
    assert "behind nowhere: FMQA on the BOCS binary quadratic problem, d = 10 (ahead of TPE)." in text
    # p 0.03 is below 0.05 raw, but 0.06 by Holm over the run's 2 tests: a tie
    data["tests"][0]["wilcoxon_p"] = 0.03
    (tmp_path / "search.json").write_text(json.dumps(data))
    text = readme.render_benchmarks(tmp_path)
    assert "| vs TPE: tie / tie |" in text and "ahead of TPE" not in text


def test_check_names_a_block_whose_figures_disagree_with_the_json(tmp_path, capsys):
    copy = tmp_path / "README.md"
    text = README.read_text()
    tampered = re.sub(r"(<!-- generated: benchmarks .*?)(\d\.\d{3})", lambda m: m.group(1) + "9.999", text,
                      count=1, flags=re.S)
    assert tampered != text
    copy.write_text(tampered)
    with pytest.raises(SystemExit) as stop:
        readme.main(["--check", "--readme", str(copy), "--results", str(RESULTS)])
    assert stop.value.code == 1 and "benchmarks" in capsys.readouterr().err
    readme.main(["--readme", str(copy), "--results", str(RESULTS)])  # regenerating puts the JSON's figure back
    assert copy.read_text() == text


def test_a_readme_without_the_blocks_is_told_which_to_add(tmp_path, capsys):
    copy = tmp_path / "README.md"
    copy.write_text("# nothing generated here\n")
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results, ignore=shutil.ignore_patterns("*.png"))
    with pytest.raises(SystemExit):
        readme.main(["--check", "--readme", str(copy), "--results", str(results)])
    assert "<!-- generated: verdicts (python -m qlife.readme) -->" in capsys.readouterr().err
