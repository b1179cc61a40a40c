"""LoRA fine-tuning (Hu et al. 2021) through `peft`: low-rank adapters W + (alpha / r) B A on the teacher's
linear layers, the base weights frozen; merged into the weights after training, so what train saves, and deploy,
serving and the registry load, is a plain model of the original architecture.

`add_adapters(model, spec, frozen_layers)` injects adapters into the transformer layers above `frozen_layers`
(every attention and MLP projection of the architecture unless `spec.target_modules` names them) and keeps the
classification head trainable; `Adapters.merge()` folds them in and returns what was trained. Params:
`train.finetune` (auto: lora for a decoder) and `train.lora`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import nn

from qlife.classifiers import backbone, head_module


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # last components of module names; None: every projection

    @classmethod
    def from_dict(cls, d: dict) -> LoraSpec:
        kw = {f.name: d[f.name] for f in fields(cls) if d.get(f.name) is not None}
        if "target_modules" in kw:
            kw["target_modules"] = tuple(kw["target_modules"])
        return cls(**kw)


def _is_projection(m: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D  # GPT-2's transposed linear layer

    return isinstance(m, (nn.Linear, Conv1D))


def layer_projections(model: nn.Module, frozen_layers: int = 0) -> list[str]:
    """Full names of the linear projections inside the transformer layers from `frozen_layers` up."""
    _, layers = backbone(model)
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] for block in list(layers)[frozen_layers:] for m in block.modules() if _is_projection(m)]


@dataclass
class Adapters:
    """The peft wrapper of a model whose layers carry adapters; the model itself is trained and called as before."""

    peft_model: nn.Module | None  # None: every layer frozen (frozen_layers >= layers), the head alone trains
    spec: LoraSpec
    targets: list[str]
    adapter_parameters: int

    def merge(self) -> dict:
        """Fold the adapters into the weights (the model is plain again) and say what was trained."""
        if self.peft_model is not None:
            self.peft_model.merge_and_unload()
        return {"r": self.spec.r, "alpha": self.spec.alpha, "dropout": self.spec.dropout,
                "adapted_modules": len(self.targets), "adapter_parameters": self.adapter_parameters,
                "kinds": sorted({t.rsplit(".", 1)[-1] for t in self.targets})}


def add_adapters(model: nn.Module, spec: LoraSpec, frozen_layers: int = 0) -> Adapters:
    """Inject LoRA adapters into `model` in place (base weights frozen, the head trainable)."""
    from peft import LoraConfig, get_peft_model

    targets = layer_projections(model, frozen_layers)
    head = head_module(model)
    if not targets:  # every layer frozen (as full fine-tuning would freeze them): the head alone trains
        for p in model.parameters():
            p.requires_grad_(False)
        for p in (head.parameters() if head is not None else ()):
            p.requires_grad_(True)
        return Adapters(None, spec, [], 0)
    if spec.target_modules is not None:
        targets = [t for t in targets if t.rsplit(".", 1)[-1] in spec.target_modules]
    if not targets:
        raise ValueError(f"LoRA has no module to adapt: train.lora.target_modules {list(spec.target_modules)} "
                         f"names none of the layers' projections")
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
                        fan_in_fan_out=False)
    peft_model = get_peft_model(model, config)
    for p in (head.parameters() if head is not None else ()):
        p.requires_grad_(True)
    adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return Adapters(peft_model, spec, targets, adapter)
