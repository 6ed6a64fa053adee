"""`vlsurgery draw`: well-formed, self-contained SVG/HTML with one element per site, where it attaches.

No headless browser can be installed here (pip only; playwright needs a browser download), so
the picture is checked as XML: every planned site is exactly one element named by ``data-site``,
drawn in its place (sublayer bars under the residual stream, projection chips, prefix tokens),
and a diff outlines exactly the sites that changed.  When cairosvg can render offline, the
picture is also rendered to PNG.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import vlsurgery
from vlsurgery.cli.main import main
from vlsurgery.draw import draw, draw_html
from vlsurgery.planning import plan

ROOT = Path(__file__).resolve().parents[2]
BART = ROOT / "specs/paper/bart-base"
SVG = "{http://www.w3.org/2000/svg}"

MIXED = """backbone tiny-t5-gated
projector
train encoder.layernorm, projector
encoder.input: prompt length=4
encoder.self_attn: adapter r=8 granularity=matrix
encoder[0].ffn.in: lora r=4
decoder.cross_attn.{q,v}: lora r=2
"""


def _sites(svg_text: str) -> dict:
    root = ET.fromstring(svg_text)
    out = {}
    for e in root.iter():
        if e.get("data-site") is not None:
            assert e.get("data-site") not in out, f"{e.get('data-site')} drawn twice"
            out[e.get("data-site")] = e
    return out


@pytest.mark.parametrize("spec", [str(BART / "vl-pet-large.vls"), "specs/examples/demo.vls", MIXED])
def test_one_element_per_site_with_its_count(spec):
    text = draw(spec)
    drawn = _sites(text)
    planned = {s.path: s for s in plan(spec).sites}
    assert set(drawn) == set(planned)
    for path, e in drawn.items():
        assert int(e.get("data-trainable")) == planned[path].trainable
        assert e.get("data-method") == planned[path].method
        assert path in e.find(f"{SVG}title").text


def test_sites_are_drawn_where_they_attach():
    text = draw(MIXED)
    drawn = _sites(text)
    root = ET.fromstring(text)
    # a sublayer site is a bar just under its sublayer's box, on the residual stream (from X to H)
    bar = drawn["encoder[0].self_attn"]
    lines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "residual"]
    stream_y = float(lines[0].get("y1"))
    assert 0 < float(bar.get("y")) - stream_y < 30 and float(bar.get("width")) > 100
    # a gated T5 `in` role is two linears: two slices of the chip, one per linear
    assert {"encoder[0].ffn.in[wi_0]", "encoder[0].ffn.in[wi_1]"} <= set(drawn)
    assert float(drawn["encoder[0].ffn.in[wi_0]"].get("width")) < 24
    # prompt tokens at the encoder's input, above the first layer; the projector's tokens too
    assert float(drawn["encoder.input"].get("y")) < float(bar.get("y"))
    assert any(e.get("class") == "projector" for e in root.iter(f"{SVG}rect"))
    # norms made trainable by `train encoder.layernorm` are marked, the decoder's are not
    marked = [e for e in root.iter() if e.get("data-trained") == "true"]
    assert marked and len([e for e in root.iter(f"{SVG}rect") if e.get("class") == "norm"]) > 0


def test_trained_biases_mark_their_sublayers():
    spec = "backbone tiny-bart\ntrain decoder[0].cross_attn.bias\nencoder.ffn: adapter r=4\n"
    boxes = [e for e in ET.fromstring(draw(spec)).iter(f"{SVG}rect")
             if e.get("class") == "sublayer" and e.get("data-trained")]
    trained = plan(spec).train                # the biases of q, k, v, o and the sublayer's norm
    assert len(boxes) == 1 and int(boxes[0].get("data-trained")) == len(trained) >= 4


def test_colour_follows_trainable_parameters():
    drawn = _sites(draw(MIXED))
    small, big = drawn["decoder[0].cross_attn.q"], drawn["encoder[0].self_attn"]
    assert small.get("fill") != big.get("fill")


def test_diff_outlines_exactly_the_changed_sites():
    a, b = str(BART / "vl-adapter.vls"), str(BART / "vl-pet-large.vls")
    text = draw(a, other=b)
    d = vlsurgery.diff(a, b)
    kinds = {p: ch.change for ch in d.site_changes for p in ch.paths}
    assert set(kinds.values()) == {"added", "removed", "changed"}
    marked = [e for e in ET.fromstring(text).iter() if e.get("data-change")]
    # a removed site is outlined in A only, an added one in B only, a changed one in both
    expected = sum(1 if kind in ("added", "removed") else 2 for kind in kinds.values())
    assert len(marked) == expected
    assert {e.get("data-site") for e in marked} == set(kinds)
    colours = {e.get("data-change"): e.get("stroke") for e in marked}
    assert len(set(colours.values())) == 3 and colours["added"] == "#1a9850"
    assert "vl-adapter.vls" in text and "vl-pet-large.vls" in text


def test_self_contained():
    page = draw_html(str(BART / "vl-pet-large.vls"))
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page and "href" not in page


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    svg_path, html_path = tmp_path / "d.svg", tmp_path / "d.html"
    assert main(["draw", "specs/examples/demo.vls", "-o", str(svg_path)]) == 0
    assert _sites(svg_path.read_text())
    assert main(["draw", str(BART / "vl-pet-small.vls"), str(BART / "vl-pet-large.vls"), "-o", str(html_path)]) == 0
    assert "data-change" in html_path.read_text()
    capsys.readouterr()
    assert main(["draw", "specs/examples/demo.vls"]) == 0
    assert capsys.readouterr().out.startswith("<svg")
    assert main(["draw", "specs/examples/demo.vls", "-o", str(tmp_path / "d.png")]) == 2
    assert main(["draw", "no/such.vls"]) == 1


def test_renders_to_png_when_a_renderer_is_available(tmp_path):
    cairosvg = pytest.importorskip("cairosvg")
    out = tmp_path / "d.png"
    cairosvg.svg2png(bytestring=draw(str(BART / "vl-pet-large.vls")).encode(), write_to=str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("specs", [(str(BART / "vl-adapter.vls"), str(BART / "vl-pet-large.vls")),
                                   ("backbone tiny-bart\nencoder.ffn: adapter r=4",
                                    "backbone tiny-bart\nencoder.ffn: adapter r=8\nprojector")])
def test_legend_items_never_overlap_and_stay_inside(specs):
    """Each legend item (swatch + words, their width estimated from the character count) ends before
    the next one on its row starts; rows wrap before the picture's right edge."""
    from vlsurgery.draw.layout import text_width

    root = ET.fromstring(draw(specs[0], other=specs[1]))
    width, height = float(root.get("width")), float(root.get("height"))
    swatches = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "legend-item"]
    words = [e for e in root.iter(f"{SVG}text") if e.get("class") == "legend-item"]
    assert len(swatches) == len(words) == 5  # two outline kinds, three kinds of change
    boxes = [(float(s.get("x")), float(t.get("x")) + text_width(t.text, float(t.get("font-size"))), float(s.get("y")))
             for s, t in zip(swatches, words)]
    for (x0, x1, y), (nx0, _, ny) in zip(boxes, boxes[1:]):
        assert ny > y or nx0 >= x1  # on the same row: after the previous item's words
    assert all(x1 <= width for _, x1, _ in boxes) and all(y + 12 <= height for _, _, y in boxes)


