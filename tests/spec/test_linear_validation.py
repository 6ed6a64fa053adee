"""Override analysis without comparing every pair: exact answers, and work that grows linearly.

The answers are checked against a brute force over stack sizes (written here from Python's slice
rules, independently of :mod:`vlsurgery.spec.addresses`) and against the pairwise definition;
the cost is checked by counting the exact pair tests :class:`Overlaps` makes, never by timing.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from vlsurgery.spec import parse, summarize, validate
from vlsurgery.spec.addresses import covers, layer_covers, layer_overlap, overlap
from vlsurgery.spec.ir import Index, Range
from vlsurgery.spec.validate import LISTED, Overlaps


def picked(layers, n):
    """The layers a selection picks in a stack of n, or None if one of its indices does not exist."""
    if layers is None:
        return set(range(n))
    out = set()
    for item in layers:
        if isinstance(item, Index):
            if not -n <= item.value < n:
                return None
            out.add(item.value % n)
        else:
            out.update(range(n)[item.start:item.stop])
    return out


def brute(a, b, test):
    bound = max([0] + [abs(v) for sel in (a, b) for it in sel or ()
                       for v in ((it.value,) if isinstance(it, Index) else (it.start or 0, it.stop or 0))])
    results = {test(sa, sb) for n in range(1, 4 * bound + 10)
               for sa, sb in [(picked(a, n), picked(b, n))] if sa is not None and sb is not None}
    return "yes" if results == {True} else "maybe" if True in results else "no"


def random_selection(rnd, k):
    if rnd.random() < 0.1:
        return None
    bound = lambda: None if rnd.random() < 0.25 else rnd.randint(-k, k)  # noqa: E731
    return tuple(Index(rnd.randint(-k, k)) if rnd.random() < 0.5 else Range(bound(), bound())
                 for _ in range(rnd.randint(1, 4)))


@pytest.mark.parametrize("seed", range(4))
def test_layer_answers_equal_a_brute_force_over_every_stack_size(seed):
    rnd = random.Random(seed)
    for _ in range(1500):
        k = rnd.choice([2, 5, 9])
        a, b = random_selection(rnd, k), random_selection(rnd, k)
        if a is None and b is None:
            continue
        assert layer_overlap(a, b) == brute(a, b, lambda sa, sb: bool(sa & sb)), (a, b)
        assert (a is None or layer_covers(a, b)) == (brute(a, b, lambda sa, sb: sb <= sa) == "yes"), (a, b)


def test_large_indices_are_exact_not_capped():
    # a loop over stack sizes stopped at 512 once made `encoder[600]` miss itself
    a = (Index(600),)
    assert layer_overlap(a, a) == "yes" and layer_covers(a, a)
    assert layer_overlap((Index(-700),), (Index(300),)) == "maybe"  # both exist from 700 layers; meet at 1000
    assert layer_overlap((Range(10**9, None),), (Index(-1),)) == "maybe"


SITES = ("encoder", "decoder", "*", "encoder.ffn", "*.ffn", "decoder.cross_attn", "encoder.{ffn,self_attn}",
         "decoder.cross_attn.v", "*.self_attn.{q,v}", "*.*.*", "encoder.input", "*.input")


def random_statements(rnd, n):
    lines = []
    for _ in range(n):
        site = rnd.choice(SITES)
        stack, dot, rest = site.partition(".")
        if rest not in ("input", "*.input") and rnd.random() < 0.6:
            items = [str(rnd.randint(-6, 5)) if rnd.random() < 0.5 else
                     f"{rnd.choice(['', rnd.randint(-6, 6)])}:{rnd.choice(['', rnd.randint(-6, 6)])}"
                     for _ in range(rnd.randint(1, 2))]
            stack += "[" + ",".join(items) + "]"
        method = rnd.choice(["lite", "none", "ia3", "gate", "", "lora", "prompt"])
        lines.append(f"{stack}{dot}{rest}: {method}".rstrip())
    return parse_loosely("\n".join(lines))


def parse_loosely(text):
    """The statements of a text, valid or not (validation problems are what other tests look at)."""
    from vlsurgery.spec.dsl import parse_dsl

    return parse_dsl(text, "t.vls")[0].statements


@pytest.mark.parametrize("seed", range(6))
def test_index_gives_what_comparing_every_pair_gives(seed):
    rnd = random.Random(seed)
    statements = random_statements(rnd, 60)
    o = Overlaps(statements, listed=1000)
    for i, stmt in enumerate(statements):
        pairs = [(j, overlap(statements[j].target, stmt.target)) for j in range(i)]
        expected = [(j, v) for j, v in pairs if v != "no"]
        assert o.earlier[i] == expected and o.count[i] == len(expected)
        later = [k for k in range(i + 1, len(statements))
                 if (statements[k].method == "none" or (statements[k].method is not None and stmt.method is not None
                                                        and statements[k].method != stmt.method))
                 and covers(statements[k].target, stmt.target)]
        assert o.first_replacing(i) == (later[0] if later else None)


def statements_of(shape, n):
    if shape == "distinct":        # n single layers of one site: no two overlap
        lines = [f"encoder[-{i}].ffn: adapter" for i in range(1, n + 1)]
    elif shape == "same":          # one site n times: every statement overrides every earlier one
        lines = [f"encoder.ffn: {('lite', 'adapter', 'none')[i % 3]}" for i in range(n)]
    elif shape == "ranges":        # disjoint ranges from the start and from the end
        lines = [f"encoder[{2 * i}:{2 * i + 2}].ffn: lite" if i % 2 else f"decoder[-{i + 2}:-{i}].self_attn.q: lora"
                 for i in range(1, n + 1)]
    else:                          # many sites and a few layer shapes, repeated
        lines = [f"{('encoder', 'decoder', '*')[i % 3]}{('', '[0]', '[-1]', '[1:3]')[i % 4]}."
                 f"{('ffn', 'self_attn', 'self_attn.v', '*')[i % 4]}: {('ia3', 'none', 'gate')[i % 3]}"
                 for i in range(n)]
    statements = []
    for start in range(0, n, 500):  # the reader takes at most 1,000 statements per text
        statements += parse_loosely("\n".join(lines[start:start + 500]))
    return tuple(statements)


@pytest.mark.parametrize("shape", ["distinct", "same", "ranges", "mixed"])
def test_exact_pair_tests_grow_linearly_with_the_statements(shape):
    small, large = (Overlaps(statements_of(shape, n)) for n in (300, 1200))
    assert large.comparisons <= 2 * 1200 + 100
    assert large.comparisons <= 4.5 * max(small.comparisons, 1)
    for o in (small, large):  # and the per-statement answers are there
        for j in range(len(o.group)):
            o.first_replacing(j)
    assert large.comparisons <= 5 * 1200 + 100


def test_summary_lists_a_bounded_number_of_earlier_statements():
    spec = replace(parse(""), statements=statements_of("same", 60))
    text = summarize(spec)
    last = text.split("  #60 ")[1]
    assert last.count("overrides #") == LISTED
    assert f"and {59 - LISTED} more earlier statements it may override (only the first {LISTED} are listed)" in last
    assert "overrides #1 " in last and f"overrides #{LISTED} " in last and f"overrides #{LISTED + 1} " not in last
    assert text.count("more earlier statement") == 60 - LISTED - 1


def test_warnings_of_useless_statements_name_the_first_replacing_statement():
    text = "encoder.ffn: lite\nencoder[0].ffn: ia3\nencoder.ffn: none\nencoder[-1].ffn: gate\n"
    warnings = [p for p in validate(parse(text, "w.vls")) if p.severity == "warning"]
    assert [(p.span.line, p.message) for p in warnings] == [
        (1, "this statement has no effect: every site it names is cleared by w.vls:3:1"),
        (2, "this statement has no effect: every site it names is cleared by w.vls:3:1")]


def test_plan_warning_names_the_lines_that_override_the_statement_on_its_own_sites():
    from vlsurgery.planning import plan

    text = "backbone tiny-bart\nencoder.ffn: lite\ndecoder.ffn: lite\nencoder.ffn: ia3\ndecoder.ffn: adapter\n"
    hints = {w.span.line: w.hint for w in plan(parse(text, "w.vls")).warnings}
    assert hints == {2: "overridden by line 4", 3: "overridden by line 5"}
