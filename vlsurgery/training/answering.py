"""A compiled model's answers to VL examples, as text: for comparing models question by question.

The Trainer's ``evaluate()`` gives one number per metric; :func:`answers` gives the answers
themselves, so that two models (a trained one and the one restored from its checkpoint, or a design
and a baseline) can be compared answer by answer, and accuracy broken down by question type
(:func:`vlsurgery.data.accuracy_by_type`)::

    said = answers(model, tokenizer, task.splits["validation"], prompt=task.prompt)
    accuracy_by_type(said, task.splits["validation"])   # {'colour': 0.8, ..., 'all': 0.61}
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from vlsurgery.data.collate import VLCollator
from vlsurgery.data.metrics import decode
from vlsurgery.training.causal import CausalCollator


def answers(model, tokenizer, examples: Sequence, *, prompt: str = "vqa:", max_new_tokens: int = 8,
            batch_size: int = 100) -> list[str]:
    """Greedy answers of ``model`` to ``examples`` (VLExamples or mappings), decoded with ``tokenizer``.

    ``max_new_tokens`` is the most tokens generated per answer, its end of sequence included, for
    an encoder-decoder and a decoder-only model alike.  The inputs are built by the collator of
    training (:class:`VLCollator`; a decoder-only model's :class:`CausalCollator`, which answers
    after the question), from the questions alone, moved to the model's device.  The model is put
    in eval mode for the call and back in the mode it was in afterwards.
    """
    from vlsurgery.profiles.backbone import profile_of

    decoder_only = profile_of(model.config).decoder_only
    collate = (CausalCollator if decoder_only else VLCollator)(tokenizer, prompt=prompt)
    device = next(model.parameters()).device
    was_training, out = model.training, []
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                chunk = collate.examples(list(examples[start:start + batch_size]))
                batch = collate([dataclasses.replace(ex, answer=None) for ex in chunk])  # the questions alone
                batch.pop("position_ids", None)  # generate counts positions from the left-padded mask
                batch = {k: v.to(device) for k, v in batch.items()}
                ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     pad_token_id=tokenizer.pad_token_id)
                if decoder_only:  # the question is the start of the output: the answer is what follows
                    ids = ids[:, batch["input_ids"].shape[1]:]
                out += decode(tokenizer, ids.cpu())
    finally:
        model.train(was_training)
    return out
