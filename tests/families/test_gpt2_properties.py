"""Property: designs drawn by :mod:`vlsurgery.testing` on random GPT-2 configs (Conv1D projections,
q/k/v as column slices of one fused c_attn, tied or untied head, prompt tokens at the decoder's
input) compile with exactly the counts ``vlsurgery count`` predicts."""

from hypothesis import HealthCheck, given, settings

from vlsurgery.testing import assert_counts_match, designs


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(families=("gpt2",), max_statements=3))
def test_predicted_counts_hold_on_random_gpt2_designs(design):
    config, spec = design
    assert_counts_match(spec, config)
