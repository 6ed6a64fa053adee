"""Readers of the VL-Adapter / VL-PET data layout, on small files written here: HDF5 region features,
VQA JSON (soft labels or annotators' answers), Karpathy caption JSON, and the datasets joining them."""

import json

import h5py
import numpy as np
import pytest

from vlsurgery.data import (CaptionDataset, DataError, DataFileError, RegionFeatures, VQADataset, read_captions,
                            read_vqa, write_region_features)
from vlsurgery.data.collate import VLCollator
from vlsurgery.data.tokenizer import word_tokenizer

BOXES = np.array([[0, 0, 320, 240], [160, 120, 640, 480], [64, 48, 128, 96]], np.float32)  # x1, y1, x2, y2


@pytest.fixture
def features(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train_boxes36.h5"
    write_region_features(path, {"COCO_1": (rng.normal(size=(3, 6)), BOXES, 480, 640),
                                 "COCO_2": (rng.normal(size=(3, 6)), BOXES / 2, 240, 320)})
    return path


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_boxes_are_normalised_by_the_image_size_and_reordered(features, tmp_path):
    with RegionFeatures(features) as store:
        assert len(store) == 2 and "COCO_1" in store and store.feat_dim == 6
        feats, boxes = store["COCO_1"]
        with h5py.File(features) as f:
            np.testing.assert_allclose(feats, f["COCO_1/features"][()])
        assert feats.dtype == boxes.dtype == np.float32
        np.testing.assert_allclose(boxes, [[0, .5, 0, .5], [.25, 1, .25, 1], [.1, .2, .1, .2]])  # x1, x2, y1, y2
        np.testing.assert_allclose(store["COCO_2"][1], boxes)
    write_region_features(tmp_path / "xxyy.h5", {"a": (np.zeros((1, 2)), [[64, 320, 48, 240]], 480, 640)})
    with RegionFeatures(tmp_path / "xxyy.h5", box_order="xxyy") as store:  # stored order kept
        np.testing.assert_allclose(store["a"][1], [[.1, .5, .1, .5]])


def test_feature_file_errors_name_the_file_and_the_layout(features, tmp_path):
    with RegionFeatures(features) as store:
        with pytest.raises(DataError, match=r"train_boxes36.h5: no image 'COCO_3'.*did you mean 'COCO_"):
            store["COCO_3"]
    with pytest.raises(DataFileError, match="no such file"):
        RegionFeatures(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataFileError, match=r"text.h5: not a readable HDF5 file.*features \(R, feat_dim\)"):
        RegionFeatures(tmp_path / "text.h5")
    with pytest.raises(DataError, match="box_order"):
        RegionFeatures(features, box_order="cxcywh")


def test_malformed_groups_are_explained(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["nosize/features"], f["nosize/boxes"] = np.zeros((2, 3)), np.zeros((2, 4))
        g = f.create_group("outside")
        g["features"], g["boxes"], g["img_h"], g["img_w"] = np.zeros((1, 3)), [[0, 0, 700, 10]], 100, 100
        g = f.create_group("shapes")
        g["features"], g["boxes"], g["img_h"], g["img_w"] = np.zeros((2, 3)), np.zeros((3, 4)), 10, 10
    with RegionFeatures(path) as store:
        with pytest.raises(DataError, match="image 'nosize' has no dataset 'img_h'"):
            store["nosize"]
        with pytest.raises(DataError, match="boxes outside its 100 x 100 pixels"):
            store["outside"]
        with pytest.raises(DataError, match=r"features \(2, 3\) and boxes \(3, 4\)"):
            store["shapes"]


def test_vqa_json_with_soft_labels_and_with_annotator_answers(tmp_path):
    path = write_json(tmp_path / "karpathy_train.json", [
        {"question_id": 7, "img_id": "COCO_1", "sent": "What is it?", "label": {"net": 1, "netting": 0.3}},
        {"question_id": 8, "image_id": "COCO_2", "question": "How many?", "answers": ["2"] * 3 + ["3"] * 7},
        {"question_id": 9, "img_id": "COCO_2", "sent": "Color?", "answers": [{"answer": "red", "answer_id": 1}] * 10},
    ])
    q = read_vqa(path)
    assert [x.question_id for x in q] == [7, 8, 9] and q[1].img_id == "COCO_2" and q[1].question == "How many?"
    assert q[0].label == {"net": 1.0, "netting": 0.3} and q[0].answer == "net" and q[0].answers == ()
    assert q[1].label == {"3": 1.0, "2": 0.9} and q[1].answer == "3" and len(q[1].answers) == 10
    assert q[2].label == {"red": 1.0}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"questions": []}), "VQA v2 questions file"),
    (json.dumps([{"question_id": 1, "sent": "q"}]), "entry 0 has no img_id"),
    (json.dumps([{"question_id": 1, "img_id": "a", "sent": "q", "label": ["yes"]}]), "'label' is"),
    (json.dumps([{"question_id": 1, "img_id": "a", "sent": "q", "answers": [3]}]), "an answer is 3"),
])
def test_malformed_vqa_json_is_explained(tmp_path, content, message):
    (tmp_path / "q.json").write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_vqa(tmp_path / "q.json")
    assert "q.json" in str(info.value)


