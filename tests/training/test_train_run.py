"""``train()`` and ``vlsurgery train``: a short run on the shapes task, the CLI, bad data."""

import argparse

import numpy as np
import pytest
import torch

from vlsurgery.cli import train as train_cli
from vlsurgery.data import DataError
from vlsurgery.training import train

SPEC = "lib:examples/demo-t5.vls"


def _args(*argv):
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["train", *argv])


def test_a_short_run_beats_chance(tmp_path):
    torch.set_num_threads(1)
    run = train(SPEC, output_dir=tmp_path, recipe="demo", max_steps=300, save_strategy="no", disable_tqdm=True,
                train_size=2000, eval_size=200)
    assert run.result.global_step == 300 and run.model is run.trainer.model
    assert run.accuracy >= run.chance + 0.03, (run.metrics, run.chance)
    assert (tmp_path / "vlsurgery.safetensors").is_file()
    assert "vs chance" in run.summary()


def test_cli_trains_and_reports(tmp_path, capsys):
    args = _args(SPEC, "--output", str(tmp_path), "--recipe", "demo", "--max-steps", "2", "--lr", "0.01",
                 "--batch-size", "4", "--set", "eval_size=8", "--set", "train_size=16", "--set", "save_strategy=no")
    assert args.func is train_cli.run
    assert train_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "validation accuracy" in out and "vs chance" in out and str(tmp_path) in out


def test_data_directory_without_the_files_is_explained(tmp_path):
    (tmp_path / "train.json").write_text("[]")
    with pytest.raises(DataError, match=r"val\.json, features\.h5 missing: expected a VQA data directory"):
        train(SPEC, data=tmp_path, output_dir=tmp_path / "out")


def test_bad_set_is_a_usage_error():
    from vlsurgery.errors import UsageError

    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        train_cli.overrides(_args(SPEC, "--set", "oops"))


def test_a_vqa_directory_trains(tmp_path):
    """The VL-T5 layout (question JSON + HDF5 region features), written from shapes scenes."""
    import json

    from vlsurgery.data import make_shapes_task, write_region_features

    task = make_shapes_task(16, sizes={"train": 24, "validation": 8})
    images, splits = {}, {}
    for split, name in (("train", "train.json"), ("validation", "val.json")):
        rows = []
        for i, ex in enumerate(task.splits[split]):
            img = f"{split}_{i}"
            x1, x2, y1, y2 = ex.boxes.T
            images[img] = (ex.feats, 100 * np.stack([x1, y1, x2, y2], 1), 100, 100)
            rows.append({"question_id": img, "img_id": img, "sent": ex.question, "label": {ex.answer: 1.0}})
        (tmp_path / name).write_text(json.dumps(rows))
        splits[split] = rows
    write_region_features(tmp_path / "features.h5", images)
    run = train(SPEC, data=tmp_path, output_dir=tmp_path / "out", recipe="demo", max_steps=2,
                per_device_train_batch_size=4, save_strategy="no", disable_tqdm=True)
    from collections import Counter

    guess = Counter(r["sent"] and next(iter(r["label"])) for r in splits["train"]).most_common(1)[0][0]
    expected = sum(next(iter(r["label"])) == guess for r in splits["validation"]) / len(splits["validation"])
    assert run.result.global_step == 2 and 0 <= run.accuracy <= 1 and run.chance == pytest.approx(expected)
    assert len(run.data.train) == 24 and len(run.data.eval) == 8


def test_through_the_command_line_entry_point(tmp_path, capsys):
    """Registered like every sub-command (vlsurgery/cli/main.py COMMANDS): errors exit 1 with the file named."""
    from vlsurgery.cli import main

    assert train_cli in main.COMMANDS
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_train_epoch: 3\n")
    assert main.main(["train", SPEC, "--recipe", str(bad), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "vlsurgery train: error:" in err and "bad.yaml" in err and "did you mean 'num_train_epochs'" in err
    assert main.main(["train", SPEC, "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 1
    assert "expected 'shapes' or a VQA data directory" in capsys.readouterr().err


def test_a_batch_without_regions_is_refused_for_a_design_with_a_projector(tmp_path):
    """Text-only batches would silently train something other than the design: a clear error instead."""
    from vlsurgery.training import build_trainer

    trainer, data = build_trainer(SPEC, output_dir=tmp_path, recipe="demo", train_size=16, eval_size=8,
                                  disable_tqdm=True, save_strategy="no")
    batch = trainer.data_collator(data.train[:4])
    text_only = {k: v for k, v in batch.items() if not k.startswith("vis_")}
    with pytest.raises(DataError, match="without vis_feats .* the design has a visual projector"):
        trainer.compute_loss(trainer.model, text_only)
    with pytest.raises(DataError, match="without vis_feats"):
        trainer.prediction_step(trainer.model, text_only, prediction_loss_only=True)
    assert torch.isfinite(trainer.compute_loss(trainer.model, batch))


def test_regions_for_a_design_without_projector_are_refused(tmp_path):
    import vlsurgery
    from vlsurgery.errors import UsageError
    from vlsurgery.profiles.backbone import load_model

    model = vlsurgery.compile(vlsurgery.parse("backbone tiny-t5\nencoder.ffn: adapter r=4\n"), load_model("tiny-t5")[0])
    ids = torch.randint(3, 100, (2, 5))
    with pytest.raises(UsageError, match="no visual projector, so visual inputs would be ignored"):
        model(input_ids=ids, labels=ids, vis_feats=torch.randn(2, 9, 16), vis_boxes=torch.rand(2, 9, 4))


def test_answers_are_the_trainers_predictions_as_text(tmp_path):
    """``vlsurgery.training.answers``: what the model generates, decoded; the same answers as the
    Trainer's evaluation scores (its exact match equals the share of answers that are right)."""
    import vlsurgery.training.answering  # noqa: F401  (the submodule must not shadow the function)
    from vlsurgery.data import accuracy_by_type
    from vlsurgery.training import answers

    run = train(SPEC, output_dir=tmp_path, recipe="demo", max_steps=60, save_strategy="no", disable_tqdm=True,
                train_size=320, eval_size=40)
    run.model.train()
    said = answers(run.model, run.trainer.processing_class, run.data.eval, prompt=run.data.prompt, max_new_tokens=5)
    assert run.model.training  # the mode it was in comes back
    assert len(said) == 40 and all(isinstance(a, str) for a in said)
    assert accuracy_by_type(said, run.data.eval)["all"] == pytest.approx(run.metrics["eval_exact_match"])


def test_a_custom_prompt_is_in_a_presets_vocabulary(tmp_path):
    """A preset backbone's word tokenizer is built from the data and the recipe's prompt: its words
    are tokens of their own, not <unk>, in the batches the model trains on."""
    from vlsurgery.training import build_trainer

    trainer, data = build_trainer(SPEC, output_dir=tmp_path, recipe="demo", prompt="answer briefly:",
                                  train_size=8, eval_size=4)
    tok = trainer.processing_class
    prompt_ids = tok("answer briefly:", add_special_tokens=False)["input_ids"]
    assert trainer.data_collator.prompt == "answer briefly:" and tok.unk_token_id not in prompt_ids
    batch = trainer.data_collator(data.train[:4])
    assert tok.unk_token_id not in batch["input_ids"].tolist()[0]
    assert batch["input_ids"][0, :len(prompt_ids)].tolist() == prompt_ids
