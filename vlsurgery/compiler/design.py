"""The mark every compile leaves on a model: which design it carries.

``compile`` ends by setting ``model.vls_design`` to a :class:`Design`: the canonical text of the
spec (the DSL printer's output, ``extends`` and ``let`` already resolved) and its sha256.  It is a
plain attribute, not a module, parameter or buffer, so ``state_dict`` and the module tree do not
change; a failed compile removes it with everything else.

It is what makes a second compile refuse, also for designs that add no module at all
(``train encoder.layernorm``), and it lets later tools compare designs: two models carry the same
design exactly when their ``vls_design.sha256`` are equal (e.g. before loading a state dict
trained under one design into a model compiled with another).

>>> d = Design.of_text("encoder.ffn: ia3\\n")
>>> d.sha256 == Design.of_text("encoder.ffn: ia3\\n").sha256, len(d.sha256)
(True, 64)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from torch import nn

from vlsurgery.compiler.install import is_rewritten
from vlsurgery.errors import CompileError

DESIGN_ATTR = "vls_design"


@dataclass(frozen=True)
class Design:
    """A compiled model's design: ``text`` (canonical spec) and ``sha256`` (of that text, UTF-8)."""

    text: str
    sha256: str

    @classmethod
    def of_text(cls, text: str) -> "Design":
        return cls(text, hashlib.sha256(text.encode("utf-8")).hexdigest())

    @classmethod
    def of_spec(cls, spec) -> "Design":
        from vlsurgery.spec import dumps

        return cls.of_text(dumps(spec))


def design_of(model: nn.Module) -> Design | None:
    """The design ``model`` was compiled with, or None for a model vlsurgery has not compiled."""
    found = model.__dict__.get(DESIGN_ATTR)
    return found if isinstance(found, Design) else None


def mark(model: nn.Module, spec) -> Design:
    """Record ``spec`` on ``model`` (call inside the compile transaction)."""
    design = Design.of_spec(spec)
    setattr(model, DESIGN_ATTR, design)
    return design


def unmark(model: nn.Module) -> None:
    """Remove the design mark (a model that a merge turned into another design)."""
    model.__dict__.pop(DESIGN_ATTR, None)


def refuse_compiled(model: nn.Module) -> None:
    """A CompileError when ``model`` was already compiled (marked, or holding rewritten modules)."""
    design = design_of(model)
    if design is None and not any(is_rewritten(m) for m in model.modules()):
        return
    which = f" (design sha256 {design.sha256[:12]}...)" if design is not None else ""
    raise CompileError(
        f"this {type(model).__name__} has already been compiled by vlsurgery{which}: a second compile would "
        "freeze its parameters again and stack a second design on the first. Compile a fresh model instead, "
        "with one spec that says everything (put both designs in one spec, or `extends` the first), then "
        "load a state dict if you have trained weights")
