"""params.yaml schema: defaults, key-naming errors, exit code 2 from every entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from qlife.params import MONITOR_TESTS, Monitor, Params, ParamsError, parse_params, read_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_file_is_valid_and_matches_schema_defaults():
    params = read_params(ROOT / "params.yaml")
    assert params.profile == "quick" and params.model_copy(update={"profiles": {}}) == Params()  # the defaults


def test_the_full_profile_sets_its_keys_over_the_sections_and_a_bad_one_is_named():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    full = parse_params({**data, "profile": "full"})
    assert full.deploy.compress.methods == ["mpo", "mpo_disentangled", "svd", "prune"]
    assert full.monitor.tests == list(MONITOR_TESTS) and full.deploy.serving.isolate
    assert {b.kind for b in full.encode.quantum.backends} == {"shots", "device"}
    assert full.model_copy(update={"profile": "quick", "profiles": {}}) != Params()
    assert with_overrides(full, {"monitor.n_permutations": 50}).monitor.tests == list(MONITOR_TESTS)  # kept
    with pytest.raises(ParamsError, match=r"profile: 'fast' is not defined \(known: full, quick\)"):
        parse_params({**data, "profile": "fast"})
    with pytest.raises(ParamsError, match=r"deploy\.compres\b.*\n.*profile 'full' sets: deploy\.compres"):
        parse_params({"profile": "full", "profiles": {"full": {"deploy.compres": {}}}})


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"train\.learning_rat"):
        parse_params({"train": {"learning_rat": 1e-3}})


def test_bad_value_is_named():
    with pytest.raises(ParamsError, match=r"distill\.alpha"):
        parse_params({"distill": {"alpha": 1.5}})
    with pytest.raises(ParamsError, match=r"curate\.method"):
        parse_params({"curate": {"method": "magic"}})


def test_cross_field_rule_names_the_section():
    with pytest.raises(ParamsError, match=r"curate\.source"):
        parse_params({"curate": {"source": {"kind": "hf"}}})
    with pytest.raises(ParamsError, match=r"quality"):
        parse_params({"quality": {"metric": "f1"}})  # f1 of which class?


def test_frozen_and_overrides():
    params = Params()
    with pytest.raises(ValidationError):
        params.train.epochs = 9  # type: ignore[misc]
    assert with_overrides(params, {"train.epochs": 5}).train.epochs == 5
    with pytest.raises(ParamsError, match=r"train\.epochs"):
        with_overrides(params, {"train.epochs": 0})


@pytest.mark.parametrize("entry", [["-m", "qlife.cli", "check"],  # the stages' two in make test-slow (~25 s each)
                                   pytest.param(["-m", "stages.curate"], marks=pytest.mark.slow),
                                   pytest.param(["-m", "stages.monitor"], marks=pytest.mark.slow)])
def test_entry_points_exit_2_naming_the_key(tmp_path, entry):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"monitor": {"alpha": 2}}))
    proc = subprocess.run([sys.executable, *entry], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "monitor.alpha" in proc.stderr
    assert not (tmp_path / "metrics").exists()  # no work done


def test_monitor_alarm_must_be_one_of_the_tests_run():
    with pytest.raises(ValueError, match="monitor.alarm 'fuse' is not among monitor.tests"):
        Monitor.model_validate({"tests": ["rbf", "ks"], "alarm": "fuse"})
    with pytest.raises(ValueError, match="each test once"):
        Monitor.model_validate({"tests": ["rbf", "rbf"]})
    with pytest.raises(ValueError, match="bandwidths"):
        Monitor.model_validate({"quantum": {"bandwidths": [0.5, -1]}})


def test_stage_seeds_derive_from_the_root_seed_unless_set():
    from qlife.params import SEED_PATHS, parse_params

    p = parse_params({"seed": 7, "deploy": {"seed": 3}, "monitor": {"seed": None}})
    assert p.deploy.seed == 3  # set: kept
    derived = [path for path in SEED_PATHS if path != ("deploy", "seed")]
    for path in derived:  # missing or null: the root's
        node = p
        for key in path:
            node = getattr(node, key)
        assert node == 7, path
    assert parse_params({}).distill.seed == 0


def test_params_yaml_shows_every_key_the_run_uses():
    """params.yaml holds the schema's defaults, each stage key visible (no hidden device model, no hidden seed)."""
    import yaml

    from qlife.params import load_params, parse_params

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    full = parse_params({}).model_dump()

    def hidden(d: dict, r: dict, pre: str = "") -> list[str]:
        out = []
        for k, v in d.items():
            if not isinstance(r, dict) or k not in r:
                out.append(pre + k)
            elif isinstance(v, dict) and "kind" not in v:  # a backend / solver spec may use its defaults
                out += hidden(v, r[k], pre + k + ".")
        return out

    assert hidden(full, raw) == []
    assert {**load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_dump(), "profiles": {}} == full


def test_profile_command_sets_the_line_and_refuses_an_unknown_profile(tmp_path, monkeypatch, capsys):
    from qlife.cli import set_profile

    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text)
    set_profile("full", str(path))
    assert read_params(path).profile == "full" and "profile: full\n" in path.read_text()
    assert path.read_text().replace("profile: full\n", "profile: quick\n", 1) == text  # only that line changed
    with pytest.raises(SystemExit) as exit_:
        set_profile("fast", str(path))
    assert exit_.value.code == 2 and "'fast' is not defined" in capsys.readouterr().err
    assert read_params(path).profile == "full"  # unchanged
