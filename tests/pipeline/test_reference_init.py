"""The paper specs start where the reference implementation starts (docs/paper.md §7), and their
small gate pools as the reference does.

Every paper design is compiled onto a tiny backbone of its family with a fixed seed; each added
parameter is then checked, tensor by tensor, against the reference's rule for that part, written
here from docs/paper.md §7 (not read from the spec): zeros are exactly zero, normal(std) samples
have mean 0 and that std within sampling error (and a normal's tails), PyTorch's Linear default is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and so on.  Samples of one role (e.g. every Down weight of the
encoder) are pooled after scaling by their expected spread, so that tiny tensors still give a
meaningful test.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pytest
import torch
from pipeline_models import fresh_model
from vl_models import vl_inputs

from vlsurgery.compiler.compile import compile
from vlsurgery.methods.gates import ScalarGate
from vlsurgery.resources import spec_library

PAPER = sorted(p.relative_to(spec_library()).as_posix() for p in (spec_library() / "paper").rglob("*.vls"))
SEED = 1234


# --------------------------------------------------------------------------------------------
# distribution families, each a check of a pooled, scaled sample


def zero(t, name):
    assert torch.count_nonzero(t) == 0, f"{name}: expected exactly zero"


def ones(t, name):
    assert torch.equal(t, torch.ones_like(t)), f"{name}: expected exactly one"


def standard_normal(sample: torch.Tensor, what: str):
    """``sample`` (already divided by its expected std) is N(0, 1): mean, std and tails."""
    n = sample.numel()
    mean, std = sample.mean().item(), sample.std().item()
    assert abs(mean) < 5 / math.sqrt(n), f"{what}: mean {mean:.4f} of {n} values is not 0"
    assert abs(std - 1) < 5 / math.sqrt(2 * n), f"{what}: std {std:.4f} (scaled) is not 1"
    if n >= 2000:  # excess kurtosis: 0 for a normal, -1.2 for a uniform
        kurtosis = ((sample - mean) ** 4).mean().item() / std ** 4 - 3
        assert abs(kurtosis) < 5 * math.sqrt(24 / n), f"{what}: excess kurtosis {kurtosis:.3f}, not a normal"


def standard_uniform(sample: torch.Tensor, what: str):
    """``sample`` (already divided by its bound) is U(-1, 1)."""
    n = sample.numel()
    assert sample.abs().max().item() <= 1 + 1e-6, f"{what}: values beyond the bound"
    mean, std = sample.mean().item(), sample.std().item()
    assert abs(mean) < 5 * (1 / math.sqrt(3)) / math.sqrt(n), f"{what}: mean {mean:.4f} is not 0"
    assert abs(std - 1 / math.sqrt(3)) < 5 * 0.3 / math.sqrt(n), f"{what}: std {std:.4f} is not 1/sqrt(3)"


# --------------------------------------------------------------------------------------------
# the reference's rules (docs/paper.md §7): parameter name -> (family, scale) or an exact check


def _fan_in_of(model, name):
    """The fan-in of the Linear a weight or bias belongs to."""
    return dict(model.named_parameters())[name.rsplit(".", 1)[0] + ".weight"].shape[-1]


def bart_rule(model, name, t):
    """VL-BART builds its added modules inside the model: BART's initialiser runs on every added
    Linear and embedding (N(0, init_std^2), biases 0); norms at 1/0; z (not a Linear) keeps its own
    N(0, 0.02^2); Compacter's PHM factors (not Linears) keep Glorot-uniform, its rule N(0, 0.01^2)."""
    std = model.config.init_std
    if name.endswith("norm.weight"):
        return "exact", ones
    if name.endswith(".bias"):  # BART's Linear biases, the norms' and Compacter's PHM biases alike
        return "exact", zero
    if name.endswith("gate.z"):
        return "normal", 0.02
    if name.endswith(".A") or "compacter_phm_rule" in name:
        return "normal", 0.01
    if name.endswith((".s", ".t")):
        return "glorot", None
    return "normal", std  # every added Linear weight and the image-order embedding


def t5_rule(spec):
    """VL-T5's run scripts (VL-PET designs): the encoder adapter's Up, the gate's value-setting part
    (small/middleX Linear, middleY z, large Up) and the lite Up start at zero; every other added
    Linear keeps PyTorch's default; the projector keeps PyTorch's defaults (img_order N(0, 1)).
    The VL-Adapter baseline keeps every default (its Up included)."""
    vl_pet = "/vl-pet" in spec

    def rule(model, name, t):
        if name.endswith("norm.weight"):
            return "exact", ones
        if name.endswith("img_order.weight"):
            return "normal", 1.0
        zeroed = vl_pet and re.search(r"\.(delta\.up|gate\.proj|gate\.up)\.(weight|bias)$|\.gate\.z$", name)
        if zeroed:
            return "exact", zero
        if name.endswith(".weight"):
            return "linear", 1 / math.sqrt(t.shape[-1])
        return "linear", 1 / math.sqrt(_fan_in_of(model, name))
    return rule


