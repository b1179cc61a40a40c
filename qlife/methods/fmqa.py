"""FMQA: factorization-machine surrogate + QUBO sampling for black-box search over a discrete space.

Kitai et al., Phys. Rev. Research 2, 013319 (2020); reference code `tsudalab/fmqa`. Each round:

1. encode every evaluated configuration in bits (`BitEncoding`): one-hot per choice (arXiv 2606.23188
   found it best for learning), or domain-wall (thermometer: level j = the first j of L-1 bits set) for ordinal
   choices with at least `domain_wall_min_levels` levels;
2. fit a second-order factorization machine (`FactorizationMachine`, torch, rank K) to the negated,
   standardized scores: f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j;
3. its coefficients are a QUBO (x_i^2 = x_i); add the encoding's penalties with strength
   lambda = penalty_scale * max_i (|w_i| + sum_j |<v_i, v_j>|): one bit flip changes f by at most that, so
   for one-hot every assignment that breaks a constraint has a flip that lowers the energy, and the QUBO's
   minimum is a valid configuration (the brute-force test checks it);
4. sample it through the backend layer (`qlife.quantum.backends.solve`: exact, QAOA, SA, path-integral,
   tabu, D-Wave); decode the samples lowest energy first, repair any invalid one (counted: `violations`),
   and propose the first configurations never proposed before. When every sample is a configuration seen
   already, the unseen one-level neighbours of the best sample are ranked by the FM (`neighbour_proposals`),
   and only then a random unseen configuration (`random_proposals`).

The initial design (`n_init` >= the largest number of levels, default equal) is a random Latin design: choice
c takes level perm_c[i mod L_c] at point i, so every level, hence every one-hot bit, is set at least once
(arXiv 2605.04825: with random starts about a third of one-hot bits are never 1, and the FM cannot learn
their weights). Optionally the FM is fitted to the last `window` evaluations (sliding window) or a random
`subsample` of them (arXiv 2507.21024, 2508.08778).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np
import torch

from qlife.methods.search_space import BaseSearcher, Config, Space, config_key, from_key, is_ordinal, latin_design
from qlife.params import SASampler
from qlife.quantum.backends import solve


@dataclass(frozen=True)
class _Var:
    name: str
    levels: list
    kind: str  # one_hot | domain_wall
    start: int  # first bit
    width: int  # bits


class BitEncoding:
    """Configurations <-> bit vectors; the penalty QUBO that is zero exactly on valid encodings."""

    def __init__(self, space: Space, domain_wall_min_levels: int | None = None):
        self.vars: list[_Var] = []
        start = 0
        for name, levels in space.items():
            levels = list(levels)
            dw = domain_wall_min_levels is not None and is_ordinal(levels) and len(levels) >= domain_wall_min_levels
            kind = "domain_wall" if dw else "one_hot"
            width = (len(levels) - 1) if dw else (len(levels) if len(levels) > 1 else 0)
            self.vars.append(_Var(name, levels, kind, start, width))
            start += width
        self.n_bits = start
        self.space = {v.name: v.levels for v in self.vars}

    def encode(self, config: Config) -> np.ndarray:
        x = np.zeros(self.n_bits, dtype=np.int8)
        for v in self.vars:
            j = v.levels.index(config[v.name])
            if v.width == 0:
                continue
            if v.kind == "one_hot":
                x[v.start + j] = 1
            else:
                x[v.start: v.start + j] = 1
        return x

    def valid(self, x: np.ndarray) -> list[bool]:
        """Per choice: does its block of bits encode a level?"""
        out = []
        for v in self.vars:
            b = x[v.start: v.start + v.width]
            out.append(True if v.width == 0 else
                       bool(b.sum() == 1) if v.kind == "one_hot" else bool(np.all(np.diff(b) <= 0)))
        return out

    def candidates(self, x: np.ndarray) -> list[list[int]]:
        """Per choice: its level if the block is valid, else every level it could be repaired to."""
        out = []
        for v, ok in zip(self.vars, self.valid(x)):
            b = x[v.start: v.start + v.width]
            if v.width == 0:
                out.append([0])
            elif ok:
                out.append([int(np.argmax(b))] if v.kind == "one_hot" else [int(b.sum())])
            elif v.kind == "one_hot":
                on = [int(i) for i in np.flatnonzero(b)]
                out.append(on or list(range(len(v.levels))))
            else:  # non-monotone wall: any level between the first 0 and the number of ones
                first0 = int(np.argmin(b)) if (b == 0).any() else v.width
                out.append(sorted({first0, int(b.sum()), int(np.max(np.flatnonzero(b))) + 1}))
        return out

    def decode_key(self, x: np.ndarray) -> tuple[int, ...]:
        c = self.candidates(x)
        if any(len(k) != 1 for k in c):
            raise ValueError("invalid encoding: repair it first")
        return tuple(k[0] for k in c)

    def key_bits(self, key: Sequence[int]) -> np.ndarray:
        return self.encode(from_key(self.space, key))

    def penalty(self, strength: float) -> dimod.BinaryQuadraticModel:
        bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
        bqm.add_variables_from((i, 0.0) for i in range(self.n_bits))
        for v in self.vars:
            idx = list(range(v.start, v.start + v.width))
            if v.width == 0:
                continue
            if v.kind == "one_hot":
                bqm.update(dimod.generators.combinations(idx, 1, strength, dimod.BINARY))
            else:  # x_{i+1} <= x_i: strength * x_{i+1} (1 - x_i)
                for a, b in zip(idx, idx[1:]):
                    bqm.add_linear(b, strength)
                    bqm.add_quadratic(a, b, -strength)
        return bqm


class FactorizationMachine(torch.nn.Module):
    """Second-order FM on bits: w0 + x.w + sum_{i<j} <v_i, v_j> x_i x_j (Rendle 2010), O(nK) per sample."""

    def __init__(self, n: int, rank: int, init_std: float = 0.01):
        super().__init__()
        self.w0 = torch.nn.Parameter(torch.zeros(()))
        self.w = torch.nn.Parameter(torch.zeros(n))
        self.v = torch.nn.Parameter(torch.randn(n, rank) * init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xv = x @ self.v
        pair = 0.5 * ((xv**2).sum(-1) - ((x**2) @ (self.v**2)).sum(-1))
        return self.w0 + x @ self.w + pair

    @torch.no_grad()
    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 300, lr: float = 0.03,
            weight_decay: float = 1e-3) -> float:
        """Full-batch Adam on MSE + weight_decay * (|w|^2 + |V|^2); returns the final training MSE.

        The gradient is the FM's closed form (d/dV_if = x_i (xV)_f - x_i^2 V_if, times the residual), applied
        to one flat float64 parameter vector: autograd and torch.optim cost ~1 ms a step on these few-dozen-point
        problems, this ~0.15 ms, and the fit runs once per proposal (searcher overhead)."""
        n, k = self.v.shape
        xt = torch.as_tensor(x, dtype=torch.float64)
        yt = torch.as_tensor(y, dtype=torch.float64)
        x2t = xt * xt
        p = torch.cat([self.w0.detach().double().reshape(1), self.w.detach().double(),
                       self.v.detach().double().reshape(-1)])
        g, m, v2 = torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p)
        b1, b2, eps = 0.9, 0.999, 1e-8
        mse = 0.0
        for t in range(1, epochs + 1):
            w0, w, vv = p[0], p[1:1 + n], p[1 + n:].view(n, k)
            xv = xt @ vv
            resid = w0 + xt @ w + 0.5 * ((xv * xv).sum(1) - x2t @ (vv * vv).sum(1)) - yt
            r = resid * (2.0 / len(yt))
            g[0] = r.sum()
            g[1:1 + n] = xt.T @ r + 2 * weight_decay * w
            g[1 + n:] = (xt.T @ (r[:, None] * xv) - (x2t.T @ r)[:, None] * vv + 2 * weight_decay * vv).reshape(-1)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v2.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, v2.sqrt().add_(eps), value=-lr * (1 - b2**t) ** 0.5 / (1 - b1**t))
        mse = float(((self._predict_flat(p, xt, x2t, n, k) - yt) ** 2).mean())
        self.w0.copy_(p[0])
        self.w.copy_(p[1:1 + n])
        self.v.copy_(p[1 + n:].view(n, k))
        return mse

    @staticmethod
    def _predict_flat(p: torch.Tensor, xt: torch.Tensor, x2t: torch.Tensor, n: int, k: int) -> torch.Tensor:
        vv = p[1 + n:].view(n, k)
        xv = xt @ vv
        return p[0] + xt @ p[1:1 + n] + 0.5 * ((xv * xv).sum(1) - x2t @ (vv * vv).sum(1))

    def qubo(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(h, J strictly upper triangular, offset): f(x) = offset + h.x + x^T J x on bits."""
        v = self.v.detach().double().numpy()
        return self.w.detach().double().numpy(), np.triu(v @ v.T, 1), float(self.w0.detach())

    def bqm(self) -> dimod.BinaryQuadraticModel:
        h, j, offset = self.qubo()
        rows, cols = np.nonzero(j)
        return dimod.BinaryQuadraticModel(dict(enumerate(h)), {(int(a), int(b)): float(j[a, b])
                                                                for a, b in zip(rows, cols)}, offset, dimod.BINARY)

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(np.atleast_2d(x), dtype=torch.float32)).double().numpy()


