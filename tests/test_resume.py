"""A training run killed with SIGKILL resumes with --resume and ends as if never interrupted."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmrt.training.model.checkpoint import load_model
from mmrt.training.stages.rundir import STATE

pytestmark = pytest.mark.integration


def pretrain_cmd(data, out, *extra):
    return [sys.executable, "-m", "mmrt", "pretrain", "--data", str(data), "--out", str(out), "--preset",
            "tiny", "--epochs", "12", "--checkpoint-every", "3", "--quiet", *extra]


def saved_step(state) -> int:
    """The optimizer step of the newest resumable state (0 before the first)."""
    from safetensors import safe_open

    if not state.is_file():
        return 0
    with safe_open(str(state), "pt") as f:
        return json.loads(f.metadata()["state"])["meta"]["step"]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every run, for exact comparison


def test_killed_pretraining_resumes_to_the_same_model(tiny_data, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(pretrain_cmd(tiny_data, reference), check=True, env=env(), timeout=600)

    out = tmp_path / "killed"
    kill_after = random.choice(range(3, 31, 3))  # a random checkpoint of the 36 steps; then mid-step
    proc = subprocess.Popen(pretrain_cmd(tiny_data, out), env=env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while saved_step(out / STATE) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / STATE).is_file(), f"the run ended before it saved resumable state (kill after {kill_after})"
    assert not (out / "model.safetensors").exists()

    again = subprocess.run(pretrain_cmd(tiny_data, out), env=env(), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # a new run will not clobber it

    resumed = subprocess.run(pretrain_cmd(tiny_data, out, "--resume"), env=env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step" in resumed.stderr
    assert not (out / STATE).exists()
    done, ref = load_model(out), load_model(reference)
    assert done.config.history[0]["steps"] == ref.config.history[0]["steps"] == 12 * 3
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(done.state_dict()[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_train_resume_skips_finished_stages(tiny_data, tmp_path):
    from mmrt.cli import main

    pre = tmp_path / "pre"
    assert main(["pretrain", "--data", str(tiny_data), "--out", str(pre), "--preset", "tiny", "--quiet"]) == 0
    out = tmp_path / "ft"
    argv = ["train", "--data", str(tiny_data), "--pretrained", str(pre), "--method", "ft", "--modalities",
            "video", "--out", str(out), "--quiet", "--keep-stages"]
    assert main(argv) == 0
    probe_bytes = (out / "stages" / "probe" / "model.safetensors").read_bytes()
    (out / "model.safetensors").unlink()  # as if killed after the probe and fine-tuning finished
    assert main([*argv, "--resume"]) == 0
    assert (out / "stages" / "probe" / "model.safetensors").read_bytes() == probe_bytes
    assert load_model(out).config.history[-1]["method"] == "ft"
