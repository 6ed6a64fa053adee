"""The shapes task is learnable: a short run of a tiny compiled VL model beats chance by far.

A random T5 (2+2 blocks, d_model 64) with vlsurgery's word tokenizer gets the VL-PET-large design in
miniature (visual projector, gated multi-head adapters on the encoder, lite adapters on the
decoder's cross-attention values, encoder layer norms); only those train, a few hundred steps.
"""

import time

import torch
from transformers import AutoModelForSeq2SeqLM

from vlsurgery import compile
from vlsurgery.data import accuracy_by_type, fit_config, make_shapes_task, shapes_tokenizer
from vlsurgery.data.collate import VLCollator
from vlsurgery.profiles import preset_config

FEAT_DIM = 32
SPEC = f"""backbone tiny-t5
projector feat_dim={FEAT_DIM}
train encoder.layernorm, projector
encoder.{{self_attn,ffn}}: adapter r=16 heads=2 granularity=large
decoder.cross_attn.v: lite r=16
"""
MODEL = dict(d_model=64, d_ff=128, d_kv=16, dropout_rate=0.0)


def train_and_evaluate(steps=400, lr=1e-2, batch_size=32, seed=0, test_size=300):
    task = make_shapes_task(FEAT_DIM, seed=seed, sizes={"train": 4000, "test": test_size})
    tok = shapes_tokenizer(task, style="t5")
    config = fit_config(preset_config("tiny-t5"), tok)
    for key, value in MODEL.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = compile(SPEC, AutoModelForSeq2SeqLM.from_config(config), seed=seed)
    collate, train = VLCollator(tok, prompt=task.prompt), task.splits["train"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = collate([train[i] for i in torch.randint(len(train), (batch_size,), generator=order)])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = task.splits["test"]
    batch = collate(test)
    batch.pop("labels")
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    return accuracy_by_type(tok.batch_decode(generated, skip_special_tokens=True), test), task.chance("test")


def test_a_tiny_model_learns_the_task_well_above_chance():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only cost time on a loaded machine
    try:
        start = time.perf_counter()
        accuracy, chance = train_and_evaluate()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    print(f"accuracy {accuracy} vs chance {chance} in {seconds:.1f} s")
    assert accuracy["all"] >= chance["all"] + 0.15, (accuracy, chance)
    assert accuracy["colour"] >= 0.6, accuracy  # it reads the regions, not only the question's prior
