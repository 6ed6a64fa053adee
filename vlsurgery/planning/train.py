"""``train`` targets -> the base parameters they make trainable.

``projector`` and ``all`` are words; every other target is an address ending in ``layernorm`` or
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
    for address in spec.train:
        what, problem = train_rule(address)
        if problem is not None:
            issues.add_problem(problem)
            continue
        if what == "word":
            if address.segments[0].names == ("all",):
                names.update(params)
                projector = projector or spec.projector is not None
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
                    roots = [f"{r}." for r in (modules if selected else [stack.root])]
                    out += [n for n in params if n.endswith(".bias") and n.startswith(tuple(roots))]
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
                    out += [f"{m}.{lin}.bias" for role in (prefix[2].names or sub.roles)
                            for m in modules for lin in sub.linears(role) if f"{m}.{lin}.bias" in params]
    return list(dict.fromkeys(out))
