"""The adapter is typed, and the types are checked: mypy, strict, over python/peercache_sglang with the
settings in python/pyproject.toml ([tool.mypy]). Debian's python3-mypy (CI installs it); elsewhere the
test skips with one line saying so, never under CI=true."""
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _mypy():
    """The command that runs mypy: this Python's module, else a `mypy` on PATH (Debian: /usr/bin/mypy)."""
    if importlib.util.find_spec("mypy") is not None:
        return [sys.executable, "-m", "mypy"]
    found = shutil.which("mypy")
    return [found] if found else None


MYPY = _mypy()
needs_mypy = pytest.mark.skipif(MYPY is None and os.environ.get("CI") != "true", reason="mypy missing (Debian: apt-get install python3-mypy; CI installs it)")


def _run_mypy(cwd):
    assert MYPY is not None, "mypy is missing: apt-get install python3-mypy"
    # --cache-dir=/dev/null: mypy writes no cache (nothing left in the checkout).
    return subprocess.run(MYPY + ["--cache-dir=/dev/null"], cwd=str(cwd), capture_output=True, text=True, timeout=300)


@needs_mypy
def test_the_adapter_passes_mypy_strict():
    r = _run_mypy(PYTHON_DIR)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout


@needs_mypy
def test_a_type_error_fails_the_check(tmp_path):
    """The same check on a copy of the package with one wrong type: it fails and names the line."""
    shutil.copy(os.path.join(PYTHON_DIR, "pyproject.toml"), str(tmp_path / "pyproject.toml"))
    shutil.copytree(os.path.join(PYTHON_DIR, "peercache_sglang"), str(tmp_path / "peercache_sglang"), ignore=shutil.ignore_patterns("__pycache__"))
    naming = tmp_path / "peercache_sglang" / "naming.py"
    lines = naming.read_text().count("\n")
    with naming.open("a") as f:
        f.write("\n\ndef _page_count() -> int:\n    return \"128\"\n")
    r = _run_mypy(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "peercache_sglang/naming.py:%d: error: Incompatible return value type" % (lines + 4) in r.stdout, r.stdout
