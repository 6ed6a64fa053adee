"""Data for vision-and-language tuning: a procedural VQA task, readers, a tokenizer, a collator, metrics.

=================================  =================================================================
module                             gives
=================================  =================================================================
:mod:`vlsurgery.data.shapes`       :func:`make_shapes_task`: coloured shapes in a 3 x 3 grid, four
                                   question types, train/validation/test, seeded; chance accuracy
:mod:`vlsurgery.data.features`     :class:`RegionFeatures`: HDF5 region features (a group per image)
:mod:`vlsurgery.data.annotations`  :func:`read_vqa`, :func:`read_captions` (JSON) and the datasets
                                   joining them to features
:mod:`vlsurgery.data.tokenizer`    :func:`word_tokenizer`: an offline word-level Hugging Face
                                   tokenizer; :func:`fit_config` fits a BART/T5 config to it
:mod:`vlsurgery.data.collate`      :class:`VLCollator`: examples -> ``input_ids``, ``labels``,
                                   ``vis_feats``, ``vis_boxes``, ``vis_image_ids`` (needs torch)
:mod:`vlsurgery.data.metrics`      VQA accuracy, exact match, BLEU-4/CIDEr, ``compute_metrics``
                                   for VQA and captioning
=================================  =================================================================

Every example is a :class:`VLExample`; every error is a :class:`DataError` naming the file and what
was expected.  Importing this package does not import torch (the collator does, when first used).
See docs/data.md.

>>> from vlsurgery.data import make_shapes_task
>>> task = make_shapes_task(feat_dim=8, sizes={"train": 20, "test": 20})
>>> len(task.splits["train"]), task.answers[:3]
(20, ['blue', 'circle', 'five'])
"""

from vlsurgery.lazy import lazy_attributes
from vlsurgery.data.annotations import (CaptionDataset, CaptionImage, VQADataset, VQAQuestion, read_captions,
                                        read_vqa)
from vlsurgery.data.example import DataError, DataFileError, VLExample, pair_regions
from vlsurgery.data.features import RegionFeatures, write_region_features
from vlsurgery.data.metrics import (accuracy_by_type, answer_scores, caption_compute_metrics, caption_scores,
                                    exact_match, normalize_answer, soft_score, vqa_accuracy, vqa_compute_metrics)
from vlsurgery.data.shapes import ShapesTask, make_shapes_task
from vlsurgery.data.tokenizer import fit_config, shapes_tokenizer, word_tokenizer


__getattr__ = lazy_attributes(__name__, {"VLCollator": "collate"})  # imports torch: only on use


__all__ = ["CaptionDataset", "CaptionImage", "DataError", "DataFileError", "RegionFeatures", "ShapesTask",
           "VLCollator", "VLExample", "VQADataset", "VQAQuestion", "accuracy_by_type", "answer_scores",
           "caption_compute_metrics", "caption_scores", "exact_match", "fit_config", "make_shapes_task",
           "normalize_answer", "pair_regions",
           "read_captions", "read_vqa", "shapes_tokenizer", "soft_score", "vqa_accuracy", "vqa_compute_metrics",
           "word_tokenizer", "write_region_features"]
