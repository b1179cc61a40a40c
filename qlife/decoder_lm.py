"""Decoder language models built here: a BPE tokenizer trained on a corpus (`tokenizers`), decoder configs of the
Llama, Qwen2, Mistral and GPT-2 families at any size, and causal-LM pre-training, so that a decoder teacher
exists offline (no PyPI package ships decoder weights; real checkpoints need the hub or a local copy).

- `train_tokenizer(texts, vocab_size)`: byte-level BPE with <s>, </s>, <pad>, <unk>; a `PreTrainedTokenizerFast`
  that adds <s> in front (Llama's convention) and pads with <pad>.
- `decoder_config(arch, tokenizer, hidden, layers, heads, kv_heads, intermediate, max_positions)`.
- `save_decoder(folder, arch, texts, ...)`: a randomly initialised causal LM and its tokenizer, saved as a model
  folder `train.model` can point at (the tests' tiny configs: vocabulary ~100, hidden 32, 2 layers).
- `pretrain(folder, texts, steps, ...)`: next-token training of a saved decoder (AdamW, cosine decay, seeded).
- `python -m qlife.decoder_lm --out DIR [--arch llama] [--steps 600] [--text FILE.jsonl ...]`: all three on the
  default generated corpus plus the `text` fields of the given JSONL files (`make decoder`: SST-2 as well).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

ARCHS = ("llama", "qwen2", "mistral", "gpt2")
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def train_tokenizer(texts: Sequence[str], vocab_size: int = 4096, min_frequency: int = 2):
    """Byte-level BPE trained on `texts` (vocabulary <= vocab_size, the 4 specials included; below the 256 byte
    alphabet the alphabet is limited to the corpus' characters). Adds <s> at the start of every sequence."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("cannot train a tokenizer on no texts")
    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIALS.values())
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials) + 16:  # tiny: the corpus' own characters (others: <unk>)
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos = tok.token_to_id(SPECIALS["bos_token"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=1024, padding_side="right", **SPECIALS)


def decoder_config(arch: str, tokenizer, hidden: int = 256, layers: int = 4, heads: int = 4,
                   kv_heads: int | None = None, intermediate: int | None = None, max_positions: int = 256):
    """A causal-LM config of family `arch` sized as asked, its special token ids from `tokenizer`. `kv_heads`
    (grouped-query attention: heads must be a multiple) is ignored for GPT-2 (multi-head only)."""
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    if arch not in ARCHS:
        raise ValueError(f"unknown decoder architecture {arch!r}; known: {list(ARCHS)}")
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")
    kv = kv_heads or heads
    if heads % kv:
        raise ValueError(f"heads {heads} is not a multiple of kv_heads {kv}")
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    inter = intermediate or 4 * hidden
    if arch == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_inner=inter, n_positions=max_positions,
                          **ids)
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    extra = {"sliding_window": max_positions} if arch == "mistral" else {}
    return cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
               intermediate_size=inter, max_position_embeddings=max_positions, tie_word_embeddings=True,
               **extra, **ids)


