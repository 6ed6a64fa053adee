"""`vlsurgery search`: exact counts (against `count`), budgets, Pareto fronts, the CLI (golden).

Regenerate the golden files with ``VLSURGERY_REGEN_GOLDEN=1 pytest tests/search/test_search.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings

import vlsurgery
from vlsurgery.cli.main import main
from vlsurgery.errors import UsageError
from vlsurgery.planning import count
from vlsurgery.search import parse_budget, search_space
from vlsurgery.spec import dumps, parse, parse_space
from vlsurgery.testing import space_members

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
REGEN = bool(os.environ.get("VLSURGERY_REGEN_GOLDEN"))
TABLE9 = ROOT / "specs/paper/bart-base/table9"

#: A space whose statements interact (overlapping layers, a `none` over an earlier site, a
#: methodless merge), with a let shared by two statements: the incremental counter must group them.
TINY = parse_space("""backbone tiny-bart
let r = (4|8|16)
encoder[0:1 | 0:2].{ffn,self_attn}: adapter r=$r granularity=(none|small|large)
encoder[-1].ffn: (none | lite r=8 | granularity=vector)
decoder.cross_attn.(v|q): (lite r=$r | lora r=4)
encoder.input: prompt length=(2|5)
""")

#: Projections, a role backed by two linears (gated T5's `in`), compacter's shared tensors on
#: sites of different widths, and a gate choice: the fast path's territory.
GATED = parse_space("""backbone tiny-t5-gated
encoder.ffn.in: (lora r=2 | ia3 | compacter n=2 | none)
decoder.{self_attn,ffn}: (compacter n=2 | adapter) reduction=(2|4) granularity=(none|vector|matrix)
encoder.self_attn.(q|v): lora r=(2|8)
""")

#: LLaMA's roles alias: `in`/`gate`/`up` name one linear, `out`/`down` another, so `ffn.*` reaches
#: each site through two or three roles; it must be counted once, as the planner does.
LLAMA = parse_space("""backbone tiny-llama
decoder[0].ffn.*: (lora r=4 | ia3 | none)
decoder[1].ffn.(in|down|up): (lora r=2 | ia3)
decoder[1].self_attn.(q|o): lora r=(2|4)
""")


def test_table9_space_lists_exactly_the_shipped_table9_counts():
    outcome = search_space(str(HERE / "table9-space.vls"))
    got = sorted(r.trainable for r in outcome.results)
    shipped = sorted(count(str(p)).trainable for p in TABLE9.glob("*.vls"))
    assert len(shipped) == 10 and got == shipped
    by_choice = {(r.choices["#1 method"].split()[0], r.choices["#1 granularity"]): r.trainable
                 for r in outcome.results}
    assert by_choice[("adapter", "large")] == count(str(TABLE9 / "vl-adapter-large.vls")).trainable
    assert by_choice[("compacter", "none")] == count(str(TABLE9 / "compacter.vls")).trainable


@settings(max_examples=25, deadline=None)
@given(space_members(TINY))
def test_every_member_counts_as_count_says(member):
    _same_as_count(TINY, member)


@settings(max_examples=25, deadline=None)
@given(space_members(GATED))
def test_every_member_counts_as_count_says_on_projections(member):
    _same_as_count(GATED, member)


@settings(max_examples=25, deadline=None)
@given(space_members(LLAMA))
def test_every_member_counts_as_count_says_where_roles_alias(member):
    _same_as_count(LLAMA, member)


@pytest.mark.parametrize("backbone, text", [
    ("tiny-llama", "decoder.ffn.*: lora r=4"), ("tiny-llama", "decoder.ffn.*: ia3"),
    ("tiny-qwen2", "decoder.ffn.{in,up}: lora r=(4|8)"), ("tiny-llava", "*.ffn.*: (lora r=4 | ia3)"),
])
def test_a_site_reached_through_aliased_roles_counts_once(backbone, text):
    space = parse_space(f"backbone {backbone}\n{text}")
    for r in search_space(space).results:
        assert r.trainable == count(r.spec).trainable


def _same_as_count(space, member):
    idx, spec = member
    from vlsurgery.search.counter import Counter

    got = Counter(space)(idx)
    written = parse(dumps(spec))                 # the design written out and read back
    expected = count(written)
    assert (got.trainable, got.total) == (expected.trainable, expected.total)


@pytest.mark.parametrize("budget", ["2%", "5%", "3000", "6.5k"])
def test_budget_keeps_exactly_the_members_within_it(budget):
    outcome = search_space(TINY, budget=budget)
    kept = {r.index for r in outcome.results}
    limit = parse_budget(budget)
    for idx in TINY.indices():
        c = count(TINY.member(idx))
        within = c.trainable_percent <= limit.value if limit.percent else c.trainable <= limit.value
        assert (idx in kept) == within, (idx, c.trainable)
    assert outcome.over_budget == len(TINY) - len(kept)


def test_sorted_top_min_and_pareto():
    everything = search_space(TINY).results
    assert [r.trainable for r in everything] == sorted((r.trainable for r in everything), reverse=True)
    assert [r.index for r in search_space(TINY, top=3).results] == [r.index for r in everything[:3]]
    low = search_space(TINY, minimum="9k").results
    assert low and all(r.trainable >= 9_000 for r in low) and len(low) < len(everything)
    front = search_space(TINY, pareto=["$r:desc"]).results
    for a in front:       # nothing in the space is smaller and has at least as large an r
        r_a = int(a.choices["$r"])
        assert not any(b.trainable < a.trainable and int(b.choices["$r"]) >= r_a for b in everything)
    assert sorted({int(r.choices["$r"]) for r in front}) == [4, 8, 16]


def test_pareto_front_is_exactly_the_undominated_members():
    everything = search_space(GATED).results
    ranks = [(int(r.choices["#3 r"]), ["none", "vector", "matrix"].index(r.choices["#2 granularity"]))
             for r in everything]

    def beaten(i):
        return any(everything[j].trainable <= everything[i].trainable and all(a >= b for a, b in zip(ranks[j], ranks[i]))
                   and (everything[j].trainable, ranks[j]) != (everything[i].trainable, ranks[i])
                   for j in range(len(everything)))
    expected = {everything[i].index for i in range(len(everything)) if not beaten(i)}
    front = search_space(GATED, pareto=["#3 r:desc", "granularity:desc"]).results
    assert {r.index for r in front} == expected and 1 < len(front) < len(everything)


def test_memory_stays_bounded_when_everything_fits():
    outcome = search_space(TINY, max_listed=10)
    assert len(outcome.results) == 10 and outcome.not_listed == len(TINY) - 10
    assert [r.index for r in outcome.results] == [r.index for r in search_space(TINY).results[:10]]


def test_python_api_yields_specs_and_counts():
    pairs = list(vlsurgery.search(TINY, budget="5%"))
    assert pairs and all(c.trainable == count(s).trainable for s, c in pairs[:5])


@pytest.mark.parametrize("kwargs, words", [
    ({"budget": "lots"}, "cannot read the budget"), ({"budget": "300%"}, "more than the whole model"),
    ({"pareto": ["q:desc"]}, "no axis"), ({"top": 0}, "--top must be at least 1"),
    ({"max_members": 10}, "a search enumerates at most 10"),
])
def test_bad_requests_are_usage_errors(kwargs, words):
    with pytest.raises(UsageError, match=words):
        search_space(TINY, **kwargs)


def test_one_line_spec_text_is_text_as_for_count():
    pairs = list(vlsurgery.search("encoder.ffn: adapter reduction=4", "tiny-bart"))
    assert [c.trainable for _, c in pairs] == [vlsurgery.count("encoder.ffn: adapter reduction=4", "tiny-bart").trainable]


def test_an_invalid_member_is_told_by_its_first_problem_and_where():
    outcome = search_space("backbone tiny-bart\nencoder[0].ffn: adapter reduction=(4|64)\n"
                           "encoder[1].ffn: adapter reduction=64\nencoder.ffn: heads=1")
    assert sum(outcome.invalid.values()) == 2 and not outcome.results
    for message in outcome.invalid:  # the member with two problems too: not "2 problems in spec"
        assert message.startswith("<string>:") and "reduction=64 is larger than the width" in message


# ------------------------------------------------------------------------------------------ CLI
def _run(capsys, *argv):
    status = main(["search", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name, flags", [("table9.txt", []), ("table9-3pct.md", ["--budget", "3%", "--markdown"]),
                                         ("table9-top3.json", ["--top", "3", "--json"])])
def test_cli_golden(capsys, monkeypatch, name, flags):
    monkeypatch.chdir(ROOT)
    status, out, _ = _run(capsys, "tests/search/table9-space.vls", *flags)
    assert status == 0
    if REGEN:
        (GOLDEN / name).write_text(out)
    assert out == (GOLDEN / name).read_text()


def test_cli_out_writes_canonical_members(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    status, out, _ = _run(capsys, "tests/search/table9-space.vls", "--budget", "2%", "--out", str(tmp_path), "--json")
    assert status == 0
    rows = json.loads(out)["designs"]
    files = sorted(tmp_path.glob("*.vls"))
    assert len(files) == len(rows) == 4
    for f, row in zip(files, rows):
        text = f.read_text()
        assert dumps(parse(text)) == text and count(str(f)).trainable == row["trainable"]


def test_cli_errors(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert _run(capsys, "tests/search/table9-space.vls", "--pareto")[0] == 2
    assert _run(capsys, "tests/search/table9-space.vls", "--budget", "x")[0] == 2
    status, out, err = _run(capsys, "tests/search/nothing-here.vls")
    assert status == 1 and "nothing-here.vls" in err
