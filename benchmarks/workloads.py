"""The models and batches the benchmarks run: backbones with random weights, VL batches, train steps.

Shapes (``Shape``): the paper's VL setting is batch 8, 36 region tokens + 20 text tokens, 5 target
tokens; ``TINY`` is the test-only shape for the tiny presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from transformers import AutoModelForSeq2SeqLM

import vlsurgery
from vlsurgery.profiles import preset_config
from vlsurgery.resources import spec_library

from benchmarks.references import build_floor, build_reference, floor_inputs, reference_inputs


@dataclass(frozen=True)
class Shape:
    batch: int = 8
    regions: int = 36
    text: int = 20
    targets: int = 5

    def text_form(self) -> str:
        return f"batch {self.batch} x ({self.regions} regions + {self.text} text), {self.targets} targets"


PAPER = Shape()
TINY = Shape(batch=2, regions=4, text=6, targets=3)

#: preset -> the family whose paper specs apply to it
FAMILY = {"bart-base": "bart-base", "t5-base": "t5-base", "tiny-bart": "bart-base", "tiny-t5": "t5-base"}


def vl_pet_large(backbone: str):
    return spec_library() / "paper" / FAMILY[backbone] / "vl-pet-large.vls"


def fresh(backbone: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """A preset backbone with random weights (config keys overridable), in train mode."""
    config = preset_config(backbone)
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(config).train()


def vl_batch(model, shape: Shape, seed: int = 1, feat_dim: int = 2048) -> dict:
    """Keyword inputs of the compiled model: text, labels and visual regions (5-number boxes)."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (shape.batch, shape.text), generator=g)
    lo = torch.rand(shape.batch, shape.regions, 2, generator=g) * 0.5
    hi = lo + 0.1 + torch.rand(shape.batch, shape.regions, 2, generator=g) * 0.4
    area = ((hi[..., 0] - lo[..., 0]) * (hi[..., 1] - lo[..., 1])).unsqueeze(-1)
    boxes = torch.cat([torch.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], dim=-1), area], dim=-1)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                labels=torch.randint(3, vocab, (shape.batch, shape.targets), generator=g),
                vis_feats=torch.randn(shape.batch, shape.regions, feat_dim, generator=g), vis_boxes=boxes,
                vis_image_ids=torch.zeros(shape.batch, shape.regions, dtype=torch.long))


def randomize_up_(model, seed: int = 7) -> None:
    """Give every zero-initialised weight of the added modules random values (so that the
    equality checks see every part of every formula)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".pet." in f".{name}" and not p.any():
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)


@dataclass
class Variants:
    """The four models of the step benchmark, with equal weights, and the batch."""

    compiled: torch.nn.Module
    fused: torch.nn.Module
    paper: torch.nn.Module
    floor: torch.nn.Module
    batch: dict


def build_variants(backbone: str, shape: Shape, seed: int = 0) -> Variants:
    compiled = vlsurgery.compile(str(vl_pet_large(backbone)), fresh(backbone, seed), seed=seed).train()
    randomize_up_(compiled)
    return Variants(compiled, build_reference(compiled, "fused"), build_reference(compiled, "paper"),
                    build_floor(compiled), vl_batch(compiled, shape))


def trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def step_fn(model, inputs: Callable[[], dict], *, optimizer: bool = True, loss_of=None) -> Callable[[], None]:
    """One training step: forward (``inputs()`` builds the keywords, inside the step), backward,
    AdamW on the trainable parameters (none for the floor)."""
    params = trainable(model)
    opt = torch.optim.AdamW(params, lr=1e-5) if optimizer and params else None
    loss_of = loss_of or (lambda out: out.loss)

    def run():
        loss = loss_of(model(**inputs()))
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if opt is not None:
            opt.step()
    return run


def new_batch(batch: dict) -> dict:
    """``batch`` with a new attention-mask tensor, as every step of a real training loop has: the
    compiled model extends a mask once per mask *object* (vlsurgery.compiler.prefix.MaskExtension),
    so re-feeding one object would let it skip the extension that the references pay every step.
    Every variant pays the same clone."""
    return dict(batch, attention_mask=batch["attention_mask"].clone())


def variant_steps(v: Variants) -> dict[str, Callable[[], None]]:
    """name -> train step, for compiled, fused, paper and floor."""
    g = torch.Generator().manual_seed(3)
    floor_kw = floor_inputs(v.floor, v.batch, g)

    def floor_inputs_fresh():
        floor_kw["inputs_embeds"].grad = None
        return floor_kw

    return {
        "compiled": step_fn(v.compiled, lambda: new_batch(v.batch)),
        "fused": step_fn(v.fused, lambda: reference_inputs(v.fused, new_batch(v.batch))),
        "paper": step_fn(v.paper, lambda: reference_inputs(v.paper, new_batch(v.batch))),
        "floor": step_fn(v.floor, floor_inputs_fresh, optimizer=False),
    }
