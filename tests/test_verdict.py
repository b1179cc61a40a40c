"""qlife.verdict: paired bootstrap and seed intervals, the ahead / tie / behind rule, the verdict table."""

import json
import time

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from qlife.verdict import (
    STAGES,
    markdown_row,
    markdown_table,
    no_verdict,
    paired_bootstrap,
    paired_seeds,
    plain_rows,
    resample_scores,
    resample_weights,
    short_rows,
    verdict,
)

N = 400


def _planted(share_correct: float, y: np.ndarray, seed: int) -> np.ndarray:
    """Predictions right on exactly `share_correct` of the documents (binary labels)."""
    rng = np.random.default_rng(seed)
    wrong = rng.permutation(len(y))[: round((1 - share_correct) * len(y))]
    pred = y.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


@pytest.fixture(scope="module")
def docs() -> dict:
    y = np.random.default_rng(0).integers(0, 2, N)
    return {"y": y, "good": _planted(0.9, y, 1), "twin": _planted(0.7, y, 2), "mlp": _planted(0.8, y, 3)}


def test_planted_better_method_is_ahead_with_an_interval_excluding_zero(docs):
    s = paired_bootstrap("macro_f1", docs["y"], {m: docs[m] for m in ("good", "twin", "mlp")})
    v = verdict(s, "good", "twin")
    d = v["difference"]["quantum_minus_twin"]
    assert v["verdict"] == "ahead" and d["ci95"][0] > 0
    assert d["value"] == pytest.approx(v["quantum"]["value"] - v["twin"]["value"])
    assert v["best_classical"]["method"] == "mlp" and v["verdict_vs_best"] == "ahead"
    assert v["spread"] == "paired bootstrap over 400 test documents, 1000 resamples"
    lo, hi = v["quantum"]["ci95"]
    assert lo < v["quantum"]["value"] < hi and v["quantum"]["sd"] > 0
    json.dumps(v)  # goes into reports and tags as it is


def test_identical_predictions_differ_by_exactly_zero_and_tie(docs):
    s = paired_bootstrap("macro_f1", docs["y"], {"q": docs["twin"], "twin": docs["twin"].copy()})
    v = verdict(s, "q", "twin")
    assert v["difference"]["quantum_minus_twin"] == {"value": 0.0, "ci95": [0.0, 0.0]}
    assert v["verdict"] == "tie"


def test_worse_method_is_behind(docs):
    v = verdict(paired_bootstrap("accuracy", docs["y"], {"q": docs["twin"], "twin": docs["good"]}), "q", "twin")
    assert v["verdict"] == "behind" and v["difference"]["quantum_minus_twin"]["ci95"][1] < 0


def test_lower_is_better_flips_the_verdict_and_the_best(docs):
    def error_rate(y, p):
        return float(np.mean(y != p))

    preds = {"q": docs["good"], "twin": docs["twin"], "mlp": docs["mlp"]}
    s = paired_bootstrap(error_rate, docs["y"], preds, n_resamples=200)
    assert s["metric"] == "error_rate" and s["methods"]["q"]["value"] == pytest.approx(0.1)
    low = verdict(s, "q", "twin", higher_is_better=False)
    assert low["verdict"] == "ahead" and low["difference"]["quantum_minus_twin"]["value"] < 0
    assert low["best_classical"]["method"] == "mlp"
    assert verdict(s, "q", "twin")["verdict"] == "behind"  # same numbers read as higher-is-better


def test_bootstrap_equals_sklearn_on_the_full_sample_and_on_given_resamples():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60)
    p = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))  # class 3 is predicted, never true
    labels = np.unique(y)
    s = paired_bootstrap("macro_f1", y, {"a": p, "b": y}, n_resamples=50, seed=3)
    assert s["methods"]["a"]["value"] == pytest.approx(f1_score(y, p, average="macro", labels=labels, zero_division=0))
    W = resample_weights(60, 50, seed=3)
    missing = np.where(y == 2, 0, 1)[None, :]  # a resample without class 2: sklearn counts its F1 as 0, no crash
    got = resample_scores("macro_f1", y, {"a": p}, np.vstack([W[:5], missing]))["a"]
    for w, g in zip(np.vstack([W[:5], missing]), got):
        idx = np.repeat(np.arange(60), w)
        assert g == pytest.approx(f1_score(y[idx], p[idx], average="macro", labels=labels, zero_division=0))
    full = resample_scores("macro_f1", y, {"a": p}, W)["a"]  # the same resamples paired_bootstrap drew
    assert s["methods"]["a"]["ci95"] == pytest.approx(list(np.percentile(full, [2.5, 97.5])))
    yb, pb = (y > 0).astype(int), (p > 1).astype(int)
    for metric, ref in (("accuracy", accuracy_score(yb, pb)), ("f1", f1_score(yb, pb, zero_division=0))):
        assert paired_bootstrap(metric, yb, {"a": pb}, n_resamples=10)["methods"]["a"]["value"] == pytest.approx(ref)


