"""A procedural visual question answering task: coloured shapes in a grid (offline, seeded).

Each scene puts 2 to 6 objects, each a (colour, shape), into distinct cells of a 3 x 3 grid.  Every
grid cell is one image region, as CLIP grid features are in the paper's setting (docs/paper.md §1,
§5): its box is the cell (x1, x2, y1, y2) normalised to [0, 1], and its feature is a fixed random
embedding of what the cell holds plus small Gaussian noise, ``feat_dim`` wide: the sum of a random
vector per colour and one per shape (so "circle" and "red" are each one direction a tiny model can
find), or one "empty" vector.  Questions come from four templates and have one-word answers:

=========  ======================================  ==============================
type       question                                answer
=========  ======================================  ==============================
colour     what colour is the circle?              a colour (the shape is unique)
shape      what shape is at the top left?          a shape (the cell is occupied)
count      how many squares are there?             zero ... six
exist      is there a red triangle?                yes / no (balanced)
=========  ======================================  ==============================

The world (the embeddings) comes from ``seed``; each split draws its scenes from its own stream of
the same seed, so a task is reproducible split by split.  ``chance`` is the accuracy of answering
each question type's most frequent training answer, the baseline to beat.

>>> task = make_shapes_task(feat_dim=16, sizes={"train": 300, "validation": 50, "test": 100})
>>> ex = task.splits["train"][0]
>>> ex.feats.shape, ex.boxes.shape
((9, 16), (9, 4))
>>> sorted(task.question_types)
['colour', 'count', 'exist', 'shape']
>>> 0.2 < task.chance("test")["all"] < 0.6
True
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vlsurgery.data.example import DataError, VLExample

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "center", "right")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUESTION_TYPES = ("colour", "shape", "count", "exist")
SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {"train": 4000, "validation": 500, "test": 1000}
PROMPT = "vqa:"


def plural(shape: str) -> str:
    return shape + "s"


def cell_name(cell: int, grid: int = 3) -> str:
    """The spoken position of a cell of a 3 x 3 grid, row-major: 0 -> 'top left', 4 -> 'middle center'."""
    if grid != 3:
        return f"row {NUMBERS[cell // grid]} column {NUMBERS[cell % grid]}"
    return f"{ROWS[cell // grid]} {COLUMNS[cell % grid]}"


def cell_boxes(grid: int = 3) -> np.ndarray:
    """(grid*grid, 4) boxes of the cells, row-major, as (x1, x2, y1, y2) in [0, 1]."""
    out = np.zeros((grid * grid, 4), np.float32)
    for cell in range(grid * grid):
        row, col = divmod(cell, grid)
        out[cell] = (col / grid, (col + 1) / grid, row / grid, (row + 1) / grid)
    return out


@dataclass(frozen=True)
class Scene:
    """What each cell holds: ``cells[i]`` is ``(colour, shape)`` or None for an empty cell."""

    cells: tuple

    def objects(self):
        return [(i, c) for i, c in enumerate(self.cells) if c is not None]


@dataclass
class ShapesTask:
    """The generated splits, the answer vocabulary and the chance baseline."""

    feat_dim: int
    seed: int
    grid: int
    max_objects: int
    splits: dict[str, list[VLExample]]
    prototypes: np.ndarray = field(repr=False)
    question_types: tuple[str, ...] = QUESTION_TYPES
    prompt: str = PROMPT

    @property
    def answers(self) -> list[str]:
        """Every answer a question of this task can have, sorted (counts from zero to ``max_objects``)."""
        counts = NUMBERS[: self.max_objects + 1]
        return sorted({*COLOURS, *SHAPES, *counts, "yes", "no"})

    def words(self) -> list[str]:
        """Every word of every question, prompt and answer the task can produce (a tokenizer's vocabulary)."""
        words = set(self.answers) | {plural(s) for s in SHAPES} | {self.prompt, "?"}
        words |= set("what colour is the shape at how many are there a".split())
        for cell in range(self.grid * self.grid):
            words |= set(cell_name(cell, self.grid).split())
        return sorted(words)

    def majority(self) -> dict[str, str]:
        """The most frequent training answer of each question type (ties: alphabetical)."""
        by_type: dict[str, Counter] = {}
        for ex in self.splits["train"]:
            by_type.setdefault(ex.question_type, Counter())[ex.answer] += 1
        return {t: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for t, c in by_type.items()}

    def chance(self, split: str = "test") -> dict[str, float]:
        """Accuracy on ``split`` of answering each type's training majority answer, per type and ``all``."""
        majority, hits, totals = self.majority(), Counter(), Counter()
        for ex in self.splits[split]:
            totals[ex.question_type] += 1
            hits[ex.question_type] += ex.answer == majority.get(ex.question_type)
        out = {t: hits[t] / totals[t] for t in sorted(totals)}
        out["all"] = sum(hits.values()) / max(1, sum(totals.values()))
        return out

    def summary(self) -> str:
        """A few lines: split sizes, answer vocabulary, chance accuracy."""
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        chance = self.chance()
        per_type = ", ".join(f"{t} {chance[t]:.0%}" for t in self.question_types if t in chance)
        return (f"shapes task (seed {self.seed}, feat_dim {self.feat_dim}): {sizes}\n"
                f"answers ({len(self.answers)}): {' '.join(self.answers)}\n"
                f"chance (majority answer per question type): {chance['all']:.1%} ({per_type})")


def random_scene(rng: np.random.Generator, grid: int, min_objects: int, max_objects: int) -> Scene:
    n = int(rng.integers(min_objects, max_objects + 1))
    where = rng.choice(grid * grid, size=n, replace=False)
    cells: list = [None] * (grid * grid)
    for cell in where:
        cells[cell] = (COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))])
    return Scene(tuple(cells))


