"""Training and evaluating on a caption directory: COCO-style caption JSON + HDF5 region features."""

import argparse
import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vlsurgery.cli import train as train_cli
from vlsurgery.data import DataError, caption_compute_metrics, word_tokenizer, write_region_features
from vlsurgery.data import metrics as metrics_module
from vlsurgery.training import load_recipe
from vlsurgery.training.data import directory_data
from vlsurgery.training.run import build_trainer, train

SPEC = "lib:examples/demo-t5.vls"  # tiny-t5 with `projector feat_dim=16`
FEAT_DIM, REGIONS = 16, 4
COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle"]
has_scorers = metrics_module.caption_scorers() is not None


def _image(rng, colour: int, shape: int):
    """Region features that say what the image shows: a colour direction plus a shape direction."""
    basis = np.eye(FEAT_DIM, dtype=np.float32)
    feats = rng.normal(0, 0.05, (REGIONS, FEAT_DIM)).astype(np.float32)
    feats[0] += 3 * basis[colour] + 3 * basis[8 + shape]
    boxes = np.array([[0, 0, 50, 50], [50, 0, 100, 50], [0, 50, 50, 100], [50, 50, 100, 100]], np.float32)
    return feats, boxes, 100, 100


def _entry(name, colour, shape, split):
    c, s = COLOURS[colour], SHAPES[shape]
    return {"filename": f"{name}.jpg", "split": split,
            "sentences": [{"raw": f"A {c} {s}."}, {"raw": f"There is a {c} {s} in the picture."}]}


def write_caption_dir(root, *, one_file=False):
    """A caption directory in the real layout: train.json, val.json (Karpathy-style COCO captions) and
    features.h5.  Train: 12 images with 2 captions each; val: 3 images.  ``one_file``: a single file
    holding both splits serves as train.json and val.json."""
    rng = np.random.default_rng(0)
    images, entries = {}, {"train": [], "val": []}
    scenes = [(c, s) for c in range(4) for s in range(3)]
    for i, (c, s) in enumerate(scenes):
        images[f"COCO_train_{i}"] = _image(rng, c, s)
        entries["train"].append(_entry(f"COCO_train_{i}", c, s, "train"))
    for i, (c, s) in enumerate([(0, 0), (1, 1), (2, 2)]):
        images[f"COCO_val_{i}"] = _image(rng, c, s)
        entries["val"].append(_entry(f"COCO_val_{i}", c, s, "val"))
    root.mkdir(parents=True, exist_ok=True)
    write_region_features(root / "features.h5", images)
    if one_file:
        whole = json.dumps({"images": entries["train"] + entries["val"]})
        (root / "train.json").write_text(whole)
        (root / "val.json").write_text(whole)
    else:
        (root / "train.json").write_text(json.dumps({"images": entries["train"]}))
        (root / "val.json").write_text(json.dumps({"images": entries["val"]}))
    return root


def test_a_caption_directory_trains_and_is_scored(tmp_path):
    torch.set_num_threads(1)
    data = write_caption_dir(tmp_path / "coco")
    run = train(SPEC, data=data, output_dir=tmp_path / "out", recipe="demo", max_steps=40, learning_rate=2e-2,
                per_device_train_batch_size=8, logging_steps=8, save_strategy="no", disable_tqdm=True)
    assert run.data.kind == "caption" and run.data.prompt == "caption:"
    assert len(run.data.train) == 24 and len(run.data.eval) == 3  # every reference a training example
    assert run.data.eval[0].references == ("A red circle.", "There is a red circle in the picture.")
    losses = [log["loss"] for log in run.trainer.state.log_history if "loss" in log]
    assert losses[-1] < 0.75 * losses[0], losses
    assert 0 <= run.metrics["eval_exact_match"] <= 1 and "eval_loss" in run.metrics
    assert ("eval_bleu4" in run.metrics and "eval_cider" in run.metrics) == has_scorers
    assert "validation captions:" in run.summary() and "most frequent training caption" in run.summary()
    # the collator puts the caption prompt before an empty question; generation may run past an answer's length
    tok, batch = run.trainer.processing_class, run.trainer.data_collator([run.data.train[0]])
    assert tok.unk_token_id not in batch["input_ids"][0].tolist()  # the prompt's words are in the vocabulary
    assert tok.decode(batch["input_ids"][0], skip_special_tokens=True).replace(" ", "") == "caption:"
    assert run.trainer.args.generation_max_length >= 20


@pytest.mark.slow
def test_captions_are_learned(tmp_path):
    """300 steps on the toy directory: the validation scenes (seen in training with other noise) get
    their captions back.  Measured (seed 0, 5 beams): exact match 2/3, BLEU-4 0.93, CIDEr 4.96, in 15 s."""
    torch.set_num_threads(1)
    run = train(SPEC, data=write_caption_dir(tmp_path / "coco"), output_dir=tmp_path / "out", recipe="demo",
                max_steps=300, learning_rate=2e-2, per_device_train_batch_size=8, save_strategy="no",
                disable_tqdm=True, beams=5)
    assert run.metrics["eval_exact_match"] >= 0.6
    if has_scorers:
        assert run.metrics["eval_bleu4"] > 0.5 and run.metrics["eval_cider"] > 3


