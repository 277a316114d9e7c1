"""The GPU check script, run as far as a CPU can run it: every step on the CPU with --allow-cpu,
and a clear stop at the first step without it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def gpu_check(*args):
    return subprocess.run([sys.executable, "-m", "lab.gpu_check", *args], capture_output=True,
                          text=True, timeout=900, cwd=Path(__file__).parents[1])  # a checkout's lab script


def test_every_step_runs_on_the_cpu_and_reports(tiny_data, tmp_path):
    r = gpu_check("--out", str(tmp_path), "--preset", "tiny", "--data", str(tiny_data), "--allow-cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    steps = json.loads((tmp_path / "report.json").read_text())["steps"]
    assert {k: v["status"] for k, v in steps.items()} == {
        "environment": "ok", "train": "ok", "training speed": "ok", "export": "ok",
        "batch 1 against batch 32": "ok", "serve": "ok"}
    assert any("every lever off" in v for v in steps["training speed"]["result"].values())
    assert steps["serve"]["result"]["subsets"] == 7
    assert float(steps["serve"]["result"]["max_abs_difference_vs_cpu"]) < 1e-5
    assert any("rows/s at batch 1" in v for v in steps["batch 1 against batch 32"]["result"].values())
    assert "## serve: ok" in (tmp_path / "report.md").read_text()


def test_without_a_gpu_it_stops_at_the_environment_and_says_why(tmp_path):
    r = gpu_check("--out", str(tmp_path))
    assert r.returncode == 1
    steps = json.loads((tmp_path / "report.json").read_text())["steps"]
    assert list(steps) == ["environment"] and steps["environment"]["status"] == "failed"
    assert "--allow-cpu" in steps["environment"]["error"]


def test_the_openvino_check_says_when_this_onnxruntime_has_no_openvino(tiny_bundle, tmp_path):
    import onnxruntime

    from lab import openvino_check

    if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has OpenVINO")
    with pytest.raises(SystemExit, match="has no OpenVINOExecutionProvider: run it with onnxruntime-open"):
        openvino_check.main([str(tiny_bundle), "--out", str(tmp_path)])


def test_bundle_ab_times_every_encoder_of_two_bundles(tiny_bundle, capsys):
    from lab import bundle_ab

    assert bundle_ab.main([str(tiny_bundle), str(tiny_bundle), "--threads", "1", "--repeats", "2"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " batch " in ln]
    assert [ln.split(":")[0] for ln in lines] == [f"{m} batch {b}" for m in ("audio", "video", "text")
                                                  for b in (1, 8)]
    assert all(ln.endswith("max |diff| 0") for ln in lines)  # the same graphs answer the same
