"""The deployment recipes, checked by what can check them here: systemd-analyze for the unit,
the repository for the container recipe (no container runtime runs on these machines)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.architecture import setuptools_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "deploy" / "mmrt.service").read_text()
    assert re.search(r"^Type=notify$", unit, re.M) and re.search(r"^WatchdogSec=\d+$", unit, re.M)
    for key in ("User=mmrt", "NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure"):
        assert f"\n{key}\n" in unit, key
    start = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", unit, re.M).group(1)
    assert "--host 0.0.0.0" in start and "--tls-cert" in start and "--tls-key" in start  # TLS on the network
    assert "--model-control poll" in start and "--admin-token-file" not in start  # no remote admin
    mmrt = Path(sys.executable).parent / "mmrt"  # verify wants ExecStart's program to exist
    local = tmp_path / "mmrt.service"
    local.write_text(unit.replace("/opt/mmrt/venv/bin/mmrt", str(mmrt)))
    r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_the_container_recipe_installs_the_torch_free_runtime_as_a_non_root_user():
    recipe = (ROOT / "deploy" / "Containerfile").read_text()
    copied = set()
    for line in re.findall(r"^COPY (.+)$", recipe, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
            copied.add(source)
    folders = setuptools_config()["package-dir"]
    assert set(folders.values()) <= copied, "the image would not install: pyproject maps a folder it lacks"
    assert re.findall(r"pip install .*", recipe) == ['pip install --no-cache-dir ".[serve]" && rm -rf /src']
    assert re.search(r"^USER mmrt$", recipe, re.M)
    assert '"mmrt", "serve"' in recipe and "HEALTHCHECK" in recipe
    entry = recipe[recipe.index("ENTRYPOINT"):]
    assert '"--tls-cert"' in entry and '"--token-file"' in entry and "--admin-token-file" not in entry
    assert "https://127.0.0.1:8000/v2/health/ready" in recipe
