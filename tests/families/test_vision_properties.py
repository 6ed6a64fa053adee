"""Property: designs drawn by :mod:`vlsurgery.testing` on random vision towers (CLIP, SigLIP) and random
LLaVA models (either tower, a Llama or Qwen2 language model: two stacks of different widths)
compile with exactly the counts ``vlsurgery count`` predicts."""

import dataclasses

from hypothesis import HealthCheck, given, settings

from vlsurgery.spec import parse
from vlsurgery.testing import assert_counts_match, designs

TRAIN_PROJECTOR = parse("train projector").train


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(families=("clip-vision", "siglip-vision", "llava"), max_statements=3, projector=False))
def test_predicted_counts_hold_on_random_towers_and_llava_designs(design):
    config, spec = design
    assert_counts_match(spec, config)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(families=("llava",), max_statements=2, projector=False))
def test_the_models_own_projector_trains_with_exact_counts(design):
    config, spec = design
    assert_counts_match(dataclasses.replace(spec, train=spec.train + TRAIN_PROJECTOR), config)
