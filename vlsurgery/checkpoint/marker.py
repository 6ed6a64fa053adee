"""The design a compiled model carries, for saving and restoring without being told the spec.

``compile`` marks every model with its design (``model.vls_design``, see
:mod:`vlsurgery.compiler.design`); :func:`vlsurgery.checkpoint.hf.enable_save_pretrained` also
gives the model's root a runtime class that carries the canonical spec text as the class attribute
``_vls_checkpoint_spec`` (for a model compiled without the mark).  :func:`spec_of` reads the mark
first, then the class attribute; a model with neither carries no spec.
"""

from __future__ import annotations

from vlsurgery.compiler.design import design_of

SPEC_ATTR = "_vls_checkpoint_spec"


def spec_of(model) -> str | None:
    """The canonical spec text ``model`` was compiled with, or None when it carries none."""
    design = design_of(model)
    if design is not None:
        return design.text
    text = getattr(type(model), SPEC_ATTR, None)
    return text if isinstance(text, str) else None
