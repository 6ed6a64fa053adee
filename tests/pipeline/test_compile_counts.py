"""Predicted counts equal the compiled model's: for every spec of the library, on every tiny family."""

from pathlib import Path

import pytest
from pipeline_models import TINY, fresh_model

import vlsurgery.planning as planning
from vlsurgery.compiler.compile import compile
from vlsurgery.errors import ResolutionError
from vlsurgery.resources import spec_library

#: The encoder-decoder designs (the paper's and the examples) run on every tiny encoder-decoder;
#: the folders of the other families (llama/, gpt2/, llava/) are compiled on their own tiny
#: presets in tests/families.
SPECS = sorted(p for p in spec_library().rglob("*") if p.suffix in (".vls", ".yaml")
               and p.relative_to(spec_library()).parts[0] in ("examples", "paper"))

#: Library designs that cannot fit a tiny backbone, and why: each is checked to be refused there
#: (the count of a design that does not fit is an error, never a silent number).
DOES_NOT_FIT = {
    ("examples/bitfit.vls", "tiny-t5"): "T5 has no biases to train",
    ("examples/bitfit.vls", "tiny-t5-gated"): "T5 has no biases to train",
    ("examples/mixed.vls", "tiny-bart"): "encoder[3:] needs at least 4 layers",
    ("examples/mixed.vls", "tiny-t5"): "encoder[3:] needs at least 4 layers",
    ("examples/mixed.vls", "tiny-t5-gated"): "encoder[3:] needs at least 4 layers",
}


def test_every_library_folder_has_a_compile_test():
    """A new folder of designs must join a compile test: here, or one in tests/families."""
    folders = {p.relative_to(spec_library()).parts[0] for p in spec_library().iterdir() if p.is_dir()}
    assert folders == {"examples", "paper", "llama", "gpt2", "llava"}


def test_library_is_found():
    names = {p.name for p in SPECS}
    assert {"vl-pet-large.vls", "vl-pet-small.vls", "vl-adapter.vls"} <= names


@pytest.mark.parametrize("backbone", TINY)
@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(spec_library())))
def test_compiled_counts_equal_prediction(path: Path, backbone: str):
    if (str(path.relative_to(spec_library())), backbone) in DOES_NOT_FIT:
        with pytest.raises(ResolutionError):
            planning.count(path, backbone)
        return
    predicted = planning.count(path, backbone)
    model = compile(path, fresh_model(backbone))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert (trainable, total) == (predicted.trainable, predicted.total)
    assert sum(s.trainable for s in predicted.sites) <= predicted.trainable


def test_designs_too_deep_for_the_tiny_presets_compile_on_a_deeper_one():
    """mixed.vls selects encoder[3:]: on a four-layer T5 it compiles and counts exactly."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=4, num_heads=2, decoder_start_token_id=0)
    path = spec_library() / "examples/mixed.vls"
    predicted = planning.count(path, config)
    model = compile(path, T5ForConditionalGeneration(config))
    assert {s.path for s in predicted.plan.sites} >= {"encoder[3].self_attn", "decoder[0].ffn.out"}
    assert predicted.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert predicted.total == sum(p.numel() for p in model.parameters())


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
