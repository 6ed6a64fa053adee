"""A backbone family is one file: adding one (a new stack name, new projection roles) needs no edit
anywhere else for specs that use the new names to check, count and compile.

The family file below is written into a folder that joins the ``vlsurgery.profiles.families``
package, exactly as a file added to ``vlsurgery/profiles/families/`` would; the test model (a
pre-norm "tower" with a gated feed-forward) is defined here, because a family file describes a
model and does not build one.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

import vlsurgery
from vlsurgery import caches
from vlsurgery.cli.main import main
from vlsurgery.errors import ResolutionError, SpecError
import vlsurgery.profiles.families as family_package  # the package, where family files live

TOY_FAMILY = textwrap.dedent('''
    """A toy family: one stack called ``tower``; a gated feed-forward with roles gate, up, down."""

    from vlsurgery.profiles.profile import Family, Norm, Profile, Roles, ShapeTable, Stack, Sublayer

    ATTENTION = (("q", "q"), ("k", "k"), ("v", "v"), ("o", "o"))
    ROLES = Roles.of({"tower": {"self_attn": ("q", "k", "v", "o"), "ffn": ("gate", "up", "down")}})


    def make_profile(config) -> Profile:
        d, d_ff, n = config.d_model, config.d_ff, config.layers
        table = ShapeTable()
        table.add("embed.weight", config.vocab_size, d)
        for i in range(n):
            layer = f"tower.{i}"
            table.norm(f"{layer}.attn_norm", d)
            for _, proj in ATTENTION:
                table.linear(f"{layer}.self_attn.{proj}", d, d)
            table.norm(f"{layer}.ffn_norm", d)
            table.linear(f"{layer}.gate", d, d_ff)
            table.linear(f"{layer}.up", d, d_ff)
            table.linear(f"{layer}.down", d_ff, d)
        table.add("head.weight", config.vocab_size, d)
        attn = Sublayer("self_attn", "attn_norm:in", "self_attn:out", "attn_norm",
                        tuple((role, (f"self_attn.{proj}",)) for role, proj in ATTENTION), ("self_attn", "attn_norm"))
        ffn = Sublayer("ffn", "ffn_norm:in", "down:out", "ffn_norm",
                       (("gate", ("gate",)), ("up", ("up",)), ("down", ("down",))), ("gate", "up", "down", "ffn_norm"))
        stack = Stack("tower", "tower", "tower", n, d_ff, (attn, ffn))
        return Profile(family="toy", model_type="toy-tower", model_class="ToyModel", pre_norm=True, d_model=d,
                       attn_inner=d, n_heads=1, vocab_size=config.vocab_size, stacks=(stack,),
                       norm=Norm("layernorm", True, 1e-5), token_embedding="embed.weight", leaves=("*",),
                       parameter_shapes=table.freeze())


    FAMILIES = (Family("toy", ("toy-tower",), ROLES, make_profile),)
''')

SPEC = """\
tower[0].ffn.gate: lora r=2
tower.self_attn: adapter r=4 granularity=small
tower[-1].ffn: gate granularity=vector
train tower.layernorm
"""


class ToyConfig(PretrainedConfig):
    model_type = "toy-tower"

    def __init__(self, d_model=16, d_ff=24, layers=2, vocab_size=32, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.d_ff, self.layers, self.vocab_size = d_model, d_ff, layers, vocab_size


class ToyAttention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / x.shape[-1] ** 0.5
        return self.o(scores.softmax(-1) @ self.v(x))


class ToyLayer(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.attn_norm, self.self_attn = nn.LayerNorm(d), ToyAttention(d)
        self.ffn_norm, self.gate, self.up, self.down = nn.LayerNorm(d), nn.Linear(d, d_ff), nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, hidden_states):
        hidden_states = hidden_states + self.self_attn(self.attn_norm(hidden_states))
        x = self.ffn_norm(hidden_states)
        return hidden_states + self.down(nn.functional.silu(self.gate(x)) * self.up(x))


class ToyModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.tower = nn.ModuleList(ToyLayer(config.d_model, config.d_ff) for _ in range(config.layers))
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def forward(self, input_ids):
        h = self.embed(input_ids)
        for layer in self.tower:
            h = layer(h)
        return self.head(h)


@pytest.fixture
def toy_family(tmp_path):
    (tmp_path / "toy.py").write_text(TOY_FAMILY)
    family_package.__path__.append(str(tmp_path))
    caches.clear()
    yield
    family_package.__path__.remove(str(tmp_path))
    sys.modules.pop(f"{family_package.__name__}.toy", None)
    caches.clear()


def test_the_new_names_are_unknown_without_the_family():
    with pytest.raises(SpecError, match="unknown stack 'tower'"):
        vlsurgery.parse(SPEC)


def test_specs_with_the_new_names_check(toy_family, tmp_path, capsys):
    spec = vlsurgery.parse(SPEC)
    assert [s.target.segments[0].names for s in spec.statements] == [("tower",)] * 3
    path = tmp_path / "toy-design.vls"
    path.write_text(SPEC)
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    with pytest.raises(SpecError, match=r"(?s)unknown projection 'gat'.*did you mean 'gate'"):
        vlsurgery.parse("tower.ffn.gat: lora")


def test_specs_with_the_new_names_count_and_compile(toy_family):
    config = ToyConfig()
    predicted = vlsurgery.count(SPEC, config)
    paths = [s.path for s in predicted.plan.sites]
    assert paths[:3] == ["tower[0].self_attn", "tower[0].ffn.gate", "tower[1].self_attn"]
    torch.manual_seed(0)
    model = ToyModel(config)
    ids = torch.randint(0, config.vocab_size, (2, 5))
    before = model(ids)
    vlsurgery.compile(SPEC, model, seed=0)
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    after = model(ids)
    assert after.shape == before.shape and not torch.equal(after, before)  # the sites are in the graph
    after.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # every site trains


def test_an_address_the_backbone_lacks_lists_its_roles(toy_family):
    with pytest.raises(ResolutionError, match=r"(?s)`encoder.ffn` matches no site.*expected an address of "
                                              r"tower.self_attn, tower.self_attn.q"):
        vlsurgery.count("encoder.ffn: adapter", ToyConfig())