def test_string_labels_and_determinism(docs):
    names = np.array(["neg", "pos"])
    a = paired_bootstrap("macro_f1", names[docs["y"]], {"q": names[docs["good"]], "t": names[docs["twin"]]}, seed=4)
    b = paired_bootstrap("macro_f1", docs["y"], {"q": docs["good"], "t": docs["twin"]}, seed=4)
    assert a == b


def test_group_resampling_keeps_groups_whole(docs):
    groups = np.repeat(np.arange(40), 10)[np.random.default_rng(6).permutation(N)]
    W = resample_weights(N, 100, seed=1, groups=groups)
    for w in W:
        assert all(len(np.unique(w[groups == g])) == 1 for g in range(40))
        assert sum(w[groups == g][0] for g in range(40)) == 40  # 40 groups drawn per resample
    s = paired_bootstrap("macro_f1", docs["y"], {"q": docs["good"], "t": docs["twin"]}, groups=groups)
    assert s["spread"] == "paired bootstrap over 40 groups (400 test documents), 1000 resamples"
    assert verdict(s, "q", "t")["verdict"] == "ahead"


def test_balanced_accuracy_equals_sklearn_and_strata_keep_their_size():
    y = np.repeat([1, 0, 0], 10)  # a drifted window and two clean ones, 10 halves each
    p = np.r_[np.ones(9), 0, np.zeros(8), 1, 1, np.zeros(10)].astype(int)
    s = paired_bootstrap("balanced_accuracy", y, {"q": p, "t": y}, n_resamples=200, labels=[0, 1],
                         strata=np.repeat([0, 1, 2], 10))
    assert s["methods"]["q"]["value"] == pytest.approx(balanced_accuracy_score(y, p))  # (0.9 + 0.9) / 2
    W = resample_weights(30, 200, groups=None, strata=np.repeat([0, 1, 2], 10))
    assert (W.reshape(200, 3, 10).sum(2) == 10).all()  # each window keeps its 10 halves: both classes always in
    got = resample_scores("balanced_accuracy", y, {"q": p}, W[:5])["q"]
    for w, g in zip(W[:5], got):
        idx = np.repeat(np.arange(30), w)
        assert g == pytest.approx(balanced_accuracy_score(y[idx], p[idx]))
    assert paired_bootstrap("balanced_accuracy", y, {"q": p}, n_resamples=10)["methods"]["q"]["value"] == \
        paired_bootstrap("balanced_accuracy", y, {"q": p}, n_resamples=10, strata=np.zeros(30))["methods"]["q"]["value"]
    with pytest.raises(ValueError, match="a group spans several strata"):
        resample_weights(30, 5, groups=np.arange(30) // 4, strata=np.repeat([0, 1, 2], 10))


def test_no_verdict_keeps_the_keys_and_shows_its_reason(docs):
    v = no_verdict("qsemdedup", "semdedup", "no ground truth", {"qsemdedup": {"wall_s": 2.0}}, metric="f1",
                   note="removals agree: Jaccard 0.65")
    judged = verdict(paired_bootstrap("f1", docs["y"], {"q": docs["good"], "t": docs["twin"]}, n_resamples=20),
                     "q", "t")
    assert set(v) == set(judged) and v["verdict"] == v["verdict_vs_best"] == "no ground truth"
    assert v["quantum"]["value"] is None and v["difference"]["quantum_minus_twin"]["ci95"] is None
    assert v["quantum"]["cost"]["wall_s"] == 2.0 and v["twin"]["cost"]["wall_s"] is None
    row = markdown_row("curate", v)
    assert "| no ground truth: removals agree: Jaccard 0.65 |" in row and "qsemdedup: n/a |" in row
    assert row.count("|") == 8 and "None" not in row
    flat = plain_rows({"curate": v, "monitor": judged})
    assert flat[0]["verdict"] == "no ground truth" and flat[0]["quantum_value"] == "" and flat[0]["best"] == ""
    assert flat[-1]["verdict"] == judged["verdict"]
    json.dumps(v)


def test_three_seeds_t_interval_matches_scipy_and_one_seed_gives_none():
    values = {"fmqa": [0.81, 0.84, 0.80], "tpe": [0.78, 0.80, 0.79], "random": [0.70, 0.74, 0.72]}
    s = paired_seeds(values, metric="best_val_macro_f1")
    d = np.subtract(values["fmqa"], values["tpe"])
    lo, hi = stats.t.interval(0.95, df=2, loc=d.mean(), scale=stats.sem(d))
    v = verdict(s, "fmqa", "tpe")
    assert v["difference"]["quantum_minus_twin"]["ci95"] == pytest.approx([lo, hi])
    assert v["quantum"]["value"] == pytest.approx(np.mean(values["fmqa"]))
    assert v["quantum"]["sd"] == pytest.approx(np.std(values["fmqa"], ddof=1))
    assert v["verdict"] == ("ahead" if lo > 0 else "tie") and v["spread"] == "3 seeds, t-interval"
    one = verdict(paired_seeds({"fmqa": [0.8], "tpe": [0.7]}), "fmqa", "tpe")
    assert one["quantum"]["ci95"] is None and one["difference"]["quantum_minus_twin"]["ci95"] is None
    assert one["verdict"] == "not enough seeds" and one["spread"] == "1 seed, no interval"


def test_best_classical_is_picked_by_value_and_cost_is_kept_as_given():
    s = paired_seeds({"q": [0.5, 0.6], "twin": [0.4, 0.5], "a": [0.7, 0.7], "b": [0.3, 0.2]})
    v = verdict(s, "q", "twin", cost={"q": {"wall_s": 3.0, "qpu_s_est": 0.2}, "twin": {"wall_s": 1.0, "x": "y"}})
    assert v["best_classical"]["method"] == "a"
    assert verdict(s, "q", "twin", classical=["b"])["best_classical"]["method"] == "twin"  # the twin always counts
    assert verdict(s, "q", "twin", higher_is_better=False)["best_classical"]["method"] == "b"
    assert v["quantum"]["cost"] == {"wall_s": 3.0, "cpu_s": None, "energy_kwh": None, "qpu_s_est": 0.2}
    assert v["twin"]["cost"]["x"] == "y" and v["best_classical"]["cost"]["wall_s"] is None


def test_table_has_one_row_per_stage_with_the_verdict_word(docs):
    s = paired_bootstrap("macro_f1", docs["y"], {"qk|means": docs["good"], "kmeans": docs["twin"]}, n_resamples=200)
    v = verdict(s, "qk|means", "kmeans", cost={"qk|means": {"wall_s": 12.5, "energy_kwh": 2.1e-6, "qpu_s_est": 0.8}})
    table = markdown_table({"curate": v, "search": verdict(paired_seeds({"f": [1.0], "t": [0.5]}), "f", "t")})
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(STAGES)
    rows = dict(zip(STAGES, lines[2:]))
    assert all(r.count("|") - r.count("\\|") == 8 for r in lines)  # 7 cells; the method's '|' is escaped
    assert "| ahead |" in rows["curate"] and f"qk\\|means: {v['quantum']['value']:.3f} [" in rows["curate"]
    assert "wall 12.5 vs n/a s; 2.1e-06 vs n/a kWh; QPU 0.8 s est" in rows["curate"]
    assert "not enough seeds" in rows["search"] and "(not run)" in rows["train"]
    assert max(len(line) for line in lines) < 250
    assert markdown_row("monitor", None) == rows["monitor"]
    flat = plain_rows({"curate": v})
    assert [r["stage"] for r in flat] == list(STAGES) and flat[0]["verdict"] == "ahead"
    assert flat[1]["verdict"] == "(not run)" and set(flat[1]) == set(flat[0])
    assert all(isinstance(x, str | int | float) for r in flat for x in r.values())


@pytest.mark.parametrize("call, match", [
    (lambda y, p: paired_bootstrap("macro_f1", y, {"q": p[:-1]}), "has 399 values, y_true 400"),
    (lambda y, p: paired_bootstrap("macro_f1", y.astype(float) * np.nan, {"q": p}), "y_true holds NaN"),
    (lambda y, p: paired_bootstrap("auc", y, {"q": p}), "unknown metric 'auc'"),
    (lambda y, p: paired_bootstrap("macro_f1", y, {}), "preds is empty"),
    (lambda y, p: paired_bootstrap("macro_f1", y, {"q": p}, groups=np.zeros(3)), "groups has 3 values"),
    (lambda y, p: paired_bootstrap("f1", y, {"q": p}, pos_label=7), "pos_label 7"),
    (lambda y, p: paired_bootstrap("macro_f1", y, {"q": p}, labels=[0]), "outside labels"),
    (lambda y, p: paired_seeds({"a": [1.0, 2.0], "b": [1.0]}), "different numbers of seeds"),
    (lambda y, p: paired_seeds({"a": [1.0, float("nan")], "b": [1.0, 2.0]}), "values\\['a'\\] holds NaN"),
    (lambda y, p: verdict(paired_seeds({"a": [1.0], "b": [2.0]}), "qaoa", "b"), "unknown method 'qaoa'"),
    (lambda y, p: verdict(paired_seeds({"a": [1.0], "b": [2.0]}), "a", "b", cost={"c": {}}), "unknown method 'c'"),
    (lambda y, p: verdict(paired_seeds({"a": [1.0], "b": [2.0]}), "a", "a"), "both 'a'"),
])
def test_bad_inputs_raise_value_errors_naming_the_problem(docs, call, match):
    with pytest.raises(ValueError, match=match):
        call(docs["y"], docs["good"])


def test_three_methods_400_documents_1000_resamples_well_under_a_second(docs):
    preds = {m: docs[m] for m in ("good", "twin", "mlp")}
    paired_bootstrap("macro_f1", docs["y"], preds, n_resamples=10)  # warm imports
    t0 = time.perf_counter()
    paired_bootstrap("macro_f1", docs["y"], preds)
    assert time.perf_counter() - t0 < 1.0


def test_chunked_resampling_draws_the_same_resamples(monkeypatch, docs):
    groups = np.arange(N) // 7
    whole = [resample_weights(N, 300, seed=2, groups=g) for g in (None, groups)]
    s = paired_bootstrap("macro_f1", docs["y"], {"q": docs["good"], "t": docs["twin"]}, n_resamples=300)
    monkeypatch.setattr("qlife.verdict._CHUNK", 1000)  # a large test set is scored a few resamples at a time
    assert all((resample_weights(N, 300, seed=2, groups=g) == w).all() for g, w in zip((None, groups), whole))
    assert paired_bootstrap("macro_f1", docs["y"], {"q": docs["good"], "t": docs["twin"]}, n_resamples=300) == s


def test_short_rows_are_six_cells_a_ui_shows_whole():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    preds = {"q": np.where(rng.random(300) < 0.95, y, 1 - y), "t": np.where(rng.random(300) < 0.7, y, 1 - y)}
    v = verdict(paired_bootstrap("macro_f1", y, preds, seed=0), "q", "t")
    rows = short_rows({"curate": v, "deploy/compress": v})
    assert len(rows) == 8 and all(len(r) == 6 for r in rows)  # the seven stages and the extra step
    row = rows[0]
    assert row["verdict"] == "ahead" and row["quantum"].startswith("q: ") and row["twin"].startswith("t: ")
    assert row["quantum − twin [95% CI]"].startswith("+")
    assert rows[1] == {"stage": "encode", "quantum": "(not run)", "twin": "", "best classical": "",
                       "quantum − twin [95% CI]": "", "verdict": ""}
    assert rows[-1]["stage"].startswith("deploy/compress")


def test_holm_matches_the_step_down_rule_by_hand_and_keeps_the_order():
    """Holm (1979): sorted p_(i) times (m - i + 1), a running maximum, capped at 1; the smallest is Bonferroni's."""
    from qlife.verdict import holm

    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted: 0.005*5 = 0.025, 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.5*1 = 0.5
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6]) and holm([]) == [] and holm([0.02]) == [0.02]
    rng = np.random.default_rng(0)
    q = rng.uniform(size=50)
    h = np.array(holm(q))
    assert np.all(h >= q) and np.all(h <= np.minimum(1, 50 * q) + 1e-15)
    assert np.all(np.diff(h[np.argsort(q)]) >= 0)  # the adjusted p keeps the raw order
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm([0.1, 1.2])
