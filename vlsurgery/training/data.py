"""The data a run trains on: the procedural shapes task, a VQA directory or a caption directory.

A data directory (docs/data.md, docs/training.md) holds ``train.json``, ``val.json`` and
``features.h5`` (region features, a group per image).  What the JSON holds says which task it is:

- **VQA** (the VL-T5/VL-PET layout): a JSON list of questions (``question_id``, ``img_id``,
  ``sent``, ``label`` or ``answers``);
- **captions** (the Karpathy-split COCO layout): a JSON object ``{"images": [{"filename" or
  "img_id", "sentences": [{"raw": ...}], "split": ...}]}``.  Every reference caption of a training
  image is a training example; evaluation generates one caption per validation image and scores
  it against all of that image's references.  A file holding several Karpathy splits (the whole
  ``dataset_coco.json``) may serve as both files: ``train.json`` then gives its ``train`` and
  ``restval`` images, ``val.json`` its ``val`` images.

Its tokenizer is a word tokenizer over the directory's texts, unless the backbone brings its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vlsurgery.data import (CaptionDataset, DataError, RegionFeatures, VQADataset, caption_compute_metrics,
                            make_shapes_task, vqa_compute_metrics, word_tokenizer)
from vlsurgery.data.annotations import (CAPTION_LAYOUT, KARPATHY_SPLITS, VQA_LAYOUT, load_json, parse_captions,
                                        parse_vqa)
from vlsurgery.data.metrics import INSTALL_SCORERS, exact_match, normalize_answer, vqa_accuracy

DATA_FILES = ("train.json", "val.json", "features.h5")
SHAPES = "shapes"
CAPTION_PROMPT = "caption:"  # the reference's captioning prompt
EITHER_LAYOUT = f"VQA questions ({VQA_LAYOUT}) or COCO captions ({CAPTION_LAYOUT})"


@dataclass
class RunData:
    """What a run needs from its data.

    ``kind`` is ``"shapes"``, ``"vqa"`` or ``"caption"``; ``chance`` the score of a trivial answer
    (VQA: each question type's majority training answer; captions: the exact match of the most
    frequent training caption).
    """

    name: str
    train: object
    eval: object
    prompt: str
    chance: float
    words: list | None = None  # texts for a word tokenizer (the prompt's words come from tokenizer())
    task: object = None
    kind: str = "vqa"

    def tokenizer(self, style: str, prompt: str | None = None):
        """A word tokenizer over the data's texts and the prompt (``prompt``, default the data's own),
        whose words would otherwise read as <unk>."""
        prompt = self.prompt if prompt is None else prompt
        if self.task is not None:  # shapes_tokenizer's words and visual rows (a region per grid cell)
            return word_tokenizer([prompt, *self.task.words()], style=style, visual_tokens=self.task.grid ** 2)
        return word_tokenizer([prompt, *self.words], style=style)

    def prompt_for(self, ours: dict) -> str:
        """The task prompt: the recipe's ``caption_prompt`` for captions, its ``prompt`` for questions,
        else the data's own (``vqa:``, ``caption:``)."""
        chosen = ours.get("caption_prompt") if self.kind == "caption" else ours.get("prompt")
        return self.prompt if chosen is None else chosen

    def answer_length_for(self, ours: dict) -> int:
        """Most tokens to generate: the recipe's ``caption_length`` for captions, else ``max_answer_length``."""
        return ours["caption_length"] if self.kind == "caption" else ours["max_answer_length"]

    def compute_metrics(self, tokenizer):
        """The Trainer's ``compute_metrics`` for this data, scoring ``self.eval`` in order."""
        if self.kind == "caption":
            return caption_compute_metrics(tokenizer, self.eval)
        return vqa_compute_metrics(tokenizer, self.eval)

    def headline(self, metrics: dict) -> str:
        """One line for the end of a run: the validation scores against chance."""
        if self.kind != "caption":
            acc = metrics.get("eval_vqa_accuracy")
            return (f"validation accuracy {acc:.1%} vs chance {self.chance:.1%} (majority answer per question type)"
                    if acc is not None else "no validation")
        if "eval_exact_match" not in metrics:
            return "no validation"
        scores = (f"BLEU-4 {metrics['eval_bleu4']:.4f}, CIDEr {metrics['eval_cider']:.4f}, "
                  if "eval_bleu4" in metrics else f"(BLEU-4 and CIDEr need pycocoevalcap: {INSTALL_SCORERS}) ")
        return (f"validation captions: {scores}exact match {metrics['eval_exact_match']:.1%} "
                f"vs chance {self.chance:.1%} (the most frequent training caption)")


def shapes_data(feat_dim: int, *, seed: int = 0, train_size: int | None = None,
                eval_size: int | None = None) -> RunData:
    sizes = {"train": train_size or 4000, "validation": eval_size or 500}
    task = make_shapes_task(feat_dim, seed=seed, sizes=sizes)
    return RunData("shapes", task.splits["train"], task.splits["validation"], task.prompt,
                   task.chance("validation")["all"], task=task, kind="shapes")


