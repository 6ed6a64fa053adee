"""Write a new PET method as a spec, then property-test it with ``vlsurgery.testing``.

    pip install 'vlsurgery[examples]'    # hypothesis (or vlsurgery[test])
    python examples/new_method.py [--examples 10]

A "method" here is a design you can reuse on any backbone: vlsurgery's building blocks (adapters,
LoRA, (IA)^3, VL-PET gates, prompts...) placed by role, with ``let`` parameters a user can
override (``extends "gated-lora.vls"`` then ``let r = 16``).  vlsurgery has no plugin interface
for new module types: a new kind of module means a new entry in vlsurgery.methods.

The method below, "gated LoRA": LoRA on every attention's query and value, each behind a VL-PET
channel gate of its own (``granularity=vector``: H' = G * (H + dH), one learned value per
channel, starting at 1 with ``init_gate=zero``), and (IA)^3 on the feed-forward output.  Four
properties are checked on randomly drawn backbones (BART, T5, T5 v1.1 with 1-3 layers and widths
8-32) and ranks; hypothesis shrinks any failure to the smallest backbone and rank that shows it:

1. ``vlsurgery count`` predicts exactly what compiling adds (assert_counts_match);
2. the spec survives printing and parsing, in the DSL and in YAML (assert_roundtrip);
3. ``vlsurgery diff`` against any other design obeys its laws (assert_diff_laws);
4. a freshly compiled model computes exactly what the backbone computes (LoRA's B starts at zero,
   the gates and (IA)^3 at one), so training starts from the pre-trained model.
"""

import argparse

import torch
from hypothesis import given, settings, strategies as st

import vlsurgery
from vlsurgery.testing import assert_counts_match, assert_diff_laws, assert_roundtrip, backbones, specs

GATED_LORA = """
let r = {r}
*.{{self_attn,cross_attn}}.{{q,v}}: lora r=$r alpha=$r granularity=vector init_gate=zero
*.ffn: ia3
"""


def gated_lora(r: int) -> vlsurgery.Spec:
    """The method with rank ``r``: a Spec, for any backbone (no `backbone` line: it is given at use)."""
    return vlsurgery.parse(GATED_LORA.format(r=r))


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--examples", type=int, default=10, help="hypothesis examples per property")
args = parser.parse_args()
checks = settings(max_examples=args.examples, deadline=None)  # each example builds and compiles a model


@checks
@given(backbones(families=("bart", "t5", "t5-gated")), st.integers(1, 8))
def counts_are_exact(config, r):
    assert_counts_match(gated_lora(r), config)


@checks
@given(st.integers(1, 64))
def prints_and_parses_back(r):
    assert_roundtrip(gated_lora(r))


@checks
@given(specs(backbone="tiny-t5", max_statements=3))
def diff_obeys_its_laws(other):
    assert_diff_laws(gated_lora(4), other, "tiny-t5")


@checks
@given(backbones(families=("bart", "t5", "t5-gated")), st.integers(1, 8))
def starts_as_the_backbone(config, r):
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(0)
    base = AutoModelForSeq2SeqLM.from_config(config).eval()
    batch = dict(input_ids=torch.randint(3, config.vocab_size, (2, 6)),
                 decoder_input_ids=torch.randint(3, config.vocab_size, (2, 4)))
    with torch.no_grad():
        before = base(**batch).logits
        after = vlsurgery.compile(gated_lora(r), base, seed=0).eval()(**batch).logits
    assert torch.equal(before, after), f"r={r}: the compiled model moved the logits by {(after - before).abs().max()}"


for prop in (counts_are_exact, prints_and_parses_back, diff_obeys_its_laws, starts_as_the_backbone):
    prop()  # a @given function called without arguments runs its examples; a failure raises
    print(f"ok  {prop.__name__} ({args.examples} examples)")
print("gated LoRA:", vlsurgery.count(gated_lora(8), "t5-base").trainable, "trainable parameters on t5-base")
