"""Predicted counts equal the compiled model's: for every spec of the library, on every tiny family."""

from pathlib import Path

import pytest
from pipeline_models import TINY, fresh_model

import vlsurgery.planning as planning
from vlsurgery.compiler.compile import compile
from vlsurgery.errors import ResolutionError
from vlsurgery.resources import spec_library

SPECS = sorted(p for p in spec_library().rglob("*") if p.suffix in (".vls", ".yaml"))


def test_library_is_found():
    names = {p.name for p in SPECS}
    assert {"vl-pet-large.vls", "vl-pet-small.vls", "vl-adapter.vls"} <= names


@pytest.mark.parametrize("backbone", TINY)
@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(spec_library())))
def test_compiled_counts_equal_prediction(path: Path, backbone: str):
    try:
        predicted = planning.count(path, backbone)
    except ResolutionError:
        pytest.skip("design does not fit this tiny backbone (checked by the resolution tests)")
    model = compile(path, fresh_model(backbone))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert (trainable, total) == (predicted.trainable, predicted.total)
    assert sum(s.trainable for s in predicted.sites) <= predicted.trainable


def test_a_model_instance_is_counted_as_it_is():
    """transformers 5 builds T5 with a tied lm_head even when the config says untied (a checkpoint
    would load its own): given the model itself, the count follows the model, not the config."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                      tie_word_embeddings=False, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(config)
    predicted = planning.count("encoder.ffn: adapter r=4", model)
    compile("encoder.ffn: adapter r=4", model)
    assert predicted.total == sum(p.numel() for p in model.parameters())
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
