"""A compiled model's answers to VL examples, as text: for comparing models question by question.

The Trainer's ``evaluate()`` gives one number per metric; :func:`answers` gives the answers
themselves, so that two models (a trained one and the one restored from its checkpoint, or a design
and a baseline) can be compared answer by answer, and accuracy broken down by question type
(:func:`vlsurgery.data.accuracy_by_type`)::

    said = answers(model, tokenizer, task.splits["validation"], prompt=task.prompt)
    accuracy_by_type(said, task.splits["validation"])   # {'colour': 0.8, ..., 'all': 0.61}
"""

from __future__ import annotations

from typing import Sequence

import torch

from vlsurgery.data.collate import VLCollator
from vlsurgery.data.metrics import decode


def answers(model, tokenizer, examples: Sequence, *, prompt: str = "vqa:", max_new_tokens: int = 8,
            batch_size: int = 100) -> list[str]:
    """Greedy answers of ``model`` to ``examples`` (VLExamples or mappings), decoded with ``tokenizer``.

    The inputs are built by the same :class:`VLCollator` as in training, moved to the model's device.
    The model is put in eval mode for the call and back in the mode it was in afterwards.  A
    decoder-only model answers after its question (:func:`vlsurgery.training.causal.causal_answers`).
    """
    from vlsurgery.profiles.backbone import profile_of
    from vlsurgery.training.causal import causal_answers, is_decoder_only

    if is_decoder_only(profile_of(model.config)):
        return causal_answers(model, tokenizer, examples, prompt=prompt, max_new_tokens=max_new_tokens,
                              batch_size=batch_size)
    collate = VLCollator(tokenizer, prompt=prompt)
    device = next(model.parameters()).device
    was_training, out = model.training, []
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                batch = collate(list(examples[start:start + batch_size]))
                batch.pop("labels", None)  # generation: the answers are what is asked for
                batch = {k: v.to(device) for k, v in batch.items()}
                ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
                out += decode(tokenizer, ids.cpu())
    finally:
        model.train(was_training)
    return out
