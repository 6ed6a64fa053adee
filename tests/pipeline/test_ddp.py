"""A compiled model trains under DistributedDataParallel (2 CPU processes, gloo backend).

Each rank gets a different batch; after one synchronised step every rank holds the same
weights, and those weights differ from the start: gradients were averaged across ranks through
the rewritten layers, the prefix pass and the projector.
"""

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from vl_models import vl_inputs, vl_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = vl_model("tiny-t5", seed=0).train()  # same start on every rank
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.AdamW([p for p in ddp.parameters() if p.requires_grad], lr=1e-2)
        inputs = vl_inputs(model)
        inputs["input_ids"] = (inputs["input_ids"] + rank) % model.config.vocab_size  # different data per rank
        before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        loss = ddp(**inputs).loss
        loss.backward()
        optimizer.step()
        after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        torch.save({"before": before, "after": after}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_step_keeps_ranks_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["after"].keys() == r1["after"].keys() and r0["after"]
    for name in r0["after"]:
        assert torch.equal(r0["after"][name], r1["after"][name]), f"{name} differs between ranks"
    moved = [n for n in r0["after"] if not torch.equal(r0["after"][n], r0["before"][n])]
    assert len(moved) == len(r0["after"]), "every trainable tensor should have been updated"
