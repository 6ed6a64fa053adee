"""Two processes (torchrun, gloo on CPU) training through the Trainer end with identical PET
weights, and the data really was split between them (each saw half of every global batch)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_pet_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           str(ROOT / "examples" / "train_ddp.py"), "--steps", "4", "--output", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    fingerprints = [(tmp_path / f"rank-{r}.sha256").read_text() for r in (0, 1)]
    assert fingerprints[0] == fingerprints[1]
    assert "2 processes; PET weights identical on every rank: True" in done.stdout
    # 4 steps x 16 per process x 2 processes = 128 of the 4000 training questions: a DDP run.
    # (Two processes training alone would each have gone through 64: epoch 0.016.)
    assert "'epoch': '0.032'" in done.stdout + done.stderr


def test_multi_process_cpu_runs_are_told_to_use_the_cpu(monkeypatch):
    """accelerate builds a gloo process group on a machine without CUDA only with use_cpu=True."""
    import torch

    from vlsurgery.training import run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run._distributed_without_cuda()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not run._distributed_without_cuda()


def test_metrics_of_several_processes_drop_the_padding_repeats():
    import numpy as np

    from vlsurgery.training.run import _whole_dataset

    seen = []
    one = _whole_dataset(lambda p: seen.append(p) or {}, 3, 1)
    two = _whole_dataset(lambda p: seen.append(p) or {}, 3, 2)
    preds, labels = np.arange(8).reshape(4, 2), np.arange(8).reshape(4, 2)
    two((preds, labels))
    assert len(seen[-1][0]) == 3 and len(seen[-1][1]) == 3
    one((preds, labels))
    assert len(seen[-1][0]) == 4  # one process: nothing dropped, the metric reports the mismatch
