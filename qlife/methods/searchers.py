"""Black-box searchers over a discrete space, one interface: `ask(n) -> configs`, `tell(config, score)`.

A space is an ordered mapping name -> list of levels (numbers are ordinal, strings categorical); a config
maps every name to one of its levels (qlife.methods.search_space: the space, its configurations' keys, the
`Searcher` interface and `BaseSearcher`). Scores are maximized. Five searchers share the interface:

- `RandomSearcher`: uniform over the space without replacement (seeded).
- `TPESearcher`: Optuna's TPE (Optuna 5 defaults: multivariate for one objective), seeded; an ordinal
  choice is `suggest_int` over its level index (order kept), a categorical one `suggest_categorical`.
- `FMQASearcher` (qlife/methods/fmqa.py): factorization machine + QUBO through the backend layer.
- `GPSearcher`: Optuna's GP sampler through the same ask/tell machinery as TPE (`OptunaSearcher`).
- `BOCSSearcher` (qlife/methods/bocs.py): horseshoe regression on second-order features + simulated annealing.

`run_search` drives them on one evaluator and one budget each, sharing a cache: a configuration two
searchers both propose is trained once, and still charged to each searcher's budget (a row of each
history, `cached: true` on the second). No searcher is told a configuration twice; each searcher's own
proposals are distinct. Wall and CPU seconds are split into evaluation and searcher overhead (ask + tell:
for FMQA the surrogate fit and the QUBO solve).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from qlife.methods.bocs import BOCSSearcher
from qlife.methods.fmqa import FMQASearcher
from qlife.methods.search_space import (
    BaseSearcher,
    Config,
    Searcher,
    Space,
    config_key,
    from_key,
    is_ordinal,
    space_size,
)


class RandomSearcher(BaseSearcher):
    name = "random"

    def ask(self, n: int = 1) -> list[Config]:
        first = [from_key(self.space, k) for k in self._initial(n)]
        return first + self._random_unseen(n - len(first))


class OptunaSearcher(BaseSearcher):
    """An Optuna sampler through its ask/tell interface (subclasses pick the sampler). A proposal already evaluated
    is told its known score (Optuna sees the duplicate as a trial, nothing is trained) and the sampler is asked
    again, up to `max_retries` times; then a random unseen configuration is taken (counted in `fallbacks`)."""

    name = "optuna"

    def __init__(self, space: Space, sampler: Any, seed: int = 0, max_retries: int = 20,
                 initial: list[tuple[int, ...]] | None = None):
        super().__init__(space, seed, initial)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.max_retries = max_retries
        self.pending: dict[tuple[int, ...], Any] = {}
        self.duplicates = self.fallbacks = 0

    def _suggest(self, trial) -> Config:
        config = {}
        for name, levels in self.space.items():
            if is_ordinal(levels) and len(levels) > 1:
                config[name] = levels[trial.suggest_int(name, 0, len(levels) - 1)]
            else:
                config[name] = trial.suggest_categorical(name, levels)
        return config

    def ask(self, n: int = 1) -> list[Config]:
        out: list[Config] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for multivariate TPE
            for key in self._initial(n):  # a shared design: enqueued, so TPE sees these points as its own
                config = from_key(self.space, key)
                self.pending[key] = self._enqueued(config)
                out.append(config)
            while len(out) < n and len(self.proposed) < space_size(self.space):
                for _ in range(self.max_retries + 1):
                    trial = self.study.ask()
                    config = self._suggest(trial)
                    key = config_key(self.space, config)
                    if key not in self.proposed:
                        break
                    self.duplicates += 1
                    if key in self.told:
                        self.study.tell(trial, self.told[key])
                    else:  # proposed in this batch, not scored yet
                        import optuna

                        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    self.fallbacks += 1
                    picked = self._random_unseen(1)
                    if not picked:
                        break
                    config = picked[0]
                    key = config_key(self.space, config)
                    trial = self._enqueued(config)
                self.pending[key] = trial
                self.proposed.add(key)
                out.append(config)
        return out

    def _enqueued(self, config: Config):
        """A trial fixed to `config` (Optuna's enqueue_trial: the params the trial's suggestions return)."""
        self.study.enqueue_trial({k: (self.space[k].index(v) if is_ordinal(self.space[k]) and len(self.space[k]) > 1
                                      else v) for k, v in config.items()})
        trial = self.study.ask()
        self._suggest(trial)
        return trial

    def tell(self, config: Config, score: float) -> None:
        key = config_key(self.space, config)
        super().tell(config, score)
        trial = self.pending.pop(key, None)
        if trial is None:
            raise ValueError(f"{self.name}: {config} was not asked")
        self.study.tell(trial, float(score))

    def resources(self) -> dict[str, Any]:
        return {"duplicate_proposals": self.duplicates, "random_fallbacks": self.fallbacks}


class TPESearcher(OptunaSearcher):
    """Optuna's TPE (Optuna 5 defaults: multivariate for one objective)."""

    name = "tpe"

    def __init__(self, space: Space, seed: int = 0, n_startup_trials: int = 10, max_retries: int = 20,
                 initial: list[tuple[int, ...]] | None = None, constant_liar: bool = False):
        import optuna

        # constant liar: trials asked but not told yet count as bad, so a batch spreads out (batched rounds)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                             constant_liar=constant_liar)
        super().__init__(space, sampler, seed, max_retries, initial)


