"""The method registry: one :class:`MethodEntry` per DSL method name, for the planner and compiler.

An entry knows its hyperparameter class and site kinds (from :data:`params.METHOD_PARAMS`) and four
functions of ``(hp, dims)``:

``finalize(hp, dims) -> (hp, problems)``
    fills site-derived values (``r = d_src // reduction``, ``gate_r = r``), folds the older init
    spellings onto the ``init_<part>`` keys and returns every problem as ``(key, message)``; see
    :mod:`vlsurgery.methods.finalize`.  Never raises for a bad design (only for hp of the wrong
    class); idempotent.
``count(hp, dims) -> int``
    trainable parameters of ``build(hp, dims)`` without building anything, tensors of ``shared``
    excluded: ``count == sum(p.numel() for p in build(hp, dims).parameters()) - sum(shared.values())``.
``shared(hp, dims) -> {key: numel}``
    tensors shared by every site that uses them (Compacter's rule A), counted once per model.
``build(hp, dims, **context) -> nn.Module``
    the site module.  ``context``: ``shared_params`` (an ``nn.ParameterDict`` owned by the model,
    where shared tensors are found or created under the keys of ``shared``), ``token_embedding``
    (the backbone's, for ``prompt init=vocab``), ``backbone_init`` (a
    :class:`~vlsurgery.methods.initializers.BackboneInit`, for ``init_<part>=backbone``), ``dtype`` and
    ``device`` (applied after building;
    initialisation always runs in float32 on CPU, so a seed gives the same weights everywhere).

``count``, ``shared`` and ``build`` finalise ``hp`` themselves and raise :class:`UsageError` when
problems remain; ``hp=None`` means the method's defaults.

An entry also declares what the compiler must hand its modules (the compiler never names a method):

``context``
    the build context it takes besides ``dtype``/``device``: ``token_embedding`` (prompt),
    ``shared_params`` (compacter).  ``context_for(hp)`` adds ``backbone_init`` when a part of the
    site starts from the backbone's initialiser; the compiler passes exactly ``context_for(hp)``.
``needs_mask(hp) -> bool``
    whether its sublayer sites get the padding mask: exactly for the scalar (``small``) gate with
    ``gate_pool=tokens``, the only module that averages over real tokens (docs/design.md, "The
    padding mask rule"); with ``gate_pool=all`` it averages over every position, as the reference.
``trains(name) -> bool``
    whether the parameter ``name`` (relative to the built module) trains; default :func:`train_all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from vlsurgery.errors import UsageError, VLSurgeryError, did_you_mean
from vlsurgery.methods import params as P
from vlsurgery.methods.counts import bottleneck_count, gate_count, phm_count, phm_rule_key, projector_count
from vlsurgery.methods.finalize import (canonical, finalize_adapter, finalize_compacter, finalize_gate,
                                        finalize_lora, finalize_plain, src_width)

# The modules (and torch) are imported inside the build functions: planning and counting a design
# (`vlsurgery count`) never needs them, and importing torch costs seconds.

Problems = list[tuple[str, str]]

#: Keyword arguments ``build`` accepts; an entry's ``context`` declares some of the first two;
#: ``backbone_init`` goes to the sites whose hyperparameters say ``init_<part>=backbone``.
CONTEXT_KEYS = frozenset({"shared_params", "token_embedding", "backbone_init", "dtype", "device"})


def train_all(name: str) -> bool:
    """The default ``MethodEntry.trains``: every parameter of the module trains."""
    return True


def never_masked(hp) -> bool:
    """The default ``MethodEntry.needs_mask``: the module does not look at the padding mask."""
    return False


@dataclass(frozen=True)
class SiteDims:
    """Widths at a site: d_in of its input X, d_out of its output H (equal for sublayers and inputs)."""

    d_in: int
    d_out: int

    def __post_init__(self):
        for name in ("d_in", "d_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"SiteDims.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class MethodEntry:
    """A PET method: its hyperparameters, where it may go, how to count and build it, what it needs."""

    name: str
    params: type
    sites: tuple[str, ...]
    finalize: Callable[[Any, SiteDims], tuple[Any, Problems]]
    count: Callable[[Any, SiteDims], int]
    shared: Callable[[Any, SiteDims], dict[str, int]]
    build: Callable[..., Any]  # -> nn.Module
    context: tuple[str, ...] = ()
    needs_mask: Callable[[Any], bool] = never_masked
    trains: Callable[[str], bool] = train_all

    def context_for(self, hp) -> tuple[str, ...]:
        """The build context a site with ``hp`` takes: ``context``, plus ``backbone_init`` when some
        part starts from the backbone's initialiser (``init_up=backbone``, ...)."""
        return self.context + (("backbone_init",) if P.uses_backbone_init(hp) else ())


