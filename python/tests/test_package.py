"""`pip install ./python` offline (no index, no build isolation: Debian's setuptools and wheel), as the
README says: the package and its `peercache-sglang-check` script install and run."""
import os
import shutil
import subprocess
import sys

import pytest

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _can_build():
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("pip", "setuptools", "wheel"))


@pytest.mark.skipif(not _can_build() and os.environ.get("CI") != "true", reason="pip, setuptools or wheel missing (CI installs them)")
def test_offline_pip_install_gives_the_package_and_the_check_script(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(PYTHON_DIR, src, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "peercache_sglang" / "backend.py").exists() and (target / "peercache_sglang" / "check.py").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([str(target / "bin" / "peercache-sglang-check"), "--help"], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0 and "--socket" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", "import peercache_sglang, sys; print(peercache_sglang.__file__)"], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.stdout.strip().startswith(str(target)), r.stdout + r.stderr
