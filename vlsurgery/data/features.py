"""Region features in HDF5, the layout of the VL-Adapter / VL-PET line of work.

One group per image id, holding::

    <img_id>/features   (R, feat_dim)  float      region (or grid) features
    <img_id>/boxes      (R, 4)         float      boxes in pixels
    <img_id>/img_h      ()             number     image height in pixels
    <img_id>/img_w      ()             number     image width in pixels

On reading, boxes are divided by the image size, so they lie in [0, 1], and reordered from the
file's ``box_order`` to the projector's (x1, x2, y1, y2) (docs/paper.md §5).  Detector features store
``(x1, y1, x2, y2)`` (``box_order="xyxy"``, the default); ``box_order="xxyy"`` keeps the stored
order (the reference code hands the stored numbers to its projector unchanged, so choose this to
reproduce it exactly).  h5py is imported on first use.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "feats.h5")
>>> write_region_features(path, {"img1": (np.ones((2, 3)), np.array([[0, 0, 50, 20], [10, 5, 100, 40]]), 40, 100)})
>>> with RegionFeatures(path) as store:
...     feats, boxes = store["img1"]
>>> feats.shape, boxes.tolist()
((2, 3), [[0.0, 0.5, 0.0, 0.5], [0.10000000149011612, 1.0, 0.125, 1.0]])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlsurgery.data.example import DataError, DataFileError, file_error
from vlsurgery.errors import nearest

BOX_ORDERS = {"xyxy": (0, 2, 1, 3), "xxyy": (0, 1, 2, 3)}  # file columns of x1, x2, y1, y2
LAYOUT = "a group per image id with datasets features (R, feat_dim), boxes (R, 4), img_h, img_w"
TOLERANCE = 1e-3


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise DataError("reading HDF5 region features needs h5py: pip install h5py") from exc
    return h5py


class RegionFeatures:
    """An open HDF5 file of region features, read one image at a time: ``store[img_id] -> (feats, boxes)``.

    ``feats`` is float32 (R, feat_dim), ``boxes`` float32 (R, 4) as (x1, x2, y1, y2) in [0, 1].
    Use it as a context manager, or call :meth:`close`.  A missing image id, a group without the
    four datasets, or boxes outside the image raise a :class:`DataError` naming the file.
    """

    def __init__(self, path, *, box_order: str = "xyxy"):
        h5py = _h5py()
        if box_order not in BOX_ORDERS:
            raise DataError(f"unknown box_order {box_order!r}: expected one of {', '.join(BOX_ORDERS)}")
        self.path, self.box_order = Path(path), box_order
        if not self.path.is_file():
            raise DataFileError(f"{self.path}: no such file: expected an HDF5 file of region features ({LAYOUT})")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataFileError(f"{self.path}: not a readable HDF5 file ({exc}): expected region features "
                                f"({LAYOUT})") from exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self._file)

    def __contains__(self, img_id) -> bool:
        return str(img_id) in self._file

    def keys(self) -> list[str]:
        return list(self._file.keys())

    @property
    def feat_dim(self) -> int:
        """The feature size of the file's first image (every image should share it)."""
        first = next(iter(self._file), None)
        if first is None:
            raise file_error(self.path, "holds no image", LAYOUT)
        return int(self._dataset(first, "features").shape[-1])

    def _dataset(self, img_id: str, name: str):
        h5py = _h5py()
        group = self._file[img_id]
        if not isinstance(group, h5py.Group):
            raise file_error(self.path, f"'{img_id}' is a dataset, not a group", LAYOUT)
        if name not in group:
            raise file_error(self.path, f"image '{img_id}' has no dataset '{name}' (it has: "
                             f"{', '.join(group.keys()) or 'nothing'})", LAYOUT)
        return group[name]

    def __getitem__(self, img_id) -> tuple[np.ndarray, np.ndarray]:
        key = str(img_id)
        if key not in self._file:
            guess = nearest(key, self._file.keys()) if len(self._file) < 100_000 else None
            raise file_error(self.path, f"no image '{key}' among its {len(self._file)} images"
                             + (f"; did you mean '{guess}'?" if guess else ""), "a group named after each image id")
        feats = np.asarray(self._dataset(key, "features")[()], dtype=np.float32)
        boxes = np.asarray(self._dataset(key, "boxes")[()], dtype=np.float32)
        height, width = (float(np.asarray(self._dataset(key, n)[()]).reshape(-1)[0]) for n in ("img_h", "img_w"))
        if feats.ndim != 2 or boxes.shape != (feats.shape[0], 4):
            raise file_error(self.path, f"image '{key}' has features {feats.shape} and boxes {boxes.shape}",
                             "features (R, feat_dim) and boxes (R, 4) with the same R")
        if height <= 0 or width <= 0:
            raise file_error(self.path, f"image '{key}' has size img_w={width:g} x img_h={height:g}",
                             "a positive image size in pixels")
        boxes = boxes[:, BOX_ORDERS[self.box_order]] / np.array([width, width, height, height], np.float32)
        if (boxes < -TOLERANCE).any() or (boxes > 1 + TOLERANCE).any():
            raise file_error(self.path, f"image '{key}' has boxes outside its {width:g} x {height:g} pixels "
                             f"(normalised range {boxes.min():.3f} .. {boxes.max():.3f})",
                             f"pixel boxes in {self.box_order} order within img_w x img_h")
        return feats, np.clip(boxes, 0.0, 1.0).astype(np.float32)


def write_region_features(path, images: dict) -> None:
    """Write ``{img_id: (features, boxes_in_pixels, img_h, img_w)}`` in the layout above (boxes as
    (x1, y1, x2, y2)): for tests, and for turning other features into this layout."""
    h5py = _h5py()
    with h5py.File(path, "w") as f:
        for img_id, (feats, boxes, img_h, img_w) in images.items():
            group = f.create_group(str(img_id))
            group["features"] = np.asarray(feats, np.float32)
            group["boxes"] = np.asarray(boxes, np.float32)
            group["img_h"], group["img_w"] = img_h, img_w
