"""The procedural shapes task: reproducible, answers true to the scene its features encode, chance as stated."""

from collections import Counter

import numpy as np
import pytest

from vlsurgery.data import DataError, make_shapes_task
from vlsurgery.data.shapes import COLOURS, NUMBERS, SHAPES, cell_boxes, cell_name

SIZES = {"train": 400, "validation": 50, "test": 200}


@pytest.fixture(scope="module")
def task():
    return make_shapes_task(feat_dim=24, seed=3, sizes=SIZES, noise=0.05)


def decode_scene(task, feats):
    """Recover each cell's content from its feature: the nearest colour+shape sum, or empty."""
    p = task.prototypes
    candidates = {None: p[-1]}
    for ci, c in enumerate(COLOURS):
        for si, s in enumerate(SHAPES):
            candidates[(c, s)] = p[ci] + p[len(COLOURS) + si]
    keys = list(candidates)
    table = np.stack([candidates[k] for k in keys])
    return [keys[int(np.argmin(((table - f) ** 2).sum(1)))] for f in feats]


def true_answer(question, cells):
    objects = [c for c in cells if c is not None]
    words = question.rstrip("?").split()
    if question.startswith("what colour is the "):
        return next(c for c, s in objects if s == words[-1])
    if question.startswith("what shape is at the "):
        where = " ".join(words[5:])
        return cells[[cell_name(i) for i in range(9)].index(where)][1]
    if question.startswith("how many "):
        return NUMBERS[sum(s + "s" == words[2] for _, s in objects)]
    return "yes" if (words[3], words[4]) in objects else "no"


def test_splits_have_the_requested_sizes_and_shapes(task):
    assert {k: len(v) for k, v in task.splits.items()} == SIZES
    for ex in task.splits["train"][:20]:
        assert ex.feats.shape == (9, 24) and ex.feats.dtype == np.float32
        np.testing.assert_array_equal(ex.boxes, cell_boxes(3))
        assert ex.image_ids is None and ex.label == {ex.answer: 1.0}


def test_every_answer_is_what_the_features_show(task):
    for split in ("train", "test"):
        for ex in task.splits[split]:
            cells = decode_scene(task, ex.feats)
            assert 2 <= sum(c is not None for c in cells) <= 6
            assert ex.answer == true_answer(ex.question, cells), ex.question
            assert ex.answer in task.answers


def test_boxes_are_the_grid_cells():
    boxes = cell_boxes(3)
    assert boxes[0].tolist() == [0, pytest.approx(1 / 3), 0, pytest.approx(1 / 3)]  # top left: x1, x2, y1, y2
    assert boxes[5].tolist() == [pytest.approx(2 / 3), 1, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert cell_name(5) == "middle right"


def test_same_seed_same_task_other_seed_other_scenes(task):
    again = make_shapes_task(feat_dim=24, seed=3, sizes=SIZES, noise=0.05)
    other = make_shapes_task(feat_dim=24, seed=4, sizes=SIZES, noise=0.05)
    for a, b in zip(task.splits["test"], again.splits["test"]):
        assert (a.question, a.answer) == (b.question, b.answer) and np.array_equal(a.feats, b.feats)
    assert [e.question for e in task.splits["test"]] != [e.question for e in other.splits["test"]]


def test_splits_are_independent_of_the_other_splits_sizes(task):
    bigger = make_shapes_task(feat_dim=24, seed=3, sizes={"train": 50, "test": 200}, noise=0.05)
    assert [e.question for e in bigger.splits["test"]] == [e.question for e in task.splits["test"]]


def test_chance_is_the_majority_answer_per_type(task):
    majority = task.majority()
    counts = Counter((e.question_type, e.answer) for e in task.splits["train"])
    for kind, answer in majority.items():
        assert counts[(kind, answer)] == max(n for (k, _), n in counts.items() if k == kind)
    test = task.splits["test"]
    expected = sum(e.answer == majority[e.question_type] for e in test) / len(test)
    assert task.chance("test")["all"] == pytest.approx(expected)
    assert 0.2 < expected < 0.5  # every type has several answers: chance stays low


def test_all_four_question_types_and_balanced_yes_no(task):
    types = Counter(e.question_type for e in task.splits["train"])
    assert set(types) == {"colour", "shape", "count", "exist"} and min(types.values()) > 50
    yes = sum(e.answer == "yes" for e in task.splits["train"] if e.question_type == "exist")
    assert 0.35 < yes / types["exist"] < 0.65


def test_a_subset_of_question_types():
    easy = make_shapes_task(feat_dim=4, sizes={"train": 100, "test": 50}, question_types=("colour", "shape"))
    assert {e.question_type for e in easy.splits["train"]} == {"colour", "shape"}
    assert easy.question_types == ("colour", "shape") and set(easy.chance()) == {"colour", "shape", "all"}


def test_words_cover_every_question(task):
    from vlsurgery.data.tokenizer import split_words

    vocab = {w for word in task.words() for w in split_words(word)}
    for ex in task.splits["train"]:
        assert set(split_words(f"{task.prompt} {ex.question} {ex.answer}")) <= vocab
    assert "nine" not in task.answers  # counts stop at max_objects


def test_summary_reports_sizes_vocabulary_and_chance(task):
    text = task.summary()
    assert "train 400" in text and f"answers ({len(task.answers)})" in text and "chance" in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(sizes={"dev": 3}), "unknown split"),
    (dict(min_objects=5, max_objects=3), "min_objects"),
    (dict(feat_dim=0), "feat_dim"),
    (dict(question_types=("colour", "size")), "expected some of colour, shape, count, exist"),
])
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(DataError, match=message):
        make_shapes_task(**kwargs)
