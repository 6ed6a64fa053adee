"""Question and caption annotations in JSON, and datasets that join them to HDF5 region features.

**VQA** (:func:`read_vqa`): a JSON list with one object per question, as the VL-T5 / VL-Adapter /
VL-PET code ships them::

    [{"question_id": 458752000, "img_id": "COCO_train2014_000000458752",
      "sent": "What is this photo taken looking through?",
      "label": {"net": 1.0, "netting": 0.3}},                    # soft scores, or
     {..., "answers": ["net", "net", "netting", ...]}]           # the VQA v2 annotators' answers

``answers`` may also be VQA v2's objects ``{"answer": ..., "answer_id": ...}``; a soft label is then
computed from them (:func:`~vlsurgery.data.metrics.answer_scores`).  ``question`` is accepted for
``sent`` and ``image_id`` for ``img_id``.

**Captions** (:func:`read_captions`): the Karpathy-split COCO JSON ``{"images": [{"filename" or
"img_id", "sentences": [{"raw": ...}], "split": ...}]}``; the image id is ``img_id``, else the
file name without its extension (as the features are keyed).

>>> import json, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "vqa.json")
>>> _ = open(path, "w").write(json.dumps([{"question_id": 1, "img_id": "a", "sent": "Why?", "answers": ["yes"] * 10}]))
>>> read_vqa(path)[0].label
{'yes': 1.0}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vlsurgery.data.example import DataError, DataFileError, VLExample, file_error
from vlsurgery.data.metrics import answer_scores

VQA_LAYOUT = ('a list of {"question_id", "img_id", "sent", and "label": {answer: score} or "answers": '
              '[10 annotator answers]}')
CAPTION_LAYOUT = '{"images": [{"filename" or "img_id", "sentences": [{"raw": ...}], "split": ...}]}'
KARPATHY_SPLITS = {"train": ("train", "restval"), "validation": ("val",), "val": ("val",), "test": ("test",),
                   "restval": ("restval",)}


@dataclass(frozen=True)
class VQAQuestion:
    question_id: object
    img_id: str
    question: str
    label: dict
    answers: tuple[str, ...] = ()

    @property
    def answer(self) -> str | None:
        """The answer to train on: the best-scored one of the label (None when it is empty)."""
        return max(self.label.items(), key=lambda kv: (kv[1], -len(kv[0])))[0] if self.label else None


@dataclass(frozen=True)
class CaptionImage:
    img_id: str
    captions: tuple[str, ...]
    split: str = ""


def load_json(path, layout: str):
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file: expected a JSON file: {layout}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc}): expected {layout}") from exc


def _first(entry: dict, keys: Sequence[str]):
    return next((entry[k] for k in keys if k in entry), None)


def _answers(raw, path, index) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise file_error(path, f"entry {index}: 'answers' is a {type(raw).__name__}", VQA_LAYOUT)
    out = []
    for a in raw:
        a = a.get("answer") if isinstance(a, dict) else a
        if not isinstance(a, str):
            raise file_error(path, f"entry {index}: an answer is {a!r}",
                             'answers as strings or {"answer": ...} objects')
        out.append(a)
    return tuple(out)


def read_vqa(path) -> list[VQAQuestion]:
    """The questions of a VQA JSON file (see the module docstring), in file order."""
    return parse_vqa(load_json(path, VQA_LAYOUT), path)


def parse_vqa(data, path) -> list[VQAQuestion]:
    """The questions of the already parsed JSON ``data`` of the VQA file ``path`` (named in errors)."""
    if isinstance(data, dict) and "questions" in data:
        raise file_error(path, "is a VQA v2 questions file (a dict with 'questions')",
                         VQA_LAYOUT + "; join questions and annotations into such a list first")
    if not isinstance(data, list):
        raise file_error(path, f"holds a JSON {type(data).__name__}", VQA_LAYOUT)
    out = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise file_error(path, f"entry {index} is a {type(entry).__name__}", VQA_LAYOUT)
        qid, img_id, sent = entry.get("question_id"), _first(entry, ("img_id", "image_id")), \
            _first(entry, ("sent", "question"))
        missing = [k for k, v in (("question_id", qid), ("img_id", img_id), ("sent", sent)) if v is None]
        if missing:
            raise file_error(path, f"entry {index} has no {', '.join(missing)} (keys: {', '.join(entry)})", VQA_LAYOUT)
        answers = _answers(entry["answers"], path, index) if "answers" in entry else ()
        label = entry.get("label")
        if label is None:
            label = answer_scores(answers) if answers else {}
        if not isinstance(label, dict) or not all(isinstance(v, (int, float)) for v in label.values()):
            raise file_error(path, f"entry {index} (question {qid}): 'label' is {label!r}",
                             '"label": {answer: score}')
        out.append(VQAQuestion(qid, str(img_id), str(sent), {str(k): float(v) for k, v in label.items()}, answers))
    return out


def read_captions(path, split: str | None = None) -> list[CaptionImage]:
    """The images of a Karpathy-style caption JSON, optionally of one split ("train" includes
    "restval"; "validation" is "val")."""
    return parse_captions(load_json(path, CAPTION_LAYOUT), path, split)


def parse_captions(data, path, split: str | None = None) -> list[CaptionImage]:
    """The images of the already parsed JSON ``data`` of the caption file ``path`` (named in errors)."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise file_error(path, "has no list under 'images'", CAPTION_LAYOUT)
    if split is not None and split not in KARPATHY_SPLITS:
        raise DataError(f"unknown caption split {split!r}: expected one of {', '.join(KARPATHY_SPLITS)}")
    if isinstance(data.get("annotations"), list):  # COCO's official captions_*.json: captions apart from images
        raise file_error(path, "is in COCO's official captions layout (\"images\" and \"annotations\" apart)",
                         CAPTION_LAYOUT + ": the Karpathy layout, each image with its own sentences; convert the "
                         "file to it first (or use the Karpathy split's dataset_coco.json)")
    out = []
    for index, entry in enumerate(data["images"]):
        if not isinstance(entry, dict):
            raise file_error(path, f"image {index} is a {type(entry).__name__}", CAPTION_LAYOUT)
        img_id = entry.get("img_id") or (Path(entry["filename"]).stem if entry.get("filename") else None)
        sentences = entry.get("sentences")
        if img_id is None or not isinstance(sentences, list):
            raise file_error(path, f"image {index} lacks {'img_id/filename' if img_id is None else 'sentences'}",
                             CAPTION_LAYOUT)
        captions = tuple(s.get("raw") if isinstance(s, dict) else s for s in sentences)
        if not all(isinstance(c, str) for c in captions):
            raise file_error(path, f"image {img_id}: a sentence has no text", '"sentences": [{"raw": "..."}]')
        entry_split = str(entry.get("split", ""))
        if split is None or entry_split in KARPATHY_SPLITS[split]:
            out.append(CaptionImage(str(img_id), captions, entry_split))
    return out