def save_decoder(folder: str | Path, arch: str, texts: Sequence[str], vocab_size: int = 4096, seed: int = 0,
                 **size) -> Path:
    """Train a tokenizer on `texts`, build a randomly initialised causal LM of family `arch` (`size`: the
    decoder_config keywords) from `seed`, save both to `folder`: a model folder `train.model` can point at."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    tokenizer = train_tokenizer(texts, vocab_size)
    config = decoder_config(arch, tokenizer, **size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _lm_batches(ids: list[list[int]], batch_size: int, context: int, pad_id: int,
                gen: torch.Generator) -> torch.Tensor:
    """Every sequence cut to `context` tokens; a random batch of them, right-padded with pad_id."""
    idx = torch.randint(len(ids), (batch_size,), generator=gen).tolist()
    rows = [ids[i][:context] for i in idx]
    out = torch.full((batch_size, max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def pretrain(folder: str | Path, texts: Sequence[str], steps: int = 600, batch_size: int = 32, context: int = 64,
             learning_rate: float = 1e-3, seed: int = 0, val_texts: Sequence[str] = (), log_every: int = 100
             ) -> dict:
    """Next-token training of the causal LM saved in `folder` on `texts` (AdamW, warmup then cosine decay,
    padding ignored in the loss); saves it back. History: loss per logged step, validation perplexity before and
    after (on `val_texts`), parameters, wall seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids, val = (encode_lm(tokenizer, ts, context) for ts in (texts, val_texts))
    if not ids:
        raise ValueError("no training text longer than one token")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.1, betas=(0.9, 0.95))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    pad = tokenizer.pad_token_id
    history = {"parameters": sum(p.numel() for p in model.parameters()), "loss": [],
               "val_perplexity_before": perplexity(model, val, pad) if val else None}
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        x = _lm_batches(ids, batch_size, context, pad, gen)
        labels = x.masked_fill(x == pad, -100)
        loss = model(input_ids=x, attention_mask=(x != pad).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            history["loss"].append([step, round(loss.item(), 4)])
            print(f"pretrain step {step + 1}/{steps} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    model.eval()
    history["wall_s"] = round(time.perf_counter() - t0, 1)
    history["val_perplexity_after"] = perplexity(model, val, pad) if val else None
    model.save_pretrained(folder)
    return history


def encode_lm(tokenizer, texts: Sequence[str], context: int) -> list[list[int]]:
    """Token ids of each text (<s> first), cut to `context`; texts of one token or less dropped."""
    if not texts:
        return []
    return [s for s in tokenizer(list(texts), truncation=True, max_length=context)["input_ids"] if len(s) > 1]


@torch.no_grad()
def perplexity(model, ids: list[list[int]], pad_id: int, batch_size: int = 64) -> float:
    """exp of the mean next-token loss over every real token of `ids`."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(ids), batch_size):
        rows = ids[i:i + batch_size]
        x = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
        for j, r in enumerate(rows):
            x[j, : len(r)] = torch.tensor(r)
        logits = model(input_ids=x, attention_mask=(x != pad_id).long()).logits[:, :-1]
        target = x[:, 1:].masked_fill(x[:, 1:] == pad_id, -100)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total += float(loss)
        count += int((target != -100).sum())
    return float(np.exp(total / max(count, 1)))


def corpus_texts(files: Sequence[str | Path] = (), n_docs: int = 3000, seed: int = 0) -> list[str]:
    """The default generated corpus (params' generator defaults) plus every `text` of the JSONL `files`."""
    from qlife.data.generator import generate_corpus

    texts = [d["text"] for d in generate_corpus(seed=seed, n_docs=n_docs).docs]
    for f in files:
        with open(f) as fh:
            texts += [t for line in fh if line.strip() and (t := json.loads(line).get("text"))]
    return texts


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Train a small decoder LM offline (tokenizer + causal LM).")
    ap.add_argument("--out", required=True, help="model folder to write (train.model can point at it)")
    ap.add_argument("--arch", default="llama", choices=ARCHS)
    ap.add_argument("--text", nargs="*", default=[], help="JSONL files whose `text` fields join the corpus")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    texts = corpus_texts(a.text)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(texts))
    val = [texts[i] for i in order[:500]]
    train = [texts[i] for i in order[500:]]
    folder = save_decoder(a.out, a.arch, train, vocab_size=a.vocab, seed=a.seed, hidden=a.hidden, layers=a.layers,
                          heads=a.heads, kv_heads=a.kv_heads, intermediate=a.intermediate, max_positions=256)
    history = pretrain(folder, train, a.steps, a.batch, a.context, seed=a.seed, val_texts=val)
    info = {"arch": a.arch, "texts": len(train), "val_texts": len(val), "files": list(a.text), **vars(a),
            **{k: v for k, v in history.items() if k != "loss"}, "loss": history["loss"]}
    (Path(folder) / "pretraining.json").write_text(json.dumps(info, indent=1))
    print(f"{a.arch}: {history['parameters']:,} parameters, {len(train):,} texts, {a.steps} steps in "
          f"{history['wall_s']:.0f} s; validation perplexity {history['val_perplexity_before']:.1f} -> "
          f"{history['val_perplexity_after']:.1f}; saved to {folder}")
    return info


if __name__ == "__main__":
    main()
