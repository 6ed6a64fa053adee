"""The central properties of vlsurgery as assertions (see :mod:`vlsurgery.testing`).

Each raises AssertionError with the spec's canonical text, so a failing hypothesis example reads
as a spec one can paste into a file.
"""

from __future__ import annotations

import copy


def spec_text(spec) -> str:
    """The spec as canonical DSL (indented), or its repr when it cannot be printed."""
    from vlsurgery.spec import dumps

    try:
        text = dumps(spec)
    except Exception as exc:  # a spec the printer rejects is itself worth seeing
        text = f"{spec!r}\n(dumps failed: {type(exc).__name__}: {exc})"
    return "\n".join(("    " + line).rstrip() for line in text.rstrip("\n").split("\n"))


def _fail(message: str, *specs) -> None:
    parts = [message]
    for name, spec in specs:
        parts.append(f"{name}:\n{spec_text(spec)}")
    raise AssertionError("\n".join(parts))


def _spec(spec):
    from vlsurgery.planning import load_spec

    return load_spec(spec)


# --------------------------------------------------------------------------------------------
# predicted counts == compiled counts


def _model(backbone, seed: int):
    """(model to compile, what to predict counts on, its description)."""
    import torch
    from torch import nn
    from vlsurgery.profiles import load_backbone
    from vlsurgery.profiles.backbone import auto_class

    if isinstance(backbone, nn.Module):
        return copy.deepcopy(backbone), backbone, type(backbone).__name__
    bb = load_backbone(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_class(bb.profile).from_config(bb.config)
    # predict from the config alone (arithmetic on the profile), not from the model we compare with
    return model, bb.config, f"{bb.name} ({bb.profile.describe()})"


def assert_counts_match(spec, backbone, *, seed: int = 0) -> None:
    """``vlsurgery.count`` predicts exactly what compiling gives: trainable and total parameters.

    ``backbone``: a preset name, a PretrainedConfig (a random model is built from it) or a model
    (a copy is compiled; the model itself is left alone).
    """
    from vlsurgery.compiler.compile import compile
    from vlsurgery.planning import count

    spec = _spec(spec)
    model, target, where = _model(backbone, seed)
    predicted = count(spec, target)
    try:
        compile(spec, model, seed=seed)
    except Exception as exc:
        _fail(f"the spec resolves on {where} but does not compile: {type(exc).__name__}: {exc}", ("spec", spec))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if (trainable, total) != (predicted.trainable, predicted.total):
        _fail(f"predicted counts differ from the compiled model's on {where}:\n"
              f"  trainable: predicted {predicted.trainable:,}, compiled {trainable:,} "
              f"({trainable - predicted.trainable:+,})\n"
              f"  total:     predicted {predicted.total:,}, compiled {total:,} ({total - predicted.total:+,})",
              ("spec", spec))


# --------------------------------------------------------------------------------------------
# text round trips


def _parse(text: str, fmt: str, spec, what: str):
    from vlsurgery.errors import SpecError
    from vlsurgery.spec import parse

    try:
        return parse(text, format=fmt)
    except SpecError as exc:
        _fail(f"{what} does not parse back:\n{exc.render()}\n{fmt} text:\n{text}", ("spec", spec))


def _first_difference(a, b) -> str:
    from dataclasses import fields, is_dataclass

    if is_dataclass(a) and type(a) is type(b):
        for f in fields(a):
            if f.compare and getattr(a, f.name) != getattr(b, f.name):
                return f"{f.name}: {getattr(a, f.name)!r}\n    != {getattr(b, f.name)!r}"
    return f"{a!r}\n    != {b!r}"


def assert_roundtrip(spec) -> None:
    """``parse(dumps(spec, f), format=f) == spec`` for both formats, and printing is idempotent."""
    from vlsurgery.spec import dumps

    for fmt in ("dsl", "yaml"):
        text = dumps(spec, fmt)
        back = _parse(text, fmt, spec, f"dumps(spec, {fmt!r})")
        if back != spec:
            _fail(f"parse(dumps(spec, {fmt!r})) != spec; first difference:\n  {_first_difference(back, spec)}\n"
                  f"{fmt} text:\n{text}", ("spec", spec))
        if dumps(back, fmt) != text:
            _fail(f"dumps is not idempotent in {fmt}:\n{text}\n--- then ---\n{dumps(back, fmt)}", ("spec", spec))


def assert_dsl_yaml_agree(spec, backbone=None) -> None:
    """The DSL and the YAML text of a spec read back as the same IR and, with a backbone (or the
    spec's own), resolve to the same design (an empty ``diff``)."""
    from vlsurgery.diff import diff
    from vlsurgery.spec import dumps

    dsl = _parse(dumps(spec, "dsl"), "dsl", spec, "the DSL text")
    yaml = _parse(dumps(spec, "yaml"), "yaml", spec, "the YAML text")
    if dsl != yaml:
        _fail(f"the DSL and YAML forms read back differently; first difference:\n  {_first_difference(dsl, yaml)}",
              ("spec", spec))
    if backbone is not None or spec.backbone is not None:
        d = diff(dsl, yaml, backbone)
        if not d.identical:
            _fail(f"the DSL and YAML forms resolve differently:\n{d.render()}", ("spec", spec))


# --------------------------------------------------------------------------------------------
# diff laws


def assert_diff_laws(a, b, backbone=None) -> None:
    """The laws of :func:`vlsurgery.diff`:

    - ``diff(a, a)`` and ``diff(b, b)`` are identical, with zero deltas; so is ``diff(a, text of a)``;
    - ``diff(b, a) == diff(a, b).reversed()``: added <-> removed, changes reversed, deltas negated;
    - the rows' deltas add up to the totals (trainable and total parameters);
    - identical designs have the same counts.
    """
    from vlsurgery.diff import diff
    from vlsurgery.spec import dumps, parse

    a, b = _spec(a), _spec(b)
    both = (("a", a), ("b", b))
    for name, s in both:
        same = diff(s, s, backbone)
        if not same.identical or same.trainable_delta or same.total_delta:
            _fail(f"diff({name}, {name}) is not empty:\n{same.render()}", (name, s))
        reread = diff(s, parse(dumps(s)), backbone)
        if not reread.identical:
            _fail(f"{name} and its own canonical text differ:\n{reread.render()}", (name, s))
    ab, ba = diff(a, b, backbone), diff(b, a, backbone)
    if ba != ab.reversed():
        _fail(f"diff(b, a) is not the mirror of diff(a, b)\n--- diff(a, b):\n{ab.render()}"
              f"--- diff(b, a):\n{ba.render()}", *both)
    for d in (ab, ba):
        sites = sum(c.trainable_delta for c in d.site_changes)
        trainable = sites + sum(c.trainable_delta for c in d.spec_changes)
        total = sites + sum(c.total_delta for c in d.spec_changes)
        if (trainable, total) != (d.trainable_delta, d.total_delta):
            _fail(f"the rows do not add up: trainable {trainable:+,} vs {d.trainable_delta:+,}, total {total:+,} "
                  f"vs {d.total_delta:+,}\n{d.render()}", *both)
    if ab.identical and (ab.a_count.trainable, ab.a_count.total) != (ab.b_count.trainable, ab.b_count.total):
        _fail(f"diff calls a and b identical but their counts differ\n{ab.render()}", *both)
