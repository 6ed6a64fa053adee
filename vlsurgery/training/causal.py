"""Training decoder-only designs: causal-LM collation, and evaluation by answering after the question.

A decoder-only backbone (a profile with no ``encoder`` stack: LLaMA, Qwen2, GPT-2) reads the
question and writes the answer in one sequence.  :class:`CausalCollator` builds that sequence,
left-padded::

    [pad ...] <s> vqa : what colour is the circle ? red </s>
    labels:   -100 ...  -100 (bos, prompt, question)  red </s>
    position_ids: 0 for padding, then 0, 1, 2, ... over the real tokens

The region features (``vis_feats``, ``vis_boxes``, ``vis_image_ids``) are the encoder-decoder
collator's; the compiled model puts the prefix tokens before the text
(:mod:`vlsurgery.compiler.causal_prefix`), and its logits cover the text positions only, so the
labels line up with ``input_ids`` and the model's own shift predicts token t from the tokens
before it.  The loss is therefore the answer's (and its end of sequence), never the question's.

Why left padding and explicit positions: generation appends tokens on the right, so every row's
last real token must sit in the last column; the positions count real tokens only, so a padded
row is computed exactly as it would be alone, in training and in decoding alike.

:class:`CausalPETTrainer` evaluates by answering: it cuts each row back to its question
(:func:`question_inputs`), decodes the answer with ``generate(num_beams=..., do_sample=False)`` and
the visual inputs (:func:`generated_answers`; the compiled model's forward names them, so
``generate`` passes them on: :mod:`vlsurgery.compiler.causal_prefix`), and hands the answer ids
and the labels' answer ids to the same ``compute_metrics`` as the encoder-decoder path.
"""

from __future__ import annotations

import torch

from vlsurgery.data.collate import VLCollator
from vlsurgery.data.example import DataError
from vlsurgery.training.trainer import PETTrainer

VISUAL_KEYS = ("vis_feats", "vis_boxes", "vis_image_ids")


def _left_pad(rows: list[list[int]], fill: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[fill] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row; 0 on (left) padding."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class CausalCollator(VLCollator):
    """A :class:`VLCollator` for decoder-only models: ``<bos> prompt question answer <eos>``, left-padded,
    labels on the answer and its end of sequence only (module docstring).  Without answers (every
    example's ``answer`` None) it gives the questions alone, ready for decoding.

    The answer is tokenized with a leading space, so that byte-level BPE tokenizers (GPT-2, LLaMA 3)
    see the word as it appears after the question.  ``max_length`` truncates the question and the
    answer separately.
    """

    def __init__(self, tokenizer, prompt: str = "vqa:", **kwargs):
        super().__init__(tokenizer, prompt, **kwargs)
        if tokenizer.eos_token_id is None:
            raise DataError("the tokenizer has no end-of-sequence token: a decoder-only model needs one to end "
                            "its answers (set tokenizer.eos_token)")

    def _ids(self, texts: list[str]) -> list[list[int]]:
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [list(r[:self.max_length]) if self.max_length else list(r) for r in ids]

    def __call__(self, items) -> dict[str, torch.Tensor]:
        examples = self.examples(items)
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        questions = [bos + ids for ids in self._ids([self.text(ex.question) for ex in examples])]
        rows, labels = questions, None
        if self.answered(examples):
            eos = self.tokenizer.eos_token_id
            answers = [ids + [eos] for ids in self._ids([f" {ex.answer}" for ex in examples])]
            rows = [q + a for q, a in zip(questions, answers)]
            labels = [[self.label_pad] * len(q) + a for q, a in zip(questions, answers)]
        mask = _left_pad([[1] * len(r) for r in rows], 0)
        batch = {"input_ids": _left_pad(rows, self.tokenizer.pad_token_id), "attention_mask": mask,
                 "position_ids": _positions(mask)}
        if labels is not None:
            batch["labels"] = _left_pad(labels, self.label_pad)
        batch.update(self.regions(examples))
        return batch


def question_inputs(batch: dict, pad_id: int, label_pad: int = -100) -> dict:
    """The batch cut back to its questions: each row's answer (its labelled suffix) removed, the rows
    left-padded again to the longest question; visual inputs kept, labels dropped."""
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    answer = (labels != label_pad).sum(-1)
    keep = [row[m.bool()][:len(row[m.bool()]) - int(a)].tolist() for row, m, a in zip(ids, mask, answer)]
    if any(len(k) == 0 for k in keep):
        raise DataError("a row whose every token is labelled: expected the question's tokens to have label -100 "
                        "(as CausalCollator makes them)")
    out_mask = _left_pad([[1] * len(k) for k in keep], 0).to(ids.device)
    out = {"input_ids": _left_pad(keep, pad_id).to(ids.device), "attention_mask": out_mask,
           "position_ids": _positions(out_mask)}
    out.update({k: batch[k] for k in VISUAL_KEYS if k in batch})
    return out


def answer_labels(labels: torch.Tensor, label_pad: int = -100) -> torch.Tensor:
    """Each row's labelled tokens (the answer and its end of sequence), left-aligned, ``label_pad`` after."""
    rows = [row[row != label_pad].tolist() for row in labels]
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [label_pad] * (width - len(r)) for r in rows], dtype=torch.long, device=labels.device)


def generated_answers(model, inputs: dict, *, max_new_tokens: int, beams: int, pad_id: int) -> torch.Tensor:
    """The new tokens of ``generate()`` (greedy or beam search) after left-padded question ``inputs``
    (:func:`question_inputs`, visual keys included): ``(B, n)``, ``pad_id`` after each row's end."""
    given = {k: v for k, v in inputs.items() if k != "position_ids"}  # generate computes positions itself
    ids = model.generate(**given, max_new_tokens=max_new_tokens, num_beams=beams, do_sample=False, pad_token_id=pad_id)
    return ids[:, inputs["input_ids"].shape[1]:]


class CausalPETTrainer(PETTrainer):
    """:class:`PETTrainer` for decoder-only designs: the loss as usual (labels mark the answers), and
    evaluation that answers each question after its question (module docstring).

    The generated ids and the answers' label ids reach ``compute_metrics`` as with the Seq2Seq
    path; ``generation_max_length`` is the most new tokens (the answer and its end of sequence).
    """

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        loss, _, _ = super().prediction_step(model, inputs, True, ignore_keys=ignore_keys)
        if prediction_loss_only or not self.args.predict_with_generate:
            return loss, None, None
        if "labels" not in inputs:
            raise DataError("an evaluation batch without labels: a decoder-only design is evaluated on questions "
                            "with answers (CausalCollator's labels mark where each answer starts)")
        settings = {**getattr(self, "_gen_kwargs", {}), **gen_kwargs}
        max_new = settings.get("max_new_tokens") or settings.get("max_length") or self.args.generation_max_length or 9
        beams = settings.get("num_beams") or self.args.generation_num_beams or 1
        inputs = self._prepare_inputs(inputs)
        pad_id = self.processing_class.pad_token_id
        question = question_inputs(inputs, pad_id)
        inner = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        was_training = inner.training
        inner.eval()
        try:
            with torch.no_grad():
                ids = generated_answers(inner, question, max_new_tokens=max_new, beams=beams, pad_id=pad_id)
        finally:
            inner.train(was_training)
        return loss, ids, answer_labels(inputs["labels"])


__all__ = ["CausalCollator", "CausalPETTrainer", "answer_labels", "generated_answers", "question_inputs"]
