"""The VL collator: what it produces, how it pads, and that a compiled model trains and generates on it."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from vlsurgery import compile
from vlsurgery.data import DataError, VLExample, fit_config, make_shapes_task, shapes_tokenizer
from vlsurgery.data.collate import VLCollator
from vlsurgery.profiles import preset_config


@pytest.fixture(scope="module")
def task():
    return make_shapes_task(feat_dim=8, sizes={"train": 16, "test": 8})


def test_keys_shapes_and_dtypes(task):
    tok = shapes_tokenizer(task)
    batch = VLCollator(tok)(task.splits["train"][:4])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "vis_feats", "vis_boxes", "vis_image_ids"}
    assert batch["vis_feats"].shape == (4, 9, 8) and batch["vis_feats"].dtype == torch.float32
    assert batch["vis_boxes"].shape == (4, 9, 4) and batch["vis_image_ids"].shape == (4, 9)
    assert batch["vis_image_ids"].dtype == torch.long and not batch["vis_image_ids"].any()
    np.testing.assert_array_equal(batch["vis_feats"][2].numpy(), task.splits["train"][2].feats)


def test_text_is_prompt_plus_question_and_labels_are_the_answer(task):
    tok = shapes_tokenizer(task)
    examples = task.splits["train"][:4]
    batch = VLCollator(tok, prompt="vqa:")(examples)
    for i, ex in enumerate(examples):
        ids = batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist()
        assert ids == tok(f"vqa: {ex.question}")["input_ids"]
        label = [t for t in batch["labels"][i].tolist() if t != -100]
        assert tok.decode(label, skip_special_tokens=True) == ex.answer
    assert VLCollator(tok, prompt="").text("is it?") == "is it?"


def test_labels_pad_with_minus_100():
    tok = shapes_tokenizer(make_shapes_task(feat_dim=2, sizes={"train": 1}), style="t5")
    ex = [VLExample("how many circles are there?", a, np.zeros((1, 2)), np.zeros((1, 4))) for a in ("two", "red circle")]
    labels = VLCollator(tok)(ex)["labels"]
    assert labels.tolist()[0] == [tok.convert_tokens_to_ids("two"), tok.eos_token_id, -100]


def test_no_answers_means_no_labels_and_mixed_is_an_error(task):
    tok = shapes_tokenizer(task)
    plain = [VLExample(ex.question, None, ex.feats, ex.boxes) for ex in task.splits["test"][:2]]
    assert "labels" not in VLCollator(tok)(plain)
    with pytest.raises(DataError, match="have no answer while others do"):
        VLCollator(tok)(plain + task.splits["test"][:1])


def test_regions_pad_with_zeros_and_pairs_get_image_ids(task):
    tok = shapes_tokenizer(task)
    a = {"question": "is there a red circle?", "answer": "yes", "feats": np.ones((2, 8)), "boxes": np.full((2, 4), .5)}
    pair = {"question": "is there a red circle?", "answer": "no",
            "feats": (np.ones((2, 8)), np.ones((3, 8))), "boxes": (np.zeros((2, 4)), np.zeros((3, 4)))}
    batch = VLCollator(tok)([a, pair])
    assert batch["vis_feats"].shape == (2, 5, 8)
    assert batch["vis_feats"][0, 2:].abs().sum() == 0 and batch["vis_boxes"][0, 2:].abs().sum() == 0
    assert batch["vis_image_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]]
    assert VLCollator(tok, max_regions=3)([a, pair])["vis_feats"].shape == (2, 3, 8)


@pytest.mark.parametrize("items, message", [
    ([], "empty batch"),
    ([("a", "b")], "expected a VLExample or a mapping"),
    ([{"question": "q"}], "lacks feats, boxes"),
    ([{"question": "q", "feats": np.zeros((1, 2)), "boxes": np.zeros((1, 4))},
      {"question": "q", "feats": np.zeros((1, 3)), "boxes": np.zeros((1, 4))}], "different feat_dim"),
    ([{"question": "q", "feats": np.zeros((2, 2)), "boxes": np.zeros((3, 4))}], r"boxes must be \(2, 4\)"),
])
def test_bad_batches_are_explained(task, items, message):
    with pytest.raises(DataError, match=message):
        VLCollator(shapes_tokenizer(task))(items)


@pytest.mark.parametrize("backbone, style", [("tiny-bart", "bart"), ("tiny-t5", "t5")])
def test_a_compiled_model_trains_and_generates_on_a_batch(task, backbone, style):
    tok = shapes_tokenizer(task, style=style)
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(fit_config(preset_config(backbone), tok))
    compile(f"backbone {backbone}\nprojector feat_dim=8\ntrain projector\nencoder.ffn: adapter r=4", model, seed=0)
    batch = VLCollator(tok)(task.splits["train"][:4])
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and model.get_encoder().vls_prefix.projector.feat.weight.grad is not None
    batch.pop("labels")
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 4 and len(tok.batch_decode(out, skip_special_tokens=True)) == 4


def test_collator_and_compute_metrics_drive_a_seq2seq_trainer(task, tmp_path):
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from vlsurgery.data import vqa_compute_metrics

    tok = shapes_tokenizer(task, style="t5")
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(fit_config(preset_config("tiny-t5"), tok))
    compile("backbone tiny-t5\nprojector feat_dim=8\ntrain projector\nencoder.ffn: adapter r=4", model, seed=0)
    evaluation = task.splits["test"]
    args = Seq2SeqTrainingArguments(str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=4,
                                    max_steps=2, predict_with_generate=True, generation_max_length=4, report_to=[],
                                    use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=task.splits["train"], eval_dataset=evaluation,
                             data_collator=VLCollator(tok), compute_metrics=vqa_compute_metrics(tok, evaluation))
    trainer.train()
    metrics = trainer.evaluate()
    assert 0 <= metrics["eval_exact_match"] <= 1 and 0 <= metrics["eval_vqa_accuracy"] <= 1
    assert metrics["eval_exact_match"] == metrics["eval_vqa_accuracy"]  # one answer per example: the same
