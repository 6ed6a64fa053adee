"""The prefix pass extends the attention mask once per mask tensor (compiler.prefix.MaskExtension).

The encoder and the decoder's cross-attention both need the mask with the prefix's ones on the left;
the extension is remembered per mask *object* and version, so:

* a training step builds it once, not once per stack, and generate() once per call (greedy) or
  once per beam expansion, not once per new token (counted with the profiler);
* remembering never changes a result: a mask changed in place, a new mask, beam search and padding
  give exactly what extending every time gives.
"""

import pytest
import torch
from pipeline_models import TINY
from torch.profiler import ProfilerActivity, profile
from vl_models import vl_inputs, vl_model

from vlsurgery.compiler.prefix import MaskExtension


@pytest.fixture(scope="module", params=TINY)
def compiled(request):
    model = vl_model(request.param, seed=5).eval()
    return model, vl_inputs(model)


@pytest.fixture
def always_extend(monkeypatch):
    """Switch remembering off: every call extends (the behaviour remembering must reproduce)."""
    def off():
        monkeypatch.setattr(MaskExtension, "__call__", lambda self, mask, prefix: MaskExtension.extend(mask, prefix))
    return off


def calls(fn, op: str) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name == op)


def generate(model, inputs, new, **kw):
    text = {k: v for k, v in inputs.items() if k != "labels"}
    text["attention_mask"] = text["attention_mask"].clone()  # a new mask object, as for a new request
    with torch.no_grad():
        return model.generate(**text, do_sample=False, max_new_tokens=new, min_new_tokens=new, **kw)


def test_a_step_extends_the_mask_once(compiled, always_extend):
    """Extending in both stacks would run one more ``new_ones`` (and ``cat``) than remembering does."""
    model, inputs = compiled

    def step():
        with torch.no_grad():
            model(**dict(inputs, attention_mask=inputs["attention_mask"].clone()))  # a new mask, as each batch
    step()
    remembered = calls(step, "aten::new_ones")
    always_extend()
    assert calls(step, "aten::new_ones") == remembered + 1


@pytest.mark.parametrize("beams", [1, 2])
def test_generate_extends_the_mask_once_per_call_not_per_token(compiled, always_extend, beams):
    model, inputs = compiled

    def growth():  # new_ones calls that 4 more new tokens add (generate() itself runs some per token)
        short, long = (calls(lambda: generate(model, inputs, new, num_beams=beams), "aten::new_ones")
                       for new in (2, 6))
        return long - short
    remembered = growth()
    always_extend()  # extending in every decoder step: one more per new token
    assert growth() == remembered + 4


@pytest.mark.parametrize("beams", [1, 2])
def test_remembering_changes_no_generated_token(compiled, always_extend, beams):
    model, inputs = compiled
    assert inputs["attention_mask"][1].min() == 0  # the second example is padded
    remembered = generate(model, inputs, 5, num_beams=beams, num_return_sequences=beams)
    always_extend()
    assert torch.equal(generate(model, inputs, 5, num_beams=beams, num_return_sequences=beams), remembered)


def test_a_mask_changed_in_place_is_extended_again(compiled, always_extend):
    model, inputs = compiled
    mask = inputs["attention_mask"].clone()
    step = dict(inputs, attention_mask=mask)
    with torch.no_grad():
        model(**step)
        mask[0, -2:] = 0  # the same tensor object, new contents: the remembered extension is stale
        got = model(**step).logits
        always_extend()
        want = model(**dict(inputs, attention_mask=mask.clone())).logits
    assert torch.equal(got, want)


def test_inference_mode_generates_the_same_tokens(compiled):
    """Inference tensors have no version counter: nothing is remembered, nothing changes."""
    model, inputs = compiled
    want = generate(model, inputs, 4, num_beams=2)
    with torch.inference_mode():
        assert torch.equal(generate(model, inputs, 4, num_beams=2), want)


def test_remembered_extension_is_only_reused_for_the_same_object_and_prefix():
    extension = MaskExtension()
    mask = torch.tensor([[1, 1, 0]])
    first = extension(mask, 2)
    assert torch.equal(first, torch.tensor([[1, 1, 1, 1, 0]]))
    assert extension(mask, 2) is first
    assert extension(mask.clone(), 2) is not first
    assert extension(mask, 3).shape == (1, 6)


def test_the_remembered_mask_and_its_extension_die_with_the_mask():
    """The cache keys on the mask weakly: once the caller drops a batch's mask, neither it nor its
    extension stays alive (on the GPU, after model.cpu()) for the model's lifetime."""
    import gc
    import weakref

    extension = MaskExtension()
    mask = torch.tensor([[1, 1, 0]])
    extended = weakref.ref(extension(mask, 2))
    freed = weakref.ref(mask)
    del mask
    gc.collect()
    assert freed() is None and extended() is None
    assert extension._last is None
    again = torch.tensor([[1, 0]])  # and the next mask is remembered as before
    assert extension(again, 1) is extension(again, 1)
