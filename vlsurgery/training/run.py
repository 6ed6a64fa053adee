"""``train()``: a spec, data and a recipe in; a trained, compiled model and the Trainer's result out.

The loop, logging, evaluation, checkpoint rotation, resume, mixed precision, gradient
accumulation and distributed launch are all the Hugging Face Trainer's
(:class:`~vlsurgery.training.trainer.PETTrainer`, a ``Seq2SeqTrainer``); this module only builds
its inputs: the model (the backbone compiled with the spec), the datasets, the collator, the
metrics and ``Seq2SeqTrainingArguments`` from the recipe plus overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlsurgery.errors import UsageError
from vlsurgery.training.data import SHAPES, RunData, directory_data, shapes_data
from vlsurgery.training.recipes import load_recipe, merge, split

#: Settings of ours that differ from Seq2SeqTrainingArguments' defaults when no recipe says otherwise.
DEFAULTS = {"report_to": "none", "save_strategy": "steps", "save_total_limit": 2, "seed": 0,
            "dataloader_pin_memory": False}


@dataclass
class TrainRun:
    """What :func:`train` returns: the Trainer (``trainer.model`` is the trained, compiled model), the
    Trainer's ``TrainOutput``, the final validation metrics, chance accuracy, and where the PET
    checkpoint of the final model is (``output_dir``; ``vlsurgery.restore`` reads it)."""

    trainer: object
    result: object
    metrics: dict
    chance: float
    checkpoint: Path
    data: RunData

    @property
    def model(self):
        return self.trainer.model

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("eval_vqa_accuracy")

    def summary(self) -> str:
        head = self.data.headline(self.metrics)  # VQA accuracy, or caption BLEU-4/CIDEr
        return f"{head}\ntrained for {self.result.global_step} steps; PET checkpoint: {self.checkpoint}"


def _spec_source(spec):
    """A spec as compile/plan take it: a file path (library names resolved) or a Spec/text."""
    if isinstance(spec, (str, Path)):
        from vlsurgery.spec.loader import spec_path

        text = str(spec)
        if text.startswith("lib:") or Path(text).suffix in (".vls", ".yaml", ".yml"):
            return str(spec_path(text)[0])
    return spec


def _model_and_tokenizer(the_plan, backbone, data: RunData, seed: int, dropout, prompt: str):
    """A backbone model and a tokenizer that fits the data; a preset gets a random model whose vocab
    is the task's tokenizer (``fit_config``), ``prompt``'s words included."""
    import torch
    from transformers import AutoTokenizer

    from vlsurgery.data import fit_config
    from vlsurgery.profiles.backbone import auto_class, load_model

    b = the_plan.backbone
    style = "t5" if getattr(b.config, "model_type", "") == "t5" else "bart"
    if the_plan.profile.decoder_only:  # <s> question answer </s> in one sequence (training/causal.py)
        style = "causal"
    if b.model is None and b.preset is not None and b.directory is None:
        tokenizer = data.tokenizer(style, prompt)
        config = fit_config(b.config, tokenizer)
        if dropout is not None:
            for key in ("dropout", "dropout_rate", "attention_dropout", "activation_dropout",
                        "resid_pdrop", "embd_pdrop", "attn_pdrop"):  # the last three: GPT-2's names
                if hasattr(config, key):
                    setattr(config, key, float(dropout))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = auto_class(the_plan.profile).from_config(config)  # the profile's class: seq2seq or causal
        model.vls_random_base = True  # its base weights exist only here: the final save keeps them
        return model, tokenizer
    model, _ = load_model(backbone if backbone is not None else b.name, seed=seed)
    if b.directory is None:
        raise UsageError(f"backbone {b.name}: expected a preset or a model directory with its tokenizer")
    return model, AutoTokenizer.from_pretrained(str(b.directory))


def _distributed_without_cuda() -> bool:
    """Whether this process is one of several (torchrun sets WORLD_SIZE) on a machine without CUDA."""
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def _whole_dataset(compute_metrics, size: int, world_size: int):
    """``compute_metrics`` over the first ``size`` predictions when several processes evaluate.

    Each process evaluates its share of the batches; when the evaluation set does not split evenly
    into batches on every process, the last batches are padded with repeats of the first examples,
    and this Trainer/accelerate pair does not always drop them when gathering.  The gathered order
    is the dataset's, so the repeats are exactly the predictions past ``size``.
    """
    if world_size <= 1:
        return compute_metrics  # one process: a count mismatch is a real error, reported as such

    def metrics(eval_pred):
        predictions, labels = eval_pred[0], eval_pred[1]
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return compute_metrics((predictions[:size], labels[:size]))

    return metrics


def build_trainer(spec, data=None, backbone=None, output_dir="vlsurgery-run", recipe=None, **overrides):
    """The :class:`PETTrainer` :func:`train` runs, and the run's data (nothing trained yet)."""
    from transformers import Seq2SeqTrainingArguments

    from vlsurgery.checkpoint.hf import enable_save_pretrained
    from vlsurgery.compiler.compile import compile
    from vlsurgery.data.collate import VLCollator
    from vlsurgery.planning import plan
    from vlsurgery.training.causal import CausalCollator, CausalPETTrainer
    from vlsurgery.training.trainer import PETTrainer

    settings = merge({**DEFAULTS, **load_recipe(recipe)}, overrides)
    args_kw, ours = split(settings)
    source = _spec_source(spec)
    the_plan = plan(source, backbone)
    if the_plan.projector is None:
        raise UsageError("the spec has no `projector`: a visual task needs one (add e.g. `projector feat_dim=2048`)")
    feat_dim = the_plan.projector.feat_dim
    if data is None or str(data) == SHAPES:
        run_data = shapes_data(feat_dim, seed=ours["data_seed_task"], train_size=ours["train_size"],
                               eval_size=ours["eval_size"])
    elif isinstance(data, RunData):
        run_data = data
    else:
        run_data = directory_data(data)  # VQA or captions, by what train.json holds
    seed = int(args_kw.get("seed", 0))
    prompt = run_data.prompt_for(ours)
    model, tokenizer = _model_and_tokenizer(the_plan, backbone, run_data, seed, ours["backbone_dropout"], prompt)
    enable_save_pretrained(compile(source, model, seed=seed))  # save_pretrained also writes the PET checkpoint
    max_len = run_data.answer_length_for(ours) + (1 if model.generation_config.forced_bos_token_id is not None else 0)
    args_kw.update(output_dir=str(output_dir), predict_with_generate=True, generation_num_beams=ours["beams"],
                   generation_max_length=max_len + 1, remove_unused_columns=False)
    if "use_cpu" not in args_kw and _distributed_without_cuda():
        # accelerate makes a multi-process CPU run (gloo) only when told the run is on the CPU;
        # otherwise every process silently trains alone on the whole data
        args_kw["use_cpu"] = True
    try:
        args = Seq2SeqTrainingArguments(**args_kw)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"the recipe's training arguments do not fit together: {exc}") from None
    trainer_class, collator_class = PETTrainer, VLCollator
    if the_plan.profile.decoder_only:  # causal-LM collation, answers decoded after the question
        trainer_class, collator_class = CausalPETTrainer, CausalCollator
        if tokenizer.pad_token_id is None:  # GPT-2's tokenizer: padding is masked out, any id will do
            tokenizer.pad_token = tokenizer.eos_token
    trainer = trainer_class(model=model, args=args, train_dataset=run_data.train, eval_dataset=run_data.eval,
                            data_collator=collator_class(tokenizer, prompt=prompt), processing_class=tokenizer,
                            compute_metrics=_whole_dataset(run_data.compute_metrics(tokenizer),
                                                           len(run_data.eval), args.world_size))
    return trainer, run_data


