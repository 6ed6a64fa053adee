"""The vlsurgery compiler: torch.fx surgery on transformer layers, installed by class change.

Architecture (one module per stage; docs/design.md explains the why)::

    compile.py      spec -> model               the whole pipeline: plan, build, rewrite, prefix,
                                                freeze, in one transaction (vlsurgery.compile)
    trace.py        layer -> TracedLayer        the cached, validated trace of one layer class
    tracer.py       layer -> fx.Graph           the fake-value torch.fx tracer; leaves chosen by
                                                a LeafPolicy
    validation.py   trace == original?          torch.equal against the original forward on
                                                random inputs (eval + train mode)
    codegen.py      graph -> source -> forward  Python source of a forward, exec'd once
    points.py       "fc2:out" -> fx.Node        dataflow points name values inside a layer graph
    rewrite.py      graph/module passes         insert_site (X, H -> pet.<name>(X, H, mask)),
                                                rewrite_projection (a site after an nn.Linear),
                                                rewrite_layer / rewrite_model (one layer / many)
    install.py      module.__class__            the one class-change mechanism: a cached runtime
                                                subclass with a new forward (layers, projection
                                                Linears, the encoder/decoder stacks)
    prefix.py       encoder/decoder             visual and prompt tokens before the text
    causal_prefix.py  decoder-only base model   the same before a causal LM's text (KV cache aware)
    placement.py    module -> dtype, device     one rule for where new modules and inputs go
    transaction.py  all or nothing              snapshot + exact restore on any exception
    budget.py       bytes before allocating     the plan's counts against the devices' free
                                                memory; allocation failures -> CompileError
    design.py       model.vls_design            the canonical spec and its sha256 on every
                                                compiled model; a second compile is refused

Every cache of the compiler (traces, runtime classes, leaf policies) is registered with
:mod:`vlsurgery.caches` under a name starting with ``compiler.``; :func:`clear_cache` empties them.

Worked example (a tiny BART; ``Adapter`` follows the site-module convention
``module(x, h, mask=None) -> h_new``)::

    >>> from vlsurgery.compiler import rewrite_layer, Insertion, Projection, generated_source
    >>> layer = model.model.encoder.layers[0]                        # doctest: +SKIP
    >>> _ = rewrite_layer(layer, 1, insertions=[                     # doctest: +SKIP
    ...     Insertion("self_attn", "self_attn:in", "self_attn:out", Adapter(32)),
    ...     Insertion("ffn", "fc1:in", "fc2:out", Adapter(32))])
    >>> print(generated_source(layer))                               # doctest: +SKIP
    def forward(self, hidden_states, attention_mask, **kwargs):
        _kwargs = kwargs
        padding_mask = vlsurgery_compiler_rewrite_padding_mask(attention_mask, hidden_states)
        self_attn = self.self_attn(hidden_states, attention_mask = attention_mask, **_kwargs);  ...
        getitem = self_attn[0];  self_attn = None
        pet_self_attn = self.pet.self_attn(hidden_states, getitem, mask = padding_mask);  getitem = None
        training = self.training
        dropout = torch.nn.functional.dropout(pet_self_attn, p = 0.1, training = training, inplace = False)
        ...
        fc2 = self.fc2(dropout_1);  dropout_1 = None
        pet_ffn = self.pet.ffn(self_attn_layer_norm, fc2, mask = padding_mask);  fc2 = padding_mask = None
        ...
    >>> [n for n, _ in layer.named_parameters() if ".pet." in "." + n]  # doctest: +SKIP
    ['pet.self_attn.down.weight', ..., 'pet.ffn.up.bias']

A projection site: ``rewrite_layer(dec_layer, 1, projections=[Projection("encoder_attn.v_proj",
"cross_attn_v", Adapter(32))])`` keeps ``encoder_attn.v_proj.weight`` and adds
``pet.cross_attn_v.*``.  Leaf policies: ``1`` for BART layers (direct children), ``3`` for T5
blocks (``layer.<i>.<child>``), or a predicate.  Every error is a :class:`CompileError` naming the
class, pass or site that failed; the model is left as it was.
"""

from vlsurgery.compiler.design import Design, design_of
from vlsurgery.compiler.install import (
    GeneratedCode,
    format_generated_code,
    generated_code,
    generated_source,
    install_graph,
    is_rewritten,
    original_class,
    restore_layer,
)
from vlsurgery.compiler.points import describe_points, parse_point, resolve_point
from vlsurgery.compiler.rewrite import (
    Insertion,
    LayerEdit,
    Projection,
    attach_projection,
    insert_site,
    padding_mask,
    rewrite_layer,
    rewrite_model,
    rewrite_projection,
)
from vlsurgery.compiler.trace import LeafPolicy, TracedLayer, cache_info, clear_cache, leaf_paths, trace_layer
from vlsurgery.compiler.transaction import Snapshot, transaction

__all__ = [
    "Design", "GeneratedCode", "Insertion", "LayerEdit", "LeafPolicy", "Projection", "Snapshot", "TracedLayer",
    "attach_projection", "cache_info", "clear_cache", "describe_points", "design_of", "format_generated_code", "generated_code",
    "generated_source", "insert_site", "install_graph", "is_rewritten", "leaf_paths", "original_class",
    "padding_mask", "parse_point", "resolve_point", "restore_layer", "rewrite_layer", "rewrite_model",
    "rewrite_projection", "trace_layer", "transaction",
]