def test_a_narrow_legend_wraps_its_items_onto_rows():
    from vlsurgery.draw.layout import _Canvas, legend, text_width

    canvas = _Canvas()
    bottom = legend(canvas, 16, 100, (10, 1000), True, right=600)
    root = ET.fromstring(f'<svg xmlns="http://www.w3.org/2000/svg">{"".join(canvas.parts)}</svg>')
    words = [e for e in root.iter(f"{SVG}text") if e.get("class") == "legend-item"]
    rows = sorted({float(e.get("y")) for e in words})
    assert len(rows) >= 3 and bottom >= rows[-1] + 10  # the picture grows to hold every row
    assert all(float(e.get("x")) + text_width(e.text, 10) <= 600 for e in words)


def test_roles_naming_one_linear_share_one_chip():
    # LLaMA's ffn: `in`, `gate` name one linear (gate_proj), `out`, `down` another: their sites take
    # the first role's path, so aliases get no chip of their own (it would stay empty forever)
    spec = "backbone tiny-llama\ndecoder.*.*: lora r=4"
    root = ET.fromstring(draw(spec))
    empty = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "projection"]
    assert empty == []
    labels = {e.text for e in root.iter(f"{SVG}text")}
    assert {"gate", "up", "down"} <= labels and not {"in", "out"} & labels
    assert set(_sites(draw(spec))) == {s.path for s in plan(spec).sites}


def test_the_layout_module_is_not_shadowed_by_the_svg_function():
    import importlib

    import vlsurgery.draw

    layout = importlib.import_module("vlsurgery.draw.layout")
    assert vlsurgery.draw.svg is layout.svg and callable(vlsurgery.draw.svg)
    assert vlsurgery.draw("backbone tiny-bart\nencoder.ffn: adapter").startswith("<svg")