def ask(scene: Scene, kind: str, rng: np.random.Generator, grid: int):
    """A (question, answer) of type ``kind`` about ``scene``, or None when the scene allows none."""
    objects = scene.objects()
    if kind == "colour":
        shapes = Counter(s for _, (_, s) in objects)
        unique = [s for s in SHAPES if shapes[s] == 1]
        if not unique:
            return None
        shape = unique[rng.integers(len(unique))]
        colour = next(c for _, (c, s) in objects if s == shape)
        return f"what colour is the {shape}?", colour
    if kind == "shape":
        cell, (_, shape) = objects[rng.integers(len(objects))]
        return f"what shape is at the {cell_name(cell, grid)}?", shape
    if kind == "count":
        shape = SHAPES[rng.integers(len(SHAPES))]
        return f"how many {plural(shape)} are there?", NUMBERS[sum(s == shape for _, (_, s) in objects)]
    present = sorted({pair for _, pair in objects})
    if rng.random() < 0.5:
        colour, shape = present[rng.integers(len(present))]
        return f"is there a {colour} {shape}?", "yes"
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    colour, shape = absent[rng.integers(len(absent))]
    return f"is there a {colour} {shape}?", "no"


def region_features(scene: Scene, prototypes: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """One feature row per cell: its colour's row plus its shape's row of ``prototypes`` (the last
    row alone for an empty cell), plus Gaussian noise of standard deviation ``noise``."""
    empty = len(prototypes) - 1
    colour = [empty if c is None else COLOURS.index(c[0]) for c in scene.cells]
    shape = [empty if c is None else len(COLOURS) + SHAPES.index(c[1]) for c in scene.cells]
    feats = prototypes[colour] + prototypes[shape] * np.array([[c is not None] for c in scene.cells])
    feats += noise * rng.standard_normal(feats.shape)
    return feats.astype(np.float32)


def make_shapes_task(feat_dim: int = 64, *, seed: int = 0, sizes: dict[str, int] | None = None,
                     min_objects: int = 2, max_objects: int = 6, noise: float = 0.1,
                     grid: int = 3, question_types=QUESTION_TYPES) -> ShapesTask:
    """Generate the task: ``sizes`` examples per split (default :data:`DEFAULT_SIZES`), one question per scene.

    Question types are drawn uniformly from ``question_types`` (a subset of :data:`QUESTION_TYPES`
    gives an easier task: colour and shape questions are learned first); a scene that cannot carry the drawn type (no unique shape
    for a colour question) gets another draw.  Prototypes have unit-variance entries, so the noise is
    relative to a signal of norm about sqrt(feat_dim).
    """
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise DataError(f"unknown split(s) {', '.join(unknown)}: expected some of {', '.join(SPLITS)}")
    kinds = tuple(question_types)
    if not kinds or not set(kinds) <= set(QUESTION_TYPES):
        raise DataError(f"question_types {kinds}: expected some of {', '.join(QUESTION_TYPES)}")
    if feat_dim < 1 or grid < 2:
        raise DataError(f"feat_dim must be >= 1 and grid >= 2 (got feat_dim={feat_dim}, grid={grid})")
    if not 1 <= min_objects <= max_objects <= min(grid * grid, len(NUMBERS) - 1):
        raise DataError(f"need 1 <= min_objects <= max_objects <= {min(grid * grid, len(NUMBERS) - 1)} "
                        f"(got {min_objects}, {max_objects})")
    world = np.random.default_rng([seed, 0])
    prototypes = world.standard_normal((len(COLOURS) + len(SHAPES) + 1, feat_dim))
    boxes = cell_boxes(grid)
    splits = {}
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, 1 + number])
        examples = []
        while len(examples) < sizes.get(split, 0):
            scene = random_scene(rng, grid, min_objects, max_objects)
            kind = kinds[rng.integers(len(kinds))]
            qa = ask(scene, kind, rng, grid)
            if qa is None:
                continue
            feats = region_features(scene, prototypes, noise, rng)
            examples.append(VLExample(qa[0], qa[1], feats, boxes.copy(), question_type=kind,
                                      question_id=f"{split}-{len(examples)}", img_id=f"{split}-{len(examples)}"))
        splits[split] = examples
    return ShapesTask(feat_dim=feat_dim, seed=seed, grid=grid, max_objects=max_objects, splits=splits,
                      prototypes=prototypes, question_types=kinds)
