"""``finalize(hp, dims)`` of every method: site-derived values, the older spellings folded, problems.

What a finalize does, in order (each step on the result of the previous one):

1. :func:`canonical`: every field checked against its schema, aliases mapped (``large`` ->
   ``matrix``), as the spec reader does;
2. site-derived values: ``r = d_src // reduction`` when r is unset (d_src: d_out of H for
   ``placement=sequential``, d_in of X for ``parallel``), ``gate_r = r`` for a matrix gate;
3. the params' own rules (``heads`` divides r, ...) and the site's (a token gate needs
   d_in == d_out, ``n`` divides the widths, ...);
4. :func:`fold_older_spellings`: ``init=zero`` (adapter, lite, compacter) becomes
   ``init_up=zero``, ``gate_init=zero`` becomes ``init_gate=zero``, LoRA's ``init=gaussian``
   becomes ``init_A=normal(1/r)``; the older key goes back to its default.  So a design written
   either way plans, counts, prints and diffs the same.

Never raises for a bad design; idempotent.

>>> from vlsurgery.methods.params import AdapterParams
>>> fold_older_spellings(AdapterParams(r=8, init="zero", granularity="matrix", gate_init="zero"))
... # doctest: +ELLIPSIS
AdapterParams(...gate_init='default'...init_gate='zero'...init='default', init_down='default', init_up='zero')
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vlsurgery.methods import params as P

Problems = list[tuple[str, str]]


def src_width(hp, dims) -> int:
    """Width the modification reads: H (d_out) when sequential, X (d_in) when parallel."""
    return dims.d_out if getattr(hp, "placement", "parallel") == "sequential" else dims.d_in


def canonical(hp) -> tuple[Any, Problems]:
    """Check every field against its schema and map aliases (``large`` -> ``matrix``), as the spec
    reader does, so that hyperparameters built directly in Python behave like parsed ones."""
    changes, problems = {}, []
    for name, spec in P.schema(type(hp)).items():
        value = getattr(hp, name)
        if value is None and spec.kind == "int?":
            continue
        coerced, error = spec.coerce(value)
        if error:
            problems.append((name, error))
        elif coerced != value or type(coerced) is not type(value):
            changes[name] = coerced
    return (dataclasses.replace(hp, **changes) if changes else hp), problems


def fold_older_spellings(hp):
    """The older init keys moved onto the per-part ones (only when they do not conflict: a
    conflict is a problem of ``hp.problems()`` and is reported, not folded)."""
    changes = {}
    fields = {f.name for f in dataclasses.fields(hp)}
    if "gate_init" in fields and hp.gate_init == "zero" and hp.init_gate in ("default", "zero"):
        changes.update(gate_init="default", init_gate="zero")
    if "init_up" in fields and hp.init == "zero" and hp.init_up in ("default", "zero"):
        changes.update(init="default", init_up="zero")
    if "init_A" in fields and hp.init == "gaussian":
        gaussian = P.call_text("normal", 1 / hp.r)
        if hp.init_A in ("default", gaussian):
            changes.update(init="default", init_A=gaussian)
    return dataclasses.replace(hp, **changes) if changes else hp


def _fill_r(hp, dims, problems: Problems):
    if hp.r is not None:
        return hp
    d_src = src_width(hp, dims)
    if hp.reduction > d_src:
        problems.append(("reduction", f"reduction={hp.reduction} is larger than the width it divides "
                                      f"(d={d_src}): r = d / reduction would be 0; give r or a smaller reduction"))
        return hp
    return dataclasses.replace(hp, r=d_src // hp.reduction)


def _gate_problems(hp, dims) -> Problems:
    if hp.granularity == "token" and dims.d_in != dims.d_out:
        return [("granularity", f"granularity=token adds X and H' (sigmoid(Linear(X + H'))): it needs "
                                f"d_in == d_out, but this site maps {dims.d_in} -> {dims.d_out}")]
    return []


def _fill_gate_r(hp, r):
    if hp.granularity == "matrix" and hp.gate_r is None and r is not None:
        return dataclasses.replace(hp, gate_r=r)
    return hp


def _done(hp, problems: Problems):
    return (hp, problems) if problems else (fold_older_spellings(hp), problems)


def finalize_adapter(hp, dims):
    problems: Problems = []
    hp = _fill_r(hp, dims, problems)
    hp = _fill_gate_r(hp, hp.r)
    return _done(hp, problems + hp.problems() + _gate_problems(hp, dims))


def finalize_compacter(hp, dims):
    hp, problems = finalize_adapter(hp, dims)
    widths = sorted({src_width(hp, dims), dims.d_out})
    bad = [w for w in widths if w % hp.n]
    if bad:
        problems.append(("n", f"n={hp.n} must divide the widths the PHM layers map "
                              f"({', '.join(map(str, bad))} {'is' if len(bad) == 1 else 'are'} not divisible)"))
    return hp, problems


def finalize_lora(hp, dims):
    hp = _fill_gate_r(hp, hp.r)
    return _done(hp, hp.problems() + _gate_problems(hp, dims))


def finalize_gate(hp, dims):
    problems = hp.problems() + _gate_problems(hp, dims)
    if hp.granularity == "none":
        problems.append(("granularity", "method gate needs a granularity: scalar, token, vector or matrix"))
    if hp.granularity == "matrix" and hp.gate_r is None:
        problems.append(("gate_r", "granularity=matrix on method gate needs gate_r (there is no r to default to)"))
    return _done(hp, problems)


def finalize_plain(hp, dims):
    return _done(hp, hp.problems())
