"""A discrete search space and the interface every searcher implements (qlife.methods.searchers: random, TPE,
and the registry; qlife.methods.fmqa: FMQA).

A space is an ordered mapping name -> list of levels (numbers are ordinal, strings categorical); a config
maps every name to one of its levels, its key the level indices in space order. `BaseSearcher` keeps what was
proposed and told, proposes a shared initial design first and draws unseen configurations at random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

Config = dict[str, Any]
Space = Mapping[str, Sequence[Any]]


def config_key(space: Space, config: Config) -> tuple[int, ...]:
    """Level indices of a config, in space order (the identity of a configuration)."""
    try:
        return tuple(list(space[k]).index(config[k]) for k in space)
    except (KeyError, ValueError) as err:
        raise ValueError(f"config {config} is not in the space {dict(space)}: {err}") from None


def from_key(space: Space, key: Sequence[int]) -> Config:
    return {k: list(space[k])[int(i)] for k, i in zip(space, key)}


def latin_design(space: Space, n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """n distinct configurations (level-index keys) in which choice c takes level perm_c[i mod L_c] at point i
    (a random Latin design): with n >= the most levels, every level of every choice appears at least once."""
    dims = [len(v) for v in space.values()]
    cycles: list[list[int]] = [[] for _ in dims]
    keys: list[tuple[int, ...]] = []
    for _ in range(n):
        key = []
        for c, d in enumerate(dims):
            if not cycles[c]:
                cycles[c] = [int(i) for i in rng.permutation(d)]
            key.append(cycles[c].pop())
        keys.append(tuple(key))
    seen: set[tuple[int, ...]] = set()
    out = []
    for k in keys:  # a repeated point (only when every choice has fewer levels than n) is redrawn
        while k in seen and len(seen) < space_size(space):
            k = tuple(int(rng.integers(d)) for d in dims)
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


def space_size(space: Space) -> int:
    return math.prod(len(v) for v in space.values())


def is_ordinal(levels: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels)


def check_space(space: Space) -> None:
    for name, levels in space.items():
        if not levels:
            raise ValueError(f"space.{name} is empty")
        if len(set(map(repr, levels))) != len(levels):
            raise ValueError(f"space.{name} repeats a level: {list(levels)}")


class Searcher(Protocol):
    name: str

    def ask(self, n: int = 1) -> list[Config]: ...

    def tell(self, config: Config, score: float) -> None: ...

    def resources(self) -> dict[str, Any]: ...


class BaseSearcher:
    name = "base"

    def __init__(self, space: Space, seed: int = 0, initial: list[tuple[int, ...]] | None = None):
        check_space(space)
        self.space = {k: list(v) for k, v in space.items()}
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.told: dict[tuple[int, ...], float] = {}
        self.proposed: set[tuple[int, ...]] = set()
        self.initial = list(initial or [])  # proposed first, in order (a design shared by several searchers)

    def _initial(self, n: int) -> list[tuple[int, ...]]:
        out = []
        while len(out) < n and self.initial:
            k = self.initial.pop(0)
            if k not in self.proposed:
                out.append(k)
                self.proposed.add(k)
        return out

    def _random_unseen(self, n: int) -> list[Config]:
        """Up to n distinct configs never proposed, uniformly (rejection sampling; enumeration when the
        unseen part is small)."""
        size = space_size(self.space)
        out: list[tuple[int, ...]] = []
        dims = [len(v) for v in self.space.values()]
        tries = 0
        while len(out) < n and len(self.proposed) + len(out) < size:
            tries += 1
            if tries > 50 * n + 100:  # crowded space: draw from the explicit remainder
                rest = [k for k in np.ndindex(*dims) if k not in self.proposed and k not in out]
                pick = self.rng.permutation(len(rest))[: n - len(out)]
                out.extend(tuple(int(i) for i in rest[j]) for j in pick)
                break
            key = tuple(int(self.rng.integers(d)) for d in dims)
            if key not in self.proposed and key not in out:
                out.append(key)
        self.proposed.update(out)
        return [from_key(self.space, k) for k in out]

    def tell(self, config: Config, score: float) -> None:
        key = config_key(self.space, config)
        if key in self.told:
            raise ValueError(f"{self.name}: {config} was already told")
        if not np.isfinite(score):
            raise ValueError(f"{self.name}: score {score} for {config} is not finite")
        self.told[key] = float(score)
        self.proposed.add(key)

    def resources(self) -> dict[str, Any]:
        return {}
