"""Property: for designs drawn on random LLaMA-layout decoders (Llama and Qwen2, grouped-query
attention, tied or untied), the predicted counts are exactly the compiled model's parameters."""

from hypothesis import HealthCheck, given, settings

from vlsurgery.testing import assert_counts_match, designs


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(families=("llama", "qwen2"), max_statements=3))
def test_predicted_counts_hold_on_random_llama_layout_designs(design):
    config, spec = design
    assert_counts_match(spec, config)
