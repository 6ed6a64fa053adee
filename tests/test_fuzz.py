"""Hostile and mistaken input: every failure is a vlsurgery error, positioned where it is about the text.

Inputs come from three generators: the grammar itself (hypothesis' ``from_lark`` on the parser
of :func:`vlsurgery.spec.grammar.parser`, so most texts get past the lexer and reach validation),
mutations of the shipped specs under ``specs/`` in both forms (byte flips, truncation, repeated
lines, inserted hostile tokens: huge numbers, deep nesting, NULs, unusual unicode), and hostile
values spliced into valid statements.  Each text goes through reading (DSL and YAML), validation,
``dumps`` in both forms, planning and counting on a tiny backbone, and ``diff`` against a shipped
design.  Anything but a :class:`~vlsurgery.errors.VLSurgeryError` fails the test, and so does a
problem about the text that does not say where it is.

About 4,000 inputs per run with the ``ci`` profile; ``--hypothesis-profile=thorough`` runs more.
Crashes found in the readers, which this file does not own, are listed in :data:`KNOWN` with a
reproducer and expected to fail until they are fixed.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from vlsurgery.errors import SpecError, VLSurgeryError
from vlsurgery.spec import dumps, load, parse, validate
from vlsurgery.spec.dsl import parse_dsl
from vlsurgery.spec.grammar import parser

SPECS = Path(__file__).resolve().parents[1] / "specs"
SHIPPED = sorted(p for p in SPECS.rglob("*") if p.suffix in (".vls", ".yaml", ".yml"))
BACKBONES = ("tiny-bart", "tiny-t5")

#: Crashes found by this file in modules it does not own: (reproducer, what happens).  Each is
#: checked on its own below (expected to fail until fixed), and inputs matching one are skipped
#: in the generated runs so that they do not hide other crashes.
KNOWN: list[tuple[str, str, str]] = []

HOSTILE = ["9" * 5000, "-" + "9" * 4400, "1e999999", "-1e400", "nan", "inf", ".inf", "0x10", "1_000",
           "\0", "\x00\x00", "\ud7ff", "\U0010ffff", "\u202e", "\ufeff", "\x85", "\u2028", "\t\f\v",
           "{" * 200, "[" * 200, "]" * 50, "}" * 50, "[[[[" * 60 + "]]]]" * 60, "{a:" * 200 + "}" * 200,
           "&a [*a, *a]", "!!python/object:os.system", "<<: *a", "*" * 50, "$" + "r" * 300, "'" * 3,
           '"\\U00110000"', '"\\ud800"', "encoder[" + ",".join(map(str, range(400))) + "]",
           "{" + ",".join(f"n{i}" for i in range(300)) + "}", "encoder[-" + "9" * 30 + "]", "a" * 5000,
           "\n" * 300, ";" * 300, "#" * 100, "extends \"/dev/zero\"", "extends \"" + "../" * 40 + "x\"",
           "backbone " + "x/" * 100, "let r = " + "1" * 4400]


def exercise(text, source: str, format: str | None = None) -> None:
    """Run a text through every stage that reads user input; only vlsurgery errors may escape."""
    try:
        spec = parse(text, source, format=format)
    except SpecError as e:
        check_positions(e, text, source)
        return
    except VLSurgeryError:
        return
    for form in ("dsl", "yaml"):
        again = parse(dumps(spec, form), f"again.{'vls' if form == 'dsl' else 'yaml'}")
        assert again == spec, form
    from vlsurgery.planning import count

    for backbone in BACKBONES:
        try:
            count(spec, backbone)
        except SpecError as e:
            check_positions(e, text, source)
        except VLSurgeryError:
            pass
    try:
        from vlsurgery.diff import diff

        diff(spec, SPECS / "examples" / "demo.vls", backbone="tiny-bart")
    except SpecError as e:
        check_positions(e, text, source)
    except VLSurgeryError:
        pass


#: Problems about a whole input rather than a place in it.
WHOLE_INPUT = re.compile(r"larger than a spec may be|more than [\d,]+ statements")


def check_positions(error: SpecError, text, source: str) -> None:
    """Every problem says where it is (lines and columns inside the text when it is about the text)."""
    for problem in error.problems:
        if problem.span is None:
            assert WHOLE_INPUT.search(problem.message), f"no position: {problem.message}"
            continue
        if Path(str(problem.span.source)).name != Path(source).name:
            continue  # a problem in a file the text extends
        lines = text.count("\n" if isinstance(text, str) else b"\n") + 1
        assert 1 <= problem.span.line <= lines + 1 and problem.span.column >= 1, (problem, lines)
        assert problem.render(text if isinstance(text, str) else None)


def is_known(text) -> bool:
    return any(marker in (text if isinstance(text, str) else text.decode("utf-8", "replace"))
               for marker, _, _ in KNOWN)


# ------------------------------------------------------------------------------------------
# grammar-aware generation

GRAMMAR = parser()
NAMES = st.sampled_from(["encoder", "decoder", "ffn", "self_attn", "cross_attn", "q", "v", "in", "input",
                         "adapter", "lite", "lora", "none", "prompt", "ia3", "gate", "r", "heads", "granularity",
                         "vector", "matrix", "length", "init", "normal", "bart-base", "layernorm", "bias",
                         "projector", "all", "scale", "reduction", "x"])
TEXTS = from_lark(GRAMMAR, start="start", explicit={
    "NAME": NAMES,
    "PATH": st.sampled_from(["tiny-bart", "tiny-t5", "bart-base", "nowhere/model", "base.vls"]),
    "INT": st.integers(-20, 300).map(str) | st.sampled_from(["0", "-0", "9" * 40]),
    "FLOAT": st.sampled_from(["0.5", "1e-3", ".25", "-2.", "1e308", "3.0e5"]),
    "STRING": st.sampled_from(['"tiny-t5"', "'x'", '"a\\"b"', '""', '"demo.vls"']),
    "REF": st.sampled_from(["$r", "$h", "$nope"]),
})


INDEX = st.integers(-8, 8) | st.sampled_from([-(10 ** 6), 10 ** 6, 255, 256, 511, 512, 600])
LAYER = INDEX.map(str) | st.tuples(st.none() | INDEX, st.none() | INDEX).map(
    lambda r: f"{'' if r[0] is None else r[0]}:{'' if r[1] is None else r[1]}")
STATEMENT = st.builds(
    lambda stack, layers, rest, method, params: f"{stack}{'[' + ','.join(layers) + ']' if layers else ''}{rest}: "
                                                f"{method} {params}",
    st.sampled_from(["encoder", "decoder", "*", "{encoder,decoder}"]), st.lists(LAYER, max_size=3),
    st.sampled_from(["", ".ffn", ".self_attn", ".cross_attn", ".*", ".{ffn,self_attn}", ".self_attn.q",
                     ".*.v", ".ffn.*", ".input", ".cross_attn.{k,v}"]),
    st.sampled_from(["", "adapter", "lite", "lora", "ia3", "gate", "none", "prompt", "compacter"]),
    st.sampled_from(["", "r=8", "heads=3", "r=$r", "granularity=vector", "length=4", "scale=0.5", "r=0"]))
DESIGNS = st.lists(STATEMENT, min_size=1, max_size=25).map(lambda lines: "let r = 8\n" + "\n".join(lines))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(DESIGNS)
def test_generated_designs(text):
    """Statements built from the language's parts: most are valid, many overlap, some do not fit."""
    exercise(text, "design.vls")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(TEXTS)
