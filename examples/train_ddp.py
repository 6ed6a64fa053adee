"""The same training, on several processes: launch it with torchrun.

    torchrun --nproc_per_node 2 examples/train_ddp.py            # 2 CPU processes (gloo)
    torchrun --nproc_per_node 8 examples/train_ddp.py --bf16     # 8 GPUs of one machine (NCCL)

Nothing here is distributed by hand: under torchrun the Hugging Face Trainer wraps the compiled
model in DistributedDataParallel (gloo on CPU, NCCL on CUDA), gives each process its shard of
every batch, and only rank 0 writes checkpoints.  ``per_device_train_batch_size`` is per
process: the global batch is it times the number of processes (the paper's batch sizes are global).

At the end every rank fingerprints its PET tensors; they must be identical (DDP averages the
gradients, so the replicas never drift).  Each rank writes its fingerprint to OUTPUT/rank-N.sha256.
"""

import argparse
import hashlib
import os
from pathlib import Path

import torch
import torch.distributed as dist

from vlsurgery.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--spec", default="lib:examples/demo-t5.vls")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--output", default="runs/ddp")
parser.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs that support it)")
args = parser.parse_args()

torch.set_num_threads(1)
run = train(args.spec, output_dir=args.output, recipe="demo", max_steps=args.steps, save_strategy="no",
            per_device_train_batch_size=16, bf16=args.bf16 or None, disable_tqdm=os.environ.get("RANK", "0") != "0")

# The fingerprint of this rank's trained tensors (what the PET checkpoint holds), in a fixed order.
digest = hashlib.sha256()
trained = {name: p for name, p in run.model.named_parameters() if p.requires_grad}
for name, tensor in sorted(trained.items()):
    digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
rank = dist.get_rank() if dist.is_initialized() else 0
world = dist.get_world_size() if dist.is_initialized() else 1
Path(args.output, f"rank-{rank}.sha256").write_text(digest.hexdigest())
if world > 1:
    everyone = [None] * world
    dist.all_gather_object(everyone, digest.hexdigest())
    if rank == 0:
        print(f"{world} processes; PET weights identical on every rank: {len(set(everyone)) == 1}")
if rank == 0:
    print(run.summary())
