"""Train the procedural shapes task in bfloat16 on one GPU with the Trainer, and report samples per second.

    python benchmarks/gpu_train.py                          # VL-PET-large on a random t5-base, batch 300
    python benchmarks/gpu_train.py --backbone /models/t5-base --steps 300 --batch 300
    python benchmarks/gpu_train.py --dry-run                # CPU, tiny-t5, float32: checks the script only

It runs ``vlsurgery.training.train`` (the Hugging Face Trainer) with ``bf16=True`` on
``cuda:0``: the whole path a user runs, data loading and the collator included, not a bare
train step (``benchmarks/gpu_step.py`` measures that).  Throughput is measured between the end of
the warm-up steps and the end of training, with the GPU synchronised at both ends; peak memory is
``torch.cuda.max_memory_allocated``.  The shapes task has 9 regions and questions of about 10
tokens, so the sequences are shorter than VQAv2's 36 regions + 20 tokens: samples per second here
are higher than on the paper's data.  Without CUDA it stops with exit status 2 and says so
(``--dry-run`` runs the same code on the CPU at toy size).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="lib:paper/t5-base/vl-pet-large.vls")
    p.add_argument("--backbone", default=None, help="default: the spec's (a preset gives random weights, which "
                   "is as fast as real ones)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20, help="steps left out of the timing (CUDA kernels, allocator)")
    p.add_argument("--batch", type=int, default=300, help="per-device batch (the paper's VL-T5 batch: 300)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny-t5, float32, 6 steps: test the script")
    p.add_argument("--json", default=None, help="also write the result to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.dry_run:
        args.backbone, args.steps, args.warmup, args.batch = "tiny-t5", 6, 2, 8
        args.spec = "lib:examples/demo-t5.vls"
    elif not torch.cuda.is_available():
        print("gpu_train.py: no CUDA device: this benchmark trains on a GPU (use --dry-run to check the script on "
              "the CPU)", file=sys.stderr)
        return 2
    if not 0 <= args.warmup < args.steps:
        print("gpu_train.py: --warmup must be at least 0 and less than --steps", file=sys.stderr)
        return 2
    cuda = not args.dry_run
    from transformers import TrainerCallback  # after the CUDA check: a refusal should not wait for imports

    from vlsurgery.training import build_trainer

    class Clock(TrainerCallback):
        """Wall time from the end of the warm-up steps to the end of training, GPU synchronised."""

        start = end = None

        def _now(self):
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                self.start = self._now()

        def on_train_end(self, a, state, control, **kw):
            self.end = self._now()

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        trainer, data = build_trainer(args.spec, backbone=args.backbone, output_dir=out, recipe="paper/vl-t5",
                                      max_steps=args.steps, per_device_train_batch_size=args.batch, bf16=cuda,
                                      use_cpu=not cuda, save_strategy="no", eval_strategy="no",
                                      logging_steps=max(1, args.steps // 4),
                                      warmup_steps=0, train_size=max(4000, args.batch * 10), eval_size=100,
                                      dataloader_num_workers=0 if args.dry_run else 2, disable_tqdm=True)
        trainer.add_callback(clock)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if args.warmup == 0:
            clock.start = time.perf_counter()
        trainer.train()
    timed = args.steps - args.warmup
    seconds = clock.end - clock.start
    model = trainer.model
    result = {
        "spec": args.spec, "backbone": args.backbone or "the spec's", "device": str(next(model.parameters()).device),
        "gpu": torch.cuda.get_device_name(0) if cuda else None, "precision": "bf16 autocast" if cuda else "fp32",
        "batch": args.batch, "timed_steps": timed, "seconds": round(seconds, 3),
        "samples_per_second": round(timed * args.batch / seconds, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