def _check_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory: expected 'shapes' or a VQA data directory (or a "
                        f"caption data directory) with {', '.join(DATA_FILES)}")
    missing = [name for name in DATA_FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(f"{directory}: {', '.join(missing)} missing: expected a VQA data directory (or a caption "
                        f"data directory) with {', '.join(DATA_FILES)}: the JSON holds {EITHER_LAYOUT}, the HDF5 "
                        "file the region features (docs/data.md)")


def _kind(data, path: Path) -> str:
    """``"vqa"`` or ``"caption"`` from a parsed JSON file's content, or a DataError naming both layouts."""
    if isinstance(data, list):
        return "vqa"
    if isinstance(data, dict) and "images" in data:
        return "caption"
    if isinstance(data, dict) and "questions" in data:
        return "vqa"  # VQA v2's own questions file: the VQA reader explains what to do with it
    what = f"a JSON object with keys {', '.join(map(str, list(data)[:6])) or '(none)'}" if isinstance(data, dict) \
        else f"a JSON {type(data).__name__}"
    raise DataError(f"{path}: holds {what}\n  = expected {EITHER_LAYOUT}")


def directory_data(directory) -> RunData:
    """A VQA or a caption data directory (module docstring), told apart by what ``train.json`` holds."""
    directory = Path(directory)
    _check_directory(directory)
    train_path, val_path = directory / "train.json", directory / "val.json"
    train_json = load_json(train_path, EITHER_LAYOUT)
    kind = _kind(train_json, train_path)
    val_json = load_json(val_path, EITHER_LAYOUT)
    if _kind(val_json, val_path) != kind:
        raise DataError(f"{val_path}: holds {'captions' if kind == 'vqa' else 'VQA questions'} but {train_path} "
                        f"holds {'VQA questions' if kind == 'vqa' else 'captions'}: expected one task in both")
    if kind == "caption":
        return caption_data(directory, train_json, val_json)
    return vqa_data(directory, train_json, val_json)


def vqa_data(directory, train_json=None, val_json=None) -> RunData:
    """A VQA directory's run data (the JSON already parsed may be passed in)."""
    directory = Path(directory)
    if train_json is None or val_json is None:  # directory_data has checked it already
        _check_directory(directory)
    train_path, val_path = directory / "train.json", directory / "val.json"
    train_q = parse_vqa(load_json(train_path, VQA_LAYOUT) if train_json is None else train_json, train_path)
    val_q = parse_vqa(load_json(val_path, VQA_LAYOUT) if val_json is None else val_json, val_path)
    store = RegionFeatures(directory / "features.h5")
    train = VQADataset(train_q, store, source=str(train_path))
    evaluation = VQADataset(val_q, store, source=str(val_path))
    majority = Counter(q.answer for q in train_q).most_common(1)
    guess = majority[0][0] if majority else ""
    chance = sum(vqa_accuracy(guess, q.answers) if q.answers else q.label.get(guess, 0.0) for q in val_q)
    words = [q.question for q in (*train_q, *val_q)]
    words += [a for q in (*train_q, *val_q) for a in (*q.answers, *q.label)]
    return RunData(str(directory), train, evaluation, "vqa:", chance / max(1, len(val_q)), words=words, kind="vqa")


def _split_images(data, role: str, path: Path):
    """The images of the parsed caption JSON ``data``: those of ``role`` (``train``/``val``) when the
    file holds several Karpathy splits, else all of them; images without any caption are left out
    (nothing to learn from or score against)."""
    images = parse_captions(data, path)
    splits = {im.split for im in images if im.split}
    if len(splits) > 1:  # the whole dataset_coco.json: keep the role's splits
        images = parse_captions(data, path, split=role)
    images = [im for im in images if im.captions]
    if not images:
        wanted = "/".join(KARPATHY_SPLITS[role])
        raise DataError(f"{path}: no {role} image with a caption"
                        + (f" (the file holds splits {', '.join(sorted(splits))}; {role} takes {wanted})"
                           if len(splits) > 1 else "")
                        + f"\n  = expected at least one image with sentences: {CAPTION_LAYOUT}")
    return images


def caption_data(directory, train_json, val_json) -> RunData:
    """A caption directory's run data: one training example per reference caption, one evaluation
    example per validation image (its first reference as the label, every reference for scoring)."""
    directory = Path(directory)
    train_path, val_path = directory / "train.json", directory / "val.json"
    train_images = _split_images(train_json, "train", train_path)
    val_images = _split_images(val_json, "val", val_path)
    store = RegionFeatures(directory / "features.h5")
    train = CaptionDataset(train_images, store, source=str(train_path))
    evaluation = CaptionDataset(val_images, store, per_caption=False, answer_first=True, source=str(val_path))
    common = Counter(normalize_answer(c) for im in train_images for c in im.captions).most_common(1)[0][0]
    chance = sum(max(exact_match(common, c) for c in im.captions) for im in val_images) / len(val_images)
    words = [c for im in (*train_images, *val_images) for c in im.captions]
    return RunData(str(directory), train, evaluation, CAPTION_PROMPT, chance, words=words, kind="caption")
