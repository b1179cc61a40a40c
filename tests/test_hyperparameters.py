"""The hyperparameters step: the search result wins where `train.use_search`, every override is said, and
what train reads (train_config.json) does not change when an overridden params.yaml value does."""

from __future__ import annotations

import json

import pytest

from qlife import hyperparameters
from qlife.io import DataError, write_json
from qlife.params import parse_params

BEST = {"method": "random", "score": 0.8,
        "config": {"learning_rate": 1e-4, "epochs": 1, "max_length": 32, "batch_size": 16, "frozen_layers": 2}}


def _params(tmp_path, **train):
    return parse_params({"paths": {"search": str(tmp_path / "search"), "metrics": str(tmp_path / "metrics"),
                                   "reports": str(tmp_path / "reports")},
                         "train": train})


def test_search_decides_and_each_override_is_said(tmp_path, capsys):
    params = _params(tmp_path, epochs=3, learning_rate=1e-4)
    write_json(tmp_path / "search" / "best.json", BEST)
    out = hyperparameters.write(params)
    # a key the search did not return (head: a best.json written before the space had it) keeps params'
    assert out["source"] == "search" and out["config"] == {**BEST["config"], "head": "linear"}
    # learning_rate equals the search's: not an override; epochs 3 -> 1 is
    assert out["overridden_by_search"]["epochs"] == {"params": 3, "search": 1}
    assert "learning_rate" not in out["overridden_by_search"]
    assert "train.epochs = 3 in params.yaml is overridden" in capsys.readouterr().err
    report = json.loads((tmp_path / "reports" / "hyperparameters.json").read_text())
    assert report["overridden_by_search"]["epochs"]["search"] == 1
    assert hyperparameters.read(params) == {"config": {**BEST["config"], "head": "linear"}, "source": "search"}


def test_overridden_value_changes_nothing_train_reads(tmp_path):
    write_json(tmp_path / "search" / "best.json", BEST)
    contents = set()
    for epochs in (2, 3, 7):
        hyperparameters.write(_params(tmp_path, epochs=epochs))
        contents.add(hyperparameters.config_path(_params(tmp_path)).read_bytes())
    assert len(contents) == 1  # same bytes: DVC sees train's dependency unchanged


def test_without_search_params_yaml_decides(tmp_path):
    params = _params(tmp_path, use_search=False, epochs=3)
    out = hyperparameters.write(params)  # no best.json needed
    assert out["source"] == "params" and out["config"]["epochs"] == 3 and not out["overridden_by_search"]


def test_a_key_the_space_does_not_search_keeps_params_value(tmp_path):
    write_json(tmp_path / "search" / "best.json", {"config": {"epochs": 1}})
    out = hyperparameters.resolve(_params(tmp_path, batch_size=8))
    assert out["config"]["batch_size"] == 8 and out["config"]["epochs"] == 1


@pytest.mark.parametrize("content, message", [
    ('{"config": ', "is not valid JSON"),
    ('{"score": 1}', "has no 'config' object"),
    (None, "not found: run the stage that writes it"),
])
def test_bad_best_json_names_the_file(tmp_path, content, message):
    if content is not None:
        (tmp_path / "search").mkdir()
        (tmp_path / "search" / "best.json").write_text(content)
    with pytest.raises(DataError, match=message) as err:
        hyperparameters.write(_params(tmp_path))
    assert "best.json" in str(err.value)


def test_train_refuses_a_foreign_config_file(tmp_path):
    params = _params(tmp_path)
    write_json(hyperparameters.config_path(params), {"config": {"epochs": 1}, "source": "search"})
    with pytest.raises(DataError, match="is not a train config"):
        hyperparameters.read(params)
