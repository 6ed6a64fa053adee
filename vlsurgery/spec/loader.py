"""Reading specs: text or files, either form, ``extends`` merged, lets substituted.

``extends`` paths are looked up relative to the extending file, then in the shipped spec library
(``vlsurgery.resources.spec_library()``), with ``.vls``, ``.yaml`` or ``.yml`` appended when the
name has none of these suffixes; ``lib:NAME`` names a library spec only, here and in :func:`load`.
An extends never reaches a file without a spec suffix, nor one whose real path (symlinks
followed) lies outside the folder of the spec loaded, the library and the caller's ``roots``;
files are read with a bound and only when regular (see :data:`vlsurgery.errors.LIMITS` and
docs/limits.md).  Merging a child over its base (recursively): lets by name, the child's value
winning; statements base-then-child (later statements override earlier ones, so the child's
win); ``train`` targets unioned; backbone and projector taken from the child when it declares
them.  Lets are bound late, after merging, so ``let r = 192`` in a child changes every ``$r`` of
its base.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import replace
from pathlib import Path

from vlsurgery.errors import LIMITS, Problem, Span, SpecError, SpecFileError, SpecSyntaxError, UsageError, did_you_mean
from vlsurgery.resources import LIB, library_names, near_spec, read_file, spec_library, spec_names
from vlsurgery.spec.dsl import parse_dsl
from vlsurgery.spec.ir import Param, Ref, Spec
from vlsurgery.spec.space import Space, checked
from vlsurgery.spec.yaml_form import parse_yaml

FORMATS = ("dsl", "yaml")
SUFFIXES = {".vls": "dsl", ".yaml": "yaml", ".yml": "yaml"}
_YAML_START = re.compile(r"(---|\{\s*(\}|[\w\"']+\s*:)|(backbone|extends|let|projector|train|sites)\s*:)")


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
    """Spec text from bytes: UTF-8 (a BOM is dropped); binary data and other encodings are errors
    that point at the first byte that makes the data not UTF-8 text (a NUL, or an invalid byte)."""
    if isinstance(data, str):
        text = data
        size = len(text) if len(text) > LIMITS.spec_bytes else len(text.encode("utf-8", "surrogatepass"))
    else:
        size = len(data)
    if size > LIMITS.spec_bytes:
        raise SpecFileError.single(f"{source or 'the input'} is {size:,} bytes: larger than a spec may be", None,
                                   expected=f"at most {LIMITS.spec_bytes:,} bytes (docs/limits.md)")
    if not isinstance(data, str):
        nul = data.find(b"\0")
        try:
            text = data.decode("utf-8")
            bad = None
        except UnicodeDecodeError as e:
            bad = e.start
        if nul >= 0 and (bad is None or nul < bad):
            raise SpecFileError.single(f"{source or 'the input'} is a binary file, not a spec (a NUL byte)",
                                       Span(source, *_line_col(data, nul)), expected="UTF-8 text")
        if bad is not None:
            span = Span(source, *_line_col(data, bad))
            raise SpecFileError.single(f"{source or 'the input'} is not UTF-8 text (byte 0x{data[bad]:02x})",
                                       span, text=data[:bad].decode("utf-8", "replace"), expected="UTF-8 text",
                                       hint=("it starts with a UTF-16 byte-order mark: " if data[:2] in
                                             (b"\xff\xfe", b"\xfe\xff") else "") + "save the file as UTF-8")
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise SpecSyntaxError.single("the text contains NUL characters: binary data, not a spec",
                                     Span(source, line, 1), expected="UTF-8 text")
    return text[1:] if text.startswith("\ufeff") else text


def read(text: str | bytes, source: str | None = None, format: str | None = None,
         meta: dict | None = None, strict_refs: bool | None = None, space: bool = False
         ) -> tuple[Spec, list[Problem], bool, str]:
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
    problems = sorted(problems + checked(spec, space, strict_refs=strict, where=meta),
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
    """A path as messages show it: ``lib:NAME`` in the shipped library, else relative to the
    working directory when it is below it."""
    library = _library()
    if library is not None and _inside(os.path.realpath(path), [library]):
        return LIB + Path(os.path.relpath(os.path.realpath(path), library)).as_posix()
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _library() -> str | None:
    try:
        return os.path.realpath(spec_library())
    except FileNotFoundError:
        return None


def _inside(real: str, roots) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _candidates(name: str) -> list[str]:
    """The file names an extends name may mean: as written when it has a spec suffix, else with
    each spec suffix appended.  A name never means a file without a spec suffix."""
    if os.path.splitext(name)[1].lower() in SUFFIXES:
        return [name]
    return [name + suffix for suffix in SUFFIXES]


def _name_problem(name: str) -> str | None:
    if not name or len(name) > LIMITS.extends_name or any(len(part) > 255 for part in re.split(r"[/\\]", name)):
        return (f"a path of 1 to {LIMITS.extends_name} characters whose parts are at most 255 characters"
                if name else "a file name")
    if "\0" in name:
        return "a path without NUL characters"
    return None


def find_extends(name: str, base_dir: Path, roots=()) -> tuple[Path | None, list[Path], bool]:
    """The file an ``extends`` names, the places looked in, and whether a place was refused.

    Looked up: ``lib:NAME`` in the shipped library only; any other name relative to ``base_dir``,
    then in the library.  A place is used only when its real path (symlinks followed) lies inside
    one of ``roots`` or the library; see docs/limits.md.
    """
    library = _library()
    allowed = [os.path.realpath(r) for r in roots] + ([library] if library else [])
    if name.startswith(LIB):
        places = [Path(library)] if library else []
        name = name[len(LIB):]
    else:
        places = [base_dir] + ([Path(library)] if library else [])
    looked, refused = [], False
    for place in places:
        for candidate in _candidates(name):
            path = Path(candidate) if os.path.isabs(candidate) else place / candidate
            if not _inside(os.path.realpath(path), allowed):
                refused |= place is places[0]  # the library fallback of a '../' name is no refusal
                continue
            looked.append(path)
            try:
                if stat.S_ISREG(os.stat(path).st_mode):
                    return path, looked, refused
            except OSError:
                continue
        if os.path.isabs(name):
            break
    return None, looked, refused


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
    def __init__(self, roots, space: bool = False):
        self.roots = roots
        self.space = space
        self.texts: dict = {}
        self.problems: list[Problem] = []
        self.syntax_failed = False
        self.file_failed = False
        self.chain: list[str] = []  # the display names of the files being loaded, outermost first

    def load(self, path: Path, source: str, chain: tuple[Path, ...], at: Span | None = None) -> Spec | None:
        resolved = Path(os.path.realpath(path))
        if resolved in chain:
            names = [display_name(p) for p in chain[chain.index(resolved):]] + [display_name(resolved)]
            self.problems.append(Problem("extends cycle: " + " -> ".join(names), at,
                                         expected="a chain of extends that ends in a spec without extends"))
            return None
        if len(chain) >= LIMITS.extends_depth:
            self.problems.append(Problem(f"extends chain longer than {LIMITS.extends_depth} files", at,
                                         expected=f"at most {LIMITS.extends_depth} files (docs/limits.md)"))
            return None
        try:
            data = read_file(path, source)
            meta: dict = {}
            spec, problems, failed, text = read(data, source, None, meta, strict_refs=False, space=self.space)
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
        base = self.extends(spec.extends, path.parent, chain + (resolved,), meta.get("extends"))
        if base is None:
            return None
        merged = merge(base, spec)
        if len(merged.statements) > LIMITS.statements:
            self.problems.append(Problem(f"with what it extends, the design has {len(merged.statements):,} statements",
                                         meta.get("extends"), expected=f"at most {LIMITS.statements:,} "
                                         "statements in one design (docs/limits.md)"))
            return None
        return merged

    def extends(self, name: str, folder: Path, chain, where) -> Spec | None:
        wrong = _name_problem(name)
        if wrong:
            shown = name if len(name) <= 60 else name[:40] + f"... ({len(name):,} characters)"
            self.problems.append(Problem(f"extends {shown!r} is not a usable name", where, expected=wrong))
            self.file_failed = True
            return None
        found, looked, refused = find_extends(name, folder, self.roots)
        if found is None:
            self.file_failed = True
            if refused:
                self.problems.append(Problem(
                    f"extends {name!r}: outside the places a spec may extend", where,
                    expected="a path inside this spec's folder (the folder of the spec checked, and below), "
                             f"a name in the shipped library ({LIB}NAME) or a root the caller allows",
                    hint="see docs/limits.md; `vlsurgery specs` lists the library"))
                return None
            dirs = list(dict.fromkeys(display_name(p.parent) for p in looked))
            names = spec_names(folder) + [LIB + n for n in library_names()] + list(library_names())
            self.problems.append(Problem(f"extends {name!r}: no such spec", where,
                                         expected="a path relative to this file or a name in the spec library "
                                                  f"(looked in: {', '.join(dirs)})",
                                         hint=near_spec(name.removeprefix(LIB), names)))
            return None
        return self.load(found, display_name(found), chain, where)


def _roots(path: Path, roots) -> list[str]:
    return [os.path.dirname(os.path.realpath(path))] + [os.fspath(r) for r in roots]


def spec_path(name: str | os.PathLike) -> tuple[Path, str]:
    """The file a command-line name means, and its display name: ``lib:NAME`` is a spec of the
    shipped library (a SpecFileError when there is none), anything else a path as it is."""
    source = os.fspath(name)
    if not source.startswith(LIB):
        return Path(source), source
    found = None if _name_problem(source) else find_extends(source, Path("."))[0]
    if found is None:
        raise SpecFileError.single(f"no such spec in the shipped library: {source}", None,
                                   expected="a name that `vlsurgery specs` lists, e.g. lib:examples/demo.vls",
                                   hint=near_spec(source[len(LIB):], library_names()))
    return found, display_name(found)


def load_with_problems(path: str | os.PathLike, roots=(), space: bool = False
                       ) -> tuple[Spec, list[Problem], dict, list[str]]:
    """``load`` that also returns warnings, the source texts and the extends chain (for ``check``);
    with ``space``, the spec may be a design space (its members are checked)."""
    source = os.fspath(path)
    if "\0" in source:
        raise SpecFileError.single("a spec path cannot contain a NUL character", None, expected="a file name")
    if source.startswith(LIB):
        loader = _Loader(roots, space)
        found, shown = spec_path(source)
        spec = loader.load(found, shown, ())
    else:
        loader = _Loader(_roots(Path(source), roots), space)
        spec = loader.load(Path(source), source, ())
    errors = [p for p in loader.problems if p.severity == "error"]
    if spec is not None and not errors:
        loader.problems = checked(spec, space)  # the merged design, lets bound: refs and cross-field rules
    _raise(loader.problems, loader.texts, loader.syntax_failed, loader.file_failed)
    if spec is None:  # pragma: no cover - a failed load always has an error
        raise SpecFileError.single(f"cannot load {source}")
    return spec, [p for p in loader.problems if p.severity != "error"], loader.texts, loader.chain


def load(path: str | os.PathLike, *, roots=()) -> Spec:
    """The spec in a file, ``extends`` merged (see the module docstring), validated.

    ``path`` is a file, or ``lib:NAME`` for a spec of the shipped library
    (``lib:paper/bart-base/vl-pet-large.vls``; the suffix may be left out).  ``roots`` are further
    folders whose specs an ``extends`` may name (docs/limits.md).
    """
    return load_with_problems(path, roots)[0]


def load_space(path: str | os.PathLike, *, roots=()) -> Space:
    """The design space in a file (``extends`` merged), every value of every axis checked; a spec
    without choices is a space of one member."""
    return Space.of(load_with_problems(path, roots, space=True)[0])


def parse_space(text: str | bytes, source: str | None = None, format: str | None = None) -> Space:
    """The design space a text says (as :func:`parse`, for spaces)."""
    spec, problems, failed, text = read(text, source, format, space=True)
    _raise(problems, {source: text}, failed)
    return Space.of(spec)


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
