"""The decoder-input pass of decoder-only models: prefix tokens before the text of a causal LM.

A decoder-only model (LLaMA layout) has one stack, and its input is the text being generated, so
the prefix tokens (``[visual tokens][prompt tokens]``, the same :class:`PrefixTokens` as the
encoder-decoder pass of :mod:`vlsurgery.compiler.prefix`) go before the text at the *decoder's*
input.  The base model holding the token embedding and the layers (the profile's decoder root:
``model`` in ``LlamaForCausalLM``, ``transformer`` in GPT-2; LLaVA gets no prefix pass) is changed
by class change (:mod:`vlsurgery.compiler.install`); its new ``forward``:

* on a call whose cache is empty (training, the first step of ``generate``, every step of
  ``generate(use_cache=False)``): embeds the text itself, prepends the prefix tokens, so the
  layers see ``P + N`` positions and the cache stores the prefix's keys and values;
* on every call: extends a 2-D ``attention_mask`` that is shorter than cache + input by ones on
  the left (prefix tokens are never padding), and shifts given ``position_ids`` by the same
  count, so the prefix takes positions ``0..P-1`` and the text follows (as without the prefix,
  left padding keeps its positions: ``generate`` computes them from the mask it knows);
* returns the hidden states of the text positions only (``last_hidden_state``; the per-layer
  ``hidden_states`` of ``output_hidden_states=True`` keep the prefix positions): the causal LM head
  then gives logits of the input's own length, so ``labels`` line up and ``generate`` reads the
  last position.

Later steps of ``generate`` with the cache see only the new token: the prefix is in the cache,
its keyword arguments (``vis_feats``) are ignored there.  The first call records the prefix
length on the cache (``vls_prefix_length``): without a 2-D mask (``generate`` drops an all-ones
one) that is how later steps shift their ``position_ids``.  Hence greedy and beam ``generate()``
give the same tokens with and without the cache.

``generate`` accepts only keywords named by the outer model's ``forward`` (``LlamaForCausalLM``,
``GPT2LMHeadModel``), whose ``**kwargs`` then carry them to this base model.  So a design with a
projector also changes the outer model's class (:func:`install_visual_keywords`): its forward is
the Hugging Face one, its signature that one's plus ``vis_feats``, ``vis_boxes`` and
``vis_image_ids``; ``generate`` then takes them, expands them for beam search (every tensor
keyword is) and passes them on every step.  The ``save_pretrained`` class of
:mod:`vlsurgery.checkpoint.hf` is a layer on top of it (``runtime_class(..., over=True)``), taken
off first; :func:`remove_causal_prefix` with the outer model undoes both changes of this pass.
Without a projector the outer class is left alone.

The prefix takes room: a call whose prefix and text do not fit the model's learned position
table (GPT-2's ``wpe``: text is limited to ``n_positions - P`` tokens) or a fixed-size cache
(``generate(cache_implementation="static")`` sizes it without the prefix) is refused with a
UsageError before the layers run, not left to an IndexError inside transformers.  GPT-2's
``token_type_ids`` get ``P`` zeros on the left (the prefix is of type 0).

A 4-D attention mask is passed through as given: it must already cover the prefix.  Without a
projector, visual inputs are refused (the model's ``**kwargs`` would otherwise swallow them);
without a projector and a prompt the forward is the original one.

Why the prompt is never re-prepended: the cache is empty exactly when no earlier call of this
generation ran (``cache.get_seq_length() == 0``), whatever the caller.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from vlsurgery.compiler.install import is_rewritten, original_class, previous_class, runtime_class, swap_class
from vlsurgery.compiler.prefix import PREFIX_ATTR, VISUAL_KWARGS, PrefixTokens
from vlsurgery.errors import CompileError, UsageError

#: The cache keyword of transformers 5 base models (and output field), and its name before the rename.
_CACHE_KWARGS = ("cache", "past_key_values")
#: The attribute a cache gets on its first call: how many prefix tokens went before the text.
_PREFIX_LENGTH = "vls_prefix_length"


def _cache_in(mapping) -> object | None:
    """The cache among the keywords or in the output, under either name.  Looked up in ``keys()``:
    a model output's ``get`` and ``in`` translate the old name, with transformers' deprecation warning
    (a tuple output, ``return_dict=False``, has no keys and no cache to find)."""
    keys = mapping.keys() if hasattr(mapping, "keys") else ()
    return next((mapping[k] for k in _CACHE_KWARGS if k in keys and mapping[k] is not None), None)


def _position_limit(root: nn.Module) -> int | None:
    """How many positions ``root``'s learned absolute position table has (GPT-2's ``wpe``): a child
    embedding, not the token embedding, of ``config.max_position_embeddings`` rows; None for models
    without one (LLaMA's rotary positions have no table, hence no limit of this kind)."""
    limit = getattr(getattr(root, "config", None), "max_position_embeddings", None)
    token = root.get_input_embeddings()
    tables = (m for m in root.children() if isinstance(m, nn.Embedding) and m is not token)
    return limit if any(m.num_embeddings == limit for m in tables) else None


def _fixed_length(cache) -> int | None:
    """The most positions ``cache`` can hold when it has a fixed size (a static cache); None when it
    grows (dynamic) or rolls over (sliding window layers)."""
    sizes = [layer.get_max_length() for layer in getattr(cache, "layers", ())
             if not getattr(layer, "is_sliding", False) and callable(getattr(layer, "get_max_length", None))]
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else None


def _check_room(root: nn.Module, cache, cached: int, length: int, prefix: int) -> None:
    """Refuse, before the layers run, a call whose ``prefix`` + text positions do not fit the
    position table or a fixed-size cache (both would fail with an IndexError inside transformers)."""
    total = cached + length
    limit = _position_limit(root)
    if limit is not None and total > limit:
        raise UsageError(f"{type(root).__name__} has {limit} learned positions (n_positions) and this design prepends "
                         f"{prefix} prefix tokens: text is limited to n_positions - {prefix} = {limit - prefix} tokens "
                         f"with this design, got {total - prefix}")
    fixed = _fixed_length(cache)
    if fixed is not None and total > fixed:
        raise UsageError(f"the static cache holds {fixed} positions, but this design prepends {prefix} prefix tokens "
                         f"to the text ({total} positions needed): use a dynamic cache (the default of generate()) "
                         f"or a static cache {prefix} tokens larger than the text and the new tokens need")


def _causal_forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                    vis_feats=None, vis_boxes=None, vis_image_ids=None, **kwargs):
    prefix_tokens = self.vls_prefix
    if prefix_tokens.empty:  # no projector, no prompt: refuse visual inputs, change nothing else
        prefix_tokens.check_visual(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
        return super(type(self), self).forward(input_ids=input_ids, attention_mask=attention_mask,
                                               position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
    if inputs_embeds is None and input_ids is not None:
        inputs_embeds = self.get_input_embeddings()(input_ids)
    prepended = 0
    cache = _cache_in(kwargs)
    cached = int(cache.get_seq_length()) if hasattr(cache, "get_seq_length") else 0
    if cached == 0 and inputs_embeds is not None:  # a fresh sequence: the prefix goes first
        prefix = prefix_tokens(inputs_embeds.shape[0], vis_feats, vis_boxes, vis_image_ids)
        if prefix is not None:
            inputs_embeds = torch.cat([prefix.to(inputs_embeds.dtype), inputs_embeds], dim=1)
            prepended = prefix.shape[1]
            if kwargs.get("token_type_ids") is not None:  # GPT-2 embeds them at every position: type 0 for the prefix
                types = kwargs["token_type_ids"]
                kwargs["token_type_ids"] = torch.cat([types.new_zeros(*types.shape[:-1], prepended), types], dim=-1)
    elif cached:  # the prefix is in the cache already: a caller may pass the visual inputs on every step
        prefix_tokens.check_visual(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
    length = inputs_embeds.shape[1] if inputs_embeds is not None else 0
    prefix_length = prepended or (getattr(cache, _PREFIX_LENGTH, 0) if cached else 0)
    if prefix_length:
        _check_room(self, cache, cached, length, prefix_length)
    missing = prepended
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
        missing = max(cached + length - attention_mask.shape[-1], 0)
        if missing:
            ones = attention_mask.new_ones(attention_mask.shape[0], missing)
            attention_mask = torch.cat([ones, attention_mask], dim=1)
    elif cached:  # no mask tells the prefix length (generate drops an all-ones mask): the first call recorded it
        missing = getattr(cache, _PREFIX_LENGTH, 0)
    if position_ids is not None and missing:
        position_ids = position_ids + missing
        if prepended:
            first = torch.arange(prepended, device=position_ids.device, dtype=position_ids.dtype)
            first = first.expand(*position_ids.shape[:-1], prepended)
            position_ids = torch.cat([first, position_ids], dim=-1)
    out = super(type(self), self).forward(input_ids=None, attention_mask=attention_mask, position_ids=position_ids,
                                          inputs_embeds=inputs_embeds, **kwargs)
    if prepended:  # the text's own positions: logits line up with labels and input_ids
        out.last_hidden_state = out.last_hidden_state[:, prepended:]
    filled = cache if cache is not None else _cache_in(out)
    if cached == 0 and filled is not None:
        setattr(filled, _PREFIX_LENGTH, prepended)
    return out


#: The readable source of the rewritten forward (also how :func:`causal_roots` recognises it).
_SOURCE = inspect.getsource(_causal_forward).replace(_causal_forward.__name__, "forward", 1)


#: The readable source of the outer model's forward ({name}: its Hugging Face class); its first
#: line is how :func:`has_visual_keywords` recognises the class.
_OUTER_SOURCE = """\
def forward(self, *args, vis_feats=None, vis_boxes=None, vis_image_ids=None, **kwargs):
    # {name}.forward with the visual inputs named in its signature, so that generate() accepts them
    # (and expands them for beam search); the decoder's base model prepends them while its cache is empty
    visual = dict(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
    return {name}.forward(self, *args, **{{k: v for k, v in visual.items() if v is not None}}, **kwargs)"""
_OUTER_HEAD = _OUTER_SOURCE.splitlines()[0]


def _outer_forward(original: type):
    """The forward of :data:`_OUTER_SOURCE` for ``original``, its signature the original's plus the
    visual keywords (``generate`` and the Trainer read the signature: ``logits_to_keep``, ``cache``,
    ``**kwargs`` must stay visible)."""
    signature = inspect.signature(original.forward)
    params = list(signature.parameters.values())
    if not params or params[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        raise UsageError(f"{original.__name__}.forward takes no **kwargs: visual inputs could not reach its decoder")
    named = {p.name for p in params}
    visual = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None)
              for key in VISUAL_KWARGS if key not in named]

    def forward(self, *args, vis_feats=None, vis_boxes=None, vis_image_ids=None, **kwargs):
        given = {k: v for k, v in zip(VISUAL_KWARGS, (vis_feats, vis_boxes, vis_image_ids)) if v is not None}
        # the Hugging Face class's forward, never type(self)'s: a save_pretrained layer may sit on top
        return original_class(self).forward(self, *args, **given, **kwargs)

    forward.__signature__ = signature.replace(parameters=params[:-1] + visual + params[-1:])
    forward.__doc__ = original.forward.__doc__
    return forward


def has_visual_keywords(model: nn.Module) -> bool:
    """Whether ``model``'s class (or a class below a layer on top of it) is the visual-keyword class."""
    return any(cls.__dict__.get("_vls_source", "").startswith(_OUTER_HEAD) for cls in type(model).__mro__)


def install_visual_keywords(outer: nn.Module) -> None:
    """Give ``outer`` (a decoder-only model with a visual projector) a forward that names the
    visual keywords (see the module docstring); with those names ``generate()`` takes them."""
    original = type(outer)
    source = _OUTER_SOURCE.format(name=original.__name__)
    swap_class(outer, runtime_class(original, source, _outer_forward(original)))


def remove_visual_keywords(outer: nn.Module) -> None:
    """Undo :func:`install_visual_keywords` (nothing to do when ``outer`` has no such class)."""
    if not has_visual_keywords(outer):
        return
    if not type(outer).__dict__.get("_vls_source", "").startswith(_OUTER_HEAD):
        raise CompileError(f"the {type(outer).__name__} has a class change on top of its visual keywords: take that "
                           "off first (vlsurgery.checkpoint.disable_save_pretrained)")
    swap_class(outer, previous_class(outer))


def decoder_root(model: nn.Module, profile) -> nn.Module:
    """The module that holds the decoder's embeddings and layers (the profile's decoder root)."""
    stack = next((s for s in profile.stacks if s.takes_prefix), None)
    if stack is None:
        raise UsageError(f"{profile.describe()}: no stack takes prefix tokens")
    return model.get_submodule(stack.root)


def install_causal_prefix(root: nn.Module, prefix: PrefixTokens, outer: nn.Module | None = None) -> None:
    """Attach ``prefix`` to the decoder's base model ``root`` (as ``vls_prefix``) and rewrite its
    forward (see the module docstring); with a projector, ``outer`` (the model ``generate`` runs
    on) gets the visual keywords in its forward's signature (:func:`install_visual_keywords`)."""
    if is_rewritten(root):
        raise UsageError("the decoder already carries prefix tokens")
    if not callable(getattr(root, "get_input_embeddings", None)) or root.get_input_embeddings() is None:
        raise UsageError(f"{type(root).__name__} has no input embedding: vlsurgery cannot prepend tokens to its input")
    root.add_module(PREFIX_ATTR, prefix)
    swap_class(root, runtime_class(type(root), _SOURCE, _causal_forward))
    if prefix.projector is not None and outer is not None and outer is not root:
        install_visual_keywords(outer)


def causal_roots(model: nn.Module) -> list[nn.Module]:
    """Every base model of ``model`` that carries prefix tokens of this pass."""
    return [m for m in model.modules() if is_rewritten(m) and getattr(type(m), "_vls_source", None) == _SOURCE]


def remove_causal_prefix(root: nn.Module, outer: nn.Module | None = None) -> None:
    """Undo :func:`install_causal_prefix`: the base model back to its class, no prefix tokens, and
    ``outer`` (when given) without the visual keywords (:func:`remove_visual_keywords`)."""
    if outer is not None:
        remove_visual_keywords(outer)
    root._modules.pop(PREFIX_ATTR, None)
    if is_rewritten(root):
        swap_class(root, original_class(root))


__all__ = ["causal_roots", "decoder_root", "has_visual_keywords", "install_causal_prefix", "install_visual_keywords",
           "remove_causal_prefix", "remove_visual_keywords"]