def check_images(img_ids, features, source) -> None:
    """Raise a DataError naming ``source`` and ``features.path`` when some image ids have no features."""
    missing = sorted({str(i) for i in img_ids if i not in features})
    if missing:
        raise DataError(f"{source}: {len(missing)} image id(s) have no region features in {features.path}: "
                        f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}: expected a group per "
                        "image id in the HDF5 file (are the features of the right split?)")


class VQADataset:
    """VQA questions joined to their region features: a sequence of :class:`VLExample`.

    Features are read from the HDF5 store when an example is taken (``features`` stays open);
    every image id is checked at construction.  ``max_regions`` keeps the first regions.
    """

    def __init__(self, questions: Sequence[VQAQuestion], features, *, source="questions",
                 max_regions: int | None = None):
        check_images((q.img_id for q in questions), features, source)
        self.questions, self.features, self.max_regions = list(questions), features, max_regions

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice):  # a list of examples, as a list would give
            return [self[i] for i in range(*index.indices(len(self)))]
        q = self.questions[index]
        feats, boxes = self.features[q.img_id]
        cut = slice(0, self.max_regions)
        return VLExample(q.question, q.answer, feats[cut], boxes[cut], label=dict(q.label), answers=q.answers,
                         question_type="vqa", question_id=q.question_id, img_id=q.img_id)


class CaptionDataset:
    """Caption images joined to their features.  ``per_caption=True`` (training) gives one example
    per reference caption; ``False`` (evaluation) one per image, with every reference attached.
    With ``answer_first=True`` a per-image example also has its first reference as its answer: a
    Trainer then has labels, so it reports an evaluation loss and calls ``compute_metrics`` (which
    scores against all the references)."""

    def __init__(self, images: Sequence[CaptionImage], features, *, per_caption: bool = True,
                 source="captions", max_regions: int | None = None, answer_first: bool = False):
        check_images((im.img_id for im in images), features, source)
        self.images, self.features, self.max_regions = list(images), features, max_regions
        self.answer_first = answer_first
        self.index = [(i, c) for i, im in enumerate(self.images)
                      for c in (range(len(im.captions)) if per_caption else [None])]

    def __len__(self) -> int:
        return len(self.index)

    def references(self) -> list[tuple[str, ...]]:
        """Every example's reference captions (its image's), in order, without reading any features."""
        return [self.images[image_index].captions for image_index, _ in self.index]

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image_index, caption = self.index[index]
        image = self.images[image_index]
        feats, boxes = self.features[image.img_id]
        cut = slice(0, self.max_regions)
        answer = image.captions[caption] if caption is not None else None
        if caption is None and self.answer_first and image.captions:
            answer = image.captions[0]
        return VLExample("", answer, feats[cut], boxes[cut], references=image.captions, question_type="caption",
                         question_id=f"{image.img_id}#{caption}" if caption is not None else image.img_id,
                         img_id=image.img_id)
