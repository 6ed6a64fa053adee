"""Where the grammar and the spec library are, in a wheel and in a source checkout.

Both live at the top of the repository (``grammars/``, ``specs/``); the wheel carries them as
``vlsurgery/_data/grammars`` and ``vlsurgery/_data/specs`` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``grammars`` or ``specs``, installed or in the source tree."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"vlsurgery's {name}/ folder is missing from the installation ({_PACKAGE})")


def grammar_path(name: str = "vls.lark") -> Path:
    return data_dir("grammars") / name


def spec_library() -> Path:
    """The shipped spec library (``specs/``), e.g. ``paper/bart-base/vl-pet-large.vls``."""
    return data_dir("specs")
