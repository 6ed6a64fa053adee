"""Metrics of VQA and captioning, and a ``compute_metrics`` for the Hugging Face (Seq2Seq)Trainer.

**VQA accuracy** (the official evaluation): ten annotators answered each question; a prediction
matched by n of them scores min(n / 3, 1), averaged over the ten ways of leaving one annotator
out, so an answer given by 3 of 10 annotators scores 0.9, not 1.  Answers are compared after
:func:`normalize_answer`, a compact version of the official normalisation.  Data that only carries
soft scores (``{"answer": score}``, the VL-T5 JSON) is scored by looking the prediction up
(:func:`soft_score`).

**Captions**: BLEU-4 and CIDEr from ``pycocoevalcap`` (an optional extra, imported on use;
``pip install pycocoevalcap``; neither scorer needs Java).  Texts are lower-cased and stripped of
punctuation here instead of by the Java PTB tokenizer, so scores can differ slightly from the
official scripts.

>>> vqa_accuracy("Two", ["2"] * 3 + ["3"] * 7)
0.9
>>> normalize_answer("The red circle."), soft_score("yes", {"yes": 0.6, "no": 0.3})
('red circle', 0.6)
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import Callable, Iterable, Sequence

import numpy as np

from vlsurgery.data.example import DataError

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten".split())} | {"none": "0"}
ARTICLES = {"a", "an", "the"}
CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                "wont": "won't", "im": "i'm", "ive": "i've", "youre": "you're", "thats": "that's"}
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d)")
_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$:~|]")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation (keeping decimal points), number words -> digits, no articles."""
    text = _THOUSANDS.sub("", str(text).lower().replace("\n", " ").replace("\t", " ").strip())
    text = _PUNCT.sub(" ", _PERIOD.sub("", text))
    words = [NUMBER_WORDS.get(w, CONTRACTIONS.get(w, w)) for w in text.split()]
    return " ".join(w for w in words if w not in ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the annotators' answers (see the module docstring).

    With fewer than four answers the leave-one-out average is skipped: min(n / 3, 1) directly.
    """
    if not answers:
        raise DataError("vqa_accuracy needs the annotators' answers: expected a non-empty list")
    pred = normalize_answer(prediction)
    hits = [normalize_answer(a) == pred for a in answers]
    if len(hits) < 4:
        return min(sum(hits) / 3, 1.0)
    total = sum(hits)
    return round(float(np.mean([min((total - h) / 3, 1.0) for h in hits])), 10)


def answer_scores(answers: Sequence[str]) -> dict[str, float]:
    """Each distinct (normalised) answer's VQA accuracy: the soft label of a question.

    >>> answer_scores(["yes"] * 9 + ["no"])
    {'yes': 1.0, 'no': 0.3}
    """
    distinct = Counter(normalize_answer(a) for a in answers)
    return {a: vqa_accuracy(a, answers) for a, _ in distinct.most_common()}


def soft_score(prediction: str, label: dict[str, float]) -> float:
    """The score of ``prediction`` in a soft label ``{answer: score}`` (0 when absent); keys are
    compared after normalisation."""
    pred = normalize_answer(prediction)
    return max((float(s) for a, s in label.items() if normalize_answer(a) == pred), default=0.0)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two answers are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def accuracy_by_type(predictions: Sequence[str], examples: Sequence) -> dict[str, float]:
    """Exact-match accuracy per ``question_type`` of the examples, and ``all``.

    >>> from types import SimpleNamespace as E
    >>> accuracy_by_type(["red", "2"], [E(answer="red", question_type="colour"), E(answer="three", question_type="count")])
    {'colour': 1.0, 'count': 0.0, 'all': 0.5}
    """
    if len(predictions) != len(examples):
        raise DataError(f"{len(predictions)} predictions for {len(examples)} examples: expected one each")
    hits, totals = Counter(), Counter()
    for pred, ex in zip(predictions, examples):
        totals[ex.question_type] += 1
        hits[ex.question_type] += exact_match(pred, ex.answer)
    out = {t: hits[t] / totals[t] for t in sorted(totals)}
    out["all"] = sum(hits.values()) / max(1, len(examples))
    return out


def _caption_tokens(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", str(text).lower()).split())


INSTALL_SCORERS = "pip install pycocoevalcap (or vlsurgery[captions])"


def caption_scorers():
    """pycocoevalcap's ``(Bleu, Cider)`` scorer classes, or None when it is not installed."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        return None
    return Bleu, Cider


def caption_scores(predictions: dict, references: dict[object, Iterable[str]]) -> dict[str, float]:
    """BLEU-4 and CIDEr of ``{id: caption}`` against ``{id: [reference captions]}`` (pycocoevalcap).

    CIDEr's document frequencies come from the references given, as in the COCO evaluation: score
    a whole split at once, not example by example.
    """
    scorers = caption_scorers()
    if scorers is None:
        raise DataError(f"caption metrics (BLEU-4, CIDEr) need pycocoevalcap: {INSTALL_SCORERS}")
    Bleu, Cider = scorers
    missing = sorted(map(str, set(references) - set(predictions)))
    if missing or not references:
        raise DataError(f"no prediction for image(s) {', '.join(missing[:5])}: expected one caption per "
                        "image with references" if missing else "no references: expected {id: [captions]}")
    gts = {k: [_caption_tokens(r) for r in refs] for k, refs in references.items()}
    res = {k: [_caption_tokens(predictions[k])] for k in references}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-4": float(bleu[3]), "CIDEr": float(cider)}


def decode(tokenizer, ids) -> list[str]:
    """Texts of a batch of token ids, with -100 (label padding) read as padding."""
    ids = np.asarray(ids[0] if isinstance(ids, tuple) else ids)
    if ids.ndim == 3:  # logits, not generated ids: the Trainer needs predict_with_generate=True
        raise DataError("compute_metrics got logits (B, T, V): expected generated token ids; run the "
                        "Seq2SeqTrainer with predict_with_generate=True")
    ids = np.where(ids < 0, tokenizer.pad_token_id, ids)
    return [t.strip() for t in tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)]


