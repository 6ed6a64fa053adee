"""Property testing for PET designs: hypothesis strategies and the assertions they drive.

Import it in your own test suite (it needs ``hypothesis``: ``pip install 'vlsurgery[test]'``;
nothing else in vlsurgery imports hypothesis)::

    from hypothesis import given, settings
    from vlsurgery.testing import assert_counts_match, assert_diff_laws, designs, specs

    @settings(max_examples=10, deadline=None)      # each example builds and compiles a tiny model
    @given(designs(families=("bart", "t5-gated"), methods=("adapter", "lora", "none")))
    def test_my_count_formulas(design):
        config, spec = design
        assert_counts_match(spec, config)

    @given(specs(backbone="bart-base"), specs(backbone="bart-base"))
    def test_diff(a, b):
        assert_diff_laws(a, b, "bart-base")

Strategies:

- :func:`specs` (``methods``, ``roles``, ``min_statements``/``max_statements``, ``backbone``,
  ``lets``, ``projector``, ``train``): valid specs as IR; resolvable on ``backbone`` when given,
  else on every config :func:`backbones` draws.  Failing examples shrink to one statement on one
  layer with default parameters.
- :func:`backbones` (``families`` of ``bart``, ``t5``, ``t5-gated``): small random
  ``PretrainedConfig`` objects (1-3 layers per stack, d_model 8-32).
- :func:`designs`: ``(config, spec)`` pairs, the spec resolvable on that config.

Assertions (AssertionError with the spec's canonical text on failure):
:func:`assert_counts_match` (predicted == compiled parameter counts), :func:`assert_roundtrip`
(``parse(dumps(spec)) == spec`` in DSL and YAML), :func:`assert_dsl_yaml_agree`,
:func:`assert_diff_laws`.
"""

try:
    import hypothesis  # noqa: F401  (the test extra; say so instead of a bare ModuleNotFoundError)
except ModuleNotFoundError as e:
    if e.name != "hypothesis":
        raise
    from vlsurgery.errors import MissingExtraError

    raise MissingExtraError("vlsurgery.testing needs the 'test' extra (hypothesis), which is not installed: "
                            "pip install 'vlsurgery[test]'", name="hypothesis") from None

from vlsurgery.testing.assertions import (assert_counts_match, assert_diff_laws, assert_dsl_yaml_agree,
                                          assert_roundtrip, spec_text)
from vlsurgery.testing.backbones import FAMILIES, backbones
from vlsurgery.testing.spaces import space_members
from vlsurgery.testing.strategies import METHODS, ROLES, designs, specs

__all__ = ["FAMILIES", "METHODS", "ROLES", "assert_counts_match", "assert_diff_laws", "assert_dsl_yaml_agree",
           "assert_roundtrip", "backbones", "designs", "space_members", "spec_text", "specs"]