def train(spec, data=None, backbone=None, output_dir="vlsurgery-run", recipe=None, *, resume_from_checkpoint=None,
          evaluate: bool = True, **overrides) -> TrainRun:
    """Compile ``spec`` onto ``backbone`` and train it on ``data`` with the Hugging Face Trainer.

    ``spec``: a file, a library name (``lib:examples/demo-t5.vls``) or a Spec.  ``data``: ``None`` or
    ``"shapes"`` (the procedural shapes task, with the projector's ``feat_dim``) or a VQA or caption
    directory (docs/training.md).  ``backbone``: default the spec's; a tiny preset becomes a random model whose
    vocabulary is the task tokenizer's.  ``recipe``: a shipped recipe name (``demo``,
    ``paper/vl-t5``), a YAML path or a dict; ``overrides`` (any recipe key) win over it.
    ``resume_from_checkpoint``: a ``checkpoint-N`` folder, or True for the newest in ``output_dir``.

    Returns a :class:`TrainRun`: ``.result`` is the Trainer's ``TrainOutput``, ``.trainer.model``
    the trained model, whose PET checkpoint is written to ``output_dir`` (``.checkpoint``; a random
    preset's base weights are written there too, so ``vlsurgery.restore(output_dir)`` works).
    Checkpoints written during training (``checkpoint-N/``) hold the PET checkpoint only.
    """
    trainer, run_data = build_trainer(spec, data, backbone, output_dir, recipe, **overrides)
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    if getattr(trainer.model, "vls_random_base", False) and trainer.args.should_save:
        # a random base exists nowhere else: save_pretrained keeps it beside the PET checkpoint
        trainer.model.save_pretrained(str(output_dir))
        trainer.processing_class.save_pretrained(str(output_dir))
    else:
        trainer.save_model()
    metrics = trainer.evaluate() if evaluate else {}
    return TrainRun(trainer, result, metrics, run_data.chance, Path(output_dir), run_data)
