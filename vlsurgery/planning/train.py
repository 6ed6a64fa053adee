"""``train`` targets -> the base parameters they make trainable.

``projector`` and ``all`` are words (``projector``: vlsurgery's projector, or the model's own
``Profile.own_projector`` on LLaVA); every other target is an address ending in ``layernorm`` or
``bias`` (the rule lives in :func:`vlsurgery.spec.addresses.train_rule`).  What the part before
the ending means on a backbone:

- ``encoder.layernorm``: every norm of every layer of the stack, plus the stack's own norms
  (embedding norm, final norm) when no layers are selected;
- ``encoder.bias``: every bias under the stack (or under the selected layers);
- ``encoder.self_attn.layernorm`` / ``.bias``: the sublayer's norm / every bias of the modules it
  owns; ``decoder.cross_attn.v.bias``: the projection's bias.
"""

from __future__ import annotations

from vlsurgery.planning.problems import Problems
from vlsurgery.profiles.profile import Profile
from vlsurgery.spec.addresses import pick_layers, train_rule
from vlsurgery.spec.ir import Spec


def train_targets(spec: Spec, profile: Profile, backbone: str, issues: Problems) -> tuple[list[str], bool]:
    """(base parameter names in model order, whether the projector trains)."""
    names: set[str] = set()
    projector = False
    params = profile.parameters
    own = [n for n in params if n.startswith(f"{profile.own_projector}.")] if profile.own_projector else []
    _projector_fits(spec, profile, backbone, issues)
    for address in spec.train:
        what, problem = train_rule(address)
        if problem is not None:
            issues.add_problem(problem)
            continue
        if what == "word":
            if address.segments[0].names == ("all",):
                names.update(params)
                projector = projector or spec.projector is not None
            elif own:  # the model's own projector (LLaVA): its base parameters train
                names.update(own)
            elif spec.projector is None and not profile.roles.inputs:
                issues.add(f"train projector: {backbone} has no projector, and takes no visual tokens to add one for",
                           address.span)
            elif spec.projector is None:
                issues.add("train projector: this spec has no projector; declare one with `projector`",
                           address.span)
            else:
                projector = True
            continue
        found = _parameter_names(address, profile, backbone, issues)
        if found is None:
            continue
        if not found:
            from vlsurgery.spec.printer import address_text

            has_bias = any(n.endswith(".bias") for n in params)
            why = (f"; {profile.family} has no bias parameters"
                   if not has_bias and "bias" in (address.segments[-1].names or ()) else "")
            issues.add(f"train `{address_text(address)}` matches no parameter of {backbone}{why}", address.span)
        names.update(found)
    order = {name: i for i, name in enumerate(params)}
    return sorted(names, key=order.__getitem__), projector


def _projector_fits(spec: Spec, profile: Profile, backbone: str, issues: Problems) -> None:
    """A ``projector`` statement adds vlsurgery's visual projector in front of a stack that takes
    prefix tokens: refused on a model with its own projector, or with no such stack."""
    if spec.projector is None:
        return
    if profile.own_projector:
        issues.add(f"projector: {backbone} has its own multimodal projector ({profile.own_projector}); "
                   "train it with `train projector` instead of adding one", spec.projector.span)
    elif not profile.roles.inputs:
        issues.add(f"projector: {backbone} has no stack that takes visual tokens at its input "
                   f"({profile.family} models take none)", spec.projector.span)


def _parameter_names(address, profile: Profile, backbone: str, issues: Problems) -> list[str] | None:
    segs = address.segments
    parts, prefix = segs[-1].names, segs[:-1]
    params = profile.parameters
    out: list[str] = []
    for stack_name in prefix[0].names or profile.stack_names:
        stack = profile.stack(stack_name)
        if stack is None:
            continue
        layers, problem = pick_layers(prefix[0].layers, stack.n_layers, stack.name, backbone)
        if problem:
            issues.add(problem, address.span)
            return None
        modules = [stack.layer_module(i) for i in layers]
        selected = prefix[0].layers is not None
        for part in parts:
            if len(prefix) == 1:
                if part == "layernorm":
                    owners = [f"{m}.{sub.norm}" for m in modules for sub in stack.sublayers]
                    owners += [] if selected else list(stack.norms)
                    out += [n for o in owners for n in (f"{o}.weight", f"{o}.bias") if n in params]
                else:
                    # the stack's own norms can sit outside its root (a vision tower's pre_layrnorm)
                    roots = [f"{r}." for r in (modules if selected else [stack.root, *stack.norms])]
                    out += [n for n in params if n.endswith(".bias") and n.startswith(tuple(roots))
                            and not _unread_layer(n, stack)]
                continue
            for sub_name in prefix[1].names or stack.sublayer_names:
                sub = stack.sublayer(sub_name)
                if sub is None:
                    continue
                if len(prefix) == 2 and part == "layernorm":
                    out += [n for m in modules for n in (f"{m}.{sub.norm}.weight", f"{m}.{sub.norm}.bias")
                            if n in params]
                elif len(prefix) == 2:
                    roots = tuple(f"{m}.{o}." for m in modules for o in sub.owns)
                    out += [n for n in params if n.endswith(".bias") and n.startswith(roots)]
                elif part == "bias":
                    sliced = [r for r in prefix[2].names or () if sub.columns_of(r) is not None]
                    if sliced:  # GPT-2's q/k/v: one bias tensor holds all three, it trains whole or not at all
                        whole = next((r for r in sub.roles if sub.columns_of(r) is None
                                      and sub.linears(r) == sub.linears(sliced[0])), None)
                        issues.add(f"`{sliced[0]}` of {stack.name}.{sub.name} is a column slice of the fused "
                                   f"{sub.linears(sliced[0])[0]}, whose bias is one tensor for all its slices: "
                                   "it cannot train in part", address.span,
                                   hint=f"train {stack.name}.{sub.name}.{whole}.bias" if whole else None)
                        return None
                    out += [f"{m}.{lin}.bias" for role in (prefix[2].names or sub.roles)
                            for m in modules for lin in sub.linears(role) if f"{m}.{lin}.bias" in params]
    return list(dict.fromkeys(out))


def _unread_layer(name: str, stack) -> bool:
    """Whether ``name`` belongs to a layer past the stack's last one: LLaVA's vision tower runs
    layers whose output the model never reads (docs/llava.md); they are no part of the stack."""
    head = f"{stack.layers_path}."
    index = name[len(head):].split(".", 1)[0] if name.startswith(head) else ""
    return index.isdigit() and int(index) >= stack.n_layers