def penalty_strength(h: np.ndarray, j: np.ndarray, scale: float) -> float:
    """scale * max_i (|h_i| + sum_j |J_ij|): above the largest change one bit flip makes to the FM."""
    jj = np.abs(j) + np.abs(j).T
    return float(scale * max(np.max(np.abs(h) + jj.sum(1), initial=0.0), 1e-9))


class FMQASearcher(BaseSearcher):
    name = "fmqa"

    def __init__(self, space: Space, seed: int = 0, rank: int = 4, n_init: int | None = None,
                 domain_wall_min_levels: int | None = None, epochs: int = 500, learning_rate: float = 0.02,
                 weight_decay: float = 1e-3, penalty_scale: float = 1.2, window: int | None = None,
                 subsample: int | None = None, solver: Any = None, param: str = "search.fmqa.solver",
                 initial: list[tuple[int, ...]] | None = None):
        super().__init__(space, seed)
        self.enc = BitEncoding(self.space, domain_wall_min_levels)
        most = max(len(v) for v in self.space.values())
        self.n_init = most if n_init is None else n_init
        if self.n_init < most:
            raise ValueError(f"fmqa.n_init = {self.n_init} cannot set every bit: a choice has {most} levels "
                             f"(use >= {most}, or null)")
        self.rank, self.epochs, self.lr, self.wd = rank, epochs, learning_rate, weight_decay
        self.penalty_scale, self.window, self.subsample = penalty_scale, window, subsample
        self.solver = solver if solver is not None else SASampler(seed=seed)
        self.param = param
        self.design = list(initial) if initial is not None else latin_design(self.space, self.n_init, self.rng)
        self.round = 0
        self.stats = {"rounds": 0, "fit_s": 0.0, "solve_s": 0.0, "fm_train_mse": None, "violations": 0,
                      "samples": 0, "sampler_proposals": 0, "neighbour_proposals": 0, "random_proposals": 0,
                      "initial_design": 0}
        self.quantum = None  # ResourceCount summed over solves
        self.last_model: FactorizationMachine | None = None

    # --- surrogate + QUBO ---------------------------------------------------------------------------
    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        keys = list(self.told)
        if self.window is not None:
            keys = keys[-self.window:]
        if self.subsample is not None and len(keys) > self.subsample:
            keys = [keys[i] for i in sorted(self.rng.choice(len(keys), self.subsample, replace=False))]
        x = np.stack([self.enc.key_bits(k) for k in keys]).astype(np.float32)
        y = -np.array([self.told[k] for k in keys])  # minimize the negated score
        sd = y.std()
        return x, (y - y.mean()) / (sd if sd > 1e-12 else 1.0)

    def fit(self) -> FactorizationMachine:
        x, y = self.training_set()
        torch.manual_seed(self.seed * 100_003 + self.round)
        fm = FactorizationMachine(self.enc.n_bits, self.rank)
        self.stats["fm_train_mse"] = fm.fit(x, y, self.epochs, self.lr, self.wd)
        self.last_model = fm
        return fm

    def build_qubo(self, fm: FactorizationMachine) -> dimod.BinaryQuadraticModel:
        h, j, _ = fm.qubo()
        bqm = fm.bqm()
        bqm.update(self.enc.penalty(penalty_strength(h, j, self.penalty_scale)))
        return bqm

    def repair(self, x: np.ndarray, fm: FactorizationMachine) -> tuple[tuple[int, ...], int]:
        """The valid configuration nearest a sample: each broken choice takes, among the levels its bits allow,
        the one the FM predicts best (choices repaired in order). Returns (key, broken choices)."""
        cand = self.enc.candidates(x)
        broken = sum(len(c) > 1 for c in cand)
        key = [c[0] for c in cand]
        for i, c in enumerate(cand):
            if len(c) > 1:
                trial = []
                for level in c:
                    k = list(key)
                    k[i] = level
                    trial.append((float(fm.predict(self.enc.key_bits(k))[0]), level))
                key[i] = min(trial)[1]
        return tuple(key), broken

    def _neighbours(self, key: tuple[int, ...], fm: FactorizationMachine, n: int) -> list[tuple[int, ...]]:
        out = []
        for i, levels in enumerate(self.space.values()):
            for j in range(len(levels)):
                if j != key[i]:
                    k = key[:i] + (j,) + key[i + 1:]
                    if k not in self.proposed:
                        out.append(k)
        out = list(dict.fromkeys(out))
        if not out:
            return []
        pred = fm.predict(np.stack([self.enc.key_bits(k) for k in out]))
        return [out[i] for i in np.argsort(pred, kind="stable")[:n]]

    def ask(self, n: int = 1) -> list[Config]:
        out: list[tuple[int, ...]] = []
        while len(out) < n and self.design:
            k = self.design.pop(0)
            if k not in self.proposed:
                out.append(k)
                self.proposed.add(k)
                self.stats["initial_design"] += 1
        if len(out) < n and len(self.told) >= 2:
            out += self._propose(n - len(out))
        if len(out) < n:
            rest = self._random_unseen(n - len(out))
            self.stats["random_proposals"] += len(rest)
            out += [config_key(self.space, c) for c in rest]
        return [from_key(self.space, k) for k in out]

    def _propose(self, n: int) -> list[tuple[int, ...]]:
        self.round += 1
        self.stats["rounds"] += 1
        t0 = time.perf_counter()
        fm = self.fit()
        t1 = time.perf_counter()
        result = solve(self.build_qubo(fm), self.solver, self.param)
        self.stats["fit_s"] += t1 - t0
        self.stats["solve_s"] += time.perf_counter() - t1
        self.quantum = result.resources if self.quantum is None else self.quantum + result.resources
        ss = result.sampleset
        out: list[tuple[int, ...]] = []
        best_key = None
        for rec in ss.data(["sample", "energy"], sorted_by="energy"):
            x = np.array([rec.sample[i] for i in range(self.enc.n_bits)], dtype=np.int8)
            key, broken = self.repair(x, fm)
            self.stats["samples"] += 1
            self.stats["violations"] += int(broken > 0)
            best_key = best_key or key
            if key not in self.proposed and key not in out:
                out.append(key)
                self.stats["sampler_proposals"] += 1
                if len(out) == n:
                    break
        if len(out) < n and best_key is not None:
            extra = [k for k in self._neighbours(best_key, fm, n) if k not in out][: n - len(out)]
            self.stats["neighbour_proposals"] += len(extra)
            out += extra
        self.proposed.update(out)
        return out

    def resources(self) -> dict[str, Any]:
        q = self.quantum.to_dict() if self.quantum is not None else None
        return {**self.stats, "bits": self.enc.n_bits, "rank": self.rank, "n_init": self.n_init,
                "solver": self.solver.kind, "quantum": q}
