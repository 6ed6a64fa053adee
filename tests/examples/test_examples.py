"""Every script of examples/ runs as a user runs it (a subprocess, from the repository root) and
prints what it promises.  Short settings keep them fast; the two-process torchrun launch of
train_ddp.py is tests/training/test_train_ddp.py (slow)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run(*argv, timeout=300, **kw):
    done = subprocess.run(list(argv), cwd=kw.pop("cwd", ROOT), capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **kw.pop("env", {})}, **kw)
    return done.returncode, done.stdout, done.stderr


def example(name, *args, **kw):
    return run(sys.executable, str(EXAMPLES / name), *args, **kw)


def test_every_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    scripts = [p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh")]
    assert scripts and all(f"({name})" in readme for name in scripts), scripts


def test_train_paper_design(tmp_path):
    status, out, err = example("train_paper_design.py", "--steps", "2", "--output", str(tmp_path))
    assert status == 0, err[-3000:]
    assert "vs chance" in out and "trained tensors identical: True" in out
    assert (tmp_path / "vlsurgery.safetensors").is_file()


def test_train_ddp_in_one_process(tmp_path):
    """Without torchrun the script is an ordinary one-process run."""
    status, out, err = example("train_ddp.py", "--steps", "2", "--output", str(tmp_path))
    assert status == 0, err[-3000:]
    assert "trained for 2 steps" in out and (tmp_path / "rank-0.sha256").is_file()


def test_lora_vs_peft():
    pytest.importorskip("peft")
    status, out, err = example("lora_vs_peft.py")
    assert status == 0, err[-3000:]
    assert "largest logit difference vlsurgery vs PEFT: 0.00e+00" in out
    assert "same trainable tensors, same outputs: True" in out


def test_lora_vs_peft_without_peft_says_so(tmp_path):
    """PEFT is an example-only dependency: without it the script explains and exits cleanly."""
    (tmp_path / "peft.py").write_text("raise ImportError('no peft here')\n")
    status, out, _ = example("lora_vs_peft.py", env={"PYTHONPATH": str(tmp_path)})
    assert status == 0 and "pip install peft" in out


def test_new_method():
    pytest.importorskip("hypothesis")
    status, out, err = example("new_method.py", "--examples", "2")
    assert status == 0, err[-3000:]
    for name in ("counts_are_exact", "prints_and_parses_back", "diff_obeys_its_laws", "starts_as_the_backbone"):
        assert f"ok  {name}" in out
    assert "trainable parameters on t5-base" in out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_design_diff_in_ci(tmp_path):
    summary = tmp_path / "summary.md"
    vls = f"{sys.executable} -m vlsurgery.cli.main"
    env = {"VLSURGERY": vls, "GITHUB_STEP_SUMMARY": str(summary)}
    small, large = "lib:paper/t5-base/vl-pet-small.vls", "lib:paper/t5-base/vl-pet-large.vls"
    status, out, err = run("bash", str(EXAMPLES / "design_diff_ci.sh"), small, large, "10000000", env=env)
    assert status == 0, err
    assert "| ~ |" in out and "gate: scalar(pool=all) → matrix(r=192)" in out and "budget 10000000" in out
    assert "gate: scalar" in summary.read_text()
    status, _, err = run("bash", str(EXAMPLES / "design_diff_ci.sh"), small, large, "1000", env=env)
    assert status == 1 and "more than the budget of 1000" in err
    status, out, _ = run("bash", str(EXAMPLES / "design_diff_ci.sh"), small, small, env=env)
    assert status == 0 and "did not change" in out
    broken = tmp_path / "broken.vls"
    broken.write_text("backbone t5-base\nencoder[99].ffn: adapter\n")
    status, _, err = run("bash", str(EXAMPLES / "design_diff_ci.sh"), small, str(broken), env=env)
    assert status == 2 and "could not compare" in err
    # the budget check never passes on a number it could not read (here: no working Python)
    status, _, err = run("bash", str(EXAMPLES / "design_diff_ci.sh"), small, large, "10000000",
                         env={**env, "PYTHON": "false"})
    assert status == 2 and "could not read the change in trainable parameters" in err


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git")
def test_ci_workflow_diffs_a_spec_whose_extends_is_relative(tmp_path):
    """The workflow's script, run in a scratch repository: a changed spec that `extends` a sibling file is
    compared with its version on the base branch, the sibling resolved there too."""
    import yaml

    flow = yaml.safe_load((EXAMPLES / "ci" / "design-diff.yml").read_text())
    script = next(s["run"] for s in flow["jobs"]["diff"]["steps"] if "design_diff_ci.sh" in s.get("run", ""))
    repo = tmp_path / "repo"
    (repo / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLES / "design_diff_ci.sh", repo / "examples")
    shutil.copytree(ROOT / "specs" / "llama", repo / "specs" / "llama")
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "base"],
                 ["update-ref", "refs/remotes/origin/main", "HEAD"], ["checkout", "-qb", "change"]):
        assert run("git", *argv, cwd=repo, env=git)[0] == 0
    large = repo / "specs" / "llama" / "vl-pet-large.vls"
    large.write_text(large.read_text() + "decoder.self_attn.q: lora r=4\n")
    assert run("git", "commit", "-qam", "change", cwd=repo, env=git)[0] == 0
    env = {**git, "VLSURGERY": f"{sys.executable} -m vlsurgery.cli.main"}
    status, out, err = run("bash", "-e", "-c", script.replace("${{ github.base_ref }}", "main"), cwd=repo, env=env)
    assert status == 0, err
    assert "lora" in out and "the change adds" in out
    assert run("git", "worktree", "list", "--porcelain", cwd=repo, env=git)[1].count("worktree ") == 1  # cleaned up


def test_ci_workflow_is_valid_yaml():
    import yaml

    flow = yaml.safe_load((EXAMPLES / "ci" / "design-diff.yml").read_text())
    steps = flow["jobs"]["diff"]["steps"]
    assert any("design_diff_ci.sh" in step.get("run", "") for step in steps)
    json.dumps(flow)  # plain data only


def test_restore_and_merge():
    status, out, err = example("restore_and_merge.py", "--steps", "3")
    assert status == 0, err[-3000:]
    assert "restored == trained, bit for bit: True" in out
    assert "projector (projector): the visual projector" in out and "LoRA modules left: 0" in out
