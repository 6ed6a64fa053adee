"""GPU use: benchmarks/gpu_train.py (bf16 throughput on one GPU) and a bf16 Trainer run on CUDA.

Without CUDA the CUDA tests skip, and the script's refusal and its CPU dry run are tested instead.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_train.py"
CUDA = torch.cuda.is_available()


def _script(*argv):
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.skipif(CUDA, reason="tests the refusal on a machine without CUDA")
def test_without_cuda_the_script_says_so():
    done = _script()
    assert done.returncode == 2 and "no CUDA device" in done.stderr and "--dry-run" in done.stderr


def test_dry_run_reports_samples_per_second(tmp_path):
    done = _script("--dry-run", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["samples_per_second"] > 0 and result["timed_steps"] == 4 and result["device"] == "cpu"
    assert result["trainable"] == 6400


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_bf16_training_on_cuda_restores_on_cuda(tmp_path):
    import vlsurgery
    from vlsurgery.training import train

    run = train("lib:examples/demo-t5.vls", output_dir=tmp_path, recipe="demo", max_steps=20, bf16=True,
                save_strategy="no", disable_tqdm=True)
    assert next(run.model.parameters()).device.type == "cuda"
    restored = vlsurgery.restore(tmp_path).to("cuda")
    trained = dict(run.model.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in restored.named_parameters() if p.requires_grad)
