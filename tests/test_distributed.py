"""The training commands under torchrun: two CPU processes (gloo) on the tiny preset."""

import os
import subprocess
import sys

import pytest

from mmrt.training.model.checkpoint import load_model

pytestmark = pytest.mark.integration


def torchrun(*args, cwd):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "mmrt", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_pretrain_and_masd_run_on_two_processes(tiny_data, tmp_path):
    pre = tmp_path / "pre"
    r = torchrun("pretrain", "--data", str(tiny_data), "--out", str(pre), "--preset", "tiny", "--quiet",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on cpu x2" in r.stderr
    single_steps = 2 * (120 // 32)  # tiny recipe: 2 epochs, batch 32, 120 pretrain examples
    assert load_model(pre).config.history[0]["steps"] == single_steps

    out = tmp_path / "masd"
    r = torchrun("train", "--data", str(tiny_data), "--pretrained", str(pre), "--method", "masd",
                 "--modalities", "audio", "--out", str(out), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    model = load_model(out)
    assert [h["stage"] for h in model.config.history] == ["pretrain", "probe", "masd", "result"]
