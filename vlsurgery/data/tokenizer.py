"""A small offline word-level tokenizer, for models trained from scratch on vlsurgery's data.

No pretrained tokenizer can be downloaded everywhere vlsurgery runs, and a random tiny backbone
does not need one: :func:`word_tokenizer` builds a word-level vocabulary from texts with the
``tokenizers`` library (lower-casing; words and punctuation runs are tokens, so ``vqa:`` is
``vqa`` ``:``) and wraps it as a ``transformers.PreTrainedTokenizerFast`` with the special tokens
of the family it will feed, at that family's usual ids:

* ``style="bart"``: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3; texts become ``<s> ... </s>``;
* ``style="t5"``: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; texts become ``... </s>``;
* ``style="causal"`` (decoder-only models): ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3; texts
  become ``<s> ...`` (the end of sequence goes after the answer, not after the question).

So the ids of the presets ``tiny-bart``, ``tiny-t5`` and ``tiny-llama`` already match and only ``vocab_size``
changes (:func:`fit_config` sets all of them).  The last ``visual_tokens`` ids are
``<vis_extra_id_j>`` placeholders, as in VL-T5: the visual projector's object-order embedding
reads row V - 1 - j for region j (docs/paper.md §5), and these rows are never a word.

>>> tok = word_tokenizer(["what colour is the circle?", "red"], style="t5", visual_tokens=4)
>>> tok("what colour is the circle?")["input_ids"]
[9, 5, 6, 8, 4, 3, 1]
>>> tok.decode(tok("red")["input_ids"], skip_special_tokens=True)
'red'
>>> len(tok), tok.convert_ids_to_tokens(len(tok) - 1)
(14, '<vis_extra_id_0>')
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from vlsurgery.data.example import DataError

STYLES = {
    # name: (special tokens in id order, bos, eos, pad, unk, single-text template)
    "bart": (("<s>", "<pad>", "</s>", "<unk>"), "<s>", "</s>", "<pad>", "<unk>", "<s> $A </s>"),
    "t5": (("<pad>", "</s>", "<unk>"), None, "</s>", "<pad>", "<unk>", "$A </s>"),
    # decoder-only models (LLaMA, GPT-2): the text opens with <s>; </s> ends the *answer*, which
    # the causal collator appends (vlsurgery.training.causal), so no text ends with it here
    "causal": (("<pad>", "<s>", "</s>", "<unk>"), "<s>", "</s>", "<pad>", "<unk>", "<s> $A"),
}


def _pre_tokenizer():
    from tokenizers import normalizers, pre_tokenizers

    return normalizers.Lowercase(), pre_tokenizers.Whitespace()


def split_words(text: str) -> list[str]:
    """The words the tokenizer sees in ``text``: lower-cased, punctuation runs apart.

    >>> split_words("What colour is the circle? vqa:")
    ['what', 'colour', 'is', 'the', 'circle', '?', 'vqa', ':']
    """
    normalizer, pre = _pre_tokenizer()
    return [word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))]


def word_tokenizer(texts: Iterable[str], *, style: str = "bart", visual_tokens: int = 36,
                   min_frequency: int = 1, max_words: int | None = None):
    """A PreTrainedTokenizerFast over the words of ``texts`` (see the module docstring).

    Words are ordered by frequency, then alphabetically, so the same texts give the same ids.
    Words rarer than ``min_frequency``, or beyond the ``max_words`` most frequent, map to the
    unknown token.  ``visual_tokens`` rows are reserved at the end for the projector's object-order
    embedding (36: the regions per image of the paper's recipes).
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    if style not in STYLES:
        raise DataError(f"unknown tokenizer style {style!r}: expected one of {', '.join(STYLES)}")
    if visual_tokens < 0 or min_frequency < 1:
        raise DataError(f"visual_tokens must be >= 0 and min_frequency >= 1 "
                        f"(got {visual_tokens}, {min_frequency})")
    specials, bos, eos, pad, unk, template = STYLES[style]
    counts = Counter(word for text in texts for word in split_words(text))
    words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_frequency
             and w not in specials][:max_words]
    if not words:
        raise DataError("word_tokenizer: the texts contain no words: expected some question or answer texts")
    visual = [f"<vis_extra_id_{j}>" for j in reversed(range(visual_tokens))]
    vocab = {token: i for i, token in enumerate([*specials, *sorted(words), *visual])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.normalizer, tok.pre_tokenizer = _pre_tokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=template, pair=template + " " + template.replace("$A", "$B").replace("<s> ", ""),
        special_tokens=[(t, vocab[t]) for t in (bos, eos) if t is not None])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # words joined by spaces, " ?" -> "?"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                  unk_token=unk, extra_special_tokens=visual,
                                  model_input_names=["input_ids", "attention_mask"])


def fit_config(config, tokenizer):
    """A copy of a BART, T5 or decoder-only config whose vocabulary size and special ids are ``tokenizer``'s.

    BART-style models start decoding with ``</s>`` (and their labels begin with ``<s>``, so the
    decoder learns to write it first); T5 starts with ``<pad>``.  Embeddings built from the
    returned config have one row per token.  (Generation settings such as a forced first token
    live on ``model.generation_config`` in transformers 5, not on the config.)
    """
    config = config.__class__.from_dict(config.to_dict())
    config.vocab_size = len(tokenizer)
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if getattr(config, "model_type", "") == "t5":
        config.decoder_start_token_id, config.bos_token_id = tokenizer.pad_token_id, None
    elif not getattr(config, "is_encoder_decoder", True):  # decoder-only: no decoder start token
        config.bos_token_id = tokenizer.bos_token_id
    else:
        if tokenizer.bos_token_id is None:
            raise DataError(f"a {config.model_type} model needs a bos token: build the tokenizer with "
                            "style='bart'")
        config.bos_token_id, config.decoder_start_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    return config


def shapes_tokenizer(task, *, style: str = "bart", visual_tokens: int | None = None):
    """The word tokenizer of a :class:`~vlsurgery.data.shapes.ShapesTask` (every word it can produce).

    ``visual_tokens`` defaults to the task's regions per scene (one per grid cell).
    """
    reserve = task.grid * task.grid if visual_tokens is None else visual_tokens
    return word_tokenizer(task.words(), style=style, visual_tokens=reserve)