class UnknownMethodError(VLSurgeryError, LookupError):
    """A method name that is not in the registry."""

    def __init__(self, name: str, choices):
        self.name, self.choices = name, tuple(sorted(choices))
        hint = did_you_mean(name, self.choices)
        super().__init__(f"unknown PET method {name!r}; expected one of: {', '.join(self.choices)}"
                         + (f"; {hint}" if hint else ""))


def _scalar_gate(hp) -> bool:  # the only gate that averages over tokens; with gate_pool=all, over every position
    return hp.granularity == "scalar" and hp.gate_pool == "tokens"


# --------------------------------------------------------------------------------------------
# count / shared / build on finalised hyperparameters


def _gate_count(hp, dims):
    return gate_count(hp.granularity, dims.d_in, dims.d_out, hp.gate_r)


def _gate(hp, dims, backbone):
    from vlsurgery.methods.gates import make_gate

    return make_gate(hp.granularity, dims.d_in, dims.d_out, hp.gate_r, pool=hp.gate_pool, init=hp.init_gate,
                     init_down=hp.init_gate_down, backbone=backbone)


def _count_adapter(hp, dims):
    return bottleneck_count(src_width(hp, dims), hp.r, dims.d_out) + _gate_count(hp, dims)


def _build_adapter(hp, dims, backbone_init=None):
    from vlsurgery.methods.bottleneck import Bottleneck
    from vlsurgery.methods.vlpet import VLPET

    delta = Bottleneck(src_width(hp, dims), hp.r, dims.d_out, heads=hp.heads, activation=hp.activation,
                       placement=hp.placement, init_down=hp.init_down, init_up=hp.init_up, backbone=backbone_init)
    return VLPET(delta, _gate(hp, dims, backbone_init), hp.scale)


def _count_lite(hp, dims):
    return bottleneck_count(dims.d_in, hp.r, dims.d_out)


def _build_lite(hp, dims, backbone_init=None):
    from vlsurgery.methods.bottleneck import Bottleneck
    from vlsurgery.methods.vlpet import VLPET

    return VLPET(Bottleneck(dims.d_in, hp.r, dims.d_out, activation=hp.activation, placement="parallel",
                            init_down=hp.init_down, init_up=hp.init_up, backbone=backbone_init))


def _count_compacter(hp, dims):
    d_src, k = src_width(hp, dims), hp.phm_rank
    rules = 0 if hp.shared else 2 * hp.n ** 3
    return phm_count(d_src, hp.r, hp.n, k) + phm_count(hp.r, dims.d_out, hp.n, k) + rules + _gate_count(hp, dims)


def _shared_compacter(hp, dims):
    return {phm_rule_key(hp.n): hp.n ** 3} if hp.shared else {}


def _build_compacter(hp, dims, shared_params=None, backbone_init=None):
    from torch import nn

    from vlsurgery.methods.compacter import PHMBottleneck, shared_phm_rule
    from vlsurgery.methods.vlpet import VLPET

    rule = None
    if hp.shared:
        rule = shared_phm_rule(shared_params if shared_params is not None else nn.ParameterDict(), hp.n)
    delta = PHMBottleneck(src_width(hp, dims), hp.r, dims.d_out, n=hp.n, phm_rank=hp.phm_rank, rule=rule,
                          activation=hp.activation, placement=hp.placement, init_down=hp.init_down,
                          init_up=hp.init_up)
    return VLPET(delta, _gate(hp, dims, backbone_init), hp.scale)


def _build_lora(hp, dims, backbone_init=None):
    from vlsurgery.methods.lora import LoRA
    from vlsurgery.methods.vlpet import VLPET

    delta = LoRA(dims.d_in, dims.d_out, hp.r, alpha=hp.alpha, dropout=hp.dropout, init_A=hp.init_A,
                 init_B=hp.init_B, backbone=backbone_init)
    return VLPET(delta, _gate(hp, dims, backbone_init), hp.scale)


def _build_prompt(hp, dims, token_embedding=None):
    from vlsurgery.methods.prompt import Prompt

    prompt = Prompt(hp.length, dims.d_out)
    if hp.init == "vocab":
        if token_embedding is None:
            raise UsageError("prompt init=vocab needs the backbone's token embedding: "
                             "build(hp, dims, token_embedding=...), or use init=normal")
        prompt.init_from_vocab_(token_embedding)
    return prompt


def _build_ia3(hp, dims):
    from vlsurgery.methods.ia3 import IA3

    return IA3(dims.d_out, hp.init)


def _build_gate(hp, dims, backbone_init=None):
    from vlsurgery.methods.vlpet import VLPET

    return VLPET(None, _gate(hp, dims, backbone_init), hp.scale)


def _build_none(hp, dims):
    from vlsurgery.methods.vlpet import NoOp

    return NoOp()


def _no_shared(hp, dims):
    return {}


# --------------------------------------------------------------------------------------------
# the table