def test_cli_prints_caption_scores(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    data = write_caption_dir(tmp_path / "coco")
    args = parser.parse_args(["train", SPEC, "--data", str(data), "--output", str(tmp_path / "out"), "--recipe",
                              "demo", "--max-steps", "2", "--batch-size", "4", "--beams", "2",
                              "--set", "save_strategy=no", "--set", "disable_tqdm=true"])
    assert train_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "validation captions:" in out and "exact match" in out
    assert ("BLEU-4" in out and "CIDEr" in out) if has_scorers else "need pycocoevalcap" in out


def test_recipes_carry_the_caption_prompt_and_it_is_used(tmp_path):
    for name in ("paper/vl-bart", "paper/vl-t5"):
        recipe = load_recipe(name)
        assert recipe["caption_prompt"] == "caption:" and recipe["prompt"] == "vqa:" and recipe["beams"] == 5
    data = write_caption_dir(tmp_path / "coco")
    trainer, _ = build_trainer(SPEC, data, output_dir=tmp_path / "out", recipe="paper/vl-t5",
                               caption_prompt="describe:", caption_length=12, per_device_train_batch_size=4)
    assert trainer.data_collator.prompt == "describe:"  # caption data reads caption_prompt, not prompt
    assert trainer.args.generation_num_beams == 5 and trainer.args.generation_max_length == 13
    tok = trainer.processing_class  # the preset's word tokenizer knows the custom prompt's word
    assert tok.unk_token_id not in tok("describe:", add_special_tokens=False)["input_ids"]


def _ids(tokenizer, texts):
    return np.array(tokenizer(texts, padding=True)["input_ids"])


@pytest.mark.skipif(not has_scorers, reason="pycocoevalcap (the `captions` extra) is not installed")
def test_bleu_and_cider_by_hand():
    """One reference per image, so the numbers can be worked out by hand.

    All right: BLEU-4 is 1 and CIDEr-D 10 (cosine 1 for every n-gram size, no length penalty, times
    10).  Image 2 wrong with a caption sharing no word with its reference: CIDEr-D (10 + 0) / 2 = 5;
    BLEU-4 over the corpus: clipped n-gram matches 6/10, 5/8, 4/6, 3/4 (image 1's six words only),
    candidate length 10 against the closest reference lengths 6 + 6, so a brevity penalty exp(1 - 12/10).
    """
    refs = ["a red circle on the left", "a green square at the top"]
    examples = [SimpleNamespace(references=(r,), answer=r) for r in refs]
    tok = word_tokenizer(refs + ["yellow triangle below everything"], style="t5")
    metrics = caption_compute_metrics(tok, examples)
    labels = _ids(tok, refs)
    perfect = metrics((_ids(tok, refs), labels))
    assert perfect["exact_match"] == 1.0
    assert perfect["bleu4"] == pytest.approx(1.0, abs=1e-6) and perfect["cider"] == pytest.approx(10.0, abs=1e-6)
    half = metrics((_ids(tok, [refs[0], "yellow triangle below everything"]), labels))
    bleu = math.exp(1 - 12 / 10) * (6 / 10 * 5 / 8 * 4 / 6 * 3 / 4) ** 0.25
    assert half["exact_match"] == 0.5 and half["cider"] == pytest.approx(5.0, abs=1e-6)
    assert half["bleu4"] == pytest.approx(bleu, abs=1e-6)


def test_without_pycocoevalcap_exact_match_only_said_once(tmp_path, monkeypatch):
    data = directory_data(write_caption_dir(tmp_path / "coco"))
    tok = data.tokenizer("t5")
    monkeypatch.setattr(metrics_module, "caption_scorers", lambda: None)
    metrics = caption_compute_metrics(tok, data.eval)
    monkeypatch.setattr(data.eval, "features", None)  # scoring reads the captions, never a region feature
    pred = (_ids(tok, ["a red circle", "nothing", "nothing"]), _ids(tok, ["x", "x", "x"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = metrics(pred), metrics(pred)
    assert first == second == {"exact_match": pytest.approx(1 / 3)}
    assert len([w for w in caught if "pycocoevalcap" in str(w.message)]) == 1
    assert "need pycocoevalcap" in data.headline({"eval_exact_match": 0.5})


def test_one_karpathy_file_serves_both_splits(tmp_path):
    data = directory_data(write_caption_dir(tmp_path / "coco", one_file=True))
    assert len(data.train) == 24 and len(data.eval) == 3
    assert {ex.img_id for ex in data.eval} == {"COCO_val_0", "COCO_val_1", "COCO_val_2"}


def _write(path, payload):
    path.write_text(json.dumps(payload))


def test_bad_caption_directories_are_explained(tmp_path):
    data = write_caption_dir(tmp_path / "coco")
    _write(data / "val.json", [{"question_id": 1, "img_id": "COCO_val_0", "sent": "?", "label": {"yes": 1}}])
    with pytest.raises(DataError, match=r"val\.json: holds VQA questions but .*train\.json holds captions"):
        directory_data(data)
    _write(data / "train.json", {"annotations": []})
    with pytest.raises(DataError, match=r"train\.json: holds a JSON object with keys annotations\n.*expected VQA "
                                        r"questions .* or COCO captions"):
        directory_data(data)
    _write(data / "train.json", "captions")
    with pytest.raises(DataError, match=r"train\.json: holds a JSON str"):
        directory_data(data)
    _write(data / "train.json", {"images": [{"img_id": "COCO_nowhere", "sentences": ["A cat."]}]})
    _write(data / "val.json", {"images": [{"img_id": "COCO_val_0", "sentences": ["A red circle."]}]})
    with pytest.raises(DataError, match=r"train\.json: 1 image id\(s\) have no region features in .*COCO_nowhere"):
        directory_data(data)
    _write(data / "val.json", {"images": [{"img_id": "COCO_val_0", "split": "train", "sentences": ["A."]},
                                          {"img_id": "COCO_val_1", "split": "test", "sentences": ["B."]}]})
    with pytest.raises(DataError, match=r"val\.json: no val image with a caption \(the file holds splits test, "
                                        r"train; val takes val\)"):
        directory_data(data)
    (data / "features.h5").unlink()
    with pytest.raises(DataError, match=r"features\.h5 missing: expected a VQA data directory \(or a caption"):
        directory_data(data)
