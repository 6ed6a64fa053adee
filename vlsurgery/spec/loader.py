"""Reading specs: text or files, either form, ``extends`` merged, lets substituted.

``extends`` paths are looked up relative to the extending file, then in the shipped spec library
(``vlsurgery.resources.spec_library()``), with ``.vls``, ``.yaml`` or ``.yml`` appended when the
name has no suffix.  Merging a child over its base (recursively): lets by name, the child's value
winning; statements base-then-child (later statements override earlier ones, so the child's
win); ``train`` targets unioned; backbone and projector taken from the child when it declares
them.  Lets are bound late, after merging, so ``let r = 192`` in a child changes every ``$r`` of
its base.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from vlsurgery.errors import Problem, Span, SpecError, SpecFileError, SpecSyntaxError, UsageError, did_you_mean
from vlsurgery.resources import spec_library
from vlsurgery.spec.dsl import parse_dsl
from vlsurgery.spec.ir import Param, Ref, Spec
from vlsurgery.spec.validate import validate
from vlsurgery.spec.yaml_form import parse_yaml

FORMATS = ("dsl", "yaml")
SUFFIXES = {".vls": "dsl", ".yaml": "yaml", ".yml": "yaml"}
_YAML_START = re.compile(r"(---|\{\s*(\}|[\w\"']+\s*:)|(backbone|extends|let|projector|train|sites)\s*:)")
_MAX_DEPTH = 64


def guess_format(text: str, source: str | None = None) -> str:
    """``dsl`` or ``yaml``: from the file suffix, else from the first line that is not a comment.

    A YAML spec starts with ``---``, a flow mapping (``{}``, ``{backbone: ...``) or a top-level key
    followed by ``:`` (``backbone: ...``); DSL declarations have no colon after the keyword
    (``backbone bart-base``) and an alternation has none inside (``{encoder,decoder}.ffn: ...``).
    """
    if source:
        suffix = os.path.splitext(str(source))[1].lower()
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return "yaml" if _YAML_START.match(line) else "dsl"
    return "dsl"


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[line_start:offset].decode("utf-8", "replace")) + 1


def decode(data: bytes | str, source: str | None) -> str:
    """Spec text from bytes: UTF-8 (a BOM is dropped); binary data and other encodings are errors."""
    if isinstance(data, str):
        text = data
    else:
        if b"\0" in data:
            raise SpecFileError.single(f"{source or 'the input'} is a binary file, not a spec",
                                       Span(source, *_line_col(data, data.index(b"\0"))),
                                       expected="UTF-8 text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            span = Span(source, *_line_col(data, e.start))
            raise SpecFileError.single(f"{source or 'the input'} is not UTF-8 text (byte 0x{data[e.start]:02x})",
                                       span, text=data.decode("utf-8", "replace"), expected="UTF-8 text",
                                       hint="save the file as UTF-8") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise SpecSyntaxError.single("the text contains NUL characters: binary data, not a spec",
                                     Span(source, line, 1), expected="UTF-8 text")
    return text[1:] if text.startswith("\ufeff") else text


def read(text: str | bytes, source: str | None = None, format: str | None = None,
         meta: dict | None = None, strict_refs: bool | None = None) -> tuple[Spec, list[Problem], bool, str]:
    """Parse without raising: ``(spec, problems, syntax_failed, text)``; validation included.

    ``strict_refs`` as in :func:`validate` (``load`` checks each file of an extends chain with
    False, then the merged spec strictly).
    """
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown spec format {format!r}: expected one of {', '.join(FORMATS)}")
    text = decode(text, source)
    meta = {} if meta is None else meta
    reader = parse_yaml if (format or guess_format(text, source)) == "yaml" else parse_dsl
    spec, problems = reader(text, source, meta)
    # DSL: errors of the grammar (a repeated backbone is not one); YAML: anything the reader rejects
    syntax_failed = (meta["syntax_errors"] > 0 if "syntax_errors" in meta
                     else any(p.severity == "error" for p in problems))
    strict = strict_refs if not syntax_failed else False  # a broken `let` must not make every $ref an error
    problems = sorted(problems + validate(spec, strict_refs=strict, where=meta),
                      key=lambda p: (p.span is None, p.span.line if p.span else 0, p.span.column if p.span else 0))
    return spec, problems, syntax_failed, text


def _raise(problems, texts, syntax_failed, file_failed=False):
    if any(p.severity == "error" for p in problems):
        cls = SpecFileError if file_failed else SpecSyntaxError if syntax_failed else SpecError
        raise cls(problems, texts)


def parse(text: str | bytes, source: str | None = None, format: str | None = None) -> Spec:
    """The Spec a text says, as written (``extends`` is not merged), validated.

    ``format`` is ``"dsl"``, ``"yaml"`` or None (guessed from ``source``'s suffix, else from the
    text, see :func:`guess_format`).  Raises :class:`SpecError` with every problem found.
    """
    spec, problems, failed, text = read(text, source, format)
    _raise(problems, {source: text}, failed)
    return spec


def display_name(path: Path) -> str:
    """A path as messages show it: relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_file(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        siblings = [p.name for p in path.parent.glob("*")] if path.parent.is_dir() else []
        raise SpecFileError.single(f"no such spec file: {source}", None, expected="an existing .vls or .yaml file",
                                   hint=did_you_mean(path.name, siblings)) from None
    except IsADirectoryError:
        raise SpecFileError.single(f"{source} is a directory, not a spec file", None) from None
    except OSError as e:
        raise SpecFileError.single(f"cannot read {source}: {e.strerror or e}", None) from None


def find_extends(name: str, base_dir: Path) -> tuple[Path | None, list[Path]]:
    """The file an ``extends`` names, and the places looked in."""
    library = spec_library() if _has_library() else None
    roots = [base_dir] + ([library] if library else [])
    suffixes = [""] if Path(name).suffix else ["", ".vls", ".yaml", ".yml"]
    looked = []
    for root in roots:
        for suffix in suffixes:
            candidate = (root / (name + suffix)) if not os.path.isabs(name) else Path(name + suffix)
            looked.append(candidate)
            if candidate.is_file():
                return candidate, looked
    return None, looked


def _has_library() -> bool:
    try:
        spec_library()
        return True
    except FileNotFoundError:
        return False


def merge(base: Spec, child: Spec) -> Spec:
    """``child`` over ``base`` (see the module docstring); the result has no ``extends``."""
    lets = {p.key: p for p in base.lets}
    lets.update({p.key: p for p in child.lets})
    return Spec(backbone=child.backbone if child.backbone is not None else base.backbone, extends=None,
                lets=tuple(lets.values()),
                projector=child.projector if child.projector is not None else base.projector,
                train=base.train + child.train, statements=base.statements + child.statements,
                source=child.source)


class _Loader:
    def __init__(self):
        self.texts: dict = {}
        self.problems: list[Problem] = []
        self.syntax_failed = False
        self.file_failed = False
        self.chain: list[str] = []  # the display names of the files being loaded, outermost first

    def load(self, path: Path, source: str, chain: tuple[Path, ...], at: Span | None = None) -> Spec | None:
        resolved = path.resolve()
        if resolved in chain:
            names = [display_name(p) for p in chain[chain.index(resolved):]] + [display_name(resolved)]
            self.problems.append(Problem("extends cycle: " + " -> ".join(names), at,
                                         expected="a chain of extends that ends in a spec without extends"))
            return None
        if len(chain) > _MAX_DEPTH:
            self.problems.append(Problem(f"extends chain deeper than {_MAX_DEPTH} files", at))
            return None
        try:
            data = read_file(path, source)
            meta: dict = {}
            spec, problems, failed, text = read(data, source, None, meta, strict_refs=False)
        except SpecError as e:
            self.problems += [Problem(p.message, p.span or at, p.expected, p.hint, p.severity) for p in e.problems]
            self.texts.update(e.texts)
            self.file_failed |= isinstance(e, SpecFileError)
            self.syntax_failed |= isinstance(e, SpecSyntaxError)
            return None
        self.chain.append(source)
        self.texts[source] = text
        self.syntax_failed |= failed
        self.problems += problems
        if spec.extends is None:
            return spec
        where = meta.get("extends")
        found, looked = find_extends(spec.extends, path.parent)
        if found is None:
            dirs = list(dict.fromkeys(display_name(p.parent) for p in looked))
            self.file_failed = True
            self.problems.append(Problem(f"extends {spec.extends!r}: no such spec", where,
                                         expected="a path relative to this file or a name in the spec library "
                                                  f"(looked in: {', '.join(dirs)})",
                                         hint=_near_spec(spec.extends, looked)))
            return None
        base = self.load(found, display_name(found), chain + (resolved,), where)
        return None if base is None else merge(base, spec)


def _near_spec(name: str, looked: list[Path]) -> str | None:
    names = set()
    for root in {p.parent for p in looked}:
        if root.is_dir():
            names.update(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in SUFFIXES)
    return did_you_mean(name, names)


def load_with_problems(path: str | os.PathLike) -> tuple[Spec, list[Problem], dict, list[str]]:
    """``load`` that also returns warnings, the source texts and the extends chain (for ``check``)."""
    loader = _Loader()
    source = os.fspath(path)
    spec = loader.load(Path(source), source, ())
    errors = [p for p in loader.problems if p.severity == "error"]
    if spec is not None and not errors:
        loader.problems = validate(spec)  # the merged design, lets bound: refs and cross-field rules
    _raise(loader.problems, loader.texts, loader.syntax_failed, loader.file_failed)
    if spec is None:  # pragma: no cover - a failed load always has an error
        raise SpecFileError.single(f"cannot load {source}")
    return spec, [p for p in loader.problems if p.severity != "error"], loader.texts, loader.chain


def load(path: str | os.PathLike) -> Spec:
    """The spec in a file, ``extends`` merged (see the module docstring), validated."""
    return load_with_problems(path)[0]


def resolve_lets(spec: Spec) -> Spec:
    """The spec with every ``$ref`` replaced by its let's value (the lets stay, for the record)."""
    lets = {p.key: p.value for p in spec.lets}
    missing: list[Problem] = []

    def sub(params):
        out = []
        for p in params:
            if isinstance(p.value, Ref):
                if p.value.name not in lets or isinstance(lets[p.value.name], Ref):
                    missing.append(Problem(f"undefined reference ${p.value.name}", p.value.span or p.span,
                                           hint=did_you_mean(p.value.name, lets)))
                    continue
                p = Param(p.key, lets[p.value.name], span=p.span)
            out.append(p)
        return tuple(out)

    statements = tuple(replace(s, params=sub(s.params)) for s in spec.statements)
    projector = replace(spec.projector, params=sub(spec.projector.params)) if spec.projector else None
    if missing:
        raise SpecError(missing)
    return replace(spec, statements=statements, projector=projector)
