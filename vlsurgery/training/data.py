"""The data a run trains on: the procedural shapes task, or a VQA directory.

A VQA directory (the VL-T5/VL-PET layout, docs/data.md) holds ``train.json`` and ``val.json``
(questions: ``question_id``, ``img_id``, ``sent``, ``label`` or ``answers``) and ``features.h5``
(region features, a group per image).  Its tokenizer is a word tokenizer over its questions and
answers, unless the backbone brings its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vlsurgery.data import DataError, VQADataset, RegionFeatures, make_shapes_task, read_vqa, word_tokenizer
from vlsurgery.data import shapes_tokenizer
from vlsurgery.data.metrics import vqa_accuracy

VQA_FILES = ("train.json", "val.json", "features.h5")
SHAPES = "shapes"


@dataclass
class RunData:
    """What a run needs from its data."""

    name: str
    train: object
    eval: object
    prompt: str
    chance: float  # accuracy on eval of each question type's majority training answer
    words: list | None = None  # texts for a word tokenizer
    task: object = None

    def tokenizer(self, style: str):
        if self.task is not None:
            return shapes_tokenizer(self.task, style=style)
        return word_tokenizer(self.words, style=style)


def shapes_data(feat_dim: int, *, seed: int = 0, train_size: int | None = None,
                eval_size: int | None = None) -> RunData:
    sizes = {"train": train_size or 4000, "validation": eval_size or 500}
    task = make_shapes_task(feat_dim, seed=seed, sizes=sizes)
    return RunData("shapes", task.splits["train"], task.splits["validation"], task.prompt,
                   task.chance("validation")["all"], task=task)


def vqa_data(directory) -> RunData:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory: expected 'shapes' or a VQA data directory with "
                        f"{', '.join(VQA_FILES)}")
    missing = [name for name in VQA_FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(f"{directory}: {', '.join(missing)} missing: expected a VQA data directory with "
                        f"{', '.join(VQA_FILES)} (question JSON as in VL-T5, HDF5 region features; docs/training.md)")
    store = RegionFeatures(directory / "features.h5")
    train_q, val_q = read_vqa(directory / "train.json"), read_vqa(directory / "val.json")
    train = VQADataset(train_q, store, source=str(directory / "train.json"))
    evaluation = VQADataset(val_q, store, source=str(directory / "val.json"))
    majority = Counter(q.answer for q in train_q).most_common(1)
    guess = majority[0][0] if majority else ""
    chance = sum(vqa_accuracy(guess, q.answers) if q.answers else q.label.get(guess, 0.0) for q in val_q)
    words = [q.question for q in (*train_q, *val_q)] + [a for q in (*train_q, *val_q) for a in (*q.answers, *q.label)]
    return RunData(str(directory), train, evaluation, "vqa:", chance / max(1, len(val_q)), words=words)
