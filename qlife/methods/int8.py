"""Int8 serving of a (compressed) model and the bytes it takes: what bench/compress.py compares methods at.

- `servable(model)`: a copy whose compressed layers (qlife.methods.tensornet) compute with nn.Linear modules,
  so that dynamic quantization reaches their factors: a truncated-SVD layer as two Linears (in -> rank ->
  out), an MPO layer as one Linear per core applied site by site (core (r, o, i, s) as the (o s) x (r i) matrix;
  `MPOLinear.contract_sites`' order), after its disentangler's gates (float32: 6 generators per gate). The
  float32 outputs are the compressed model's own.
- `quantize_int8(model)`: torch.ao.quantization.quantize_dynamic (torch 2.13, CPU; deprecated in favour of
  torchao, still working): every nn.Linear to int8 weights per output channel (symmetric, fbgemm / x86 kernels,
  activations quantized per batch on the fly), every nn.Embedding to uint8 per row with a float scale and
  offset (`float_qparams_weight_only_qconfig`). LayerNorms, biases and disentangler generators stay float32.
- `served_bytes(model)`: the bytes of the served state, counted per tensor at its stored width: an int8 Linear
  weight 1 byte per entry plus one float32 scale per output channel (zero point 0: symmetric), a uint8 embedding
  1 byte per entry plus a float32 scale and offset per row, every other parameter and persistent buffer at its
  dtype; split into embeddings (nn.Embedding modules, quantized or not) and the body. `file_bytes`: the size of
  torch.save(state_dict) (torch's own layout: per-channel scales as float64, zero points as int64, pickle).
"""

from __future__ import annotations

import copy
import io
import math
import warnings

import torch
from torch import nn

from qlife.methods import tensornet as tn


class LowRankServe(nn.Module):
    """A truncated-SVD layer as two Linears: x -> A x (rank) -> B (A x) + b."""

    def __init__(self, layer: tn.LowRankLinear):
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.down = nn.Linear(layer.in_features, layer.rank, bias=False)
        self.up = nn.Linear(layer.rank, layer.out_features, bias=layer.bias is not None)
        with torch.no_grad():
            self.down.weight.copy_(layer.a)
            self.up.weight.copy_(layer.b)
            if layer.bias is not None:
                self.up.bias.copy_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class MPOServe(nn.Module):
    """An MPO layer (after its disentangler, if any) as one Linear per core, contracted site by site."""

    def __init__(self, layer: tn.TNLinear):
        super().__init__()
        mpo = layer.mpo
        self.in_modes, self.out_modes = list(mpo.in_modes), list(mpo.out_modes)
        self.in_features, self.out_features = mpo.in_features, mpo.out_features
        self.disentangler = copy.deepcopy(layer.disentangler)
        self.cores = nn.ModuleList()
        for core in mpo.cores:
            r, o, i, s = core.shape
            lin = nn.Linear(r * i, o * s, bias=False)
            with torch.no_grad():
                lin.weight.copy_(core.detach().permute(1, 3, 0, 2).reshape(o * s, r * i))
            self.cores.append(lin)
        self.shapes = [tuple(c.shape) for c in mpo.cores]
        self.bias = nn.Parameter(mpo.bias.detach().clone()) if mpo.bias is not None else None

    def site_macs(self) -> int:
        """Multiply-adds per token of the site-by-site contraction (the dense product: in x out)."""
        total, seen, rest = 0, 1, self.in_features
        for r, o, i, s in self.shapes:
            rest //= i
            total += seen * rest * (r * i) * (o * s)
            seen *= o
        return total

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        """The (out x in) matrix the stored cores represent (dequantized if quantized), times the disentangler's
        orthogonal matrix: what `materialize` serves."""
        cores = []
        for lin, (r, o, i, s) in zip(self.cores, self.shapes):
            w = lin.weight() if callable(lin.weight) else lin.weight
            w = w.dequantize() if w.is_quantized else w
            cores.append(w.reshape(o, s, r, i).permute(2, 0, 3, 1))
        mpo = tn.MPOLinear(self.in_modes, self.out_modes, [1] + [c.shape[3] for c in cores], bias=False)
        for core, c in zip(mpo.cores, cores):
            core.data.copy_(c)
        w = mpo.weight()
        return w if self.disentangler is None else w @ self.disentangler.matrix().to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        n = math.prod(lead) if lead else 1
        if self.disentangler is not None and self.disentangler.pairs:
            x = self.disentangler.apply_gates(x)
        t = x.reshape(n, 1, 1, self.in_features)  # (batch, outputs so far, bond, inputs left)
        rest = self.in_features
        for lin, (r, o, i, s) in zip(self.cores, self.shapes):
            rest //= i
            p = t.shape[1]
            t = t.reshape(n, p, r, i, rest).permute(0, 1, 4, 2, 3).reshape(n * p * rest, r * i)
            t = lin(t).reshape(n, p, rest, o, s).permute(0, 1, 3, 4, 2).reshape(n, p * o, s, rest)
        y = t.reshape(n, self.out_features)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


