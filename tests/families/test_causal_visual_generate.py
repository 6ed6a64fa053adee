"""``generate(vis_feats=..., vis_boxes=...)`` on decoder-only models (tiny-llama, tiny-gpt2).

What a user relies on: a design with a projector generates from visual inputs with
``model.generate`` like an encoder-decoder one: greedy and beam search give the same tokens with the
KV cache as without it and as decoding step by step by hand, and the visual tokens change them; the
model still saves and restores exactly (``vlsurgery.save``/``restore`` and ``save_pretrained``), its
classes compose with the ``save_pretrained`` class and come off in order, a failed compile leaves the
plain class, and a design without a projector still refuses visual inputs.
"""

import pytest
import torch

import vlsurgery
import vlsurgery.compiler.compile as compile_module
from vlsurgery.checkpoint import disable_save_pretrained, merge
from vlsurgery.compiler import format_generated_code, is_rewritten, original_class
from vlsurgery.compiler.causal_prefix import (causal_roots, has_visual_keywords, remove_causal_prefix,
                                              remove_visual_keywords)
from vlsurgery.errors import CompileError, UsageError
from vlsurgery.profiles.backbone import load_model

BACKBONES = ("tiny-llama", "tiny-gpt2")
DESIGN = "decoder.self_attn.{q,v}: lora r=2\ndecoder.ffn: adapter r=4\nprojector feat_dim=16\ntrain projector\n"
NEW = 5


def fresh_model(backbone, seed=0):
    model, _ = load_model(backbone, seed=seed)
    return model.eval()


def perturbed(backbone, spec=DESIGN):
    """A compiled model (through the public compile: save_pretrained class on top) whose every
    trainable tensor moved, so that the sites and the projector show in the output."""
    model = vlsurgery.compile(spec, fresh_model(backbone), seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g))  # unit scale: tiny-gpt2 repeats one token at less
    return model.eval()


