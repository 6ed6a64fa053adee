"""VQA accuracy (official leave-one-out), normalisation, exact match, compute_metrics and caption scores."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from vlsurgery.data import (DataError, VLExample, accuracy_by_type, answer_scores, caption_scores, exact_match,
                            normalize_answer, soft_score, vqa_accuracy, vqa_compute_metrics, word_tokenizer)


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_official_vqa_accuracy_averages_ten_leave_one_out_subsets(matches, expected):
    answers = ["cat"] * matches + ["dog"] * (10 - matches)
    # by hand: an annotator who said "cat" leaves matches-1 others, one who did not leaves matches
    by_hand = (matches * min((matches - 1) / 3, 1) + (10 - matches) * min(matches / 3, 1)) / 10
    assert vqa_accuracy("cat", answers) == pytest.approx(expected) == pytest.approx(by_hand)


def test_short_answer_lists_use_min_n_over_3():
    assert vqa_accuracy("yes", ["yes", "no"]) == pytest.approx(1 / 3)
    with pytest.raises(DataError, match="annotators' answers"):
        vqa_accuracy("yes", [])


@pytest.mark.parametrize("raw, norm", [
    ("Yes.", "yes"), ("The Red Circle", "red circle"), ("two", "2"), ("1,000", "1000"), ("2.5", "2.5"),
    ("dont know", "don't know"), ("  a dog!  ", "dog"), ("none", "0"),
])
def test_normalisation(raw, norm):
    assert normalize_answer(raw) == norm


def test_soft_scores_exact_match_and_labels():
    assert soft_score("Net", {"net": 1.0, "netting": 0.3}) == 1.0
    assert soft_score("fish", {"net": 1.0}) == 0.0
    assert exact_match("Two", "2") == 1.0 and exact_match("red", "blue") == 0.0
    assert answer_scores(["net"] * 2 + ["netting"] * 8) == {"netting": 1.0, "net": 0.6}


def test_accuracy_by_type():
    examples = [SimpleNamespace(answer=a, question_type=t) for a, t in [("red", "c"), ("blue", "c"), ("yes", "e")]]
    assert accuracy_by_type(["red", "red", "yes"], examples) == {"c": 0.5, "e": 1.0, "all": pytest.approx(2 / 3)}
    with pytest.raises(DataError, match="one each"):
        accuracy_by_type(["red"], examples)


def example(answer, answers=()):
    return VLExample("q", answer, np.zeros((1, 2)), np.zeros((1, 4)), answers=tuple(answers))


def test_compute_metrics_decodes_generated_ids_and_labels_with_padding():
    tok = word_tokenizer(["red blue yes no two"], style="bart", visual_tokens=0)
    enc = lambda words: tok(words, padding="max_length", max_length=5)["input_ids"]  # noqa: E731
    preds = np.array(enc(["red", "blue", "two"]))
    labels = np.array(enc(["red", "yes", "two"]))
    labels[labels == tok.pad_token_id] = -100
    preds[2, -1] = -100  # the Trainer pads generated ids of different lengths with -100 too
    metrics = vqa_compute_metrics(tok)((preds, labels))
    assert metrics == {"exact_match": pytest.approx(2 / 3)}
    examples = [example("red"), example("yes", ["blue"] * 2 + ["yes"] * 8), example("two")]
    metrics = vqa_compute_metrics(tok, examples)((preds, labels))
    assert metrics["vqa_accuracy"] == pytest.approx((1 + 0.6 + 1) / 3)
    with pytest.raises(DataError, match="predict_with_generate"):
        vqa_compute_metrics(tok)((np.zeros((3, 5, 7)), labels))
    with pytest.raises(DataError, match="2 examples"):
        vqa_compute_metrics(tok, examples[:2])((preds, labels))


def test_caption_scores_with_pycocoevalcap():
    pytest.importorskip("pycocoevalcap")
    refs = {1: ["a dog runs on the grass", "a dog running on grass"], 2: ["a cat sleeps on a bed", "the cat sleeps"],
            3: ["two birds on a wire", "birds sit on a wire"]}
    perfect = caption_scores({k: v[0] for k, v in refs.items()}, refs)
    poor = caption_scores({1: "a cat", 2: "a dog runs", 3: "grass"}, refs)
    assert perfect["BLEU-4"] > 0.9 and perfect["CIDEr"] > poor["CIDEr"] and poor["BLEU-4"] < 0.1
    assert caption_scores({k: v[0].upper() + "." for k, v in refs.items()}, refs) == perfect  # case, punctuation
    with pytest.raises(DataError, match="no prediction for image"):
        caption_scores({1: "a dog"}, refs)


def test_caption_scores_without_pycocoevalcap_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)
    monkeypatch.setitem(sys.modules, "pycocoevalcap.bleu.bleu", None)
    with pytest.raises(DataError, match="pip install pycocoevalcap"):
        caption_scores({1: "a"}, {1: ["a"]})