def _role(name: str) -> str:
    """Parameters that share a rule, pooled: the part inside its site (and the stack), e.g.
    ``encoder:delta.down.weight``, or the projector's ``projector.feat.weight``."""
    stack = "encoder" if ".encoder." in name else "decoder" if ".decoder." in name else "model"
    if ".pet." in name:
        return stack + ":" + name.split(".pet.", 1)[1].split(".", 1)[1]
    return stack + ":" + name.rsplit(".", 2)[-2] + "." + name.rsplit(".", 1)[-1]


def _glorot_bound(t):
    # PHM factors are (n, p, q): each slice p x q is Glorot-uniform with fan_in q, fan_out p
    return math.sqrt(6 / (t.shape[-1] + t.shape[-2]))


@pytest.mark.parametrize("spec", PAPER)
def test_paper_design_starts_like_the_reference(spec):
    backbone = "tiny-bart" if "bart-base" in spec else "tiny-t5"
    model = compile(spec_library() / spec, fresh_model(backbone), seed=SEED)
    rule = bart_rule if backbone == "tiny-bart" else t5_rule(spec)
    base = {n for n, _ in fresh_model(backbone).named_parameters()}
    pooled: dict[tuple, list] = defaultdict(list)
    added = [(n, p) for n, p in model.named_parameters() if n not in base]
    assert added, spec
    for name, t in added:
        family, scale = rule(model, name, t.detach())
        if family == "exact":
            scale(t, name)
        elif family == "glorot":
            pooled[(family, _role(name))].append((t.detach() / _glorot_bound(t)).flatten())
        else:
            pooled[(family, _role(name))].append((t.detach() / scale).flatten())
    for (family, role), parts in pooled.items():
        sample = torch.cat(parts).double()
        (standard_normal if family == "normal" else standard_uniform)(sample, f"{spec} {role} ({family})")


# --------------------------------------------------------------------------------------------
# the small gate's pooling with a padded batch


@pytest.mark.parametrize("spec", ["paper/bart-base/vl-pet-small.vls", "paper/t5-base/vl-pet-small.vls"])
def test_small_gate_pools_every_position_like_the_reference(spec):
    backbone = "tiny-bart" if "bart-base" in spec else "tiny-t5"
    model = compile(spec_library() / spec, fresh_model(backbone), seed=SEED)
    with torch.no_grad():  # random gate weights: at zero every position would give 0.5 anyway
        for module in model.modules():
            if isinstance(module, ScalarGate):
                module.proj.weight.normal_(0, 3.0)  # logits spread out: padding's share shows
                module.proj.bias.normal_(0, 1.0)
    inputs = vl_inputs(model)
    seen = []

    def record(module, args, output):
        seen.append((module, args[0], args[1], output))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ScalarGate)]
    with torch.no_grad():
        model(**inputs)
    for hook in hooks:
        hook.remove()
    encoder_calls = seen[: len(hooks)]
    assert len(hooks) > 0 and len(seen) >= len(hooks)
    regions = inputs["vis_feats"].shape[1]
    real = torch.cat([torch.ones(2, regions), inputs["attention_mask"].float()], dim=1)  # prefix + text
    padding_shifts = []
    for module, x, h, gate in encoder_calls:
        # the reference, straight-line: sigmoid of one Linear over [X ; H'], mean over every position
        w, b = module.proj.weight.detach(), module.proj.bias.detach()
        per_token = [[1 / (1 + math.exp(-(float(torch.dot(w[0], torch.cat([x[e, n], h[e, n]]))) + float(b[0]))))
                      for n in range(x.shape[1])] for e in range(x.shape[0])]
        reference = torch.tensor([sum(row) / len(row) for row in per_token])
        torch.testing.assert_close(gate.flatten(), reference.to(gate.dtype), rtol=1e-5, atol=1e-6)
        real_only = torch.tensor([sum(v * m for v, m in zip(row, real[e].tolist())) / real[e].sum().item()
                                  for e, row in enumerate(per_token)])
        assert torch.isclose(gate[0].flatten(), real_only[0].to(gate.dtype), atol=1e-6)  # no padding: the same
        padding_shifts.append(abs(gate[1].item() - real_only[1].item()))  # padded: the padding's gates count
    assert max(padding_shifts) > 1e-2, padding_shifts  # the check above tells the two poolings apart
