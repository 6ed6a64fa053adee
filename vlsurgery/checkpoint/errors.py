"""The errors of checkpoints and merging (importing them does not import torch)."""

from __future__ import annotations

from vlsurgery.errors import VLSurgeryError


class CheckpointError(VLSurgeryError, ValueError):
    """A checkpoint cannot be written, read or applied; the model involved is left as it was."""


class MergeError(VLSurgeryError, ValueError):
    """Some sites cannot be folded into the base weights (each is listed with the reason)."""
