"""One vision-and-language example, and the errors of the data package.

Every reader and generator of :mod:`vlsurgery.data` produces :class:`VLExample` objects, and the
collator (:mod:`vlsurgery.data.collate`) turns a list of them into the keyword inputs of a compiled
model.  Nothing here needs torch: region features are numpy arrays.

>>> import numpy as np
>>> ex = VLExample("what colour is the circle?", "red",
...                feats=np.zeros((2, 8), np.float32), boxes=np.zeros((2, 4), np.float32))
>>> ex.regions, ex.feat_dim, ex.label
(2, 8, {'red': 1.0})
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vlsurgery.errors import VLSurgeryError


class DataError(VLSurgeryError, ValueError):
    """Data that vlsurgery cannot use: a file without the expected layout, a missing image id, ..."""


class DataFileError(DataError, OSError):
    """A data file cannot be read at all (missing, not HDF5, not JSON)."""


def file_error(path, what: str, expected: str | None = None) -> DataError:
    """A DataError ``<path>: <what>`` with an ``expected ...`` line when given."""
    message = f"{path}: {what}"
    if expected:
        message += f"\n  = expected {expected}"
    return DataError(message)


@dataclass
class VLExample:
    """A text input with the image regions it is about, and its target text.

    ``feats`` (R, feat_dim) and ``boxes`` (R, 4, in the projector's order x1, x2, y1, y2, each in
    [0, 1]) are float32; ``image_ids`` (R,) says which image each region comes from (0 or 1 for an
    NLVR2-style pair; None means all 0).  ``label`` maps each acceptable answer to its score (VQA soft
    scores; ``{answer: 1.0}`` when only ``answer`` is known), ``answers`` keeps the annotators' raw
    answers when the source had them (the official VQA accuracy needs them).  ``references`` holds
    every reference caption of a captioning example.
    """

    question: str
    answer: str | None
    feats: np.ndarray
    boxes: np.ndarray
    image_ids: np.ndarray | None = None
    label: dict[str, float] = field(default_factory=dict)
    answers: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    question_type: str = ""
    question_id: str | int | None = None
    img_id: str | None = None

    def __post_init__(self):
        self.feats = np.asarray(self.feats, dtype=np.float32)
        self.boxes = np.asarray(self.boxes, dtype=np.float32)
        if self.feats.ndim != 2:
            raise DataError(f"example {self.question_id!r}: feats must be (regions, feat_dim), "
                            f"got shape {self.feats.shape}")
        if self.boxes.shape != (self.feats.shape[0], 4):
            raise DataError(f"example {self.question_id!r}: boxes must be ({self.feats.shape[0]}, 4), one "
                            f"(x1, x2, y1, y2) per region, got shape {self.boxes.shape}")
        if self.image_ids is not None:
            self.image_ids = np.asarray(self.image_ids, dtype=np.int64)
            if self.image_ids.shape != (self.feats.shape[0],):
                raise DataError(f"example {self.question_id!r}: image_ids must be ({self.feats.shape[0]},), "
                                f"one image index per region, got shape {self.image_ids.shape}")
        if not self.label and self.answer is not None:
            self.label = {self.answer: 1.0}

    @property
    def regions(self) -> int:
        return int(self.feats.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.feats.shape[1])


def pair_regions(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]):
    """Two images' (feats, boxes) as one region list, NLVR2-style: feats, boxes and image ids 0/1.

    >>> f, b, ids = pair_regions((np.ones((2, 3)), np.zeros((2, 4))), (np.ones((1, 3)), np.zeros((1, 4))))
    >>> f.shape, b.shape, ids.tolist()
    ((3, 3), (3, 4), [0, 0, 1])
    """
    (fa, ba), (fb, bb) = first, second
    feats = np.concatenate([np.asarray(fa, np.float32), np.asarray(fb, np.float32)])
    boxes = np.concatenate([np.asarray(ba, np.float32), np.asarray(bb, np.float32)])
    ids = np.concatenate([np.zeros(len(fa), np.int64), np.ones(len(fb), np.int64)])
    return feats, boxes, ids
