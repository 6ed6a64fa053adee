"""The encoder-input pass: prepend the visual projector's tokens and prompt tokens to the text.

A seq2seq model hands the *same* ``attention_mask`` to its encoder and, as the cross-attention
mask, to its decoder.  Prepending tokens therefore touches both stacks, and both are changed by
class change, the one mechanism of :mod:`vlsurgery.compiler.install` (the objects stay, their
classes become runtime subclasses; docs/design.md, "The prefix pass"):

* the encoder's ``forward`` gains the keyword arguments ``vis_feats`` (B, R, feat_dim),
  ``vis_boxes`` (B, R, 4) and ``vis_image_ids`` (B, R); it embeds the text itself, prepends
  ``[visual tokens][prompt tokens]`` and extends its attention mask with ones on the left, then runs
  the original forward on ``inputs_embeds``;
* the decoder's ``forward`` extends a cross-attention mask that is shorter than the encoder's
  output by ones on the left (prefix tokens are never padding), and drops the visual keywords that
  the outer model forwards to every stack;
* both extend through one shared :class:`MaskExtension`, which builds the extension once per mask
  tensor: the decoder reuses the encoder's (the outer model hands both the same tensor), and a
  generation loop's decoder steps reuse the first one, as hand-written code would.

So ``model(input_ids, attention_mask, labels=..., vis_feats=..., vis_boxes=...)`` trains, and
``model.generate(input_ids, attention_mask=..., vis_feats=..., vis_boxes=...)`` generates: the
generation loop passes the visual keywords to the encoder (they are in its signature) and beam
search expands them with the other inputs.  Without visual inputs the encoder sees only the
prompt tokens (if any) and the text.

The pass runs for every design.  Without a projector, both stacks refuse visual keywords with a
:class:`~vlsurgery.errors.UsageError` (the outer model's ``**kwargs`` would otherwise swallow them
silently); without a projector and a prompt, the encoder otherwise runs its original forward
unchanged.

BART adds learned absolute positions to every input token, so prefix tokens take the first
positions and the text follows them; T5's relative position bias has no such effect.
"""

from __future__ import annotations

import inspect
import weakref

import torch
from torch import nn

from vlsurgery.compiler.install import is_rewritten, original_class, runtime_class, swap_class
from vlsurgery.errors import UsageError

VISUAL_KWARGS = ("vis_feats", "vis_boxes", "vis_image_ids")