def test_grammar_texts(text):
    assume(not is_known(text))
    exercise(text, "gen.vls")
    spec, problems = parse_dsl(text, "gen.vls")  # the IR as written, also when the reader refuses it
    if not problems:
        validate(spec)
        validate(spec, strict_refs=False)


# ------------------------------------------------------------------------------------------
# mutations of the shipped specs

def shipped_texts() -> list[tuple[str, str]]:
    out = []
    for path in SHIPPED:
        text, name = path.read_text(), str(path.relative_to(SPECS))
        out.append((name, text))
        try:
            out.append((name.rsplit(".", 1)[0] + ".yaml", dumps(parse(text, str(path)), "yaml")))
        except VLSurgeryError:
            pass
    return out


ORIGINALS = shipped_texts()


def mutate(rnd: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    choice = rnd.randrange(7)
    if choice == 0 and data:  # flip bytes
        data = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        return bytes(data)
    if choice == 1:
        return data[:rnd.randrange(len(data) + 1)]
    if choice == 2 and lines:
        i = rnd.randrange(len(lines))
        return b"\n".join(lines[:i] + [lines[i]] * rnd.randint(2, 50) + lines[i:])
    if choice == 3:
        i = rnd.randrange(len(data) + 1)
        return data[:i] + rnd.choice(HOSTILE).encode("utf-8", "surrogatepass") + data[i:]
    if choice == 4 and lines:  # replace a value or a name by a hostile token
        i = rnd.randrange(len(lines))
        words = re.split(rb"([ =:.\[\],{}]+)", lines[i])
        j = rnd.randrange(len(words))
        words[j] = rnd.choice(HOSTILE).encode("utf-8", "surrogatepass")
        lines[i] = b"".join(words)
        return b"\n".join(lines)
    if choice == 5:  # splice two specs
        other = rnd.choice(ORIGINALS)[1].encode()
        return data[:rnd.randrange(len(data) + 1)] + other[rnd.randrange(len(other) + 1):]
    return bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40))) + data


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A copy of the shipped specs, to load mutants next to the files they extend."""
    root = tmp_path_factory.mktemp("specs")
    shutil.copytree(SPECS, root, dirs_exist_ok=True)
    return root


def exercise_file(data: bytes, path: Path) -> None:
    """Load a mutant from a file beside the originals (``extends`` resolved and merged)."""
    path.write_bytes(data)
    try:
        load(path)
    except SpecError as e:
        check_positions(e, data.decode("utf-8", "replace"), path.name)
    except VLSurgeryError:
        pass


@pytest.mark.parametrize("name, text", ORIGINALS, ids=[n for n, _ in ORIGINALS])
def test_mutated_shipped_specs(name, text, library):
    rnd = random.Random(name)
    beside = (library / name).parent
    for i in range(10):
        data = text.encode()
        for _ in range(rnd.randint(1, 3)):
            data = mutate(rnd, data)
        if is_known(data):
            continue
        exercise(data, name)
        exercise_file(data, beside / f"mutant-{i}{Path(name).suffix}")
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        exercise(decoded, "mutant.vls", format="dsl")
        exercise(decoded, "mutant.yaml", format="yaml")


# ------------------------------------------------------------------------------------------
# hostile values in valid statements

STATEMENTS = ["encoder.ffn: adapter r={v}", "let r = {v}", "encoder[{v}].ffn: lite", "decoder[{v}:{v}].ffn: none",
              "projector feat_dim={v}", "encoder.input: prompt length={v}", "backbone {v}", "{v}: adapter",
              "encoder.{{{v},ffn}}: ia3", "train encoder.{v}", "encoder.self_attn: granularity={v}"]
YAML = ["sites:\n  - at: encoder.ffn\n    r: {v}\n", "let: {{r: {v}}}\nsites: [{{at: encoder.ffn, r: $r}}]\n",
        "sites:\n  - at: \"{v}\"\n", "backbone: {v}\n", "projector: {{feat_dim: {v}}}\n", "{v}\n",
        "sites:\n  - {v}\n", "train: [{v}]\n"]


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(STATEMENTS + YAML), st.sampled_from(HOSTILE) | st.text(max_size=30))
def test_hostile_values(template, value):
    text = template.format(v=value)
    assume(not is_known(text))
    exercise(text, "hostile.yaml" if template in YAML else "hostile.vls")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=30), st.lists(st.sampled_from(HOSTILE), min_size=1))
def test_many_hostile_statements(templates, values):
    text = "\n".join(t.format(v=values[i % len(values)]) for i, t in enumerate(templates))
    assume(not is_known(text))
    exercise(text, "many.vls")


@pytest.mark.parametrize("marker, reproducer, what", KNOWN, ids=[w for _, _, w in KNOWN])
def test_known_crashes(marker, reproducer, what):
    if not _fixed(reproducer):
        pytest.xfail(f"known crash in the reader: {what}")


def _fixed(reproducer) -> bool:
    try:
        exercise(reproducer, "known.vls")
    except AssertionError:
        return True  # an unpositioned error: not a crash any more
    except Exception:  # noqa: BLE001 - the point is to see whether it still crashes
        return False
    return True
