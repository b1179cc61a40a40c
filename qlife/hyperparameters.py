"""Who decides train's hyperparameters: the search result or params.yaml, resolved once, between the stages.

    python -m qlife.hyperparameters        (the DVC stage `hyperparameters`, after search, before train)

Writes `paths.search/train_config.json` = {"config": {learning_rate, epochs, batch_size, max_length,
frozen_layers, head}, "source": "search" | "params"}: the one file train reads its hyperparameters from. This
step depends on `train.use_search` and the six `train.*` hyperparameters; train depends on the file, not on
those params. So with `train.use_search: true`, changing `train.epochs` reruns this step only: it writes the
same file, DVC sees train's dependency unchanged and train is not retrained for a value that is not used.
With `use_search: false` the file changes and train reruns.

What the search overrode is said, never silently: printed to stderr and written to
`paths.reports/hyperparameters.json` (`overridden_by_search`: key -> params value and search value), which
the run summary and promote can read; it stays out of train_config.json so that it cannot retrain anything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from qlife.io import DataError, publish_together, read_json, write_json
from qlife.params import Params, load_params

HP_KEYS = ("learning_rate", "epochs", "batch_size", "max_length", "frozen_layers", "head")


def config_path(params: Params) -> Path:
    return Path(params.paths.search) / "train_config.json"


def resolve(params: Params) -> dict[str, Any]:
    """{"config", "source", "overridden_by_search"}: the search's best config where `train.use_search`,
    else params.yaml's values."""
    tp = params.train
    mine = {k: getattr(tp, k) for k in HP_KEYS}
    if not tp.use_search:
        return {"config": mine, "source": "params", "overridden_by_search": {}}
    best = Path(params.paths.search) / "best.json"
    found = read_json(best).get("config")
    if not isinstance(found, dict):
        raise DataError(f"{best} has no 'config' object: rerun the search (`dvc repro --force search`)")
    config = {k: found.get(k, mine[k]) for k in HP_KEYS}  # a key the space does not search keeps params'
    overridden = {k: {"params": mine[k], "search": config[k]} for k in HP_KEYS if config[k] != mine[k]}
    return {"config": config, "source": "search", "overridden_by_search": overridden}


def write(params: Params) -> dict[str, Any]:
    """Resolve, write train_config.json and reports/hyperparameters.json, and say every override."""
    resolved = resolve(params)
    for k, v in resolved["overridden_by_search"].items():
        print(f"hyperparameters: train.{k} = {v['params']} in params.yaml is overridden by "
              f"{params.paths.search}/best.json: {v['search']} (train.use_search: true; this value does not "
              "retrain anything)", file=sys.stderr)
    with publish_together("hyperparameters"):
        write_json(config_path(params), {"config": resolved["config"], "source": resolved["source"]})
        write_json(Path(params.paths.reports) / "hyperparameters.json", resolved)
    return resolved


def read(params: Params) -> dict[str, Any]:
    """train_config.json as train reads it (a DataError naming the file when missing or corrupt)."""
    data = read_json(config_path(params))
    if set(data.get("config", {})) != set(HP_KEYS) or data.get("source") not in ("search", "params"):
        raise DataError(f"{config_path(params)} is not a train config (keys {sorted(data)}): rerun "
                        "`dvc repro hyperparameters`")
    return data


def main() -> None:
    try:
        write(load_params())
    except DataError as err:
        print(f"hyperparameters: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