class GPSearcher(OptunaSearcher):
    """Optuna's GP sampler (Optuna 5: a Matern-5/2 ARD Gaussian process fitted by marginal likelihood, log expected
    improvement optimised over the space; integer choices as numbers, categorical ones one-hot in its kernel).
    `deterministic_objective` fixes its noise variance at the minimum (true of a tabular or closed-form score).
    Each ask refits the GP: a duplicate proposal costs a fit, so `max_retries` is smaller than TPE's."""

    name = "gp"

    def __init__(self, space: Space, seed: int = 0, n_startup_trials: int = 10, max_retries: int = 5,
                 deterministic_objective: bool = False, initial: list[tuple[int, ...]] | None = None):
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: deterministic_objective
            sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials,
                                                deterministic_objective=deterministic_objective)
        super().__init__(space, sampler, seed, max_retries, initial)


SEARCHERS: dict[str, Callable[..., Searcher]] = {  # the registry: one line per searcher
    "random": RandomSearcher,
    "tpe": TPESearcher,
    "fmqa": FMQASearcher,
    "gp": GPSearcher,
    "bocs": BOCSSearcher,
}


def make_searcher(name: str, space: Space, seed: int, options: Mapping[str, Any] | None = None) -> Searcher:
    """A searcher by name; `options` are its keyword arguments (tpe, gp: n_startup_trials; fmqa: see
    FMQASearcher; bocs: see BOCSSearcher)."""
    if name not in SEARCHERS:
        raise ValueError(f"unknown searcher {name!r}; known: {', '.join(SEARCHERS)}")
    return SEARCHERS[name](space, seed=seed, **dict(options or {}))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run_search(searchers: Sequence[Searcher], evaluate: Callable[[Config], float], budget: int,
               cache: dict[tuple, float] | None = None, space: Space | None = None,
               log: Callable[[str], None] | None = print, batch: int = 1,
               evaluate_many: Callable[[list[Config]], list[float]] | None = None,
               predictions: dict[tuple, Any] | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Each searcher in turn, in rounds: ask `batch` (at most what is left of `budget`), evaluate the ones not in
    the shared cache (`evaluate_many(configs)` when given: e.g. in parallel through qlife.parallel; else one by
    one), tell every score, until `budget` evaluations. `predictions`, when given, receives per trained
    configuration key what its score carried as `predictions` (qlife.methods.finetune.ProxyScore; searchers
    are told the plain float).

    Returns (history rows: searcher, evaluation (1-based within its searcher), score, cached, seconds (a batch's
    evaluation time split over its trained configurations), config keys; per-searcher accounting: evaluation and
    overhead wall/CPU seconds, cached count)."""
    cache = {} if cache is None else cache
    history: list[dict] = []
    stats: dict[str, dict] = {}
    for s in searchers:
        sp = space or s.space  # type: ignore[attr-defined]
        st = {"eval_wall_s": 0.0, "eval_cpu_s": 0.0, "overhead_wall_s": 0.0, "overhead_cpu_s": 0.0,
              "cached": 0, "evaluations": 0}
        done = 0
        while done < budget:
            w0, c0 = _clock()
            asked = s.ask(min(batch, budget - done))
            w1, c1 = _clock()
            if not asked:
                st["overhead_wall_s"] += w1 - w0
                st["overhead_cpu_s"] += c1 - c0
                if log:
                    log(f"  {s.name}: the space is exhausted after {done} evaluations")
                break
            keys = [config_key(sp, c) for c in asked]
            cached = [k in cache for k in keys]
            fresh = {k: c for k, c, hit in zip(keys, asked, cached) if not hit}
            scores = evaluate_many(list(fresh.values())) if evaluate_many and fresh else \
                [evaluate(c) for c in fresh.values()]
            cache.update({k: float(v) for k, v in zip(fresh, scores)})
            if predictions is not None:
                predictions.update({k: v.predictions for k, v in zip(fresh, scores) if hasattr(v, "predictions")})
            w2, c2 = _clock()
            for config, key in zip(asked, keys):
                s.tell(config, cache[key])
            w3, c3 = _clock()
            per_eval, overhead = (w2 - w1) / max(len(fresh), 1), (w1 - w0) + (w3 - w2)
            st["eval_wall_s"] += w2 - w1
            st["eval_cpu_s"] += c2 - c1
            st["overhead_wall_s"] += overhead
            st["overhead_cpu_s"] += (c1 - c0) + (c3 - c2)
            for config, key, hit in zip(asked, keys, cached):
                done += 1
                st["cached"] += int(hit)
                st["evaluations"] += 1
                history.append({"searcher": s.name, "evaluation": done, "score": cache[key], "cached": hit,
                                "eval_s": 0.0 if hit else round(per_eval, 4),
                                "overhead_s": round(overhead / len(asked), 4), **config})
                if log:
                    log(f"  {s.name} {done}/{budget}: {config} -> {cache[key]:.4f}{' (cached)' if hit else ''} "
                        f"[overhead {overhead / len(asked):.2f} s]")
        stats[s.name] = st
    return history, stats


def best_so_far(scores: Sequence[float]) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(scores, dtype=float))
