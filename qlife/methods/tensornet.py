"""Tensor-network compression of a model's Linear layers: matrix product operators (MPO, tensor-train
matrices) initialised by TT-SVD, disentangler layers of two-qubit orthogonal gates, and the low-rank SVD
baseline at equal parameter count.

An MPO layer: the weight W (out x in) is read as a tensor of shape (o_1..o_d, i_1..i_d) (row-major
tensorisation of both indices into `d` sites) and stored as d cores G_k of shape (r_{k-1}, o_k, i_k, r_k),
r_0 = r_d = 1: W[o, i] = G_1[o_1, i_1] G_2[o_2, i_2] ... G_d[o_d, i_d]. The decomposition is tensorly's
`tensor_train_matrix` (TT-SVD: successive truncated SVDs; exact at full bond dimension); parameters
sum_k r_{k-1} o_k i_k r_k (+ the bias), `mpo_parameters`.

A disentangler (arXiv 2410.17397's variational circuits beside the MPO): the input index i is read as qubits
(the binary digits of each mode's power-of-two part; an odd factor such as 384's 3 is a spectator) and a
brick-wall of two-qubit gates acts on them before the MPO: y = MPO(D x). Gates between the last qubit of one
site and the first of the next act across an MPO bond: they move correlations the truncated bond cannot carry
into the basis change D. Each gate is exp(A), A a real antisymmetric 4x4 generator (6 parameters; A = 0 is
the identity, so a fresh disentangler leaves the layer unchanged): D is orthogonal, a real unitary, i.e. a
circuit a quantum device could run. `Disentangler.circuit` builds it in qiskit and `export_disentangler`
writes OpenQASM 3 (transpiled to rz / sx / x / cx) with its resources.

The baseline: `LowRankLinear`, W ~ B A with A (rank x in), B (out x rank) from the truncated SVD (the best
rank-r approximation in Frobenius norm, Eckart-Young), at the largest rank whose parameters do not exceed the
same budget.

`compress_model` replaces named Linear layers of a model in place and records the layout in
`model.config.qlife_compressed`, which `qlife.classifiers.load_teacher` reads to rebuild the same modules
before loading saved weights (`build_layer`). `fit_layers` is the layer-wise fit every method gets before
the recovery fine-tune: Adam on each layer's relative output error over calibration activations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

METHODS = ("mpo", "mpo_disentangled", "svd")


def factorize(n: int, sites: int) -> list[int]:
    """`n` as a product of `sites` balanced factors (descending prime factors, each to the smallest product so
    far; the result sorted descending): 384, 3 -> [8, 8, 6]; 1536, 3 -> [16, 12, 8]. A prime n gives
    [n, 1, ...]."""
    if n < 1 or sites < 1:
        raise ValueError(f"factorize needs n >= 1 and sites >= 1, got {n}, {sites}")
    primes, m, p = [], n, 2
    while p * p <= m:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    if m > 1:
        primes.append(m)
    out = [1] * sites
    for q in sorted(primes, reverse=True):
        out[int(np.argmin(out))] *= q
    return sorted(out, reverse=True)


def max_ranks(out_modes: list[int], in_modes: list[int]) -> list[int]:
    """The bond dimensions at which TT-SVD is exact: r_k = min(prod_{j<=k} o_j i_j, prod_{j>k} o_j i_j)."""
    sizes = [o * i for o, i in zip(out_modes, in_modes)]
    return [1] + [min(math.prod(sizes[:k]), math.prod(sizes[k:])) for k in range(1, len(sizes))] + [1]


def capped_ranks(out_modes: list[int], in_modes: list[int], rank: int) -> list[int]:
    return [min(rank, r) for r in max_ranks(out_modes, in_modes)]


def mpo_parameters(out_modes: list[int], in_modes: list[int], ranks: list[int], bias: bool = True) -> int:
    """sum_k r_{k-1} o_k i_k r_k, plus the bias."""
    cores = sum(ranks[k] * o * i * ranks[k + 1] for k, (o, i) in enumerate(zip(out_modes, in_modes)))
    return cores + (math.prod(out_modes) if bias else 0)


def svd_parameters(out_features: int, in_features: int, rank: int, bias: bool = True) -> int:
    return rank * (in_features + out_features) + (out_features if bias else 0)


def dense_parameters(out_features: int, in_features: int, bias: bool = True) -> int:
    return out_features * in_features + (out_features if bias else 0)


# --- the MPO layer ---------------------------------------------------------------------------------------


class MPOLinear(nn.Module):
    """y = x W^T + b with W an MPO (cores (r_{k-1}, o_k, i_k, r_k)), contracted site by site without forming W."""

    def __init__(self, in_modes: list[int], out_modes: list[int], ranks: list[int], bias: bool = True):
        super().__init__()
        if len(in_modes) != len(out_modes) or len(ranks) != len(in_modes) + 1 or ranks[0] != 1 or ranks[-1] != 1:
            raise ValueError(f"MPO layout mismatch: in {in_modes}, out {out_modes}, ranks {ranks}")
        self.in_modes, self.out_modes, self.ranks = list(in_modes), list(out_modes), list(ranks)
        self.in_features, self.out_features = math.prod(in_modes), math.prod(out_modes)
        self.cores = nn.ParameterList(nn.Parameter(torch.zeros(ranks[k], o, i, ranks[k + 1]))
                                      for k, (o, i) in enumerate(zip(out_modes, in_modes)))
        self.bias = nn.Parameter(torch.zeros(self.out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, in_modes: list[int], out_modes: list[int], rank: int) -> MPOLinear:
        """TT-SVD of the layer's weight (tensorly.decomposition.tensor_train_matrix, float64) at bond
        dimension `rank` (capped where the exact rank is lower)."""
        import tensorly as tl
        from tensorly.decomposition import tensor_train_matrix

        ranks = capped_ranks(out_modes, in_modes, rank)
        w = linear.weight.detach().double().cpu().numpy().reshape(*out_modes, *in_modes)
        tl.set_backend("numpy")
        ttm = tensor_train_matrix(w, rank=ranks)
        layer = cls(in_modes, out_modes, [f.shape[0] for f in ttm.factors] + [1], linear.bias is not None)
        with torch.no_grad():
            for core, f in zip(layer.cores, ttm.factors):
                core.copy_(torch.as_tensor(np.asarray(f)))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def spec(self) -> dict:
        return {"kind": "mpo", "in_modes": self.in_modes, "out_modes": self.out_modes, "ranks": self.ranks,
                "bias": self.bias is not None}

    def weight(self) -> torch.Tensor:
        """The dense (out x in) matrix the cores represent (for tests and reconstruction errors)."""
        t = self.cores[0]
        for core in self.cores[1:]:  # (1, O.., I.., r) x (r, o, i, s)
            t = torch.einsum("aOIr,rois->aOoIis", t, core).reshape(
                1, t.shape[1] * core.shape[1], t.shape[2] * core.shape[2], core.shape[3])
        return t.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x W^T + b with W contracted from the cores first (out x in x rank multiply-adds, once per call):
        at the bond dimensions a 2-5x compression needs, contracting the cores against a batch of tokens site
        by site costs more than the dense product (`contract_sites` does it that way, for tests)."""
        return nn.functional.linear(x, self.weight(), self.bias)

    def contract_sites(self, x: torch.Tensor) -> torch.Tensor:
        """The same product, the cores applied to x site by site without forming W."""
        lead = x.shape[:-1]
        n = math.prod(lead) if lead else 1
        t = x.reshape(n, 1, 1, self.in_features)  # (batch, outputs so far, bond, inputs left)
        rest = self.in_features
        for core, i_k in zip(self.cores, self.in_modes):
            rest //= i_k
            t = t.reshape(t.shape[0], t.shape[1], t.shape[2], i_k, rest)
            t = torch.einsum("bpriJ,rois->bposJ", t, core)
            t = t.reshape(t.shape[0], t.shape[1] * t.shape[2], t.shape[3], rest)
        y = t.reshape(n, self.out_features)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