def test_vqa_dataset_joins_features_and_collates(tmp_path, features):
    path = write_json(tmp_path / "q.json", [
        {"question_id": 1, "img_id": "COCO_1", "sent": "is it red?", "label": {"yes": 1.0}},
        {"question_id": 2, "img_id": "COCO_2", "sent": "is it blue?", "answers": ["no"] * 10}])
    with RegionFeatures(features) as store:
        data = VQADataset(read_vqa(path), store, max_regions=2)
        ex = data[1]
        assert len(data) == 2 and ex.feats.shape == (2, 6) and ex.answer == "no" and ex.answers == ("no",) * 10
        tok = word_tokenizer(["is it red blue yes no ?"], style="t5")
        batch = VLCollator(tok)([data[0], data[1]])
        assert batch["vis_feats"].shape == (2, 2, 6) and batch["labels"].shape == (2, 2)
        missing = write_json(tmp_path / "val.json", [{"question_id": 3, "img_id": "COCO_9", "sent": "?", "label": {}}])
        with pytest.raises(DataError, match=r"val.json: 1 image id\(s\) have no region features in .*COCO_9"):
            VQADataset(read_vqa(missing), store, source=missing)


def test_karpathy_captions_by_split_and_caption_dataset(tmp_path, features):
    path = write_json(tmp_path / "dataset_coco.json", {"images": [
        {"filename": "COCO_1.jpg", "split": "train", "sentences": [{"raw": "A cat."}, {"raw": "A small cat."}]},
        {"img_id": "COCO_2", "split": "restval", "sentences": [{"raw": "Two dogs."}]},
        {"filename": "COCO_3.jpg", "split": "test", "sentences": [{"raw": "A bird."}]}]})
    assert [im.img_id for im in read_captions(path)] == ["COCO_1", "COCO_2", "COCO_3"]
    train = read_captions(path, "train")
    assert [im.img_id for im in train] == ["COCO_1", "COCO_2"] and train[0].captions == ("A cat.", "A small cat.")
    assert [im.img_id for im in read_captions(path, "test")] == ["COCO_3"]
    with RegionFeatures(features) as store:
        per_caption = CaptionDataset(train, store)
        assert len(per_caption) == 3 and per_caption[1].answer == "A small cat." and per_caption[1].question == ""
        per_image = CaptionDataset(train, store, per_caption=False)
        assert len(per_image) == 2 and per_image[0].answer is None and per_image[0].references == ("A cat.", "A small cat.")
        with pytest.raises(DataError, match="COCO_3"):
            CaptionDataset(read_captions(path, "test"), store)


@pytest.mark.parametrize("data, message", [
    ({"annotations": []}, "has no list under 'images'"),
    ({"images": [{"sentences": []}]}, "image 0 lacks img_id/filename"),
    ({"images": [{"file_name": "COCO_1.jpg", "id": 1}], "annotations": [{"image_id": 1, "caption": "A cat."}]},
     r"(?s)COCO's official captions layout.*convert the file to it"),
    ({"images": [{"img_id": "a", "sentences": [{"tokens": ["a"]}]}]}, "a sentence has no text"),
])
def test_malformed_caption_json_is_explained(tmp_path, data, message):
    with pytest.raises(DataError, match=message):
        read_captions(write_json(tmp_path / "c.json", data))
    with pytest.raises(DataError, match="unknown caption split"):
        read_captions(write_json(tmp_path / "ok.json", {"images": []}), "dev")
