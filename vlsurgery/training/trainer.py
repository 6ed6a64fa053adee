"""A ``Seq2SeqTrainer`` whose checkpoints are PET checkpoints.

:class:`PETTrainer` changes only where the model's weights go: every checkpoint the Trainer writes
(``checkpoint-N/`` during training, ``save_model()`` at the end) holds the vlsurgery checkpoint
(``vlsurgery.safetensors`` + ``vlsurgery.json``: the trained tensors, the spec and its hash) instead
of the whole model, and resuming (``resume_from_checkpoint``) or ``load_best_model_at_end`` loads
those tensors back.  Optimizer, scheduler, RNG states, trainer state, rotation
(``save_total_limit``) and everything else stay the Trainer's own.

It also refuses a batch without region features (``vis_feats``) for a design with a visual
projector: the compiled model would run on the text alone, and the run would quietly train and
evaluate something other than the design.  (The opposite, region features for a design without a
projector, the compiled model itself refuses.)
"""

from __future__ import annotations

import os

import torch
from transformers import Seq2SeqTrainer

from vlsurgery.checkpoint import read_checkpoint, save, spec_of
from vlsurgery.checkpoint.loading import load_tensors
from vlsurgery.data import DataError
from vlsurgery.planning import plan


class PETTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` that saves and loads a compiled model's PET checkpoint (module docstring)."""

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        save(model, output_dir)
        model.config.save_pretrained(output_dir)  # the backbone's architecture, for reference
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_pet(self, directory: str, model=None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model, keep_torch_compile=False)
        ckpt = read_checkpoint(directory)
        load_tensors(model, ckpt.tensors, plan(ckpt.spec, model.config).train)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._load_pet(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        self._load_pet(self.state.best_model_checkpoint)

    def _check_regions(self, model, inputs) -> None:
        needs = getattr(self, "_needs_regions", None)
        if needs is None:  # once per trainer: planning the design costs a few milliseconds
            inner = self.accelerator.unwrap_model(model, keep_torch_compile=False)
            text = spec_of(inner)
            needs = self._needs_regions = text is not None and plan(text, inner.config).projector is not None
        if needs and inputs.get("vis_feats") is None:
            raise DataError(f"a batch without vis_feats (keys: {', '.join(sorted(inputs))}), but the design has a "
                            "visual projector: expected region features vis_feats (B, R, feat_dim) and vis_boxes "
                            "(B, R, 4) in every batch, as vlsurgery.data.VLCollator makes them")

    def compute_loss(self, model, inputs, *args, **kwargs):
        self._check_regions(model, inputs)
        return super().compute_loss(model, inputs, *args, **kwargs)

    def prediction_step(self, model, inputs, *args, **kwargs):
        self._check_regions(model, inputs)
        return super().prediction_step(model, inputs, *args, **kwargs)
