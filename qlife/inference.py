"""The teacher's CPU inference, one way for every stage that embeds texts with it (`inference:` in params.yaml;
`qlife.models.load_encoder(name, pooling, runtime, precision)`, then `qlife.models.encode_texts` as usual).

- runtime torch, precision float32: the Hugging Face model as loaded (the default).
- runtime torch, precision int8: `torch.ao.quantization.quantize_dynamic` of every nn.Linear (int8 weights per output
  channel, activations quantized per batch on the fly; fbgemm / x86 kernels).
- runtime onnxruntime: the model exported once with torch.onnx (TorchScript exporter, opset 17) to a graph whose
  outputs are the last hidden state (and a classifier's logits), run by ONNX Runtime's CPU provider with its graph
  optimisations (fused attention, GELU, skip-LayerNorm). precision int8: that graph through
  `onnxruntime.quantization.quantize_dynamic` (int8 weights per output channel, uint8 activations per batch,
  MatMulInteger), the embeddings left in float32. `OrtModel` stands in for the Hugging Face model: the same call
  and the outputs `encode_texts` reads (`hidden_states[-1]`, `logits`), as torch tensors.

The exported graphs are cached on disk (`cache_dir()`: $QLIFE_CACHE_DIR, else $XDG_CACHE_HOME/qlife, else
~/.cache/qlife; outside the repository: no git or DVC output) under a key of the model's weights and config (a
content hash: a fine-tuned or pruned model is another key), the runtime settings and the library versions, so a
second run loads the graph instead of exporting it. A cached file is a memo of its key, never an input of its own.
bench/embedders.py measures the speed and the quality cost of each setting against torch float32.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

RUNTIMES = ("torch", "onnxruntime")
PRECISIONS = ("float32", "int8")
OPSET = 17
CACHE_VERSION = 1  # bump when the export or the quantization settings below change


def cache_dir(kind: str) -> Path:
    """$QLIFE_CACHE_DIR/<kind>, else $XDG_CACHE_HOME/qlife/<kind>, else ~/.cache/qlife/<kind>."""
    root = os.environ.get("QLIFE_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qlife"
    return Path(root) / kind


def model_fingerprint(model) -> str:
    """A content hash of a loaded model: its config and every parameter and buffer, bit for bit."""
    h = hashlib.blake2b(digest_size=16)
    h.update(model.config.to_json_string(use_diff=False).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def files_fingerprint(path: str | Path) -> str:
    """A content hash of a model folder's config, weight and tokenizer files (no model loaded); a name that is no
    local folder (a hub id) hashes as its name."""
    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if not p.is_dir():
        h.update(f"name:{path}".encode())
        return h.hexdigest()
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model")):
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


def served_config(how) -> dict:
    """What a served model's config (qlife.serving, `model_config`) holds of params `inference:` (a mapping of
    runtime, precision): {"inference": {...}} where it is not torch float32, else nothing (the model as loaded)."""
    if not how or (how.get("runtime"), how.get("precision")) == ("torch", "float32"):
        return {}
    return {"inference": {"runtime": how["runtime"], "precision": how["precision"]}}


def accelerate(model, runtime: str = "torch", precision: str = "float32", threads: int | None = None):
    """The model to run for (runtime, precision): itself (torch float32), a dynamically quantized copy (torch
    int8) or an `OrtModel` of its exported (and quantized) graph. `threads`: ONNX Runtime's intra-op threads
    (None: torch's current count, which qlife.parallel sets per worker)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown inference runtime {runtime!r}; known: {list(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown inference precision {precision!r}; known: {list(PRECISIONS)}")
    model.eval()
    if runtime == "torch":
        return model if precision == "float32" else quantize_torch(model)
    path = onnx_graph(model, precision)
    return OrtModel(path, model, threads or torch.get_num_threads(), precision)


def quantize_torch(model):
    """A copy of `model` with every nn.Linear dynamically quantized to int8 (per output channel)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices (migrating to torchao)
        warnings.simplefilter("ignore")
        q = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=False)
    q.qlife_inference = {"runtime": "torch", "precision": "int8"}
    q.n_parameters = int(sum(p.numel() for p in model.parameters()))  # packed int8 weights are no parameters
    return q.eval()


def _has_head(model) -> bool:
    return hasattr(model, "num_labels") and hasattr(model, "base_model") and model.base_model is not model


def _input_names(model) -> list[str]:
    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


class _Graph(torch.nn.Module):
    """What the exported graph computes: the last hidden state, and a classifier's logits."""

    def __init__(self, model, names: list[str], head: bool):
        super().__init__()
        self.model, self.names, self.head = model, names, head

    def forward(self, *inputs):
        out = self.model(**dict(zip(self.names, inputs)), output_hidden_states=True)
        return (out.hidden_states[-1], out.logits) if self.head else (out.hidden_states[-1],)


def onnx_graph(model, precision: str) -> Path:
    """The cached ONNX file of `model` at `precision` (exported, and quantized for int8, on first use)."""
    import onnxruntime

    names, head = _input_names(model), _has_head(model)
    key = hashlib.blake2b(json.dumps({
        "model": model_fingerprint(model), "precision": precision, "inputs": names, "head": head, "opset": OPSET,
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "version": CACHE_VERSION,
    }, sort_keys=True).encode(), digest_size=16).hexdigest()
    folder = cache_dir("onnx") / key
    path = folder / "model.onnx"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # written beside, renamed in: concurrent workers are safe
        src = Path(tmp) / "float32.onnx"
        export_onnx(model, src, names, head)
        if precision == "int8":
            dst = Path(tmp) / "int8.onnx"
            quantize_onnx(src, dst)
            src = dst
        os.replace(src, path)
    return path


def export_onnx(model, path: Path, names: list[str], head: bool) -> None:
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    g = torch.Generator().manual_seed(0)
    dummy = {"input_ids": torch.randint(5, min(vocab, 1000), (2, 8), generator=g),
             "attention_mask": torch.ones(2, 8, dtype=torch.long),
             "token_type_ids": torch.zeros(2, 8, dtype=torch.long)}
    outputs = ["hidden", "logits"] if head else ["hidden"]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    if head:
        axes["logits"] = {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.no_grad():  # the TorchScript exporter's deprecation and trace notices
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(model, names, head), tuple(dummy[n] for n in names), str(path), dynamo=False,
                              opset_version=OPSET, input_names=names, output_names=outputs, dynamic_axes=axes)
    except Exception as err:  # an architecture the exporter cannot trace
        raise ValueError(f"inference.runtime onnxruntime: exporting {model.config.model_type} to ONNX failed "
                         f"({type(err).__name__}: {err}); use inference.runtime: torch") from err


def quantize_onnx(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the graph's MatMuls (weights per output channel; 8-bit, not 7-bit,
    activations: better agreement with float32 on this CPU, bench/embedders.py)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


class OrtModel:
    """An ONNX Runtime session standing in for the Hugging Face model in `qlife.models.encode_texts`."""

    def __init__(self, path: str | Path, model, threads: int, precision: str = "float32"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = model.config
        self.n_parameters = int(sum(p.numel() for p in model.parameters()))
        self.qlife_inference = {"runtime": "onnxruntime", "precision": precision}
        if _has_head(model):  # encode_texts reads the logits of a model with these two
            self.num_labels, self.base_model = model.num_labels, SimpleNamespace(config=model.config)

    def eval(self) -> OrtModel:
        return self

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, **_) -> SimpleNamespace:
        ids = np.asarray(input_ids, dtype=np.int64)
        given = {"input_ids": ids,
                 "attention_mask": np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask),
                 "token_type_ids": np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)}
        outs = self.session.run(None, {n: given[n].astype(np.int64) for n in self.inputs})
        hidden = torch.from_numpy(outs[0])
        return SimpleNamespace(last_hidden_state=hidden, hidden_states=(hidden,),
                               logits=torch.from_numpy(outs[1]) if len(outs) > 1 else None)
