"""The data collator of VL examples: a list of :class:`VLExample` -> the keyword inputs of a compiled model.

A model compiled from a spec with a ``projector`` takes, besides the text, the image regions
(:mod:`vlsurgery.compiler.prefix`).  :class:`VLCollator` produces all of it as torch tensors:

==================  ===============  =================================================================
key                 shape            what
==================  ===============  =================================================================
``input_ids``       (B, T)           the tokenized ``"<prompt> <question>"``, e.g. ``vqa: what colour is the circle?``
``attention_mask``  (B, T)           1 for text tokens, 0 for padding
``labels``          (B, L)           the tokenized answer, padding -100 (only when every example has one)
``vis_feats``       (B, R, feat_dim) region features (float32)
``vis_boxes``       (B, R, 4)        boxes (x1, x2, y1, y2) in [0, 1]
``vis_image_ids``   (B, R)           which image a region belongs to: 0, or 0/1 for an NLVR2-style pair
==================  ===============  =================================================================

Examples with fewer regions than the batch's longest are padded with zero features and zero boxes.
The compiled model has no region mask (prefix tokens are never padding), so padded regions are
visible to attention: keep the region count fixed per dataset (36 per image in the paper's
recipes, 9 in the shapes task) or cut it with ``max_regions``.  An example may also be a mapping with
the same keys as a VLExample (``question``, ``answer``, ``feats``, ``boxes``, ``image_ids``), and its
``feats``/``boxes`` may be a pair of arrays, one per image, which become image ids 0 and 1.

It works as the ``data_collator`` of a Hugging Face (Seq2Seq)Trainer and with a torch DataLoader::

    collate = VLCollator(tokenizer, prompt="vqa:")
    batch = collate(task.splits["train"][:32])
    loss = model(**batch).loss            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from vlsurgery.data.example import DataError, VLExample, pair_regions

KEYS = ("question", "answer", "feats", "boxes", "image_ids")


def as_example(item, index: int) -> VLExample:
    """A VLExample from a VLExample or a mapping of its fields (feats/boxes may be a two-image pair)."""
    if isinstance(item, VLExample):
        return item
    if not isinstance(item, Mapping):
        raise DataError(f"batch item {index} is a {type(item).__name__}: expected a VLExample or a mapping "
                        f"with keys {', '.join(KEYS)}")
    missing = [k for k in ("question", "feats", "boxes") if k not in item]
    if missing:
        raise DataError(f"batch item {index} lacks {', '.join(missing)}: expected a mapping with keys "
                        f"{', '.join(KEYS)} (answer and image_ids optional)")
    feats, boxes, image_ids = item["feats"], item["boxes"], item.get("image_ids")
    if isinstance(feats, (list, tuple)) and len(feats) == 2 and np.ndim(feats[0]) == 2:
        if not (isinstance(boxes, (list, tuple)) and len(boxes) == 2):
            raise DataError(f"batch item {index}: feats are a pair of images, so boxes must be a pair too")
        feats, boxes, image_ids = pair_regions((feats[0], boxes[0]), (feats[1], boxes[1]))
    return VLExample(item["question"], item.get("answer"), feats, boxes, image_ids,
                     question_id=item.get("question_id", index))


class VLCollator:
    """Callable turning a list of examples into model inputs (see the module docstring).

    ``tokenizer``: any Hugging Face tokenizer whose call adds the model's special tokens (the word
    tokenizer of :mod:`vlsurgery.data.tokenizer`, or a pretrained BART/T5 one).  ``prompt`` is put
    before each question (the paper's task prompts: ``vqa:``, ``gqa:``, ``nlvr:``, ``caption:``;
    empty for none).  ``max_length`` truncates texts and answers; ``max_regions`` keeps the first
    regions of each example.
    """

    def __init__(self, tokenizer, prompt: str = "vqa:", *, max_length: int | None = None,
                 max_regions: int | None = None, label_pad: int = -100):
        if tokenizer.pad_token_id is None:
            raise DataError("the tokenizer has no pad token: expected one (set tokenizer.pad_token)")
        self.tokenizer, self.prompt = tokenizer, prompt.strip()
        self.max_length, self.max_regions, self.label_pad = max_length, max_regions, label_pad

    def text(self, question: str) -> str:
        """The encoder's text for ``question``: ``"<prompt> <question>"``."""
        return f"{self.prompt} {question}".strip()

    def _tokenize(self, texts: list[str]) -> dict:
        kw = dict(truncation=True, max_length=self.max_length) if self.max_length else {}
        return self.tokenizer(texts, padding=True, return_tensors="pt", **kw)

    def __call__(self, items: Sequence) -> dict[str, torch.Tensor]:
        examples = self.examples(items)
        text = self._tokenize([self.text(ex.question) for ex in examples])
        batch = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}
        if self.answered(examples):
            target = self._tokenize([ex.answer for ex in examples])
            batch["labels"] = target["input_ids"].masked_fill(target["attention_mask"] == 0, self.label_pad)
        batch.update(self.regions(examples))
        return batch

    @staticmethod
    def examples(items: Sequence) -> list[VLExample]:
        """The items of one batch as examples, checked: at least one, all of one feature size."""
        if len(items) == 0:
            raise DataError("cannot collate an empty batch: expected at least one example")
        examples = [as_example(item, i) for i, item in enumerate(items)]
        dims = {ex.feat_dim for ex in examples}
        if len(dims) > 1:
            raise DataError(f"examples of one batch have different feat_dim ({', '.join(map(str, sorted(dims)))}): "
                            "expected one feature size (the projector's feat_dim)")
        return examples

    @staticmethod
    def answered(examples: list[VLExample]) -> bool:
        """True for a training batch (every example has its answer), False for a generation batch
        (none has); a mix is a :class:`DataError`."""
        with_answer = [ex.answer is not None for ex in examples]
        if any(with_answer) and not all(with_answer):
            missing = [str(ex.question_id) for ex in examples if ex.answer is None]
            raise DataError(f"examples {', '.join(missing[:5])} have no answer while others do: expected all "
                            "examples of a batch to have answers (training) or none (generation)")
        return all(with_answer)

    def regions(self, examples: list[VLExample]) -> dict[str, torch.Tensor]:
        """vis_feats, vis_boxes, vis_image_ids of the examples, padded to the longest with zeros."""
        cut = self.max_regions
        counts = [min(ex.regions, cut) if cut else ex.regions for ex in examples]
        size, dim = max(counts), examples[0].feat_dim
        feats = np.zeros((len(examples), size, dim), np.float32)
        boxes = np.zeros((len(examples), size, 4), np.float32)
        ids = np.zeros((len(examples), size), np.int64)
        for i, (ex, n) in enumerate(zip(examples, counts)):
            feats[i, :n], boxes[i, :n] = ex.feats[:n], ex.boxes[:n]
            if ex.image_ids is not None:
                ids[i, :n] = ex.image_ids[:n]
        return {"vis_feats": torch.from_numpy(feats), "vis_boxes": torch.from_numpy(boxes),
                "vis_image_ids": torch.from_numpy(ids)}