def inputs(model, seed=1):
    """Left-padded ids (two pads in the second row) and the visual inputs of 4 regions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :2] = 0
    ids[1, :2] = 1
    visual = {"vis_feats": torch.randn(2, 4, 16, generator=g), "vis_boxes": torch.rand(2, 4, 4, generator=g)}
    return ids, mask, visual


def generate(model, ids, mask, **kwargs):
    # no end-of-sequence stop: every call yields NEW tokens, so outputs compare position by position
    options = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        return model.generate(ids, attention_mask=mask, **options, **kwargs)


def by_hand(model, ids, mask, visual):
    """Greedy decoding without generate and without a cache: the whole sequence every step, the
    positions of left-padded rows counted from the mask (as generate counts them)."""
    with torch.no_grad():
        for _ in range(NEW):
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            logits = model(ids, attention_mask=mask, position_ids=positions, **visual).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_takes_visual_inputs_and_the_cache_changes_nothing(backbone, beams):
    model = perturbed(backbone)
    ids, mask, visual = inputs(model)
    cached = generate(model, ids, mask, num_beams=beams, **visual)
    assert cached.shape == (2, ids.shape[1] + NEW)  # the visual tokens are not part of the output
    assert torch.equal(cached, generate(model, ids, mask, num_beams=beams, use_cache=False, **visual))
    assert not torch.equal(cached, generate(model, ids, mask, num_beams=beams))  # the image is seen
    if beams == 1:
        assert torch.equal(cached, by_hand(model, ids, mask, visual))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("beams", [1, 3])
def test_each_example_decodes_as_it_would_alone(backbone, beams):
    """Beams are expanded per example (each row sees its own image), and an unpadded example alone,
    whose all-ones mask generate drops, still gets its positions after the visual tokens."""
    model = perturbed(backbone)
    ids, mask, visual = inputs(model)
    both = generate(model, ids, mask, num_beams=beams, **visual)
    one = {k: v[:1] for k, v in visual.items()}
    alone = generate(model, ids[:1], mask[:1], num_beams=beams, **one)
    assert torch.equal(both[:1], alone)
    if beams == 1:
        assert torch.equal(alone, by_hand(model, ids[:1], mask[:1], one))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_prompt_tokens_alone_without_a_mask_generate_as_without_the_cache(backbone):
    model = perturbed(backbone, "decoder.input: prompt length=3\ndecoder.self_attn.{q,v}: lora r=2\n")
    ids = inputs(model)[0][:1]
    with torch.no_grad():
        options = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
        assert torch.equal(model.generate(ids, **options), model.generate(ids, use_cache=False, **options))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_classes_compose_with_save_pretrained_and_come_off_in_order(backbone):
    model = perturbed(backbone)
    hf_class = type(fresh_model(backbone))
    assert type(model).__name__ == hf_class.__name__ and isinstance(model, hf_class)
    assert is_rewritten(model) and original_class(model) is hf_class and has_visual_keywords(model)
    code = format_generated_code(model)
    assert "vis_feats=None" in code and "vlsurgery.checkpoint.save" in code  # both layers shown
    with pytest.raises(CompileError, match="disable_save_pretrained"):
        remove_visual_keywords(model)  # the layer on top first
    ids, mask, visual = inputs(model)
    expected = generate(model, ids, mask, **visual)
    disable_save_pretrained(model)  # only the save_pretrained layer comes off
    assert has_visual_keywords(model) and torch.equal(generate(model, ids, mask, **visual), expected)
    [root] = causal_roots(model)
    remove_causal_prefix(root, model)
    assert type(model) is hf_class and not is_rewritten(root) and not has_visual_keywords(model)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_save_and_save_pretrained_restore_the_same_generation(backbone, tmp_path):
    model = perturbed(backbone)
    ids, mask, visual = inputs(model)
    expected = generate(model, ids, mask, num_beams=2, **visual)
    vlsurgery.save(model, tmp_path / "pet")
    model.save_pretrained(tmp_path / "hf")
    for restored in (vlsurgery.restore(tmp_path / "pet", backbone=fresh_model(backbone)),
                     vlsurgery.restore(tmp_path / "hf")):
        restored.eval()
        assert has_visual_keywords(restored) and original_class(restored) is original_class(model)
        assert torch.equal(generate(restored, ids, mask, num_beams=2, **visual), expected)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_partial_merge_keeps_visual_generation(backbone):
    """The projector cannot fold, so a full merge is refused; a partial one folds LoRA and keeps
    the visual keywords under a new save_pretrained class."""
    model = perturbed(backbone, "decoder.self_attn.{q,v}: lora r=2\nprojector feat_dim=16\ntrain projector\n")
    ids, mask, visual = inputs(model)
    expected = generate(model, ids, mask, **visual)
    with pytest.raises(vlsurgery.MergeError, match="projector"):
        merge(model)
    with pytest.warns(UserWarning, match="projector"):
        merge(model, partial=True)
    assert has_visual_keywords(model) and vlsurgery.checkpoint.spec_of(model) is not None
    assert torch.equal(generate(model, ids, mask, **visual), expected)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_design_without_a_projector_keeps_its_class_and_refuses_visual_inputs(backbone):
    model = vlsurgery.compile("decoder.self_attn.{q,v}: lora r=2", fresh_model(backbone), seed=0)
    assert not has_visual_keywords(model)
    ids, mask, visual = inputs(model)
    with pytest.raises(UsageError, match="no visual projector"):
        model(ids, attention_mask=mask, **visual)
    with pytest.raises(ValueError, match="vis_feats"):
        generate(model, ids, mask, **visual)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_failed_compile_leaves_the_plain_class(backbone, monkeypatch):
    model = fresh_model(backbone)
    hf_class = type(model)

    def failing(*args, **kwargs):  # after the prefix pass changed the outer class
        raise CompileError("injected")

    monkeypatch.setattr(compile_module, "_freeze", failing)
    with pytest.raises(CompileError, match="injected"):
        compile_module.compile(DESIGN, model, seed=0)
    assert type(model) is hf_class and not any(is_rewritten(m) for m in model.modules())
    monkeypatch.undo()
    assert has_visual_keywords(compile_module.compile(DESIGN, model, seed=0))
