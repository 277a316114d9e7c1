"""The core, the CLI's torch-free commands and the runtime package import with torch blocked."""

from helpers import run_blocked


def test_core_and_runtime_import_without_torch(tmp_path):
    r = run_blocked("""
        import mmrt, mmrt.cli, mmrt.runtime, mmrt.robustness, mmrt.split_files, mmrt.preprocess
        import mmrt.text, mmrt.scores
        try:
            import torch
        except ImportError:
            print("blocked")
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "blocked"


def test_metrics_and_data_make_run_without_torch(tmp_path):
    r = run_blocked("""
        import sys
        from importlib import resources
        from mmrt.cli import main
        sample = resources.files("mmrt") / "examples" / "pmatrix_example.json"
        assert main(["metrics", str(sample), "--json"]) == 0
        assert main(["data", "make", "--out", "d", "--size", "tiny", "--modalities", "text",
                     "--workers", "1", "--no-progress"]) == 0
        assert "torch" not in sys.modules
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / "train.jsonl").is_file()