def _checked(name, finalize):
    """Finalise hp (None: defaults) and refuse a design with problems."""

    def run(hp, dims: SiteDims):
        hp, problems = finalize(hp, dims)  # the entry's finalize: canonical values first
        if problems:
            details = "; ".join(f"{key}: {msg}" for key, msg in problems)
            raise UsageError(f"{name} at a site with d_in={dims.d_in}, d_out={dims.d_out}: {details}")
        return hp

    return run


def _entry(name, finalize, count, build, shared=_no_shared, context=(), needs_mask=never_masked,
           trains=train_all) -> MethodEntry:
    params_cls, sites = P.METHOD_PARAMS[name]
    if not set(context) <= {"shared_params", "token_embedding"}:  # a programming error, caught at import
        raise RuntimeError(f"{name}: context {sorted(context)}: only shared_params, token_embedding")

    def finalize_entry(hp, dims):
        hp = params_cls() if hp is None else hp
        if not isinstance(hp, params_cls):
            raise UsageError(f"method {name!r} takes {params_cls.__name__}, got {type(hp).__name__}")
        hp, problems = canonical(hp)
        if problems:  # values of the wrong type or out of range: the site rules cannot run on them
            return hp, problems
        return finalize(hp, dims)

    ready = _checked(name, finalize_entry)

    def build_entry(hp, dims, **ctx):
        unknown = set(ctx) - CONTEXT_KEYS
        if unknown:
            raise UsageError(f"build() got unknown context {', '.join(sorted(unknown))}; "
                             f"expected some of {', '.join(sorted(CONTEXT_KEYS))}")
        hp = ready(hp, dims)
        wanted = set(context) | ({"backbone_init"} if P.uses_backbone_init(hp) else set())
        module = build(hp, dims, **{k: v for k, v in ctx.items() if k in wanted})
        if ctx.get("device") is not None or ctx.get("dtype") is not None:
            module.to(device=ctx.get("device"), dtype=ctx.get("dtype"))
        return module

    def needs_mask_entry(hp):  # on canonical values: aliases such as small -> scalar
        return bool(needs_mask(canonical(params_cls() if hp is None else hp)[0]))

    return MethodEntry(
        name=name, params=params_cls, sites=sites, finalize=finalize_entry,
        count=lambda hp, dims: count(ready(hp, dims), dims),
        shared=lambda hp, dims: shared(ready(hp, dims), dims),
        build=build_entry, context=tuple(context), needs_mask=needs_mask_entry, trains=trains,
    )


REGISTRY: dict[str, MethodEntry] = {
    e.name: e for e in (
        _entry("adapter", finalize_adapter, _count_adapter, _build_adapter, needs_mask=_scalar_gate),
        _entry("lite", finalize_plain, _count_lite, _build_lite),
        _entry("compacter", finalize_compacter, _count_compacter, _build_compacter, _shared_compacter,
               context=("shared_params",), needs_mask=_scalar_gate),
        _entry("lora", finalize_lora, lambda hp, d: hp.r * (d.d_in + d.d_out) + _gate_count(hp, d), _build_lora,
               needs_mask=_scalar_gate),
        _entry("ia3", finalize_plain, lambda hp, d: d.d_out, _build_ia3),
        _entry("gate", finalize_gate, _gate_count, _build_gate, needs_mask=_scalar_gate),
        _entry("prompt", finalize_plain, lambda hp, d: hp.length * d.d_out, _build_prompt,
               context=("token_embedding",)),
        _entry("none", finalize_plain, lambda hp, d: 0, _build_none),
    )
}

if set(REGISTRY) != set(P.METHOD_PARAMS):  # a programming error, caught at import
    raise RuntimeError(f"registry and params.METHOD_PARAMS disagree: {sorted(set(REGISTRY) ^ set(P.METHOD_PARAMS))}")


def get(name: str) -> MethodEntry:
    """The entry of a method name; :class:`UnknownMethodError` (with a did-you-mean) otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(str(name), REGISTRY) from None


def count_projector(params: P.ProjectorParams | None, d: int, norm="layernorm") -> int:
    """Trainable parameters of the visual projector (the shared token embedding excluded)."""
    return projector_count(params or P.ProjectorParams(), d, norm)


def build_projector(params: P.ProjectorParams | None, d: int, token_embedding, *, norm="layernorm",
                    obj_order: str = "reverse", backbone_init=None):
    """The visual projector; see :class:`~vlsurgery.methods.projector.VisualProjector`.  ``backbone_init``
    (a :class:`~vlsurgery.methods.initializers.BackboneInit`) serves its ``init_<part>=backbone`` keys."""
    from vlsurgery.methods.projector import VisualProjector

    return VisualProjector(d, params or P.ProjectorParams(), token_embedding, norm=norm, obj_order=obj_order,
                           backbone=backbone_init)


__all__ = ["CONTEXT_KEYS", "MethodEntry", "REGISTRY", "SiteDims", "UnknownMethodError", "build_projector",
           "count_projector", "get", "never_masked", "train_all"]