# --- the disentangler ------------------------------------------------------------------------------------


def qubit_layout(in_modes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(dims, qubit_axes, site_of_qubit): the input index reshaped into `dims` (per mode: its power-of-two
    part as binary digits, most significant first, then its odd part if > 1), the axes of `dims` that are
    qubits, and the MPO site each qubit belongs to."""
    dims, axes, sites = [], [], []
    for k, m in enumerate(in_modes):
        a = (m & -m).bit_length() - 1  # the power of two in m
        odd = m >> a
        for _ in range(a):
            axes.append(len(dims))
            sites.append(k)
            dims.append(2)
        if odd > 1:
            dims.append(odd)
    return dims, axes, sites


def brickwall(n_qubits: int, layers: int) -> list[tuple[int, int]]:
    """Pairs (p, p + 1) of a brick-wall: even bonds, then odd bonds, `layers` times."""
    pairs = []
    for layer in range(layers):
        pairs += [(p, p + 1) for p in range(layer % 2, n_qubits - 1, 2)]
    return pairs


_IU = torch.triu_indices(4, 4, offset=1)


class Disentangler(nn.Module):
    """A brick-wall of two-qubit gates exp(A), A antisymmetric (6 generators per gate, zero = identity), on the
    qubits of the input index: x -> D x with D orthogonal."""

    def __init__(self, in_modes: list[int], layers: int = 2):
        super().__init__()
        self.in_modes, self.layers = list(in_modes), int(layers)
        self.dims, self.qubit_axes, self.qubit_sites = qubit_layout(self.in_modes)
        self.pairs = brickwall(len(self.qubit_axes), self.layers)
        self.generators = nn.Parameter(torch.zeros(len(self.pairs), 6))
        self.in_features = math.prod(self.in_modes)
        # position of each input index in the qubits-then-spectators order
        odd = [a for a in range(len(self.dims)) if a not in self.qubit_axes]
        reordered = torch.arange(self.in_features).reshape(self.dims).permute(*self.qubit_axes, *odd).reshape(-1)
        self._perm = torch.argsort(reordered)

    def spec(self) -> dict:
        return {"in_modes": self.in_modes, "layers": self.layers}

    @property
    def n_qubits(self) -> int:
        return len(self.qubit_axes)

    def gates(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(gates, 4, 4) orthogonal matrices, exp of the antisymmetric generators (in `dtype`: float64 for
        export, where a unitary is checked to 1e-8)."""
        g = self.generators if dtype is None else self.generators.to(dtype)
        a = g.new_zeros(len(self.pairs), 4, 4)
        a[:, _IU[0], _IU[1]] = g
        return torch.linalg.matrix_exp(a - a.transpose(1, 2))

    def bond_gates(self) -> int:
        """Gates whose two qubits sit on different MPO sites: they act across a bond."""
        return sum(self.qubit_sites[p] != self.qubit_sites[q] for p, q in self.pairs)

    def qubit_matrix(self) -> torch.Tensor:
        """The (2^n x 2^n) matrix D acts with on the qubits, differentiable in the generators (big-endian:
        qubit 0 the most significant digit; column k is the image of basis state k): the gates as
        I (x) G (x) I Kronecker products, multiplied in order."""
        n = self.n_qubits
        g = self.gates()
        u = torch.eye(2 ** n, dtype=g.dtype, device=g.device)
        for gate, (p, q) in zip(g, self.pairs):
            left = torch.eye(2 ** p, dtype=g.dtype, device=g.device)
            right = torch.eye(2 ** (n - q - 1), dtype=g.dtype, device=g.device)
            u = torch.kron(torch.kron(left, gate), right) @ u
        return u

    def matrix(self) -> torch.Tensor:
        """D on the whole input index (in x in): the qubit matrix on the qubit digits, the identity on the odd
        (spectator) digits: U (x) I in the order qubits-then-spectators, permuted back to the index's order."""
        u = self.qubit_matrix()
        m = self.in_features >> self.n_qubits
        full = torch.kron(u, torch.eye(m, dtype=u.dtype, device=u.device)) if m > 1 else u
        return full[self._perm][:, self._perm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if not self.pairs else x @ self.matrix().T.to(x.dtype)

    def apply_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The same map, each gate applied to x's two qubit axes in turn (what `matrix` is tested against)."""
        lead = x.shape[:-1]
        t = x.reshape(-1, *self.dims)
        for g, (p, q) in zip(self.gates(), self.pairs):
            a, b = 1 + self.qubit_axes[p], 1 + self.qubit_axes[q]
            t = t.movedim((a, b), (-2, -1))
            shape = t.shape
            t = (t.reshape(*shape[:-2], 4) @ g.T.to(t.dtype)).reshape(shape).movedim((-2, -1), (a, b))
        return t.reshape(*lead, self.in_features)

    @torch.no_grad()
    def qubit_unitary(self) -> np.ndarray:
        """The (2^n x 2^n) matrix D acts with on the qubits (big-endian: qubit 0 the most significant digit);
        column k is the image of basis state k."""
        n = self.n_qubits
        eye = torch.eye(2 ** n, dtype=torch.float64).reshape(2 ** n, *([2] * n))
        t = eye
        for g, (p, q) in zip(self.gates(torch.float64), self.pairs):
            t = t.movedim((1 + p, 1 + q), (-2, -1))
            shape = t.shape
            t = (t.reshape(*shape[:-2], 4) @ g.T).reshape(shape).movedim((-2, -1), (1 + p, 1 + q))
        return t.reshape(2 ** n, 2 ** n).T.numpy()

    def circuit(self):
        """The disentangler as a qiskit circuit, each gate exactly as `so4_circuit` builds it; qiskit qubit
        n-1-p is our qubit p (qiskit is little-endian), so its Operator equals `qubit_unitary`."""
        from qiskit import QuantumCircuit

        n = self.n_qubits
        qc = QuantumCircuit(n, name="disentangler")
        for g, (p, q) in zip(self.gates(torch.float64).detach().numpy(), self.pairs):
            qc.compose(so4_circuit(g), qubits=[n - 1 - q, n - 1 - p], inplace=True)  # first: least significant
        return qc


class TNLinear(nn.Module):
    """An MPO layer, optionally after a disentangler: y = MPO(D x). In inference (eval mode, no grad) the
    effective dense weight W D is formed once and reused until a parameter changes."""

    def __init__(self, mpo: MPOLinear, disentangler: Disentangler | None = None):
        super().__init__()
        self.mpo, self.disentangler = mpo, disentangler
        self.in_features, self.out_features = mpo.in_features, mpo.out_features
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def spec(self) -> dict:
        out = self.mpo.spec()
        if self.disentangler is not None:
            out["disentangler"] = self.disentangler.spec()
        return out

    def effective_weight(self) -> torch.Tensor:
        """W D: the MPO's matrix after the disentangler's (in x in) orthogonal matrix."""
        w = self.mpo.weight()
        return w if self.disentangler is None else w @ self.disentangler.matrix().to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return nn.functional.linear(x, self.effective_weight(), self.mpo.bias)
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.effective_weight())
        return nn.functional.linear(x, self._cache[1], self.mpo.bias)


class LowRankLinear(nn.Module):
    """y = (x A^T) B^T + b: the truncated-SVD baseline."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.a = nn.Parameter(torch.zeros(rank, in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int) -> LowRankLinear:
        w = linear.weight.detach().double()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        rank = min(rank, len(s))
        root = s[:rank].sqrt()
        layer = cls(linear.in_features, linear.out_features, rank, linear.bias is not None)
        with torch.no_grad():
            layer.b.copy_(u[:, :rank] * root)
            layer.a.copy_(root[:, None] * vh[:rank])
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def spec(self) -> dict:
        return {"kind": "svd", "in_features": self.in_features, "out_features": self.out_features,
                "rank": self.rank, "bias": self.bias is not None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x @ self.a.T) @ self.b.T
        return y + self.bias if self.bias is not None else y


def build_layer(spec: dict) -> nn.Module:
    """An uninitialised layer of the layout `spec` (what `spec()` recorded), for loading saved weights."""
    if spec["kind"] == "svd":
        return LowRankLinear(spec["in_features"], spec["out_features"], spec["rank"], spec.get("bias", True))
    if spec["kind"] == "mpo":
        mpo = MPOLinear(spec["in_modes"], spec["out_modes"], spec["ranks"], spec.get("bias", True))
        d = spec.get("disentangler")
        return TNLinear(mpo, Disentangler(d["in_modes"], d["layers"]) if d else None)
    raise ValueError(f"unknown compressed layer kind {spec['kind']!r}")


# --- planning at a parameter budget -----------------------------------------------------------------------


@dataclass
class LayerPlan:
    """How one Linear layer is compressed: its method, the layout and the parameters it then holds."""

    name: str
    method: str
    dense: int
    parameters: int
    rank: int
    in_modes: list[int] | None = None
    out_modes: list[int] | None = None
    ranks: list[int] | None = None
    disentangler_layers: int = 0
    disentangler_parameters: int = 0

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def plan_layer(name: str, linear: nn.Linear, method: str, ratio: float, sites: int = 3,
               disentangler_layers: int = 2) -> LayerPlan:
    """The largest layout of `method` whose parameters (bias and disentangler included) fit dense / ratio."""
    if method not in METHODS:
        raise ValueError(f"unknown compression method {method!r}; known: {list(METHODS)}")
    if ratio < 1:
        raise ValueError(f"compression ratio must be >= 1, got {ratio}")
    out_f, in_f, bias = linear.out_features, linear.in_features, linear.bias is not None
    dense = dense_parameters(out_f, in_f, bias)
    budget = dense / ratio
    if method == "svd":
        rank = max(1, int((budget - (out_f if bias else 0)) // (in_f + out_f)))
        return LayerPlan(name, method, dense, svd_parameters(out_f, in_f, rank, bias), rank)
    in_modes, out_modes = factorize(in_f, sites), factorize(out_f, sites)
    dis_layers = disentangler_layers if method == "mpo_disentangled" else 0
    dis_params = 6 * len(brickwall(len(qubit_layout(in_modes)[1]), dis_layers))
    top = max(max_ranks(out_modes, in_modes))
    rank = 1
    for r in range(1, top + 1):
        if mpo_parameters(out_modes, in_modes, capped_ranks(out_modes, in_modes, r), bias) + dis_params > budget:
            break
        rank = r
    ranks = capped_ranks(out_modes, in_modes, rank)
    return LayerPlan(name, method, dense, mpo_parameters(out_modes, in_modes, ranks, bias) + dis_params, rank,
                     in_modes, out_modes, ranks, dis_layers, dis_params)


def compress_linear(linear: nn.Linear, plan: LayerPlan) -> nn.Module:
    if plan.method == "svd":
        return LowRankLinear.from_linear(linear, plan.rank)
    mpo = MPOLinear.from_linear(linear, plan.in_modes, plan.out_modes, plan.rank)
    dis = Disentangler(plan.in_modes, plan.disentangler_layers).to(linear.weight.device) \
        if plan.method == "mpo_disentangled" else None
    return TNLinear(mpo, dis)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    owner_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner_name) if owner_name else model, attr, module)


def compress_model(model: nn.Module, method: str, ratio: float, names: Iterable[str], sites: int = 3,
                   disentangler_layers: int = 2) -> list[LayerPlan]:
    """Replace the named Linear layers of `model` (in place; qlife.methods.pruning.linear_targets finds a
    model's FFN / attention ones) by `method` at `ratio`; the layout goes into `model.config.qlife_compressed`
    so that the saved model reloads (qlife.classifiers.load_teacher)."""
    plans = []
    layout = dict(getattr(getattr(model, "config", None), "qlife_compressed", None) or {})
    for name in names:
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{name} is {type(linear).__name__}, not a dense Linear (compressed twice?)")
        plan = plan_layer(name, linear, method, ratio, sites, disentangler_layers)
        layer = compress_linear(linear, plan)
        _set_module(model, name, layer)
        layout[name] = layer.spec()
        plans.append(plan)
    if hasattr(model, "config"):
        model.config.qlife_compressed = layout
    return plans


def rebuild_compressed(model: nn.Module, layout: dict) -> nn.Module:
    """Give a freshly built model the compressed layers `layout` records (uninitialised: load weights next)."""
    for name, spec in layout.items():
        _set_module(model, name, build_layer(spec))
    model.config.qlife_compressed = layout
    return model


def compressed_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, TNLinear | LowRankLinear)}


# --- the layer-wise fit -----------------------------------------------------------------------------------


@torch.no_grad()
def capture_inputs(model: nn.Module, names: list[str], batches: Iterable[dict], max_tokens: int = 2048
                   ) -> dict[str, torch.Tensor]:
    """Inputs of the named layers over the batches (real tokens only), up to `max_tokens` rows each."""
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    masks: list[torch.Tensor] = []
    handles = [model.get_submodule(n).register_forward_pre_hook(
        lambda _m, args, n=n: store[n].append(args[0].detach())) for n in names]
    was = model.training
    model.eval()
    try:
        seen = 0
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "label")}
            model(**inputs)
            masks.append(inputs["attention_mask"].bool())
            seen += int(masks[-1].sum())
            if seen >= max_tokens:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    out = {}
    for n in names:
        rows = torch.cat([x[m] for x, m in zip(store[n], masks)])
        out[n] = rows[:max_tokens].float()
    return out


def dense_form(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W, b) of a compressed layer as the dense map it computes (differentiable in its parameters)."""
    if isinstance(layer, TNLinear):
        return layer.effective_weight(), layer.mpo.bias
    if isinstance(layer, LowRankLinear):
        return layer.b @ layer.a, layer.bias
    if isinstance(layer, nn.Linear):
        return layer.weight, layer.bias
    raise TypeError(f"no dense form for {type(layer).__name__}")


def _augmented(w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.cat([w, (b if b is not None else w.new_zeros(w.shape[0]))[:, None]], 1)


def fit_layers(model: nn.Module, dense: dict[str, nn.Linear], inputs: dict[str, torch.Tensor], steps: int,
               learning_rate: float = 1e-3, disentangler_learning_rate: float = 1e-2, seed: int = 0) -> dict:
    """Per compressed layer: Adam on the relative output error over its calibration inputs x,
    sum ||f(x) - x W^T - b||^2 / sum ||x W^T + b||^2 (full batch), the disentangler's generators at their own
    rate. Computed exactly from the inputs' second moments: with x' = [x, 1] and C = sum x'^T x', the error is
    tr(dW' C dW'^T) for dW' = [W_f - W, b_f - b]: a (out x in) by (in x in) product per step instead of one
    over every calibration token. Returns the relative errors before and after, per layer and averaged."""
    torch.manual_seed(seed)
    rows = {}
    for name, layer in compressed_layers(model).items():
        x = inputs[name].double()
        xa = torch.cat([x, x.new_ones(len(x), 1)], 1)
        gram = (xa.T @ xa).float()
        ref = _augmented(*[t.detach() if t is not None else None for t in dense_form(dense[name])]).float()
        norm = torch.einsum("oi,ij,oj->", ref, gram, ref).clamp(min=1e-30)

        def error(layer=layer, ref=ref, gram=gram, norm=norm) -> torch.Tensor:
            d = _augmented(*dense_form(layer)) - ref
            return torch.einsum("oi,ij,oj->", d, gram, d) / norm

        with torch.no_grad():
            before = float(error())
        if steps > 0:
            gens = [layer.disentangler.generators] if isinstance(layer, TNLinear) and layer.disentangler else []
            ids = {id(p) for p in gens}
            groups = [{"params": [p for p in layer.parameters() if id(p) not in ids], "lr": learning_rate}]
            if gens:
                groups.append({"params": gens, "lr": disentangler_learning_rate})
            opt = torch.optim.Adam(groups)
            with torch.enable_grad():
                for _ in range(steps):
                    loss = error()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        with torch.no_grad():
            after = float(error())
        rows[name] = {"relative_error_before": before, "relative_error_after": after}

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows.values()])) if rows else 0.0

    return {"layers": rows, "mean_relative_error_before": mean("relative_error_before"),
            "mean_relative_error_after": mean("relative_error_after"), "steps": steps}


