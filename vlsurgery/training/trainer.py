"""A ``Seq2SeqTrainer`` whose checkpoints are PET checkpoints.

:class:`PETTrainer` changes only where the model's weights go: every checkpoint the Trainer writes
(``checkpoint-N/`` during training, ``save_model()`` at the end) holds the vlsurgery checkpoint
(``vlsurgery.safetensors`` + ``vlsurgery.json``: the trained tensors, the spec and its hash) instead
of the whole model, and resuming (``resume_from_checkpoint``) or ``load_best_model_at_end`` loads
those tensors back.  Optimizer, scheduler, RNG states, trainer state, rotation
(``save_total_limit``) and everything else stay the Trainer's own.
"""

from __future__ import annotations

import os

import torch
from transformers import Seq2SeqTrainer

from vlsurgery.checkpoint import read_checkpoint, save
from vlsurgery.checkpoint.loading import load_tensors
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
