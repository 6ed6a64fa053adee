"""Training on the Hugging Face Trainer: a spec, data and a YAML recipe in, a PET checkpoint out.

    run = vlsurgery.training.train("lib:examples/demo-t5.vls", recipe="demo", output_dir="runs/demo")
    run.result            # the Trainer's TrainOutput
    run.trainer.model     # the trained, compiled model
    print(run.summary())  # validation accuracy vs chance; where the PET checkpoint is

:mod:`.recipes` reads and checks recipes (``recipes/`` at the top of the repository),
:mod:`.trainer` is the ``Seq2SeqTrainer`` whose checkpoints are PET checkpoints (:mod:`.causal`: its
collator and evaluation for decoder-only backbones), :mod:`.data` the data a run trains on (the
shapes task, a VQA directory or a captioning directory; for seq2seq and decoder-only backbones
alike), :mod:`.run` puts them together, :mod:`.answering` gives a model's answers as text
(:func:`answers`, to compare models question by question).  See docs/training.md.  Importing this
package does not import torch; :func:`train` does.
"""


from vlsurgery.lazy import lazy_attributes
from vlsurgery.training.recipes import RecipeError, load_recipe, recipe_library, recipe_names, recipe_path

_LAZY = {"answers": "answering", "train": "run", "build_trainer": "run", "TrainRun": "run", "PETTrainer": "trainer",
         "CausalCollator": "causal", "CausalPETTrainer": "causal"}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["CausalCollator", "CausalPETTrainer", "PETTrainer", "RecipeError", "TrainRun", "answers", "build_trainer",
           "load_recipe", "recipe_library", "recipe_names", "recipe_path", "train"]