# --- the circuit a device would run ---------------------------------------------------------------------


# the magic (Bell) basis: M^dagger (A (x) B) M is in SO(4) for A, B in SU(2), and every SO(4) gate is of that form
# (Kraus & Cirac 2001; Vatan & Williams 2004: two CNOTs suffice)
MAGIC = np.array([[1, 1j, 0, 0], [0, 0, 1j, 1], [0, 0, 1j, -1], [1, -1j, 0, 0]]) / np.sqrt(2)


def so4_circuit(g: np.ndarray):
    """A two-qubit circuit equal to the real orthogonal 4x4 `g` (det 1): the magic basis change, A on the more
    significant qubit and B on the other, the change back; A (x) B = M g M^dagger factored by the SVD of its
    rearrangement (rank one). Exact to rounding, where qiskit's generic synthesis specialises gates near the
    identity at infidelity ~1e-10 (amplitudes off by ~1e-5)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import UnitaryGate

    ab = MAGIC @ g @ MAGIC.conj().T
    u, s, vh = np.linalg.svd(ab.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4))
    a, b = (u[:, 0] * np.sqrt(s[0])).reshape(2, 2), (vh[0] * np.sqrt(s[0])).reshape(2, 2)
    phase = np.sqrt(np.linalg.det(a))
    qc = QuantumCircuit(2)
    qc.append(UnitaryGate(MAGIC), [0, 1])
    qc.append(UnitaryGate(b * phase), [0])  # qiskit: the first qubit is the least significant
    qc.append(UnitaryGate(a / phase), [1])
    qc.append(UnitaryGate(MAGIC.conj().T), [0, 1])
    return qc


def export_disentangler(dis: Disentangler) -> tuple[str, dict]:
    """OpenQASM 3 of the disentangler in rz / sx / x / cx (each gate through `so4_circuit`: 2 CX), and its
    resources (qubits, depth, gate counts, two-qubit gates, gates across an MPO bond)."""
    from qiskit import qasm3, transpile

    qc = transpile(dis.circuit(), basis_gates=["rz", "sx", "x", "cx"], optimization_level=1, seed_transpiler=0)
    ops = qc.count_ops()
    return qasm3.dumps(qc), {"qubits": qc.num_qubits, "depth": qc.depth(), "gates": dict(ops),
                             "two_qubit_gates": int(ops.get("cx", 0)), "two_qubit_blocks": len(dis.pairs),
                             "blocks_across_bonds": dis.bond_gates(), "parameters": int(dis.generators.numel())}


def qasm_unitary(text: str) -> np.ndarray:
    """Re-import exported OpenQASM 3 and simulate it with qiskit's Statevector on its Choi state: n ancillas
    maximally entangled with the n system qubits, the circuit on the system, one 2n-qubit statevector whose
    amplitudes are U / sqrt(2^n). Returns U in big-endian order (column k: the image of basis state k)."""
    from qiskit import QuantumCircuit, qasm3
    from qiskit.quantum_info import Statevector

    qc = qasm3.loads(text)  # qiskit-qasm3-import
    n = qc.num_qubits
    choi = QuantumCircuit(2 * n)
    for i in range(n):  # ancilla n + i paired with system qubit i: sum_k |k>_anc |k>_sys
        choi.h(n + i)
        choi.cx(n + i, i)
    choi.compose(qc, qubits=range(n), inplace=True)
    amp = Statevector(choi).data.reshape(2 ** n, 2 ** n)  # [ancilla k, system j] = U[j, k] / sqrt(2^n)
    # qiskit's integer index is little-endian in qubit number and our qubit p is qiskit qubit n - 1 - p, so the
    # system index is already our big-endian one
    return amp.T * np.sqrt(2 ** n)


def unitary_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest entry of |a - e^{i phi} b| with the global phase phi that aligns them (OpenQASM drops it)."""
    k = np.unravel_index(np.argmax(np.abs(b)), b.shape)
    phase = a[k] / b[k] if abs(b[k]) > 1e-12 else 1.0
    phase = phase / abs(phase) if abs(phase) > 0 else 1.0
    return float(np.abs(a - phase * b).max())
