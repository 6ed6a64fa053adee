"""Where the grammar and the spec library are, in a wheel and in a source checkout; reading a
spec file with a bound.

Both live at the top of the repository (``grammars/``, ``specs/``); the wheel carries them as
``vlsurgery/_data/grammars`` and ``vlsurgery/_data/specs`` (see pyproject.toml).  A library spec
has a name users can type anywhere, ``lib:paper/bart-base/vl-pet-large.vls``
(:func:`library_names`, :func:`library_specs`; ``vlsurgery specs`` lists them).
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

from vlsurgery import caches
from vlsurgery.errors import LIMITS, SpecFileError, nearest

_PACKAGE = Path(__file__).resolve().parent
SPEC_SUFFIXES = (".vls", ".yaml", ".yml")
LIB = "lib:"  # the prefix of a name in the shipped spec library


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


def library_specs() -> list[tuple[str, str]]:
    """``(name, description)`` of every library spec; the description is the first line of the
    file's leading comment (every shipped spec opens with one)::

        >>> dict(library_specs())["examples/lora.vls"][:29]
        'LoRA (rank 8, alpha 16) on th'
    """
    out = []
    for name in library_names():
        head = read_file(spec_library() / name, LIB + name).decode("utf-8", "replace").lstrip("\ufeff")
        first = head.split("\n", 1)[0].strip()
        out.append((name, first.lstrip("#").strip() if first.startswith("#") else ""))
    return out


def missing_hint(path: Path) -> str | None:
    """A hint for a spec file that does not exist: a close name beside it, or the library name."""
    hint = near_spec(path.name, spec_names(path.parent))
    if hint:
        return hint
    name = path.as_posix().removeprefix("./").removeprefix("specs/")
    if not path.is_absolute() and name in library_names():
        return f"the shipped library has it: {LIB}{name}"
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _too_big(source: str, size: str) -> SpecFileError:
    return SpecFileError.single(f"{source} is {size}: larger than a spec may be", None,
                                expected=f"at most {LIMITS.spec_bytes:,} bytes (docs/limits.md)")


def read_file(path: Path, source: str) -> bytes:
    """The bytes of a spec file, read with a bound: at most ``LIMITS.spec_bytes``; FIFOs, devices
    and sockets are refused before they are opened for reading (they could block or never end)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SpecFileError.single(f"no such spec file: {source}", None, expected="an existing .vls or .yaml file",
                                   hint=missing_hint(Path(path))) from None
    except OSError as e:
        raise SpecFileError.single(f"cannot read {source}: {e.strerror or type(e).__name__}", None) from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecFileError.single(f"{source} is a directory, not a spec file", None)
    if not stat.S_ISREG(info.st_mode):
        raise SpecFileError.single(f"{source} is {_kind(info.st_mode)}, not a spec file", None,
                                   expected="a regular .vls or .yaml file")
    if info.st_size > LIMITS.spec_bytes:
        raise _too_big(source, f"{info.st_size:,} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise SpecFileError.single(f"cannot read {source}: {e.strerror or type(e).__name__}", None) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was looked at
            raise SpecFileError.single(f"{source} is not a regular file, not a spec file", None)
        chunks, size = [], 0
        while size <= LIMITS.spec_bytes:
            chunk = os.read(fd, LIMITS.spec_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise SpecFileError.single(f"cannot read {source}: {e.strerror or type(e).__name__}", None) from None
    finally:
        os.close(fd)
    if size > LIMITS.spec_bytes:  # a file that grew, or one (in /proc) that does not know its size
        raise _too_big(source, "more than that")
    return b"".join(chunks)


def spec_names(folder: Path, limit: int = 1000) -> list[str]:
    """The spec files directly in ``folder`` (at most ``limit`` entries are looked at)."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in itertools.islice(entries, limit) if os.path.splitext(e.name)[1] in SPEC_SUFFIXES]
    except OSError:
        return []


def near_spec(name: str, names) -> str | None:
    """did-you-mean among spec names, comparing the names without their suffixes (``nonexistent.vls``
    is not close to ``bitfit.vls`` because both end in ``.vls``)."""
    stems = {os.path.splitext(n)[0]: n for n in names}
    guess = nearest(os.path.splitext(name)[0], stems, cutoff=0.75)
    return f"did you mean '{stems[guess]}'?" if guess else None


@caches.memoize("resources.library_names")
def _library_names(root: str) -> tuple[str, ...]:
    return tuple(sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.suffix in SPEC_SUFFIXES))


def library_names() -> tuple[str, ...]:
    """Every spec of the shipped library by its name (``paper/bart-base/vl-pet.vls``)."""
    try:
        library = os.path.realpath(spec_library())
    except FileNotFoundError:
        return ()
    return _library_names(library)


