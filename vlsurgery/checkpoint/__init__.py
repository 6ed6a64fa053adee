"""Keeping what was trained: PET checkpoints, the save_pretrained route, and merging.

    vlsurgery.checkpoint.save(model, "runs/x")     # vlsurgery.safetensors + vlsurgery.json
    model = vlsurgery.checkpoint.restore("runs/x")  # the base, the spec re-applied, tensors loaded
    enable_save_pretrained(model)                   # save_pretrained then also writes the checkpoint
    plain = vlsurgery.checkpoint.merge(model)       # LoRA, (IA)^3 and constant gates folded in

:mod:`.files` is the on-disk format, :mod:`.saving` what a checkpoint holds, :mod:`.loading` how it
comes back, :mod:`.hf` the ``save_pretrained`` route, :mod:`.merge` folding sites into weights;
docs/checkpoints.md tells the whole story.  The errors and the format helpers import without
torch; everything else is loaded on first use.
"""


from vlsurgery.lazy import lazy_attributes
from vlsurgery.checkpoint.errors import CheckpointError, MergeError
from vlsurgery.checkpoint.files import has_checkpoint, read_checkpoint

#: name -> the module that defines it, imported on first use (they import torch).
_LAZY = {"checkpoint_tensors": "saving", "save": "saving", "restore": "loading", "enable_save_pretrained": "hf",
         "disable_save_pretrained": "hf", "spec_of": "marker", "merge": "merge", "merge_report": "merge",
         "MergeReport": "merge"}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["CheckpointError", "MergeError", "MergeReport", "checkpoint_tensors", "disable_save_pretrained",
           "enable_save_pretrained", "has_checkpoint", "merge", "merge_report", "read_checkpoint", "restore",
           "save", "spec_of"]