def materialize(model: nn.Module) -> tuple[nn.Module, dict[str, str]]:
    """The served compute form of a stored int8 model: each MPO layer whose site-by-site contraction costs more
    multiply-adds per token than the dense product is contracted once at load (its int8 cores dequantized, the
    disentangler folded in) into a dense Linear, quantized again to int8 per output channel; cheaper ones keep
    their sites. Returns (a copy, layer name -> "dense" | "sites"). Bytes are counted on the stored form."""
    out, paths = copy.deepcopy(model).eval(), {}
    for name, m in list(out.named_modules()):
        if not isinstance(m, MPOServe):
            continue
        if m.site_macs() <= m.in_features * m.out_features:
            paths[name] = "sites"
            continue
        lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(m.dense_weight())
            if m.bias is not None:
                lin.bias.copy_(m.bias)
        _set_module(out, name, quantize_int8(nn.Sequential(lin), embeddings=False)[0])
        paths[name] = "dense"
    return out, paths


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner) if owner else model, attr, module)


def servable(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with every compressed layer computing through nn.Linear modules."""
    out = copy.deepcopy(model).eval()
    for name, layer in tn.compressed_layers(out).items():
        _set_module(out, name, MPOServe(layer) if isinstance(layer, tn.TNLinear) else LowRankServe(layer))
    return out


def quantize_int8(model: nn.Module, embeddings: bool = True) -> nn.Module:
    """A copy with every nn.Linear dynamically quantized to int8 per output channel and (with `embeddings`)
    every nn.Embedding to uint8 per row; apply to `servable(model)` for compressed models."""
    from torch.ao.quantization import float_qparams_weight_only_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    spec: dict = {nn.Linear: per_channel_dynamic_qconfig}
    if embeddings:
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices (migrating to torchao)
        warnings.simplefilter("ignore")
        q = quantize_dynamic(copy.deepcopy(model).eval(), spec, inplace=False).eval()
    for name, m in list(q.named_modules()):
        if _is_qembedding(m):
            _set_module(q, name, ContiguousIndices(m))
    return q


class ContiguousIndices(nn.Module):
    """A quantized embedding fed contiguous indices (its kernel refuses a strided view, such as BERT's expanded
    token_type_ids buffer)."""

    def __init__(self, embedding: nn.Module):
        super().__init__()
        self.embedding = embedding

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embedding(indices.contiguous())


def _is_qlinear(m: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return isinstance(m, QLinear)


def _is_qembedding(m: nn.Module) -> bool:
    from torch.ao.nn.quantized import Embedding as QEmbedding

    return isinstance(m, QEmbedding)


def _own_bytes(m: nn.Module) -> int:
    """A module's own float (or integer) parameters and persistent buffers, at their dtype."""
    tensors = [p for p in m._parameters.values() if p is not None]
    tensors += [b for k, b in m._buffers.items() if b is not None and k not in m._non_persistent_buffers_set]
    return sum(t.numel() * t.element_size() for t in tensors)


def module_bytes(m: nn.Module) -> int:
    """The stored bytes of one module alone (not its children): see the module docstring."""
    if _is_qlinear(m):
        w, b = m._packed_params._weight_bias()
        return w.numel() + 4 * w.shape[0] + (b.numel() * b.element_size() if b is not None else 0)
    if _is_qembedding(m):
        w = m.weight()
        return w.numel() + 8 * w.shape[0]
    return _own_bytes(m)


def served_bytes(model: nn.Module) -> dict:
    """{"total", "embeddings", "body", "int8", "float"}: the served state's bytes (module docstring), the
    embeddings' share (every nn.Embedding, float or quantized) and the body's; `int8`: bytes in quantized
    modules (their float32 biases and scales included), `float`: the rest (LayerNorms, disentangler generators,
    an MPO layer's bias)."""
    emb = body = q = 0
    for m in model.modules():
        n = module_bytes(m)
        quantized = _is_qlinear(m) or _is_qembedding(m)
        q += n if quantized else 0
        if isinstance(m, nn.Embedding) or _is_qembedding(m):
            emb += n
        else:
            body += n
    return {"total": emb + body, "embeddings": emb, "body": body, "int8": q, "float": emb + body - q}


def file_bytes(model: nn.Module) -> int:
    """len(torch.save(model.state_dict())): the serialised state in torch's own format."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def linear_weight_bytes(model: nn.Module) -> int:
    """Float bytes of the weights of every nn.Linear (what `quantize_int8` replaces by int8)."""
    return sum(m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, nn.Linear))
