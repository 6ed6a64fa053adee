"""The decoder-input pass of decoder-only models: prefix tokens before the text of a causal LM.

A decoder-only model (LLaMA layout) has one stack, and its input is the text being generated, so
the prefix tokens (``[visual tokens][prompt tokens]``, the same :class:`PrefixTokens` as the
encoder-decoder pass of :mod:`vlsurgery.compiler.prefix`) go before the text at the *decoder's*
input.  The base model holding the token embedding and the layers (the profile's decoder root:
``model`` in ``LlamaForCausalLM``, ``model.language_model`` in LLaVA, ``transformer`` in GPT-2) is changed by class change
(:mod:`vlsurgery.compiler.install`); its new ``forward``:

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
its keyword arguments (``vis_feats``) are ignored there.  Hence greedy and beam ``generate()``
give the same tokens with and without the cache.  (``generate`` itself accepts only keywords in
the outer model's signature, so with visual tokens a caller steps the cache by hand: forward
passes, training and scoring take ``vis_feats``/``vis_boxes`` like the encoder-decoder models.)
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

from vlsurgery.compiler.install import is_rewritten, original_class, runtime_class, swap_class
from vlsurgery.compiler.prefix import PREFIX_ATTR, PrefixTokens
from vlsurgery.errors import UsageError

#: The cache keyword of transformers 5 base models, and its name before the rename.
_CACHE_KWARGS = ("cache", "past_key_values")


def _cached_length(kwargs: dict) -> int:
    cache = next((kwargs[k] for k in _CACHE_KWARGS if kwargs.get(k) is not None), None)
    return int(cache.get_seq_length()) if hasattr(cache, "get_seq_length") else 0


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
    cached = _cached_length(kwargs)
    if cached == 0 and inputs_embeds is not None:  # a fresh sequence: the prefix goes first
        prefix = prefix_tokens(inputs_embeds.shape[0], vis_feats, vis_boxes, vis_image_ids)
        if prefix is not None:
            inputs_embeds = torch.cat([prefix.to(inputs_embeds.dtype), inputs_embeds], dim=1)
            prepended = prefix.shape[1]
    elif cached:  # the prefix is in the cache already: a caller may pass the visual inputs on every step
        prefix_tokens.check_visual(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
    length = inputs_embeds.shape[1] if inputs_embeds is not None else 0
    missing = prepended
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
        missing = max(cached + length - attention_mask.shape[-1], 0)
        if missing:
            ones = attention_mask.new_ones(attention_mask.shape[0], missing)
            attention_mask = torch.cat([ones, attention_mask], dim=1)
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
    return out


#: The readable source of the rewritten forward (also how :func:`causal_roots` recognises it).
_SOURCE = inspect.getsource(_causal_forward).replace(_causal_forward.__name__, "forward", 1)


def decoder_root(model: nn.Module, profile) -> nn.Module:
    """The module that holds the decoder's embeddings and layers (the profile's decoder root)."""
    stack = next((s for s in profile.stacks if s.takes_prefix), None)
    if stack is None:
        raise UsageError(f"{profile.describe()}: no stack takes prefix tokens")
    return model.get_submodule(stack.root)


def install_causal_prefix(root: nn.Module, prefix: PrefixTokens) -> None:
    """Attach ``prefix`` to the decoder's base model ``root`` (as ``vls_prefix``) and rewrite its
    forward (see the module docstring)."""
    if is_rewritten(root):
        raise UsageError("the decoder already carries prefix tokens")
    if not callable(getattr(root, "get_input_embeddings", None)) or root.get_input_embeddings() is None:
        raise UsageError(f"{type(root).__name__} has no input embedding: vlsurgery cannot prepend tokens to its input")
    root.add_module(PREFIX_ATTR, prefix)
    swap_class(root, runtime_class(type(root), _SOURCE, _causal_forward))


def causal_roots(model: nn.Module) -> list[nn.Module]:
    """Every base model of ``model`` that carries prefix tokens of this pass."""
    return [m for m in model.modules() if is_rewritten(m) and getattr(type(m), "_vls_source", None) == _SOURCE]


def remove_causal_prefix(root: nn.Module) -> None:
    """Undo :func:`install_causal_prefix`: the base model back to its class, no prefix tokens."""
    root._modules.pop(PREFIX_ATTR, None)
    if is_rewritten(root):
        swap_class(root, original_class(root))


__all__ = ["causal_roots", "decoder_root", "install_causal_prefix", "remove_causal_prefix"]