def vqa_compute_metrics(tokenizer, examples: Sequence | None = None) -> Callable[[object], dict[str, float]]:
    """``compute_metrics`` for a Seq2SeqTrainer run with ``predict_with_generate=True``.

    Decodes the generated ids and the label ids with ``tokenizer`` and returns ``exact_match``.
    With ``examples`` (the evaluation dataset, in order: the Trainer evaluates sequentially) it
    also returns ``vqa_accuracy``, from each example's annotator ``answers`` when it has them, else
    from its soft ``label``.
    """
    # read once: a VQADataset's questions hold the answers without the region features its examples read
    keys = None if examples is None else [(q.answers, q.label) for q in getattr(examples, "questions", examples)]

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, label_ids = eval_pred[0], eval_pred[1]
        preds, refs = decode(tokenizer, predictions), decode(tokenizer, label_ids)
        out = {"exact_match": float(np.mean([exact_match(p, r) for p, r in zip(preds, refs)]))}
        if keys is not None:
            if len(keys) != len(preds):
                raise DataError(f"compute_metrics: {len(preds)} predictions but {len(keys)} examples: "
                                "expected the evaluation dataset the Trainer evaluated, in its order")
            scores = [vqa_accuracy(p, answers) if answers else soft_score(p, label)
                      for p, (answers, label) in zip(preds, keys)]
            out["vqa_accuracy"] = float(np.mean(scores))
        return out

    return compute_metrics


def caption_compute_metrics(tokenizer, examples: Sequence) -> Callable[[object], dict[str, float]]:
    """``compute_metrics`` for captioning with a Seq2SeqTrainer (``predict_with_generate=True``).

    ``examples`` is the evaluation dataset in order, one example per image with all its reference
    captions (``references``).  Returns ``exact_match`` (the generated caption equals one of the
    references, after :func:`normalize_answer`) and, when pycocoevalcap is installed, ``bleu4`` and
    ``cider`` of the whole split against all references per image (:func:`caption_scores`).
    Without pycocoevalcap it warns once and returns ``exact_match`` alone.
    """
    warned = []
    # read once, not at every evaluation: a CaptionDataset gives them without reading region features
    refs = examples.references() if callable(getattr(examples, "references", None)) else \
        [tuple(ex.references) or (ex.answer,) for ex in examples]

    def compute_metrics(eval_pred) -> dict[str, float]:
        preds = decode(tokenizer, eval_pred[0])
        if len(refs) != len(preds):
            raise DataError(f"compute_metrics: {len(preds)} captions but {len(refs)} images: expected the "
                            "evaluation dataset the Trainer evaluated, one example per image, in its order")
        out = {"exact_match": float(np.mean([max(exact_match(p, r) for r in rs) for p, rs in zip(preds, refs)]))}
        if caption_scorers() is None:
            if not warned:  # once per run, not once per evaluation
                warnings.warn(f"BLEU-4 and CIDEr not computed, exact match only: {INSTALL_SCORERS}", stacklevel=2)
                warned.append(True)
            return out
        scores = caption_scores(dict(enumerate(preds)), dict(enumerate(refs)))
        out.update(bleu4=scores["BLEU-4"], cider=scores["CIDEr"])
        return out

    return compute_metrics