class PrefixTokens(nn.Module):
    """The tokens prepended to the encoder input: ``[projector(vis inputs)][prompt]``.

    Holds the visual projector and the prompt (either may be None); returns None when there is
    nothing to prepend for this call.
    """

    def __init__(self, projector: nn.Module | None = None, prompt: nn.Module | None = None):
        super().__init__()
        self.projector = projector
        self.prompt = prompt

    @property
    def empty(self) -> bool:
        """Nothing to prepend, ever: the encoder then runs exactly as before."""
        return self.projector is None and self.prompt is None

    def check_visual(self, **visual) -> None:
        """Refuse visual inputs this design cannot use (no projector), or an incomplete set."""
        given = [key for key in VISUAL_KWARGS if visual.get(key) is not None]
        if not given:
            return
        if self.projector is None:
            raise UsageError(f"{', '.join(given)} given, but this model's design has no visual projector, so "
                             "visual inputs would be ignored: add `projector` (and `train projector`) to the "
                             "spec and compile a fresh model, or call the model without visual inputs")
        if visual.get("vis_feats") is None or visual.get("vis_boxes") is None:
            raise UsageError(f"visual inputs need both vis_feats (B, R, feat_dim) and vis_boxes (B, R, 4); "
                             f"got only {', '.join(given)}")

    def forward(self, batch_size: int, vis_feats=None, vis_boxes=None, vis_image_ids=None):
        self.check_visual(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
        parts = []
        if vis_feats is not None:
            parts.append(self.projector(vis_feats, vis_boxes, vis_image_ids))
        if self.prompt is not None:
            parts.append(self.prompt(batch_size))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _encoder_forward(
        self, input_ids=None, attention_mask=None, inputs_embeds=None,
        vis_feats=None, vis_boxes=None, vis_image_ids=None, **kwargs):
    if self.vls_prefix.empty:  # no projector, no prompt: refuse visual inputs, change nothing else
        self.vls_prefix.check_visual(vis_feats=vis_feats, vis_boxes=vis_boxes, vis_image_ids=vis_image_ids)
        return super(type(self), self).forward(input_ids=input_ids, attention_mask=attention_mask,
                                               inputs_embeds=inputs_embeds, **kwargs)
    if inputs_embeds is None and input_ids is not None:
        inputs_embeds = self.embed_tokens(input_ids)
    if inputs_embeds is not None:
        prefix = self.vls_prefix(inputs_embeds.shape[0], vis_feats, vis_boxes, vis_image_ids)
        if prefix is not None:
            if prefix.dtype != inputs_embeds.dtype:  # a same-dtype cast would still dispatch an op
                prefix = prefix.to(inputs_embeds.dtype)
            inputs_embeds = torch.cat([prefix, inputs_embeds], dim=1)
            if attention_mask is not None:
                attention_mask = self.vls_mask_extension(attention_mask, prefix.shape[1])
    return super(type(self), self).forward(input_ids=None, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds, **kwargs)


def _decoder_forward(self, *args, encoder_hidden_states=None, encoder_attention_mask=None, **kwargs):
    visual = {key: kwargs.pop(key, None) for key in VISUAL_KWARGS}
    if self.vls_refuses_visual:  # the encoder has no projector: visual inputs would be lost
        PrefixTokens().check_visual(**visual)
    if encoder_attention_mask is not None and encoder_hidden_states is not None:
        missing = encoder_hidden_states.shape[1] - encoder_attention_mask.shape[-1]
        if missing > 0 and encoder_attention_mask.dim() == 2:
            encoder_attention_mask = self.vls_mask_extension(encoder_attention_mask, missing)
    return super(type(self), self).forward(*args, encoder_hidden_states=encoder_hidden_states,
                                           encoder_attention_mask=encoder_attention_mask, **kwargs)


class MaskExtension:
    """The attention mask with ``prefix`` ones on the left, computed once per mask tensor.

    The outer model hands one ``attention_mask`` tensor to the encoder and, as the cross-attention
    mask, to the decoder; both need it extended by the prefix length.  The encoder and the decoder
    share one MaskExtension, which keeps its last result: called again with the *same* tensor object,
    unmodified since (its version counter unchanged), for the same prefix length, it returns that
    result instead of building it again.  So a training step extends the mask once, as
    hand-written code would, and generation extends it once per call (greedy: the loop passes the
    encoder's mask object to every decoder step) or once per expansion (beam search expands the
    mask once, then reuses it).  It holds the last mask weakly and its extension, (B, S) integers,
    until the next call or until the mask is freed (the weak reference's callback drops the
    extension then: nothing of a finished batch stays on the device, e.g. after ``model.cpu()``).
    Under ``torch.compile`` and ``torch.jit.trace`` it computes every time (a compiler must not guard on object identity, and a trace must not capture an earlier call's
    result as a constant), and so it does in inference mode, whose tensors have no version counter
    (an in-place change could not be seen).
    """

    def __init__(self):
        self._last = None  # (weak ref to the mask, mask version, prefix length, extension, extension version)

    def __call__(self, mask: torch.Tensor, prefix: int) -> torch.Tensor:
        if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.is_inference_mode_enabled()
                or mask.is_inference()):
            return self.extend(mask, prefix)
        last = self._last  # read once: a concurrent call can only replace it, never half-change it
        if (last is not None and last[0]() is mask and last[1] == mask._version and last[2] == prefix
                and last[4] == last[3]._version):
            return last[3]
        extended = self.extend(mask, prefix)
        # the mask held weakly, and its extension dropped when the mask dies (the weak reference's callback)
        self._last = (weakref.ref(mask, self._forget_when_freed()), mask._version, prefix, extended, extended._version)
        return extended

    def _forget_when_freed(self):
        """The callback of the mask's weak reference: drops the entry if it is still the last one.
        It holds this object weakly, so a MaskExtension is not kept alive by the masks it saw."""
        owner = weakref.ref(self)

        def forget(ref):
            this = owner()
            if this is not None and this._last is not None and this._last[0] is ref:
                this._last = None
        return forget

    @staticmethod
    def extend(mask: torch.Tensor, prefix: int) -> torch.Tensor:
        return torch.cat([mask.new_ones(mask.shape[0], prefix), mask], dim=1)

    def __deepcopy__(self, memo):  # a copied model starts with nothing remembered
        return MaskExtension()


def _stack_class(original: type, forward) -> type:
    """The runtime subclass of a stack class with ``forward`` (class change, as for layers); its
    readable source is the function's own."""
    source = inspect.getsource(forward).replace(forward.__name__, "forward", 1)
    return runtime_class(original, source, forward)


#: Where the encoder keeps its prefix tokens, and the decoder's flag to refuse visual inputs.
PREFIX_ATTR = "vls_prefix"
REFUSES_VISUAL_ATTR = "vls_refuses_visual"
#: The :class:`MaskExtension` both stacks share (a plain attribute, not a submodule: no parameters,
#: nothing in the state dict).
MASK_EXTENSION_ATTR = "vls_mask_extension"


def install_prefix(model: nn.Module, prefix: PrefixTokens) -> None:
    """Attach ``prefix`` to the model's encoder (as ``vls_prefix``) and rewrite both stacks' forwards."""
    encoder, decoder = model.get_encoder(), model.get_decoder()
    if is_rewritten(encoder):
        raise UsageError("the encoder already carries prefix tokens")
    encoder.add_module(PREFIX_ATTR, prefix)
    setattr(decoder, REFUSES_VISUAL_ATTR, prefix.projector is None)
    extension = MaskExtension()
    for stack in (encoder, decoder):
        stack.__dict__[MASK_EXTENSION_ATTR] = extension
    swap_class(encoder, _stack_class(type(encoder), _encoder_forward))
    swap_class(decoder, _stack_class(type(decoder), _decoder_forward))


def remove_prefix(model: nn.Module) -> None:
    """Undo :func:`install_prefix`: both stacks back to their classes, no prefix tokens, no flag."""
    encoder, decoder = model.get_encoder(), model.get_decoder()
    encoder._modules.pop(PREFIX_ATTR, None)
    decoder.__dict__.pop(REFUSES_VISUAL_ATTR, None)
    for stack in (encoder, decoder):
        stack.__dict__.pop(MASK_EXTENSION_ATTR, None)
    for stack in (encoder, decoder):
        if is_rewritten(stack):
            swap_class(stack, original_class(stack))
