"""Trainer checkpoints are PET checkpoints, and a run interrupted and resumed ends exactly where an
uninterrupted run does (fixed seeds, dropout off: the Trainer restores optimizer, scheduler, RNG
state and the data order)."""

import torch

from vlsurgery.checkpoint import read_checkpoint
from vlsurgery.training import train

SPEC = "lib:examples/demo-t5.vls"
FAST = dict(recipe="demo", train_size=64, eval_size=16, per_device_train_batch_size=8, disable_tqdm=True,
            save_steps=3, logging_steps=3, learning_rate=1e-2)


def _pet(run):
    return {n: t.detach().clone() for n, t in read_checkpoint(run.checkpoint).tensors.items()}


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    whole = train(SPEC, output_dir=tmp_path / "whole", max_steps=12, evaluate=False, **FAST)
    assert whole.result.global_step == 12
    ckpt = tmp_path / "whole" / "checkpoint-12"
    assert (ckpt / "vlsurgery.safetensors").is_file() and (ckpt / "vlsurgery.json").is_file()
    assert not (ckpt / "model.safetensors").exists()  # PET only: no copy of the frozen backbone
    assert (ckpt / "optimizer.pt").is_file() and (ckpt / "trainer_state.json").is_file()
    assert not (tmp_path / "whole" / "checkpoint-3").exists()  # rotation: save_total_limit 2

    # the "interrupted" run: the same schedule (max_steps=12) stopped after 6 steps by a callback
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                control.should_training_stop = True

    from vlsurgery.training import build_trainer

    trainer, _ = build_trainer(SPEC, output_dir=tmp_path / "cut", max_steps=12, **FAST)
    trainer.add_callback(StopAt())
    trainer.train()
    assert (tmp_path / "cut" / "checkpoint-6" / "vlsurgery.safetensors").is_file()
    resumed = train(SPEC, output_dir=tmp_path / "cut", max_steps=12, evaluate=False,
                    resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-6"), **FAST)
    assert resumed.result.global_step == 12
    a, b = _pet(whole), _pet(resumed)
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[n], b[n]) for n in a), [n for n in a if not torch.equal(a[n], b[n])]


def test_the_final_checkpoint_restores_the_trained_model(tmp_path):
    import vlsurgery

    run = train(SPEC, output_dir=tmp_path, max_steps=2, evaluate=False, save_strategy="no", **{
        k: v for k, v in FAST.items() if k not in ("save_steps",)})
    model = vlsurgery.restore(tmp_path)
    trained = dict(run.model.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, trained[name]), name
